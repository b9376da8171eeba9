//! The order-preserving byte encoding of values used for index keys.
//!
//! Index B+trees compare keys as plain byte strings, so a value must be
//! turned into bytes whose byte order is exactly [`order::compare`]:
//!
//! - `compare(a, b) == encode(a).cmp(&encode(b))` for all values;
//! - values equal under `compare` encode to identical bytes (`Int(3)`,
//!   `UInt(3)` and `Float(3.0)` are one key; so are `-0.0` and `0`);
//! - encodings are prefix-free (no encoding is a proper prefix of another),
//!   so concatenated encodings (composite keys) order as tuples do, and any
//!   bytes appended after a key (such as a document id) never change how two
//!   different values order.
//!
//! The byte-level specification is `docs/format.md ("Index key encoding")`; keep the two in
//! step. In short: one tag byte per value (its type, and for numbers the
//! sign and scale), numbers as base-128 digits with a continuation bit
//! (exact for every `i64`, `u64` and `f64`), strings and bytes with a
//! 0x00/0x01 escape and a 0x00 terminator, lists and maps as their elements
//! followed by 0x00.
//!
//! [`order::compare`]: crate::doc::order::compare

use crate::doc::value::{Timestamp, Value};
use crate::error::{Error, Result};

// Tag bytes. Their numeric order is the type order of `order::compare`;
// gaps are left so that a future type can be placed without renumbering.
// 0x00 never starts a value: it terminates lists and maps, which is what
// makes a shorter list sort first.
const END: u8 = 0x00;
const TAG_NULL: u8 = 0x04;
const TAG_FALSE: u8 = 0x08;
const TAG_TRUE: u8 = 0x09;
// Numbers: 0x10..=0x2B, symmetric around NUM_ZERO so that the tag of a
// negative number is the mirror (2*NUM_ZERO - t) of its magnitude's tag.
const NUM_NEG_INF: u8 = 0x10;
const NUM_ZERO: u8 = 0x1D;
const NUM_POS_SMALL: u8 = 0x1E; // 0 < x < 1: an exponent byte follows
const NUM_POS_E0: u8 = 0x1F; // 1 <= x < 128^10: exponent 0..=9 folded into the tag
const NUM_POS_BIG: u8 = 0x29; // x >= 128^10: an exponent byte follows
const NUM_POS_INF: u8 = 0x2A;
const NUM_NAN: u8 = 0x2B;
const TAG_TIMESTAMP: u8 = 0x30;
const TAG_STR: u8 = 0x40;
const TAG_BYTES: u8 = 0x50;
const TAG_LIST: u8 = 0x60;
const TAG_MAP: u8 = 0x70;

/// The largest exponent folded into the tag byte (`NUM_POS_E0 + e`).
const FOLDED_MAX_E: i32 = 9;
/// Base-128 exponents of finite non-zero f64 values lie in this range
/// (2^-1074 is in digit position -154; 2^1023 in position 146).
const MIN_E: i32 = -154;
const MAX_E: i32 = 146;
/// Digits of any encodable magnitude: a u64 needs at most 10, a f64's
/// 53-bit significand at most 9 (its digit span, with alignment, is < 63 bits).
const MAX_DIGITS: usize = 10;

/// Whether `key` encodes a list (as a whole; a composite key's first
/// field).
pub fn is_list(key: &[u8]) -> bool {
    key.first() == Some(&TAG_LIST)
}

/// Lists and maps nested deeper than this are refused by [`decode_key`], so
/// that hostile bytes cannot exhaust the stack.
pub const MAX_DECODE_DEPTH: usize = 256;

/// Appends the key encoding of `v` to `out`.
pub fn encode_key(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Int(i) => {
            if *i == 0 {
                out.push(NUM_ZERO)
            } else {
                encode_magnitude(u128::from(i.unsigned_abs()), 0, *i < 0, out)
            }
        }
        Value::UInt(u) => {
            if *u == 0 {
                out.push(NUM_ZERO)
            } else {
                encode_magnitude(u128::from(*u), 0, false, out)
            }
        }
        Value::Float(f) => encode_float(*f, out),
        Value::Timestamp(t) => {
            out.push(TAG_TIMESTAMP);
            // Flipping the sign bit makes two's complement order as unsigned.
            // The instant alone: the offset does not take part in the order.
            out.extend_from_slice(&((t.micros as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Str(s) => {
            out.push(TAG_STR);
            encode_escaped(s.as_bytes(), out);
        }
        Value::Bytes(b) => {
            out.push(TAG_BYTES);
            encode_escaped(b, out);
        }
        Value::List(items) => {
            out.push(TAG_LIST);
            for item in items {
                encode_key(item, out);
            }
            out.push(END);
        }
        Value::Map(pairs) => {
            out.push(TAG_MAP);
            for (k, item) in pairs {
                // The key is encoded as a Str (tag 0x40 first), so a pair never
                // starts with END, even for the empty key.
                out.push(TAG_STR);
                encode_escaped(k.as_bytes(), out);
                encode_key(item, out);
            }
            out.push(END);
        }
    }
}

/// Returns the key encoding of `v`.
pub fn encode_key_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(key_len_hint(v));
    encode_key(v, &mut out);
    out
}

/// About how long `v`'s key is (exact for unescaped strings and bytes), so
/// that a key buffer is allocated once rather than grown.
pub fn key_len_hint(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len() + 3,
        Value::Bytes(b) => b.len() + 3,
        _ => 16,
    }
}

/// Encodes a composite key: the concatenation of the encodings of `vals`.
/// Because encodings are prefix-free, composite keys order as the tuples
/// do, and a key of a shorter tuple is a byte prefix of every longer tuple
/// that extends it (which is what prefix scans over composite indexes use).
pub fn encode_composite(vals: &[&Value]) -> Vec<u8> {
    // Room for the usual key at once (a string's bytes and its framing).
    let hint = |v: &&Value| match v {
        Value::Str(s) => s.len() + 2,
        Value::Bytes(b) => b.len() + 2,
        _ => 16,
    };
    let mut out = Vec::with_capacity(vals.iter().map(hint).sum());
    for v in vals {
        encode_key(v, &mut out);
    }
    out
}

/// Decodes one value from the front of `bytes`, returning it and the
/// number of bytes it took. The value is canonical: numbers come back as
/// `Int` when integral and within `i64`, as `UInt` when integral and above
/// `i64::MAX` (up to `u64::MAX`), and as `Float` otherwise; so the result is
/// equal to the encoded value under `compare`, not necessarily the same
/// variant. Bytes that no encoder could have produced give
/// [`Error::Corruption`].
pub fn decode_key(bytes: &[u8]) -> Result<(Value, usize)> {
    let mut r = Reader { bytes, pos: 0 };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

/// Decodes a composite key (all of `bytes`) into its values.
pub fn decode_composite(bytes: &[u8]) -> Result<Vec<Value>> {
    let mut r = Reader { bytes, pos: 0 };
    let mut out = Vec::new();
    while r.pos < bytes.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

/// The key of a non-unique index entry: the encoded value (or composite
/// value) followed by the document id, 8 bytes big-endian, so entries with
/// equal values are ordered by id and every entry key is distinct.
pub fn index_entry_key(value_key: &[u8], doc_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    index_entry_key_into(value_key, doc_id, &mut out);
    out
}

/// [`index_entry_key`] written over `out` (a buffer reused for many keys).
pub fn index_entry_key_into(value_key: &[u8], doc_id: u64, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(value_key.len() + 8);
    out.extend_from_slice(value_key);
    out.extend_from_slice(&doc_id.to_be_bytes());
}

/// Splits a non-unique index entry key back into its value key and document
/// id (the inverse of [`index_entry_key`]).
pub fn split_index_entry(key: &[u8]) -> Result<(&[u8], u64)> {
    if key.len() < 9 {
        return Err(corrupt(format!("index entry key of {} bytes is too short", key.len())));
    }
    let (value_key, id) = key.split_at(key.len() - 8);
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(id);
    Ok((value_key, u64::from_be_bytes(id_bytes)))
}

/// The smallest byte string greater than every string that starts with
/// `prefix`, or `None` when there is none (`prefix` is empty or all 0xFF).
///
/// An equality scan for value `v` over a non-unique index covers the
/// half-open range `[encode(v), prefix_end(encode(v)))`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The byte range `[start, end)` that holds the encodings of every value of
/// the same type rank as `v` (all numbers, all strings, ...).
///
/// Filters compare only within a type rank (`Gt("total", 100)` never matches
/// a string), so an index scan for `> v` runs from `prefix_end(enc(v))` to
/// this range's `end`, and one for `< v` from its `start` to `enc(v)`.
pub fn rank_key_range(v: &Value) -> (Vec<u8>, Vec<u8>) {
    let (start, end) = match v {
        Value::Null => (TAG_NULL, TAG_FALSE),
        Value::Bool(_) => (TAG_FALSE, NUM_NEG_INF),
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => (NUM_NEG_INF, TAG_TIMESTAMP),
        Value::Timestamp(_) => (TAG_TIMESTAMP, TAG_STR),
        Value::Str(_) => (TAG_STR, TAG_BYTES),
        Value::Bytes(_) => (TAG_BYTES, TAG_LIST),
        Value::List(_) => (TAG_LIST, TAG_MAP),
        Value::Map(_) => (TAG_MAP, TAG_MAP + 1),
    };
    (vec![start], vec![end])
}

/// The key prefix shared by the encodings of exactly the strings that start
/// with `prefix`: the Str tag and the escaped bytes, without the terminator.
/// A `Prefix` filter scans `[str_prefix_key(p), prefix_end(str_prefix_key(p)))`.
pub fn str_prefix_key(prefix: &str) -> Vec<u8> {
    let mut out = vec![TAG_STR];
    encode_escaped(prefix.as_bytes(), &mut out);
    out.pop(); // the terminator
    out
}

// ---------------------------------------------------------------- numbers

fn encode_float(f: f64, out: &mut Vec<u8>) {
    if f.is_nan() {
        out.push(NUM_NAN);
    } else if f == f64::INFINITY {
        out.push(NUM_POS_INF);
    } else if f == f64::NEG_INFINITY {
        out.push(NUM_NEG_INF);
    } else if f == 0.0 {
        // Both zeros: -0.0 == 0.0 under compare.
        out.push(NUM_ZERO);
    } else {
        let bits = f.to_bits();
        let exp = ((bits >> 52) & 0x7FF) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        let (m, s) = if exp == 0 { (frac, -1074) } else { (frac | (1u64 << 52), exp - 1075) };
        encode_magnitude(u128::from(m), s, f < 0.0, out);
    }
}

/// Encodes the non-zero number `±m * 2^s`.
///
/// The magnitude is written in base 128: the exponent `e` of its leading
/// digit (folded into the tag when 0..=9, else in a byte after the tag),
/// then its digits from the leading one down to the last non-zero one, each
/// as `digit << 1 | more`, where `more` is 1 on every digit but the last.
/// Equal exponents compare digit by digit; when one digit string ends first
/// its last byte has `more = 0` where the other has 1, so the shorter (the
/// smaller, as the rest is zeros) sorts first and the encoding delimits
/// itself. A negative number uses the mirrored tag and complements every
/// byte after it, which reverses the order of the (prefix-free) rest.
fn encode_magnitude(m: u128, s: i32, negative: bool, out: &mut Vec<u8>) {
    debug_assert!(m != 0);
    let tz = m.trailing_zeros();
    let m = m >> tz;
    let s = s + tz as i32;
    let bitlen = 128 - m.leading_zeros() as i32;
    let top = s + bitlen - 1;
    let e = top.div_euclid(7);
    let low = s.div_euclid(7);
    // Align so that `digits` is an integer whose base-128 digits are the
    // number's digits from position `e` down to `low`.
    let digits = m << (s - 7 * low);
    let n = (e - low + 1) as usize;

    let (tag, ebyte) = if e < 0 {
        (NUM_POS_SMALL, Some((255 + e) as u8))
    } else if e <= FOLDED_MAX_E {
        (NUM_POS_E0 + e as u8, None)
    } else {
        (NUM_POS_BIG, Some(e as u8))
    };
    let mask = if negative { 0xFF } else { 0x00 };
    out.push(if negative { 2 * NUM_ZERO - tag } else { tag });
    if let Some(b) = ebyte {
        out.push(b ^ mask);
    }
    for i in (0..n).rev() {
        let d = ((digits >> (7 * i)) & 0x7F) as u8;
        let more = u8::from(i > 0);
        out.push(((d << 1) | more) ^ mask);
    }
}

/// Builds the f64 equal to `m * 2^s` (`m` odd), or `None` when that value is
/// not exactly a finite f64.
fn exact_f64(m: u128, s: i32) -> Option<f64> {
    let b = 128 - m.leading_zeros() as i32;
    if b == 0 || b > 53 {
        return None;
    }
    let top = s + b - 1;
    if top > 1023 {
        return None;
    }
    if top >= -1022 {
        let frac = ((m << (53 - b)) as u64) & ((1u64 << 52) - 1);
        let exp = (top + 1023) as u64;
        Some(f64::from_bits((exp << 52) | frac))
    } else {
        // Subnormal: value = frac * 2^-1074.
        if s < -1074 {
            return None;
        }
        Some(f64::from_bits((m << (s + 1074)) as u64))
    }
}

// ---------------------------------------------------------------- strings

/// Writes `b` with 0x00 -> 0x01 0x01 and 0x01 -> 0x01 0x02, then 0x00.
/// The escaped body never contains 0x00, so the terminator is unambiguous
/// (prefix-free), and the escape codes keep byte order (0x00 < 0x01 < 0x02).
fn encode_escaped(b: &[u8], out: &mut Vec<u8>) {
    out.reserve(b.len() + 1);
    // Text rarely holds 0x00 or 0x01: copy the runs between them whole.
    let mut rest = b;
    while let Some(i) = memchr::memchr2(0x00, 0x01, rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(&[0x01, rest[i] + 1]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(END);
}

// ---------------------------------------------------------------- decoding

fn corrupt(message: String) -> Error {
    Error::corruption(None, message)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, what: &str) -> Error {
        corrupt(format!("index key: {what} at byte {}", self.pos))
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| self.err("unexpected end of key"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.err("unexpected end of key"))?;
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(a)
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        let tag_pos = self.pos;
        let tag = self.byte()?;
        Ok(match tag {
            TAG_NULL => Value::Null,
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            NUM_NEG_INF..=NUM_NAN => self.number(tag)?,
            TAG_TIMESTAMP => {
                let micros = (u64::from_be_bytes(self.take::<8>()?) ^ (1 << 63)) as i64;
                Value::Timestamp(Timestamp { micros, offset_secs: None })
            }
            TAG_STR => Value::Str(self.string()?),
            TAG_BYTES => Value::Bytes(self.escaped()?),
            TAG_LIST | TAG_MAP => {
                if depth >= MAX_DECODE_DEPTH {
                    return Err(self.err("nesting too deep"));
                }
                let mut items = Vec::new();
                let mut pairs = Vec::new();
                loop {
                    match self.bytes.get(self.pos) {
                        None => return Err(self.err("unterminated list or map")),
                        Some(&END) => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) if tag == TAG_LIST => items.push(self.value(depth + 1)?),
                        Some(_) => {
                            if self.byte()? != TAG_STR {
                                return Err(self.err("map key is not a string"));
                            }
                            let k = self.string()?;
                            pairs.push((k, self.value(depth + 1)?));
                        }
                    }
                }
                if tag == TAG_LIST {
                    Value::List(items)
                } else {
                    Value::Map(pairs)
                }
            }
            _ => {
                return Err(corrupt(format!("index key: unknown tag 0x{tag:02x} at byte {tag_pos}")));
            }
        })
    }

    fn escaped(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            match self.byte()? {
                END => return Ok(out),
                0x01 => match self.byte()? {
                    0x01 => out.push(0x00),
                    0x02 => out.push(0x01),
                    _ => return Err(self.err("bad escape in string")),
                },
                c => out.push(c),
            }
        }
    }

    fn string(&mut self) -> Result<String> {
        let b = self.escaped()?;
        String::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))
    }

    fn number(&mut self, tag: u8) -> Result<Value> {
        match tag {
            NUM_NEG_INF => return Ok(Value::Float(f64::NEG_INFINITY)),
            NUM_POS_INF => return Ok(Value::Float(f64::INFINITY)),
            NUM_NAN => return Ok(Value::Float(f64::NAN)),
            NUM_ZERO => return Ok(Value::Int(0)),
            _ => {}
        }
        let negative = tag < NUM_ZERO;
        let t = if negative { 2 * NUM_ZERO - tag } else { tag };
        let mask = if negative { 0xFF } else { 0x00 };
        let e: i32 = if t == NUM_POS_SMALL {
            let e = i32::from(self.byte()? ^ mask) - 255;
            if !(MIN_E..0).contains(&e) {
                return Err(self.err("number exponent out of range"));
            }
            e
        } else if t == NUM_POS_BIG {
            let e = i32::from(self.byte()? ^ mask);
            if !(FOLDED_MAX_E + 1..=MAX_E).contains(&e) {
                return Err(self.err("number exponent out of range"));
            }
            e
        } else {
            i32::from(t - NUM_POS_E0)
        };
        let mut digits: u128 = 0;
        let mut n = 0usize;
        loop {
            let b = self.byte()? ^ mask;
            let d = b >> 1;
            if n == 0 && d == 0 {
                return Err(self.err("number has a leading zero digit"));
            }
            n += 1;
            if n > MAX_DIGITS {
                return Err(self.err("number has too many digits"));
            }
            digits = (digits << 7) | u128::from(d);
            if b & 1 == 0 {
                if d == 0 {
                    return Err(self.err("number has a trailing zero digit"));
                }
                break;
            }
        }
        // value = digits * 128^(e - n + 1) = m * 2^s
        let s = 7 * (e - n as i32 + 1);
        let tz = digits.trailing_zeros();
        let m = digits >> tz;
        let s = s + tz as i32;
        let bitlen = 128 - m.leading_zeros() as i32;
        if s >= 0 && bitlen + s <= 64 {
            let u = (m << s) as u64;
            if !negative {
                return Ok(if u <= i64::MAX as u64 { Value::Int(u as i64) } else { Value::UInt(u) });
            }
            if u <= 1u64 << 63 {
                return Ok(Value::Int((-(i128::from(u))) as i64));
            }
        }
        match exact_f64(m, s) {
            Some(f) => Ok(Value::Float(if negative { -f } else { f })),
            None => Err(self.err("number is neither an integer in range nor an exact f64")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::order::compare;
    use crate::index::arb_value::{arb_value, number_value, scalar_value};
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn enc(v: &Value) -> Vec<u8> {
        encode_key_vec(v)
    }

    fn roundtrip(v: &Value) {
        let e = enc(v);
        let (d, used) = decode_key(&e).unwrap_or_else(|err| panic!("decode {v:?} {e:02x?}: {err}"));
        assert_eq!(used, e.len(), "{v:?}");
        assert_eq!(compare(&d, v), Ordering::Equal, "{v:?} decoded as {d:?}");
        assert_eq!(enc(&d), e, "re-encoding {d:?}");
    }

    #[test]
    fn sizes_are_compact() {
        assert_eq!(enc(&Value::Int(0)).len(), 1);
        assert_eq!(enc(&Value::Int(1)).len(), 2);
        assert_eq!(enc(&Value::Int(-100)).len(), 2);
        assert_eq!(enc(&Value::Int(127)).len(), 2);
        assert_eq!(enc(&Value::Int(1000)).len(), 3);
        assert_eq!(enc(&Value::Int(16383)).len(), 3);
        assert_eq!(enc(&Value::Int(1_000_000)).len(), 4);
        assert_eq!(enc(&Value::Int(1 << 42)).len(), 2, "trailing zero digits cost nothing");
        assert_eq!(enc(&Value::Int(i64::MAX)).len(), 10);
        assert_eq!(enc(&Value::UInt(u64::MAX)).len(), 11);
        assert_eq!(enc(&Value::Str("hello".into())).len(), 7);
        assert_eq!(enc(&Value::Float(0.5)).len(), 3);
        assert_eq!(enc(&Value::Float(123.456)).len(), 9);
        assert_eq!(enc(&Value::Float(0.1)).len(), 10);
        assert_eq!(enc(&Value::Float(f64::MAX)).len(), 11);
        assert_eq!(enc(&Value::Float(f64::MIN_POSITIVE / 4.0)).len(), 3);
    }

    /// The examples in docs/format.md ("Index key encoding"), byte for byte.
    #[test]
    fn documented_examples() {
        let cases: &[(Value, &[u8])] = &[
            (Value::Float(-0.0), &[0x1D]),
            (Value::UInt(1), &[0x1F, 0x02]),
            (Value::Int(3), &[0x1F, 0x06]),
            (Value::Int(127), &[0x1F, 0xFE]),
            (Value::Int(128), &[0x20, 0x02]),
            (Value::Int(300), &[0x20, 0x05, 0x58]),
            (Value::Int(-1), &[0x1B, 0xFD]),
            (Value::Int(-300), &[0x1A, 0xFA, 0xA7]),
            (Value::Float(0.5), &[0x1E, 0xFE, 0x80]),
            (Value::Float(-0.5), &[0x1C, 0x01, 0x7F]),
            (Value::Float(3.5), &[0x1F, 0x07, 0x80]),
            (Value::Float(f64::INFINITY), &[0x2A]),
            (Value::Float(f64::NEG_INFINITY), &[0x10]),
            (Value::Float(f64::NAN), &[0x2B]),
            (Value::Str("a\0\u{1}".into()), &[0x40, b'a', 0x01, 0x01, 0x01, 0x02, 0x00]),
            (Value::List(vec![Value::Null, Value::Bool(true)]), &[0x60, 0x04, 0x09, 0x00]),
            (Value::Map(vec![(String::new(), Value::Bool(false))]), &[0x70, 0x40, 0x00, 0x08, 0x00]),
            (
                Value::Timestamp(Timestamp { micros: -1, offset_secs: Some(3600) }),
                &[0x30, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
        ];
        for (v, bytes) in cases {
            assert_eq!(&enc(v)[..], *bytes, "{v:?}");
        }
        assert_eq!(enc(&Value::Int(i64::MAX))[0], 0x27);
        assert_eq!(enc(&Value::UInt(u64::MAX))[0], 0x28);
        assert_eq!(&enc(&Value::Float(f64::MAX))[..2], &[0x29, 0x92]);
    }

    #[test]
    fn equal_numbers_encode_identically() {
        let three = enc(&Value::Int(3));
        assert_eq!(enc(&Value::UInt(3)), three);
        assert_eq!(enc(&Value::Float(3.0)), three);
        assert_eq!(enc(&Value::Float(-0.0)), enc(&Value::Int(0)));
        assert_eq!(enc(&Value::Float(-((1u64 << 63) as f64))), enc(&Value::Int(i64::MIN)));
        assert_eq!(enc(&Value::Float((1u64 << 63) as f64)), enc(&Value::UInt(1 << 63)));
        assert_eq!(enc(&Value::Float(f64::NAN)), enc(&Value::Float(-f64::NAN)));
        // Decoding gives the canonical variant.
        assert_eq!(decode_key(&three).unwrap().0, Value::Int(3));
        assert_eq!(decode_key(&enc(&Value::Float(1e19))).unwrap().0, Value::UInt(10_000_000_000_000_000_000));
        assert_eq!(decode_key(&enc(&Value::Float(1e20))).unwrap().0, Value::Float(1e20));
        assert_eq!(decode_key(&enc(&Value::Float(-1e19))).unwrap().0, Value::Float(-1e19));
        assert_eq!(decode_key(&enc(&Value::Float(2.5))).unwrap().0, Value::Float(2.5));
    }

    #[test]
    fn number_boundaries_order_and_roundtrip() {
        let mut vals = vec![
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::MIN),
            Value::Float(-1e300),
            Value::Float(-1.8446744073709552e19),
            Value::Int(i64::MIN),
            Value::Int(i64::MIN + 1),
            Value::Int(-129),
            Value::Int(-128),
            Value::Int(-127),
            Value::Float(-1.5),
            Value::Int(-1),
            Value::Float(-0.5),
            Value::Float(-f64::MIN_POSITIVE),
            Value::Float(-5e-324),
            Value::Int(0),
            Value::Float(5e-324),
            Value::Float(1e-10),
            Value::Float(0.1),
            Value::Float(0.99999999),
            Value::Int(1),
            Value::Float(1.0000001),
            Value::Int(2),
            Value::Float(127.5),
            Value::Int(128),
            Value::Int(i64::MAX - 1),
            Value::Int(i64::MAX),
            Value::Float(9.223372036854776e18),
            Value::UInt((1 << 63) + 1),
            Value::UInt(u64::MAX - 1),
            Value::UInt(u64::MAX),
            Value::Float(1.8446744073709552e19),
            Value::Float(1.8446744073709556e19),
            Value::Float(1.0e21),
            Value::Float(f64::MAX),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NAN),
        ];
        for v in &vals {
            roundtrip(v);
        }
        for w in vals.windows(2) {
            assert_eq!(compare(&w[0], &w[1]), Ordering::Less, "{:?} < {:?}", w[0], w[1]);
            assert!(enc(&w[0]) < enc(&w[1]), "{:?} < {:?}", w[0], w[1]);
        }
        vals.reverse();
        for w in vals.windows(2) {
            assert!(enc(&w[0]) > enc(&w[1]));
        }
    }

    #[test]
    fn every_power_of_two_and_neighbours() {
        for p in -1074..=1023 {
            let x = if p >= -1022 {
                f64::from_bits(((p + 1023) as u64) << 52)
            } else {
                f64::from_bits(1u64 << (p + 1074))
            };
            for v in [x, -x, x * 1.5, f64::from_bits(x.to_bits() + 1), f64::from_bits(x.to_bits() - 1)] {
                if v.is_finite() {
                    roundtrip(&Value::Float(v));
                }
            }
        }
    }

    #[test]
    fn strings_with_nul_and_escape_bytes() {
        let vals: Vec<Value> =
            ["", "\0", "\0\0", "\u{1}", "\u{1}\0", "\u{2}", "a", "a\0", "a\0b", "a\u{1}", "ab", "b"]
                .iter()
                .map(|s| Value::Str(s.to_string()))
                .collect();
        for w in vals.windows(2) {
            assert!(enc(&w[0]) < enc(&w[1]), "{:?} < {:?}", w[0], w[1]);
        }
        for v in &vals {
            roundtrip(v);
        }
        // Prefix-freeness: "a" followed by anything never looks like "a\0...".
        let a = enc(&Value::Str("a".into()));
        let a0 = enc(&Value::Str("a\0".into()));
        assert!(!a0.starts_with(&a));
    }

    #[test]
    fn helpers() {
        assert_eq!(prefix_end(&[1, 2, 3]), Some(vec![1, 2, 4]));
        assert_eq!(prefix_end(&[1, 0xFF, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
        let vk = enc(&Value::Str("x".into()));
        let k = index_entry_key(&vk, 0x0102030405060708);
        assert_eq!(split_index_entry(&k).unwrap(), (&vk[..], 0x0102030405060708));
        assert!(split_index_entry(&[1, 2]).is_err());
        // Every entry for "x" is inside [vk, prefix_end(vk)), and entries of
        // neighbouring values are not.
        let end = prefix_end(&vk).unwrap();
        for id in [0, 1, u64::MAX] {
            let k = index_entry_key(&vk, id);
            assert!(k >= vk && k < end);
        }
        for other in ["x\0", "w", "y", "xa"] {
            let k = index_entry_key(&enc(&Value::Str(other.into())), 0);
            assert!(k < vk || k >= end, "{other}");
        }
    }

    #[test]
    fn bad_bytes_are_corruption() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x00],
            &[0xFF],
            &[TAG_STR, b'a'],
            &[TAG_STR, 0x01, 0x03, 0x00],
            &[TAG_STR, 0xC3, 0x00],
            &[TAG_LIST],
            &[TAG_MAP, TAG_NULL, 0x00],
            &[TAG_TIMESTAMP, 0, 0, 0],
            &[TAG_TIMESTAMP, 0, 0, 0, 0, 0, 0, 0],
            &[NUM_POS_E0],
            &[NUM_POS_E0, 0x00],
            &[NUM_POS_E0, 0x03, 0x00],
            &[NUM_POS_E0, 0x01, 0x02],
            &[NUM_POS_BIG, 3, 2],
            &[NUM_POS_SMALL, 255, 2],
            &[NUM_POS_SMALL, 50, 2],
            &[NUM_POS_E0 + 9, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x02],
            // 2^64 + 1 is neither a u64 nor an exact f64.
            &[NUM_POS_E0 + 9, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02],
        ];
        for c in cases {
            match decode_key(c) {
                Err(e) => assert!(e.is_corruption(), "{c:02x?}: {e}"),
                Ok(v) => panic!("{c:02x?} decoded as {v:?}"),
            }
        }
        let deep = vec![TAG_LIST; 100_000];
        assert!(decode_key(&deep).unwrap_err().is_corruption());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn encoding_order_is_compare(a in arb_value(), b in arb_value()) {
            let (ea, eb) = (enc(&a), enc(&b));
            prop_assert_eq!(compare(&a, &b), ea.cmp(&eb), "{:?} vs {:?}", a, b);
        }

        #[test]
        fn number_encoding_order_is_compare(a in number_value(), b in number_value()) {
            prop_assert_eq!(compare(&a, &b), enc(&a).cmp(&enc(&b)), "{:?} vs {:?}", a, b);
            let (d, _) = decode_key(&enc(&a)).unwrap();
            prop_assert_eq!(compare(&d, &a), Ordering::Equal);
        }

        #[test]
        fn scalar_encoding_order_is_compare(a in scalar_value(), b in scalar_value()) {
            prop_assert_eq!(compare(&a, &b), enc(&a).cmp(&enc(&b)), "{:?} vs {:?}", a, b);
        }

        #[test]
        fn decode_inverts_encode(v in arb_value()) {
            let e = enc(&v);
            let (d, used) = decode_key(&e).unwrap();
            prop_assert_eq!(used, e.len());
            prop_assert_eq!(compare(&d, &v), Ordering::Equal);
            prop_assert_eq!(enc(&d), e);
        }

        #[test]
        fn prefix_free(a in arb_value(), b in arb_value()) {
            let (ea, eb) = (enc(&a), enc(&b));
            if ea != eb {
                prop_assert!(!eb.starts_with(&ea) && !ea.starts_with(&eb));
            }
        }

        #[test]
        fn composite_orders_as_tuple(
            a in proptest::collection::vec(scalar_value(), 1..4),
            b in proptest::collection::vec(scalar_value(), 1..4),
        ) {
            let tuple = a.iter().zip(&b).map(|(x, y)| compare(x, y))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(a.len().cmp(&b.len()));
            let ka = encode_composite(&a.iter().collect::<Vec<_>>());
            let kb = encode_composite(&b.iter().collect::<Vec<_>>());
            prop_assert_eq!(tuple, ka.cmp(&kb));
            let back = decode_composite(&ka).unwrap();
            prop_assert_eq!(back.len(), a.len());
            // With a doc id appended, entries of one index (same arity) still
            // order by value first.
            if tuple != Ordering::Equal && a.len() == b.len() {
                prop_assert_eq!(tuple, index_entry_key(&ka, u64::MAX).cmp(&index_entry_key(&kb, 0)));
            }
        }

        #[test]
        fn total_order_laws(a in arb_value(), b in arb_value(), c in arb_value()) {
            prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
            prop_assert_eq!(compare(&a, &a), Ordering::Equal);
            if compare(&a, &b) != Ordering::Greater && compare(&b, &c) != Ordering::Greater {
                prop_assert_ne!(compare(&a, &c), Ordering::Greater);
            }
            // Transitivity through the (already checked) byte order as well.
            let mut v = [enc(&a), enc(&b), enc(&c)];
            v.sort();
            let mut vals = [a.clone(), b.clone(), c.clone()];
            vals.sort_by(compare);
            let re: Vec<Vec<u8>> = vals.iter().map(enc).collect();
            prop_assert_eq!(v.to_vec(), re);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((v, used)) = decode_key(&bytes) {
                // Whatever decodes must be canonical: it re-encodes to the same bytes.
                prop_assert_eq!(enc(&v), bytes[..used].to_vec());
            }
            let _ = decode_composite(&bytes);
        }

        #[test]
        fn tagged_random_bytes_never_panic(tag in 0x10u8..=0x2B, rest in proptest::collection::vec(any::<u8>(), 0..14)) {
            let mut bytes = vec![tag];
            bytes.extend(rest);
            if let Ok((v, used)) = decode_key(&bytes) {
                prop_assert_eq!(enc(&v), bytes[..used].to_vec());
            }
        }
    }
}

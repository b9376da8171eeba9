//! The JSON text form of documents: how the C ABI and the Python package pass
//! a whole [`Value`] in one call.
//!
//! JSON has fewer types than [`Value`], so the extra ones travel as
//! single-purpose objects whose keys start with `$`:
//!
//! | Value                         | JSON                                        |
//! |-------------------------------|---------------------------------------------|
//! | `Int(i)`                      | `123` (any integer literal within `i64`)    |
//! | `UInt(u)`, `u > i64::MAX`     | `18446744073709551615`                      |
//! | `Float(f)`, finite            | `1.5`, `1.0`, `-0.0`, `1e300` (shortest text that reads back bit-exact) |
//! | `Float(NaN / +inf / -inf)`    | `{"$f64": "nan"}`, `{"$f64": "inf"}`, `{"$f64": "-inf"}` |
//! | `Bytes(b)`                    | `{"$bytes": "<standard base64, padded>"}`   |
//! | `Timestamp` without offset    | `{"$ts": <micros since epoch>}`             |
//! | `Timestamp` with offset       | `{"$ts": <micros>, "$tz": <offset seconds>}`|
//!
//! A map key of the document that starts with `$` is written with one more
//! `$` in front (`"$price"` travels as `"$$price"`, `"$$x"` as `"$$$x"`), and
//! a key that starts with `$$` is read back with one `$` removed. Any other
//! `$` key in an object is an error, so a typo in a special form is never
//! silently stored as data.
//!
//! Reading: a number literal without fraction or exponent that fits `i64` is
//! `Int`, one that fits only `u64` is `UInt`, anything else is `Float` (so
//! `1.0` stays a float and `-0` is the float `-0.0`), except an integer
//! literal beyond those ranges whose digits the nearest float loses, which
//! is an error (write it as a string, or as a float with an exponent).
//! Duplicate keys in one object are an error. Objects and arrays nest at
//! most [`MAX_NESTING`] levels; deeper input is rejected before it can
//! exhaust the stack.
//!
//! Writing is infallible and iterative, so any [`Value`] can be written,
//! even one deeper than [`MAX_NESTING`] (which reading would then reject).
//! NaN payload bits are not preserved.

use super::codec::{corrupt, decode_header, enter, leave, tag, NameLookup, Reader};
use super::value::{duplicate_key, Timestamp, Value, NESTING_MESSAGE};
use crate::error::{Error, Result};
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::Write as _;

pub use super::value::MAX_NESTING;

/// Parses JSON text into a [`Value`]. Malformed JSON, an unknown `$` key,
/// a duplicate key or nesting beyond [`MAX_NESTING`] is
/// [`Error::InvalidArgument`] with serde_json's line and column.
pub fn from_json_str(text: &str) -> Result<Value> {
    parse(text.as_bytes(), MAX_NESTING)
}

/// [`from_json_str`] for a document one level inside an envelope object
/// (an export line, `{"id": …, "doc": …}`): the text may nest one level
/// more than [`MAX_NESTING`], so that every document a write accepts can
/// be read back from its line.
pub(crate) fn from_json_str_enveloped(text: &str) -> Result<Value> {
    parse(text.as_bytes(), MAX_NESTING + 1)
}

/// [`from_json_str`] for UTF-8 bytes (invalid UTF-8 inside strings is an
/// error).
pub fn from_json_slice(bytes: &[u8]) -> Result<Value> {
    parse(bytes, MAX_NESTING)
}

/// Parses one document: a JSON object (anything else is
/// [`Error::InvalidArgument`]).
pub fn document_from_json_slice(bytes: &[u8]) -> Result<Value> {
    let v = from_json_slice(bytes)?;
    if !matches!(v, Value::Map(_)) {
        return Err(not_an_object(&v));
    }
    Ok(v)
}

/// Parses a JSON array of documents (objects); an error names the first
/// element that is not an object.
pub fn documents_from_json_slice(bytes: &[u8]) -> Result<Vec<Value>> {
    // The array is one level around documents that may each take MAX_NESTING.
    let docs = match parse(bytes, MAX_NESTING + 1)? {
        Value::List(docs) => docs,
        other => {
            return Err(Error::invalid(format!(
                "expected a JSON array of documents, not {}",
                other.type_name()
            )))
        }
    };
    if let Some((i, d)) = docs.iter().enumerate().find(|(_, d)| !matches!(d, Value::Map(_))) {
        return Err(Error::invalid(format!("document [{i}]: {}", not_an_object_message(d))));
    }
    Ok(docs)
}

fn not_an_object(v: &Value) -> Error {
    Error::invalid(not_an_object_message(v))
}

fn not_an_object_message(v: &Value) -> String {
    format!("a document must be a JSON object, not {}", v.type_name())
}

fn parse(text: &[u8], limit: usize) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(text);
    // Our own depth check (in ValueSeed) is the limit: it allows exactly
    // `limit` levels (MAX_NESTING, or one more around an enveloped
    // document) and says so, where serde_json's stops one short.
    de.disable_recursion_limit();
    let value = reading_numbers(text, || {
        let value = ValueSeed { depth: 0, limit }.deserialize(&mut de).map_err(json_error)?;
        de.end().map_err(json_error)?;
        Ok::<_, Error>(value)
    });
    value.map_err(|literal| Error::invalid(integer_beyond_64_bits_message(literal)))?
}

thread_local! {
    /// Set when a JSON reader of this thread read a float beyond the
    /// 64-bit integers that has no fraction (see [`reading_numbers`]).
    static INTEGRAL_BIG_FLOAT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What a JSON reader calls for each float it reads: serde_json reads an
/// integer literal beyond `i64` and `u64` as the nearest float, and such a
/// float sends [`reading_numbers`] to the text.
pub(crate) fn note_float(v: f64) {
    if v.fract() == 0.0 && (v >= 18_446_744_073_709_551_616.0 || v <= -9_223_372_036_854_775_808.0) {
        INTEGRAL_BIG_FLOAT.set(true);
    }
}

/// Runs `read`, a reader of JSON `text` that calls [`note_float`], and
/// then, only if it read a float that large, looks in the text for an
/// integer literal beyond 64 bits whose digits a float loses: `Err(that
/// literal)`, which the caller refuses. Costs nothing on other text. A
/// read that failed is left as it is: the text is malformed, and its own
/// error (with line and column) says why, not a scan of text the reader
/// never accepted (`-Infinity` would be "the integer -").
pub(crate) fn reading_numbers<T, E>(
    text: &[u8],
    read: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<std::result::Result<T, E>, &str> {
    INTEGRAL_BIG_FLOAT.set(false);
    let out = read();
    match INTEGRAL_BIG_FLOAT.replace(false) && out.is_ok() {
        true => integer_beyond_64_bits(text).map_or(Ok(out), Err),
        false => Ok(out),
    }
}

/// The first integer literal (no fraction, no exponent) of JSON `text`
/// outside both `i64` and `u64` whose digits the nearest float does not
/// keep, if any. Strings are skipped. A literal that is a float's shortest
/// digits padded with zeros (`20000000000000000000`, as JavaScript writes
/// 2e19) is that float: reading it so loses nothing.
pub(crate) fn integer_beyond_64_bits(text: &[u8]) -> Option<&str> {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i].is_ascii_digit() {
                    i += 1;
                }
                let literal = std::str::from_utf8(&text[start..i]).unwrap_or_default();
                let integer = !matches!(text.get(i), Some(b'.' | b'e' | b'E'));
                if integer
                    && literal != "-"
                    && literal.parse::<i64>().is_err()
                    && literal.parse::<u64>().is_err()
                    && !float_keeps_the_digits(literal)
                {
                    return Some(literal);
                }
                while i < text.len() && matches!(text[i], b'.' | b'e' | b'E' | b'+' | b'-' | b'0'..=b'9') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Whether the nearest float to integer `literal` has its significant
/// digits (a float's shortest form, then zeros).
fn float_keeps_the_digits(literal: &str) -> bool {
    let Ok(f) = literal.parse::<f64>() else { return false };
    let shortest = format!("{:e}", f.abs()); // (shortest digits that read back as `f`)
    let mantissa = shortest.split('e').next().unwrap_or_default().replace('.', "");
    let digits = literal.trim_start_matches('-').trim_end_matches('0');
    f.is_finite() && mantissa.trim_end_matches('0') == digits
}

/// Why an integer literal beyond 64 bits is refused.
pub(crate) fn integer_beyond_64_bits_message(literal: &str) -> String {
    let literal = match literal.len() {
        ..=60 => literal.to_string(),
        n => format!("{}... ({n} digits)", &literal[..40]),
    };
    format!(
        "the integer {literal} is beyond the 64-bit range a document holds (-2^63 to 2^64-1), and a float \
         would not keep it as written; write it as a string, or as a float with an exponent"
    )
}

fn json_error(e: serde_json::Error) -> Error {
    Error::invalid(format!("JSON document: {e}"))
}

/// Builds a [`Value`] while tracking how many containers enclose it.
#[derive(Clone, Copy)]
struct ValueSeed {
    depth: usize,
    /// Most levels allowed.
    limit: usize,
}

impl ValueSeed {
    fn child<E: de::Error>(&self) -> Result<ValueSeed, E> {
        if self.depth >= self.limit {
            return Err(E::custom(NESTING_MESSAGE));
        }
        Ok(ValueSeed { depth: self.depth + 1, ..*self })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        note_float(v);
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(child)? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        let mut child = None;
        while let Some(key) = map.next_key::<String>()? {
            let key = match key.strip_prefix('$') {
                Some(rest) if rest.starts_with('$') => rest.to_owned(),
                // A special form is a scalar ({"$bytes"}, {"$ts"}, {"$f64"}),
                // not a level of nesting: Value::nesting_depth does not count
                // it, so neither does the limit here.
                Some(_) if entries.is_empty() => return special_form(key, &mut map),
                Some(rest) => return Err(unknown_dollar_key(&key, rest)),
                None => key,
            };
            let depth = match child {
                Some(depth) => depth,
                None => *child.insert(self.child()?.depth),
            };
            let value = map.next_value_seed(ValueSeed { depth, ..self })?;
            entries.push((key, value));
        }
        if child.is_none() {
            self.child()?; // {} is a level too
        }
        if let Some(k) = duplicate_key(&entries) {
            return Err(de::Error::custom(format!("duplicate key {k:?} in a JSON object")));
        }
        Ok(Value::Map(entries))
    }
}

fn unknown_dollar_key<E: de::Error>(key: &str, rest: &str) -> E {
    E::custom(format!(
        "object key {key:?} starts with '$': the special forms are {{\"$bytes\"}}, {{\"$ts\"[, \"$tz\"]}} \
         and {{\"$f64\"}} alone in their object; write \"$${rest}\" for a literal key {key:?}"
    ))
}

/// The bytes of a `{"$bytes": …}` form: standard base64, padded or not;
/// bad characters, misplaced padding and non-zero unused bits are refused,
/// so every byte string has one spelling up to its padding. Document JSON
/// and query JSON (`query/json.rs`) both read it here.
pub(crate) fn decode_base64(text: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    STANDARD_PAD_INDIFFERENT.decode(text)
}

/// Reads the rest of an object whose first key, `first`, is a `$` form.
fn special_form<'de, A: MapAccess<'de>>(first: String, map: &mut A) -> Result<Value, A::Error> {
    let value = match first.as_str() {
        "$bytes" => {
            let text: String = map.next_value()?;
            let bytes = decode_base64(&text)
                .map_err(|e| de::Error::custom(format!("\"$bytes\" is not valid base64: {e}")))?;
            Value::Bytes(bytes)
        }
        "$f64" => {
            let text: String = map.next_value()?;
            Value::Float(match text.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                other => {
                    return Err(de::Error::custom(format!(
                        "\"$f64\" must be \"nan\", \"inf\" or \"-inf\", not {other:?}"
                    )))
                }
            })
        }
        "$ts" | "$tz" => {
            let (mut micros, mut offset) = (None, None);
            let mut key = first;
            loop {
                match key.as_str() {
                    "$ts" if micros.is_none() => micros = Some(map.next_value::<i64>()?),
                    "$tz" if offset.is_none() => offset = Some(map.next_value::<Option<i32>>()?),
                    _ => {
                        return Err(de::Error::custom(format!(
                            "unexpected key {key:?} in a {{\"$ts\", \"$tz\"}} timestamp object"
                        )))
                    }
                }
                match map.next_key::<String>()? {
                    Some(k) => key = k,
                    None => break,
                }
            }
            let micros = micros.ok_or_else(|| de::Error::custom("\"$tz\" without \"$ts\""))?;
            return Ok(Value::Timestamp(Timestamp { micros, offset_secs: offset.flatten() }));
        }
        rest => return Err(unknown_dollar_key(&first, &rest[1..])),
    };
    if let Some(extra) = map.next_key::<String>()? {
        return Err(de::Error::custom(format!("unexpected key {extra:?} after {first:?}")));
    }
    Ok(value)
}

/// Writes `value` as compact JSON text.
pub fn to_json_string(value: &Value) -> String {
    let mut out = String::new();
    write_json_string(value, &mut out);
    out
}

/// Writes `value` as compact JSON bytes (UTF-8).
pub fn to_json_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(value, &mut out);
    out
}

/// Appends the JSON text of `value` to `out`, reusing its allocation.
pub fn write_json_string(value: &Value, out: &mut String) {
    let mut bytes = std::mem::take(out).into_bytes();
    write_json(value, &mut bytes);
    // Everything written is UTF-8, so this never takes the lossy path.
    *out = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

/// Appends the JSON text of `value` to `out`. Iterative: an explicit stack
/// replaces recursion, so no value is too deep to write.
pub fn write_json(value: &Value, out: &mut Vec<u8>) {
    enum Frame<'a> {
        List(std::slice::Iter<'a, Value>, bool),
        Map(std::slice::Iter<'a, (String, Value)>, bool),
    }
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut next = Some(value);
    loop {
        if let Some(v) = next.take() {
            match v {
                Value::List(items) => {
                    out.push(b'[');
                    stack.push(Frame::List(items.iter(), true));
                }
                Value::Map(entries) => {
                    out.push(b'{');
                    stack.push(Frame::Map(entries.iter(), true));
                }
                scalar => write_scalar(scalar, out),
            }
        }
        match stack.last_mut() {
            None => return,
            Some(Frame::List(items, first)) => match items.next() {
                Some(item) => {
                    if !std::mem::take(first) {
                        out.push(b',');
                    }
                    next = Some(item);
                }
                None => {
                    out.push(b']');
                    stack.pop();
                }
            },
            Some(Frame::Map(entries, first)) => match entries.next() {
                Some((key, item)) => {
                    if !std::mem::take(first) {
                        out.push(b',');
                    }
                    write_key(key, out);
                    out.push(b':');
                    next = Some(item);
                }
                None => {
                    out.push(b'}');
                    stack.pop();
                }
            },
        }
    }
}

fn write_scalar(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_i64(*i, out),
        Value::UInt(u) => write_u64(*u, out),
        Value::Float(f) => write_f64(*f, out),
        Value::Str(s) => write_str(s, out),
        Value::Bytes(b) => write_bytes(b, out),
        Value::Timestamp(Timestamp { micros, offset_secs }) => write_timestamp(*micros, *offset_secs, out),
        // write_json's loop handles containers and never passes them here.
        Value::List(_) | Value::Map(_) => {}
    }
}

// The scalar writers below are shared by `write_json` and the direct path
// from the stored encoding, so the two produce the same bytes by
// construction. Writes into a Vec cannot fail, and neither can
// serde_json's formatting of strings and finite floats, so results are
// ignored.

// serde_json writes integers in plain decimal, as `{}` formatting does,
// without going through the formatting machinery.
fn write_i64(i: i64, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, &i);
}

fn write_u64(u: u64, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, &u);
}

fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f.is_nan() {
        out.extend_from_slice(br#"{"$f64":"nan"}"#);
    } else if f.is_infinite() && f > 0.0 {
        out.extend_from_slice(br#"{"$f64":"inf"}"#);
    } else if f.is_infinite() {
        out.extend_from_slice(br#"{"$f64":"-inf"}"#);
    } else {
        // serde_json prints the shortest text that parses back to the
        // same bits, always with a '.' or exponent, so it reads as Float.
        let _ = serde_json::to_writer(&mut *out, &f);
    }
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"$bytes":""#);
    let start = out.len();
    out.resize(start + b.len().div_ceil(3) * 4, 0);
    // The slot is exactly the padded base64 length, so this cannot fail.
    let written = STANDARD.encode_slice(b, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.extend_from_slice(br#""}"#);
}

fn write_timestamp(micros: i64, offset_secs: Option<i32>, out: &mut Vec<u8>) {
    let _ = match offset_secs {
        None => write!(out, r#"{{"$ts":{micros}}}"#),
        Some(o) => write!(out, r#"{{"$ts":{micros},"$tz":{o}}}"#),
    };
}

/// A document's map key: one more `$` in front of a key that starts with `$`.
fn write_key(key: &str, out: &mut Vec<u8>) {
    if key.starts_with('$') {
        out.push(b'"');
        out.push(b'$');
        write_escaped_body(key, out);
        out.push(b'"');
    } else {
        write_str(key, out);
    }
}

/// Appends the JSON text of a stored document (header and encoded value,
/// as [`Collection::get_stored`](crate::Collection::get_stored) returns
/// it) straight from its encoding, without building a [`Value`]: the same
/// bytes as [`write_json`] of the decoded document, and the same checks
/// as decoding (a damaged encoding is [`Error::Corruption`]; a RAW
/// document is [`Error::InvalidArgument`]). Returns the document's schema
/// version. On error `out` is left as it was.
pub fn write_stored_json(stored: &[u8], names: &impl NameLookup, out: &mut Vec<u8>) -> Result<u32> {
    let (header, payload) = decode_header(stored)?;
    if header.is_raw() {
        return Err(Error::invalid("document is raw bytes, not a structured document"));
    }
    write_encoded_json(payload, names, out)?;
    Ok(header.schema_version)
}

/// Whether the JSON text `text` may hold the value `null`: true when the
/// word `null` stands where a value can, after one of `:[,` (or the
/// start) and before one of `,]}` (or the end), blanks between them
/// skipped. A `null` value always matches; the word inside a string can
/// match too. Bindings whose JSON encoder writes something else as `null`
/// (Python's orjson writes NaN and infinities so) use it to skip their
/// check of a batch without one, with a search far faster than theirs.
pub fn may_hold_null(text: &[u8]) -> bool {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    memchr::memmem::find_iter(text, b"null").any(|at| {
        let before = text[..at].iter().rev().find(|b| !blank(b));
        let after = text[at + 4..].iter().find(|b| !blank(b));
        matches!(before, None | Some(b':' | b'[' | b',')) && matches!(after, None | Some(b',' | b']' | b'}'))
    })
}

/// [`write_stored_json`] for one encoded value without a header (which
/// must fill `encoded` exactly).
pub fn write_encoded_json(encoded: &[u8], names: &impl NameLookup, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let mut r = Reader::new(encoded);
    // Room for the field ids of a typical document's maps: a Vec that
    // grows by `realloc` would take the allocator's arena lock for every
    // document, which two threads writing one batch (`capi`'s batch
    // reads) then wait on.
    let mut ids = Vec::with_capacity(32);
    let result = encoded_to_json(&mut r, names, out, 0, &mut ids).and_then(|()| {
        if r.is_empty() {
            Ok(())
        } else {
            Err(corrupt(format!("document has {} stray bytes after its value", r.remaining())))
        }
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends the JSON of a RAW document's payload: what [`write_json`]
/// writes for the [`Value::Bytes`] that decoding it gives.
pub(crate) fn write_raw_json(payload: &[u8], out: &mut Vec<u8>) {
    write_bytes(payload, out);
}

/// Writes the value at `r` (which `depth` containers enclose). `ids`
/// holds the field ids of the maps being written, to find a repeated key
/// (which decoding rejects) without a set per map.
fn encoded_to_json(
    r: &mut Reader<'_>,
    names: &impl NameLookup,
    out: &mut Vec<u8>,
    depth: usize,
    ids: &mut Vec<u32>,
) -> Result<()> {
    let at = r.offset();
    match r.byte("value tag")? {
        tag::NULL => out.extend_from_slice(b"null"),
        tag::FALSE => out.extend_from_slice(b"false"),
        tag::TRUE => out.extend_from_slice(b"true"),
        tag::INT => write_i64(r.i64_varint("int")?, out),
        tag::UINT => write_u64(r.u64_varint("uint")?, out),
        tag::FLOAT => write_f64(r.f64_le("float")?, out),
        tag::STR => {
            let bytes = r.len_prefixed("string")?;
            if plain_ascii(bytes) {
                // ASCII is UTF-8, and nothing in it needs an escape: the
                // bytes as they are (one pass instead of a UTF-8
                // validation then an escape scan).
                out.reserve(bytes.len() + 2);
                out.push(b'"');
                out.extend_from_slice(bytes);
                out.push(b'"');
            } else {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| corrupt(format!("document string at offset {at} is not UTF-8")))?;
                write_str(text, out);
            }
        }
        tag::BYTES => write_bytes(r.len_prefixed("bytes")?, out),
        tag::TIMESTAMP => write_timestamp(r.i64_varint("timestamp")?, None, out),
        tag::TIMESTAMP_TZ => {
            let micros = r.i64_varint("timestamp")?;
            write_timestamp(micros, Some(r.i32_varint("timestamp offset")?), out);
        }
        tag::LIST => {
            let (mut body, count) = enter(r, depth, "list", 1)?;
            out.push(b'[');
            for i in 0..count {
                if i > 0 {
                    out.push(b',');
                }
                encoded_to_json(&mut body, names, out, depth + 1, ids)?;
            }
            leave(&body, "list")?;
            out.push(b']');
        }
        tag::MAP => {
            let (mut body, count) = enter(r, depth, "map", 2)?;
            out.push(b'{');
            let mark = ids.len();
            for i in 0..count {
                let id = body.u32_varint("field name id")?;
                let name = names.name_of(id).ok_or_else(|| {
                    corrupt(format!("document names field id {id}, which the dictionary lacks"))
                })?;
                if i > 0 {
                    out.push(b',');
                }
                write_key(name, out);
                out.push(b':');
                ids.push(id);
                encoded_to_json(&mut body, names, out, depth + 1, ids)?;
            }
            leave(&body, "map")?;
            // Ids name distinct names, so a repeated key is a repeated id.
            if let Some(id) = repeated(&mut ids[mark..]) {
                let k = names.name_of(id).unwrap_or_default();
                return Err(corrupt(format!("document map at offset {at} has the key {k:?} twice")));
            }
            ids.truncate(mark);
            out.push(b'}');
        }
        other => return Err(corrupt(format!("document has unknown value tag {other:#04x} at offset {at}"))),
    }
    Ok(())
}

/// An id that occurs twice in `ids` (which it may reorder).
fn repeated(ids: &mut [u32]) -> Option<u32> {
    if ids.len() <= 16 {
        return ids.iter().enumerate().find(|&(i, id)| ids[..i].contains(id)).map(|(_, &id)| id);
    }
    ids.sort_unstable();
    ids.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    // serde_json escapes exactly '"', '\\' and the bytes below 0x20; a
    // string with none of them (most keys and values) is copied as is,
    // which is what serde_json would write, without its per-byte table.
    if !needs_escape(b) {
        out.reserve(b.len() + 2);
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Whether `b` holds a byte that JSON strings escape ('"', '\\', below
/// 0x20). Eight bytes at a time with the usual bit tricks, which are exact
/// as yes/no answers: a byte below 0x20, or one equal to '"' or '\\'
/// (found as a zero byte after an XOR), sets its high bit in the test.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes);
        if x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0
            || has_zero(x ^ (ONES * u64::from(b'"')))
            || has_zero(x ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    words.remainder().iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// Whether every byte of `b` is ASCII that JSON strings take as is (0x20
/// to 0x7F except '"' and '\\'): [`needs_escape`]'s test plus the high
/// bit of each byte, eight bytes at a time.
fn plain_ascii(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes);
        let bad = (x & HIGH)
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
            | has_zero(x ^ (ONES * u64::from(b'"')))
            | has_zero(x ^ (ONES * u64::from(b'\\')));
        if bad != 0 {
            return false;
        }
    }
    words.remainder().iter().all(|&c| (0x20..0x80).contains(&c) && c != b'"' && c != b'\\')
}

/// Writes `s` escaped but without the surrounding quotes.
fn write_escaped_body(s: &str, out: &mut Vec<u8>) {
    let start = out.len();
    write_str(s, out);
    // serde_json wrote `"..."`: drop the two quotes.
    out.remove(start);
    out.pop();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::testgen::{arb_value, drop_deep, nested_lists};
    use proptest::prelude::*;

    #[test]
    fn integer_literals_beyond_64_bits_are_refused_not_rounded() {
        for (text, literal) in [
            (r#"{"a": 18446744073709551616}"#, "18446744073709551616"),
            (r#"{"a": [1, -9223372036854775809]}"#, "-9223372036854775809"),
            (r#"{"a": 1e20, "b": 123456789012345678901234567890}"#, "123456789012345678901234567890"),
            (r#"{"s": "x\"1", "b": 99999999999999999999}"#, "99999999999999999999"),
        ] {
            let e = from_json_str(text).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
            assert!(
                e.to_string().contains(&format!("the integer {literal} is beyond the 64-bit range")),
                "{e}"
            );
            assert!(from_json_str_enveloped(text).is_err());
        }
        // A float's digits padded with zeros (as JavaScript writes 2e19 and
        // 1e20) is that float.
        let v = from_json_str(
            r#"{"js": 20000000000000000000, "n": -18446744073709552000, "t": 100000000000000000000}"#,
        )
        .unwrap();
        assert_eq!(v.get("js"), Some(&Value::Float(2e19)));
        assert_eq!(v.get("n"), Some(&Value::Float(-18446744073709552000.0)));
        assert_eq!(v.get("t"), Some(&Value::Float(1e20)));
        // The edges of the ranges, floats that large, and digits in strings.
        let v = from_json_str(
            r#"{"u": 18446744073709551615, "i": -9223372036854775808, "f": 1e20, "g": 18446744073709551616.0,
                "h": -9.3e18, "s": "123456789012345678901234567890", "t": "a\\", "n": -0}"#,
        )
        .unwrap();
        let Value::Map(m) = v else { panic!() };
        assert_eq!(m[0].1, Value::UInt(u64::MAX));
        assert_eq!(m[1].1, Value::Int(i64::MIN));
        assert_eq!(m[2].1, Value::Float(1e20));
        assert_eq!(m[3].1, Value::Float(18446744073709551616.0));
        assert_eq!(m[4].1, Value::Float(-9.3e18));
        assert_eq!(m[5].1, Value::Str("123456789012345678901234567890".into()));
        assert_eq!(
            integer_beyond_64_bits(br#"["\"", 1e99, 10000000000000000000000, 10000000000000000000001]"#),
            Some("10000000000000000000001")
        );
        assert_eq!(integer_beyond_64_bits(br#"["10000000000000000000000", 1.0e5]"#), None);
        // Malformed text reports its own error, not a literal the scan
        // finds in it.
        for text in [
            r#"{"a": 1e20, "b": -Infinity}"#,
            r#"{"a": 1e20} 123456789012345678901234567890"#,
            r#"{"a": 1e20, "b": -012345678901234567890123}"#,
        ] {
            let e = from_json_str(text).unwrap_err().to_string();
            assert!(e.contains("at line 1 column") && !e.contains("64-bit range"), "{e}");
        }
        // A huge literal is named by its start and length.
        let e =
            from_json_str(&format!(r#"{{"a": 1e20, "b": 1{}1}}"#, "0".repeat(298))).unwrap_err().to_string();
        assert!(
            e.len() < 400
                && e.contains(&format!("the integer 1{}... (300 digits) is beyond", "0".repeat(39))),
            "{e}"
        );
    }

    fn rt(v: &Value) -> Value {
        from_json_str(&to_json_string(v)).unwrap()
    }

    /// JSON cannot tell a small UInt from an Int; everything else survives.
    fn normalize(v: &Value) -> Value {
        match v {
            Value::UInt(u) => Value::from(*u),
            Value::List(items) => Value::List(items.iter().map(normalize).collect()),
            Value::Map(entries) => {
                Value::Map(entries.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
            }
            other => other.clone(),
        }
    }

    fn invalid(text: &str) -> String {
        match from_json_str(text) {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("{text}: expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn doc_json_scalars_and_special_forms() {
        let v = from_json_str(
            r#"{"a":1,"b":-2,"c":18446744073709551615,"d":1.0,"e":-0,"f":1e400000000,"g":"x"}"#,
        );
        assert!(v.is_err(), "out-of-range float literal is an error");
        let v =
            from_json_str(r#"{"a":1,"b":-2,"c":18446744073709551615,"d":1.0,"e":-0,"f":1e23,"g":"x\u00e9"}"#)
                .unwrap();
        assert_eq!(v.get("a"), Some(&Value::Int(1)));
        assert_eq!(v.get("b"), Some(&Value::Int(-2)));
        assert_eq!(v.get("c"), Some(&Value::UInt(u64::MAX)));
        assert_eq!(v.get("d"), Some(&Value::Float(1.0)));
        assert_eq!(v.get("e").unwrap().as_f64().unwrap().to_bits(), (-0.0f64).to_bits());
        assert_eq!(v.get("f"), Some(&Value::Float(1e23)));
        assert_eq!(v.get("g"), Some(&Value::from("xé")));

        let special = Value::from_iter([
            ("bytes", Value::Bytes(vec![0, 1, 2, 255])),
            ("nan", Value::Float(f64::NAN)),
            ("inf", Value::Float(f64::INFINITY)),
            ("ninf", Value::Float(f64::NEG_INFINITY)),
            ("negzero", Value::Float(-0.0)),
            ("one", Value::Float(1.0)),
            ("ts", Value::Timestamp(Timestamp { micros: -5, offset_secs: None })),
            ("tstz", Value::Timestamp(Timestamp { micros: 1_700_000_000_000_000, offset_secs: Some(-3600) })),
            ("$price", Value::Int(3)),
            ("$$x", Value::Null),
            ("$", Value::Null),
        ]);
        let text = to_json_string(&special);
        assert_eq!(
            text,
            r#"{"bytes":{"$bytes":"AAEC/w=="},"nan":{"$f64":"nan"},"inf":{"$f64":"inf"},"ninf":{"$f64":"-inf"},"negzero":-0.0,"one":1.0,"ts":{"$ts":-5},"tstz":{"$ts":1700000000000000,"$tz":-3600},"$$price":3,"$$$x":null,"$$":null}"#
        );
        assert!(rt(&special).identical(&special));
        // "$tz" may come first, null means naive, padding is optional.
        assert_eq!(
            from_json_str(r#"{"$tz":60,"$ts":1}"#).unwrap(),
            Value::Timestamp(Timestamp { micros: 1, offset_secs: Some(60) })
        );
        assert_eq!(
            from_json_str(r#"{"$ts":1,"$tz":null}"#).unwrap(),
            Value::Timestamp(Timestamp { micros: 1, offset_secs: None })
        );
        assert_eq!(from_json_str(r#"{"$bytes":"AAE"}"#).unwrap(), Value::Bytes(vec![0, 1]));
        assert_eq!(
            from_json_slice(br#"{"k":[null,true]}"#).unwrap().get_path(&["k", "1"]),
            Some(&Value::Bool(true))
        );
        assert!(from_json_slice(b"\"\xff\"").is_err(), "invalid UTF-8");
        let mut s = String::from("prefix:");
        write_json_string(&Value::Int(7), &mut s);
        assert_eq!(s, "prefix:7");
    }

    #[test]
    fn doc_json_rejects_bad_dollar_forms_and_duplicates() {
        assert!(invalid(r#"{"$foo":1}"#).contains("$$foo"));
        assert!(invalid(r#"{"a":1,"$bytes":"AA=="}"#).contains("starts with '$'"));
        invalid(r#"{"$bytes":"AA==","a":1}"#);
        invalid(r#"{"$bytes":"!!"}"#);
        invalid(r#"{"$bytes":5}"#);
        invalid(r#"{"$f64":"NaN"}"#);
        invalid(r#"{"$ts":1.5}"#);
        invalid(r#"{"$ts":1,"$ts":2}"#);
        invalid(r#"{"$tz":1}"#);
        invalid(r#"{"$ts":1,"x":2}"#);
        invalid(r#"{"$tz":99999999999,"$ts":1}"#);
        assert!(invalid(r#"{"a":1,"a":2}"#).contains("duplicate key"));
        invalid("[1,2");
        invalid("1 2");
        invalid("");
    }

    #[test]
    fn doc_json_nesting_limit() {
        let ok = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(from_json_str(&ok).unwrap().nesting_depth(), MAX_NESTING);
        let obj = format!("{}1{}", r#"{"a":"#.repeat(MAX_NESTING), "}".repeat(MAX_NESTING));
        assert_eq!(from_json_str(&obj).unwrap().nesting_depth(), MAX_NESTING);
        let bad = format!("{}{}", "[".repeat(MAX_NESTING + 1), "]".repeat(MAX_NESTING + 1));
        assert!(invalid(&bad).contains("document nested deeper than 128 levels"));
        assert!(invalid(&"[".repeat(100_000)).contains("nested deeper"));
        assert!(invalid(&r#"{"a":"#.repeat(100_000)).contains("nested deeper"));
        assert!(invalid(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))).contains("nested deeper"));

        // Writing is iterative: a value far deeper than the limit writes fine.
        let deep = nested_lists(100_000);
        let text = to_json_string(&deep);
        assert_eq!(text.len(), 100_000 * 2 + 4);
        drop_deep(deep);
        assert!(from_json_str(&text).is_err());
    }

    use crate::doc::codec::{
        decode_header, decode_value, encode_document_versioned, encode_raw_document, MemNameDict,
    };

    /// The old path: decode the stored document into a value, then write it.
    /// `Ok(None)` for a RAW document (which the direct path refuses).
    fn via_value(stored: &[u8], names: &MemNameDict) -> Result<Option<(u32, Vec<u8>)>> {
        let (header, payload) = decode_header(stored)?;
        if header.is_raw() {
            return Ok(None);
        }
        Ok(Some((header.schema_version, to_json_vec(&decode_value(payload, names)?))))
    }

    /// The direct path agrees with the old one on `stored`: the same bytes
    /// (after a prefix that must survive), or both fail, the direct one
    /// with Corruption for a damaged encoding and leaving `out` untouched.
    fn check_direct(stored: &[u8], names: &MemNameDict) -> std::result::Result<(), TestCaseError> {
        let mut out = b"prefix,".to_vec();
        let direct = write_stored_json(stored, names, &mut out);
        match (via_value(stored, names), direct) {
            (Ok(Some((version, want))), Ok(got_version)) => {
                prop_assert_eq!(got_version, version);
                prop_assert_eq!(&out[..7], b"prefix,");
                prop_assert_eq!(String::from_utf8_lossy(&out[7..]), String::from_utf8_lossy(&want));
            }
            (Ok(None), Err(Error::InvalidArgument(_))) => prop_assert_eq!(&out, b"prefix,"),
            (Err(old), Err(new)) => {
                prop_assert!(old.is_corruption(), "{}", old);
                prop_assert!(new.is_corruption(), "{}", new);
                prop_assert!(new.to_string().contains("document"), "{}", new);
                prop_assert_eq!(&out, b"prefix,");
            }
            (old, new) => prop_assert!(false, "old path {:?}, direct path {:?}", old, new),
        }
        Ok(())
    }

    fn stored(v: &Value, dict: &mut MemNameDict) -> Vec<u8> {
        let mut out = Vec::new();
        encode_document_versioned(v, 7, dict, &mut out).unwrap();
        out
    }

    #[test]
    fn doc_json_direct_edge_values() {
        let leaves = [
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Int(0),
            Value::Int(-1),
            Value::UInt(i64::MAX as u64 + 1),
            Value::UInt(u64::MAX),
            Value::Float(0.0),
            Value::Float(-0.0),
            Value::Float(0.1),
            Value::Float(1.0),
            Value::Float(1e16),
            Value::Float(1e-7),
            Value::Float(123456789.125),
            Value::Float(f64::MIN_POSITIVE),
            Value::Float(f64::MIN_POSITIVE / 1024.0),
            Value::Float(f64::from_bits(1)),
            Value::Float(f64::MAX),
            Value::Float(f64::MIN),
            Value::Float(f64::NAN),
            Value::Float(-f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::from(""),
            Value::from("quote\" back\\slash \u{0} \u{1f} \u{7f} é \u{2028} 😀"),
            Value::Bytes(Vec::new()),
            Value::Bytes(vec![0]),
            Value::Bytes(vec![0, 1]),
            Value::Bytes(vec![255, 254, 253]),
            Value::Timestamp(Timestamp { micros: i64::MIN, offset_secs: None }),
            Value::Timestamp(Timestamp { micros: i64::MAX, offset_secs: Some(i32::MIN) }),
            Value::Timestamp(Timestamp { micros: 0, offset_secs: Some(i32::MAX) }),
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::List(Vec::new()),
            Value::Map(Vec::new()),
        ];
        let mut dict = MemNameDict::new();
        let map = Value::Map(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (["k", "$k", "$$k", "\"k\n", "$"][i % 5].to_string() + &i.to_string(), v.clone())
                })
                .collect(),
        );
        for v in leaves.iter().chain([&map, &Value::List(leaves.to_vec())]) {
            let bytes = stored(v, &mut dict);
            let mut out = Vec::new();
            assert_eq!(write_stored_json(&bytes, &dict, &mut out).unwrap(), 7);
            assert_eq!(String::from_utf8(out).unwrap(), to_json_string(v), "{v:?}");
            check_direct(&bytes, &dict).unwrap();
        }
        // A map with more than 16 keys takes the sorting duplicate check.
        let wide = Value::Map((0..40).map(|i| (format!("f{i}"), Value::Int(i))).collect());
        check_direct(&stored(&wide, &mut dict), &dict).unwrap();
        // Deep but within the limit.
        let deep = nested_lists(MAX_NESTING);
        check_direct(&stored(&deep, &mut dict), &dict).unwrap();
    }

    #[test]
    fn doc_json_needs_escape_at_every_position() {
        for len in 0..24 {
            for pos in 0..len {
                for special in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut b = vec![b'a'; len];
                    b[pos] = special;
                    assert!(needs_escape(&b), "{b:?}");
                }
                for plain in (0x20u8..=0xFF).filter(|c| *c != b'"' && *c != b'\\') {
                    let mut b = vec![0x7Fu8; len];
                    b[pos] = plain;
                    assert!(!needs_escape(&b), "{b:?}");
                }
            }
        }
    }

    #[test]
    fn doc_json_plain_ascii_at_every_position() {
        for len in 0..24 {
            assert!(plain_ascii(&vec![b'a'; len]));
            for pos in 0..len {
                for c in 0u8..=0xFF {
                    let mut b = vec![0x7Fu8; len];
                    b[pos] = c;
                    let want = (0x20..0x80).contains(&c) && c != b'"' && c != b'\\';
                    assert_eq!(plain_ascii(&b), want, "{b:?}");
                    let mut b = vec![b' '; len];
                    b[pos] = c;
                    assert_eq!(plain_ascii(&b), want, "{b:?}");
                }
            }
        }
    }

    #[test]
    fn doc_json_direct_rejects_damage() {
        let dict = MemNameDict::from_names(["a", "b"]).unwrap();
        let cases: &[&[u8]] = &[
            &[],
            &[1, 0],
            &[2, 0, 0, 0x00],
            &[1, 0, 0],
            &[1, 0, 0, 0x0C],
            &[1, 0, 0, 0x00, 0x00],
            &[1, 0, 0, 0x06, 1, 0xFF],
            &[1, 0, 0, 0x06, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            &[1, 0, 0, 0x0A, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            &[1, 0, 0, 0x0B, 3, 1, 5, 0x00],
            &[1, 0, 0, 0x0B, 5, 2, 0, 0x00, 0, 0x00],
            &[1, 0, 0, 0x0A, 3, 1, 0x00, 0x00],
            &[1, 0, 0, 0x0A, 2, 1, 0x03, 0x02],
            &[1, 0, 0, 0x05, 0, 0],
            &[1, 0, 0, 0x09, 2],
        ];
        for case in cases {
            let mut out = b"x".to_vec();
            let e = write_stored_json(case, &dict, &mut out).unwrap_err();
            assert!(e.is_corruption(), "{case:?}: {e}");
            assert_eq!(out, b"x", "{case:?}");
            check_direct(case, &dict).unwrap();
        }
        // Forged nesting beyond the limit, reached without recursion limits.
        let mut forged = vec![1, 0, 0];
        let mut inner = vec![0x00u8];
        for _ in 0..MAX_NESTING + 1 {
            let mut body = postcard::to_stdvec(&1u64).unwrap();
            body.extend_from_slice(&inner);
            let mut next = vec![0x0A];
            next.extend(postcard::to_stdvec(&(body.len() as u64)).unwrap());
            next.extend(body);
            inner = next;
        }
        forged.extend(inner);
        let e = write_stored_json(&forged, &dict, &mut Vec::new()).unwrap_err();
        assert!(e.is_corruption() && e.to_string().contains("nested deeper"), "{e}");
        // A RAW document is not a structured one.
        let mut raw = Vec::new();
        encode_raw_document(b"payload", 3, &mut raw).unwrap();
        assert!(matches!(write_stored_json(&raw, &dict, &mut Vec::new()), Err(Error::InvalidArgument(_))));
        let mut out = Vec::new();
        write_raw_json(b"payload", &mut out);
        assert_eq!(out, to_json_vec(&Value::Bytes(b"payload".to_vec())));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn doc_json_round_trip(v in arb_value()) {
            let text = to_json_string(&v);
            let back = from_json_str(&text).unwrap();
            prop_assert!(back.identical(&normalize(&v)), "{text}\n{back:?}");
            prop_assert_eq!(to_json_vec(&v), text.into_bytes());
        }

        #[test]
        fn doc_json_float_bits_round_trip(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            let back = rt(&Value::Float(f));
            prop_assert!(back.identical(&Value::Float(f)));
        }

        #[test]
        fn doc_json_direct_matches_decode_then_write(v in arb_value()) {
            let mut dict = MemNameDict::new();
            let bytes = stored(&v, &mut dict);
            let mut out = Vec::new();
            prop_assert_eq!(write_stored_json(&bytes, &dict, &mut out).unwrap(), 7);
            prop_assert_eq!(&out, &to_json_vec(&v));
            check_direct(&bytes, &dict)?;
        }

        #[test]
        fn doc_json_direct_damaged_never_panics(
            v in arb_value(),
            cut in any::<proptest::sample::Index>(),
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..8), 1..4),
            garbage in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut dict = MemNameDict::new();
            let bytes = stored(&v, &mut dict);
            check_direct(&bytes[..cut.index(bytes.len())], &dict)?;
            let mut flipped = bytes.clone();
            for (at, bit) in &flips {
                flipped[at.index(bytes.len())] ^= 1 << bit;
            }
            check_direct(&flipped, &dict)?;
            let mut framed = vec![1, 0, 0];
            framed.extend_from_slice(&garbage);
            check_direct(&framed, &dict)?;
            check_direct(&garbage, &dict)?;
        }

        /// The shared scalar writers against independent references:
        /// decimal formatting and serde_json's own string escaping.
        #[test]
        fn doc_json_scalar_writers_match_references(
            i in any::<i64>(),
            u in any::<u64>(),
            text in "(\\PC|[\\x00-\\x1f\"\\\\\\x7f])*",
        ) {
            let mut out = Vec::new();
            write_i64(i, &mut out);
            out.push(b' ');
            write_u64(u, &mut out);
            prop_assert_eq!(String::from_utf8(out).unwrap(), format!("{i} {u}"));
            let mut out = Vec::new();
            write_str(&text, &mut out);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn doc_json_garbage_never_panics(text in "[\\[\\]{}\":,0-9a-z$.eE+-]{0,40}") {
            let _ = from_json_str(&text);
        }

        /// A value holding a null is never written without `may_hold_null`
        /// seeing it, compact or pretty.
        #[test]
        fn doc_json_a_null_value_is_always_seen(v in arb_value()) {
            if holds_null(&v) {
                prop_assert!(may_hold_null(&to_json_vec(&v)));
                prop_assert!(may_hold_null(serde_json::to_string_pretty(&to_json_value(&v)).unwrap().as_bytes()));
            }
        }
    }

    fn holds_null(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::List(items) => items.iter().any(holds_null),
            Value::Map(entries) => entries.iter().any(|(_, v)| holds_null(v)),
            _ => false,
        }
    }

    fn to_json_value(v: &Value) -> serde_json::Value {
        serde_json::from_slice(&to_json_vec(v)).unwrap()
    }

    #[test]
    fn may_hold_null_finds_values_not_words() {
        for yes in
            [&b"null"[..], b"[null]", b"{\"a\":null}", b"[1, null ]", b"{\"a\" :\n null\n}", b"[1,null,2]"]
        {
            assert!(may_hold_null(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b""[..],
            b"[1,2]",
            b"{\"nullable\":true}",
            b"[\"annul\"]",
            b"{\"a\":\"a null b\"}",
            b"[\"null\"]",
        ] {
            assert!(!may_hold_null(no), "{}", String::from_utf8_lossy(no));
        }
        // The word inside a string between the same marks matches too.
        assert!(may_hold_null(b"[\"x,null,y\"]"));
        // Every occurrence is looked at, to the end of a long text.
        let mut long = b"[".to_vec();
        for _ in 0..10_000 {
            long.extend_from_slice(b"{\"a\":\"x null y\",\"nullable\":true},");
        }
        let without = [&long[..], b"1]"].concat();
        let with = [&long[..], b"{\"b\":[1,null]}]"].concat();
        assert!(!may_hold_null(&without));
        assert!(may_hold_null(&with));
    }
}

//! JSON text straight to the stored encoding, without a [`Value`] in
//! between: the write path of documents that arrive as JSON (the C ABI and
//! the Python package). Building a `Value` tree allocates for every string,
//! list and map and then walks the tree again to encode it; here the JSON
//! tokens are encoded as they are read.
//!
//! The output is byte for byte what [`encode_document_versioned`] makes of
//! [`from_json_slice`]'s value. Only plain JSON takes this path: text with
//! a `"$` (a special form such as `{"$bytes": ...}`, an escaped `$` key,
//! or merely a string starting with `$`) and any text the fast path refuses
//! (malformed, not an object, a duplicate key, too deep) go through the
//! general path, which then also words the error.
//!
//! [`encode_document_versioned`]: super::codec::encode_document_versioned
//! [`from_json_slice`]: super::json::from_json_slice

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::codec::{
    close_container, encode_header, open_container, put, put_bytes, tag, DocHeader, MemNameDict, NameDict,
};
use super::json::{note_float, reading_numbers};
use super::value::{SeenIds, MAX_NESTING};

/// Encodes the JSON object `text` as a stored document (header with
/// `schema_version`, then the value) appended to `out`. False, with `out`
/// as it was, when the text needs the general path (see the module
/// documentation); `dict` may have assigned ids to names it saw.
pub(crate) fn document_from_json(
    text: &[u8],
    schema_version: u32,
    dict: &mut impl NameDict,
    out: &mut Vec<u8>,
) -> bool {
    encode_text(text, out, |de, out| DocSeed { out, dict, schema_version }.deserialize(de)).is_some()
}

/// Encodes the JSON array of objects `text` as stored documents, one after
/// another in `out`; returns where each ends. `None`, with `out` as it
/// was, when the text needs the general path.
pub(crate) fn documents_from_json(
    text: &[u8],
    schema_version: u32,
    dict: &mut impl NameDict,
    out: &mut Vec<u8>,
) -> Option<Vec<usize>> {
    let mut keep_all = |_: &mut Vec<u8>, _: &mut Vec<usize>, _: &_| true;
    encode_text(text, out, |de, out| {
        ArraySeed { out, dict, schema_version, hand_over: &mut keep_all }.deserialize(de)
    })
}

/// Documents that [`documents_from_json_in_runs`] encoded, handed over
/// together.
#[derive(Debug)]
pub(crate) struct EncodedRun {
    /// The stored documents, one after another.
    pub bytes: Vec<u8>,
    /// Where each document ends in `bytes`.
    pub ends: Vec<usize>,
    /// The names the dictionary assigned while this run was encoded, in
    /// the order of their ids (which continue the dictionary as it was
    /// when the previous run was handed over).
    pub new_names: Vec<String>,
}

/// [`documents_from_json`] that hands the documents over as it goes, in
/// runs of about `run_bytes` encoded bytes, so that another thread can
/// store one run while this one encodes the next. `deliver` returns false
/// to stop early. True when the whole text was encoded and delivered;
/// false when it needs the general path or `deliver` stopped, with the
/// runs delivered before that the caller's to undo.
pub(crate) fn documents_from_json_in_runs(
    text: &[u8],
    schema_version: u32,
    dict: &mut MemNameDict,
    run_bytes: usize,
    mut deliver: impl FnMut(EncodedRun) -> bool,
) -> bool {
    let mut named = dict.len();
    let mut take_run = |out: &mut Vec<u8>, ends: &mut Vec<usize>, dict: &MemNameDict| EncodedRun {
        bytes: std::mem::replace(out, Vec::with_capacity(run_bytes + run_bytes / 4)),
        ends: std::mem::take(ends),
        new_names: dict
            .names_since(std::mem::replace(&mut named, dict.len()) as u32)
            .map(|(_, n)| n.to_owned())
            .collect(),
    };
    let mut deliver_full = |out: &mut Vec<u8>, ends: &mut Vec<usize>, dict: &MemNameDict| {
        out.len() < run_bytes || deliver(take_run(out, ends, dict))
    };
    let mut out = Vec::with_capacity(run_bytes + run_bytes / 4);
    let Some(last_ends) = encode_text(text, &mut out, |de, out| {
        ArraySeed { out, dict: &mut *dict, schema_version, hand_over: &mut deliver_full }.deserialize(de)
    }) else {
        return false;
    };
    // (The text's end was checked before this last run goes.)
    last_ends.is_empty() || deliver(take_run(&mut out, &mut { last_ends }, dict))
}

/// Runs `encode` over the whole of `text`, appending to `out`; `None`,
/// with `out` as it was, when the text needs the general path.
fn encode_text<'t, T>(
    text: &'t [u8],
    out: &mut Vec<u8>,
    encode: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'t>>,
        &mut Vec<u8>,
    ) -> Result<T, serde_json::Error>,
) -> Option<T> {
    if has_dollar_string(text) {
        return None;
    }
    // One UTF-8 check of the whole text (fast on ASCII) instead of one per
    // string, which is what reading from a byte slice costs.
    let text = std::str::from_utf8(text).ok()?;
    let start = out.len();
    let mut de = serde_json::Deserializer::from_str(text);
    // ValueSeed checks the nesting limit itself.
    de.disable_recursion_limit();
    // (an integer literal beyond 64 bits, read as a float, is left to the
    // general path, which refuses it)
    let encoded =
        reading_numbers(text.as_bytes(), || encode(&mut de, out).and_then(|v| de.end().map(|()| v)))
            .ok()
            .and_then(Result::ok);
    if encoded.is_none() {
        out.truncate(start);
    }
    encoded
}

/// Whether a JSON string in `text` starts with `$`: the `"$` byte pair.
/// (It may also match inside a longer string, which only costs the fast
/// path, never correctness.)
fn has_dollar_string(text: &[u8]) -> bool {
    memchr::memmem::find(text, b"\"$").is_some()
}

/// Why the fast path gave up; the general path says what is wrong.
#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused by the direct encoder")
    }
}

impl std::error::Error for Refused {}

impl de::Error for Refused {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Refused
    }
}

fn refuse<E: de::Error>() -> E {
    E::custom(Refused)
}

/// A top-level array: each element is a document with its own header.
/// After each document `hand_over` sees the documents encoded so far (and
/// where each ends) and may take them away; false stops the encoding.
struct ArraySeed<'o, D, H> {
    out: &'o mut Vec<u8>,
    dict: &'o mut D,
    schema_version: u32,
    hand_over: &'o mut H,
}

impl<'de, D: NameDict, H: FnMut(&mut Vec<u8>, &mut Vec<usize>, &D) -> bool> DeserializeSeed<'de>
    for ArraySeed<'_, D, H>
{
    type Value = Vec<usize>;
    fn deserialize<De: de::Deserializer<'de>>(self, d: De) -> Result<Vec<usize>, De::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, D: NameDict, H: FnMut(&mut Vec<u8>, &mut Vec<usize>, &D) -> bool> Visitor<'de>
    for ArraySeed<'_, D, H>
{
    type Value = Vec<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<usize>, A::Error> {
        let mut ends = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let schema_version = self.schema_version;
        while seq
            .next_element_seed(DocSeed { out: &mut *self.out, dict: &mut *self.dict, schema_version })?
            .is_some()
        {
            ends.push(self.out.len());
            if !(self.hand_over)(self.out, &mut ends, self.dict) {
                return Err(refuse());
            }
        }
        Ok(ends)
    }
}

/// One document: its header, then the object.
struct DocSeed<'o, D> {
    out: &'o mut Vec<u8>,
    dict: &'o mut D,
    schema_version: u32,
}

impl<'de, D: NameDict> DeserializeSeed<'de> for DocSeed<'_, D> {
    type Value = ();
    fn deserialize<De: de::Deserializer<'de>>(self, d: De) -> Result<(), De::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, D: NameDict> Visitor<'de> for DocSeed<'_, D> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        encode_header(&DocHeader::value(self.schema_version), self.out).map_err(|_| refuse::<A::Error>())?;
        ValueSeed { out: self.out, dict: self.dict, depth: 0 }.visit_map(map)
    }
}

/// Any JSON value at `depth` containers deep.
struct ValueSeed<'o, D> {
    out: &'o mut Vec<u8>,
    dict: &'o mut D,
    depth: usize,
}

impl<'o, D: NameDict> ValueSeed<'o, D> {
    /// The seed of a value inside this container, or a refusal past the
    /// nesting limit (checked here because serde_json's own is disabled).
    fn child<E: de::Error>(&mut self) -> Result<ValueSeed<'_, D>, E> {
        if self.depth >= MAX_NESTING {
            return Err(refuse());
        }
        Ok(ValueSeed { out: &mut *self.out, dict: &mut *self.dict, depth: self.depth + 1 })
    }

    fn int<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out.push(tag::INT);
        put(self.out, &v).map_err(|_| refuse())
    }

    /// Starts a list or map here (refused past the nesting limit): its
    /// tag, then one byte each for the body length and the item count,
    /// which [`ValueSeed::close`] fills in. Returns where the body starts.
    fn open<E: de::Error>(&mut self, container: u8) -> Result<usize, E> {
        if self.depth >= MAX_NESTING {
            return Err(refuse());
        }
        Ok(open_container(self.out, container))
    }

    /// Ends the container [`ValueSeed::open`] started at `body`.
    fn close<E: de::Error>(self, body: usize, count: u64) -> Result<(), E> {
        close_container(self.out, body, count).map_err(|_| refuse())
    }
}

impl<'de, D: NameDict> DeserializeSeed<'de> for ValueSeed<'_, D> {
    type Value = ();
    fn deserialize<De: de::Deserializer<'de>>(self, d: De) -> Result<(), De::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, D: NameDict> Visitor<'de> for ValueSeed<'_, D> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.push(tag::NULL);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out.push(if v { tag::TRUE } else { tag::FALSE });
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.int(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        // As `Value::from(u64)`: an `Int` when it fits.
        match i64::try_from(v) {
            Ok(i) => self.int(i),
            Err(_) => {
                self.out.push(tag::UINT);
                put(self.out, &v).map_err(|_| refuse())
            }
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        note_float(v);
        self.out.push(tag::FLOAT);
        put(self.out, &v).map_err(|_| refuse())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.out.push(tag::STR);
        put_bytes(self.out, v.as_bytes()).map_err(|_| refuse())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let body = self.open(tag::LIST)?;
        let mut count = 0u64;
        while seq.next_element_seed(self.child()?)?.is_some() {
            count += 1;
        }
        self.close(body, count)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let body = self.open(tag::MAP)?;
        let mut ids = SeenIds::default();
        while let Some(id) = map.next_key_seed(KeySeed { dict: &mut *self.dict })? {
            // A repeated key is an error the general path words.
            if !ids.insert(id) {
                return Err(refuse());
            }
            put(self.out, &id).map_err(|_| refuse::<A::Error>())?;
            map.next_value_seed(self.child()?)?;
        }
        self.close(body, ids.len() as u64)
    }
}

/// A map key: its field-name id (assigned on first sight).
struct KeySeed<'d, D> {
    dict: &'d mut D,
}

impl<'de, D: NameDict> DeserializeSeed<'de> for KeySeed<'_, D> {
    type Value = u32;
    fn deserialize<De: de::Deserializer<'de>>(self, d: De) -> Result<u32, De::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, D: NameDict> Visitor<'de> for KeySeed<'_, D> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<u32, E> {
        // `$` keys are escapes or special forms: the general path's.
        if key.starts_with('$') {
            return Err(refuse());
        }
        self.dict.id_of(key).map_err(|_| refuse())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::codec::{encode_document_versioned, MemNameDict};
    use crate::doc::json::{from_json_slice, to_json_vec};
    use crate::doc::testgen::{arb_value, nested_lists};
    use crate::doc::value::Value;
    use proptest::prelude::*;

    /// The general path's bytes for `text`, or None where it refuses it.
    fn general(text: &[u8], version: u32, dict: &mut MemNameDict) -> Option<Vec<u8>> {
        let v = from_json_slice(text).ok()?;
        if !matches!(v, Value::Map(_)) {
            return None;
        }
        let mut out = Vec::new();
        encode_document_versioned(&v, version, dict, &mut out).ok()?;
        Some(out)
    }

    fn direct(text: &[u8], version: u32, dict: &mut MemNameDict) -> Option<Vec<u8>> {
        let mut out = vec![0xEE];
        let ok = document_from_json(text, version, dict, &mut out);
        assert_eq!(out[0], 0xEE, "bytes before the document are kept");
        if !ok {
            assert_eq!(out.len(), 1, "a refusal leaves the buffer as it was");
            return None;
        }
        Some(out[1..].to_vec())
    }

    /// Same bytes as the general path, with the dictionary in the same
    /// state (names get ids in first-seen order on both paths).
    fn same_as_general(text: &[u8], version: u32) {
        let (mut d1, mut d2) = (MemNameDict::new(), MemNameDict::new());
        let want = general(text, version, &mut d1);
        let got = direct(text, version, &mut d2);
        if let Some(got) = got {
            assert_eq!(Some(got), want, "{}", String::from_utf8_lossy(text));
            assert_eq!(d1.len(), d2.len());
        }
    }

    #[test]
    fn plain_documents_take_the_direct_path_and_match() {
        for text in [
            r#"{}"#,
            r#"{"a":1,"b":-2,"c":9223372036854775807,"d":9223372036854775808,"e":18446744073709551615}"#,
            r#"{"f":1.0,"g":-0,"h":-0.0,"i":1e300,"j":1.2345678901234567e22,"k":0.1,"m":1e-300}"#,
            r#"{"s":"x","t":"","u":"\u00e9\ud83d\ude00","v":"a\"b\\c\n","n":null,"b":true,"c":false}"#,
            r#"{"l":[1,[2,[3,{"m":{"n":[]}}]]],"o":{"p":{"q":{}}}}"#,
            "{ \"sp\" : [ 1 , 2 ] ,\n\t\"x\" : { } }",
        ] {
            let mut dict = MemNameDict::new();
            assert!(direct(text.as_bytes(), 3, &mut dict).is_some(), "{text}");
            same_as_general(text.as_bytes(), 3);
        }
    }

    #[test]
    fn an_integer_literal_beyond_64_bits_takes_the_general_path() {
        // The general path refuses it; a float that large written with an
        // exponent (or as a float's digits padded with zeros) is taken.
        let mut dict = MemNameDict::new();
        for text in [r#"{"j":12345678901234567890123}"#, r#"{"j":-9223372036854775809}"#] {
            assert!(direct(text.as_bytes(), 0, &mut dict).is_none(), "{text}");
            let e = from_json_slice(text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains("is beyond the 64-bit range"), "{e}");
        }
        let text = br#"{"j":1e22,"k":-1e19,"l":20000000000000000000}"#;
        assert!(direct(text, 0, &mut dict).is_some());
        same_as_general(text, 0);
    }

    #[test]
    fn long_containers_move_their_counts_and_lengths() {
        for n in [127usize, 128, 300, 20_000] {
            let list = format!("{{\"l\":[{}]}}", vec!["1"; n].join(","));
            same_as_general(list.as_bytes(), 0);
            let map = format!(
                "{{{}}}",
                (0..n).map(|i| format!("\"k{i}\":\"{}\"", "v".repeat(i % 7))).collect::<Vec<_>>().join(",")
            );
            same_as_general(map.as_bytes(), 200);
            assert!(direct(map.as_bytes(), 200, &mut MemNameDict::new()).is_some());
        }
    }

    #[test]
    fn what_the_general_path_must_handle_is_refused() {
        for text in [
            r#"{"$bytes":"AA=="}"#,
            r#"{"a":{"$ts":1}}"#,
            r#"{"$$k":1}"#,
            r#"{"a":"$5"}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"[{"a":1}]"#,
            r#""s""#,
            r#"{"a":tru}"#,
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\u{0}\"}",
        ] {
            assert!(direct(text.as_bytes(), 0, &mut MemNameDict::new()).is_none(), "{text}");
        }
        let at_limit = to_json_vec(&Value::from_iter([("k", nested_lists(MAX_NESTING - 1))]));
        same_as_general(&at_limit, 0);
        assert!(direct(&at_limit, 0, &mut MemNameDict::new()).is_some());
        let too_deep = to_json_vec(&Value::from_iter([("k", nested_lists(MAX_NESTING))]));
        assert!(general(&too_deep, 0, &mut MemNameDict::new()).is_none());
        assert!(direct(&too_deep, 0, &mut MemNameDict::new()).is_none());
        let very_deep = format!("{{\"k\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(direct(very_deep.as_bytes(), 0, &mut MemNameDict::new()).is_none());
    }

    #[test]
    fn arrays_of_documents_split_where_each_ends() {
        let text = br#"[{"a":1},{"b":[1,2]},{}]"#;
        let mut dict = MemNameDict::new();
        let mut out = vec![7u8];
        let ends = documents_from_json(text, 9, &mut dict, &mut out).unwrap();
        assert_eq!(ends.len(), 3);
        let mut d2 = MemNameDict::new();
        let mut at = 1;
        for (doc, end) in [r#"{"a":1}"#, r#"{"b":[1,2]}"#, "{}"].iter().zip(&ends) {
            assert_eq!(&out[at..*end], &general(doc.as_bytes(), 9, &mut d2).unwrap()[..]);
            at = *end;
        }
        assert_eq!(at, out.len());
        assert_eq!(documents_from_json(b"[]", 0, &mut dict, &mut Vec::new()), Some(vec![]));
        for bad in
            [&br#"[{"a":1},2]"#[..], br#"{"a":1}"#, br#"[{"a":1}"#, br#"[{"$ts":1}]"#, br#"[{"a":1,"a":1}]"#]
        {
            let mut out = vec![1, 2];
            assert_eq!(documents_from_json(bad, 0, &mut dict, &mut out), None);
            assert_eq!(out, vec![1, 2]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any document's JSON text: the direct path either refuses it or
        /// produces exactly the general path's bytes.
        #[test]
        fn direct_encoding_equals_the_general_path(v in arb_value(), version in 0u32..300) {
            let doc = match v {
                Value::Map(_) => v,
                other => Value::from_iter([("root", other)]),
            };
            let text = to_json_vec(&doc);
            same_as_general(&text, version);
            if !text.windows(2).any(|w| w == b"\"$") {
                prop_assert!(direct(&text, version, &mut MemNameDict::new()).is_some());
            }
        }
    }
}

//! Reading a serde type straight from a stored document's encoding,
//! without building a [`Value`] tree first.
//!
//! [`from_encoded`] gives the same results as decoding the payload with
//! [`decode_value`](super::codec::decode_value) and passing the value to
//! [`from_value`](super::serde_value::from_value): the same shapes are
//! accepted, numbers convert under the same rules, and the same errors come
//! back. Strings and field names are handed to the visitor borrowed from
//! the stored bytes and the name dictionary, so a struct's field
//! identifiers cost no allocation and a `String` field costs exactly one.
//! The rare shapes (timestamps, enums) are decoded into a [`Value`] at that
//! spot and read through the value bridge, which defines their meaning.
//!
//! The input is untrusted like everywhere else in the codec: lengths,
//! counts, UTF-8, nesting depth, unknown name ids and repeated keys are
//! checked and reported as [`Error::Corruption`].

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};

use super::codec::{corrupt, decode_at, enter, leave, tag, NameLookup, Reader};
use super::serde_value::{
    exact_float, nearest_f32, unexpected, KeyDeserializer, SerdeError, ValueDeserializer, F32_RANGE,
    TIMESTAMP_STRUCT, TWO_POW_127,
};
use super::value::{SeenIds, Value};
use crate::error::{Error, Result};

/// Reads a `T` from one encoded value (a stored document's payload, after
/// its header), which must fill `payload` exactly.
pub fn from_encoded<T: DeserializeOwned>(payload: &[u8], names: &impl NameLookup) -> Result<T> {
    let mut r = Reader::new(payload);
    let value = T::deserialize(Encoded { r: &mut r, names, depth: 0 }).map_err(Error::from)?;
    if !r.is_empty() {
        return Err(corrupt(format!("document has {} stray bytes after its value", r.remaining())));
    }
    Ok(value)
}

/// The error of this deserializer: the codec's own (corruption) or serde's
/// message (a shape mismatch, InvalidArgument like the value bridge's).
#[derive(Debug)]
pub(crate) enum EncodedError {
    Engine(Error),
    Serde(String),
}

impl fmt::Display for EncodedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodedError::Engine(e) => e.fmt(f),
            EncodedError::Serde(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for EncodedError {}

impl de::Error for EncodedError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodedError::Serde(msg.to_string())
    }
}

impl From<Error> for EncodedError {
    fn from(e: Error) -> Self {
        EncodedError::Engine(e)
    }
}

impl From<SerdeError> for EncodedError {
    fn from(e: SerdeError) -> Self {
        EncodedError::Serde(e.0)
    }
}

impl From<EncodedError> for Error {
    fn from(e: EncodedError) -> Error {
        match e {
            EncodedError::Engine(e) => e,
            EncodedError::Serde(m) => Error::InvalidArgument(m),
        }
    }
}

type EResult<T> = std::result::Result<T, EncodedError>;

/// A deserializer positioned at one encoded value; reading consumes it.
struct Encoded<'de, 'r, N> {
    r: &'r mut Reader<'de>,
    names: &'r N,
    /// Containers around this value.
    depth: usize,
}

/// A number as the value bridge sees it: its integer value when it has one.
enum Number {
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl Number {
    fn integer(&self) -> Option<i128> {
        match *self {
            Number::Int(i) => Some(i128::from(i)),
            Number::UInt(u) => Some(i128::from(u)),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < TWO_POW_127 => Some(f as i128),
            Number::Float(_) => None,
        }
    }

    fn value(&self) -> Value {
        match *self {
            Number::Int(i) => Value::Int(i),
            Number::UInt(u) => Value::UInt(u),
            Number::Float(f) => Value::Float(f),
        }
    }
}

impl<'de, N: NameLookup> Encoded<'de, '_, N> {
    /// Reads a number if one is here; otherwise leaves the position as it was.
    fn number(&mut self) -> EResult<Option<Number>> {
        let n = match self.r.peek("value tag")? {
            tag::INT => Number::Int(self.skip_tag().i64_varint("int")?),
            tag::UINT => Number::UInt(self.skip_tag().u64_varint("uint")?),
            tag::FLOAT => Number::Float(self.skip_tag().f64_le("float")?),
            _ => return Ok(None),
        };
        Ok(Some(n))
    }

    fn skip_tag(&mut self) -> &mut Reader<'de> {
        self.r.reset(self.r.mark() + 1);
        self.r
    }

    /// Decodes the value here into a [`Value`] (for the rare shapes that
    /// the value bridge defines).
    fn decode(&mut self) -> EResult<Value> {
        Ok(decode_at(self.r, self.names, self.depth)?)
    }

    fn string(&mut self) -> EResult<&'de str> {
        let at = self.r.offset();
        let bytes = self.r.len_prefixed("string")?;
        Ok(std::str::from_utf8(bytes)
            .map_err(|_| corrupt(format!("document string at offset {at} is not UTF-8")))?)
    }
}

macro_rules! deserialize_integer {
    ($($method:ident => $t:ty, $visit:ident;)*) => {$(
        fn $method<V: Visitor<'de>>(mut self, visitor: V) -> EResult<V::Value> {
            let mark = self.r.mark();
            match self.number()?.and_then(|n| n.integer()).and_then(|i| <$t>::try_from(i).ok()) {
                Some(x) => visitor.$visit(x),
                None => {
                    self.r.reset(mark);
                    self.deserialize_any(visitor)
                }
            }
        }
    )*};
}

impl<'de, N: NameLookup> de::Deserializer<'de> for Encoded<'de, '_, N> {
    type Error = EncodedError;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> EResult<V::Value> {
        let mark = self.r.mark();
        let at = self.r.offset();
        match self.r.byte("value tag")? {
            tag::NULL => visitor.visit_unit(),
            tag::FALSE => visitor.visit_bool(false),
            tag::TRUE => visitor.visit_bool(true),
            tag::INT => visitor.visit_i64(self.r.i64_varint("int")?),
            tag::UINT => visitor.visit_u64(self.r.u64_varint("uint")?),
            tag::FLOAT => visitor.visit_f64(self.r.f64_le("float")?),
            tag::STR => {
                let s = self.string()?;
                visitor.visit_borrowed_str(s)
            }
            tag::BYTES => visitor.visit_borrowed_bytes(self.r.len_prefixed("bytes")?),
            tag::TIMESTAMP | tag::TIMESTAMP_TZ => {
                self.r.reset(mark);
                let v = self.decode()?;
                Ok(ValueDeserializer(v).deserialize_any(visitor)?)
            }
            tag::LIST => {
                let (body, count) = enter(self.r, self.depth, "list", 1)?;
                let mut seq = Seq { body, left: count, names: self.names, depth: self.depth + 1 };
                let value = visitor.visit_seq(&mut seq)?;
                if seq.left != 0 {
                    return Err(de::Error::invalid_length(count, &"fewer elements in the list"));
                }
                leave(&seq.body, "list")?;
                Ok(value)
            }
            tag::MAP => {
                let (body, count) = enter(self.r, self.depth, "map", 2)?;
                let mut map = Map {
                    body,
                    left: count,
                    names: self.names,
                    depth: self.depth + 1,
                    seen: SeenIds::default(),
                };
                let value = visitor.visit_map(&mut map)?;
                map.finish()?;
                Ok(value)
            }
            other => {
                Err(corrupt(format!("document has unknown value tag {other:#04x} at offset {at}")).into())
            }
        }
    }

    deserialize_integer! {
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_i128 => i128, visit_i128;
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
        deserialize_u128 => u128, visit_u128;
    }

    fn deserialize_f64<V: Visitor<'de>>(mut self, visitor: V) -> EResult<V::Value> {
        let mark = self.r.mark();
        match self.number()? {
            Some(Number::Float(f)) => visitor.visit_f64(f),
            Some(n) => match n.integer().and_then(exact_float) {
                Some(f) => visitor.visit_f64(f),
                None => {
                    Err(de::Error::invalid_value(unexpected(&n.value()), &"a number that f64 holds exactly"))
                }
            },
            None => {
                self.r.reset(mark);
                self.deserialize_any(visitor)
            }
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(mut self, visitor: V) -> EResult<V::Value> {
        let mark = self.r.mark();
        let Some(n) = self.number()? else {
            self.r.reset(mark);
            return self.deserialize_any(visitor);
        };
        let nearest = match n {
            Number::Float(f) => nearest_f32(f),
            _ => n.integer().map(|i| i as f32),
        };
        match nearest {
            Some(f) => visitor.visit_f32(f),
            None => Err(de::Error::invalid_value(unexpected(&n.value()), &F32_RANGE)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(mut self, visitor: V) -> EResult<V::Value> {
        let mark = self.r.mark();
        if self.r.peek("value tag")? == tag::STR {
            self.skip_tag();
            let s = self.string()?;
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                return visitor.visit_char(c);
            }
            self.r.reset(mark);
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> EResult<V::Value> {
        if self.r.peek("value tag")? == tag::NULL {
            self.r.byte("value tag")?;
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> EResult<V::Value> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> EResult<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> EResult<V::Value> {
        if self.r.peek("value tag")? == tag::BYTES {
            // A plain Vec<u8> (or [u8; N]) reads stored Bytes.
            self.r.byte("value tag")?;
            let bytes = self.r.len_prefixed("bytes")?;
            let mut seq = de::value::SeqDeserializer::<_, EncodedError>::new(bytes.iter().copied());
            let value = visitor.visit_seq(&mut seq)?;
            seq.end()?;
            return Ok(value);
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> EResult<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> EResult<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> EResult<V::Value> {
        if name == TIMESTAMP_STRUCT && matches!(self.r.peek("value tag")?, tag::TIMESTAMP | tag::TIMESTAMP_TZ)
        {
            let v = self.decode()?;
            return Ok(ValueDeserializer(v).deserialize_struct(name, fields, visitor)?);
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> EResult<V::Value> {
        let v = self.decode()?;
        Ok(ValueDeserializer(v).deserialize_enum(name, variants, visitor)?)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> EResult<V::Value> {
        self.r.skip_value()?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool str string bytes byte_buf unit map identifier
    }
}

/// The items of a list.
struct Seq<'de, 'r, N> {
    body: Reader<'de>,
    left: usize,
    names: &'r N,
    depth: usize,
}

impl<'de, N: NameLookup> de::SeqAccess<'de> for Seq<'de, '_, N> {
    type Error = EncodedError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> EResult<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(Encoded { r: &mut self.body, names: self.names, depth: self.depth }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The entries of a map.
struct Map<'de, 'r, N> {
    body: Reader<'de>,
    left: usize,
    names: &'r N,
    depth: usize,
    seen: SeenIds,
}

impl<'de, 'r, N: NameLookup> Map<'de, 'r, N> {
    /// Reads the next key's id and resolves it.
    fn key(&mut self) -> EResult<&'r str> {
        let id: u32 = self.body.u32_varint("field name id")?;
        let name = self
            .names
            .name_of(id)
            .ok_or_else(|| corrupt(format!("document names field id {id}, which the dictionary lacks")))?;
        if !self.seen.insert(id) {
            return Err(corrupt(format!("document map has the key {name:?} twice")).into());
        }
        Ok(name)
    }

    /// Checks the entries the visitor left unread and the body's end.
    fn finish(&mut self) -> EResult<()> {
        while self.left > 0 {
            self.left -= 1;
            self.key()?;
            self.body.skip_value()?;
        }
        Ok(leave(&self.body, "map")?)
    }
}

impl<'de, N: NameLookup> de::MapAccess<'de> for Map<'de, '_, N> {
    type Error = EncodedError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> EResult<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let name = self.key()?;
        seed.deserialize(KeyDeserializer::new(name)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> EResult<V::Value> {
        seed.deserialize(Encoded { r: &mut self.body, names: self.names, depth: self.depth })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::codec::{decode_header, decode_value, encode_document, MemNameDict};
    use crate::doc::serde_value::{from_value, to_value};
    use crate::doc::testgen::arb_value;
    use crate::doc::value::Timestamp;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, String),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Everything {
        id: u64,
        neg: i32,
        ratio: f32,
        big: u128,
        name: String,
        letter: char,
        maybe: Option<Box<Everything>>,
        tags: Vec<String>,
        raw: Vec<u8>,
        #[serde(with = "serde_bytes_like")]
        blob: Vec<u8>,
        by_num: BTreeMap<u16, bool>,
        shapes: Vec<Shape>,
        when: Timestamp,
        any: Value,
        unit: (),
        pair: (u8, i64),
    }

    /// `serialize_bytes` without a dependency on serde_bytes.
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
            }
            d.deserialize_bytes(V)
        }
    }

    fn sample(depth: u32) -> Everything {
        Everything {
            id: u64::MAX - depth as u64,
            neg: -7,
            ratio: 0.5,
            big: 12,
            name: "näme".into(),
            letter: 'ß',
            maybe: (depth > 0).then(|| Box::new(sample(depth - 1))),
            tags: vec!["a".into(), "".into()],
            raw: vec![1, 2, 255],
            blob: vec![0, 9],
            by_num: [(3, true), (40000, false)].into_iter().collect(),
            shapes: vec![
                Shape::Dot,
                Shape::Circle(1.5),
                Shape::Rect { w: 2, h: 3 },
                Shape::Pair(-1, "x".into()),
            ],
            when: Timestamp { micros: -5, offset_secs: Some(3600) },
            any: Value::from_iter([("k", Value::List(vec![Value::Null, Value::Float(2.0)]))]),
            unit: (),
            pair: (7, -9),
        }
    }

    fn stored(v: &Value, dict: &mut MemNameDict) -> Vec<u8> {
        let mut out = Vec::new();
        encode_document(v, dict, &mut out).unwrap();
        out
    }

    fn payload(bytes: &[u8]) -> &[u8] {
        decode_header(bytes).unwrap().1
    }

    #[test]
    fn serde_encoded_reads_every_shape() {
        let want = sample(2);
        let mut dict = MemNameDict::new();
        let bytes = stored(&to_value(&want).unwrap(), &mut dict);
        let got: Everything = from_encoded(payload(&bytes), &dict).unwrap();
        assert_eq!(got, want);
    }

    /// Both paths agree on every value: same result or both an error.
    fn agree<T: DeserializeOwned + fmt::Debug>(v: &Value) {
        let mut dict = MemNameDict::new();
        let bytes = stored(v, &mut dict);
        let direct = from_encoded::<T>(payload(&bytes), &dict);
        let via = from_value::<T>(decode_value(payload(&bytes), &dict).unwrap());
        match (direct, via) {
            // Debug text, so that NaN equals NaN.
            (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{v:?}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{v:?}"),
            (a, b) => panic!("{v:?}: direct {a:?}, via value {b:?}"),
        }
    }

    #[test]
    fn serde_encoded_converts_numbers_like_the_value_bridge() {
        let vals = [
            Value::Int(3),
            Value::Int(-1),
            Value::UInt(u64::MAX),
            Value::Float(3.0),
            Value::Float(3.5),
            Value::Float(f64::NAN),
            Value::Int((1 << 53) + 1),
            Value::Float(0.1),
            Value::Float(1e39),
            Value::Float(f64::INFINITY),
            Value::from("7"),
            Value::Null,
        ];
        for v in vals {
            let doc = Value::from_iter([("x", v)]);
            agree::<BTreeMap<String, u8>>(&doc);
            agree::<BTreeMap<String, i64>>(&doc);
            agree::<BTreeMap<String, u64>>(&doc);
            agree::<BTreeMap<String, f64>>(&doc);
            agree::<BTreeMap<String, f32>>(&doc);
            agree::<BTreeMap<String, Option<i32>>>(&doc);
            agree::<BTreeMap<String, char>>(&doc);
            agree::<BTreeMap<String, String>>(&doc);
            agree::<BTreeMap<String, Value>>(&doc);
        }
    }

    #[test]
    fn an_f32_field_reads_the_nearest_f32_of_a_stored_number() {
        let mut dict = MemNameDict::new();
        let bytes =
            stored(&Value::from_iter([("x", Value::Float(0.1)), ("y", Value::Int(16_777_217))]), &mut dict);
        let got: BTreeMap<String, f32> = from_encoded(payload(&bytes), &dict).unwrap();
        assert_eq!((got["x"], got["y"]), (0.1f32, 16_777_216.0));
    }

    #[test]
    fn serde_encoded_rejects_damage_as_corruption() {
        let dict = MemNameDict::from_names(["a"]).unwrap();
        let cases: &[&[u8]] = &[
            // map naming id 5 that the dictionary lacks
            &[tag::MAP, 3, 1, 5, tag::NULL],
            // repeated key
            &[tag::MAP, 5, 2, 0, tag::NULL, 0, tag::NULL],
            // invalid UTF-8
            &[tag::MAP, 4, 1, 0, tag::STR, 1, 0xFF],
            // stray bytes after the value
            &[tag::MAP, 1, 0, tag::NULL],
            // item running past its body
            &[tag::MAP, 3, 1, 0, tag::INT],
        ];
        for case in cases {
            let e = from_encoded::<BTreeMap<String, Value>>(case, &dict).unwrap_err();
            assert!(e.is_corruption(), "{case:?}: {e}");
        }
        // A shape mismatch is the value bridge's InvalidArgument.
        let e = from_encoded::<BTreeMap<String, u8>>(&[tag::MAP, 3, 1, 0, tag::TRUE], &dict).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn serde_encoded_matches_from_value(v in arb_value()) {
            let mut dict = MemNameDict::new();
            let mut bytes = Vec::new();
            encode_document(&v, &mut dict, &mut bytes).unwrap();
            let direct: Value = from_encoded(payload(&bytes), &dict).unwrap();
            let via: Value = from_value(decode_value(payload(&bytes), &dict).unwrap()).unwrap();
            prop_assert!(direct.identical(&via), "{:?}\n{:?}", direct, via);
        }

        #[test]
        fn serde_encoded_damaged_never_panics(
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..8), 1..4),
        ) {
            let mut dict = MemNameDict::new();
            let mut bytes = stored(&to_value(&sample(1)).unwrap(), &mut dict);
            for (at, bit) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            if let Ok((_, p)) = decode_header(&bytes) {
                let _ = from_encoded::<Everything>(p, &dict);
                let _ = from_encoded::<Value>(p, &dict);
            }
        }
    }
}

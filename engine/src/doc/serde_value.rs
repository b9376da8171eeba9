//! The serde bridge: any `Serialize` type becomes a [`Value`]
//! ([`to_value`]) and any `Deserialize` type can be read back from one
//! ([`from_value`]), so Rust users store their own structs as documents.
//!
//! Mapping (serde's data model to [`Value`]):
//! structs and maps become `Map` in field/iteration order; sequences,
//! tuples and tuple structs become `List`; `None`, `()` and unit structs
//! become `Null`; `serialize_bytes` (e.g. `serde_bytes`) becomes `Bytes`
//! while a plain `Vec<u8>` is a `List` of ints; unsigned integers up to
//! `i64::MAX` become `Int`, larger ones `UInt`; `i128`/`u128` must fit one
//! of the two; chars become one-character `Str`. Enums use serde's
//! externally tagged shape: a unit variant is the `Str` of its name, any
//! other variant a one-entry `Map` from its name to its content. Map keys
//! may be strings, chars, integers (written in decimal) or unit variants.
//!
//! Reading accepts the same shapes, and converts numbers between `Int`,
//! `UInt` and `Float` only when no information is lost (`Float(3.0)` reads
//! as `3u8`, `Float(3.5)` does not; `Int(2^53 + 1)` does not read as `f64`),
//! except into an `f32`, which takes any number within its range rounded to
//! the nearest `f32` (as serde_json reads one: `0.1` written from Python or
//! as an `f64` reads as `0.1f32`).
//!
//! [`Timestamp`] has Serialize/Deserialize impls that this bridge turns
//! into and out of [`Value::Timestamp`] (other formats see a struct with
//! `micros` and `offset_secs`), and [`Value`] itself implements both, so a
//! struct may hold `Value` or `Timestamp` fields. That recognition relies
//! on private marker names (a struct named `$__obj_private_Timestamp`, map
//! keys `$__obj_private_ts_micros` / `$__obj_private_ts_offset`) that no
//! real document uses.
//!
//! Errors are [`Error::InvalidArgument`] carrying serde's message. Both
//! directions enforce [`MAX_NESTING`].

use super::value::{duplicate_key, Timestamp, Value, MAX_NESTING, NESTING_MESSAGE};
use crate::error::{Error, Result};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};
use serde::ser::{self, Serialize, SerializeMap as _, SerializeStruct as _};
use std::fmt;
use std::marker::PhantomData;

/// Struct name that marks a [`Timestamp`] to this bridge.
pub(super) const TIMESTAMP_STRUCT: &str = "$__obj_private_Timestamp";
/// Map keys under which `deserialize_any` presents a timestamp, so that
/// `Value`'s own Deserialize can tell it from an ordinary map.
const TS_MICROS_KEY: &str = "$__obj_private_ts_micros";
const TS_OFFSET_KEY: &str = "$__obj_private_ts_offset";
const TS_FIELDS: &[&str] = &["micros", "offset_secs"];

/// Converts any serializable value into a [`Value`].
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    Ok(value.serialize(ValueSerializer { depth: 0 })?)
}

/// Builds a `T` from a [`Value`], e.g. one read back from a collection.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T> {
    // The deserializer recurses once per level; check first, iteratively.
    value.check_nesting()?;
    Ok(T::deserialize(ValueDeserializer(value))?)
}

/// serde's error type for both directions; becomes InvalidArgument.
#[derive(Debug)]
pub(super) struct SerdeError(pub(super) String);

impl fmt::Display for SerdeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerdeError {}

impl ser::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError(msg.to_string())
    }
}

impl de::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError(msg.to_string())
    }
}

impl From<SerdeError> for Error {
    fn from(e: SerdeError) -> Error {
        Error::InvalidArgument(e.0)
    }
}

type SResult<T> = std::result::Result<T, SerdeError>;

// ---------------------------------------------------------------------------
// Serializer: T -> Value

/// Serializes into a [`Value`]; `depth` counts the enclosing containers.
struct ValueSerializer {
    depth: usize,
}

impl ValueSerializer {
    /// The depth for the contents of `levels` new containers.
    fn enter(&self, levels: usize) -> SResult<usize> {
        if self.depth + levels > MAX_NESTING {
            return Err(SerdeError(NESTING_MESSAGE.to_owned()));
        }
        Ok(self.depth + levels)
    }
}

fn variant_map(variant: &str, content: Value) -> Value {
    Value::Map(vec![(variant.to_owned(), content)])
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = SerdeError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = StructBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> SResult<Value> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> SResult<Value> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> SResult<Value> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> SResult<Value> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> SResult<Value> {
        Ok(Value::from(v))
    }
    fn serialize_i128(self, v: i128) -> SResult<Value> {
        if let Ok(i) = i64::try_from(v) {
            Ok(Value::Int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(Value::UInt(u))
        } else {
            Err(SerdeError(format!("integer {v} does not fit in 64 bits")))
        }
    }
    fn serialize_u8(self, v: u8) -> SResult<Value> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> SResult<Value> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> SResult<Value> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> SResult<Value> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> SResult<Value> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| SerdeError(format!("integer {v} does not fit in 64 bits")))
    }
    fn serialize_f32(self, v: f32) -> SResult<Value> {
        Ok(Value::Float(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> SResult<Value> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> SResult<Value> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> SResult<Value> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> SResult<Value> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> SResult<Value> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> SResult<Value> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> SResult<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> SResult<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> SResult<Value> {
        Ok(Value::Str(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> SResult<Value> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> SResult<Value> {
        let depth = self.enter(1)?;
        Ok(variant_map(variant, value.serialize(ValueSerializer { depth })?))
    }
    fn serialize_seq(self, len: Option<usize>) -> SResult<SeqBuilder> {
        Ok(SeqBuilder::new(self.enter(1)?, len, None))
    }
    fn serialize_tuple(self, len: usize) -> SResult<SeqBuilder> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> SResult<SeqBuilder> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> SResult<SeqBuilder> {
        Ok(SeqBuilder::new(self.enter(2)?, Some(len), Some(variant)))
    }
    fn serialize_map(self, len: Option<usize>) -> SResult<MapBuilder> {
        Ok(MapBuilder::new(self.enter(1)?, len, None))
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> SResult<StructBuilder> {
        if name == TIMESTAMP_STRUCT {
            return Ok(StructBuilder::Timestamp { micros: None, offset: None });
        }
        Ok(StructBuilder::Map(MapBuilder::new(self.enter(1)?, Some(len), None)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> SResult<MapBuilder> {
        Ok(MapBuilder::new(self.enter(2)?, Some(len), Some(variant)))
    }
}

/// Collects a sequence; `variant` wraps it as a tuple variant.
struct SeqBuilder {
    depth: usize,
    items: Vec<Value>,
    variant: Option<&'static str>,
}

impl SeqBuilder {
    fn new(depth: usize, len: Option<usize>, variant: Option<&'static str>) -> SeqBuilder {
        // Size hints come from user code: cap them.
        SeqBuilder { depth, items: Vec::with_capacity(len.unwrap_or(0).min(4096)), variant }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> SResult<()> {
        self.items.push(value.serialize(ValueSerializer { depth: self.depth })?);
        Ok(())
    }

    fn finish(self) -> SResult<Value> {
        let list = Value::List(self.items);
        Ok(match self.variant {
            Some(variant) => variant_map(variant, list),
            None => list,
        })
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> SResult<()> {
        self.push(value)
    }
    fn end(self) -> SResult<Value> {
        self.finish()
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> SResult<()> {
        self.push(value)
    }
    fn end(self) -> SResult<Value> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> SResult<()> {
        self.push(value)
    }
    fn end(self) -> SResult<Value> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> SResult<()> {
        self.push(value)
    }
    fn end(self) -> SResult<Value> {
        self.finish()
    }
}

/// Collects a map or struct; `variant` wraps it as a struct variant.
struct MapBuilder {
    depth: usize,
    entries: Vec<(String, Value)>,
    key: Option<String>,
    variant: Option<&'static str>,
}

impl MapBuilder {
    fn new(depth: usize, len: Option<usize>, variant: Option<&'static str>) -> MapBuilder {
        MapBuilder { depth, entries: Vec::with_capacity(len.unwrap_or(0).min(4096)), key: None, variant }
    }

    fn insert<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> SResult<()> {
        self.entries.push((key, value.serialize(ValueSerializer { depth: self.depth })?));
        Ok(())
    }

    fn finish(self) -> SResult<Value> {
        if let Some(k) = duplicate_key(&self.entries) {
            return Err(SerdeError(format!("map has the key {k:?} twice")));
        }
        let map = Value::Map(self.entries);
        Ok(match self.variant {
            Some(variant) => variant_map(variant, map),
            None => map,
        })
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> SResult<()> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> SResult<()> {
        let key = self.key.take().ok_or_else(|| SerdeError("map value serialized before its key".into()))?;
        self.insert(key, value)
    }
    fn end(self) -> SResult<Value> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> SResult<()> {
        self.insert(key.to_owned(), value)
    }
    fn end(self) -> SResult<Value> {
        self.finish()
    }
}

/// A struct being serialized: an ordinary one, or a [`Timestamp`].
enum StructBuilder {
    Map(MapBuilder),
    Timestamp { micros: Option<i64>, offset: Option<Option<i32>> },
}

impl ser::SerializeStruct for StructBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> SResult<()> {
        match self {
            StructBuilder::Map(m) => m.insert(key.to_owned(), value),
            StructBuilder::Timestamp { micros, offset } => {
                let v = value.serialize(ValueSerializer { depth: MAX_NESTING })?;
                match (key, v) {
                    ("micros", Value::Int(m)) => *micros = Some(m),
                    ("offset_secs", Value::Null) => *offset = Some(None),
                    ("offset_secs", Value::Int(o)) => {
                        *offset = Some(Some(
                            i32::try_from(o).map_err(|_| SerdeError("bad timestamp offset".into()))?,
                        ))
                    }
                    (key, v) => return Err(SerdeError(format!("bad timestamp field {key}: {v:?}"))),
                }
                Ok(())
            }
        }
    }
    fn end(self) -> SResult<Value> {
        match self {
            StructBuilder::Map(m) => m.finish(),
            StructBuilder::Timestamp { micros: Some(micros), offset } => {
                Ok(Value::Timestamp(Timestamp { micros, offset_secs: offset.flatten() }))
            }
            StructBuilder::Timestamp { micros: None, .. } => {
                Err(SerdeError("timestamp without micros".into()))
            }
        }
    }
}

/// Serializes a map key to its string form.
pub(super) struct KeySerializer;

fn key_error() -> SerdeError {
    SerdeError("map keys must be strings, chars, integers or unit enum variants".into())
}

impl ser::Serializer for KeySerializer {
    type Ok = String;
    type Error = SerdeError;
    type SerializeSeq = ser::Impossible<String, SerdeError>;
    type SerializeTuple = ser::Impossible<String, SerdeError>;
    type SerializeTupleStruct = ser::Impossible<String, SerdeError>;
    type SerializeTupleVariant = ser::Impossible<String, SerdeError>;
    type SerializeMap = ser::Impossible<String, SerdeError>;
    type SerializeStruct = ser::Impossible<String, SerdeError>;
    type SerializeStructVariant = ser::Impossible<String, SerdeError>;

    fn serialize_str(self, v: &str) -> SResult<String> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_i128(self, v: i128) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_u128(self, v: u128) -> SResult<String> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> SResult<String> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> SResult<String> {
        value.serialize(self)
    }
    fn serialize_bool(self, _v: bool) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_f32(self, _v: f32) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_f64(self, _v: f64) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_bytes(self, _v: &[u8]) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_none(self) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_unit(self) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> SResult<String> {
        Err(key_error())
    }
    fn serialize_seq(self, _len: Option<usize>) -> SResult<Self::SerializeSeq> {
        Err(key_error())
    }
    fn serialize_tuple(self, _len: usize) -> SResult<Self::SerializeTuple> {
        Err(key_error())
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> SResult<Self::SerializeTupleStruct> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> SResult<Self::SerializeTupleVariant> {
        Err(key_error())
    }
    fn serialize_map(self, _len: Option<usize>) -> SResult<Self::SerializeMap> {
        Err(key_error())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> SResult<Self::SerializeStruct> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> SResult<Self::SerializeStructVariant> {
        Err(key_error())
    }
}

// ---------------------------------------------------------------------------
// Deserializer: Value -> T

/// Deserializes from an owned [`Value`].
pub(super) struct ValueDeserializer(pub(super) Value);

impl ValueDeserializer {
    /// The value as an integer, when it is one or a float with an exact
    /// integer value.
    fn integer(&self) -> Option<i128> {
        match self.0 {
            Value::Int(i) => Some(i128::from(i)),
            Value::UInt(u) => Some(i128::from(u)),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < TWO_POW_127 => Some(f as i128),
            _ => None,
        }
    }
}

/// 2^127, the first float magnitude beyond `i128`, where `as` saturates.
pub(super) const TWO_POW_127: f64 = 1.7014118346046923e38;

/// An integer that converts to `f64` and back unchanged.
pub(super) fn exact_float(i: i128) -> Option<f64> {
    let f = i as f64;
    (f as i128 == i && f.abs() < TWO_POW_127).then_some(f)
}

/// What an `f32` field reads from a float: the nearest `f32` (as
/// serde_json reads a decimal into one: a field declared `f32` takes its
/// precision), `None` for a finite number beyond its range.
pub(super) fn nearest_f32(f: f64) -> Option<f32> {
    let s = f as f32;
    (s.is_finite() || !f.is_finite()).then_some(s)
}

/// What an `f32` field was expected to hold, for the error.
pub(super) const F32_RANGE: &str = "a number within f32's range";

pub(super) fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Int(i) => Unexpected::Signed(*i),
        Value::UInt(u) => Unexpected::Unsigned(*u),
        Value::Float(f) => Unexpected::Float(*f),
        Value::Str(s) => Unexpected::Str(s),
        Value::Bytes(b) => Unexpected::Bytes(b),
        Value::Timestamp(_) => Unexpected::Other("timestamp"),
        Value::List(_) => Unexpected::Seq,
        Value::Map(_) => Unexpected::Map,
    }
}

macro_rules! deserialize_integer {
    ($($method:ident => $t:ty, $visit:ident;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
            match self.integer().and_then(|i| <$t>::try_from(i).ok()) {
                Some(x) => visitor.$visit(x),
                // Out of range or not a number: the visitor's own checks
                // produce serde's usual message.
                None => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::UInt(u) => visitor.visit_u64(u),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::Timestamp(t) => visitor.visit_map(timestamp_map(t, TS_MICROS_KEY, TS_OFFSET_KEY)),
            Value::List(items) => visit_list(items, visitor),
            Value::Map(entries) => visitor.visit_map(MapDeser::new(entries)),
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

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        match &self.0 {
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Int(_) | Value::UInt(_) => match self.integer().and_then(exact_float) {
                Some(f) => visitor.visit_f64(f),
                None => {
                    Err(de::Error::invalid_value(unexpected(&self.0), &"a number that f64 holds exactly"))
                }
            },
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        let nearest = match &self.0 {
            Value::Float(f) => nearest_f32(*f),
            Value::Int(_) | Value::UInt(_) => self.integer().map(|i| i as f32),
            _ => return self.deserialize_any(visitor),
        };
        match nearest {
            Some(f) => visitor.visit_f32(f),
            None => Err(de::Error::invalid_value(unexpected(&self.0), &F32_RANGE)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        if let Value::Str(s) = &self.0 {
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                return visitor.visit_char(c);
            }
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> SResult<V::Value> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> SResult<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        match self.0 {
            // A plain Vec<u8> (or [u8; N]) reads stored Bytes.
            Value::Bytes(b) => {
                let mut seq = de::value::SeqDeserializer::new(b.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            other => ValueDeserializer(other).deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> SResult<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> SResult<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> SResult<V::Value> {
        match self.0 {
            Value::Timestamp(t) if name == TIMESTAMP_STRUCT => {
                visitor.visit_map(timestamp_map(t, TS_FIELDS[0], TS_FIELDS[1]))
            }
            other => ValueDeserializer(other).deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> SResult<V::Value> {
        match self.0 {
            Value::Str(variant) => visitor.visit_enum(EnumDeser { variant, content: None }),
            Value::Map(entries) if entries.len() == 1 => {
                let Some((variant, content)) = entries.into_iter().next() else {
                    return Err(de::Error::custom("empty enum map"));
                };
                visitor.visit_enum(EnumDeser { variant, content: Some(content) })
            }
            other => {
                Err(de::Error::invalid_type(unexpected(&other), &"a variant name or a map with one entry"))
            }
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> SResult<V::Value> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool str string unit map identifier
    }
}

fn visit_list<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> SResult<V::Value> {
    let len = items.len();
    let mut seq = SeqDeser { iter: items.into_iter() };
    let value = visitor.visit_seq(&mut seq)?;
    if seq.iter.len() != 0 {
        return Err(de::Error::invalid_length(len, &"fewer elements in the list"));
    }
    Ok(value)
}

fn timestamp_map(t: Timestamp, micros_key: &str, offset_key: &str) -> MapDeser {
    MapDeser::new(vec![
        (micros_key.to_owned(), Value::Int(t.micros)),
        (offset_key.to_owned(), t.offset_secs.map_or(Value::Null, Value::from)),
    ])
}

struct SeqDeser {
    iter: std::vec::IntoIter<Value>,
}

impl<'de> de::SeqAccess<'de> for SeqDeser {
    type Error = SerdeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> SResult<Option<T::Value>> {
        self.iter.next().map(|v| seed.deserialize(ValueDeserializer(v))).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDeser {
    iter: std::vec::IntoIter<(String, Value)>,
    value: Option<Value>,
}

impl MapDeser {
    fn new(entries: Vec<(String, Value)>) -> MapDeser {
        MapDeser { iter: entries.into_iter(), value: None }
    }
}

impl<'de> de::MapAccess<'de> for MapDeser {
    type Error = SerdeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> SResult<Option<K::Value>> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(KeyDeserializer::new(&k)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> SResult<V::Value> {
        let v = self.value.take().ok_or_else(|| SerdeError("map value requested before its key".into()))?;
        seed.deserialize(ValueDeserializer(v))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// A map key: a string that also reads as a number or bool when the
/// target type asks for one (the inverse of [`KeySerializer`]). Generic
/// over the error type, so that the deserializer over the stored encoding
/// (`serde_encoded`) reads its keys, borrowed from the name dictionary,
/// with the same rules.
pub(crate) struct KeyDeserializer<'k, E> {
    key: &'k str,
    error: PhantomData<E>,
}

impl<'k, E> KeyDeserializer<'k, E> {
    pub(crate) fn new(key: &'k str) -> Self {
        KeyDeserializer { key, error: PhantomData }
    }
}

macro_rules! deserialize_parsed_key {
    ($($method:ident => $t:ty, $visit:ident;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
            match self.key.parse::<$t>() {
                Ok(x) => visitor.$visit(x),
                Err(_) => visitor.visit_str(self.key),
            }
        }
    )*};
}

impl<'de, E: de::Error> de::Deserializer<'de> for KeyDeserializer<'_, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_str(self.key)
    }

    deserialize_parsed_key! {
        deserialize_bool => bool, visit_bool;
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

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_enum(self.key.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        f32 f64 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

struct EnumDeser {
    variant: String,
    content: Option<Value>,
}

impl<'de> de::EnumAccess<'de> for EnumDeser {
    type Error = SerdeError;
    type Variant = VariantDeser;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> SResult<(V::Value, VariantDeser)> {
        let variant = seed.deserialize(KeyDeserializer::new(&self.variant))?;
        Ok((variant, VariantDeser(self.content)))
    }
}

/// The content of an enum variant (`None` when the variant was a bare name).
struct VariantDeser(Option<Value>);

impl<'de> de::VariantAccess<'de> for VariantDeser {
    type Error = SerdeError;

    fn unit_variant(self) -> SResult<()> {
        match self.0 {
            None | Some(Value::Null) => Ok(()),
            Some(other) => Err(de::Error::invalid_type(unexpected(&other), &"a unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> SResult<T::Value> {
        match self.0 {
            Some(v) => seed.deserialize(ValueDeserializer(v)),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"a newtype variant")),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> SResult<V::Value> {
        match self.0 {
            Some(Value::List(items)) => visit_list(items, visitor),
            Some(other) => Err(de::Error::invalid_type(unexpected(&other), &"a tuple variant")),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"a tuple variant")),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> SResult<V::Value> {
        match self.0 {
            Some(v @ (Value::Map(_) | Value::List(_))) => {
                de::Deserializer::deserialize_any(ValueDeserializer(v), visitor)
            }
            Some(other) => Err(de::Error::invalid_type(unexpected(&other), &"a struct variant")),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"a struct variant")),
        }
    }
}

// ---------------------------------------------------------------------------
// Serialize / Deserialize for the model's own types

impl Serialize for Timestamp {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct(TIMESTAMP_STRUCT, 2)?;
        s.serialize_field(TS_FIELDS[0], &self.micros)?;
        s.serialize_field(TS_FIELDS[1], &self.offset_secs)?;
        s.end()
    }
}

impl<'de> de::Deserialize<'de> for Timestamp {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> std::result::Result<Timestamp, D::Error> {
        deserializer.deserialize_struct(TIMESTAMP_STRUCT, TS_FIELDS, TimestampVisitor)
    }
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Timestamp, A::Error> {
        let micros = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let offset_secs = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok(Timestamp { micros, offset_secs })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Timestamp, A::Error> {
        let (mut micros, mut offset_secs) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "micros" | TS_MICROS_KEY if micros.is_none() => micros = Some(map.next_value()?),
                "offset_secs" | TS_OFFSET_KEY if offset_secs.is_none() => {
                    offset_secs = Some(map.next_value()?)
                }
                _ => return Err(de::Error::unknown_field(&key, TS_FIELDS)),
            }
        }
        let micros = micros.ok_or_else(|| de::Error::missing_field("micros"))?;
        Ok(Timestamp { micros, offset_secs: offset_secs.flatten() })
    }
}

impl Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::Timestamp(t) => t.serialize(serializer),
            Value::List(items) => serializer.collect_seq(items),
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> de::Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Builds a [`Value`] from whatever a self-describing format presents.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any document value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Value, E> {
        ser::Serializer::serialize_i128(ValueSerializer { depth: 0 }, v).map_err(E::custom)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Value, E> {
        ser::Serializer::serialize_u128(ValueSerializer { depth: 0 }, v).map_err(E::custom)
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        de::Deserialize::deserialize(d)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        de::Deserialize::deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(key) = map.next_key::<String>()? {
            if entries.is_empty() && key == TS_MICROS_KEY {
                let micros = map.next_value()?;
                let offset_secs = match map.next_key::<String>()?.as_deref() {
                    Some(TS_OFFSET_KEY) => map.next_value()?,
                    _ => return Err(de::Error::custom("malformed timestamp")),
                };
                return Ok(Value::Timestamp(Timestamp { micros, offset_secs }));
            }
            let value = map.next_value()?;
            entries.push((key, value));
        }
        if let Some(k) = duplicate_key(&entries) {
            return Err(de::Error::custom(format!("map has the key {k:?} twice")));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::testgen::{arb_value, nested_lists};
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use std::collections::{BTreeMap, HashMap};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Meters(f64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pair(i32, String);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Address {
        city: String,
        zip: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect(f64, f64),
        Poly { sides: u8, name: String },
    }

    #[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    enum Color {
        Red,
        Green,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Everything {
        b: bool,
        i8: i8,
        i16: i16,
        i32: i32,
        i64: i64,
        i128: i128,
        u8: u8,
        u16: u16,
        u32: u32,
        u64: u64,
        u128: u128,
        f32: f32,
        f64: f64,
        c: char,
        s: String,
        plain_bytes: Vec<u8>,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        some: Option<i32>,
        none: Option<i32>,
        unit: (),
        unit_struct: Unit,
        newtype: Meters,
        tuple: (i32, String, bool),
        tuple_struct: Pair,
        nested: Address,
        list: Vec<Address>,
        hash: HashMap<String, i32>,
        btree: BTreeMap<String, Vec<f64>>,
        int_keys: BTreeMap<u32, String>,
        enum_keys: BTreeMap<Color, i32>,
        shapes: Vec<Shape>,
        when: Timestamp,
        extra: Value,
        array: [u16; 3],
    }

    fn everything() -> Everything {
        Everything {
            b: true,
            i8: -8,
            i16: -16,
            i32: -32,
            i64: i64::MIN,
            i128: -5,
            u8: 255,
            u16: 16,
            u32: u32::MAX,
            u64: u64::MAX,
            u128: u128::from(u64::MAX),
            f32: 0.1,
            f64: -0.0,
            c: 'é',
            s: "text".into(),
            plain_bytes: vec![1, 2, 3],
            bytes: vec![0, 255],
            some: Some(3),
            none: None,
            unit: (),
            unit_struct: Unit,
            newtype: Meters(2.5),
            tuple: (1, "two".into(), false),
            tuple_struct: Pair(7, "seven".into()),
            nested: Address { city: "Oslo".into(), zip: None },
            list: vec![Address { city: "A".into(), zip: Some("1".into()) }],
            hash: HashMap::from([("x".into(), 1), ("y".into(), 2)]),
            btree: BTreeMap::from([("k".into(), vec![1.5, f64::INFINITY])]),
            int_keys: BTreeMap::from([(1, "one".into()), (20, "twenty".into())]),
            enum_keys: BTreeMap::from([(Color::Green, 2)]),
            shapes: vec![
                Shape::Empty,
                Shape::Circle(1.0),
                Shape::Rect(2.0, 3.0),
                Shape::Poly { sides: 5, name: "penta".into() },
            ],
            when: Timestamp { micros: 1_700_000_000_000_000, offset_secs: Some(3600) },
            extra: Value::from_iter([("free", Value::Bytes(vec![9])), ("n", Value::UInt(u64::MAX))]),
            array: [1, 2, 3],
        }
    }

    #[test]
    fn doc_serde_round_trips_every_type() {
        let v = to_value(&everything()).unwrap();
        let back: Everything = from_value(v.clone()).unwrap();
        assert_eq!(back.f64.to_bits(), (-0.0f64).to_bits());
        assert_eq!(back, everything());

        // The shapes the mapping promises.
        let keys: Vec<&str> = v.as_map().unwrap().iter().map(|(k, _)| k.as_str()).take(4).collect();
        assert_eq!(keys, ["b", "i8", "i16", "i32"], "struct fields in order");
        assert_eq!(v.get("u64"), Some(&Value::UInt(u64::MAX)));
        assert_eq!(v.get("u8"), Some(&Value::Int(255)));
        assert_eq!(v.get("u128"), Some(&Value::UInt(u64::MAX)));
        assert_eq!(v.get("f32"), Some(&Value::Float(f64::from(0.1f32))));
        assert_eq!(v.get("c"), Some(&Value::from("é")));
        assert_eq!(v.get("plain_bytes"), Some(&Value::List(vec![1.into(), 2.into(), 3.into()])));
        assert_eq!(v.get("bytes"), Some(&Value::Bytes(vec![0, 255])));
        assert_eq!(v.get("none"), Some(&Value::Null));
        assert_eq!(v.get("unit"), Some(&Value::Null));
        assert_eq!(v.get("unit_struct"), Some(&Value::Null));
        assert_eq!(v.get("newtype"), Some(&Value::Float(2.5)));
        assert_eq!(v.get_path(&["tuple_struct", "1"]), Some(&Value::from("seven")));
        assert_eq!(v.get_path(&["int_keys", "20"]), Some(&Value::from("twenty")));
        assert_eq!(v.get_path(&["enum_keys", "Green"]), Some(&Value::Int(2)));
        assert_eq!(v.get_path(&["shapes", "0"]), Some(&Value::from("Empty")));
        assert_eq!(v.get_path(&["shapes", "1", "Circle"]), Some(&Value::Float(1.0)));
        assert_eq!(v.get_path(&["shapes", "2", "Rect", "1"]), Some(&Value::Float(3.0)));
        assert_eq!(v.get_path(&["shapes", "3", "Poly", "sides"]), Some(&Value::Int(5)));
        assert_eq!(
            v.get("when"),
            Some(&Value::Timestamp(Timestamp { micros: 1_700_000_000_000_000, offset_secs: Some(3600) }))
        );
        assert_eq!(v.get_path(&["extra", "n"]), Some(&Value::UInt(u64::MAX)));

        // Through the stored encoding and JSON too.
        let mut dict = crate::doc::codec::MemNameDict::new();
        let mut bytes = Vec::new();
        crate::doc::codec::encode_document(&v, &mut dict, &mut bytes).unwrap();
        let stored = crate::doc::codec::decode_document(&bytes, &dict).unwrap();
        assert_eq!(from_value::<Everything>(stored).unwrap(), everything());
        let json = crate::doc::json::to_json_string(&v);
        let parsed = crate::doc::json::from_json_str(&json).unwrap();
        assert_eq!(from_value::<Everything>(parsed).unwrap(), everything());
    }

    #[test]
    fn doc_serde_bytes_and_seqs_interchange() {
        let bytes = Value::Bytes(vec![1, 2]);
        assert_eq!(from_value::<Vec<u8>>(bytes.clone()).unwrap(), vec![1, 2]);
        assert_eq!(from_value::<[u8; 2]>(bytes.clone()).unwrap(), [1, 2]);
        assert_eq!(from_value::<serde_bytes::ByteBuf>(bytes).unwrap().into_vec(), vec![1, 2]);
        let list = Value::List(vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(from_value::<serde_bytes::ByteBuf>(list).unwrap().into_vec(), vec![1, 2]);
        assert!(from_value::<[u8; 1]>(Value::Bytes(vec![1, 2])).is_err());
        assert!(from_value::<(i32,)>(Value::List(vec![1.into(), 2.into()])).is_err());
    }

    #[test]
    fn doc_serde_numeric_coercions_are_lossless() {
        assert_eq!(TWO_POW_127, 2f64.powi(127));
        assert_eq!(from_value::<u8>(Value::Float(3.0)).unwrap(), 3);
        assert_eq!(from_value::<i64>(Value::UInt(5)).unwrap(), 5);
        assert_eq!(from_value::<u64>(Value::Int(5)).unwrap(), 5);
        assert_eq!(from_value::<f64>(Value::Int(-7)).unwrap(), -7.0);
        assert_eq!(from_value::<f64>(Value::UInt(1 << 63)).unwrap(), 2f64.powi(63));
        assert_eq!(from_value::<f32>(Value::Float(0.5)).unwrap(), 0.5);
        assert!(from_value::<f32>(Value::Float(f64::NAN)).unwrap().is_nan());
        assert_eq!(from_value::<i128>(Value::UInt(u64::MAX)).unwrap(), i128::from(u64::MAX));
        assert_eq!(from_value::<Option<u16>>(Value::Int(9)).unwrap(), Some(9));
        for (v, what) in [
            (Value::Float(3.5), "u8 from 3.5"),
            (Value::Int(300), "u8 from 300"),
            (Value::Int(-1), "u8 from -1"),
            (Value::Str("3".into()), "u8 from a string"),
        ] {
            assert!(matches!(from_value::<u8>(v), Err(Error::InvalidArgument(_))), "{what}");
        }
        assert!(from_value::<i64>(Value::UInt(u64::MAX)).is_err());
        assert!(from_value::<f64>(Value::Int((1 << 53) + 1)).is_err());
        assert!(from_value::<f64>(Value::Int(i64::MAX)).is_err());
        // An f32 takes the nearest f32 of any number in its range.
        assert_eq!(from_value::<f32>(Value::Float(0.1)).unwrap(), 0.1f32);
        assert_eq!(from_value::<f32>(Value::Int((1 << 24) + 1)).unwrap(), 16_777_216.0);
        assert_eq!(from_value::<f32>(Value::UInt(u64::MAX)).unwrap(), u64::MAX as f32);
        assert!(from_value::<f32>(Value::Float(f64::NAN)).unwrap().is_nan());
        assert_eq!(from_value::<f32>(Value::Float(f64::NEG_INFINITY)).unwrap(), f32::NEG_INFINITY);
        let e = from_value::<f32>(Value::Float(1e39)).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("within f32's range")), "{e}");
        assert!(from_value::<i32>(Value::Float(f64::NAN)).is_err());
        assert!(from_value::<char>(Value::from("ab")).is_err());
        let e = from_value::<bool>(Value::Int(1)).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("invalid type")), "{e}");

        assert!(to_value(&i128::MAX).is_err());
        assert!(to_value(&(u128::from(u64::MAX) + 1)).is_err());
        assert_eq!(to_value(&i128::from(u64::MAX)).unwrap(), Value::UInt(u64::MAX));
        assert_eq!(to_value(&-1i128).unwrap(), Value::Int(-1));
    }

    #[test]
    fn doc_serde_rejects_bad_shapes() {
        assert!(to_value(&HashMap::from([(vec![1], 2)])).is_err(), "list keys");
        assert!(to_value(&BTreeMap::from([(false, 1)])).is_err(), "bool keys");
        assert!(from_value::<Shape>(Value::from("Hexagon")).is_err());
        assert!(from_value::<Shape>(Value::from("Circle")).is_err(), "newtype variant needs content");
        assert!(from_value::<Shape>(Value::from_iter([("Empty", 1)])).is_err());
        assert!(from_value::<Shape>(Value::from_iter([("Rect", 1)])).is_err());
        assert!(from_value::<Address>(Value::from_iter([("zip", "x")])).is_err(), "missing city");
        assert_eq!(from_value::<Shape>(Value::from_iter([("Empty", Value::Null)])).unwrap(), Shape::Empty);
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Node {
        next: Option<Box<Node>>,
    }

    fn chain(levels: usize) -> Node {
        (1..levels).fold(Node { next: None }, |n, _| Node { next: Some(Box::new(n)) })
    }

    #[test]
    fn doc_serde_nesting_limit() {
        assert_eq!(to_value(&chain(MAX_NESTING)).unwrap().nesting_depth(), MAX_NESTING);
        let e = to_value(&chain(MAX_NESTING + 1)).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("nested deeper than 128")), "{e}");
        assert!(to_value(&Shape::Rect(1.0, 2.0)).unwrap().nesting_depth() == 2);
        assert!(from_value::<Value>(nested_lists(MAX_NESTING)).is_ok());
        assert!(from_value::<Value>(nested_lists(MAX_NESTING + 1)).is_err());
    }

    /// to_value/from_value cannot tell a small UInt from an Int.
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

    proptest! {
        #[test]
        fn doc_serde_value_round_trip(v in arb_value()) {
            let via_ser = to_value(&v).unwrap();
            prop_assert!(via_ser.identical(&normalize(&v)));
            let via_de: Value = from_value(v.clone()).unwrap();
            prop_assert!(via_de.identical(&normalize(&v)));
        }
    }
}

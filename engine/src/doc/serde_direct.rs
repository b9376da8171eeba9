//! A serde type straight to the stored encoding, without a [`Value`] in
//! between: the write path of typed documents (`Db::insert::<T>` and the
//! other typed writes). Building a `Value` tree allocates for every field
//! name, string, list and map, then walks the tree again to encode it and
//! once more to drop it; here each field is encoded as it is serialized.
//!
//! The output is byte for byte what [`encode_document_versioned`] makes of
//! [`to_value`]'s value. Only the common shapes are written here: scalars,
//! strings, bytes, options, unit enum variants, sequences, string-keyed
//! maps and structs. Anything else (a 128-bit integer, an enum variant
//! with data, a timestamp, a map key that is not text, a repeated key,
//! nesting past the limit, a top level that is not a map, an error from
//! the type's own `Serialize`) makes the writer give up with the output as
//! it was, and the caller takes the general path, which also words any
//! error.
//!
//! [`encode_document_versioned`]: super::codec::encode_document_versioned
//! [`to_value`]: super::serde_value::to_value

use std::fmt;

use serde::ser::{self, Serialize};

use super::codec::{
    close_container, encode_header, open_container, put_bytes, put_varint, put_zigzag, tag, DocHeader,
    NameDict,
};
use super::serde_value::{KeySerializer, TIMESTAMP_STRUCT};
use super::value::{SeenIds, MAX_NESTING};

/// Encodes `doc` as a stored document (header with `schema_version`, then
/// the map) appended to `out`. False, with `out` as it was, when `doc`
/// needs the general path (see the module documentation); `dict` may have
/// assigned ids to names it saw.
pub(crate) fn document_from_serialize<T: Serialize + ?Sized>(
    doc: &T,
    schema_version: u32,
    dict: &mut impl NameDict,
    fields: &mut FieldIds,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    let written = encode_header(&DocHeader::value(schema_version), out).is_ok() && {
        let value_at = out.len();
        doc.serialize(&mut Writer { out: &mut *out, dict, fields: &mut *fields, depth: 0 }).is_ok()
            && out.get(value_at) == Some(&tag::MAP)
    };
    if !written {
        out.truncate(start);
        // The caller takes back the names this call assigned.
        fields.0.clear();
    }
    written
}

/// The name ids of struct fields met so far, by the address of their
/// `&'static str` name (a static string's address and length name its
/// text for the life of the program): a batch of one type looks each
/// field name up in the dictionary once. Valid for one dictionary.
#[derive(Debug, Default)]
pub(crate) struct FieldIds(Vec<(usize, usize, u32)>);

impl FieldIds {
    fn id_of(&mut self, name: &'static str, dict: &mut impl NameDict) -> WResult<u32> {
        let at = (name.as_ptr() as usize, name.len());
        if let Some(&(_, _, id)) = self.0.iter().find(|(p, l, _)| (*p, *l) == at) {
            return Ok(id);
        }
        let id = dict.id_of(name).map_err(|_| GiveUp)?;
        if self.0.len() < 64 {
            self.0.push((at.0, at.1, id));
        }
        Ok(id)
    }
}

/// Why the writer gave up; the general path says what is wrong, if anything.
#[derive(Debug)]
pub(crate) struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the general encoder")
    }
}

impl std::error::Error for GiveUp {}

impl ser::Error for GiveUp {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        GiveUp
    }
}

type WResult<T = ()> = std::result::Result<T, GiveUp>;

/// Where the value being serialized goes: `depth` containers deep.
struct Writer<'o, D> {
    out: &'o mut Vec<u8>,
    dict: &'o mut D,
    fields: &'o mut FieldIds,
    depth: usize,
}

impl<'o, D: NameDict> Writer<'o, D> {
    fn int(&mut self, v: i64) -> WResult {
        self.out.push(tag::INT);
        put_zigzag(self.out, v);
        Ok(())
    }

    fn str(&mut self, v: &str) -> WResult {
        self.out.push(tag::STR);
        put_bytes(self.out, v.as_bytes()).map_err(|_| GiveUp)
    }

    /// Starts a list or map ([`open_container`]), which
    /// [`Container::close`] ends.
    fn open(&mut self, container: u8) -> WResult<Container<'_, 'o, D>> {
        if self.depth >= MAX_NESTING {
            return Err(GiveUp);
        }
        let body = open_container(self.out, container);
        self.depth += 1;
        Ok(Container { w: self, body, count: 0, keys: SeenIds::default() })
    }
}

/// A list or map being written.
struct Container<'w, 'o, D> {
    w: &'w mut Writer<'o, D>,
    body: usize,
    count: u64,
    /// A map's keys so far (a repeated one is left to the general path).
    keys: SeenIds,
}

impl<D: NameDict> Container<'_, '_, D> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> WResult {
        self.count += 1;
        value.serialize(&mut *self.w)
    }

    fn entry<T: Serialize + ?Sized>(&mut self, id: u32, value: &T) -> WResult {
        if !self.keys.insert(id) {
            return Err(GiveUp);
        }
        put_varint(self.w.out, id.into());
        self.element(value)
    }

    fn close(self) -> WResult {
        self.w.depth -= 1;
        close_container(self.w.out, self.body, self.count).map_err(|_| GiveUp)
    }
}

impl<'w, 'o, D: NameDict> ser::Serializer for &'w mut Writer<'o, D> {
    type Ok = ();
    type Error = GiveUp;
    type SerializeSeq = Container<'w, 'o, D>;
    type SerializeTuple = Container<'w, 'o, D>;
    type SerializeTupleStruct = Container<'w, 'o, D>;
    type SerializeTupleVariant = ser::Impossible<(), GiveUp>;
    type SerializeMap = Container<'w, 'o, D>;
    type SerializeStruct = Container<'w, 'o, D>;
    type SerializeStructVariant = ser::Impossible<(), GiveUp>;

    fn serialize_bool(self, v: bool) -> WResult {
        self.out.push(if v { tag::TRUE } else { tag::FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> WResult {
        self.int(v.into())
    }
    fn serialize_i16(self, v: i16) -> WResult {
        self.int(v.into())
    }
    fn serialize_i32(self, v: i32) -> WResult {
        self.int(v.into())
    }
    fn serialize_i64(self, v: i64) -> WResult {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> WResult {
        self.int(v.into())
    }
    fn serialize_u16(self, v: u16) -> WResult {
        self.int(v.into())
    }
    fn serialize_u32(self, v: u32) -> WResult {
        self.int(v.into())
    }
    fn serialize_u64(self, v: u64) -> WResult {
        // As `Value::from(u64)`: an `Int` when it fits.
        match i64::try_from(v) {
            Ok(i) => self.int(i),
            Err(_) => {
                self.out.push(tag::UINT);
                put_varint(self.out, v);
                Ok(())
            }
        }
    }
    fn serialize_f32(self, v: f32) -> WResult {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> WResult {
        self.out.push(tag::FLOAT);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> WResult {
        self.str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> WResult {
        self.str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> WResult {
        self.out.push(tag::BYTES);
        put_bytes(self.out, v).map_err(|_| GiveUp)
    }
    fn serialize_none(self) -> WResult {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> WResult {
        value.serialize(self)
    }
    fn serialize_unit(self) -> WResult {
        self.out.push(tag::NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> WResult {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> WResult {
        self.str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> WResult {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> WResult {
        Err(GiveUp)
    }
    fn serialize_seq(self, _len: Option<usize>) -> WResult<Self::SerializeSeq> {
        self.open(tag::LIST)
    }
    fn serialize_tuple(self, _len: usize) -> WResult<Self::SerializeTuple> {
        self.open(tag::LIST)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> WResult<Self::SerializeTupleStruct> {
        self.open(tag::LIST)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> WResult<Self::SerializeTupleVariant> {
        Err(GiveUp)
    }
    fn serialize_map(self, _len: Option<usize>) -> WResult<Self::SerializeMap> {
        self.open(tag::MAP)
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> WResult<Self::SerializeStruct> {
        if name == TIMESTAMP_STRUCT {
            return Err(GiveUp);
        }
        self.open(tag::MAP)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> WResult<Self::SerializeStructVariant> {
        Err(GiveUp)
    }
}

impl<D: NameDict> ser::SerializeSeq for Container<'_, '_, D> {
    type Ok = ();
    type Error = GiveUp;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> WResult {
        self.element(value)
    }
    fn end(self) -> WResult {
        self.close()
    }
}

impl<D: NameDict> ser::SerializeTuple for Container<'_, '_, D> {
    type Ok = ();
    type Error = GiveUp;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> WResult {
        self.element(value)
    }
    fn end(self) -> WResult {
        self.close()
    }
}

impl<D: NameDict> ser::SerializeTupleStruct for Container<'_, '_, D> {
    type Ok = ();
    type Error = GiveUp;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> WResult {
        self.element(value)
    }
    fn end(self) -> WResult {
        self.close()
    }
}

impl<D: NameDict> ser::SerializeMap for Container<'_, '_, D> {
    type Ok = ();
    type Error = GiveUp;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, _key: &T) -> WResult {
        // Keys come with their values (serialize_entry), so that the key's
        // text needs no buffer between calls.
        Err(GiveUp)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, _value: &T) -> WResult {
        Err(GiveUp)
    }
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> WResult {
        let key = key.serialize(KeySerializer).map_err(|_| GiveUp)?;
        let id = self.w.dict.id_of(&key).map_err(|_| GiveUp)?;
        self.entry(id, value)
    }
    fn end(self) -> WResult {
        self.close()
    }
}

impl<D: NameDict> ser::SerializeStruct for Container<'_, '_, D> {
    type Ok = ();
    type Error = GiveUp;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> WResult {
        let id = self.w.fields.id_of(key, &mut *self.w.dict)?;
        self.entry(id, value)
    }
    fn end(self) -> WResult {
        self.close()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;
    use crate::doc::codec::{encode_document_versioned, MemNameDict};
    use crate::doc::serde_value::to_value;
    use crate::doc::testgen::arb_value;
    use crate::doc::value::{Timestamp, Value};

    /// The general path's bytes (or `None` when it refuses `doc`) and the
    /// direct path's (`None` when it gives up), each with a fresh dictionary.
    fn both<T: Serialize + ?Sized>(doc: &T) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let mut general = Vec::new();
        let mut dict = MemNameDict::default();
        let general = to_value(doc)
            .ok()
            .filter(|v| matches!(v, Value::Map(_)))
            .and_then(|v| encode_document_versioned(&v, 7, &mut dict, &mut general).ok().map(|()| general));
        let mut direct = vec![0xEE];
        let mut dict = MemNameDict::default();
        let direct = document_from_serialize(doc, 7, &mut dict, &mut FieldIds::default(), &mut direct)
            .then(|| direct[1..].to_vec());
        (general, direct)
    }

    #[derive(Serialize)]
    enum Kind {
        Plain,
        Tagged(u8),
    }

    #[derive(Serialize)]
    struct Inner {
        city: String,
        zip: Option<u32>,
    }

    #[derive(Serialize)]
    struct Order {
        customer_id: u64,
        big: u64,
        small: i8,
        total: f64,
        ratio: f32,
        letter: char,
        status: Kind,
        tags: Vec<String>,
        pair: (i32, bool),
        address: Inner,
        missing: Option<Inner>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
        counts: BTreeMap<u32, i64>,
        names: HashMap<String, String>,
        unit: (),
    }

    fn order() -> Order {
        Order {
            customer_id: 42,
            big: u64::MAX,
            small: -3,
            total: 12.5,
            ratio: 0.25,
            letter: 'é',
            status: Kind::Plain,
            tags: vec!["gift".into(), String::new()],
            pair: (-7, true),
            address: Inner { city: "Paris".into(), zip: Some(75001) },
            missing: None,
            skipped: None,
            blob: vec![0, 255, 1],
            counts: [(1, -1), (20, 2)].into_iter().collect(),
            names: [("a".to_string(), "b".to_string())].into_iter().collect(),
            unit: (),
        }
    }

    #[test]
    fn typed_documents_encode_as_the_general_path_does() {
        let (general, direct) = both(&order());
        assert!(direct.is_some(), "the common shapes are written directly");
        assert_eq!(direct, general);
        // A long list and a long string (bodies and counts past one byte).
        let long = BTreeMap::from([("items", (0..300).collect::<Vec<u32>>())]);
        let (general, direct) = both(&long);
        assert!(direct.is_some());
        assert_eq!(direct, general);
        let text = BTreeMap::from([("note", "x".repeat(70_000))]);
        let (general, direct) = both(&text);
        assert!(direct.is_some());
        assert_eq!(direct, general);
    }

    #[test]
    fn other_shapes_are_left_to_the_general_path() {
        #[derive(Serialize)]
        struct WithVariant {
            k: Kind,
        }
        #[derive(Serialize)]
        struct WithTime {
            at: Timestamp,
        }
        #[derive(Serialize)]
        struct Wide {
            n: i128,
        }
        let stamp = Timestamp { micros: 5, offset_secs: Some(60) };
        let gave_up = |d: (Option<Vec<u8>>, Option<Vec<u8>>)| d.1.is_none();
        assert!(gave_up(both(&WithVariant { k: Kind::Tagged(1) })));
        assert!(gave_up(both(&WithTime { at: stamp })));
        assert!(gave_up(both(&Wide { n: 1 })));
        // Not a map at the top: refused by both.
        assert_eq!(both(&vec![1, 2]), (None, None));
        assert_eq!(both(&5u8), (None, None));
        // Keys that collide once made text ("1" twice).
        let mut m: HashMap<String, u8> = HashMap::new();
        m.insert("1".into(), 1);
        #[derive(Serialize)]
        struct Clash {
            #[serde(flatten)]
            m: HashMap<String, u8>,
            #[serde(rename = "1")]
            one: u8,
        }
        assert_eq!(both(&Clash { m, one: 2 }), (None, None));
        // Nesting past the limit.
        let mut deep = Value::Null;
        for _ in 0..MAX_NESTING + 1 {
            deep = Value::List(vec![deep]);
        }
        let doc = Value::Map(vec![("d".into(), deep)]);
        assert_eq!(both(&doc), (None, None));
    }

    fn has_timestamp(v: &Value) -> bool {
        match v {
            Value::Timestamp(_) => true,
            Value::List(items) => items.iter().any(has_timestamp),
            Value::Map(entries) => entries.iter().any(|(_, v)| has_timestamp(v)),
            _ => false,
        }
    }

    proptest! {
        /// Any value the general path encodes, the direct path encodes
        /// identically, unless it holds a timestamp (left to the general path).
        #[test]
        fn values_encode_as_the_general_path_does(v in arb_value()) {
            let doc = match v {
                m @ Value::Map(_) => m,
                other => Value::Map(vec![("v".into(), other)]),
            };
            let (general, direct) = both(&doc);
            if has_timestamp(&doc) {
                prop_assert_eq!(direct, None);
            } else {
                prop_assert!(direct.is_some() || general.is_none(), "gave up on {:?}", doc);
                prop_assert_eq!(direct, general);
            }
        }
    }
}

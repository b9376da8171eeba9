//! Secondary index declarations and the index entries a document gets.
//!
//! This file owns *what* an index contains (the rule below); the document
//! layer (`doc/collection.rs`) owns keeping the index trees in step with the
//! documents, and the planner (`query/plan.rs`) relies on the rule to decide
//! when an index can answer a filter.
//!
//! # Which entries a document gets
//!
//! For each indexed field, the document's *index values* are every value
//! the path reaches ([`FieldPath::resolve`], with fan-out through lists of
//! maps) and, for each reached list, each of its elements. A list is indexed
//! both whole and element by element because a filter matches either way
//! (`Eq("tags", "red")` matches `tags: ["red", "blue"]`, and
//! `Eq("tags", ["red", "blue"])` matches the whole list). So a standard
//! index on a list field is a multi-value index; [`IndexKind::Multi`] only
//! records the intent.
//!
//! A document in which some indexed field has no index value (the path is
//! missing) gets **no entries** in that index. A composite index gets one
//! entry per combination of its fields' index values (the cartesian
//! product, bounded by [`MAX_ENTRIES_PER_DOC`]).
//!
//! Entry layouts (see `docs/format.md`, "Collections"): a unique index maps
//! the encoded value key to the document id (8 bytes big-endian); the
//! other kinds store `value key ++ id` with an empty value.

use serde::{Deserialize, Serialize};

use crate::doc::value::Value;
use crate::error::{Error, Result};
use crate::index::key_encoding::{encode_key, encode_key_vec, split_index_entry};
use crate::query::expr::FieldPath;

/// The most index entries one document may produce in one index. A
/// composite index over several list fields multiplies their lengths; past
/// this bound the write is refused rather than flooding the index.
pub const MAX_ENTRIES_PER_DOC: usize = 10_000;

/// How an index treats equal values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexKind {
    /// At most one document per value; a second one is an error.
    Unique,
    /// Any number of documents per value.
    Standard,
    /// Any number of documents per value; one entry per list element (the
    /// same entries as [`IndexKind::Standard`], see the module docs).
    Multi,
}

impl IndexKind {
    /// The lowercase name (`unique`, `standard`, `multi`).
    pub fn as_str(&self) -> &'static str {
        match self {
            IndexKind::Unique => "unique",
            IndexKind::Standard => "standard",
            IndexKind::Multi => "multi",
        }
    }
}

/// Whether an index can serve queries yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexStatus {
    /// Being filled from existing documents; queries do not use it.
    Building,
    /// Complete and maintained on every write.
    Ready,
}

impl IndexStatus {
    /// The lowercase name (`building`, `ready`).
    pub fn as_str(&self) -> &'static str {
        match self {
            IndexStatus::Building => "building",
            IndexStatus::Ready => "ready",
        }
    }
}

/// A secondary index declaration: a name (unique within its collection), a
/// kind and one field (or several, in order, for a composite index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index name.
    pub name: String,
    /// Unique, standard or multi-value.
    pub kind: IndexKind,
    /// The indexed fields, most significant first.
    pub fields: Vec<FieldPath>,
}

impl IndexSpec {
    /// A spec from dotted path strings; `InvalidArgument` on a bad path, an
    /// empty field list or a bad name.
    pub fn new(name: &str, kind: IndexKind, fields: &[&str]) -> Result<IndexSpec> {
        let fields = fields.iter().map(|f| FieldPath::parse(f)).collect::<Result<Vec<_>>>()?;
        let spec = IndexSpec { name: name.to_string(), kind, fields };
        spec.validate()?;
        Ok(spec)
    }

    /// A unique index on one field.
    ///
    /// A `null` (a Rust `None`) is a value like any other here: the index
    /// holds it once, unlike SQL's NULLs. A document that leaves the field
    /// out has no entry, so an optional unique field is declared with
    /// `#[serde(skip_serializing_if = "Option::is_none")]`. A list gives an
    /// entry for each element and one for the whole list. Index keys are
    /// limited to about a third of a page (1,341 bytes for a unique index
    /// at 4 KiB pages, `docs/format.md`); a longer one is `InvalidArgument`.
    pub fn unique(name: &str, field: &str) -> Result<IndexSpec> {
        IndexSpec::new(name, IndexKind::Unique, &[field])
    }

    /// A standard index on one field.
    pub fn standard(name: &str, field: &str) -> Result<IndexSpec> {
        IndexSpec::new(name, IndexKind::Standard, &[field])
    }

    /// A multi-value index on one list field (one entry per element).
    pub fn multi(name: &str, field: &str) -> Result<IndexSpec> {
        IndexSpec::new(name, IndexKind::Multi, &[field])
    }

    /// Checks the name and field list.
    pub fn validate(&self) -> Result<()> {
        crate::doc::collection::check_component_name("index", &self.name)?;
        if self.fields.is_empty() {
            return Err(Error::invalid(format!("index {:?} has no fields", self.name)));
        }
        Ok(())
    }

    /// The fields as dotted strings.
    pub fn field_strings(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.to_string()).collect()
    }
}

/// The encoded index values of one field of `doc` (sorted, deduplicated).
fn field_keys(path: &FieldPath, doc: &Value) -> Vec<Vec<u8>> {
    let mut reached = Vec::new();
    path.resolve(doc, &mut reached);
    let mut keys = Vec::new();
    for v in reached {
        let mut k = Vec::new();
        encode_key(v, &mut k);
        keys.push(k);
        if let Value::List(items) = v {
            for item in items {
                let mut k = Vec::new();
                encode_key(item, &mut k);
                keys.push(k);
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The value keys (without document id) that `doc` has in an index on
/// `fields`, sorted and deduplicated; empty when a field is missing.
pub fn doc_index_keys(fields: &[FieldPath], doc: &Value) -> Result<Vec<Vec<u8>>> {
    // The common case first: one top-level field that holds one value
    // (not a list, which indexes each element too).
    if let ([path], Value::Map(entries)) = (fields, doc) {
        if let [name] = path.segments() {
            match entries.iter().find(|(k, _)| k == name).map(|(_, v)| v) {
                None => return Ok(Vec::new()),
                Some(Value::List(_)) => {}
                Some(v) => return Ok(vec![encode_key_vec(v)]),
            }
        }
    }
    combined_keys(fields, doc)
}

/// True when `doc` has at most one entry in an index on `fields`, holding
/// exactly what [`FieldPath::get`] reads (and a sort compares): no field
/// reached through a list (fan-out) or holding a list (whose elements are
/// indexed too). An index all of whose documents are like this is
/// *single-valued*: its key order is the documents' sort order on its
/// fields, so a sort can read it instead of sorting in memory.
pub fn single_valued(fields: &[FieldPath], doc: &Value) -> bool {
    fields.iter().all(|path| match path.get(doc) {
        Some(Value::List(_)) => false,
        Some(_) => true,
        // Missing, or reached only by fan-out through a list of maps.
        None => {
            let mut reached = Vec::new();
            path.resolve(doc, &mut reached);
            reached.is_empty()
        }
    })
}

/// [`doc_index_keys`] in general: every combination of the fields' keys.
fn combined_keys(fields: &[FieldPath], doc: &Value) -> Result<Vec<Vec<u8>>> {
    let mut combos: Vec<Vec<u8>> = vec![Vec::new()];
    for path in fields {
        let keys = field_keys(path, doc);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if combos.len().saturating_mul(keys.len()) > MAX_ENTRIES_PER_DOC {
            return Err(Error::invalid(format!(
                "document would have more than {MAX_ENTRIES_PER_DOC} entries in an index on {}",
                fields.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        let mut next = Vec::with_capacity(combos.len() * keys.len());
        for c in &combos {
            for k in &keys {
                let mut e = c.clone();
                e.extend_from_slice(k);
                next.push(e);
            }
        }
        combos = next;
    }
    combos.sort();
    combos.dedup();
    Ok(combos)
}

/// Splits a stored index entry into its value key and document id.
pub fn parse_entry<'a>(kind: IndexKind, key: &'a [u8], value: &[u8]) -> Result<(&'a [u8], u64)> {
    match kind {
        IndexKind::Unique => {
            let id: [u8; 8] = value.try_into().map_err(|_| {
                Error::corruption(None, format!("unique index entry value is {} bytes, not 8", value.len()))
            })?;
            Ok((key, u64::from_be_bytes(id)))
        }
        _ => split_index_entry(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::json::from_json_str;
    use crate::index::key_encoding::encode_key_vec;

    #[test]
    fn lists_are_indexed_whole_and_by_element() {
        let doc = from_json_str(r#"{"tags":["a","b"],"n":1}"#).unwrap();
        let keys = doc_index_keys(&[FieldPath::parse("tags").unwrap()], &doc).unwrap();
        assert_eq!(keys.len(), 3);
        assert!(keys.contains(&encode_key_vec(&Value::Str("a".into()))));
        let none = doc_index_keys(&[FieldPath::parse("missing").unwrap()], &doc).unwrap();
        assert!(none.is_empty());
        let comp = doc_index_keys(&[FieldPath::parse("tags").unwrap(), FieldPath::parse("n").unwrap()], &doc)
            .unwrap();
        assert_eq!(comp.len(), 3);
    }

    proptest::proptest! {
        /// The one-field shortcut finds what the general walk finds, for
        /// present, missing, list-valued and nested-looking fields.
        #[test]
        fn the_one_field_shortcut_agrees(doc in crate::doc::testgen::arb_value(), pick in 0usize..10) {
            let names: Vec<String> = match &doc {
                Value::Map(entries) => entries.iter().map(|(k, _)| k.clone()).collect(),
                _ => Vec::new(),
            };
            let name = names.get(pick).cloned().unwrap_or_else(|| "absent".into());
            if let Ok(path) = FieldPath::from_segments([name]) {
                let fields = [path];
                proptest::prop_assert_eq!(doc_index_keys(&fields, &doc).unwrap(), combined_keys(&fields, &doc).unwrap());
            }
        }
    }
}

//! Collections: named sets of documents with engine-assigned `u64` ids,
//! their per-collection field-name dictionary, and the maintenance of their
//! secondary indexes on every write.
//!
//! Storage (see `docs/format.md`, "Collections"), all in ordinary catalog
//! trees whose names start with `$` (reserved for the engine):
//!
//! - `$collections`: collection name → postcard `CollMeta` (kind, next id,
//!   index declarations with status and build progress);
//! - `$docs/<name>`: id (8 bytes big-endian) → stored document
//!   (`doc/codec.rs` layout);
//! - `$names/<name>`: field-name id (4 bytes big-endian) → UTF-8 name;
//! - `$index/<name>/<index>`: the entries of one secondary index.
//!
//! Every handle ([`Collection`], [`CollectionMut`]) loads the metadata and
//! the name dictionary once, from its own transaction, so a name assigned
//! in a transaction that rolls back never outlives it.

use std::borrow::Cow;
use std::ops::Bound;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::btree::{self, ValueGuard};
use crate::doc::codec::{
    decode_header, decode_value, decode_value_at, encode_document_versioned, encode_header, find_value,
    resolve_path, DocHeader, MemNameDict, NameDict, NameLookup, PathStep, SharedDict, TopFields,
};
use crate::doc::json::{document_from_json_slice, documents_from_json_slice, write_stored_json};
use crate::doc::json_direct::{
    document_from_json, documents_from_json, documents_from_json_in_runs, EncodedRun,
};
use crate::doc::serde_direct::{document_from_serialize, FieldIds};
use crate::doc::serde_encoded::from_encoded;
use crate::doc::serde_value::to_value;
use crate::doc::value::Value;
use crate::error::{Error, Result};
use crate::index::key_encoding;
use crate::index::secondary::{
    doc_index_keys, parse_entry, single_valued, IndexKind, IndexSpec, IndexStatus,
};
use crate::parallel::spare_core;
use crate::query::exec::QueryCursor;
use crate::query::expr::{FieldPath, Filter};
use crate::query::spec::{IndexBound, IndexRange, QuerySpec};
use crate::storage::page::PageRead;
use crate::txn::EngineTrees;
use crate::txn::{ReadTxn, ReadableTxn, Tree, WriteTxn};

/// The catalog tree holding every collection's metadata record.
pub const COLLECTIONS_TREE: &str = "$collections";
/// Longest collection or index name in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// The first id the engine assigns in a new collection.
pub const FIRST_ID: u64 = 1;

pub(crate) fn docs_tree(coll: &str) -> String {
    format!("$docs/{coll}")
}
pub(crate) fn names_tree(coll: &str) -> String {
    format!("$names/{coll}")
}
pub(crate) fn index_tree(coll: &str, index: &str) -> String {
    format!("$index/{coll}/{index}")
}

/// Whether `tree`, when it is one of a collection's own trees (see
/// [`docs_tree`], [`names_tree`], [`index_tree`]), belongs to one of the
/// collections `listed`; `None` for any other tree.
pub(crate) fn tree_has_owner(tree: &str, listed: &std::collections::BTreeSet<String>) -> Option<bool> {
    if let Some(coll) = tree.strip_prefix("$docs/").or_else(|| tree.strip_prefix("$names/")) {
        return Some(listed.contains(coll));
    }
    // (A collection's name holds no '/'.)
    let (coll, _index) = tree.strip_prefix("$index/")?.split_once('/')?;
    Some(listed.contains(coll))
}

/// Checks a collection, index or namespace name: 1 to [`MAX_NAME_LEN`]
/// bytes, no `/` (it separates the parts of internal tree names).
pub fn check_component_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('/') {
        return Err(Error::invalid(format!(
            "{what} name {name:?} is invalid: 1 to {MAX_NAME_LEN} bytes without '/'"
        )));
    }
    Ok(())
}

/// Refuses to create a collection, index or namespace whose name holds a
/// NUL: the C API takes names as NUL-terminated strings, so it could never
/// be named there again. Only creation checks this: files written before
/// may hold such names, and they stay readable, exportable and droppable.
pub(crate) fn refuse_nul_in_new_name(what: &str, name: &str) -> Result<()> {
    if name.contains('\0') {
        return Err(Error::invalid(format!(
            "{what} name {name:?} is invalid: a new name may not contain NUL (the C API could not name it)"
        )));
    }
    Ok(())
}

/// Key of a document in its collection's primary tree.
pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The id a documents tree's key holds (`Corruption` unless 8 bytes).
pub(crate) fn id_from_key(key: &[u8]) -> Result<u64> {
    let b: [u8; 8] = key
        .try_into()
        .map_err(|_| Error::corruption(None, format!("document key of {} bytes, not 8", key.len())))?;
    Ok(u64::from_be_bytes(b))
}

/// One index as stored in the collection metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredIndex {
    name: String,
    kind: IndexKind,
    fields: Vec<String>,
    status: StoredStatus,
    /// While building: documents with ids up to this one are indexed.
    built_upto: u64,
}

/// An index's status and whether it is single-valued, in one enum so that
/// files written before the single-valued flag existed (tags 0 and 1) still
/// read: their indexes count as possibly multi-valued.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum StoredStatus {
    Building,
    Ready,
    BuildingSingleValued,
    ReadySingleValued,
}

impl StoredStatus {
    fn new(status: IndexStatus, single_valued: bool) -> StoredStatus {
        match (status, single_valued) {
            (IndexStatus::Building, false) => StoredStatus::Building,
            (IndexStatus::Ready, false) => StoredStatus::Ready,
            (IndexStatus::Building, true) => StoredStatus::BuildingSingleValued,
            (IndexStatus::Ready, true) => StoredStatus::ReadySingleValued,
        }
    }

    fn split(self) -> (IndexStatus, bool) {
        match self {
            StoredStatus::Building => (IndexStatus::Building, false),
            StoredStatus::Ready => (IndexStatus::Ready, false),
            StoredStatus::BuildingSingleValued => (IndexStatus::Building, true),
            StoredStatus::ReadySingleValued => (IndexStatus::Ready, true),
        }
    }
}

/// A collection's metadata record (postcard, in [`COLLECTIONS_TREE`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CollMeta {
    raw: bool,
    next_id: u64,
    indexes: Vec<StoredIndex>,
}

/// An index of a collection as the engine sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// The declaration.
    pub spec: IndexSpec,
    /// Building or ready.
    pub status: IndexStatus,
    /// While building, the highest document id already indexed.
    pub built_upto: u64,
    /// Every document indexed so far has at most one entry, holding the
    /// values a sort compares ([`single_valued`]); cleared for good by the
    /// first write of a document that has more (the index then stays
    /// usable for filters, not for sorts).
    pub single_valued: bool,
}

impl IndexInfo {
    /// True when the index has an entry for every document with this id.
    pub(crate) fn covers(&self, id: u64) -> bool {
        self.status == IndexStatus::Ready || id <= self.built_upto
    }
}

/// What a collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionKind {
    /// Structured documents ([`Value`] maps) that the engine can index and filter.
    Documents,
    /// Opaque bytes the engine does not interpret (lookup by id only).
    Raw,
}

/// The loaded state of one collection in one transaction.
#[derive(Debug, Clone)]
pub(crate) struct CollState {
    pub(crate) name: String,
    pub(crate) raw: bool,
    /// The id the next insert gets: past both the stored mark and the
    /// largest id in use (see [`next_free_id`]).
    pub(crate) next_id: u64,
    /// `next_id` as last written to the metadata record.
    persisted_next_id: u64,
    /// Shared with the memo's copy until this transaction changes them.
    pub(crate) indexes: Arc<Vec<IndexInfo>>,
    pub(crate) dict: Arc<MemNameDict>,
    persisted_names: usize,
    pub(crate) docs: Tree,
    /// The index trees as found when the state was loaded, in `indexes`
    /// order (`None`: missing); emptied when the index list changes.
    index_trees: Vec<Option<Tree>>,
}

impl CollState {
    fn meta(&self) -> CollMeta {
        CollMeta {
            raw: self.raw,
            next_id: self.next_id,
            indexes: self
                .indexes
                .iter()
                .map(|i| StoredIndex {
                    name: i.spec.name.clone(),
                    kind: i.spec.kind,
                    fields: i.spec.field_strings(),
                    status: StoredStatus::new(i.status, i.single_valued),
                    built_upto: i.built_upto,
                })
                .collect(),
        }
    }

    /// This state as loaded by `txn` (its tree handles stamped as `txn`'s).
    fn for_txn<T: ReadableTxn>(&self, txn: &T) -> CollState {
        CollState {
            name: self.name.clone(),
            raw: self.raw,
            next_id: self.next_id,
            persisted_next_id: self.persisted_next_id,
            indexes: self.indexes.clone(),
            dict: self.dict.clone(),
            persisted_names: self.persisted_names,
            docs: self.docs.for_txn(txn),
            index_trees: self.index_trees.iter().map(|t| t.as_ref().map(|t| t.for_txn(txn))).collect(),
        }
    }

    /// Panics (debug builds) when `self` and `other`, two states of one
    /// collection in one transaction, differ.
    #[cfg(debug_assertions)]
    fn assert_same(&self, other: &CollState) {
        let names = |d: &MemNameDict| d.names_since(0).map(|(_, n)| n.to_string()).collect::<Vec<_>>();
        let trees = |s: &CollState| {
            s.index_trees
                .iter()
                .map(|t| t.as_ref().map(|t| (t.root(), t.entries_at_open())))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            (
                &self.name,
                self.raw,
                self.next_id,
                self.persisted_next_id,
                &*self.indexes,
                self.persisted_names
            ),
            (
                &other.name,
                other.raw,
                other.next_id,
                other.persisted_next_id,
                &*other.indexes,
                other.persisted_names
            ),
            "memo state of collection {:?}",
            self.name
        );
        assert_eq!(names(&self.dict), names(&other.dict), "memo name dictionary of {:?}", self.name);
        assert_eq!(
            (self.docs.root(), self.docs.entries_at_open()),
            (other.docs.root(), other.docs.entries_at_open()),
            "memo docs tree"
        );
        assert_eq!(trees(self), trees(other), "memo index trees of {:?}", self.name);
    }

    pub(crate) fn index(&self, name: &str) -> Result<&IndexInfo> {
        self.indexes
            .iter()
            .find(|i| i.spec.name == name)
            .ok_or_else(|| Error::not_found(format!("index {name:?} of collection {:?}", self.name)))
    }

    /// The tree of index `name` (loaded with the state when possible, and
    /// then lent: a clone would touch the name's shared count, a cache line
    /// that threads reading one snapshot would pass back and forth).
    pub(crate) fn index_tree_of<T: ReadableTxn>(&self, txn: &T, name: &str) -> Result<Cow<'_, Tree>> {
        if self.index_trees.len() == self.indexes.len() {
            if let Some(pos) = self.indexes.iter().position(|i| i.spec.name == name) {
                if let Some(t) = &self.index_trees[pos] {
                    return Ok(Cow::Borrowed(t));
                }
            }
        }
        txn.open_engine_tree(&index_tree(&self.name, name)).map(Cow::Owned)
    }

    pub(crate) fn check_documents(&self) -> Result<()> {
        if self.raw {
            return Err(self.no_structure());
        }
        Ok(())
    }

    /// What a structured read of a raw collection gets.
    pub(crate) fn no_structure(&self) -> Error {
        Error::invalid(format!(
            "collection {:?} holds raw bytes: no structured access, filters or indexes",
            self.name
        ))
    }
}

fn load_meta<T: ReadableTxn>(txn: &T, name: &str) -> Result<Option<CollMeta>> {
    let Some(tree) = txn.find_engine_tree(COLLECTIONS_TREE)? else { return Ok(None) };
    match txn.get(&tree, name.as_bytes())? {
        None => Ok(None),
        Some(bytes) => postcard::from_bytes(&bytes).map(Some).map_err(|e| {
            Error::corruption(None, format!("metadata of collection {name:?} is unreadable: {e}"))
        }),
    }
}

/// The id the next insert gets: the larger of the stored mark and the
/// largest id in use plus one. Inserts and upserts only ever raise the
/// largest id, so they leave the metadata record alone (one page fewer in
/// a small commit); a delete that could lower the largest id first writes
/// the mark (see [`CollectionMut::delete`]), so no id is assigned twice.
fn next_free_id<T: ReadableTxn>(txn: &T, docs: &Tree, mark: u64, name: &str) -> Result<u64> {
    let mut cursor = btree::Cursor::new(txn.pages(), docs.root());
    if !cursor.seek_last()? {
        return Ok(mark);
    }
    let key =
        cursor.key()?.ok_or_else(|| Error::corruption(docs.root(), "a positioned cursor has no key"))?;
    let after_last = id_from_key(key)?.checked_add(1).ok_or_else(|| {
        Error::corruption(docs.root(), format!("collection {name:?} holds the id {}", u64::MAX))
    })?;
    Ok(mark.max(after_last))
}

/// Collection `name`'s state as `txn` sees it: from the memo of the
/// committed state `txn` sees when a read transaction on that same state
/// loaded it before (see `storage::memo`), otherwise read from the
/// catalog (and kept in the memo by a read transaction). A write
/// transaction only takes from the memo: the state it loads is about to
/// change with its commit.
fn load_state<T: ReadableTxn>(txn: &T, name: &str) -> Result<Option<CollState>> {
    check_component_name("collection", name)?;
    let Some(view) = crate::txn::committed_view(txn) else { return read_state(txn, name) };
    if let Some(kept) = view.memo.get(view.counter, name) {
        if let Some(st) = kept.downcast_ref::<CollState>() {
            let st = st.for_txn(txn);
            // Debug builds check what the memo holds (kept by a reader, or
            // by a writer's commit) against the catalog.
            #[cfg(debug_assertions)]
            if let Ok(Some(read)) = read_state(txn, name) {
                st.assert_same(&read);
            }
            return Ok(Some(st));
        }
    }
    let st = read_state(txn, name)?;
    if let (Some(st), true) = (&st, view.keep) {
        view.memo.put(view.counter, name, Arc::new(st.clone()));
    }
    Ok(st)
}

/// [`load_state`] without the memo: from the catalog.
fn read_state<T: ReadableTxn>(txn: &T, name: &str) -> Result<Option<CollState>> {
    let Some(meta) = load_meta(txn, name)? else { return Ok(None) };
    let docs = txn.open_engine_tree(&docs_tree(name))?;
    let next_id = next_free_id(txn, &docs, meta.next_id, name)?;
    let mut names = Vec::new();
    let names_t = txn.find_engine_tree(&names_tree(name))?;
    if let Some(nt) = &names_t {
        for (i, entry) in txn.range(nt, Bound::Unbounded, Bound::Unbounded, false)?.enumerate() {
            let (k, v) = entry?;
            if k != (i as u32).to_be_bytes() {
                return Err(Error::corruption(None, format!("name dictionary of {name:?} has a gap at {i}")));
            }
            names.push(String::from_utf8(v).map_err(|_| {
                Error::corruption(None, format!("name dictionary of {name:?} holds non-UTF-8"))
            })?);
        }
    }
    let dict = MemNameDict::from_names(names)?;
    let mut indexes = Vec::new();
    for si in meta.indexes {
        let fields = si
            .fields
            .iter()
            .map(|f| FieldPath::parse(f))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| Error::corruption(None, format!("index {:?} of {name:?}: {e}", si.name)))?;
        let (status, single_valued) = si.status.split();
        indexes.push(IndexInfo {
            spec: IndexSpec { name: si.name, kind: si.kind, fields },
            status,
            built_upto: si.built_upto,
            single_valued,
        });
    }
    let index_trees: Vec<Option<Tree>> = indexes
        .iter()
        .map(|i| txn.find_engine_tree(&index_tree(name, &i.spec.name)))
        .collect::<Result<_>>()?;
    let trees = std::iter::once(&docs).chain(&names_t).chain(index_trees.iter().flatten());
    crate::txn::check_distinct_roots(&format!("collection {name:?}"), trees)?;
    Ok(Some(CollState {
        name: name.to_string(),
        raw: meta.raw,
        next_id,
        persisted_next_id: meta.next_id,
        indexes: Arc::new(indexes),
        persisted_names: dict.len(),
        dict: Arc::new(dict),
        docs,
        index_trees,
    }))
}

/// Whether collection `name` exists (one lookup, not a listing).
pub(crate) fn has_collection<T: ReadableTxn>(txn: &T, name: &str) -> Result<bool> {
    if let Some(view) = crate::txn::committed_view(txn) {
        if view.memo.get(view.counter, name).is_some() {
            return Ok(true);
        }
    }
    let Some(tree) = txn.find_engine_tree(COLLECTIONS_TREE)? else { return Ok(false) };
    Ok(txn.get_guard(&tree, name.as_bytes())?.is_some())
}

/// Names of all collections, in byte order.
pub fn list_collections<T: ReadableTxn>(txn: &T) -> Result<Vec<String>> {
    let Some(tree) = txn.find_engine_tree(COLLECTIONS_TREE)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in txn.range(&tree, Bound::Unbounded, Bound::Unbounded, false)? {
        let (k, _) = entry?;
        out.push(String::from_utf8(k).map_err(|_| Error::corruption(None, "non-UTF-8 collection name"))?);
    }
    Ok(out)
}

/// `e`, an error of reading document `id` of collection `name` as a typed
/// value, saying which document: serde's own words ("invalid type: string
/// \"Ann\", expected u64") name neither, and a query reads many.
pub(crate) fn in_document(e: Error, name: &str, id: u64) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::invalid(format!("document {id} of collection {name:?}: {m}")),
        other => other,
    }
}

/// Decodes a stored document into a value (an error for a RAW one).
pub(crate) fn decode_stored(bytes: &[u8], names: &impl NameLookup) -> Result<(u32, Value)> {
    let (header, payload) = structured(bytes)?;
    Ok((header.schema_version, decode_value(payload, names)?))
}

/// Whether stored document `bytes` has `key` among its entries in an index
/// on `fields`. Only the top-level fields the paths start with are decoded:
/// index keys read nothing else.
fn has_index_key(fields: &[FieldPath], bytes: &[u8], key: &[u8], names: &impl NameLookup) -> Result<bool> {
    let (header, payload) = decode_header(bytes)?;
    if header.is_raw() {
        return Ok(false);
    }
    let mut top: Vec<(String, Value)> = Vec::with_capacity(fields.len());
    for path in fields {
        let name = &path.segments()[0];
        if top.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some(found) = find_value(payload, &resolve_path(&[name], names))? {
            top.push((name.clone(), decode_value(found, names)?));
        }
    }
    Ok(doc_index_keys(fields, &Value::Map(top))?.iter().any(|k| k == key))
}

/// A stored document (header and payload) as a [`Document`](crate::Document)
/// `D`: straight from its encoding when its schema version is `D::VERSION`,
/// otherwise decoded and passed through [`Document::migrate`](crate::Document::migrate).
pub(crate) fn stored_doc<D: crate::Document>(bytes: &[u8], names: &impl NameLookup) -> Result<D> {
    let (header, payload) = structured(bytes)?;
    if header.schema_version == D::VERSION {
        return from_encoded(payload, names);
    }
    crate::doc::typed::migrated(header.schema_version, decode_value(payload, names)?)
}

/// The header and payload of a stored structured document (raw bytes are
/// `InvalidArgument`).
fn structured(bytes: &[u8]) -> Result<(DocHeader, &[u8])> {
    let (header, payload) = decode_header(bytes)?;
    if header.is_raw() {
        return Err(Error::invalid("document is raw bytes, not a structured document"));
    }
    Ok((header, payload))
}

/// Read access to one collection within a transaction (a write
/// transaction's handle sees its own writes).
#[derive(Debug)]
pub struct Collection<'t, T: ReadableTxn> {
    pub(crate) txn: &'t T,
    pub(crate) st: Cow<'t, CollState>,
    /// `namespace.collection` for a collection of an attached database.
    pub(crate) qualified: Option<String>,
}

impl<'t, T: ReadableTxn> Collection<'t, T> {
    /// Opens collection `name`; `NotFound` if it does not exist.
    pub fn open(txn: &'t T, name: &str) -> Result<Self> {
        let st = load_state(txn, name)?.ok_or_else(|| Error::not_found(format!("collection {name:?}")))?;
        Ok(Collection { txn, st: Cow::Owned(st), qualified: None })
    }

    /// The collection's name (`namespace.collection` for one of an
    /// attached database).
    pub fn name(&self) -> &str {
        self.qualified.as_deref().unwrap_or(&self.st.name)
    }

    /// Whether it holds documents or raw bytes.
    pub fn kind(&self) -> CollectionKind {
        if self.st.raw {
            CollectionKind::Raw
        } else {
            CollectionKind::Documents
        }
    }

    /// Number of documents.
    pub fn count(&self) -> Result<u64> {
        self.txn.count(&self.st.docs)
    }

    /// The id the next insert will get.
    pub fn next_id(&self) -> u64 {
        self.st.next_id
    }

    /// The collection's indexes.
    pub fn indexes(&self) -> &[IndexInfo] {
        &self.st.indexes
    }

    /// The status of the index named as `spec`: `None` when there is none,
    /// `InvalidArgument` when the index of that name has another spec (what
    /// a call asking for `spec` must refuse rather than answer done).
    pub fn index_status(&self, spec: &IndexSpec) -> Result<Option<IndexStatus>> {
        match self.st.indexes.iter().find(|i| i.spec.name == spec.name) {
            None => Ok(None),
            Some(have) if have.spec == *spec => Ok(Some(have.status)),
            Some(have) => Err(Error::invalid(format!(
                "collection {:?} already has an index named {:?} with another spec ({} on {})",
                self.name(),
                spec.name,
                have.spec.kind.as_str(),
                have.spec.field_strings().join(", ")
            ))),
        }
    }

    /// The stored bytes of document `id` (header included).
    pub fn get_stored(&self, id: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.stored(id)?.map(ValueGuard::into_vec))
    }

    /// The stored bytes of document `id`, borrowed from their page (the
    /// readers below decode them at once, so they need no copy).
    fn stored(&self, id: u64) -> Result<Option<ValueGuard>> {
        self.txn.get_guard(&self.st.docs, &id_key(id))
    }

    /// Document `id` with its schema version.
    pub fn get_versioned(&self, id: u64) -> Result<Option<(u32, Value)>> {
        self.st.check_documents()?;
        self.stored(id)?.map(|b| decode_stored(&b, &*self.st.dict)).transpose()
    }

    /// Document `id` appended to `out` as JSON text, written straight from
    /// its stored encoding (the same bytes as
    /// [`write_json`](crate::doc::json::write_json) of [`get`](Self::get)'s
    /// document): its schema version, or `None` (and nothing written) when
    /// there is no such document. On error `out` is left as it was.
    pub fn get_json(&self, id: u64, out: &mut Vec<u8>) -> Result<Option<u32>> {
        self.st.check_documents()?;
        match self.stored(id)? {
            Some(b) => write_stored_json(&b, &*self.st.dict, out).map(Some),
            None => Ok(None),
        }
    }

    /// Document `id`.
    pub fn get(&self, id: u64) -> Result<Option<Value>> {
        Ok(self.get_versioned(id)?.map(|(_, v)| v))
    }

    /// Document `id` as a `D`, read straight from its stored encoding (no
    /// intermediate [`Value`]); the same result as
    /// [`from_value`](crate::doc::serde_value::from_value) on [`get`](Self::get)'s.
    pub fn get_as<D: DeserializeOwned>(&self, id: u64) -> Result<Option<D>> {
        self.st.check_documents()?;
        self.stored(id)?.map(|bytes| self.stored_as(id, &bytes)).transpose()
    }

    /// Stored document `id` (`bytes`) as a `D`, for [`get_as`](Self::get_as).
    fn stored_as<D: DeserializeOwned>(&self, id: u64, bytes: &[u8]) -> Result<D> {
        let (header, payload) = decode_header(bytes)?;
        if header.is_raw() {
            return Err(Error::invalid("document is raw bytes, not a structured document"));
        }
        from_encoded(payload, &*self.st.dict).map_err(|e| in_document(e, self.name(), id))
    }

    /// Document `id` as a [`Document`](crate::Document) `D`: read like
    /// [`get_as`](Self::get_as) when its schema version is `D::VERSION`,
    /// otherwise passed through [`Document::migrate`](crate::Document::migrate)
    /// first. This collection need not be `D::COLLECTION`.
    pub fn get_doc<D: crate::Document>(&self, id: u64) -> Result<Option<D>> {
        self.st.check_documents()?;
        let Some(bytes) = self.stored(id)? else { return Ok(None) };
        stored_doc(&bytes, &*self.st.dict).map(Some).map_err(|e| in_document(e, self.name(), id))
    }

    /// [`get_doc`](Self::get_doc) of each id, in the same order (`None` for
    /// missing ones).
    pub fn get_many_docs<D: crate::Document>(&self, ids: &[u64]) -> Result<Vec<Option<D>>> {
        ids.iter().map(|&id| self.get_doc(id)).collect()
    }

    /// Documents with the given ids, in the same order (`None` for missing ones).
    pub fn get_many(&self, ids: &[u64]) -> Result<Vec<Option<Value>>> {
        ids.iter().map(|&id| self.get(id)).collect()
    }

    /// The payload of raw document `id` (the bytes that were stored).
    pub fn get_raw(&self, id: u64) -> Result<Option<Vec<u8>>> {
        match self.get_stored(id)? {
            None => Ok(None),
            Some(b) => {
                let (h, payload) = decode_header(&b)?;
                if !h.is_raw() {
                    return Err(Error::invalid(format!(
                        "document {id} of {:?} is structured; use get",
                        self.st.name
                    )));
                }
                Ok(Some(payload.to_vec()))
            }
        }
    }

    /// The ids of all documents, ascending (streams; constant memory).
    pub fn ids(&self) -> Result<impl Iterator<Item = Result<u64>> + '_> {
        let it = self.txn.range(&self.st.docs, Bound::Unbounded, Bound::Unbounded, false)?;
        Ok(it.map(|e| e.and_then(|(k, _)| id_from_key(&k))))
    }

    /// Every document in id order, as a streaming cursor.
    pub fn all(&self) -> Result<QueryCursor<'_, T>> {
        self.query(&QuerySpec::new(self.name()))
    }

    /// The document whose unique index `index` holds `values` (one value
    /// per indexed field).
    pub fn find_unique(&self, index: &str, values: &[Value]) -> Result<Option<(u64, Value)>> {
        self.read_unique(index, values, |_, b| Ok(decode_stored(b, &*self.st.dict)?.1))
    }

    /// [`find_unique`](Self::find_unique), appending the document to `out`
    /// as JSON text like [`get_json`](Self::get_json): `(id, schema_version)`.
    pub fn find_unique_json(
        &self,
        index: &str,
        values: &[Value],
        out: &mut Vec<u8>,
    ) -> Result<Option<(u64, u32)>> {
        self.read_unique(index, values, |_, b| write_stored_json(b, &*self.st.dict, out))
    }

    /// [`find_unique`](Self::find_unique), reading the document as a `D`
    /// like [`get_as`](Self::get_as).
    pub fn find_unique_as<D: DeserializeOwned>(
        &self,
        index: &str,
        values: &[Value],
    ) -> Result<Option<(u64, D)>> {
        self.read_unique(index, values, |id, b| self.stored_as(id, b))
    }

    /// [`find_unique`](Self::find_unique), reading the document as a
    /// [`Document`](crate::Document) `D` like [`get_doc`](Self::get_doc)
    /// (migrated if older).
    pub fn find_unique_doc<D: crate::Document>(
        &self,
        index: &str,
        values: &[Value],
    ) -> Result<Option<(u64, D)>> {
        self.read_unique(index, values, |id, b| {
            stored_doc(b, &*self.st.dict).map_err(|e| in_document(e, self.name(), id))
        })
    }

    /// `read` of the document that unique index `index` holds for
    /// `values` (its id and stored bytes), paired with its id (`None` when
    /// the index holds no such key). The document is checked against the
    /// entry: an index that points at a missing document, or at one without
    /// that key, is damaged, and returning that document would be wrong data.
    fn read_unique<X>(
        &self,
        index: &str,
        values: &[Value],
        read: impl FnOnce(u64, &[u8]) -> Result<X>,
    ) -> Result<Option<(u64, X)>> {
        let Some((key, id)) = self.unique_id(index, values)? else { return Ok(None) };
        let damaged = |what: &str| {
            Error::corruption(
                None,
                format!("unique index {index:?} of {:?} points at {what} document {id}", self.name()),
            )
        };
        let Some(bytes) = self.stored(id)? else { return Err(damaged("missing")) };
        if !has_index_key(&self.st.index(index)?.spec.fields, &bytes, &key, &*self.st.dict)? {
            return Err(damaged("a non-matching"));
        }
        Ok(Some((id, read(id, &bytes)?)))
    }

    /// The number of fields of unique index `index`, once it is known to
    /// be one that lookups can use: `NotFound` for an unknown index,
    /// `InvalidArgument` for one that is not unique or is still building
    /// (or for a raw collection). What every unique lookup checks first; a
    /// batch of lookups can check it once, even for no keys at all.
    pub fn unique_index_fields(&self, index: &str) -> Result<usize> {
        self.st.check_documents()?;
        let info = self.st.index(index)?;
        if info.spec.kind != IndexKind::Unique {
            return Err(Error::invalid(format!("index {index:?} is not unique")));
        }
        if info.status != IndexStatus::Ready {
            return Err(Error::invalid(format!("index {index:?} is still building")));
        }
        Ok(info.spec.fields.len())
    }

    /// The key of `values` in unique index `index`, and the id it holds.
    fn unique_id(&self, index: &str, values: &[Value]) -> Result<Option<(Vec<u8>, u64)>> {
        let fields = self.unique_index_fields(index)?;
        if values.len() != fields {
            return Err(Error::invalid(format!(
                "index {index:?} has {fields} field(s) but {} value(s) were given",
                values.len()
            )));
        }
        Value::check_all_nesting(values)?;
        let tree = self.st.index_tree_of(self.txn, index)?;
        let key = crate::index::key_encoding::encode_composite(&values.iter().collect::<Vec<_>>());
        let Some(v) = self.txn.get(&tree, &key)? else { return Ok(None) };
        let id = parse_entry(IndexKind::Unique, &key, &v)?.1;
        Ok(Some((key, id)))
    }

    /// Documents through index `index` with keys in `[lo, hi)` (a `None`
    /// end is open), in key order or reversed. `lo` and `hi` may hold fewer
    /// values than the index has fields (a prefix of a composite key). When
    /// `lo` and `hi` are equal in the engine's value order (where NaN equals
    /// NaN and `1` equals `1.0`) the range means equality: the keys that
    /// start with them.
    pub fn index_range(
        &self,
        index: &str,
        lo: Option<&[Value]>,
        hi: Option<&[Value]>,
        reverse: bool,
    ) -> Result<QueryCursor<'_, T>> {
        // (Before the comparison and the copies below, which recurse.)
        for bound in [lo, hi].into_iter().flatten() {
            Value::check_all_nesting(bound)?;
        }
        let equal = match (lo, hi) {
            (Some(lo), Some(hi)) => {
                lo.len() == hi.len() && lo.iter().zip(hi).all(|(a, b)| crate::doc::order::values_equal(a, b))
            }
            _ => false,
        };
        let mut spec = QuerySpec::new(self.name());
        spec.index = Some(IndexRange {
            index: index.to_string(),
            lo: lo.map(|v| IndexBound { values: v.to_vec(), inclusive: true }),
            hi: hi.map(|v| IndexBound { values: v.to_vec(), inclusive: equal }),
            reverse,
        });
        self.query(&spec)
    }

    /// Runs a query on this collection (its `collection` field must name
    /// it). A spec with `count_only` asks for a number: it is refused here
    /// and answered by [`query_count`](Self::query_count).
    pub fn query(&self, spec: &QuerySpec) -> Result<QueryCursor<'_, T>> {
        self.check_spec(spec, false)?;
        QueryCursor::new(self.txn, Cow::Borrowed(&*self.st), spec)
    }

    /// The number of results of `spec` (after `offset` and `limit`),
    /// counted without sorting or decoding whole documents; `count_only`
    /// may be set or not.
    pub fn query_count(&self, spec: &QuerySpec) -> Result<u64> {
        self.check_spec(spec, true)?;
        let cursor = QueryCursor::new(self.txn, Cow::Borrowed(&*self.st), spec)?;
        if matches!(spec.filter, Filter::True) && spec.index.is_none() && spec.after_id.is_none() {
            // Every document matches (whatever the sort, which a count
            // does not apply): the id tree's entry count, not a scan of it.
            // (The plan above is still made, so that a query it refuses is
            // refused here too.)
            let n = self.txn.count(&self.st.docs)?.saturating_sub(spec.offset);
            return Ok(spec.limit.map_or(n, |l| n.min(l)));
        }
        cursor.count()
    }

    fn check_spec(&self, spec: &QuerySpec, counting: bool) -> Result<()> {
        if spec.collection != self.st.name && Some(&spec.collection) != self.qualified.as_ref() {
            return Err(Error::invalid(format!(
                "query names collection {:?} but runs on {:?}",
                spec.collection,
                self.name()
            )));
        }
        if spec.count_only && !counting {
            return Err(Error::invalid(
                "\"count_only\": true asks for a number, not documents: use Collection::query_count",
            ));
        }
        Ok(())
    }

    /// [`query`](Self::query), consuming this handle: the cursor takes the
    /// collection's loaded state along and borrows only the transaction, so
    /// it can outlive the handle (bindings keep such cursors between calls).
    pub fn into_query(self, spec: &QuerySpec) -> Result<QueryCursor<'t, T>> {
        self.check_spec(spec, false)?;
        QueryCursor::new(self.txn, self.st, spec)
    }

    /// Every stored record in id order, as `(id, stored bytes)`: the
    /// document header (schema version, raw flag) and the encoded payload
    /// exactly as `docs/format.md` describes them (structured payloads
    /// refer to the collection's field-name dictionary). Streams; the
    /// iterator borrows only the transaction.
    pub fn stored_records(&self) -> Result<impl Iterator<Item = Result<(u64, Vec<u8>)>> + 't> {
        let it = self.txn.range(&self.st.docs, Bound::Unbounded, Bound::Unbounded, false)?;
        Ok(it.map(|e| e.and_then(|(k, v)| Ok((id_from_key(&k)?, v)))))
    }

    /// The stored records with ids in `lo..=hi`, in id order, as
    /// `(id, stored bytes)` ([`get_stored`](Self::get_stored) for a run of
    /// ids, in one walk of the id tree instead of a descent per id).
    pub fn stored_range(
        &self,
        lo: u64,
        hi: u64,
    ) -> Result<impl Iterator<Item = Result<(u64, Vec<u8>)>> + 't> {
        let (lo, hi) = (id_key(lo), id_key(hi));
        let it = self.txn.range(&self.st.docs, Bound::Included(&lo[..]), Bound::Included(&hi[..]), false)?;
        Ok(it.map(|e| e.and_then(|(k, v)| Ok((id_from_key(&k)?, v)))))
    }

    /// A stored record of this collection (from [`stored_range`](Self::stored_range)
    /// or [`get_stored`](Self::get_stored)) appended to `out` as JSON text,
    /// as [`get_json`](Self::get_json) writes it: its schema version.
    pub fn stored_to_json(&self, stored: &[u8], out: &mut Vec<u8>) -> Result<u32> {
        self.st.check_documents()?;
        write_stored_json(stored, &*self.st.dict, out)
    }

    /// The plan the engine would use for `spec`.
    pub fn plan(&self, spec: &QuerySpec) -> Result<crate::query::plan::Plan> {
        crate::query::plan::plan(self.txn, &self.st, spec)
    }

    /// The plan the engine would use for `spec`, as text.
    pub fn explain(&self, spec: &QuerySpec) -> Result<String> {
        Ok(self.plan(spec)?.describe())
    }
}

/// Options for creating a collection (the default: structured documents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectionOptions {
    /// Hold raw bytes instead of structured documents.
    pub raw: bool,
}

/// A collection's loaded state without its transaction (from
/// [`CollectionMut::detach`]).
#[derive(Debug)]
pub struct DetachedCollection {
    txn_id: u64,
    epoch: u64,
    st: CollState,
}

impl DetachedCollection {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.st.name
    }

    /// Whether [`WriteTxn::reattach`] would take it back now.
    pub fn is_current(&self, txn: &WriteTxn) -> bool {
        self.txn_id == txn.id && self.epoch == txn.collection_epoch
    }

    /// The state as `txn`'s commit leaves it, for the memo of that
    /// committed state (see [`WriteTxn::commit_keeping`]): what
    /// [`read_state`] would read from it. Everything but the trees' entry
    /// counts is kept up to date by the writes themselves (the metadata
    /// record and the name dictionary are written as they change); the
    /// counts are the transaction's ([`ReadableTxn::count`]).
    pub(crate) fn committed_state(self, txn: &WriteTxn) -> Result<(String, crate::storage::memo::Derived)> {
        let mut st = self.st;
        st.docs = st.docs.with_entries(txn.count(&st.docs)?);
        st.index_trees = st
            .index_trees
            .iter()
            .map(|t| t.as_ref().map(|t| Ok(t.with_entries(txn.count(t)?))).transpose())
            .collect::<Result<_>>()?;
        Ok((st.name.clone(), Arc::new(st)))
    }
}

/// Read-write access to one collection within the write transaction.
#[derive(Debug)]
pub struct CollectionMut<'t> {
    txn: &'t mut WriteTxn,
    st: CollState,
    /// The index trees, opened on first use, in `st.indexes` order (their
    /// roots never change; emptied whenever the index list changes).
    index_trees: Vec<Tree>,
    /// Where `put` encodes a document: kept between calls, so that a batch
    /// of documents does not grow a new buffer for each.
    encode_buf: Vec<u8>,
    /// The distinct first segments of the indexed paths with their name
    /// ids, in index order: what [`index_view`](Self::index_view) reads.
    /// Empty until first needed, and again after the index list changes or
    /// while some segment has no name id yet (no document has the field).
    view_fields: (Vec<String>, Vec<PathStep>),
    /// The first id of the batch being inserted (`insert_many` and its
    /// kin), while one is: a unique violation against a document of the
    /// same batch names it as such, since the failed batch leaves none of
    /// its documents behind.
    batch_from: Option<u64>,
}

/// The largest encode buffer a [`CollectionMut`] keeps for the next
/// document (a rare huge document should not pin its buffer).
const KEEP_ENCODE_BUF: usize = 1 << 20;

/// JSON arrays of at least this many bytes are encoded on a second thread
/// while the calling one stores them (about 3,000 documents of 300 bytes:
/// their encoding takes a few milliseconds, a thread's start a few tens of
/// microseconds).
pub const PARALLEL_ENCODE_BYTES: usize = 1 << 20;
/// Encoded bytes handed from the encoding thread to the storing one at a time.
const RUN_BYTES: usize = 256 << 10;
/// Runs encoded ahead of the storing thread at most (bounds the memory).
const RUNS_IN_FLIGHT: usize = 4;

/// [`check_stored_size`] of a raw payload of `len` bytes stored after a
/// header of `header_len`, in the payload's terms.
fn check_raw_size(len: usize, header_len: usize) -> Result<()> {
    let most = btree::max_value_len().saturating_sub(header_len as u64);
    if len as u64 > most {
        return Err(Error::invalid(format!("raw document of {len} bytes is too large (at most {most})")));
    }
    Ok(())
}

/// Refuses a stored document of `len` bytes that a B+tree value cannot hold.
fn check_stored_size(len: usize) -> Result<()> {
    if len as u64 > btree::max_value_len() {
        return Err(Error::invalid(format!("document of {len} bytes is too large")));
    }
    Ok(())
}

/// One index's planned change: tree, position in `st.indexes`, keys to
/// remove, keys to add.
type IndexChange = (Tree, usize, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The new content of a document slot.
enum NewDoc<'a> {
    Value(&'a Value, u32),
    Raw(&'a [u8], u32),
    /// A stored document already encoded against this collection's
    /// dictionary (header included).
    Encoded(&'a [u8]),
}

impl<'t> CollectionMut<'t> {
    fn with_state(txn: &'t mut WriteTxn, st: CollState) -> Self {
        CollectionMut {
            txn,
            st,
            index_trees: Vec::new(),
            encode_buf: Vec::new(),
            view_fields: Default::default(),
            batch_from: None,
        }
    }

    /// Opens collection `name`, creating it (with `options`) if missing.
    /// An existing collection of the other kind is `InvalidArgument`.
    pub fn open_or_create(txn: &'t mut WriteTxn, name: &str, options: CollectionOptions) -> Result<Self> {
        check_component_name("collection", name)?;
        refuse_attached(txn, name)?;
        txn.collection_epoch += 1;
        if let Some(st) = load_state(&*txn, name)? {
            if st.raw != options.raw {
                return Err(Error::invalid(format!(
                    "collection {name:?} already exists as a {} collection",
                    if st.raw { "raw" } else { "document" }
                )));
            }
            return Ok(CollectionMut::with_state(txn, st));
        }
        refuse_nul_in_new_name("collection", name)?;
        let meta = CollMeta { raw: options.raw, next_id: FIRST_ID, indexes: Vec::new() };
        let ct = txn.create_engine_tree(COLLECTIONS_TREE)?;
        txn.insert(&ct, name.as_bytes(), &postcard::to_allocvec(&meta).expect("meta serializes"))?;
        let docs = txn.create_engine_tree(&docs_tree(name))?;
        txn.create_engine_tree(&names_tree(name))?;
        let st = CollState {
            name: name.to_string(),
            raw: options.raw,
            next_id: FIRST_ID,
            persisted_next_id: FIRST_ID,
            indexes: Arc::default(),
            dict: Arc::default(),
            persisted_names: 0,
            docs,
            index_trees: Vec::new(),
        };
        Ok(CollectionMut::with_state(txn, st))
    }

    /// Opens existing collection `name`; `NotFound` if missing.
    pub fn open(txn: &'t mut WriteTxn, name: &str) -> Result<Self> {
        refuse_attached(txn, name)?;
        txn.collection_epoch += 1;
        let st = load_state(&*txn, name)?.ok_or_else(|| Error::not_found(format!("collection {name:?}")))?;
        Ok(CollectionMut::with_state(txn, st))
    }

    /// Releases the transaction but keeps the loaded state (metadata and
    /// name dictionary), so that [`WriteTxn::reattach`] can reopen the
    /// collection later in the same transaction without rereading them.
    /// Bindings that open the collection once per call use this.
    pub fn detach(self) -> DetachedCollection {
        DetachedCollection { txn_id: self.txn.id, epoch: self.txn.collection_epoch, st: self.st }
    }

    /// Read access through this handle (sees this transaction's writes).
    pub fn read(&self) -> Collection<'_, WriteTxn> {
        Collection { txn: &*self.txn, st: Cow::Borrowed(&self.st), qualified: None }
    }

    /// Document `id`.
    pub fn get(&self, id: u64) -> Result<Option<Value>> {
        self.read().get(id)
    }

    /// Number of documents.
    pub fn count(&self) -> Result<u64> {
        self.read().count()
    }

    /// The tree of index `pos` (in `st.indexes` order).
    fn index_tree_at(&mut self, pos: usize) -> Result<Tree> {
        if self.index_trees.len() != self.st.indexes.len() {
            // The trees loaded with the state, when it has them all (no
            // catalog lookup); else each opened by name (a missing one fails).
            let loaded: Option<Vec<Tree>> = if self.st.index_trees.len() == self.st.indexes.len() {
                self.st.index_trees.iter().cloned().collect()
            } else {
                None
            };
            self.index_trees = match loaded {
                Some(trees) => trees,
                None => self
                    .st
                    .indexes
                    .iter()
                    .map(|i| self.txn.open_engine_tree(&index_tree(&self.st.name, &i.spec.name)))
                    .collect::<Result<_>>()?,
            };
        }
        Ok(self.index_trees[pos].clone())
    }

    /// Forgets the names a refused document brought into the dictionary
    /// (those from id `len` on); none, and the dictionary stays shared.
    fn forget_names_since(&mut self, len: usize) {
        if self.st.dict.len() != len {
            Arc::make_mut(&mut self.st.dict).truncate(len);
        }
    }

    fn save_meta(&mut self) -> Result<()> {
        let ct = self.txn.open_engine_tree(COLLECTIONS_TREE)?;
        let meta = postcard::to_allocvec(&self.st.meta()).expect("meta serializes");
        self.txn.insert(&ct, self.st.name.as_bytes(), &meta)?;
        self.st.persisted_next_id = self.st.next_id;
        Ok(())
    }

    fn save_names(&mut self) -> Result<()> {
        if self.st.dict.len() == self.st.persisted_names {
            return Ok(());
        }
        let nt = self.txn.open_engine_tree(&names_tree(&self.st.name))?;
        let new: Vec<(u32, String)> = self
            .st
            .dict
            .names_since(self.st.persisted_names as u32)
            .map(|(i, n)| (i, n.to_string()))
            .collect();
        for (id, name) in new {
            self.txn.insert(&nt, &id.to_be_bytes(), name.as_bytes())?;
        }
        self.st.persisted_names = self.st.dict.len();
        Ok(())
    }

    /// Inserts a document (a map) with the next id, which it returns.
    pub fn insert(&mut self, doc: &Value) -> Result<u64> {
        self.insert_versioned(doc, 0)
    }

    /// [`insert`](Self::insert) with an application schema version in the header.
    pub fn insert_versioned(&mut self, doc: &Value, schema_version: u32) -> Result<u64> {
        let id = self.next_insert_id()?;
        self.put(id, NewDoc::Value(doc, schema_version))?;
        Ok(id)
    }

    /// Inserts several documents; returns their ids. All or nothing: see
    /// [`insert_many_versioned`](Self::insert_many_versioned).
    pub fn insert_many<'a>(&mut self, docs: impl IntoIterator<Item = &'a Value>) -> Result<Vec<u64>> {
        self.insert_many_versioned(docs, 0)
    }

    /// Inserts several documents with consecutive new ids and one schema
    /// version; returns the ids. All or nothing: when one document fails (a
    /// unique violation, a non-map document, an oversized key), the ones
    /// this call already inserted are deleted again and the next id is
    /// restored, so the collection is as before the call and the
    /// transaction stays usable. (When the failure was an I/O or
    /// corruption error, the transaction refuses further changes, see
    /// [`WriteTxn::is_broken`]: no undo, roll it back.)
    pub fn insert_many_versioned<'a>(
        &mut self,
        docs: impl IntoIterator<Item = &'a Value>,
        schema_version: u32,
    ) -> Result<Vec<u64>> {
        self.insert_batch(docs.into_iter().map(Ok), schema_version)
    }

    /// [`insert_many_versioned`](Self::insert_many_versioned) over documents
    /// made one at a time (an `Err` item fails the batch like a refused
    /// document).
    pub(crate) fn insert_batch<V: std::borrow::Borrow<Value>>(
        &mut self,
        docs: impl IntoIterator<Item = Result<V>>,
        schema_version: u32,
    ) -> Result<Vec<u64>> {
        self.insert_each(docs, true, |c, id, doc| c.put(id, NewDoc::Value(doc?.borrow(), schema_version)))
    }

    /// Inserts one document per item with consecutive new ids, `put_one`
    /// writing each. All or nothing: when one fails, the ones already
    /// inserted are deleted again and the next id is restored. `batch`
    /// false (a write of one document: Db::insert, insert_doc) reports a
    /// unique violation as a single insert does, not as "document 0 of
    /// the batch"; the batch calls keep the batch wording whatever their
    /// length (obj_doc_insert_lines' line rule needs it for one line too).
    fn insert_each<I>(
        &mut self,
        items: impl IntoIterator<Item = I>,
        batch: bool,
        mut put_one: impl FnMut(&mut Self, u64, I) -> Result<bool>,
    ) -> Result<Vec<u64>> {
        let first = self.st.next_id;
        let mut ids = Vec::new();
        self.batch_from = batch.then_some(first);
        for item in items {
            // (The id space running out fails the batch like a bad document.)
            match self.next_insert_id().and_then(|id| put_one(self, id, item).map(|_| id)) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    self.batch_from = None;
                    self.undo_inserts(&ids, first)?;
                    return Err(e);
                }
            }
        }
        self.batch_from = None;
        Ok(ids)
    }

    /// Inserts the stored documents laid end to end in `bytes` (each ending
    /// at the next of `ends`) with consecutive new ids; all or nothing, as
    /// [`insert_each`](Self::insert_each).
    fn insert_encoded(&mut self, bytes: &[u8], ends: Vec<usize>) -> Result<Vec<u64>> {
        let mut start = 0;
        self.insert_each(ends, true, |c, id, end| {
            c.put(id, NewDoc::Encoded(&bytes[std::mem::replace(&mut start, end)..end]))
        })
    }

    /// Deletes again the documents `ids` that a failed batch inserted and
    /// restores the next id to `first`, the batch's first id.
    fn undo_inserts(&mut self, ids: &[u64], first: u64) -> Result<()> {
        if self.txn.is_broken() {
            // A page change failed: nothing more can be changed, and the
            // transaction can only be rolled back (the caller's error says why).
            return Ok(());
        }
        for &id in ids.iter().rev() {
            self.delete(id)?;
        }
        self.st.next_id = first;
        self.save_meta()
    }

    /// Inserts a document given as JSON text (the engine's JSON form,
    /// [`crate::doc::json`]); returns its id. Plain JSON is encoded as it
    /// is parsed, without building a [`Value`].
    pub fn insert_json(&mut self, json: &[u8], schema_version: u32) -> Result<u64> {
        let id = self.next_insert_id()?;
        self.put_json(id, json, schema_version)?;
        Ok(id)
    }

    /// [`upsert_versioned`](Self::upsert_versioned) for a document given
    /// as JSON text; true if one was replaced.
    pub fn upsert_json(&mut self, id: u64, json: &[u8], schema_version: u32) -> Result<bool> {
        self.put_json(id, json, schema_version)
    }

    fn put_json(&mut self, id: u64, json: &[u8], schema_version: u32) -> Result<bool> {
        self.st.check_documents()?;
        let mut stored = Vec::new();
        let names = self.st.dict.len();
        if document_from_json(json, schema_version, &mut SharedDict::new(&mut self.st.dict), &mut stored) {
            return self.put(id, NewDoc::Encoded(&stored));
        }
        self.forget_names_since(names);
        let doc = document_from_json_slice(json)?;
        self.put(id, NewDoc::Value(&doc, schema_version))
    }

    /// Inserts the documents of a JSON array with consecutive new ids;
    /// all or nothing, as [`insert_many_versioned`](Self::insert_many_versioned).
    /// `check_count` sees how many documents the array holds and may
    /// refuse; a small array is parsed (and plain JSON encoded) whole before
    /// it is called, so a refusal comes before anything is written. A large
    /// one (at least [`PARALLEL_ENCODE_BYTES`]) is encoded on another thread
    /// while this one stores what is ready, and `check_count` sees the
    /// running count as runs arrive; a refusal then removes what was
    /// stored. Errors: not an array, an element that is not an object,
    /// malformed JSON. (When a batch has several faults, a small one
    /// reports a malformed text first; a large one reports whichever fault
    /// it meets first in document order.)
    pub fn insert_json_many(
        &mut self,
        json: &[u8],
        schema_version: u32,
        check_count: impl Fn(usize) -> Result<()>,
    ) -> Result<Vec<u64>> {
        self.st.check_documents()?;
        if json.len() >= PARALLEL_ENCODE_BYTES && spare_core() {
            if let Some(ids) = self.insert_json_runs(json, schema_version, &check_count)? {
                return Ok(ids);
            }
        } else {
            let mut bytes = Vec::with_capacity(json.len());
            let names = self.st.dict.len();
            if let Some(ends) =
                documents_from_json(json, schema_version, Arc::make_mut(&mut self.st.dict), &mut bytes)
            {
                if let Err(e) = check_count(ends.len()) {
                    Arc::make_mut(&mut self.st.dict).truncate(names);
                    return Err(e);
                }
                return self.insert_encoded(&bytes, ends);
            }
            Arc::make_mut(&mut self.st.dict).truncate(names);
        }
        let docs = documents_from_json_slice(json)?;
        check_count(docs.len())?;
        self.insert_batch(docs.iter().map(Ok), schema_version)
    }

    /// The direct path of [`insert_json_many`](Self::insert_json_many) for
    /// a large array: a scoped thread encodes the documents in runs (with
    /// a copy of the name dictionary, whose new names come along with each
    /// run) while this thread stores each run as it arrives, so parsing
    /// overlaps the B+tree work. `Ok(None)`, with nothing of the batch left
    /// stored, when the text needs the general path.
    fn insert_json_runs(
        &mut self,
        json: &[u8],
        schema_version: u32,
        check_count: &impl Fn(usize) -> Result<()>,
    ) -> Result<Option<Vec<u64>>> {
        let first = self.st.next_id;
        let mut ids = Vec::new();
        let mut encoder_dict = MemNameDict::clone(&self.st.dict);
        self.batch_from = Some(first);
        let (stored, encoded) = std::thread::scope(|scope| {
            let (send, receive) = std::sync::mpsc::sync_channel(RUNS_IN_FLIGHT);
            let encoder =
                std::thread::Builder::new().name("obj-encode".into()).spawn_scoped(scope, move || {
                    documents_from_json_in_runs(json, schema_version, &mut encoder_dict, RUN_BYTES, |run| {
                        send.send(run).is_ok()
                    })
                });
            let Ok(encoder) = encoder else {
                // No thread to be had: the general path encodes on this one.
                return (Ok(()), false);
            };
            let stored = receive.iter().try_for_each(|run| self.store_run(run, &mut ids, check_count));
            // Once this thread has stopped taking runs, the encoder's next
            // hand-over fails and it stops too.
            drop(receive);
            let encoded = encoder.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (stored, encoded)
        });
        self.batch_from = None;
        if stored.is_ok() && encoded {
            return Ok(Some(ids));
        }
        self.undo_inserts(&ids, first)?;
        stored.map(|()| None)
    }

    /// Stores the documents of one run from
    /// [`insert_json_runs`](Self::insert_json_runs) with the next ids,
    /// appended to `ids`, after the names the run brought in.
    fn store_run(
        &mut self,
        run: EncodedRun,
        ids: &mut Vec<u64>,
        check_count: &impl Fn(usize) -> Result<()>,
    ) -> Result<()> {
        check_count(ids.len() + run.ends.len())?;
        let dict = Arc::make_mut(&mut self.st.dict);
        for name in &run.new_names {
            // The encoder's dictionary started as a copy of this one and only
            // it assigns names meanwhile, so each gets the id it has there.
            dict.id_of(name)?;
        }
        let mut start = 0;
        for end in run.ends {
            let id = self.next_insert_id()?;
            self.put(id, NewDoc::Encoded(&run.bytes[std::mem::replace(&mut start, end)..end]))?;
            ids.push(id);
        }
        Ok(())
    }

    /// Inserts raw bytes (raw collections only); returns the new id.
    pub fn insert_raw(&mut self, payload: &[u8]) -> Result<u64> {
        let id = self.next_insert_id()?;
        self.put(id, NewDoc::Raw(payload, 0))?;
        Ok(id)
    }

    /// Inserts several raw payloads (raw collections only) with
    /// consecutive new ids, which it returns; all or nothing, as
    /// [`insert_many_versioned`](Self::insert_many_versioned).
    pub fn insert_raw_many<'a>(&mut self, payloads: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u64>> {
        self.insert_each(payloads, true, |c, id, payload| c.put(id, NewDoc::Raw(payload, 0)))
    }

    /// Writes `doc` at `id`, replacing any document there; true if one was
    /// replaced. Ids at or above the next id move it past `id`.
    pub fn upsert(&mut self, id: u64, doc: &Value) -> Result<bool> {
        self.put(id, NewDoc::Value(doc, 0))
    }

    /// [`upsert`](Self::upsert) with a schema version.
    pub fn upsert_versioned(&mut self, id: u64, doc: &Value, schema_version: u32) -> Result<bool> {
        self.put(id, NewDoc::Value(doc, schema_version))
    }

    /// Writes the serde value `doc` (which must serialize to a map) at
    /// `id`; true if it replaced a document. The common shapes are encoded
    /// as they are serialized (`doc/serde_direct.rs`), the rest through a
    /// [`Value`]. `buf` and `fields` are kept across the calls of a batch
    /// (scratch space; the dictionary ids of the type's field names).
    fn put_serialized<T: Serialize + ?Sized>(
        &mut self,
        id: u64,
        doc: &T,
        schema_version: u32,
        buf: &mut Vec<u8>,
        fields: &mut FieldIds,
    ) -> Result<bool> {
        self.st.check_documents()?;
        buf.clear();
        let names = self.st.dict.len();
        if document_from_serialize(doc, schema_version, &mut SharedDict::new(&mut self.st.dict), fields, buf)
        {
            return self.put(id, NewDoc::Encoded(buf));
        }
        self.forget_names_since(names);
        let v = to_value(doc).map_err(|e| match e {
            Error::InvalidArgument(m) => {
                Error::invalid(format!("a document for collection {:?}: {m}", self.st.name))
            }
            e => e,
        })?;
        if !matches!(v, Value::Map(_)) {
            return Err(Error::invalid(format!(
                "a document for collection {:?} must serialize to a map, not {}",
                self.st.name,
                v.type_name()
            )));
        }
        self.put(id, NewDoc::Value(&v, schema_version))
    }

    /// [`put_serialized`](Self::put_serialized) of one document.
    pub(crate) fn upsert_serialized<T: Serialize + ?Sized>(
        &mut self,
        id: u64,
        doc: &T,
        schema_version: u32,
    ) -> Result<bool> {
        self.put_serialized(id, doc, schema_version, &mut Vec::new(), &mut FieldIds::default())
    }

    /// Inserts serde values with consecutive new ids; all or nothing, as
    /// [`insert_many_versioned`](Self::insert_many_versioned).
    pub(crate) fn insert_serialized_many<T: Serialize>(
        &mut self,
        docs: &[T],
        schema_version: u32,
        batch: bool,
    ) -> Result<Vec<u64>> {
        let (mut buf, mut fields) = (Vec::new(), FieldIds::default());
        self.insert_each(docs, batch, |c, id, doc| {
            c.put_serialized(id, doc, schema_version, &mut buf, &mut fields)
        })
    }

    /// Writes raw bytes at `id` (raw collections only); true if replaced.
    pub fn upsert_raw(&mut self, id: u64, payload: &[u8]) -> Result<bool> {
        self.put(id, NewDoc::Raw(payload, 0))
    }

    /// [`upsert_raw`](Self::upsert_raw) with a schema version.
    pub fn upsert_raw_versioned(&mut self, id: u64, payload: &[u8], schema_version: u32) -> Result<bool> {
        self.put(id, NewDoc::Raw(payload, schema_version))
    }

    /// Inserts the [`Document`](crate::Document) `doc` with the next id
    /// (which it returns), its header carrying `T::VERSION`. This
    /// collection need not be `T::COLLECTION`; open that one with
    /// [`WriteTxn::documents`] to have `T`'s declared indexes created too.
    pub fn insert_doc<T: crate::Document>(&mut self, doc: &T) -> Result<u64> {
        Ok(self.insert_serialized_many(std::slice::from_ref(doc), T::VERSION, false)?[0])
    }

    /// Inserts several [`Document`](crate::Document)s with consecutive new
    /// ids; all or nothing, as [`insert_many_versioned`](Self::insert_many_versioned).
    pub fn insert_docs<T: crate::Document>(&mut self, docs: &[T]) -> Result<Vec<u64>> {
        self.insert_serialized_many(docs, T::VERSION, true)
    }

    /// Writes the [`Document`](crate::Document) `doc` at `id` (with
    /// `T::VERSION`); true if it replaced a document.
    pub fn upsert_doc<T: crate::Document>(&mut self, id: u64, doc: &T) -> Result<bool> {
        self.upsert_serialized(id, doc, T::VERSION)
    }

    /// Document `id` as a `T` (migrated, see [`Collection::get_doc`]), as
    /// this transaction sees it.
    pub fn get_doc<T: crate::Document>(&self, id: u64) -> Result<Option<T>> {
        self.read().get_doc(id)
    }

    /// Reads document `id` as a `T` (migrated if older, see
    /// [`Collection::get_doc`]), lets `f` change it and writes it back
    /// with `T::VERSION`, in this transaction. `Ok(false)` when there is no
    /// such document; an error from `f` leaves the document untouched.
    /// Fields that `T` does not have are gone afterwards (it is written
    /// back as `T` serializes), as with [`crate::Db::update`].
    pub fn update_doc<T: crate::Document>(
        &mut self,
        id: u64,
        f: impl FnOnce(&mut T) -> Result<()>,
    ) -> Result<bool> {
        let Some(mut doc) = self.get_doc::<T>(id)? else { return Ok(false) };
        f(&mut doc)?;
        self.upsert_serialized(id, &doc, T::VERSION)?;
        Ok(true)
    }

    /// Raises the next id to at least `next_id`, so that no id below it is
    /// ever assigned (an import keeps the ids of documents deleted before
    /// the export from being assigned again). A lower `next_id` changes
    /// nothing.
    pub fn raise_next_id(&mut self, next_id: u64) -> Result<()> {
        if next_id > self.st.next_id {
            self.st.next_id = next_id;
            self.save_meta()?;
        }
        Ok(())
    }

    /// Reads document `id`, lets `f` change it, and writes it back (keeping
    /// its schema version). `Ok(false)` when there is no such document. An
    /// error from `f` leaves the document untouched.
    pub fn update(&mut self, id: u64, f: impl FnOnce(&mut Value) -> Result<()>) -> Result<bool> {
        let Some((version, mut doc)) = self.read().get_versioned(id)? else { return Ok(false) };
        f(&mut doc)?;
        self.put(id, NewDoc::Value(&doc, version))?;
        Ok(true)
    }

    /// Deletes document `id` and its index entries; true if it existed.
    /// Its id is never assigned again.
    pub fn delete(&mut self, id: u64) -> Result<bool> {
        let Some(old) = self.read().get_stored(id)? else { return Ok(false) };
        if !self.st.raw {
            let (_, old) = decode_stored(&old, &*self.st.dict)?;
            for pos in 0..self.st.indexes.len() {
                let info = &self.st.indexes[pos];
                if !info.covers(id) {
                    continue;
                }
                let (kind, keys) = (info.spec.kind, doc_index_keys(&info.spec.fields, &old)?);
                let tree = self.index_tree_at(pos)?;
                for k in keys {
                    self.remove_entry(&tree, kind, &k, id)?;
                }
            }
        }
        self.txn.delete(&self.st.docs, &id_key(id))?;
        // The mark must cover this id before it can stop being the largest.
        if id >= self.st.persisted_next_id {
            self.save_meta()?;
        }
        Ok(true)
    }

    fn remove_entry(&mut self, tree: &Tree, kind: IndexKind, key: &[u8], id: u64) -> Result<()> {
        match kind {
            IndexKind::Unique => {
                // Only remove the entry if it is this document's.
                if let Some(v) = self.txn.get(tree, key)? {
                    if parse_entry(kind, key, &v)?.1 == id {
                        self.txn.delete(tree, key)?;
                    }
                }
            }
            _ => {
                self.txn.delete(tree, &crate::index::key_encoding::index_entry_key(key, id))?;
            }
        }
        Ok(())
    }

    /// The id an insert takes: the next id, unless the id space is used up
    /// (`u64::MAX` is no document's: see [`check_doc_id`]).
    fn next_insert_id(&self) -> Result<u64> {
        if self.st.next_id == u64::MAX {
            return Err(Error::invalid(format!(
                "document id space exhausted: the next id would be past the largest, {}",
                u64::MAX - 1
            )));
        }
        Ok(self.st.next_id)
    }

    /// Writes document `id` with its index entries.
    fn put(&mut self, id: u64, new: NewDoc<'_>) -> Result<bool> {
        check_doc_id(id)?;
        let usable = self.txn.pages().usable_size();
        // Every stored id is below the next id, so an id at or past it is new.
        let old = if id >= self.st.next_id { None } else { self.read().get_stored(id)? };
        let mut buf = std::mem::take(&mut self.encode_buf);
        buf.clear();
        let (stored, new_value): (&[u8], Option<Cow<'_, Value>>) = match new {
            NewDoc::Raw(payload, version) => {
                if !self.st.raw {
                    return Err(Error::invalid(format!(
                        "collection {:?} holds structured documents; raw bytes go to a raw collection",
                        self.st.name
                    )));
                }
                // The header, then the payload once its size is checked: a
                // payload over the limit must not cost its size in memory
                // first (nor be named by the stored size, which the caller
                // never gave).
                encode_header(&DocHeader::raw(version), &mut buf)?;
                check_raw_size(payload.len(), buf.len())?;
                buf.extend_from_slice(payload);
                (&buf, None)
            }
            NewDoc::Value(doc, version) => {
                self.st.check_documents()?;
                if !matches!(doc, Value::Map(_)) {
                    return Err(Error::invalid(format!("a document must be a map, not {}", doc.type_name())));
                }
                encode_document_versioned(doc, version, &mut SharedDict::new(&mut self.st.dict), &mut buf)?;
                (&buf, Some(Cow::Borrowed(doc)))
            }
            NewDoc::Encoded(stored) => {
                self.st.check_documents()?;
                (stored, Some(Cow::Owned(self.index_view(stored)?)))
            }
        };
        check_stored_size(stored.len())?;
        // Plan every index change and check it before changing anything, so
        // that a unique violation (or an oversized key) leaves no trace.
        let mut changes: Vec<IndexChange> = Vec::new();
        // Indexes this document makes multi-valued: their flags change only
        // once the write has succeeded (a refused write leaves no trace,
        // and memory must keep matching the saved record).
        let mut now_multi_valued: Vec<usize> = Vec::new();
        if let Some(doc) = new_value.as_deref() {
            let old_doc = match &old {
                Some(b) => Some(self.index_view(b)?),
                None => None,
            };
            for pos in 0..self.st.indexes.len() {
                if !self.st.indexes[pos].covers(id) {
                    continue;
                }
                let tree = self.index_tree_at(pos)?;
                let info = &self.st.indexes[pos];
                let new_keys = doc_index_keys(&info.spec.fields, doc)?;
                if info.single_valued && !new_keys.is_empty() && !single_valued(&info.spec.fields, doc) {
                    now_multi_valued.push(pos);
                }
                let old_keys = match &old_doc {
                    Some(o) => doc_index_keys(&info.spec.fields, o)?,
                    None => Vec::new(),
                };
                // A new document (the batch case) adds every key it has.
                let (add, remove): (Vec<Vec<u8>>, Vec<Vec<u8>>) = if old_keys.is_empty() {
                    (new_keys, Vec::new())
                } else {
                    (
                        new_keys.iter().filter(|k| old_keys.binary_search(k).is_err()).cloned().collect(),
                        old_keys.iter().filter(|k| new_keys.binary_search(k).is_err()).cloned().collect(),
                    )
                };
                check_index_key_lengths(&info.spec, &add, usable)?;
                changes.push((tree, pos, remove, add));
            }
        }
        // Unique keys are checked as they are inserted (one descent each),
        // before anything else of the write.
        self.insert_unique_entries(&mut changes, id)?;
        let mut entry = Vec::new();
        for (tree, pos, remove, add) in changes {
            let kind = self.st.indexes[pos].spec.kind;
            for k in remove {
                self.remove_entry(&tree, kind, &k, id)?;
            }
            for k in add {
                match kind {
                    IndexKind::Unique => self.txn.insert(&tree, &k, &id.to_be_bytes())?,
                    _ => {
                        crate::index::key_encoding::index_entry_key_into(&k, id, &mut entry);
                        self.txn.insert(&tree, &entry, &[])?
                    }
                };
            }
        }
        let replaced = self.txn.insert(&self.st.docs, &id_key(id), stored)?;
        if buf.capacity() <= KEEP_ENCODE_BUF {
            self.encode_buf = buf;
        }
        self.save_names()?;
        if id >= self.st.next_id {
            self.st.next_id = id + 1; // below u64::MAX, checked above
        }
        if !now_multi_valued.is_empty() {
            for pos in now_multi_valued {
                Arc::make_mut(&mut self.st.indexes)[pos].single_valued = false;
            }
            self.save_meta()?;
        }
        Ok(replaced)
    }

    /// Inserts the unique-index keys that `changes` adds for document `id`,
    /// each only if absent, and takes them out of `changes`. A key another
    /// document holds is a unique violation: the keys inserted here are
    /// deleted again, so the failed write leaves no entry behind (nothing
    /// else of it, not even the removal of an updated document's old keys,
    /// has been written yet).
    fn insert_unique_entries(&mut self, changes: &mut [IndexChange], id: u64) -> Result<()> {
        // (position in `changes`, key) of each key inserted so far.
        let mut done: Vec<(usize, Vec<u8>)> = Vec::new();
        for c in 0..changes.len() {
            let pos = changes[c].1;
            if self.st.indexes[pos].spec.kind != IndexKind::Unique {
                continue;
            }
            for k in std::mem::take(&mut changes[c].3) {
                let other = match self.txn.insert_new(&changes[c].0, &k, &id.to_be_bytes()) {
                    Ok(None) => {
                        done.push((c, k));
                        continue;
                    }
                    Ok(Some(v)) => parse_entry(IndexKind::Unique, &k, &v).map(|(_, other)| other),
                    Err(e) => Err(e),
                };
                let err = match other {
                    Ok(other) if other == id => continue,
                    Ok(other) => {
                        let spec = &self.st.indexes[pos].spec;
                        match self.batch_from {
                            // Ids from the batch's first on are the batch's own.
                            Some(first) if other >= first => {
                                unique_violation_in_batch(&self.st.name, spec, other - first, id - first)
                            }
                            // Against a stored document: its id, and the
                            // offending document's place in the batch.
                            Some(first) => {
                                unique_violation_from_batch(&self.st.name, spec, other, id - first)
                            }
                            None => unique_violation(&self.st.name, spec, other),
                        }
                    }
                    Err(e) => e,
                };
                for (c, k) in done.iter().rev() {
                    self.txn.delete(&changes[*c].0, k)?;
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// What the collection's indexes read of a stored document: its
    /// top-level fields that an index path starts with, decoded into a map
    /// (empty without indexes). [`doc_index_keys`] finds the same keys in
    /// it as in the whole document, without the rest being decoded.
    fn index_view(&mut self, stored: &[u8]) -> Result<Value> {
        let (header, payload) = decode_header(stored)?;
        if header.is_raw() {
            return Err(Error::corruption(
                None,
                format!("collection {:?} holds a raw document", self.st.name),
            ));
        }
        // The distinct first segments with a name id, then one walk of the
        // document's map for all of them.
        if self.view_fields.0.is_empty() {
            let (mut names, mut steps) = (Vec::new(), Vec::new());
            let mut complete = true;
            for info in self.st.indexes.iter() {
                for path in &info.spec.fields {
                    let name = &path.segments()[0];
                    if names.contains(name) {
                        continue;
                    }
                    match self.st.dict.lookup_id(name) {
                        Some(id) => {
                            names.push(name.clone());
                            steps.push(PathStep::field(id));
                        }
                        None => complete = false,
                    }
                }
            }
            let view = self.view_of(payload, &names, &steps);
            if complete {
                self.view_fields = (names, steps);
            }
            return view;
        }
        self.view_of(payload, &self.view_fields.0, &self.view_fields.1)
    }

    /// The fields `names` (read by `steps`) of the document map `payload`.
    fn view_of(&self, payload: &[u8], names: &[String], steps: &[PathStep]) -> Result<Value> {
        let mut doc = TopFields::new(payload, steps);
        let mut fields: Vec<(String, Value)> = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if let Some(found) = doc.get(i)? {
                fields.push((name.clone(), decode_value_at(found, &*self.st.dict, 1)?));
            }
        }
        Ok(Value::Map(fields))
    }

    /// Creates index `spec` and fills it from the existing documents in
    /// this transaction; it is ready when this returns. For large
    /// collections prefer [`Db::create_index`](crate::Db::create_index),
    /// which builds in batches without holding the write lock throughout.
    pub fn create_index(&mut self, spec: IndexSpec) -> Result<()> {
        self.add_index(spec.clone(), IndexStatus::Building)?;
        loop {
            match self.backfill(&spec.name, usize::MAX) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                // A failed build (a unique violation) leaves no index.
                Err(e) => {
                    self.drop_index(&spec.name)?;
                    return Err(e);
                }
            }
        }
    }

    /// Finishes building index `name` in this transaction (an index left
    /// `building` by an interrupted or concurrent [`Db::create_index`](crate::Db::create_index));
    /// nothing for a ready one. A failed build (a unique violation) drops
    /// the index and returns the error.
    pub fn finish_index(&mut self, name: &str) -> Result<()> {
        loop {
            match self.backfill(name, usize::MAX) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    self.drop_index(name)?;
                    return Err(e);
                }
            }
        }
    }

    /// Declares index `spec` without filling it (status `building`).
    pub(crate) fn add_index(&mut self, spec: IndexSpec, status: IndexStatus) -> Result<()> {
        spec.validate()?;
        refuse_nul_in_new_name("index", &spec.name)?;
        self.st.check_documents()?;
        if self.st.indexes.iter().any(|i| i.spec.name == spec.name) {
            return Err(Error::invalid(format!(
                "collection {:?} already has an index named {:?}",
                self.st.name, spec.name
            )));
        }
        self.txn.create_engine_tree(&index_tree(&self.st.name, &spec.name))?;
        // Single-valued until a document says otherwise (the build checks
        // the documents already there).
        Arc::make_mut(&mut self.st.indexes).push(IndexInfo {
            spec,
            status,
            built_upto: 0,
            single_valued: true,
        });
        self.index_trees.clear();
        self.st.index_trees.clear();
        self.view_fields = Default::default();
        self.save_meta()
    }

    /// Indexes up to `batch` more documents of building index `name`;
    /// true when the index is complete (and now `ready`). A unique
    /// violation is an error (the caller drops the index).
    pub(crate) fn backfill(&mut self, name: &str, batch: usize) -> Result<bool> {
        let pos =
            self.st.indexes.iter().position(|i| i.spec.name == name).ok_or_else(|| {
                Error::not_found(format!("index {name:?} of collection {:?}", self.st.name))
            })?;
        let info = self.st.indexes[pos].clone();
        if info.status == IndexStatus::Ready {
            return Ok(true);
        }
        // `built_upto` 0 while building also means that nothing is built
        // yet: start at id 0 then (an upsert may store a document there;
        // indexing it again is harmless, its entry is the same).
        let start = if info.built_upto == 0 { id_key(0) } else { id_key(info.built_upto.saturating_add(1)) };
        // (two at least: a batch of document 0 alone would leave
        // `built_upto` at 0 and the next batch would start there again)
        let batch = batch.max(2);
        let mut docs = Vec::new();
        for entry in self.txn.range(&self.st.docs, Bound::Included(&start[..]), Bound::Unbounded, false)? {
            if docs.len() >= batch {
                break;
            }
            let (k, v) = entry?;
            docs.push((id_from_key(&k)?, v));
        }
        let done = docs.len() < batch;
        let tree = self.txn.open_engine_tree(&index_tree(&self.st.name, name))?;
        let mut last = info.built_upto;
        let mut single = info.single_valued;
        let usable = self.txn.pages().usable_size();
        for (id, bytes) in docs {
            let (_, doc) = decode_stored(&bytes, &*self.st.dict)?;
            let keys = doc_index_keys(&info.spec.fields, &doc)?;
            check_index_key_lengths(&info.spec, &keys, usable).map_err(|e| match e {
                Error::InvalidArgument(m) => Error::invalid(format!(
                    "cannot build index {:?} of collection {:?}: document {id}: {m}",
                    info.spec.name, self.st.name
                )),
                e => e,
            })?;
            if single && !keys.is_empty() && !single_valued(&info.spec.fields, &doc) {
                single = false;
            }
            for k in keys {
                match info.spec.kind {
                    IndexKind::Unique => {
                        if let Some(v) = self.txn.get(&tree, &k)? {
                            let other = parse_entry(IndexKind::Unique, &k, &v)?.1;
                            if other != id {
                                return Err(Error::Constraint(format!(
                                    "cannot build unique index {:?} of collection {:?} on {}: documents {other} \
                                     and {id} hold the same value",
                                    info.spec.name,
                                    self.st.name,
                                    info.spec.field_strings().join(", ")
                                )));
                            }
                        }
                        self.txn.insert(&tree, &k, &id.to_be_bytes())?;
                    }
                    _ => {
                        self.txn.insert(&tree, &crate::index::key_encoding::index_entry_key(&k, id), &[])?;
                    }
                }
            }
            last = id;
        }
        let info = &mut Arc::make_mut(&mut self.st.indexes)[pos];
        info.built_upto = last;
        info.single_valued &= single;
        if done {
            info.status = IndexStatus::Ready;
            info.built_upto = 0;
        }
        self.save_meta()?;
        Ok(done)
    }

    /// Drops index `name` and its entries.
    pub fn drop_index(&mut self, name: &str) -> Result<()> {
        self.st.index(name)?;
        Arc::make_mut(&mut self.st.indexes).retain(|i| i.spec.name != name);
        self.index_trees.clear();
        self.st.index_trees.clear();
        self.view_fields = Default::default();
        self.txn.drop_engine_tree(&index_tree(&self.st.name, name))?;
        self.save_meta()
    }
}

/// Refuses the first of `keys` (index keys of `spec`'s, from one document)
/// too long for a B+tree key on pages of `usable` bytes. A standard or
/// multi-value entry carries the document id (8 bytes) after the key.
fn check_index_key_lengths(spec: &IndexSpec, keys: &[Vec<u8>], usable: usize) -> Result<()> {
    let extra = if spec.kind == IndexKind::Unique { 0 } else { 8 };
    let longest = btree::max_key_len(usable) - extra;
    match keys.iter().find(|k| k.len() > longest) {
        None => Ok(()),
        Some(k) => {
            let why = if key_encoding::is_list(k) {
                "; a list is indexed whole as well as element by element, so its whole encoding must fit too"
            } else {
                ""
            };
            Err(Error::invalid(format!(
                "value of {} bytes (as an index key) is too long for index {:?} (longest key: {longest} bytes{why})",
                k.len(),
                spec.name
            )))
        }
    }
}

fn unique_violation(coll: &str, spec: &IndexSpec, other: u64) -> Error {
    Error::Constraint(format!(
        "unique index {:?} of collection {coll:?} on {} already holds this value (document {other})",
        spec.name,
        spec.field_strings().join(", ")
    ))
}

/// A unique violation of a batch's document (its place in the batch, from
/// 0) against stored document `other` (its id): the batch wrote nothing.
fn unique_violation_from_batch(coll: &str, spec: &IndexSpec, other: u64, place: u64) -> Error {
    Error::Constraint(format!(
        "unique index {:?} of collection {coll:?} on {} already holds this value (document {other}): \
         document {place} of the batch (from 0) repeats it; nothing of the batch was written",
        spec.name,
        spec.field_strings().join(", ")
    ))
}

/// A unique violation between two documents of one batch (their places in
/// it, from 0): the batch wrote neither, so no id would help.
fn unique_violation_in_batch(coll: &str, spec: &IndexSpec, earlier: u64, later: u64) -> Error {
    Error::Constraint(format!(
        "unique index {:?} of collection {coll:?} on {}: document {later} of the batch (from 0) repeats the value \
         of document {earlier} of the same batch; nothing of the batch was written",
        spec.name,
        spec.field_strings().join(", ")
    ))
}

/// Drops collection `name` with its documents, dictionary and indexes.
pub(crate) fn drop_collection(txn: &mut WriteTxn, name: &str) -> Result<()> {
    refuse_attached(txn, name)?;
    txn.collection_epoch += 1;
    let st = load_state(&*txn, name)?.ok_or_else(|| Error::not_found(format!("collection {name:?}")))?;
    for info in st.indexes.iter() {
        txn.drop_engine_tree(&index_tree(name, &info.spec.name))?;
    }
    txn.drop_engine_tree(&docs_tree(name))?;
    if txn.find_engine_tree(&names_tree(name))?.is_some() {
        txn.drop_engine_tree(&names_tree(name))?;
    }
    let ct = txn.open_engine_tree(COLLECTIONS_TREE)?;
    txn.delete(&ct, name.as_bytes())?;
    Ok(())
}

/// Loads a collection's state (crate-internal: stat and integrity checks).
pub(crate) fn state<T: ReadableTxn>(txn: &T, name: &str) -> Result<Option<CollState>> {
    load_state(txn, name)
}

/// Splits `ns.collection` when `ns` is attached (per `is_attached`).
pub(crate) fn split_attached(name: &str, is_attached: impl Fn(&str) -> bool) -> Option<(&str, &str)> {
    let (ns, rest) = name.split_once('.')?;
    (is_attached(ns) && !rest.is_empty()).then_some((ns, rest))
}

fn refuse_attached(txn: &WriteTxn, name: &str) -> Result<()> {
    if let Some((ns, _)) = split_attached(name, |ns| txn.attached(ns).is_some()) {
        return Err(Error::invalid(format!(
            "collection {name:?} belongs to attached database {ns:?}, which is read-only"
        )));
    }
    Ok(())
}

/// Opens collection `rest` of the attached view `txn` as `qualified`,
/// unless `local`, this database, holds a collection named `qualified`
/// too (created after the attach, or by another handle or process): a
/// read could then mean either, and is refused rather than answered from
/// the attached one.
fn open_attached<'t, T: ReadableTxn, L: ReadableTxn>(
    local: &L,
    ns: &str,
    txn: &'t T,
    rest: &str,
    qualified: &str,
) -> Result<Collection<'t, T>> {
    if has_collection(local, qualified)? {
        let also_there = if has_collection(txn, rest)? {
            format!("is both in this database and in the database attached as {ns:?}")
        } else {
            format!("of this database is shadowed by the database attached as {ns:?}")
        };
        return Err(Error::invalid(format!(
            "collection {qualified:?} {also_there}; detach {ns:?} to read the local one"
        )));
    }
    let mut c = Collection::open(txn, rest).map_err(|e| match e {
        Error::NotFound(_) => Error::not_found(format!("collection {qualified:?}")),
        other => other,
    })?;
    c.qualified = Some(qualified.to_string());
    Ok(c)
}

impl ReadTxn {
    /// Read access to collection `name`; `NotFound` if it does not exist.
    /// `ns.coll` names collection `coll` of the database attached as `ns`
    /// (as of when this transaction began; see [`Db::attach`](crate::Db::attach)).
    pub fn collection(&self, name: &str) -> Result<Collection<'_, ReadTxn>> {
        if let Some((ns, rest)) = split_attached(name, |ns| self.attached(ns).is_some()) {
            return open_attached(self, ns, self.attached(ns).expect("attached"), rest, name);
        }
        Collection::open(self, name)
    }

    /// Names of all collections.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        list_collections(self)
    }
}

impl WriteTxn {
    /// Read access to collection `name` as this transaction sees it.
    /// `ns.coll` names collection `coll` of the database attached as `ns`
    /// (read only, as of when this transaction began).
    pub fn collection(&self, name: &str) -> Result<Collection<'_, WriteTxn>> {
        if let Some((ns, rest)) = split_attached(name, |ns| self.attached(ns).is_some()) {
            return open_attached(self, ns, self.attached(ns).expect("attached"), rest, name);
        }
        Collection::open(self, name)
    }

    /// Read-write access to document collection `name`, created on first use.
    pub fn collection_mut(&mut self, name: &str) -> Result<CollectionMut<'_>> {
        CollectionMut::open_or_create(self, name, CollectionOptions { raw: false })
    }

    /// Creates document collection `name` holding the documents of the
    /// JSON array `json` (ids from 1), as [`CollectionMut::insert_json_many`]
    /// would on a new collection, but only once the whole array is encoded,
    /// counted (`check_count` may refuse) and every document known to fit:
    /// a refused array creates nothing and writes nothing, and an empty one
    /// creates nothing either. `Ok(None)`, with nothing done, when `name`
    /// already exists or the text needs the general path (a special form,
    /// or anything the direct encoder refuses): then parse it into values.
    pub fn create_collection_from_json(
        &mut self,
        name: &str,
        json: &[u8],
        schema_version: u32,
        check_count: impl Fn(usize) -> Result<()>,
    ) -> Result<Option<Vec<u64>>> {
        if has_collection(&*self, name)? {
            return Ok(None);
        }
        // A new collection's dictionary starts empty, so these ids are the
        // ones it will give the same names in the same order.
        let mut dict = MemNameDict::new();
        let mut bytes = Vec::with_capacity(json.len());
        let Some(ends) = documents_from_json(json, schema_version, &mut dict, &mut bytes) else {
            return Ok(None);
        };
        check_count(ends.len())?;
        let mut start = 0;
        for &end in &ends {
            check_stored_size(end - std::mem::replace(&mut start, end))?;
        }
        if ends.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut c = self.collection_mut(name)?;
        for n in dict.names() {
            Arc::make_mut(&mut c.st.dict).id_of(n)?;
        }
        c.insert_encoded(&bytes, ends).map(Some)
    }

    /// Read-write access to `T::COLLECTION`, created on first use with
    /// `T`'s declared indexes (as the typed `Db` methods do): the typed
    /// methods of [`CollectionMut`] ([`insert_doc`](CollectionMut::insert_doc),
    /// [`get_doc`](CollectionMut::get_doc), [`update_doc`](CollectionMut::update_doc),
    /// [`upsert_doc`](CollectionMut::upsert_doc), [`delete`](CollectionMut::delete),
    /// ...) then write several documents, of several types, in one commit.
    ///
    /// ```
    /// use obj_engine::{Db, Document};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Account { owner: String, balance: i64 }
    /// impl Document for Account { const COLLECTION: &'static str = "accounts"; }
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::open(dir.path().join("bank.obj"))?;
    /// let a = db.insert(&Account { owner: "ann".into(), balance: 100 })?;
    /// let b = db.insert(&Account { owner: "bob".into(), balance: 0 })?;
    /// let mut tx = db.begin_write()?;
    /// let mut accounts = tx.documents::<Account>()?;
    /// accounts.update_doc::<Account>(a, |acc| { acc.balance -= 30; Ok(()) })?;
    /// accounts.update_doc::<Account>(b, |acc| { acc.balance += 30; Ok(()) })?;
    /// tx.commit()?; // both or neither
    /// assert_eq!(db.get::<Account>(b)?.unwrap().balance, 30);
    /// # Ok::<(), obj_engine::Error>(())
    /// ```
    pub fn documents<T: crate::Document>(&mut self) -> Result<CollectionMut<'_>> {
        crate::doc::typed::typed_collection::<T>(self)
    }

    /// Read-write access to raw collection `name`, created on first use.
    pub fn raw_collection_mut(&mut self, name: &str) -> Result<CollectionMut<'_>> {
        CollectionMut::open_or_create(self, name, CollectionOptions { raw: true })
    }

    /// Creates collection `name` (or opens it if it exists with the same kind).
    pub fn create_collection(&mut self, name: &str, options: CollectionOptions) -> Result<()> {
        CollectionMut::open_or_create(self, name, options).map(|_| ())
    }

    /// Drops collection `name` with all its documents and indexes.
    pub fn drop_collection(&mut self, name: &str) -> Result<()> {
        drop_collection(self, name)
    }

    /// Reopens a detached collection. `None` (and the state is discarded)
    /// unless it was detached from this transaction and no collection
    /// handle was opened and no collection dropped since: only then is the
    /// state known to match the trees. Open the collection again then.
    pub fn reattach(&mut self, detached: DetachedCollection) -> Option<CollectionMut<'_>> {
        if !detached.is_current(self) {
            return None;
        }
        Some(CollectionMut::with_state(self, detached.st))
    }

    /// Names of all collections.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        list_collections(self)
    }
}

/// Refuses an id no document may have: `u64::MAX`, past which the
/// collection's next id would not exist. Checked before anything is
/// written; callers that open (and so create) a collection for one write
/// at a caller's id check it first, so that a refused write leaves no
/// new collection behind.
pub fn check_doc_id(id: u64) -> Result<()> {
    if id == u64::MAX {
        return Err(Error::invalid(format!(
            "document id {} is reserved: the id space ends at {} (so that a next id always exists)",
            u64::MAX,
            u64::MAX - 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_payload_is_measured_with_its_header_before_it_is_copied() {
        // A payload of u32::MAX bytes was copied (4 GiB of memory) before
        // the check of its stored size refused it, naming a size the
        // caller never gave. The stored form adds a 3-byte header here.
        let header = |version| {
            let mut h = Vec::new();
            encode_header(&DocHeader::raw(version), &mut h).unwrap();
            h.len()
        };
        let most = (btree::max_value_len() - 3) as usize;
        check_raw_size(most, header(1)).unwrap();
        let e = check_raw_size(most + 1, header(1)).unwrap_err().to_string();
        assert!(
            e.contains(&format!("raw document of {} bytes is too large (at most {most})", most + 1)),
            "{e}"
        );
        // A schema version of two varint bytes leaves one byte less.
        assert!(check_raw_size(most, header(300)).is_err());
        check_raw_size(most - 1, header(300)).unwrap();
    }
}

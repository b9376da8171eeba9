//! Secondary indexes through the C ABI: create, drop, list, and lookup
//! through a unique index.

use std::ffi::c_char;
use std::io::Write as _;

use obj_engine::doc::json::{from_json_slice, to_json_vec};
use obj_engine::{CollectionKind, CollectionMut, Error, IndexKind, IndexSpec, IndexStatus, Value};

use crate::batch::{json_list, Part};
use crate::bytes::{arg_bytes, arg_str, json_bytes, json_text, need, obj_bytes, put, put_opt};
use crate::collection::index_json;
use crate::db::obj_db;
use crate::error::fence;
use crate::obj_status;
use crate::ops::with_db;
use crate::txn::{lock_txn, obj_txn, CollView};

/// The collection name and index spec an index-creating call was given.
///
/// # Safety
/// As the calls': `coll` a NUL-terminated string, `spec_json` valid for
/// `len` bytes.
unsafe fn index_args<'a>(
    coll: *const c_char,
    spec_json: *const u8,
    len: usize,
) -> Result<(&'a str, IndexSpec), Error> {
    // SAFETY: per the caller's contract.
    let (coll, spec) =
        unsafe { (arg_str(coll, "collection name")?, arg_bytes(spec_json, len, "spec_json")?) };
    Ok((coll, parse_index_spec(spec)?))
}

/// Parses {"name": .., "kind": "unique"|"standard"|"multi", "fields": [..]}
/// with the engine's JSON reader, which refuses a key given twice (as in
/// documents and queries) and nesting past 128 levels.
fn parse_index_spec(bytes: &[u8]) -> Result<IndexSpec, Error> {
    json_text(bytes, "index spec")?;
    let v = from_json_slice(bytes).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::invalid(format!("index spec JSON: {m}")),
        other => other,
    })?;
    let Value::Map(entries) = &v else { return Err(Error::invalid("index spec: expected a JSON object")) };
    if let Some((k, _)) = entries.iter().find(|(k, _)| !matches!(k.as_str(), "name" | "kind" | "fields")) {
        return Err(Error::invalid(format!("index spec: unknown field {k:?} (expected name, kind, fields)")));
    }
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let Some(Value::Str(name)) = get("name") else {
        return Err(Error::invalid("index spec: \"name\" must be a string"));
    };
    let kind = match get("kind") {
        None => IndexKind::Standard,
        Some(Value::Str(k)) if k == "standard" => IndexKind::Standard,
        Some(Value::Str(k)) if k == "unique" => IndexKind::Unique,
        Some(Value::Str(k)) if k == "multi" => IndexKind::Multi,
        Some(other) => {
            return Err(Error::invalid(format!(
                "index spec: \"kind\" must be \"unique\", \"standard\" or \"multi\", got {}",
                String::from_utf8_lossy(&to_json_vec(other))
            )))
        }
    };
    let Some(Value::List(items)) = get("fields") else {
        return Err(Error::invalid("index spec: \"fields\" must be an array of paths"));
    };
    let fields = items
        .iter()
        .map(|f| match f {
            Value::Str(path) => Ok(path.as_str()),
            _ => Err(Error::invalid("index spec: every field must be a string path")),
        })
        .collect::<Result<Vec<&str>, Error>>()?;
    IndexSpec::new(name, kind, &fields)
}

/// Creates a secondary index on collection `coll` (a document collection,
/// created on first use) from a JSON spec:
/// {"name":"by_email","kind":"unique"|"standard"|"multi","fields":["email"]}
/// (`kind` defaults to "standard"; several fields make a composite index,
/// most significant first; nested paths like "address.city"). Existing
/// documents are indexed before this returns. The same name with the same
/// spec again is OBJ_OK (an index left "building" by an obj_db_index_create
/// cut short is finished here, in this transaction). Errors: OBJ_CONSTRAINT
/// (a unique index and two
/// existing documents share a value; no trace is left),
/// OBJ_INVALID_ARGUMENT (malformed spec, same name with another spec, a
/// raw collection, read or finished transaction, an existing document
/// with a value too long for the index).
///
/// Index keys are limited in size: a key (the indexed values, encoded) may
/// take 1341 bytes in a database of 4 KiB pages for a unique index, 8
/// bytes less for the other kinds; the limit about doubles with each
/// doubling of the page size (2707 bytes for 8 KiB pages, 21821 for 64 KiB)
/// and is a little lower in an encrypted database. A list is indexed whole
/// as well as element by element, so the whole list must fit too. A write
/// of a document with a longer value for an indexed field is
/// OBJ_INVALID_ARGUMENT ("too long for index"), with nothing written.
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `spec_json`
/// valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn obj_index_create(
    txn: *mut obj_txn,
    coll: *const c_char,
    spec_json: *const u8,
    len: usize,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (coll, spec) = unsafe { index_args(coll, spec_json, len) }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let mut c = t.write()?.collection_mut(coll)?;
        match c.read().index_status(&spec)? {
            None => {}
            Some(IndexStatus::Ready) => return Ok(()),
            // One left building (a db-level build cut short or under way):
            // finish it here, as this call promises a ready index.
            Some(IndexStatus::Building) => return c.finish_index(&spec.name),
        }
        let name = spec.name.clone();
        if let Err(e) = c.create_index(spec) {
            // A failed build leaves its declaration behind: take it away.
            if c.read().indexes().iter().any(|i| i.spec.name == name) {
                c.drop_index(&name)?;
            }
            return Err(e);
        }
        Ok(())
    })
}

/// Creates index `spec_json` (as obj_index_create) on collection `coll`
/// (created if missing) outside any transaction, and fills it from the
/// existing documents in batches of 1000, each in a write transaction of
/// its own, so that other writers run between batches instead of waiting
/// for the whole build (a waiting thread of this process after the batch
/// under way, a writer in another process, which polls for the lock,
/// within about 100 ms). Until it is complete its status is "building" in
/// obj_db_stat_json and queries do not use it. The same name with the
/// same spec again is OBJ_OK, and resumes a build cut short (a crash, an
/// OBJ_BUSY batch, which leaves the index "building"). Errors: as
/// obj_index_create (OBJ_CONSTRAINT drops the index); OBJ_BUSY (another
/// writer held the database past the busy timeout); OBJ_CLOSED after
/// obj_db_close.
///
/// # Safety
/// `db` is a live handle; `coll` a NUL-terminated string; `spec_json`
/// valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn obj_db_index_create(
    db: *mut obj_db,
    coll: *const c_char,
    spec_json: *const u8,
    len: usize,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (coll, spec) = unsafe { index_args(coll, spec_json, len) }?;
        // SAFETY: per contract.
        unsafe { with_db(db, |d| d.create_index(coll, spec)) }
    })
}

/// Drops index `name` of collection `coll` with its entries. Errors:
/// OBJ_NOT_FOUND (no such collection or index), OBJ_INVALID_ARGUMENT (read
/// or finished transaction, bad names).
///
/// # Safety
/// `txn` is a live handle; `coll`, `name` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn obj_index_drop(
    txn: *mut obj_txn,
    coll: *const c_char,
    name: *const c_char,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (coll, name) = unsafe { (arg_str(coll, "collection name")?, arg_str(name, "index name")?) };
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        CollectionMut::open(t.write()?, coll)?.drop_index(name)
    })
}

/// The indexes of collection `coll` in `*out` (free with obj_bytes_free),
/// as a JSON array of specs [{"name":..,"kind":..,"fields":[..]}] in
/// creation order ("[]" for a missing collection). Errors:
/// OBJ_INVALID_ARGUMENT (finished transaction, bad name, NULL out).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_index_list(
    txn: *mut obj_txn,
    coll: *const c_char,
    out: *mut obj_bytes,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let coll = unsafe { arg_str(coll, "collection name") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let list: Vec<serde_json::Value> = match t.collection(coll)? {
            Some(c) => c.indexes().iter().map(index_json).collect(),
            None => Vec::new(),
        };
        // SAFETY: checked non-null.
        unsafe { put(out, json_bytes(&serde_json::Value::Array(list)), "out") }
    })
}

/// Finds the document whose unique index `index` holds `values_json` (a
/// JSON array with one value per index field, in the engine's JSON form).
/// `*found` says whether there is one; if so `*out_id` is its id, `*out_doc`
/// the document as JSON (free with obj_bytes_free) and `*out_version` (may be
/// NULL) its schema version; if not, `*out_doc` is {NULL, 0} and the rest
/// untouched. A missing collection finds nothing. Errors: OBJ_NOT_FOUND (no
/// such index), OBJ_INVALID_ARGUMENT (not a unique index, wrong number of
/// values, malformed JSON, finished transaction, NULL pointers).
///
/// # Safety
/// `txn` is a live handle; `coll`, `index` NUL-terminated strings;
/// `values_json` valid for `len` bytes; `out_id`, `out_doc`, `found`
/// writable; `out_version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_find_unique(
    txn: *mut obj_txn,
    coll: *const c_char,
    index: *const c_char,
    values_json: *const u8,
    len: usize,
    out_id: *mut u64,
    out_doc: *mut obj_bytes,
    out_version: *mut u32,
    found: *mut bool,
) -> obj_status {
    fence(|| {
        need(out_id, "out_id")?;
        need(out_doc, "out_doc")?;
        need(found, "found")?;
        // SAFETY: per contract.
        let (coll, index, values) = unsafe {
            (
                arg_str(coll, "collection name")?,
                arg_str(index, "index name")?,
                arg_bytes(values_json, len, "values_json")?,
            )
        };
        let values = match from_json_slice(values)? {
            Value::List(v) => v,
            other => {
                return Err(Error::invalid(format!(
                    "values_json: expected a JSON array of index values, not {}",
                    other.type_name()
                )))
            }
        };
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let mut buf = Vec::new();
        let hit = match t.collection(coll)? {
            None => None,
            Some(c) => {
                c.expect_kind(CollectionKind::Documents)?;
                c.find_unique_json(index, &values, &mut buf)?
            }
        };
        drop(t);
        // SAFETY: checked non-null; out_version per contract.
        unsafe {
            match hit {
                Some((id, version)) => {
                    put(out_id, id, "out_id")?;
                    put_opt(out_version, version);
                    put(out_doc, obj_bytes::from_vec(buf), "out_doc")?;
                    put(found, true, "found")
                }
                None => {
                    put(out_doc, obj_bytes::from_vec(Vec::new()), "out_doc")?;
                    put(found, false, "found")
                }
            }
        }
    })
}

/// Many lookups through unique index `index` in one call. `keys_json` is a
/// JSON array with one element per lookup, each an array of index values
/// as `obj_find_unique` takes them. `*out` (free with obj_bytes_free) is a
/// JSON array with one element per key, in order: `null` when no document has
/// that key, else `[id, document]`, or `[id, schema_version, document]` when
/// `with_versions`. A missing collection finds nothing. In a read transaction
/// 256 keys or more are looked up in two halves, the back one on a second
/// thread when the machine has a spare CPU. Errors: as obj_find_unique (for
/// any key; the index is checked even for an empty array), and
/// OBJ_INVALID_ARGUMENT when `keys_json` is not an array of arrays.
///
/// # Safety
/// `txn` is a live handle; `coll`, `index` NUL-terminated strings;
/// `keys_json` valid for `len` bytes; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_find_unique_many(
    txn: *mut obj_txn,
    coll: *const c_char,
    index: *const c_char,
    keys_json: *const u8,
    len: usize,
    with_versions: bool,
    out: *mut obj_bytes,
) -> obj_status {
    let rows = if with_versions { Found::Versioned } else { Found::WithId };
    // SAFETY: per contract.
    fence(|| unsafe { find_unique_many(txn, coll, index, keys_json, len, rows, out) })
}

/// Like `obj_find_unique_many` for an index of one field, with less to
/// build and to parse: each element of `keys_json` is the key's value
/// itself (not an array of values), and each element of `*out` (free with
/// obj_bytes_free) is the document, or `null` when no document has that key.
/// Errors: as obj_find_unique_many; an index of several fields is
/// OBJ_INVALID_ARGUMENT (it needs arrays of values: use
/// obj_find_unique_many).
///
/// # Safety
/// As obj_find_unique_many.
#[no_mangle]
pub unsafe extern "C" fn obj_find_unique_many_plain(
    txn: *mut obj_txn,
    coll: *const c_char,
    index: *const c_char,
    keys_json: *const u8,
    len: usize,
    out: *mut obj_bytes,
) -> obj_status {
    // SAFETY: per contract.
    fence(|| unsafe { find_unique_many(txn, coll, index, keys_json, len, Found::Plain, out) })
}

/// What `find_unique_many` writes for a document found.
#[derive(Clone, Copy, PartialEq)]
enum Found {
    /// The document alone; keys are single values.
    Plain,
    /// `[id, document]`.
    WithId,
    /// `[id, schema_version, document]`.
    Versioned,
}

/// The body of `obj_find_unique_many` and `obj_find_unique_many_plain`.
///
/// # Safety
/// As obj_find_unique_many.
unsafe fn find_unique_many(
    txn: *mut obj_txn,
    coll: *const c_char,
    index: *const c_char,
    keys_json: *const u8,
    len: usize,
    found: Found,
    out: *mut obj_bytes,
) -> Result<(), Error> {
    need(out, "out")?;
    // SAFETY: per contract.
    let (coll, index, keys) = unsafe {
        (
            arg_str(coll, "collection name")?,
            arg_str(index, "index name")?,
            arg_bytes(keys_json, len, "keys_json")?,
        )
    };
    let Value::List(keys) = from_json_slice(keys)? else {
        return Err(Error::invalid(if found == Found::Plain {
            "keys_json: expected a JSON array of keys (each an index value)"
        } else {
            "keys_json: expected a JSON array of keys (each an array of values)"
        }));
    };
    // SAFETY: per contract.
    let mut t = unsafe { lock_txn(txn) }?;
    let view = t.collection(coll)?;
    if let Some(c) = &view {
        c.expect_kind(CollectionKind::Documents)?;
        // The index is checked once, for no keys as for many.
        let fields = c.unique_index_fields(index)?;
        if found == Found::Plain && fields != 1 {
            return Err(Error::invalid(format!(
                "index {index:?} has {fields} fields: obj_find_unique_many_plain takes one value per key \
                 (use obj_find_unique_many with an array of values per key)"
            )));
        }
    }
    let buf = json_list(&view, &keys, |view, keys, part| found_json(view, index, keys, part, found))?;
    // SAFETY: checked non-null.
    unsafe { put(out, obj_bytes::from_vec(buf), "out") }
}

/// The JSON elements for `keys`, one part of a `find_unique_many` list.
fn found_json(
    view: &Option<CollView<'_>>,
    index: &str,
    keys: &[Value],
    part: Part,
    found: Found,
) -> Result<Vec<u8>, Error> {
    let mut buf = part.start();
    let mut sized = false;
    let mut doc = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        part.separate(&mut buf, i);
        let values = match key {
            _ if found == Found::Plain => std::slice::from_ref(key),
            Value::List(values) => values.as_slice(),
            _ => {
                return Err(Error::invalid(format!(
                    "keys_json[{}]: expected an array of index values, not {}",
                    part.position(i),
                    key.type_name()
                )))
            }
        };
        doc.clear();
        let hit = match view {
            Some(c) => c.find_unique_json(index, values, &mut doc).map_err(|e| match e {
                // (which key of a long list was wrong)
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("keys_json[{}]: {m}", part.position(i)))
                }
                e => e,
            })?,
            None => None,
        };
        let Some((id, version)) = hit else {
            buf.extend_from_slice(b"null");
            continue;
        };
        if !sized {
            sized = true;
            crate::cursor::reserve_like_first(&mut buf, doc.len() + 24, part.after(i, keys.len()));
        }
        let _ = match found {
            Found::Plain => Ok(()),
            Found::WithId => write!(buf, "[{id},"),
            Found::Versioned => write!(buf, "[{id},{version},"),
        };
        buf.extend_from_slice(&doc);
        if found != Found::Plain {
            buf.push(b']');
        }
    }
    Ok(buf)
}

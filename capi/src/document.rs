//! Documents through the C ABI: structured documents in and out as JSON
//! text (the engine's JSON form, `engine/src/doc/json.rs`), raw-bytes
//! documents, and batch insert/get.

use std::ffi::c_char;

use obj_engine::doc::collection::check_doc_id;
use obj_engine::doc::json_lines;
use obj_engine::{CollectionKind, CollectionMut, Error, Value, WriteTxn};

use crate::batch::{json_list, Part};
use crate::bytes::{arg_bytes, arg_slice, arg_str, need, obj_bytes, parse_document, put, put_found, put_opt};
use crate::collection::{expect_kind, or_missing};
use crate::cursor::reserve_like_first;
use crate::db::{begin_own_read, begin_own_write, obj_db};
use crate::error::fence;
use crate::obj_status;
use crate::txn::{lock_txn, obj_txn, CollView, TxnInner};

/// Opens a document collection for writing, creating it on first use.
fn open_doc<'w>(w: &'w mut WriteTxn, name: &str) -> Result<CollectionMut<'w>, Error> {
    w.collection_mut(name)
}

/// Opens a raw collection for writing, creating it on first use.
fn open_raw<'w>(w: &'w mut WriteTxn, name: &str) -> Result<CollectionMut<'w>, Error> {
    w.raw_collection_mut(name)
}

/// Runs a write of the JSON document `json` on collection `coll`: through
/// `json_write`, which encodes plain JSON as it parses it, where
/// [`write_existing`] allows; otherwise the text is parsed first and
/// `value_write` writes the parsed document.
fn write_json_doc<R>(
    t: &mut TxnInner,
    coll: &str,
    json: &[u8],
    json_write: impl FnOnce(&mut CollectionMut<'_>) -> Result<R, Error>,
    value_write: impl FnOnce(&mut CollectionMut<'_>, &Value) -> Result<R, Error>,
) -> Result<R, Error> {
    if let Some(r) = write_existing(t, coll, json_write)? {
        return Ok(r);
    }
    let doc = parse_document(json)?;
    t.with_collection_mut(coll, open_doc, |c| value_write(c, &doc))
}

/// Runs `write` on collection `coll` when JSON may be parsed while it is
/// written: the collection exists and no cursor of the transaction is live.
/// `None` otherwise, and the caller parses the text before writing, so that
/// a refused document leaves no trace: no new collection, and no cursor
/// ended (any write ends them).
fn write_existing<R>(
    t: &mut TxnInner,
    coll: &str,
    write: impl FnOnce(&mut CollectionMut<'_>) -> Result<R, Error>,
) -> Result<Option<R>, Error> {
    if t.has_live_cursors() {
        return Ok(None);
    }
    let mut opened = false;
    let result = t.with_collection_mut(coll, open_existing, |c| {
        opened = true;
        write(c)
    });
    match result {
        Err(Error::NotFound(_)) if !opened => Ok(None),
        other => other.map(Some),
    }
}

/// Opens an existing collection for writing (OBJ_NOT_FOUND if missing).
fn open_existing<'w>(w: &'w mut WriteTxn, name: &str) -> Result<CollectionMut<'w>, Error> {
    CollectionMut::open(w, name)
}

/// Inserts one document (a JSON object, `len` bytes of UTF-8, no NUL
/// needed) into collection `coll`, created as a document collection on
/// first use, with `schema_version` in its header. The new id goes to
/// `*out_id`. Errors: OBJ_CONSTRAINT (a unique index already holds one of
/// its values; nothing was written and the transaction goes on),
/// OBJ_INVALID_ARGUMENT (read or finished transaction, malformed JSON,
/// not an object, a raw collection, bad name, NULL pointers, a value too
/// long for an index of the collection: see obj_index_create for the
/// limit; nothing was written).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `json` valid for
/// `len` bytes; `out_id` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_insert(
    txn: *mut obj_txn,
    coll: *const c_char,
    json: *const u8,
    len: usize,
    schema_version: u32,
    out_id: *mut u64,
) -> obj_status {
    fence(|| {
        need(out_id, "out_id")?;
        // SAFETY: per contract.
        let (coll, json) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(json, len, "json")?) };
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let id = write_json_doc(
            &mut t,
            coll,
            json,
            |c| c.insert_json(json, schema_version),
            |c, doc| c.insert_versioned(doc, schema_version),
        )?;
        // SAFETY: checked non-null.
        unsafe { put(out_id, id, "out_id") }
    })
}

/// Inserts every document of a JSON array (`json`, `len` bytes) into
/// collection `coll` (created on first use), all with `schema_version`.
/// Their ids go to `out_ids[0..n)` where n is the array length, and n to
/// `*out_count`. `out_cap` is the capacity of `out_ids`; less than n is
/// OBJ_INVALID_ARGUMENT with nothing written. All or nothing: on any error
/// (e.g. OBJ_CONSTRAINT) no document of the batch remains and the
/// transaction goes on. An empty array is OBJ_OK with *out_count = 0.
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `json` valid for
/// `len` bytes; `out_ids` writable for `out_cap` values (NULL if 0);
/// `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_insert_many(
    txn: *mut obj_txn,
    coll: *const c_char,
    json: *const u8,
    len: usize,
    schema_version: u32,
    out_ids: *mut u64,
    out_cap: usize,
    out_count: *mut usize,
) -> obj_status {
    fence(|| {
        need(out_count, "out_count")?;
        // SAFETY: per contract.
        let (coll, json) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(json, len, "json")?) };
        // SAFETY: per contract.
        unsafe { insert_array(txn, coll, json, schema_version, out_ids, out_cap, out_count) }
    })
}

/// Inserts one document per line of `text` (`len` bytes; lines end with
/// '\n', the last one may not; a '\r' before it is whitespace) into
/// collection `coll` (created on first use), all with `schema_version`,
/// as obj_doc_insert_many inserts an array's: the ids go to
/// `out_ids[0..n)` where n is the number of lines, n to `*out_count`; all
/// or nothing. Every line must hold exactly one JSON object: an empty
/// line, a string or bracket still open at a line's end (a document over
/// two lines) or two documents on a line is OBJ_INVALID_ARGUMENT, and so is
/// any other bad document, with a message that begins with the first bad
/// line ("line 3: ...", counted from 1 in `text`). Other errors are
/// obj_doc_insert_many's (OBJ_CONSTRAINT names the batch's documents by
/// their place in it, from 0: line n is document n - 1; a document stored
/// before the batch, by its id). Empty text is
/// OBJ_OK with *out_count = 0.
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `text` valid for
/// `len` bytes; `out_ids` writable for `out_cap` values (NULL if 0);
/// `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_insert_lines(
    txn: *mut obj_txn,
    coll: *const c_char,
    text: *const u8,
    len: usize,
    schema_version: u32,
    out_ids: *mut u64,
    out_cap: usize,
    out_count: *mut usize,
) -> obj_status {
    fence(|| {
        need(out_count, "out_count")?;
        // SAFETY: per contract.
        let (coll, text) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(text, len, "text")?) };
        json_lines::insert_lines(text, |array| {
            // SAFETY: per contract.
            unsafe { insert_array(txn, coll, array, schema_version, out_ids, out_cap, out_count) }
        })
    })
}

/// The body of obj_doc_insert_many, for an array however it came.
///
/// # Safety
/// `txn` is a live handle; `out_ids` writable for `out_cap` values (NULL
/// if 0); `out_count` non-null and writable.
unsafe fn insert_array(
    txn: *mut obj_txn,
    coll: &str,
    json: &[u8],
    schema_version: u32,
    out_ids: *mut u64,
    out_cap: usize,
    out_count: *mut usize,
) -> Result<(), Error> {
    let fits = |n: usize| {
        if n > out_cap {
            // A large array is checked with a running count as it is
            // stored: count it whole for the message (the size to retry with).
            let n = serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(json).map_or(n, |all| all.len());
            return Err(Error::invalid(format!("{n} documents but out_cap is {out_cap}")));
        }
        if n > 0 && out_ids.is_null() {
            return Err(Error::invalid("out_ids out-pointer is NULL"));
        }
        Ok(())
    };
    // SAFETY: per contract.
    let mut t = unsafe { lock_txn(txn) }?;
    // insert_json_many checks the count before it writes anything (a
    // large array: as it goes, undoing what it wrote when refused).
    let ids = match write_existing(&mut t, coll, |c| c.insert_json_many(json, schema_version, fits))? {
        Some(ids) => ids,
        // A new collection is created only once the array is known to
        // be storable (then the documents go in as encoded).
        None if !t.has_live_cursors()
            && let Some(ids) =
                t.write()?.create_collection_from_json(coll, json, schema_version, fits)? =>
        {
            ids
        }
        None => {
            let docs = obj_engine::doc::json::documents_from_json_slice(json)?;
            fits(docs.len())?;
            if docs.is_empty() {
                t.write()?;
                Vec::new()
            } else {
                t.with_collection_mut(coll, open_doc, |c| c.insert_many_versioned(&docs, schema_version))?
            }
        }
    };
    // SAFETY: out_ids was checked non-null for a batch of any document, and
    // holds out_cap >= ids.len() values.
    unsafe { copy_ids(&ids, out_ids) };
    // SAFETY: checked non-null.
    unsafe { put(out_count, ids.len(), "out_count") }
}

/// Copies a batch's new ids to the caller's `out` (NULL allowed when there
/// are none).
///
/// # Safety
/// `out` is writable for `ids.len()` values when that is not 0.
unsafe fn copy_ids(ids: &[u64], out: *mut u64) {
    if !ids.is_empty() {
        // SAFETY: per the contract.
        unsafe { std::ptr::copy_nonoverlapping(ids.as_ptr(), out, ids.len()) };
    }
}

/// Reads document `id` of collection `coll`. `*found` says whether it
/// exists; if so `*out` holds it as JSON text (free with obj_bytes_free)
/// and `*out_version` (may be NULL) its schema version; otherwise `*out`
/// is {NULL, 0} and `*out_version` is untouched. A missing collection
/// reads as empty. Errors: OBJ_INVALID_ARGUMENT (finished transaction, a
/// raw collection: use obj_raw_get, bad name, NULL out or found).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `out`, `found`
/// writable; `out_version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_get(
    txn: *mut obj_txn,
    coll: *const c_char,
    id: u64,
    out: *mut obj_bytes,
    out_version: *mut u32,
    found: *mut bool,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        need(found, "found")?;
        // SAFETY: per contract.
        let coll = unsafe { arg_str(coll, "collection name") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let mut bytes = Vec::new();
        let got = match t.collection(coll)? {
            None => None,
            Some(c) => {
                c.expect_kind(CollectionKind::Documents)?;
                c.get_json(id, &mut bytes)?
            }
        };
        drop(t);
        if let Some(version) = got {
            // SAFETY: per contract.
            unsafe { put_opt(out_version, version) };
        }
        // SAFETY: checked non-null.
        unsafe { put_found(found, out, got.map(|_| bytes)) }
    })
}

/// Reads the documents with the `n` ids in `ids` in one call. `*out` (free
/// with obj_bytes_free) is a JSON array with one element per id, in order:
/// `null` for a missing document, else `[schema_version, document]`. A
/// missing collection gives all nulls. In a read transaction a list of 256
/// ids or more is read in two halves, the back one on a second thread when
/// the machine has a spare CPU. Errors: OBJ_INVALID_ARGUMENT (finished
/// transaction, a raw collection, NULL ids with n > 0, NULL out).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `ids` valid for
/// `n` values; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_get_many(
    txn: *mut obj_txn,
    coll: *const c_char,
    ids: *const u64,
    n: usize,
    out: *mut obj_bytes,
) -> obj_status {
    // SAFETY: per contract.
    fence(|| unsafe { get_many_json(txn, coll, ids, n, out, true) })
}

/// Like `obj_doc_get_many` without the schema versions: `*out` (free with
/// obj_bytes_free) is a JSON array with one element per id, in order, the
/// document or `null` for a missing one. For callers that read documents
/// without a schema (one less array per document to build and to parse).
/// Errors: as obj_doc_get_many.
///
/// # Safety
/// As obj_doc_get_many.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_get_many_plain(
    txn: *mut obj_txn,
    coll: *const c_char,
    ids: *const u64,
    n: usize,
    out: *mut obj_bytes,
) -> obj_status {
    // SAFETY: per contract.
    fence(|| unsafe { get_many_json(txn, coll, ids, n, out, false) })
}

/// The body of `obj_doc_get_many` (`versioned`: each document as
/// `[schema_version, document]`) and `obj_doc_get_many_plain`.
///
/// # Safety
/// As obj_doc_get_many.
unsafe fn get_many_json(
    txn: *mut obj_txn,
    coll: *const c_char,
    ids: *const u64,
    n: usize,
    out: *mut obj_bytes,
    versioned: bool,
) -> Result<(), Error> {
    need(out, "out")?;
    // SAFETY: per contract.
    let (coll, ids) = unsafe { (arg_str(coll, "collection name")?, arg_slice(ids, n, "ids")?) };
    // SAFETY: per contract.
    let mut t = unsafe { lock_txn(txn) }?;
    let view = t.collection(coll)?;
    if let Some(c) = &view {
        c.expect_kind(CollectionKind::Documents)?;
    }
    let buf = json_list(&view, ids, |view, ids, part| docs_json(view, ids, part, versioned))?;
    // SAFETY: checked non-null.
    unsafe { put(out, obj_bytes::from_vec(buf), "out") }
}

/// The JSON elements for `ids`, one part of a `get_many_json` list.
fn docs_json(
    view: &Option<CollView<'_>>,
    ids: &[u64],
    part: Part,
    versioned: bool,
) -> Result<Vec<u8>, Error> {
    let mut buf = part.start();
    let mut sized = false;
    // A run of consecutive ids (a range of them, as `range(a, b)` asks)
    // is read in one walk of the id tree: `run` holds its records, `next`
    // the first not yet written, `run_last` the position in `ids` of its
    // last id.
    let mut run: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut next = 0;
    let mut run_last = None;
    for (i, &id) in ids.iter().enumerate() {
        part.separate(&mut buf, i);
        let start = buf.len();
        let got = match view {
            None => None,
            Some(c) => {
                if run_last.is_some_and(|last| i > last) {
                    run_last = None;
                }
                if run_last.is_none() {
                    let end = run_end(ids, i);
                    if end - i + 1 >= MIN_RUN {
                        run = c.stored_run(id, ids[end])?;
                        next = 0;
                        run_last = Some(end);
                    }
                }
                match run.get(next) {
                    Some((rid, stored)) if run_last.is_some() && *rid == id => {
                        next += 1;
                        Some(c.stored_to_json(stored, &mut buf)?)
                    }
                    _ if run_last.is_some() => None,
                    _ => c.get_json(id, &mut buf)?,
                }
            }
        };
        if !sized && got.is_some() {
            sized = true;
            let first = buf.len() - start;
            reserve_like_first(&mut buf, first, part.after(i, ids.len()));
        }
        match got {
            None => buf.extend_from_slice(b"null"),
            // The document goes after a `[version,` that is only known once
            // it is read: it was written first, and moves behind the prefix.
            Some(version) if versioned => {
                let prefix = format!("[{version},");
                buf.splice(start..start, prefix.bytes());
                buf.push(b']');
            }
            Some(_) => {}
        }
    }
    Ok(buf)
}

/// Consecutive ids from which `get_many_json` reads a run in one tree walk.
const MIN_RUN: usize = 3;

/// The index of the last id of the run of consecutive ascending ids that
/// starts at `ids[i]`.
fn run_end(ids: &[u64], i: usize) -> usize {
    let mut j = i;
    while j + 1 < ids.len() && ids[j].checked_add(1) == Some(ids[j + 1]) {
        j += 1;
    }
    j
}

/// Reads one document in a snapshot of its own (begun and ended inside the
/// call): `obj_txn_begin_read` + `obj_doc_get` + `obj_txn_free` in one
/// call, for a single lookup outside any transaction. Outputs (free `*out`
/// with obj_bytes_free) and errors as `obj_doc_get`; OBJ_CLOSED after
/// `obj_db_close`.
///
/// # Safety
/// `db` is a live handle; `coll` a NUL-terminated string; `out`, `found`
/// writable; `out_version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_doc_get(
    db: *mut obj_db,
    coll: *const c_char,
    id: u64,
    out: *mut obj_bytes,
    out_version: *mut u32,
    found: *mut bool,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        need(found, "found")?;
        // SAFETY: per contract.
        let coll = unsafe { arg_str(coll, "collection name") }?;
        // SAFETY: per contract.
        let snapshot = unsafe { begin_own_read(db) }?;
        let mut bytes = Vec::new();
        let got = match or_missing(snapshot.collection(coll))? {
            Some(c) => {
                expect_kind(c.name(), c.kind(), CollectionKind::Documents)?;
                c.get_json(id, &mut bytes)?
            }
            None => None,
        };
        drop(snapshot);
        if let Some(version) = got {
            // SAFETY: per contract.
            unsafe { put_opt(out_version, version) };
        }
        // SAFETY: checked non-null.
        unsafe { put_found(found, out, got.map(|_| bytes)) }
    })
}

/// Writes a document at the caller's `id` in collection `coll` (created
/// on first use), replacing any document there; ids at or above the
/// collection's next id move it past `id` (so `UINT64_MAX`, after which
/// no id is left, is OBJ_INVALID_ARGUMENT). `*out_created` (may be NULL)
/// is true when no document had that id. Errors: as obj_doc_insert.
///
/// # Safety
/// As obj_doc_insert; `out_created` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_upsert(
    txn: *mut obj_txn,
    coll: *const c_char,
    id: u64,
    json: *const u8,
    len: usize,
    schema_version: u32,
    out_created: *mut bool,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (coll, json) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(json, len, "json")?) };
        // Before the collection is opened (created on first use): a refused
        // id leaves no new collection behind.
        check_doc_id(id)?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let replaced = write_json_doc(
            &mut t,
            coll,
            json,
            |c| c.upsert_json(id, json, schema_version),
            |c, doc| c.upsert_versioned(id, doc, schema_version),
        )?;
        // SAFETY: per contract.
        unsafe { put_opt(out_created, !replaced) };
        Ok(())
    })
}

/// Inserts one document in a write transaction of its own, begun and
/// committed inside the call: `obj_txn_begin_write` + `obj_doc_insert` +
/// `obj_txn_commit` in one call, for a single write outside any
/// transaction (SQLite's autocommit). Durable on return with the default
/// sync mode. Outputs and errors as those three: while a write
/// transaction is open (another thread's, or the calling thread's own),
/// it waits up to the busy timeout, then returns OBJ_BUSY. On any error
/// nothing is written. OBJ_CLOSED after `obj_db_close`.
///
/// # Safety
/// `db` is a live handle; otherwise as obj_doc_insert.
#[no_mangle]
pub unsafe extern "C" fn obj_db_doc_insert(
    db: *mut obj_db,
    coll: *const c_char,
    json: *const u8,
    len: usize,
    schema_version: u32,
    out_id: *mut u64,
) -> obj_status {
    fence(|| {
        need(out_id, "out_id")?;
        // SAFETY: per contract.
        let (coll, json) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(json, len, "json")?) };
        // SAFETY: per contract.
        let id = unsafe { autocommit(db, coll, |c| c.insert_json(json, schema_version)) }?;
        // SAFETY: checked non-null.
        unsafe { put(out_id, id, "out_id") }
    })
}

/// Writes a document at the caller's `id` in a write transaction of its
/// own: `obj_txn_begin_write` + `obj_doc_upsert` + `obj_txn_commit` in one
/// call, as obj_db_doc_insert. `*out_created` (may be NULL) is true when
/// no document had that id. Errors as obj_db_doc_insert's.
///
/// # Safety
/// `db` is a live handle; otherwise as obj_doc_upsert.
#[no_mangle]
pub unsafe extern "C" fn obj_db_doc_upsert(
    db: *mut obj_db,
    coll: *const c_char,
    id: u64,
    json: *const u8,
    len: usize,
    schema_version: u32,
    out_created: *mut bool,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (coll, json) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(json, len, "json")?) };
        // SAFETY: per contract.
        let replaced = unsafe { autocommit(db, coll, |c| c.upsert_json(id, json, schema_version)) }?;
        // SAFETY: per contract.
        unsafe { put_opt(out_created, !replaced) };
        Ok(())
    })
}

/// obj_db_doc_insert on one condition: that the file's catalog version
/// (see obj_txn_catalog_version) is still `catalog_version` when the
/// write transaction begins. A binding that skips its checks of a
/// collection (its kind, the indexes its class declares) because it
/// learnt them at that version writes through this, so that a
/// collection another handle or process dropped or made again since is
/// never written blind. Otherwise nothing is written (`*out_id` neither), `*out_done` is
/// false and the status is OBJ_OK; on a write, `*out_done` is true and
/// `*out_id` the new id.
///
/// # Safety
/// As obj_db_doc_insert; `out_done` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_doc_insert_if(
    db: *mut obj_db,
    coll: *const c_char,
    json: *const u8,
    len: usize,
    schema_version: u32,
    catalog_version: u64,
    out_id: *mut u64,
    out_done: *mut bool,
) -> obj_status {
    fence(|| {
        need(out_id, "out_id")?;
        need(out_done, "out_done")?;
        // SAFETY: per contract.
        let (coll, json) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(json, len, "json")?) };
        let insert = |c: &mut CollectionMut<'_>| c.insert_json(json, schema_version);
        // SAFETY: per contract.
        let id = unsafe { autocommit_if(db, catalog_version, coll, insert) }?;
        // SAFETY: checked non-null.
        unsafe { out_done.write(id.is_some()) };
        match id {
            // SAFETY: checked non-null.
            Some(id) => unsafe { put(out_id, id, "out_id") },
            // (Not written: nothing was inserted.)
            None => Ok(()),
        }
    })
}

/// obj_db_doc_upsert on the condition of obj_db_doc_insert_if: nothing is
/// written and `*out_done` is false when the file's catalog version is
/// no longer `catalog_version`. Errors as obj_db_doc_upsert's.
///
/// # Safety
/// As obj_db_doc_upsert; `out_done` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_doc_upsert_if(
    db: *mut obj_db,
    coll: *const c_char,
    id: u64,
    json: *const u8,
    len: usize,
    schema_version: u32,
    catalog_version: u64,
    out_created: *mut bool,
    out_done: *mut bool,
) -> obj_status {
    fence(|| {
        need(out_done, "out_done")?;
        // SAFETY: per contract.
        let (coll, json) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(json, len, "json")?) };
        let upsert = |c: &mut CollectionMut<'_>| c.upsert_json(id, json, schema_version);
        // SAFETY: per contract.
        let replaced = unsafe { autocommit_if(db, catalog_version, coll, upsert) }?;
        // SAFETY: checked non-null.
        unsafe { out_done.write(replaced.is_some()) };
        if let Some(replaced) = replaced {
            // SAFETY: per contract.
            unsafe { put_opt(out_created, !replaced) };
        }
        Ok(())
    })
}

/// [`autocommit`] when the write transaction sees catalog version
/// `catalog_version`; `None`, with nothing written, when it does not.
///
/// # Safety
/// As [`autocommit`].
unsafe fn autocommit_if<T>(
    db: *mut obj_db,
    catalog_version: u64,
    coll: &str,
    f: impl FnOnce(&mut CollectionMut<'_>) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    // SAFETY: per the caller's contract.
    let w = unsafe { begin_own_write(db) }?;
    if w.catalog_version() != catalog_version {
        return Ok(None); // dropping `w` rolls it back: nothing was written
    }
    write_and_commit(w, coll, f).map(Some)
}

/// Runs `f` on document collection `coll` (created on first use) in a
/// write transaction of its own and commits it; an error from `f` or the
/// commit rolls everything back.
///
/// # Safety
/// `db` is NULL or a pointer the caller got from `obj_db_open`.
unsafe fn autocommit<T>(
    db: *mut obj_db,
    coll: &str,
    f: impl FnOnce(&mut CollectionMut<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    // SAFETY: per the caller's contract.
    let w = unsafe { begin_own_write(db) }?;
    write_and_commit(w, coll, f)
}

/// The write and commit of a one-call write. The collection's state goes
/// on to the next transaction with the commit (`commit_keeping`): a loop
/// of one-call writes does not read it from the catalog each time.
fn write_and_commit<T>(
    mut w: WriteTxn,
    coll: &str,
    f: impl FnOnce(&mut CollectionMut<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut c = open_doc(&mut w, coll)?;
    let out = f(&mut c)?;
    let kept = c.detach();
    w.commit_keeping(kept)?;
    Ok(out)
}

/// Replaces document `id` of collection `coll` (the update of CRUD).
/// Errors: OBJ_NOT_FOUND (no such document or collection), otherwise as
/// obj_doc_insert.
///
/// # Safety
/// As obj_doc_insert.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_replace(
    txn: *mut obj_txn,
    coll: *const c_char,
    id: u64,
    json: *const u8,
    len: usize,
    schema_version: u32,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (coll, json) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(json, len, "json")?) };
        let doc = parse_document(json)?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        t.with_collection_mut(coll, open_existing, |c| {
            if c.read().kind() == CollectionKind::Raw {
                return Err(Error::invalid(format!(
                    "collection {coll:?} holds raw bytes: use obj_raw_upsert"
                )));
            }
            if c.read().get_stored(id)?.is_none() {
                return Err(Error::not_found(format!("document {id} of collection {coll:?}")));
            }
            c.upsert_versioned(id, &doc, schema_version).map(|_| ())
        })
    })
}

/// Deletes document `id` of collection `coll` (either kind) with its index
/// entries; `*existed` (may be NULL) says whether it was there. A missing
/// collection is OBJ_OK (nothing existed). Errors: OBJ_INVALID_ARGUMENT
/// (read or finished transaction, bad name).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `existed` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_doc_delete(
    txn: *mut obj_txn,
    coll: *const c_char,
    id: u64,
    existed: *mut bool,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let coll = unsafe { arg_str(coll, "collection name") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let was = match t.with_collection_mut(coll, open_existing, |c| c.delete(id)) {
            Ok(was) => was,
            Err(Error::NotFound(_)) if t.collection(coll)?.is_none() => false,
            Err(e) => return Err(e),
        };
        // SAFETY: per contract.
        unsafe { put_opt(existed, was) };
        Ok(())
    })
}

/// Inserts `len` opaque bytes as a new document of raw collection `coll`
/// (created as a raw collection on first use); the new id goes to
/// `*out_id`. Errors: OBJ_INVALID_ARGUMENT (read or finished transaction,
/// `coll` is a document collection, bad name, NULL pointers).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `data` valid for
/// `len` bytes (NULL with 0); `out_id` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_raw_insert(
    txn: *mut obj_txn,
    coll: *const c_char,
    data: *const u8,
    len: usize,
    out_id: *mut u64,
) -> obj_status {
    fence(|| {
        need(out_id, "out_id")?;
        // SAFETY: per contract.
        let (coll, data) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(data, len, "data")?) };
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let id = t.with_collection_mut(coll, open_raw, |c| c.insert_raw(data))?;
        // SAFETY: checked non-null.
        unsafe { put(out_id, id, "out_id") }
    })
}

/// Inserts `n` opaque byte strings as new documents of raw collection
/// `coll` (created as a raw collection on first use), in one call: they lie
/// end to end in `data`, item i being `lens[i]` bytes long. Their ids go to
/// `out_ids[0..n)`, consecutive and in order. All or nothing: on any error
/// no item of the batch remains, the next id is as it was, and the
/// transaction goes on. `n` = 0 is OBJ_OK with nothing written (only the
/// transaction is checked then: the name and the collection's kind are
/// checked when there is an item to write). Errors:
/// OBJ_INVALID_ARGUMENT (read or finished transaction, `coll` is a
/// document collection, bad name, NULL pointers with `n` > 0, lengths whose
/// sum overflows, the id space used up).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `lens` valid
/// for `n` values and `data` for their sum of bytes (each NULL if that is
/// 0); `out_ids` writable for `n` values (NULL if 0).
#[no_mangle]
pub unsafe extern "C" fn obj_raw_insert_many(
    txn: *mut obj_txn,
    coll: *const c_char,
    data: *const u8,
    lens: *const usize,
    n: usize,
    out_ids: *mut u64,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (coll, lens) = unsafe { (arg_str(coll, "collection name")?, arg_slice(lens, n, "lens")?) };
        let total = lens
            .iter()
            .try_fold(0usize, |sum, &len| sum.checked_add(len))
            .ok_or_else(|| Error::invalid("the lengths in lens add up to more than a size_t holds"))?;
        // SAFETY: per contract (data valid for the sum of lens).
        let data = unsafe { arg_bytes(data, total, "data")? };
        if n > 0 && out_ids.is_null() {
            return Err(Error::invalid("out_ids out-pointer is NULL"));
        }
        let mut rest = data;
        let items = lens.iter().map(|&len| {
            let (item, after) = rest.split_at(len);
            rest = after;
            item
        });
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let ids = if n == 0 {
            t.write()?;
            Vec::new()
        } else {
            t.with_collection_mut(coll, open_raw, |c| c.insert_raw_many(items))?
        };
        // SAFETY: out_ids was checked non-null for n > 0 and is writable for
        // n = ids.len() values.
        unsafe { copy_ids(&ids, out_ids) };
        Ok(())
    })
}

/// Reads raw document `id` of raw collection `coll`: `*found` says whether
/// it exists; if so `*out` holds a copy of its bytes (free with
/// obj_bytes_free), else {NULL, 0}. A missing collection reads as empty.
/// Errors: OBJ_INVALID_ARGUMENT (finished transaction, a document collection:
/// use obj_doc_get, NULL pointers).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `out`, `found`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_raw_get(
    txn: *mut obj_txn,
    coll: *const c_char,
    id: u64,
    out: *mut obj_bytes,
    found: *mut bool,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        need(found, "found")?;
        // SAFETY: per contract.
        let coll = unsafe { arg_str(coll, "collection name") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let got = match t.collection(coll)? {
            None => None,
            Some(c) => {
                c.expect_kind(CollectionKind::Raw)?;
                c.get_raw(id)?
            }
        };
        // SAFETY: checked non-null.
        unsafe { put_found(found, out, got) }
    })
}

/// Reads one raw document in a snapshot of its own (begun and ended inside
/// the call): `obj_txn_begin_read` + `obj_raw_get` + `obj_txn_free` in one
/// call, for a single lookup outside any transaction. Outputs (free `*out`
/// with obj_bytes_free) and errors as `obj_raw_get` (a document
/// collection is OBJ_INVALID_ARGUMENT: use obj_db_doc_get); OBJ_CLOSED
/// after `obj_db_close`.
///
/// # Safety
/// `db` is a live handle; `coll` a NUL-terminated string; `out`, `found`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_raw_get(
    db: *mut obj_db,
    coll: *const c_char,
    id: u64,
    out: *mut obj_bytes,
    found: *mut bool,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        need(found, "found")?;
        // SAFETY: per contract.
        let coll = unsafe { arg_str(coll, "collection name") }?;
        // SAFETY: per contract.
        let snapshot = unsafe { begin_own_read(db) }?;
        let got = match or_missing(snapshot.collection(coll))? {
            Some(c) => {
                expect_kind(c.name(), c.kind(), CollectionKind::Raw)?;
                c.get_raw(id)?
            }
            None => None,
        };
        drop(snapshot);
        // SAFETY: checked non-null.
        unsafe { put_found(found, out, got) }
    })
}

/// Writes raw bytes at the caller's `id` in raw collection `coll`
/// (created on first use), replacing any document there. `*out_created`
/// (may be NULL) is true when no document had that id. Errors: as
/// obj_raw_insert.
///
/// # Safety
/// As obj_raw_insert; `out_created` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_raw_upsert(
    txn: *mut obj_txn,
    coll: *const c_char,
    id: u64,
    data: *const u8,
    len: usize,
    out_created: *mut bool,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (coll, data) = unsafe { (arg_str(coll, "collection name")?, arg_bytes(data, len, "data")?) };
        // As in obj_doc_upsert: no new collection for a refused id.
        check_doc_id(id)?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let replaced = t.with_collection_mut(coll, open_raw, |c| c.upsert_raw(id, data))?;
        // SAFETY: per contract.
        unsafe { put_opt(out_created, !replaced) };
        Ok(())
    })
}

/// Sets `*out` to whether the JSON text `json` (`len` bytes) may hold the
/// value `null`: true when the word `null` stands where a value can (after
/// one of `:[,` or the start, before one of `,]}` or the end, blanks
/// skipped); a null value always gives true, the word inside a string can
/// too. For bindings whose JSON encoder writes something else as `null`
/// (Python's orjson writes NaN and infinities so): a batch without a null
/// skips their check. Errors: OBJ_INVALID_ARGUMENT (NULL `json` with
/// `len` > 0, NULL `out`).
///
/// # Safety
/// `json` valid for `len` bytes (NULL if 0); `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_json_may_hold_null(json: *const u8, len: usize, out: *mut bool) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let json = unsafe { arg_bytes(json, len, "json") }?;
        // SAFETY: checked non-null.
        unsafe { put(out, obj_engine::doc::json::may_hold_null(json), "out") }
    })
}

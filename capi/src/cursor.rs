//! Cursors through the C ABI: queries (one document per call, or a batch),
//! key-value scans, and collection dumps; plus query count and explain.
//!
//! A cursor handle names its transaction (a shared reference to the
//! transaction cell) and the id of its engine iterator, which lives inside
//! the transaction (see `txn.rs` for why that is sound). Every call locks
//! the transaction, so calls on a cursor and on its transaction are
//! serialised, and checks that the transaction is live and has not
//! written since the cursor was opened.

use std::ffi::c_char;
use std::io::Write as _;
use std::ops::Bound;

use obj_engine::doc::codec::decode_header;
use obj_engine::doc::kv::{kv_prefix, kv_range};
use obj_engine::query::plan::Access;
use obj_engine::{Error, QuerySpec};

use crate::bytes::{arg_bytes, arg_str, json_bytes, json_text, need, obj_bytes, put, put_opt};
use crate::db::{free_handle, handle, new_handle};
use crate::error::fence;
use crate::obj_status;
use crate::txn::{
    leak_cell, lock_cell, lock_to_end, lock_txn, obj_txn, txn_cell, CursorIter, TxnCell, TxnState,
};

/// A cursor (opaque): the stream of a query (`obj_query`), of a key-value
/// scan (`obj_kv_scan`) or of a collection dump (`obj_collection_dump`).
/// Release with `obj_cursor_free`.
pub struct obj_cursor {
    _opaque: u8,
}

pub(crate) const CURSOR_TAG: u64 = u64::from_le_bytes(*b"obj_cur1");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CursorKind {
    Query,
    Kv,
    Records,
}

impl CursorKind {
    fn describe(self) -> &'static str {
        match self {
            CursorKind::Query => "a query cursor (use obj_cursor_next or obj_cursor_next_batch)",
            CursorKind::Kv => "a key-value scan cursor (use obj_kv_cursor_next)",
            CursorKind::Records => "a collection dump cursor (use obj_dump_cursor_next)",
        }
    }
}

/// What a cursor handle holds.
pub(crate) struct CursorHandle {
    txn: TxnCell,
    id: u64,
    kind: CursorKind,
}

/// Opens a cursor of `kind` on `txn` with the iterator `make` builds.
///
/// # Safety
/// `txn` is NULL or a live handle; `out` is non-null and writable.
unsafe fn open_cursor(
    txn: *mut obj_txn,
    kind: CursorKind,
    out: *mut *mut obj_cursor,
    make: impl FnOnce(&'static TxnState) -> Result<CursorIter, Error>,
) -> Result<(), Error> {
    // SAFETY: per contract.
    let cell = unsafe { txn_cell(txn) }?.clone();
    let id = lock_cell(&cell)?.add_cursor(make)?;
    let h = new_handle::<CursorHandle, obj_cursor>(CURSOR_TAG, CursorHandle { txn: cell, id, kind });
    // SAFETY: non-null and writable per contract.
    unsafe { out.write(h) };
    Ok(())
}

/// Runs `f` on the iterator of cursor `cur`, which must be of kind `want`.
/// An error from `f` leaves the cursor failed (later calls report it).
///
/// # Safety
/// `cur` is NULL or a live cursor handle.
unsafe fn step<R>(
    cur: *mut obj_cursor,
    want: CursorKind,
    f: impl FnOnce(&mut CursorIter) -> Result<R, Error>,
) -> Result<R, Error> {
    // SAFETY: per contract.
    let h = unsafe { handle::<CursorHandle, obj_cursor>(cur, CURSOR_TAG, "cursor") }?;
    if h.kind != want {
        return Err(Error::invalid(format!("this is {}", h.kind.describe())));
    }
    let mut t = lock_cell(&h.txn)?;
    let result = f(t.cursor(h.id)?);
    if let Err(e) = &result {
        t.fail_cursor(h.id, e);
    }
    result
}

fn parse_query(bytes: &[u8]) -> Result<QuerySpec, Error> {
    QuerySpec::from_json(json_text(bytes, "query")?)
}

/// The next result of a query iterator: its document appended to `out` as
/// JSON text, and `(id, schema_version)`.
fn next_hit(it: &mut CursorIter, out: &mut Vec<u8>) -> Result<Option<(u64, u32)>, Error> {
    match it {
        CursorIter::Empty => Ok(None),
        CursorIter::ReadQuery(q) => q.next_json(out).transpose(),
        CursorIter::WriteQuery(q) => q.next_json(out).transpose(),
        _ => Err(Error::invalid("not a query cursor")),
    }
}

/// Runs a query (JSON text per docs/query-json.md: collection, filter,
/// sort, limit, offset, sort_buffer_limit, index range) and returns a
/// streaming cursor in `*out` (free with obj_cursor_free): no document is
/// read until the first obj_cursor_next (the collection's catalog entry
/// and the first pages of its trees are), and only one document is held at a time
/// (a sort that no index serves buffers up to sort_buffer_limit documents,
/// 100,000 unless the query sets it, on the first step; more is
/// OBJ_INVALID_ARGUMENT then). A missing collection
/// gives no rows. `"count_only": true` is refused: use obj_query_count.
///
/// The cursor reads through `txn`. On a read transaction it sees that
/// snapshot for its whole life. On a write transaction it sees the
/// transaction as it was when the cursor was opened, and any later write
/// call on the transaction (insert, upsert, delete, index or collection
/// change, kv put, ...) ends the cursor: its next call returns
/// OBJ_INVALID_ARGUMENT ("transaction changed under the cursor"). After
/// the transaction is committed, rolled back or freed, every call on the
/// cursor except obj_cursor_free returns OBJ_INVALID_ARGUMENT.
///
/// Errors: OBJ_INVALID_ARGUMENT (malformed query; filter, sort or index on
/// a raw collection; finished transaction; NULL pointers), OBJ_NOT_FOUND
/// (the query names an index that does not exist), OBJ_CORRUPTION and
/// OBJ_IO (a page read to start the query).
///
/// # Safety
/// `txn` is a live handle; `query_json` valid for `len` bytes; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_query(
    txn: *mut obj_txn,
    query_json: *const u8,
    len: usize,
    out: *mut *mut obj_cursor,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let spec = parse_query(unsafe { arg_bytes(query_json, len, "query_json") }?)?;
        if spec.count_only {
            return Err(Error::invalid("\"count_only\": true is for obj_query_count, not obj_query"));
        }
        // SAFETY: per contract.
        unsafe {
            open_cursor(txn, CursorKind::Query, out, |st| {
                Ok(with_readable!(st, |t| match t.collection(&spec.collection) {
                    Ok(c) => query_iter(c.into_query(&spec)?),
                    Err(Error::NotFound(_)) => CursorIter::Empty,
                    Err(e) => return Err(e),
                }))
            })
        }
    })
}

/// Wraps an owned engine query cursor (read or write transaction).
trait IntoCursorIter {
    fn into_iter_variant(self) -> CursorIter;
}

impl IntoCursorIter for obj_engine::QueryCursor<'static, obj_engine::ReadTxn> {
    fn into_iter_variant(self) -> CursorIter {
        CursorIter::ReadQuery(self)
    }
}

impl IntoCursorIter for obj_engine::QueryCursor<'static, obj_engine::WriteTxn> {
    fn into_iter_variant(self) -> CursorIter {
        CursorIter::WriteQuery(self)
    }
}

fn query_iter(c: impl IntoCursorIter) -> CursorIter {
    c.into_iter_variant()
}

/// The next document of a query cursor: `*out_id`, `*out_doc` (JSON text;
/// free with obj_bytes_free), `*out_version` (may be NULL) and `*done` =
/// false; at the end `*done` = true and nothing else is written. One call
/// per document; nothing beyond the current document is materialized.
/// Errors: OBJ_INVALID_ARGUMENT (not a query cursor, its transaction
/// finished or wrote since it was opened, NULL pointers), or the error of
/// the step itself (e.g. OBJ_INVALID_ARGUMENT for a sort over
/// sort_buffer_limit, OBJ_CORRUPTION); after such an error later calls
/// return OBJ_INVALID_ARGUMENT naming it.
///
/// # Safety
/// `cur` is a live cursor handle; `out_id`, `out_doc`, `done` writable;
/// `out_version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_cursor_next(
    cur: *mut obj_cursor,
    out_id: *mut u64,
    out_doc: *mut obj_bytes,
    out_version: *mut u32,
    done: *mut bool,
) -> obj_status {
    fence(|| {
        need(out_id, "out_id")?;
        need(out_doc, "out_doc")?;
        need(done, "done")?;
        // SAFETY: per contract.
        let mut buf = Vec::new();
        let hit = unsafe { step(cur, CursorKind::Query, |it| next_hit(it, &mut buf)) }?;
        // SAFETY: checked non-null; out_version per contract.
        unsafe {
            match hit {
                None => put(done, true, "done"),
                Some((id, version)) => {
                    put(out_id, id, "out_id")?;
                    put_opt(out_version, version);
                    put(out_doc, obj_bytes::from_vec(buf), "out_doc")?;
                    put(done, false, "done")
                }
            }
        }
    })
}

/// Up to `max` (> 0) next documents of a query cursor in one call, as a
/// JSON array in `*out` (free with obj_bytes_free):
/// [[id, schema_version, document], ...]; an empty array `[]` at the end.
/// Fewer than `max` elements means the end was reached. Errors: as
/// obj_cursor_next; `max` = 0 is OBJ_INVALID_ARGUMENT.
///
/// # Safety
/// `cur` is a live cursor handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_cursor_next_batch(
    cur: *mut obj_cursor,
    max: usize,
    out: *mut obj_bytes,
) -> obj_status {
    // SAFETY: per contract.
    unsafe {
        query_batch(cur, max, out, |it| {
            let mut buf = vec![b'['];
            let mut doc = Vec::new();
            for n in 0..max {
                doc.clear();
                let Some((id, version)) = next_hit(it, &mut doc)? else { break };
                if n > 0 {
                    buf.push(b',');
                }
                let _ = write!(buf, "[{id},{version},");
                buf.extend_from_slice(&doc);
                buf.push(b']');
            }
            buf.push(b']');
            Ok(buf)
        })
    }
}

/// Like `obj_cursor_next_batch`, with the batch as columns: `*out` (free
/// with obj_bytes_free) is the JSON array `[[document, ...], [id, ...]]`,
/// or with `with_versions`
/// `[[document, ...], [id, ...], [schema_version, ...]]`, the three lists
/// in the same order; `[[], []]` (or `[[], [], []]`) at the end. Fewer than
/// `max` documents means the end was reached. For bindings: the documents
/// are written straight into the returned text (no row array per
/// document), and a binding pairs the columns without a loop of its own
/// (Python: `zip(ids, docs)`). Errors: as obj_cursor_next_batch.
///
/// # Safety
/// `cur` is a live cursor handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_cursor_next_batch_columns(
    cur: *mut obj_cursor,
    max: usize,
    with_versions: bool,
    out: *mut obj_bytes,
) -> obj_status {
    // SAFETY: per contract.
    unsafe {
        query_batch(cur, max, out, |it| {
            let mut buf = Vec::with_capacity(64);
            buf.extend_from_slice(b"[[");
            let mut ids = Vec::new();
            let mut versions = Vec::new();
            while ids.len() < max {
                let mark = buf.len();
                if !ids.is_empty() {
                    buf.push(b',');
                }
                let Some((id, version)) = next_hit(it, &mut buf)? else {
                    buf.truncate(mark);
                    break;
                };
                if ids.is_empty() {
                    let first = buf.len() - mark;
                    reserve_like_first(&mut buf, first, max - 1);
                }
                ids.push(id);
                versions.push(version);
            }
            buf.extend_from_slice(b"],[");
            write_numbers(&mut buf, &ids);
            if with_versions {
                buf.extend_from_slice(b"],[");
                write_numbers(&mut buf, &versions);
            }
            buf.extend_from_slice(b"]]");
            Ok(buf)
        })
    }
}

/// The frame of the batch calls: checks `out` and `max` (at least 1), lets
/// `write` fill the batch from the query cursor, and hands the bytes out.
///
/// # Safety
/// `cur` is a live cursor handle; `out` writable.
unsafe fn query_batch(
    cur: *mut obj_cursor,
    max: usize,
    out: *mut obj_bytes,
    write: impl FnOnce(&mut CursorIter) -> Result<Vec<u8>, Error>,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        if max == 0 {
            return Err(Error::invalid("max must be at least 1"));
        }
        // SAFETY: per contract.
        let buf = unsafe { step(cur, CursorKind::Query, write) }?;
        // SAFETY: checked non-null.
        unsafe { put(out, obj_bytes::from_vec(buf), "out") }
    })
}

/// Documents a batch reserves room for after its first (a caller's `max`
/// may be far above what one call returns in practice).
const MAX_BATCH_RESERVE: usize = 4096;

/// The most bytes a batch reserves ahead (a first document of megabytes
/// says little of the rest: a list of missing ids after it asked for tens
/// of gigabytes at once, and the failed allocation aborted the process).
const MAX_BATCH_RESERVE_BYTES: usize = 64 << 20;

/// Reserves room in `buf` for `more` documents (at most
/// [`MAX_BATCH_RESERVE`]: a caller may ask for far more ids than exist)
/// the size of the first one written (`first` bytes; documents of one
/// collection tend to be alike), with an eighth spare, and at most
/// [`MAX_BATCH_RESERVE_BYTES`]: one allocation up front instead of a
/// doubling series of reallocations, each copying everything written so
/// far. Only a hint: a reservation the allocator refuses is skipped.
pub(crate) fn reserve_like_first(buf: &mut Vec<u8>, first: usize, more: usize) {
    let per_doc = first + first / 8 + 16;
    let _ = buf.try_reserve(per_doc.saturating_mul(more.min(MAX_BATCH_RESERVE)).min(MAX_BATCH_RESERVE_BYTES));
}

/// Appends `values` as comma-separated decimal numbers.
fn write_numbers<T: std::fmt::Display>(buf: &mut Vec<u8>, values: &[T]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let _ = write!(buf, "{v}");
    }
}

/// Frees a cursor of any kind (before or after its transaction ended).
/// NULL is a no-op. Thread-safety: as every call on its transaction.
/// Errors: OBJ_INVALID_ARGUMENT (a handle of another kind; a cursor used
/// after this call is undefined behaviour, as every freed handle).
///
/// # Safety
/// `cur` is NULL or a live cursor handle; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn obj_cursor_free(cur: *mut obj_cursor) -> obj_status {
    fence(|| {
        if cur.is_null() {
            return Ok(());
        }
        // SAFETY: per contract.
        let h = unsafe { handle::<CursorHandle, obj_cursor>(cur, CURSOR_TAG, "cursor") }?;
        match lock_to_end(&h.txn) {
            Some(mut t) => t.remove_cursor(h.id),
            None => leak_cell(&h.txn),
        }
        // SAFETY: per contract; not used afterwards.
        unsafe { free_handle::<CursorHandle, obj_cursor>(cur, CURSOR_TAG, "cursor") }
    })
}

/// The number of results of a query (after offset and limit) in `*out`,
/// without sorting and, for scans, without decoding whole documents. A
/// missing collection counts 0. Errors: as obj_query.
///
/// # Safety
/// `txn` is a live handle; `query_json` valid for `len` bytes; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_query_count(
    txn: *mut obj_txn,
    query_json: *const u8,
    len: usize,
    out: *mut u64,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let spec = parse_query(unsafe { arg_bytes(query_json, len, "query_json") }?)?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let n = match t.collection(&spec.collection)? {
            Some(c) => c.query_count(&spec)?,
            None => 0,
        };
        // SAFETY: checked non-null.
        unsafe { put(out, n, "out") }
    })
}

/// How the engine would run a query, as a JSON object in `*out` (free with
/// obj_bytes_free):
/// {"collection":..,"exists":bool,"plan":"<one line for people>",
/// "access":"scan"|"index"|"none","index":name or null,"ranges":N,
/// "reverse":bool,"sort_in_memory":bool}. Errors: as obj_query.
///
/// # Safety
/// `txn` is a live handle; `query_json` valid for `len` bytes; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_query_explain(
    txn: *mut obj_txn,
    query_json: *const u8,
    len: usize,
    out: *mut obj_bytes,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let spec = parse_query(unsafe { arg_bytes(query_json, len, "query_json") }?)?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let json = match t.collection(&spec.collection)? {
            None => serde_json::json!({
                "collection": spec.collection, "exists": false,
                "plan": "EMPTY (the collection does not exist)", "access": "none",
                "index": null, "ranges": 0, "reverse": false, "sort_in_memory": false,
            }),
            Some(c) => {
                let plan = c.plan(&spec)?;
                let (access, index, ranges, reverse) = match &plan.access {
                    Access::Scan => ("scan", None, 0, false),
                    Access::Index { name, ranges, reverse, .. } => {
                        ("index", Some(name.clone()), ranges.len(), *reverse)
                    }
                };
                serde_json::json!({
                    "collection": spec.collection, "exists": true, "plan": plan.describe(),
                    "access": access, "index": index, "ranges": ranges, "reverse": reverse,
                    "sort_in_memory": plan.sort_in_memory,
                })
            }
        };
        drop(t);
        // SAFETY: checked non-null.
        unsafe { put(out, json_bytes(&json), "out") }
    })
}

/// Opens a scan of key-value namespace `ns` (a missing namespace is
/// empty) in `*out` (free with obj_cursor_free). Either a half-open key range
/// [start, end) — `start` NULL or 0 bytes: from the first key; `end` NULL: to
/// the last key — or, when `prefix` is not NULL, the keys starting with
/// `prefix` (then `start` and `end` must be NULL). `reverse` walks from the
/// high end down. The cursor streams (one entry per obj_kv_cursor_next) and
/// follows the same transaction rules as obj_query's cursors. Errors:
/// OBJ_INVALID_ARGUMENT (prefix together with start/end, bad namespace name,
/// finished transaction, NULL pointers with non-zero lengths).
///
/// # Safety
/// `txn` is a live handle; `ns` a NUL-terminated string; `start`, `end`,
/// `prefix` NULL or valid for their lengths; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_kv_scan(
    txn: *mut obj_txn,
    ns: *const c_char,
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
    prefix: *const u8,
    prefix_len: usize,
    reverse: bool,
    out: *mut *mut obj_cursor,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let ns = unsafe { arg_str(ns, "namespace") }?;
        // NULL means "absent" for these two, but not with a length.
        for (p, len, what) in [(prefix, prefix_len, "prefix"), (end, end_len, "end")] {
            if p.is_null() && len != 0 {
                return Err(Error::invalid(format!("{what} is NULL but its length is {len}")));
            }
        }
        let prefix = if prefix.is_null() {
            None
        } else {
            if !start.is_null() || !end.is_null() {
                return Err(Error::invalid("a prefix scan takes no start or end (pass NULL)"));
            }
            // SAFETY: per contract.
            Some(unsafe { scan_bound(prefix, prefix_len, "prefix") }?)
        };
        // SAFETY: per contract.
        let (start, start_cut) = unsafe { scan_bound(start, start_len, "start") }?;
        let end = if end.is_null() {
            None
        } else {
            // SAFETY: per contract.
            Some(unsafe { scan_bound(end, end_len, "end") }?)
        };
        // A bound cut to the longest key length L still splits the keys
        // where the whole one did, as no key is longer than L: k >= S if
        // and only if k > S[..L], and k < E if and only if k <= E[..L].
        let lo = match (start.is_empty(), start_cut) {
            (true, _) => Bound::Unbounded,
            (false, false) => Bound::Included(&start[..]),
            (false, true) => Bound::Excluded(&start[..]),
        };
        let hi = match &end {
            None => Bound::Unbounded,
            Some((e, false)) => Bound::Excluded(&e[..]),
            Some((e, true)) => Bound::Included(&e[..]),
        };
        // SAFETY: per contract.
        unsafe {
            open_cursor(txn, CursorKind::Kv, out, |st| {
                let it = with_readable!(st, |t| match &prefix {
                    Some((p, false)) => kv_prefix(t, ns, p, reverse)?,
                    // Longer than any key: no key starts with it.
                    Some((p, true)) =>
                        kv_range(t, ns, Bound::Excluded(&p[..]), Bound::Included(&p[..]), reverse)?,
                    None => kv_range(t, ns, lo, hi, reverse)?,
                });
                Ok(CursorIter::Kv(it))
            })
        }
    })
}

/// The longest key of the largest page size: no key of any file is longer.
fn max_key_len_any() -> usize {
    obj_engine::btree::max_key_len(obj_engine::storage::page::MAX_PAGE_SIZE)
}

/// A copy of a scan bound of `len` bytes at `p`, cut to
/// [`max_key_len_any`] bytes (the scan keeps its copy: a huge bound must
/// not be copied whole); true when it was cut.
///
/// # Safety
/// As [`arg_bytes`].
unsafe fn scan_bound(p: *const u8, len: usize, what: &str) -> Result<(Vec<u8>, bool), Error> {
    // SAFETY: per the caller's contract.
    let bytes = unsafe { arg_bytes(p, len, what) }?;
    let keep = len.min(max_key_len_any());
    Ok((bytes[..keep].to_vec(), keep < len))
}

/// The next entry of a key-value scan: copies of its key and value in
/// `*key` and `*value` (free both with obj_bytes_free; an empty one is
/// {NULL, 0}) and `*done` = false; at the end `*done` = true and nothing
/// else is written. Errors: as obj_cursor_next (OBJ_INVALID_ARGUMENT for a
/// cursor of another kind).
///
/// # Safety
/// `cur` is a live cursor handle; `key`, `value`, `done` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_kv_cursor_next(
    cur: *mut obj_cursor,
    key: *mut obj_bytes,
    value: *mut obj_bytes,
    done: *mut bool,
) -> obj_status {
    fence(|| {
        need(key, "key")?;
        need(value, "value")?;
        need(done, "done")?;
        // SAFETY: per contract.
        let entry = unsafe {
            step(cur, CursorKind::Kv, |it| match it {
                CursorIter::Kv(kv) => kv.next().transpose(),
                _ => Err(Error::invalid("not a key-value cursor")),
            })
        }?;
        // SAFETY: checked non-null.
        unsafe {
            match entry {
                None => put(done, true, "done"),
                Some((k, v)) => {
                    put(key, obj_bytes::from_vec(k), "key")?;
                    put(value, obj_bytes::from_vec(v), "value")?;
                    put(done, false, "done")
                }
            }
        }
    })
}

/// Opens a dump of collection `coll` (either kind) in `*out` (free with
/// obj_cursor_free): every stored record in id order, read with
/// obj_dump_cursor_next, without decoding (for backups, migrations and
/// checks). A missing collection is empty. The cursor follows the same
/// transaction rules as obj_query's cursors. Errors: OBJ_INVALID_ARGUMENT
/// (bad name, finished transaction, NULL out).
///
/// # Safety
/// `txn` is a live handle; `coll` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_collection_dump(
    txn: *mut obj_txn,
    coll: *const c_char,
    out: *mut *mut obj_cursor,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let coll = unsafe { arg_str(coll, "collection name") }?;
        // SAFETY: per contract.
        unsafe {
            open_cursor(txn, CursorKind::Records, out, |st| {
                Ok(with_readable!(st, |t| match t.collection(coll) {
                    Ok(c) => CursorIter::Records(Box::new(c.stored_records()?)),
                    Err(Error::NotFound(_)) => CursorIter::Empty,
                    Err(e) => return Err(e),
                }))
            })
        }
    })
}

/// The next record of a collection dump: `*out_id`, `*out_version` (may be
/// NULL; the schema version from the record header) and `*out_data`, the
/// stored bytes exactly as on disk (the document header followed by the
/// payload: for a raw collection the caller's bytes, for structured
/// documents the binary encoding of docs/format.md, whose field names
/// refer to the collection's dictionary; free with obj_bytes_free); `*done` =
/// false. At the end `*done` = true and nothing else is written. Errors: as
/// obj_cursor_next.
///
/// # Safety
/// `cur` is a live cursor handle; `out_id`, `out_data`, `done` writable;
/// `out_version` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_dump_cursor_next(
    cur: *mut obj_cursor,
    out_id: *mut u64,
    out_version: *mut u32,
    out_data: *mut obj_bytes,
    done: *mut bool,
) -> obj_status {
    fence(|| {
        need(out_id, "out_id")?;
        need(out_data, "out_data")?;
        need(done, "done")?;
        // SAFETY: per contract.
        let rec = unsafe {
            step(cur, CursorKind::Records, |it| match it {
                CursorIter::Empty => Ok(None),
                CursorIter::Records(r) => match r.next().transpose()? {
                    None => Ok(None),
                    Some((id, bytes)) => {
                        let version = decode_header(&bytes)?.0.schema_version;
                        Ok(Some((id, version, bytes)))
                    }
                },
                _ => Err(Error::invalid("not a dump cursor")),
            })
        }?;
        // SAFETY: checked non-null; out_version per contract.
        unsafe {
            match rec {
                None => put(done, true, "done"),
                Some((id, version, bytes)) => {
                    put(out_id, id, "out_id")?;
                    put_opt(out_version, version);
                    put(out_data, obj_bytes::from_vec(bytes), "out_data")?;
                    put(done, false, "done")
                }
            }
        }
    })
}

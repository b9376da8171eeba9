//! Collections through the C ABI: create, drop, list, describe, count.

use std::ffi::c_char;

use obj_engine::{CollectionKind, CollectionOptions, Error, IndexInfo, QuerySpec, Value};

use crate::bytes::{arg_str, json_bytes, need, obj_bytes, put, put_opt};
use crate::db::{begin_own_read, obj_db};
use crate::error::fence;
use crate::obj_status;
use crate::txn::{lock_txn, obj_txn, CollView};

/// `flags` bit for `obj_collection_create`: a collection of opaque byte
/// strings (raw documents) instead of structured documents.
pub const OBJ_COLLECTION_RAW: u32 = 1;

/// Runs `$body` with `$c` bound to the engine collection of a [`CollView`].
macro_rules! on_coll {
    ($view:expr, |$c:ident| $body:expr) => {
        match $view {
            CollView::Read($c) => $body,
            CollView::Write($c) => $body,
        }
    };
}

impl CollView<'_> {
    pub(crate) fn kind(&self) -> CollectionKind {
        on_coll!(self, |c| c.kind())
    }

    pub(crate) fn name(&self) -> &str {
        on_coll!(self, |c| c.name())
    }

    pub(crate) fn count(&self) -> Result<u64, Error> {
        on_coll!(self, |c| c.count())
    }

    pub(crate) fn next_id(&self) -> u64 {
        on_coll!(self, |c| c.next_id())
    }

    pub(crate) fn indexes(&self) -> &[IndexInfo] {
        on_coll!(self, |c| c.indexes())
    }

    pub(crate) fn get_json(&self, id: u64, out: &mut Vec<u8>) -> Result<Option<u32>, Error> {
        on_coll!(self, |c| c.get_json(id, out))
    }

    /// The stored records with ids in `lo..=hi`, in id order.
    pub(crate) fn stored_run(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        on_coll!(self, |c| c.stored_range(lo, hi)?.collect())
    }

    /// A stored record of this collection appended to `out` as JSON text.
    pub(crate) fn stored_to_json(&self, stored: &[u8], out: &mut Vec<u8>) -> Result<u32, Error> {
        on_coll!(self, |c| c.stored_to_json(stored, out))
    }

    pub(crate) fn unique_index_fields(&self, index: &str) -> Result<usize, Error> {
        on_coll!(self, |c| c.unique_index_fields(index))
    }

    pub(crate) fn find_unique_json(
        &self,
        index: &str,
        values: &[Value],
        out: &mut Vec<u8>,
    ) -> Result<Option<(u64, u32)>, Error> {
        on_coll!(self, |c| c.find_unique_json(index, values, out))
    }

    pub(crate) fn get_raw(&self, id: u64) -> Result<Option<Vec<u8>>, Error> {
        on_coll!(self, |c| c.get_raw(id))
    }

    /// The number of results of `spec` (a `count_only` spec too).
    pub(crate) fn query_count(&self, spec: &QuerySpec) -> Result<u64, Error> {
        on_coll!(self, |c| c.query_count(spec))
    }

    /// The engine's plan for `spec`.
    pub(crate) fn plan(&self, spec: &QuerySpec) -> Result<obj_engine::query::plan::Plan, Error> {
        on_coll!(self, |c| c.plan(spec))
    }

    /// Fails unless the collection holds `want` documents.
    pub(crate) fn expect_kind(&self, want: CollectionKind) -> Result<(), Error> {
        expect_kind(self.name(), self.kind(), want)
    }
}

pub(crate) fn kind_name(kind: CollectionKind) -> &'static str {
    match kind {
        CollectionKind::Documents => "documents",
        CollectionKind::Raw => "raw",
    }
}

/// The JSON form of an index declaration: {"name","kind","fields"}.
pub(crate) fn index_json(info: &IndexInfo) -> serde_json::Value {
    serde_json::json!({
        "name": info.spec.name,
        "kind": info.spec.kind.as_str(),
        "fields": info.spec.field_strings(),
    })
}

/// Creates collection `name` in a write transaction. `flags`: 0 for a
/// collection of structured documents, OBJ_COLLECTION_RAW for raw bytes.
/// An existing collection of the same kind is OBJ_OK; of the other kind,
/// OBJ_INVALID_ARGUMENT. Errors: OBJ_INVALID_ARGUMENT (read or finished
/// transaction, bad name: empty, over 200 bytes, containing '/', not
/// UTF-8; unknown flag bits). Thread-safety: as every call on `txn`.
///
/// # Safety
/// `txn` is a live handle; `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn obj_collection_create(
    txn: *mut obj_txn,
    name: *const c_char,
    flags: u32,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let name = unsafe { arg_str(name, "collection name") }?;
        if flags & !OBJ_COLLECTION_RAW != 0 {
            return Err(Error::invalid(format!("unknown collection flags {flags:#x}")));
        }
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        t.write()?.create_collection(name, CollectionOptions { raw: flags & OBJ_COLLECTION_RAW != 0 })
    })
}

/// Raises the next id of existing collection `name` (of either kind) to
/// at least `next_id`, in a write transaction, so that no id below it is
/// ever assigned: what loading a dump at its documents' ids does with the
/// dump header's `next_id` (ids deleted before the dump stay unused). A
/// lower `next_id` changes nothing. Errors: OBJ_NOT_FOUND (no such
/// collection), OBJ_INVALID_ARGUMENT (read or finished transaction, bad
/// name).
///
/// # Safety
/// `txn` is a live handle; `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn obj_collection_raise_next_id(
    txn: *mut obj_txn,
    name: *const c_char,
    next_id: u64,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let name = unsafe { arg_str(name, "collection name") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        t.write()?;
        let kind = match t.collection(name)? {
            Some(c) => c.kind(),
            None => return Err(Error::NotFound(format!("collection {name:?}"))),
        };
        if kind == CollectionKind::Raw {
            t.with_collection_mut(name, |w, n| w.raw_collection_mut(n), |c| c.raise_next_id(next_id))
        } else {
            t.with_collection_mut(name, |w, n| w.collection_mut(n), |c| c.raise_next_id(next_id))
        }
    })
}

/// Drops collection `name` with its documents and indexes, in a write
/// transaction. `*existed` (may be NULL) says whether it was there; a
/// missing collection is OBJ_OK. Errors: OBJ_INVALID_ARGUMENT (read or
/// finished transaction, bad name).
///
/// # Safety
/// `txn` is a live handle; `name` a NUL-terminated string; `existed` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_collection_drop(
    txn: *mut obj_txn,
    name: *const c_char,
    existed: *mut bool,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let name = unsafe { arg_str(name, "collection name") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let w = t.write()?;
        let was = match w.collection(name) {
            Ok(_) => true,
            Err(Error::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        if was {
            w.drop_collection(name)?;
        }
        // SAFETY: per contract.
        unsafe { put_opt(existed, was) };
        Ok(())
    })
}

/// The names of all collections as a JSON array of strings, sorted by
/// their UTF-8 bytes, in `*out` (free with obj_bytes_free). Works in read
/// and write transactions. Errors: OBJ_INVALID_ARGUMENT (finished
/// transaction, NULL out).
///
/// # Safety
/// `txn` is a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_collection_list(txn: *mut obj_txn, out: *mut obj_bytes) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let t = unsafe { lock_txn(txn) }?;
        let names = with_readable!(t.state(), |r| r.list_collections()?);
        // SAFETY: checked non-null.
        unsafe { put(out, json_bytes(&serde_json::json!(names)), "out") }
    })
}

/// Describes collection `name` as a JSON object in `*out` (free with
/// obj_bytes_free):
/// {"name":..,"kind":"documents"|"raw","count":N,"next_id":N,
/// "indexes":[{"name":..,"kind":"unique"|"standard"|"multi","fields":["a","b.c"]}]}.
/// Errors: OBJ_NOT_FOUND (no such collection), OBJ_INVALID_ARGUMENT
/// (finished transaction, bad name, NULL out).
///
/// # Safety
/// `txn` is a live handle; `name` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_collection_info(
    txn: *mut obj_txn,
    name: *const c_char,
    out: *mut obj_bytes,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let name = unsafe { arg_str(name, "collection name") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let c = t.collection(name)?.ok_or_else(|| Error::not_found(format!("collection {name:?}")))?;
        let json = serde_json::json!({
            "name": name,
            "kind": kind_name(c.kind()),
            "count": c.count()?,
            "next_id": c.next_id(),
            "indexes": c.indexes().iter().map(index_json).collect::<Vec<_>>(),
        });
        // SAFETY: checked non-null.
        unsafe { put(out, json_bytes(&json), "out") }
    })
}

/// The number of documents in collection `name` in `*out` (0 for a
/// missing collection). Constant time. Errors: OBJ_INVALID_ARGUMENT
/// (finished transaction, bad name, NULL out).
///
/// # Safety
/// `txn` is a live handle; `name` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_collection_count(
    txn: *mut obj_txn,
    name: *const c_char,
    out: *mut u64,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let name = unsafe { arg_str(name, "collection name") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let n = match t.collection(name)? {
            Some(c) => c.count()?,
            None => 0,
        };
        // SAFETY: checked non-null.
        unsafe { put(out, n, "out") }
    })
}

/// The number of documents in collection `coll` in `*out_count` (0 for a
/// missing collection), read in a snapshot of its own (begun and ended
/// inside the call): `obj_txn_begin_read` + `obj_collection_count` +
/// `obj_txn_free` in one call, for a single count outside any transaction.
/// Constant time. Errors as `obj_collection_count`; OBJ_CLOSED after
/// `obj_db_close`.
///
/// # Safety
/// `db` is a live handle; `coll` a NUL-terminated string; `out_count`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_count(
    db: *mut obj_db,
    coll: *const c_char,
    out_count: *mut u64,
) -> obj_status {
    fence(|| {
        need(out_count, "out_count")?;
        // SAFETY: per contract.
        let coll = unsafe { arg_str(coll, "collection name") }?;
        // SAFETY: per contract.
        let snapshot = unsafe { begin_own_read(db) }?;
        let n = match or_missing(snapshot.collection(coll))? {
            Some(c) => c.count()?,
            None => 0,
        };
        drop(snapshot);
        // SAFETY: checked non-null.
        unsafe { put(out_count, n, "out_count") }
    })
}

/// `None` for a collection that is not there (`NotFound`): a missing
/// collection reads as an empty one.
pub(crate) fn or_missing<T>(opened: Result<T, Error>) -> Result<Option<T>, Error> {
    match opened {
        Ok(c) => Ok(Some(c)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Fails unless collection `name`, of kind `kind`, holds `want` documents.
pub(crate) fn expect_kind(name: &str, kind: CollectionKind, want: CollectionKind) -> Result<(), Error> {
    if kind == want {
        return Ok(());
    }
    Err(Error::invalid(match want {
        CollectionKind::Documents => {
            format!("collection {name:?} holds raw bytes: use the obj_raw_* functions")
        }
        CollectionKind::Raw => {
            format!("collection {name:?} holds structured documents: use the obj_doc_* functions")
        }
    }))
}

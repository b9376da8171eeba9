//! Key-value namespaces through the C ABI: bytes to bytes, in the same
//! transactions as everything else. Scans are cursors (`cursor.rs`).

use std::ffi::c_char;

use crate::bytes::{arg_bytes, arg_str, json_bytes, need, obj_bytes, put, put_found, put_opt};
use crate::db::{begin_own_read, obj_db};
use crate::error::fence;
use crate::obj_status;
use crate::txn::{lock_txn, obj_txn};

/// Sets `key` to `value` in namespace `ns` (created on first use). A key
/// may take 1341 bytes in a database of 4 KiB pages (2707 for 8 KiB,
/// 21821 for 64 KiB, a little less encrypted: docs/format.md, "Limits").
/// Errors: OBJ_INVALID_ARGUMENT (read transaction, finished transaction,
/// key longer than the limit, NULL with a non-zero length).
///
/// # Safety
/// `txn` is a live handle; `ns` a NUL-terminated string; `key`/`value`
/// valid for their lengths (NULL allowed with length 0).
#[no_mangle]
pub unsafe extern "C" fn obj_kv_put(
    txn: *mut obj_txn,
    ns: *const c_char,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (ns, key, value) = unsafe {
            (
                arg_str(ns, "namespace")?,
                arg_bytes(key, key_len, "key")?,
                arg_bytes(value, value_len, "value")?,
            )
        };
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        t.write()?.kv_put(ns, key, value)?;
        Ok(())
    })
}

/// Reads `key` of namespace `ns`. `*found` says whether it exists; if so
/// `*out` holds a copy of the value (free with obj_bytes_free), otherwise
/// `*out` is {NULL, 0}. A missing namespace reads as empty, and a key
/// longer than obj_kv_put's limit as missing. Errors:
/// OBJ_INVALID_ARGUMENT (finished transaction, bad name, NULL pointers),
/// OBJ_CORRUPTION (a damaged page on the way).
///
/// # Safety
/// As for obj_kv_put; `out` and `found` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_kv_get(
    txn: *mut obj_txn,
    ns: *const c_char,
    key: *const u8,
    key_len: usize,
    out: *mut obj_bytes,
    found: *mut bool,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        need(found, "found")?;
        // SAFETY: per contract.
        let (ns, key) = unsafe { (arg_str(ns, "namespace")?, arg_bytes(key, key_len, "key")?) };
        // SAFETY: per contract.
        let t = unsafe { lock_txn(txn) }?;
        let value = with_readable!(t.state(), |r| r.kv_get(ns, key)?);
        // SAFETY: checked non-null.
        unsafe { put_found(found, out, value) }
    })
}

/// Reads `key` of namespace `ns` in a snapshot of its own (begun and ended
/// inside the call): `obj_txn_begin_read` + `obj_kv_get` + `obj_txn_free`
/// in one call, for a single lookup outside any transaction. Outputs (free
/// `*out` with obj_bytes_free) and errors as `obj_kv_get` (a missing
/// namespace reads as empty); OBJ_CLOSED after `obj_db_close`.
///
/// # Safety
/// `db` is a live handle; `ns` a NUL-terminated string; `key` valid for
/// `key_len` bytes (NULL allowed with length 0); `out`, `found` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_kv_get(
    db: *mut obj_db,
    ns: *const c_char,
    key: *const u8,
    key_len: usize,
    out: *mut obj_bytes,
    found: *mut bool,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        need(found, "found")?;
        // SAFETY: per contract.
        let (ns, key) = unsafe { (arg_str(ns, "namespace")?, arg_bytes(key, key_len, "key")?) };
        // SAFETY: per contract.
        let snapshot = unsafe { begin_own_read(db) }?;
        let value = snapshot.kv_get(ns, key)?;
        drop(snapshot);
        // SAFETY: checked non-null.
        unsafe { put_found(found, out, value) }
    })
}

/// The number of entries in namespace `ns` in `*out_count` (0 for a
/// missing namespace), as the transaction sees it; no walk: the count is
/// kept with the namespace. Errors: OBJ_INVALID_ARGUMENT (finished
/// transaction, bad name, NULL pointers).
///
/// # Safety
/// `txn` is a live handle; `ns` a NUL-terminated string; `out_count`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_kv_count(
    txn: *mut obj_txn,
    ns: *const c_char,
    out_count: *mut u64,
) -> obj_status {
    fence(|| {
        need(out_count, "out_count")?;
        // SAFETY: per contract.
        let ns = unsafe { arg_str(ns, "namespace") }?;
        // SAFETY: per contract.
        let t = unsafe { lock_txn(txn) }?;
        let n = with_readable!(t.state(), |r| r.kv_count(ns)?);
        // SAFETY: checked non-null.
        unsafe { put(out_count, n, "out_count") }
    })
}

/// Deletes `key` of namespace `ns`; `*existed` (may be NULL) says whether
/// it was there (never for a key longer than obj_kv_put's limit). Errors:
/// as obj_kv_put's.
///
/// # Safety
/// As for obj_kv_put; `existed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_kv_delete(
    txn: *mut obj_txn,
    ns: *const c_char,
    key: *const u8,
    key_len: usize,
    existed: *mut bool,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (ns, key) = unsafe { (arg_str(ns, "namespace")?, arg_bytes(key, key_len, "key")?) };
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let was = t.write()?.kv_delete(ns, key)?;
        if !existed.is_null() {
            // SAFETY: non-null and writable per contract.
            unsafe { existed.write(was) };
        }
        Ok(())
    })
}

/// Creates namespace `ns` if it is missing, so that an empty namespace
/// exists (listed, exported, backed up); `*created` (may be NULL) says
/// whether it was created (an existing namespace is OBJ_OK, its entries
/// untouched). Errors: OBJ_INVALID_ARGUMENT (read or finished transaction,
/// bad name).
///
/// # Safety
/// `txn` is a live handle; `ns` a NUL-terminated string; `created` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_kv_create(
    txn: *mut obj_txn,
    ns: *const c_char,
    created: *mut bool,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let ns = unsafe { arg_str(ns, "namespace") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let made = t.write()?.kv_create(ns)?;
        // SAFETY: per contract.
        unsafe { put_opt(created, made) };
        Ok(())
    })
}

/// Drops namespace `ns` with all its entries; `*existed` (may be NULL)
/// says whether it was there (a missing namespace is OBJ_OK). Errors:
/// OBJ_INVALID_ARGUMENT (read or finished transaction, bad name).
///
/// # Safety
/// `txn` is a live handle; `ns` a NUL-terminated string; `existed` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_kv_drop(txn: *mut obj_txn, ns: *const c_char, existed: *mut bool) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let ns = unsafe { arg_str(ns, "namespace") }?;
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        let was = t.write()?.kv_drop(ns)?;
        // SAFETY: per contract.
        unsafe { put_opt(existed, was) };
        Ok(())
    })
}

/// The names of all key-value namespaces as a sorted JSON array of
/// strings in `*out` (free with obj_bytes_free). Errors:
/// OBJ_INVALID_ARGUMENT (finished transaction, NULL out).
///
/// # Safety
/// `txn` is a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_kv_list(txn: *mut obj_txn, out: *mut obj_bytes) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let t = unsafe { lock_txn(txn) }?;
        let names = with_readable!(t.state(), |r| r.kv_list()?);
        // SAFETY: checked non-null.
        unsafe { put(out, json_bytes(&serde_json::json!(names)), "out") }
    })
}

//! Operating a database through the ABI: online backup and restore,
//! compaction, attaching other files read-only, export and import as JSON
//! lines, and changing the encryption key.

use std::ffi::{c_char, c_void};
use std::io::BufReader;

use obj_engine::ops::backup::{BackupReport, Progress, RestoreOptions};
use obj_engine::ops::compact::CompactReport;
use obj_engine::ops::export::{ExportReport, ImportOptions};
use obj_engine::{Db, EncryptionKey, Error};

use crate::bytes::{arg_bytes, arg_str, json_bytes, obj_bytes};
use crate::db::{handle, obj_db, open_db, rekey_state, DbState, DB_TAG};
use crate::error::fence;
use crate::obj_status;

/// A progress callback: `done` of `total` pages copied so far; `ctx` is the
/// caller's pointer, passed through. Called before the first page, every
/// 256 pages, and once with `done` == `total` before the copy is put in
/// place. Return false from any call, the last included, to cancel (the
/// call then returns OBJ_OK with `"cancelled": true` in its report, and
/// nothing is left at the target). Called on the calling thread, during the call. It
/// may call the library, on the same database handle too: the backup holds
/// no lock on the handle (an obj_db_close from the callback returns at
/// once, later calls on the handle return OBJ_CLOSED, and the backup
/// finishes; obj_db_rekey returns OBJ_BUSY). It must return normally: a
/// C++ exception thrown out of it aborts the process, and a longjmp out of
/// it is undefined behaviour (the call's clean-up is skipped: its
/// temporary file, locks and memory stay); catch inside the callback, as
/// obj.hpp's wrappers do.
pub type obj_progress_fn = Option<unsafe extern "C" fn(done: u64, total: u64, ctx: *mut c_void) -> bool>;

/// Runs `f` on the open database behind `db`.
///
/// # Safety
/// `db` is NULL or a live handle.
pub(crate) unsafe fn with_db<T>(
    db: *mut obj_db,
    f: impl FnOnce(&Db) -> Result<T, Error>,
) -> Result<T, Error> {
    // SAFETY: per the caller's contract.
    let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
    // The handle's lock is not held meanwhile: `f` may run long and call
    // back into the caller, who may close the handle (see `open_db`).
    let live = open_db(state)?;
    f(&live)
}

/// Writes `value` as JSON into `out` when `out` is not NULL.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn put_report(out: *mut obj_bytes, value: serde_json::Value) {
    if !out.is_null() {
        // SAFETY: non-null and writable per contract.
        unsafe { out.write(json_bytes(&value)) };
    }
}

fn backup_json(r: &BackupReport) -> serde_json::Value {
    serde_json::json!({
        "pages": r.pages, "bytes": r.bytes, "commit_counter": r.commit_counter,
        "cancelled": r.cancelled, "millis": r.millis,
    })
}

fn compact_json(r: &CompactReport) -> serde_json::Value {
    serde_json::json!({
        "pages_before": r.pages_before, "pages_after": r.pages_after,
        "file_size_before": r.file_size_before, "file_size_after": r.file_size_after,
        "commit_counter": r.commit_counter, "rewritten": r.rewritten, "complete": r.complete,
        "millis": r.millis,
    })
}

/// Writes a consistent copy of the database, as of one snapshot, to `path`
/// (UTF-8) while other threads keep reading and writing. The copy is a
/// normal database file, written under a temporary name and renamed into
/// place, so a crash never leaves a partial file at `path`. `progress` may
/// be NULL. `out` (may be NULL) receives a JSON report (free with
/// obj_bytes_free): pages and bytes (of the copy; when cancelled, of the
/// pages copied before the cancel: the `done` of the callback that returned
/// false, 0 at the first call), commit_counter (the snapshot copied),
/// cancelled, millis. The backup of an encrypted database is encrypted with
/// the same key (it opens with the key or passphrase of the original).
/// Errors: OBJ_BUSY (`path` is an open database, or a file appeared there
/// while the copy was written), OBJ_INVALID_ARGUMENT
/// (`path` is this database's own file, under its name or a hard link, or a
/// database not closed cleanly, whose `-wal` may hold commits it lacks: open
/// and close it first), OBJ_IO.
///
/// # Safety
/// `db` is a live handle; `path` a NUL-terminated string; `progress` NULL
/// or a function safe to call with `ctx`; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_backup(
    db: *mut obj_db,
    path: *const c_char,
    progress: obj_progress_fn,
    ctx: *mut c_void,
    out: *mut obj_bytes,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: per contract.
        let report = unsafe {
            with_db(db, |d| {
                d.backup_to(path, |p: Progress| match progress {
                    // SAFETY: the caller vouches for the callback and `ctx`.
                    Some(f) => f(p.pages_done, p.pages_total, ctx),
                    None => true,
                })
            })
        }?;
        // SAFETY: per contract.
        unsafe { put_report(out, backup_json(&report)) };
        Ok(())
    })
}

/// Copies the database file `backup` to `target`, a path that must not be
/// open (OBJ_BUSY) and, unless `overwrite`, must not exist
/// (OBJ_INVALID_ARGUMENT; one that appears while the copy is written is
/// OBJ_BUSY). A damaged backup is refused (OBJ_CORRUPTION)
/// before the target changes; a stale `<target>-wal` is removed. A crash
/// leaves the old target or the new one, whole.
///
/// # Safety
/// `backup` and `target` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn obj_db_restore(
    backup: *const c_char,
    target: *const c_char,
    overwrite: bool,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (backup, target) = unsafe { (arg_str(backup, "backup")?, arg_str(target, "target")?) };
        Db::restore_from(backup, target, RestoreOptions { overwrite, ..Default::default() }).map(drop)
    })
}

/// obj_db_restore for an encrypted backup: `key` (32 raw bytes) or
/// `passphrase` (NUL-terminated) is its key, and the restored file is
/// encrypted with it too; both NULL is obj_db_restore. A missing or wrong
/// key is OBJ_ENCRYPTION, and nothing at the target changes.
///
/// # Safety
/// `backup` and `target` are NUL-terminated strings; `key` NULL or valid
/// for 32 bytes; `passphrase` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn obj_db_restore_with_key(
    backup: *const c_char,
    target: *const c_char,
    overwrite: bool,
    key: *const u8,
    passphrase: *const c_char,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (backup, target) = unsafe { (arg_str(backup, "backup")?, arg_str(target, "target")?) };
        // SAFETY: per contract.
        let encryption = unsafe { key_from(key, passphrase) }?;
        Db::restore_from(backup, target, RestoreOptions { overwrite, encryption, vfs: None }).map(drop)
    })
}

/// Shrinks the file in place: rewrites every tree into the fewest pages
/// and truncates the rest, crash-safe at every point (the new image goes
/// through the WAL). Writers wait meanwhile; readers do not (while an old
/// snapshot is open the file shrinks at a later checkpoint: `"complete"`
/// false). `out` (may be NULL) receives a JSON report (free with
/// obj_bytes_free): pages_before, pages_after, file_size_before,
/// file_size_after, commit_counter, rewritten, complete, millis. Takes the
/// writer's lock: while a write transaction is open (another thread's, or the
/// calling thread's own), it waits up to the busy timeout, then returns
/// OBJ_BUSY.
///
/// # Safety
/// `db` is a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_compact(db: *mut obj_db, out: *mut obj_bytes) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let report = unsafe { with_db(db, |d| d.compact()) }?;
        // SAFETY: per contract.
        unsafe { put_report(out, compact_json(&report)) };
        Ok(())
    })
}

/// Writes a compacted copy of the current snapshot to `path` (a new file
/// id, no WAL), as obj_db_backup does (encrypted with the same key when the
/// database is). `out` as for obj_db_compact (free with obj_bytes_free).
/// Errors as obj_db_backup's: OBJ_BUSY (`path` is an open database, or a
/// file appeared there while the copy was written),
/// OBJ_INVALID_ARGUMENT (this database's own file, bad path), OBJ_IO;
/// OBJ_CLOSED after obj_db_close.
///
/// # Safety
/// `db` is a live handle; `path` a NUL-terminated string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_compact_to(
    db: *mut obj_db,
    path: *const c_char,
    out: *mut obj_bytes,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: per contract.
        let report = unsafe { with_db(db, |d| d.compact_to(path)) }?;
        // SAFETY: per contract.
        unsafe { put_report(out, compact_json(&report)) };
        Ok(())
    })
}

/// The exact figures of what obj_db_compact would do, from a dry run on
/// the current snapshot (reads every tree node: the cost of a scan;
/// obj_db_stat_json is cheap and gives only bounds). `*out` receives a JSON
/// object (free with obj_bytes_free): database_size, file_size,
/// compacted_size, reclaimable_bytes. Errors: OBJ_CLOSED after
/// obj_db_close, OBJ_INVALID_ARGUMENT (NULL pointers), OBJ_CORRUPTION
/// (a damaged node on the way), OBJ_IO.
///
/// # Safety
/// `db` is a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_compaction_estimate(db: *mut obj_db, out: *mut obj_bytes) -> obj_status {
    fence(|| {
        crate::bytes::need(out, "out")?;
        // SAFETY: per contract.
        let e = unsafe { with_db(db, |d| d.compaction_estimate()) }?;
        let v = serde_json::json!({
            "database_size": e.database_size, "file_size": e.file_size,
            "compacted_size": e.compacted_size, "reclaimable_bytes": e.reclaimable_bytes,
        });
        // SAFETY: per contract.
        unsafe { put_report(out, v) };
        Ok(())
    })
}

/// Opens the database at `path` read-only and makes its collections
/// readable as `"<ns>.<collection>"` in every transaction begun afterwards
/// on this handle (each takes a snapshot of the attached file when it
/// begins). Writes there are OBJ_INVALID_ARGUMENT. Collections only: the
/// attached file's key-value namespaces are not reachable, and a
/// key-value call (obj_kv_get, obj_kv_put, obj_kv_scan, ...) on
/// `"<ns>.x"` reads or writes this database's own namespace of that name.
/// obj_collection_list lists this database's own collections only, and
/// obj_txn_catalog_version counts this database's catalog changes only.
/// A local collection named `"<ns>.<c>"` is not hidden: attaching while
/// one exists is OBJ_INVALID_ARGUMENT, and so is reading a name that both
/// files hold once one was created after the attach (detach to read the
/// local one).
/// Errors: OBJ_NOT_FOUND
/// (no file), OBJ_CORRUPTION / OBJ_INVALID_ARGUMENT (not a sound obj
/// database), OBJ_INVALID_ARGUMENT (namespace already attached or invalid).
///
/// # Safety
/// `db` is a live handle; `path` and `ns` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn obj_db_attach(
    db: *mut obj_db,
    path: *const c_char,
    ns: *const c_char,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (path, ns) = unsafe { (arg_str(path, "path")?, arg_str(ns, "ns")?) };
        // SAFETY: per contract.
        unsafe { with_db(db, |d| d.attach(path, ns)) }
    })
}

/// obj_db_attach for an encrypted file: `key` (32 raw bytes) or
/// `passphrase`, the one the file was written with (both NULL: a plain
/// file, as obj_db_attach). A wrong or missing key is OBJ_ENCRYPTION and
/// attaches nothing; both given is OBJ_INVALID_ARGUMENT.
///
/// # Safety
/// `db` is a live handle; `path` and `ns` NUL-terminated strings; `key`
/// NULL or valid for 32 bytes; `passphrase` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn obj_db_attach_with_key(
    db: *mut obj_db,
    path: *const c_char,
    ns: *const c_char,
    key: *const u8,
    passphrase: *const c_char,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let (path, ns) = unsafe { (arg_str(path, "path")?, arg_str(ns, "ns")?) };
        // SAFETY: per contract.
        let key = unsafe { key_from(key, passphrase) }?;
        // SAFETY: per contract.
        unsafe { with_db(db, |d| d.attach_with_key(path, ns, key)) }
    })
}

/// Detaches namespace `ns` (OBJ_NOT_FOUND if not attached). Transactions
/// already begun keep their snapshot of it.
///
/// # Safety
/// `db` is a live handle; `ns` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn obj_db_detach(db: *mut obj_db, ns: *const c_char) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let ns = unsafe { arg_str(ns, "ns") }?;
        // SAFETY: per contract.
        unsafe { with_db(db, |d| d.detach(ns)) }
    })
}

/// Streams collection `collection` (or, when NULL, every collection,
/// key-value namespace and plain B+tree that the Rust API's `create_tree`
/// made) to the file `path` as JSON lines, from one snapshot, in constant
/// memory: a header line per collection (kind, indexes, next id) then one
/// line per document (docs/format.md, "Export files"). `out` (may be
/// NULL) receives a JSON report (free with obj_bytes_free): collections,
/// documents, kv_namespaces, kv_entries, trees, tree_entries, commit_counter.
/// The lines go to a temporary file beside `path` that replaces it once
/// complete and synced; a failed export leaves `path` as it was. A `path`
/// that is a pipe (FIFO) or a character device is written straight into (a
/// FIFO's open waits for its reader), one of the process's descriptors
/// (`/dev/stdout`, `/proc/self/fd/N`) is appended to. A write into a pipe
/// whose reader has gone raises SIGPIPE, as any write(2) does: ignore it
/// (signal(SIGPIPE, SIG_IGN)) to get OBJ_IO instead. Errors: OBJ_BUSY when
/// `path` is a database open in this process, OBJ_INVALID_ARGUMENT when it
/// holds any obj database or is a database's `-wal` or `-shm` file (an export
/// over it would destroy the database or its last commits) or is a directory,
/// a block device or a socket.
///
/// # Safety
/// `db` is a live handle; `collection` NULL or a NUL-terminated string;
/// `path` a NUL-terminated string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_export(
    db: *mut obj_db,
    collection: *const c_char,
    path: *const c_char,
    out: *mut obj_bytes,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: per contract.
        let collection = unsafe { collection_or_all(collection) }?;
        // SAFETY: per contract.
        let r = unsafe {
            with_db(db, |d| {
                // Only once the handle is known to be an open database: a
                // NULL, wrong-kind or closed handle must not truncate `path`.
                d.export_to_path(collection, std::path::Path::new(path))
            })
        }?;
        // SAFETY: per contract.
        unsafe { put_export_report(out, &r) };
        Ok(())
    })
}

/// An export's collection argument: NULL is every collection, key-value
/// namespace and plain tree.
///
/// # Safety
/// `collection` is NULL or a NUL-terminated string.
unsafe fn collection_or_all<'a>(collection: *const c_char) -> Result<Option<&'a str>, Error> {
    if collection.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, per the caller's contract.
    unsafe { arg_str(collection, "collection") }.map(Some)
}

/// Writes an export's JSON report (see obj_db_export) to `out`.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn put_export_report(out: *mut obj_bytes, r: &ExportReport) {
    let v = serde_json::json!({
        "collections": r.collections, "documents": r.documents, "kv_namespaces": r.kv_namespaces,
        "kv_entries": r.kv_entries, "trees": r.trees, "tree_entries": r.tree_entries,
        "commit_counter": r.commit_counter,
    });
    // SAFETY: per the caller's contract.
    unsafe { put_report(out, v) };
}

/// A sink for obj_db_export_to: receives the export's bytes in order, in
/// pieces of any size (`len` > 0, `data` valid only during the call);
/// `ctx` is the caller's pointer, passed through. Return 0 to go on;
/// anything else stops the export at once, and obj_db_export_to returns
/// OBJ_IO naming the value. Called on the calling thread, during the call.
/// It must return normally: a C++ exception thrown out of it aborts the
/// process, and a longjmp out of it is undefined behaviour (the call's
/// clean-up is skipped); catch inside the callback, as obj.hpp's wrappers
/// do.
pub type obj_write_fn = Option<unsafe extern "C" fn(data: *const u8, len: usize, ctx: *mut c_void) -> i32>;

/// The most bytes one call of an [`obj_write_fn`] receives.
const EXPORT_PIECE: usize = 64 << 10;

/// The export's bytes handed to an [`obj_write_fn`].
struct CallbackWriter {
    write: unsafe extern "C" fn(data: *const u8, len: usize, ctx: *mut c_void) -> i32,
    ctx: *mut c_void,
    /// What the callback returned when it refused.
    refused: Option<i32>,
}

impl std::io::Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(rc) = self.refused {
            // Never called again once it refused (the buffer's drop
            // would try to hand over what it still holds).
            return Err(std::io::Error::other(format!("the write callback returned {rc}")));
        }
        // At most one buffer's worth a call, however long a line is
        // (`write_all` comes back for the rest).
        let piece = &buf[..buf.len().min(EXPORT_PIECE)];
        // SAFETY: the caller of obj_db_export_to gave a function safe to
        // call with `ctx`; `piece` is valid for its length meanwhile.
        let rc = unsafe { (self.write)(piece.as_ptr(), piece.len(), self.ctx) };
        if rc != 0 {
            self.refused = Some(rc);
            return Err(std::io::Error::other(format!("the write callback returned {rc}")));
        }
        Ok(piece.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams an export like obj_db_export (collection `collection`, or
/// everything when NULL: every collection, key-value namespace and plain
/// B+tree, from one snapshot, in constant memory) to `write` instead of a
/// file: to a pipe, a socket or a compressor, say. The bytes come in
/// pieces of up to 64 KiB. `out` (may be NULL) receives the report of
/// obj_db_export (free with obj_bytes_free). Errors: OBJ_INVALID_ARGUMENT
/// (`write` NULL), OBJ_IO when `write` returns non-zero (what it received so
/// far is a prefix of the export), OBJ_NOT_FOUND (no collection
/// `collection`).
///
/// # Safety
/// `db` is a live handle; `collection` NULL or a NUL-terminated string;
/// `write` NULL or a function safe to call with `ctx`; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_export_to(
    db: *mut obj_db,
    collection: *const c_char,
    write: obj_write_fn,
    ctx: *mut c_void,
    out: *mut obj_bytes,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let collection = unsafe { collection_or_all(collection) }?;
        let Some(write) = write else {
            return Err(Error::InvalidArgument("write is NULL".into()));
        };
        // SAFETY: per contract.
        let r = unsafe {
            with_db(db, |d| {
                let mut sink = std::io::BufWriter::with_capacity(
                    EXPORT_PIECE,
                    CallbackWriter { write, ctx, refused: None },
                );
                let report = d.begin_read()?.export(collection, &mut sink)?;
                std::io::Write::flush(&mut sink)
                    .map_err(|e| Error::io("handing the export to its write callback", e))?;
                Ok(report)
            })
        }?;
        // SAFETY: per contract.
        unsafe { put_export_report(out, &r) };
        Ok(())
    })
}

/// Loads a JSON-lines export (obj_db_export) from the file `path`:
/// creates the collections and their indexes and writes every document at
/// its id, in write transactions of its own: while another write
/// transaction is open (another thread's, or the calling thread's own), it
/// waits up to the busy timeout, then returns OBJ_BUSY.
/// `batch_size` 0 imports in one transaction (all or nothing; its memory
/// is bounded all the same: a write transaction spills the pages it
/// changed beyond 64 MiB, or the cache size if larger, to the WAL);
/// otherwise it commits every `batch_size` lines (a failure then leaves
/// the earlier batches). Errors name the line ("import
/// line N: ..."); a malformed line (not JSON, not UTF-8, not an export
/// record) is OBJ_INVALID_ARGUMENT, and so is a read-only handle, whatever
/// the file holds.
/// `out` (may be NULL) receives a JSON report (free with obj_bytes_free):
/// collections, documents, indexes_created, kv_namespaces, kv_entries,
/// trees, tree_entries, commits.
///
/// # Safety
/// `db` is a live handle; `path` a NUL-terminated string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_import(
    db: *mut obj_db,
    path: *const c_char,
    batch_size: u64,
    out: *mut obj_bytes,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let path = unsafe { arg_str(path, "path") }?;
        let options = ImportOptions { batch_size: (batch_size > 0).then_some(batch_size as usize) };
        // SAFETY: per contract.
        let r = unsafe {
            with_db(db, |d| {
                // Opened only once the handle is known good, so that a bad
                // handle is reported as such whatever the file.
                let file = std::fs::File::open(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::not_found(format!("file {path}")),
                    _ => Error::io(format!("opening {path}"), e),
                })?;
                d.import(BufReader::new(file), options)
            })
        }?;
        let v = serde_json::json!({
            "collections": r.collections, "documents": r.documents, "indexes_created": r.indexes_created,
            "kv_namespaces": r.kv_namespaces, "kv_entries": r.kv_entries, "trees": r.trees,
            "tree_entries": r.tree_entries, "commits": r.commits,
        });
        // SAFETY: per contract.
        unsafe { put_report(out, v) };
        Ok(())
    })
}

/// The key described by a raw key pointer and a passphrase (at most one).
///
/// # Safety
/// `key` is NULL or valid for 32 bytes; `passphrase` NULL or NUL-terminated.
pub(crate) unsafe fn key_from(
    key: *const u8,
    passphrase: *const c_char,
) -> Result<Option<EncryptionKey>, Error> {
    match (key.is_null(), passphrase.is_null()) {
        (true, true) => Ok(None),
        (false, false) => Err(Error::invalid("give an encryption key or a passphrase, not both")),
        (false, true) => {
            // SAFETY: per contract, 32 readable bytes.
            let bytes = unsafe { arg_bytes(key, 32, "encryption_key") }?;
            Ok(Some(EncryptionKey::raw(bytes.try_into().expect("32 bytes"))))
        }
        (true, false) => {
            // Any bytes but NUL: Argon2 takes bytes, and a passphrase read
            // from a file or the environment need not be UTF-8.
            // SAFETY: non-null (checked above) and NUL-terminated per contract.
            let p = unsafe { std::ffi::CStr::from_ptr(passphrase) }.to_bytes();
            if p.is_empty() {
                return Err(Error::invalid("the passphrase is empty"));
            }
            Ok(Some(EncryptionKey::passphrase(p)))
        }
    }
}

/// Rewrites the database under a new key: `key` (32 raw bytes) or
/// `passphrase` (Argon2id) encrypts a plain database or changes the key;
/// both NULL decrypts it. Crash-safe (a new copy renamed over the file).
/// This must be the only handle on the file, with no transaction open
/// and no other call in progress on the handle, such as a backup whose
/// progress callback calls this (else OBJ_BUSY). Later opens must give the
/// new key. While it runs, other calls on the handle return OBJ_BUSY; an
/// obj_db_close meanwhile returns at once, and the rekey closes the
/// database when it ends.
///
/// # Safety
/// `db` is a live handle; `key` NULL or valid for 32 bytes; `passphrase`
/// NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn obj_db_rekey(
    db: *mut obj_db,
    key: *const u8,
    passphrase: *const c_char,
) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let new_key = unsafe { key_from(key, passphrase) }?;
        // SAFETY: per contract.
        let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
        rekey_state(state, new_key)
    })
}

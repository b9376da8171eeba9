//! The database handle: open, close, checkpoint, stat, integrity check;
//! and the tagged-handle machinery shared by all handle kinds.

use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use obj_engine::{Db, EncryptionKey, Error, Options, SyncMode};

use crate::bytes::{arg_str, need, obj_bytes, put};
use crate::error::fence;
use crate::obj_status;

/// An open database (opaque). Create with `obj_db_open`, release with
/// `obj_db_free`. Usable from many threads at once: no call holds the
/// handle while it works, so calls on one handle never wait for each other
/// (only for the database's one writer, as obj_txn_begin_write says), and
/// a progress callback may call back into the library on the same handle.
pub struct obj_db {
    _opaque: u8,
}

/// Every handle is allocated as a `Tagged<T>`: the tag at offset 0 says
/// which kind of handle it is, so a handle of the wrong kind is refused
/// instead of misused. A freed handle is marked dead, but its memory may
/// be reused or unmapped: using it is undefined behaviour, caught only by
/// chance.
#[repr(C)]
pub(crate) struct Tagged<T> {
    tag: u64,
    pub(crate) value: T,
}

pub(crate) const DB_TAG: u64 = u64::from_le_bytes(*b"obj_db01");
pub(crate) const TXN_TAG: u64 = u64::from_le_bytes(*b"obj_txn1");
const DEAD_TAG: u64 = u64::from_le_bytes(*b"obj_dead");

pub(crate) fn new_handle<T, H>(tag: u64, value: T) -> *mut H {
    Box::into_raw(Box::new(Tagged { tag, value })).cast()
}

/// Borrows the value behind a handle after checking its tag.
///
/// # Safety
/// `p` is NULL or a pointer returned by this library and not yet freed.
pub(crate) unsafe fn handle<'a, T, H>(p: *const H, tag: u64, what: &str) -> Result<&'a T, Error> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} handle is NULL")));
    }
    // SAFETY: every handle starts with a u64 tag (repr(C) Tagged).
    let found = unsafe { p.cast::<u64>().read() };
    if found != tag {
        return Err(Error::invalid(format!(
            "not a valid {what} handle (a handle of another kind, or not a handle from this library)"
        )));
    }
    // SAFETY: the tag proves it is a live Tagged<T>.
    Ok(unsafe { &(*p.cast::<Tagged<T>>()).value })
}

/// Frees a handle after checking its tag; NULL is a no-op.
///
/// # Safety
/// As for [`handle`]; the handle must not be used afterwards.
pub(crate) unsafe fn free_handle<T, H>(p: *mut H, tag: u64, what: &str) -> Result<(), Error> {
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: checked like any use.
    unsafe { handle::<T, H>(p, tag, what) }?;
    // SAFETY: live Tagged<T> created by new_handle; mark dead, then drop.
    unsafe {
        let t = p.cast::<Tagged<T>>();
        (*t).tag = DEAD_TAG;
        drop(Box::from_raw(t));
    }
    Ok(())
}

/// The engine handle behind an open `obj_db`, shared by the handle and by
/// every call in progress on it: a database-level call takes a reference
/// under the handle's lock and releases the lock at once, so no call holds
/// that lock while it works, waits or runs a callback of the caller. Whoever
/// drops the last reference closes the database: `obj_db_close` itself
/// when no call is in progress, else the last of those calls as it returns.
pub(crate) struct Live {
    /// Taken only by the close ([`Live::close`] or the drop).
    db: Option<Db>,
    /// How the last reference closes the database: with the close-time
    /// checkpoint (`obj_db_close`, `obj_db_free`) or without it.
    checkpoint: AtomicBool,
}

impl Live {
    fn new(db: Db) -> Live {
        Live { db: Some(db), checkpoint: AtomicBool::new(true) }
    }

    /// Closes the database now, as recorded in `checkpoint`.
    fn close(mut self) -> Result<(), Error> {
        self.shut()
    }

    /// Takes the database out and closes it, with or without the
    /// checkpoint as `checkpoint` says (a no-op once done).
    fn shut(&mut self) -> Result<(), Error> {
        match self.db.take() {
            Some(db) if self.checkpoint.load(Ordering::Acquire) => db.close(),
            Some(db) => {
                db.close_without_checkpoint();
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for Live {
    type Target = Db;
    fn deref(&self) -> &Db {
        // `db` is taken only by `close` and `drop`, which consume the Live.
        self.db.as_ref().expect("a Live holds its Db until it is closed")
    }
}

impl Drop for Live {
    /// The last call in progress when the handle was closed closes the
    /// database as that close asked (its errors are not reported).
    fn drop(&mut self) {
        let _ = self.shut();
    }
}

/// The state of a database handle.
pub(crate) enum Slot {
    Open(Arc<Live>),
    /// `obj_db_rekey` has the database for itself while it rewrites it
    /// (calls meanwhile are OBJ_BUSY). `close` is set by a close meanwhile,
    /// with whether it checkpoints: the rekey closes the database when it
    /// ends, and calls are OBJ_CLOSED from the close on.
    Rekeying {
        close: Option<bool>,
    },
    Closed,
}

/// Reference counted, so that a rekey in progress never depends on the
/// handle's memory after it released the lock.
pub(crate) type DbState = Arc<Mutex<Slot>>;

fn lock_slot(state: &DbState) -> MutexGuard<'_, Slot> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn closed_error() -> Error {
    Error::Closed("the database handle was closed".into())
}

/// The open database behind a handle, for the length of one call; or
/// `OBJ_CLOSED`, or `OBJ_BUSY` while `obj_db_rekey` rewrites it. The
/// handle's lock is held only while the reference is taken.
pub(crate) fn open_db(state: &DbState) -> Result<Arc<Live>, Error> {
    match &*lock_slot(state) {
        Slot::Open(live) => Ok(live.clone()),
        Slot::Rekeying { close: None } => {
            Err(Error::Busy("obj_db_rekey is rewriting the database on this handle".into()))
        }
        Slot::Rekeying { close: Some(_) } | Slot::Closed => Err(closed_error()),
    }
}

/// Begins the read transaction of a one-call read outside any transaction
/// (`obj_db_doc_get`, `obj_db_raw_get`, `obj_db_kv_get`, `obj_db_count`):
/// a snapshot of its own, which the call ends.
///
/// # Safety
/// `db` is NULL or a pointer the caller got from `obj_db_open`.
pub(crate) unsafe fn begin_own_read(db: *const obj_db) -> Result<obj_engine::ReadTxn, Error> {
    // SAFETY: per the caller's contract.
    let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
    open_db(state)?.begin_read()
}

/// Begins the write transaction of a one-call write.
///
/// # Safety
/// `db` is NULL or a pointer the caller got from `obj_db_open`.
pub(crate) unsafe fn begin_own_write(db: *const obj_db) -> Result<obj_engine::WriteTxn, Error> {
    // SAFETY: per the caller's contract.
    let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
    open_db(state)?.begin_write()
}

/// Marks the handle closed, then closes the database: at once when no call
/// is in progress on it, else as the last of them returns (never waiting
/// for them). `checkpoint` says whether to fold the WAL (`obj_db_close`)
/// or not (`obj_db_close_no_checkpoint`); the first close decides.
fn close_state(state: &DbState, checkpoint: bool) -> Result<(), Error> {
    let live = {
        let mut slot = lock_slot(state);
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Open(live) => live,
            Slot::Rekeying { close } => {
                *slot = Slot::Rekeying { close: Some(close.unwrap_or(checkpoint)) };
                return Ok(());
            }
            Slot::Closed => return Ok(()),
        }
    };
    live.checkpoint.store(checkpoint, Ordering::Release);
    // Calls in progress that wait for the write lock end now (OBJ_CLOSED)
    // rather than at the busy timeout.
    if let Some(db) = &live.db {
        db.interrupt();
    }
    // Exactly one owner gets the Live: this close (which then reports the
    // close's errors), or the last call in progress (whose drop closes it).
    match Arc::into_inner(live) {
        Some(live) => live.close(),
        None => Ok(()),
    }
}

/// `obj_db_rekey`: takes the database out of the handle (refused with
/// OBJ_BUSY while any call is in progress on it, a backup whose progress
/// callback asks for the rekey included), rewrites it without holding the
/// handle's lock, and puts it back (or closes it, if the handle was closed
/// meanwhile).
pub(crate) fn rekey_state(state: &DbState, new_key: Option<EncryptionKey>) -> Result<(), Error> {
    let state = state.clone();
    let mut live = {
        let mut slot = lock_slot(&state);
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Open(live) => match Arc::try_unwrap(live) {
                Ok(live) => {
                    *slot = Slot::Rekeying { close: None };
                    live
                }
                Err(shared) => {
                    *slot = Slot::Open(shared);
                    return Err(Error::Busy(
                        "rekey needs every call on this handle to be finished (one is in progress)".into(),
                    ));
                }
            },
            other => {
                let busy = matches!(other, Slot::Rekeying { close: None });
                *slot = other;
                return Err(if busy {
                    Error::Busy("obj_db_rekey is already rewriting the database on this handle".into())
                } else {
                    closed_error()
                });
            }
        }
    };
    let db = live.db.as_mut().expect("a Live holds its Db until it is closed");
    // A panic in the rekey still leaves the Rekeying state below (the
    // panic then goes on to the fence), or the handle would be busy for good.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.rekey(new_key)));
    let mut slot = lock_slot(&state);
    match std::mem::replace(&mut *slot, Slot::Closed) {
        Slot::Rekeying { close: Some(checkpoint) } => {
            drop(slot);
            live.checkpoint.store(checkpoint, Ordering::Release);
            let closed = live.close();
            result.unwrap_or_else(|p| std::panic::resume_unwind(p)).and(closed)
        }
        // Only this rekey leaves the Rekeying state.
        _ => {
            *slot = Slot::Open(Arc::new(live));
            drop(slot);
            result.unwrap_or_else(|p| std::panic::resume_unwind(p))
        }
    }
}

/// Options for `obj_db_open`. Initialise with `obj_options_init`, then
/// change fields. `struct_size` lets later versions add fields: the library
/// reads only the fields that fit whole in `struct_size` (the others keep
/// their defaults); at least `page_size` must fit.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct obj_options {
    /// sizeof(obj_options) as the caller compiled it.
    pub struct_size: usize,
    /// Page size of a new database: power of two, 4096..65536 (default
    /// 4096). An existing file keeps its own; any other value is
    /// OBJ_INVALID_ARGUMENT all the same.
    pub page_size: u32,
    /// Sync mode: 0 = full (default: every commit durable), 1 = normal
    /// (durable at checkpoint), 2 = off.
    pub sync_mode: u32,
    /// Page cache size in bytes (default 8 MiB).
    pub cache_size: u64,
    /// How long to wait for another writer, in milliseconds (default 5000).
    pub busy_timeout_ms: u64,
    /// Checkpoint automatically past this many WAL frames (default 1000; 0 = never).
    pub wal_autocheckpoint: u64,
    /// Open read-only.
    pub read_only: bool,
    /// Create the file if it does not exist (default true). An existing
    /// empty (0-byte) file is taken as a database not yet written: it opens
    /// as a new empty database, even with `create` false (as in SQLite);
    /// read-only, it is OBJ_INVALID_ARGUMENT.
    pub create: bool,
    /// Encryption at rest: NULL for a plain database, or 32 raw key bytes
    /// (AES-256-GCM per page; read during `obj_db_open` only).
    pub encryption_key: *const u8,
    /// Or a NUL-terminated passphrase: any bytes (UTF-8 or not) up to the
    /// NUL, at least one (Argon2id; salt and costs are kept in the file's
    /// header; an empty one is OBJ_INVALID_ARGUMENT). At most one of the
    /// two. A wrong or missing key is OBJ_ENCRYPTION.
    pub passphrase: *const c_char,
    /// Bytes of changed pages a write transaction keeps in memory; past
    /// them, the pages it changed least recently are written to the WAL
    /// before the commit (invisible until it) and read back when needed,
    /// so the pages of a transaction of any size stay within it (its
    /// bookkeeping grows by about 120 bytes a spilled page). 0 (default):
    /// 64 MiB, or the cache size when that is larger.
    pub max_dirty_bytes: u64,
}

impl Default for obj_options {
    fn default() -> Self {
        let d = Options::default();
        obj_options {
            struct_size: std::mem::size_of::<obj_options>(),
            page_size: d.page_size as u32,
            sync_mode: 0,
            cache_size: d.cache_size as u64,
            busy_timeout_ms: d.busy_timeout.as_millis() as u64,
            wal_autocheckpoint: d.wal_autocheckpoint,
            read_only: d.read_only,
            create: d.create,
            encryption_key: std::ptr::null(),
            passphrase: std::ptr::null(),
            max_dirty_bytes: 0,
        }
    }
}

/// Fills `opts` with the defaults (and its struct_size).
///
/// # Safety
/// `opts` is NULL (OBJ_INVALID_ARGUMENT) or writable for
/// sizeof(obj_options).
#[no_mangle]
pub unsafe extern "C" fn obj_options_init(opts: *mut obj_options) -> obj_status {
    // SAFETY: per contract.
    fence(|| unsafe { put(opts, obj_options::default(), "opts") })
}

/// The options behind `opts`, as much of them as the caller's
/// `struct_size` covers: a field that does not fit whole in it keeps its
/// default (a size that ends inside a pointer must not make half of one).
///
/// # Safety
/// `opts` is non-NULL and valid for reading `struct_size` bytes (at least
/// the `struct_size` field itself).
unsafe fn to_options(opts: *const obj_options) -> Result<Options, Error> {
    use std::mem::{offset_of, size_of};
    // SAFETY: every caller's struct starts with its struct_size (per contract).
    let struct_size = unsafe { opts.cast::<usize>().read_unaligned() };
    if struct_size < offset_of!(obj_options, page_size) + size_of::<u32>() {
        return Err(Error::invalid(format!("obj_options.struct_size {struct_size} is too small")));
    }
    // The end of every field, in order: the caller's struct holds those up
    // to the last one that ends within struct_size.
    let ends = [
        offset_of!(obj_options, page_size) + size_of::<u32>(),
        offset_of!(obj_options, sync_mode) + size_of::<u32>(),
        offset_of!(obj_options, cache_size) + size_of::<u64>(),
        offset_of!(obj_options, busy_timeout_ms) + size_of::<u64>(),
        offset_of!(obj_options, wal_autocheckpoint) + size_of::<u64>(),
        offset_of!(obj_options, read_only) + size_of::<bool>(),
        offset_of!(obj_options, create) + size_of::<bool>(),
        offset_of!(obj_options, encryption_key) + size_of::<*const u8>(),
        offset_of!(obj_options, passphrase) + size_of::<*const c_char>(),
        offset_of!(obj_options, max_dirty_bytes) + size_of::<u64>(),
    ];
    let known = ends.iter().copied().filter(|&end| end <= struct_size).max().unwrap_or(0);
    // Fields beyond what an older caller's struct holds keep their defaults.
    let mut bytes = [0u8; size_of::<obj_options>()];
    let defaults = obj_options::default();
    // SAFETY: both are plain repr(C) values of this size; from the
    // caller's struct only the `known` bytes it holds (per contract) are read.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&defaults as *const obj_options).cast::<u8>(),
            bytes.as_mut_ptr(),
            bytes.len(),
        );
        std::ptr::copy_nonoverlapping(opts.cast::<u8>(), bytes.as_mut_ptr(), known);
    }
    // C's bool is one byte; any non-zero byte is true (a Rust bool may hold only 0 or 1).
    let flag = |offset: usize| bytes[offset] != 0;
    let (read_only, create) =
        (flag(offset_of!(obj_options, read_only)), flag(offset_of!(obj_options, create)));
    bytes[offset_of!(obj_options, read_only)] = 0;
    bytes[offset_of!(obj_options, create)] = 0;
    // SAFETY: `bytes` holds a whole obj_options: integers and pointers (any
    // bit pattern is valid) and the two bools, just set to 0.
    let merged = unsafe { bytes.as_ptr().cast::<obj_options>().read_unaligned() };
    let sync_mode = match merged.sync_mode {
        0 => SyncMode::Full,
        1 => SyncMode::Normal,
        2 => SyncMode::Off,
        n => return Err(Error::invalid(format!("sync_mode {n} is not 0, 1 or 2"))),
    };
    Ok(Options {
        page_size: merged.page_size as usize,
        cache_size: usize::try_from(merged.cache_size).unwrap_or(usize::MAX),
        sync_mode,
        busy_timeout: Duration::from_millis(merged.busy_timeout_ms),
        wal_autocheckpoint: merged.wal_autocheckpoint,
        read_only,
        create,
        vfs: None,
        // SAFETY: the caller vouches for the pointers in its options.
        encryption: unsafe { crate::ops::key_from(merged.encryption_key, merged.passphrase) }?,
        max_dirty_bytes: match merged.max_dirty_bytes {
            0 => None,
            n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        },
    })
}

/// Opens (or creates) the database at `path` (UTF-8). `opts` may be NULL
/// for defaults. On success `*out` is a new handle to free with
/// `obj_db_free`. Other processes may have the file open meanwhile (see
/// "Processes" above); a second handle on a file already open in this
/// process shares its engine, so it must give the same key and sync mode
/// (a writable open of a file open only read-only here, by a read-only
/// open or an attachment, opens it anew beside that, as another process
/// would).
/// Errors: OBJ_NOT_FOUND (no file and create is off),
/// OBJ_INVALID_ARGUMENT (not an obj database, bad options, another sync
/// mode than a handle already open on the file in this process),
/// OBJ_ENCRYPTION (missing or wrong key), OBJ_UNSUPPORTED (newer format),
/// OBJ_CORRUPTION, OBJ_BUSY (another process is creating the file; another
/// process has it open under another name, a hard link (a symbolic link
/// is followed to its target's name);
/// a file system without shared memory, where one process at a time may
/// open it), OBJ_IO (among others, a missing directory on the path: the
/// open creates the file, not its directories).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `opts` is NULL or a valid
/// obj_options; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_open(
    path: *const c_char,
    opts: *const obj_options,
    out: *mut *mut obj_db,
) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let path = unsafe { arg_str(path, "path") }?;
        let options = if opts.is_null() {
            Options::default()
        } else {
            // SAFETY: non-null and valid per contract.
            unsafe { to_options(opts) }?
        };
        let db = Db::open_with(path, options)?;
        let h =
            new_handle::<DbState, obj_db>(DB_TAG, Arc::new(Mutex::new(Slot::Open(Arc::new(Live::new(db))))));
        // SAFETY: checked non-null above.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Closes the database: checkpoints the WAL into the main file, as far as
/// readers allow (a write transaction active on another handle is not
/// waited for: the WAL stays as it is), so that the main file alone holds
/// every commit after a clean close. While another process has the file
/// open, the close checkpoints nothing: that is the last process's to do,
/// and its close also removes the `-wal` and `-shm` files. A read-only
/// handle writes nothing. The handle stays
/// allocated (later calls on it return OBJ_CLOSED) until `obj_db_free`.
/// Closing twice is OK. Transactions still open keep working until freed.
///
/// Never waits for calls in progress on the handle (on other threads, or
/// the obj_db_backup whose progress callback closes it): they finish on the
/// database as it was, and the last of them to return does the close,
/// checkpoint included, without reporting its errors. One that is waiting
/// for the write lock (a write transaction beginning, a one-call write, a
/// checkpoint) stops waiting and returns OBJ_CLOSED. Calls that begin
/// after the close return OBJ_CLOSED.
///
/// # Safety
/// `db` is NULL (OBJ_INVALID_ARGUMENT, unlike obj_db_free) or a live
/// handle from `obj_db_open`.
#[no_mangle]
pub unsafe extern "C" fn obj_db_close(db: *mut obj_db) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
        close_state(state, true)
    })
}

/// Closes the database like `obj_db_close` but skips the close-time
/// checkpoint, even for the last handle: the `-wal` and `-shm` files stay
/// beside the database and the next open recovers from them (committed data
/// is as safe as after `obj_db_close`). For an application leaving because
/// of an error, which wants no more I/O than needed. Locks are released.
/// The handle stays allocated until `obj_db_free` (which then does not
/// checkpoint either). Closing twice is OK; the first close decides
/// whether to checkpoint. Like obj_db_close, never waits for calls in
/// progress (the last of them closes the database, without the checkpoint).
///
/// # Safety
/// `db` is NULL (OBJ_INVALID_ARGUMENT, unlike obj_db_free) or a live
/// handle from `obj_db_open`.
#[no_mangle]
pub unsafe extern "C" fn obj_db_close_no_checkpoint(db: *mut obj_db) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
        close_state(state, false)
    })
}

/// Closes (if still open, as obj_db_close) and frees the handle. NULL is
/// a no-op. The handle must not be used afterwards, nor be in use by
/// another thread when it is freed.
///
/// # Safety
/// `db` is NULL or a live handle from `obj_db_open`.
#[no_mangle]
pub unsafe extern "C" fn obj_db_free(db: *mut obj_db) -> obj_status {
    fence(|| {
        if db.is_null() {
            return Ok(());
        }
        // SAFETY: per contract.
        let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
        let closed = close_state(state, true);
        // SAFETY: per contract; not used afterwards.
        unsafe { free_handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
        closed
    })
}

/// What `obj_db_checkpoint` did.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct obj_checkpoint_result {
    /// WAL frames now also in the main file (this call).
    pub frames_backfilled: u64,
    /// Distinct pages written to the main file (this call).
    pub pages_written: u64,
    /// Frames in the WAL after the call.
    pub wal_frames: u64,
    /// True when the main file holds every committed page.
    pub complete: bool,
}

/// Copies committed WAL frames into the main file (up to what the oldest
/// active reader can see). When that completes and no reader still needs
/// the WAL, the WAL restarts and its file is cut back to its 64-byte
/// header. `out` may be NULL. Takes the writer's lock: while a write
/// transaction is open (another thread's, or the calling thread's own),
/// it waits up to the busy timeout, then returns OBJ_BUSY. On a read-only
/// handle, which never writes the database, it is OBJ_INVALID_ARGUMENT.
///
/// # Safety
/// `db` is a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_checkpoint(db: *mut obj_db, out: *mut obj_checkpoint_result) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
        let r = open_db(state)?.checkpoint()?;
        if !out.is_null() {
            let v = obj_checkpoint_result {
                frames_backfilled: r.frames_backfilled,
                pages_written: r.pages_written,
                wal_frames: r.wal_frames,
                complete: r.complete,
            };
            // SAFETY: non-null and writable per contract.
            unsafe { out.write(v) };
        }
        Ok(())
    })
}

/// Sizes and counters as a JSON object in `*out` (free with obj_bytes_free):
/// page_size, page_count, free_pages, pages_in_use, file_size,
/// compacted_size and reclaimable_bytes (cheap bounds: the pages in use,
/// the free pages and the file's tail; obj_db_compaction_estimate gives the
/// exact figures), wal_frames,
/// wal_backfilled, readers, commit_counter, cache {hits, misses, pages,
/// capacity}, trees [{name, entries}], and collections [{name, kind
/// ("documents"|"raw"), doc_count, file_size_bytes, indexes [{name, kind,
/// key_paths, fields (the same as key_paths), status, entries}]}]. Reads
/// every collection's tree nodes (not its overflow pages): cost grows with
/// the file. Errors: OBJ_CLOSED after obj_db_close, OBJ_INVALID_ARGUMENT
/// (NULL pointers), OBJ_CORRUPTION (a damaged node on the way), OBJ_IO.
///
/// # Safety
/// `db` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_stat_json(db: *mut obj_db, out: *mut obj_bytes) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
        let s = open_db(state)?.stat()?;
        let json = serde_json::to_vec(&StatJson(&s))
            .map_err(|e| Error::Io { context: "writing the stat as JSON".into(), source: e.into() })?;
        // SAFETY: checked non-null.
        unsafe { put(out, obj_bytes::from_vec(json), "out") }
    })
}

/// [`obj_db_stat_json`]'s object, written as it is walked: a JSON tree
/// built first took about 5 KB a collection (250 MB for a file of 50,000).
/// Keys go in byte order, as the tree wrote them.
struct StatJson<'a>(&'a obj_engine::Stat);

impl serde::Serialize for StatJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let s = self.0;
        let mut m = ser.serialize_map(Some(14))?;
        m.serialize_entry("cache", &CacheJson(&s.cache))?;
        m.serialize_entry("collections", &Seq(&s.collections, CollectionJson))?;
        m.serialize_entry("commit_counter", &s.commit_counter)?;
        m.serialize_entry("compacted_size", &s.compacted_size)?;
        m.serialize_entry("file_size", &s.file_size)?;
        m.serialize_entry("free_pages", &s.free_pages)?;
        m.serialize_entry("page_count", &s.page_count)?;
        m.serialize_entry("page_size", &s.page_size)?;
        m.serialize_entry("pages_in_use", &s.pages_in_use)?;
        m.serialize_entry("readers", &s.readers)?;
        m.serialize_entry("reclaimable_bytes", &s.reclaimable_bytes)?;
        m.serialize_entry("trees", &Seq(&s.trees, TreeJson))?;
        m.serialize_entry("wal_backfilled", &s.wal_backfilled)?;
        m.serialize_entry("wal_frames", &s.wal_frames)?;
        m.end()
    }
}

/// Items of a slice, each written through the wrapper `W`.
struct Seq<'a, T, W>(&'a [T], fn(&'a T) -> W);

impl<'a, T, W: serde::Serialize> serde::Serialize for Seq<'a, T, W> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.0.iter().map(self.1))
    }
}

struct CacheJson<'a>(&'a obj_engine::storage::cache::CacheStats);

impl serde::Serialize for CacheJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.0;
        let mut m = ser.serialize_map(Some(4))?;
        m.serialize_entry("capacity", &c.capacity)?;
        m.serialize_entry("hits", &c.hits)?;
        m.serialize_entry("misses", &c.misses)?;
        m.serialize_entry("pages", &c.pages)?;
        m.end()
    }
}

struct TreeJson<'a>(&'a obj_engine::TreeStat);

impl serde::Serialize for TreeJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(Some(2))?;
        m.serialize_entry("entries", &self.0.entries)?;
        m.serialize_entry("name", &self.0.name)?;
        m.end()
    }
}

struct CollectionJson<'a>(&'a obj_engine::CollectionStat);

impl serde::Serialize for CollectionJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.0;
        let mut m = ser.serialize_map(Some(5))?;
        m.serialize_entry("doc_count", &c.doc_count)?;
        m.serialize_entry("file_size_bytes", &c.file_size_bytes)?;
        m.serialize_entry("indexes", &Seq(&c.indexes, IndexJson))?;
        m.serialize_entry("kind", crate::collection::kind_name(c.kind))?;
        m.serialize_entry("name", &c.name)?;
        m.end()
    }
}

struct IndexJson<'a>(&'a obj_engine::IndexStat);

impl serde::Serialize for IndexJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let i = self.0;
        let mut m = ser.serialize_map(Some(6))?;
        m.serialize_entry("entries", &i.entries)?;
        m.serialize_entry("fields", &i.key_paths)?;
        m.serialize_entry("key_paths", &i.key_paths)?;
        m.serialize_entry("kind", &i.kind)?;
        m.serialize_entry("name", &i.name)?;
        m.serialize_entry("status", &i.status)?;
        m.end()
    }
}

/// Walks every page and tree. OBJ_OK when sound; OBJ_INTEGRITY with the
/// findings in the message otherwise (OBJ_CORRUPTION / OBJ_IO if the walk
/// itself failed). `out` (may be NULL) receives a JSON summary on OBJ_OK
/// (free with obj_bytes_free).
///
/// # Safety
/// `db` is a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn obj_db_integrity_check(db: *mut obj_db, out: *mut obj_bytes) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
        let r = open_db(state)?.integrity_check()?;
        if !out.is_null() {
            let json = serde_json::json!({"pages": r.pages, "free_pages": r.free_pages, "trees": r.trees, "entries": r.entries});
            // SAFETY: non-null and writable.
            unsafe { out.write(obj_bytes::from_vec(json.to_string().into_bytes())) };
        }
        Ok(())
    })
}

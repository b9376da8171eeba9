//! Transaction handles: begin (read or write), commit, rollback, free; and
//! the per-transaction state that cursors and cached collection handles
//! borrow from.
//!
//! # Borrowers and their soundness
//!
//! Engine cursors (`QueryCursor<'t, _>`, key-value iterators) and
//! collection handles (`Collection<'t, _>`) borrow the transaction. The C
//! caller keeps cursors between calls, so they are stored next to the
//! transaction, in [`TxnInner`], with the borrow's lifetime erased to
//! `'static`. That is sound because of three rules this file enforces:
//!
//! 1. The transaction lives in its own heap allocation (`state`, from
//!    `Box::into_raw`), so moving `TxnInner` never moves it.
//! 2. Everything that holds such a borrow lives in `TxnInner::cursors` or
//!    `TxnInner::colls`, and is only touched with the mutex held.
//! 3. The only code that mutates, moves out of or frees the transaction —
//!    [`TxnInner::write`], [`TxnInner::finish`] and `Drop` — first drops
//!    every borrower. A cursor whose borrow was dropped this way is marked
//!    dead with a reason, and its next call reports that reason
//!    (`OBJ_INVALID_ARGUMENT`) instead of touching anything.
//!
//! So a borrow is never used after the transaction changed, nor does any
//! borrower outlive the transaction it points into.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use obj_engine::doc::kv::KvIter;
use obj_engine::{
    Collection, CollectionMut, DetachedCollection, Error, ForkCheck, QueryCursor, ReadTxn, WriteTxn,
};

use crate::bytes::need;
use crate::collection::or_missing;
use crate::db::{free_handle, handle, new_handle, obj_db, open_db, DbState, DB_TAG, TXN_TAG};
use crate::error::fence;
use crate::obj_status;

/// A transaction (opaque): a read snapshot or the write transaction.
/// Calls on one handle (and on its cursors) are serialised; release with
/// `obj_txn_free`.
pub struct obj_txn {
    _opaque: u8,
}

/// What a transaction handle holds.
pub(crate) enum TxnState {
    Read(ReadTxn),
    /// Boxed: a write transaction is several times the size of a read one.
    Write(Box<WriteTxn>),
    Finished(&'static str),
}

/// A stored-records iterator (`obj_collection_dump`).
pub(crate) type RecordIter = Box<dyn Iterator<Item = Result<(u64, Vec<u8>), Error>>>;

/// The engine iterator behind an open cursor. The `'static` borrows point
/// into the owning [`TxnInner`]'s transaction (see the module docs).
pub(crate) enum CursorIter {
    /// A query on a collection that does not exist: no rows.
    Empty,
    ReadQuery(QueryCursor<'static, ReadTxn>),
    WriteQuery(QueryCursor<'static, WriteTxn>),
    Kv(KvIter<'static>),
    Records(RecordIter),
}

/// A collection handle cached for the transaction's reads.
pub(crate) enum CachedColl {
    Read(Collection<'static, ReadTxn>),
    Write(Collection<'static, WriteTxn>),
}

/// A cached collection, borrowed for one call.
pub(crate) enum CollView<'a> {
    Read(&'a Collection<'static, ReadTxn>),
    Write(&'a Collection<'static, WriteTxn>),
}

struct CursorSlot {
    id: u64,
    /// The iterator, or why the cursor can no longer be used.
    iter: Result<CursorIter, String>,
}

/// Most collection handles cached per transaction.
const COLL_CACHE: usize = 16;

/// A transaction and everything that borrows it. Always behind the
/// transaction's mutex.
pub(crate) struct TxnInner {
    /// Owned (`Box::into_raw`); freed in `Drop`. See the module docs.
    state: NonNull<TxnState>,
    cursors: Vec<CursorSlot>,
    colls: Vec<(String, Option<CachedColl>)>,
    next_cursor: u64,
    /// The collection written last, detached, so that a run of writes to
    /// one collection does not reload its metadata on every call. Owns its
    /// state (no borrow); the engine refuses it once it may be stale.
    hot: Option<DetachedCollection>,
}

// SAFETY: a TxnInner is a self-contained bundle: the transaction it owns
// (ReadTxn: Send + Sync, WriteTxn: Send) and iterators/handles that borrow
// only that transaction. The bundle is only reached through its Mutex, so
// no two threads ever use its parts at once, and moving it to another
// thread moves the transaction together with every borrower.
unsafe impl Send for TxnInner {}

/// What a transaction handle points to (its cursors keep a clone): the
/// transaction behind the lock that serialises calls on it, and whose it
/// is, which a call reads before it takes the lock. In a child of fork()
/// the lock may be held forever (a thread of the parent was in a call on
/// the transaction at the fork, and the child's copy of the lock is never
/// released): the child gets the fork error, or leaves its copy of the
/// transaction as it is when ending it, rather than wait.
pub(crate) struct TxnShared {
    process: ForkCheck,
    /// Whether it is a write transaction (a child of fork() may end a read
    /// one, never commit a write one).
    is_write: bool,
    inner: Mutex<TxnInner>,
}

pub(crate) type TxnCell = Arc<TxnShared>;

fn finished(how: &str) -> Error {
    Error::invalid(format!("transaction already {how}"))
}

/// How a write transaction whose commit failed ended. A rollback may
/// follow and has nothing left to do: nothing of the transaction was
/// applied, or, when the commit's fsync failed, the commit's own error
/// said that its outcome is unknown (see `obj_txn_commit`).
const FAILED_COMMIT: &str = "ended by a failed commit";

impl TxnInner {
    fn new(state: TxnState) -> TxnInner {
        TxnInner {
            state: NonNull::from(Box::leak(Box::new(state))),
            cursors: Vec::new(),
            colls: Vec::new(),
            next_cursor: 1,
            hot: None,
        }
    }

    /// The transaction state.
    pub(crate) fn state(&self) -> &TxnState {
        // SAFETY: `state` is a live allocation owned by self (freed only in
        // Drop); it is only mutated through `&mut self` after every other
        // borrower is gone (module docs), so a shared borrow is valid.
        unsafe { self.state.as_ref() }
    }

    /// The state with its lifetime erased, for borrowers stored in `self`.
    ///
    /// # Safety
    /// The result may only be kept in `self.cursors` or `self.colls` (which
    /// `write`, `finish` and Drop empty before the state changes).
    unsafe fn state_static(&self) -> &'static TxnState {
        // SAFETY: per the function contract and the module docs.
        unsafe { &*self.state.as_ptr() }
    }

    /// Fails if the transaction is finished, or was begun by the parent
    /// of this process (after fork()).
    pub(crate) fn live(&self) -> Result<(), Error> {
        match self.state() {
            TxnState::Finished(how) => Err(finished(how)),
            _ => self.check_process(),
        }
    }

    /// Fails in a child process after fork() if the transaction was begun
    /// by its parent: it must not answer even from what it has cached.
    fn check_process(&self) -> Result<(), Error> {
        match self.state() {
            TxnState::Read(r) => r.check_process(),
            TxnState::Write(w) => w.check_process(),
            TxnState::Finished(_) => Ok(()),
        }
    }

    /// Drops every borrower of the transaction; open cursors are marked
    /// dead with `why`.
    fn release_borrowers(&mut self, why: &str) {
        self.colls.clear();
        for slot in &mut self.cursors {
            if slot.iter.is_ok() {
                slot.iter = Err(why.to_string());
            }
        }
    }

    /// Whether a cursor of this transaction is still usable (a write
    /// would end it).
    pub(crate) fn has_live_cursors(&self) -> bool {
        self.cursors.iter().any(|slot| slot.iter.is_ok())
    }

    /// The write transaction, or a clear error. Every open cursor of this
    /// transaction becomes unusable (the write may change what it reads).
    pub(crate) fn write(&mut self) -> Result<&mut WriteTxn, Error> {
        // (after fork(): refused by lock_txn, which every write call goes through)
        match self.state() {
            TxnState::Write(_) => {}
            TxnState::Read(_) => return Err(Error::invalid("write in a read transaction")),
            TxnState::Finished(how) => return Err(finished(how)),
        }
        self.release_borrowers(
            "a write call on the transaction since the cursor was opened ended it, even a call that failed (transaction changed under the cursor)",
        );
        // SAFETY: no borrower is left (just released), and `&mut self`
        // excludes any other access: this is the only reference.
        match unsafe { self.state.as_mut() } {
            TxnState::Write(w) => Ok(&mut **w),
            _ => unreachable!("checked above"),
        }
    }

    /// Runs `f` on a write handle to collection `name`: the one kept from
    /// the previous write when it is still current, else `open(txn, name)`.
    /// The handle's state is kept for the next write afterwards.
    pub(crate) fn with_collection_mut<R>(
        &mut self,
        name: &str,
        open: impl for<'w> FnOnce(&'w mut WriteTxn, &str) -> Result<CollectionMut<'w>, Error>,
        f: impl FnOnce(&mut CollectionMut<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let hot = self.hot.take();
        let w = self.write()?;
        let mut c = match hot {
            Some(d) if d.name() == name && d.is_current(w) => w.reattach(d).expect("checked current"),
            _ => open(w, name)?,
        };
        let result = f(&mut c);
        let kept = c.detach();
        self.hot = Some(kept);
        result
    }

    /// Ends the transaction, returning what it was. Cursors see `how`.
    pub(crate) fn finish(&mut self, how: &'static str) -> Result<TxnState, Error> {
        self.live()?;
        Ok(self.end(how))
    }

    /// Ends the transaction without touching the database: a rollback, or
    /// the commit of a read transaction. Allowed in a child process after
    /// fork(), where it only releases the child's copy (the engine's
    /// transactions do nothing to the parent's files or locks when dropped
    /// there).
    pub(crate) fn release(&mut self, how: &'static str) -> Result<TxnState, Error> {
        if let TxnState::Finished(before) = self.state() {
            return Err(finished(before));
        }
        Ok(self.end(how))
    }

    fn end(&mut self, how: &'static str) -> TxnState {
        self.hot = None;
        self.release_borrowers(&format!("transaction already {how}"));
        // SAFETY: no borrower is left; `&mut self` gives exclusive access.
        std::mem::replace(unsafe { self.state.as_mut() }, TxnState::Finished(how))
    }

    /// Collection `name` as this transaction sees it (None if it does not
    /// exist), from the per-transaction cache.
    pub(crate) fn collection(&mut self, name: &str) -> Result<Option<CollView<'_>>, Error> {
        self.live()?;
        let pos = match self.colls.iter().position(|(n, _)| n == name) {
            Some(p) => p,
            None => {
                // SAFETY: the handle is kept in self.colls only. `collection`
                // also resolves `ns.coll` names of attached databases.
                let st = unsafe { self.state_static() };
                let opened = match st {
                    TxnState::Read(r) => r.collection(name).map(CachedColl::Read),
                    TxnState::Write(w) => w.collection(name).map(CachedColl::Write),
                    TxnState::Finished(how) => return Err(finished(how)),
                };
                let entry = or_missing(opened)?;
                if self.colls.len() >= COLL_CACHE {
                    self.colls.clear();
                }
                self.colls.push((name.to_string(), entry));
                self.colls.len() - 1
            }
        };
        Ok(self.colls[pos].1.as_ref().map(|c| match c {
            CachedColl::Read(c) => CollView::Read(c),
            CachedColl::Write(c) => CollView::Write(c),
        }))
    }

    /// Registers a new cursor made by `make` from the transaction; returns
    /// its id.
    pub(crate) fn add_cursor(
        &mut self,
        make: impl FnOnce(&'static TxnState) -> Result<CursorIter, Error>,
    ) -> Result<u64, Error> {
        self.live()?;
        // SAFETY: the iterator `make` builds is kept in self.cursors only.
        let iter = make(unsafe { self.state_static() })?;
        let id = self.next_cursor;
        self.next_cursor += 1;
        self.cursors.push(CursorSlot { id, iter: Ok(iter) });
        Ok(id)
    }

    /// The iterator of cursor `id`, or why it cannot be used.
    pub(crate) fn cursor(&mut self, id: u64) -> Result<&mut CursorIter, Error> {
        self.live()?;
        let slot = self
            .cursors
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::invalid("the cursor is not open on this transaction"))?;
        slot.iter.as_mut().map_err(|why| Error::invalid(why.clone()))
    }

    /// Marks cursor `id` dead after an error (its next call reports it).
    pub(crate) fn fail_cursor(&mut self, id: u64, err: &Error) {
        if let Some(slot) = self.cursors.iter_mut().find(|s| s.id == id) {
            slot.iter = Err(format!("the cursor failed earlier: {err}"));
        }
    }

    /// Forgets cursor `id` (dropping its iterator).
    pub(crate) fn remove_cursor(&mut self, id: u64) {
        self.cursors.retain(|s| s.id != id);
    }
}

impl Drop for TxnInner {
    fn drop(&mut self) {
        // Borrowers first, then the transaction they borrow.
        self.colls.clear();
        self.cursors.clear();
        // SAFETY: allocated by Box in `new`, freed only here, no borrower left.
        drop(unsafe { Box::from_raw(self.state.as_ptr()) });
    }
}

/// The shared transaction cell behind a handle (cursors keep a clone).
///
/// # Safety
/// `txn` is NULL or a live handle.
pub(crate) unsafe fn txn_cell<'a>(txn: *const obj_txn) -> Result<&'a TxnCell, Error> {
    // SAFETY: per contract.
    unsafe { handle::<TxnCell, obj_txn>(txn, TXN_TAG, "transaction") }
}

/// Locks the transaction behind a handle.
///
/// # Safety
/// `txn` is NULL or a live handle.
pub(crate) unsafe fn lock_txn<'a>(txn: *const obj_txn) -> Result<MutexGuard<'a, TxnInner>, Error> {
    // SAFETY: per contract.
    lock_cell(unsafe { txn_cell(txn) }?)
}

/// Locks a transaction cell, once this process is known to be the one
/// that began the transaction (see [`TxnShared`]). A poisoned lock is
/// still usable: every operation leaves the state consistent or reports
/// the error.
pub(crate) fn lock_cell(cell: &TxnShared) -> Result<MutexGuard<'_, TxnInner>, Error> {
    if let Err(fork) = cell.process.check() {
        // A child of fork() may have ended its copy (the call then says
        // so, as it would in the parent); any other is refused.
        return match lock_to_end(cell) {
            Some(t) if matches!(t.state(), TxnState::Finished(_)) => Ok(t),
            _ => Err(fork),
        };
    }
    Ok(cell.inner.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Locks a transaction cell for a call that a child of fork() may make
/// too: ending the transaction (a rollback, the end of a read
/// transaction) or freeing it or a cursor. `None` in such a child when the
/// lock is held (see [`TxnShared`]): the caller then leaves the child's
/// copy of the transaction untouched, its parts perhaps half way through
/// the parent's call.
pub(crate) fn lock_to_end(cell: &TxnShared) -> Option<MutexGuard<'_, TxnInner>> {
    if cell.process.check().is_ok() {
        return Some(cell.inner.lock().unwrap_or_else(|p| p.into_inner()));
    }
    match cell.inner.try_lock() {
        Ok(t) => Some(t),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Frees a handle's clone of a transaction cell that [`lock_to_end`]
/// found held by the parent in a child of fork(): the copy is leaked, not
/// dropped, as the parent's call may have left it half changed.
pub(crate) fn leak_cell(cell: &TxnCell) {
    std::mem::forget(cell.clone());
}

unsafe fn begin(db: *mut obj_db, out: *mut *mut obj_txn, write: bool) -> Result<(), Error> {
    need(out, "out")?;
    // SAFETY: per the caller's contract.
    let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
    let d = open_db(state)?;
    let (txn, process) = if write {
        let w = d.begin_write()?;
        let process = w.fork_check();
        (TxnState::Write(Box::new(w)), process)
    } else {
        let r = d.begin_read()?;
        let process = r.fork_check();
        (TxnState::Read(r), process)
    };
    let cell = TxnShared { process, is_write: write, inner: Mutex::new(TxnInner::new(txn)) };
    let h = new_handle::<TxnCell, obj_txn>(TXN_TAG, Arc::new(cell));
    // SAFETY: checked non-null.
    unsafe { out.write(h) };
    Ok(())
}

/// Begins a read transaction: a consistent snapshot of the last commit,
/// never blocked by the writer. Free it with `obj_txn_free` when done
/// (a live snapshot keeps the WAL from being recycled). Errors:
/// OBJ_CLOSED after obj_db_close, OBJ_INVALID_ARGUMENT (NULL pointers; a
/// handle used in a child after fork()), OBJ_IO or OBJ_CORRUPTION (the
/// WAL or the shared index cannot be read).
///
/// # Safety
/// `db` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_begin_read(db: *mut obj_db, out: *mut *mut obj_txn) -> obj_status {
    // SAFETY: per contract.
    fence(|| unsafe { begin(db, out, false) })
}

/// Begins the write transaction in `*out` (free with `obj_txn_free`, which
/// rolls back what was not committed), waiting up to the busy timeout for
/// another one to finish (then OBJ_BUSY). It reads its own writes. One
/// write transaction at a time, even for one thread: a call while the
/// thread's own earlier write transaction is still open (not committed,
/// rolled back or freed) waits the whole busy timeout and returns
/// OBJ_BUSY, so end the first one first.
///
/// # Safety
/// `db` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_begin_write(db: *mut obj_db, out: *mut *mut obj_txn) -> obj_status {
    // SAFETY: per contract.
    fence(|| unsafe { begin(db, out, true) })
}

/// Commits a write transaction (durable on return with the default sync
/// mode) or ends a read transaction. The handle is finished afterwards:
/// further use (and use of its cursors) returns OBJ_INVALID_ARGUMENT;
/// still call `obj_txn_free`. On a commit error nothing of the
/// transaction is applied (later calls on the transaction say it "ended
/// by a failed commit", and `obj_txn_rollback` succeeds, having nothing
/// to do), with one exception: when the fsync that makes
/// the commit durable fails (OBJ_IO, and the handle is then closed: later
/// calls return OBJ_CLOSED), the commit was written but may or may not
/// have reached the disk, so its outcome is unknown. Reopen the database
/// and read to find out before writing it again.
///
/// # Safety
/// `txn` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_commit(txn: *mut obj_txn) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let cell = unsafe { txn_cell(txn) }?;
        // Not lock_txn: a child after fork() may end a read transaction.
        let Some(mut t) = lock_to_end(cell) else {
            // (a read transaction ends as below; a write one cannot commit)
            return if cell.is_write { cell.process.check() } else { Ok(()) };
        };
        // A read transaction has nothing to commit: ending it only releases
        // its snapshot, which a child after fork() may do too.
        let ended = match t.state() {
            TxnState::Read(_) => t.release("ended"),
            _ => t.finish("committed"),
        };
        match ended? {
            TxnState::Write(w) => w.commit().inspect_err(|_| {
                t.end(FAILED_COMMIT);
            }),
            _ => Ok(()),
        }
    })
}

/// Discards every change of the transaction. The handle is finished
/// afterwards (its cursors too); still call `obj_txn_free`. Succeeds too
/// on a transaction whose commit failed, with nothing to undo (nothing of
/// it was applied, or, when the commit's fsync failed, its outcome is
/// unknown, as the commit's error said). Errors: OBJ_INVALID_ARGUMENT
/// (NULL, a transaction already committed or rolled back).
///
/// # Safety
/// `txn` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_rollback(txn: *mut obj_txn) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        // Not lock_txn: a child after fork() may roll back (see release).
        let Some(mut t) = lock_to_end(unsafe { txn_cell(txn) }?) else {
            return Ok(());
        };
        // (a failed commit left nothing to roll back: the rollback the
        // caller's error path makes succeeds)
        if matches!(t.state(), TxnState::Finished(FAILED_COMMIT)) {
            return Ok(());
        }
        // (a read transaction has nothing to roll back: it just ends)
        let how = if matches!(t.state(), TxnState::Read(_)) { "ended" } else { "rolled back" };
        t.release(how)?;
        Ok(())
    })
}

/// How many collections and indexes (trees) were created or dropped over
/// the file's life, as of this transaction's snapshot (counting a write
/// transaction's own). A binding that caches what it learnt of a
/// collection (its kind, its indexes) keeps the value it learnt it at:
/// a different value means another handle or process changed the
/// catalog since. Errors: OBJ_INVALID_ARGUMENT on a finished
/// transaction.
///
/// # Safety
/// `txn` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_catalog_version(txn: *mut obj_txn, out: *mut u64) -> obj_status {
    fence(|| {
        need(out, "out")?;
        // SAFETY: per contract.
        let t = unsafe { lock_txn(txn) }?;
        let version = match t.state() {
            TxnState::Read(r) => r.catalog_version(),
            TxnState::Write(w) => w.catalog_version(),
            TxnState::Finished(how) => return Err(finished(how)),
        };
        // SAFETY: checked non-null.
        unsafe { out.write(version) };
        Ok(())
    })
}

/// Frees the handle, rolling back a write transaction that was neither
/// committed nor rolled back. Cursors of the transaction stay allocated
/// (free them with `obj_cursor_free`) but every call on them returns
/// OBJ_INVALID_ARGUMENT. NULL is a no-op.
///
/// # Safety
/// `txn` is NULL or a live handle; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_free(txn: *mut obj_txn) -> obj_status {
    fence(|| {
        if txn.is_null() {
            return Ok(());
        }
        // SAFETY: per contract.
        let cell = unsafe { txn_cell(txn) }?;
        match lock_to_end(cell) {
            Some(mut t) => {
                if t.live().is_ok() {
                    t.finish("freed")?;
                }
            }
            None => leak_cell(cell),
        }
        // SAFETY: per contract; not used afterwards.
        unsafe { free_handle::<TxnCell, obj_txn>(txn, TXN_TAG, "transaction") }
    })
}

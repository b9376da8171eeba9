//! Transaction handles: begin (read or write), commit, rollback, free.

use std::sync::{Mutex, MutexGuard};

use obj_engine::{Error, ReadTxn, WriteTxn};

use crate::bytes::need;
use crate::db::{free_handle, handle, new_handle, obj_db, open_db, DbState, DB_TAG, TXN_TAG};
use crate::error::fence;
use crate::obj_status;

/// A transaction (opaque): a read snapshot or the write transaction.
/// Calls on one handle are serialised; release with `obj_txn_free`.
pub struct obj_txn {
    _opaque: u8,
}

/// What a transaction handle holds.
pub(crate) enum TxnState {
    Read(ReadTxn),
    Write(WriteTxn),
    Finished(&'static str),
}

pub(crate) type TxnCell = Mutex<TxnState>;

/// Locks the transaction behind a handle.
///
/// # Safety
/// `txn` is NULL or a live handle.
pub(crate) unsafe fn lock_txn<'a>(txn: *const obj_txn) -> Result<MutexGuard<'a, TxnState>, Error> {
    // SAFETY: per contract.
    let cell = unsafe { handle::<TxnCell, obj_txn>(txn, TXN_TAG, "transaction") }?;
    Ok(cell.lock().unwrap_or_else(|p| p.into_inner()))
}

impl TxnState {
    /// The write transaction, or a clear error.
    pub(crate) fn write(&mut self) -> Result<&mut WriteTxn, Error> {
        match self {
            TxnState::Write(w) => Ok(w),
            TxnState::Read(_) => Err(Error::invalid("write in a read transaction")),
            TxnState::Finished(how) => Err(Error::invalid(format!("transaction already {how}"))),
        }
    }

    /// Fails if the transaction is finished.
    pub(crate) fn live(&self) -> Result<(), Error> {
        match self {
            TxnState::Finished(how) => Err(Error::invalid(format!("transaction already {how}"))),
            _ => Ok(()),
        }
    }
}

unsafe fn begin(db: *mut obj_db, out: *mut *mut obj_txn, write: bool) -> Result<(), Error> {
    need(out, "out")?;
    // SAFETY: per the caller's contract.
    let state = unsafe { handle::<DbState, obj_db>(db, DB_TAG, "database") }?;
    let guard = open_db(state)?;
    let d = guard.as_ref().expect("checked open");
    let txn = if write { TxnState::Write(d.begin_write()?) } else { TxnState::Read(d.begin_read()?) };
    let h = new_handle::<TxnCell, obj_txn>(TXN_TAG, Mutex::new(txn));
    // SAFETY: checked non-null.
    unsafe { out.write(h) };
    Ok(())
}

/// Begins a read transaction: a consistent snapshot of the last commit,
/// never blocked by the writer. Free it with `obj_txn_free` when done
/// (a live snapshot keeps the WAL from being recycled).
///
/// # Safety
/// `db` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_begin_read(db: *mut obj_db, out: *mut *mut obj_txn) -> obj_status {
    // SAFETY: per contract.
    fence(|| unsafe { begin(db, out, false) })
}

/// Begins the write transaction, waiting up to the busy timeout for
/// another one to finish (then OBJ_BUSY). It reads its own writes.
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
/// further use returns OBJ_INVALID_ARGUMENT; still call `obj_txn_free`.
/// On a commit error nothing of the transaction is applied.
///
/// # Safety
/// `txn` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_commit(txn: *mut obj_txn) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        t.live()?;
        match std::mem::replace(&mut *t, TxnState::Finished("committed")) {
            TxnState::Write(w) => w.commit(),
            _ => Ok(()),
        }
    })
}

/// Discards every change of the transaction. The handle is finished
/// afterwards; still call `obj_txn_free`.
///
/// # Safety
/// `txn` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_rollback(txn: *mut obj_txn) -> obj_status {
    fence(|| {
        // SAFETY: per contract.
        let mut t = unsafe { lock_txn(txn) }?;
        t.live()?;
        *t = TxnState::Finished("rolled back");
        Ok(())
    })
}

/// Frees the handle, rolling back a write transaction that was neither
/// committed nor rolled back. NULL is a no-op.
///
/// # Safety
/// `txn` is NULL or a live handle; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn obj_txn_free(txn: *mut obj_txn) -> obj_status {
    // SAFETY: per contract.
    fence(|| unsafe { free_handle::<TxnCell, obj_txn>(txn, TXN_TAG, "transaction") })
}

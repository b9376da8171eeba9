//! Rekey: encrypt, decrypt or change the key of a database.
//!
//! Encrypting or decrypting changes how many bytes of each page are
//! content (`usable`), so pages cannot simply be re-encrypted in place: a
//! full B+tree node of a plain file does not fit an encrypted page. Every
//! rekey therefore writes a new database beside the old one
//! (`<path>-rekey`), tree by tree and entry by entry from one snapshot,
//! and swaps it in by an atomic rename:
//!
//! 1. copy every tree into `<path>-rekey` under the new key, close it (its
//!    WAL folded, its main file fsynced);
//! 2. close the old database: a complete checkpoint, fsync, and removal of
//!    its WAL and shared index `<path>-shm` (so neither of the old file is
//!    ever beside the new one); this needs the only handle in any process,
//!    checked first (the DMS lock of the shared index), and a fresh
//!    `<path>-shm` is then held with DMS exclusive until step 3's rename,
//!    so that no process opens the old file in between;
//! 3. lock the new file, rename it over `<path>`, fsync the directory, and
//!    open it through the lock already held.
//!
//! A crash before the rename leaves the old database (whole: its WAL is
//! removed only after a complete, synced checkpoint) and a stray
//! `<path>-rekey` that the next rekey deletes; a crash after it leaves the
//! new one. The caller holds the only handle and no transaction is open.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ops::newfile::TargetShm;
use crate::options::{Options, SyncMode};
use crate::storage::file::{OpenMode, Vfs};
use crate::storage::pager::{wal_path_of, Pager};
use crate::storage::shm::shm_path_of;
use crate::txn::EngineTrees;
use crate::txn::{ReadTxn, ReadableTxn, WriteTxn};

/// Dirty pages per copy transaction (bounds the memory a rekey uses).
const BATCH_PAGES: usize = 2048;

/// `<path>-rekey`: where the new copy is built.
pub fn rekey_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-rekey");
    PathBuf::from(s)
}

/// The outcome of [`rekey`] for the caller's engine.
pub(crate) struct Rekeyed {
    /// The pager to use from now on (`None`: the handle is left unusable).
    pub pager: Option<Arc<Pager>>,
    /// The options that pager was opened with.
    pub options: Options,
    /// What happened.
    pub result: Result<()>,
}

/// Rewrites the database of `old` (opened with `options`) under `new_key`.
/// See the module documentation.
pub(crate) fn rekey(
    old: &Arc<Pager>,
    vfs: Arc<dyn Vfs>,
    options: &Options,
    new_key: Option<crate::storage::crypto::EncryptionKey>,
) -> Rekeyed {
    let path = old.path().to_path_buf();
    let tmp = rekey_path_of(&path);
    let mut new_options = options.clone();
    new_options.encryption = new_key;
    new_options.page_size = old.page_size();
    new_options.create = true;

    let unchanged = |result| Rekeyed { pager: Some(old.clone()), options: options.clone(), result };
    // The swap replaces the file under every handle: another one, in this
    // process or another, would be left on the unlinked old file.
    match old.is_only_handle() {
        Ok(true) => {}
        Ok(false) => {
            return unchanged(Err(Error::Busy(format!(
                "{} is open in another handle or process; rekey needs the only one",
                path.display()
            ))))
        }
        Err(e) => return unchanged(Err(e)),
    }
    if let Err(e) = copy_to(old, &*vfs, &tmp, &new_options) {
        let _ = remove_with_wal(&*vfs, &tmp);
        return unchanged(Err(e));
    }
    match swap(old, vfs.clone(), &tmp, &path, &new_options) {
        Ok(pager) => Rekeyed { pager: Some(pager), options: new_options, result: Ok(()) },
        Err((e, renamed)) => {
            if !renamed {
                let _ = remove_with_wal(&*vfs, &tmp);
            }
            if !old.is_closed() {
                return unchanged(Err(e));
            }
            // The old pager was closed for the swap: reopen whichever
            // database is now at the path.
            old.retire();
            let options = if renamed { new_options } else { options.clone() };
            let pager = Pager::open(&path, &options).ok();
            Rekeyed { pager, options, result: Err(e) }
        }
    }
}

fn remove_with_wal(vfs: &dyn Vfs, path: &Path) -> Result<()> {
    for p in [wal_path_of(path), shm_path_of(path), path.to_path_buf()] {
        vfs.remove(&p).map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
    }
    Ok(())
}

/// Step 1: a closed, complete copy of `old` at `tmp` under the new options.
fn copy_to(old: &Arc<Pager>, vfs: &dyn Vfs, tmp: &Path, options: &Options) -> Result<()> {
    remove_with_wal(vfs, tmp)?;
    // Commits of the copy need not be durable one by one: the close below
    // checkpoints and fsyncs, and a crash before the rename discards it.
    let copy_options = Options { sync_mode: SyncMode::Normal, read_only: false, ..options.clone() };
    let dst = Pager::open(tmp, &copy_options)?;
    let copied = copy_trees(old, &dst);
    let closed = dst.close();
    drop(dst);
    copied?;
    closed?;
    if vfs.exists(&wal_path_of(tmp)).map_err(|e| Error::io("checking the copy's WAL", e))? {
        return Err(Error::Busy("the new copy's WAL could not be folded".into()));
    }
    Ok(())
}

fn copy_trees(src: &Arc<Pager>, dst: &Arc<Pager>) -> Result<()> {
    let r = ReadTxn::new(src.snapshot()?);
    let mut w = WriteTxn::new(dst.clone(), dst.lock_writer()?)?;
    w.ensure_catalog()?;
    for name in r.list_trees()? {
        let from = r.open_engine_tree(&name)?;
        let mut to = w.create_engine_tree(&name)?;
        for entry in r.range(&from, Bound::Unbounded, Bound::Unbounded, false)? {
            let (key, value) = entry?;
            w.insert(&to, &key, &value).map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::invalid(format!("tree {name:?} does not fit the new page layout: {m}"))
                }
                other => other,
            })?;
            if w.dirty_pages() + w.spilled_pages() >= BATCH_PAGES {
                w.commit()?;
                w = WriteTxn::new(dst.clone(), dst.lock_writer()?)?;
                to = w.open_engine_tree(&name)?;
            }
        }
    }
    // The same catalog as the source: its version, as a compaction keeps
    // it, and a commit counter that goes on from the source's.
    let source = r.snapshot().header();
    w.carry_counters(source.commit_counter, source.catalog_version);
    w.commit()
}

/// Steps 2 and 3. On error, says whether the rename happened.
fn swap(
    old: &Arc<Pager>,
    vfs: Arc<dyn Vfs>,
    tmp: &Path,
    path: &Path,
    options: &Options,
) -> std::result::Result<Arc<Pager>, (Error, bool)> {
    let before = |e| (e, false);
    old.close().map_err(before)?;
    if vfs.exists(&wal_path_of(path)).map_err(|e| before(Error::io("checking the WAL", e)))? {
        return Err(before(Error::Busy("the WAL could not be folded into the database".into())));
    }
    // The last handle to close removes the shared index; hold a fresh one's
    // DMS lock exclusively until the new file is in place, so that no
    // process opens the old file meanwhile. Failing to get it means another
    // process has (re)opened the database.
    let shm_lock = TargetShm::lock(&vfs, path).map_err(|e| {
        before(match e {
            Error::Busy(_) => Error::Busy("another process opened the database during the rekey".into()),
            other => other,
        })
    })?;
    let file = vfs
        .open(tmp, OpenMode::ReadWriteCreate)
        .map_err(|e| before(Error::io(format!("opening {}", tmp.display()), e)))?;
    if !file.try_lock_exclusive().map_err(|e| before(Error::io(format!("locking {}", tmp.display()), e)))? {
        return Err(before(Error::Busy(format!("{} is locked", tmp.display()))));
    }
    if let Err(e) = vfs.rename(tmp, path) {
        let _ = file.unlock();
        return Err(before(Error::io(format!("renaming {} to {}", tmp.display(), path.display()), e)));
    }
    // The old file is unlinked; its lock no longer guards anything.
    old.retire();
    // Openers waiting on the held -shm find it removed and join the new file.
    drop(shm_lock);
    let after = |e| (e, true);
    let opened = vfs
        .sync_parent_dir(path)
        .map_err(|e| Error::io(format!("syncing the directory of {}", path.display()), e))
        .and_then(|()| Pager::open_locked(vfs, path, file.clone(), options));
    opened.map_err(|e| {
        let _ = file.unlock();
        after(e)
    })
}

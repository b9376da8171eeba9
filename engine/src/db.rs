//! The database handle.
//!
//! A [`Db`] is `Send + Sync`: share it (by reference or in an `Arc`) among
//! threads. Within one process, opening the same file again (by any path
//! that leads to it: a symbolic or hard link too) returns a handle to the
//! same engine (a writable open beside a read-only one opens the file anew,
//! as another process would); the new handle keeps its own `read_only` and `busy_timeout`,
//! must ask for the same `sync_mode` and key, and shares the engine's cache
//! and checkpoint threshold. Other processes may open the same file at the same
//! time: they coordinate through the shared index `<file>-shm` (one writer
//! at a time across all of them, any number of readers; see
//! docs/architecture.md, "Handles and processes"). Processes must reach the
//! file by one name: `-wal` and `-shm` are named after the path opened (a
//! symbolic link followed to its target's name), so an open by another
//! name (a hard link) while another process has the file open is `Busy`.
//!
//! A handle belongs to the process that opened it: after `fork()`, the child
//! must open the database again; any call on the parent's handle from the
//! child returns `InvalidArgument` (its locks and mappings are the parent's).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, RwLock, TryLockError, Weak};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ops::integrity::{self, IntegrityReport};
use crate::ops::stat::{self, Stat};
use crate::options::Options;
use crate::storage::crypto::EncryptionKey;
use crate::storage::file::OsVfs;
use crate::storage::pager::{CheckpointResult, Pager, WriterGuard};
use crate::txn::{ReadTxn, ReadableTxn, WriteTxn};

/// The engine behind one open file; shared by every `Db` handle on it in
/// this process.
#[derive(Debug)]
struct Engine {
    pager: Arc<Pager>,
    registry_key: Option<FileKey>,
    /// What the pager was opened with (rekey reopens with them).
    options: Options,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Last handle gone without `close()`: still fold the WAL, best effort.
        let _ = self.pager.close();
        if let Some(key) = &self.registry_key {
            // Not waited for: an open of this file holding the registry may be
            // waiting for this engine's pager to let go of the file, which it
            // does only when this returns; waiting here held both until that
            // open's busy timeout, then failed it. An entry left behind is
            // dead (its engine is gone): the next open sweeps it.
            let reg = match registry().try_lock() {
                Ok(reg) => Some(reg),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut reg) = reg {
                forget_dead(&mut reg, key);
            }
        }
    }
}

impl Engine {
    fn rekey(&mut self, new_key: Option<EncryptionKey>) -> Result<()> {
        if Arc::strong_count(&self.pager) != 1 {
            return Err(Error::Busy("rekey needs every transaction to be finished".into()));
        }
        if self.pager.is_read_only() {
            return Err(Error::invalid("rekey on a read-only database"));
        }
        let vfs = self.options.vfs.clone().unwrap_or_else(|| Arc::new(OsVfs));
        let out = crate::ops::rekey::rekey(&self.pager, vfs, &self.options, new_key);
        if let Some(pager) = out.pager {
            self.pager = pager;
            self.options = out.options;
        }
        out.result
    }
}

/// What identifies a file whatever the path to it: its device and inode
/// numbers, so that two hard links (or a symbolic link) to one database
/// share one engine instead of two engines writing two WALs over one file.
type FileKey = (u64, u64);

pub(crate) fn file_key(path: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The live engines of one file in this process, the one a later open
/// joins last: a writable open beside a read-only engine (or an unusable
/// one, or a parent's after fork) opens the file anew and is pushed after
/// it, and the one it displaced still counts as open here
/// (`open_in_process`, `is_open_file_of`) until it closes.
type Engines = Vec<Weak<Engine>>;

/// Removes the entries of `key` whose engines are gone.
fn forget_dead(reg: &mut BTreeMap<FileKey, Engines>, key: &FileKey) {
    if let Some(list) = reg.get_mut(key) {
        list.retain(|w| w.strong_count() > 0);
        if list.is_empty() {
            reg.remove(key);
        }
    }
}

/// Removes `engine`'s entry under `key`.
fn forget(reg: &mut BTreeMap<FileKey, Engines>, key: &FileKey, engine: &Arc<Engine>) {
    if let Some(list) = reg.get_mut(key) {
        list.retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(engine)));
        if list.is_empty() {
            reg.remove(key);
        }
    }
}

/// The engines open in one process, by file (see [`registry`]).
struct Registry {
    /// The process it belongs to, by its forks as a child
    /// (`shm::fork_count`, which a reused process id cannot fool).
    forks: u64,
    /// A B-tree map rather than a hash map: its allocations are reached
    /// through pointers to their starts, so leak checkers (valgrind) count
    /// what is left at exit as still reachable, not as possibly lost as
    /// they do a hash table's.
    engines: Mutex<BTreeMap<FileKey, Engines>>,
    /// The parent's, in a child of fork(): never used again, only kept
    /// reachable.
    _parent: Option<&'static Registry>,
}

/// The engines open in this process, by file.
///
/// A child of fork() gets a new, empty one: another thread of the parent
/// may have held the parent's lock at the fork (an open holds it through
/// its file I/O), and no thread of the child would ever release it, so the
/// child's first open would wait for good. The parent's engines are of no
/// use to the child anyway: its opens take the file anew.
fn registry() -> &'static Mutex<BTreeMap<FileKey, Engines>> {
    static CURRENT: AtomicPtr<Registry> = AtomicPtr::new(std::ptr::null_mut());
    let forks = crate::storage::shm::fork_count();
    let seen = CURRENT.load(Ordering::Acquire);
    // SAFETY: CURRENT holds null or a pointer made by Box::into_raw below,
    // and what it points to is never freed or changed once published.
    let parent: Option<&'static Registry> = unsafe { seen.as_ref() };
    if let Some(r) = parent.filter(|r| r.forks == forks) {
        return &r.engines;
    }
    let fresh = Box::into_raw(Box::new(Registry { forks, engines: Default::default(), _parent: parent }));
    match CURRENT.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: published: as for `seen` above.
        Ok(_) => unsafe { &(*fresh).engines },
        Err(won) => {
            // Another thread of this process published one first: `fresh`
            // was never published, so it is freed here.
            // SAFETY: `fresh` came from Box::into_raw and nobody else saw it.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: as for `seen` above.
            unsafe { &(*won).engines }
        }
    }
}

/// `path` with a symbolic link as its last component followed to the file
/// it names (through chains of links). The `-wal` and `-shm` are named
/// after the path opened, so an open through a link uses the target's
/// name: otherwise a process that crashed with the file open through the
/// link would leave its WAL beside the link, where an open by the real
/// name never sees it, and a later open through the link would replay it
/// over newer commits. (A link in a directory of the path is harmless: the
/// sidecars land in the same directory either way. Hard links cannot be
/// told apart; processes must use one name, see `check_no_other_name`.)
pub(crate) fn through_symlinks(path: &Path) -> std::borrow::Cow<'_, Path> {
    let mut p = std::borrow::Cow::Borrowed(path);
    // As many hops as the kernel follows before ELOOP.
    for _ in 0..40 {
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) || is_descriptor_link(&p)
        {
            break;
        }
        let Ok(target) = std::fs::read_link(&p) else { break };
        let next = match p.parent() {
            Some(dir) if target.is_relative() => dir.join(&target),
            _ => target,
        };
        p = std::borrow::Cow::Owned(next);
    }
    p
}

/// Whether `path` is one of a process's descriptors in `/proc`
/// (`/proc/self/fd/1`, what `/dev/stdout` and `/dev/fd/1` lead to). Its
/// link text is no path to follow (`pipe:[1234]` for a pipe), and the file
/// it names is one only the kernel's own lookup reaches.
pub(crate) fn is_descriptor_link(path: &Path) -> bool {
    path.parent()
        .and_then(|dir| dir.canonicalize().ok())
        .is_some_and(|dir| dir.starts_with("/proc") && dir.file_name().is_some_and(|n| n == "fd"))
}

/// Refuses a path that names no file and does not exist (``, `/x/..`):
/// the open would otherwise fail with a less helpful error.
fn check_file_path(path: &Path) -> Result<()> {
    if path.file_name().is_none() && path.canonicalize().is_err() {
        return Err(Error::invalid(format!("{:?} is not a file path", path.display().to_string())));
    }
    Ok(())
}

/// True when a database at `path` is open in this process (through the
/// operating system's file system).
pub(crate) fn open_in_process(path: &Path) -> bool {
    registered_engines(path).iter().any(|e| !e.pager.forked())
}

/// Whether `path` names the file that `pager` has open in this process,
/// under any name (by the device and inode recorded at open, whatever the
/// working directory now is).
pub(crate) fn is_open_file_of(pager: &Arc<Pager>, path: &Path) -> bool {
    registered_engines(path).iter().any(|e| Arc::ptr_eq(&e.pager, pager))
}

/// The engines this process has open on the file `path` names.
fn registered_engines(path: &Path) -> Vec<Arc<Engine>> {
    let Some(key) = file_key(path) else { return Vec::new() };
    // The strong references outlive the registry lock: were one the last,
    // dropping it locks the registry (`Engine::drop`).
    let engines = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .map(|list| list.iter().filter_map(Weak::upgrade).collect())
        .unwrap_or_default();
    engines
}

/// Attached databases by namespace (see [`Db::attach`]).
pub(crate) type Attachments = std::collections::BTreeMap<String, Db>;

/// An open database. See the module documentation.
///
/// Clones share everything, attachments included; a second `Db::open` of
/// the same file shares the engine but has its own attachments.
#[derive(Debug, Clone)]
pub struct Db {
    engine: Arc<Engine>,
    attached: Arc<RwLock<Attachments>>,
    /// This handle's own options (a second open of the file shares the
    /// engine, not these).
    read_only: bool,
    busy_timeout: Duration,
    /// Set by [`Db::interrupt`]: this handle's waits for the writer lock
    /// give up.
    interrupted: Arc<AtomicBool>,
}

impl Db {
    /// Opens (or creates) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Self::open_with(path, Options::default())
    }

    /// Opens (or creates) the database at `path`. Recovery from the WAL is
    /// automatic. Errors: `NotFound` (no file and `create` is off),
    /// `InvalidArgument` (not an obj database, bad options, another sync
    /// mode than a handle already open on the file in this process),
    /// `Encryption` (missing or wrong key), `Unsupported` (newer format),
    /// `Corruption` (damaged or truncated file), `Busy` (another process is
    /// creating, opening or closing it for longer than the busy timeout;
    /// another process has it open under another name, a hard link (a
    /// symbolic link is followed to its target's name); read-only, the `-shm` file cannot be opened for writing while
    /// other processes use the database; a file system without shared
    /// memory, where one handle at a time may open it), `Io`.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        // Refused whatever the file (an existing one keeps its own size),
        // before anything is created, also when this open joins an engine
        // already open in this process.
        if !crate::storage::header::valid_page_size(options.page_size) {
            return Err(Error::invalid(format!(
                "page size {} is not a power of two from 4096 to 65536",
                options.page_size
            )));
        }
        let path = through_symlinks(path.as_ref());
        let path: &Path = &path;
        let os_vfs = options.vfs.is_none();
        if os_vfs {
            check_file_path(path)?;
        }
        let (read_only, busy_timeout) = (options.read_only, options.busy_timeout);
        let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        // Engines dropped while another thread held the registry left their
        // entries (`Engine::drop`).
        reg.retain(|_, list| {
            list.retain(|engine| engine.strong_count() > 0);
            !list.is_empty()
        });
        let open_key = if os_vfs { file_key(path) } else { None };
        // An engine inherited through fork() is the parent's, one that a
        // failed fsync or rekey left unusable answers every call with that
        // failure, and a read-only one (a read-only open, an attachment)
        // cannot commit for a handle that asks for writes: this open opens
        // the file anew (as another process would, beside it; the shared
        // index's locks are per open file, so the two exclude each other as
        // two processes do), and its engine is listed after the others: a
        // later open joins the newest that can serve it.
        let open_engine = open_key.as_ref().and_then(|k| reg.get(k)).and_then(|list| {
            list.iter()
                .rev()
                .filter_map(Weak::upgrade)
                .find(|e| e.pager.is_usable() && (read_only || !e.pager.is_read_only()))
        });
        if let Some(engine) = open_engine {
            // Not held past here: should this `engine` turn out to be the
            // last handle (another thread closing meanwhile), dropping it
            // takes the registry lock (`Engine::drop`).
            drop(reg);
            // Commits go through the one engine: a handle asking for other
            // durability than it gives would be told a lie (a read-only
            // handle commits nothing).
            if !read_only && engine.options.sync_mode != options.sync_mode {
                return Err(Error::invalid(format!(
                    "{} is already open in this process with sync mode {:?}; a second handle shares \
                     that engine and must ask for the same (not {:?})",
                    path.display(),
                    engine.options.sync_mode,
                    options.sync_mode
                )));
            }
            // Joining an open engine needs the same key as opening the file.
            engine.pager.check_key(options.encryption.as_ref())?;
            return Ok(Db {
                engine,
                attached: Default::default(),
                read_only,
                busy_timeout,
                interrupted: Default::default(),
            });
        }
        let pager = Pager::open(path, &options)?;
        // Known only now for a file that this open created.
        let key = if os_vfs { file_key(path) } else { None };
        // Registered (`registry_key` set) only once the open has succeeded:
        // an engine dropped on a failure below (an error or a panic) must not
        // take the registry lock, which this thread holds (`Engine::drop`).
        let engine = Arc::new(Engine { pager, registry_key: None, options });
        let mut db = Db {
            engine,
            attached: Default::default(),
            read_only,
            busy_timeout,
            interrupted: Default::default(),
        };
        // Only a database created but never initialised needs the writer:
        // another process may hold it for a long transaction.
        if !read_only && db.begin_read()?.catalog_root() == 0 {
            let mut w = db.begin_write()?;
            if w.catalog_root() == 0 {
                w.ensure_catalog()?;
                w.commit()?;
            }
        }
        if let Some(k) = key {
            // The only handle: transactions hold the pager, not the engine.
            let engine = Arc::get_mut(&mut db.engine).expect("a new engine has one handle");
            engine.registry_key = Some(k);
            reg.entry(k).or_default().push(Arc::downgrade(&db.engine));
        }
        Ok(db)
    }

    /// Begins a read transaction: a snapshot of the last commit (and of
    /// each attached database, see [`Db::attach`]).
    pub fn begin_read(&self) -> Result<ReadTxn> {
        let txn = ReadTxn::new(self.engine.pager.snapshot()?);
        let attached = self.attachments();
        if attached.is_empty() {
            return Ok(txn);
        }
        let views =
            attached.iter().map(|(ns, db)| Ok((ns.clone(), db.begin_read()?))).collect::<Result<_>>()?;
        Ok(txn.with_attached(views))
    }

    /// Begins the write transaction, waiting up to the busy timeout if
    /// another one is active (then `Busy`). Attached databases are read
    /// through snapshots taken now.
    pub fn begin_write(&self) -> Result<WriteTxn> {
        let guard = self.lock_writer()?;
        let txn = WriteTxn::new(self.engine.pager.clone(), guard)?;
        let attached = self.attachments();
        if attached.is_empty() {
            return Ok(txn);
        }
        let views = attached
            .iter()
            .map(|(ns, db)| Ok((ns.clone(), WriteTxn::read_view(db.engine.pager.clone())?)))
            .collect::<Result<_>>()?;
        Ok(txn.with_attached(views))
    }

    /// `InvalidArgument` on a read-only handle: what every write is told.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::invalid("the database is open read-only"));
        }
        Ok(())
    }

    /// Takes the writer slot for this handle: refused on a read-only
    /// handle, waiting up to this handle's busy timeout.
    pub(crate) fn lock_writer(&self) -> Result<WriterGuard> {
        self.check_writable()?;
        self.engine.pager.lock_writer_unless(self.busy_timeout, &self.interrupted)
    }

    /// Makes every wait of this handle (and of its clones) for the writer
    /// lock give up with `Closed`, now and from now on: for a binding that
    /// closes a handle while calls on other threads still wait for the
    /// lock, which would otherwise wait out the busy timeout (and keep a
    /// closing program from exiting meanwhile). Other handles on the file
    /// are not affected.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
        self.engine.pager.wake_writer_waiters();
    }

    /// True when this handle may not write (opened read-only, or sharing
    /// an engine that was).
    pub fn is_read_only(&self) -> bool {
        self.read_only || self.engine.pager.is_read_only()
    }

    /// A copy of the attachment table (cheap: handles are reference counted).
    pub(crate) fn attachments(&self) -> Attachments {
        self.attached.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The attachment table, for `attach` and `detach`.
    pub(crate) fn attachments_mut(&self) -> std::sync::RwLockWriteGuard<'_, Attachments> {
        self.attached.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The pager behind this handle.
    pub(crate) fn pager(&self) -> &Arc<Pager> {
        &self.engine.pager
    }

    /// True when the file was opened through the operating system's file
    /// system (not a custom [`Options::vfs`]).
    pub(crate) fn uses_os_vfs(&self) -> bool {
        self.engine.options.vfs.is_none()
    }

    /// Copies committed WAL frames into the main file, up to what the oldest
    /// active reader can see. Waits for an active writer up to the busy timeout.
    pub fn checkpoint(&self) -> Result<CheckpointResult> {
        let guard = self.lock_writer()?;
        self.engine.pager.checkpoint(&guard)
    }

    /// Sizes and counters as of now.
    pub fn stat(&self) -> Result<Stat> {
        stat::gather(&self.begin_read()?)
    }

    /// Walks every page and tree, and checks every ready index against the
    /// documents; `Err(Error::Integrity(findings))` if
    /// anything is wrong.
    pub fn integrity_check(&self) -> Result<IntegrityReport> {
        let txn = self.begin_read()?;
        let pages = integrity::check(txn.snapshot());
        // Index-vs-document findings join the page-level ones.
        let docs = integrity::check_indexes(&txn);
        match pages {
            Ok(report) if docs.is_empty() => Ok(report),
            Ok(_) => Err(Error::Integrity(docs)),
            Err(Error::Integrity(mut f)) => {
                f.extend(docs);
                Err(Error::Integrity(f))
            }
            Err(e) => Err(e),
        }
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        self.engine.pager.path()
    }

    /// True when the database is encrypted at rest.
    pub fn is_encrypted(&self) -> bool {
        self.engine.pager.is_encrypted()
    }

    /// Rewrites the whole database under `new_key`: `Some` encrypts a plain
    /// database or changes the key of an encrypted one, `None` decrypts it.
    /// A new copy is written beside the file (`<path>-rekey`) from one
    /// snapshot and renamed over it, so a crash at any point leaves either
    /// the old database or the new one, whole. This handle then uses the
    /// new key; later opens must give it.
    ///
    /// This handle must be the only one on the database, in this process
    /// and in every other (another process with the database open makes it
    /// `Busy` too), with no transaction open (else `Busy`), and not
    /// read-only. Space for
    /// a second copy is needed while it runs. A key too long for the new
    /// page layout (encrypted pages hold 28 bytes less) is an
    /// `InvalidArgument` that leaves the database as it was. If the swap
    /// itself fails after the old file was closed, the handle reopens
    /// whichever database is in place; should that fail too, the handle
    /// answers `Closed` and the file is reopened with `Db::open_with`.
    pub fn rekey(&mut self, new_key: Option<EncryptionKey>) -> Result<()> {
        if self.read_only {
            return Err(Error::invalid("rekey on a read-only database"));
        }
        // A handle inherited through fork() is the parent's: it must not
        // touch the child's registry (where the child's own engine for the
        // file may be).
        self.engine.pager.check_process()?;
        let registry_key = self.engine.registry_key;
        {
            let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
            if Arc::strong_count(&self.engine) != 1 {
                return Err(Error::Busy("rekey needs the only handle on the database".into()));
            }
            // The registry's weak reference would stop `Arc::get_mut`; a
            // concurrent open of the path meanwhile finds the file locked.
            if let Some(k) = &registry_key {
                forget(&mut reg, k, &self.engine);
            }
        }
        let result = match Arc::get_mut(&mut self.engine) {
            Some(engine) => engine.rekey(new_key),
            None => Err(Error::Busy("rekey needs the only handle on the database".into())),
        };
        if registry_key.is_some() {
            // The new file replaced the old one by a rename: a new inode. An
            // engine left unusable is not listed again; one that another
            // open of the new file made meanwhile stays listed beside it.
            let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
            let key = file_key(self.path()).filter(|_| self.engine.pager.is_usable());
            if let Some(engine) = Arc::get_mut(&mut self.engine) {
                engine.registry_key = key;
            }
            if let Some(k) = key {
                reg.entry(k).or_default().push(Arc::downgrade(&self.engine));
            }
        }
        result
    }

    /// Closes this handle. A writable handle checkpoints what readers allow
    /// into the main file, without waiting for a write transaction active
    /// on another handle (which leaves the WAL as it is); when it is the
    /// last handle on the file in this process, that checkpoint is
    /// complete and the WAL and the shared index are removed. While another
    /// process has the database open, a close checkpoints nothing: the
    /// close-time checkpoint is the last process's. Transactions still active keep working: a read transaction
    /// keeps its snapshot, a write transaction may still commit, and the
    /// fold waits until the last of them ends. A read-only handle writes
    /// nothing, even as the last one of a process whose other handles
    /// wrote. Dropping the last `Db` of the process does what `close` does
    /// (without reporting errors); dropping another one only lets its
    /// handle go.
    pub fn close(self) -> Result<()> {
        let read_only = self.read_only;
        let (engine, last) = self.release();
        if last {
            let result = engine.pager.close_as(!read_only);
            drop(engine);
            result
        } else if read_only {
            // A read-only handle never writes the file.
            Ok(())
        } else {
            // Other handles of this process stay open; the file still
            // gets what they allow of the close-time fold (unless another
            // process has it open).
            engine.pager.checkpoint_at_close()
        }
    }

    /// Closes this handle without the close-time checkpoint, even when it
    /// is the last one: the WAL (and the shared index) stay beside the
    /// file, as after a crash, and the next open recovers from them. Locks
    /// and read marks are released as by [`Db::close`]. For an application
    /// that is leaving because of an error and wants no more I/O than
    /// needed; committed data is as safe as with `close`.
    pub fn close_without_checkpoint(self) {
        let (engine, last) = self.release();
        if last {
            engine.pager.close_without_checkpoint();
        }
        drop(engine);
    }

    /// Drops the attachments and says whether this is the last handle on
    /// the engine. A last handle is unregistered under the registry lock,
    /// so that a concurrent `open` never joins an engine that is closing
    /// (it opens the file anew, or gets Busy while the fold still holds the
    /// file lock).
    fn release(self) -> (Arc<Engine>, bool) {
        let Db { engine, attached, .. } = self;
        drop(attached);
        let last = {
            let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
            let last = Arc::strong_count(&engine) == 1;
            if let (true, Some(key)) = (last, &engine.registry_key) {
                forget(&mut reg, key, &engine);
            }
            last
        };
        (engine, last)
    }
}

//! The pager: pages in, pages out, through the WAL.
//!
//! Owns the main file, the WAL, the WAL index and the page cache. Readers get
//! a [`Snapshot`]: the header and page versions as of the last commit when
//! they began. The single writer hands its changed pages to [`Pager::commit`],
//! which appends them to the WAL as one transaction and publishes them.
//! [`Pager::checkpoint`] copies committed frames into the main file. The
//! main file is written only by the checkpoint; everything else is appended
//! to the WAL. The pager knows nothing of trees or documents.
//!
//! Several processes may have the database open: they share the WAL index
//! through `<db>-shm` (see [`crate::storage::shm`] and `wal_index`), the
//! writer lock is a byte-range lock there, and each process's pager keeps
//! only a private cache of immutable page versions.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::error::{Error, PageNo, Result};
use crate::options::{Options, SyncMode};
use crate::storage::cache::{CacheStats, PageCache};
use crate::storage::crypto::{random_bytes, PageCodec, PLAINTEXT_PREFIX};
use crate::storage::file::{
    is_not_a_file, remove_stale_temps, temp_path_beside, OpenMode, OsVfs, StorageFile, Vfs,
};
use crate::storage::freelist;
use crate::storage::header::{stamp_wal_position, valid_page_size, wal_salt_of, Header, HEADER_LEN};
use crate::storage::memo::SnapshotMemo;
use crate::storage::page::{
    verify_page, Page, PageRead, PageRef, KIND_BTREE_INTERIOR, MAX_PAGE_SIZE, MIN_PAGE_SIZE,
};
use crate::storage::shm::{
    self, lock_read, shm_path_of, HeaderState, HeapShm, LockTable, ShmFile, ShmHeader, LOCK_CKPT, LOCK_DMS,
    LOCK_LEAVE, LOCK_RECOVER, LOCK_VETTED, LOCK_WRITE, READ_SLOTS,
};
use crate::storage::wal::{
    fresh_salt, holds_a_log, FrameWrite, Recovered, Wal, WalPosition, FRAME_HEADER_LEN, WAL_HEADER_LEN,
};
use crate::storage::wal_index::{main_key, PageMap, PageSource, ReadMark, Refresh, WalIndex};

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckpointResult {
    /// WAL frames whose content is now in the main file (this call).
    pub frames_backfilled: u64,
    /// Distinct pages written to the main file (this call).
    pub pages_written: u64,
    /// Frames in the WAL after the call.
    pub wal_frames: u64,
    /// True when the main file now holds every committed page.
    pub complete: bool,
}

/// Counters for `stat()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PagerStats {
    /// Page size in bytes.
    pub page_size: u64,
    /// Committed frames in the WAL.
    pub wal_frames: u64,
    /// Frames already copied into the main file.
    pub wal_backfilled: u64,
    /// Active read snapshots.
    pub readers: u64,
    /// Page cache counters.
    pub cache: CacheStats,
}

/// The byte of the main file on which a read-only handle with a private
/// index holds a shared fcntl lock for its life (past any real page: the
/// lock is advisory), which every writable open checks once it holds the
/// shared index's DMS lock.
const PRIVATE_READER_BYTE: u64 = 1 << 40;

/// Releases this handle's locks on the main file: a private read-only
/// handle's byte lock first, while the whole-file lock keeps the
/// descriptor registered for `fork` (a child forked in between would
/// otherwise keep the byte locked), then the whole-file lock.
fn unlock_main(main: &dyn StorageFile) {
    let _ = main.lock_byte_shared(PRIVATE_READER_BYTE, false);
    let _ = main.unlock();
}

/// The shared index an open goes on with.
enum Index {
    /// To join (the DMS lock), perhaps as the first opener.
    ToJoin(Arc<dyn ShmFile>),
    /// Joined already (DMS held shared, never the first opener): a
    /// read-only mapping ([`Pager::join_read_only`]).
    Joined(Arc<dyn ShmFile>, LockTable),
}

/// How a handle shares the database with other processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sharing {
    /// Through the shared index `<db>-shm`: any number of processes.
    Shared,
    /// The file system has no shared memory: an exclusive lock on the main
    /// file keeps other handles out; the index is private.
    Exclusive,
    /// A read-only open that could not open `<db>-shm` for writing, while
    /// no other process had the database open: a private index built from
    /// the WAL at open, and a shared lock on the main file that keeps a
    /// writer out until it closes (see docs/architecture.md).
    PrivateReadOnly,
}

/// A wait for old readers that timed out (see `Pager::bound_wal`).
#[derive(Debug, Clone, Copy)]
struct ReaderWait {
    /// The WAL generation it was in.
    generation: u64,
    /// The WAL size (frames) below which a commit does not wait again.
    next_at: u64,
    /// How long it waited.
    waited: Duration,
    /// The oldest snapshot still held after it (the frame a checkpoint
    /// could copy up to).
    oldest: u64,
}

/// What a checkpoint's check of a frame kept for the copy: the image to
/// write and the decoded page, if known (`None`: read the frame again).
type Checked = Option<(PageRef, Option<PageRef>)>;

/// How long a commit first waits at most for readers of older snapshots to
/// end when the WAL is past twice its checkpoint threshold
/// (`Pager::bound_wal`). The wait doubles with each doubling of the WAL
/// past that, up to [`READER_WAIT_MAX`] (and the busy timeout).
const READER_WAIT: Duration = Duration::from_millis(100);
/// How many times the wait doubles: up to [`READER_WAIT_MAX`].
const READER_WAIT_DOUBLINGS: u32 = 4;
/// The longest wait for old readers: readers that each last less keep the
/// WAL within a few doublings of its threshold.
const READER_WAIT_MAX: Duration =
    Duration::from_millis((READER_WAIT.as_millis() as u64) << READER_WAIT_DOUBLINGS);
/// The fewest WAL frames at which a commit waits for readers (`Pager::bound_wal`).
const WAL_WAIT_FLOOR: u64 = 1000;

/// How long a closing process that found others with the file open,
/// holding LEAVE, looks again whether it is alone (see
/// `Pager::alone_after_a_moment`).
const CLOSE_RACE_WAIT: Duration = Duration::from_millis(30);

/// See the module documentation.
pub struct Pager {
    vfs: Arc<dyn Vfs>,
    path: PathBuf,
    wal_path: PathBuf,
    shm_path: PathBuf,
    main: Arc<dyn StorageFile>,
    /// The WAL for page reads; on a read-only open without a WAL, a
    /// stand-in until another process creates it.
    wal_file: RwLock<Arc<dyn StorageFile>>,
    wal_missing: AtomicBool,
    wal: Mutex<Wal>,
    index: WalIndex,
    cache: PageCache,
    /// What the document layer derived from the newest committed state.
    memo: SnapshotMemo,
    page_size: usize,
    file_id: [u8; 16],
    /// Content bytes per page: the page size less the file's trailer.
    usable: usize,
    /// Seals and checks (and for an encrypted file encrypts and decrypts)
    /// page images; the only place that knows whether the file is encrypted.
    codec: PageCodec,
    sync_mode: SyncMode,
    read_only: bool,
    sharing: Sharing,
    autocheckpoint: u64,
    busy_timeout: Duration,
    /// Changed pages a write transaction keeps in memory before it spills
    /// some to the WAL ([`Options::max_dirty_bytes`]).
    dirty_limit: usize,
    /// The writer slot among this process's threads: whether it is taken,
    /// and how many threads wait for it (a release with none waiting
    /// skips the wake-up, a system call on every commit).
    writer_busy: Mutex<WriterSlot>,
    writer_free: Condvar,
    /// Set when an fsync failed: the outcome of earlier writes is unknown,
    /// so the handle refuses all further work (never retry a failed fsync).
    fatal: Mutex<Option<String>>,
    closed: AtomicBool,
    /// Closed while readers were active: fold the WAL when the pager drops.
    fold_pending: AtomicBool,
    /// This process's last wait for old readers that timed out (see
    /// `bound_wal`).
    last_reader_wait: Mutex<Option<ReaderWait>>,
    /// The process that opened the handle: a child after `fork()` must not
    /// use it (its locks are the parent's).
    pid: u32,
    /// [`shm::fork_count`] when opened: a different count means a fork.
    forks: u64,
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pager({})", self.path.display())
    }
}

/// The `-wal` path of a database path (`app.obj` → `app.obj-wal`).
pub fn wal_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// How an open came by its main file.
enum Creation {
    /// It was there (or the open may not create one).
    Found,
    /// This open renamed a whole new database into place
    /// ([`create_whole`]): its file id and codec.
    Whole([u8; 16], PageCodec),
    /// This open creates the file empty and writes its header in place.
    InPlace,
}

/// Opens (creating, for a writable open) the main file at `path`.
fn open_main(vfs: &dyn Vfs, path: &Path, options: &Options) -> Result<Arc<dyn StorageFile>> {
    let mode = if options.read_only { OpenMode::ReadOnly } else { OpenMode::ReadWriteCreate };
    vfs.open(path, mode).map_err(|e| open_failed(&path.display().to_string(), "an obj database", e))
}

/// A new database's page 0 (sealed, and encrypted per `options`), its file
/// id and its codec.
fn new_page0(options: &Options) -> Result<(Vec<u8>, [u8; 16], PageCodec)> {
    let mut file_id = [0u8; 16];
    if options.encryption.is_some() {
        // The file id keys the encryption: draw it from the CSPRNG.
        random_bytes(&mut file_id)?;
    } else {
        file_id[..8].copy_from_slice(&fresh_salt(1).to_le_bytes());
        file_id[8..].copy_from_slice(&fresh_salt(2).to_le_bytes());
    }
    let codec = PageCodec::create(options.encryption.as_ref(), file_id)?;
    let mut header = Header::new(options.page_size as u32, 0, file_id);
    header.set_encrypted(codec.is_encrypted());
    let mut page: PageRef = PageRef::zeroed(options.page_size);
    header.encode(&mut PageRef::make_mut(&mut page)[..]);
    let image = codec.seal(0, &mut page)?;
    let image = image.as_deref().unwrap_or(&page).to_vec();
    Ok((image, file_id, codec))
}

/// Creates the database at `path` whole: page 0 is written and synced under
/// a temporary name (`<name>.tmp-<random>`, the form a copy uses, which the
/// next creation or copy at `path` sweeps if a crash left it), which is then renamed to
/// `<path>` unless a file is there ([`Vfs::rename_noreplace`]), so that a
/// crash or power cut at any moment leaves no file or a database, never a
/// file with part of a header (which no open could tell from a damaged
/// one). `Found` when another process put its database there first;
/// `InPlace` when a `-wal` is there already (the in-place path refuses a
/// log beside an empty file), when the file system cannot rename without
/// replacing, or when the temporary file cannot be made: the caller then
/// creates the file empty and writes page 0 in place, as on such file
/// systems it always did.
fn create_whole(vfs: &dyn Vfs, path: &Path, options: &Options) -> Result<Creation> {
    if vfs.exists(&wal_path_of(path)).unwrap_or(true) {
        return Ok(Creation::InPlace);
    }
    let (image, file_id, codec) = new_page0(options)?;
    let temp = temp_path_beside(path);
    let staged = vfs.open(&temp, OpenMode::ReadWriteCreate).and_then(|f| {
        // Held until the rename: a sweep of stale temporary files passes
        // over a locked one, however long this creation stalls.
        let _ = f.try_lock_exclusive();
        f.write_at(&image, 0)?;
        f.sync()?;
        Ok(f)
    });
    let renamed = staged.and_then(|f| {
        let renamed = vfs.rename_noreplace(&temp, path);
        drop(f);
        renamed
    });
    match renamed {
        Ok(()) => {
            vfs.sync_parent_dir(path)
                .map_err(|e| Error::io(format!("syncing the directory of {}", path.display()), e))?;
            remove_stale_temps(vfs, path, &temp);
            Ok(Creation::Whole(file_id, codec))
        }
        Err(e) => {
            let _ = vfs.remove(&temp);
            Ok(if e.kind() == io::ErrorKind::AlreadyExists { Creation::Found } else { Creation::InPlace })
        }
    }
}

/// Where a copy that replaces the database at `path` (a restore) moves the
/// old file's WAL while the new file goes in: `<path>-wal-replaced`.
pub fn replaced_wal_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal-replaced");
    PathBuf::from(s)
}

/// Every opener's look at a WAL a replace moved aside
/// ([`replaced_wal_path_of`]): when it is the WAL of the file at `path` (its
/// file id) and that file has no other, the replace was cut before the new
/// file went in, and the WAL goes back to its place (the old database is
/// whole again); any other is the replaced file's and is removed. Returns
/// the path of the WAL to read: the one moved aside, for a read-only open
/// that may not move it back. Not the first opener's task alone: after a
/// read-only first opener, the others must find the WAL it reads (moving
/// it keeps the file that open handles read). An opener that finds the
/// WAL moved back, or removed, by another in the meantime goes on with
/// `<path>-wal`.
fn restore_replaced_wal(vfs: &dyn Vfs, path: &Path, file_id: [u8; 16], read_only: bool) -> Result<PathBuf> {
    let wal = wal_path_of(path);
    let aside = replaced_wal_path_of(path);
    let io = |what: &str, p: &Path, e| Error::io(format!("{what} {}", p.display()), e);
    if !vfs.exists(&aside).map_err(|e| io("checking", &aside, e))? {
        return Ok(wal);
    }
    let ours = !vfs.exists(&wal).map_err(|e| io("checking", &wal, e))? && {
        let f = match vfs.open(&aside, OpenMode::ReadOnly) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(wal),
            opened => opened.map_err(|e| io("opening", &aside, e))?,
        };
        crate::storage::wal::file_id_of(&*f).map_err(|e| io("reading", &aside, e))? == Some(file_id)
    };
    if read_only {
        return Ok(if ours { aside } else { wal });
    }
    let moved = if ours { vfs.rename(&aside, &wal) } else { vfs.remove(&aside) };
    match moved {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(wal),
        Err(e) => return Err(io(if ours { "moving back" } else { "removing" }, &aside, e)),
    }
    vfs.sync_parent_dir(&wal).map_err(|e| io("syncing the directory of", &wal, e))?;
    Ok(wal)
}

/// Holds the writer slot (in this process and, through the shared index's
/// writer lock, in all of them); released on drop.
pub struct WriterGuard {
    pager: Arc<Pager>,
    os_locked: bool,
}

/// See `Pager::writer_busy`.
#[derive(Default)]
struct WriterSlot {
    busy: bool,
    waiting: u32,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if self.os_locked && !self.pager.forked() {
            self.pager.index.unlock_exclusive(LOCK_WRITE);
        }
        let mut slot = self.pager.writer_busy.lock().unwrap_or_else(|p| p.into_inner());
        slot.busy = false;
        if slot.waiting > 0 {
            self.pager.writer_free.notify_one();
        }
    }
}

impl std::fmt::Debug for WriterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterGuard")
    }
}

fn is_permission(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
        || matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM))
}

/// Which of the database's files the open under way created.
struct NewFiles {
    main: Creation,
    shm: bool,
}

/// The `-wal` and `-shm` files an open created, removed again if that open
/// fails: an open refused because the file is not a database, is truncated
/// or has a foreign WAL leaves nothing beside the file. Only the first
/// opener removes anything, and only while it holds the DMS lock
/// exclusively (no other process uses the files); a process that opened
/// the `-shm` meanwhile sees it gone and opens it anew, as after a last
/// close. Dropped armed, before the shared index is published, it removes
/// them; [`CreatedSidecars::keep`] hands them to the open's last checks.
struct CreatedSidecars {
    vfs: Arc<dyn Vfs>,
    paths: Vec<PathBuf>,
    armed: bool,
}

impl CreatedSidecars {
    fn new(vfs: Arc<dyn Vfs>, first: bool) -> Self {
        CreatedSidecars { vfs, paths: Vec::new(), armed: first }
    }

    fn add(&mut self, path: &Path) {
        self.paths.push(path.to_path_buf());
    }

    /// The shared index is published: the files stay for now. Returns them
    /// for the open's last checks, which remove them themselves if they fail.
    fn keep(mut self) -> Vec<PathBuf> {
        self.armed = false;
        std::mem::take(&mut self.paths)
    }
}

impl Drop for CreatedSidecars {
    fn drop(&mut self) {
        if self.armed {
            for p in &self.paths {
                let _ = self.vfs.remove(p);
            }
        }
    }
}

/// Refuses a WAL that does not continue the main file's history (same file
/// id, another time): one left behind by an older state of the database
/// (its newest commit is older than the main file's), or one whose first
/// commit is more than one commit past the main file (the main file was
/// replaced by an older copy). Replaying either would mix pages of two
/// states: a silent rollback at best, wrong data at worst. Every commit
/// writes page 0 with its commit counter, and a checkpoint copies into the
/// main file only committed frames of the WAL it belongs to, so a WAL
/// produced by crashes and recovery alone always holds
/// `first − 1 ≤ main ≤ newest`. Runs during recovery, while no other
/// process has the database open. A main page 0 that fails its check is
/// left to [`Pager::check_main_length`] (a torn checkpoint write).
fn check_wal_matches_main(
    main: &dyn StorageFile,
    display: &str,
    wal_display: &str,
    wal: &Wal,
    codec: &PageCodec,
    page_size: usize,
    recovered: &Recovered,
) -> Result<()> {
    let mut page0 = recovered.frames.iter().filter(|(_, pgno)| *pgno == 0).map(|(frame, _)| *frame);
    let Some(first) = page0.next() else {
        return Ok(());
    };
    let newest = page0.next_back().unwrap_or(first);
    let mut page = Page::zeroed(page_size);
    match main.read_at(&mut page, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(e) => return Err(Error::io(format!("reading {display}"), e)),
    }
    if codec.open_page(0, &mut page).is_err() {
        return Ok(());
    }
    let in_main = Header::decode(&page)?.commit_counter;
    let counter_at = |frame: u64| -> Result<u64> {
        let mut image = Page::zeroed(page_size);
        wal.read_frame(frame, &mut image)?;
        codec.open_page(0, &mut image)?;
        Ok(Header::decode(&image)?.commit_counter)
    };
    let (oldest, newest) = (counter_at(first)?, counter_at(newest)?);
    if in_main > newest {
        return Err(Error::corruption(
            None,
            format!(
                "{wal_display} is older than {display}: its newest commit is #{newest} but the main file holds #{in_main} \
                 (a stale WAL from an earlier state of this database); move it away to open the database"
            ),
        ));
    }
    // A main file holding one of this WAL's commits took it from this WAL
    // (a checkpoint copies only its own WAL's frames), so its page 0 names
    // this generation. Another salt there: the file was written through
    // another WAL since (opened by another name, a hard link, after a
    // crash left this one), and the two histories cannot be merged.
    let stamped = wal_salt_of(&page);
    if in_main >= oldest && stamped != 0 && stamped != wal.header().salt {
        return Err(Error::corruption(
            None,
            format!(
                "{wal_display} does not continue {display}: the main file holds commit #{in_main}, made through \
                 another WAL than this one (was the file written under another name, such as a hard link, while \
                 this WAL held commits?); move the WAL away to open the database without its commits"
            ),
        ));
    }
    if in_main.saturating_add(1) < oldest {
        return Err(Error::corruption(
            None,
            format!(
                "{display} is older than its WAL {wal_display}: the WAL continues from commit #{} but the main \
                 file holds #{in_main} (was the main file replaced by an older copy?)",
                oldest - 1
            ),
        ));
    }
    Ok(())
}

/// The most pages a database can count when its main file holds
/// `file_pages` pages and its WAL `wal_frames` frames of the current
/// generation. Every page under the count is in the main file, written
/// in a frame, or free and never written since it was allocated past the
/// end (a transaction that allocates and frees a page writes no image of
/// it): then a freelist trunk lists it, and that trunk's image listing it
/// is a frame (the main file holds no page past the count of the state it
/// was last cut or extended to, and a trunk image older than that lists
/// no page past it). A trunk lists fewer than `usable / 4` pages, so the
/// WAL accounts for at most `wal_frames * (1 + usable / 4)` pages past the
/// main file's (page 0 of a new database, which may be all its main file
/// holds, counted once more).
pub(crate) fn possible_pages(file_pages: u64, wal_frames: u64, usable: usize) -> u64 {
    file_pages.max(1).saturating_add(wal_frames.saturating_mul(1 + usable as u64 / 4))
}

/// Checks the shape of the commits recovery found in a WAL, none of which
/// a WAL written by obj lacks (whatever crashed): every commit writes
/// page 0, records the page count of its new state as the commit marker of
/// its last frame (the count page 0 holds), and writes no page at or past
/// that count (a transaction's count only grows, and a compaction's bulk
/// commit writes only pages under its new count). The newest commit's
/// count must also fit what the main file and the WAL can hold (see
/// [`possible_pages`]): a checkpoint would extend the main file to it.
/// A WAL that fails any of these was damaged (or made) with valid
/// checksums: `Corruption`, before any of it is used. Reads page 0 of the
/// newest commit from the WAL, and the main file's size.
fn check_recovered(
    main: &dyn StorageFile,
    display: &str,
    wal_display: &str,
    wal: &Wal,
    codec: &PageCodec,
    page_size: usize,
    recovered: &Recovered,
) -> Result<()> {
    let mut frames = recovered.frames.iter().peekable();
    let mut newest_page0 = None;
    for &(commit, count) in &recovered.commits {
        let mut page0 = None;
        while let Some(&&(frame, pgno)) = frames.peek().filter(|(frame, _)| *frame <= commit) {
            frames.next();
            if pgno >= count {
                return Err(Error::corruption(
                    pgno,
                    format!(
                        "{wal_display}: frame {frame} holds page {pgno}, past the {count} pages its commit \
                         (frame {commit}) counts (restore from a backup; moving the WAL away opens the \
                         database as of its last checkpoint)"
                    ),
                ));
            }
            if pgno == 0 {
                page0 = Some(frame);
            }
        }
        let Some(page0) = page0 else {
            return Err(Error::corruption(
                None,
                format!(
                    "{wal_display}: the commit in frame {commit} holds no page 0, which every commit writes \
                     (restore from a backup; moving the WAL away opens the database as of its last checkpoint)"
                ),
            ));
        };
        newest_page0 = Some((page0, count));
    }
    let Some((frame, count)) = newest_page0 else { return Ok(()) };
    let mut image = Page::zeroed(page_size);
    wal.read_frame(frame, &mut image)?;
    codec.open_page(0, &mut image)?;
    let header = Header::decode(&image)?;
    if header.page_count != count {
        return Err(Error::corruption(
            0,
            format!(
                "{wal_display}: page 0 in frame {frame} counts {} pages but its commit records {count}",
                header.page_count
            ),
        ));
    }
    let size = main.size().map_err(|e| Error::io(format!("reading the size of {display}"), e))?;
    let usable = page_size - codec.trailer_len();
    let possible = possible_pages(size / page_size as u64, recovered.last_commit, usable);
    if count as u64 > possible {
        return Err(Error::corruption(
            0,
            format!(
                "{wal_display}: its newest commit counts {count} pages, but {display} ({size} bytes) and \
                 the WAL's {} frames can hold at most {possible}",
                recovered.last_commit
            ),
        ));
    }
    Ok(())
}

/// Processes coordinate through `<path>-wal` and `<path>-shm`, named after
/// the path they opened: two processes reaching one file by two names (a
/// hard or symbolic link) would each run a WAL of their own over the same
/// main file and silently lose each other's commits. So every handle holds
/// a shared lock on the main file, and the first of its name (no other
/// process in its `-shm`) must find the file unlocked: another holder came
/// through another name, and this open is `Busy` once the busy timeout has
/// passed. Taking the shared lock
/// after the exclusive one is not atomic: a first opener of the other name
/// whose whole check falls between this one's unlock and shared lock (a
/// few instructions) gets in too. Otherwise the later of two such openers
/// meets a lock it cannot take and is `Busy`.
fn check_no_other_name(main: &dyn StorageFile, display: &str, first: bool, timeout: Duration) -> Result<()> {
    let io = |e| Error::io(format!("locking {display}"), e);
    let busy = || {
        Error::Busy(format!(
            "{display} is open in another process under another name (a hard or symbolic link), or \
             read-only by a process that cannot write its -shm file, or its -shm file was deleted while a \
             process had it open; open it by the same path, or once every process has closed it"
        ))
    };
    // Waited for up to the busy timeout, as every lock is: a process being
    // spawned holds copies of its parent's descriptors, and so its locks,
    // until it execs (a forked child that lives on drops them at once, see
    // `shm::register_fd`).
    let wait = |lock: &dyn Fn() -> std::io::Result<bool>| {
        shm::retry(timeout, 50, || Ok(lock().map_err(io)?.then_some(())))
    };
    if first {
        wait(&|| main.try_lock_exclusive())?.ok_or_else(busy)?;
        main.unlock().map_err(io)?;
    }
    wait(&|| main.try_lock_shared())?.ok_or_else(busy)?;
    Ok(())
}

impl Pager {
    /// Opens (creating if allowed) the database at `path` and recovers its WAL.
    pub fn open(path: &Path, options: &Options) -> Result<Arc<Pager>> {
        let vfs: Arc<dyn Vfs> = options.vfs.clone().unwrap_or_else(|| Arc::new(OsVfs));
        let display = path.display().to_string();
        // (`options.page_size` was checked by `Db::open_with`, whose
        // options every pager is opened with.)
        let exists = vfs.exists(path).map_err(|e| Error::io(format!("checking {display}"), e))?;
        if !exists && (options.read_only || !options.create) {
            return Err(Error::not_found(format!("database file {display} does not exist")));
        }
        let created =
            if exists || options.read_only { Creation::Found } else { create_whole(&*vfs, path, options)? };
        let main = open_main(&*vfs, path, options)?;
        Self::open_file(vfs, path, main, false, created, options)
    }

    /// Opens the database at `path` whose main file `main` is already open
    /// and exclusively locked by the caller (rekey, which renamed it into
    /// place). Where the file system has shared memory the lock is released
    /// at once: the shared index's locks coordinate the processes.
    pub(crate) fn open_locked(
        vfs: Arc<dyn Vfs>,
        path: &Path,
        main: Arc<dyn StorageFile>,
        options: &Options,
    ) -> Result<Arc<Pager>> {
        Self::open_file(vfs, path, main, true, Creation::Found, options)
    }

    /// Opens the database whose main file `main` is open: `locked` by the
    /// caller (rekey); `created` says whether this open made it.
    fn open_file(
        vfs: Arc<dyn Vfs>,
        path: &Path,
        main: Arc<dyn StorageFile>,
        locked: bool,
        created: Creation,
        options: &Options,
    ) -> Result<Arc<Pager>> {
        let display = path.display().to_string();
        let shm_path = shm_path_of(path);
        let shm_display = shm_path.display().to_string();
        let shm_existed = vfs.exists(&shm_path).unwrap_or(true);
        let (shm, sharing): (Arc<dyn ShmFile>, Sharing) = match vfs.open_shm(&shm_path) {
            Ok(shm) => {
                if locked {
                    let _ = main.unlock();
                }
                (shm, Sharing::Shared)
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                if !locked
                    && !main.try_lock_exclusive().map_err(|e| Error::io(format!("locking {display}"), e))?
                {
                    return Err(Error::Busy(format!("{display} is open in another process (or handle)")));
                }
                (Arc::new(HeapShm::default()), Sharing::Exclusive)
            }
            Err(e) if options.read_only && is_permission(&e) => {
                match Self::read_only_index(&*vfs, &*main, &display, &shm_path, options, &e)? {
                    Some(mapped) => {
                        let made = NewFiles { main: created, shm: false };
                        return Self::open_with_index(
                            vfs,
                            path,
                            main,
                            mapped,
                            Sharing::Shared,
                            made,
                            options,
                        );
                    }
                    None => (Arc::new(HeapShm::default()), Sharing::PrivateReadOnly),
                }
            }
            Err(e) => return Err(Error::io(format!("opening {shm_display}"), e)),
        };
        let made = NewFiles { main: created, shm: sharing == Sharing::Shared && !shm_existed };
        let result =
            Self::open_with_index(vfs, path, main.clone(), Index::ToJoin(shm), sharing, made, options);
        if result.is_err() && matches!(sharing, Sharing::Exclusive | Sharing::PrivateReadOnly) {
            unlock_main(&*main);
        }
        result
    }

    /// How a read-only open that cannot write the `-shm` reads (`err`,
    /// why it could not): `None`, with a private index, when no process
    /// has the database open, holding a shared lock on the main file that
    /// keeps a writer that starts later out (its first opener's check for
    /// other names wants the lock exclusively; nothing would tell this
    /// handle of that writer's checkpoints); otherwise the processes' own
    /// index, mapped read-only and joined. The lock is taken before the
    /// check that no process has the file open, so that one of the two
    /// sees the other, and let go before joining (the order of every other
    /// opener: DMS, then the main file). Decided again, up to the busy
    /// timeout, when the processes leave while this open joins them.
    fn read_only_index(
        vfs: &dyn Vfs,
        main: &dyn StorageFile,
        display: &str,
        shm_path: &Path,
        options: &Options,
        err: &io::Error,
    ) -> Result<Option<Index>> {
        let shm_display = shm_path.display();
        let busy = |why: &dyn std::fmt::Display| {
            Error::Busy(format!(
                "{display} is open in another process, and a read-only open beside it needs write access \
                 to {shm_display} ({err}) or to read it ({why})"
            ))
        };
        let deadline = shm::deadline_after(options.busy_timeout);
        let locking = |e| Error::io(format!("locking {display}"), e);
        loop {
            let left = || deadline.saturating_duration_since(Instant::now());
            let lock = || main.try_lock_shared().map_err(locking);
            shm::retry(left(), 50, || Ok(lock()?.then_some(())))?
                .ok_or_else(|| busy(&"a writer holds the file"))?;
            if !main.lock_byte_shared(PRIVATE_READER_BYTE, true).map_err(locking)? {
                let _ = main.unlock();
                return Err(busy(&"a writer holds the file"));
            }
            let in_use =
                vfs.shm_in_use(shm_path).map_err(|e| Error::io(format!("checking {shm_display}"), e));
            if matches!(in_use, Ok(false)) {
                return Ok(None);
            }
            let _ = main.lock_byte_shared(PRIVATE_READER_BYTE, false);
            let _ = main.unlock();
            in_use?;
            let mapped = match vfs.open_shm_read_only(shm_path) {
                Ok(shm) => Self::join_read_only(shm, left())?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(busy(&e)),
            };
            if let Some((shm, locks)) = mapped {
                return Ok(Some(Index::Joined(shm, locks)));
            }
            if Instant::now() >= deadline {
                return Err(busy(&"the processes that have it open keep coming and going"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// [`Pager::join`] for a read-only mapping, which can neither become
    /// the first opener nor rebuild the index: `None` when the processes
    /// left meanwhile (the file was removed, or no other handle holds DMS),
    /// for the caller to decide again; `Busy` when a first opener keeps DMS
    /// past the timeout.
    fn join_read_only(
        shm: Arc<dyn ShmFile>,
        timeout: Duration,
    ) -> Result<Option<(Arc<dyn ShmFile>, LockTable)>> {
        let io = |e: io::Error| Error::io("joining a shared index read-only", e);
        let locks = LockTable::default();
        let joined = shm::retry(timeout, 50, || {
            if !shm.is_current().map_err(io)? {
                return Ok(Some(false));
            }
            if !locks.shared(&*shm, LOCK_DMS).map_err(io)? {
                return Ok(None); // a first opener is setting the index up
            }
            // Still the database's index, still held by a handle joined to
            // it (not merely by another open deciding, as this one is), and
            // sized by its first opener (one that died before could not).
            let usable = shm.is_current().map_err(io)?
                && shm.others_hold(LOCK_VETTED).map_err(io)? == Some(true)
                && shm.map(shm::FRAMES_AT, false).is_ok();
            if !usable {
                locks.unlock_shared(&*shm, LOCK_DMS);
                return Ok(Some(false));
            }
            // Joined: it vouches for the index as they do (a writer opening
            // after they all close is a later opener beside it).
            if !locks.shared(&*shm, LOCK_VETTED).map_err(io)? {
                locks.unlock_shared(&*shm, LOCK_DMS);
                return Ok(None);
            }
            Ok(Some(true))
        })?;
        match joined {
            Some(true) => Ok(Some((shm, locks))),
            Some(false) => Ok(None),
            None => Err(Error::Busy("another process keeps opening the database".into())),
        }
    }

    /// Joins the processes that have the database open (the DMS lock,
    /// shared), or becomes the first of them (exclusive). Returns the shared
    /// index (reopened if a last closer removed the file meanwhile), its
    /// lock table, and whether this handle is the first.
    fn join(
        vfs: &Arc<dyn Vfs>,
        shm_path: &Path,
        mut shm: Arc<dyn ShmFile>,
        timeout: Duration,
    ) -> Result<(Arc<dyn ShmFile>, LockTable, bool)> {
        let display = shm_path.display().to_string();
        let io = |e: io::Error| Error::io(format!("opening {display}"), e);
        let mut locks = LockTable::default();
        let mut unvetted = false;
        let first = shm::retry(timeout, 50, || {
            if !shm.is_current().map_err(io)? {
                shm = vfs.open_shm(shm_path).map_err(io)?;
                locks = LockTable::default();
            }
            unvetted = false; // (the Busy message tells of the last try)
            let first = if locks.exclusive(&*shm, LOCK_DMS).map_err(io)? {
                true
            } else if locks.shared(&*shm, LOCK_DMS).map_err(io)? {
                // A later opener only beside a handle joined to a set-up
                // index: one that holds DMS without vouching for it (a
                // read-only mapping deciding whether to join) soon lets it
                // go, and this open becomes the first. Whether or not it is
                // still there: it may have gone between the two tries.
                unvetted = shm.others_hold(LOCK_VETTED).map_err(io)? == Some(false);
                if unvetted {
                    locks.unlock_shared(&*shm, LOCK_DMS);
                    return Ok(None);
                }
                false
            } else {
                return Ok(None);
            };
            if shm.is_current().map_err(io)? {
                if !first && !locks.shared(&*shm, LOCK_VETTED).map_err(io)? {
                    locks.unlock_shared(&*shm, LOCK_DMS);
                    return Ok(None);
                }
                return Ok(Some(first));
            }
            // A last closer removed the file after we opened it.
            if first {
                locks.unlock_exclusive(&*shm, LOCK_DMS);
            } else {
                locks.unlock_shared(&*shm, LOCK_DMS);
            }
            Ok(None)
        })?
        .ok_or_else(|| {
            Error::Busy(if unvetted {
                format!(
                    "{display} is held by a process that has not finished opening the database (or by an \
                     older obj build, which cannot share it with this one)"
                )
            } else {
                format!("{display}: another process keeps opening or closing the database")
            })
        })?;
        Ok((shm, locks, first))
    }

    /// Opens the database with its index `shm`: joined already
    /// ([`Index::Joined`], a read-only mapping) or to join now.
    fn open_with_index(
        vfs: Arc<dyn Vfs>,
        path: &Path,
        main: Arc<dyn StorageFile>,
        shm: Index,
        sharing: Sharing,
        mut new_files: NewFiles,
        options: &Options,
    ) -> Result<Arc<Pager>> {
        let display = path.display().to_string();
        let shm_path = shm_path_of(path);
        let (shm, locks, first) = match shm {
            Index::ToJoin(shm) => Self::join(&vfs, &shm_path, shm, options.busy_timeout)?,
            Index::Joined(shm, locks) => (shm, locks, false),
        };
        // A rekey or a restore renames another file into place while it
        // holds the shared index, which this open then waited for: the file
        // it opened before is no longer the database's. While this open
        // holds the DMS lock the path keeps its file, so open it again.
        let main = if sharing == Sharing::Shared
            && !main.is_at(path).map_err(|e| Error::io(format!("checking {display}"), e))?
        {
            new_files.main = Creation::Found;
            if !vfs.exists(path).map_err(|e| Error::io(format!("checking {display}"), e))? {
                return Err(Error::not_found(format!(
                    "database file {display} was removed while being opened"
                )));
            }
            open_main(&*vfs, path, options)?
        } else {
            main
        };
        let index = WalIndex::new(shm, locks);
        // Declared after `index`, so it drops first, while this opener
        // still holds the DMS lock exclusively.
        let mut created = CreatedSidecars::new(vfs.clone(), first);
        if new_files.shm {
            created.add(&shm_path);
        }
        // After `created`: an open refused here removes the `-shm` it made.
        if sharing == Sharing::Shared {
            check_no_other_name(&*main, &display, first, options.busy_timeout)?;
        }
        // A read-only handle with a private index marks the main file
        // before it checks that no process holds the shared index; this
        // handle holds it now, so one of the two sees the other. (The
        // lock on the whole file tells only a first opener, and a
        // read-only open joining for a moment can make a writer a later
        // one.)
        // Waited for, as every lock is: a read-only open still deciding,
        // or a process being forked, holds it for a moment.
        let no_private_reader = || {
            let held = main.byte_locked_by_others(PRIVATE_READER_BYTE);
            Ok((!held.map_err(|e| Error::io(format!("locking {display}"), e))?).then_some(()))
        };
        if !options.read_only && shm::retry(options.busy_timeout, 50, no_private_reader)?.is_none() {
            return Err(Error::Busy(format!(
                "{display} is open read-only by a process that cannot write its -shm file (a read-only \
                 mount or directory); a writer can open it once that process has closed it"
            )));
        }
        let size = main.size().map_err(|e| Error::io(format!("reading the size of {display}"), e))?;
        let (page_size, file_id, codec) = if size == 0 {
            // A database is created with its header before it has a WAL:
            // a log beside an empty file is another database's, or this
            // one's with its main file lost. Refused before anything is
            // written, and not called "not an obj database yet" (whoever reads
            // that might delete the log that holds every commit).
            let wal_path = wal_path_of(path);
            if vfs.exists(&wal_path).unwrap_or(false) {
                let wal_display = wal_path.display();
                let holds = vfs
                    .open(&wal_path, OpenMode::ReadOnly)
                    .and_then(|f| holds_a_log(&*f))
                    .map_err(|e| open_failed(&wal_display.to_string(), "a WAL", e))?;
                if holds {
                    if matches!(new_files.main, Creation::InPlace) && first {
                        // This open made the empty file: leave nothing.
                        let _ = vfs.remove(path);
                    }
                    return Err(Error::corruption(
                        None,
                        format!(
                            "{display} is empty (0 bytes) but {wal_display} holds a database's log: \
                             the main file is lost or this is another database's WAL (restore the \
                             main file, or move the WAL away)"
                        ),
                    ));
                }
            }
            if options.read_only {
                // Also the message of a restore from, or an attach of, an
                // empty file: both open it read-only without being asked.
                return Err(Error::InvalidArgument(format!(
                    "{display} is empty (0 bytes): not an obj database yet, and a read-only open cannot create one"
                )));
            }
            if !first {
                return Err(Error::Busy(format!("{display} is being created by another process")));
            }
            let (image, file_id, codec) = new_page0(options)?;
            main.write_at(&image, 0).map_err(|e| Error::io(format!("creating {display}"), e))?;
            main.sync().map_err(|e| Error::io(format!("syncing {display}"), e))?;
            vfs.sync_parent_dir(path)
                .map_err(|e| Error::io(format!("syncing the directory of {display}"), e))?;
            (options.page_size, file_id, codec)
        } else {
            let mut prefix = [0u8; PLAINTEXT_PREFIX];
            if size < HEADER_LEN as u64 {
                main.read_at(&mut prefix[..size as usize], 0)
                    .map_err(|e| Error::io(format!("reading {display}"), e))?;
                if prefix[..8] == crate::storage::header::MAGIC {
                    return Err(Error::corruption(0, format!("{display} is truncated ({size} bytes)")));
                }
                return Err(Error::invalid(format!("{display} is not an obj database")));
            }
            let prefix = &mut prefix[..size.min(PLAINTEXT_PREFIX as u64) as usize];
            main.read_at(prefix, 0).map_err(|e| Error::io(format!("reading {display}"), e))?;
            let layout = Header::probe_layout(prefix).map_err(|e| match e {
                // A newer version, flag or cipher read from a page 0 that
                // fails its checksum is damage (a flipped bit), not a newer
                // file: page 0 keeps its checksum trailer in every format
                // version (docs/format.md). When the page size is damaged
                // too, page 0 is tried at every page size.
                Error::Unsupported(what) => {
                    let page_size = u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes")) as usize;
                    let verifies = if valid_page_size(page_size) {
                        page_zero_checksum_ok(&*main, page_size)
                    } else {
                        (MIN_PAGE_SIZE.trailing_zeros()..=MAX_PAGE_SIZE.trailing_zeros())
                            .any(|shift| page_zero_checksum_ok(&*main, 1 << shift))
                    };
                    if verifies {
                        Error::Unsupported(format!("{display}: {what}"))
                    } else {
                        Error::corruption(0, format!("header page checksum mismatch (it reads: {what})"))
                    }
                }
                // (Not an obj database: say which file.)
                Error::InvalidArgument(what) => Error::invalid(format!("{display}: {what}")),
                other => other,
            })?;
            let page_size = layout.page_size as usize;
            // A file this open created whole: its codec is made (a
            // passphrase is not stretched twice).
            let made = match new_files.main {
                Creation::Whole(id, codec) if id == layout.file_id => Some(Ok(codec)),
                _ => None,
            };
            let codec = made
                .unwrap_or_else(|| {
                    PageCodec::open(layout.crypt.as_ref(), options.encryption.as_ref(), layout.file_id)
                })
                .map_err(|e| match e {
                    // The flags and encryption block were read unchecked:
                    // if page 0 fails its checksum, report the damage, not a key problem.
                    Error::Encryption(_) if !page_zero_checksum_ok(&*main, page_size) => Error::corruption(
                        0,
                        "header page checksum mismatch (cannot check the encryption key)",
                    ),
                    other => other,
                })?;
            (page_size, layout.file_id, codec)
        };

        let mut wal_path = restore_replaced_wal(&*vfs, path, file_id, options.read_only)?;
        let (wal_file, wal_exists): (Arc<dyn StorageFile>, bool) = if options.read_only {
            // A WAL moved aside may have been moved back meanwhile by a
            // writable opener (it is the same file): read it at its place.
            let mut opened = open_if_there(&*vfs, &wal_path)?;
            if opened.is_none() && wal_path != wal_path_of(path) {
                wal_path = wal_path_of(path);
                opened = open_if_there(&*vfs, &wal_path)?;
            }
            let exists = opened.is_some();
            (opened.unwrap_or_else(|| Arc::new(EmptyFile)), exists)
        } else {
            let display = wal_path.display();
            let exists = vfs.exists(&wal_path).map_err(|e| Error::io(format!("checking {display}"), e))?;
            let f = vfs
                .open(&wal_path, OpenMode::ReadWriteCreate)
                .map_err(|e| open_failed(&display.to_string(), "a WAL", e))?;
            if !exists {
                created.add(&wal_path);
                vfs.sync_parent_dir(&wal_path)
                    .map_err(|e| Error::io(format!("syncing the directory of {display}"), e))?;
            }
            (f, exists)
        };
        let wal_display = wal_path.display().to_string();
        let mut wal = if first {
            // Nobody else has the database open: whatever the shared index
            // holds is stale. Rebuild it from the WAL.
            let (wal, recovered) = Wal::open(wal_file.clone(), wal_display.clone(), page_size, file_id)?;
            check_recovered(&*main, &display, &wal_display, &wal, &codec, page_size, &recovered)?;
            check_wal_matches_main(&*main, &display, &wal_display, &wal, &codec, page_size, &recovered)?;
            let h = ShmHeader {
                generation: wal.header().generation,
                salt: wal.header().salt,
                max_frame: recovered.last_commit,
                backfilled: 0,
                chain: wal.chain(),
                page_size: page_size as u32,
                epoch: 1,
                ckpt_seq: 0,
                prev_max: 0,
                file_id,
            };
            index.shm().reset().map_err(|e| Error::io(format!("resetting {}", shm_path.display()), e))?;
            index.rebuild(&h, &recovered.frames)?;
            // Vouched for before anyone else can join (see LOCK_VETTED).
            if !index.lock_shared(LOCK_VETTED)? {
                return Err(Error::Busy(format!("{}: another handle holds its locks", shm_path.display())));
            }
            index.downgrade(LOCK_DMS)?;
            wal
        } else {
            // The first opener sized the region before letting anyone in;
            // a shorter one is damaged: zeros read as an invalid header,
            // which the first transaction rebuilds.
            if index.shm().map(shm::FRAMES_AT, false).is_err() {
                index
                    .shm()
                    .map(shm::region_len(0), true)
                    .map_err(|e| Error::io("mapping the shared index", e))?; // (e names the file)
            }
            Wal::attach(wal_file.clone(), wal_display, page_size, file_id)
        };

        // "Never sync": a power cut may corrupt a database in this mode anyway.
        wal.set_sync_cuts(options.sync_mode != SyncMode::Off);
        let cache_pages = options.cache_size / page_size;
        let pager = Arc::new(Pager {
            vfs,
            path: path.to_path_buf(),
            wal_path,
            shm_path,
            main,
            wal_file: RwLock::new(wal_file),
            wal_missing: AtomicBool::new(options.read_only && !wal_exists),
            wal: Mutex::new(wal),
            index,
            cache: PageCache::new(cache_pages),
            memo: SnapshotMemo::default(),
            page_size,
            file_id,
            usable: page_size - codec.trailer_len(),
            codec,
            sync_mode: options.sync_mode,
            read_only: options.read_only,
            sharing,
            autocheckpoint: options.wal_autocheckpoint,
            busy_timeout: options.busy_timeout,
            dirty_limit: options.dirty_page_limit(page_size),
            writer_busy: Mutex::new(WriterSlot::default()),
            writer_free: Condvar::new(),
            fatal: Mutex::new(None),
            closed: AtomicBool::new(false),
            fold_pending: AtomicBool::new(false),
            last_reader_wait: Mutex::new(None),
            pid: std::process::id(),
            forks: shm::fork_count(),
        });
        let created = created.keep();
        if let Err(e) = pager.validate(page_size, file_id) {
            // Remove what this open created, unless another process joined
            // meanwhile (then the last of them to close removes it).
            if first && !created.is_empty() && pager.index.upgrade(LOCK_DMS).unwrap_or(false) {
                for p in &created {
                    let _ = pager.vfs.remove(p);
                }
            }
            return Err(e);
        }
        Ok(pager)
    }

    /// The checks of a new handle once its shared index is up: the index
    /// belongs to this file, the main file is as long as its header says,
    /// and the newest header decodes (through the WAL if it has one).
    fn validate(self: &Arc<Self>, page_size: usize, file_id: [u8; 16]) -> Result<()> {
        let h = self.fresh_header(false)?;
        if h.page_size as usize != page_size || h.file_id != file_id {
            return Err(Error::corruption(
                None,
                format!(
                    "{} belongs to another database; close every process using it",
                    self.shm_path.display()
                ),
            ));
        }
        let size = self.main_file_size()?;
        self.check_main_length(size, h.max_frame)?;
        let snap = self.snapshot()?;
        self.check_pages_past_main(&snap)
    }

    /// With a WAL the main file may be shorter than the newest header says
    /// (pages added since the last checkpoint, or a checkpoint cut before
    /// its fsync, see `check_main_length`), but each page past its end must
    /// then be in the WAL or free (a free page may never have been written):
    /// otherwise the file was cut, and the open says so rather than a read
    /// of a missing page later.
    fn check_pages_past_main(&self, snap: &Snapshot) -> Result<()> {
        let count = snap.header().page_count;
        // (Read after the snapshot began: its frames stay in the WAL, and a
        // checkpoint meanwhile only makes the file longer.)
        let size = self.main_file_size()?;
        let first = (size / self.page_size as u64).min(count as u64) as PageNo;
        let max_frame = snap.mark().max_frame;
        let missing: Vec<PageNo> =
            (first..count).filter(|&p| self.index.find(p, max_frame).is_none()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let free = freelist::listed_pages(snap, snap.header())?;
        match missing.into_iter().find(|&p| free[p as usize / 64] & (1 << (p % 64)) == 0) {
            None => Ok(()),
            Some(p) => Err(Error::corruption(
                p,
                format!(
                    "{} is truncated: {size} bytes, and page {p} of the {count} its header records is \
                     not in the WAL either",
                    self.path.display()
                ),
            )),
        }
    }

    /// A main file shorter than its own header says has lost pages: refuse
    /// to open rather than report missing pages later.
    fn check_main_length(&self, size: u64, max_frame: u64) -> Result<()> {
        let wal_has_page0 = max_frame > 0 && self.index.find(0, max_frame).is_some();
        let mut page = Page::zeroed(self.page_size);
        if size < self.page_size as u64 {
            if wal_has_page0 {
                return Ok(());
            }
            return Err(Error::corruption(0, format!("{} is truncated ({size} bytes)", self.path.display())));
        }
        self.main
            .read_at(&mut page, 0)
            .map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?;
        if let Err(e) = self.codec.open_page(0, &mut page) {
            // A checkpoint may have torn page 0; the WAL still holds it.
            if wal_has_page0 {
                return Ok(());
            }
            // Its own words: a checksum mismatch, or (encrypted) a page
            // that fails authentication.
            return Err(e);
        }
        let header = Header::decode(&page).map_err(|e| match e {
            // (A feature this build lacks: say which file.)
            Error::Unsupported(what) => Error::Unsupported(format!("{}: {what}", self.path.display())),
            other => other,
        })?;
        let need = header.page_count as u64 * self.page_size as u64;
        // A checkpoint interrupted before its fsync may have left a newer
        // page 0 without the pages that extend the file; the WAL holds them
        // all (it is restarted only after the fsync), so recovery replays
        // them and the next checkpoint extends the file.
        if size < need && !wal_has_page0 {
            return Err(Error::corruption(
                None,
                format!(
                    "{} is truncated: {size} bytes but the header records {} pages of {} bytes",
                    self.path.display(),
                    header.page_count,
                    self.page_size
                ),
            ));
        }
        Ok(())
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Values derived from the newest committed state (see [`SnapshotMemo`]).
    pub fn memo(&self) -> &SnapshotMemo {
        &self.memo
    }

    /// Whether the database was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True in a child process after fork(): this pager is its parent's.
    pub(crate) fn forked(&self) -> bool {
        shm::fork_count() != self.forks
    }

    pub(crate) fn fork_error(&self) -> Error {
        Error::InvalidArgument(format!(
            "database handle used after fork(): {} was opened by process {}; a child process must \
             open the database itself",
            self.path.display(),
            self.pid
        ))
    }

    fn check_usable(&self) -> Result<()> {
        self.check_alive()?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("the database is closed".into()));
        }
        Ok(())
    }

    /// False once closed, after a failure that makes the handle unusable
    /// (a failed fsync, a failed rekey), and in a child process after
    /// fork(): a new open of the file must not share this pager.
    pub(crate) fn is_usable(&self) -> bool {
        self.check_usable().is_ok()
    }

    /// `InvalidArgument` in a child process after fork(): the handle (and
    /// every transaction begun on it) is its parent's.
    pub(crate) fn check_process(&self) -> Result<()> {
        if self.forked() {
            return Err(self.fork_error());
        }
        Ok(())
    }

    /// Like [`Pager::check_usable`] but open to a write transaction that
    /// began before [`Pager::close`]: it may still commit.
    fn check_alive(&self) -> Result<()> {
        self.check_process()?;
        if let Some(why) = self.fatal.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Err(Error::Closed(format!("{why}; reopen the database to recover")));
        }
        Ok(())
    }

    fn set_fatal(&self, why: String) {
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(why);
        }
    }

    /// A consistent shared header, with the private page map brought up to
    /// it. A header that stays torn (its writer died in the middle of an
    /// update) or is invalid is rebuilt from the WAL.
    fn fresh_header(&self, holding_writer: bool) -> Result<ShmHeader> {
        let started = Instant::now();
        let mut torn = 0u32;
        loop {
            match self.index.header() {
                Ok(h) => match self.index.refresh(&h, || self.cache.clear())? {
                    Refresh::Current | Refresh::Rebuilt => return Ok(h),
                    Refresh::Retry => {}
                },
                Err(HeaderState::Torn) if torn < 100 => torn += 1,
                Err(_) => {
                    self.recover_index(holding_writer)?;
                    torn = 0;
                }
            }
            if started.elapsed() > self.busy_timeout.max(Duration::from_secs(1)) {
                return Err(Error::Busy(format!(
                    "the shared index of {} keeps changing",
                    self.path.display()
                )));
            }
            if torn < 10 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }

    /// Rebuilds the shared index from the WAL, with every lock held (so no
    /// reader or writer exists in any process), unless another handle fixed
    /// it meanwhile.
    fn recover_index(&self, holding_writer: bool) -> Result<()> {
        let mut wanted = vec![LOCK_CKPT, LOCK_RECOVER];
        if !holding_writer {
            wanted.insert(0, LOCK_WRITE);
        }
        wanted.extend((0..READ_SLOTS).map(lock_read));
        let held = shm::retry(self.busy_timeout, 20, || {
            // A live writer that was only slow finishes its update.
            if self.index.header().is_ok() {
                return Ok(Some(false));
            }
            for (n, &l) in wanted.iter().enumerate() {
                if !self.index.lock_exclusive(l)? {
                    for &m in &wanted[..n] {
                        self.index.unlock_exclusive(m);
                    }
                    return Ok(None);
                }
            }
            Ok(Some(true))
        })?;
        match held {
            Some(true) => {}
            Some(false) => return Ok(()),
            None => {
                return Err(Error::Busy(format!(
                    "the shared index of {} needs rebuilding, but other transactions stay active",
                    self.path.display()
                )))
            }
        }
        let result = (|| {
            if self.index.header().is_ok() {
                return Ok(());
            }
            self.wal_reader()?;
            let epoch = shm::raw_epoch(self.index.shm()).wrapping_add(1).max(2);
            let mut wal = self.wal();
            let recovered = wal.reload()?;
            check_recovered(
                &*self.main,
                &self.path.display().to_string(),
                &self.wal_path.display().to_string(),
                &wal,
                &self.codec,
                self.page_size,
                &recovered,
            )?;
            let h = ShmHeader {
                generation: wal.header().generation,
                salt: wal.header().salt,
                max_frame: recovered.last_commit,
                backfilled: 0,
                chain: wal.chain(),
                page_size: self.page_size as u32,
                epoch,
                ckpt_seq: 0,
                prev_max: 0,
                file_id: self.file_id,
            };
            self.index.rebuild(&h, &recovered.frames)?;
            self.cache.clear();
            Ok(())
        })();
        for &l in &wanted {
            self.index.unlock_exclusive(l);
        }
        result
    }

    /// The WAL file for reads, opening it if this read-only handle began
    /// before another process created it.
    fn wal_reader(&self) -> Result<Arc<dyn StorageFile>> {
        if self.wal_missing.load(Ordering::Acquire) {
            if let Some(f) = open_if_there(&*self.vfs, &self.wal_path)? {
                *self.wal_file.write().unwrap_or_else(|p| p.into_inner()) = f.clone();
                self.wal().set_file(f);
                self.wal_missing.store(false, Ordering::Release);
            }
        }
        Ok(self.wal_file.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// A registered read snapshot of the last commit (of any process).
    pub fn snapshot(self: &Arc<Self>) -> Result<Snapshot> {
        self.check_usable()?;
        let mark = shm::retry(self.busy_timeout, 1000, || {
            let h = self.fresh_header(false)?;
            self.index.try_begin_read(&h)
        })?
        .ok_or_else(|| Error::Busy(format!("could not begin a read of {}", self.path.display())))?;
        Snapshot::new(self.clone(), mark)
    }

    /// The newest state, for the writer (which needs no read mark). The
    /// caller holds the writer slot.
    pub fn writer_snapshot(self: &Arc<Self>) -> Result<Snapshot> {
        let h = self.fresh_header(true)?;
        let mark = ReadMark {
            generation: h.generation,
            max_frame: h.max_frame,
            backfilled: h.backfilled,
            slot: None,
        };
        Snapshot::new(self.clone(), mark)
    }

    /// Takes the writer slot, waiting up to the busy timeout.
    pub fn lock_writer(self: &Arc<Self>) -> Result<WriterGuard> {
        self.lock_writer_unless(self.busy_timeout, &AtomicBool::new(false))
    }

    /// Takes the writer slot, waiting up to `timeout`: first among this
    /// process's threads, then the writer lock among processes; a wait
    /// gives up with `Closed` once `interrupted` is set (see
    /// `Db::interrupt`, which wakes the waits).
    pub(crate) fn lock_writer_unless(
        self: &Arc<Self>,
        timeout: Duration,
        interrupted: &AtomicBool,
    ) -> Result<WriterGuard> {
        let gave_up = || {
            interrupted.load(Ordering::Acquire).then(|| {
                Error::Closed(format!(
                    "{}: the handle was closed while this call waited for the write lock",
                    self.path.display()
                ))
            })
        };
        self.check_usable()?;
        if self.read_only {
            return Err(Error::invalid("the database is open read-only"));
        }
        let deadline = shm::deadline_after(timeout);
        let mut slot = self.writer_busy.lock().unwrap_or_else(|p| p.into_inner());
        while slot.busy {
            if let Some(e) = gave_up() {
                return Err(e);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Busy(format!(
                    "{}: another write transaction is active (waited {} ms)",
                    self.path.display(),
                    timeout.as_millis()
                )));
            }
            slot.waiting += 1;
            slot = self.writer_free.wait_timeout(slot, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
            slot.waiting -= 1;
        }
        slot.busy = true;
        drop(slot);
        let mut guard = WriterGuard { pager: self.clone(), os_locked: false };
        let remaining = deadline.saturating_duration_since(Instant::now());
        // The interrupt is looked at only once the lock is found taken: a
        // call that does not have to wait (an import's next batch after a
        // close on another thread) goes on, as calls in progress do.
        let got = shm::retry(remaining, 1, || {
            if self.index.lock_exclusive(LOCK_WRITE)? {
                return Ok(Some(()));
            }
            gave_up().map_or(Ok(None), Err)
        })?;
        if got.is_none() {
            return Err(Error::Busy(format!(
                "{}: another handle on the file, in this process or another, has a write transaction active \
                 (waited {} ms)",
                self.path.display(),
                timeout.as_millis()
            )));
        }
        guard.os_locked = true;
        self.adopt_shared_wal()?;
        Ok(guard)
    }

    /// Lets a thread of this process that waits for the writer slot take
    /// it before this one takes it again (waiting up to 20 ms for one to
    /// do so): a job of many write transactions in a row, such as an index
    /// build, would otherwise win each race for the slot it just freed
    /// (the woken waiter has yet to be scheduled) and keep the others
    /// waiting to the end, or to their busy timeout.
    pub(crate) fn let_waiting_writers_in(&self) {
        let deadline = Instant::now() + Duration::from_millis(20);
        loop {
            let slot = self.writer_busy.lock().unwrap_or_else(|p| p.into_inner());
            if slot.waiting == 0 || slot.busy || Instant::now() >= deadline {
                return;
            }
            drop(slot);
            std::thread::yield_now();
        }
    }

    /// Wakes this process's waits for the writer slot, to look at what
    /// interrupts them (see `Db::interrupt`). The slot's lock is taken
    /// first, so that no waiter between its look and its wait misses it.
    pub(crate) fn wake_writer_waiters(&self) {
        let _slot = self.writer_busy.lock().unwrap_or_else(|p| p.into_inner());
        self.writer_free.notify_all();
    }

    fn wal(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads page `pgno` as `mark` sees it, through the cache.
    fn read_page(&self, mark: &ReadMark, pgno: PageNo) -> Result<PageRef> {
        let (key, source) = self.index.locate(pgno, mark);
        if let Some(p) = self.cache.get(key) {
            return Ok(p);
        }
        // Read straight into the shared page: one allocation, no copy.
        let mut shared = PageRef::zeroed(self.page_size);
        let page = PageRef::make_mut(&mut shared);
        let mut key = key;
        match source {
            PageSource::Frame(frame) => {
                let offset = WAL_HEADER_LEN
                    + (frame - 1) * (FRAME_HEADER_LEN + self.page_size) as u64
                    + FRAME_HEADER_LEN as u64;
                let read = self
                    .wal_reader()?
                    .read_at(page, offset)
                    .map_err(|e| Error::io(format!("reading frame {frame} (page {pgno}) of the WAL"), e))
                    .and_then(|()| self.codec.open_page(pgno, page));
                // The WAL may restart under a snapshot that the main file
                // holds entirely (see `WalIndex::lock_readers_for_restart`);
                // a restart is published before any frame is overwritten,
                // so a generation unchanged after the read vouches for it.
                let now = self.index.current_generation();
                if now != mark.generation {
                    let base = self.index.base_key(pgno, now);
                    if let Some(p) = base.and_then(|k| self.cache.get(k)) {
                        return Ok(p);
                    }
                    self.read_main(pgno, page)?;
                    self.codec.open_page(pgno, page)?;
                    match base {
                        Some(k) => key = k,
                        None => return Ok(shared),
                    }
                } else {
                    read?;
                }
            }
            PageSource::Main => {
                self.read_main(pgno, page)?;
                self.codec.open_page(pgno, page)?;
            }
        }
        self.cache.insert(key, shared.clone());
        Ok(shared)
    }

    fn read_main(&self, pgno: PageNo, page: &mut [u8]) -> Result<()> {
        self.main.read_at(page, pgno as u64 * self.page_size as u64).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corruption(pgno, "page lies beyond the end of the file (truncated file)")
            } else {
                Error::io(format!("reading page {pgno} of {}", self.path.display()), e)
            }
        })
    }

    /// Appends one transaction's pages (page 0 with the new header among
    /// them) to the WAL, syncs per the sync mode, and publishes them. The
    /// caller holds the writer slot. Runs an automatic checkpoint first when
    /// the WAL has grown past the threshold.
    ///
    /// `spill`: the pages this transaction already wrote to the WAL (see
    /// `Pager::spill`); they are published with the commit, or forgotten
    /// if it fails before its commit frame is written.
    pub fn commit(
        &self,
        guard: &WriterGuard,
        pages: Vec<(PageNo, PageRef)>,
        header: &Header,
        mut spill: Option<Spill>,
        base: (ReadMark, PageNo),
    ) -> Result<()> {
        let result = self.commit_frames(guard, pages, header, &mut spill, base);
        if let Some(spill) = spill {
            self.abandon_spill(spill);
        }
        result
    }

    /// [`Pager::commit`]; takes `spill` once the commit frame is appended.
    fn commit_frames(
        &self,
        guard: &WriterGuard,
        mut pages: Vec<(PageNo, PageRef)>,
        header: &Header,
        spill: &mut Option<Spill>,
        (base, in_base): (ReadMark, PageNo),
    ) -> Result<()> {
        debug_assert!(std::ptr::eq(&*guard.pager, self));
        self.check_alive()?;
        if pages.is_empty() {
            debug_assert!(spill.is_none(), "a spilled transaction commits page 0");
            return Ok(());
        }
        self.checkpoint_if_due()?;
        let mut h = self.fresh_header(true)?;
        let mut wal = self.wal();
        match spill {
            // The spilled frames are this generation's: no restart now.
            Some(s) => s.check_position(&wal)?,
            None => self.restart_wal_if_backfilled(&mut wal, &mut h, false)?,
        }
        // Page 0 names the generation it goes into; then seal (plain) or
        // encrypt (in the WAL's buffer: the plaintext pages go to the cache).
        if let Some((_, page0)) = pages.iter_mut().find(|(pgno, _)| *pgno == 0) {
            stamp_wal_position(&mut PageRef::make_mut(page0)[..], wal.header().salt, wal.durable_frames());
        }
        self.codec.seal_pages(&mut pages);
        let appended = wal.append_sealing(&frame_writes(&pages), Some(header.page_count), |images| {
            self.codec.encrypt_images(images)
        })?;
        // From here on the spilled frames belong to this commit.
        let (first, mut pgnos) = match spill.take() {
            Some(s) => (s.first, s.pgnos),
            None => (appended, Vec::with_capacity(pages.len())),
        };
        if self.sync_mode == SyncMode::Full {
            if let Err(e) = wal.sync() {
                self.set_fatal(format!("fsync of the WAL failed: {e}"));
                return Err(e);
            }
        }
        pgnos.extend(pages.iter().map(|(pgno, _)| *pgno));
        h.max_frame = first + pgnos.len() as u64 - 1;
        h.chain = wal.chain();
        if let Err(e) = self.index.publish(first, &pgnos, &h) {
            // Written (and maybe durable) but not published: the next writer
            // would append over it. The outcome is unknown, as after a
            // failed fsync, and the cache may hold its spilled pages under
            // frame numbers another process can now reuse.
            self.set_fatal(format!("publishing a commit in the shared index failed: {e}"));
            return Err(e);
        }
        // With no snapshot of this handle open, nothing reads the versions
        // this commit replaces any more: they make room for its own, which
        // would otherwise push out pages that are still read. (Snapshots
        // begun from here on see the new versions; one open now may want
        // the old ones, and they stay until the cache's clock drops them.)
        // Their keys are looked up now, after any restart above renamed
        // them: the base's mark then names the new generation's main file.
        if self.index.reader_count() == 0 {
            for &(pgno, _) in pages.iter().filter(|(pgno, _)| *pgno < in_base) {
                self.cache.remove(self.index.locate(pgno, &base).0);
            }
        }
        for (i, (_, page)) in pages.into_iter().enumerate() {
            self.cache.insert((h.generation, appended + i as u64), page);
        }
        drop(wal);
        Ok(())
    }

    /// The automatic checkpoint, run before a commit appends its frames
    /// and before a transaction's first spill (see [`Pager::spill`]).
    fn checkpoint_if_due(&self) -> Result<()> {
        // Checkpoint before appending rather than after: readers active now
        // mostly began after the last commit, so the checkpoint can complete
        // and the WAL restart, which keeps it bounded under a steady stream
        // of overlapping readers. Once the WAL is past the threshold (readers
        // kept it from restarting), checkpoint again when a quarter of the
        // threshold awaits copying, or as soon as every reader holding a WAL
        // slot reads up to the last frame (then it completes and the WAL
        // restarts): not after every commit, which would cost two fsyncs for
        // a handful of frames. Waiting for no reader at all instead fell
        // into step with readers refreshed at a steady pace: each checkpoint
        // stopped a commit or more short of the last frame, and the WAL
        // never restarted.
        if self.autocheckpoint > 0 {
            let mut h = self.fresh_header(true)?;
            let pending = h.max_frame - h.backfilled;
            let due = h.max_frame >= self.autocheckpoint
                && (pending >= self.autocheckpoint.div_ceil(4)
                    || (pending > 0 && self.index.wal_readers_at(h.max_frame)?));
            if due {
                // A failed checkpoint is not this commit's (or spill's)
                // failure (a fatal one still poisons the handle and is
                // caught just below). Not `checkpoint`: that one cuts the
                // file back to its header, and a WAL that regrows makes
                // every later commit's fdatasync write the file's new
                // length too. The restart that follows in the caller
                // (`restart_wal_if_backfilled`) starts the next generation
                // over the old frames.
                let _ = self.checkpoint_unguarded();
                self.check_alive()?;
                h = self.fresh_header(true)?;
            }
            self.bound_wal(&h)?;
        }
        Ok(())
    }

    /// Writes `pages` of the running write transaction (the caller's, which
    /// holds the writer slot) to the WAL ahead of its commit, because the
    /// transaction has changed more pages than it may keep in memory. The
    /// frames carry no commit marker, so recovery and readers ignore them
    /// until the commit's frames follow them; [`Pager::read_spilled`] reads
    /// them back meanwhile, through the cache. The first spill of a
    /// transaction starts `spill` (checkpointing when due and restarting the
    /// WAL first when it can, as a commit would). Returns the frame of the
    /// first page.
    pub(crate) fn spill(&self, spill: &mut Option<Spill>, pages: &mut [(PageNo, PageRef)]) -> Result<u64> {
        self.check_alive()?;
        if self.read_only {
            return Err(Error::invalid("the database is open read-only"));
        }
        if spill.is_none() {
            // As a commit does: otherwise, when every transaction spills,
            // the last commit's frames are never copied before the next
            // transaction's first spill, the WAL never restarts, and it
            // grows with the database.
            self.checkpoint_if_due()?;
        }
        self.codec.seal_pages(pages);
        let mut wal = self.wal();
        let s = match spill {
            Some(s) => {
                s.check_position(&wal)?;
                s
            }
            None => {
                let mut h = self.fresh_header(true)?;
                self.restart_wal_if_backfilled(&mut wal, &mut h, false)?;
                let start = wal.position();
                spill.insert(Spill {
                    generation: h.generation,
                    start,
                    first: wal.frame_count() + 1,
                    pgnos: Vec::new(),
                })
            }
        };
        let first =
            wal.append_sealing(&frame_writes(pages), None, |images| self.codec.encrypt_images(images))?;
        s.pgnos.extend(pages.iter().map(|(pgno, _)| *pgno));
        for (i, (_, page)) in pages.iter().enumerate() {
            self.cache.insert((s.generation, first + i as u64), page.clone());
        }
        Ok(first)
    }

    /// Page `pgno` as its spilled `frame` holds it (see [`Pager::spill`]).
    pub(crate) fn read_spilled(&self, spill: &Spill, frame: u64, pgno: PageNo) -> Result<PageRef> {
        let key = (spill.generation, frame);
        if let Some(p) = self.cache.get(key) {
            return Ok(p);
        }
        let mut shared = PageRef::zeroed(self.page_size);
        let page = PageRef::make_mut(&mut shared);
        self.wal().read_frame(frame, page)?;
        self.codec.open_page(pgno, page)?;
        self.cache.insert(key, shared.clone());
        Ok(shared)
    }

    /// Forgets a rolled-back transaction's spilled frames: the next append
    /// overwrites them (their checksums no longer chain, and no commit
    /// frame ever followed them), and their cached pages go. (The next
    /// write transaction also takes its append position from the shared
    /// index, which never counted them; rewinding here keeps this handle's
    /// WAL state true meanwhile.)
    pub(crate) fn abandon_spill(&self, spill: Spill) {
        if self.forked() {
            // A child after fork() dropping its copy of the parent's
            // transaction: the WAL file is the parent's, still in use.
            return;
        }
        let mut wal = self.wal();
        if wal.header().generation == spill.generation && wal.frame_count() >= spill.start_frames() {
            wal.rewind(spill.start);
            // Best effort: a file left longer is only reused or cut later.
            let _ = wal.trim(self.wal_keep_bytes());
        }
        drop(wal);
        for i in 0..spill.pgnos.len() as u64 {
            self.cache.remove((spill.generation, spill.first + i));
        }
    }

    /// Keeps the WAL bounded under a steady stream of overlapping readers
    /// (in any process): each checkpoint stops at the oldest of them, so
    /// the WAL could never be fully copied and restart. Once it holds twice
    /// the checkpoint threshold (and at least 1000 frames), the writer
    /// (holding the writer lock, so nothing is committed meanwhile and new
    /// readers take the newest snapshot) waits briefly for the readers of
    /// older snapshots to end, then checkpoints everything; the commit that
    /// follows restarts the WAL. A reader that outlasts the wait only lets
    /// the WAL grow: the writer tries again once the WAL has doubled,
    /// waiting twice as long (up to [`READER_WAIT_MAX`]), so that
    /// overlapping readers of a few hundred milliseconds cannot keep it
    /// growing; past that, each time it has grown by the same step again.
    /// The wait follows from the WAL's size, not from this process's past
    /// waits: a writer process that began after the last one was killed
    /// waits as long as that one would have. But a process does not wait
    /// again while the one snapshot that outlasted its longest wait but one
    /// (800 ms, or one the busy timeout cut short) is still held: a long
    /// reader costs a writer at most 1.5 s of waits once, not 1.6 s at
    /// every step. `h` is the shared index's header as the commit last
    /// read it.
    fn bound_wal(&self, h: &ShmHeader) -> Result<()> {
        // Not below WAL_WAIT_FLOOR frames: with a small threshold, a wait
        // every few commits would let long readers slow the writer down.
        let limit = self.autocheckpoint.saturating_mul(2).max(WAL_WAIT_FLOOR);
        if h.max_frame < limit || h.max_frame == h.backfilled {
            return Ok(());
        }
        let oldest = self.oldest_snapshot(h)?;
        let doublings = (h.max_frame / limit).ilog2();
        // The wait at step `d` (the WAL past `limit` doubled `d` times).
        let step_wait =
            |d: u32| READER_WAIT.saturating_mul(1 << d.min(READER_WAIT_DOUBLINGS)).min(self.busy_timeout);
        // The first step whose wait is the longest but one (800 ms, or
        // one the busy timeout cuts short).
        let long = (READER_WAIT_MAX / 2).min(self.busy_timeout);
        let long_step =
            (0..READER_WAIT_DOUBLINGS).find(|&d| step_wait(d) >= long).unwrap_or(READER_WAIT_DOUBLINGS);
        if doublings > long_step && oldest.is_some_and(|o| o < limit.saturating_mul(1 << long_step)) {
            // A snapshot older than the step of that wait, held now that
            // the WAL is past it: the WAL only got past it after a wait
            // there timed out (in whichever process made it, perhaps one
            // gone since), which this reader outlasted. A long reader, as
            // below, but known to a process that did not wait for it
            // itself: it does not make each new writer process stall.
            return Ok(());
        }
        // Where the next wait comes if this one (or the skip below) leaves
        // the readers in place: the next doubling, then steps of the last.
        let next_at = if doublings < READER_WAIT_DOUBLINGS {
            limit.saturating_mul(2 << doublings)
        } else {
            h.max_frame.saturating_add(limit.saturating_mul(1 << READER_WAIT_DOUBLINGS))
        };
        {
            let mut last = self.last_reader_wait.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(last) = last.as_mut().filter(|l| l.generation == h.generation) {
                if h.max_frame < last.next_at {
                    return Ok(());
                }
                if last.waited >= long && oldest == Some(last.oldest) {
                    // The snapshot that outlasted the last wait, the
                    // longest but one, is still held: a long reader, which
                    // each further wait would only make the writer stall
                    // for. (The waits are for overlapping readers of less
                    // than that, whose oldest snapshot moves on.) The WAL
                    // grows until it ends; its next restart comes as soon
                    // as it has.
                    last.next_at = next_at;
                    return Ok(());
                }
            }
        }
        let wait = step_wait(doublings);
        // Gone when no reader holds a snapshot older than the last frame
        // (readers of the main file alone, slot 0, count as the oldest).
        let gone = shm::retry(wait, 1, || Ok((self.oldest_snapshot(h)? == Some(h.max_frame)).then_some(())))?;
        if gone.is_some() {
            let _ = self.checkpoint_unguarded();
            self.check_alive()?;
        } else {
            let oldest = self.oldest_snapshot(h)?.unwrap_or(u64::MAX);
            *self.last_reader_wait.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(ReaderWait { generation: h.generation, next_at, waited: wait, oldest });
        }
        Ok(())
    }

    /// The oldest snapshot a reader holds, as the frame it reads up to: 0
    /// for a reader of the main file alone (slot 0: it began when the WAL
    /// was wholly copied), else the frame a checkpoint could copy up to
    /// (the last frame when no reader holds an older one); `None` when
    /// another process is checkpointing and it cannot be told.
    fn oldest_snapshot(&self, h: &ShmHeader) -> Result<Option<u64>> {
        if !self.index.lock_exclusive(LOCK_CKPT)? {
            return Ok(None);
        }
        let oldest = (|| {
            let safe = self.index.safe_frame(h)?;
            if !self.index.lock_exclusive(lock_read(0))? {
                return Ok(0);
            }
            self.index.unlock_exclusive(lock_read(0));
            Ok(safe)
        })();
        self.index.unlock_exclusive(LOCK_CKPT);
        oldest.map(Some)
    }

    /// Restarts the WAL when every frame is in the main file and no reader
    /// in any process needs it (the caller holds the writer slot and lock,
    /// and is about to append); `h` becomes the new generation's header.
    /// `cut`: empty the file whatever its size (an explicit checkpoint).
    fn restart_wal_if_backfilled(&self, wal: &mut Wal, h: &mut ShmHeader, cut: bool) -> Result<()> {
        let taken = if h.max_frame > 0 && h.max_frame == h.backfilled {
            self.index.lock_readers_for_restart(h)?
        } else {
            None
        };
        if let Some(taken) = taken {
            let old_generation = h.generation;
            let newest = self.index.newest_frames(h);
            wal.restart();
            *h = ShmHeader {
                generation: wal.header().generation,
                salt: wal.header().salt,
                max_frame: 0,
                backfilled: 0,
                chain: wal.chain(),
                prev_max: h.max_frame,
                ..*h
            };
            // Publish the new generation before touching the file: a writer
            // that dies in between leaves the next one a consistent story.
            let carry = newest.map(|newest| move |base| self.carry_cache_over(old_generation, base, &newest));
            self.index.finish_restart(h, taken, carry);
            let keep = if cut { 0 } else { self.wal_keep_bytes() };
            if let Err(e) = wal.shrink(keep) {
                self.set_fatal(format!("restarting the WAL failed: {e}"));
                return Err(e);
            }
        }
        Ok(())
    }

    /// How long a WAL file may stay when a restart (or a rolled-back
    /// spill) could cut it: four checkpoint thresholds of frames, so that
    /// steady commits reuse the file's space instead of growing it again.
    fn wal_keep_bytes(&self) -> u64 {
        // Saturating: any threshold is accepted, `u64::MAX` included.
        self.autocheckpoint
            .max(1000)
            .saturating_mul(4)
            .saturating_mul((FRAME_HEADER_LEN + self.page_size) as u64)
    }

    /// After a restart from generation `old`, the main file holds every
    /// page's newest version of `old`, and the new generation keeps the
    /// main-file tag `base` (see `WalIndex::finish_restart`): each page
    /// with frames in `old` (`newest`: the page and its newest frame) gets
    /// that frame's cached image as its main-file version, or none, instead
    /// of the image from before `old` still cached under `base`. The other
    /// cached pages keep their keys, so a restart costs the pages the
    /// generation wrote, not the size of the cache. Older frames of those
    /// pages stay cached under keys nobody asks for again; the cache's
    /// clock evicts them first.
    fn carry_cache_over(&self, old: u64, base: u64, newest: &PageMap<u64>) {
        for (&pgno, &frame) in newest {
            self.cache.rename((old, frame), main_key(base, pgno));
        }
    }

    /// Starts a transaction too large to hold in memory: its pages are
    /// streamed to the WAL as they come ([`BulkCommit::write`]) and become
    /// visible, atomically, at [`BulkCommit::commit`]. Compaction uses it to
    /// install a rewritten image of the whole database. The caller holds
    /// the writer slot for the whole bulk commit.
    pub fn begin_bulk_commit(&self, guard: &WriterGuard) -> Result<BulkCommit<'_>> {
        debug_assert!(std::ptr::eq(&*guard.pager, self));
        self.check_alive()?;
        if self.read_only {
            return Err(Error::invalid("the database is open read-only"));
        }
        let mut h = self.fresh_header(true)?;
        let mut wal = self.wal();
        self.restart_wal_if_backfilled(&mut wal, &mut h, false)?;
        let start = wal.position();
        Ok(BulkCommit {
            pager: self,
            wal,
            header: h,
            start,
            first: None,
            pgnos: Vec::new(),
            pending: Vec::new(),
            done: false,
        })
    }

    /// Copies committed frames into the main file, up to what the oldest
    /// reader in any process can see, and fsyncs it; when that completes
    /// and no reader needs the WAL, restarts it at once rather than at the
    /// next commit, so that readers from now on read the main file without
    /// looking pages up in the WAL index, and cuts the WAL file back to its
    /// header. The caller holds the writer slot.
    pub fn checkpoint(&self, guard: &WriterGuard) -> Result<CheckpointResult> {
        debug_assert!(std::ptr::eq(&*guard.pager, self));
        self.check_usable()?;
        if self.read_only {
            return Err(Error::invalid("checkpoint on a read-only database"));
        }
        self.checkpoint_and_cut()
    }

    /// [`Pager::checkpoint`] once its checks are done; the caller holds
    /// the writer slot and lock.
    fn checkpoint_and_cut(&self) -> Result<CheckpointResult> {
        let mut result = self.checkpoint_unguarded()?;
        if result.complete {
            let mut h = self.fresh_header(true)?;
            let mut wal = self.wal();
            // Cutting the file at once spares the new header's fsync.
            self.restart_wal_if_backfilled(&mut wal, &mut h, true)?;
            if h.max_frame == 0 {
                // Restarted (now or before): no reader needs a frame, and
                // the file goes back to its header, as documented. The cut
                // is fsynced, and a failed fsync must not be retried by the
                // next commit's: poison the handle, as a failed restart does.
                if let Err(e) = wal.reset_to_header() {
                    self.set_fatal(format!("cutting the WAL back failed: {e}"));
                    return Err(e);
                }
                result.wal_frames = 0;
            }
        }
        Ok(result)
    }

    /// The checkpoint itself; the caller holds the writer slot and lock.
    fn checkpoint_unguarded(&self) -> Result<CheckpointResult> {
        let mut h = self.fresh_header(true)?;
        let wal = self.wal();
        let mut result = CheckpointResult::default();
        if h.max_frame > h.backfilled && self.index.lock_exclusive(LOCK_CKPT)? {
            let copied = self.copy_frames(&wal, &mut h);
            self.index.unlock_exclusive(LOCK_CKPT);
            if let Some((frames, pages)) = copied? {
                result.frames_backfilled = frames;
                result.pages_written = pages;
            }
        }
        result.wal_frames = h.max_frame;
        result.complete = h.max_frame == h.backfilled;
        Ok(result)
    }

    /// Checks every frame a checkpoint is about to copy, before it writes
    /// any: a frame damaged since recovery read it (the medium, another
    /// program) found part way through the copy would leave the main file
    /// holding the newer images of the pages before it, page 0 among them,
    /// beside older ones, and nothing could mend that mix (the WAL's valid
    /// prefix now ends before the damage). Failing here leaves the main
    /// file as the previous checkpoint left it.
    ///
    /// Returns, for each frame, what the copy writes when this pass keeps
    /// it: the image and the decoded page, if known. A plain page in the
    /// cache is its own image (its frame is not read), and is held from
    /// here so that an eviction meanwhile cannot send the copy to a frame
    /// nobody checked. Images read here are kept up to the cache's size;
    /// the copy reads the rest again (a checkpoint larger than the cache
    /// reads those frames twice rather than hold them all).
    fn check_frames_to_copy(
        &self,
        wal: &Wal,
        generation: u64,
        copies: &[(PageNo, u64)],
    ) -> Result<Vec<Checked>> {
        let encrypted = self.codec.is_encrypted();
        let mut room = self.cache.stats().capacity.max(256);
        let mut out = Vec::with_capacity(copies.len());
        for &(pgno, frame) in copies {
            let cached = self.cache.get((generation, frame));
            if let Some(p) = cached.as_ref().filter(|_| !encrypted) {
                out.push(Some((p.clone(), cached)));
                continue;
            }
            let read = self.read_frame_to_copy(wal, pgno, frame, cached)?;
            if room == 0 {
                out.push(None);
                continue;
            }
            room -= 1;
            out.push(Some(read));
        }
        Ok(out)
    }

    /// Frame `frame` of page `pgno` as a checkpoint copies it, read from
    /// the WAL and checked: the image and the decoded page, if known (a
    /// plain image is the page; an encrypted one is copied as it is and
    /// decoded only if needed, page 0, unless `cached` has it).
    fn read_frame_to_copy(
        &self,
        wal: &Wal,
        pgno: PageNo,
        frame: u64,
        cached: Option<PageRef>,
    ) -> Result<(PageRef, Option<PageRef>)> {
        let mut image = Page::zeroed(self.page_size);
        wal.read_frame(frame, &mut image)?;
        if self.codec.is_encrypted() {
            verify_page(pgno, &image)?;
            return Ok((image.into_ref(), cached));
        }
        self.codec.open_page(pgno, &mut image)?;
        let image = image.into_ref();
        Ok((image.clone(), Some(image)))
    }

    /// The page count of the newest commit among `copies` (sorted by page
    /// number), from its page 0. Every commit writes page 0, so frames to
    /// copy always hold it; without it they come from a damaged WAL.
    fn count_to_copy(
        &self,
        wal: &Wal,
        h: &ShmHeader,
        copies: &[(PageNo, u64)],
        checked: &mut [Checked],
    ) -> Result<PageNo> {
        let Some(&(0, frame)) = copies.first() else {
            return Err(Error::corruption(
                None,
                format!(
                    "the WAL frames a checkpoint copies into {} hold no page 0, which every commit writes",
                    self.path.display()
                ),
            ));
        };
        let (image, page) = match checked[0].take() {
            Some(kept) => kept,
            None => self.read_frame_to_copy(wal, 0, frame, self.cache.get((h.generation, frame)))?,
        };
        let page0 = match &page {
            Some(p) => p.clone(),
            None => {
                let mut p = Page::from_vec(image.to_vec());
                self.codec.open_page(0, &mut p)?;
                p.into_ref()
            }
        };
        let count = Header::decode(&page0)?.page_count;
        // The copy writes what was checked (or read again here).
        checked[0] = Some((image, page));
        Ok(count)
    }

    /// Copies frames up to the safe frame under slot 0 held exclusively
    /// (no main-file-only reader may see the main file change), then
    /// publishes the new backfill point in `h`. Returns (frames, pages)
    /// copied, `None` when readers allowed nothing.
    fn copy_frames(&self, wal: &Wal, h: &mut ShmHeader) -> Result<Option<(u64, u64)>> {
        let backfilled = h.backfilled;
        let limit = self.index.safe_frame(h)?;
        if limit <= backfilled || !self.index.lock_exclusive(lock_read(0))? {
            return Ok(None);
        }
        let result = (|| {
            if self.sync_mode == SyncMode::Normal {
                // Frames must be durable before the main file is overwritten.
                if let Err(e) = wal.sync() {
                    self.set_fatal(format!("fsync of the WAL failed: {e}"));
                    return Err(e);
                }
            }
            let copies = self.index.frames_to_copy(backfilled, limit);
            let mut checked = self.check_frames_to_copy(wal, h.generation, &copies)?;
            // The page count of the newest commit copied: page 0 comes first.
            let page_count = self.count_to_copy(wal, h, &copies, &mut checked)?;
            let have = self.main_file_size()?;
            let possible = possible_pages(have / self.page_size as u64, h.max_frame, self.usable);
            if page_count as u64 > possible {
                return Err(Error::corruption(
                    0,
                    format!(
                        "the commit a checkpoint copies counts {page_count} pages, but {} ({have} bytes) and \
                         the WAL's {} frames can hold at most {possible}",
                        self.path.display(),
                        h.max_frame
                    ),
                ));
            }
            let mut written = 0u64;
            for (&(pgno, frame), kept) in copies.iter().zip(checked) {
                // A page at or past the count is not part of the database
                // (a compaction since freed it): the cut below drops it.
                if pgno >= page_count {
                    continue;
                }
                let (image, _) = match kept {
                    // What the check kept: a plain page (sealed: it is its
                    // own image) or the image the WAL holds (an encrypted
                    // one as it is: no re-encryption).
                    Some(kept) => kept,
                    // Read again, and checked again, past the check's room.
                    None => {
                        self.read_frame_to_copy(wal, pgno, frame, self.cache.get((h.generation, frame)))?
                    }
                };
                self.main.write_at(&image, pgno as u64 * self.page_size as u64).map_err(|e| {
                    Error::io(format!("checkpointing page {pgno} into {}", self.path.display()), e)
                })?;
                written += 1;
                // No cache entry changes: keys name page versions. Every
                // reader sees this frame (the copy waits for those that do
                // not), so none asks for the page's main-file key, which
                // may still hold the older image, until the WAL restarts,
                // which replaces it (`carry_cache_over`) or starts a new
                // run of keys.
            }
            // Pages allocated and freed again in one transaction were never
            // written: the file must still span every page the header counts.
            // A compaction lowers the count: the pages past it are free in
            // every snapshot a reader in any process may still hold (each
            // sees at least up to `limit`, the safe frame, and `page_count`
            // is the header of the newest commit at or before it), so the
            // file is cut there. A crash before the fsync below leaves the
            // WAL holding every page of the new state. Cache entries of
            // pages past the cut are never looked up again under their
            // keys (a page that comes back is a WAL frame first), so they
            // need no dropping.
            // (No write above reached past the count, so the length read
            // before them still tells whether the file must change.)
            let want = page_count as u64 * self.page_size as u64;
            if have != want {
                self.main.truncate(want).map_err(|e| {
                    let what = if have < want { "extending" } else { "truncating" };
                    Error::io(format!("{what} {}", self.path.display()), e)
                })?;
            }
            if self.sync_mode != SyncMode::Off {
                if let Err(e) = self.main.sync() {
                    self.set_fatal(format!("fsync of the main file failed: {e}"));
                    return Err(Error::io(format!("syncing {}", self.path.display()), e));
                }
            }
            h.backfilled = limit;
            h.ckpt_seq += 1;
            self.index.write_header(h);
            Ok(Some((limit - backfilled, written)))
        })();
        self.index.unlock_exclusive(lock_read(0));
        result
    }

    /// Closes the pager (this process's last handle on the file is
    /// closing). If this is the last process with the database open:
    /// checkpoints everything and removes the WAL and the shared index,
    /// unless a snapshot of this process is still active (then the pager's
    /// drop does it); otherwise leaves the WAL to the last process to
    /// close, looking again when the pager drops. Errors are reported but
    /// the handle is closed either way (committed data is safe in the WAL).
    pub fn close(self: &Arc<Self>) -> Result<()> {
        self.close_as(true)
    }

    /// [`Pager::close`] for the handle closing: `writes` false for a
    /// read-only handle on a pager that writable handles opened, which
    /// writes nothing, as a read-only pager's close.
    pub fn close_as(self: &Arc<Self>, writes: bool) -> Result<()> {
        if self.forked() || self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let usable = self.fatal.lock().unwrap_or_else(|p| p.into_inner()).is_none();
        if !usable {
            return Ok(());
        }
        // `lock_writer` refuses a closed pager; take the slot directly.
        let Some(guard) = self.try_writer_slot() else {
            // A write transaction begun before the close may still commit
            // (it holds the pager); the fold waits for the pager's drop,
            // after that transaction ends.
            self.fold_pending.store(writes, Ordering::Release);
            return Ok(());
        };
        let result = self.fold_if_last(writes, false);
        drop(guard);
        result
        // The locks are released when the pager drops, after the last
        // snapshot: until then this process may still read the files.
    }

    /// The last process to close folds the WAL into the main file and
    /// removes the WAL and the shared index; the caller holds this
    /// process's writer slot, or the pager is dropping (`leaving`). A close
    /// while another process has the file open folds nothing: the
    /// close-time checkpoint is the last process's, as in SQLite (the
    /// others' commits keep going to the WAL, which their own checkpoints
    /// bound). The pager's drop, after this process's last snapshot, looks
    /// again, waiting briefly for processes leaving at the same moment.
    fn fold_if_last(&self, writes: bool, leaving: bool) -> Result<()> {
        // A read-only pager writes nothing, and never waits to.
        let writes = writes && !self.read_only;
        let alone = self.index.upgrade(LOCK_DMS)? || (writes && leaving && self.alone_after_a_moment()?);
        if !alone {
            if writes && !leaving {
                self.fold_pending.store(true, Ordering::Release);
            }
            return Ok(());
        }
        let result = if !writes {
            // Nothing to fold; a shared index with no WAL beside it serves
            // nobody.
            let wal_exists = self.vfs.exists(&self.wal_path).unwrap_or(true);
            if !wal_exists && self.sharing == Sharing::Shared && self.index.reader_count() == 0 {
                self.vfs
                    .remove(&self.shm_path)
                    .map_err(|e| Error::io(format!("removing {} at close", self.shm_path.display()), e))
            } else {
                Ok(())
            }
        } else if self.index.lock_exclusive(LOCK_WRITE)? {
            let r = self.fold_and_remove_wal();
            self.index.unlock_exclusive(LOCK_WRITE);
            r
        } else {
            Ok(())
        };
        if self.index.downgrade(LOCK_DMS).is_err() {
            self.index.unlock_exclusive(LOCK_DMS);
        }
        result
    }

    /// For a leaving process that found others with the file (the pager
    /// is dropping): whether it holds the file alone within a few
    /// milliseconds. Processes leaving at the same moment each find the
    /// others still there; the one that takes LEAVE waits for them, and
    /// the others let DMS go at once, so the waiter ends up alone and
    /// folds. Holds DMS exclusively when true.
    fn alone_after_a_moment(&self) -> Result<bool> {
        if !self.index.lock_exclusive(LOCK_LEAVE)? {
            // Right away rather than with the pager's other locks: the
            // waiter's last poll may be moments from now. VETTED first (see
            // LockTable::release_all).
            self.index.unlock_shared(LOCK_VETTED);
            self.index.unlock_shared(LOCK_DMS);
            return Ok(false);
        }
        let alone = shm::retry(CLOSE_RACE_WAIT, 1, || Ok(self.index.upgrade(LOCK_DMS)?.then_some(())));
        self.index.unlock_exclusive(LOCK_LEAVE);
        Ok(alone?.is_some())
    }

    /// [`Pager::close`] for a handle that is not this process's last one
    /// on the engine: checkpoints what readers allow, as an explicit
    /// checkpoint does (obj-db 1.1.0's clean close leaves the main file
    /// self-contained), without waiting for a write transaction of this
    /// process; not when another process has the file open, whose last
    /// process to close folds it.
    pub fn checkpoint_at_close(self: &Arc<Self>) -> Result<()> {
        if self.check_usable().is_err() {
            return Ok(());
        }
        let Some(_slot) = self.try_writer_slot() else { return Ok(()) };
        if !self.is_only_handle()? {
            return Ok(()); // another process keeps the file, and its fold
        }
        self.checkpoint_if_free().map(drop)
    }

    /// The writer slot of this process if it is free now.
    fn try_writer_slot(self: &Arc<Self>) -> Option<WriterGuard> {
        let mut slot = self.writer_busy.lock().unwrap_or_else(|p| p.into_inner());
        if slot.busy {
            return None;
        }
        slot.busy = true;
        Some(WriterGuard { pager: self.clone(), os_locked: false })
    }

    /// The close-time checkpoint; the caller holds this process's writer
    /// slot. Runs as an explicit checkpoint does if the WRITE lock is free
    /// now and the shared index needs no repair (torn by a writer that
    /// died, or damaged: the repair waits for every reader, and a close
    /// does not wait; the next writer or opener repairs it). `None` when
    /// it did not run.
    fn checkpoint_if_free(&self) -> Result<Option<CheckpointResult>> {
        if self.read_only || !self.index.lock_exclusive(LOCK_WRITE)? {
            return Ok(None);
        }
        let result = if self.index.header().is_err() {
            Ok(None)
        } else {
            self.adopt_shared_wal().and_then(|()| self.checkpoint_and_cut()).map(Some)
        };
        self.index.unlock_exclusive(LOCK_WRITE);
        result
    }

    /// With the WRITE lock just taken: another process may have committed,
    /// checkpointed or restarted the WAL since this one last wrote, so the
    /// WAL appends where the shared index says it left off.
    fn adopt_shared_wal(&self) -> Result<()> {
        let h = self.fresh_header(true)?;
        self.wal().adopt(h.generation, h.salt, h.max_frame, h.chain);
        Ok(())
    }

    /// Checkpoints everything and removes the WAL and the shared index if no
    /// snapshot needs them any more; otherwise leaves that to the pager's
    /// drop, after the last snapshot is gone (or to the next opener).
    fn fold_and_remove_wal(&self) -> Result<()> {
        let result = self.checkpoint_unguarded()?;
        if result.complete && self.index.reader_count() == 0 {
            self.wal().truncate_all()?;
            self.vfs
                .remove(&self.wal_path)
                .map_err(|e| Error::io(format!("removing {} at close", self.wal_path.display()), e))?;
            if self.sharing == Sharing::Shared {
                self.vfs
                    .remove(&self.shm_path)
                    .map_err(|e| Error::io(format!("removing {} at close", self.shm_path.display()), e))?;
            }
            self.vfs.sync_parent_dir(&self.wal_path).map_err(|e| {
                Error::io(format!("syncing the directory of {} at close", self.wal_path.display()), e)
            })?;
        } else {
            self.fold_pending.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// True when the file is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.codec.is_encrypted()
    }

    /// The page codec (for ops that write copies of the file).
    pub(crate) fn codec(&self) -> &PageCodec {
        &self.codec
    }

    /// Checks that `key` is the one this file is open with (`None` for a
    /// plain file); an [`Error::Encryption`] otherwise.
    pub fn check_key(&self, key: Option<&crate::storage::crypto::EncryptionKey>) -> Result<()> {
        self.codec.check_key(key)
    }

    /// Closes like [`Pager::close`] but never folds the WAL, now or when
    /// the pager drops: the WAL and the shared index stay for the next
    /// opener, whose recovery reads them. The locks go with the pager.
    pub fn close_without_checkpoint(&self) {
        self.closed.store(true, Ordering::Release);
        self.fold_pending.store(false, Ordering::Release);
    }

    /// True once [`Pager::close`] has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// After [`Pager::close`]: releases the file lock at once
    /// and makes sure dropping the pager touches no file again (rekey has
    /// put another database at this path).
    pub(crate) fn retire(&self) {
        self.closed.store(true, Ordering::Release);
        self.fold_pending.store(false, Ordering::Release);
        if self.forked() {
            return;
        }
        self.index.release_all();
        // The exclusive lock of a file without shared memory, or the
        // shared one every handle holds (`check_no_other_name`): kept, it
        // would refuse the next open of the path as Busy.
        unlock_main(&*self.main);
    }

    /// Whether this handle is the only one with the database open, in
    /// this process or any other (asked by trying the DMS lock exclusive).
    pub(crate) fn is_only_handle(&self) -> Result<bool> {
        // A forked child's copy of the handle answers with the fork error
        // (its lock descriptors now point at /dev/null, or still share the
        // parent's locks): never "the only handle".
        self.check_alive()?;
        if self.sharing != Sharing::Shared {
            // An exclusive open (the main-file lock) or a private
            // read-only one: no other handle shares this index.
            return Ok(self.sharing == Sharing::Exclusive);
        }
        if !self.index.upgrade(LOCK_DMS)? {
            return Ok(false);
        }
        if self.index.downgrade(LOCK_DMS).is_err() {
            self.index.unlock_exclusive(LOCK_DMS);
            return Err(Error::Busy("could not keep the shared index lock".into()));
        }
        Ok(true)
    }

    /// Counters for `stat()`.
    pub fn stats(&self) -> PagerStats {
        let (max, done) = self.index.header().map_or((0, 0), |h| (h.max_frame, h.backfilled));
        PagerStats {
            page_size: self.page_size as u64,
            wal_frames: max,
            wal_backfilled: done,
            readers: self.index.reader_count() as u64,
            cache: self.cache.stats(),
        }
    }

    /// Size of the main file in bytes.
    pub fn main_file_size(&self) -> Result<u64> {
        self.main.size().map_err(|e| Error::io("reading the file size", e))
    }

    /// The file system the database lives on.
    pub fn vfs(&self) -> &Arc<dyn Vfs> {
        &self.vfs
    }

    /// Most changed pages a write transaction keeps in memory.
    pub(crate) fn dirty_limit(&self) -> usize {
        self.dirty_limit
    }
}

/// The frames to append for `pages`: the pages themselves (sealed, or
/// plaintext for [`PageCodec::encrypt_images`] to encrypt in the WAL's
/// buffer).
fn frame_writes(pages: &[(PageNo, PageRef)]) -> Vec<FrameWrite<'_>> {
    pages.iter().map(|(pgno, page)| FrameWrite { pgno: *pgno, page }).collect()
}

/// The pages a write transaction wrote to the WAL before its commit (see
/// `Pager::spill`): frames `first..` of `generation`, in order, none of
/// them a commit frame.
#[derive(Debug)]
pub struct Spill {
    generation: u64,
    /// The append position before the first of them, to rewind to when the
    /// transaction rolls back.
    start: WalPosition,
    first: u64,
    /// Page number of each frame, in frame order.
    pgnos: Vec<PageNo>,
}

impl Spill {
    /// Pages spilled.
    pub fn len(&self) -> usize {
        self.pgnos.len()
    }

    /// Whether nothing was spilled (never: a spill starts with pages).
    pub fn is_empty(&self) -> bool {
        self.pgnos.is_empty()
    }

    /// Frames appended before the first spilled one.
    fn start_frames(&self) -> u64 {
        self.first - 1
    }

    /// Only the transaction appends to the WAL while it holds the writer
    /// slot: anything else there means the frames cannot be trusted.
    fn check_position(&self, wal: &Wal) -> Result<()> {
        if wal.header().generation != self.generation
            || wal.frame_count() != self.start_frames() + self.pgnos.len() as u64
        {
            return Err(Error::corruption(
                None,
                "the WAL changed under a write transaction's spilled pages (was it written by another program?)",
            ));
        }
        Ok(())
    }
}

/// A transaction streamed to the WAL (see [`Pager::begin_bulk_commit`]).
/// Dropping it without [`BulkCommit::commit`] discards every page written:
/// none is published, and the WAL append position moves back.
pub struct BulkCommit<'a> {
    pager: &'a Pager,
    wal: MutexGuard<'a, Wal>,
    /// The shared-index header as of the start (after any WAL restart):
    /// published, with the new frames, at the commit.
    header: ShmHeader,
    start: WalPosition,
    first: Option<u64>,
    /// Page number of each frame appended so far, in frame order.
    pgnos: Vec<PageNo>,
    /// Sealed (and, for an encrypted database, encrypted) page images.
    pending: Vec<(PageNo, Page)>,
    done: bool,
}

impl std::fmt::Debug for BulkCommit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BulkCommit({} pages)", self.pgnos.len() + self.pending.len())
    }
}

impl BulkCommit<'_> {
    /// Pages buffered before they are appended (about 1 MiB).
    fn batch(&self) -> usize {
        ((1 << 20) / self.pager.page_size).max(1)
    }

    /// Adds page `pgno` (page-size bytes; the trailer is filled in here).
    /// Page 0 is written by [`BulkCommit::commit`], not here.
    pub fn write(&mut self, pgno: PageNo, page: Page) -> Result<()> {
        if pgno == 0 || page.len() != self.pager.page_size {
            return Err(Error::invalid("bulk commit: page 0 or a page of the wrong size"));
        }
        let image = self.seal(pgno, page)?;
        self.pending.push((pgno, image));
        if self.pending.len() >= self.batch() {
            self.flush(None)?;
        }
        Ok(())
    }

    /// The image of `page` as the WAL stores it: its checksum trailer set
    /// and, for an encrypted database, encrypted.
    fn seal(&self, pgno: PageNo, mut page: Page) -> Result<Page> {
        // Nothing keeps the plaintext: the pages are sealed in place.
        self.pager.codec.seal_run(pgno, &mut page, self.pager.page_size)?;
        Ok(page)
    }

    fn flush(&mut self, commit: Option<PageNo>) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let frames: Vec<FrameWrite<'_>> =
            self.pending.iter().map(|(pgno, page)| FrameWrite { pgno: *pgno, page }).collect();
        let first = self.wal.append_frames(&frames, commit)?;
        drop(frames);
        self.first.get_or_insert(first);
        self.pgnos.extend(self.pending.drain(..).map(|(pgno, _)| pgno));
        Ok(())
    }

    /// Ends the transaction with page 0 holding `header`: appends it as the
    /// commit frame, syncs per the sync mode and publishes every page.
    pub fn commit(mut self, header: &Header) -> Result<()> {
        let mut page0 = Page::zeroed(self.pager.page_size);
        header.encode(&mut page0);
        stamp_wal_position(&mut page0, self.wal.header().salt, self.wal.durable_frames());
        let image = self.seal(0, page0)?;
        self.pending.push((0, image));
        self.flush(Some(header.page_count))?;
        if self.pager.sync_mode == SyncMode::Full {
            if let Err(e) = self.wal.sync() {
                self.pager.set_fatal(format!("fsync of the WAL failed: {e}"));
                return Err(e);
            }
        }
        let first = self.first.expect("page 0 was appended");
        let mut h = self.header;
        h.max_frame = first + self.pgnos.len() as u64 - 1;
        h.chain = self.wal.chain();
        self.pager.index.publish(first, &self.pgnos, &h)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for BulkCommit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.wal.rewind(self.start);
        }
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        if self.forked() {
            // A child after fork(): the locks and files are the parent's.
            return;
        }
        // Closed while snapshots were still open: they are all gone now.
        let usable = self.fatal.lock().unwrap_or_else(|p| p.into_inner()).is_none();
        if usable && self.fold_pending.swap(false, Ordering::AcqRel) {
            let _ = self.fold_if_last(true, true);
        }
        self.index.release_all();
        if matches!(self.sharing, Sharing::Exclusive | Sharing::PrivateReadOnly) {
            unlock_main(&*self.main);
        }
    }
}

/// A consistent read view: the header and pages as of one commit.
pub struct Snapshot {
    pager: Arc<Pager>,
    mark: ReadMark,
    header: Header,
    /// Interior B+tree pages this snapshot has read (see [`Pinned`]).
    pinned: OnceLock<Pinned>,
    /// Interior pages read through the pager so far (counted until pinning starts).
    reads: AtomicU32,
    /// Set when the transaction that owns this snapshot ends: a thread
    /// that shares it (`query::split`) stops rather than keep it alive.
    released: AtomicBool,
}

/// Interior pages a snapshot reads through the pager before it starts
/// pinning them: a transaction of a few lookups does not pay for the table.
const PIN_AFTER: u32 = 32;

/// Bytes of interior pages one snapshot keeps for itself.
const PINNED_BYTES: usize = 1 << 20;

/// Interior B+tree pages a snapshot keeps so that descending the top of a
/// tree again takes neither the WAL index's lock nor the cache's: every
/// lookup passes through the same few interior pages, and a snapshot's
/// version of a page never changes, so no entry can go stale. Direct-mapped
/// by page number, and write-once (a slot keeps the first page put there:
/// the upper levels are read first), so a hit is a load and a compare.
/// Allocated at the first interior page read after [`PIN_AFTER`] of them; pages are only kept
/// after the pager's read verified them. Holds at most [`PINNED_BYTES`] of
/// pages, most of which the shared cache holds anyway.
struct Pinned {
    slots: Box<[OnceLock<(PageNo, PageRef)>]>,
}

impl Pinned {
    fn new(page_size: usize) -> Pinned {
        let n = (PINNED_BYTES / page_size).max(16);
        Pinned { slots: (0..n).map(|_| OnceLock::new()).collect() }
    }

    fn slot(&self, pgno: PageNo) -> &OnceLock<(PageNo, PageRef)> {
        &self.slots[pgno as usize % self.slots.len()]
    }

    fn get(&self, pgno: PageNo) -> Option<&PageRef> {
        match self.slot(pgno).get() {
            Some((p, page)) if *p == pgno => Some(page),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({:?})", self.mark)
    }
}

impl Snapshot {
    fn new(pager: Arc<Pager>, mark: ReadMark) -> Result<Snapshot> {
        // Build the value first so that Drop releases the mark on error.
        let mut snap = Snapshot {
            pager,
            mark,
            header: Header::new(0, 0, [0; 16]),
            pinned: OnceLock::new(),
            reads: AtomicU32::new(0),
            released: AtomicBool::new(false),
        };
        let page0 = snap.pager.read_page(&mark, 0)?;
        snap.header = Header::decode(&page0)?;
        if snap.header.page_size as usize != snap.pager.page_size {
            return Err(Error::corruption(0, "page size in the header changed"));
        }
        if snap.header.is_encrypted() != snap.pager.codec.is_encrypted() {
            return Err(Error::corruption(0, "the encryption flag in the header changed"));
        }
        Ok(snap)
    }

    /// The header as of this snapshot.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Which WAL frames this snapshot sees.
    pub fn mark(&self) -> ReadMark {
        self.mark
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> usize {
        self.pager.page_size
    }

    /// The pager this snapshot reads from.
    pub(crate) fn pager(&self) -> &Arc<Pager> {
        &self.pager
    }

    /// Marks the owning transaction ended (see `released`).
    pub(crate) fn release(&self) {
        self.released.store(true, Ordering::Relaxed);
    }

    /// Whether the owning transaction has ended.
    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::Relaxed)
    }

    /// Whether this snapshot has read enough interior pages to keep them.
    fn pin_now(&self) -> bool {
        self.pinned.get().is_some() || self.reads.fetch_add(1, Ordering::Relaxed) >= PIN_AFTER
    }

    /// Interior pages pinned so far (for tests).
    #[cfg(test)]
    fn pinned_count(&self) -> usize {
        self.pinned.get().map_or(0, |p| p.slots.iter().filter(|s| s.get().is_some()).count())
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if !self.pager.forked() {
            self.pager.index.end_read(&self.mark);
        }
    }
}

impl PageRead for Snapshot {
    fn usable_size(&self) -> usize {
        self.pager.usable
    }

    fn lent_page(&self, pgno: PageNo) -> Option<&[u8]> {
        // Pinned pages were checked when first read; a forked child gets
        // nothing lent and meets the refusal in read_page.
        if pgno >= self.header.page_count || self.pager.forked() {
            return None;
        }
        self.pinned.get().and_then(|p| p.get(pgno)).map(|page| &page[..])
    }

    fn read_page(&self, pgno: PageNo) -> Result<PageRef> {
        if pgno >= self.header.page_count {
            return Err(Error::corruption(
                pgno,
                format!("page number beyond the end of the database ({} pages)", self.header.page_count),
            ));
        }
        // A transaction begun before fork() reads its parent's files and
        // locks: in the child it answers with the handle's error.
        if self.pager.forked() {
            return Err(self.pager.fork_error());
        }
        if let Some(page) = self.pinned.get().and_then(|p| p.get(pgno)) {
            return Ok(page.clone());
        }
        let page = self.pager.read_page(&self.mark, pgno)?;
        if page.first() == Some(&KIND_BTREE_INTERIOR) && self.pin_now() {
            let pinned = self.pinned.get_or_init(|| Pinned::new(self.pager.page_size));
            let _ = pinned.slot(pgno).set((pgno, page.clone()));
        }
        Ok(page)
    }
}

/// The WAL at `path` opened read-only, `None` when there is none.
fn open_if_there(vfs: &dyn Vfs, path: &Path) -> Result<Option<Arc<dyn StorageFile>>> {
    match vfs.open(path, OpenMode::ReadOnly) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(open_failed(&path.display().to_string(), "a WAL", e)),
    }
}

/// An error opening `display`, which should be `what`: a path the file
/// system refuses as not a regular file (a directory, a FIFO, a device) is
/// the caller's mistake (`InvalidArgument`, "not an obj database" for the
/// main file), not a failed I/O. Also the copies' (`ops::newfile`) for
/// their targets.
pub(crate) fn open_failed(display: &str, what: &str, e: io::Error) -> Error {
    if is_not_a_file(&e) {
        Error::invalid(format!("{display} is not {what}: it {e}"))
    } else {
        Error::io(format!("opening {display}"), e)
    }
}

/// Whether page 0 of the main file passes its CRC check (a file shorter
/// than a page does not).
fn page_zero_checksum_ok(main: &dyn StorageFile, page_size: usize) -> bool {
    let mut page = vec![0u8; page_size];
    main.read_at(&mut page, 0).is_ok() && verify_page(0, &page).is_ok()
}

/// Stands in for a WAL that does not exist on a read-only open.
#[derive(Debug)]
struct EmptyFile;

impl StorageFile for EmptyFile {
    fn read_at(&self, _buf: &mut [u8], _offset: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> std::io::Result<()> {
        Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only database"))
    }
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn truncate(&self, _len: u64) -> std::io::Result<()> {
        Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only database"))
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(0)
    }
    fn try_lock_exclusive(&self) -> std::io::Result<bool> {
        Ok(true)
    }
    fn unlock(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Db, ReadableTxn};

    /// A 100-byte value, so that the tree is three levels deep.
    fn val(i: u32) -> Vec<u8> {
        format!("{i:0100}").into_bytes()
    }

    fn key(i: u32) -> Vec<u8> {
        // Spread keys so that the tree has interior levels above the leaves.
        format!("{:08x}-{i}", i.wrapping_mul(2_654_435_761)).into_bytes()
    }

    /// A database `name` in `dir` whose tree "t" maps `key(i)` to
    /// `value(i)` for every `i` below `n`, in one commit.
    fn filled(dir: &tempfile::TempDir, name: &str, n: u32, value: impl Fn(u32) -> Vec<u8>) -> Db {
        let db = Db::open(dir.path().join(name)).unwrap();
        let mut tx = db.begin_write().unwrap();
        let tree = tx.create_tree("t").unwrap();
        for i in 0..n {
            tx.insert(&tree, &key(i), &value(i)).unwrap();
        }
        tx.commit().unwrap();
        db
    }

    /// A snapshot that pinned interior pages keeps seeing its own version
    /// of the tree while the writer splits those pages, commits and
    /// checkpoints (which copies the new versions into the main file).
    #[test]
    fn pinned_pages_keep_the_snapshot_view() {
        let dir = tempfile::tempdir().unwrap();
        let n = 20_000u32;
        let db = filled(&dir, "pin.obj", n, val);
        db.checkpoint().unwrap();

        let rx = db.begin_read().unwrap();
        let tree = rx.open_tree("t").unwrap();
        for i in (0..n).step_by(7) {
            assert_eq!(rx.get(&tree, &key(i)).unwrap(), Some(val(i)));
        }
        assert!(rx.snapshot().pinned_count() > 1, "the root and more were pinned");

        // Rewrite every value and add as many keys: every interior page changes.
        let mut tx = db.begin_write().unwrap();
        let wtree = tx.open_tree("t").unwrap();
        for i in 0..2 * n {
            tx.insert(&wtree, &key(i), &val(i + 1)).unwrap();
        }
        tx.commit().unwrap();
        db.checkpoint().unwrap();

        for i in 0..2 * n {
            let want = (i < n).then(|| val(i));
            assert_eq!(rx.get(&tree, &key(i)).unwrap(), want, "old snapshot, key {i}");
        }
        let seen: Vec<_> = rx
            .range(&tree, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(seen.len(), n as usize);
        drop(rx);

        let rx = db.begin_read().unwrap();
        let tree = rx.open_tree("t").unwrap();
        for i in 0..2 * n {
            assert_eq!(rx.get(&tree, &key(i)).unwrap(), Some(val(i + 1)), "key {i}");
        }
    }

    /// With no snapshot open, a commit's versions take the places of the
    /// versions they replace in the cache, which would otherwise push out
    /// pages still being read; an open write transaction leaves the cache
    /// to the readers until then, and while a snapshot is open the old
    /// versions stay for it.
    #[test]
    fn a_commit_replaces_its_base_versions_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2_000u32;
        let db = filled(&dir, "replace.obj", n, |_| b"v0".to_vec());
        let value = |round: u32, i: u32| format!("v{}", if i == 7 { round } else { 0 }).into_bytes();
        let read_all = |round: u32| {
            let rx = db.begin_read().unwrap();
            let tree = rx.open_tree("t").unwrap();
            for i in 0..n {
                assert_eq!(rx.get(&tree, &key(i)).unwrap(), Some(value(round, i)), "key {i}");
            }
        };
        let update = |round: u32| {
            let mut tx = db.begin_write().unwrap();
            let tree = tx.open_tree("t").unwrap();
            tx.insert(&tree, &key(7), &value(round, 7)).unwrap();
            tx
        };
        let stat = || db.stat().unwrap().cache;
        read_all(0);
        let cached = stat().pages;

        let tx = update(1);
        let misses = stat().misses;
        read_all(0);
        assert_eq!(stat().misses, misses, "an open write transaction takes nothing from the readers");
        tx.commit().unwrap();
        // Page 0, the catalog leaf and the key's leaf have new versions, in
        // the places of their old ones.
        assert_eq!(stat().pages, cached, "the old versions made room");
        let misses = stat().misses;
        read_all(1);
        assert_eq!(stat().misses, misses, "the new versions are cached");

        // A snapshot open across a commit keeps its versions cached.
        let old = db.begin_read().unwrap();
        let old_tree = old.open_tree("t").unwrap();
        assert_eq!(old.get(&old_tree, &key(7)).unwrap(), Some(value(1, 7)));
        update(2).commit().unwrap();
        assert!(stat().pages > cached, "the old versions stayed for the open snapshot");
        let misses = stat().misses;
        assert_eq!(old.get(&old_tree, &key(7)).unwrap(), Some(value(1, 7)));
        assert_eq!(stat().misses, misses, "read from the cache");
        drop((old_tree, old));
        read_all(2);

        // Also at the commit that restarts the WAL (after its automatic
        // checkpoint), which renames the versions it replaces.
        let generation = || db.begin_read().unwrap().snapshot().mark().generation;
        let first = generation();
        let mut round = 3;
        while generation() == first {
            let cached = stat().pages;
            update(round).commit().unwrap();
            assert_eq!(stat().pages, cached, "round {round}: the old versions made room");
            round += 1;
        }
        read_all(round - 1);
    }

    /// A short transaction reads its few pages without pinning any.
    #[test]
    fn short_transactions_pin_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = filled(&dir, "short.obj", 20_000, |_| b"v".to_vec());
        let rx = db.begin_read().unwrap();
        let tree = rx.open_tree("t").unwrap();
        assert_eq!(rx.get(&tree, &key(5)).unwrap(), Some(b"v".to_vec()));
        assert_eq!(rx.snapshot().pinned_count(), 0);
    }

    /// A checkpoint that restarts the WAL keeps the cache warm: the pages
    /// the cache held under WAL-frame names are found again under the new
    /// generation's main-file names, and reads see the same data.
    #[test]
    fn restart_keeps_the_cache_warm() {
        let dir = tempfile::tempdir().unwrap();
        let n = 5_000u32;
        let db = filled(&dir, "warm.obj", n, val);
        let read_all = |want: &dyn Fn(u32) -> Vec<u8>| {
            let rx = db.begin_read().unwrap();
            let tree = rx.open_tree("t").unwrap();
            for i in 0..n {
                assert_eq!(rx.get(&tree, &key(i)).unwrap(), Some(want(i)), "key {i}");
            }
        };
        read_all(&val);
        let before = db.stat().unwrap().cache.misses;
        let result = db.checkpoint().unwrap();
        assert!(result.complete);
        assert_eq!(db.stat().unwrap().wal_frames, 0, "the WAL restarted");
        read_all(&val);
        let misses = db.stat().unwrap().cache.misses - before;
        assert!(misses <= 2, "{misses} cache misses after the restart");

        // Rewrite some values, restart again (at the next commit, after an
        // explicit checkpoint), and check both versions are named right.
        let mut tx = db.begin_write().unwrap();
        let tree = tx.open_tree("t").unwrap();
        for i in (0..n).step_by(3) {
            tx.insert(&tree, &key(i), &val(i + 7)).unwrap();
        }
        tx.commit().unwrap();
        let newer = |i: u32| if i.is_multiple_of(3) { val(i + 7) } else { val(i) };
        read_all(&newer);
        assert!(db.checkpoint().unwrap().complete);
        read_all(&newer);
        db.close().unwrap();
        let db = Db::open(dir.path().join("warm.obj")).unwrap();
        let rx = db.begin_read().unwrap();
        let tree = rx.open_tree("t").unwrap();
        for i in 0..n {
            assert_eq!(rx.get(&tree, &key(i)).unwrap(), Some(newer(i)), "after reopen, key {i}");
        }
    }
}

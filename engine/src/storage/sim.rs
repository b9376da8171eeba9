//! A simulated, in-memory file system: the [`Vfs`] the reliability tests run
//! the engine on, and a way to keep a whole database in memory.
//!
//! This module owns the model of what a disk holds. Each file has two
//! contents: the *durable* one, which is what survives a power cut, and the
//! *current* one, which is what reads see. Every write and truncation since
//! the file's last successful [`StorageFile::sync`] is remembered, so that
//! [`SimVfs::power_cut`] can decide, write by write and with a seeded PRNG,
//! what the platters ended up holding: nothing, everything, a sector-aligned
//! prefix, or a torn page. Tests can also inject I/O errors at an exact call
//! ([`SimVfs::set_fault`]), cap the disk space ([`SimVfs::set_capacity`]),
//! and poke at the bytes directly (the helper methods on [`SimVfs`]).
//!
//! Deliberate simplifications, because the engine does not depend on them:
//! - creating, removing and renaming a file is durable at once (no
//!   directory fsync), and a lock stays with the path it was taken on;
//! - paths are compared as given, with no normalisation;
//! - a failed write changes nothing, and a failed sync leaves the unsynced
//!   writes undecided, so a later power cut picks their fate like any other.
//!
//! Files are sparse (4 KiB chunks, unwritten ones read as zeros, chunks are
//! shared copy-on-write between the durable and current contents), so a
//! write at a huge offset costs one chunk of memory, and `sync` is cheap.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::file::{OpenMode, StorageFile, Vfs};
use super::shm::{LockKind, MemRegion, ShmFile};

/// The unit a disk writes atomically; partial writes after a power cut end
/// on a multiple of it.
pub const SECTOR_SIZE: u64 = 512;

/// The largest file the simulator accepts. Beyond it writes and truncations
/// fail with `EFBIG`, so that a bogus offset from a bug surfaces as an error
/// rather than as an attempt to hold absurd amounts of memory.
pub const MAX_FILE_SIZE: u64 = 1 << 40;

const CHUNK: usize = 4096;
const CHUNK_U64: u64 = CHUNK as u64;

/// What [`SimVfs::power_cut`] does with each write and truncation that was
/// not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Every unsynced change is lost: the disk holds exactly what was synced.
    DropAll,
    /// Every unsynced change made it to the disk (what a process crash looks
    /// like, since the OS still holds the written data).
    KeepAll,
    /// Each unsynced change independently, chosen by the seeded PRNG: a
    /// write is dropped, kept, kept up to a sector boundary, or torn; a
    /// truncation is kept or lost.
    Random,
}

/// What a power cut did to the unsynced changes, so a test can check that
/// the interesting cases actually happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Writes that left no trace.
    pub writes_dropped: u64,
    /// Writes that reached the disk whole.
    pub writes_kept: u64,
    /// Writes of which only a prefix ending on a sector boundary survived;
    /// the file is not extended past that prefix.
    pub writes_partial: u64,
    /// Writes whose first half (to a sector boundary) is new and second half
    /// old; a file the write extended keeps its new length, with zeros where
    /// no old data was.
    pub writes_torn: u64,
    /// Truncations (or extensions) that took effect.
    pub truncates_kept: u64,
    /// Truncations (or extensions) that were lost.
    pub truncates_dropped: u64,
}

/// The kind of file call a [`Fault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// [`StorageFile::read_at`].
    Read,
    /// [`StorageFile::write_at`].
    Write,
    /// [`StorageFile::sync`].
    Sync,
    /// [`StorageFile::truncate`].
    Truncate,
    /// Any of the four above.
    Any,
}

/// The error an injected fault produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `EIO`: the device failed.
    Eio,
    /// `ENOSPC`: the device is full.
    Enospc,
}

impl FaultKind {
    fn to_error(self) -> io::Error {
        match self {
            FaultKind::Eio => io::Error::from_raw_os_error(libc::EIO),
            FaultKind::Enospc => io::Error::from_raw_os_error(libc::ENOSPC),
        }
    }
}

/// An injected I/O error. A failed call changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Which calls count and fail.
    pub op: FaultOp,
    /// The fault fires on the matching call with this index, counting from
    /// when it was set: 0 is the next matching call.
    pub after: u64,
    /// The error returned.
    pub kind: FaultKind,
    /// Keep failing every matching call after the first failure.
    pub persistent: bool,
}

/// How many file calls of each kind were made on live handles (failed ones
/// included), so a test can run a workload once to learn where faults could
/// go, then rerun it with a fault at each of those points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Calls to [`StorageFile::read_at`].
    pub reads: u64,
    /// Calls to [`StorageFile::write_at`].
    pub writes: u64,
    /// Calls to [`StorageFile::sync`].
    pub syncs: u64,
    /// Calls to [`StorageFile::truncate`].
    pub truncates: u64,
}

impl OpCounts {
    /// All four counts added up: the range of `after` for a [`FaultOp::Any`] fault.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.syncs + self.truncates
    }
}

/// The simulated file system. Clones share the same files, so a test can
/// keep one to cut power or inspect bytes while the engine holds another.
#[derive(Clone, Default)]
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

/// An open file of a [`SimVfs`].
pub struct SimFile {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    inode: u64,
    handle: u64,
    /// The power-cut generation this handle was opened in; once the
    /// file system moves on, the handle is dead.
    epoch: u64,
    writable: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IoOp {
    Read,
    Write,
    Sync,
    Truncate,
}

impl FaultOp {
    fn matches(self, op: IoOp) -> bool {
        matches!(
            (self, op),
            (FaultOp::Any, _)
                | (FaultOp::Read, IoOp::Read)
                | (FaultOp::Write, IoOp::Write)
                | (FaultOp::Sync, IoOp::Sync)
                | (FaultOp::Truncate, IoOp::Truncate)
        )
    }
}

#[derive(Default)]
struct State {
    paths: BTreeMap<PathBuf, u64>,
    /// Keyed by inode number rather than path so that a file removed while
    /// open keeps working for its handles, as on Unix.
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    next_handle: u64,
    epoch: u64,
    /// Path -> handle holding the exclusive lock.
    locks: BTreeMap<PathBuf, u64>,
    /// Shared-memory indexes by path: not files (they take no space and are
    /// not listed), and gone after a crash or power cut, like the memory
    /// of the processes that mapped them.
    shms: BTreeMap<PathBuf, Arc<MemRegion>>,
    faults: Vec<ArmedFault>,
    counts: OpCounts,
    capacity: Option<u64>,
}

struct ArmedFault {
    fault: Fault,
    /// Matching calls seen since the fault was set; a per-fault counter
    /// keeps `after` meaning "from now" even if op counts are reset.
    seen: u64,
}

#[derive(Default)]
struct Inode {
    durable: Content,
    current: Content,
    unsynced: Vec<Pending>,
    linked: bool,
    open_handles: u64,
}

enum Pending {
    Write { offset: u64, data: Vec<u8> },
    Truncate { len: u64 },
}

/// A sparse byte string. Invariant: stored bytes at or past `len` are zero
/// and no chunk lies wholly past `len`, so growing `len` exposes zeros.
#[derive(Clone, Default)]
struct Content {
    len: u64,
    chunks: BTreeMap<u64, Arc<[u8; CHUNK]>>,
}

impl Content {
    fn from_bytes(bytes: &[u8]) -> Self {
        let mut content = Content::default();
        content.write(0, bytes);
        content
    }

    /// The caller has checked that `offset + buf.len() <= self.len`.
    fn read(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = 0;
        while pos < buf.len() {
            let at = offset + pos as u64;
            let within = (at % CHUNK_U64) as usize;
            let n = (CHUNK - within).min(buf.len() - pos);
            match self.chunks.get(&(at / CHUNK_U64)) {
                Some(chunk) => buf[pos..pos + n].copy_from_slice(&chunk[within..within + n]),
                None => buf[pos..pos + n].fill(0),
            }
            pos += n;
        }
    }

    /// The caller has checked that the end does not pass [`MAX_FILE_SIZE`].
    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            // pwrite of nothing does not extend a file.
            return;
        }
        let mut pos = 0;
        while pos < data.len() {
            let at = offset + pos as u64;
            let within = (at % CHUNK_U64) as usize;
            let n = (CHUNK - within).min(data.len() - pos);
            let chunk = self.chunks.entry(at / CHUNK_U64).or_insert_with(|| Arc::new([0; CHUNK]));
            Arc::make_mut(chunk)[within..within + n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
        }
        self.len = self.len.max(offset + data.len() as u64);
    }

    fn set_len(&mut self, len: u64) {
        if len < self.len {
            drop(self.chunks.split_off(&len.div_ceil(CHUNK_U64)));
            let within = (len % CHUNK_U64) as usize;
            if within != 0 {
                if let Some(chunk) = self.chunks.get_mut(&(len / CHUNK_U64)) {
                    Arc::make_mut(chunk)[within..].fill(0);
                }
            }
        }
        self.len = len;
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut bytes = vec![0; usize::try_from(self.len).unwrap_or(usize::MAX)];
        self.read(0, &mut bytes);
        bytes
    }
}

/// SplitMix64: tiny, good enough to spread fates, and fully determined by
/// the seed so that a failing power-cut test can be replayed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be zero. The modulo bias is
    /// irrelevant at the sizes used here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

enum WriteFate {
    Drop,
    Keep,
    /// Keep the bytes before this absolute file offset.
    Partial(u64),
    /// New bytes before this absolute file offset, old ones after it.
    Torn(u64),
}

/// Sector boundaries strictly inside `offset..end`, as (first, last), when
/// there is at least one: the places a multi-sector write can stop.
fn partial_range(offset: u64, end: u64) -> Option<(u64, u64)> {
    let first = (offset / SECTOR_SIZE + 1) * SECTOR_SIZE;
    let last = (end - 1) / SECTOR_SIZE * SECTOR_SIZE;
    (first <= last).then_some((first, last))
}

/// The sector boundary at (or just before) the middle of a write of at least
/// two sectors, when it lies strictly inside the write.
fn torn_split(offset: u64, end: u64) -> Option<u64> {
    let len = end - offset;
    if len < 2 * SECTOR_SIZE {
        return None;
    }
    let split = (offset + len / 2) / SECTOR_SIZE * SECTOR_SIZE;
    (offset < split && split < end).then_some(split)
}

fn pick_fate(rng: &mut SplitMix64, offset: u64, end: u64) -> WriteFate {
    let coin = |rng: &mut SplitMix64| if rng.below(2) == 0 { WriteFate::Drop } else { WriteFate::Keep };
    match rng.below(4) {
        0 => WriteFate::Drop,
        1 => WriteFate::Keep,
        2 => match partial_range(offset, end) {
            Some((first, last)) => {
                let boundaries = (last - first) / SECTOR_SIZE + 1;
                WriteFate::Partial(first + rng.below(boundaries) * SECTOR_SIZE)
            }
            None => coin(rng),
        },
        _ => match torn_split(offset, end) {
            Some(split) => WriteFate::Torn(split),
            None => coin(rng),
        },
    }
}

/// Applies one unsynced change to `disk` the way the power cut decided.
fn settle(disk: &mut Content, op: Pending, mode: CutMode, rng: &mut SplitMix64, report: &mut CutReport) {
    match op {
        Pending::Truncate { len } => {
            let keep = match mode {
                CutMode::DropAll => false,
                CutMode::KeepAll => true,
                CutMode::Random => rng.below(2) == 1,
            };
            if keep {
                disk.set_len(len);
                report.truncates_kept += 1;
            } else {
                report.truncates_dropped += 1;
            }
        }
        Pending::Write { offset, data } => {
            let end = offset + data.len() as u64;
            let fate = match mode {
                CutMode::DropAll => WriteFate::Drop,
                CutMode::KeepAll => WriteFate::Keep,
                CutMode::Random => pick_fate(rng, offset, end),
            };
            match fate {
                WriteFate::Drop => report.writes_dropped += 1,
                WriteFate::Keep => {
                    disk.write(offset, &data);
                    report.writes_kept += 1;
                }
                WriteFate::Partial(stop) => {
                    disk.write(offset, &data[..(stop - offset) as usize]);
                    report.writes_partial += 1;
                }
                WriteFate::Torn(split) => {
                    disk.write(offset, &data[..(split - offset) as usize]);
                    // The size metadata made it even though the tail's data
                    // did not: an extending write reads zeros there.
                    if disk.len < end {
                        disk.set_len(end);
                    }
                    report.writes_torn += 1;
                }
            }
        }
    }
}

fn dead_handle() -> io::Error {
    io::Error::other("simulated power loss: handle invalid")
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Nothing panics while holding the lock, but a test thread may; the
    // state is still consistent then, so carry on rather than cascade.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn count_and_check_faults(&mut self, op: IoOp) -> io::Result<()> {
        match op {
            IoOp::Read => self.counts.reads += 1,
            IoOp::Write => self.counts.writes += 1,
            IoOp::Sync => self.counts.syncs += 1,
            IoOp::Truncate => self.counts.truncates += 1,
        }
        let mut failure = None;
        // Every matching fault advances, even when an earlier one fires, so
        // each keeps counting calls rather than calls that got through.
        for armed in self.faults.iter_mut().filter(|a| a.fault.op.matches(op)) {
            let fires =
                armed.seen == armed.fault.after || (armed.fault.persistent && armed.seen > armed.fault.after);
            armed.seen = armed.seen.saturating_add(1);
            if fires && failure.is_none() {
                failure = Some(armed.fault.kind);
            }
        }
        match failure {
            Some(kind) => Err(kind.to_error()),
            None => Ok(()),
        }
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().fold(0u64, |sum, inode| sum.saturating_add(inode.current.len))
    }

    fn ensure_space(&self, growth: u64) -> io::Result<()> {
        match self.capacity {
            Some(capacity) if self.used_bytes().saturating_add(growth) > capacity => {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            _ => Ok(()),
        }
    }

    fn inode_mut(&mut self, inode: u64) -> io::Result<&mut Inode> {
        // A live handle always has its inode; this is a guard, not a path.
        self.inodes.get_mut(&inode).ok_or_else(dead_handle)
    }

    fn file_mut(&mut self, path: &Path) -> Option<&mut Inode> {
        let inode = *self.paths.get(path)?;
        self.inodes.get_mut(&inode)
    }

    fn file(&self, path: &Path) -> Option<&Inode> {
        self.inodes.get(self.paths.get(path)?)
    }

    /// Drops a name's inode: at once, or when its last handle closes.
    fn unlink(&mut self, inode: u64) {
        let in_use = self.inodes.get_mut(&inode).is_some_and(|inode| {
            inode.linked = false;
            inode.open_handles > 0
        });
        if !in_use {
            self.inodes.remove(&inode);
        }
    }

    /// Gives `from`'s file the name `to`, unlinking the file `to` named.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let inode = self.paths.remove(from).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no such simulated file: {}", from.display()))
        })?;
        if let Some(old) = self.paths.insert(to.to_path_buf(), inode) {
            if old != inode {
                self.unlink(old);
            }
        }
        Ok(())
    }

    fn create(&mut self, path: &Path) -> u64 {
        let inode = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(inode, Inode { linked: true, ..Inode::default() });
        self.paths.insert(path.to_path_buf(), inode);
        inode
    }
}

impl SimVfs {
    /// An empty file system with no faults and no capacity limit.
    pub fn new() -> Self {
        SimVfs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Simulates losing power: each file's content becomes what the disk
    /// might hold, built from its durable content plus each unsynced change
    /// in order, treated per `mode` with a PRNG seeded by `rng_seed` (the
    /// same seed after the same workload gives the same disk). Afterwards
    /// the current content is that result, every open handle is dead, every
    /// lock is released, and files removed while open are gone.
    pub fn power_cut(&self, rng_seed: u64, mode: CutMode) -> CutReport {
        let mut state = self.lock();
        let mut rng = SplitMix64(rng_seed);
        let mut report = CutReport::default();
        state.inodes.retain(|_, inode| inode.linked);
        for inode in state.inodes.values_mut() {
            let mut disk = std::mem::take(&mut inode.durable);
            for op in std::mem::take(&mut inode.unsynced) {
                settle(&mut disk, op, mode, &mut rng, &mut report);
            }
            inode.current = disk.clone();
            inode.durable = disk;
            inode.open_handles = 0;
        }
        state.locks.clear();
        state.shms.clear();
        state.epoch += 1;
        report
    }

    /// Simulates the process dying: everything written survives (the OS
    /// had it), but every open handle is dead and every lock released.
    pub fn crash(&self) {
        self.power_cut(0, CutMode::KeepAll);
    }

    /// Arms a fault; several may be armed at once, the first to fire wins.
    pub fn set_fault(&self, fault: Fault) {
        self.lock().faults.push(ArmedFault { fault, seen: 0 });
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Calls made so far on live handles, failed ones included.
    pub fn op_counts(&self) -> OpCounts {
        self.lock().counts
    }

    /// Sets the op counts back to zero; armed faults are unaffected.
    pub fn reset_op_counts(&self) {
        self.lock().counts = OpCounts::default();
    }

    /// Limits the total length of all files (those removed but still open
    /// included) to `capacity` bytes; `None` lifts the limit. A write or
    /// extension that would pass it fails with `ENOSPC` and changes nothing;
    /// overwriting existing bytes always works.
    pub fn set_capacity(&self, capacity: Option<u64>) {
        self.lock().capacity = capacity;
    }

    /// The bytes counted against the capacity: the sum of current lengths.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// The current content of the file at `path` (what a read sees), or
    /// `None` when there is no such file. Allocates the whole file.
    pub fn read_file(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.lock().file(path.as_ref()).map(|inode| inode.current.to_vec())
    }

    /// The durable content of the file at `path` (what a power cut with
    /// [`CutMode::DropAll`] would leave), or `None` when there is no such file.
    pub fn read_durable(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.lock().file(path.as_ref()).map(|inode| inode.durable.to_vec())
    }

    /// The length of the durable content of the file at `path`.
    pub fn durable_len(&self, path: impl AsRef<Path>) -> Option<u64> {
        self.lock().file(path.as_ref()).map(|inode| inode.durable.len)
    }

    /// How many writes and truncations of the file at `path` are not yet synced.
    pub fn unsynced_ops(&self, path: impl AsRef<Path>) -> Option<usize> {
        self.lock().file(path.as_ref()).map(|inode| inode.unsynced.len())
    }

    /// Replaces the content of the file at `path` (creating it if needed)
    /// with `bytes`, durably; ignores faults and the capacity, since it
    /// sets up a test rather than being part of one. Open handles see it.
    pub fn write_file(&self, path: impl AsRef<Path>, bytes: &[u8]) {
        let path = path.as_ref();
        let mut state = self.lock();
        let inode = match state.paths.get(path) {
            Some(&inode) => inode,
            None => state.create(path),
        };
        if let Ok(inode) = state.inode_mut(inode) {
            inode.current = Content::from_bytes(bytes);
            inode.durable = inode.current.clone();
            inode.unsynced.clear();
        }
    }

    /// The paths of all files, sorted.
    pub fn file_names(&self) -> Vec<PathBuf> {
        self.lock().paths.keys().cloned().collect()
    }

    /// Flips bits of one byte, as bit rot on the medium would: XORs the byte
    /// at `offset` with `xor` in the current content and, if long enough,
    /// the durable one. `NotFound` when there is no such file,
    /// `UnexpectedEof` when `offset` is past its current end.
    pub fn corrupt(&self, path: impl AsRef<Path>, offset: u64, xor: u8) -> io::Result<()> {
        let mut state = self.lock();
        let inode = state
            .file_mut(path.as_ref())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such simulated file"))?;
        if offset >= inode.current.len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "corrupt offset past end of file"));
        }
        for content in [&mut inode.current, &mut inode.durable] {
            if offset < content.len {
                let mut byte = [0u8];
                content.read(offset, &mut byte);
                content.write(offset, &[byte[0] ^ xor]);
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SimVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only names and sizes: dumping contents would drown any assertion message.
        let state = self.lock();
        let mut files = f.debug_map();
        for (path, inode) in &state.paths {
            if let Some(inode) = state.inodes.get(inode) {
                files.entry(
                    path,
                    &format_args!("{} bytes ({} durable)", inode.current.len, inode.durable.len),
                );
            }
        }
        files.finish()
    }
}

impl Vfs for SimVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.lock();
        let inode = match (state.paths.get(path), mode) {
            (Some(&inode), _) => inode,
            (None, OpenMode::ReadWriteCreate) => state.create(path),
            (None, OpenMode::ReadOnly) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no such simulated file: {}", path.display()),
                ))
            }
        };
        state.inode_mut(inode)?.open_handles += 1;
        let handle = state.next_handle;
        state.next_handle += 1;
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
            inode,
            handle,
            epoch: state.epoch,
            writable: mode == OpenMode::ReadWriteCreate,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().paths.contains_key(path))
    }

    fn open_shm(&self, path: &Path) -> io::Result<Arc<dyn ShmFile>> {
        let mut state = self.lock();
        let region = state.shms.entry(path.to_path_buf()).or_default().clone();
        let handle = state.next_handle;
        state.next_handle += 1;
        Ok(Arc::new(SimShm {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
            region,
            handle,
            epoch: state.epoch,
        }))
    }

    fn shm_in_use(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock();
        Ok(state.shms.get(path).is_some_and(|r| r.any_holder()))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.shms.remove(path);
        if let Some(inode) = state.paths.remove(path) {
            state.unlink(inode);
        }
        Ok(())
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.paths.contains_key(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("simulated file exists: {}", to.display()),
            ));
        }
        state.rename(from, to)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.lock().rename(from, to)
    }
}

/// A simulated shared-memory index: a heap buffer shared by every handle on
/// one path, with byte-range locks held per handle (each handle behaves
/// like a separate process). After a crash or power cut the handle is dead:
/// its lock calls fail, and new handles get a fresh region.
pub struct SimShm {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    region: Arc<MemRegion>,
    handle: u64,
    epoch: u64,
}

impl fmt::Debug for SimShm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimShm")
            .field("path", &self.path)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl SimShm {
    fn alive(&self) -> io::Result<()> {
        if lock(&self.state).epoch != self.epoch {
            return Err(dead_handle());
        }
        Ok(())
    }
}

impl ShmFile for SimShm {
    fn map(&self, len: usize, grow: bool) -> io::Result<()> {
        self.alive()?;
        self.region.map(len, grow)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        self.region.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        self.region.store_u32(offset, value)
    }
    fn load_u64(&self, offset: usize) -> u64 {
        self.region.load_u64(offset)
    }
    fn store_u64(&self, offset: usize, value: u64) {
        self.region.store_u64(offset, value)
    }
    fn reset(&self) -> io::Result<()> {
        self.alive()?;
        self.region.reset();
        Ok(())
    }
    fn lock(&self, index: u32, kind: LockKind) -> io::Result<bool> {
        self.alive()?;
        Ok(self.region.lock(self.handle, index, kind))
    }
    fn is_current(&self) -> io::Result<bool> {
        let state = lock(&self.state);
        Ok(state.epoch == self.epoch
            && state.shms.get(&self.path).is_some_and(|r| Arc::ptr_eq(r, &self.region)))
    }
    fn others_hold(&self, _index: u32) -> io::Result<Option<bool>> {
        Ok(None) // no read-only mapping in the simulation: nothing depends on it
    }
}

impl Drop for SimShm {
    fn drop(&mut self) {
        self.region.release_all(self.handle);
    }
}

impl SimFile {
    /// Locks the state for a call on this handle, after checking the handle
    /// survived any power cut and, for counted calls, any armed fault.
    fn enter(&self, op: Option<IoOp>) -> io::Result<MutexGuard<'_, State>> {
        let mut state = lock(&self.state);
        if state.epoch != self.epoch {
            return Err(dead_handle());
        }
        if let Some(op) = op {
            state.count_and_check_faults(op)?;
        }
        Ok(state)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        }
    }
}

fn too_big() -> io::Error {
    io::Error::from_raw_os_error(libc::EFBIG)
}

impl StorageFile for SimFile {
    fn is_at(&self, path: &Path) -> io::Result<bool> {
        Ok(lock(&self.state).paths.get(path) == Some(&self.inode))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut state = self.enter(Some(IoOp::Read))?;
        let content = &state.inode_mut(self.inode)?.current;
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= content.len => {
                content.read(offset, buf);
                Ok(())
            }
            _ => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past end of simulated file")),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.enter(Some(IoOp::Write))?;
        self.check_writable()?;
        if buf.is_empty() {
            return Ok(());
        }
        let end =
            offset.checked_add(buf.len() as u64).filter(|&end| end <= MAX_FILE_SIZE).ok_or_else(too_big)?;
        let len = state.inode_mut(self.inode)?.current.len;
        state.ensure_space(end.saturating_sub(len))?;
        let inode = state.inode_mut(self.inode)?;
        inode.current.write(offset, buf);
        inode.unsynced.push(Pending::Write { offset, data: buf.to_vec() });
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.enter(Some(IoOp::Sync))?;
        let inode = state.inode_mut(self.inode)?;
        // Every change to `current` other than a durable helper's is queued
        // in `unsynced`, so an empty queue means the contents already agree
        // and the clone (one Arc per chunk) can be skipped.
        if !inode.unsynced.is_empty() {
            inode.durable = inode.current.clone();
            inode.unsynced.clear();
        }
        Ok(())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut state = self.enter(Some(IoOp::Truncate))?;
        self.check_writable()?;
        if len > MAX_FILE_SIZE {
            return Err(too_big());
        }
        let old_len = state.inode_mut(self.inode)?.current.len;
        state.ensure_space(len.saturating_sub(old_len))?;
        let inode = state.inode_mut(self.inode)?;
        inode.current.set_len(len);
        inode.unsynced.push(Pending::Truncate { len });
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let mut state = self.enter(None)?;
        Ok(state.inode_mut(self.inode)?.current.len)
    }

    fn try_lock_exclusive(&self) -> io::Result<bool> {
        let mut state = self.enter(None)?;
        match state.locks.get(&self.path) {
            Some(&holder) if holder != self.handle => Ok(false),
            _ => {
                state.locks.insert(self.path.clone(), self.handle);
                Ok(true)
            }
        }
    }

    fn unlock(&self) -> io::Result<()> {
        let mut state = self.enter(None)?;
        if state.locks.get(&self.path) == Some(&self.handle) {
            state.locks.remove(&self.path);
        }
        Ok(())
    }
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("handle", &self.handle)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        // A handle killed by a power cut no longer owns anything: the cut
        // already released its lock and forgot its open count.
        if state.epoch != self.epoch {
            return;
        }
        if state.locks.get(&self.path) == Some(&self.handle) {
            state.locks.remove(&self.path);
        }
        let orphaned = state.inodes.get_mut(&self.inode).is_some_and(|inode| {
            inode.open_handles = inode.open_handles.saturating_sub(1);
            inode.open_handles == 0 && !inode.linked
        });
        if orphaned {
            state.inodes.remove(&self.inode);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(vfs: &SimVfs, path: &str) -> Arc<dyn StorageFile> {
        vfs.open(Path::new(path), OpenMode::ReadWriteCreate).unwrap()
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1).collect()
    }

    fn raw_os_error(result: io::Result<()>) -> Option<i32> {
        result.unwrap_err().raw_os_error()
    }

    #[test]
    fn is_send_sync_and_a_vfs() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<SimVfs>();
        let vfs: Arc<dyn Vfs> = Arc::new(SimVfs::new());
        let file = vfs.open(Path::new("a"), OpenMode::ReadWriteCreate).unwrap();
        file.write_at(b"hello", 0).unwrap();
        let mut buf = [0u8; 5];
        file.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello");
        assert!(vfs.exists(Path::new("a")).unwrap());
        assert!(!vfs.exists(Path::new("b")).unwrap());
    }

    #[test]
    fn reads_see_writes_and_gaps_read_as_zero() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(b"abc", 10_000).unwrap();
        assert_eq!(file.size().unwrap(), 10_003);
        let mut buf = vec![0xffu8; 10_003];
        file.read_at(&mut buf, 0).unwrap();
        assert!(buf[..10_000].iter().all(|&b| b == 0));
        assert_eq!(&buf[10_000..], b"abc");
        file.write_at(&[], 50_000).unwrap();
        assert_eq!(file.size().unwrap(), 10_003, "an empty write does not extend");
    }

    #[test]
    fn read_past_eof_is_unexpected_eof_and_leaves_buffer() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(&[7; 100], 0).unwrap();
        let mut buf = [1u8; 10];
        let err = file.read_at(&mut buf, 95).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(buf, [1u8; 10]);
        assert_eq!(file.read_at(&mut buf, u64::MAX).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(file.read_at(&mut buf, u64::MAX - 3).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        file.read_at(&mut [], 100).unwrap();
    }

    #[test]
    fn huge_offsets_are_errors_or_sparse_never_huge_allocations() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        assert_eq!(raw_os_error(file.write_at(b"x", u64::MAX)), Some(libc::EFBIG));
        assert_eq!(raw_os_error(file.write_at(b"xy", MAX_FILE_SIZE - 1)), Some(libc::EFBIG));
        assert_eq!(raw_os_error(file.truncate(MAX_FILE_SIZE + 1)), Some(libc::EFBIG));
        assert_eq!(raw_os_error(file.truncate(u64::MAX)), Some(libc::EFBIG));
        assert_eq!(file.size().unwrap(), 0);
        // Within the cap, a far write costs one chunk, not the gap.
        file.write_at(b"z", MAX_FILE_SIZE - 1).unwrap();
        assert_eq!(file.size().unwrap(), MAX_FILE_SIZE);
        let mut buf = [9u8; 2];
        file.read_at(&mut buf, MAX_FILE_SIZE - 2).unwrap();
        assert_eq!(buf, [0, b'z']);
        file.sync().unwrap();
        file.truncate(3).unwrap();
        file.truncate(MAX_FILE_SIZE).unwrap();
        file.read_at(&mut buf, MAX_FILE_SIZE - 2).unwrap();
        assert_eq!(buf, [0, 0]);
        vfs.power_cut(1, CutMode::Random);
    }

    #[test]
    fn truncate_shrinks_and_extends_with_zeros() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(&pattern(10_000, 3), 0).unwrap();
        file.truncate(5_000).unwrap();
        file.truncate(9_000).unwrap();
        let got = vfs.read_file("db").unwrap();
        assert_eq!(got.len(), 9_000);
        assert_eq!(&got[..5_000], &pattern(10_000, 3)[..5_000]);
        assert!(got[5_000..].iter().all(|&b| b == 0));
    }

    #[test]
    fn sync_makes_durable() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(&pattern(4096, 1), 0).unwrap();
        assert_eq!(vfs.durable_len("db"), Some(0));
        assert_eq!(vfs.unsynced_ops("db"), Some(1));
        file.sync().unwrap();
        assert_eq!(vfs.durable_len("db"), Some(4096));
        assert_eq!(vfs.read_durable("db").unwrap(), pattern(4096, 1));
        assert_eq!(vfs.unsynced_ops("db"), Some(0));
        // Writes after the sync are not durable, the synced ones stay.
        file.write_at(&pattern(4096, 2), 0).unwrap();
        assert_eq!(vfs.read_durable("db").unwrap(), pattern(4096, 1));
        assert_eq!(vfs.read_file("db").unwrap(), pattern(4096, 2));
    }

    #[test]
    fn power_cut_drop_all_loses_unsynced_writes() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(&pattern(8192, 1), 0).unwrap();
        file.sync().unwrap();
        file.write_at(&pattern(4096, 2), 4096).unwrap();
        file.write_at(&pattern(4096, 3), 8192).unwrap();
        file.truncate(1000).unwrap();
        let other = rw(&vfs, "wal");
        other.write_at(b"never synced", 0).unwrap();
        let report = vfs.power_cut(42, CutMode::DropAll);
        assert_eq!(report, CutReport { writes_dropped: 3, truncates_dropped: 1, ..CutReport::default() });
        assert_eq!(vfs.read_file("db").unwrap(), pattern(8192, 1));
        // Creation is durable, contents are not.
        assert_eq!(vfs.read_file("wal").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn power_cut_keep_all_keeps_unsynced_writes() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(&pattern(8192, 1), 0).unwrap();
        file.sync().unwrap();
        file.write_at(&pattern(4096, 2), 4096).unwrap();
        file.truncate(6000).unwrap();
        file.write_at(b"tail", 7000).unwrap();
        let before = vfs.read_file("db").unwrap();
        let report = vfs.power_cut(42, CutMode::KeepAll);
        assert_eq!(report, CutReport { writes_kept: 2, truncates_kept: 1, ..CutReport::default() });
        assert_eq!(vfs.read_file("db").unwrap(), before);
        assert_eq!(vfs.read_durable("db").unwrap(), before);
        assert_eq!(vfs.unsynced_ops("db"), Some(0));
    }

    #[test]
    fn crash_keeps_data_and_kills_handles() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(b"written, not synced", 0).unwrap();
        assert!(file.try_lock_exclusive().unwrap());
        vfs.crash();
        assert_eq!(vfs.read_file("db").unwrap(), b"written, not synced");
        assert!(file.size().is_err());
        assert!(rw(&vfs, "db").try_lock_exclusive().unwrap());
    }

    /// Builds a file whose unsynced writes are each a 4 KiB page over old
    /// data, then cuts power.
    fn page_workload(seed: u64) -> (SimVfs, CutReport) {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(&vec![0xaa; 8 * 4096], 0).unwrap();
        file.sync().unwrap();
        for page in 0..8u64 {
            file.write_at(&vec![page as u8 + 1; 4096], page * 4096).unwrap();
        }
        let report = vfs.power_cut(seed, CutMode::Random);
        (vfs, report)
    }

    #[test]
    fn random_power_cut_is_reproducible_for_a_seed() {
        for seed in 0..20 {
            let (a, report_a) = page_workload(seed);
            let (b, report_b) = page_workload(seed);
            assert_eq!(report_a, report_b);
            assert_eq!(a.read_file("db"), b.read_file("db"));
        }
        let outcomes: std::collections::BTreeSet<Vec<u8>> =
            (0..20).map(|seed| page_workload(seed).0.read_file("db").unwrap()).collect();
        assert!(outcomes.len() > 1, "different seeds should give different disks");
    }

    #[test]
    fn random_power_cut_produces_every_fate_and_each_page_is_a_legal_result() {
        let mut total = CutReport::default();
        for seed in 0..64 {
            let (vfs, report) = page_workload(seed);
            total.writes_dropped += report.writes_dropped;
            total.writes_kept += report.writes_kept;
            total.writes_partial += report.writes_partial;
            total.writes_torn += report.writes_torn;
            assert_eq!(
                report.writes_dropped + report.writes_kept + report.writes_partial + report.writes_torn,
                8
            );
            let disk = vfs.read_file("db").unwrap();
            assert_eq!(disk.len(), 8 * 4096, "overwrites never change the length");
            for (page, bytes) in disk.chunks(4096).enumerate() {
                let new = page as u8 + 1;
                // Every legal outcome is some sector-aligned prefix new, the rest old.
                let new_sectors = bytes.chunks(512).take_while(|s| s.iter().all(|&b| b == new)).count();
                assert!(bytes[new_sectors * 512..].iter().all(|&b| b == 0xaa), "seed {seed} page {page}");
            }
        }
        assert!(total.writes_dropped > 0, "{total:?}");
        assert!(total.writes_kept > 0, "{total:?}");
        assert!(total.writes_partial > 0, "{total:?}");
        assert!(total.writes_torn > 0, "{total:?}");
    }

    #[test]
    fn torn_page_is_first_half_new_second_half_old() {
        let found = (0..200).find_map(|seed| {
            let (vfs, report) = page_workload(seed);
            (report.writes_torn > 0).then_some(vfs)
        });
        let disk = found.expect("some seed tears a page").read_file("db").unwrap();
        let torn = disk
            .chunks(4096)
            .enumerate()
            .filter(|(page, bytes)| {
                let new = *page as u8 + 1;
                bytes[..2048].iter().all(|&b| b == new) && bytes[2048..].iter().all(|&b| b == 0xaa)
            })
            .count();
        assert!(torn > 0);
    }

    #[test]
    fn partial_and_torn_extending_writes() {
        // A partial write that extends the file stops at its sector boundary;
        // a torn one keeps the full length with zeros for the missing half.
        let mut saw_partial = false;
        let mut saw_torn = false;
        for seed in 0..200 {
            let vfs = SimVfs::new();
            let file = rw(&vfs, "wal");
            file.write_at(&[5; 4096], 0).unwrap();
            let report = vfs.power_cut(seed, CutMode::Random);
            let disk = vfs.read_file("wal").unwrap();
            if report.writes_partial == 1 {
                saw_partial = true;
                assert_eq!(disk.len() % 512, 0, "partial writes stop on a sector boundary");
                assert!(!disk.is_empty() && disk.len() < 4096);
                assert!(disk.iter().all(|&b| b == 5));
            }
            if report.writes_torn == 1 {
                saw_torn = true;
                assert_eq!(disk.len(), 4096);
                assert!(disk[..2048].iter().all(|&b| b == 5));
                assert!(disk[2048..].iter().all(|&b| b == 0));
            }
        }
        assert!(saw_partial && saw_torn);
    }

    #[test]
    fn small_writes_are_only_dropped_or_kept() {
        for seed in 0..100 {
            let vfs = SimVfs::new();
            let file = rw(&vfs, "db");
            file.write_at(&[1; 300], 100).unwrap();
            let report = vfs.power_cut(seed, CutMode::Random);
            assert_eq!(report.writes_partial + report.writes_torn, 0);
        }
    }

    #[test]
    fn unsynced_truncations_may_be_kept_or_lost() {
        let (mut kept, mut lost) = (0, 0);
        for seed in 0..64 {
            let vfs = SimVfs::new();
            let file = rw(&vfs, "db");
            file.write_at(&[3; 8192], 0).unwrap();
            file.sync().unwrap();
            file.truncate(0).unwrap();
            let report = vfs.power_cut(seed, CutMode::Random);
            match vfs.read_file("db").unwrap().len() {
                0 => kept += 1,
                8192 => lost += 1,
                other => panic!("unexpected length {other}"),
            }
            assert_eq!(report.truncates_kept + report.truncates_dropped, 1);
        }
        assert!(kept > 0 && lost > 0);
    }

    #[test]
    fn handles_are_dead_after_power_cut_and_new_opens_work() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(b"abc", 0).unwrap();
        file.sync().unwrap();
        assert!(file.try_lock_exclusive().unwrap());
        vfs.power_cut(7, CutMode::Random);
        let mut buf = [0u8; 3];
        let errors = [
            file.read_at(&mut buf, 0).unwrap_err(),
            file.write_at(b"x", 0).unwrap_err(),
            file.sync().unwrap_err(),
            file.truncate(0).unwrap_err(),
            file.size().unwrap_err(),
            file.try_lock_exclusive().unwrap_err(),
            file.unlock().unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.to_string(), "simulated power loss: handle invalid");
        }
        let counts = vfs.op_counts();
        let fresh = rw(&vfs, "db");
        fresh.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abc");
        assert!(fresh.try_lock_exclusive().unwrap(), "the cut released the lock");
        // The dead handle's drop must not release the new holder's lock.
        drop(file);
        assert!(!rw(&vfs, "db").try_lock_exclusive().unwrap());
        assert_eq!(vfs.op_counts().reads, counts.reads + 1, "dead calls are not counted");
    }

    #[test]
    fn lock_is_exclusive_per_path_and_released_by_unlock_or_drop() {
        let vfs = SimVfs::new();
        let a = rw(&vfs, "db");
        let b = rw(&vfs, "db");
        let other = rw(&vfs, "db-wal");
        assert!(a.try_lock_exclusive().unwrap());
        assert!(a.try_lock_exclusive().unwrap(), "re-locking by the holder succeeds");
        assert!(!b.try_lock_exclusive().unwrap());
        assert!(other.try_lock_exclusive().unwrap(), "another path is another lock");
        b.unlock().unwrap();
        assert!(!b.try_lock_exclusive().unwrap(), "a non-holder's unlock does nothing");
        a.unlock().unwrap();
        assert!(b.try_lock_exclusive().unwrap());
        assert!(!a.try_lock_exclusive().unwrap());
        drop(b);
        assert!(a.try_lock_exclusive().unwrap());
    }

    #[test]
    fn read_only_handles() {
        let vfs = SimVfs::new();
        let err = vfs.open(Path::new("db"), OpenMode::ReadOnly).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(vfs.file_names().is_empty());
        vfs.write_file("db", b"data");
        let file = vfs.open(Path::new("db"), OpenMode::ReadOnly).unwrap();
        assert_eq!(raw_os_error(file.write_at(b"x", 0)), Some(libc::EBADF));
        assert_eq!(raw_os_error(file.truncate(0)), Some(libc::EBADF));
        assert_eq!(vfs.read_file("db").unwrap(), b"data");
        file.sync().unwrap();
    }

    #[test]
    fn removed_file_lives_on_for_open_handles_until_closed() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "wal");
        file.write_at(b"old", 0).unwrap();
        vfs.remove(Path::new("wal")).unwrap();
        vfs.remove(Path::new("wal")).unwrap();
        assert!(!vfs.exists(Path::new("wal")).unwrap());
        let mut buf = [0u8; 3];
        file.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"old");
        assert_eq!(vfs.used_bytes(), 3, "an open removed file still takes space");
        let fresh = rw(&vfs, "wal");
        assert_eq!(fresh.size().unwrap(), 0);
        drop(file);
        assert_eq!(vfs.used_bytes(), 0);
        assert_eq!(vfs.file_names(), vec![PathBuf::from("wal")]);
    }

    #[test]
    fn rename_replaces_the_target_and_keeps_open_handles_working() {
        let vfs = SimVfs::new();
        vfs.write_file("old", b"old");
        let old = rw(&vfs, "old");
        let tmp = rw(&vfs, "tmp");
        tmp.write_at(b"new", 0).unwrap();
        vfs.rename(Path::new("tmp"), Path::new("old")).unwrap();
        assert_eq!(vfs.file_names(), vec![PathBuf::from("old")]);
        assert_eq!(vfs.read_file("old").unwrap(), b"new");
        // The replaced file lives on for its handle, then goes away.
        let mut buf = [0u8; 3];
        old.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"old");
        drop(old);
        assert_eq!(vfs.used_bytes(), 3);
        // The rename is durable at once; the renamed file's unsynced data is not.
        vfs.power_cut(0, CutMode::DropAll);
        assert_eq!(vfs.read_file("old").unwrap(), b"");
        let err = vfs.rename(Path::new("missing"), Path::new("x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn op_counts_count_every_call() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(b"abcd", 0).unwrap();
        file.write_at(b"efgh", 4).unwrap();
        file.read_at(&mut [0; 4], 0).unwrap();
        let _ = file.read_at(&mut [0; 4], 100);
        file.sync().unwrap();
        file.truncate(2).unwrap();
        file.size().unwrap();
        file.try_lock_exclusive().unwrap();
        let counts = vfs.op_counts();
        assert_eq!(counts, OpCounts { reads: 2, writes: 2, syncs: 1, truncates: 1 });
        assert_eq!(counts.total(), 6);
        vfs.reset_op_counts();
        assert_eq!(vfs.op_counts(), OpCounts::default());
    }

    /// A small mixed workload; returns the index (over all counted calls)
    /// of the first failing call, if any.
    fn fault_workload(vfs: &SimVfs) -> Option<u64> {
        let file = rw(vfs, "db");
        let calls: [&dyn Fn() -> io::Result<()>; 7] = [
            &|| file.write_at(b"abcd", 0),
            &|| file.sync(),
            &|| file.write_at(b"efgh", 4),
            &|| file.truncate(6),
            &|| file.write_at(b"ij", 6),
            &|| file.sync(),
            &|| file.read_at(&mut [0u8; 4], 0),
        ];
        calls.iter().position(|call| call().is_err()).map(|index| index as u64)
    }

    #[test]
    fn fault_fires_at_exactly_the_nth_call() {
        let counting = SimVfs::new();
        assert_eq!(fault_workload(&counting), None);
        let counts = counting.op_counts();
        assert_eq!(counts, OpCounts { reads: 1, writes: 3, syncs: 2, truncates: 1 });
        for n in 0..counts.total() {
            let vfs = SimVfs::new();
            vfs.set_fault(Fault { op: FaultOp::Any, after: n, kind: FaultKind::Eio, persistent: false });
            assert_eq!(fault_workload(&vfs), Some(n));
        }
        for (op, expected) in [
            (FaultOp::Write, [0, 2, 4].as_slice()),
            (FaultOp::Sync, &[1, 5]),
            (FaultOp::Truncate, &[3]),
            (FaultOp::Read, &[6]),
        ] {
            for (nth, &index) in expected.iter().enumerate() {
                let vfs = SimVfs::new();
                vfs.set_fault(Fault { op, after: nth as u64, kind: FaultKind::Enospc, persistent: false });
                assert_eq!(fault_workload(&vfs), Some(index), "{op:?} #{nth}");
            }
        }
        let vfs = SimVfs::new();
        vfs.set_fault(Fault {
            op: FaultOp::Any,
            after: counts.total(),
            kind: FaultKind::Eio,
            persistent: false,
        });
        assert_eq!(fault_workload(&vfs), None);
    }

    #[test]
    fn fault_counts_from_when_it_is_set_and_errors_have_errno() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(b"a", 0).unwrap();
        file.write_at(b"b", 1).unwrap();
        vfs.set_fault(Fault { op: FaultOp::Write, after: 1, kind: FaultKind::Eio, persistent: false });
        file.write_at(b"c", 2).unwrap();
        file.sync().unwrap();
        assert_eq!(raw_os_error(file.write_at(b"d", 3)), Some(libc::EIO));
        file.write_at(b"e", 3).unwrap();
        vfs.set_fault(Fault { op: FaultOp::Sync, after: 0, kind: FaultKind::Enospc, persistent: false });
        assert_eq!(raw_os_error(file.sync()), Some(libc::ENOSPC));
        assert_eq!(vfs.read_file("db").unwrap(), b"abce");
    }

    #[test]
    fn persistent_fault_keeps_failing_until_cleared() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        vfs.set_fault(Fault { op: FaultOp::Read, after: 1, kind: FaultKind::Eio, persistent: true });
        file.write_at(b"abcd", 0).unwrap();
        let mut buf = [0u8; 4];
        file.read_at(&mut buf, 0).unwrap();
        for _ in 0..5 {
            assert_eq!(file.read_at(&mut buf, 0).unwrap_err().raw_os_error(), Some(libc::EIO));
        }
        file.write_at(b"x", 0).unwrap();
        vfs.clear_faults();
        file.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"xbcd");
    }

    #[test]
    fn failed_write_and_truncate_change_nothing() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(&[1; 1024], 0).unwrap();
        vfs.set_fault(Fault { op: FaultOp::Any, after: 0, kind: FaultKind::Eio, persistent: true });
        assert!(file.write_at(&[2; 4096], 512).is_err());
        assert!(file.truncate(10).is_err());
        vfs.clear_faults();
        assert_eq!(vfs.read_file("db").unwrap(), vec![1; 1024]);
        assert_eq!(vfs.unsynced_ops("db"), Some(1));
    }

    #[test]
    fn failed_sync_leaves_writes_undecided() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(b"synced", 0).unwrap();
        file.sync().unwrap();
        file.write_at(b"SYNCED", 0).unwrap();
        vfs.set_fault(Fault { op: FaultOp::Sync, after: 0, kind: FaultKind::Eio, persistent: false });
        assert!(file.sync().is_err());
        assert_eq!(vfs.read_durable("db").unwrap(), b"synced");
        vfs.power_cut(0, CutMode::DropAll);
        assert_eq!(vfs.read_file("db").unwrap(), b"synced");
    }

    #[test]
    fn capacity_limit_gives_enospc_and_recovers_after_truncate_or_remove() {
        let vfs = SimVfs::new();
        vfs.set_capacity(Some(10_000));
        let file = rw(&vfs, "db");
        let wal = rw(&vfs, "wal");
        file.write_at(&[1; 6000], 0).unwrap();
        wal.write_at(&[2; 3000], 0).unwrap();
        assert_eq!(vfs.used_bytes(), 9000);
        assert_eq!(raw_os_error(file.write_at(&[3; 3000], 5000)), Some(libc::ENOSPC));
        assert_eq!(raw_os_error(file.truncate(8000)), Some(libc::ENOSPC));
        assert_eq!(vfs.read_file("db").unwrap(), vec![1; 6000], "the failed write wrote nothing");
        // Overwriting in place and growing within the limit still work.
        file.write_at(&[4; 6000], 0).unwrap();
        file.write_at(&[4; 1000], 6000).unwrap();
        assert_eq!(raw_os_error(file.write_at(&[5; 1], 7000)), Some(libc::ENOSPC));
        wal.truncate(0).unwrap();
        file.write_at(&[5; 3000], 7000).unwrap();
        assert_eq!(vfs.used_bytes(), 10_000);
        assert_eq!(raw_os_error(wal.write_at(b"x", 0)), Some(libc::ENOSPC));
        drop(wal);
        vfs.remove(Path::new("wal")).unwrap();
        file.truncate(9000).unwrap();
        vfs.set_capacity(None);
        file.write_at(&[6; 100_000], 9000).unwrap();
    }

    #[test]
    fn test_helpers() {
        let vfs = SimVfs::new();
        vfs.write_file("b", b"durable");
        vfs.write_file("a", b"x");
        assert_eq!(vfs.file_names(), vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(vfs.durable_len("b"), Some(7));
        assert_eq!(vfs.durable_len("c"), None);
        assert_eq!(vfs.read_file("c"), None);
        vfs.corrupt("b", 0, 0x20).unwrap();
        assert_eq!(vfs.read_file("b").unwrap(), b"Durable");
        vfs.power_cut(0, CutMode::DropAll);
        assert_eq!(vfs.read_file("b").unwrap(), b"Durable", "corruption is on the medium");
        assert_eq!(vfs.corrupt("b", 7, 1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(vfs.corrupt("c", 0, 1).unwrap_err().kind(), io::ErrorKind::NotFound);
        // write_file replaces content that an open handle then sees.
        let file = rw(&vfs, "a");
        file.write_at(b"unsynced", 0).unwrap();
        vfs.write_file("a", b"new");
        assert_eq!(file.size().unwrap(), 3);
        assert_eq!(vfs.unsynced_ops("a"), Some(0));
        assert!(format!("{vfs:?}").contains("3 bytes"));
    }

    #[test]
    fn clones_share_state_across_threads() {
        let vfs = SimVfs::new();
        let file = rw(&vfs, "db");
        file.write_at(&[0; 8 * 1024], 0).unwrap();
        std::thread::scope(|scope| {
            for t in 0..8u8 {
                let file = Arc::clone(&file);
                scope.spawn(move || {
                    for _ in 0..100 {
                        file.write_at(&[t; 1024], u64::from(t) * 1024).unwrap();
                        let mut buf = [0u8; 1024];
                        file.read_at(&mut buf, u64::from(t) * 1024).unwrap();
                        assert_eq!(buf, [t; 1024]);
                    }
                });
            }
        });
        assert_eq!(vfs.clone().op_counts().writes, 801);
    }

    mod model {
        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Write(u64, Vec<u8>),
            Truncate(u64),
            Sync,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0u64..20_000, prop::collection::vec(any::<u8>(), 0..6000)).prop_map(|(o, d)| Op::Write(o, d)),
                1 => (0u64..24_000).prop_map(Op::Truncate),
                1 => Just(Op::Sync),
            ]
        }

        fn apply(model: &mut Vec<u8>, op: &Op) {
            match op {
                Op::Write(offset, data) if !data.is_empty() => {
                    let end = *offset as usize + data.len();
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[*offset as usize..end].copy_from_slice(data);
                }
                Op::Write(..) | Op::Sync => {}
                Op::Truncate(len) => model.resize(*len as usize, 0),
            }
        }

        proptest! {
            /// The sparse content, the durable copy and both fixed cut modes
            /// agree with a plain Vec model.
            #[test]
            fn matches_a_vec_model(ops in prop::collection::vec(op(), 1..40), keep in any::<bool>()) {
                let vfs = SimVfs::new();
                let file = rw(&vfs, "db");
                let mut current = Vec::new();
                let mut durable = Vec::new();
                for op in &ops {
                    match op {
                        Op::Write(offset, data) => file.write_at(data, *offset).unwrap(),
                        Op::Truncate(len) => file.truncate(*len).unwrap(),
                        Op::Sync => {
                            file.sync().unwrap();
                            durable = current.clone();
                        }
                    }
                    apply(&mut current, op);
                    prop_assert_eq!(file.size().unwrap(), current.len() as u64);
                }
                let mut buf = vec![0u8; current.len()];
                file.read_at(&mut buf, 0).unwrap();
                prop_assert_eq!(&buf, &current);
                prop_assert_eq!(vfs.read_durable("db").unwrap(), durable.clone());
                let mode = if keep { CutMode::KeepAll } else { CutMode::DropAll };
                vfs.power_cut(0, mode);
                let expected = if keep { current } else { durable };
                prop_assert_eq!(vfs.read_file("db").unwrap(), expected);
            }

            /// Whatever the seed, a random cut of writes that do not overlap
            /// leaves each written sector either all old or all new, and
            /// reruns with that seed agree.
            #[test]
            fn random_cut_is_sector_atomic_and_deterministic(
                seed in any::<u64>(),
                pages in prop::collection::btree_set(0u64..16, 1..8),
            ) {
                let run = || {
                    let vfs = SimVfs::new();
                    let file = rw(&vfs, "db");
                    file.write_at(&vec![0xee; 16 * 4096], 0).unwrap();
                    file.sync().unwrap();
                    for &page in &pages {
                        file.write_at(&vec![page as u8; 4096], page * 4096).unwrap();
                    }
                    let report = vfs.power_cut(seed, CutMode::Random);
                    (vfs.read_file("db").unwrap(), report)
                };
                let (disk, report) = run();
                prop_assert_eq!(run(), (disk.clone(), report));
                for sector in disk.chunks(512) {
                    prop_assert!(sector.iter().all(|&b| b == sector[0]));
                }
            }
        }
    }
}

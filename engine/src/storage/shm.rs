//! The shared WAL index: `<db>-shm`, mapped by every process that has the
//! database open, plus the byte-range locks that coordinate them.
//!
//! This module owns the byte layout of the shared index and the lock
//! protocol's primitives; what the fields mean to readers, the writer and
//! the checkpoint is `wal_index`'s and the pager's business. Layout (all
//! integers in native byte order, accessed only with atomic operations;
//! docs/format.md, "Shared index"):
//!
//! - a header of WAL state (generation, salt, last commit frame, frames
//!   already copied to the main file, running checksum, rebuild epoch,
//!   checkpoint count), written under a sequence lock and covered by a
//!   CRC-32, so a reader never acts on a half-written header and a torn or
//!   stale one is detected and rebuilt from the WAL;
//! - [`READ_SLOTS`] read marks;
//! - from byte [`FRAMES_AT`] on, the page number of every WAL frame of the
//!   current generation, appended in frame order (4 bytes per frame).
//!
//! Locks are fcntl byte-range locks on bytes of the `-shm` file that hold no
//! data ([`LOCK_BASE`] on). On Linux they are open-file-description locks
//! (`F_OFD_SETLK`), so two handles in one process exclude each other like two
//! processes do; the operating system drops them when the process dies,
//! which is what makes a dead writer or reader harmless. Threads of one
//! handle share its locks; [`LockTable`] keeps per-handle counts so that they
//! do not convert each other's locks.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, RwLock};
use std::time::{Duration, Instant};

// A read-only mapping of the shared index is read with 8-byte relaxed
// atomic loads, which only 64-bit targets perform without a write (a
// 32-bit target may load 8 bytes with a compare-exchange, which faults on
// a read-only page); the main file's private-reader lock byte at 2^40 also
// needs a 64-bit `off_t`.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("obj's shared index (storage/shm.rs) needs a 64-bit target");

/// Bytes of the shared index before the frame array.
pub const FRAMES_AT: usize = 4096;
/// Number of read-mark slots (slot 0 means "reads the main file only").
pub const READ_SLOTS: usize = 16;
/// A read-mark slot that no reader uses.
pub const MARK_UNUSED: u64 = u64::MAX;
/// First lock byte (offset in the `-shm` file).
pub const LOCK_BASE: u64 = 256;
/// The writer lock: exclusive while a write transaction (or a checkpoint,
/// which only the writer runs) is active.
pub const LOCK_WRITE: u32 = 0;
/// The checkpoint lock: exclusive while a checkpoint copies frames.
pub const LOCK_CKPT: u32 = 1;
/// The recovery lock: exclusive while the index is rebuilt from the WAL.
pub const LOCK_RECOVER: u32 = 2;
/// Every open handle holds it shared; exclusive means "the only one": the
/// first opener (which rebuilds the index) and the last closer (which folds
/// the WAL and removes the files).
pub const LOCK_DMS: u32 = 3;
/// Lock index of read-mark slot `i`.
pub const fn lock_read(i: usize) -> u32 {
    4 + i as u32
}
/// Exclusive while a process that is leaving (its last handle closed,
/// others still have the file) waits briefly to become the last one: of
/// processes leaving at the same moment, the one holding it waits and the
/// others go at once, so that the waiter ends up alone and folds the WAL.
pub const LOCK_LEAVE: u32 = 4 + READ_SLOTS as u32;
/// Shared by every handle joined to a set-up index, for its life: the
/// first opener once it has checked and rebuilt it, a later opener that
/// found another handle holding it. DMS held shared alone does not say
/// so: a read-only mapping holds it for a moment while it decides whether
/// to join, and an opener that met only such holders would otherwise skip
/// the first opener's checks.
pub const LOCK_VETTED: u32 = 5 + READ_SLOTS as u32;
/// Number of lock bytes.
pub const LOCK_COUNT: usize = 6 + READ_SLOTS;

const MAGIC: u32 = u32::from_le_bytes(*b"OBJS");
const VERSION: u32 = 1;
const H_MAGIC: usize = 0;
const H_VERSION: usize = 4;
pub(crate) const H_SEQ: usize = 8;
const H_CRC: usize = 12;
pub(crate) const H_GENERATION: usize = 16;
const H_SALT: usize = 24;
const H_MAX_FRAME: usize = 32;
const H_BACKFILLED: usize = 40;
const H_CHAIN: usize = 48;
const H_EPOCH: usize = 56;
const H_CKPT_SEQ: usize = 64;
const H_PREV_MAX: usize = 72;
const H_FILE_ID: usize = 80;
const H_END: usize = 96;
/// Offset of read mark `i` (u64 each).
pub const MARKS_AT: usize = 128;

/// How to lock one lock byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A read lock: many holders.
    Shared,
    /// A write lock: one holder.
    Exclusive,
    /// Release.
    Unlock,
}

/// The shared memory of one open database and its locks, as one handle
/// (one open file description) sees them. All lock calls are non-blocking.
pub trait ShmFile: Send + Sync + fmt::Debug {
    /// Makes at least `len` bytes addressable; when the region is shorter
    /// and `grow`, extends it with zeros first. Without `grow` a shorter
    /// region is an error (another handle has not grown it yet).
    fn map(&self, len: usize, grow: bool) -> io::Result<()>;
    /// Loads the u32 at `offset` (4-aligned, mapped).
    fn load_u32(&self, offset: usize) -> u32;
    /// Stores the u32 at `offset` (4-aligned, mapped).
    fn store_u32(&self, offset: usize, value: u32);
    /// Loads the u64 at `offset` (8-aligned, mapped).
    fn load_u64(&self, offset: usize) -> u64;
    /// Stores the u64 at `offset` (8-aligned, mapped).
    fn store_u64(&self, offset: usize, value: u64);
    /// Loads consecutive u64s from `offset` on (each one atomically, in
    /// order): one call where a reader needs several words.
    fn load_u64s(&self, offset: usize, out: &mut [u64]) {
        for (i, word) in out.iter_mut().enumerate() {
            *word = self.load_u64(offset + 8 * i);
        }
    }
    /// Empties the region (the first opener does, before rebuilding).
    fn reset(&self) -> io::Result<()>;
    /// Takes, converts or releases lock byte `index`; `Ok(false)` when
    /// another handle holds a conflicting lock. Taking a lock this handle
    /// already holds converts it (as fcntl does).
    fn lock(&self, index: u32, kind: LockKind) -> io::Result<bool>;
    /// True while the file at the path this handle was opened with is still
    /// the one it has open (a last closer may have removed it meanwhile).
    fn is_current(&self) -> io::Result<bool>;
    /// Whether a handle other than this one holds lock byte `index` in any
    /// mode; `None` for a region that cannot tell, which is never joined
    /// read-only and whose openers trust any holder of DMS
    /// (`Pager::join_read_only`, `Pager::join`). A region that processes
    /// share and that a read-only mapping may join must tell (a wrapper
    /// passes it on): an opener that met only such a mapping deciding
    /// whether to join would otherwise skip the first opener's checks.
    fn others_hold(&self, index: u32) -> io::Result<Option<bool>>;
}

/// The WAL state kept in the shared header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShmHeader {
    /// WAL generation (as in the WAL header).
    pub generation: u64,
    /// WAL salt of this generation.
    pub salt: u64,
    /// Last committed frame (0: none in this generation).
    pub max_frame: u64,
    /// Frames up to here are in the main file.
    pub backfilled: u64,
    /// Running frame checksum after `max_frame`.
    pub chain: u32,
    /// Page size of the database.
    pub page_size: u32,
    /// Counts rebuilds of the index; a process that sees it change drops
    /// its page cache.
    pub epoch: u64,
    /// Checkpoints that wrote the main file.
    pub ckpt_seq: u64,
    /// Last frame of the previous generation (set at a restart).
    pub prev_max: u64,
    /// File id of the database.
    pub file_id: [u8; 16],
}

/// Why the header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderState {
    /// Never initialised, or not ours (bad magic or version).
    Invalid,
    /// An update is in progress (or its writer died in it), or the checksum
    /// does not match: retry, then rebuild.
    Torn,
}

/// Words of the header covered by its CRC: `H_GENERATION..H_END`.
const CRC_WORDS: usize = (H_END - H_GENERATION) / 8;

fn crc_of(words: &[u64; CRC_WORDS]) -> u32 {
    let mut bytes = [0u8; CRC_WORDS * 8];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    crc32fast::hash(&bytes)
}

fn header_crc(shm: &dyn ShmFile) -> u32 {
    let mut words = [0u64; CRC_WORDS];
    shm.load_u64s(H_GENERATION, &mut words);
    crc_of(&words)
}

/// The word at byte offset `at` of the header among `words`.
fn word(words: &[u64; CRC_WORDS], at: usize) -> u64 {
    words[(at - H_GENERATION) / 8]
}

/// One attempt to read a consistent header.
pub fn read_header(shm: &dyn ShmFile) -> Result<ShmHeader, HeaderState> {
    if shm.load_u32(H_MAGIC) != MAGIC || shm.load_u32(H_VERSION) != VERSION {
        return Err(HeaderState::Invalid);
    }
    let seq = shm.load_u32(H_SEQ);
    if seq & 1 == 1 {
        return Err(HeaderState::Torn);
    }
    // One batch of loads for the fields, in the order the sequence lock
    // needs: sequence, fields, CRC, sequence again.
    let mut words = [0u64; CRC_WORDS];
    shm.load_u64s(H_GENERATION, &mut words);
    let mut file_id = [0u8; 16];
    file_id[..8].copy_from_slice(&word(&words, H_FILE_ID).to_le_bytes());
    file_id[8..].copy_from_slice(&word(&words, H_FILE_ID + 8).to_le_bytes());
    let chain_and_size = word(&words, H_CHAIN);
    let h = ShmHeader {
        generation: word(&words, H_GENERATION),
        salt: word(&words, H_SALT),
        max_frame: word(&words, H_MAX_FRAME),
        backfilled: word(&words, H_BACKFILLED),
        chain: chain_and_size as u32,
        page_size: (chain_and_size >> 32) as u32,
        epoch: word(&words, H_EPOCH),
        ckpt_seq: word(&words, H_CKPT_SEQ),
        prev_max: word(&words, H_PREV_MAX),
        file_id,
    };
    let crc = shm.load_u32(H_CRC);
    if shm.load_u32(H_SEQ) != seq || crc != crc_of(&words) || h.backfilled > h.max_frame {
        return Err(HeaderState::Torn);
    }
    Ok(h)
}

/// Writes the header under the sequence lock. The caller holds the writer
/// lock (or is rebuilding with every lock), so there is one writer at a time.
pub fn write_header(shm: &dyn ShmFile, h: &ShmHeader) {
    let seq = shm.load_u32(H_SEQ);
    // An odd value is left by a writer that died mid-update.
    let odd = seq | 1;
    shm.store_u32(H_SEQ, odd);
    shm.store_u64(H_GENERATION, h.generation);
    shm.store_u64(H_SALT, h.salt);
    shm.store_u64(H_MAX_FRAME, h.max_frame);
    shm.store_u64(H_BACKFILLED, h.backfilled);
    shm.store_u64(H_CHAIN, h.chain as u64 | (h.page_size as u64) << 32);
    shm.store_u64(H_EPOCH, h.epoch);
    shm.store_u64(H_CKPT_SEQ, h.ckpt_seq);
    shm.store_u64(H_PREV_MAX, h.prev_max);
    shm.store_u64(H_FILE_ID, u64::from_le_bytes(h.file_id[..8].try_into().expect("8")));
    shm.store_u64(H_FILE_ID + 8, u64::from_le_bytes(h.file_id[8..].try_into().expect("8")));
    shm.store_u32(H_CRC, header_crc(shm));
    shm.store_u32(H_MAGIC, MAGIC);
    shm.store_u32(H_VERSION, VERSION);
    shm.store_u32(H_SEQ, odd.wrapping_add(1));
}

/// The raw epoch field, readable even when the header is torn (it is one
/// atomic word), so a rebuild can move past it.
pub fn raw_epoch(shm: &dyn ShmFile) -> u64 {
    shm.load_u64(H_EPOCH)
}

/// The raw generation field: one atomic word, so a reader can check
/// without the sequence lock whether a restart has been published.
pub fn raw_generation(shm: &dyn ShmFile) -> u64 {
    shm.load_u64(H_GENERATION)
}

/// Read mark `slot`.
pub fn mark(shm: &dyn ShmFile, slot: usize) -> u64 {
    shm.load_u64(MARKS_AT + 8 * slot)
}

/// Read marks 1.. in one batch of atomic loads (index 0 is left 0): one
/// lock of the mapping for the scan a reader makes to begin, rather than
/// one a slot. A mark may change right after; a reader that acts on one
/// checks it again once it holds the slot.
pub fn marks(shm: &dyn ShmFile) -> [u64; READ_SLOTS] {
    let mut marks = [0u64; READ_SLOTS];
    shm.load_u64s(MARKS_AT + 8, &mut marks[1..]);
    marks
}

/// Sets read mark `slot` (the caller holds its lock exclusively).
pub fn set_mark(shm: &dyn ShmFile, slot: usize, value: u64) {
    shm.store_u64(MARKS_AT + 8 * slot, value)
}

/// Offset of the page number of `frame` (from 1).
pub fn frame_offset(frame: u64) -> usize {
    FRAMES_AT + 4 * (frame as usize - 1)
}

/// The region length needed for `frames` frames, rounded up to 64 KiB so
/// that growth is rare.
pub fn region_len(frames: u64) -> usize {
    let need = FRAMES_AT + 4 * frames as usize;
    need.div_ceil(1 << 16) << 16
}

/// Per-handle lock bookkeeping: threads of one handle share its OS locks,
/// so the handle counts shared holders and refuses in-handle conflicts
/// itself (an fcntl lock request by the same handle would silently convert).
#[derive(Debug, Default)]
pub struct LockTable {
    held: Mutex<[(u32, bool); LOCK_COUNT]>,
}

impl LockTable {
    fn held(&self) -> MutexGuard<'_, [(u32, bool); LOCK_COUNT]> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `index` shared; false on a conflict.
    pub fn shared(&self, shm: &dyn ShmFile, index: u32) -> io::Result<bool> {
        let mut held = self.held();
        let slot = &mut held[index as usize];
        if slot.1 {
            return Ok(false);
        }
        if slot.0 == 0 && !shm.lock(index, LockKind::Shared)? {
            return Ok(false);
        }
        slot.0 += 1;
        Ok(true)
    }

    /// Takes `index` exclusively; false on a conflict (in this handle too).
    pub fn exclusive(&self, shm: &dyn ShmFile, index: u32) -> io::Result<bool> {
        let mut held = self.held();
        let slot = &mut held[index as usize];
        if slot.1 || slot.0 > 0 {
            return Ok(false);
        }
        if !shm.lock(index, LockKind::Exclusive)? {
            return Ok(false);
        }
        slot.1 = true;
        Ok(true)
    }

    /// Converts this handle's only shared hold of `index` to exclusive;
    /// false when another holder (in this handle or another) exists.
    pub fn upgrade(&self, shm: &dyn ShmFile, index: u32) -> io::Result<bool> {
        let mut held = self.held();
        let slot = &mut held[index as usize];
        if slot.1 || slot.0 != 1 || !shm.lock(index, LockKind::Exclusive)? {
            return Ok(false);
        }
        *slot = (0, true);
        Ok(true)
    }

    /// Converts an exclusive hold of `index` to a shared one.
    pub fn downgrade(&self, shm: &dyn ShmFile, index: u32) -> io::Result<()> {
        let mut held = self.held();
        debug_assert!(held[index as usize].1);
        shm.lock(index, LockKind::Shared)?;
        held[index as usize] = (1, false);
        Ok(())
    }

    /// Releases one shared hold of `index`.
    pub fn unlock_shared(&self, shm: &dyn ShmFile, index: u32) {
        let mut held = self.held();
        let slot = &mut held[index as usize];
        if slot.0 == 0 {
            return;
        }
        slot.0 -= 1;
        if slot.0 == 0 {
            // An error (a dead simulated handle) leaves nothing to release.
            let _ = shm.lock(index, LockKind::Unlock);
        }
    }

    /// Releases an exclusive hold of `index`.
    pub fn unlock_exclusive(&self, shm: &dyn ShmFile, index: u32) {
        let mut held = self.held();
        if std::mem::take(&mut held[index as usize].1) {
            let _ = shm.lock(index, LockKind::Unlock);
        }
    }

    /// Releases every lock this handle holds (explicitly: closing the
    /// descriptor would not release them while a forked child still shares
    /// the open file description).
    pub fn release_all(&self, shm: &dyn ShmFile) {
        let mut held = self.held();
        // Highest first: VETTED before DMS, so that a handle is never seen
        // vouching for an index it no longer holds.
        for (index, slot) in held.iter_mut().enumerate().rev() {
            if slot.0 > 0 || slot.1 {
                *slot = (0, false);
                let _ = shm.lock(index as u32, LockKind::Unlock);
            }
        }
    }

    /// Shared holders of `index` in this handle.
    pub fn shared_count(&self, index: u32) -> u32 {
        self.held()[index as usize].0
    }
}

/// The instant `timeout` from now. A timeout too long to represent (such as
/// `Duration::MAX`, "wait for ever") saturates at a distant instant instead
/// of overflowing (`Instant + Duration` panics on overflow).
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// Calls `attempt` until it returns `Some`, backing off between tries,
/// for up to `timeout` (but at least `min_tries` times). `None` on timeout.
pub fn retry<T>(
    timeout: Duration,
    min_tries: u32,
    mut attempt: impl FnMut() -> crate::error::Result<Option<T>>,
) -> crate::error::Result<Option<T>> {
    // The clock is read only once a try has failed: most calls succeed at once.
    let mut deadline = None;
    let mut tries = 0u32;
    let mut pause = Duration::from_micros(20);
    loop {
        if let Some(v) = attempt()? {
            return Ok(Some(v));
        }
        let deadline = *deadline.get_or_insert_with(|| deadline_after(timeout));
        tries += 1;
        if tries >= min_tries && Instant::now() >= deadline {
            return Ok(None);
        }
        if tries < 8 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(4));
        }
    }
}

/// An in-memory shared region with simulated byte-range locks: the
/// simulator's `-shm` (shared by every handle on one path) and the private
/// index of a database whose file system has no shared memory.
#[derive(Debug, Default)]
pub struct MemRegion {
    bytes: Mutex<Vec<u8>>,
    /// Per lock byte: (handle, exclusive) of each holder.
    locks: Mutex<Vec<Vec<(u64, bool)>>>,
}

impl MemRegion {
    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`ShmFile::map`].
    pub fn map(&self, len: usize, grow: bool) -> io::Result<()> {
        let mut bytes = self.bytes();
        if bytes.len() < len {
            if !grow {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "shared index shorter than expected",
                ));
            }
            bytes.resize(len, 0);
        }
        Ok(())
    }

    /// See [`ShmFile::load_u32`].
    pub fn load_u32(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.bytes()[offset..offset + 4].try_into().expect("4"))
    }

    /// See [`ShmFile::store_u32`].
    pub fn store_u32(&self, offset: usize, value: u32) {
        self.bytes()[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
    }

    /// See [`ShmFile::load_u64`].
    pub fn load_u64(&self, offset: usize) -> u64 {
        u64::from_ne_bytes(self.bytes()[offset..offset + 8].try_into().expect("8"))
    }

    /// See [`ShmFile::store_u64`].
    pub fn store_u64(&self, offset: usize, value: u64) {
        self.bytes()[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
    }

    /// See [`ShmFile::reset`].
    pub fn reset(&self) {
        self.bytes().clear();
    }

    /// See [`ShmFile::lock`]; `handle` names the holder.
    pub fn lock(&self, handle: u64, index: u32, kind: LockKind) -> bool {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() < LOCK_COUNT {
            locks.resize(LOCK_COUNT, Vec::new());
        }
        let holders = &mut locks[index as usize];
        let others = holders.iter().filter(|(h, _)| *h != handle);
        let granted = match kind {
            LockKind::Unlock => true,
            LockKind::Shared => others.clone().all(|(_, excl)| !excl),
            LockKind::Exclusive => others.count() == 0,
        };
        if granted {
            holders.retain(|(h, _)| *h != handle);
            if kind != LockKind::Unlock {
                holders.push((handle, kind == LockKind::Exclusive));
            }
        }
        granted
    }

    /// True when some handle holds any lock.
    pub fn any_holder(&self) -> bool {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|h| !h.is_empty())
    }

    /// Releases every lock of `handle` (its process died or it closed).
    pub fn release_all(&self, handle: u64) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        for holders in locks.iter_mut() {
            holders.retain(|(h, _)| *h != handle);
        }
    }
}

/// A private, unshared index: for a file system without shared memory, or
/// a read-only open that cannot create a writable `-shm`.
#[derive(Debug, Default)]
pub struct HeapShm {
    region: MemRegion,
}

impl ShmFile for HeapShm {
    fn map(&self, len: usize, grow: bool) -> io::Result<()> {
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
        self.region.reset();
        Ok(())
    }
    fn lock(&self, index: u32, kind: LockKind) -> io::Result<bool> {
        Ok(self.region.lock(0, index, kind))
    }
    fn is_current(&self) -> io::Result<bool> {
        Ok(true)
    }
    fn others_hold(&self, _index: u32) -> io::Result<Option<bool>> {
        Ok(None) // one handle's own memory: nobody else to tell of
    }
}

/// The `-shm` path of a database path (`app.obj` → `app.obj-shm`).
pub fn shm_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-shm");
    PathBuf::from(s)
}

/// Descriptors of open `-shm` files, and of main files holding a `flock`,
/// for [`after_fork_in_child`]. A
/// fixed array of atomics, because the handler runs in a forked child where
/// only async-signal-safe operations are allowed (no locks, no allocation).
static SHM_FDS: [AtomicI32; 256] = [const { AtomicI32::new(-1) }; 256];
static DEV_NULL: AtomicI32 = AtomicI32::new(-1);
static DEV_NULL_OPEN: Once = Once::new();

/// Runs in the child of every fork(): an OFD lock belongs to the open file
/// description, which a child shares through its copy of the descriptor,
/// so a child that merely lives on (say, a worker process that never
/// touches the database) would keep the parent's locks alive after the
/// parent closed the database or died. Pointing the child's copies at
/// /dev/null drops its reference without freeing the descriptor numbers
/// (the parent's handle objects, refused in the child, still close them).
/// It also counts the fork (see [`fork_count`]).
extern "C" fn after_fork_in_child() {
    // A lock-free atomic add is async-signal-safe.
    FORKS.fetch_add(1, Ordering::Relaxed);
    let null = DEV_NULL.load(Ordering::Relaxed);
    if null < 0 {
        return;
    }
    for slot in &SHM_FDS {
        let fd = slot.load(Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: dup2 is async-signal-safe; both are descriptors this
            // process owns (the child's copies of the parent's).
            unsafe { libc::dup2(null, fd) };
        }
    }
}

/// Forks this process has been through as a child (see [`fork_count`]).
static FORKS: AtomicU64 = AtomicU64::new(0);
static FORK_HANDLER: Once = Once::new();

/// Registers [`after_fork_in_child`], once per process.
fn install_fork_handler() {
    FORK_HANDLER.call_once(|| {
        // SAFETY: registers a child handler that only touches static
        // atomics and calls dup2.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// How many times this process came out of fork() as the child since the
/// first call: a handle that recorded a different count was opened by an
/// ancestor. One atomic load, where asking the kernel for the process id
/// is a system call on every transaction.
pub fn fork_count() -> u64 {
    install_fork_handler();
    FORKS.load(Ordering::Relaxed)
}

pub(crate) fn register_fd(fd: i32) {
    DEV_NULL_OPEN.call_once(|| {
        use std::os::unix::io::IntoRawFd;
        if let Ok(null) = File::open("/dev/null") {
            DEV_NULL.store(null.into_raw_fd(), Ordering::Relaxed);
        }
    });
    install_fork_handler();
    // More than 256 open -shm files at once: the rest are not protected.
    for slot in &SHM_FDS {
        if slot.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return;
        }
    }
}

pub(crate) fn unregister_fd(fd: i32) {
    for slot in &SHM_FDS {
        if slot.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return;
        }
    }
}

/// The operating system's shared memory: the `-shm` file mapped with
/// memmap2, locked with fcntl.
pub struct OsShm {
    file: File,
    path: PathBuf,
    map: RwLock<Option<memmap2::MmapRaw>>,
    /// The process that mapped it (see `Drop`).
    pid: u32,
    /// Opened for reading only (see [`OsShm::open_read_only`]).
    read_only: bool,
}

impl fmt::Debug for OsShm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OsShm({})", self.path.display())
    }
}

#[cfg(target_os = "linux")]
const SETLK: libc::c_int = libc::F_OFD_SETLK;
#[cfg(target_os = "linux")]
const GETLK: libc::c_int = libc::F_OFD_GETLK;
#[cfg(not(target_os = "linux"))]
const SETLK: libc::c_int = libc::F_SETLK;
#[cfg(not(target_os = "linux"))]
const GETLK: libc::c_int = libc::F_GETLK;

/// An fcntl request of kind `kind` (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) on
/// the one byte at `offset`.
fn byte_request(offset: u64, kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct of integers, for which all-zero
    // bytes are a valid value (and l_pid must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    fl
}

/// Takes, converts or releases (`kind`) the lock of open file `fd` on the
/// byte at `offset`, without waiting: `Ok(false)` when another holder's
/// lock conflicts. (Open file description locks on Linux: two opens in one
/// process exclude each other like two processes.)
pub(crate) fn set_byte_lock(fd: RawFd, offset: u64, kind: libc::c_int) -> io::Result<bool> {
    let mut fl = byte_request(offset, kind);
    // SAFETY: fcntl on a descriptor the caller owns, with a pointer to a
    // live, properly initialised flock struct.
    if unsafe { libc::fcntl(fd, SETLK, &mut fl as *mut libc::flock) } == -1 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
            _ => Err(e),
        };
    }
    Ok(true)
}

/// Whether another open file holds a lock, of any kind, on the byte at
/// `offset` of the file `fd` is open on: asked as a write lock, which
/// conflicts with every other holder's lock and with none of `fd`'s own.
pub(crate) fn byte_held_elsewhere(fd: RawFd, offset: u64) -> io::Result<bool> {
    let mut fl = byte_request(offset, libc::F_WRLCK);
    // SAFETY: as in `set_byte_lock`.
    if unsafe { libc::fcntl(fd, GETLK, &mut fl as *mut libc::flock) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

impl OsShm {
    /// Opens (creating) the `-shm` file read-write.
    pub fn open(path: &Path) -> io::Result<OsShm> {
        use std::os::unix::fs::OpenOptionsExt;
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(path)?;
        Ok(OsShm::of(file, path, false))
    }

    /// The handle of `file`, open at `path`, registered for `fork`.
    fn of(file: File, path: &Path, read_only: bool) -> OsShm {
        use std::os::unix::io::AsRawFd;
        register_fd(file.as_raw_fd());
        OsShm { file, path: path.to_path_buf(), map: RwLock::new(None), pid: std::process::id(), read_only }
    }

    /// Opens an existing `-shm` file for reading only, for a read-only
    /// handle that may not write it (a read-only mount or directory, a file
    /// of another user) while other processes have the database open: it
    /// maps the region read-only, takes shared locks only (an exclusive
    /// one is reported as held by another handle, since a read-only
    /// descriptor cannot take it) and never grows, empties or stores into
    /// the region. A read then uses a read mark another handle set (see
    /// `WalIndex::try_begin_read`).
    pub fn open_read_only(path: &Path) -> io::Result<OsShm> {
        Ok(OsShm::of(File::open(path)?, path, true))
    }

    /// A store into a read-only handle's region: no path of such a handle
    /// writes the shared index (it never commits, checkpoints or rebuilds:
    /// each of those first takes an exclusive lock it cannot get).
    fn refuse_store(&self) {
        panic!("a read-only handle stored into the shared index {}", self.path.display());
    }

    /// The ordering of a load: sequentially consistent, or relaxed on a
    /// read-only mapping (the kind of load allowed there), which
    /// [`OsShm::after_load`] then orders with fences.
    fn load_order(&self) -> Ordering {
        if self.read_only {
            fence(Ordering::SeqCst);
            Ordering::Relaxed
        } else {
            Ordering::SeqCst
        }
    }

    /// After a relaxed load of a read-only mapping: a fence, so that the
    /// load orders with what follows it as a sequentially consistent one
    /// would (the header's sequence checks rely on that).
    fn after_load(&self) {
        if self.read_only {
            fence(Ordering::SeqCst);
        }
    }

    /// Whether some handle holds lock `index` (any mode), asked through a
    /// read-only descriptor of the `-shm` file at `path`; false when there
    /// is no such file.
    pub fn locked_by_anyone(path: &Path, index: u32) -> io::Result<bool> {
        use std::os::unix::io::AsRawFd;
        match File::open(path) {
            Ok(file) => byte_held_elsewhere(file.as_raw_fd(), LOCK_BASE + index as u64),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Calls `f` with a pointer to `size` mapped bytes at `offset`
    /// (`align`-aligned), under one hold of the mapping's lock.
    fn with_ptr<T>(&self, offset: usize, size: usize, align: usize, f: impl FnOnce(*mut u8) -> T) -> T {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let map = map.as_ref().expect("the shared index is mapped before use");
        assert!(
            offset + size <= map.len() && offset.is_multiple_of(align),
            "shared index access out of bounds"
        );
        // SAFETY: `offset + size` is within the mapping (checked above), so
        // the pointer stays inside the mapped object.
        f(unsafe { map.as_mut_ptr().add(offset) })
    }
}

impl Drop for OsShm {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        unregister_fd(self.file.as_raw_fd());
        if std::process::id() != self.pid {
            // A forked child never inherited the mapping (MADV_DONTFORK):
            // unmapping its range could unmap something else there now.
            let map = self.map.get_mut().unwrap_or_else(|p| p.into_inner()).take();
            std::mem::forget(map);
        }
    }
}

/// Gives the first `len` bytes of `file` disk blocks before they are
/// mapped. `set_len` leaves a hole, and a store into a mapped hole the
/// filesystem has no room for is a SIGBUS that kills the process; a full
/// disk must be an error of the open or the commit instead (as SQLite
/// writes its `-shm` regions before it maps them). The same holds for a
/// `-shm` left sparse by a process that died growing it. Blocks already
/// there keep their bytes. The `fallocate` system call itself, not
/// glibc's `posix_fallocate`: where the filesystem cannot reserve, that
/// one falls back to reading and writing a byte of every block, which
/// would race with other processes' stores into the mapped region; here
/// such a filesystem is left to the old way.
#[cfg(target_os = "linux")]
fn reserve_blocks(file: &File, len: usize) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: fallocate on a descriptor this handle owns; it reads and
        // writes no memory of ours.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL | libc::ENODEV) => return Ok(()),
            _ => return Err(e),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve_blocks(_file: &File, _len: usize) -> io::Result<()> {
    Ok(())
}

impl OsShm {
    /// [`ShmFile::map`], whose errors (a full disk as the file grows) do
    /// not name the file.
    fn map_unnamed(&self, len: usize, grow: bool) -> io::Result<()> {
        if self.map.read().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|m| m.len() >= len) {
            return Ok(());
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.as_ref().is_some_and(|m| m.len() >= len) {
            return Ok(());
        }
        let mut size = self.file.metadata()?.len() as usize;
        if size < len {
            if !grow || self.read_only {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "shared index shorter than expected",
                ));
            }
            self.file.set_len(len as u64)?;
            size = len;
        }
        let raw = if self.read_only {
            memmap2::MmapOptions::new().len(size).map_raw_read_only(&self.file)?
        } else {
            reserve_blocks(&self.file, size)?;
            memmap2::MmapOptions::new().len(size).map_raw(&self.file)?
        };
        // A mapping references the open file description like a descriptor
        // does: inherited by a forked child, it would keep this handle's
        // locks alive after this process died (see `after_fork_in_child`).
        // SAFETY: advises on exactly the range just mapped.
        #[cfg(target_os = "linux")]
        if unsafe { libc::madvise(raw.as_mut_ptr().cast(), raw.len(), libc::MADV_DONTFORK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        *map = Some(raw);
        Ok(())
    }
}

impl ShmFile for OsShm {
    fn map(&self, len: usize, grow: bool) -> io::Result<()> {
        self.map_unnamed(len, grow)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }

    fn load_u32(&self, offset: usize) -> u32 {
        let order = self.load_order();
        // SAFETY: the pointer is in bounds and 4-aligned (the mapping is
        // page-aligned and `with_ptr` checks the offset); every access to
        // the shared region is atomic, so there is no data race. A
        // read-only mapping is only loaded from, with relaxed loads of at
        // most 8 bytes, which std's atomics documentation ("Atomic accesses
        // to read-only memory") allows on read-only memory on 64-bit
        // targets (the only ones this builds for; see below).
        let v = self.with_ptr(offset, 4, 4, |p| unsafe { AtomicU32::from_ptr(p.cast()) }.load(order));
        self.after_load();
        v
    }

    fn store_u32(&self, offset: usize, value: u32) {
        if self.read_only {
            return self.refuse_store();
        }
        // SAFETY: as in `load_u32`, on a writable mapping.
        self.with_ptr(offset, 4, 4, |p| {
            unsafe { AtomicU32::from_ptr(p.cast()) }.store(value, Ordering::SeqCst)
        })
    }

    fn load_u64(&self, offset: usize) -> u64 {
        let order = self.load_order();
        // SAFETY: as in `load_u32`, with 8-byte alignment.
        let v = self.with_ptr(offset, 8, 8, |p| unsafe { AtomicU64::from_ptr(p.cast()) }.load(order));
        self.after_load();
        v
    }

    fn store_u64(&self, offset: usize, value: u64) {
        if self.read_only {
            return self.refuse_store();
        }
        // SAFETY: as in `load_u64`, on a writable mapping.
        self.with_ptr(offset, 8, 8, |p| {
            unsafe { AtomicU64::from_ptr(p.cast()) }.store(value, Ordering::SeqCst)
        })
    }

    fn load_u64s(&self, offset: usize, out: &mut [u64]) {
        let order = self.load_order();
        // One lock of the mapping for the whole run rather than one a word.
        self.with_ptr(offset, 8 * out.len(), 8, |p| {
            for (i, word) in out.iter_mut().enumerate() {
                // SAFETY: `8 * i + 8` bytes from `p` are mapped (checked by
                // `with_ptr`) and 8-aligned in a page-aligned mapping; every
                // access to the shared region is atomic, so there is no data
                // race (read-only mappings: as in `load_u32`).
                *word = unsafe { AtomicU64::from_ptr(p.add(8 * i).cast()) }.load(order);
                self.after_load();
            }
        })
    }

    fn reset(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        *map = None;
        self.file.set_len(0)
    }

    fn lock(&self, index: u32, kind: LockKind) -> io::Result<bool> {
        use std::os::unix::io::AsRawFd;
        let t = match kind {
            LockKind::Shared => libc::F_RDLCK,
            // A write lock needs a descriptor open for writing.
            LockKind::Exclusive if self.read_only => return Ok(false),
            LockKind::Exclusive => libc::F_WRLCK,
            LockKind::Unlock => libc::F_UNLCK,
        };
        set_byte_lock(self.file.as_raw_fd(), LOCK_BASE + index as u64, t)
    }

    fn is_current(&self) -> io::Result<bool> {
        crate::storage::file::path_names(&self.path, &self.file)
    }

    fn others_hold(&self, index: u32) -> io::Result<Option<bool>> {
        use std::os::unix::io::AsRawFd;
        byte_held_elsewhere(self.file.as_raw_fd(), LOCK_BASE + index as u64).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_torn_detection() {
        let shm = HeapShm::default();
        shm.map(region_len(0), true).unwrap();
        assert_eq!(read_header(&shm), Err(HeaderState::Invalid));
        let h = ShmHeader {
            generation: 3,
            salt: 77,
            max_frame: 10,
            backfilled: 4,
            chain: 0xdead_beef,
            page_size: 4096,
            epoch: 2,
            ckpt_seq: 5,
            prev_max: 9,
            file_id: [7; 16],
        };
        write_header(&shm, &h);
        assert_eq!(read_header(&shm), Ok(h));
        // A writer that died mid-update leaves an odd sequence number.
        shm.store_u32(H_SEQ, shm.load_u32(H_SEQ) + 1);
        assert_eq!(read_header(&shm), Err(HeaderState::Torn));
        write_header(&shm, &h);
        assert_eq!(read_header(&shm), Ok(h));
        // A flipped field fails the checksum.
        shm.store_u64(H_MAX_FRAME, 11);
        assert_eq!(read_header(&shm), Err(HeaderState::Torn));
    }

    #[test]
    fn lock_table_refuses_in_handle_conflicts() {
        let shm = HeapShm::default();
        let t = LockTable::default();
        assert!(t.shared(&shm, 5).unwrap());
        assert!(t.shared(&shm, 5).unwrap());
        assert!(!t.exclusive(&shm, 5).unwrap(), "a shared holder in this handle blocks exclusive");
        assert!(!t.upgrade(&shm, 5).unwrap(), "two holders: no upgrade");
        t.unlock_shared(&shm, 5);
        assert!(t.upgrade(&shm, 5).unwrap());
        assert!(!t.shared(&shm, 5).unwrap());
        t.downgrade(&shm, 5).unwrap();
        assert!(t.shared(&shm, 5).unwrap());
        t.unlock_shared(&shm, 5);
        t.unlock_shared(&shm, 5);
        assert!(t.exclusive(&shm, 5).unwrap());
        t.unlock_exclusive(&shm, 5);
    }

    #[test]
    fn mem_region_locks_between_handles() {
        let r = MemRegion::default();
        assert!(r.lock(1, 0, LockKind::Shared));
        assert!(r.lock(2, 0, LockKind::Shared));
        assert!(!r.lock(3, 0, LockKind::Exclusive));
        r.release_all(2);
        assert!(!r.lock(3, 0, LockKind::Exclusive));
        assert!(r.lock(1, 0, LockKind::Exclusive), "the only holder converts");
        assert!(!r.lock(2, 0, LockKind::Shared));
        assert!(r.lock(1, 0, LockKind::Unlock));
        assert!(r.lock(3, 0, LockKind::Exclusive));
    }

    #[test]
    fn os_locks_exclude_two_handles_in_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-shm");
        let a = OsShm::open(&path).unwrap();
        let b = OsShm::open(&path).unwrap();
        a.map(region_len(10), true).unwrap();
        b.map(region_len(10), false).unwrap();
        a.store_u64(MARKS_AT, 42);
        assert_eq!(b.load_u64(MARKS_AT), 42, "both map the same memory");
        assert!(a.lock(LOCK_WRITE, LockKind::Exclusive).unwrap());
        assert!(!b.lock(LOCK_WRITE, LockKind::Exclusive).unwrap());
        assert!(!b.lock(LOCK_WRITE, LockKind::Shared).unwrap());
        assert!(OsShm::locked_by_anyone(&path, LOCK_WRITE).unwrap());
        assert!(!OsShm::locked_by_anyone(&path, LOCK_DMS).unwrap());
        a.lock(LOCK_WRITE, LockKind::Unlock).unwrap();
        assert!(b.lock(LOCK_WRITE, LockKind::Shared).unwrap());
        assert!(a.lock(LOCK_WRITE, LockKind::Shared).unwrap());
        drop(b);
        assert!(a.lock(LOCK_WRITE, LockKind::Exclusive).unwrap(), "closing b released its lock");
        assert!(a.is_current().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(!a.is_current().unwrap());
    }

    /// The mapped part of the file has its disk blocks before the mapping
    /// is written (a store into a hole on a full disk is a SIGBUS), both
    /// when the map grows the file and when it maps a file another process
    /// left sparse.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_mapped_shared_index_has_its_blocks() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-shm");
        let allocated = || std::fs::metadata(&path).unwrap().blocks() * 512;
        let (one, two) = (region_len(0), region_len(20_000));
        assert!(two > one);
        let a = OsShm::open(&path).unwrap();
        a.map(one, true).unwrap();
        assert!(allocated() >= one as u64, "{}", allocated());
        drop(a);
        // A file grown by set_len alone (a process killed before it
        // reserved) is a hole past its first region.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(two as u64).unwrap();
        assert!(allocated() < two as u64);
        let b = OsShm::open(&path).unwrap();
        b.map(two, false).unwrap();
        assert!(allocated() >= two as u64, "{}", allocated());
    }

    /// A region that cannot grow (a full disk, or here a read-only handle)
    /// names its file: the error reaches users as the open's or the
    /// commit's, which name the database, not the `-shm` beside it.
    #[test]
    fn a_failed_map_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-shm");
        std::fs::write(&path, b"").unwrap();
        let e = OsShm::open_read_only(&path).unwrap().map(region_len(0), true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().starts_with(&format!("{}: ", path.display())), "{e}");
    }
}

//! The WAL index: which frame holds the version of a page that a snapshot
//! may see, and which snapshots (read marks) are in use, in every process.
//!
//! The authoritative state lives in the shared index ([`crate::storage::shm`]):
//! the header, the read-mark slots and the frame → page array. Each process
//! keeps a private page → frames map of the current WAL generation, brought
//! up to date from the shared array when a transaction begins (frames are
//! only ever appended within a generation, so this is incremental).
//!
//! Invariants (across all processes):
//! - `backfilled <= max_frame`, and `backfilled` only grows within a
//!   generation (a rebuild resets it only when no reader exists anywhere);
//! - a checkpoint copies no frame past the smallest read mark of any held
//!   slot, nor anything while slot 0 (main-file-only readers) is held;
//! - the WAL restarts only with every slot 1.. free (slot-0 readers read the
//!   main file only and do not care).
//!
//! A reader's own view is `(generation, max_frame, backfilled)` as of its
//! start; the mark value of its slot is a lower bound of `max_frame`, which
//! is all the checkpoint needs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, PageNo, Result};
use crate::storage::cache::CacheKey;
use crate::storage::shm::{
    self, lock_read, read_header, write_header, HeaderState, LockTable, ShmFile, ShmHeader, MARK_UNUSED,
    READ_SLOTS,
};

/// A cheap hasher for page numbers (they are already well spread).
#[derive(Default, Clone, Copy)]
pub struct PageNoHasher(u64);

impl Hasher for PageNoHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | *b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    // Each write folds into what came before, so that a cache key's
    // generation counts too, not only its page or frame number.
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A `HashMap` keyed by page numbers with [`PageNoHasher`].
pub type PageMap<V> = HashMap<PageNo, V, BuildHasherDefault<PageNoHasher>>;

/// Marks a cache key as "the main file's copy of a page" rather than a
/// frame: `(tag | BASE_KEY, pgno)`. The tag names a run of generations over
/// which this process kept its cached main-file pages true (see
/// [`WalIndex::finish_restart`]); a generation this process did not restart
/// itself starts a new run, tagged with its own number.
pub const BASE_KEY: u64 = 1 << 63;

/// The cache key of the main file's copy of `pgno` in the run tagged `base`.
pub fn main_key(base: u64, pgno: PageNo) -> CacheKey {
    (base | BASE_KEY, pgno as u64)
}

/// What a snapshot sees: frames `1..=max_frame` of WAL generation
/// `generation`, of which `1..=backfilled` were in the main file when it
/// began (it reads those from there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    /// WAL generation the frames belong to.
    pub generation: u64,
    /// Newest frame visible.
    pub max_frame: u64,
    /// Frames already in the main file at the start.
    pub backfilled: u64,
    /// The read-mark slot held (shared) for this snapshot; `None` for the
    /// writer, which needs none (only it checkpoints or restarts the WAL).
    pub slot: Option<usize>,
}

/// Where a page version lives for one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSource {
    /// In the main file.
    Main,
    /// In this WAL frame of the current generation.
    Frame(u64),
}

/// The frames of one page in the current generation, ascending. Most pages
/// have one frame, kept inline so that a lookup reads no second allocation.
#[derive(Debug, Default)]
struct Frames {
    /// The oldest frame (0: none yet; frame numbers start at 1).
    first: u64,
    /// The later ones.
    rest: Vec<u64>,
}

impl Frames {
    fn push(&mut self, frame: u64) {
        debug_assert!(frame > self.rest.last().copied().unwrap_or(self.first), "frames ascend");
        if self.first == 0 {
            self.first = frame;
        } else {
            self.rest.push(frame);
        }
    }

    /// The newest frame at or below `max_frame`.
    fn newest(&self, max_frame: u64) -> Option<u64> {
        match self.rest.partition_point(|&f| f <= max_frame) {
            0 => (self.first != 0 && self.first <= max_frame).then_some(self.first),
            n => Some(self.rest[n - 1]),
        }
    }
}

#[derive(Debug, Default)]
struct Local {
    generation: u64,
    /// The tag of main-file cache keys in this generation (see [`BASE_KEY`]).
    base: u64,
    epoch: u64,
    max_frame: u64,
    map: PageMap<Frames>,
}

impl Local {
    /// Empties the map for `generation`, whose main-file pages start a run
    /// of their own (tagged `generation`, see [`BASE_KEY`]).
    fn reset(&mut self, generation: u64, filter: &PageFilter) {
        self.reset_with_base(generation, generation, filter);
    }

    /// Empties the map for `generation`, whose main-file pages are cached
    /// under `base`.
    fn reset_with_base(&mut self, generation: u64, base: u64, filter: &PageFilter) {
        self.generation = generation;
        self.base = base;
        self.max_frame = 0;
        self.map.clear();
        filter.reset(generation, base);
    }

    /// Records that `frame` holds a version of `pgno`.
    fn push(&mut self, pgno: PageNo, frame: u64, filter: &PageFilter) {
        filter.add(pgno);
        self.map.entry(pgno).or_default().push(frame);
    }

    fn newest(&self, pgno: PageNo, max_frame: u64) -> Option<u64> {
        self.map.get(&pgno)?.newest(max_frame)
    }
}

/// Which pages may have a frame in the private map's generation: one bit
/// per page number modulo the filter's size, set before a frame of the
/// page enters the map and cleared only when the map is reset. A reader
/// whose page's bit is clear knows, without taking the map's lock, that the
/// page lives in the main file. Every page read by every thread of a handle
/// would otherwise take that lock, and with two threads reading the lock
/// word moves between their cores on every read.
#[derive(Debug)]
struct PageFilter {
    /// Even while the bits are valid for `generation`; odd while a reset
    /// rewrites them (a reader seeing it change does not trust its bit).
    version: AtomicU64,
    generation: AtomicU64,
    /// The map's main-file tag for `generation` (see [`BASE_KEY`]).
    base: AtomicU64,
    bits: Box<[AtomicU64]>,
}

/// Bits in the filter: with the WAL's usual 1,000 frames at most as many
/// pages are set, so about 1.5% of other pages share a bit with one.
const FILTER_BITS: usize = 1 << 16;

impl PageFilter {
    fn new() -> Self {
        PageFilter {
            version: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            base: AtomicU64::new(0),
            bits: (0..FILTER_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn word_and_bit(pgno: PageNo) -> (usize, u64) {
        let i = pgno as usize % FILTER_BITS;
        (i / 64, 1 << (i % 64))
    }

    /// Called with the map's write lock held, before the frame is in the
    /// map, so that no reader can find the frame and miss the bit.
    fn add(&self, pgno: PageNo) {
        let (w, bit) = Self::word_and_bit(pgno);
        if self.bits[w].load(Ordering::Relaxed) & bit == 0 {
            self.bits[w].fetch_or(bit, Ordering::Release);
        }
    }

    /// Empties the filter for `generation`, whose main-file tag is `base`
    /// (map's write lock held).
    fn reset(&self, generation: u64, base: u64) {
        self.version.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        for w in self.bits.iter() {
            w.store(0, Ordering::Relaxed);
        }
        self.generation.store(generation, Ordering::Relaxed);
        self.base.store(base, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The main-file tag when `pgno` surely has no frame in `generation`
    /// in the map (`check_bit` false: whatever its frames), else `None`.
    fn base_if_absent(&self, pgno: PageNo, generation: u64, check_bit: bool) -> Option<u64> {
        let v = self.version.load(Ordering::Acquire);
        if v % 2 == 1 || self.generation.load(Ordering::Relaxed) != generation {
            return None;
        }
        let base = self.base.load(Ordering::Relaxed);
        let (w, bit) = Self::word_and_bit(pgno);
        let clear = !check_bit || self.bits[w].load(Ordering::Acquire) & bit == 0;
        fence(Ordering::Acquire);
        (clear && self.version.load(Ordering::Relaxed) == v).then_some(base)
    }
}

/// What [`WalIndex::refresh`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Up to date with the header.
    Current,
    /// Up to date, and the index was rebuilt since this process last
    /// looked (the caller's `on_rebuild` ran).
    Rebuilt,
    /// The shared state changed while reading it: try again.
    Retry,
}

/// See the module documentation.
#[derive(Debug)]
pub struct WalIndex {
    shm: Arc<dyn ShmFile>,
    locks: LockTable,
    local: RwLock<Local>,
    filter: PageFilter,
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::io(format!("{what} (shared index)"), e)
}

impl WalIndex {
    /// An index over `shm`, whose locks this handle tracks in `locks`.
    pub fn new(shm: Arc<dyn ShmFile>, locks: LockTable) -> Self {
        WalIndex { shm, locks, local: RwLock::new(Local::default()), filter: PageFilter::new() }
    }

    /// The shared region.
    pub fn shm(&self) -> &dyn ShmFile {
        &*self.shm
    }

    /// One attempt to read the shared header.
    pub fn header(&self) -> std::result::Result<ShmHeader, HeaderState> {
        read_header(&*self.shm)
    }

    /// Takes lock `index` exclusively (non-blocking).
    pub fn lock_exclusive(&self, index: u32) -> Result<bool> {
        self.locks.exclusive(&*self.shm, index).map_err(|e| io("locking", e))
    }

    /// Takes lock `index` shared (non-blocking).
    pub fn lock_shared(&self, index: u32) -> Result<bool> {
        self.locks.shared(&*self.shm, index).map_err(|e| io("locking", e))
    }

    /// Converts this handle's shared hold of `index` to exclusive.
    pub fn upgrade(&self, index: u32) -> Result<bool> {
        self.locks.upgrade(&*self.shm, index).map_err(|e| io("locking", e))
    }

    /// Converts an exclusive hold to shared.
    pub fn downgrade(&self, index: u32) -> Result<()> {
        self.locks.downgrade(&*self.shm, index).map_err(|e| io("locking", e))
    }

    /// Releases an exclusive hold.
    pub fn unlock_exclusive(&self, index: u32) {
        self.locks.unlock_exclusive(&*self.shm, index)
    }

    /// Releases every lock of this handle (it is closing).
    pub fn release_all(&self) {
        self.locks.release_all(&*self.shm)
    }

    /// Releases a shared hold.
    pub fn unlock_shared(&self, index: u32) {
        self.locks.unlock_shared(&*self.shm, index)
    }

    /// Brings the private page map up to `h` (a consistent header). When
    /// the shared index was rebuilt since this process last looked, runs
    /// `on_rebuild` first (to drop cached pages: frame numbers may name
    /// other pages now), before any other thread can see the new index.
    pub fn refresh(&self, h: &ShmHeader, on_rebuild: impl FnOnce()) -> Result<Refresh> {
        {
            let l = self.local.read().unwrap_or_else(|p| p.into_inner());
            if l.epoch == h.epoch && l.generation == h.generation && l.max_frame == h.max_frame {
                return Ok(Refresh::Current);
            }
        }
        let mut l = self.local.write().unwrap_or_else(|p| p.into_inner());
        let mut outcome = Refresh::Current;
        if l.epoch != h.epoch {
            // A header read before another process's rebuild (this thread
            // was slow) must not take the map back to the old epoch under
            // the snapshots other threads began in the new one. (Epochs
            // are not ordered: a rebuild of a zeroed region starts over.)
            if shm::raw_epoch(&*self.shm) != h.epoch {
                return Ok(Refresh::Retry);
            }
            // Under the map's lock: a thread that finds the map current
            // must find the cache cleared too.
            on_rebuild();
            l.epoch = h.epoch;
            l.reset(h.generation, &self.filter);
            outcome = Refresh::Rebuilt;
        }
        // The local map is shared by every thread of this handle and only
        // moves forward: a thread holding an older header must not take it
        // back, or another thread's newer snapshot would look up frames the
        // map no longer has and read older page versions. Within one
        // generation frames are only appended, so a map ahead of `h`
        // answers for `h` too; an older generation's header is stale.
        if l.generation == h.generation && h.max_frame <= l.max_frame {
            return Ok(outcome);
        }
        if h.generation < l.generation {
            return Ok(Refresh::Retry);
        }
        if l.generation != h.generation {
            l.reset(h.generation, &self.filter);
        }
        if h.max_frame > l.max_frame {
            self.shm.map(shm::FRAMES_AT + 4 * h.max_frame as usize, false).map_err(|e| io("mapping", e))?;
            let from = l.max_frame + 1;
            let pgnos: Vec<PageNo> =
                (from..=h.max_frame).map(|frame| self.shm.load_u32(shm::frame_offset(frame))).collect();
            // The frames read belong to this generation only if it is
            // still current (a restart rewrites the array after moving on).
            // Until that is known they stay out of the map, and the map
            // keeps what it had: the frames before `from` are this
            // process's live snapshots' (a torn read of the header only
            // means another process is writing it).
            match read_header(&*self.shm) {
                Ok(now)
                    if now.generation == h.generation
                        && now.epoch == h.epoch
                        && now.max_frame >= h.max_frame =>
                {
                    for (frame, pgno) in (from..).zip(pgnos) {
                        l.push(pgno, frame, &self.filter);
                    }
                    l.max_frame = h.max_frame;
                }
                _ => return Ok(Refresh::Retry),
            }
        }
        Ok(outcome)
    }

    /// Where `pgno` lives for `mark`, and the cache key of that version.
    /// A snapshot of an older generation than the index (a main-file-only
    /// reader that outlived a restart) reads the main file, which is the
    /// current generation's base: nothing has been copied since.
    pub fn locate(&self, pgno: PageNo, mark: &ReadMark) -> (CacheKey, PageSource) {
        // Without the map's lock when the filter answers: with no frame in
        // the snapshot (the main file stays the base of the mark's
        // generation while the snapshot lives: it holds slot 0, which keeps
        // checkpoints out, or it is the writer, the only one that
        // checkpoints), or with no frame of this page in the generation.
        if let Some(base) = self.filter.base_if_absent(pgno, mark.generation, mark.max_frame > 0) {
            return (main_key(base, pgno), PageSource::Main);
        }
        let l = self.local.read().unwrap_or_else(|p| p.into_inner());
        if mark.generation != l.generation {
            return (main_key(l.base, pgno), PageSource::Main);
        }
        match l.newest(pgno, mark.max_frame) {
            None => (main_key(l.base, pgno), PageSource::Main),
            Some(f) if f <= mark.backfilled => ((l.generation, f), PageSource::Main),
            Some(f) => ((l.generation, f), PageSource::Frame(f)),
        }
    }

    /// Newest frame of `pgno` at or below `max_frame` (current generation).
    pub fn find(&self, pgno: PageNo, max_frame: u64) -> Option<u64> {
        self.local.read().unwrap_or_else(|p| p.into_inner()).newest(pgno, max_frame)
    }

    /// One attempt to begin a read at `h` (consistent, refreshed): takes a
    /// read-mark slot shared and checks that nothing moved meanwhile.
    /// `None`: try again.
    pub fn try_begin_read(&self, h: &ShmHeader) -> Result<Option<ReadMark>> {
        let shm = &*self.shm;
        if h.max_frame == h.backfilled {
            // Everything is in the main file: read it alone, under slot 0,
            // which keeps checkpoints from changing it.
            if !self.lock_shared(lock_read(0))? {
                return Ok(None);
            }
            match read_header(shm) {
                Ok(now)
                    if now.generation == h.generation
                        && now.epoch == h.epoch
                        && now.backfilled == h.max_frame =>
                {
                    return Ok(Some(ReadMark {
                        generation: h.generation,
                        max_frame: h.max_frame,
                        backfilled: h.max_frame,
                        slot: Some(0),
                    }));
                }
                _ => {
                    self.unlock_shared(lock_read(0));
                    return Ok(None);
                }
            }
        }
        // The slot with the largest mark not past our snapshot (a mark
        // that changes after this scan fails the check below, once held)...
        let marks = shm::marks(shm);
        let mut best: Option<(usize, u64)> = None;
        for (i, &m) in marks.iter().enumerate().skip(1) {
            if m != MARK_UNUSED && m <= h.max_frame && !matches!(best, Some((_, b)) if m < b) {
                best = Some((i, m));
            }
        }
        let mut taken = None;
        if !matches!(best, Some((_, m)) if m >= h.max_frame) {
            // ...or a free slot set to exactly our snapshot.
            for i in 1..READ_SLOTS {
                if self.lock_exclusive(lock_read(i))? {
                    shm::set_mark(shm, i, h.max_frame);
                    self.downgrade(lock_read(i))?;
                    taken = Some((i, h.max_frame));
                    break;
                }
            }
        }
        let (slot, value) = match (taken, best) {
            (Some(t), _) => t,
            (None, Some(b)) => {
                if !self.lock_shared(lock_read(b.0))? {
                    return Ok(None);
                }
                b
            }
            (None, None) => return Ok(None),
        };
        // Held now: checkpoints that start from now on copy nothing past
        // `value`. Check that the mark is still ours and that nothing was
        // committed since `h`: a checkpoint already running computed its
        // limit without our slot, but from a last frame that is still ours
        // only if no commit came in between (else it may be copying frames
        // past our snapshot into the main file). And that the WAL was not
        // wholly copied meanwhile: such a snapshot reads under slot 0 (try
        // again), never in a WAL slot, which a restart (it needs the WAL
        // wholly copied) may be resetting right now, before it publishes
        // the new generation: a slot entered in between would keep an old
        // frame number as its mark under the new generation.
        match read_header(shm) {
            Ok(now)
                if shm::mark(shm, slot) == value
                    && now.generation == h.generation
                    && now.epoch == h.epoch
                    && now.max_frame == h.max_frame
                    && now.backfilled < h.max_frame =>
            {
                Ok(Some(ReadMark {
                    generation: h.generation,
                    max_frame: h.max_frame,
                    backfilled: now.backfilled,
                    slot: Some(slot),
                }))
            }
            _ => {
                self.unlock_shared(lock_read(slot));
                Ok(None)
            }
        }
    }

    /// Releases the slot of a mark from [`WalIndex::try_begin_read`].
    pub fn end_read(&self, mark: &ReadMark) {
        if let Some(slot) = mark.slot {
            self.unlock_shared(lock_read(slot));
        }
    }

    /// Snapshots of this process holding a slot.
    pub fn reader_count(&self) -> usize {
        (0..READ_SLOTS).map(|i| self.locks.shared_count(lock_read(i)) as usize).sum()
    }

    /// Records the committed frames `first..` (their page numbers in frame
    /// order) and publishes `h` (whose `max_frame` is the last of them), so
    /// that transactions beginning from now on, in any process, see them.
    /// The caller holds the writer lock.
    pub fn publish(&self, first: u64, pgnos: &[PageNo], h: &ShmHeader) -> Result<()> {
        let shm = &*self.shm;
        shm.map(shm::region_len(h.max_frame), true).map_err(|e| io("growing", e))?;
        for (i, &pgno) in pgnos.iter().enumerate() {
            shm.store_u32(shm::frame_offset(first + i as u64), pgno);
        }
        write_header(shm, h);
        let mut l = self.local.write().unwrap_or_else(|p| p.into_inner());
        if l.generation == h.generation && l.epoch == h.epoch && l.max_frame + 1 == first {
            for (i, &pgno) in pgnos.iter().enumerate() {
                l.push(pgno, first + i as u64, &self.filter);
            }
            l.max_frame = h.max_frame;
        }
        Ok(())
    }

    /// Writes `h` (a checkpoint or restart by the writer).
    pub fn write_header(&self, h: &ShmHeader) {
        write_header(&*self.shm, h)
    }

    /// The frame a checkpoint may copy up to: the smallest mark of any held
    /// slot, reclaiming the slots whose holders are gone (their locks died
    /// with them). Leaves a slot marking the last frame: a reader on a
    /// read-only mapping cannot set a mark and enters the newest one at or
    /// below its snapshot, so without one it would keep entering the old
    /// marks of slots that readers like it never leave free, and the WAL
    /// could never be wholly copied. The caller holds the writer and
    /// checkpoint locks.
    pub fn safe_frame(&self, h: &ShmHeader) -> Result<u64> {
        let shm = &*self.shm;
        let mut safe = h.max_frame;
        let mut newest_marked = false;
        for i in 1..READ_SLOTS {
            let m = shm::mark(shm, i);
            newest_marked |= m == h.max_frame;
            if m == MARK_UNUSED || m >= safe {
                continue;
            }
            if self.lock_exclusive(lock_read(i))? {
                // (Slot 1 comes first: `safe` is still the last frame.)
                shm::set_mark(shm, i, if i == 1 { safe } else { MARK_UNUSED });
                newest_marked |= i == 1;
                self.unlock_exclusive(lock_read(i));
            } else {
                safe = m;
            }
        }
        if !newest_marked {
            for i in 1..READ_SLOTS {
                if self.lock_exclusive(lock_read(i))? {
                    shm::set_mark(shm, i, h.max_frame);
                    self.unlock_exclusive(lock_read(i));
                    break;
                }
            }
        }
        Ok(safe)
    }

    /// Pages with a frame in `(after, upto]`, each with its newest such frame.
    pub fn frames_to_copy(&self, after: u64, upto: u64) -> Vec<(PageNo, u64)> {
        let l = self.local.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(PageNo, u64)> = l
            .map
            .iter()
            .filter_map(|(&pgno, frames)| {
                let f = frames.newest(upto)?;
                (f > after).then_some((pgno, f))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// True when every reader in any process that holds a WAL slot (1..)
    /// right now reads up to `frame` (its slot marks `frame`), so that a
    /// checkpoint could copy the WAL up to `frame` (the last frame: all of
    /// it, and the WAL restart). Slots marked unused have no holders
    /// (readers only join slots with a mark).
    pub fn wal_readers_at(&self, frame: u64) -> Result<bool> {
        for i in 1..READ_SLOTS {
            let m = shm::mark(&*self.shm, i);
            if m == MARK_UNUSED || m == frame {
                continue;
            }
            if !self.lock_exclusive(lock_read(i))? {
                return Ok(false);
            }
            self.unlock_exclusive(lock_read(i));
        }
        Ok(true)
    }

    /// Prepares a WAL restart of the fully backfilled generation `h`: takes
    /// every free slot 1.. exclusively. A slot held by readers is fine only
    /// when its mark is `h.max_frame`: those readers' snapshots are wholly in
    /// the main file (a WAL frame they are reading at the moment is checked
    /// against the generation afterwards; see the pager's `read_page`).
    /// Returns the slots taken (a bit per slot), `None` (nothing held) when
    /// a reader with an older mark exists.
    pub fn lock_readers_for_restart(&self, h: &ShmHeader) -> Result<Option<u32>> {
        debug_assert_eq!(h.max_frame, h.backfilled);
        let mut taken = 0u32;
        for i in 1..READ_SLOTS {
            if self.lock_exclusive(lock_read(i))? {
                taken |= 1 << i;
            } else if shm::mark(&*self.shm, i) != h.max_frame {
                for j in 1..i {
                    if taken & (1 << j) != 0 {
                        self.unlock_exclusive(lock_read(j));
                    }
                }
                return Ok(None);
            }
        }
        Ok(Some(taken))
    }

    /// Finishes a restart begun by [`WalIndex::lock_readers_for_restart`]:
    /// resets the marks, publishes the new generation `h`, empties the
    /// private map and releases the slots. Slots still held by readers of
    /// the old generation get mark 0: they read the main file, which must
    /// not change under them, so they allow no copying until they end. The
    /// marks go first: a writer killed between the two steps must not leave
    /// such a slot marking an old frame number under the new header, where
    /// a checkpoint would take it for a reader of the new frames (under the
    /// old generation, whose frames are all in the main file, marks of 0
    /// only hold copying back).
    ///
    /// `carry`, when this process knows every frame of the old generation,
    /// keeps the cached main-file pages: the new generation keeps the old
    /// one's tag, and `carry` is called with it, under the private map's
    /// write lock (before any thread of this process can look a page up in
    /// the new generation), to drop or replace each cached main-file page
    /// that the old generation's frames changed. The other cached main-file
    /// pages stay true: the checkpoint changed nothing else. Without it the
    /// new generation gets a tag of its own, and those pages miss once.
    pub fn finish_restart(&self, h: &ShmHeader, taken: u32, carry: Option<impl FnOnce(u64)>) {
        let shm = &*self.shm;
        let mut l = self.local.write().unwrap_or_else(|p| p.into_inner());
        for i in 1..READ_SLOTS {
            let free = taken & (1 << i) != 0;
            shm::set_mark(shm, i, if !free || i == 1 { 0 } else { MARK_UNUSED });
        }
        write_header(shm, h);
        let base = if carry.is_some() { l.base } else { h.generation };
        l.reset_with_base(h.generation, base, &self.filter);
        l.epoch = h.epoch;
        if let Some(carry) = carry {
            carry(base);
        }
        drop(l);
        for i in 1..READ_SLOTS {
            if taken & (1 << i) != 0 {
                self.unlock_exclusive(lock_read(i));
            }
        }
    }

    /// For every page with frames in generation `h` (fully known to this
    /// process: its private map reaches `h.max_frame`), the page's newest
    /// frame. `None` when the map is of another generation or behind.
    pub fn newest_frames(&self, h: &ShmHeader) -> Option<PageMap<u64>> {
        let l = self.local.read().unwrap_or_else(|p| p.into_inner());
        if l.generation != h.generation || l.max_frame != h.max_frame {
            return None;
        }
        Some(l.map.iter().filter_map(|(&pgno, frames)| Some((pgno, frames.newest(h.max_frame)?))).collect())
    }

    /// The generation as published right now (one atomic load).
    pub fn current_generation(&self) -> u64 {
        shm::raw_generation(&*self.shm)
    }

    /// The cache key of the main file's copy of `pgno` in generation
    /// `generation`, or `None` when the private map is not there yet (the
    /// page may then be read but not cached: its tag is not decided).
    pub fn base_key(&self, pgno: PageNo, generation: u64) -> Option<CacheKey> {
        let l = self.local.read().unwrap_or_else(|p| p.into_inner());
        (l.generation == generation).then(|| main_key(l.base, pgno))
    }

    /// Rewrites the whole shared index from a WAL scan: the frames (frame
    /// number, page number, in order) and header `h`. The caller holds
    /// every lock (or is the only opener); read marks are reset.
    pub fn rebuild(&self, h: &ShmHeader, frames: &[(u64, PageNo)]) -> Result<()> {
        let shm = &*self.shm;
        shm.map(shm::region_len(h.max_frame), true).map_err(|e| io("growing", e))?;
        for &(frame, pgno) in frames {
            shm.store_u32(shm::frame_offset(frame), pgno);
        }
        shm::set_mark(shm, 0, 0);
        shm::set_mark(shm, 1, h.max_frame);
        for i in 2..READ_SLOTS {
            shm::set_mark(shm, i, MARK_UNUSED);
        }
        write_header(shm, h);
        let mut l = self.local.write().unwrap_or_else(|p| p.into_inner());
        l.reset(h.generation, &self.filter);
        l.epoch = h.epoch;
        for &(frame, pgno) in frames {
            l.push(pgno, frame, &self.filter);
        }
        l.max_frame = h.max_frame;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::shm::HeapShm;

    fn index() -> WalIndex {
        index_on(Arc::new(HeapShm::default()))
    }

    /// An index on `shm`, rebuilt empty at generation 1, epoch 1.
    fn index_on(shm: Arc<dyn ShmFile>) -> WalIndex {
        let idx = WalIndex::new(shm, LockTable::default());
        let h = ShmHeader { generation: 1, epoch: 1, page_size: 4096, ..ShmHeader::default() };
        idx.rebuild(&h, &[]).unwrap();
        idx
    }

    /// Two handles on one `TestShm`: the first has committed pages 5
    /// and 6 as frames 1 and 2; the second has not looked yet.
    fn two_handles_on_test_shm() -> (Arc<TestShm>, WalIndex, WalIndex) {
        let shared = Arc::new(TestShm::default());
        let first = index_on(shared.clone());
        let second = WalIndex::new(shared.clone(), LockTable::default());
        commit(&first, 1, &[5, 6]);
        (shared, first, second)
    }

    /// [`two_handles_on_test_shm`], the second handle's map brought up
    /// to the first commit, then the first handle's rebuild of the index
    /// (epoch 2) with `frames` (frame, page): the shared region, the
    /// second handle, and the headers before and after the rebuild.
    fn rebuilt_by_another_handle(frames: &[(u64, PageNo)]) -> (Arc<TestShm>, WalIndex, ShmHeader, ShmHeader) {
        let (shared, other, this) = two_handles_on_test_shm();
        let before = this.header().unwrap();
        assert_eq!(this.refresh(&before, || {}).unwrap(), Refresh::Rebuilt);
        let rebuilt = ShmHeader { epoch: 2, max_frame: frames.len() as u64, ..before };
        other.rebuild(&rebuilt, frames).unwrap();
        let after = this.header().unwrap();
        (shared, this, before, after)
    }

    fn commit(idx: &WalIndex, first: u64, pgnos: &[PageNo]) -> ShmHeader {
        let mut h = idx.header().unwrap();
        h.max_frame = first + pgnos.len() as u64 - 1;
        idx.publish(first, pgnos, &h).unwrap();
        h
    }

    fn begin(idx: &WalIndex) -> ReadMark {
        let h = idx.header().unwrap();
        assert_eq!(idx.refresh(&h, || {}).unwrap(), Refresh::Current);
        idx.try_begin_read(&h).unwrap().unwrap()
    }

    #[test]
    fn find_respects_snapshot() {
        let idx = index();
        commit(&idx, 1, &[5, 6]);
        commit(&idx, 3, &[5]);
        assert_eq!(idx.find(5, 2), Some(1));
        assert_eq!(idx.find(5, 3), Some(3));
        assert_eq!(idx.find(6, 1), None);
        assert_eq!(idx.find(7, 3), None);
        assert_eq!(idx.frames_to_copy(0, 2), vec![(5, 1), (6, 2)]);
        assert_eq!(idx.frames_to_copy(2, 3), vec![(5, 3)]);
    }

    #[test]
    fn readers_bound_checkpoint_and_restart() {
        let idx = index();
        commit(&idx, 1, &[5]);
        let r1 = begin(&idx);
        assert_eq!((r1.max_frame, r1.slot), (1, Some(1)));
        let h = commit(&idx, 2, &[5]);
        assert_eq!(idx.safe_frame(&h).unwrap(), 1, "r1 holds slot 1 at mark 1");
        idx.write_header(&ShmHeader { backfilled: 1, ..h });
        // Were the WAL wholly backfilled (what a restart needs), r1 would still hold it.
        let all_copied = ShmHeader { backfilled: 2, ..idx.header().unwrap() };
        assert_eq!(idx.lock_readers_for_restart(&all_copied).unwrap(), None, "r1's mark is 1 < 2");
        assert_eq!(idx.locate(5, &r1), ((1, 1), PageSource::Frame(1)), "r1 began before the copy");
        let r2 = begin(&idx);
        assert_eq!(r2.backfilled, 1);
        assert_eq!(idx.locate(5, &r2), ((1, 2), PageSource::Frame(2)));
        assert_eq!(idx.locate(6, &r2), ((1 | BASE_KEY, 6), PageSource::Main));
        idx.end_read(&r1);
        idx.end_read(&r2);
        let h = idx.header().unwrap();
        assert_eq!(idx.safe_frame(&h).unwrap(), 2);
        idx.write_header(&ShmHeader { backfilled: 2, ..h });
        let r3 = begin(&idx);
        assert_eq!(r3.slot, Some(0), "fully backfilled: reader uses the main file");
        let taken = idx.lock_readers_for_restart(&idx.header().unwrap()).unwrap();
        assert_eq!(taken, Some(0xfffe), "slot-0 readers do not block a restart");
        let h = ShmHeader { generation: 2, max_frame: 0, backfilled: 0, prev_max: 2, ..h };
        idx.finish_restart(&h, taken.unwrap(), None::<fn(u64)>);
        assert_eq!(idx.locate(5, &r3), ((2 | BASE_KEY, 5), PageSource::Main));
        idx.end_read(&r3);
        assert_eq!(idx.reader_count(), 0);
    }

    /// A shared region for tests: its sequence word reads odd (another
    /// process in the middle of writing the header) once, at the
    /// `tear_at`-th read; `before_header` runs (once) as a header write
    /// begins; and each header write that ends notes the generation
    /// published and the read marks: what another process could do, or
    /// would find if the writer were killed, right then. On a heap region
    /// by default.
    struct TestShm {
        inner: Arc<dyn ShmFile>,
        tear_at: std::sync::atomic::AtomicI64,
        before_header: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
        seen: std::sync::Mutex<Vec<(u64, Vec<u64>)>>,
    }

    impl Default for TestShm {
        fn default() -> Self {
            TestShm::on(Arc::new(HeapShm::default()))
        }
    }

    impl std::fmt::Debug for TestShm {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("TestShm")
        }
    }

    impl TestShm {
        fn on(inner: Arc<dyn ShmFile>) -> Self {
            TestShm { inner, tear_at: 0.into(), before_header: Default::default(), seen: Default::default() }
        }
    }

    impl ShmFile for TestShm {
        fn map(&self, len: usize, grow: bool) -> std::io::Result<()> {
            self.inner.map(len, grow)
        }
        fn load_u32(&self, offset: usize) -> u32 {
            let v = self.inner.load_u32(offset);
            let tear = offset == shm::H_SEQ && self.tear_at.fetch_sub(1, Ordering::Relaxed) == 1;
            if tear {
                v | 1
            } else {
                v
            }
        }
        fn store_u32(&self, offset: usize, value: u32) {
            let begins = offset == shm::H_SEQ && !value.is_multiple_of(2);
            if let Some(hook) = begins.then(|| self.before_header.lock().unwrap().take()).flatten() {
                hook();
            }
            self.inner.store_u32(offset, value);
            if offset == shm::H_SEQ && value.is_multiple_of(2) {
                let marks = (1..READ_SLOTS).map(|i| shm::mark(&*self.inner, i)).collect();
                let generation = self.inner.load_u64(shm::H_GENERATION);
                self.seen.lock().unwrap().push((generation, marks));
            }
        }
        fn load_u64(&self, offset: usize) -> u64 {
            self.inner.load_u64(offset)
        }
        fn store_u64(&self, offset: usize, value: u64) {
            self.inner.store_u64(offset, value)
        }
        fn reset(&self) -> std::io::Result<()> {
            self.inner.reset()
        }
        fn lock(&self, index: u32, kind: shm::LockKind) -> std::io::Result<bool> {
            self.inner.lock(index, kind)
        }
        fn is_current(&self) -> std::io::Result<bool> {
            self.inner.is_current()
        }
        fn others_hold(&self, index: u32) -> std::io::Result<Option<bool>> {
            self.inner.others_hold(index)
        }
    }

    /// Another process's commit, whose header this process reads torn
    /// while taking in the new frames, leaves this process's map as it
    /// was: a live snapshot still finds its frames (it used to lose them
    /// all and read older versions from the main file).
    #[test]
    fn a_torn_header_keeps_the_frames_live_snapshots_need() {
        let (shared, writer, reader) = two_handles_on_test_shm();
        let h = reader.header().unwrap();
        assert_eq!(reader.refresh(&h, || {}).unwrap(), Refresh::Rebuilt);
        let r = reader.try_begin_read(&h).unwrap().unwrap();
        assert_eq!(reader.locate(5, &r), ((1, 1), PageSource::Frame(1)));

        commit(&writer, 3, &[7]);
        let h = reader.header().unwrap();
        shared.tear_at.store(1, Ordering::Relaxed);
        assert_eq!(
            reader.refresh(&h, || {}).unwrap(),
            Refresh::Retry,
            "the check after the frames read torn"
        );
        assert_eq!(reader.locate(5, &r), ((1, 1), PageSource::Frame(1)), "the snapshot keeps its frame");
        assert_eq!(reader.locate(6, &r), ((1, 2), PageSource::Frame(2)));

        // The next try takes the frame in, once.
        assert_eq!(reader.refresh(&h, || {}).unwrap(), Refresh::Current);
        assert_eq!(reader.find(7, 3), Some(3));
        assert_eq!(reader.find(5, 3), Some(1));
        reader.end_read(&r);
    }

    /// A rebuild by another handle runs `on_rebuild` (the pager clears
    /// its cache: frame numbers may name other pages after a rebuild)
    /// before any other thread of the process can find the map current,
    /// and once, also when the check after reading the frames reads torn.
    #[test]
    fn a_rebuild_runs_on_rebuild_once_before_the_map_is_seen() {
        let (shared, this, _, h) = rebuilt_by_another_handle(&[(1, 6), (2, 5)]);
        shared.tear_at.store(1, Ordering::Relaxed);
        let runs = std::cell::Cell::new(0);
        let on_rebuild = || {
            assert!(this.local.try_read().is_err(), "the map is locked meanwhile");
            runs.set(runs.get() + 1);
        };
        assert_eq!(this.refresh(&h, on_rebuild).unwrap(), Refresh::Retry);
        assert_eq!(runs.get(), 1);
        let h = this.header().unwrap();
        assert_eq!(this.refresh(&h, || runs.set(runs.get() + 1)).unwrap(), Refresh::Current);
        assert_eq!(runs.get(), 1, "once");
        assert_eq!(this.find(6, 2), Some(1), "the rebuilt index's frames");
    }

    /// A thread that read the header before another process rebuilt the
    /// index, and refreshes only after another thread began a snapshot in
    /// the new epoch, leaves the map to that snapshot (it used to take the
    /// map back to the old epoch, and the snapshot then read its WAL pages
    /// from the main file). Found by the session-36 review.
    #[test]
    fn a_header_from_before_a_rebuild_leaves_the_map_alone() {
        let (_, this, h_old, h_new) = rebuilt_by_another_handle(&[(1, 5), (2, 6), (3, 7)]);
        assert_eq!(this.refresh(&h_new, || {}).unwrap(), Refresh::Rebuilt);
        let r = this.try_begin_read(&h_new).unwrap().unwrap();
        assert_eq!(this.locate(7, &r), ((1, 3), PageSource::Frame(3)));

        let runs = std::cell::Cell::new(0);
        assert_eq!(this.refresh(&h_old, || runs.set(runs.get() + 1)).unwrap(), Refresh::Retry);
        assert_eq!(runs.get(), 0, "the cache is not cleared for a stale header");
        assert_eq!(this.locate(7, &r), ((1, 3), PageSource::Frame(3)), "the live snapshot keeps its frame");
        this.end_read(&r);
    }

    /// Regions of one `-shm` file in a temporary directory, each its own
    /// open file description: the locks of as many processes.
    fn os_regions() -> (tempfile::TempDir, impl Fn() -> Arc<dyn ShmFile>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-shm");
        let open = move || -> Arc<dyn ShmFile> {
            let shm = Arc::new(shm::OsShm::open(&path).unwrap());
            shm.map(shm::region_len(0), true).unwrap();
            shm
        };
        (dir, open)
    }

    /// A restart resets the read marks before it publishes the new
    /// generation: a writer killed in between used to leave the slot of a
    /// reader of the old generation (in another process) marking an old
    /// frame number under the new header, and the next checkpoint took it
    /// for a reader that sees the new frames and copied them into the main
    /// file under it. Found by the session-37 review.
    #[test]
    fn a_restart_resets_the_marks_before_it_publishes_the_new_generation() {
        let (_dir, open) = os_regions();
        let shared = Arc::new(TestShm::on(open()));
        let writer = index_on(shared.clone());
        let reader = WalIndex::new(open(), LockTable::default());
        let h = commit(&writer, 1, &[5, 6, 7]);
        assert_ne!(reader.refresh(&h, || {}).unwrap(), Refresh::Retry);
        let r = reader.try_begin_read(&h).unwrap().unwrap();
        assert_eq!((r.slot, r.max_frame), (Some(1), 3));

        let h = ShmHeader { backfilled: 3, ..writer.header().unwrap() };
        writer.write_header(&h);
        let taken = writer.lock_readers_for_restart(&h).unwrap().expect("r marks the last frame");
        assert_eq!(taken & (1 << 1), 0, "r holds slot 1");
        shared.seen.lock().unwrap().clear();
        let restarted = ShmHeader { generation: 2, max_frame: 0, backfilled: 0, prev_max: 3, ..h };
        writer.finish_restart(&restarted, taken, None::<fn(u64)>);
        let seen = shared.seen.lock().unwrap();
        let (generation, marks) = &seen[0];
        assert_eq!(*generation, 2);
        assert_eq!(marks[0], 0, "slot 1 as generation 2 is published");
        drop(seen);
        assert_eq!(
            writer.safe_frame(&commit(&writer, 1, &[5, 6])).unwrap(),
            0,
            "r still reads the main file"
        );
        reader.end_read(&r);
    }

    /// A reader with a header from before the checkpoint, taking a slot
    /// freed during a restart (between the reset of the marks and the new
    /// header), does not begin in it: the WAL was wholly in the main file
    /// by then, so it tries again (and reads under slot 0). It used to
    /// begin with its old frame number as the slot's mark, which the new
    /// generation's checkpoints then took for a reader of the new frames.
    /// Found by the session-37 review of the reordered restart.
    #[test]
    fn a_slot_freed_during_a_restart_is_not_entered_with_an_old_frame() {
        let (_dir, open) = os_regions();
        let shared = Arc::new(TestShm::on(open()));
        let writer = index_on(shared.clone());
        let (a, b) =
            (WalIndex::new(open(), LockTable::default()), WalIndex::new(open(), LockTable::default()));
        let before_checkpoint = commit(&writer, 1, &[5, 6, 7]);
        assert_ne!(a.refresh(&before_checkpoint, || {}).unwrap(), Refresh::Retry);
        assert_ne!(b.refresh(&before_checkpoint, || {}).unwrap(), Refresh::Retry);
        let ra = a.try_begin_read(&before_checkpoint).unwrap().unwrap();
        let h = ShmHeader { backfilled: 3, ..writer.header().unwrap() };
        writer.write_header(&h);
        let taken = writer.lock_readers_for_restart(&h).unwrap().expect("a marks the last frame");
        assert_eq!(taken & (1 << ra.slot.unwrap()), 0, "a holds its slot");
        let began = Arc::new(std::sync::Mutex::new(None));
        let noted = began.clone();
        *shared.before_header.lock().unwrap() = Some(Box::new(move || {
            a.end_read(&ra);
            *noted.lock().unwrap() = Some(b.try_begin_read(&before_checkpoint).unwrap());
        }));
        let restarted = ShmHeader { generation: 2, max_frame: 0, backfilled: 0, prev_max: 3, ..h };
        writer.finish_restart(&restarted, taken, None::<fn(u64)>);
        assert_eq!(began.lock().unwrap().take(), Some(None), "b tries again");
        let h2 = commit(&writer, 1, &[5, 6, 7, 8]);
        assert_eq!(writer.safe_frame(&h2).unwrap(), 4, "no reader holds a WAL slot");
    }

    #[test]
    fn page_filter_never_hides_a_page_with_a_frame() {
        let f = PageFilter::new();
        let mut l = Local::default();
        l.reset(7, &f);
        let with_frames = [1u32, 2, 900, 65_537, 1 << 20];
        for (i, &p) in with_frames.iter().enumerate() {
            l.push(p, i as u64 + 1, &f);
        }
        for &p in &with_frames {
            assert!(f.base_if_absent(p, 7, true).is_none(), "page {p} has a frame");
        }
        // Another page sharing a bit is not claimed absent either; most
        // pages are.
        assert!(f.base_if_absent(1 + FILTER_BITS as u32, 7, true).is_none());
        let absent = (3..2000u32).filter(|&p| p != 900 && f.base_if_absent(p, 7, true).is_some()).count();
        assert_eq!(absent, 1997 - 1);
        // Another generation: the filter knows nothing of it.
        assert!(f.base_if_absent(3, 8, true).is_none());
        l.reset(8, &f);
        assert!(f.base_if_absent(1, 8, true).is_some(), "a reset empties the filter");
        assert!(f.base_if_absent(1, 7, true).is_none(), "and it no longer speaks for generation 7");
    }
}

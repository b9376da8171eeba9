//! The WAL index: which frame holds the newest version of a page that a
//! snapshot may see, and which snapshots (read marks) are still in use.
//!
//! This is the state that several processes will share once the WAL index
//! moves into shared memory; everything else in the pager asks it through
//! this interface only. Invariants:
//! - frames of a page are recorded in increasing order;
//! - `backfilled <= max_frame`;
//! - the WAL restarts only when `backfilled == max_frame` and no reader
//!   holds a mark above 0 (mark 0 = "reads the main file only").

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, RwLock};

use crate::error::PageNo;

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
    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A `HashMap` keyed by page numbers with [`PageNoHasher`].
pub type PageMap<V> = HashMap<PageNo, V, BuildHasherDefault<PageNoHasher>>;

/// What a reader may see: frames `1..=max_frame` of WAL generation
/// `generation`. `max_frame == 0` means the main file alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    /// WAL generation the frames belong to.
    pub generation: u64,
    /// Newest frame visible.
    pub max_frame: u64,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    max_frame: u64,
    backfilled: u64,
    /// Active readers by (generation, mark).
    readers: BTreeMap<(u64, u64), usize>,
}

#[derive(Debug, Default)]
struct Frames {
    generation: u64,
    /// Frames up to here are in the main file (mirrors `State::backfilled`).
    backfilled: u64,
    map: PageMap<Vec<u64>>,
}

/// Where a page version lives for one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSource {
    /// In the main file.
    Main,
    /// In this WAL frame of the current generation.
    Frame(u64),
}

/// Page → frames map plus reader marks for one WAL generation.
#[derive(Debug, Default)]
pub struct WalIndex {
    frames: RwLock<Frames>,
    state: Mutex<State>,
}

impl WalIndex {
    /// An empty index for WAL generation `generation`.
    pub fn new(generation: u64) -> Self {
        WalIndex {
            frames: RwLock::new(Frames { generation, ..Frames::default() }),
            state: Mutex::new(State { generation, ..State::default() }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds where `pgno` lives for `mark` and calls `read` with it while
    /// holding the index's shared lock, so that the WAL cannot restart (and
    /// recycle the frame) until the read is done. A snapshot that is wholly
    /// in the main file (its frames all backfilled, or of an older
    /// generation) reads the main file.
    pub fn with_source<T>(&self, pgno: PageNo, mark: ReadMark, read: impl FnOnce(PageSource) -> T) -> T {
        let frames = self.frames.read().unwrap_or_else(|p| p.into_inner());
        let source = if mark.max_frame == 0
            || mark.generation != frames.generation
            || mark.max_frame <= frames.backfilled
        {
            PageSource::Main
        } else {
            match frames.map.get(&pgno) {
                Some(list) => {
                    let n = list.partition_point(|&f| f <= mark.max_frame);
                    if n > 0 {
                        PageSource::Frame(list[n - 1])
                    } else {
                        PageSource::Main
                    }
                }
                None => PageSource::Main,
            }
        };
        read(source)
    }

    /// Newest frame of `pgno` at or below `max_frame` (current generation).
    pub fn find(&self, pgno: PageNo, max_frame: u64) -> Option<u64> {
        let frames = self.frames.read().unwrap_or_else(|p| p.into_inner());
        let list = frames.map.get(&pgno)?;
        let n = list.partition_point(|&f| f <= max_frame);
        (n > 0 && max_frame > 0).then(|| list[n - 1])
    }

    /// Records committed frames (in frame order) and publishes `max_frame`
    /// so that readers starting from now on see them.
    pub fn publish(&self, frames: impl IntoIterator<Item = (u64, PageNo)>, max_frame: u64) {
        {
            let mut f = self.frames.write().unwrap_or_else(|p| p.into_inner());
            for (frame, pgno) in frames {
                f.map.entry(pgno).or_default().push(frame);
            }
        }
        self.state().max_frame = max_frame;
    }

    /// Registers a reader and returns its mark.
    pub fn begin_read(&self) -> ReadMark {
        let mut s = self.state();
        let mark = if s.backfilled == s.max_frame { 0 } else { s.max_frame };
        let generation = s.generation;
        *s.readers.entry((generation, mark)).or_default() += 1;
        ReadMark { generation, max_frame: mark }
    }

    /// Releases a mark returned by [`WalIndex::begin_read`].
    pub fn end_read(&self, mark: ReadMark) {
        let mut s = self.state();
        let key = (mark.generation, mark.max_frame);
        if let Some(n) = s.readers.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                s.readers.remove(&key);
            }
        }
    }

    /// The newest committed state, for the writer (which needs no mark:
    /// only the writer itself checkpoints or restarts).
    pub fn writer_mark(&self) -> ReadMark {
        let s = self.state();
        ReadMark { generation: s.generation, max_frame: s.max_frame }
    }

    /// Frames a checkpoint may copy now: up to the oldest active reader's
    /// mark (a reader of the main file, or of an older generation, counts
    /// as 0: it allows no copying), and not past the last commit.
    /// Returns `(backfilled, limit)`.
    pub fn checkpoint_window(&self) -> (u64, u64) {
        let s = self.state();
        let oldest =
            s.readers.keys().map(|&(g, m)| if g == s.generation { m } else { 0 }).min().unwrap_or(u64::MAX);
        (s.backfilled, s.max_frame.min(oldest))
    }

    /// Pages with a frame in `(after, upto]`, each with its newest such frame.
    pub fn frames_to_copy(&self, after: u64, upto: u64) -> Vec<(PageNo, u64)> {
        let frames = self.frames.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(PageNo, u64)> = frames
            .map
            .iter()
            .filter_map(|(&pgno, list)| {
                let n = list.partition_point(|&f| f <= upto);
                (n > 0 && list[n - 1] > after).then(|| (pgno, list[n - 1]))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Records that frames up to `frame` are now in the main file.
    pub fn set_backfilled(&self, frame: u64) {
        let mut s = self.state();
        debug_assert!(frame <= s.max_frame);
        s.backfilled = frame;
        self.frames.write().unwrap_or_else(|p| p.into_inner()).backfilled = frame;
    }

    /// `(max_frame, backfilled)`.
    pub fn progress(&self) -> (u64, u64) {
        let s = self.state();
        (s.max_frame, s.backfilled)
    }

    /// Number of active readers.
    pub fn reader_count(&self) -> usize {
        self.state().readers.values().sum()
    }

    /// If every frame is in the main file and every reader can read the
    /// main file alone (its mark is 0, or the last frame, which is
    /// backfilled), empties the index for generation `next_generation` and
    /// returns true. Readers of the old generation then read the main file.
    pub fn try_restart(&self, next_generation: u64) -> bool {
        let mut s = self.state();
        let max = s.max_frame;
        let current = s.generation;
        if s.backfilled != max || s.readers.keys().any(|&(g, m)| g == current && m != 0 && m != max) {
            return false;
        }
        let mut f = self.frames.write().unwrap_or_else(|p| p.into_inner());
        f.map.clear();
        f.generation = next_generation;
        f.backfilled = 0;
        s.generation = next_generation;
        s.max_frame = 0;
        s.backfilled = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_respects_snapshot() {
        let idx = WalIndex::new(1);
        idx.publish([(1, 5), (2, 6)], 2);
        idx.publish([(3, 5)], 3);
        assert_eq!(idx.find(5, 2), Some(1));
        assert_eq!(idx.find(5, 3), Some(3));
        assert_eq!(idx.find(6, 1), None);
        assert_eq!(idx.find(7, 3), None);
        assert_eq!(idx.frames_to_copy(0, 2), vec![(5, 1), (6, 2)]);
        assert_eq!(idx.frames_to_copy(2, 3), vec![(5, 3)]);
    }

    #[test]
    fn readers_bound_checkpoint_and_restart() {
        let idx = WalIndex::new(1);
        idx.publish([(1, 5)], 1);
        let r1 = idx.begin_read();
        assert_eq!(r1.max_frame, 1);
        idx.publish([(2, 5)], 2);
        assert_eq!(idx.checkpoint_window(), (0, 1));
        idx.set_backfilled(1);
        assert!(!idx.try_restart(2));
        assert_eq!(idx.with_source(5, r1, |s| s), PageSource::Main, "fully backfilled snapshot reads main");
        idx.end_read(r1);
        assert_eq!(idx.checkpoint_window(), (1, 2));
        idx.set_backfilled(2);
        let r2 = idx.begin_read();
        assert_eq!(r2.max_frame, 0, "fully backfilled: reader uses the main file");
        assert!(idx.try_restart(2), "mark-0 readers do not block a restart");
        idx.publish([(1, 5)], 1);
        assert_eq!(idx.checkpoint_window(), (0, 0), "but they block copying");
        idx.end_read(r2);
        assert_eq!(idx.checkpoint_window(), (0, 1));
    }
}

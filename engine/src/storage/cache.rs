//! The page cache: a bounded, sharded CLOCK cache of immutable page images.
//!
//! Keys name a page *version*, never a place: `(generation, frame)` is the
//! page image of a WAL frame (wherever it is read from, the WAL or the main
//! file after a checkpoint copied it), `(tag | BASE_KEY, pgno)` the main
//! file's copy of a page in a run of generations over which this process
//! kept those copies true (see `wal_index::BASE_KEY`; a WAL restart renames
//! the newest frames of the pages it changed into that run). A version's
//! bytes never change, so no entry goes stale when another process commits
//! or checkpoints; only a rebuild of the shared index (which may reuse
//! frame numbers) clears the cache. Lookups take only a shard's read
//! lock, so readers on different threads do not serialize; the memory bound
//! is `capacity` pages in all, whatever the database size.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use crate::storage::page::PageRef;
use crate::storage::wal_index::PageNoHasher;

/// A page version: `(generation | BASE_KEY, pgno)` for the main file,
/// `(generation, frame)` for the WAL (see the module comment).
pub type CacheKey = (u64, u64);

/// A cached page. The map holds it directly, so a hit touches the map's
/// bucket and then the page, nothing in between.
struct Entry {
    page: PageRef,
    referenced: AtomicBool,
    /// Its place in the shard's clock.
    slot: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<CacheKey, Entry, BuildHasherDefault<PageNoHasher>>,
    /// The keys in clock order: what the hand sweeps when evicting.
    clock: Vec<CacheKey>,
    hand: usize,
}

/// Counters reported by `stat()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found the page.
    pub hits: u64,
    /// Lookups that had to read the file.
    pub misses: u64,
    /// Pages held now.
    pub pages: u64,
    /// Most pages it will hold.
    pub capacity: u64,
}

/// A shard with the lines around it to itself: every lookup writes its
/// lock word and hit counter, and readers on other cores working in
/// neighbouring shards would otherwise take the line from each other.
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// See the module documentation.
pub struct PageCache {
    shards: Vec<Padded<(RwLock<Shard>, AtomicU64, AtomicU64)>>,
    per_shard: usize,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageCache({} pages)", self.per_shard * self.shards.len())
    }
}

impl PageCache {
    /// A cache holding at most `capacity` pages (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        let nshards = capacity.clamp(1, 16);
        let per_shard = capacity / nshards;
        let shards = (0..nshards).map(|_| Default::default()).collect();
        PageCache { shards, per_shard }
    }

    fn shard(&self, key: CacheKey) -> &(RwLock<Shard>, AtomicU64, AtomicU64) {
        let h = (key.0 ^ key.1.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32;
        &self.shards[h as usize % self.shards.len()].0
    }

    /// The cached page for `key`, if any.
    pub fn get(&self, key: CacheKey) -> Option<PageRef> {
        let (lock, hits, misses) = self.shard(key);
        let shard = lock.read().unwrap_or_else(|p| p.into_inner());
        match shard.map.get(&key) {
            Some(e) => {
                if !e.referenced.load(Ordering::Relaxed) {
                    e.referenced.store(true, Ordering::Relaxed);
                }
                hits.fetch_add(1, Ordering::Relaxed);
                Some(e.page.clone())
            }
            None => {
                misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Adds or replaces `key`, evicting by CLOCK when the shard is full.
    pub fn insert(&self, key: CacheKey, page: PageRef) {
        if self.per_shard == 0 {
            return;
        }
        let (lock, _, _) = self.shard(key);
        let mut guard = lock.write().unwrap_or_else(|p| p.into_inner());
        let shard = &mut *guard;
        if let Some(e) = shard.map.get_mut(&key) {
            e.page = page;
            return;
        }
        if shard.clock.len() < self.per_shard {
            let slot = shard.clock.len();
            shard.clock.push(key);
            shard.map.insert(key, Entry { page, referenced: AtomicBool::new(false), slot });
            return;
        }
        loop {
            let slot = shard.hand;
            shard.hand = (slot + 1) % shard.clock.len();
            let old = shard.clock[slot];
            let referenced = shard.map.get(&old).is_some_and(|e| e.referenced.swap(false, Ordering::Relaxed));
            if referenced {
                continue;
            }
            shard.map.remove(&old);
            shard.clock[slot] = key;
            shard.map.insert(key, Entry { page, referenced: AtomicBool::new(false), slot });
            return;
        }
    }

    /// Gives the page cached under `from` (if any) the key `to` instead,
    /// dropping whatever `to` held: the WAL restart uses it so that a page
    /// version checkpointed into the main file stays cached under its new
    /// name (the bytes do not change, only their name).
    pub fn rename(&self, from: CacheKey, to: CacheKey) {
        self.remove(to);
        if let Some(page) = self.take(from) {
            self.insert(to, page);
        }
    }

    /// Drops `key` if cached.
    pub fn remove(&self, key: CacheKey) {
        self.take(key);
    }

    /// Drops `key` if cached, returning its page.
    fn take(&self, key: CacheKey) -> Option<PageRef> {
        let (lock, _, _) = self.shard(key);
        let mut guard = lock.write().unwrap_or_else(|p| p.into_inner());
        let shard = &mut *guard;
        let e = shard.map.remove(&key)?;
        let i = e.slot;
        shard.clock.swap_remove(i);
        if let Some(&moved) = shard.clock.get(i) {
            if let Some(m) = shard.map.get_mut(&moved) {
                m.slot = i;
            }
        }
        if shard.hand >= shard.clock.len() {
            shard.hand = 0;
        }
        Some(e.page)
    }

    /// Drops every entry (the shared index was rebuilt: versions named
    /// before may name other bytes now).
    pub fn clear(&self) {
        for Padded((lock, _, _)) in &self.shards {
            let mut shard = lock.write().unwrap_or_else(|p| p.into_inner());
            shard.clock.clear();
            shard.map.clear();
            shard.hand = 0;
        }
    }

    /// Hit, miss and size counters.
    pub fn stats(&self) -> CacheStats {
        let mut s =
            CacheStats { capacity: (self.per_shard * self.shards.len()) as u64, ..Default::default() };
        for Padded((lock, hits, misses)) in &self.shards {
            s.hits += hits.load(Ordering::Relaxed);
            s.misses += misses.load(Ordering::Relaxed);
            s.pages += lock.read().unwrap_or_else(|p| p.into_inner()).clock.len() as u64;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::page::{Page, PageRef};

    #[test]
    fn never_exceeds_capacity() {
        let cache = PageCache::new(8);
        for i in 0..1000u64 {
            cache.insert((0, i), PageRef::zeroed(16));
            assert!(cache.stats().pages <= 8);
        }
        assert!(cache.get((0, 999)).is_some());
        cache.remove((0, 999));
        assert!(cache.get((0, 999)).is_none());
    }

    #[test]
    fn remove_keeps_the_others_and_eviction_working() {
        let cache = PageCache::new(64);
        let page = |b: u8| Page::from_vec(vec![b; 16]).into_ref();
        for i in 0..16u64 {
            cache.insert((1, i), page(i as u8));
        }
        let held: Vec<u64> = (0..16).filter(|&i| cache.get((1, i)).is_some()).collect();
        assert!(held.len() > 8, "most of 16 pages fit a cache of 64");
        let removed: Vec<u64> = held.iter().copied().step_by(3).collect();
        for &i in &removed {
            cache.remove((1, i));
        }
        for &i in &held {
            match cache.get((1, i)) {
                None => assert!(removed.contains(&i), "page {i} was not removed but is gone"),
                Some(p) => {
                    assert!(!removed.contains(&i), "page {i} was removed but is still there");
                    assert_eq!(p[0], i as u8, "page {i} kept its bytes");
                }
            }
        }
        // The same page number in another generation is another version.
        cache.insert((2, 1), page(200));
        assert_ne!(cache.get((2, 1)).map(|p| p[0]), cache.get((1, 1)).map(|p| p[0]));
        for i in 100..1000u64 {
            cache.insert((1, i), page(i as u8));
            assert_eq!(cache.get((1, i)).expect("just inserted")[0], i as u8);
            assert!(cache.stats().pages <= 64);
        }
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = PageCache::new(0);
        cache.insert((0, 1), PageRef::zeroed(16));
        assert!(cache.get((0, 1)).is_none());
    }

    #[test]
    fn clear_drops_everything() {
        let cache = PageCache::new(64);
        cache.insert((0, 1), PageRef::zeroed(16));
        cache.insert((3, 1), PageRef::zeroed(16));
        cache.clear();
        assert!(cache.get((0, 1)).is_none());
        assert!(cache.get((3, 1)).is_none());
        assert_eq!(cache.stats().pages, 0);
    }
}

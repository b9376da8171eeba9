//! The page cache: a bounded, sharded CLOCK cache of immutable page images.
//!
//! Keys name a page *version*: `(0, pgno)` is the main file's copy of a page,
//! `(generation, frame)` a WAL frame. WAL frames never change once written,
//! so their entries never go stale; main-file entries are replaced by the
//! checkpoint when it overwrites the page. Lookups take only a shard's read
//! lock, so readers on different threads do not serialize; the memory bound
//! is `capacity` pages in all, whatever the database size.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use crate::storage::page::PageRef;
use crate::storage::wal_index::PageNoHasher;

/// A page version: `(0, pgno)` for the main file, `(generation, frame)` for the WAL.
pub type CacheKey = (u64, u64);

struct Slot {
    key: CacheKey,
    page: PageRef,
    referenced: AtomicBool,
}

#[derive(Default)]
struct Shard {
    map: HashMap<CacheKey, usize, BuildHasherDefault<PageNoHasher>>,
    slots: Vec<Slot>,
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

/// See the module documentation.
pub struct PageCache {
    shards: Vec<(RwLock<Shard>, AtomicU64, AtomicU64)>,
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
        &self.shards[h as usize % self.shards.len()]
    }

    /// The cached page for `key`, if any.
    pub fn get(&self, key: CacheKey) -> Option<PageRef> {
        let (lock, hits, misses) = self.shard(key);
        let shard = lock.read().unwrap_or_else(|p| p.into_inner());
        match shard.map.get(&key) {
            Some(&i) => {
                let slot = &shard.slots[i];
                if !slot.referenced.load(Ordering::Relaxed) {
                    slot.referenced.store(true, Ordering::Relaxed);
                }
                hits.fetch_add(1, Ordering::Relaxed);
                Some(slot.page.clone())
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
        let mut shard = lock.write().unwrap_or_else(|p| p.into_inner());
        if let Some(&i) = shard.map.get(&key) {
            shard.slots[i].page = page;
            return;
        }
        let slot = Slot { key, page, referenced: AtomicBool::new(false) };
        if shard.slots.len() < self.per_shard {
            let i = shard.slots.len();
            shard.slots.push(slot);
            shard.map.insert(key, i);
            return;
        }
        loop {
            let i = shard.hand;
            shard.hand = (i + 1) % shard.slots.len();
            if shard.slots[i].referenced.swap(false, Ordering::Relaxed) {
                continue;
            }
            let old = shard.slots[i].key;
            shard.map.remove(&old);
            shard.slots[i] = slot;
            shard.map.insert(key, i);
            return;
        }
    }

    /// Drops `key` if cached.
    pub fn remove(&self, key: CacheKey) {
        let (lock, _, _) = self.shard(key);
        let mut shard = lock.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = shard.map.remove(&key) {
            let last = shard.slots.len() - 1;
            shard.slots.swap(i, last);
            shard.slots.pop();
            if i < last {
                let moved = shard.slots[i].key;
                shard.map.insert(moved, i);
            }
            if shard.hand >= shard.slots.len() {
                shard.hand = 0;
            }
        }
    }

    /// Drops the main-file entries of pages `from` and up (the file was
    /// cut there).
    pub fn remove_main_from(&self, from: u64) {
        for (lock, _, _) in &self.shards {
            let mut shard = lock.write().unwrap_or_else(|p| p.into_inner());
            if !shard.slots.iter().any(|s| s.key.0 == 0 && s.key.1 >= from) {
                continue;
            }
            shard.slots.retain(|s| s.key.0 != 0 || s.key.1 < from);
            let keys: Vec<CacheKey> = shard.slots.iter().map(|s| s.key).collect();
            shard.map = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
            shard.hand = 0;
        }
    }

    /// Drops every WAL-frame entry (after the WAL restarts they are unreachable).
    pub fn clear_wal_entries(&self) {
        for (lock, _, _) in &self.shards {
            let mut shard = lock.write().unwrap_or_else(|p| p.into_inner());
            shard.slots.retain(|s| s.key.0 == 0);
            let keys: Vec<CacheKey> = shard.slots.iter().map(|s| s.key).collect();
            shard.map = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
            shard.hand = 0;
        }
    }

    /// Hit, miss and size counters.
    pub fn stats(&self) -> CacheStats {
        let mut s =
            CacheStats { capacity: (self.per_shard * self.shards.len()) as u64, ..Default::default() };
        for (lock, hits, misses) in &self.shards {
            s.hits += hits.load(Ordering::Relaxed);
            s.misses += misses.load(Ordering::Relaxed);
            s.pages += lock.read().unwrap_or_else(|p| p.into_inner()).slots.len() as u64;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::page::Page;
    use std::sync::Arc;

    #[test]
    fn never_exceeds_capacity() {
        let cache = PageCache::new(8);
        for i in 0..1000u64 {
            cache.insert((0, i), Arc::new(Page::zeroed(16)));
            assert!(cache.stats().pages <= 8);
        }
        assert!(cache.get((0, 999)).is_some());
        cache.remove((0, 999));
        assert!(cache.get((0, 999)).is_none());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = PageCache::new(0);
        cache.insert((0, 1), Arc::new(Page::zeroed(16)));
        assert!(cache.get((0, 1)).is_none());
    }

    #[test]
    fn clear_wal_entries_keeps_main_pages() {
        let cache = PageCache::new(64);
        cache.insert((0, 1), Arc::new(Page::zeroed(16)));
        cache.insert((3, 1), Arc::new(Page::zeroed(16)));
        cache.clear_wal_entries();
        assert!(cache.get((0, 1)).is_some());
        assert!(cache.get((3, 1)).is_none());
    }
}

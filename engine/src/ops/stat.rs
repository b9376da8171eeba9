//! `stat()`: sizes and counters of a database, for people and monitoring.

use crate::error::Result;
use crate::storage::cache::CacheStats;
use crate::storage::pager::Snapshot;
use crate::txn::{ReadTxn, ReadableTxn};

/// One tree's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeStat {
    /// The tree's name.
    pub name: String,
    /// Number of entries.
    pub entries: u64,
}

/// Sizes and counters of a database as of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Page size in bytes.
    pub page_size: u64,
    /// Pages in the database (page 0 included).
    pub page_count: u64,
    /// Pages on the freelist.
    pub free_pages: u64,
    /// Pages in use (`page_count - free_pages`).
    pub pages_in_use: u64,
    /// Size of the main file in bytes (the WAL is extra).
    pub file_size: u64,
    /// Committed frames in the WAL.
    pub wal_frames: u64,
    /// WAL frames already copied into the main file.
    pub wal_backfilled: u64,
    /// Active read transactions.
    pub readers: u64,
    /// Transactions committed over the file's life.
    pub commit_counter: u64,
    /// Page cache counters.
    pub cache: CacheStats,
    /// Every tree with its entry count.
    pub trees: Vec<TreeStat>,
}

/// Gathers [`Stat`] as `txn` sees the database.
pub fn gather(txn: &ReadTxn) -> Result<Stat> {
    let snap: &Snapshot = txn.snapshot();
    let header = snap.header();
    let pager = snap.pager();
    let ps = pager.stats();
    let mut trees = Vec::new();
    for name in txn.list_trees()? {
        let tree = txn.open_tree(&name)?;
        trees.push(TreeStat { entries: txn.count(&tree)?, name });
    }
    Ok(Stat {
        page_size: ps.page_size,
        page_count: header.page_count as u64,
        free_pages: header.freelist_count as u64,
        pages_in_use: (header.page_count - header.freelist_count) as u64,
        file_size: pager.main_file_size()?,
        wal_frames: ps.wal_frames,
        wal_backfilled: ps.wal_backfilled,
        readers: ps.readers.saturating_sub(1),
        commit_counter: header.commit_counter,
        cache: ps.cache,
        trees,
    })
}

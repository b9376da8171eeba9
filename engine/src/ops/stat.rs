//! `stat()`: sizes and counters of a database, for people and monitoring.
//!
//! `stat()` is meant to be called often (a monitoring loop, a command-line
//! `stat`): it reads the header, the catalog and the nodes of each
//! collection's trees, never overflow pages, and does no compaction dry
//! run. What a compaction would give back is reported from the freelist
//! and the file's tail; the exact figure, which needs a dry run over every
//! node, is [`Db::compaction_estimate`].

use crate::db::Db;
use crate::doc::collection::CollectionKind;
use crate::error::Result;
use crate::storage::cache::CacheStats;
use crate::storage::pager::Snapshot;
use crate::txn::EngineTrees;
use crate::txn::{ReadTxn, ReadableTxn};

/// One tree's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeStat {
    /// The tree's name.
    pub name: String,
    /// Number of entries.
    pub entries: u64,
}

/// One secondary index's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStat {
    /// The index name.
    pub name: String,
    /// `unique`, `standard` or `multi`.
    pub kind: String,
    /// The indexed fields as dotted paths, most significant first.
    pub key_paths: Vec<String>,
    /// `building` or `ready`.
    pub status: String,
    /// Entries in the index.
    pub entries: u64,
}

/// One collection's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionStat {
    /// The collection name.
    pub name: String,
    /// Documents or raw bytes.
    pub kind: CollectionKind,
    /// Number of documents.
    pub doc_count: u64,
    /// Bytes of the pages its documents, name dictionary and indexes use.
    pub file_size_bytes: u64,
    /// Its secondary indexes.
    pub indexes: Vec<IndexStat>,
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
    /// At most the bytes the database would take after
    /// [`Db::compact`](crate::Db::compact): the pages in use
    /// (`pages_in_use * page_size`). Compaction also repacks part-full
    /// nodes, so it often ends smaller: [`Db::compaction_estimate`] gives
    /// the exact figure.
    pub compacted_size: u64,
    /// At least the bytes a compaction would give back: the free pages,
    /// plus the main file's tail past `page_count` (left by a compaction
    /// or truncation a reader held back). 0 when there are neither; the
    /// exact figure is [`Db::compaction_estimate`].
    pub reclaimable_bytes: u64,
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
    /// Every collection with its documents and indexes.
    pub collections: Vec<CollectionStat>,
}

/// What a compaction would give back, computed by a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionEstimate {
    /// Bytes of the database (`page_count * page_size`).
    pub database_size: u64,
    /// Size of the main file in bytes.
    pub file_size: u64,
    /// Bytes the database would take after [`Db::compact`].
    pub compacted_size: u64,
    /// Bytes a compaction would give back: `database_size -
    /// compacted_size`, plus the main file's tail past the database (0
    /// when the database is already compact).
    pub reclaimable_bytes: u64,
}

/// Bytes of the main file past the database's pages (a file that is
/// shorter, its newest pages still in the WAL, has none).
fn file_tail(file_size: u64, page_count: u64, page_size: u64) -> u64 {
    file_size.saturating_sub(page_count * page_size)
}

/// [`CompactionEstimate`] of `txn`'s snapshot: builds the compacted image
/// without writing it, reading every tree node (no overflow page).
pub fn compaction_estimate(txn: &ReadTxn) -> Result<CompactionEstimate> {
    let snap: &Snapshot = txn.snapshot();
    let page_size = snap.page_size() as u64;
    let database_size = snap.header().page_count as u64 * page_size;
    let file_size = snap.pager().main_file_size()?;
    let compacted_size = crate::ops::compact::compacted_pages(snap)? * page_size;
    Ok(CompactionEstimate {
        database_size,
        file_size,
        compacted_size,
        reclaimable_bytes: database_size.saturating_sub(compacted_size)
            + file_tail(file_size, snap.header().page_count as u64, page_size),
    })
}

impl Db {
    /// The exact size of the database after a [`Db::compact`] and what it
    /// would give back, from a dry run of the compaction on the current
    /// snapshot (every tree node is read: the cost of a full scan, without
    /// overflow pages). [`Db::stat`] reports cheap bounds of the same.
    pub fn compaction_estimate(&self) -> Result<CompactionEstimate> {
        compaction_estimate(&self.begin_read()?)
    }
}

/// Pages used by the tree `name`, if it exists (reads its nodes, counts
/// its overflow pages from the values' lengths).
fn tree_pages(txn: &ReadTxn, name: &str) -> Result<u64> {
    let Some(tree) = txn.find_engine_tree(name)? else { return Ok(0) };
    crate::btree::page_count(txn.snapshot(), tree.root(), txn.snapshot().header().page_count as u64)
}

fn gather_collections(txn: &ReadTxn, page_size: u64) -> Result<Vec<CollectionStat>> {
    use crate::doc::collection::{docs_tree, index_tree, names_tree, state};
    let mut out = Vec::new();
    for name in crate::doc::collection::list_collections(txn)? {
        let Some(st) = state(txn, &name)? else { continue };
        let mut pages = tree_pages(txn, &docs_tree(&name))? + tree_pages(txn, &names_tree(&name))?;
        let mut indexes = Vec::new();
        for info in st.indexes.iter() {
            let tname = index_tree(&name, &info.spec.name);
            pages += tree_pages(txn, &tname)?;
            let entries = match txn.find_engine_tree(&tname)? {
                Some(t) => txn.count(&t)?,
                None => 0,
            };
            indexes.push(IndexStat {
                name: info.spec.name.clone(),
                kind: info.spec.kind.as_str().to_string(),
                key_paths: info.spec.field_strings(),
                status: info.status.as_str().to_string(),
                entries,
            });
        }
        out.push(CollectionStat {
            doc_count: txn.count(&st.docs)?,
            kind: if st.raw { CollectionKind::Raw } else { CollectionKind::Documents },
            name,
            file_size_bytes: pages * page_size,
            indexes,
        });
    }
    Ok(out)
}

/// Gathers [`Stat`] as `txn` sees the database.
pub fn gather(txn: &ReadTxn) -> Result<Stat> {
    let snap: &Snapshot = txn.snapshot();
    let header = snap.header();
    let pager = snap.pager();
    let ps = pager.stats();
    let file_size = pager.main_file_size()?;
    let page_count = header.page_count as u64;
    let free_pages = header.freelist_count as u64;
    let mut trees = Vec::new();
    for name in txn.list_trees()? {
        let tree = txn.open_engine_tree(&name)?;
        trees.push(TreeStat { entries: txn.count(&tree)?, name });
    }
    Ok(Stat {
        page_size: ps.page_size,
        page_count,
        free_pages,
        pages_in_use: page_count.saturating_sub(free_pages),
        file_size,
        compacted_size: page_count.saturating_sub(free_pages) * ps.page_size,
        reclaimable_bytes: free_pages * ps.page_size + file_tail(file_size, page_count, ps.page_size),
        wal_frames: ps.wal_frames,
        wal_backfilled: ps.wal_backfilled,
        readers: ps.readers.saturating_sub(1),
        commit_counter: header.commit_counter,
        cache: ps.cache,
        trees,
        collections: gather_collections(txn, ps.page_size)?,
    })
}

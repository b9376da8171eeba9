//! Compaction: rewriting the database so that it holds no free pages and
//! every node is full, then cutting the file down to that size.
//!
//! Both [`Db::compact`] and [`Db::compact_to`] build a *compacted image* of
//! one snapshot: every tree of the catalog, in name order, is rebuilt
//! bottom-up by `btree::bulk` into pages numbered from 1 (leaves packed
//! full, overflow chains copied page by page), then the catalog itself, then
//! a header with an empty freelist. `compact_to` writes that image to a new
//! file. `compact` installs it in place as one ordinary transaction:
//!
//! 1. under the writer lock, it checkpoints (so the WAL can restart), counts
//!    the pages the image would take and stops if that saves nothing;
//! 2. it streams the image's pages to the WAL as the frames of one
//!    transaction (`Pager::begin_bulk_commit`),
//!    page 0 (the new header, with the smaller page count) last as the
//!    commit frame, then syncs and publishes them: from here on every new
//!    snapshot sees the compacted database, and older snapshots keep
//!    reading the old pages (the WAL and main file still hold them);
//! 3. it checkpoints: the frames are copied into the main file and the file
//!    is truncated to the new page count, then fsynced. A checkpoint never
//!    copies past the oldest active reader, so if a reader still holds an
//!    older snapshot the file shrinks at a later checkpoint (automatic, or
//!    at close).
//!
//! Crash safety follows from the WAL rules: until the commit frame is
//! durable, recovery ignores the new frames and the old database is intact
//! (nothing of it was overwritten); once it is durable, the WAL holds every
//! page of the compacted database, so whatever a crash does to a checkpoint
//! in progress (pages half copied, truncation kept or lost) recovery reads
//! the new state from the WAL, and the WAL is only restarted after the
//! main file is fsynced.
//!
//! The rewrite changes every tree's root page; tree and collection handles
//! are per transaction, so no handle outlives it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use crate::btree;
use crate::btree::bulk::{copy_tree, PageSink, TreeBuilder};
use crate::catalog::TreeMeta;
use crate::db::Db;
use crate::error::{Error, PageNo, Result};
use crate::ops::newfile::{fresh_file_id, CountSink, NewFile, Replace};
use crate::storage::header::Header;
use crate::storage::page::{Page, PageRead};
use crate::storage::pager::{BulkCommit, Snapshot};

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactReport {
    /// Pages in the database before (page 0 included).
    pub pages_before: u64,
    /// Pages after.
    pub pages_after: u64,
    /// Size of the main file before, in bytes. `compact()` checkpoints
    /// first; for `compact_to` it is at least the database's size
    /// (`pages_before * page_size`) while its newest pages are still in
    /// the WAL, where a main file of one page would read as if the copy
    /// had grown.
    pub file_size_before: u64,
    /// Size of the (main or new) file after, in bytes. For `compact()` this
    /// is the compacted size only when `complete` is true.
    pub file_size_after: u64,
    /// The commit counter of the compacted database.
    pub commit_counter: u64,
    /// `compact()`: false when the database was already compact (nothing
    /// was written).
    pub rewritten: bool,
    /// `compact()`: true when the main file has been cut to its new size;
    /// false when an active reader's older snapshot held the checkpoint
    /// back (the file shrinks at a later checkpoint).
    pub complete: bool,
    /// Wall time taken, in milliseconds.
    pub millis: u64,
}

/// Builds the compacted image of `src` into `sink` (pages from
/// `sink.next_pgno()`, normally 1) and returns the header of the image
/// (page count, catalog root and freelist set; the rest copied from `src`).
pub(crate) fn build_image(src: &Snapshot, sink: &mut dyn PageSink) -> Result<Header> {
    let old = src.header();
    let mut metas: Vec<(Vec<u8>, TreeMeta)> = Vec::new();
    if old.catalog_root != 0 {
        let entries = btree::Range::new(
            src as &dyn PageRead,
            old.catalog_root,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
        )?;
        // Each tree's own root: a root shared with the catalog or another
        // tree would copy their entries into this one.
        let mut roots: HashMap<PageNo, String> = HashMap::new();
        for entry in entries {
            let (name, value) = entry?;
            let shown = String::from_utf8_lossy(&name).into_owned();
            let meta = TreeMeta::decode(&value, &shown)?.current(old);
            crate::txn::check_root(&shown, meta.root, old.catalog_root)?;
            if let Some(other) = roots.insert(meta.root, shown.clone()) {
                return Err(crate::txn::shared_root(None, &other, &shown, meta.root));
            }
            let (root, entries) = copy_tree(src, meta.root, sink)?;
            if entries != meta.entries {
                return Err(Error::corruption(
                    meta.root,
                    format!(
                        "tree {shown:?} holds {entries} entries but the catalog records {}",
                        meta.entries
                    ),
                ));
            }
            metas.push((name, TreeMeta { root, entries, serial: meta.serial }));
        }
    }
    let mut catalog = TreeBuilder::new(sink);
    for (name, meta) in &metas {
        catalog.push_inline(sink, name, &meta.encode())?;
    }
    let (catalog_root, _) = catalog.finish(sink)?;
    let mut header = old.clone();
    header.page_count = sink.next_pgno();
    header.catalog_root = catalog_root;
    // Every count is in the new catalog's records.
    header.tree_counts.clear();
    header.freelist_head = 0;
    header.freelist_count = 0;
    Ok(header)
}

/// Pages the compacted image of `src` would take (page 0 included),
/// reading every tree node but no overflow page.
pub(crate) fn compacted_pages(src: &Snapshot) -> Result<u64> {
    let mut sink = CountSink { page_size: src.page_size(), usable: src.usable_size(), next: 1 };
    Ok(build_image(src, &mut sink)?.page_count as u64)
}

/// Streams built pages into a bulk commit.
struct WalSink<'a> {
    bulk: BulkCommit<'a>,
    page_size: usize,
    /// The database's usable bytes per page (less when it is encrypted).
    usable: usize,
    next: PageNo,
}

impl PageSink for WalSink<'_> {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn usable_size(&self) -> usize {
        self.usable
    }

    fn next_pgno(&self) -> PageNo {
        self.next
    }

    fn emit(&mut self, page: &[u8]) -> Result<PageNo> {
        let pgno = self.next;
        self.bulk.write(pgno, Page::from_vec(page.to_vec()))?;
        self.next =
            self.next.checked_add(1).ok_or_else(|| Error::invalid("database is full (2^32 pages)"))?;
        Ok(pgno)
    }

    fn skip(&mut self, _n: u64) -> Result<()> {
        Err(Error::invalid("a bulk commit writes every page"))
    }
}

impl Db {
    /// Shrinks the file: rewrites every tree packed into the fewest pages
    /// and truncates the free space, in one crash-safe transaction (see the
    /// module documentation of `ops::compact`). Holds the writer lock
    /// throughout, so writers wait (and time out with `Busy` after the busy
    /// timeout); readers are not blocked and keep their snapshots. The file
    /// shrinks at once unless a reader holds an older snapshot, in which
    /// case `complete` is false and it shrinks at a later checkpoint.
    ///
    /// The contents never change, so any outcome is safe: an error before
    /// the compacted state is committed leaves the database as it was; an
    /// error from the checkpoint after it (an `Io` error) leaves it
    /// committed, with the file cut at a later checkpoint.
    pub fn compact(&self) -> Result<CompactReport> {
        let started = Instant::now();
        let pager = self.pager();
        let guard = self.lock_writer()?;
        pager.checkpoint(&guard)?;
        let file_size_before = pager.main_file_size()?;
        let base = pager.writer_snapshot()?;
        let old = base.header().clone();
        let mut report = CompactReport {
            pages_before: old.page_count as u64,
            pages_after: old.page_count as u64,
            file_size_before,
            file_size_after: file_size_before,
            commit_counter: old.commit_counter,
            ..Default::default()
        };
        let wanted = compacted_pages(&base)?;
        drop(base);
        if wanted >= old.page_count as u64 {
            report.complete = file_size_before <= old.page_count as u64 * pager.page_size() as u64;
            report.millis = started.elapsed().as_millis() as u64;
            return Ok(report);
        }
        let bulk = pager.begin_bulk_commit(&guard)?;
        // The base is read after any WAL restart the bulk commit made, from
        // the newest state; the writer lock keeps it the newest.
        let base = pager.writer_snapshot()?;
        let mut sink = WalSink { bulk, page_size: pager.page_size(), usable: base.usable_size(), next: 1 };
        let mut header = build_image(&base, &mut sink)?;
        header.commit_counter += 1;
        sink.bulk.commit(&header)?;
        drop(base);
        let checkpoint = pager.checkpoint(&guard)?;
        report.pages_after = header.page_count as u64;
        report.commit_counter = header.commit_counter;
        report.rewritten = true;
        report.complete = checkpoint.complete;
        report.file_size_after = pager.main_file_size()?;
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Writes a compacted copy of the current snapshot to `path`: a normal
    /// database file (new file id, no WAL) holding the same data in the
    /// fewest pages. Runs beside readers and writers. The copy is written
    /// under a temporary name and renamed into place, so a crash never
    /// leaves a partial file at `path`; an existing file there is replaced
    /// unless it is an open database (`Busy`, as is a file that appears
    /// there while the copy is written), this database's own file or
    /// a database not closed cleanly (`InvalidArgument`, as
    /// [`Db::backup_to`]; a symbolic link there is followed). The copy of
    /// an encrypted database is encrypted with the same key.
    pub fn compact_to(&self, path: impl AsRef<Path>) -> Result<CompactReport> {
        let started = Instant::now();
        let rx = self.begin_read()?;
        let snap = rx.snapshot();
        let pager = snap.pager();
        let old = snap.header().clone();
        crate::ops::newfile::refuse_own_file(pager, path.as_ref(), "a compacted copy")?;
        let target = NewFile::create(pager.vfs().clone(), path.as_ref(), Replace::IfClosedCleanly)?;
        let file_id = fresh_file_id()?;
        let codec = pager.codec().for_copy(file_id);
        let mut sink = target.sink(&codec, pager.page_size());
        let mut header = build_image(snap, &mut sink)?;
        header.file_id = file_id;
        let commit_counter = header.commit_counter;
        let pages = sink.finish(header)?;
        target.publish()?;
        Ok(CompactReport {
            pages_before: old.page_count as u64,
            pages_after: pages as u64,
            file_size_before: pager.main_file_size()?.max(old.page_count as u64 * pager.page_size() as u64),
            file_size_after: pages as u64 * pager.page_size() as u64,
            commit_counter,
            rewritten: true,
            complete: true,
            millis: started.elapsed().as_millis() as u64,
        })
    }
}

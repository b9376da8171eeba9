//! The pages a write transaction has changed, private until commit.
//!
//! A write transaction reads through the newest snapshot and copies a page
//! into its dirty set the first time it modifies it; the B+tree then edits
//! it in place. A rollback is simply dropping this set.
//!
//! The set is bounded (`Options::max_dirty_bytes`): when it is full, the
//! half changed least recently is spilled to the WAL as frames without a
//! commit marker (invisible to readers and to recovery) and read back from
//! there, through the cache, if the transaction needs it again. The commit
//! publishes them with its own frames; a rollback rewinds the WAL over
//! them. So a transaction of any size runs in bounded memory.

use std::collections::hash_map::Entry;
use std::sync::OnceLock;

use crate::error::{Error, PageNo, Result};
use crate::storage::freelist;
use crate::storage::header::Header;
use crate::storage::page::{PageRead, PageRef, PageWrite};
use crate::storage::pager::{Snapshot, Spill};
use crate::storage::wal_index::{PageMap, ReadMark};

/// See the module documentation.
pub struct WritePages {
    base: Snapshot,
    dirty: PageMap<Dirty>,
    header: Header,
    header_changed: bool,
    /// Most pages `dirty` holds before some are spilled.
    limit: usize,
    /// Counts changes, to tell which pages were changed least recently.
    clock: u64,
    /// Boxed: most transactions never spill.
    spilled: Option<Box<Spilled>>,
    /// Why a change failed after this transaction had changed pages (a
    /// page that could not be read or spilled, a damaged page): the
    /// operation may have stopped halfway, so the transaction refuses
    /// further changes, reads and its commit, and can only be rolled back. (Set
    /// from `read`, which takes `&self`.)
    broken: OnceLock<String>,
}

/// What a transaction spilled to the WAL.
#[derive(Default)]
struct Spilled {
    /// The frames, once a spill succeeded.
    spill: Option<Spill>,
    /// Pages whose newest version is a spilled frame (and not in `dirty`).
    frames: PageMap<u64>,
}

/// What a transaction hands to `Pager::commit`.
pub struct Changes {
    /// The changed pages in page order, page 0 holding the new header.
    pub pages: Vec<(PageNo, PageRef)>,
    /// The new header.
    pub header: Header,
    /// The pages already spilled to the WAL, published with the commit.
    pub spill: Option<Spill>,
    /// The snapshot the transaction began from (its mark and page count):
    /// its versions of the changed pages are the ones the commit replaces.
    pub base: (ReadMark, PageNo),
}

/// A changed page and when it was last changed.
struct Dirty {
    page: PageRef,
    changed: u64,
}

impl WritePages {
    /// A write set over `base` (the newest committed state).
    pub fn new(base: Snapshot) -> Self {
        let header = base.header().clone();
        let limit = base.pager().dirty_limit();
        WritePages {
            base,
            dirty: PageMap::default(),
            header,
            header_changed: false,
            limit,
            clock: 0,
            spilled: None,
            broken: OnceLock::new(),
        }
    }

    /// Keeps at most `pages` changed pages in memory from now on (fewer
    /// than the handle's `max_dirty_bytes` allow), spilling the rest to
    /// the WAL as usual.
    pub(crate) fn cap_dirty(&mut self, pages: usize) {
        self.limit = self.limit.min(pages.max(8));
    }

    /// The header as this transaction has changed it.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Mutable header; marks page 0 for writing at commit.
    pub fn header_mut(&mut self) -> &mut Header {
        self.header_changed = true;
        &mut self.header
    }

    /// Usable bytes per page.
    pub fn usable(&self) -> usize {
        self.base.usable_size()
    }

    /// Reads a page as this transaction sees it. A broken transaction
    /// (see `broken`) refuses reads too: a change that stopped halfway may
    /// have left its trees inconsistent (a leaf pointing at an overflow
    /// page that was never written), which a read would report as damage
    /// of the file, or read as a half-written value.
    pub fn read(&self, pgno: PageNo) -> Result<PageRef> {
        self.check_intact()?;
        let read = self.read_unchecked(pgno);
        if let Err(e) = &read {
            self.note_failure(e);
        }
        read
    }

    /// Records that a change of this transaction failed with `e` (see
    /// `broken`), unless nothing was changed yet.
    pub fn note_failure(&self, e: &Error) {
        if !self.unchanged() {
            let _ = self.broken.set(e.to_string());
        }
    }

    fn read_unchecked(&self, pgno: PageNo) -> Result<PageRef> {
        if let Some(d) = self.dirty.get(&pgno) {
            return Ok(d.page.clone());
        }
        if let Some(Spilled { spill: Some(spill), frames }) = self.spilled.as_deref() {
            if let Some(&frame) = frames.get(&pgno) {
                return self.base.pager().read_spilled(spill, frame, pgno);
            }
        }
        if pgno >= self.header.page_count {
            return Err(Error::corruption(
                pgno,
                format!("page beyond the end ({} pages)", self.header.page_count),
            ));
        }
        self.base.read_page(pgno)
    }

    /// A page of this transaction's dirty set, zero-filled (for a page
    /// whose old content does not matter).
    pub fn page_zeroed(&mut self, pgno: PageNo) -> Result<&mut [u8]> {
        self.check_intact()?;
        if !self.dirty.contains_key(&pgno) {
            self.make_room()?;
        }
        let size = self.base.page_size();
        let changed = self.tick();
        match self.dirty.entry(pgno) {
            Entry::Occupied(slot) => {
                let d = slot.into_mut();
                d.changed = changed;
                let page = PageRef::make_mut(&mut d.page);
                page.fill(0);
                Ok(page)
            }
            Entry::Vacant(slot) => {
                Ok(PageRef::make_mut(&mut slot.insert(Dirty { page: PageRef::zeroed(size), changed }).page))
            }
        }
    }

    /// Whether this transaction has changed `pgno` (and not freed it
    /// since): a page it holds, or spilled to the WAL.
    pub fn changed(&self, pgno: PageNo) -> bool {
        self.dirty.contains_key(&pgno) || self.spilled.as_ref().is_some_and(|s| s.frames.contains_key(&pgno))
    }

    /// Drops `pgno` from the dirty set: it was freed, so its content is
    /// garbage and need not be written. (A spilled frame of it is
    /// published all the same, harmlessly: the page is free.)
    pub fn forget(&mut self, pgno: PageNo) {
        self.dirty.remove(&pgno);
        if let Some(s) = &mut self.spilled {
            s.frames.remove(&pgno);
        }
    }

    /// `Ok` unless a page could not be read or changed after this
    /// transaction had changed pages (see `broken`).
    pub fn check_intact(&self) -> Result<()> {
        match self.broken.get() {
            None => Ok(()),
            Some(why) => Err(Error::invalid(format!(
                "this write transaction failed midway ({why}); roll it back and start again"
            ))),
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Spills the half of the dirty set changed least recently when the
    /// set is full, before a page is added to it. This runs in the middle
    /// of a B+tree operation: when the frames cannot be written (a full
    /// disk), the pages stay in memory, the operation fails halfway, and
    /// so the transaction breaks (see `broken`).
    fn make_room(&mut self) -> Result<()> {
        if self.dirty.len() < self.limit {
            return Ok(());
        }
        let mut order: Vec<(u64, PageNo)> = self.dirty.iter().map(|(&pgno, d)| (d.changed, pgno)).collect();
        let half = order.len() / 2;
        order.select_nth_unstable(half);
        let mut pages: Vec<(PageNo, PageRef)> = order[..half]
            .iter()
            .map(|&(_, pgno)| (pgno, self.dirty.remove(&pgno).expect("listed from the set").page))
            .collect();
        // In page order, as a commit writes them (a checkpoint then copies
        // them in order).
        pages.sort_unstable_by_key(|&(pgno, _)| pgno);
        let spilled = self.spilled.get_or_insert_with(Box::default);
        let pager = self.base.pager();
        match pager.spill(&mut spilled.spill, &mut pages) {
            Ok(first) => {
                for (i, (pgno, _)) in pages.into_iter().enumerate() {
                    spilled.frames.insert(pgno, first + i as u64);
                }
                Ok(())
            }
            Err(e) => {
                self.dirty.extend(pages.into_iter().map(|(pgno, page)| (pgno, Dirty { page, changed: 0 })));
                self.note_failure(&e);
                Err(e)
            }
        }
    }

    /// Number of pages changed so far.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// The changed pages in page order, with page 0 holding the new header
    /// when it changed, and the new header. Empty when nothing changed.
    /// The pages spilled to the WAL (see the module documentation) go with
    /// them, to be published by the commit.
    /// A transaction that could not read or change a page after it had
    /// changed pages (see `broken`) is refused.
    pub fn into_commit(mut self) -> Result<Changes> {
        self.check_intact()?;
        if self.unchanged() {
            return Ok(Changes {
                pages: Vec::new(),
                header: std::mem::replace(&mut self.header, Header::new(0, 0, [0; 16])),
                spill: None,
                base: self.base_versions(),
            });
        }
        self.header.commit_counter += 1;
        let header = std::mem::replace(&mut self.header, Header::new(0, 0, [0; 16]));
        let size = self.base.page_size();
        let mut pages: Vec<(PageNo, PageRef)> =
            std::mem::take(&mut self.dirty).into_iter().map(|(pgno, d)| (pgno, d.page)).collect();
        let mut zero = match pages.iter().position(|&(pgno, _)| pgno == 0) {
            Some(i) => pages.swap_remove(i).1,
            None => PageRef::zeroed(size),
        };
        header.encode(&mut PageRef::make_mut(&mut zero)[..]);
        pages.push((0, zero));
        pages.sort_unstable_by_key(|(p, _)| *p);
        let base = self.base_versions();
        Ok(Changes { pages, header, spill: self.spilled.take().and_then(|s| s.spill), base })
    }

    fn base_versions(&self) -> (ReadMark, PageNo) {
        (self.base.mark(), self.base.header().page_count)
    }

    /// The snapshot this transaction started from.
    pub fn base(&self) -> &Snapshot {
        &self.base
    }

    /// Whether nothing was written yet: the view is still the base's.
    pub fn unchanged(&self) -> bool {
        self.dirty.is_empty() && !self.header_changed && self.spill().is_none()
    }

    /// Pages spilled to the WAL so far (see the module documentation).
    pub fn spilled_count(&self) -> usize {
        self.spill().map_or(0, Spill::len)
    }

    fn spill(&self) -> Option<&Spill> {
        self.spilled.as_ref().and_then(|s| s.spill.as_ref())
    }
}

impl Drop for WritePages {
    /// A rollback: spilled frames are forgotten.
    fn drop(&mut self) {
        if let Some(spill) = self.spilled.take().and_then(|s| s.spill) {
            self.base.pager().abandon_spill(spill);
        }
    }
}

impl PageRead for WritePages {
    fn usable_size(&self) -> usize {
        self.base.usable_size()
    }

    fn read_page(&self, pgno: PageNo) -> Result<PageRef> {
        self.read(pgno)
    }
}

impl PageWrite for WritePages {
    fn page_mut(&mut self, pgno: PageNo) -> Result<&mut [u8]> {
        if pgno == 0 {
            return Err(Error::corruption(0, "page 0 is the header, not a tree page"));
        }
        self.check_intact()?;
        if !self.dirty.contains_key(&pgno) {
            self.make_room()?;
            let page = self.read(pgno)?;
            self.dirty.insert(pgno, Dirty { page, changed: 0 });
        }
        let changed = self.tick();
        let slot = self.dirty.get_mut(&pgno).expect("just inserted");
        slot.changed = changed;
        Ok(PageRef::make_mut(&mut slot.page))
    }

    fn allocate_page(&mut self) -> Result<PageNo> {
        let pgno = match freelist::pop(self)? {
            Some(p) => p,
            None => {
                let h = self.header_mut();
                let p = h.page_count;
                h.page_count =
                    p.checked_add(1).ok_or_else(|| Error::invalid("database is full (2^32 pages)"))?;
                p
            }
        };
        self.page_zeroed(pgno)?;
        Ok(pgno)
    }

    fn free_page(&mut self, pgno: PageNo) -> Result<()> {
        if pgno == 0 || pgno >= self.header.page_count {
            return Err(Error::corruption(pgno, "freeing a page outside the database"));
        }
        freelist::push(self, pgno)
    }
}

//! The pages a write transaction has changed, private until commit.
//!
//! A write transaction reads through the newest snapshot and copies a page
//! into its dirty set the first time it modifies it; the B+tree then edits
//! it in place. Nothing reaches the WAL before commit, so a rollback is
//! simply dropping this set.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use crate::error::{Error, PageNo, Result};
use crate::storage::freelist;
use crate::storage::header::Header;
use crate::storage::page::{zeroed_ref, PageRead, PageRef, PageWrite};
use crate::storage::pager::Snapshot;
use crate::storage::wal_index::PageMap;

/// See the module documentation.
pub struct WritePages {
    base: Snapshot,
    dirty: PageMap<PageRef>,
    header: Header,
    header_changed: bool,
}

impl WritePages {
    /// A write set over `base` (the newest committed state).
    pub fn new(base: Snapshot) -> Self {
        let header = *base.header();
        WritePages { base, dirty: PageMap::default(), header, header_changed: false }
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

    /// Reads a page as this transaction sees it.
    pub fn read(&self, pgno: PageNo) -> Result<PageRef> {
        if let Some(p) = self.dirty.get(&pgno) {
            return Ok(p.clone());
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
    pub fn page_zeroed(&mut self, pgno: PageNo) -> &mut [u8] {
        let size = self.base.page_size();
        match self.dirty.entry(pgno) {
            Entry::Occupied(slot) => {
                let page = Arc::make_mut(slot.into_mut());
                page.fill(0);
                page
            }
            Entry::Vacant(slot) => Arc::make_mut(slot.insert(zeroed_ref(size))),
        }
    }

    /// Drops `pgno` from the dirty set: it was freed, so its content is
    /// garbage and need not be written.
    pub fn forget(&mut self, pgno: PageNo) {
        self.dirty.remove(&pgno);
    }

    /// Number of pages changed so far.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// The changed pages in page order, with page 0 holding the new header
    /// when it changed, and the new header. Empty when nothing changed.
    pub fn into_commit(mut self) -> (Vec<(PageNo, PageRef)>, Header) {
        if self.dirty.is_empty() && !self.header_changed {
            return (Vec::new(), self.header);
        }
        self.header.commit_counter += 1;
        let header = self.header;
        let size = self.base.page_size();
        let zero = self.dirty.entry(0).or_insert_with(|| zeroed_ref(size));
        header.encode(&mut Arc::make_mut(zero)[..]);
        let mut pages: Vec<(PageNo, PageRef)> = self.dirty.into_iter().collect();
        pages.sort_unstable_by_key(|(p, _)| *p);
        (pages, header)
    }

    /// The snapshot this transaction started from.
    pub fn base(&self) -> &Snapshot {
        &self.base
    }

    /// Whether nothing was written yet: the view is still the base's.
    pub fn unchanged(&self) -> bool {
        self.dirty.is_empty() && !self.header_changed
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
        if !self.dirty.contains_key(&pgno) {
            let page = self.read(pgno)?;
            self.dirty.insert(pgno, page);
        }
        let slot = self.dirty.get_mut(&pgno).expect("just inserted");
        Ok(Arc::make_mut(slot))
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
        self.page_zeroed(pgno);
        Ok(pgno)
    }

    fn free_page(&mut self, pgno: PageNo) -> Result<()> {
        if pgno == 0 || pgno >= self.header.page_count {
            return Err(Error::corruption(pgno, "freeing a page outside the database"));
        }
        freelist::push(self, pgno)
    }
}

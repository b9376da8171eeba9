//! Page buffers, the page trailer (checksum), and the traits through which
//! the B+tree reaches pages.
//!
//! A page is `page_size` bytes: `usable` bytes of content followed by a
//! trailer. In a plain database the trailer is 4 bytes: the CRC-32 of the
//! page number (little-endian u32) followed by the content. Mixing the page
//! number into the checksum means a page written at the wrong place is
//! detected as corruption too. Layers above the pager only ever see the
//! content part (`&page[..usable]`).

use std::ops::{Deref, DerefMut};

use crate::error::{Error, PageNo, Result};

/// Smallest supported page size.
pub const MIN_PAGE_SIZE: usize = 4096;
/// Largest supported page size.
pub const MAX_PAGE_SIZE: usize = 65536;
/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 4096;
/// Bytes of the checksum trailer of a plain (unencrypted) page.
pub const CHECKSUM_TRAILER: usize = 4;

/// Kind byte (byte 0 of the content, see docs/format.md) of a B+tree
/// interior page. The pager keeps these per snapshot (`pager::Pinned`).
pub const KIND_BTREE_INTERIOR: u8 = 3;

/// An owned page buffer of `page_size` bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Page(Box<[u8]>);

impl Page {
    /// A zero-filled page of `size` bytes.
    pub fn zeroed(size: usize) -> Self {
        Page(vec![0u8; size].into_boxed_slice())
    }

    /// Wraps an existing buffer.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Page(bytes.into_boxed_slice())
    }

    /// The same bytes as a shared page.
    pub fn into_ref(self) -> PageRef {
        PageRef::copy_of(&self.0)
    }
}

impl Deref for Page {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Page {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Page({} bytes)", self.0.len())
    }
}

pub use crate::storage::page_memory::PageRef;

/// The little-endian `u32` at byte `at` of `b` (which holds it): a field
/// of a page, a header or a frame.
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The little-endian `u64` at byte `at` of `b` (which holds it).
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Computes the trailer checksum of `page` (content part = all but the last
/// `CHECKSUM_TRAILER` bytes) as stored at page number `pgno`.
pub fn page_checksum(pgno: PageNo, content: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&pgno.to_le_bytes());
    h.update(content);
    h.finalize()
}

/// Writes the checksum trailer into the last 4 bytes of `page`.
pub fn seal_page(pgno: PageNo, page: &mut [u8]) {
    let split = page.len() - CHECKSUM_TRAILER;
    let sum = page_checksum(pgno, &page[..split]);
    page[split..].copy_from_slice(&sum.to_le_bytes());
}

/// Verifies the checksum trailer of `page` read for page number `pgno`.
pub fn verify_page(pgno: PageNo, page: &[u8]) -> Result<()> {
    let split = page.len() - CHECKSUM_TRAILER;
    let stored = u32::from_le_bytes(page[split..].try_into().expect("4-byte trailer"));
    let actual = page_checksum(pgno, &page[..split]);
    if stored != actual {
        return Err(Error::corruption(
            pgno,
            format!("page checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"),
        ));
    }
    Ok(())
}

/// Read access to pages as one snapshot sees them. This is all the B+tree
/// needs to search and iterate.
pub trait PageRead {
    /// Bytes of content per page (page size minus trailer). The B+tree must
    /// only use `page[..usable_size()]`.
    fn usable_size(&self) -> usize;
    /// The page `pgno` as this snapshot sees it (checksum already verified).
    fn read_page(&self, pgno: PageNo) -> Result<PageRef>;
    /// Page `pgno` lent for as long as the reader lives, when the reader
    /// keeps it at hand (a snapshot's pinned interior pages); `None` sends
    /// the caller to [`read_page`](Self::read_page). Lending takes no
    /// reference count, so threads descending through the same top pages
    /// of a tree write nothing to them.
    fn lent_page(&self, _pgno: PageNo) -> Option<&[u8]> {
        None
    }
}

/// Write access to pages within one write transaction. Modified pages are
/// private to the transaction until it commits.
pub trait PageWrite: PageRead {
    /// The page `pgno`, copied into the transaction's dirty set on first
    /// use, for modification in place. The slice is the whole page; only
    /// `[..usable_size()]` may be modified.
    fn page_mut(&mut self, pgno: PageNo) -> Result<&mut [u8]>;
    /// A fresh zero-filled page (reused from the freelist or appended).
    fn allocate_page(&mut self) -> Result<PageNo>;
    /// Returns `pgno` to the freelist. The caller must hold no other
    /// reference to it.
    fn free_page(&mut self, pgno: PageNo) -> Result<()>;
}

impl<T: PageRead + ?Sized> PageRead for &T {
    fn usable_size(&self) -> usize {
        (**self).usable_size()
    }
    fn read_page(&self, pgno: PageNo) -> Result<PageRef> {
        (**self).read_page(pgno)
    }
    fn lent_page(&self, pgno: PageNo) -> Option<&[u8]> {
        (**self).lent_page(pgno)
    }
}

impl<T: PageRead + ?Sized> PageRead for &mut T {
    fn usable_size(&self) -> usize {
        (**self).usable_size()
    }
    fn read_page(&self, pgno: PageNo) -> Result<PageRef> {
        (**self).read_page(pgno)
    }
    fn lent_page(&self, pgno: PageNo) -> Option<&[u8]> {
        (**self).lent_page(pgno)
    }
}

impl<T: PageWrite + ?Sized> PageWrite for &mut T {
    fn page_mut(&mut self, pgno: PageNo) -> Result<&mut [u8]> {
        (**self).page_mut(pgno)
    }
    fn allocate_page(&mut self) -> Result<PageNo> {
        (**self).allocate_page()
    }
    fn free_page(&mut self, pgno: PageNo) -> Result<()> {
        (**self).free_page(pgno)
    }
}

/// A simple in-memory page store for unit tests of the layers above the
/// pager (B+tree, freelist users). Page 0 is reserved, as in a real file.
#[derive(Debug)]
pub struct MemPageStore {
    page_size: usize,
    pages: Vec<Option<PageRef>>,
    free: Vec<PageNo>,
}

impl MemPageStore {
    /// A store with pages of `page_size` bytes (page 0 reserved).
    pub fn new(page_size: usize) -> Self {
        MemPageStore { page_size, pages: vec![Some(PageRef::zeroed(page_size))], free: Vec::new() }
    }

    /// Number of pages currently allocated (not on the free list), excluding page 0.
    pub fn pages_in_use(&self) -> usize {
        self.pages.iter().skip(1).filter(|p| p.is_some()).count()
    }
}

impl PageRead for MemPageStore {
    fn usable_size(&self) -> usize {
        self.page_size - CHECKSUM_TRAILER
    }

    fn read_page(&self, pgno: PageNo) -> Result<PageRef> {
        match self.pages.get(pgno as usize) {
            Some(Some(p)) => Ok(p.clone()),
            _ => Err(Error::corruption(pgno, "page is not allocated")),
        }
    }
}

impl PageWrite for MemPageStore {
    fn page_mut(&mut self, pgno: PageNo) -> Result<&mut [u8]> {
        match self.pages.get_mut(pgno as usize) {
            Some(Some(p)) => Ok(PageRef::make_mut(p)),
            _ => Err(Error::corruption(pgno, "page is not allocated")),
        }
    }

    fn allocate_page(&mut self) -> Result<PageNo> {
        let page = Some(PageRef::zeroed(self.page_size));
        if let Some(pgno) = self.free.pop() {
            self.pages[pgno as usize] = page;
            Ok(pgno)
        } else {
            self.pages.push(page);
            Ok((self.pages.len() - 1) as PageNo)
        }
    }

    fn free_page(&mut self, pgno: PageNo) -> Result<()> {
        match self.pages.get_mut(pgno as usize) {
            Some(slot @ Some(_)) if pgno != 0 => {
                *slot = None;
                self.free.push(pgno);
                Ok(())
            }
            _ => Err(Error::corruption(pgno, "freeing a page that is not allocated")),
        }
    }
}

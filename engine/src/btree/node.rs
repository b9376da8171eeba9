//! Slotted page layout of B+tree nodes: leaves (page kind 2) and interior
//! nodes (page kind 3). See `docs/format.md ("B+tree pages")` for the byte layout.
//!
//! This file owns decoding a node page (every offset and length read from
//! the page is bounds-checked, so garbage yields `Error::Corruption` naming
//! the page, never a panic) and the in-place edits: insert, remove and
//! overwrite a cell, defragment, and rebuild a node from a list of cells.
//! It knows nothing about the tree shape; `tree.rs` decides what to edit.
//!
//! Invariants every edit keeps (and `verify.rs` checks):
//! - `HEADER + SLOT * count <= content_start <= usable`;
//! - every cell lies inside `[content_start, usable)` and no two overlap;
//! - `usable - content_start == sum of cell lengths + frag`, where `frag`
//!   counts the bytes of dead cells left inside the cell area by removals;
//!   keeping it exact makes "will this fit after defragmenting" an O(1)
//!   question;
//! - keys strictly increase along the slot array;
//! - no cell plus its slot is larger than half the node's capacity
//!   (`max_leaf_cell`: a leaf cell holding its value inline) or a third of
//!   it (`max_cell`: every other cell, bounded by the key length). Half is
//!   what guarantees an overfull node (one node's cells plus one) can
//!   always be split into two that fit, and that two siblings that cannot
//!   merge (one under a quarter full) can always be redistributed with a
//!   non-empty node on each side: cutting after the last cell that still
//!   fits the left side leaves more than half on the left.

use std::cmp::Ordering;

use crate::error::{Error, PageNo, Result};

/// Page kind byte of a B+tree leaf.
pub(crate) const KIND_LEAF: u8 = 2;
/// Page kind byte of a B+tree interior node.
pub(crate) const KIND_INTERIOR: u8 = crate::storage::page::KIND_BTREE_INTERIOR;
/// Page kind byte of an overflow page.
pub(crate) const KIND_OVERFLOW: u8 = 4;

/// Bytes of the node header.
pub(crate) const HEADER: usize = 16;
/// Bytes of one slot (a little-endian u16 cell offset).
pub(crate) const SLOT: usize = 2;
/// Leaf cell header when the value is inline: flags u8, key len u16, value len u16.
pub(crate) const INLINE_HDR: usize = 5;
/// Leaf cell header when the value is in an overflow chain: flags u8, key
/// len u16, value len u64, first overflow page u32.
pub(crate) const OVERFLOW_HDR: usize = 15;
/// Interior cell header: left child u32, key len u16.
pub(crate) const INTERIOR_HDR: usize = 6;
/// Leaf cell flag: the value lives in an overflow chain.
const FLAG_OVERFLOW: u8 = 1;

const H_FLAGS: usize = 1;
const H_COUNT: usize = 2;
const H_CONTENT: usize = 4;
const H_FRAG: usize = 8;
const H_RIGHT: usize = 12;

/// Bytes available to slots and cells in a node.
pub(crate) fn capacity(usable: usize) -> usize {
    usable.saturating_sub(HEADER)
}

/// Largest cell, counting its slot, of an interior node, and of a leaf
/// entry whose value is in an overflow chain: three always fit a node.
pub(crate) fn max_cell(usable: usize) -> usize {
    capacity(usable) / 3
}

/// Largest leaf cell holding its value inline, counting its slot: two
/// always fit a leaf.
pub(crate) fn max_leaf_cell(usable: usize) -> usize {
    capacity(usable) / 2
}

/// Longest key: a key whose value went to an overflow chain must still
/// make a cell no larger than `max_cell`.
pub(crate) fn max_key_len(usable: usize) -> usize {
    max_cell(usable).saturating_sub(SLOT + OVERFLOW_HDR)
}

/// Whether a leaf entry keeps its value inline: when its cell is no larger
/// than [`max_leaf_cell`] (two fit a leaf). A value that goes out takes
/// overflow pages of its own, so a lower cap wastes most of a page on each
/// mid-sized document (at a quarter of the capacity, 1.1 KB documents made
/// a file 3.7 times their size). A value of at most 10 bytes stays inline
/// regardless, because moving it out would not make the cell any smaller
/// (this is what lets a maximal key have a short value).
pub(crate) fn inline_fits(usable: usize, key_len: usize, value_len: usize) -> bool {
    value_len <= OVERFLOW_HDR - INLINE_HDR
        || (SLOT + INLINE_HDR).saturating_add(key_len).saturating_add(value_len) <= max_leaf_cell(usable)
}

/// Below this many used bytes (slots plus cells) a non-root node asks its
/// parent to merge or redistribute it.
pub(crate) fn underfull(usable: usize, used: usize) -> bool {
    used < capacity(usable) / 4
}

#[inline]
fn rd16(b: &[u8], at: usize) -> Option<usize> {
    match b.get(at..at.checked_add(2)?) {
        Some(&[x, y]) => Some(u16::from_le_bytes([x, y]) as usize),
        _ => None,
    }
}

#[inline]
fn rd32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

#[inline]
fn rd64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

// Writers index directly: they are only called with offsets already
// validated against the page (or computed by this file for a fresh layout).
fn wr16(b: &mut [u8], at: usize, v: usize) {
    debug_assert!(v <= u16::MAX as usize);
    b[at..at + 2].copy_from_slice(&(v as u16).to_le_bytes());
}

fn wr32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Byte-wise order of two keys, deciding on the first eight bytes with one
/// integer comparison when both have them (random and most encoded keys
/// differ there), which saves a `memcmp` call per step of a binary search.
#[inline]
fn compare_keys(a: &[u8], b: &[u8]) -> Ordering {
    if let (Some(x), Some(y)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
    }
    a.cmp(b)
}

/// Where a leaf entry's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueRef<'a> {
    /// Stored in the cell.
    Inline(&'a [u8]),
    /// Stored in an overflow chain of `len` bytes starting at `first`.
    Overflow {
        /// Total value length.
        len: u64,
        /// First page of the chain.
        first: PageNo,
    },
}

/// Decodes the leaf cell at the start of `b` (which may run on past the
/// cell): returns its length, key and value, or None if it is malformed or
/// does not fit in `b`.
fn leaf_cell_at(b: &[u8]) -> Option<(usize, &[u8], ValueRef<'_>)> {
    let klen = rd16(b, 1)?;
    match *b.first()? {
        0 => {
            let vlen = rd16(b, 3)?;
            let kend = INLINE_HDR + klen;
            let key = b.get(INLINE_HDR..kend)?;
            let value = b.get(kend..kend + vlen)?;
            Some((kend + vlen, key, ValueRef::Inline(value)))
        }
        FLAG_OVERFLOW => {
            let len = rd64(b, 3)?;
            let first = rd32(b, 11)?;
            let key = b.get(OVERFLOW_HDR..OVERFLOW_HDR + klen)?;
            Some((OVERFLOW_HDR + klen, key, ValueRef::Overflow { len, first }))
        }
        _ => None,
    }
}

/// Decodes the interior cell at the start of `b`: length, left child, key.
fn interior_cell_at(b: &[u8]) -> Option<(usize, PageNo, &[u8])> {
    let child = rd32(b, 0)?;
    let klen = rd16(b, 4)?;
    let key = b.get(INTERIOR_HDR..INTERIOR_HDR + klen)?;
    Some((INTERIOR_HDR + klen, child, key))
}

/// The key of an encoded leaf cell (as held in [`Cells`]).
pub(crate) fn raw_leaf_key(cell: &[u8]) -> Option<&[u8]> {
    leaf_cell_at(cell).map(|(_, k, _)| k)
}

/// Child and key of an encoded interior cell (as held in [`Cells`]).
pub(crate) fn raw_interior(cell: &[u8]) -> Option<(PageNo, &[u8])> {
    interior_cell_at(cell).map(|(_, c, k)| (c, k))
}

/// A cell to be written into a node.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NewCell<'a> {
    /// Leaf entry with its value inline.
    Inline {
        /// Key bytes.
        key: &'a [u8],
        /// Value bytes.
        value: &'a [u8],
    },
    /// Leaf entry whose value is in an overflow chain.
    Overflow {
        /// Key bytes.
        key: &'a [u8],
        /// Total value length.
        len: u64,
        /// First page of the chain.
        first: PageNo,
    },
    /// Interior separator with the child to its left.
    Interior {
        /// Child holding keys below `key`.
        child: PageNo,
        /// Separator key.
        key: &'a [u8],
    },
}

impl NewCell<'_> {
    /// Encoded length in bytes (without the slot).
    pub(crate) fn len(&self) -> usize {
        match self {
            NewCell::Inline { key, value } => INLINE_HDR + key.len() + value.len(),
            NewCell::Overflow { key, .. } => OVERFLOW_HDR + key.len(),
            NewCell::Interior { key, .. } => INTERIOR_HDR + key.len(),
        }
    }

    /// Encodes into `out`, which is exactly `self.len()` bytes.
    fn write(&self, out: &mut [u8]) {
        match *self {
            NewCell::Inline { key, value } => {
                out[0] = 0;
                wr16(out, 1, key.len());
                wr16(out, 3, value.len());
                out[INLINE_HDR..INLINE_HDR + key.len()].copy_from_slice(key);
                out[INLINE_HDR + key.len()..].copy_from_slice(value);
            }
            NewCell::Overflow { key, len, first } => {
                out[0] = FLAG_OVERFLOW;
                wr16(out, 1, key.len());
                out[3..11].copy_from_slice(&len.to_le_bytes());
                wr32(out, 11, first);
                out[OVERFLOW_HDR..].copy_from_slice(key);
            }
            NewCell::Interior { child, key } => {
                wr32(out, 0, child);
                wr16(out, 4, key.len());
                out[INTERIOR_HDR..].copy_from_slice(key);
            }
        }
    }
}

/// A decoded view of a node page. Construction validates the header; each
/// accessor validates the slot and cell it touches, so a lookup pays only
/// for the cells it reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node<'a> {
    buf: &'a [u8],
    pgno: PageNo,
    n: usize,
    content: usize,
    frag: usize,
    leaf: bool,
}

// Why Node::parse refused a page, kept out of its fast path.

#[cold]
fn short_page(pgno: PageNo, usable: usize) -> Error {
    Error::corruption(pgno, format!("page is shorter than the usable size {usable}"))
}

#[cold]
fn not_a_node(pgno: PageNo, kind: u8) -> Error {
    Error::corruption(pgno, format!("expected a B+tree node, found page kind {kind}"))
}

#[cold]
fn inconsistent_header(pgno: PageNo, n: usize, content: usize, frag: usize) -> Error {
    Error::corruption(
        pgno,
        format!("node header is inconsistent: {n} cells, cell area at {content}, {frag} free bytes"),
    )
}

#[cold]
fn bad_slot(pgno: PageNo, i: usize) -> Error {
    Error::corruption(pgno, format!("cell {i} of the node has an out-of-range offset or length"))
}

impl<'a> Node<'a> {
    /// Decodes the header of the node in `page[..usable]`.
    #[inline]
    pub(crate) fn parse(page: &'a [u8], pgno: PageNo, usable: usize) -> Result<Node<'a>> {
        let Some(buf) = page.get(..usable).filter(|_| usable >= HEADER) else {
            return Err(short_page(pgno, usable));
        };
        let leaf = match buf[0] {
            KIND_LEAF => true,
            KIND_INTERIOR => false,
            k => return Err(not_a_node(pgno, k)),
        };
        let n = rd16(buf, H_COUNT).unwrap_or(0);
        let content = rd32(buf, H_CONTENT).unwrap_or(0) as usize;
        let frag = rd32(buf, H_FRAG).unwrap_or(0) as usize;
        if HEADER + SLOT * n > content || content > usable || frag > usable - content {
            return Err(inconsistent_header(pgno, n, content, frag));
        }
        Ok(Node { buf, pgno, n, content, frag, leaf })
    }

    /// Number of cells (entries in a leaf, separators in an interior node).
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// An interior node that a descent or a cursor goes through has at
    /// least one separator (only a root being collapsed, inside the write
    /// that empties it, has none). One without would send every key to
    /// its last child: a tree read through it would silently lack the
    /// others.
    #[inline]
    pub(crate) fn check_separators(&self) -> Result<()> {
        if !self.leaf && self.n == 0 {
            return Err(Error::corruption(self.pgno, "interior node has no separator (one child only)"));
        }
        Ok(())
    }

    /// True for a leaf.
    pub(crate) fn is_leaf(&self) -> bool {
        self.leaf
    }

    /// The page this node was read from.
    pub(crate) fn pgno(&self) -> PageNo {
        self.pgno
    }

    /// Start of the cell area.
    pub(crate) fn content_start(&self) -> usize {
        self.content
    }

    /// Dead bytes inside the cell area.
    pub(crate) fn frag(&self) -> usize {
        self.frag
    }

    /// The header's reserved flags byte (zero in this format version).
    pub(crate) fn flags(&self) -> u8 {
        self.buf[H_FLAGS]
    }

    /// Bytes used by slots and live cells, per the header.
    pub(crate) fn used(&self) -> usize {
        (self.buf.len() - self.content - self.frag) + SLOT * self.n
    }

    /// The rightmost child of an interior node (stored in the header).
    pub(crate) fn rightmost(&self) -> PageNo {
        rd32(self.buf, H_RIGHT).unwrap_or(0)
    }

    /// Offset of cell `i`, checked to lie in the cell area.
    #[inline]
    pub(crate) fn offset(&self, i: usize) -> Result<usize> {
        if i >= self.n {
            return Err(bad_slot(self.pgno, i));
        }
        match rd16(self.buf, HEADER + SLOT * i) {
            Some(o) if o >= self.content && o < self.buf.len() => Ok(o),
            _ => Err(bad_slot(self.pgno, i)),
        }
    }

    /// The encoded bytes of cell `i`.
    pub(crate) fn cell(&self, i: usize) -> Result<&'a [u8]> {
        let o = self.offset(i)?;
        let rest = &self.buf[o..];
        let len =
            if self.leaf { leaf_cell_at(rest).map(|c| c.0) } else { interior_cell_at(rest).map(|c| c.0) };
        match len {
            Some(len) => Ok(&rest[..len]),
            None => Err(bad_slot(self.pgno, i)),
        }
    }

    /// The key of cell `i`. Reads only what the key needs, for searching.
    #[inline(always)]
    pub(crate) fn key(&self, i: usize) -> Result<&'a [u8]> {
        let o = self.offset(i)?;
        let b = self.buf;
        let found = if self.leaf {
            match b[o] {
                0 => rd16(b, o + 1).map(|k| (o + INLINE_HDR, k)),
                FLAG_OVERFLOW => rd16(b, o + 1).map(|k| (o + OVERFLOW_HDR, k)),
                _ => None,
            }
        } else {
            rd16(b, o + 4).map(|k| (o + INTERIOR_HDR, k))
        };
        found.and_then(|(start, klen)| b.get(start..start + klen)).ok_or_else(|| bad_slot(self.pgno, i))
    }

    /// Key and value of leaf cell `i`.
    pub(crate) fn leaf_entry(&self, i: usize) -> Result<(&'a [u8], ValueRef<'a>)> {
        if !self.leaf {
            return Err(Error::corruption(self.pgno, "expected a leaf"));
        }
        let o = self.offset(i)?;
        match leaf_cell_at(&self.buf[o..]) {
            Some((_, k, v)) => Ok((k, v)),
            None => Err(bad_slot(self.pgno, i)),
        }
    }

    /// Child `i` of an interior node, `0 <= i <= len()`; child `len()` is
    /// the rightmost one. Child `i` holds the keys `k` with
    /// `key(i-1) <= k < key(i)`.
    #[inline]
    pub(crate) fn child(&self, i: usize) -> Result<PageNo> {
        if self.leaf {
            return Err(Error::corruption(self.pgno, "expected an interior node"));
        }
        let child = if i == self.n {
            self.rightmost()
        } else {
            let o = self.offset(i)?;
            rd32(self.buf, o).unwrap_or(0)
        };
        if child == 0 {
            return Err(Error::corruption(self.pgno, format!("child {i} points at page 0")));
        }
        Ok(child)
    }

    /// Binary search: `Ok(i)` if key `i` equals `key`, else `Err(i)` with
    /// `i` the index of the first key greater than `key`.
    #[inline]
    pub(crate) fn search(&self, key: &[u8]) -> Result<std::result::Result<usize, usize>> {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match compare_keys(self.key(mid)?, key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(Ok(mid)),
            }
        }
        Ok(Err(lo))
    }

    /// Index of the first key greater than `key`; in an interior node, the
    /// child whose range holds `key`.
    #[inline]
    pub(crate) fn upper_bound(&self, key: &[u8]) -> Result<usize> {
        self.check_separators()?;
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if compare_keys(self.key(mid)?, key) != Ordering::Greater {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// [`upper_bound`](Self::upper_bound), trying the last key first: an
    /// insert of ascending keys (new document ids) takes the last child at
    /// every level, found with one comparison instead of a binary search;
    /// any other key pays one comparison more.
    #[inline]
    pub(crate) fn upper_bound_from_end(&self, key: &[u8]) -> Result<usize> {
        match self.n.checked_sub(1) {
            Some(last) if compare_keys(self.key(last)?, key) != Ordering::Greater => Ok(self.n),
            _ => self.upper_bound(key),
        }
    }

    /// [`search`](Self::search), trying the last key first (see
    /// [`upper_bound_from_end`](Self::upper_bound_from_end)).
    #[inline]
    pub(crate) fn search_from_end(&self, key: &[u8]) -> Result<std::result::Result<usize, usize>> {
        match self.n.checked_sub(1) {
            Some(last) if compare_keys(self.key(last)?, key) == Ordering::Less => Ok(Err(self.n)),
            _ => self.search(key),
        }
    }

    /// Index of the first key not less than `key`.
    pub(crate) fn lower_bound(&self, key: &[u8]) -> Result<usize> {
        Ok(self.search(key)?.unwrap_or_else(|i| i))
    }

    /// Whether a cell going to slot `idx` continues an ascending run of
    /// inserts: the two most recent inserts into this node put their cells
    /// at slots `idx - 2` and `idx - 1`, in that order.
    ///
    /// The answer is read from the layout, so it needs no state outside
    /// the page and holds across transactions: [`insert`] writes each cell
    /// just below the cell area, so the newest cell starts at
    /// `content_start` and the one inserted before it starts where the
    /// newest ends. [`build`] and [`defragment`] lay cells out in slot
    /// order with the last slot lowest, which reads as a run ending at the
    /// last slot (appending to such a node continues it). A removal that
    /// moved the cell area in between only makes the answer false. It is a
    /// hint for choosing a split point, never needed for correctness.
    pub(crate) fn continues_inserts_at(&self, idx: usize) -> Result<bool> {
        if idx < 2 || idx > self.n {
            return Ok(false);
        }
        let newest = self.offset(idx - 1)?;
        if newest != self.content {
            return Ok(false);
        }
        Ok(self.offset(idx - 2)? == newest + self.cell(idx - 1)?.len())
    }
}

/// Makes `buf` (a page's usable part) an empty node of `kind`.
pub(crate) fn init(buf: &mut [u8], kind: u8) {
    buf[..HEADER].fill(0);
    buf[0] = kind;
    wr32(buf, H_CONTENT, buf.len() as u32);
}

/// Sets the rightmost child of an interior node.
pub(crate) fn set_rightmost(buf: &mut [u8], child: PageNo) {
    wr32(buf, H_RIGHT, child);
}

fn set_header(buf: &mut [u8], n: usize, content: usize, frag: usize) {
    wr16(buf, H_COUNT, n);
    wr32(buf, H_CONTENT, content as u32);
    wr32(buf, H_FRAG, frag as u32);
}

/// Inserts `cell` so that it becomes cell `idx`. Returns false, leaving the
/// node unchanged, when it does not fit even after defragmenting.
pub(crate) fn insert(buf: &mut [u8], pgno: PageNo, idx: usize, cell: &NewCell<'_>) -> Result<bool> {
    let usable = buf.len();
    let node = Node::parse(buf, pgno, usable)?;
    let (n, mut content, frag) = (node.n, node.content, node.frag);
    if idx > n {
        return Err(Error::corruption(pgno, format!("insert position {idx} beyond {n} cells")));
    }
    let need = cell.len();
    let slot_end = HEADER + SLOT * n;
    if content - slot_end < need + SLOT {
        if content - slot_end + frag < need + SLOT {
            return Ok(false);
        }
        content = defragment(buf, pgno)?;
        // A dishonest frag count on a corrupt page can leave less room than
        // promised; report "does not fit" and let the caller split.
        if content - slot_end < need + SLOT {
            return Ok(false);
        }
    }
    let at = content - need;
    cell.write(&mut buf[at..content]);
    let slot = HEADER + SLOT * idx;
    buf.copy_within(slot..slot_end, slot + SLOT);
    wr16(buf, slot, at);
    let frag = rd32(buf, H_FRAG).unwrap_or(0) as usize;
    set_header(buf, n + 1, at, frag);
    Ok(true)
}

/// Removes cell `idx`. Its bytes become `frag` unless the cell sat at the
/// start of the cell area, which then simply moves up.
pub(crate) fn remove(buf: &mut [u8], pgno: PageNo, idx: usize) -> Result<()> {
    let usable = buf.len();
    let node = Node::parse(buf, pgno, usable)?;
    let (n, mut content, mut frag) = (node.n, node.content, node.frag);
    let at = node.offset(idx)?;
    let len = node.cell(idx)?.len();
    if at == content {
        content += len;
    } else {
        frag += len;
    }
    let slot = HEADER + SLOT * idx;
    buf.copy_within(slot + SLOT..HEADER + SLOT * n, slot);
    if n == 1 {
        content = usable;
        frag = 0;
    }
    // A corrupt page could claim more dead bytes than its cell area has.
    if frag > usable - content {
        return Err(Error::corruption(pgno, "node cells overlap"));
    }
    set_header(buf, n - 1, content, frag);
    Ok(())
}

/// Rewrites cell `idx` in place with `cell`, which must have the same
/// encoded length (a value replaced by one of equal size).
pub(crate) fn overwrite(buf: &mut [u8], pgno: PageNo, idx: usize, cell: &NewCell<'_>) -> Result<()> {
    let node = Node::parse(buf, pgno, buf.len())?;
    let at = node.offset(idx)?;
    let len = node.cell(idx)?.len();
    if len != cell.len() {
        return Err(Error::corruption(pgno, "overwrite with a cell of a different length"));
    }
    cell.write(&mut buf[at..at + len]);
    Ok(())
}

/// Packs all cells against the end of the page so that the free space is
/// one gap after the slot array. Returns the new start of the cell area.
pub(crate) fn defragment(buf: &mut [u8], pgno: PageNo) -> Result<usize> {
    let usable = buf.len();
    let node = Node::parse(buf, pgno, usable)?;
    let n = node.n;
    let content = node.content;
    let mut spans = Vec::with_capacity(n);
    for i in 0..n {
        spans.push((node.offset(i)?, node.cell(i)?.len()));
    }
    let scratch = buf[content..].to_vec();
    let slot_end = HEADER + SLOT * n;
    let mut end = usable;
    for (i, (at, len)) in spans.into_iter().enumerate() {
        if end < slot_end + len {
            return Err(Error::corruption(pgno, "node cells overlap"));
        }
        end -= len;
        buf[end..end + len].copy_from_slice(&scratch[at - content..at - content + len]);
        wr16(buf, HEADER + SLOT * i, end);
    }
    set_header(buf, n, end, 0);
    Ok(end)
}

/// Encoded cells copied out of nodes, for splits, merges and rebuilding.
/// One buffer for all cells so that a split costs two allocations.
#[derive(Default)]
pub(crate) struct Cells {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Cells {
    /// An empty list with room for about `bytes` bytes of cells.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Cells { data: Vec::with_capacity(bytes), ends: Vec::with_capacity(bytes / 16) }
    }

    /// Appends an encoded cell.
    pub(crate) fn push(&mut self, cell: &[u8]) {
        self.data.extend_from_slice(cell);
        self.ends.push(self.data.len());
    }

    /// Appends a new cell, encoding it.
    pub(crate) fn push_new(&mut self, cell: &NewCell<'_>) {
        let start = self.data.len();
        self.data.resize(start + cell.len(), 0);
        cell.write(&mut self.data[start..]);
        self.ends.push(self.data.len());
    }

    /// Appends cells `range` of `node`.
    pub(crate) fn push_node(&mut self, node: &Node<'_>, range: std::ops::Range<usize>) -> Result<()> {
        for i in range {
            self.push(node.cell(i)?);
        }
        Ok(())
    }

    /// Number of cells.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Cell `i`.
    pub(crate) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    /// Bytes the cells in `range` take in a node, slots included.
    pub(crate) fn size(&self, range: std::ops::Range<usize>) -> usize {
        if range.is_empty() {
            return 0;
        }
        let start = if range.start == 0 { 0 } else { self.ends[range.start - 1] };
        self.ends[range.end - 1] - start + SLOT * range.len()
    }
}

/// Rewrites `buf` as a node of `kind` holding cells `range` of `cells` in
/// order (and `rightmost` as the last child of an interior node).
pub(crate) fn build(
    buf: &mut [u8],
    pgno: PageNo,
    kind: u8,
    cells: &Cells,
    range: std::ops::Range<usize>,
    rightmost: PageNo,
) -> Result<()> {
    let usable = buf.len();
    if cells.size(range.clone()) > capacity(usable) {
        return Err(Error::corruption(pgno, "cells do not fit in one node"));
    }
    init(buf, kind);
    if kind == KIND_INTERIOR {
        set_rightmost(buf, rightmost);
    }
    let mut end = usable;
    for (slot, i) in range.clone().enumerate() {
        let cell = cells.get(i);
        end -= cell.len();
        buf[end..end + cell.len()].copy_from_slice(cell);
        wr16(buf, HEADER + SLOT * slot, end);
    }
    set_header(buf, range.len(), end, 0);
    Ok(())
}

/// Asks the CPU to start loading all of `page`: the reads of a leaf (a
/// binary search's probes, the cells a scan walks) go all over the page,
/// and loads issued together overlap in memory where loads made as each
/// spot is reached would each wait their turn.
#[inline]
pub(crate) fn prefetch(page: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in page.chunks(64) {
        // SAFETY: a prefetch is a hint that reads nothing and cannot fault;
        // the address is inside `page` in any case.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: usize = 4092;

    fn leaf() -> Vec<u8> {
        let mut b = vec![0u8; U];
        init(&mut b, KIND_LEAF);
        b
    }

    fn ins(b: &mut [u8], idx: usize, key: &[u8], value: &[u8]) -> bool {
        insert(b, 1, idx, &NewCell::Inline { key, value }).unwrap()
    }

    fn keys(b: &[u8]) -> Vec<Vec<u8>> {
        let node = Node::parse(b, 1, U).unwrap();
        (0..node.len()).map(|i| node.key(i).unwrap().to_vec()).collect()
    }

    #[test]
    fn btree_node_geometry_4k() {
        assert_eq!(capacity(U), 4076);
        assert!(max_key_len(U) >= 1024);
        // 300-byte values with 10-byte keys stay inline, ~13 to a leaf.
        assert!(inline_fits(U, 10, 300));
        assert!(capacity(U) / (SLOT + INLINE_HDR + 10 + 300) >= 12);
        // Two maximal inline cells fit; 2 KB values with 8-byte keys stay inline.
        assert!(2 * max_leaf_cell(U) <= capacity(U));
        assert!(inline_fits(U, 8, 2_000));
        assert!(!inline_fits(U, 8, 2_040));
        // A maximal key with a short value stays inline and within max_cell.
        assert!(inline_fits(U, max_key_len(U), 10));
        assert!(SLOT + INLINE_HDR + max_key_len(U) + 10 <= max_cell(U));
        assert!(inline_fits(U, max_key_len(U), 11));
        assert!(!inline_fits(U, max_key_len(U), max_leaf_cell(U) - max_key_len(U) - SLOT - INLINE_HDR + 1));
        // Pinned by docs/format.md ("B+tree pages").
        let documented =
            [(4096usize, 1341usize), (8192, 2707), (16384, 5437), (32768, 10899), (65536, 21821)];
        for (ps, max_key) in documented {
            let u = ps - 4;
            assert_eq!(max_key_len(u), max_key);
            assert!(3 * max_cell(u) <= capacity(u));
            assert!(max_key_len(u) <= u16::MAX as usize);
        }
    }

    #[test]
    fn btree_node_insert_search_remove() {
        let mut b = leaf();
        assert!(ins(&mut b, 0, b"m", b"1"));
        assert!(ins(&mut b, 0, b"c", b"22"));
        assert!(ins(&mut b, 2, b"x", b""));
        assert!(ins(&mut b, 0, b"", b"empty"));
        assert_eq!(keys(&b), vec![b"".to_vec(), b"c".to_vec(), b"m".to_vec(), b"x".to_vec()]);
        let node = Node::parse(&b, 1, U).unwrap();
        assert_eq!(node.search(b"m").unwrap(), Ok(2));
        assert_eq!(node.search(b"d").unwrap(), Err(2));
        assert_eq!(node.search(b"").unwrap(), Ok(0));
        assert_eq!(node.upper_bound(b"c").unwrap(), 2);
        assert_eq!(node.lower_bound(b"c").unwrap(), 1);
        assert_eq!(node.leaf_entry(1).unwrap(), (&b"c"[..], ValueRef::Inline(b"22")));
        // The searches that try the last key first agree with the plain ones.
        let probes: [&[u8]; 10] = [b"", b"a", b"c", b"d", b"m", b"n", b"x", b"y", b"xx", &[0xff; 9]];
        for k in probes {
            assert_eq!(node.search_from_end(k).unwrap(), node.search(k).unwrap(), "{k:?}");
            assert_eq!(node.upper_bound_from_end(k).unwrap(), node.upper_bound(k).unwrap(), "{k:?}");
        }
        remove(&mut b, 1, 1).unwrap();
        assert_eq!(keys(&b), vec![b"".to_vec(), b"m".to_vec(), b"x".to_vec()]);
        let node = Node::parse(&b, 1, U).unwrap();
        assert_eq!(node.used(), 3 * SLOT + (INLINE_HDR + 1 + 1) + INLINE_HDR + 1 + INLINE_HDR + 5);
        for _ in 0..3 {
            remove(&mut b, 1, 0).unwrap();
        }
        let node = Node::parse(&b, 1, U).unwrap();
        assert_eq!((node.len(), node.content_start(), node.frag()), (0, U, 0));
    }

    #[test]
    fn btree_node_fills_then_defragments() {
        let mut b = leaf();
        let v = [7u8; 100];
        let mut n = 0;
        while ins(&mut b, n, format!("k{n:04}").as_bytes(), &v) {
            n += 1;
        }
        assert_eq!(n, capacity(U) / (SLOT + INLINE_HDR + 5 + 100));
        // Free every other cell: the space is fragmented but reusable.
        for i in (0..n).rev().step_by(2) {
            remove(&mut b, 1, i).unwrap();
        }
        let node = Node::parse(&b, 1, U).unwrap();
        assert!(node.frag() > 0);
        let left = node.len();
        let mut added = 0;
        while ins(&mut b, 0, format!("a{added:04}").as_bytes(), &v) {
            added += 1;
        }
        assert_eq!(left + added, n);
        let node = Node::parse(&b, 1, U).unwrap();
        assert_eq!(node.frag(), 0);
        for i in 0..node.len() {
            assert_eq!(node.leaf_entry(i).unwrap().1, ValueRef::Inline(&v));
        }
    }

    #[test]
    fn btree_node_overflow_and_interior_cells() {
        let mut b = leaf();
        insert(&mut b, 1, 0, &NewCell::Overflow { key: b"big", len: 1 << 40, first: 77 }).unwrap();
        let node = Node::parse(&b, 1, U).unwrap();
        assert_eq!(
            node.leaf_entry(0).unwrap(),
            (&b"big"[..], ValueRef::Overflow { len: 1 << 40, first: 77 })
        );
        assert_eq!(node.cell(0).unwrap().len(), OVERFLOW_HDR + 3);

        let mut b = vec![0u8; U];
        init(&mut b, KIND_INTERIOR);
        set_rightmost(&mut b, 9);
        insert(&mut b, 1, 0, &NewCell::Interior { child: 5, key: b"k" }).unwrap();
        insert(&mut b, 1, 0, &NewCell::Interior { child: 4, key: b"c" }).unwrap();
        let node = Node::parse(&b, 1, U).unwrap();
        assert_eq!((node.child(0).unwrap(), node.child(1).unwrap(), node.child(2).unwrap()), (4, 5, 9));
        assert!(node.child(3).is_err());
        assert_eq!(node.upper_bound(b"a").unwrap(), 0);
        assert_eq!(node.upper_bound(b"c").unwrap(), 1);
        assert_eq!(node.upper_bound(b"z").unwrap(), 2);
        assert_eq!(raw_interior(node.cell(1).unwrap()), Some((5, &b"k"[..])));
    }

    #[test]
    fn btree_node_overwrite_and_build() {
        let mut b = leaf();
        ins(&mut b, 0, b"a", b"xx");
        ins(&mut b, 1, b"b", b"yy");
        overwrite(&mut b, 1, 0, &NewCell::Inline { key: b"a", value: b"zz" }).unwrap();
        assert!(overwrite(&mut b, 1, 0, &NewCell::Inline { key: b"a", value: b"zzz" }).is_err());
        let node = Node::parse(&b, 1, U).unwrap();
        let mut cells = Cells::default();
        cells.push_node(&node, 0..2).unwrap();
        cells.push_new(&NewCell::Inline { key: b"c", value: b"" });
        let mut c = vec![0xAAu8; U];
        build(&mut c, 2, KIND_LEAF, &cells, 1..3, 0).unwrap();
        assert_eq!(keys(&c), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(raw_leaf_key(cells.get(0)), Some(&b"a"[..]));
        assert_eq!(cells.size(0..3), 3 * SLOT + 3 * INLINE_HDR + 3 + 4);
    }

    #[test]
    fn btree_node_reads_a_run_of_inserts_from_the_layout() {
        let mut b = leaf();
        for (idx, k) in [(0, b"a"), (1, b"z"), (1, b"c"), (2, b"d")] {
            assert!(ins(&mut b, idx, k, b"v"));
        }
        // Slots a c d z; the last two inserts went to slots 1 and 2.
        let node = Node::parse(&b, 1, U).unwrap();
        let runs: Vec<bool> = (0..=5).map(|i| node.continues_inserts_at(i).unwrap()).collect();
        assert_eq!(runs, [false, false, false, true, false, false]);
        // Two inserts in a row are needed: after "e" at 3 the newest is at 3
        // but the one before it ("d") is at 2, so 4 continues the run.
        assert!(ins(&mut b, 3, b"e", b"v"));
        assert!(Node::parse(&b, 1, U).unwrap().continues_inserts_at(4).unwrap());
        // An insert elsewhere breaks it.
        assert!(ins(&mut b, 0, b"0", b"v"));
        let node = Node::parse(&b, 1, U).unwrap();
        assert!((0..=node.len()).all(|i| !node.continues_inserts_at(i).unwrap()));
        // Removing the newest cell makes the inserts before it the newest
        // again; removing one inside the run breaks it.
        remove(&mut b, 1, 0).unwrap();
        let node = Node::parse(&b, 1, U).unwrap();
        let runs: Vec<bool> = (0..=node.len()).map(|i| node.continues_inserts_at(i).unwrap()).collect();
        assert_eq!(runs, [false, false, false, false, true, false]);
        remove(&mut b, 1, 2).unwrap();
        let node = Node::parse(&b, 1, U).unwrap();
        assert!((0..=node.len()).all(|i| !node.continues_inserts_at(i).unwrap()));
        // A defragmented (or built) node reads as a run ending at its last slot.
        defragment(&mut b, 1).unwrap();
        let node = Node::parse(&b, 1, U).unwrap();
        let n = node.len();
        assert!((0..n).all(|i| !node.continues_inserts_at(i).unwrap()));
        assert!(node.continues_inserts_at(n).unwrap());
        assert!(!node.continues_inserts_at(n + 1).unwrap());
    }

    #[test]
    fn btree_compare_keys_is_byte_order() {
        // Keys over a small alphabet and lengths around the 8-byte prefix,
        // so that equal prefixes, prefixes of each other and short keys all occur.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut key = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 13) as usize;
            (0..len).map(|i| [0u8, 1, 0x7f, 0x80, 0xff][((x >> (3 * i)) % 5) as usize]).collect::<Vec<u8>>()
        };
        for _ in 0..20_000 {
            let (a, b) = (key(), key());
            assert_eq!(compare_keys(&a, &b), a.cmp(&b), "{a:?} vs {b:?}");
            assert_eq!(compare_keys(&a, &a), Ordering::Equal);
        }
    }

    #[test]
    fn btree_node_rejects_garbage() {
        let mut b = vec![0u8; U];
        assert!(Node::parse(&b, 3, U).unwrap_err().is_corruption());
        b[0] = KIND_LEAF;
        assert!(Node::parse(&b, 3, U).is_err()); // content_start 0 < header
        init(&mut b, KIND_LEAF);
        ins(&mut b, 0, b"key", b"value");
        // Slot pointing into the header.
        let mut bad = b.clone();
        wr16(&mut bad, HEADER, 3);
        let node = Node::parse(&bad, 3, U).unwrap();
        assert!(node.key(0).is_err() && node.cell(0).is_err() && node.search(b"k").is_err());
        // Key length running off the page.
        let mut bad = b.clone();
        let at = rd16(&bad, HEADER).unwrap();
        wr16(&mut bad, at + 1, 60000);
        let node = Node::parse(&bad, 3, U).unwrap();
        assert!(node.key(0).is_err() && node.leaf_entry(0).is_err());
        // Bad flags byte.
        let mut bad = b.clone();
        bad[at] = 9;
        assert!(Node::parse(&bad, 3, U).unwrap().key(0).is_err());
        // Count larger than the page can hold.
        let mut bad = b;
        wr16(&mut bad, H_COUNT, 5000);
        assert!(Node::parse(&bad, 3, U).is_err());
        assert!(Node::parse(&bad[..100], 3, U).is_err());
    }
}

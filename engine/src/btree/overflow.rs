//! Overflow page chains: where a leaf entry's value goes when it is too
//! large to sit in the leaf cell.
//!
//! This file owns the overflow page layout (kind 4, next-page pointer,
//! data) and writing, reading, walking and freeing chains. A chain holds
//! exactly `ceil(len / (usable - 8))` pages, where `len` is the value length
//! recorded in the leaf cell that owns the chain; every page but the last is
//! full, and the last page's next pointer is 0. Walks are bounded by that
//! recorded length, so a corrupt chain (a cycle, a pointer to page 0, a
//! chain that ends early or runs on) is reported as corruption, never
//! followed forever. The chain does not record its own length: the leaf
//! cell is the single source of truth for it.

use crate::error::{Error, PageNo, Result};
use crate::storage::page::{PageRead, PageWrite};

use super::node::KIND_OVERFLOW;

/// Bytes before the data in an overflow page: kind u8, 3 reserved bytes, next page u32.
pub(crate) const HDR: usize = 8;

/// Largest value the tree stores.
pub(crate) const MAX_VALUE_LEN: u64 = u32::MAX as u64;

/// Value bytes held by one overflow page.
pub(crate) fn per_page(usable: usize) -> usize {
    usable - HDR
}

/// Number of pages in the chain of a value of `len` bytes.
pub(crate) fn page_count(usable: usize, len: u64) -> u64 {
    len.div_ceil(per_page(usable) as u64)
}

/// Writes `value` (non-empty) to a fresh chain and returns its first page.
/// On error the pages written so far are not freed: the caller's write
/// transaction is expected to roll back.
pub(crate) fn write<W: PageWrite + ?Sized>(w: &mut W, value: &[u8]) -> Result<PageNo> {
    if value.is_empty() {
        return Err(Error::invalid("an overflow chain needs a non-empty value"));
    }
    let usable = w.usable_size();
    let mut chunks = value.chunks(per_page(usable)).peekable();
    let first = w.allocate_page()?;
    let mut current = first;
    while let Some(chunk) = chunks.next() {
        let next = if chunks.peek().is_some() { w.allocate_page()? } else { 0 };
        let page = w.page_mut(current)?;
        let buf = page
            .get_mut(..usable)
            .ok_or_else(|| Error::corruption(current, "page is shorter than the usable size"))?;
        buf[..HDR].fill(0);
        buf[0] = KIND_OVERFLOW;
        buf[4..8].copy_from_slice(&next.to_le_bytes());
        buf[HDR..HDR + chunk.len()].copy_from_slice(chunk);
        buf[HDR + chunk.len()..].fill(0);
        current = next;
    }
    Ok(first)
}

/// Checks a recorded value length; `owner` is the leaf holding the cell.
fn check_len(owner: PageNo, len: u64) -> Result<()> {
    if len == 0 || len > MAX_VALUE_LEN {
        return Err(Error::corruption(owner, format!("overflow value length {len} is out of range")));
    }
    Ok(())
}

/// Reads the next pointer of overflow page `pgno`, checking its kind.
fn next_of(buf: &[u8], pgno: PageNo, usable: usize) -> Result<PageNo> {
    match buf.get(..usable) {
        Some(b) if b[0] == KIND_OVERFLOW => Ok(u32::from_le_bytes([b[4], b[5], b[6], b[7]])),
        Some(b) => {
            Err(Error::corruption(pgno, format!("expected an overflow page, found page kind {}", b[0])))
        }
        None => Err(Error::corruption(pgno, "page is shorter than the usable size")),
    }
}

/// Calls `f(page, data)` for each page of the chain of `len` bytes starting
/// at `first`, owned by a cell of leaf `owner`, with the value bytes that
/// page holds.
pub(crate) fn walk<R: PageRead + ?Sized>(
    r: &R,
    owner: PageNo,
    first: PageNo,
    len: u64,
    mut f: impl FnMut(PageNo, &[u8]) -> Result<()>,
) -> Result<()> {
    check_len(owner, len)?;
    let usable = r.usable_size();
    let per = per_page(usable) as u64;
    let count = page_count(usable, len);
    let (mut pgno, mut prev, mut remaining) = (first, owner, len);
    // Brent's cycle detection on the page numbers: a chain that loops back
    // (a damaged next pointer) is found within twice its distinct pages,
    // not after the `count` pages a damaged length may claim.
    let (mut mark, mut power, mut steps) = (first, 1u64, 0u64);
    for i in 0..count {
        if pgno == 0 {
            return Err(Error::corruption(prev, format!("overflow chain ends after {i} of {count} pages")));
        }
        if i > 0 {
            if pgno == mark {
                return Err(Error::corruption(prev, format!("overflow chain loops back to page {pgno}")));
            }
            steps += 1;
            if steps == power {
                (mark, power, steps) = (pgno, power * 2, 0);
            }
        }
        let page = r.read_page(pgno)?;
        let next = next_of(&page, pgno, usable)?;
        let take = remaining.min(per) as usize;
        f(pgno, &page[HDR..HDR + take])?;
        remaining -= take as u64;
        if i + 1 == count && next != 0 {
            return Err(Error::corruption(pgno, "overflow chain is longer than its recorded length"));
        }
        prev = pgno;
        pgno = next;
    }
    Ok(())
}

/// Reads a whole overflow value.
pub(crate) fn read<R: PageRead + ?Sized>(r: &R, owner: PageNo, first: PageNo, len: u64) -> Result<Vec<u8>> {
    check_len(owner, len)?;
    // The recorded length comes from the leaf cell, which a damaged (yet
    // checksum-valid) page may get wrong: reserve at most 1 MiB up front,
    // then as much again as the chain has proved, never past the length, so
    // that a bad length cannot demand a huge allocation (an abort under an
    // address-space limit or without overcommit) before the chain is found
    // short, and a sound value ends with no more capacity than its length.
    let len_bytes = len as usize;
    let mut out = Vec::with_capacity(len_bytes.min(1 << 20));
    walk(r, owner, first, len, |_, data| {
        if out.capacity() - out.len() < data.len() {
            let more = len_bytes.saturating_sub(out.len()).min(out.capacity().max(1 << 20));
            out.reserve_exact(more.max(data.len()));
        }
        out.extend_from_slice(data);
        Ok(())
    })?;
    Ok(out)
}

/// Frees every page of the chain.
pub(crate) fn free<W: PageWrite + ?Sized>(w: &mut W, owner: PageNo, first: PageNo, len: u64) -> Result<()> {
    check_len(owner, len)?;
    let usable = w.usable_size();
    let count = page_count(usable, len);
    let (mut pgno, mut prev) = (first, owner);
    for i in 0..count {
        if pgno == 0 {
            return Err(Error::corruption(prev, format!("overflow chain ends after {i} of {count} pages")));
        }
        let next = next_of(&w.read_page(pgno)?, pgno, usable)?;
        if i + 1 == count && next != 0 {
            return Err(Error::corruption(pgno, "overflow chain is longer than its recorded length"));
        }
        w.free_page(pgno)?;
        prev = pgno;
        pgno = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::page::MemPageStore;

    #[test]
    fn btree_overflow_chain_roundtrip() {
        let mut s = MemPageStore::new(4096);
        let per = per_page(s.usable_size());
        for len in [1usize, per - 1, per, per + 1, 3 * per, 3 * per + 17] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let first = write(&mut s, &value).unwrap();
            assert_eq!(s.pages_in_use() as u64, page_count(4092, len as u64));
            assert_eq!(read(&s, 1, first, len as u64).unwrap(), value);
            // A wrong recorded length is detected both ways.
            if len > per {
                assert!(read(&s, 1, first, (len - per) as u64).unwrap_err().is_corruption());
                assert!(read(&s, 1, first, (len + per) as u64).unwrap_err().is_corruption());
            }
            free(&mut s, 1, first, len as u64).unwrap();
            assert_eq!(s.pages_in_use(), 0);
        }
    }

    #[test]
    fn btree_overflow_cycle_and_bad_kind() {
        let mut s = MemPageStore::new(4096);
        let per = per_page(s.usable_size());
        let value = vec![1u8; 3 * per];
        let first = write(&mut s, &value).unwrap();
        // Point the second page back at the first: the walk stops at the
        // recorded length and reports the over-long chain.
        let second = u32::from_le_bytes(s.read_page(first).unwrap()[4..8].try_into().unwrap());
        s.page_mut(second).unwrap()[4..8].copy_from_slice(&first.to_le_bytes());
        assert!(read(&s, 1, first, (3 * per) as u64).unwrap_err().is_corruption());
        s.page_mut(second).unwrap()[0] = 2;
        assert!(read(&s, 1, first, (3 * per) as u64).unwrap_err().is_corruption());
        assert!(read(&s, 1, first, 0).unwrap_err().is_corruption());
        assert!(read(&s, 1, first, u64::MAX).unwrap_err().is_corruption());
    }
}

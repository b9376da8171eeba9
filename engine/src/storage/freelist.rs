//! The freelist: pages no tree uses, kept for reuse.
//!
//! A chain of trunk pages starts at `Header::freelist_head`. A trunk holds
//! the number of the next trunk and an array of free page numbers. Freeing
//! appends to the head trunk (or makes the freed page the new head trunk
//! when it is full); allocating pops from the head trunk (or takes the
//! trunk itself when it is empty). Because a commit writes new page images
//! to the WAL and older snapshots read older images, a page freed by one
//! transaction can be reused by the next one at once.
//!
//! Trunk layout (content part): byte 0 = kind 5, bytes 4..8 next trunk,
//! 8..12 entry count, then entries as little-endian u32.

use crate::error::{Error, PageNo, Result};
use crate::storage::header::Header;
use crate::storage::page::{u32_at, PageRead, PageWrite};
use crate::storage::write_set::WritePages;

/// Page kind byte of a freelist trunk.
pub const TRUNK_KIND: u8 = 5;
const ENTRIES_AT: usize = 12;

fn capacity(usable: usize) -> usize {
    (usable - ENTRIES_AT) / 4
}

/// Reads and checks a trunk: returns (next trunk, entries).
pub fn read_trunk(
    page: &[u8],
    pgno: PageNo,
    usable: usize,
    page_count: PageNo,
) -> Result<(PageNo, Vec<PageNo>)> {
    if page[0] != TRUNK_KIND {
        return Err(Error::corruption(pgno, "freelist trunk has the wrong page kind"));
    }
    let next = u32_at(page, 4);
    let n = u32_at(page, 8) as usize;
    if n > capacity(usable) || next >= page_count {
        return Err(Error::corruption(pgno, "freelist trunk count or link out of range"));
    }
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let e = u32_at(page, ENTRIES_AT + 4 * i);
        if e == 0 || e >= page_count {
            return Err(Error::corruption(pgno, format!("freelist entry {e} out of range")));
        }
        entries.push(e);
    }
    Ok((next, entries))
}

/// The pages listed on the freelist trunks of the state `header` heads
/// (not the trunks themselves), as a bitmap of `header.page_count` bits:
/// their content is garbage, or was never written at all.
pub(crate) fn listed_pages<R: PageRead>(r: &R, header: &Header) -> Result<Vec<u64>> {
    let total = header.page_count as u64;
    let mut free = vec![0u64; (total as usize).div_ceil(64)];
    let mut trunk = header.freelist_head;
    let mut trunks = 0u64;
    while trunk != 0 {
        trunks += 1;
        if trunks > total {
            return Err(Error::corruption(trunk, "freelist trunk chain has a cycle"));
        }
        let (next, entries) = read_trunk(&r.read_page(trunk)?, trunk, r.usable_size(), header.page_count)?;
        for e in entries {
            free[e as usize / 64] |= 1 << (e % 64);
        }
        trunk = next;
    }
    Ok(free)
}

/// Takes a page off the freelist, or `None` when it is empty.
pub fn pop(w: &mut WritePages) -> Result<Option<PageNo>> {
    let head = w.header().freelist_head;
    if head == 0 {
        return Ok(None);
    }
    let usable = w.usable();
    let page_count = w.header().page_count;
    let page = w.read(head)?;
    if page[0] != TRUNK_KIND {
        return Err(Error::corruption(head, "freelist trunk has the wrong page kind"));
    }
    let n = u32_at(&page, 8) as usize;
    let next = u32_at(&page, 4);
    if n > capacity(usable) || next >= page_count {
        return Err(Error::corruption(head, "freelist trunk count or link out of range"));
    }
    let last = (n > 0).then(|| u32_at(&page, ENTRIES_AT + 4 * (n - 1)));
    drop(page);
    let taken = if let Some(e) = last {
        // Checked before the trunk is touched: a corrupt entry leaves the
        // transaction's pages as they were.
        if e == 0 || e >= page_count || e == head {
            return Err(Error::corruption(head, format!("freelist entry {e} out of range")));
        }
        // A page this transaction already changed is in use (a page it
        // freed left its pages when listed, see `push`): listed twice, or
        // listed while live. Handing it out would overwrite it.
        if w.changed(e) {
            return Err(Error::corruption(
                head,
                format!("freelist lists page {e}, which this transaction already uses"),
            ));
        }
        let trunk = w.page_mut(head)?;
        trunk[8..12].copy_from_slice(&((n - 1) as u32).to_le_bytes());
        e
    } else {
        w.header_mut().freelist_head = next;
        head
    };
    let h = w.header_mut();
    h.freelist_count = h.freelist_count.saturating_sub(1);
    Ok(Some(taken))
}

/// Puts `pgno` on the freelist.
pub fn push(w: &mut WritePages, pgno: PageNo) -> Result<()> {
    let head = w.header().freelist_head;
    let cap = capacity(w.usable());
    if head != 0 {
        let n = u32_at(&w.read(head)?, 8) as usize;
        if n < cap {
            let trunk = w.page_mut(head)?;
            trunk[ENTRIES_AT + 4 * n..ENTRIES_AT + 4 * n + 4].copy_from_slice(&pgno.to_le_bytes());
            trunk[8..12].copy_from_slice(&((n + 1) as u32).to_le_bytes());
            w.forget(pgno);
            w.header_mut().freelist_count += 1;
            return Ok(());
        }
    }
    let trunk = w.page_zeroed(pgno)?;
    trunk[0] = TRUNK_KIND;
    trunk[4..8].copy_from_slice(&head.to_le_bytes());
    let h = w.header_mut();
    h.freelist_head = pgno;
    h.freelist_count += 1;
    Ok(())
}

//! Building trees bottom-up from entries in key order, for compaction and
//! compacted copies.
//!
//! A [`TreeBuilder`] packs entries into leaves as full as they go, emits
//! each finished page to a [`PageSink`] that numbers pages consecutively,
//! and builds the interior levels above them the same way. It holds at most
//! one leaf and two interior nodes' worth of cells per level, so memory is
//! bounded by the tree's depth, never by its size. [`copy_tree`] feeds it
//! the entries of an existing tree, copying overflow chains page by page
//! without materialising the values.
//!
//! The result satisfies every invariant `verify.rs` checks: a separator is
//! the shortest prefix of the first key of the subtree to its right that is
//! greater than the last key of the subtree to its left (as `tree.rs`
//! makes them on a leaf split), every interior node has at least one
//! separator (a level's last node, if it would be left with a single
//! child, takes the previous node's last child), and all leaves are at the
//! same depth.

use crate::error::{Error, PageNo, Result};
use crate::storage::page::{PageRead, PageRef};

use super::node::{self, Cells, NewCell, Node, ValueRef, INTERIOR_HDR, KIND_INTERIOR, KIND_LEAF, SLOT};
use super::overflow;
use super::tree::MAX_DEPTH;

/// Where built pages go. Pages are numbered consecutively in the order they
/// are emitted.
pub(crate) trait PageSink {
    /// Page size in bytes (content plus trailer).
    fn page_size(&self) -> usize;
    /// Content bytes per page.
    fn usable_size(&self) -> usize;
    /// The number the next emitted page gets.
    fn next_pgno(&self) -> PageNo;
    /// Takes `page` (page-size bytes, content in the usable part; the sink
    /// fills in the trailer) as page [`PageSink::next_pgno`].
    fn emit(&mut self, page: &[u8]) -> Result<PageNo>;
    /// Counts `n` pages as emitted without their content (only called when
    /// [`PageSink::wants_content`] is false).
    fn skip(&mut self, n: u64) -> Result<()>;
    /// False for a sink that only counts pages: the builder then skips
    /// reading overflow chains.
    fn wants_content(&self) -> bool {
        true
    }
}

/// A finished subtree: its first and last key and its root page.
struct Child {
    min: Vec<u8>,
    max: Vec<u8>,
    pgno: PageNo,
}

/// Children collected for one interior level.
#[derive(Default)]
struct Level {
    /// Children of the node being filled.
    cur: Vec<Child>,
    /// Bytes `cur`'s separators take (slots included).
    cur_bytes: usize,
    /// A full node held back until `cur` has two children, so that the
    /// level's last node never ends up with a single child.
    full: Option<Vec<Child>>,
}

/// The shortest `s` with `left.max < s <= right.min`: a prefix of `right.min`.
fn separator<'a>(left: &Child, right: &'a Child) -> &'a [u8] {
    let (a, b) = (&left.max, &right.min);
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    &b[..(common + 1).min(b.len())]
}

fn sep_size(left: &Child, right: &Child) -> usize {
    SLOT + INTERIOR_HDR + separator(left, right).len()
}

/// See the module documentation.
pub(crate) struct TreeBuilder {
    usable: usize,
    leaf: Cells,
    last_key: Option<Vec<u8>>,
    levels: Vec<Level>,
    entries: u64,
    buf: Vec<u8>,
}

impl TreeBuilder {
    /// A builder for pages of `sink`'s geometry.
    pub(crate) fn new(sink: &dyn PageSink) -> Self {
        let usable = sink.usable_size();
        TreeBuilder {
            usable,
            leaf: Cells::with_capacity(usable),
            last_key: None,
            levels: Vec::new(),
            entries: 0,
            buf: vec![0; sink.page_size()],
        }
    }

    fn check_order(&mut self, key: &[u8]) -> Result<()> {
        if self.last_key.as_deref().is_some_and(|last| key <= last) {
            return Err(Error::corruption(None, "source tree keys are not strictly increasing"));
        }
        match &mut self.last_key {
            Some(k) => {
                k.clear();
                k.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        Ok(())
    }

    /// Adds an entry with an inline value (keys strictly increasing).
    pub(crate) fn push_inline(&mut self, sink: &mut dyn PageSink, key: &[u8], value: &[u8]) -> Result<()> {
        if !node::inline_fits(self.usable, key.len(), value.len()) {
            return Err(Error::invalid("bulk build: value too large to stay inline"));
        }
        self.push_cell(sink, key, &NewCell::Inline { key, value })
    }

    /// Adds an entry whose value of `len` bytes is the overflow chain at
    /// `first` in `src` (owned by leaf `owner` there): the chain is copied
    /// to fresh pages of `sink`.
    pub(crate) fn push_chain(
        &mut self,
        sink: &mut dyn PageSink,
        src: &dyn PageRead,
        owner: PageNo,
        key: &[u8],
        first: PageNo,
        len: u64,
    ) -> Result<()> {
        self.check_order(key)?;
        let new_first = sink.next_pgno();
        let count = overflow::page_count(self.usable, len);
        if sink.wants_content() {
            let usable = self.usable;
            let buf = &mut self.buf;
            let mut i = 0u64;
            overflow::walk(src, owner, first, len, |_, data| {
                i += 1;
                let next = if i == count { 0 } else { sink.next_pgno() + 1 };
                buf.fill(0);
                buf[0] = node::KIND_OVERFLOW;
                buf[4..8].copy_from_slice(&next.to_le_bytes());
                buf[overflow::HDR..overflow::HDR + data.len()].copy_from_slice(data);
                debug_assert!(overflow::HDR + data.len() <= usable);
                sink.emit(buf)?;
                Ok(())
            })?;
        } else {
            sink.skip(count)?;
        }
        let cell = NewCell::Overflow { key, len, first: new_first };
        self.push_cell_unchecked(sink, &cell)
    }

    fn push_cell(&mut self, sink: &mut dyn PageSink, key: &[u8], cell: &NewCell<'_>) -> Result<()> {
        self.check_order(key)?;
        self.push_cell_unchecked(sink, cell)
    }

    fn push_cell_unchecked(&mut self, sink: &mut dyn PageSink, cell: &NewCell<'_>) -> Result<()> {
        if cell.len() + SLOT > node::max_leaf_cell(self.usable) {
            return Err(Error::invalid("bulk build: cell larger than a node allows"));
        }
        let n = self.leaf.len();
        if n > 0 && self.leaf.size(0..n) + cell.len() + SLOT > node::capacity(self.usable) {
            self.flush_leaf(sink)?;
        }
        self.leaf.push_new(cell);
        self.entries += 1;
        Ok(())
    }

    fn flush_leaf(&mut self, sink: &mut dyn PageSink) -> Result<()> {
        let n = self.leaf.len();
        let key = |i: usize| {
            node::raw_leaf_key(self.leaf.get(i))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| Error::corruption(None, "bulk build: malformed leaf cell"))
        };
        let (min, max) = (key(0)?, key(n - 1)?);
        let pgno = self.write_node(sink, KIND_LEAF, None)?;
        self.leaf = Cells::with_capacity(self.usable);
        self.add_child(sink, 0, Child { min, max, pgno })
    }

    /// Writes a node of `kind` from `self.leaf` (leaf) or `children`
    /// (interior) and emits it.
    fn write_node(
        &mut self,
        sink: &mut dyn PageSink,
        kind: u8,
        children: Option<&[Child]>,
    ) -> Result<PageNo> {
        let pgno = sink.next_pgno();
        if !sink.wants_content() {
            sink.skip(1)?;
            return Ok(pgno);
        }
        self.buf.fill(0);
        let usable = self.usable;
        match children {
            None => node::build(&mut self.buf[..usable], pgno, kind, &self.leaf, 0..self.leaf.len(), 0)?,
            Some(children) => {
                let mut cells = Cells::with_capacity(usable);
                for w in children.windows(2) {
                    cells.push_new(&NewCell::Interior { child: w[0].pgno, key: separator(&w[0], &w[1]) });
                }
                let rightmost = children.last().expect("an interior node has children").pgno;
                node::build(&mut self.buf[..usable], pgno, KIND_INTERIOR, &cells, 0..cells.len(), rightmost)?;
            }
        }
        sink.emit(&self.buf)
    }

    /// Adds a finished subtree to interior level `at` (0 = the parents of
    /// the leaves).
    fn add_child(&mut self, sink: &mut dyn PageSink, at: usize, child: Child) -> Result<()> {
        if at >= MAX_DEPTH {
            return Err(Error::invalid("bulk build: tree too deep"));
        }
        if self.levels.len() <= at {
            self.levels.push(Level::default());
        }
        let capacity = node::capacity(self.usable);
        let level = &mut self.levels[at];
        let size = level.cur.last().map_or(0, |last| sep_size(last, &child));
        if level.cur.is_empty() || level.cur_bytes + size <= capacity {
            level.cur_bytes += size;
            level.cur.push(child);
            if level.cur.len() >= 2 {
                if let Some(full) = level.full.take() {
                    self.emit_interior(sink, at, full)?;
                }
            }
        } else {
            debug_assert!(level.full.is_none(), "a full node waits only until the next has two children");
            let full = std::mem::replace(&mut level.cur, vec![child]);
            level.cur_bytes = 0;
            level.full = Some(full);
        }
        Ok(())
    }

    fn emit_interior(&mut self, sink: &mut dyn PageSink, at: usize, mut children: Vec<Child>) -> Result<()> {
        let pgno = self.write_node(sink, KIND_INTERIOR, Some(&children))?;
        let max = children.pop().expect("non-empty").max;
        let min = children.swap_remove(0).min;
        self.add_child(sink, at + 1, Child { min, max, pgno })
    }

    /// Emits what is still held and returns the root page and entry count.
    pub(crate) fn finish(mut self, sink: &mut dyn PageSink) -> Result<(PageNo, u64)> {
        if self.leaf.len() == 0 && self.levels.is_empty() {
            // An empty tree: a single empty leaf.
            let root = self.write_node(sink, KIND_LEAF, None)?;
            return Ok((root, 0));
        }
        if self.leaf.len() > 0 {
            self.flush_leaf(sink)?;
        }
        let mut at = 0;
        loop {
            let top = at + 1 == self.levels.len();
            let level = std::mem::take(&mut self.levels[at]);
            if top && level.full.is_none() && level.cur.len() == 1 {
                return Ok((level.cur[0].pgno, self.entries));
            }
            let mut cur = level.cur;
            if let Some(mut full) = level.full {
                // `cur` has a single child: give it the full node's last one.
                debug_assert_eq!(cur.len(), 1);
                let moved = full.pop().expect("a full node has children");
                cur.insert(0, moved);
                self.emit_interior(sink, at, full)?;
            }
            self.emit_interior(sink, at, cur)?;
            at += 1;
        }
    }
}

/// Copies the tree rooted at `root` in `src` into `sink` through a
/// [`TreeBuilder`]; returns the new root and the number of entries.
pub(crate) fn copy_tree(src: &dyn PageRead, root: PageNo, sink: &mut dyn PageSink) -> Result<(PageNo, u64)> {
    let mut builder = TreeBuilder::new(sink);
    let usable = src.usable_size();
    // Depth-first over the source: (page, next child to visit).
    let mut stack: Vec<(PageNo, PageRef, usize)> = Vec::new();
    let page = src.read_page(root)?;
    stack.push((root, page, 0));
    while let Some((pgno, page, next)) = stack.pop() {
        let node = Node::parse(&page, pgno, usable)?;
        if node.is_leaf() {
            for i in 0..node.len() {
                match node.leaf_entry(i)? {
                    (key, ValueRef::Inline(value)) => {
                        builder.push_cell(sink, key, &NewCell::Inline { key, value })?
                    }
                    // Files from before leaves took values up to half a page
                    // keep mid-sized ones in chains: the copy brings them in.
                    (key, ValueRef::Overflow { len, first })
                        if node::inline_fits(builder.usable, key.len(), len as usize) =>
                    {
                        // A counting sink needs the cell's size, not its bytes.
                        let value = if sink.wants_content() {
                            overflow::read(src, pgno, first, len)?
                        } else {
                            vec![0; len as usize]
                        };
                        builder.push_cell(sink, key, &NewCell::Inline { key, value: &value })?
                    }
                    (key, ValueRef::Overflow { len, first }) => {
                        builder.push_chain(sink, src, pgno, key, first, len)?
                    }
                }
            }
            continue;
        }
        if next > node.len() {
            continue;
        }
        let child = node.child(next)?;
        stack.push((pgno, page.clone(), next + 1));
        if stack.len() > MAX_DEPTH {
            return Err(Error::corruption(root, format!("tree is deeper than {MAX_DEPTH} levels")));
        }
        let child_page = src.read_page(child)?;
        stack.push((child, child_page, 0));
    }
    builder.finish(sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree;
    use crate::storage::page::{MemPageStore, PageWrite, CHECKSUM_TRAILER};

    /// Emits into a [`MemPageStore`], whose pages are numbered in order.
    struct MemSink<'a>(&'a mut MemPageStore, usize);

    impl PageSink for MemSink<'_> {
        fn page_size(&self) -> usize {
            self.1
        }
        fn usable_size(&self) -> usize {
            self.1 - CHECKSUM_TRAILER
        }
        fn next_pgno(&self) -> PageNo {
            (self.0.pages_in_use() + 1) as PageNo
        }
        fn emit(&mut self, page: &[u8]) -> Result<PageNo> {
            let pgno = self.0.allocate_page()?;
            self.0.page_mut(pgno)?.copy_from_slice(page);
            Ok(pgno)
        }
        fn skip(&mut self, _n: u64) -> Result<()> {
            unreachable!()
        }
    }

    struct Count(PageNo, usize);

    impl PageSink for Count {
        fn page_size(&self) -> usize {
            self.1
        }
        fn usable_size(&self) -> usize {
            self.1 - CHECKSUM_TRAILER
        }
        fn next_pgno(&self) -> PageNo {
            self.0
        }
        fn emit(&mut self, _page: &[u8]) -> Result<PageNo> {
            self.0 += 1;
            Ok(self.0 - 1)
        }
        fn skip(&mut self, n: u64) -> Result<()> {
            self.0 += n as PageNo;
            Ok(())
        }
        fn wants_content(&self) -> bool {
            false
        }
    }

    /// Every entry of the tree at `root`, in key order.
    fn all_entries(s: &MemPageStore, root: PageNo) -> Vec<(Vec<u8>, Vec<u8>)> {
        btree::Range::new(s, root, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap()
    }

    fn check_copy(entries: &[(Vec<u8>, Vec<u8>)]) {
        let mut src = MemPageStore::new(4096);
        let root = btree::create(&mut src).unwrap();
        for (k, v) in entries {
            btree::insert(&mut src, root, k, v).unwrap();
        }
        let mut dst = MemPageStore::new(4096);
        let (new_root, n) = copy_tree(&src, root, &mut MemSink(&mut dst, 4096)).unwrap();
        assert_eq!(n, entries.len() as u64);
        assert_eq!(btree::verify(&dst, new_root, &mut |_| Ok(())).unwrap(), n);
        let mut want = entries.to_vec();
        want.sort();
        assert!(all_entries(&dst, new_root) == want, "the copy holds other entries");
        // Every page is used, and counting agrees with building.
        let mut count = Count(1, 4096);
        copy_tree(&src, root, &mut count).unwrap();
        assert_eq!(count.0 as usize - 1, dst.pages_in_use());
        // The copy is at most as large as the source.
        assert!(
            dst.pages_in_use() <= src.pages_in_use(),
            "{} entries: copy {} pages, source {}",
            entries.len(),
            dst.pages_in_use(),
            src.pages_in_use()
        );
    }

    /// A value of 1,500 bytes that an older build kept in an overflow chain
    /// (leaves took values only up to a quarter of a page then) comes back
    /// inline in a copy, and counting agrees.
    #[test]
    fn btree_bulk_copy_brings_old_chains_inline() {
        let mut src = MemPageStore::new(4096);
        let root = btree::create(&mut src).unwrap();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..2u8).map(|i| (vec![i; 8], vec![i + 7; 1_500])).collect();
        for (i, (k, v)) in entries.iter().enumerate() {
            let first = overflow::write(&mut src, v).unwrap();
            let cell = NewCell::Overflow { key: k, len: v.len() as u64, first };
            assert!(node::insert(src.page_mut(root).unwrap(), root, i, &cell).unwrap());
        }
        assert_eq!(src.pages_in_use(), 3);
        let mut dst = MemPageStore::new(4096);
        let (new_root, n) = copy_tree(&src, root, &mut MemSink(&mut dst, 4096)).unwrap();
        assert_eq!(btree::verify(&dst, new_root, &mut |_| Ok(())).unwrap(), n);
        assert_eq!(dst.pages_in_use(), 1, "both values in the one leaf");
        assert!(all_entries(&dst, new_root) == entries, "the copy holds other entries");
        let mut count = Count(1, 4096);
        copy_tree(&src, root, &mut count).unwrap();
        assert_eq!(count.0, 2);
    }

    #[test]
    fn btree_bulk_copy_shapes() {
        check_copy(&[]);
        check_copy(&[(b"a".to_vec(), b"1".to_vec())]);
        for n in [2usize, 13, 14, 15, 100, 1000, 5000] {
            let entries: Vec<(Vec<u8>, Vec<u8>)> =
                (0..n).map(|i| (format!("key{i:06}").into_bytes(), vec![i as u8; 300])).collect();
            check_copy(&entries);
        }
        // Long keys: few separators per interior node, deep trees.
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..3000u32)
            .map(|i| ([&i.to_be_bytes()[..], &[b'k'; 1200][..]].concat(), b"v".to_vec()))
            .collect();
        check_copy(&entries);
        // Overflow values of various lengths.
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            (0..60u32).map(|i| (i.to_be_bytes().to_vec(), vec![i as u8; 1000 + i as usize * 911])).collect();
        check_copy(&entries);
    }

    #[test]
    fn btree_bulk_level_tail_rebalance() {
        // Sizes around each level boundary, so the last interior node of a
        // level sometimes gets a single child and must borrow one.
        for n in 1..400usize {
            let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                .map(|i| ([&(i as u32).to_be_bytes()[..], &[b'x'; 600][..]].concat(), vec![1]))
                .collect();
            check_copy(&entries);
        }
    }
}

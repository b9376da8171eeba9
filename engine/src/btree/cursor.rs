//! Cursors and range iteration over a tree.
//!
//! This file owns ordered traversal. A cursor keeps the path from the root
//! to its current leaf as a stack of `(page, index)` frames holding the
//! pages themselves (`PageRef`s), so stepping within a leaf reads no page
//! and stepping to the next leaf reads only the pages that change. There
//! are no sibling pointers in the format; the stack is what finds the
//! neighbouring leaf.
//!
//! Invariant: the stack is empty (the cursor is *unpositioned*) or its top
//! frame is a leaf whose index names an existing entry. Every public
//! method re-establishes this, and clears the stack when it returns an
//! error, so a failed cursor is simply unpositioned.
//!
//! A cursor reads the tree as the `PageRead` it owns sees it; it must not
//! outlive changes to the tree made through another handle (with a
//! `&`-reference reader the borrow checker enforces this).

use std::ops::Bound;

use crate::error::{Error, PageNo, Result};
use crate::storage::page::{PageRead, PageRef};

use super::node::{self, Node, ValueRef};
use super::overflow;
use super::tree::MAX_DEPTH;

struct Frame {
    pgno: PageNo,
    page: PageRef,
    idx: usize,
    /// The node's cell count, so that a step within a leaf need not
    /// decode its header again.
    len: usize,
}

/// A position in a tree, for ordered traversal in both directions.
///
/// The cursor is either *at an entry* or *unpositioned* (before the first
/// seek, after stepping off either end, after an error). The `seek*`
/// methods position it and return whether it is at an entry.
///
/// Stepping follows one rule: [`next`](Cursor::next) and
/// [`prev`](Cursor::prev) return the entry the cursor is at and then move
/// to the following (`next`) or preceding (`prev`) entry. Iterating
/// forward is `seek_first` (or `seek`) then `next` until `None`; backward is
/// `seek_last` (or `seek_before`) then `prev` until `None`. Switching
/// direction is well defined: after `next` returned `a` the cursor is at the
/// entry after `a`, so a following `prev` returns that entry (not `a`
/// again) and steps back onto `a`. Stepping off either end leaves the
/// cursor unpositioned, and then both `next` and `prev` return `None` until
/// the next seek.
///
/// The key-only steps [`next_key`](Cursor::next_key) and
/// [`prev_key`](Cursor::prev_key) never read overflow chains; to fetch a
/// value only for some keys, look at [`key`](Cursor::key), read
/// [`value`](Cursor::value) if wanted, then [`advance`](Cursor::advance).
pub struct Cursor<R: PageRead> {
    r: R,
    root: PageNo,
    usable: usize,
    stack: Vec<Frame>,
    /// Leaves entered by stepping since the last seek. From the second on
    /// the cursor is taken to be scanning and loads the next leaf ahead; a
    /// short range read that crosses one leaf boundary does not pay for a
    /// leaf it will not read.
    crossings: u8,
    /// The leaf loaded ahead by [`prefetch_next_leaf`](Cursor::prefetch_next_leaf),
    /// kept so that stepping onto it does not look it up a second time.
    ahead: Option<(PageNo, PageRef)>,
}

impl<R: PageRead> Cursor<R> {
    /// An unpositioned cursor over the tree rooted at `root`, read through
    /// `r` (a reference, or an owned snapshot).
    pub fn new(r: R, root: PageNo) -> Cursor<R> {
        let usable = r.usable_size();
        Cursor { r, root, usable, stack: Vec::with_capacity(8), crossings: 0, ahead: None }
    }

    /// The reader the cursor reads through.
    pub fn reader(&self) -> &R {
        &self.r
    }

    /// True when the cursor is at an entry.
    pub fn is_positioned(&self) -> bool {
        !self.stack.is_empty()
    }

    /// Positions at the first entry; false if the tree is empty.
    pub fn seek_first(&mut self) -> Result<bool> {
        self.reposition(|c| {
            c.stack.clear();
            c.descend_edge(c.root, false)?;
            c.settle(true)
        })
    }

    /// Positions at the last entry; false if the tree is empty.
    pub fn seek_last(&mut self) -> Result<bool> {
        self.reposition(|c| {
            c.stack.clear();
            c.descend_edge(c.root, true)?;
            c.settle(false)
        })
    }

    /// Positions at the first entry whose key is `>= key`; false if none.
    pub fn seek(&mut self, key: &[u8]) -> Result<bool> {
        self.reposition(|c| {
            c.descend_key(key)?;
            let i = c.top_node()?.lower_bound(key)?;
            c.set_top_idx(i);
            c.settle(true)
        })
    }

    /// Positions at the last entry whose key is `< key`; false if none.
    pub fn seek_before(&mut self, key: &[u8]) -> Result<bool> {
        self.reposition(|c| {
            c.descend_key(key)?;
            let i = c.top_node()?.lower_bound(key)?;
            c.back_from(i)
        })
    }

    /// Positions at the last entry whose key is `<= key`; false if none.
    pub fn seek_at_or_before(&mut self, key: &[u8]) -> Result<bool> {
        self.reposition(|c| {
            c.descend_key(key)?;
            let i = c.top_node()?.upper_bound(key)?;
            c.back_from(i)
        })
    }

    /// The key at the cursor, borrowed from the cursor's page.
    pub fn key(&self) -> Result<Option<&[u8]>> {
        Ok(self.entry()?.map(|(k, _)| k))
    }

    /// The value at the cursor, read (from its overflow chain if it has
    /// one) only now.
    pub fn value(&self) -> Result<Option<Vec<u8>>> {
        let Some((_, v)) = self.entry()? else { return Ok(None) };
        Ok(Some(self.load(v)?))
    }

    /// The length of the value at the cursor, without reading it.
    pub fn value_len(&self) -> Result<Option<u64>> {
        Ok(self.entry()?.map(|(_, v)| match v {
            ValueRef::Inline(b) => b.len() as u64,
            ValueRef::Overflow { len, .. } => len,
        }))
    }

    /// The entry at the cursor, without moving.
    pub fn current(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let Some((k, v)) = self.entry()? else { return Ok(None) };
        Ok(Some((k.to_vec(), self.load(v)?)))
    }

    /// The entry at the cursor, without moving and without copying: the
    /// key and an inline value are borrowed from the cursor's page; a value
    /// in an overflow chain is read into `scratch` and borrowed from there.
    pub fn entry_in<'s>(&'s self, scratch: &'s mut Vec<u8>) -> Result<Option<(&'s [u8], &'s [u8])>> {
        let Some((k, v)) = self.entry()? else { return Ok(None) };
        Ok(Some((k, self.value_in(v, scratch)?)))
    }

    /// Returns the entry at the cursor and moves to the next one (see the
    /// type's documentation for how directions combine).
    #[allow(clippy::should_implement_trait)] // fallible, and bidirectional: not an Iterator
    pub fn next(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let entry = self.guard(|c| c.current())?;
        if entry.is_some() {
            self.advance()?;
        }
        Ok(entry)
    }

    /// Returns the entry at the cursor and moves to the previous one.
    pub fn prev(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let entry = self.guard(|c| c.current())?;
        if entry.is_some() {
            self.retreat()?;
        }
        Ok(entry)
    }

    /// Like [`next`](Cursor::next) but returns only the key, and never
    /// reads an overflow chain.
    pub fn next_key(&mut self) -> Result<Option<Vec<u8>>> {
        let key = self.guard(|c| Ok(c.key()?.map(<[u8]>::to_vec)))?;
        if key.is_some() {
            self.advance()?;
        }
        Ok(key)
    }

    /// Like [`prev`](Cursor::prev) but returns only the key, and never
    /// reads an overflow chain.
    pub fn prev_key(&mut self) -> Result<Option<Vec<u8>>> {
        let key = self.guard(|c| Ok(c.key()?.map(<[u8]>::to_vec)))?;
        if key.is_some() {
            self.retreat()?;
        }
        Ok(key)
    }

    /// Moves to the next entry without reading anything; false (and
    /// unpositioned) when there is none.
    pub fn advance(&mut self) -> Result<bool> {
        self.guard(|c| {
            let Some(top) = c.stack.last_mut() else { return Ok(false) };
            top.idx += 1;
            if top.idx < top.len {
                // Still inside the leaf (the top frame is always a leaf).
                return Ok(true);
            }
            c.settle(true)
        })
    }

    /// Moves to the previous entry without reading anything; false (and
    /// unpositioned) when there is none.
    pub fn retreat(&mut self) -> Result<bool> {
        self.guard(|c| {
            let Some(top) = c.stack.last() else { return Ok(false) };
            let i = top.idx;
            c.back_from(i)
        })
    }

    /// Runs a seek: a new position, so the cursor is not scanning (yet).
    fn reposition<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.crossings = 0;
        self.guard(f)
    }

    /// Runs a step; on error leaves the cursor unpositioned, so that no
    /// half-finished move can be observed.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let out = f(self);
        if out.is_err() {
            self.stack.clear();
        }
        out
    }

    fn entry(&self) -> Result<Option<(&[u8], ValueRef<'_>)>> {
        let Some(top) = self.stack.last() else { return Ok(None) };
        let node = Node::parse(&top.page, top.pgno, self.usable)?;
        node.leaf_entry(top.idx).map(Some)
    }

    fn load(&self, v: ValueRef<'_>) -> Result<Vec<u8>> {
        match v {
            ValueRef::Inline(b) => Ok(b.to_vec()),
            ValueRef::Overflow { len, first } => {
                let owner = self.stack.last().map_or(self.root, |f| f.pgno);
                overflow::read(&self.r, owner, first, len)
            }
        }
    }

    /// `v`'s bytes: borrowed from the page when inline, else read into
    /// `scratch` (reusing its allocation) and borrowed from there.
    fn value_in<'s>(&'s self, v: ValueRef<'s>, scratch: &'s mut Vec<u8>) -> Result<&'s [u8]> {
        match v {
            ValueRef::Inline(b) => Ok(b),
            ValueRef::Overflow { .. } => {
                *scratch = self.load(v)?;
                Ok(scratch.as_slice())
            }
        }
    }

    fn top_node(&self) -> Result<Node<'_>> {
        let top = self.stack.last().ok_or_else(|| Error::corruption(self.root, "cursor has no page"))?;
        Node::parse(&top.page, top.pgno, self.usable)
    }

    fn set_top_idx(&mut self, idx: usize) {
        if let Some(top) = self.stack.last_mut() {
            top.idx = idx;
        }
    }

    fn push(&mut self, pgno: PageNo) -> Result<Node<'_>> {
        if self.stack.len() > MAX_DEPTH {
            return Err(Error::corruption(self.root, format!("tree is deeper than {MAX_DEPTH} levels")));
        }
        let (page, prefetched) = match self.ahead.take_if(|(p, _)| *p == pgno) {
            Some((_, page)) => (page, true),
            None => (self.r.read_page(pgno)?, false),
        };
        let node = Node::parse(&page, pgno, self.usable)?;
        node.check_separators()?;
        // A leaf read ahead was prefetched then; asking again for lines on
        // their way only fills the CPU's miss queue (5% of a scan's time).
        if node.is_leaf() && !prefetched {
            node::prefetch(&page);
        }
        let len = node.len();
        self.stack.push(Frame { pgno, page, idx: 0, len });
        self.top_node()
    }

    /// Descends from `pgno` to a leaf along first (or last) children,
    /// leaving the leaf on top with its first (or last) index. The leaf may
    /// be empty, which only `settle` resolves.
    fn descend_edge(&mut self, mut pgno: PageNo, last: bool) -> Result<()> {
        loop {
            let node = self.push(pgno)?;
            let n = node.len();
            if node.is_leaf() {
                self.set_top_idx(if last { n.saturating_sub(1) } else { 0 });
                return Ok(());
            }
            let i = if last { n } else { 0 };
            pgno = node.child(i)?;
            self.set_top_idx(i);
        }
    }

    /// Descends from the root to the leaf whose range holds `key`.
    fn descend_key(&mut self, key: &[u8]) -> Result<()> {
        self.stack.clear();
        let mut pgno = self.root;
        loop {
            let node = self.push(pgno)?;
            if node.is_leaf() {
                return Ok(());
            }
            let i = node.upper_bound(key)?;
            pgno = node.child(i)?;
            self.set_top_idx(i);
        }
    }

    /// With a leaf on top, positions at the entry before index `i` of that
    /// leaf, going to earlier leaves if `i` is 0.
    fn back_from(&mut self, i: usize) -> Result<bool> {
        if i > 0 {
            self.set_top_idx(i - 1);
            return Ok(true);
        }
        self.leave_leaf(false)
    }

    /// Restores the invariant after an index change: while the top leaf
    /// has no entry at its index, moves to the neighbouring leaf in the
    /// given direction. Returns whether the cursor is positioned.
    fn settle(&mut self, forward: bool) -> Result<bool> {
        let Some(top) = self.stack.last() else { return Ok(false) };
        let node = Node::parse(&top.page, top.pgno, self.usable)?;
        if !node.is_leaf() {
            return Err(Error::corruption(top.pgno, "cursor stopped on an interior node"));
        }
        if top.idx < node.len() {
            return Ok(true);
        }
        self.leave_leaf(forward)
    }

    /// Pops the top leaf and moves to the nearest entry in the neighbouring
    /// leaves: the first entry of the next leaf going forward, the last of
    /// the previous leaf going backward. Returns false, unpositioned, at
    /// the end of the tree.
    ///
    /// Two checks make traversal of a corrupt tree end quickly: a non-root
    /// leaf may not be empty, and the first key reached must lie strictly
    /// beyond the last key of the leaf left behind. A page reachable twice
    /// (a cycle or shared subtree) therefore fails at its second visit
    /// instead of being walked again and again.
    fn leave_leaf(&mut self, forward: bool) -> Result<bool> {
        // The last non-empty leaf left behind during this move.
        let mut left: Option<Frame> = None;
        loop {
            let Some(old) = self.stack.pop() else { return Ok(false) };
            let n = Node::parse(&old.page, old.pgno, self.usable)?.len();
            if n == 0 && !self.stack.is_empty() {
                return Err(Error::corruption(old.pgno, "leaf below the root has no entries"));
            }
            if n > 0 {
                left = Some(old);
            }
            if !self.climb(forward)? {
                return Ok(false);
            }
            let top =
                self.stack.last().ok_or_else(|| Error::corruption(self.root, "cursor lost its leaf"))?;
            let node = Node::parse(&top.page, top.pgno, self.usable)?;
            if !node.is_leaf() {
                return Err(Error::corruption(top.pgno, "cursor stopped on an interior node"));
            }
            if top.idx < node.len() {
                if let Some(old) = &left {
                    let prev = Node::parse(&old.page, old.pgno, self.usable)?;
                    let here = node.key(top.idx)?;
                    let ordered =
                        if forward { prev.key(prev.len() - 1)? < here } else { here < prev.key(0)? };
                    if !ordered {
                        return Err(Error::corruption(
                            top.pgno,
                            format!(
                                "keys are out of order with those of page {} (a page reachable twice?)",
                                old.pgno
                            ),
                        ));
                    }
                }
                self.crossings = self.crossings.saturating_add(1);
                if self.crossings > 1 {
                    self.prefetch_next_leaf(forward);
                }
                return Ok(true);
            }
        }
    }

    /// Starts loading the leaf after the current one in the direction of
    /// travel when its parent is the current leaf's, so that a scan finds
    /// it in the CPU's caches. A hint only: a page that cannot be read now
    /// is left for the move that needs it to report.
    fn prefetch_next_leaf(&mut self, forward: bool) {
        let [.., parent, _] = self.stack.as_slice() else { return };
        let Ok(node) = Node::parse(&parent.page, parent.pgno, self.usable) else { return };
        let next = if forward {
            (parent.idx < node.len()).then(|| parent.idx + 1)
        } else {
            parent.idx.checked_sub(1)
        };
        let Some(pgno) = next.and_then(|j| node.child(j).ok()) else { return };
        if let Ok(page) = self.r.read_page(pgno) {
            node::prefetch(&page);
            self.ahead = Some((pgno, page));
        }
    }

    /// From the ancestors of a just-popped leaf, descends into the
    /// neighbouring subtree, leaving its first (forward) or last (backward)
    /// leaf on top. Returns false, with the stack empty, if there is none.
    fn climb(&mut self, forward: bool) -> Result<bool> {
        while let Some(top) = self.stack.last() {
            let node = Node::parse(&top.page, top.pgno, self.usable)?;
            let next =
                if forward { (top.idx < node.len()).then(|| top.idx + 1) } else { top.idx.checked_sub(1) };
            if let Some(j) = next {
                let child = node.child(j)?;
                self.set_top_idx(j);
                self.descend_edge(child, !forward)?;
                return Ok(true);
            }
            self.stack.pop();
        }
        Ok(false)
    }
}

/// An iterator over the entries of a tree whose keys lie within bounds, in
/// ascending order or, with `reverse`, descending order.
///
/// Yields `Err` once and then ends if the tree turns out to be corrupt.
pub struct Range<R: PageRead> {
    cursor: Cursor<R>,
    /// The bound that lies ahead in the direction of travel (the end going
    /// forward, the start going backward); the other one was used by the
    /// seek and is not needed again.
    limit: Bound<Vec<u8>>,
    reverse: bool,
    done: bool,
    /// [`next_in`](Range::next_in) returned the entry at the cursor, which
    /// must be stepped past before the next one is read.
    lent: bool,
}

impl<R: PageRead> Range<R> {
    /// Entries with `start <= key <= end` (per the bounds) of the tree at
    /// `root`. An empty or inverted range simply yields nothing.
    pub fn new(
        r: R,
        root: PageNo,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<Range<R>> {
        let mut cursor = Cursor::new(r, root);
        if reverse {
            match end {
                Bound::Included(k) => cursor.seek_at_or_before(k)?,
                Bound::Excluded(k) => cursor.seek_before(k)?,
                Bound::Unbounded => cursor.seek_last()?,
            };
        } else {
            match start {
                Bound::Included(k) => cursor.seek(k)?,
                Bound::Excluded(k) => cursor.seek(k)? && (cursor.key()? != Some(k) || cursor.advance()?),
                Bound::Unbounded => cursor.seek_first()?,
            };
        }
        let limit = if reverse { start } else { end };
        Ok(Range { cursor, limit: limit.map(<[u8]>::to_vec), reverse, done: false, lent: false })
    }

    /// Entries whose key starts with `prefix` (see [`prefix_bounds`]).
    pub fn prefix(r: R, root: PageNo, prefix: &[u8], reverse: bool) -> Result<Range<R>> {
        let (start, end) = prefix_bounds(prefix);
        Range::new(r, root, start.as_ref().map(Vec::as_slice), end.as_ref().map(Vec::as_slice), reverse)
    }

    /// Whether `key` (the cursor's next candidate) is still inside the
    /// bound that lies ahead in the direction of travel.
    fn ahead_ok(&self, key: &[u8]) -> bool {
        match (&self.limit, self.reverse) {
            (Bound::Included(s), true) => key >= s.as_slice(),
            (Bound::Excluded(s), true) => key > s.as_slice(),
            (Bound::Included(e), false) => key <= e.as_slice(),
            (Bound::Excluded(e), false) => key < e.as_slice(),
            (Bound::Unbounded, _) => true,
        }
    }

    /// Moves the cursor one entry in the direction of travel.
    fn move_on(&mut self) -> Result<bool> {
        if self.reverse {
            self.cursor.retreat()
        } else {
            self.cursor.advance()
        }
    }

    /// Steps past the entry [`next_in`](Range::next_in) lent out, if any.
    fn return_loan(&mut self) -> Result<()> {
        if std::mem::take(&mut self.lent) && !self.done {
            self.move_on()?;
        }
        Ok(())
    }

    /// The next entry in range, like the iterator's `next`, but lent rather
    /// than copied: the key and an inline value are borrowed from the page
    /// the cursor holds, a value from an overflow chain is read into
    /// `scratch` (see [`Cursor::entry_in`]). A scan that looks at every
    /// value and keeps few of them so copies nothing for the rest. The
    /// cursor steps past the entry at the following call. Mixes freely with
    /// `next` and `next_key`.
    pub fn next_in<'s>(&'s mut self, scratch: &'s mut Vec<u8>) -> Option<Result<(&'s [u8], &'s [u8])>> {
        if let Err(e) = self.return_loan() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        self.lent = true;
        // One decode of the leaf serves the bound check, the key and the value.
        let cursor = &self.cursor;
        let r = match cursor.entry() {
            Ok(Some((k, v))) if self.ahead_ok(k) => cursor.value_in(v, scratch).map(|v| Some((k, v))),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        match r {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn step(&mut self, with_value: bool) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.return_loan()?;
        if self.done {
            return Ok(None);
        }
        // One decode of the leaf serves the bound check, the key and the value.
        let entry = match self.cursor.entry()? {
            Some((k, v)) if self.ahead_ok(k) => {
                let value = if with_value { self.cursor.load(v)? } else { Vec::new() };
                Some((k.to_vec(), value))
            }
            _ => None,
        };
        match entry {
            Some(e) => {
                self.move_on()?;
                Ok(Some(e))
            }
            None => {
                self.done = true;
                Ok(None)
            }
        }
    }

    fn finish<T>(&mut self, r: Result<Option<T>>) -> Option<Result<T>> {
        match r {
            Ok(Some(x)) => Some(Ok(x)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// The next key in range without reading its value (no overflow chain
    /// is touched). Mixes freely with the iterator's `next`.
    pub fn next_key(&mut self) -> Option<Result<Vec<u8>>> {
        let r = self.step(false).map(|e| e.map(|(k, _)| k));
        self.finish(r)
    }
}

impl<R: PageRead> Iterator for Range<R> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.step(true);
        self.finish(r)
    }
}

impl<R: PageRead> std::iter::FusedIterator for Range<R> {}

/// The bounds selecting exactly the keys that start with `prefix`:
/// `Included(prefix)` up to `Excluded(successor)`, where the successor is
/// `prefix` with trailing 0xFF bytes dropped and the last remaining byte
/// incremented. A prefix of only 0xFF bytes (or an empty prefix) has no
/// successor, so the end is `Unbounded`.
pub fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xFF {
            end.push(last + 1);
            return (Bound::Included(prefix.to_vec()), Bound::Excluded(end));
        }
    }
    (Bound::Included(prefix.to_vec()), Bound::Unbounded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::tree::{create, delete, insert};
    use crate::storage::page::MemPageStore;
    use std::ops::Bound::{Excluded, Included, Unbounded};
    use std::ops::RangeBounds;

    fn store_with(keys: &[Vec<u8>], value_len: usize) -> (MemPageStore, PageNo) {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        for k in keys {
            let mut v = k.clone();
            v.resize(value_len.max(k.len()), 0xEE);
            insert(&mut s, root, k, &v).unwrap();
        }
        (s, root)
    }

    fn numbered(n: u32) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{:05}", i * 2).into_bytes()).collect()
    }

    #[test]
    fn btree_cursor_forward_backward_full() {
        let keys = numbered(3000);
        let (s, root) = store_with(&keys, 40);
        let mut c = Cursor::new(&s, root);
        assert!(c.seek_first().unwrap());
        let mut got = Vec::new();
        while let Some((k, v)) = c.next().unwrap() {
            assert_eq!(&v[..k.len()], &k[..]);
            got.push(k);
        }
        assert_eq!(got, keys);
        assert!(!c.is_positioned());
        assert_eq!(c.prev().unwrap(), None);
        assert!(c.seek_last().unwrap());
        let mut back = Vec::new();
        while let Some(k) = c.prev_key().unwrap() {
            back.push(k);
        }
        back.reverse();
        assert_eq!(back, keys);
    }

    #[test]
    fn btree_cursor_seeks() {
        let keys = numbered(3000);
        let (s, root) = store_with(&keys, 40);
        let mut c = Cursor::new(&s, root);
        assert!(c.seek(b"00100").unwrap());
        assert_eq!(c.key().unwrap(), Some(&b"00100"[..]));
        assert!(c.seek(b"00101").unwrap());
        assert_eq!(c.key().unwrap(), Some(&b"00102"[..]));
        assert!(c.seek_before(b"00102").unwrap());
        assert_eq!(c.key().unwrap(), Some(&b"00100"[..]));
        assert!(c.seek_before(b"00101").unwrap());
        assert_eq!(c.key().unwrap(), Some(&b"00100"[..]));
        assert!(c.seek_at_or_before(b"00102").unwrap());
        assert_eq!(c.key().unwrap(), Some(&b"00102"[..]));
        assert!(!c.seek_before(b"00000").unwrap());
        assert!(!c.seek_before(b"").unwrap());
        assert!(c.seek(b"").unwrap());
        assert_eq!(c.key().unwrap(), Some(&b"00000"[..]));
        assert!(!c.seek(b"99999").unwrap());
        assert!(c.seek_before(b"99999").unwrap());
        assert_eq!(c.key().unwrap(), Some(&b"05998"[..]));
        // Every leaf boundary: seek to each key and step both ways.
        for (i, k) in keys.iter().enumerate() {
            assert!(c.seek(k).unwrap());
            assert_eq!(c.next_key().unwrap().as_ref(), Some(k));
            assert_eq!(c.key().unwrap(), keys.get(i + 1).map(|k| &k[..]));
            assert!(c.seek_before(k).unwrap() == (i > 0));
            if i > 0 {
                assert_eq!(c.key().unwrap(), Some(&keys[i - 1][..]));
            }
        }
    }

    #[test]
    fn btree_cursor_direction_switch() {
        let keys = numbered(500);
        let (s, root) = store_with(&keys, 100);
        let mut c = Cursor::new(&s, root);
        c.seek_first().unwrap();
        // next returns the current entry and moves on; prev then returns
        // the entry the cursor moved to and steps back.
        for i in 0..keys.len() - 1 {
            assert_eq!(c.next_key().unwrap().unwrap(), keys[i]);
            assert_eq!(c.prev_key().unwrap().unwrap(), keys[i + 1]);
            assert_eq!(c.key().unwrap().unwrap(), keys[i]);
            assert!(c.advance().unwrap());
        }
        assert!(!c.advance().unwrap());
        assert!(!c.is_positioned());
        assert!(c.seek_last().unwrap());
        assert!(c.retreat().unwrap());
        assert_eq!(c.key().unwrap().unwrap(), keys[keys.len() - 2]);
    }

    #[test]
    fn btree_cursor_lazy_values() {
        let keys = numbered(50);
        let (s, root) = store_with(&keys, 20_000);
        let mut c = Cursor::new(&s, root);
        c.seek(b"00010").unwrap();
        assert_eq!(c.value_len().unwrap(), Some(20_000));
        let v = c.value().unwrap().unwrap();
        assert_eq!(v.len(), 20_000);
        assert_eq!(c.current().unwrap().unwrap(), (b"00010".to_vec(), v));
        let mut n = 0;
        c.seek_first().unwrap();
        while c.next_key().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 50);
    }

    #[test]
    fn btree_range_next_in_lends_what_next_copies() {
        let keys = numbered(3000);
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        for (i, k) in keys.iter().enumerate() {
            let mut v = k.clone();
            v.resize(if i % 50 == 0 { 9000 } else { 20 }, i as u8);
            insert(&mut s, root, k, &v).unwrap();
        }
        for rev in [false, true] {
            let want: Vec<_> = Range::new(&s, root, Included(&b"00100"[..]), Excluded(&b"05000"[..]), rev)
                .unwrap()
                .map(|e| e.unwrap())
                .collect();
            // Lent entries, mixed with copied ones and keys only.
            let mut r = Range::new(&s, root, Included(&b"00100"[..]), Excluded(&b"05000"[..]), rev).unwrap();
            let mut scratch = Vec::new();
            let mut got = Vec::new();
            for i in 0.. {
                let e = match i % 3 {
                    0 | 1 => r.next_in(&mut scratch).map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec()))),
                    _ => r.next(),
                };
                let Some(e) = e else { break };
                got.push(e.unwrap());
            }
            assert_eq!(got, want, "reverse {rev}");
            assert!(r.next_in(&mut scratch).is_none() && r.next().is_none() && r.next_key().is_none());
            let mut r = Range::new(&s, root, Unbounded, Unbounded, rev).unwrap();
            assert!(r.next_in(&mut scratch).is_some());
            let second = r.next_key().unwrap().unwrap();
            assert_eq!(second, if rev { keys[keys.len() - 2].clone() } else { keys[1].clone() });
        }
    }

    #[test]
    fn btree_cursor_empty_tree() {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        let mut c = Cursor::new(&s, root);
        assert!(!c.seek_first().unwrap());
        assert!(!c.seek_last().unwrap());
        assert!(!c.seek(b"a").unwrap());
        assert!(!c.seek_before(b"a").unwrap());
        assert_eq!(c.next().unwrap(), None);
        assert_eq!(c.key().unwrap(), None);
        assert_eq!(Range::new(&s, root, Unbounded, Unbounded, false).unwrap().count(), 0);
        assert_eq!(Range::new(&s, root, Unbounded, Unbounded, true).unwrap().count(), 0);
    }

    fn range_keys(
        s: &MemPageStore,
        root: PageNo,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
    ) -> Vec<Vec<u8>> {
        Range::new(s, root, lo, hi, rev).unwrap().map(|e| e.unwrap().0).collect()
    }

    #[test]
    fn btree_range_bounds() {
        let keys = numbered(1000);
        let (s, root) = store_with(&keys, 30);
        let expect = |lo: Bound<&[u8]>, hi: Bound<&[u8]>| -> Vec<Vec<u8>> {
            keys.iter().filter(|k| (lo, hi).contains(&k[..])).cloned().collect()
        };
        let probes: Vec<&[u8]> = vec![b"", b"00000", b"00001", b"00500", b"00501", b"01998", b"01999", b"9"];
        for &a in &probes {
            for &b in &probes {
                for lo in [Included(a), Excluded(a), Unbounded] {
                    for hi in [Included(b), Excluded(b), Unbounded] {
                        let fwd = range_keys(&s, root, lo, hi, false);
                        assert_eq!(fwd, expect(lo, hi), "{lo:?} {hi:?}");
                        let mut rev = range_keys(&s, root, lo, hi, true);
                        rev.reverse();
                        assert_eq!(rev, fwd, "{lo:?} {hi:?} reverse");
                    }
                }
            }
        }
        let mut r = Range::new(&s, root, Included(&b"00010"[..]), Excluded(&b"00016"[..]), false).unwrap();
        assert_eq!(r.next_key().unwrap().unwrap(), b"00010");
        assert_eq!(r.next().unwrap().unwrap().0, b"00012");
        assert_eq!(r.next_key().unwrap().unwrap(), b"00014");
        assert!(r.next_key().is_none() && r.next().is_none());
    }

    #[test]
    fn btree_range_prefix() {
        assert_eq!(prefix_bounds(b"ab"), (Included(b"ab".to_vec()), Excluded(b"ac".to_vec())));
        assert_eq!(prefix_bounds(b"a\xff\xff"), (Included(b"a\xff\xff".to_vec()), Excluded(b"b".to_vec())));
        assert_eq!(prefix_bounds(b"\xff\xff"), (Included(b"\xff\xff".to_vec()), Unbounded));
        assert_eq!(prefix_bounds(b""), (Included(Vec::new()), Unbounded));
        let keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a".to_vec(),
            b"a\xff".to_vec(),
            b"a\xff\x00".to_vec(),
            b"a\xff\xff".to_vec(),
            b"b".to_vec(),
            b"\xff".to_vec(),
            b"\xff\x00".to_vec(),
            b"\xff\xff".to_vec(),
            b"\xff\xff\xff".to_vec(),
        ];
        let (s, root) = store_with(&keys, 0);
        for p in [&b""[..], b"a", b"a\xff", b"a\xff\xff", b"\xff", b"\xff\xff", b"b", b"c"] {
            let expect: Vec<_> = keys.iter().filter(|k| k.starts_with(p)).cloned().collect();
            let got: Vec<_> = Range::prefix(&s, root, p, false).unwrap().map(|e| e.unwrap().0).collect();
            assert_eq!(got, expect, "prefix {p:?}");
            let mut back: Vec<_> = Range::prefix(&s, root, p, true).unwrap().map(|e| e.unwrap().0).collect();
            back.reverse();
            assert_eq!(back, expect, "prefix {p:?} reverse");
        }
    }

    #[test]
    fn btree_cursor_owned_reader() {
        // A cursor may own its reader (here an Arc'd store standing in for
        // a clonable snapshot).
        let keys = numbered(100);
        let (mut s, root) = store_with(&keys, 10);
        delete(&mut s, root, b"00000").unwrap();
        struct Snap(std::sync::Arc<MemPageStore>);
        impl PageRead for Snap {
            fn usable_size(&self) -> usize {
                self.0.usable_size()
            }
            fn read_page(&self, pgno: PageNo) -> Result<PageRef> {
                self.0.read_page(pgno)
            }
        }
        let snap = std::sync::Arc::new(s);
        let r = Range::new(Snap(snap.clone()), root, Unbounded, Unbounded, false).unwrap();
        assert_eq!(r.count(), 99);
        let mut c = Cursor::new(Snap(snap), root);
        assert!(c.seek_first().unwrap());
        assert_eq!(c.key().unwrap(), Some(&b"00002"[..]));
    }
}

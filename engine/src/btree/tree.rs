//! B+tree operations: create, point lookup, insert, delete, destroy, clear.
//!
//! This file owns the shape of the tree: which node an edit lands in, when
//! a node splits, merges or borrows from a sibling, and how the root is
//! kept in place. Byte layout is `node.rs`'s business; value chains are
//! `overflow.rs`'s.
//!
//! Invariants (checked by `verify.rs`):
//! - all entries live in leaves; interior nodes hold `n` separators and
//!   `n + 1` children, child `i` holding the keys `k` with
//!   `sep[i-1] <= k < sep[i]`;
//! - all leaves are at the same depth;
//! - every non-root node has at least one cell (one entry, or one
//!   separator and two children); an interior root also has at least one
//!   separator, because a root left with a single child absorbs it;
//! - the root page number never changes: a root split moves the root's
//!   content into two new children, and a root collapse copies its only
//!   child back into the root page. Callers can therefore store the root
//!   page number once (in a catalog) and never update it.
//!
//! Splits put the left half in a new page and leave the right half in the
//! old one. That way the parent only ever gains one cell (new page,
//! separator) in front of the existing pointer, which stays valid; no child
//! pointer is ever rewritten in place. Merges likewise keep the right page
//! and drop the parent cell that pointed at the left one.
//!
//! Where a node splits: in the middle (the most even cut), unless the new
//! cell continues an ascending run of inserts into that node (the two
//! inserts before it went to the two slots just before it, which the node's
//! layout tells, see `Node::continues_inserts_at`) or appends at the tree's
//! right edge. Then the cut goes right after the new cell, or right before
//! it when it is the node's last cell, so that the run carries on in a node
//! of its own while the cells it leaves behind stay as full as they were.
//! This is what keeps leaves full for keys that ascend within interleaved
//! runs, as in a non-unique index whose entries are (value, increasing id):
//! each value's new entries land at the end of its run, usually inside a
//! leaf, and a middle split there would leave half-full leaves behind for
//! good. Random inserts rarely look like a run and keep the middle split.

use std::collections::HashSet;

use crate::error::{Error, PageNo, Result};
use crate::storage::page::{PageRead, PageRef, PageWrite};

use super::node::{self, Cells, NewCell, Node, ValueRef, KIND_INTERIOR, KIND_LEAF};
use super::overflow;

/// Deeper than this, the tree is taken to be corrupt (a child pointer
/// cycle). Even at the minimum fan-out of 2 this allows 2^64 entries.
pub(crate) const MAX_DEPTH: usize = 64;

/// A node split: the separator to insert into the parent and the new page
/// holding the keys below it.
type Split = (Vec<u8>, PageNo);

/// Longest key a tree accepts on pages with `usable_size` bytes of content
/// (page size minus trailer): 1341 bytes for 4096-byte pages, growing
/// linearly with the page size (21,821 bytes for 65536-byte pages).
pub fn max_key_len(usable_size: usize) -> usize {
    node::max_key_len(usable_size)
}

/// Longest value a tree accepts: 4 GiB - 1 bytes. Values too large for a
/// leaf cell are stored in overflow page chains.
pub fn max_value_len() -> u64 {
    overflow::MAX_VALUE_LEN
}

fn check_sizes(usable: usize, key_len: usize, value_len: u64) -> Result<()> {
    let max = max_key_len(usable);
    if key_len > max {
        return Err(Error::invalid(format!(
            "key is {key_len} bytes; the longest key for {usable}-byte page content is {max} bytes"
        )));
    }
    if value_len > max_value_len() {
        return Err(Error::invalid(format!(
            "value is {value_len} bytes; the longest value is {} bytes",
            max_value_len()
        )));
    }
    Ok(())
}

fn buf_mut<W: PageWrite + ?Sized>(w: &mut W, pgno: PageNo) -> Result<&mut [u8]> {
    let usable = w.usable_size();
    w.page_mut(pgno)?
        .get_mut(..usable)
        .ok_or_else(|| Error::corruption(pgno, "page is shorter than the usable size"))
}

/// Creates an empty tree (a single empty leaf) and returns its root page,
/// which stays the tree's root for its whole life.
pub fn create<W: PageWrite + ?Sized>(w: &mut W) -> Result<PageNo> {
    let usable = w.usable_size();
    if !(1024..=65536).contains(&usable) {
        return Err(Error::invalid(format!("unsupported usable page size {usable}")));
    }
    let root = w.allocate_page()?;
    node::init(buf_mut(w, root)?, KIND_LEAF);
    Ok(root)
}

/// Looks `key` up in the tree rooted at `root`; returns a copy of its value.
pub fn get<R: PageRead + ?Sized>(r: &R, root: PageNo, key: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(get_guard(r, root, key)?.map(ValueGuard::into_vec))
}

/// A value read from a tree without copying it: it borrows the page that
/// holds it (a value kept in an overflow chain is read into a buffer of its
/// own). Holding one keeps that page image alive, not the transaction.
#[derive(Clone)]
pub struct ValueGuard {
    page: PageRef,
    span: std::ops::Range<usize>,
    overflow: Option<Vec<u8>>,
}

impl std::ops::Deref for ValueGuard {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.overflow {
            Some(v) => v,
            None => &self.page[self.span.clone()],
        }
    }
}

impl ValueGuard {
    /// The value as an owned vector (a copy, unless it came from an
    /// overflow chain).
    pub fn into_vec(self) -> Vec<u8> {
        match self.overflow {
            Some(v) => v,
            None => self.page[self.span].to_vec(),
        }
    }
}

impl std::fmt::Debug for ValueGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValueGuard({} bytes)", self.len())
    }
}

/// [`get`] without the copy: the value as a [`ValueGuard`].
pub fn get_guard<R: PageRead + ?Sized>(r: &R, root: PageNo, key: &[u8]) -> Result<Option<ValueGuard>> {
    let usable = r.usable_size();
    let mut pgno = root;
    let mut bounds = Bounds::default();
    for _ in 0..=MAX_DEPTH {
        // Interior pages the reader lends are read without a reference
        // count (see PageRead::lent_page).
        if let Some(buf) = r.lent_page(pgno) {
            let node = Node::parse(buf, pgno, usable)?;
            if !node.is_leaf() {
                let i = node.upper_bound(key)?;
                bounds.note(pgno, i, node.len());
                pgno = node.child(i)?;
                continue;
            }
        }
        let page = r.read_page(pgno)?;
        let node = Node::parse(&page, pgno, usable)?;
        if node.is_leaf() {
            node::prefetch(&page);
            let Ok(i) = node.search(key)? else {
                bounds.check_leaf(r, &node)?;
                return Ok(None);
            };
            let (span, overflow) = match node.leaf_entry(i)?.1 {
                // The value is a subslice of the page: its place is its
                // distance from the page's start.
                ValueRef::Inline(v) => {
                    let start = v.as_ptr() as usize - page.as_ptr() as usize;
                    (start..start + v.len(), None)
                }
                ValueRef::Overflow { len, first } => (0..0, Some(overflow::read(r, pgno, first, len)?)),
            };
            return Ok(Some(ValueGuard { page, span, overflow }));
        }
        let i = node.upper_bound(key)?;
        bounds.note(pgno, i, node.len());
        pgno = node.child(i)?;
    }
    Err(too_deep(root))
}

/// Where a point lookup's descent found the separators that bound the
/// leaf it reached: the deepest interior node with a key below the child
/// taken, and the deepest with one above it (page and key index). A miss
/// checks the leaf against them: a child pointer to the wrong subtree (a
/// damaged page whose checksum still holds) would otherwise answer "no
/// such key" for keys the tree holds, where a range scan reports the
/// damage. Kept as numbers, so a hit pays for no copies.
#[derive(Default)]
struct Bounds {
    low: Option<(PageNo, usize)>,
    high: Option<(PageNo, usize)>,
}

impl Bounds {
    /// The descent took child `i` of interior page `pgno` (`len` keys):
    /// child `i` holds the keys from `key(i-1)` up to before `key(i)`.
    #[inline]
    fn note(&mut self, pgno: PageNo, i: usize, len: usize) {
        if i > 0 {
            self.low = Some((pgno, i - 1));
        }
        if i < len {
            self.high = Some((pgno, i));
        }
    }

    /// `Corruption` unless `leaf`'s keys lie within the bounds.
    #[cold]
    fn check_leaf<R: PageRead + ?Sized>(&self, r: &R, leaf: &Node<'_>) -> Result<()> {
        let Some(last) = leaf.len().checked_sub(1) else { return Ok(()) };
        let misplaced = |what: &str| {
            Err(Error::corruption(
                leaf.pgno(),
                format!("leaf holds keys {what} the separator its parent page gives it (a misplaced child pointer?)"),
            ))
        };
        if let Some(low) = self.low {
            let first = leaf.key(0)?;
            if !separator_holds(r, low, |s| s <= first)? {
                return misplaced("below");
            }
        }
        if let Some(high) = self.high {
            let last = leaf.key(last)?;
            if !separator_holds(r, high, |s| last < s)? {
                return misplaced("at or above");
            }
        }
        Ok(())
    }
}

/// Whether `holds` is true of key `i` of interior page `pgno`, read in
/// place where the reader lends the page (as the descent read it).
fn separator_holds<R: PageRead + ?Sized>(
    r: &R,
    (pgno, i): (PageNo, usize),
    holds: impl FnOnce(&[u8]) -> bool,
) -> Result<bool> {
    if let Some(buf) = r.lent_page(pgno) {
        return Ok(holds(Node::parse(buf, pgno, r.usable_size())?.key(i)?));
    }
    let page = r.read_page(pgno)?;
    Ok(holds(Node::parse(&page, pgno, r.usable_size())?.key(i)?))
}

#[cold]
fn too_deep(root: PageNo) -> Error {
    Error::corruption(root, format!("tree is deeper than {MAX_DEPTH} levels (a child pointer cycle?)"))
}

/// The way from the root to the leaf where `key` belongs.
struct Descent {
    /// `(interior page, index of the child taken)`, root first.
    path: Path,
    leaf: PageNo,
    page: PageRef,
    /// Every step took the last child: the leaf is the tree's last.
    rightmost: bool,
}

/// The interior pages of a descent with the child taken in each, root
/// first. Every insert and delete descends, and a heap allocation for the
/// path was a tenth of a bulk load's allocations, so the first levels are
/// held inline (no real tree is deeper; deeper paths spill to the heap).
struct Path {
    inline: [(PageNo, u32); INLINE_DEPTH],
    len: usize,
    spill: Vec<(PageNo, u32)>,
}

const INLINE_DEPTH: usize = 12;

impl Path {
    fn new() -> Self {
        Path { inline: [(0, 0); INLINE_DEPTH], len: 0, spill: Vec::new() }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Adds a step; the caller checks the depth against [`MAX_DEPTH`].
    fn push(&mut self, pgno: PageNo, idx: usize) {
        // A node holds fewer cells than its page has bytes (at most 64 KiB).
        let step = (pgno, idx as u32);
        if self.len < INLINE_DEPTH {
            self.inline[self.len] = step;
        } else {
            if self.len == INLINE_DEPTH {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(step);
        }
        self.len += 1;
    }

    fn steps(&self) -> &[(PageNo, u32)] {
        if self.len <= INLINE_DEPTH {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

fn descend<R: PageRead + ?Sized>(r: &R, root: PageNo, key: &[u8]) -> Result<Descent> {
    let usable = r.usable_size();
    let mut path = Path::new();
    let mut pgno = root;
    let mut rightmost = true;
    loop {
        let page = r.read_page(pgno)?;
        let node = Node::parse(&page, pgno, usable)?;
        if node.is_leaf() {
            return Ok(Descent { path, leaf: pgno, page, rightmost });
        }
        if path.len() >= MAX_DEPTH {
            return Err(too_deep(root));
        }
        let i = node.upper_bound_from_end(key)?;
        rightmost &= i == node.len();
        path.push(pgno, i);
        pgno = node.child(i)?;
    }
}

/// Inserts `key` with `value`, replacing any existing value. Returns true if
/// the key was already present.
///
/// A key longer than [`max_key_len`] or a value longer than
/// [`max_value_len`] is [`Error::InvalidArgument`], reported before
/// anything is written. Any other error (corruption, I/O, no space) may
/// leave the tree partly modified: the write transaction must then be
/// rolled back, which is what the transaction layer does on error.
pub fn insert<W: PageWrite + ?Sized>(w: &mut W, root: PageNo, key: &[u8], value: &[u8]) -> Result<bool> {
    insert_inner(w, root, key, value, false).map(|r| r.is_some())
}

/// Inserts `key` with `value` only when `key` is absent: returns `None`
/// after inserting, or the value already there (nothing written). One
/// descent where a lookup and then an insert take two (a unique index
/// entry). Errors as for [`insert`].
pub fn insert_new<W: PageWrite + ?Sized>(
    w: &mut W,
    root: PageNo,
    key: &[u8],
    value: &[u8],
) -> Result<Option<Vec<u8>>> {
    insert_inner(w, root, key, value, true)
}

/// [`insert`] (`keep_old` false: replaces, and returns `Some` of an empty
/// value when a key was replaced) or [`insert_new`] (`keep_old`: returns
/// the existing value, unchanged).
fn insert_inner<W: PageWrite + ?Sized>(
    w: &mut W,
    root: PageNo,
    key: &[u8],
    value: &[u8],
    keep_old: bool,
) -> Result<Option<Vec<u8>>> {
    let usable = w.usable_size();
    check_sizes(usable, key.len(), value.len() as u64)?;
    let Descent { path, leaf, page, rightmost } = descend(w, root, key)?;
    let (idx, old, append) = {
        let node = Node::parse(&page, leaf, usable)?;
        match node.search_from_end(key)? {
            Ok(i) if keep_old => {
                let existing = match node.leaf_entry(i)?.1 {
                    ValueRef::Inline(v) => v.to_vec(),
                    ValueRef::Overflow { len, first } => overflow::read(w, leaf, first, len)?,
                };
                return Ok(Some(existing));
            }
            Ok(i) => (i, Some((node.cell(i)?.len(), node.leaf_entry(i)?.1)), false),
            Err(i) => (i, None, i == node.len()),
        }
    };
    let old = old.map(|(len, v)| match v {
        ValueRef::Inline(_) => (len, None),
        ValueRef::Overflow { len: vlen, first } => (len, Some((vlen, first))),
    });
    // Release our reference before writing: a page still shared with us
    // would have to be copied by page_mut.
    drop(page);
    if let Some((_, Some((vlen, first)))) = old {
        overflow::free(w, leaf, first, vlen)?;
    }
    let cell = if node::inline_fits(usable, key.len(), value.len()) {
        NewCell::Inline { key, value }
    } else {
        NewCell::Overflow { key, len: value.len() as u64, first: overflow::write(w, value)? }
    };
    if let Some((old_len, _)) = old {
        let buf = buf_mut(w, leaf)?;
        if old_len == cell.len() {
            node::overwrite(buf, leaf, idx, &cell)?;
            return Ok(Some(Vec::new()));
        }
        node::remove(buf, leaf, idx)?;
    }
    // Appending at the end of the last leaf (ascending bulk loads) is a run
    // at every level, whatever the nodes' layout says.
    let edge = rightmost && append;
    let split = insert_or_split(w, leaf, idx, &cell, edge)?;
    propagate(w, root, path.steps(), split, edge)?;
    Ok(old.map(|_| Vec::new()))
}

/// Inserts `cell` as cell `idx` of node `pgno`, splitting the node if it
/// does not fit. On a split `pgno` keeps the upper part and the returned
/// new page the lower part. `edge`: the cell appends at the tree's right
/// edge, so the split is a run's split whatever the node's layout says.
fn insert_or_split<W: PageWrite + ?Sized>(
    w: &mut W,
    pgno: PageNo,
    idx: usize,
    cell: &NewCell<'_>,
    edge: bool,
) -> Result<Option<Split>> {
    let usable = w.usable_size();
    let buf = buf_mut(w, pgno)?;
    if node::insert(buf, pgno, idx, cell)? {
        return Ok(None);
    }
    let node = Node::parse(buf, pgno, usable)?;
    let run = (edge || node.continues_inserts_at(idx)?).then_some(idx);
    let mut cells = Cells::with_capacity(usable + cell.len());
    cells.push_node(&node, 0..idx)?;
    cells.push_new(cell);
    cells.push_node(&node, idx..node.len())?;
    let rightmost = if node.is_leaf() { None } else { Some(node.rightmost()) };
    split_cells(w, pgno, rightmost, &cells, run).map(Some)
}

/// Distributes `cells` (one node's worth plus one cell) over a new page
/// (lower part) and `pgno` (upper part). `rightmost` is the interior
/// node's last child, or None for a leaf; `run` as for [`choose_split`].
fn split_cells<W: PageWrite + ?Sized>(
    w: &mut W,
    pgno: PageNo,
    rightmost: Option<PageNo>,
    cells: &Cells,
    run: Option<usize>,
) -> Result<Split> {
    let usable = w.usable_size();
    let leaf = rightmost.is_none();
    let k = choose_split(cells, leaf, node::capacity(usable), run)
        .ok_or_else(|| Error::corruption(pgno, "node cannot be split: its cells are too large"))?;
    let n = cells.len();
    let left = w.allocate_page()?;
    match rightmost {
        None => {
            let sep = leaf_separator(pgno, cells, k)?;
            node::build(buf_mut(w, left)?, left, KIND_LEAF, cells, 0..k, 0)?;
            node::build(buf_mut(w, pgno)?, pgno, KIND_LEAF, cells, k..n, 0)?;
            Ok((sep, left))
        }
        Some(right) => {
            let (mid_child, mid_key) = interior_cell(pgno, cells.get(k))?;
            let sep = mid_key.to_vec();
            node::build(buf_mut(w, left)?, left, KIND_INTERIOR, cells, 0..k, mid_child)?;
            node::build(buf_mut(w, pgno)?, pgno, KIND_INTERIOR, cells, k + 1..n, right)?;
            Ok((sep, left))
        }
    }
}

fn interior_cell(pgno: PageNo, cell: &[u8]) -> Result<(PageNo, &[u8])> {
    node::raw_interior(cell).ok_or_else(|| Error::corruption(pgno, "malformed interior cell"))
}

/// The shortest key `s` with `cells[k-1].key < s <= cells[k].key`: a prefix
/// of the upper key. Short separators keep interior nodes wide.
fn leaf_separator(pgno: PageNo, cells: &Cells, k: usize) -> Result<Vec<u8>> {
    let (a, b) = match (node::raw_leaf_key(cells.get(k - 1)), node::raw_leaf_key(cells.get(k))) {
        (Some(a), Some(b)) if a < b => (a, b),
        _ => return Err(Error::corruption(pgno, "leaf keys are not in increasing order")),
    };
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    Ok(b[..common + 1].to_vec())
}

/// Picks where to cut `cells`: a leaf keeps `[0, k)` on the left and
/// `[k, n)` on the right; an interior node keeps `[0, k)` on the left, moves
/// cell `k` up as the separator and keeps `(k, n)` on the right. Both sides
/// must fit and be non-empty, so `1 <= k <= last`.
///
/// `run` is the position of the new cell when it continues a run of
/// ascending inserts. The cut then goes right after it (`k = run + 1`), or
/// as close after it as `last` allows (a new last cell starts the right
/// side alone), so that the run's next keys go where only it inserts; if
/// that does not fit, the cut right before it (the cells above the new one
/// move right with it). Otherwise, and when neither fits, the most even cut.
fn choose_split(cells: &Cells, leaf: bool, cap: usize, run: Option<usize>) -> Option<usize> {
    let n = cells.len();
    let last = if leaf { n.checked_sub(1)? } else { n.checked_sub(2)? };
    let sides = |k: usize| {
        let right_start = if leaf { k } else { k + 1 };
        (cells.size(0..k), cells.size(right_start..n))
    };
    let fits = |(l, r): (usize, usize)| l <= cap && r <= cap;
    if last < 1 {
        return None;
    }
    if let Some(at) = run {
        let after = at.saturating_add(1).min(last);
        if let Some(k) = [after, at].into_iter().find(|&k| (1..=last).contains(&k) && fits(sides(k))) {
            return Some(k);
        }
    }
    (1..=last).filter(|&k| fits(sides(k))).min_by_key(|&k| {
        let (l, r) = sides(k);
        l.max(r)
    })
}

/// Hands a split of the node below `path` up the tree: each parent gains
/// the new cell and may split in turn; a split of the root grows the tree.
fn propagate<W: PageWrite + ?Sized>(
    w: &mut W,
    root: PageNo,
    path: &[(PageNo, u32)],
    mut split: Option<Split>,
    edge: bool,
) -> Result<()> {
    for &(parent, idx) in path.iter().rev() {
        let Some((sep, left)) = split else { return Ok(()) };
        split =
            insert_or_split(w, parent, idx as usize, &NewCell::Interior { child: left, key: &sep }, edge)?;
    }
    if let Some((sep, left)) = split {
        // The root holds the upper half; move it to a new page so the root
        // page can become the new top level.
        let right = w.allocate_page()?;
        copy_page(w, root, right)?;
        let buf = buf_mut(w, root)?;
        node::init(buf, KIND_INTERIOR);
        node::set_rightmost(buf, right);
        if !node::insert(buf, root, 0, &NewCell::Interior { child: left, key: &sep })? {
            return Err(Error::corruption(root, "separator does not fit an empty root"));
        }
    }
    Ok(())
}

fn copy_page<W: PageWrite + ?Sized>(w: &mut W, from: PageNo, to: PageNo) -> Result<()> {
    let usable = w.usable_size();
    let src = w.read_page(from)?;
    let src =
        src.get(..usable).ok_or_else(|| Error::corruption(from, "page is shorter than the usable size"))?;
    buf_mut(w, to)?.copy_from_slice(src);
    Ok(())
}

/// Deletes `key`, freeing its overflow chain if it has one. Returns true if
/// it was present. As with [`insert`], an error may leave the tree partly
/// modified and the write transaction must be rolled back.
pub fn delete<W: PageWrite + ?Sized>(w: &mut W, root: PageNo, key: &[u8]) -> Result<bool> {
    let usable = w.usable_size();
    if key.len() > max_key_len(usable) {
        return Ok(false);
    }
    let Descent { path, leaf, page, .. } = descend(w, root, key)?;
    let (idx, chain) = {
        let node = Node::parse(&page, leaf, usable)?;
        let Ok(i) = node.search(key)? else { return Ok(false) };
        match node.leaf_entry(i)?.1 {
            ValueRef::Inline(_) => (i, None),
            ValueRef::Overflow { len, first } => (i, Some((len, first))),
        }
    };
    drop(page);
    if let Some((len, first)) = chain {
        overflow::free(w, leaf, first, len)?;
    }
    let buf = buf_mut(w, leaf)?;
    node::remove(buf, leaf, idx)?;
    let low = node::underfull(usable, Node::parse(buf, leaf, usable)?.used());
    rebalance_up(w, root, path.steps(), low)?;
    collapse_root(w, root)?;
    Ok(true)
}

fn is_underfull<R: PageRead + ?Sized>(r: &R, pgno: PageNo) -> Result<bool> {
    let usable = r.usable_size();
    let page = r.read_page(pgno)?;
    Ok(node::underfull(usable, Node::parse(&page, pgno, usable)?.used()))
}

/// Walks up from the leaf at the end of `path` while nodes are underfull,
/// merging or redistributing each with a sibling.
fn rebalance_up<W: PageWrite + ?Sized>(
    w: &mut W,
    root: PageNo,
    path: &[(PageNo, u32)],
    mut low: bool,
) -> Result<()> {
    let mut depth = path.len();
    while low && depth > 0 {
        let (parent, idx) = path[depth - 1];
        if let Some(split) = rebalance(w, parent, idx as usize)? {
            // A longer separator overflowed the parent; the halves of a
            // split are not underfull, so only the split travels on.
            return propagate(w, root, &path[..depth - 1], Some(split), false);
        }
        depth -= 1;
        low = depth > 0 && is_underfull(w, parent)?;
    }
    Ok(())
}

/// Fixes underfull child `i` of `parent` by merging it with a sibling when
/// both fit one page, otherwise by redistributing their cells evenly.
/// Returns a split of `parent` if its new separator made it overflow.
fn rebalance<W: PageWrite + ?Sized>(w: &mut W, parent: PageNo, i: usize) -> Result<Option<Split>> {
    let usable = w.usable_size();
    let cap = node::capacity(usable);
    let (s, lpg, rpg, sep) = {
        let page = w.read_page(parent)?;
        let p = Node::parse(&page, parent, usable)?;
        if p.len() == 0 {
            // Only a root can be left with a single child; collapse_root
            // takes care of it.
            return Ok(None);
        }
        // Pair the child with its left sibling, or its right one if it is
        // the first; `s` is the separator between the pair.
        let s = i.saturating_sub(1);
        (s, p.child(s)?, p.child(s + 1)?, p.key(s)?.to_vec())
    };
    if lpg == rpg || lpg == parent || rpg == parent {
        return Err(Error::corruption(parent, "interior node has repeated children"));
    }
    let (lpage, rpage) = (w.read_page(lpg)?, w.read_page(rpg)?);
    let (l, r) = (Node::parse(&lpage, lpg, usable)?, Node::parse(&rpage, rpg, usable)?);
    if l.is_leaf() != r.is_leaf() {
        return Err(Error::corruption(parent, format!("children {lpg} and {rpg} are at different depths")));
    }
    let leaf = l.is_leaf();
    let mut cells = Cells::with_capacity(2 * usable);
    cells.push_node(&l, 0..l.len())?;
    if !leaf {
        // The parent's separator comes down between the two halves, with
        // the left node's last child to its left.
        cells.push_new(&NewCell::Interior { child: l.rightmost(), key: &sep });
    }
    cells.push_node(&r, 0..r.len())?;
    let (kind, r_last) = if leaf { (KIND_LEAF, 0) } else { (KIND_INTERIOR, r.rightmost()) };
    drop((lpage, rpage));
    let n = cells.len();

    if cells.size(0..n) <= cap {
        node::build(buf_mut(w, rpg)?, rpg, kind, &cells, 0..n, r_last)?;
        w.free_page(lpg)?;
        node::remove(buf_mut(w, parent)?, parent, s)?;
        return Ok(None);
    }

    let k = choose_split(&cells, leaf, cap, None)
        .ok_or_else(|| Error::corruption(parent, "siblings cannot be redistributed"))?;
    let new_sep = if leaf {
        let sep = leaf_separator(rpg, &cells, k)?;
        node::build(buf_mut(w, lpg)?, lpg, kind, &cells, 0..k, 0)?;
        node::build(buf_mut(w, rpg)?, rpg, kind, &cells, k..n, 0)?;
        sep
    } else {
        let (mid_child, mid_key) = interior_cell(parent, cells.get(k))?;
        let sep = mid_key.to_vec();
        node::build(buf_mut(w, lpg)?, lpg, kind, &cells, 0..k, mid_child)?;
        node::build(buf_mut(w, rpg)?, rpg, kind, &cells, k + 1..n, r_last)?;
        sep
    };
    node::remove(buf_mut(w, parent)?, parent, s)?;
    insert_or_split(w, parent, s, &NewCell::Interior { child: lpg, key: &new_sep }, false)
}

/// While the root is an interior node with a single child, copies that
/// child into the root page and frees it.
fn collapse_root<W: PageWrite + ?Sized>(w: &mut W, root: PageNo) -> Result<()> {
    let usable = w.usable_size();
    for _ in 0..MAX_DEPTH {
        let child = {
            let page = w.read_page(root)?;
            let node = Node::parse(&page, root, usable)?;
            if node.is_leaf() || node.len() > 0 {
                return Ok(());
            }
            node.child(0)?
        };
        if child == root {
            return Err(Error::corruption(root, "root is its own child"));
        }
        copy_page(w, child, root)?;
        w.free_page(child)?;
    }
    Err(too_deep(root))
}

/// Frees every page of the tree: nodes, overflow chains and the root.
pub fn destroy<W: PageWrite + ?Sized>(w: &mut W, root: PageNo) -> Result<()> {
    free_below(w, root, 0, &mut HashSet::from([root]))?;
    w.free_page(root)
}

/// Removes every entry, freeing all pages but the root, which becomes an
/// empty leaf.
pub fn clear<W: PageWrite + ?Sized>(w: &mut W, root: PageNo) -> Result<()> {
    free_below(w, root, 0, &mut HashSet::from([root]))?;
    node::init(buf_mut(w, root)?, KIND_LEAF);
    Ok(())
}

/// Frees everything `pgno` owns (its subtrees or its overflow chains) but
/// not `pgno` itself. `seen` holds the nodes met so far: on a corrupt tree
/// where a node is reachable twice, freeing it twice would corrupt the
/// freelist, so that is reported instead.
fn free_below<W: PageWrite + ?Sized>(
    w: &mut W,
    pgno: PageNo,
    depth: usize,
    seen: &mut HashSet<PageNo>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep(pgno));
    }
    let usable = w.usable_size();
    let mut children = Vec::new();
    let mut chains = Vec::new();
    {
        let page = w.read_page(pgno)?;
        let node = Node::parse(&page, pgno, usable)?;
        if node.is_leaf() {
            for i in 0..node.len() {
                if let ValueRef::Overflow { len, first } = node.leaf_entry(i)?.1 {
                    chains.push((len, first));
                }
            }
        } else {
            for i in 0..=node.len() {
                children.push(node.child(i)?);
            }
        }
    }
    for (len, first) in chains {
        overflow::free(w, pgno, first, len)?;
    }
    for child in children {
        if !seen.insert(child) {
            return Err(Error::corruption(pgno, format!("child page {child} is reachable twice")));
        }
        free_below(w, child, depth + 1, seen)?;
        w.free_page(child)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::btree::verify::verify;
    use crate::storage::page::MemPageStore;

    /// Tiny deterministic generator for tests (xorshift64*).
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
        /// Random bytes of a random length below `max_len`.
        pub(crate) fn bytes_upto(&mut self, max_len: u64) -> Vec<u8> {
            let len = self.below(max_len) as usize;
            self.bytes(len)
        }
    }

    /// Verifies the tree and checks it owns every page in use but page 0.
    pub(crate) fn check(s: &MemPageStore, root: PageNo) -> u64 {
        let mut seen = std::collections::HashSet::new();
        let n = verify(s, root, &mut |p| {
            assert!(seen.insert(p), "page {p} visited twice");
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), s.pages_in_use(), "pages leaked or shared");
        n
    }

    fn depth(s: &MemPageStore, root: PageNo) -> usize {
        let mut d = 1;
        let mut p = root;
        loop {
            let page = s.read_page(p).unwrap();
            let node = Node::parse(&page, p, s.usable_size()).unwrap();
            if node.is_leaf() {
                return d;
            }
            p = node.child(0).unwrap();
            d += 1;
        }
    }

    fn key(i: u64) -> Vec<u8> {
        format!("key{i:08}").into_bytes()
    }

    #[test]
    fn btree_empty_tree() {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        assert_eq!(get(&s, root, b"x").unwrap(), None);
        assert!(!delete(&mut s, root, b"x").unwrap());
        assert_eq!(check(&s, root), 0);
        assert_eq!(s.pages_in_use(), 1);
    }

    #[test]
    fn btree_insert_replace_delete_basic() {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        assert!(!insert(&mut s, root, b"b", b"1").unwrap());
        assert!(!insert(&mut s, root, b"", b"empty key").unwrap());
        assert!(!insert(&mut s, root, b"a", b"").unwrap());
        assert!(insert(&mut s, root, b"b", b"2").unwrap());
        assert!(insert(&mut s, root, b"b", b"longer value").unwrap());
        assert_eq!(get(&s, root, b"b").unwrap().as_deref(), Some(&b"longer value"[..]));
        assert_eq!(get(&s, root, b"").unwrap().as_deref(), Some(&b"empty key"[..]));
        assert_eq!(get(&s, root, b"a").unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(check(&s, root), 3);
        assert!(delete(&mut s, root, b"").unwrap());
        assert!(!delete(&mut s, root, b"").unwrap());
        assert_eq!(get(&s, root, b"").unwrap(), None);
        assert_eq!(check(&s, root), 2);
    }

    #[test]
    fn btree_split_and_collapse_sequential() {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        let value = [5u8; 150];
        for i in 0..20_000 {
            insert(&mut s, root, &key(i), &value).unwrap();
        }
        assert_eq!(check(&s, root), 20_000);
        assert!(depth(&s, root) >= 3);
        // Appending keeps leaves nearly full: 20k entries of 172 bytes of
        // cell need about 850 leaves at 100%.
        assert!(s.pages_in_use() < 950, "{} pages", s.pages_in_use());
        for i in (0..20_000).step_by(7) {
            assert_eq!(get(&s, root, &key(i)).unwrap().as_deref(), Some(&value[..]));
        }
        for i in 0..20_000 {
            assert!(delete(&mut s, root, &key(i)).unwrap(), "{i}");
            if i % 2000 == 0 {
                check(&s, root);
            }
        }
        assert_eq!(check(&s, root), 0);
        assert_eq!(s.pages_in_use(), 1);
        assert_eq!(depth(&s, root), 1);
    }

    #[test]
    fn btree_random_insert_delete_all_page_sizes() {
        for page_size in [4096usize, 8192, 16384, 32768, 65536] {
            let mut s = MemPageStore::new(page_size);
            let root = create(&mut s).unwrap();
            let mut rng = Rng(page_size as u64 * 7919 + 1);
            let mut model = std::collections::BTreeMap::new();
            let n = 6000;
            for _ in 0..n {
                let k = rng.bytes_upto(30);
                let v = rng.bytes_upto(400);
                assert_eq!(insert(&mut s, root, &k, &v).unwrap(), model.insert(k, v).is_some());
            }
            assert_eq!(check(&s, root), model.len() as u64);
            assert_eq!(s.read_page(root).unwrap()[0], KIND_INTERIOR, "page size {page_size}");
            let keys: Vec<_> = model.keys().cloned().collect();
            for (i, k) in keys.iter().enumerate() {
                if i % 3 != 0 {
                    assert!(delete(&mut s, root, k).unwrap());
                    model.remove(k);
                }
            }
            assert_eq!(check(&s, root), model.len() as u64);
            for (k, v) in &model {
                assert_eq!(get(&s, root, k).unwrap().as_ref(), Some(v));
            }
            for k in keys {
                delete(&mut s, root, &k).unwrap();
            }
            assert_eq!(check(&s, root), 0);
            assert_eq!(s.pages_in_use(), 1, "page size {page_size}");
        }
    }

    #[test]
    fn btree_max_key_len_boundary_all_page_sizes() {
        for page_size in [4096usize, 8192, 16384, 32768, 65536] {
            let mut s = MemPageStore::new(page_size);
            let usable = s.usable_size();
            let max = max_key_len(usable);
            assert!(max >= 1024 * page_size / 4096, "page size {page_size}: {max}");
            let root = create(&mut s).unwrap();
            // Many maximal keys with short and long values force interior
            // nodes of three separators and overflow chains.
            for i in 0..40u8 {
                let mut k = vec![i; max];
                k[max - 1] = 0;
                let v = vec![i; if i % 2 == 0 { 10 } else { usable }];
                insert(&mut s, root, &k, &v).unwrap();
            }
            assert_eq!(check(&s, root), 40);
            let too_long = vec![1u8; max + 1];
            let err = insert(&mut s, root, &too_long, b"v").unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
            assert!(err.to_string().contains("key"));
            assert!(!delete(&mut s, root, &too_long).unwrap());
            assert_eq!(get(&s, root, &too_long).unwrap(), None);
            for i in 0..40u8 {
                let mut k = vec![i; max];
                k[max - 1] = 0;
                assert!(delete(&mut s, root, &k).unwrap());
            }
            assert_eq!(check(&s, root), 0);
            assert_eq!(s.pages_in_use(), 1);
        }
    }

    #[test]
    fn btree_value_len_limit() {
        assert!(max_value_len() >= 1 << 30);
        assert!(check_sizes(4092, 0, max_value_len()).is_ok());
        let err = check_sizes(4092, 0, max_value_len() + 1).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)) && err.to_string().contains("value"));
    }

    #[test]
    fn btree_overflow_values_replace_and_free() {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        let sizes = [0usize, 10, 11, 300, 1000, 1100, 4084, 4085, 10_000, 100_000];
        for (i, &n) in sizes.iter().enumerate() {
            let v: Vec<u8> = (0..n).map(|j| (i + j) as u8).collect();
            insert(&mut s, root, &key(i as u64), &v).unwrap();
        }
        check(&s, root);
        // Replace big with small, small with big, big with big.
        for (i, &n) in sizes.iter().enumerate() {
            let new_len = sizes[sizes.len() - 1 - i];
            let v = vec![i as u8; new_len];
            assert!(insert(&mut s, root, &key(i as u64), &v).unwrap());
            assert_eq!(get(&s, root, &key(i as u64)).unwrap().unwrap(), v, "old {n} new {new_len}");
        }
        check(&s, root);
        clear(&mut s, root).unwrap();
        assert_eq!(s.pages_in_use(), 1);
        assert_eq!(check(&s, root), 0);
        insert(&mut s, root, b"k", &[1u8; 50_000]).unwrap();
        destroy(&mut s, root).unwrap();
        assert_eq!(s.pages_in_use(), 0);
    }

    #[test]
    fn btree_inline_threshold() {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        // ~300-byte values with 10-byte keys stay inline, 12+ per leaf.
        for i in 0..1200u64 {
            insert(&mut s, root, format!("k{i:09}").as_bytes(), &[3u8; 300]).unwrap();
        }
        check(&s, root);
        assert!(s.pages_in_use() < 1200 / 12 + 10, "{}", s.pages_in_use());
    }

    #[test]
    fn btree_value_64mib_roundtrip() {
        let mut s = MemPageStore::new(65536);
        let root = create(&mut s).unwrap();
        let big: Vec<u8> = (0..64usize << 20).map(|i| (i ^ (i >> 13)) as u8).collect();
        insert(&mut s, root, b"big", &big).unwrap();
        insert(&mut s, root, b"small", b"x").unwrap();
        assert!(get(&s, root, b"big").unwrap().unwrap() == big);
        assert_eq!(check(&s, root), 2);
        assert!(delete(&mut s, root, b"big").unwrap());
        assert!(delete(&mut s, root, b"small").unwrap());
        assert_eq!(s.pages_in_use(), 1);
    }

    #[test]
    fn btree_value_64mib_4k_pages() {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        let big = vec![0xA5u8; 64 << 20];
        insert(&mut s, root, b"big", &big).unwrap();
        assert!(get(&s, root, b"big").unwrap().unwrap() == big);
        assert!(delete(&mut s, root, b"big").unwrap());
        assert_eq!(s.pages_in_use(), 1);
    }

    #[test]
    fn btree_root_page_never_changes_and_collapses() {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        // A long common prefix makes separators long and fan-out small.
        let long_key = |i: u64| [vec![b'p'; 300], key(i)].concat();
        for i in 0..3000 {
            insert(&mut s, root, &long_key(i), &[1u8; 100]).unwrap();
        }
        assert!(depth(&s, root) >= 3);
        for i in (0..3000).rev() {
            delete(&mut s, root, &long_key(i)).unwrap();
            if i == 5 {
                // A handful of entries fit one leaf: the root is that leaf.
                assert_eq!(depth(&s, root), 1);
                assert_eq!(s.pages_in_use(), 1);
            }
        }
        assert_eq!(s.read_page(root).unwrap()[0], KIND_LEAF);
    }

    #[test]
    fn btree_fat_keys_deep_tree_random_order() {
        // Keys sharing a long prefix keep separators long, so interior
        // nodes hold only a few: every interior split, merge and
        // redistribution path runs many times.
        for page_size in [4096usize, 16384] {
            let mut s = MemPageStore::new(page_size);
            let root = create(&mut s).unwrap();
            let max = max_key_len(s.usable_size());
            let mut rng = Rng(page_size as u64);
            let fat = |i: u64, len: usize| {
                let mut k = vec![b'f'; len];
                k[len - 8..].copy_from_slice(&i.to_be_bytes());
                k
            };
            let mut keys: Vec<Vec<u8>> =
                (0..1500).map(|i| fat(i * 7919 % 1500, max - rng.below(200) as usize)).collect();
            let mut model = std::collections::BTreeMap::new();
            for (n, k) in keys.iter().enumerate() {
                let v = rng.bytes_upto(60);
                insert(&mut s, root, k, &v).unwrap();
                model.insert(k.clone(), v);
                if n % 300 == 0 {
                    check(&s, root);
                }
            }
            assert_eq!(check(&s, root), model.len() as u64);
            assert!(depth(&s, root) >= 4, "depth {}", depth(&s, root));
            // Delete in an order unrelated to the insert order.
            keys.sort_by_key(|k| k.iter().rev().take(3).copied().collect::<Vec<_>>());
            for (n, k) in keys.iter().enumerate() {
                assert_eq!(delete(&mut s, root, k).unwrap(), model.remove(k).is_some());
                if n % 100 == 0 {
                    assert_eq!(check(&s, root), model.len() as u64);
                    for (k, v) in model.iter().step_by(50) {
                        assert_eq!(get(&s, root, k).unwrap().as_ref(), Some(v));
                    }
                }
            }
            assert_eq!(check(&s, root), 0);
            assert_eq!(s.pages_in_use(), 1);
        }
    }

    #[test]
    fn btree_choose_split_rules() {
        let mut cells = Cells::default();
        for i in 0..6u8 {
            cells.push_new(&NewCell::Inline { key: &[i], value: &[0; 30] });
        }
        assert_eq!(choose_split(&cells, true, 1000, None), Some(3));
        // A run's new last cell starts the right side alone.
        assert_eq!(choose_split(&cells, true, 1000, Some(5)), Some(5));
        assert_eq!(choose_split(&cells, false, 1000, Some(5)), Some(4));
        assert_eq!(choose_split(&cells, false, 1000, Some(4)), Some(4));
        // Inside the node the cut goes right after the run's new cell.
        assert_eq!(choose_split(&cells, true, 1000, Some(0)), Some(1));
        assert_eq!(choose_split(&cells, true, 1000, Some(1)), Some(2));
        assert_eq!(choose_split(&cells, false, 1000, Some(1)), Some(2));
        assert_eq!(choose_split(&cells, true, 10, None), None);
        assert_eq!(choose_split(&cells, true, 10, Some(2)), None);
        let mut one = Cells::default();
        one.push(cells.get(0));
        assert_eq!(choose_split(&one, true, 1000, None), None);
        assert_eq!(choose_split(&one, true, 1000, Some(0)), None);

        // Cells of 38 bytes with their slot, and cell 3 of 303.
        let mut cells = Cells::default();
        for i in 0..6u8 {
            let value: &[u8] = if i == 3 { &[0; 295] } else { &[0; 30] };
            cells.push_new(&NewCell::Inline { key: &[i], value });
        }
        assert_eq!((cells.size(0..1), cells.size(3..4)), (38, 303));
        // Right after a run's cell 3 the left side holds 417 bytes; right
        // before it the right side holds 379.
        assert_eq!(choose_split(&cells, true, 420, Some(3)), Some(4));
        assert_eq!(choose_split(&cells, true, 400, Some(3)), Some(3));
        assert_eq!(choose_split(&cells, true, 378, Some(3)), None);
        // Around a run's cell 1 neither cut fits 400 bytes: the even one.
        assert_eq!(choose_split(&cells, true, 400, Some(1)), Some(3));
        assert_eq!(choose_split(&cells, true, 400, None), Some(3));
    }

    /// Leaves of the tree and the bytes their slots and cells use.
    fn leaf_use(s: &MemPageStore, root: PageNo) -> (usize, usize) {
        let (mut leaves, mut used) = (0, 0);
        let mut stack = vec![root];
        while let Some(p) = stack.pop() {
            let page = s.read_page(p).unwrap();
            let node = Node::parse(&page, p, s.usable_size()).unwrap();
            if node.is_leaf() {
                leaves += 1;
                used += node.used();
            } else {
                stack.extend((0..=node.len()).map(|i| node.child(i).unwrap()));
            }
        }
        (leaves, used)
    }

    /// A non-unique index's entries (value, then an increasing id) for
    /// values drawn at random from `runs`: every insert lands at the end of
    /// its value's run, which is inside a leaf, not at the tree's edge.
    fn run_key(run: u64, id: u64) -> Vec<u8> {
        let mut k = format!("region-{run:02}").into_bytes();
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    #[test]
    fn btree_ascending_runs_keep_leaves_full() {
        for page_size in [4096usize, 16384] {
            let mut s = MemPageStore::new(page_size);
            let root = create(&mut s).unwrap();
            let mut rng = Rng(page_size as u64 + 3);
            // Enough entries for a few hundred leaves: each run's first
            // leaf and the leaves made before the runs parted stay looser.
            let n = 60_000 * (page_size / 4096) as u64;
            for id in 0..n {
                insert(&mut s, root, &run_key(rng.below(16), id), b"").unwrap();
            }
            assert_eq!(check(&s, root), n);
            let (leaves, used) = leaf_use(&s, root);
            let fill = used as f64 / (leaves * node::capacity(s.usable_size())) as f64;
            // A middle split at each run's end leaves them about 55% full.
            eprintln!("runs, page size {page_size}: {leaves} leaves {:.1}% full", fill * 100.0);
            assert!(fill > 0.9, "page size {page_size}: {leaves} leaves {:.1}% full", fill * 100.0);
            let mut rng = Rng(page_size as u64 + 3);
            for id in (0..n).step_by(97) {
                let k = run_key(rng.below(16), id);
                assert_eq!(get(&s, root, &k).unwrap().as_deref(), Some(&b""[..]), "{id}");
                for _ in 1..97 {
                    rng.next();
                }
            }
        }
    }

    #[test]
    fn btree_random_inserts_keep_even_splits() {
        for page_size in [4096usize, 8192, 65536] {
            let mut s = MemPageStore::new(page_size);
            let root = create(&mut s).unwrap();
            let mut rng = Rng(page_size as u64 * 31 + 7);
            let mut model = std::collections::BTreeMap::new();
            for i in 0..40_000u64 {
                let k = rng.bytes(24);
                let v = rng.bytes_upto(150);
                model.insert(k.clone(), v.clone());
                insert(&mut s, root, &k, &v).unwrap();
                if i % 10_000 == 0 {
                    check(&s, root);
                }
            }
            assert_eq!(check(&s, root), model.len() as u64);
            let (leaves, used) = leaf_use(&s, root);
            let fill = used as f64 / (leaves * node::capacity(s.usable_size())) as f64;
            // Random inserts with even splits settle near ln 2 = 69%.
            eprintln!("random, page size {page_size}: {leaves} leaves {:.1}% full", fill * 100.0);
            assert!(fill > 0.62, "page size {page_size}: {leaves} leaves {:.1}% full", fill * 100.0);
            for (k, v) in model.iter().step_by(13) {
                assert_eq!(get(&s, root, k).unwrap().as_ref(), Some(v));
            }
        }
    }

    #[test]
    fn btree_runs_mixed_with_random_and_deletes_verify() {
        // Runs, random keys, deletes (which move cell areas and leave frag)
        // and replacements interleaved, on small and large pages, with
        // values big enough that a run's cut often does not fit.
        for page_size in [4096usize, 32768] {
            let mut s = MemPageStore::new(page_size);
            let root = create(&mut s).unwrap();
            let mut rng = Rng(page_size as u64 ^ 0x5eed);
            let mut model = std::collections::BTreeMap::new();
            for id in 0..20_000u64 {
                let k = match rng.below(4) {
                    0 => rng.bytes_upto(40),
                    _ => run_key(rng.below(8), id),
                };
                let vmax = if rng.below(10) == 0 { 1200 } else { 60 };
                let v = rng.bytes_upto(vmax);
                insert(&mut s, root, &k, &v).unwrap();
                model.insert(k, v);
                if rng.below(3) == 0 {
                    let victim = run_key(rng.below(8), rng.below(id + 1));
                    assert_eq!(delete(&mut s, root, &victim).unwrap(), model.remove(&victim).is_some());
                }
                if id % 2_500 == 0 {
                    assert_eq!(check(&s, root), model.len() as u64);
                }
            }
            assert_eq!(check(&s, root), model.len() as u64);
            for (k, v) in &model {
                assert_eq!(get(&s, root, k).unwrap().as_ref(), Some(v));
            }
        }
    }
}

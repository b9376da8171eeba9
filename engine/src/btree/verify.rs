//! Structural checking of a whole tree, for `integrity_check` and tests.
//!
//! This file owns the full list of what a well-formed tree is; the cheap
//! checks that lookups make as they go (in `node.rs`) are a subset. It
//! walks every node and overflow page once, so its cost is a full scan. It
//! keeps its own set of pages seen, which both reports a page reachable
//! twice and bounds the walk on a corrupt tree whose pointers form a DAG or
//! a cycle.

use std::collections::HashSet;

use crate::error::{Error, PageNo, Result};
use crate::storage::page::PageRead;

use super::node::{self, Node, ValueRef, SLOT};
use super::overflow;
use super::tree::MAX_DEPTH;

/// Checks the whole tree rooted at `root` and returns its number of entries.
///
/// Checks that every page is readable (the pager verifies checksums), node
/// headers are consistent, cells lie inside the page without overlapping
/// and account for every byte of the cell area, keys strictly increase in
/// every node and lie within the bounds the parent's separators give, every
/// non-root node (and an interior root) has at least one cell, all leaves
/// are at the same depth, and every overflow chain is well formed and as
/// long as its recorded value length.
///
/// Calls `visit(pgno)` once for every page the tree owns (nodes and
/// overflow pages), so the caller can check that each page of the file is
/// used exactly once; an error from `visit` stops the walk and is returned.
/// Problems are [`Error::Corruption`] naming the page.
pub fn verify<R: PageRead + ?Sized>(
    r: &R,
    root: PageNo,
    visit: &mut dyn FnMut(PageNo) -> Result<()>,
) -> Result<u64> {
    let (entries, problems) = verify_all(r, root, visit);
    match problems.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(entries),
    }
}

/// [`verify`] that goes on past a damaged subtree or overflow chain to
/// check the rest of the tree (up to `MAX_PROBLEMS` problems): every
/// problem found, and the entries counted in the parts that could be read.
/// One bad page then costs the caller its own subtree, not every page the
/// walk had yet to reach.
pub fn verify_all<R: PageRead + ?Sized>(
    r: &R,
    root: PageNo,
    visit: &mut dyn FnMut(PageNo) -> Result<()>,
) -> (u64, Vec<Error>) {
    let mut v = Verifier {
        r,
        usable: r.usable_size(),
        visit,
        seen: HashSet::new(),
        leaf_depth: None,
        entries: 0,
        problems: Vec::new(),
        misplaced_leaves: 0,
    };
    if let Err(e) = v.node(root, None, None, 0) {
        v.problems.push(e);
    }
    if v.misplaced_leaves > 1 {
        // (one wrong child pointer puts every leaf below it at another
        // depth: one finding for the first, one for all the others)
        let d = v.leaf_depth.unwrap_or(0);
        v.problems.push(Error::corruption(
            root,
            format!("{} more leaves are not at depth {d} (not listed)", v.misplaced_leaves - 1),
        ));
    }
    (v.entries, v.problems)
}

/// Problems [`verify_all`] collects in one tree before it stops.
pub const MAX_PROBLEMS: usize = 100;

/// Pages of the tree rooted at `root`: its nodes and the overflow pages of
/// its values, counted from their recorded lengths without reading them.
/// Reads every node once and checks only what parsing needs: statistics,
/// not checking (that is [`verify`]). A walk past `limit` pages (the file's
/// page count) is `Corruption`, which bounds it on a tree whose pointers
/// form a cycle.
pub fn page_count<R: PageRead + ?Sized>(r: &R, root: PageNo, limit: u64) -> Result<u64> {
    let usable = r.usable_size();
    let mut pages = 0u64;
    let mut stack = vec![(root, 0usize)];
    while let Some((pgno, depth)) = stack.pop() {
        if depth > MAX_DEPTH || pages >= limit {
            return Err(Error::corruption(root, "tree walk goes past the end of the file (a cycle?)"));
        }
        let page = r.read_page(pgno)?;
        let node = Node::parse(&page, pgno, usable)?;
        pages += 1;
        if node.is_leaf() {
            for i in 0..node.len() {
                if let (_, ValueRef::Overflow { len, .. }) = node.leaf_entry(i)? {
                    pages += overflow::page_count(usable, len);
                }
            }
        } else {
            for i in 0..=node.len() {
                stack.push((node.child(i)?, depth + 1));
            }
        }
    }
    Ok(pages)
}

struct Verifier<'a, R: PageRead + ?Sized> {
    r: &'a R,
    usable: usize,
    visit: &'a mut dyn FnMut(PageNo) -> Result<()>,
    seen: HashSet<PageNo>,
    leaf_depth: Option<usize>,
    entries: u64,
    /// Problems of the subtrees and chains walked past (see `verify_all`).
    problems: Vec<Error>,
    /// Leaves at another depth than the first leaf's (the first of them
    /// is a problem of its own, the others one more in all).
    misplaced_leaves: u64,
}

fn own(seen: &mut HashSet<PageNo>, visit: &mut dyn FnMut(PageNo) -> Result<()>, pgno: PageNo) -> Result<()> {
    if pgno == 0 {
        return Err(Error::corruption(pgno, "page 0 is referenced as a tree page"));
    }
    if !seen.insert(pgno) {
        return Err(Error::corruption(pgno, "page is referenced twice within the tree"));
    }
    visit(pgno)
}

impl<R: PageRead + ?Sized> Verifier<'_, R> {
    fn node(&mut self, pgno: PageNo, lower: Option<&[u8]>, upper: Option<&[u8]>, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::corruption(pgno, format!("tree is deeper than {MAX_DEPTH} levels")));
        }
        own(&mut self.seen, &mut *self.visit, pgno)?;
        let page = self.r.read_page(pgno)?;
        let node = Node::parse(&page, pgno, self.usable)?;
        check_layout(&node, self.usable)?;
        let n = node.len();
        if n == 0 && (depth > 0 || !node.is_leaf()) {
            return Err(Error::corruption(pgno, "node has no cells"));
        }
        let bad = |msg: String| Error::corruption(pgno, msg);
        let mut prev: Option<&[u8]> = None;
        for i in 0..n {
            let key = node.key(i)?;
            if let Some(p) = prev {
                if key <= p {
                    return Err(bad(format!("key {i} is not greater than key {}", i - 1)));
                }
            } else if lower.is_some_and(|lo| key < lo) {
                return Err(bad("first key is below the parent's separator".into()));
            }
            prev = Some(key);
        }
        if let (Some(last), Some(hi)) = (prev, upper) {
            if last >= hi {
                return Err(bad("last key is not below the parent's next separator".into()));
            }
        }

        if node.is_leaf() {
            match self.leaf_depth {
                None => self.leaf_depth = Some(depth),
                Some(d) if d != depth => {
                    self.misplaced_leaves += 1;
                    if self.misplaced_leaves == 1 {
                        return Err(bad(format!("leaf at depth {depth}, other leaves are at depth {d}")));
                    }
                }
                Some(_) => {}
            }
            for i in 0..n {
                if let ValueRef::Overflow { len, first } = node.leaf_entry(i)?.1 {
                    let (seen, visit) = (&mut self.seen, &mut *self.visit);
                    let walked = overflow::walk(self.r, pgno, first, len, |p, _| own(seen, visit, p));
                    self.go_on_past(walked)?;
                }
            }
            self.entries += n as u64;
        } else {
            for i in 0..=n {
                let lo = if i == 0 { lower } else { Some(node.key(i - 1)?) };
                let hi = if i == n { upper } else { Some(node.key(i)?) };
                let walked = self.node(node.child(i)?, lo, hi, depth + 1);
                self.go_on_past(walked)?;
            }
        }
        Ok(())
    }

    /// Notes the problem of a subtree or chain and goes on with the rest,
    /// unless there are too many to list.
    fn go_on_past(&mut self, walked: Result<()>) -> Result<()> {
        match walked {
            Err(e) if self.problems.len() < MAX_PROBLEMS => {
                self.problems.push(e);
                Ok(())
            }
            other => other,
        }
    }
}

/// Checks the byte layout of one node: cells inside the cell area, no two
/// overlapping, sizes within the limits, dead-byte count exact.
fn check_layout(node: &Node<'_>, usable: usize) -> Result<()> {
    let pgno = node.pgno();
    let bad = |msg: String| Err(Error::corruption(pgno, msg));
    if node.flags() != 0 {
        return bad(format!("unknown node flags {:#04x}", node.flags()));
    }
    let mut spans = Vec::with_capacity(node.len());
    let mut live = 0;
    for i in 0..node.len() {
        let (at, len) = (node.offset(i)?, node.cell(i)?.len());
        // (A leaf's cells with an overflow value are bounded by the key check.)
        let max = if node.is_leaf() { node::max_leaf_cell(usable) } else { node::max_cell(usable) };
        if len + SLOT > max {
            return bad(format!("cell {i} is {len} bytes, larger than a cell may be"));
        }
        if node.key(i)?.len() > node::max_key_len(usable) {
            return bad(format!("key {i} is longer than the maximum key length"));
        }
        if !node.is_leaf() {
            node.child(i)?;
        }
        spans.push((at, len));
        live += len;
    }
    if !node.is_leaf() {
        node.child(node.len())?;
    }
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0) {
        return bad("cells overlap".into());
    }
    if usable - node.content_start() != live + node.frag() {
        return bad(format!(
            "cell area of {} bytes holds {live} bytes of cells and {} dead bytes",
            usable - node.content_start(),
            node.frag()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::tree::{create, insert, tests::Rng};
    use crate::storage::page::{MemPageStore, PageWrite};

    fn no_visit() -> impl FnMut(PageNo) -> Result<()> {
        |_| Ok(())
    }

    fn tree_with(n: u64, value_len: usize) -> (MemPageStore, PageNo) {
        let mut s = MemPageStore::new(4096);
        let root = create(&mut s).unwrap();
        for i in 0..n {
            insert(&mut s, root, format!("{i:06}").as_bytes(), &vec![i as u8; value_len]).unwrap();
        }
        (s, root)
    }

    #[test]
    fn btree_verify_counts_and_visits() {
        let (s, root) = tree_with(2000, 50);
        let mut pages = Vec::new();
        let n = verify(&s, root, &mut |p| {
            pages.push(p);
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2000);
        assert_eq!(pages.len(), s.pages_in_use());
        // The visitor can stop the walk.
        let err = verify(&s, root, &mut |_| Err(Error::invalid("stop"))).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
    }

    #[test]
    fn btree_verify_detects_out_of_order_and_bounds() {
        let (mut s, root) = tree_with(2000, 50);
        // Swap two keys' first bytes in some leaf: find a leaf via the root.
        let leaf = {
            let page = s.read_page(root).unwrap();
            let node = Node::parse(&page, root, 4092).unwrap();
            let mut p = node.child(1).unwrap();
            loop {
                let page = s.read_page(p).unwrap();
                let node = Node::parse(&page, p, 4092).unwrap();
                if node.is_leaf() {
                    break p;
                }
                p = node.child(0).unwrap();
            }
        };
        let off = {
            let page = s.read_page(leaf).unwrap();
            let node = Node::parse(&page, leaf, 4092).unwrap();
            node.offset(0).unwrap()
        };
        // Make the first key of a non-first leaf sort below every key.
        s.page_mut(leaf).unwrap()[off + node::INLINE_HDR] = b' ';
        let err = verify(&s, root, &mut no_visit()).unwrap_err();
        assert!(matches!(err, Error::Corruption { page: Some(p), .. } if p == leaf), "{err}");
    }

    #[test]
    fn btree_verify_detects_shared_and_bad_overflow() {
        let (mut s, root) = tree_with(3, 9000);
        assert_eq!(verify(&s, root, &mut no_visit()).unwrap(), 3);
        // Make the second entry's chain point at the first entry's chain.
        let page = s.read_page(root).unwrap();
        let node = Node::parse(&page, root, 4092).unwrap();
        let ValueRef::Overflow { first, .. } = node.leaf_entry(0).unwrap().1 else { panic!() };
        let off = node.offset(1).unwrap();
        drop(page);
        s.page_mut(root).unwrap()[off + 11..off + 15].copy_from_slice(&first.to_le_bytes());
        assert!(verify(&s, root, &mut no_visit()).unwrap_err().is_corruption());
    }

    #[test]
    fn a_child_pointer_into_a_deeper_tree_is_one_finding_not_one_per_leaf() {
        // Tree A (two levels) and a deeper tree B in one store; A's
        // rightmost child pointed at B's root puts B's leaves one level
        // deeper than A's: one finding for them all, so the 100-problem
        // cap does not cut the walk short nor hide what follows.
        let mut s = MemPageStore::new(4096);
        let a = create(&mut s).unwrap();
        for i in 0..300u32 {
            insert(&mut s, a, format!("a{i:06}").as_bytes(), &[1; 50]).unwrap();
        }
        let b = create(&mut s).unwrap();
        for i in 0..40_000u32 {
            insert(&mut s, b, format!("b{i:06}").as_bytes(), &[2; 50]).unwrap();
        }
        let page = s.read_page(a).unwrap();
        assert!(!Node::parse(&page, a, 4092).unwrap().is_leaf());
        drop(page);
        s.page_mut(a).unwrap()[12..16].copy_from_slice(&b.to_le_bytes());
        let (_, problems) = verify_all(&s, a, &mut no_visit());
        assert!(problems.len() <= 3, "{}: {:?}", problems.len(), &problems[..3]);
        assert!(
            problems.iter().any(|e| e.to_string().contains("more leaves are not at depth")),
            "{problems:?}"
        );
    }

    #[test]
    fn btree_verify_detects_layout_damage() {
        let (s0, root) = tree_with(10, 20);
        let mut rng = Rng(99);
        // Any single-byte change to the header or slot area of the only leaf
        // is either caught or harmless; a shifted content start always is.
        let mut s = MemPageStore::new(4096);
        let r2 = create(&mut s).unwrap();
        assert_eq!(r2, root);
        s.page_mut(root).unwrap().copy_from_slice(&s0.read_page(root).unwrap());
        s.page_mut(root).unwrap()[4] ^= 1;
        assert!(verify(&s, root, &mut no_visit()).unwrap_err().is_corruption());
        for _ in 0..200 {
            s.page_mut(root).unwrap().copy_from_slice(&s0.read_page(root).unwrap());
            let at = rng.below(16 + 20) as usize;
            s.page_mut(root).unwrap()[at] ^= 1 << rng.below(8);
            let _ = verify(&s, root, &mut no_visit());
        }
    }
}

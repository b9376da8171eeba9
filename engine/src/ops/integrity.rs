//! `integrity_check`: walks every page of one snapshot and checks that the
//! file is exactly what the engine would have written.
//!
//! Checked: every page's checksum (by reading it), every tree's structure
//! (key order, child bounds, equal leaf depth, overflow chains), every
//! tree's entry count against its catalog record, the freelist, and that
//! every page is used exactly once — by a tree or the freelist — with none
//! leaked. Findings are collected rather than stopping at the first.

use std::ops::Bound;

use crate::btree;
use crate::catalog::TreeMeta;
use crate::error::{Error, PageNo, Result};
use crate::storage::freelist;
use crate::storage::page::PageRead;
use crate::storage::pager::{possible_pages, Snapshot};
use crate::txn::EngineTrees;

/// What an integrity check looked at (returned when it found nothing wrong).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Pages in the database (page 0 included).
    pub pages: u64,
    /// Pages on the freelist.
    pub free_pages: u64,
    /// Trees checked (the catalog not included).
    pub trees: u64,
    /// Entries in all trees.
    pub entries: u64,
}

struct PageUse {
    owner: Vec<Option<String>>,
    findings: Vec<String>,
    /// A walk (of the catalog, a tree or the freelist) stopped short of
    /// some pages: those it did not reach are not known to be leaked.
    cut_short: bool,
}

impl PageUse {
    fn claim(&mut self, pgno: PageNo, owner: &str) -> Result<()> {
        match self.owner.get_mut(pgno as usize) {
            None => Err(Error::corruption(pgno, format!("{owner} refers to page {pgno} beyond the end"))),
            Some(Some(prev)) => {
                let msg = format!("page {pgno} is used twice: by {prev} and by {owner}");
                Err(Error::corruption(pgno, msg))
            }
            Some(slot) => {
                *slot = Some(owner.to_string());
                Ok(())
            }
        }
    }
}

/// Checks the database as `snap` sees it. `Ok(report)` when nothing is
/// wrong; `Err(Error::Integrity(findings))` listing every problem found.
pub fn check(snap: &Snapshot) -> Result<IntegrityReport> {
    let header = snap.header();
    // Every counted page is in the main file, in the WAL, or free and never
    // written (then listed on a freelist trunk written to the WAL, see
    // `possible_pages`). A count beyond that is corruption; refuse it
    // before allocating per page. The frames are those this snapshot sees
    // (its mark): the shared header's count reads 0 while another thread
    // or process publishes a commit.
    let file_pages = snap.pager().main_file_size()? / snap.page_size() as u64;
    let frames = snap.mark().max_frame;
    let possible = possible_pages(file_pages, frames, snap.usable_size());
    if header.page_count as u64 > possible {
        return Err(Error::Integrity(vec![format!(
            "the header counts {} pages but the file holds {file_pages} and the WAL {frames} frames \
             (room for {possible} at most)",
            header.page_count
        )]));
    }
    let mut usage =
        PageUse { owner: vec![None; header.page_count as usize], findings: Vec::new(), cut_short: false };
    usage.owner[0] = Some("the header".into());
    let mut report = IntegrityReport { pages: header.page_count as u64, ..Default::default() };

    if header.catalog_root != 0 {
        let mut visit = |p: PageNo| usage.claim(p, "the catalog");
        let catalog = btree::verify(snap, header.catalog_root, &mut visit);
        match catalog {
            Err(e) => {
                usage.findings.push(format!("catalog: {e}"));
                usage.cut_short = true;
            }
            Ok(_) => check_trees(snap, header.catalog_root, &mut usage, &mut report)?,
        }
    }

    // The freelist.
    let mut trunk = header.freelist_head;
    let mut free = 0u64;
    let mut trunks = 0u64;
    while trunk != 0 {
        trunks += 1;
        if trunks > header.page_count as u64 {
            usage.findings.push("freelist trunk chain has a cycle".into());
            usage.cut_short = true;
            break;
        }
        let result = snap
            .read_page(trunk)
            .and_then(|page| freelist::read_trunk(&page, trunk, snap.usable_size(), header.page_count));
        match result {
            Err(e) => {
                usage.findings.push(format!("freelist: {e}"));
                usage.cut_short = true;
                break;
            }
            Ok((next, entries)) => {
                if let Err(e) = usage.claim(trunk, "the freelist") {
                    usage.findings.push(e.to_string());
                }
                free += 1;
                for e in entries {
                    if let Err(err) = usage.claim(e, "the freelist") {
                        usage.findings.push(err.to_string());
                    }
                    free += 1;
                }
                trunk = next;
            }
        }
    }
    if free != header.freelist_count as u64 {
        usage
            .findings
            .push(format!("freelist holds {free} pages but the header records {}", header.freelist_count));
    }
    report.free_pages = free;

    let leaked: Vec<usize> =
        usage.owner.iter().enumerate().filter(|(_, o)| o.is_none()).map(|(i, _)| i).collect();
    if !leaked.is_empty() {
        let shown: Vec<String> = leaked.iter().take(20).map(|p| p.to_string()).collect();
        usage.findings.push(format!(
            "{} page(s) {}: {}{}",
            leaked.len(),
            if usage.cut_short {
                "not reached, as the problems above cut the walk short (they may belong to the damaged parts)"
            } else {
                "neither in use nor free (leaked)"
            },
            shown.join(", "),
            if leaked.len() > 20 { ", ..." } else { "" }
        ));
    }
    if usage.findings.is_empty() {
        Ok(report)
    } else {
        Err(Error::Integrity(usage.findings))
    }
}

fn check_trees(
    snap: &Snapshot,
    catalog: PageNo,
    usage: &mut PageUse,
    report: &mut IntegrityReport,
) -> Result<()> {
    let entries: Vec<(Vec<u8>, Vec<u8>)> =
        match btree::Range::new(snap, catalog, Bound::Unbounded, Bound::Unbounded, false)
            .and_then(|r| r.collect::<Result<Vec<_>>>())
        {
            Ok(v) => v,
            Err(e) => {
                usage.findings.push(format!("catalog: {e}"));
                usage.cut_short = true;
                return Ok(());
            }
        };
    let counts = &snap.header().tree_counts;
    let mut counted = vec![false; counts.len()];
    for (k, v) in entries {
        let name = String::from_utf8_lossy(&k).into_owned();
        // (Whose count it is: page 0's, or the catalog record's.)
        let mut recorder = "the catalog";
        let meta = match TreeMeta::decode(&v, &name) {
            Ok(m) => {
                if let Some(i) = counts.iter().position(|c| c.is_of(m.root, m.serial)) {
                    counted[i] = true;
                    recorder = "the header";
                }
                m.current(snap.header())
            }
            Err(e) => {
                usage.findings.push(e.to_string());
                usage.cut_short = true;
                continue;
            }
        };
        report.trees += 1;
        let owner = format!("tree {name:?}");
        let mut visit = |p: PageNo| usage.claim(p, &owner);
        let (n, problems) = btree::verify_all(snap, meta.root, &mut visit);
        if !problems.is_empty() {
            // (its count of entries is then that of the parts read)
            usage.findings.extend(problems.iter().map(|e| format!("tree {name:?}: {e}")));
            usage.cut_short = true;
            continue;
        }
        report.entries += n;
        if n != meta.entries {
            usage
                .findings
                .push(format!("tree {name:?} holds {n} entries but {recorder} records {}", meta.entries));
        }
    }
    // Page 0's entry counts: each of a tree in the catalog, none twice
    // (a lookup would take the first).
    for (i, c) in counts.iter().enumerate() {
        if counts[..i].iter().any(|o| o.root == c.root) {
            usage
                .findings
                .push(format!("the header holds two entry counts for the tree rooted at page {}", c.root));
        } else if !counted[i] {
            usage.findings.push(format!(
                "the header holds an entry count for a tree the catalog does not hold (root page {}, \
                 serial {:#x})",
                c.root, c.serial
            ));
        }
    }
    Ok(())
}

/// Checks every ready index of every collection against the documents:
/// each document's index values have their entries, and each entry points
/// at an existing document that has that value. Returns the findings.
pub fn check_indexes(txn: &crate::txn::ReadTxn) -> Vec<String> {
    let mut findings = Vec::new();
    if let Err(e) = check_indexes_into(txn, &mut findings) {
        findings.push(format!("checking indexes: {e}"));
    }
    findings
}

fn check_indexes_into(txn: &crate::txn::ReadTxn, findings: &mut Vec<String>) -> Result<()> {
    use crate::doc::collection::{
        decode_stored, id_from_key, id_key, index_tree, list_collections, state, tree_has_owner,
        COLLECTIONS_TREE,
    };
    use crate::index::key_encoding::index_entry_key;
    use crate::index::secondary::{doc_index_keys, parse_entry, IndexKind, IndexStatus};
    use crate::txn::ReadableTxn;
    const MAX_FINDINGS: usize = 100;
    // Each collection's own trees belong to a collection the collections
    // tree lists: a damaged name there (or of that tree) would otherwise
    // hide documents without a finding.
    let listed: std::collections::BTreeSet<String> = list_collections(txn)?.into_iter().collect();
    for tree in txn.list_trees()? {
        if tree_has_owner(&tree, &listed) == Some(false) && findings.len() < MAX_FINDINGS {
            findings.push(format!("tree {tree:?} belongs to no collection that {COLLECTIONS_TREE:?} lists"));
        }
    }
    for name in listed {
        let Some(st) = state(txn, &name)? else { continue };
        // A collection without a ready index has no document decoded below:
        // its first one is, so that a lost name dictionary shows.
        if !st.raw && !st.indexes.iter().any(|i| i.status == IndexStatus::Ready) {
            if let Some(entry) = txn.range(&st.docs, Bound::Unbounded, Bound::Unbounded, false)?.next() {
                let (k, bytes) = entry?;
                if let Err(e) = decode_stored(&bytes, &*st.dict) {
                    let id = id_from_key(&k).unwrap_or(0);
                    findings.push(format!("collection {name:?}: document {id}: {e}"));
                }
            }
        }
        for info in st.indexes.iter().filter(|i| i.status == IndexStatus::Ready) {
            let iname = &info.spec.name;
            let Some(tree) = txn.find_engine_tree(&index_tree(&name, iname))? else {
                findings.push(format!("collection {name:?}: index {iname:?} has no tree"));
                continue;
            };
            // Documents -> entries.
            for entry in txn.range(&st.docs, Bound::Unbounded, Bound::Unbounded, false)? {
                let (k, bytes) = entry?;
                let id = id_from_key(&k).unwrap_or(0);
                let doc = match decode_stored(&bytes, &*st.dict) {
                    Ok((_, d)) => d,
                    Err(e) => {
                        findings.push(format!("collection {name:?}: document {id}: {e}"));
                        continue;
                    }
                };
                for key in doc_index_keys(&info.spec.fields, &doc)? {
                    let ok = match info.spec.kind {
                        IndexKind::Unique => match txn.get(&tree, &key)? {
                            Some(v) => parse_entry(IndexKind::Unique, &key, &v)?.1 == id,
                            None => false,
                        },
                        _ => txn.get(&tree, &index_entry_key(&key, id))?.is_some(),
                    };
                    if !ok && findings.len() < MAX_FINDINGS {
                        findings.push(format!(
                            "collection {name:?}: document {id} lacks its entry in index {iname:?}"
                        ));
                    }
                }
            }
            // Entries -> documents.
            for entry in txn.range(&tree, Bound::Unbounded, Bound::Unbounded, false)? {
                let (k, v) = entry?;
                let (key, id) = match parse_entry(info.spec.kind, &k, &v) {
                    Ok(x) => x,
                    Err(e) => {
                        findings.push(format!("collection {name:?}: index {iname:?}: {e}"));
                        continue;
                    }
                };
                let ok = match txn.get(&st.docs, &id_key(id))? {
                    None => false,
                    Some(bytes) => match decode_stored(&bytes, &*st.dict) {
                        Ok((_, doc)) => doc_index_keys(&info.spec.fields, &doc)?.iter().any(|d| d == key),
                        Err(_) => false,
                    },
                };
                if !ok && findings.len() < MAX_FINDINGS {
                    findings.push(format!(
                        "collection {name:?}: index {iname:?} has an entry for document {id} that does not hold its value"
                    ));
                }
            }
        }
    }
    Ok(())
}

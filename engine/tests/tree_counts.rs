//! Tree entry counts kept in page 0 (docs/format.md, "Tree entry counts"):
//! a commit that only adds or removes entries writes page 0 and the leaves
//! it changed, not the catalog leaf; counts survive every way a file is
//! reopened, copied or rewritten; a commit that changes the catalog
//! otherwise folds them back into it; damage to them is `Corruption`.

use std::path::Path;

use obj_engine::storage::header::{Header, TreeCount, FLAG_TREE_COUNTS};
use obj_engine::storage::page::seal_page;
use obj_engine::{Db, Error, ReadableTxn};

const PAGE: usize = 4096;

fn insert(db: &Db, tree: &str, keys: std::ops::Range<u32>) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree(tree).unwrap();
    for k in keys {
        w.insert(&t, &k.to_be_bytes(), b"value").unwrap();
    }
    w.commit().unwrap();
}

fn count(db: &Db, tree: &str) -> u64 {
    let r = db.begin_read().unwrap();
    let t = r.open_tree(tree).unwrap();
    r.count(&t).unwrap()
}

/// The header of the main file's page 0 (after a checkpoint).
fn main_header(path: &Path) -> Header {
    let bytes = std::fs::read(path).unwrap();
    Header::decode(&bytes[..PAGE]).unwrap()
}

fn frames_of(db: &Db, write: impl FnOnce(&Db)) -> u64 {
    let before = db.stat().unwrap().wal_frames;
    write(db);
    db.stat().unwrap().wal_frames - before
}

#[test]
fn a_commit_that_only_adds_entries_writes_no_catalog_page() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    insert(&db, "t", 0..1);
    // Page 0 and the tree's one leaf; the catalog leaf stays as it was.
    assert_eq!(frames_of(&db, |db| insert(db, "t", 1..2)), 2);
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    assert!(w.delete(&t, &0u32.to_be_bytes()).unwrap());
    assert_eq!(w.count(&t).unwrap(), 1);
    assert_eq!(frames_of(&db, |_| w.commit().unwrap()), 2);
    assert_eq!(count(&db, "t"), 1);
    // Creating a tree writes its catalog record (and folds the counts).
    assert!(frames_of(&db, |db| insert(db, "u", 0..1)) > 2);
    assert_eq!((count(&db, "t"), count(&db, "u")), (1, 1));
}

#[test]
fn counts_survive_recovery_checkpoints_copies_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let db = Db::open(&path).unwrap();
    insert(&db, "a", 0..10);
    insert(&db, "b", 0..5);
    // Free pages, for the compaction below to give back.
    insert(&db, "c", 0..2000);
    let mut w = db.begin_write().unwrap();
    w.drop_tree("c").unwrap();
    w.commit().unwrap();
    // Counts only in page 0 from here: the catalog records say 10 and 5.
    insert(&db, "a", 10..400);
    insert(&db, "b", 5..7);
    let mut w = db.begin_write().unwrap();
    let a = w.open_tree("a").unwrap();
    for k in 0..50u32 {
        w.delete(&a, &k.to_be_bytes()).unwrap();
    }
    w.commit().unwrap();
    let want = |db: &Db| {
        assert_eq!((count(db, "a"), count(db, "b")), (350, 7));
        db.integrity_check().unwrap();
    };
    want(&db);
    db.close_without_checkpoint();
    // Recovery replays page 0 with its counts.
    let db = Db::open(&path).unwrap();
    want(&db);
    db.checkpoint().unwrap();
    let h = main_header(&path);
    assert_eq!(h.tree_counts.len(), 2, "{h:?}");
    let backup = dir.path().join("backup.obj");
    db.backup(&backup).unwrap();
    let copy = dir.path().join("compact.obj");
    db.compact_to(&copy).unwrap();
    assert!(main_header(&copy).tree_counts.is_empty(), "a compacted copy holds its counts in the catalog");
    assert!(db.compact().unwrap().rewritten);
    want(&db);
    db.close().unwrap();
    assert!(main_header(&path).tree_counts.is_empty());
    for p in [&path, &backup, &copy] {
        let db = Db::open(p).unwrap();
        want(&db);
        db.close().unwrap();
    }
}

#[test]
fn creating_or_dropping_a_tree_folds_the_counts_into_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let db = Db::open(&path).unwrap();
    insert(&db, "a", 0..3);
    insert(&db, "b", 0..3);
    insert(&db, "a", 3..8);
    insert(&db, "b", 3..4);
    db.checkpoint().unwrap();
    let h = main_header(&path);
    assert_eq!(h.tree_counts.len(), 2);
    assert_ne!(h.flags & FLAG_TREE_COUNTS, FLAG_TREE_COUNTS, "the flag is the encoding's, not kept");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), FLAG_TREE_COUNTS);
    // Dropping b (whose root page the next tree may take over) folds a's
    // count into its record and forgets b's.
    let mut w = db.begin_write().unwrap();
    w.drop_tree("b").unwrap();
    w.commit().unwrap();
    db.checkpoint().unwrap();
    assert!(main_header(&path).tree_counts.is_empty());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 0, "flag clear without counts");
    assert_eq!(count(&db, "a"), 8);
    // A new tree of the old name starts empty, whatever root it got.
    let mut w = db.begin_write().unwrap();
    let b = w.create_tree("b").unwrap();
    assert_eq!(w.count(&b).unwrap(), 0);
    w.commit().unwrap();
    assert_eq!((count(&db, "a"), count(&db, "b")), (8, 0));
    db.integrity_check().unwrap();
    db.close().unwrap();
}

#[test]
fn more_changed_trees_than_page_0_holds_fold_into_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let db = Db::open(&path).unwrap();
    let names: Vec<String> = (0..250).map(|i| format!("t{i:03}")).collect();
    let mut w = db.begin_write().unwrap();
    for n in &names {
        w.create_tree(n).unwrap();
    }
    w.commit().unwrap();
    // One commit that adds an entry to each of 250 trees: more than the
    // 196 records a 4 KiB page 0 holds.
    let mut w = db.begin_write().unwrap();
    for n in &names {
        let t = w.open_tree(n).unwrap();
        w.insert(&t, b"k", b"v").unwrap();
    }
    w.commit().unwrap();
    db.checkpoint().unwrap();
    assert!(main_header(&path).tree_counts.is_empty());
    // Then 196 fit.
    let mut w = db.begin_write().unwrap();
    for n in &names[..196] {
        let t = w.open_tree(n).unwrap();
        w.insert(&t, b"k2", b"v").unwrap();
    }
    w.commit().unwrap();
    db.checkpoint().unwrap();
    assert_eq!(main_header(&path).tree_counts.len(), 196);
    // And one more tree's count overflows page 0 again.
    insert(&db, &names[249], 0..1);
    db.checkpoint().unwrap();
    assert!(main_header(&path).tree_counts.is_empty());
    for (i, n) in names.iter().enumerate() {
        let want = 1 + u64::from(i < 196) + u64::from(i == 249);
        assert_eq!(count(&db, n), want, "{n}");
    }
    db.integrity_check().unwrap();
    db.close().unwrap();
}

#[test]
fn a_rolled_back_transaction_leaves_the_counts_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    insert(&db, "t", 0..2);
    insert(&db, "t", 2..4);
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.insert(&t, b"x", b"y").unwrap();
    w.clear(&t).unwrap();
    w.rollback();
    assert_eq!(count(&db, "t"), 4);
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.clear(&t).unwrap();
    w.commit().unwrap();
    assert_eq!(count(&db, "t"), 0);
    db.integrity_check().unwrap();
}

/// Rewrites the counts of page 0 in the closed file at `path` with
/// `edit`, resealing the page.
fn edit_page0(path: &Path, edit: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(path).unwrap();
    edit(&mut bytes[..PAGE]);
    seal_page(0, &mut bytes[..PAGE]);
    std::fs::write(path, bytes).unwrap();
}

fn corruption_on_open(path: &Path) -> String {
    match Db::open(path) {
        Err(e @ Error::Corruption { .. }) => e.to_string(),
        other => panic!("expected Corruption, got {other:?}"),
    }
}

#[test]
fn damaged_counts_are_corruption_or_integrity_findings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let db = Db::open(&path).unwrap();
    insert(&db, "t", 0..2);
    insert(&db, "t", 2..5);
    db.close_without_checkpoint();
    let db = Db::open(&path).unwrap();
    db.checkpoint().unwrap();
    let good = main_header(&path);
    assert_eq!(good.tree_counts.len(), 1);
    db.close_without_checkpoint();
    // The close left no WAL: page 0 of the main file is the newest.
    let _ = std::fs::remove_file(obj_engine::storage::wal_path_of(&path));
    let original = std::fs::read(&path).unwrap();
    let at = |h: &Header, f: &mut dyn FnMut(&mut Header)| {
        let mut h = h.clone();
        f(&mut h);
        h
    };
    // The flag with no records, more records than fit, a record rooted at
    // the catalog's root or past the end.
    type Edit = Box<dyn Fn(&mut [u8])>;
    let cases: Vec<(&str, Edit)> = vec![
        ("flag without records", Box::new(|p: &mut [u8]| p[160..164].copy_from_slice(&0u32.to_le_bytes()))),
        ("too many records", Box::new(|p: &mut [u8]| p[160..164].copy_from_slice(&197u32.to_le_bytes()))),
        (
            "rooted at the catalog",
            Box::new(move |p: &mut [u8]| {
                let h = Header::decode(p).unwrap();
                at(&h, &mut |h| h.tree_counts[0].root = h.catalog_root).encode(p);
            }),
        ),
        (
            "rooted past the end",
            Box::new(move |p: &mut [u8]| {
                let h = Header::decode(p).unwrap();
                at(&h, &mut |h| h.tree_counts[0].root = h.page_count).encode(p);
            }),
        ),
    ];
    for (what, edit) in cases {
        std::fs::write(&path, &original).unwrap();
        edit_page0(&path, |p| edit(p));
        let msg = corruption_on_open(&path);
        assert!(msg.contains("count"), "{what}: {msg}");
    }
    // A count that disagrees with the tree, one of no tree, and two for one
    // tree are the integrity check's to find.
    let findings = |edit: &dyn Fn(&mut Header)| -> Vec<String> {
        std::fs::write(&path, &original).unwrap();
        edit_page0(&path, |p| {
            let mut h = Header::decode(p).unwrap();
            edit(&mut h);
            h.encode(p);
        });
        let db = Db::open(&path).unwrap();
        let found = match db.integrity_check() {
            Err(Error::Integrity(f)) => f,
            other => panic!("expected findings, got {other:?}"),
        };
        db.close_without_checkpoint();
        let _ = std::fs::remove_file(obj_engine::storage::wal_path_of(&path));
        found
    };
    let f = findings(&|h| h.tree_counts[0].entries = 9);
    assert!(f.iter().any(|f| f.contains("holds 5 entries but the header records 9")), "{f:?}");
    let f = findings(&|h| h.tree_counts[0].serial ^= 1);
    assert!(f.iter().any(|f| f.contains("does not hold")), "{f:?}");
    let f = findings(&|h| {
        let c = h.tree_counts[0];
        h.tree_counts.push(TreeCount { entries: 1, ..c });
    });
    assert!(f.iter().any(|f| f.contains("two entry counts")), "{f:?}");
    std::fs::write(&path, &original).unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(count(&db, "t"), 5);
    db.integrity_check().unwrap();
}

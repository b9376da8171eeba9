//! Review 49: what a Rust embedder's review found.
//!
//! - The only cursor that could seek, `btree::Cursor::new(pages, root)`,
//!   took a raw root page: a handle kept across a compaction (which moves
//!   roots) or a drop and re-create read another tree's pages, where every
//!   transaction call refuses the stale handle. `ReadableTxn::cursor`
//!   resolves the handle first.

use obj_engine::{Db, Error, ReadableTxn};

fn stale(r: obj_engine::Result<impl Sized>) -> String {
    match r {
        Err(Error::InvalidArgument(m)) if m.contains("stale") => m,
        Err(e) => panic!("expected a stale-handle error, got {e:?}"),
        Ok(_) => panic!("expected a stale-handle error, got a cursor"),
    }
}

fn fill(db: &Db, tree: &str, prefix: &str, n: u32) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree(tree).unwrap();
    for i in 0..n {
        w.insert(&t, format!("{prefix}{i:05}").as_bytes(), b"v").unwrap();
    }
    w.commit().unwrap();
}

#[test]
fn a_cursor_seeks_and_steps_both_ways_in_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("c.obj")).unwrap();
    fill(&db, "t", "k", 3000);
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.insert(&t, b"k00001x", b"mine").unwrap();
    let mut c = w.cursor(&t).unwrap();
    assert!(c.seek(b"k00001").unwrap());
    assert_eq!(c.next().unwrap().unwrap().0, b"k00001");
    assert_eq!(c.next().unwrap().unwrap(), (b"k00001x".to_vec(), b"mine".to_vec()));
    assert!(c.seek_last().unwrap());
    assert_eq!(c.prev().unwrap().unwrap().0, b"k02999");
    assert!(!c.seek(b"l").unwrap());
    drop(c);
    w.rollback();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    let mut c = r.cursor(&t).unwrap();
    assert!(c.seek_before(b"k00001x").unwrap());
    assert_eq!(c.key().unwrap().unwrap(), b"k00001", "the rolled-back key is not there");
}

#[test]
fn a_cursor_refuses_a_handle_kept_across_a_compaction_or_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("s.obj")).unwrap();
    fill(&db, "gone", "g", 2000);
    fill(&db, "a", "a", 3000);
    let a = db.begin_read().unwrap().open_tree("a").unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("gone").unwrap();
    w.commit().unwrap();
    db.compact().unwrap();
    let r = db.begin_read().unwrap();
    assert_ne!(r.open_tree("a").unwrap().root(), a.root(), "the compaction moved the root");
    let m = stale(r.cursor(&a));
    assert!(m.contains("compaction") && m.contains("open it again"), "{m}");
    {
        let mut c = r.cursor(&r.open_tree("a").unwrap()).unwrap();
        assert!(c.seek_first().unwrap());
        assert_eq!(c.key().unwrap().unwrap(), b"a00000");
    }
    drop(r);

    let t = db.begin_read().unwrap().open_tree("a").unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("a").unwrap();
    let u = w.create_tree("u").unwrap();
    w.insert(&u, b"OTHER", b"x").unwrap();
    stale(w.cursor(&t));
    w.commit().unwrap();
    stale(db.begin_read().unwrap().cursor(&t));
}

#[test]
fn a_feature_flag_this_build_lacks_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.obj");
    fill(&Db::open(&path).unwrap(), "t", "k", 10);
    let mut bytes = std::fs::read(&path).unwrap();
    let page_size = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    // Flags at offset 20 (docs/format.md); 0x80 is no flag this build knows.
    bytes[20] |= 0x80;
    obj_engine::storage::page::seal_page(0, &mut bytes[..page_size]);
    std::fs::write(&path, &bytes).unwrap();
    match Db::open(&path) {
        Err(Error::Unsupported(m)) => {
            assert!(m.contains("feature flags") && m.contains(&path.display().to_string()), "{m}")
        }
        other => panic!("expected Unsupported, got {:?}", other.err()),
    }
}

fn records(db: &Db, n: u32, tag: &str) {
    let mut w = db.begin_write().unwrap();
    let t = match w.find_tree("r").unwrap() {
        Some(t) => t,
        None => w.create_tree("r").unwrap(),
    };
    for i in 0..n {
        w.insert(&t, format!("k{i:06}").as_bytes(), format!("{tag}{}", "v".repeat(100)).as_bytes()).unwrap();
    }
    w.commit().unwrap();
}

/// A main file cut short beside a WAL holding only some pages: refused
/// at open (it opened, and every read of a lost page failed later).
#[test]
fn a_cut_main_file_beside_a_wal_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.obj");
    records(&Db::open(&path).unwrap(), 3000, "a");
    let db = Db::open(&path).unwrap();
    records(&db, 50, "b");
    db.close_without_checkpoint();
    let whole = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("cut.obj-wal")).unwrap();
    for cut in [4096, 4097, whole.len() / 2, whole.len() - 4096, whole.len() - 1] {
        std::fs::write(&path, &whole[..cut]).unwrap();
        std::fs::write(dir.path().join("cut.obj-wal"), &wal).unwrap();
        match Db::open(&path) {
            Err(Error::Corruption { message, .. }) => assert!(message.contains("truncated"), "{message}"),
            Err(e) => panic!("cut at {cut}: expected Corruption, got {e:?}"),
            Ok(_) => panic!("cut at {cut}: opened"),
        }
    }
    // Whole again: opens, every record there.
    std::fs::write(&path, &whole).unwrap();
    std::fs::write(dir.path().join("cut.obj-wal"), &wal).unwrap();
    let db = Db::open(&path).unwrap();
    let r = db.begin_read().unwrap();
    assert_eq!(r.count(&r.open_tree("r").unwrap()).unwrap(), 3000);
    db.integrity_check().unwrap();
}

/// What is legitimately past the main file's end beside a WAL: pages only
/// the WAL holds yet, and pages allocated and freed before any was written.
#[test]
fn pages_only_the_wal_holds_or_never_written_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.obj");
    let db = Db::open(&path).unwrap();
    records(&db, 5000, "a");
    // A large value's overflow pages taken and given back in one transaction.
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("r").unwrap();
    w.insert(&t, b"big", &vec![7u8; 3 << 20]).unwrap();
    w.delete(&t, b"big").unwrap();
    w.commit().unwrap();
    records(&db, 100, "c");
    db.close_without_checkpoint();
    let main_pages = std::fs::metadata(&path).unwrap().len() / 4096;
    let db = Db::open(&path).unwrap();
    let r = db.begin_read().unwrap();
    assert!(main_pages < r.snapshot().header().page_count as u64, "the test wants pages past the main file");
    assert_eq!(r.count(&r.open_tree("r").unwrap()).unwrap(), 5000);
    drop(r);
    db.integrity_check().unwrap();
}

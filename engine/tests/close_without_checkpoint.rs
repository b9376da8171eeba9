//! `Db::close_without_checkpoint`: the close an application makes when it
//! leaves on an error. The WAL stays (even for the last handle), the next
//! open recovers from it, and a later clean close folds it as usual.

use obj_engine::{Db, ReadableTxn};

fn put(db: &Db, key: &[u8], value: &[u8]) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, key, value).unwrap();
    w.commit().unwrap();
}

fn get(db: &Db, key: &[u8]) -> Option<Vec<u8>> {
    let r = db.begin_read().unwrap();
    let t = r.find_tree("t").unwrap()?;
    r.get(&t, key).unwrap()
}

fn wal_len(path: &std::path::Path) -> Option<u64> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).ok().map(|m| m.len())
}

#[test]
fn last_handle_keeps_the_wal_and_reopen_recovers() {
    let dir = tempfile_dir("last");
    let path = dir.join("a.obj");
    let db = Db::open(&path).unwrap();
    put(&db, b"k", b"v1");
    let before = wal_len(&path).expect("the WAL holds the commit");
    assert!(before > 0);
    db.close_without_checkpoint();
    assert_eq!(wal_len(&path), Some(before), "no fold, no reset at this close");

    // The locks are gone (a new open in this process and a write work) and
    // the data is there; a clean close then folds and removes the WAL.
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v1"[..]));
    put(&db, b"k2", b"v2");
    db.close().unwrap();
    assert_eq!(wal_len(&path), None);
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, b"k2").as_deref(), Some(&b"v2"[..]));
    db.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn other_handles_keep_working_and_fold_at_their_clean_close() {
    let dir = tempfile_dir("shared");
    let path = dir.join("b.obj");
    let a = Db::open(&path).unwrap();
    let b = Db::open(&path).unwrap();
    put(&a, b"k", b"v");
    a.close_without_checkpoint();
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"v"[..]));
    put(&b, b"k", b"w");
    b.close().unwrap();
    assert_eq!(wal_len(&path), None, "the last, clean close folded");
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"w"[..]));
    db.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("obj-close-nockpt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

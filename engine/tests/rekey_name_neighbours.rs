//! A database whose name is another's plus `-rekey` (where a rekey of the
//! other builds its copy) is the user's like any other: opening the other
//! database must leave it alone, open or closed. (A version that removed
//! a killed rekey's copy at open deleted it; a reviewer found this, and the
//! change was reverted.)

use obj_engine::{Db, ReadableTxn};

fn fill(db: &Db) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0..100u32 {
        w.insert(&t, &i.to_be_bytes(), b"precious").unwrap();
    }
    w.commit().unwrap();
}

fn count(db: &Db) -> Option<u64> {
    let r = db.begin_read().unwrap();
    r.find_tree("t").unwrap().map(|t| r.count(&t).unwrap())
}

#[test]
fn opening_a_database_leaves_one_named_like_its_rekey_copy_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (main, neighbour) = (dir.path().join("app.db"), dir.path().join("app.db-rekey"));
    // Closed.
    let other = Db::open(&neighbour).unwrap();
    fill(&other);
    other.close().unwrap();
    Db::open(&main).unwrap().close().unwrap();
    let other = Db::open(&neighbour).unwrap();
    assert_eq!(count(&other), Some(100));
    // Open, with its last commits in its WAL.
    let mut w = other.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.insert(&t, b"more", b"x").unwrap();
    w.commit().unwrap();
    Db::open(&main).unwrap().close().unwrap();
    other.close().unwrap();
    assert_eq!(count(&Db::open(&neighbour).unwrap()), Some(101));
}

//! A rekey killed before its rename leaves its copy `<path>-rekey` (with
//! its WAL and shared index): a whole second copy of the data, in plaintext
//! when the rekey was decrypting. The next writable open that finds no
//! other handle or process on the database removes it (no rekey can be
//! running then: a rekey holds the database open, or its shared index
//! locked, until its rename); before, only the next rekey did.

use std::path::Path;
use std::sync::Arc;

use obj_engine::storage::file::{OpenMode, Vfs};
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Options, ReadableTxn};

const DB: &str = "t.obj";
const LEFT: [&str; 3] = ["t.obj-rekey", "t.obj-rekey-wal", "t.obj-rekey-shm"];

fn options(sim: &SimVfs) -> Options {
    Options { vfs: Some(Arc::new(sim.clone())), ..Options::default() }
}

fn leave_a_killed_rekeys_copy(sim: &SimVfs) {
    for name in LEFT {
        let f = sim.open(Path::new(name), OpenMode::ReadWriteCreate).unwrap();
        f.write_at(&[7u8; 5000], 0).unwrap();
    }
}

fn left(sim: &SimVfs) -> Vec<&'static str> {
    LEFT.into_iter().filter(|n| sim.exists(Path::new(n)).unwrap()).collect()
}

#[test]
fn the_first_writable_open_removes_a_killed_rekeys_copy() {
    let sim = SimVfs::new();
    let db = Db::open_with(DB, options(&sim)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"k", b"v").unwrap();
    w.commit().unwrap();

    // Not while another handle has the database open: a rekey could be
    // running there.
    leave_a_killed_rekeys_copy(&sim);
    let second = Db::open_with(DB, options(&sim)).unwrap();
    drop(second);
    assert_eq!(left(&sim), LEFT);
    db.close().unwrap();

    // Not by a read-only open.
    let ro = Db::open_with(DB, Options { read_only: true, ..options(&sim) }).unwrap();
    ro.close().unwrap();
    assert_eq!(left(&sim), LEFT);

    // The first writable open: gone, and the database as it was.
    let db = Db::open_with(DB, options(&sim)).unwrap();
    assert!(left(&sim).is_empty(), "{:?}", left(&sim));
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    assert_eq!(r.get(&t, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    drop(r);
    db.close().unwrap();
}

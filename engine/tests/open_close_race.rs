//! Handles on one file opened and closed from several threads at once: a
//! new handle never joins an engine that another thread is closing (its
//! calls would fail with `Closed`); it shares a live engine, opens the file
//! anew, or gets a clear `Busy` while the closing handle still folds.

use obj_engine::{Db, Error, ReadableTxn};

#[test]
fn concurrent_open_and_close_never_hand_out_a_closing_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.obj");
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut opened = 0;
                for i in 0..150u32 {
                    let db = match Db::open(&path) {
                        Ok(db) => db,
                        Err(Error::Busy(_)) => continue,
                        Err(e) => panic!("thread {t}: open: {e}"),
                    };
                    opened += 1;
                    let mut w = match db.begin_write() {
                        Ok(w) => w,
                        Err(Error::Busy(_)) => continue,
                        Err(e) => panic!("thread {t}: begin_write on a fresh handle: {e}"),
                    };
                    let tree = w.create_tree("t").unwrap();
                    w.insert(&tree, &[t, (i % 256) as u8], b"v").unwrap();
                    w.commit().unwrap_or_else(|e| panic!("thread {t}: commit: {e}"));
                    let r = db.begin_read().unwrap_or_else(|e| panic!("thread {t}: begin_read: {e}"));
                    assert!(r.get(&r.open_tree("t").unwrap(), &[t, (i % 256) as u8]).unwrap().is_some());
                    drop(r);
                    db.close().unwrap_or_else(|e| panic!("thread {t}: close: {e}"));
                }
                opened
            })
        })
        .collect();
    let opened: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(opened > 0);
    let db = Db::open(&path).unwrap();
    db.integrity_check().unwrap();
}

//! integrity_check beside a committing thread: its bound on the page count
//! takes the WAL frames its snapshot sees. (It read the shared header's
//! count now, which is 0 while a commit is being published, and reported
//! a healthy database as damaged within a fraction of a second.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obj_engine::{Db, Options};

#[test]
fn integrity_check_beside_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.obj");
    // No automatic checkpoint: the main file stays at its first size while
    // the WAL holds every page added since.
    let opts = Options { wal_autocheckpoint: 0, sync_mode: obj_engine::SyncMode::Off, ..Options::default() };
    let db = Arc::new(Db::open_with(&path, opts).unwrap());
    {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        for i in 0u32..200 {
            w.insert(&t, &i.to_be_bytes(), &[1u8; 1000]).unwrap();
        }
        w.commit().unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let mut w = db.begin_write().unwrap();
                let t = w.create_tree("t").unwrap();
                w.insert(&t, &(i % 50).to_be_bytes(), &[2u8; 10]).unwrap();
                w.commit().unwrap();
                i += 1;
            }
            i
        })
    };
    let started = Instant::now();
    let mut checks = 0u64;
    let mut failure = None;
    while started.elapsed() < Duration::from_secs(2) {
        checks += 1;
        if let Err(e) = db.integrity_check() {
            failure = Some(e.to_string());
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let commits = writer.join().unwrap();
    assert!(failure.is_none(), "integrity_check {checks} (beside {commits} commits) failed: {failure:?}");
}

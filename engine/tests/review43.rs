//! What session 43 found.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obj_engine::Db;

mod common;
use common::own_process;

/// Review 43 (reliability): the wait for readers of old snapshots grew
/// only within one process. Writer processes that came and went (each
/// killed after a second or two) beside overlapping readers in another
/// process began again at 100 ms each, which the readers outlasted, and
/// the WAL grew without bound (3.7 GB in 30 s in a session 42 run). The
/// wait now follows from the WAL's size, so a new writer waits as long as
/// the last one would have.
#[test]
fn writers_that_come_and_go_keep_the_wal_bounded_under_overlapping_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.obj");
    let readers_db = Arc::new(Db::open_with(&path, own_process()).unwrap());
    let mut w = readers_db.begin_write().unwrap();
    w.kv_put("k", b"seed", b"x").unwrap();
    w.commit().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = common::overlapping_readers(&readers_db, &stop);
    let started = Instant::now();
    let (mut most, mut commits, mut writers) = (0u64, 0u64, 0u32);
    while started.elapsed() < Duration::from_secs(4) {
        // A writer "process" that lives 150 ms.
        let db = Db::open_with(&path, own_process()).unwrap();
        writers += 1;
        let born = Instant::now();
        while born.elapsed() < Duration::from_millis(150) {
            common::commit_noting_wal(&db, &mut commits, &mut most);
        }
        drop(db);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    // The threshold is 1,000 frames: waits of 100, 200 and 400 ms at
    // 2,000, 4,000 and 8,000 frames, whichever writer meets them, and the
    // last outlasts the readers.
    assert!(most < 10_000, "the WAL reached {most} frames in {commits} commits by {writers} writers");
    eprintln!("{commits} commits by {writers} writers, the WAL at most {most} frames");
}

/// Review 43, the review of the fix above: with the wait following from
/// the WAL's size, each new writer process beside one long reader (a
/// backup, a report) paid the whole wait of the WAL's step, 1.6 s a
/// process, where the process that met the reader first had stopped
/// waiting for it. A snapshot older than the step of the longest wait but
/// one, held once the WAL is past that step, outlasted that wait in
/// whichever process made it: no new process waits for it.
#[test]
fn new_writer_processes_do_not_wait_for_a_known_long_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.obj");
    let readers_db = Db::open_with(&path, own_process()).unwrap();
    let mut w = readers_db.begin_write().unwrap();
    w.kv_put("k", b"seed", b"x").unwrap();
    w.commit().unwrap();
    // Held throughout.
    let reader = readers_db.begin_read().unwrap();
    // A long-lived writer grows the WAL past 32 times the threshold,
    // paying the waits of 100, 200, 400 and 800 ms once.
    let writer = Db::open_with(&path, own_process()).unwrap();
    let mut i = 0u64;
    while writer.stat().unwrap().wal_frames < 34_000 {
        let mut w = writer.begin_write().unwrap();
        for _ in 0..8 {
            w.kv_put("k", &i.to_be_bytes(), &[0u8; 2000]).unwrap();
            i += 1;
        }
        w.commit().unwrap();
    }
    drop(writer);
    // Then writers of one commit each (a command line, a cron job).
    for n in 0..4 {
        let db = Db::open_with(&path, own_process()).unwrap();
        let t = Instant::now();
        let mut w = db.begin_write().unwrap();
        w.kv_put("k", &i.to_be_bytes(), b"v").unwrap();
        i += 1;
        w.commit().unwrap();
        assert!(t.elapsed() < Duration::from_millis(500), "writer {n} took {:?}", t.elapsed());
        drop(db);
    }
    assert!(reader.kv_get("k", b"seed").unwrap().is_some());
}

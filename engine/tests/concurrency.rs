//! Readers and the writer: snapshots stay consistent, neither blocks the
//! other, and the WAL stays bounded under a writer with overlapping readers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use obj_engine::{Db, Options, ReadableTxn, SyncMode};

fn opts() -> Options {
    Options { sync_mode: SyncMode::Off, wal_autocheckpoint: 100, ..Options::default() }
}

#[test]
fn snapshot_is_stable_while_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path().join("s.obj"), opts()).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"k", b"old").unwrap();
    w.commit().unwrap();

    let r = db.begin_read().unwrap();
    let rt = r.open_tree("t").unwrap();
    // The writer is not blocked by the open reader...
    for i in 0..500u32 {
        let mut w = db.begin_write().unwrap();
        let t = w.open_tree("t").unwrap();
        w.insert(&t, b"k", format!("new{i}").as_bytes()).unwrap();
        w.insert(&t, &i.to_be_bytes(), &[0u8; 300]).unwrap();
        w.commit().unwrap();
    }
    db.checkpoint().unwrap();
    // ...and the reader still sees its snapshot.
    assert_eq!(r.get(&rt, b"k").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(r.count(&rt).unwrap(), 1);
    drop(r);
    // A reader is not blocked by an open writer either.
    let w = db.begin_write().unwrap();
    let r = db.begin_read().unwrap();
    assert_eq!(r.get(&r.open_tree("t").unwrap(), b"k").unwrap().as_deref(), Some(&b"new499"[..]));
    drop(w);
    let result = db.checkpoint().unwrap();
    drop(r);
    assert!(result.complete || db.checkpoint().unwrap().complete);
}

#[test]
fn concurrent_readers_see_consistent_pairs_and_wal_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open_with(dir.path().join("c.obj"), opts()).unwrap());
    {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, b"a", &0u64.to_be_bytes()).unwrap();
        w.insert(&t, b"b", &0u64.to_be_bytes()).unwrap();
        w.commit().unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let max_wal = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (db, stop) = (db.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = db.begin_read().unwrap();
                let t = r.open_tree("t").unwrap();
                let a = r.get(&t, b"a").unwrap().unwrap();
                let b = r.get(&t, b"b").unwrap().unwrap();
                // Both keys change in every commit: a snapshot sees them equal.
                assert_eq!(a, b);
                drop(r);
                reads += 1;
                // Short readers with gaps between them, as in an application.
                std::thread::yield_now();
            }
            reads
        }));
    }
    for i in 1..=3000u64 {
        let mut w = db.begin_write().unwrap();
        let t = w.open_tree("t").unwrap();
        w.insert(&t, b"a", &i.to_be_bytes()).unwrap();
        w.insert(&t, b"b", &i.to_be_bytes()).unwrap();
        w.insert(&t, &i.to_be_bytes(), &[1u8; 100]).unwrap();
        w.commit().unwrap();
        max_wal.fetch_max(db.stat().unwrap().wal_frames, Ordering::Relaxed);
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads > 0);
    let max = max_wal.load(Ordering::Relaxed);
    println!("max WAL frames: {max}");
    // About 12,000 frames are committed in all. Without restarts the WAL
    // would hold all of them; readers preempted on an oversubscribed machine
    // can hold a snapshot for hundreds of commits, hence the generous bound.
    assert!(max < 2000, "WAL grew to {max} frames with a 100-frame checkpoint threshold");
    // With the readers gone, the next commit checkpoints and restarts the WAL.
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.insert(&t, b"a", b"end").unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.insert(&t, b"b", b"end").unwrap();
    w.commit().unwrap();
    let frames = db.stat().unwrap().wal_frames;
    assert!(frames < 110, "WAL still holds {frames} frames with no reader");
    db.integrity_check().unwrap();
}

/// A reader refreshed every few commits (a new one begins, then the old
/// one ends) on the writer's own thread. Checkpoints fell due a quarter of
/// the threshold apart, each stopped at the oldest reader's snapshot, a
/// commit or more behind, and so in step with the readers did every later
/// one: no checkpoint ever completed and the WAL grew without bound (past
/// 10,000 frames with a 1,000-frame threshold). A commit that finds every
/// reader at the last frame now checkpoints it all and restarts the WAL.
#[test]
fn readers_refreshed_at_a_steady_pace_do_not_lock_the_wal_out_of_restarting() {
    for period in [1u64, 2, 3, 5, 7] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_with(dir.path().join("p.obj"), opts()).unwrap();
        let mut w = db.begin_write().unwrap();
        w.create_tree("t").unwrap();
        w.commit().unwrap();
        let mut reader = db.begin_read().unwrap();
        let mut max = 0;
        for i in 0..2000u64 {
            let mut w = db.begin_write().unwrap();
            let t = w.open_tree("t").unwrap();
            w.insert(&t, &(i % 500).to_be_bytes(), &[1u8; 300]).unwrap();
            w.commit().unwrap();
            if i % period == 0 {
                // The new reader begins before the old one is dropped.
                reader = db.begin_read().unwrap();
            }
            max = max.max(db.stat().unwrap().wal_frames);
        }
        drop(reader);
        assert!(max < 200, "reader every {period} commits: the WAL grew to {max} frames (threshold 100)");
        db.integrity_check().unwrap();
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Db>();
    send_sync::<obj_engine::ReadTxn>();
    send::<obj_engine::WriteTxn>();
}

//! Damage in the WAL of a crashed database (session 31's review): a frame
//! that fails its checksum ended the log there, so every commit from it on
//! was dropped without a word, although each had been acknowledged as
//! durable. A commit now records in its page 0 how many frames were
//! durable before it; a later commit saying the damaged frame was durable
//! makes the open a corruption error. A torn tail (the last commit, or
//! commits never synced) is still dropped, as recovery must.

use std::sync::Arc;

use obj_engine::storage::sim::{Fault, FaultKind, FaultOp, SimVfs};
use obj_engine::{Db, Error, Options, ReadableTxn, SyncMode};

mod common;

const DB: &str = "/h/app.obj";
const WAL: &str = "/h/app.obj-wal";
const FRAME: usize = 24 + 4096;
const COMMITS: u32 = 20;

fn options(vfs: &SimVfs, sync_mode: SyncMode) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), sync_mode, wal_autocheckpoint: 0, ..Options::default() }
}

/// A database left as a crash leaves it: `COMMITS` commits of one key
/// each, all still in the WAL. Returns the WAL's frame count and the
/// first frame of the last commit.
fn crashed(vfs: &SimVfs, sync_mode: SyncMode) -> (usize, usize) {
    let db = Db::open_with(DB, options(vfs, sync_mode)).unwrap();
    let mut last_start = 0;
    for i in 0..COMMITS {
        let before = frames_in_wal(vfs);
        last_start = before + 1;
        let mut w = db.begin_write().unwrap();
        let t = match w.find_tree("t").unwrap() {
            Some(t) => t,
            None => w.create_tree("t").unwrap(),
        };
        w.insert(&t, &i.to_be_bytes(), b"value").unwrap();
        w.commit().unwrap();
    }
    db.close_without_checkpoint();
    let frames = frames_in_wal(vfs);
    (frames, last_start)
}

/// Flips one byte in the page image of `frame` (from 1).
fn damage(vfs: &SimVfs, frame: usize) {
    let mut w = vfs.read_file(WAL).unwrap();
    w[64 + (frame - 1) * FRAME + 24 + 100] ^= 0x40;
    vfs.write_file(WAL, &w);
}

fn keys(db: &Db) -> usize {
    let r = db.begin_read().unwrap();
    match r.find_tree("t").unwrap() {
        Some(t) => r.count(&t).unwrap() as usize,
        None => 0,
    }
}

#[test]
fn damage_to_a_synced_frame_is_corruption_not_lost_commits() {
    for frame in [1, 2, 7, 20, 33] {
        let vfs = SimVfs::new();
        let (frames, last_start) = crashed(&vfs, SyncMode::Full);
        assert!(frame < last_start && last_start <= frames, "{frame} {last_start} {frames}");
        damage(&vfs, frame);
        match Db::open_with(DB, options(&vfs, SyncMode::Full)) {
            Err(Error::Corruption { page, message }) => {
                assert!(page.is_some(), "names the page: {message}");
                assert!(message.contains(&format!("frame {frame} ")), "{message}");
            }
            Err(e) => panic!("frame {frame}: another error: {e}"),
            Ok(db) => panic!("frame {frame}: opened with {} of {COMMITS} commits", keys(&db)),
        }
        // Moving the WAL away, as the message says, opens what the main
        // file holds (nothing was checkpointed: an empty database).
        vfs.write_file(WAL, &[]);
        let db = Db::open_with(DB, options(&vfs, SyncMode::Full)).unwrap();
        assert_eq!(keys(&db), 0);
        db.integrity_check().unwrap();
    }
}

#[test]
fn a_torn_last_commit_is_still_dropped() {
    let vfs = SimVfs::new();
    let (frames, last_start) = crashed(&vfs, SyncMode::Full);
    for frame in last_start..=frames {
        let copy = SimVfs::new();
        copy.write_file(DB, &vfs.read_file(DB).unwrap());
        copy.write_file(WAL, &vfs.read_file(WAL).unwrap());
        damage(&copy, frame);
        let db = Db::open_with(DB, options(&copy, SyncMode::Full)).unwrap();
        assert_eq!(keys(&db), COMMITS as usize - 1, "frame {frame}");
        db.integrity_check().unwrap();
    }
}

#[test]
fn without_syncs_damage_ends_the_log_as_a_tear_would() {
    // SyncMode::Normal syncs at checkpoints only: no commit was known
    // durable, so nothing tells damage from a power cut's tear.
    let vfs = SimVfs::new();
    let (_, last_start) = crashed(&vfs, SyncMode::Normal);
    damage(&vfs, 7);
    let db = Db::open_with(DB, options(&vfs, SyncMode::Normal)).unwrap();
    let kept = keys(&db);
    assert!(kept < COMMITS as usize && last_start > 7, "{kept}");
    db.integrity_check().unwrap();
}

// A stale page 0 must never vouch for frames that a rollback can rewind
// over (the review of the change above): a transaction's spilled frames
// were counted as durable when a checkpoint synced the WAL before its
// commit, and after that commit failed half-written, its page 0 made a
// later crash's recovery refuse the database. Only committed frames count.

fn spill_options(vfs: &SimVfs) -> Options {
    Options {
        vfs: Some(Arc::new(vfs.clone())),
        sync_mode: SyncMode::Normal,
        wal_autocheckpoint: 20,
        max_dirty_bytes: Some(2 << 20),
        ..Options::default()
    }
}

fn frames_in_wal(vfs: &SimVfs) -> usize {
    let wal = vfs.read_file(WAL).unwrap_or_default();
    (common::wal_frames(&wal, FRAME).len().max(64) - 64) / FRAME
}

fn put_rows(db: &Db, tree: &str, from: u32, to: u32, len: usize) {
    let mut w = db.begin_write().unwrap();
    let t = match w.find_tree(tree).unwrap() {
        Some(t) => t,
        None => w.create_tree(tree).unwrap(),
    };
    for i in from..to {
        w.insert(&t, format!("k{i:08}").as_bytes(), &vec![(i % 251) as u8; len]).unwrap();
    }
    w.commit().unwrap();
}

fn rows(db: &Db, tree: &str) -> u64 {
    let r = db.begin_read().unwrap();
    match r.find_tree(tree).unwrap() {
        Some(t) => r.count(&t).unwrap(),
        None => 0,
    }
}

/// Runs the scenario; `fault_at`: the index of the write that fails in the
/// big commit. Returns the number of writes the commit made (a dry run,
/// `None`), or the rows of "small" acknowledged before the crash.
fn scenario(vfs: &SimVfs, fault_at: Option<u64>) -> u64 {
    let db = Db::open_with(DB, spill_options(vfs)).unwrap();
    // Small commits, staying below the autocheckpoint threshold.
    let mut i = 0;
    while frames_in_wal(vfs) < 12 {
        put_rows(&db, "small", i, i + 1, 10);
        i += 1;
    }
    // A reader older than the next commit: checkpoints stay partial, so the
    // WAL does not restart (same salt) after the failure.
    let reader = db.begin_read().unwrap();
    put_rows(&db, "small", 1000, 1030, 5000); // overflow pages: the WAL passes 20 frames
    let m = frames_in_wal(vfs);
    assert!(m >= 20, "{m}");
    // The big transaction: spills, and its commit has > 254 frames.
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("big").unwrap();
    for j in 0..1500u32 {
        w.insert(&t, format!("b{j:08}").as_bytes(), &vec![(j % 13) as u8; 3000]).unwrap();
    }
    let spilled = frames_in_wal(vfs) - m;
    vfs.reset_op_counts();
    match fault_at {
        None => {
            w.commit().unwrap();
            let commit_frames = frames_in_wal(vfs) - m - spilled;
            assert!(spilled > 100 && commit_frames > 300, "{spilled} {commit_frames}");
            vfs.op_counts().writes
        }
        Some(at) => {
            vfs.set_fault(Fault {
                op: FaultOp::Write,
                after: at,
                kind: FaultKind::Enospc,
                persistent: false,
            });
            let e = w.commit().unwrap_err();
            assert!(e.to_string().contains("No space"), "{e}");
            vfs.clear_faults();
            // The application goes on: one more small commit, acknowledged.
            put_rows(&db, "small", 2000, 2001, 10);
            assert_eq!(rows(&db, "small"), i as u64 + 31);
            drop(reader);
            // The process is killed (no power cut: every write survives).
            vfs.crash();
            drop(db);
            i as u64 + 31
        }
    }
}

#[test]
fn a_failed_spilled_commit_then_a_crash_recovers_every_acknowledged_commit() {
    let dry = SimVfs::new();
    let writes = scenario(&dry, None);
    let vfs = SimVfs::new();
    // The commit's last write (its last WAL chunk) fails; page 0 was in the first.
    let acked = scenario(&vfs, Some(writes - 1));
    match Db::open_with(DB, spill_options(&vfs)) {
        Ok(db) => {
            // Every acknowledged commit: the small ones and the one after the failure.
            assert_eq!(rows(&db, "small"), acked);
            assert_eq!(rows(&db, "big"), 0);
            db.integrity_check().unwrap();
        }
        Err(e @ Error::Corruption { .. }) => {
            panic!("FALSE POSITIVE: a database that only saw ENOSPC and a process crash refuses to open: {e}")
        }
        Err(e) => panic!("other error {e}"),
    }
}

/// The same without any I/O error reaching the application: the process is
/// killed between the big commit's first and second WAL writes (simulated
/// by stopping the second write and crashing at once), the next open
/// recovers fine, one small commit is acknowledged, the process is killed
/// again: the database no longer opens.
#[test]
fn two_crashes_around_a_spilled_commit_recover() {
    let dry = SimVfs::new();
    let writes = scenario(&dry, None);
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, spill_options(&vfs)).unwrap();
    let mut i = 0;
    while frames_in_wal(&vfs) < 12 {
        put_rows(&db, "small", i, i + 1, 10);
        i += 1;
    }
    let reader = db.begin_read().unwrap();
    put_rows(&db, "small", 1000, 1030, 5000);
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("big").unwrap();
    for j in 0..1500u32 {
        w.insert(&t, format!("b{j:08}").as_bytes(), &vec![(j % 13) as u8; 3000]).unwrap();
    }
    vfs.reset_op_counts();
    vfs.set_fault(Fault { op: FaultOp::Write, after: writes - 1, kind: FaultKind::Eio, persistent: true });
    let _ = w.commit();
    vfs.crash(); // killed before the second write
    drop(reader);
    drop(db);
    vfs.clear_faults();
    // The next run of the application checkpoints by hand (autocheckpoint off).
    let manual = || Options { wal_autocheckpoint: 0, ..spill_options(&vfs) };
    let db = Db::open_with(DB, manual()).expect("first reopen");
    put_rows(&db, "small", 2000, 2001, 10);
    vfs.crash();
    drop(db);
    match Db::open_with(DB, manual()) {
        Ok(db) => {
            assert_eq!(rows(&db, "small"), i as u64 + 31);
            db.integrity_check().unwrap();
        }
        Err(e) => panic!("FALSE POSITIVE after two process kills: {e}"),
    }
}

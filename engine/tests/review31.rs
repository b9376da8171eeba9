//! Damage in the WAL of a crashed database (session 31's review): a frame
//! that fails its checksum ended the log there, so every commit from it on
//! was dropped without a word, although each had been acknowledged as
//! durable. A commit now records in its page 0 how many frames were
//! durable before it; a later commit saying the damaged frame was durable
//! makes the open a corruption error. A torn tail (the last commit, or
//! commits never synced) is still dropped, as recovery must.

use std::sync::Arc;

use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Error, Options, ReadableTxn, SyncMode};

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
        let before = (vfs.read_file(WAL).map_or(0, |w| w.len()).max(64) - 64) / FRAME;
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
    let frames = (vfs.read_file(WAL).unwrap().len() - 64) / FRAME;
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

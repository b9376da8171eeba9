//! Review 10 (reliability): cases found by attacking the database as a new
//! user would, each of which broke a promise before its fix.
//!
//! - A WAL from an earlier state of the same database (same file id) was
//!   replayed over a newer main file: the committed transactions since then
//!   vanished without an error, and `integrity_check` passed.
//! - A main file replaced by an older copy of itself was opened with the
//!   WAL of a later state, mixing pages of two states.
//! - A bit flip in the magic of page 0 was "not an obj database"
//!   (`InvalidArgument`) rather than `Corruption`, unlike a flip anywhere else.

use std::path::Path;
use std::sync::Arc;

use obj_engine::storage::file::Vfs;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, EncryptionKey, Error, Options, ReadableTxn};

const DB: &str = "/r10/app.obj";
const WAL: &str = "/r10/app.obj-wal";

fn options(vfs: &SimVfs, key: Option<u8>) -> Options {
    Options {
        vfs: Some(Arc::new(vfs.clone())),
        encryption: key.map(|k| EncryptionKey::raw([k; 32])),
        ..Options::default()
    }
}

/// Commits `range` as keys of tree "t", one transaction each.
fn commit_range(db: &Db, range: std::ops::Range<u32>) {
    for i in range {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, &i.to_be_bytes(), &[i as u8; 300]).unwrap();
        w.commit().unwrap();
    }
}

fn count(db: &Db) -> u64 {
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    r.count(&t).unwrap()
}

fn expect_corruption(result: Result<Db, Error>, words: &str) {
    match result {
        Err(Error::Corruption { message, .. }) => assert!(message.contains(words), "{message}"),
        Err(e) => panic!("expected Corruption ({words}), got {e:?}"),
        Ok(db) => panic!("opened, with {} keys", count(&db)),
    }
}

/// A WAL saved aside and put back after the database moved on (the user
/// restored `app.obj-wal` from an old copy) is refused, not replayed.
#[test]
fn a_stale_wal_of_the_same_database_is_corruption_not_a_silent_rollback() {
    // One stale commit (a single page-0 frame) and several; then one commit
    // on top, or many.
    for (key, stale, after) in [(None, 1, 1), (None, 5, 55), (Some(3), 1, 1), (Some(3), 5, 55)] {
        let vfs = SimVfs::new();
        let db = Db::open_with(DB, options(&vfs, key)).unwrap();
        commit_range(&db, 0..stale);
        db.close_without_checkpoint();
        let old_wal = vfs.read_file(WAL).unwrap();
        let db = Db::open_with(DB, options(&vfs, key)).unwrap();
        assert_eq!(count(&db), stale as u64);
        commit_range(&db, stale..stale + after);
        db.close().unwrap();
        assert!(vfs.read_file(WAL).is_none(), "a clean close removes the WAL");
        let main = vfs.read_file(DB).unwrap();

        vfs.write_file(WAL, &old_wal);
        expect_corruption(Db::open_with(DB, options(&vfs, key)), "stale WAL");
        // Read-only opens recover too, and refuse it the same way.
        expect_corruption(Db::open_with(DB, Options { read_only: true, ..options(&vfs, key) }), "stale WAL");
        assert_eq!(vfs.read_file(DB).unwrap(), main, "a refused open leaves the main file alone");

        // Moved away, the database opens with everything.
        vfs.remove(Path::new(WAL)).unwrap();
        let db = Db::open_with(DB, options(&vfs, key)).unwrap();
        assert_eq!(count(&db), (stale + after) as u64);
        db.integrity_check().unwrap();
        db.close().unwrap();
    }
}

/// The main file put back from an older copy while the WAL of a later
/// state is beside it: refused, since the WAL's pages assume a main file
/// that is gone.
#[test]
fn a_main_file_older_than_its_wal_is_corruption() {
    for key in [None, Some(4)] {
        let vfs = SimVfs::new();
        let db = Db::open_with(DB, options(&vfs, key)).unwrap();
        commit_range(&db, 0..5);
        db.close().unwrap();
        let old_main = vfs.read_file(DB).unwrap();
        let db = Db::open_with(DB, options(&vfs, key)).unwrap();
        commit_range(&db, 5..40);
        db.checkpoint().unwrap();
        commit_range(&db, 40..45);
        db.close_without_checkpoint();

        vfs.write_file(DB, &old_main);
        expect_corruption(Db::open_with(DB, options(&vfs, key)), "older than its WAL");
    }
}

/// What crashes produce is still accepted: a WAL copied only in part, one
/// fully copied but not yet restarted, and one with a partial checkpoint.
#[test]
fn wals_left_by_crashes_and_checkpoints_still_recover() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs, None)).unwrap();
    commit_range(&db, 0..30);
    // A checkpoint with a reader open copies what it may; more commits follow.
    let reader = db.begin_read().unwrap();
    commit_range(&db, 30..40);
    db.checkpoint().unwrap();
    drop(reader);
    commit_range(&db, 40..50);
    db.checkpoint().unwrap();
    commit_range(&db, 50..55);
    db.close_without_checkpoint();
    let db = Db::open_with(DB, options(&vfs, None)).unwrap();
    assert_eq!(count(&db), 55);
    db.integrity_check().unwrap();
    db.close().unwrap();
}

/// A flipped bit in the magic is damage to an obj file, reported as such;
/// a file that is something else is still "not an obj database".
#[test]
fn a_damaged_magic_is_corruption_and_other_files_are_not_databases() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs, None)).unwrap();
    commit_range(&db, 0..20);
    db.close().unwrap();
    let good = vfs.read_file(DB).unwrap();
    for at in 0..8 {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            vfs.write_file(DB, &bad);
            expect_corruption(Db::open_with(DB, options(&vfs, None)), "magic");
        }
    }
    // Page 0 zeroed entirely: nothing of an obj header is left.
    let mut zeroed = good.clone();
    zeroed[..4096].fill(0);
    vfs.write_file(DB, &zeroed);
    assert!(matches!(Db::open_with(DB, options(&vfs, None)), Err(Error::InvalidArgument(_))));
    // A WAL file, and text, opened as a database.
    vfs.write_file(DB, &good);
    let db = Db::open_with(DB, options(&vfs, None)).unwrap();
    commit_range(&db, 20..25);
    db.close_without_checkpoint();
    let wal = vfs.read_file(WAL).unwrap();
    let _ = vfs.remove(Path::new(WAL));
    for other in [wal, b"not a database at all, just text ".repeat(200)] {
        vfs.write_file(DB, &other);
        match Db::open_with(DB, options(&vfs, None)) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("not an obj database"), "{m}"),
            other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
        }
    }
}

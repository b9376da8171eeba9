//! Write transactions larger than `Options::max_dirty_bytes`: the pages
//! changed least recently are written to the WAL before the commit
//! ("spilled") and read back from there. Checked here: the transaction
//! still reads its own writes, stays within the limit, commits everything
//! atomically; readers never see a spilled page early; a rollback, a
//! failed commit and a crash before the commit leave no trace; encrypted
//! files spill encrypted frames. (`faults.rs` runs its fault and power-cut
//! harness over spilling transactions too.)

use std::collections::BTreeMap;
use std::io::Cursor;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use obj_engine::doc::json::from_json_str;
use obj_engine::storage::sim::{CutMode, SimVfs};
use obj_engine::storage::wal_path_of;
use obj_engine::{Db, EncryptionKey, Filter, ImportOptions, IndexSpec, Options, QuerySpec, ReadableTxn};

mod common;
use common::next_rand;

/// Pages a transaction may keep in memory in these tests.
const LIMIT_PAGES: usize = 64;

fn options(encrypted: bool) -> Options {
    Options {
        max_dirty_bytes: Some(LIMIT_PAGES * 4096),
        cache_size: 32 * 4096,
        encryption: encrypted.then(|| EncryptionKey::raw([7; 32])),
        ..Options::default()
    }
}

/// `options(false)` on the simulated file system `vfs`.
fn sim_options(vfs: &SimVfs) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), ..options(false) }
}

/// A database at `path` on `vfs` whose tree "t" holds `kept` = `yes`.
fn db_with_one_record(vfs: &SimVfs, path: &str) -> Db {
    let db = Db::open_with(path, sim_options(vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"kept", b"yes").unwrap();
    w.commit().unwrap();
    db
}

fn key(i: u64) -> Vec<u8> {
    // Spread over the key space, so that every leaf is changed again and
    // again and most changes land on a page spilled earlier.
    format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).into_bytes()
}

fn value(i: u64, round: u64) -> Vec<u8> {
    let len = if i.is_multiple_of(97) { 9_000 } else { 60 + (i % 50) as usize };
    (0..len).map(|b| (i as usize * 31 + b + round as usize) as u8).collect()
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn read_all(db: &Db) -> Model {
    let r = db.begin_read().unwrap();
    let Some(t) = r.find_tree("t").unwrap() else { return Model::new() };
    r.range(&t, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(Result::unwrap).collect()
}

/// One transaction writing `n` records twice over (then deleting a tenth),
/// checked against `model` from inside the transaction. Returns the
/// transaction uncommitted and the most pages it held in memory.
fn big_transaction(db: &Db, n: u64, model: &mut Model) -> (obj_engine::WriteTxn, usize) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    let mut most = 0;
    for round in 0..2 {
        for i in 0..n {
            w.insert(&t, &key(i), &value(i, round)).unwrap();
            model.insert(key(i), value(i, round));
            most = most.max(w.dirty_pages());
        }
    }
    for i in (0..n).step_by(10) {
        assert!(w.delete(&t, &key(i)).unwrap());
        model.remove(&key(i));
    }
    // The transaction reads its own writes, spilled or not.
    let mut rng = 0x5151u64;
    for _ in 0..2_000 {
        let i = next_rand(&mut rng) % n;
        assert_eq!(w.get(&t, &key(i)).unwrap().as_ref(), model.get(&key(i)), "record {i}");
    }
    let seen: Model =
        w.range(&t, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(Result::unwrap).collect();
    assert!(seen == *model, "a scan inside the transaction differs from the model");
    assert_eq!(w.count(&t).unwrap(), model.len() as u64);
    (w, most)
}

fn spills_and_commits(encrypted: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.obj");
    let db = Db::open_with(&path, options(encrypted)).unwrap();
    let mut model = Model::new();
    let before = db.begin_read().unwrap();
    let (w, most) = big_transaction(&db, 20_000, &mut model);
    assert!(most <= LIMIT_PAGES, "held {most} pages, limit {LIMIT_PAGES}");
    assert!(w.spilled_pages() > 1_000, "spilled only {} pages", w.spilled_pages());
    // Frames are in the WAL, but no reader sees them before the commit.
    assert!(std::fs::metadata(wal_path_of(&path)).unwrap().len() > 1_000 * 4096);
    assert!(read_all(&db).is_empty());
    w.commit().unwrap();
    assert!(read_all(&db) == model, "after the commit");
    // A reader that began before the commit still sees the state before it.
    assert!(before.find_tree("t").unwrap().is_none());
    drop(before);
    assert!(db.integrity_check().is_ok());
    db.close().unwrap();
    let db = Db::open_with(&path, options(encrypted)).unwrap();
    assert!(read_all(&db) == model, "after reopening");
    assert!(db.integrity_check().is_ok());
}

#[test]
fn a_transaction_larger_than_the_limit_spills_and_commits_everything() {
    spills_and_commits(false);
}

#[test]
fn an_encrypted_transaction_spills_encrypted_frames() {
    spills_and_commits(true);
    // No plaintext of a spilled page reaches the WAL.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.obj");
    let db = Db::open_with(&path, options(true)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0..5_000u64 {
        w.insert(&t, &key(i), b"plaintext-marker-0123456789").unwrap();
    }
    assert!(w.spilled_pages() > 0);
    let wal = std::fs::read(wal_path_of(&path)).unwrap();
    assert!(!wal.windows(16).any(|x| x == b"plaintext-marker"), "plaintext in the WAL");
    w.commit().unwrap();
}

#[test]
fn a_rolled_back_spill_leaves_no_trace() {
    let vfs = SimVfs::new();
    let opts = || sim_options(&vfs);
    let db = Db::open_with("/sim/rollback.obj", opts()).unwrap();
    let mut base = Model::new();
    {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        for i in 0..300u64 {
            w.insert(&t, &key(i), &value(i, 9)).unwrap();
            base.insert(key(i), value(i, 9));
        }
        w.commit().unwrap();
    }
    for attempt in 0..3 {
        let mut scratch = base.clone();
        let (w, _) = big_transaction(&db, 8_000, &mut scratch);
        assert!(w.spilled_pages() > 0);
        if attempt == 0 {
            w.rollback();
        } else {
            drop(w);
        }
        assert!(read_all(&db) == base, "attempt {attempt}: the rolled-back transaction shows");
        // The next commits overwrite the abandoned frames and are recovered
        // intact after a crash.
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, b"after", &[attempt as u8; 10]).unwrap();
        w.commit().unwrap();
        base.insert(b"after".to_vec(), vec![attempt as u8; 10]);
        assert!(read_all(&db) == base);
    }
    assert!(db.integrity_check().is_ok());
    // Recovery replays the WAL (no checkpoint at a crash): the abandoned
    // frames must not chain into the later commits.
    vfs.crash();
    drop(db);
    let db = Db::open_with("/sim/rollback.obj", opts()).unwrap();
    assert!(read_all(&db) == base, "after recovery");
    assert!(db.integrity_check().is_ok());
}

#[test]
fn a_rolled_back_spill_gives_its_wal_space_back() {
    // A restart may leave the WAL at four checkpoint thresholds of frames
    // (1000 frames by default); a rollback cuts it back to that.
    const KEEP: u64 = 4 * 1000 * (24 + 4096);
    let path = "/sim/trim.obj";
    for (round, mode) in
        [CutMode::KeepAll, CutMode::DropAll, CutMode::Random, CutMode::Random].into_iter().enumerate()
    {
        let vfs = SimVfs::new();
        let wal_len = || vfs.read_file("/sim/trim.obj-wal").map_or(0, |b| b.len() as u64);
        let db = db_with_one_record(&vfs, path);
        let mut base = read_all(&db);
        let (w, _) = big_transaction(&db, 20_000, &mut base.clone());
        let spilled = wal_len();
        assert!(spilled > 2 * KEEP, "the transaction spilled only {spilled} bytes");
        w.rollback();
        let after = wal_len();
        assert!(after <= KEEP && after > 0, "the WAL kept {after} of {spilled} bytes");
        // A commit after the cut, then a power cut that keeps, drops or
        // mixes the unsynced cut: both commits (still only in the WAL) are
        // recovered, and no abandoned frame with them.
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, b"next", b"1").unwrap();
        w.commit().unwrap();
        base.insert(b"next".to_vec(), b"1".to_vec());
        vfs.power_cut(round as u64, mode);
        drop(db);
        let db = Db::open_with(path, sim_options(&vfs)).unwrap();
        assert!(read_all(&db) == base, "after a power cut ({mode:?})");
        assert!(db.integrity_check().is_ok());
    }
}

#[test]
fn a_crash_before_the_commit_loses_only_that_transaction() {
    let vfs = SimVfs::new();
    let opts = || sim_options(&vfs);
    let db = db_with_one_record(&vfs, "/sim/crash.obj");
    let mut model: Model = [(b"kept".to_vec(), b"yes".to_vec())].into();
    let (w, _) = big_transaction(&db, 6_000, &mut model);
    assert!(w.spilled_pages() > 0);
    // The process dies with the spilled frames written (the OS has them)
    // and no commit frame after them.
    vfs.crash();
    drop(w);
    drop(db);
    let wal = vfs.read_file(Path::new("/sim/crash.obj-wal")).unwrap();
    assert!(wal.len() > 500 * 4096, "the spilled frames reached the WAL file");
    let db = Db::open_with("/sim/crash.obj", opts()).unwrap();
    let expect: Model = [(b"kept".to_vec(), b"yes".to_vec())].into();
    assert!(read_all(&db) == expect);
    assert!(db.integrity_check().is_ok());
}

#[test]
fn a_failed_commit_after_a_spill_leaves_no_trace_and_the_handle_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unique.obj");
    let db = Db::open_with(&path, options(false)).unwrap();
    let mut w = db.begin_write().unwrap();
    {
        let mut c = w.collection_mut("docs").unwrap();
        c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
        c.insert(&from_json_str(r#"{"email": "a@x"}"#).unwrap()).unwrap();
    }
    w.commit().unwrap();
    // A large write that ends in a unique violation: the call fails, the
    // transaction is dropped, nothing of it remains.
    let mut w = db.begin_write().unwrap();
    let err = {
        let mut c = w.collection_mut("docs").unwrap();
        for i in 0..3_000 {
            c.insert(
                &from_json_str(&format!(r#"{{"email": "u{i}@x", "note": "{}"}}"#, "n".repeat(200))).unwrap(),
            )
            .unwrap();
        }
        c.insert(&from_json_str(r#"{"email": "a@x"}"#).unwrap()).unwrap_err()
    };
    assert!(matches!(err, obj_engine::Error::Constraint(_)), "{err:?}");
    assert!(w.spilled_pages() > 0);
    drop(w);
    let r = db.begin_read().unwrap();
    assert_eq!(r.collection("docs").unwrap().count().unwrap(), 1);
    drop(r);
    let mut w = db.begin_write().unwrap();
    w.collection_mut("docs").unwrap().insert(&from_json_str(r#"{"email": "b@x"}"#).unwrap()).unwrap();
    w.commit().unwrap();
    assert!(db.integrity_check().is_ok());
}

/// An import in one transaction (the default) of more than the limit.
#[test]
fn a_large_import_in_one_transaction_stays_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let src = Db::open(dir.path().join("src.obj")).unwrap();
    let mut w = src.begin_write().unwrap();
    {
        let mut c = w.collection_mut("docs").unwrap();
        c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
        c.create_index(IndexSpec::standard("by_n", "n").unwrap()).unwrap();
        for i in 0..6_000u64 {
            let doc = format!(r#"{{"email": "u{i}@x", "n": {}, "note": "{}"}}"#, i % 37, "z".repeat(150));
            c.insert(&from_json_str(&doc).unwrap()).unwrap();
        }
    }
    w.commit().unwrap();
    let mut out = Vec::new();
    src.export_all(&mut out).unwrap();
    let dst = Db::open_with(dir.path().join("dst.obj"), options(false)).unwrap();
    let report = dst.import(Cursor::new(&out), ImportOptions::default()).unwrap();
    assert_eq!(report.documents, 6_000);
    let r = dst.begin_read().unwrap();
    let c = r.collection("docs").unwrap();
    assert_eq!(c.count().unwrap(), 6_000);
    let q = QuerySpec::new("docs").with_filter(Filter::eq("n", 5i64).unwrap());
    assert_eq!(c.query(&q).unwrap().count().unwrap(), 6_000 / 37 + 1);
    drop(r);
    assert!(dst.integrity_check().is_ok());
}

/// A spill that cannot be written (a full disk) fails the change that
/// needed the room, which may have stopped halfway: the transaction then
/// refuses further changes and its commit, rolls back cleanly, and the
/// handle goes on.
#[test]
fn a_failed_spill_breaks_only_its_transaction() {
    use obj_engine::storage::sim::{Fault, FaultKind, FaultOp};
    let vfs = SimVfs::new();
    let db = db_with_one_record(&vfs, "/sim/full.obj");
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    vfs.set_fault(Fault { op: FaultOp::Write, after: 0, kind: FaultKind::Enospc, persistent: false });
    let mut failed = None;
    for i in 0..20_000u64 {
        if let Err(e) = w.insert(&t, &key(i), &value(i, 0)) {
            failed = Some(e);
            break;
        }
    }
    let failed = failed.expect("the spill's write failed");
    assert!(matches!(failed, obj_engine::Error::Io { .. }), "{failed:?}");
    assert!(w.is_broken());
    assert!(w.dirty_pages() <= LIMIT_PAGES, "the pages stayed in memory, none more");
    // The fault was one-shot, but the transaction stays refused.
    let again = w.insert(&t, b"more", b"x").unwrap_err();
    assert!(again.to_string().contains("failed midway"), "{again}");
    // Reads are refused too: the failed insert may have stopped halfway
    // (a leaf pointing at an overflow page never written), which a read
    // would report as damage of the file (found on a full tmpfs: a read of
    // the document being replaced was OBJ_CORRUPTION "expected an overflow
    // page, found page kind 5").
    let read = w.get(&t, &key(0)).unwrap_err();
    assert!(read.to_string().contains("failed midway"), "{read}");
    let commit = w.commit().unwrap_err();
    assert!(commit.to_string().contains("failed midway"), "{commit}");
    let expect: Model = [(b"kept".to_vec(), b"yes".to_vec())].into();
    assert!(read_all(&db) == expect);
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"after", b"ok").unwrap();
    w.commit().unwrap();
    assert_eq!(read_all(&db).len(), 2);
    assert!(db.integrity_check().is_ok());
}

/// A page that cannot be read during a change (an I/O error) fails that
/// change. Failing before anything changed (while descending), the
/// transaction goes on; failing when a change may have stopped halfway
/// (the page was to be changed), it refuses further changes and its
/// commit, and rolls back cleanly. Faults at each read call in turn.
#[test]
fn a_failed_read_during_a_change_leaves_a_usable_or_a_refused_transaction() {
    use obj_engine::storage::sim::{Fault, FaultKind, FaultOp};
    let vfs = SimVfs::new();
    let opts = || Options { cache_size: 8 * 4096, ..sim_options(&vfs) };
    let db = Db::open_with("/sim/eio.obj", opts()).unwrap();
    let mut model = Model::new();
    {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        for i in 0..3_000u64 {
            w.insert(&t, &key(i), &value(i, 0)).unwrap();
            model.insert(key(i), value(i, 0));
        }
        w.commit().unwrap();
    }
    let (mut refused, mut went_on) = (0, 0);
    for after in 0..120 {
        // Reopened each time: a cold cache, so changes read the file.
        let db = Db::open_with("/sim/eio.obj", opts()).unwrap();
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        vfs.set_fault(Fault { op: FaultOp::Read, after, kind: FaultKind::Eio, persistent: false });
        let mut expect = model.clone();
        let mut failed = false;
        for i in (0..3_000u64).step_by(7) {
            let change = if i % 3 == 0 {
                w.delete(&t, &key(i)).map(drop)
            } else {
                w.insert(&t, &key(i), b"new").map(drop)
            };
            match change {
                Ok(()) if i % 3 == 0 => drop(expect.remove(&key(i))),
                Ok(()) => drop(expect.insert(key(i), b"new".to_vec())),
                Err(e) => {
                    assert!(matches!(e, obj_engine::Error::Io { .. }), "{e:?}");
                    assert!(!failed, "a one-shot fault failed twice");
                    failed = true;
                }
            }
            if w.is_broken() {
                break;
            }
        }
        vfs.clear_faults();
        if w.is_broken() {
            refused += 1;
            let again = w.insert(&t, b"more", b"x").unwrap_err();
            assert!(again.to_string().contains("failed midway"), "{again}");
            let commit = w.commit().unwrap_err();
            assert!(commit.to_string().contains("failed midway"), "{commit}");
            assert!(read_all(&db) == model, "fault at read {after}: a refused transaction showed");
        } else {
            went_on += u64::from(failed);
            w.commit().unwrap();
            model = expect;
            assert!(read_all(&db) == model, "fault at read {after}");
        }
        if let Err(e) = db.integrity_check() {
            panic!("fault at read {after} (broken {}, failed {failed}): {e}", refused);
        }
        db.close().unwrap();
    }
    println!("read faults: {refused} transactions refused, {went_on} went on after a failed change");
    assert!(refused > 0 && went_on > 0, "refused {refused}, went on {went_on}");
}

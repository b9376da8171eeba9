//! Review 26: what a Python user's review against obj-db 1.1.0 found.
//!
//! - A clean close folded the WAL into the main file only when it was the
//!   last handle on the file in any process: with another handle open
//!   (even an idle one), the main file alone still lacked the commits
//!   after the close, though obj-db 1.1.0 promises a self-contained file
//!   after a clean close and an explicit checkpoint could fold everything.
//!   A writable handle's close now checkpoints what readers allow, without
//!   waiting for a write transaction active elsewhere.

use std::path::Path;
use std::time::{Duration, Instant};

use obj_engine::{Db, Options, ReadableTxn};

/// How many entries tree `t` holds in a copy of the main file alone (no
/// WAL beside it), as a backup of the `.obj` file would.
fn rows_in_main_file_alone(path: &Path) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.obj");
    std::fs::copy(path, &copy).unwrap();
    let db = Db::open(&copy).unwrap();
    let r = db.begin_read().unwrap();
    let n = match r.open_tree("t") {
        Ok(t) => r.count(&t).unwrap() as usize,
        Err(_) => 0,
    };
    drop(r);
    db.close().unwrap();
    n
}

fn write_rows(db: &Db, rows: std::ops::Range<u32>) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in rows {
        w.insert(&t, &i.to_be_bytes(), b"value").unwrap();
    }
    w.commit().unwrap();
}

fn wal_len(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn closing_one_of_two_handles_folds_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let idle = Db::open(&path).unwrap();
    let db = Db::open(&path).unwrap();
    write_rows(&db, 0..10);
    assert_eq!(rows_in_main_file_alone(&path), 0, "the commits are in the WAL before the close");
    db.close().unwrap();
    assert_eq!(rows_in_main_file_alone(&path), 10);
    assert!(wal_len(&path) <= 64, "the WAL is back to its header: {}", wal_len(&path));
    // The idle handle goes on as before.
    write_rows(&idle, 10..20);
    idle.close().unwrap();
    assert_eq!(rows_in_main_file_alone(&path), 20);
}

#[test]
fn a_read_only_handles_close_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let db = Db::open(&path).unwrap();
    write_rows(&db, 0..10);
    let ro = Db::open_with(&path, Options { read_only: true, ..Options::default() }).unwrap();
    let before = std::fs::read(&path).unwrap();
    ro.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "the main file is untouched");
    assert_eq!(rows_in_main_file_alone(&path), 0);
    db.close().unwrap();
    assert_eq!(rows_in_main_file_alone(&path), 10);
}

#[test]
fn a_close_does_not_wait_for_a_write_transaction_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let options = Options { busy_timeout: Duration::from_secs(20), ..Options::default() };
    let writer = Db::open_with(&path, options.clone()).unwrap();
    write_rows(&writer, 0..10);
    let db = Db::open_with(&path, options).unwrap();
    let w = writer.begin_write().unwrap();
    let start = Instant::now();
    db.close().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5), "close waited {:?}", start.elapsed());
    drop(w);
    assert_eq!(rows_in_main_file_alone(&path), 0, "no fold under another's write transaction");
    writer.close().unwrap();
    assert_eq!(rows_in_main_file_alone(&path), 10);
}

#[test]
fn a_reader_of_the_other_handle_keeps_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let other = Db::open(&path).unwrap();
    write_rows(&other, 0..10);
    let db = Db::open(&path).unwrap();
    let r = other.begin_read().unwrap();
    write_rows(&db, 10..20);
    db.close().unwrap();
    // The reader's snapshot still reads its ten rows; the fold went as far
    // as that snapshot allowed.
    let t = r.open_tree("t").unwrap();
    assert_eq!(r.count(&t).unwrap(), 10);
    assert_eq!(rows_in_main_file_alone(&path), 10);
    drop(r);
    other.close().unwrap();
    assert_eq!(rows_in_main_file_alone(&path), 20);
}

/// Two threads of one process exporting to the same path at once: each
/// export is complete and the file is always one whole export (the
/// temporary file was named by the process id alone, so the two truncated
/// and renamed each other's).
#[test]
fn concurrent_exports_to_one_path_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    for i in 0..2000 {
        c.insert_json(format!(r#"{{"i": {i}, "note": "{}"}}"#, "x".repeat(100)).as_bytes(), 1).unwrap();
    }
    drop(c);
    w.commit().unwrap();
    let out = dir.path().join("out.jsonl");
    let want = {
        db.export_to_path(Some("c"), &out).unwrap();
        std::fs::read(&out).unwrap()
    };
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..15 {
                    db.export_to_path(Some("c"), &out).unwrap();
                    assert_eq!(std::fs::read(&out).unwrap().len(), want.len());
                }
            });
        }
    });
    assert_eq!(std::fs::read(&out).unwrap(), want);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A backup or a compacted copy written over a database that was not
/// closed cleanly (its `-wal` holds commits its main file lacks) deleted
/// those commits with the old `-wal`. Both now refuse such a target; a
/// database closed cleanly is still replaced, and a restore asked to
/// overwrite still does.
#[test]
fn a_copy_does_not_replace_a_database_with_commits_in_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let src = Db::open(dir.path().join("src.obj")).unwrap();
    write_rows(&src, 0..5);
    let target = dir.path().join("prod.obj");
    // A crashed database: its commits are only in its WAL (a copy of the
    // files while open stands for the crash).
    let crashed = Db::open(dir.path().join("live.obj")).unwrap();
    write_rows(&crashed, 0..50);
    std::fs::copy(dir.path().join("live.obj"), &target).unwrap();
    let mut wal = target.as_os_str().to_owned();
    wal.push("-wal");
    let mut live_wal = dir.path().join("live.obj").into_os_string();
    live_wal.push("-wal");
    std::fs::copy(&live_wal, &wal).unwrap();
    let main_before = std::fs::read(&target).unwrap();
    let wal_before = std::fs::read(&wal).unwrap();
    for r in [src.backup(&target).map(drop), src.compact_to(&target).map(drop)] {
        match r {
            Err(obj_engine::Error::InvalidArgument(m)) => assert!(m.contains("not closed cleanly"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(std::fs::read(&target).unwrap(), main_before);
        assert_eq!(std::fs::read(&wal).unwrap(), wal_before);
    }
    // Opened once (recovery) and closed cleanly, it is replaced.
    let recovered = Db::open(&target).unwrap();
    let r = recovered.begin_read().unwrap();
    assert_eq!(r.count(&r.open_tree("t").unwrap()).unwrap(), 50);
    drop(r);
    recovered.close().unwrap();
    src.backup(&target).unwrap();
    let copy = Db::open(&target).unwrap();
    let r = copy.begin_read().unwrap();
    assert_eq!(r.count(&r.open_tree("t").unwrap()).unwrap(), 5);
}

/// A target that did not exist when the copy began is not locked: one that
/// appears meanwhile (another process creating a database there) is not
/// replaced when the copy is put in place.
#[test]
fn a_copy_does_not_replace_a_target_created_while_it_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let src = Db::open(dir.path().join("src.obj")).unwrap();
    write_rows(&src, 0..5);
    let target = dir.path().join("new.obj");
    let mut first = true;
    let r = src.backup_to(&target, |_| {
        if std::mem::take(&mut first) {
            std::fs::write(&target, b"precious").unwrap();
        }
        true
    });
    match r {
        Err(obj_engine::Error::Busy(m)) => assert!(m.contains("was created while"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    let temps = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp-"));
    assert_eq!(temps.count(), 0, "no temporary file is left");
    // Into a path that stays free, the copy is made.
    src.backup(dir.path().join("free.obj")).unwrap();
}

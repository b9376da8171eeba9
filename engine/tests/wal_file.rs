//! The WAL file across checkpoints and closes.
//!
//! - `Db::close_without_checkpoint`, the close an application makes when
//!   it leaves on an error: the WAL stays (even for the last handle), the
//!   next open recovers from it, and a later clean close folds it as usual.
//! - An explicit `Db::checkpoint` that completes leaves the WAL at its
//!   64-byte header (the documented reset); one that a reader holds back
//!   leaves the frames that reader needs, and a later one resets the file.
//!   Either way every commit stays readable, before and after a reopen
//!   that follows no clean close.
//! - An automatic checkpoint keeps the file's length: the next generation
//!   overwrites the old frames, so a commit's fdatasync need not also
//!   record a longer file.

use obj_engine::storage::WAL_HEADER_LEN;
use obj_engine::{Db, Options, ReadableTxn};

mod common;
use common::{get, put};

fn wal_len(path: &std::path::Path) -> Option<u64> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).ok().map(|m| m.len())
}

#[test]
fn last_handle_keeps_the_wal_and_reopen_recovers() {
    let dir = tempfile_dir("last");
    let path = dir.join("a.obj");
    let db = Db::open(&path).unwrap();
    put(&db, b"k", b"v1");
    let before = wal_len(&path).expect("the WAL holds the commit");
    assert!(before > 0);
    db.close_without_checkpoint();
    assert_eq!(wal_len(&path), Some(before), "no fold, no reset at this close");

    // The locks are gone (a new open in this process and a write work) and
    // the data is there; a clean close then folds and removes the WAL.
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v1"[..]));
    put(&db, b"k2", b"v2");
    db.close().unwrap();
    assert_eq!(wal_len(&path), None);
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, b"k2").as_deref(), Some(&b"v2"[..]));
    db.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn other_handles_keep_working_and_fold_at_their_clean_close() {
    let dir = tempfile_dir("shared");
    let path = dir.join("b.obj");
    let a = Db::open(&path).unwrap();
    let b = Db::open(&path).unwrap();
    put(&a, b"k", b"v");
    a.close_without_checkpoint();
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"v"[..]));
    put(&b, b"k", b"w");
    b.close().unwrap();
    assert_eq!(wal_len(&path), None, "the last, clean close folded");
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"w"[..]));
    db.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_complete_checkpoint_resets_the_wal_to_its_header() {
    let dir = tempfile_dir("reset");
    let path = dir.join("a.obj");
    let db = Db::open(&path).unwrap();
    for i in 0..50u32 {
        put(&db, &i.to_be_bytes(), &[7u8; 300]);
    }
    assert!(wal_len(&path).unwrap() > WAL_HEADER_LEN);
    let r = db.checkpoint().unwrap();
    assert!(r.complete && r.frames_backfilled > 0);
    assert_eq!(r.wal_frames, 0, "the report tells of the reset WAL");
    assert_eq!(wal_len(&path).unwrap(), WAL_HEADER_LEN);
    assert_eq!(db.checkpoint().unwrap().frames_backfilled, 0, "nothing left to fold");
    assert_eq!(wal_len(&path).unwrap(), WAL_HEADER_LEN);

    // Commits after the reset append to the fresh WAL.
    put(&db, b"after", b"1");
    assert!(wal_len(&path).unwrap() > WAL_HEADER_LEN);

    // A reader holding the WAL's frames keeps them: the checkpoint
    // completes (nothing newer to copy) but the WAL cannot restart.
    let reader = db.begin_read().unwrap();
    put(&db, b"later", b"2");
    let held = wal_len(&path).unwrap();
    db.checkpoint().unwrap();
    assert_eq!(wal_len(&path).unwrap(), held, "the reader's frames stay");
    let t = reader.find_tree("t").unwrap().unwrap();
    assert_eq!(reader.get(&t, b"after").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(reader.get(&t, b"later").unwrap(), None, "the reader's snapshot");
    drop(reader);
    assert!(db.checkpoint().unwrap().complete);
    assert_eq!(wal_len(&path).unwrap(), WAL_HEADER_LEN);

    // No clean close: the reopen recovers from the reset WAL and the main file.
    put(&db, b"last", b"3");
    db.close_without_checkpoint();
    let db = Db::open(&path).unwrap();
    for i in 0..50u32 {
        assert_eq!(get(&db, &i.to_be_bytes()).as_deref(), Some(&[7u8; 300][..]));
    }
    for (k, v) in [(&b"after"[..], &b"1"[..]), (b"later", b"2"), (b"last", b"3")] {
        assert_eq!(get(&db, k).as_deref(), Some(v));
    }
    db.integrity_check().unwrap();
    db.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn automatic_checkpoints_keep_the_wal_length() {
    let dir = tempfile_dir("auto");
    let path = dir.join("a.obj");
    let db = Db::open_with(&path, Options { wal_autocheckpoint: 20, ..Options::default() }).unwrap();
    let mut longest = 0;
    for i in 0..200u32 {
        put(&db, &i.to_be_bytes(), &[9u8; 300]);
        let len = wal_len(&path).unwrap();
        assert!(len >= longest, "commit {i}: the WAL shrank from {longest} to {len} bytes");
        longest = len;
    }
    // 200 commits of a few frames each went through several generations
    // inside a file that stopped growing.
    assert!(longest < 200 * 2 * 4096, "the WAL kept growing: {longest} bytes");
    for i in 0..200u32 {
        assert_eq!(get(&db, &i.to_be_bytes()).as_deref(), Some(&[9u8; 300][..]));
    }
    db.close().unwrap();
    assert_eq!(wal_len(&path), None, "a clean close removes the WAL");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("obj-wal-file-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

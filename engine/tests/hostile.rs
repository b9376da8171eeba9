//! Hostile input through the Rust API: each gets its documented error and
//! leaves the database as it was (byte for byte when the open is refused).
//! Complements `recovery.rs`, which checks the error kinds of foreign,
//! newer and truncated files on the real file system.

use std::path::Path;
use std::sync::Arc;

use obj_engine::btree::max_key_len;
use obj_engine::storage::file::Vfs;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Error, Options, ReadableTxn};

const DB: &str = "/h/app.obj";
const WAL: &str = "/h/app.obj-wal";

fn options(vfs: &SimVfs) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() }
}

/// A closed database with a few trees, overflow values and free pages.
fn sample(vfs: &SimVfs) -> Vec<u8> {
    let db = Db::open_with(DB, options(vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0u32..400 {
        w.insert(&t, &i.to_be_bytes(), &vec![i as u8; (i as usize * 37) % 6000]).unwrap();
    }
    let gone = w.create_tree("gone").unwrap();
    w.insert(&gone, b"k", &[1; 10_000]).unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("gone").unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    vfs.read_file(DB).unwrap()
}

fn assert_sample_intact(db: &Db) {
    db.integrity_check().unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    assert_eq!(r.count(&t).unwrap(), 400);
    for i in (0u32..400).step_by(7) {
        assert_eq!(r.get(&t, &i.to_be_bytes()).unwrap().unwrap().len(), (i as usize * 37) % 6000);
    }
    assert_eq!(r.list_trees().unwrap(), vec!["t".to_string()]);
}

#[test]
fn every_truncation_is_refused_and_left_untouched() {
    let vfs = SimVfs::new();
    let bytes = sample(&vfs);
    let page = 4096;
    let mut lengths: Vec<usize> = (0..64).chain([100, 511, 512, 4095]).collect();
    lengths.extend((page..bytes.len()).step_by(page / 2));
    lengths.extend([bytes.len() - 1, bytes.len() - page + 1]);
    for len in lengths {
        vfs.write_file(DB, &bytes[..len]);
        match Db::open_with(DB, options(&vfs)) {
            // An empty file is a new database.
            Ok(db) if len == 0 => db.close().unwrap(),
            Ok(_) => panic!("a file truncated to {len} of {} bytes opened", bytes.len()),
            Err(Error::Corruption { .. }) => {}
            Err(Error::InvalidArgument(m)) => assert!(m.contains("not an obj database"), "{len}: {m}"),
            Err(e) => panic!("truncated to {len}: unexpected {e:?}"),
        }
        if len > 0 {
            assert_eq!(vfs.read_file(DB).unwrap(), &bytes[..len], "a refused open changed the file");
        }
        let _ = vfs.remove(Path::new(WAL));
    }
    vfs.write_file(DB, &bytes);
    assert_sample_intact(&Db::open_with(DB, options(&vfs)).unwrap());
}

#[test]
fn not_a_database_and_foreign_wal_are_refused_without_writes() {
    let vfs = SimVfs::new();
    let bytes = sample(&vfs);
    for junk in [vec![b'x'; 10_000], b"SQLite format 3\0".repeat(300), vec![0; 8192], vec![0xff; 3]] {
        vfs.write_file("/h/junk", &junk);
        match Db::open_with("/h/junk", options(&vfs)) {
            Err(Error::InvalidArgument(_) | Error::Corruption { .. }) => {}
            other => panic!("junk opened: {other:?}"),
        }
        assert_eq!(vfs.read_file("/h/junk").unwrap(), junk);
    }
    // A WAL of another database (same page size) next to this one.
    let other = SimVfs::new();
    let db = Db::open_with(DB, options(&other)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"foreign", b"row").unwrap();
    w.commit().unwrap();
    let foreign_wal = other.read_file(WAL).unwrap();
    other.crash();
    drop(db);
    vfs.write_file(WAL, &foreign_wal);
    match Db::open_with(DB, options(&vfs)) {
        Err(Error::Corruption { message, .. }) => assert!(message.contains("another database"), "{message}"),
        other => panic!("a foreign WAL was accepted: {other:?}"),
    }
    assert_eq!(vfs.read_file(DB).unwrap(), bytes);
    assert_eq!(vfs.read_file(WAL).unwrap(), foreign_wal, "the foreign WAL is left for the user to move");
    vfs.remove(Path::new(WAL)).unwrap();
    assert_sample_intact(&Db::open_with(DB, options(&vfs)).unwrap());
}

#[test]
fn oversized_keys_and_stale_handles_leave_the_transaction_usable() {
    let vfs = SimVfs::new();
    sample(&vfs);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let max = max_key_len(4096 - 4);
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    for len in [max + 1, 4096, 1 << 20] {
        match w.insert(&t, &vec![7; len], b"v") {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("key is"), "{m}"),
            other => panic!("a {len}-byte key: {other:?}"),
        }
    }
    // A longest-allowed key still works in the same transaction.
    assert!(!w.insert(&t, &vec![7; max], b"edge").unwrap());
    // Deleting or reading an oversized key finds nothing rather than failing oddly.
    assert!(matches!(w.get(&t, &vec![7; max + 1]), Ok(None) | Err(Error::InvalidArgument(_))));
    w.rollback();

    // A tree handle outlives its tree: use in a later transaction is refused.
    let mut w = db.begin_write().unwrap();
    let doomed = w.create_tree("doomed").unwrap();
    w.insert(&doomed, b"a", b"1").unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("doomed").unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    for result in
        [w.insert(&doomed, b"b", b"2").map(drop), w.delete(&doomed, b"a").map(drop), w.clear(&doomed)]
    {
        match result {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("stale"), "{m}"),
            other => panic!("stale handle: {other:?}"),
        }
    }
    assert!(matches!(w.drop_tree("doomed"), Err(Error::NotFound(_))));
    // The transaction is still fine after all those refusals.
    let t = w.open_tree("t").unwrap();
    w.insert(&t, b"after", b"ok").unwrap();
    w.commit().unwrap();
    // Finished transactions are consumed by commit/rollback; a read
    // snapshot taken before a commit keeps its view.
    let r = db.begin_read().unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.delete(&t, b"after").unwrap();
    w.commit().unwrap();
    assert_eq!(r.get(&r.open_tree("t").unwrap(), b"after").unwrap().as_deref(), Some(&b"ok"[..]));
    drop(r);
    db.close().unwrap();
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    assert_sample_intact(&db);
}

#[test]
fn closed_handle_refuses_clearly() {
    let vfs = SimVfs::new();
    sample(&vfs);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let other = db.clone();
    let r = db.begin_read().unwrap();
    // Closing one of two handles closes nothing.
    db.close().unwrap();
    assert!(other.begin_read().is_ok());
    drop(r);
    other.close().unwrap();
    assert!(!vfs.exists(Path::new(WAL)).unwrap(), "the last close folds and removes the WAL");
    assert_sample_intact(&Db::open_with(DB, options(&vfs)).unwrap());
}

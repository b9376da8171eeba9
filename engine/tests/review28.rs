//! Review 28: what reviews of the documents and the file format found.
//!
//! - A `-wal` whose header was sound (magic and checksum right) but of
//!   another WAL format version, as a newer build would leave it after a
//!   crash, was taken for a WAL whose creation was cut: the open went on
//!   without its commits and the clean close removed it, so they were lost
//!   for good. It is now refused as `Unsupported`, and left where it is.

use obj_engine::{Db, Options, ReadableTxn};

fn rows(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    r.range(&t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
}

/// Rewrites the WAL header's version field (bytes 4..8) and its CRC.
fn set_wal_version(wal: &std::path::Path, version: u32) {
    let mut b = std::fs::read(wal).unwrap();
    b[4..8].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(wal, b).unwrap();
}

#[test]
fn a_wal_of_another_format_version_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.obj");
    let wal = dir.path().join("db.obj-wal");
    let opts = || Options { wal_autocheckpoint: 0, ..Options::default() };
    let db = Db::open_with(&path, opts()).unwrap();
    for i in 0u8..5 {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, &[i], b"committed").unwrap();
        w.commit().unwrap();
    }
    let expected = rows(&db);
    db.close_without_checkpoint(); // as a crash leaves it: 5 commits in the WAL
    let original = std::fs::read(&wal).unwrap();

    set_wal_version(&wal, 2);
    for read_only in [false, true] {
        let e = Db::open_with(&path, Options { read_only, ..opts() }).unwrap_err();
        assert!(matches!(e, obj_engine::Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("format version 2"), "{e}");
        assert!(wal.exists(), "the refused WAL stays");
    }

    // Its own version back: every commit is there.
    set_wal_version(&wal, 1);
    assert_eq!(std::fs::read(&wal).unwrap(), original);
    let db = Db::open_with(&path, opts()).unwrap();
    assert_eq!(rows(&db), expected);
    db.integrity_check().unwrap();
}

#[test]
fn a_wal_header_that_never_became_valid_is_still_an_empty_wal() {
    // A header cut while being written (a crash as the WAL was created or
    // restarted) holds nothing committed: the open goes on without it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.obj");
    let db = Db::open(&path).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"k", b"v").unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    let wal = dir.path().join("db.obj-wal");
    let mut torn = vec![0u8; 64]; // the magic written, the rest not yet
    torn[0..4].copy_from_slice(b"OBJW");
    std::fs::write(&wal, &torn).unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(rows(&db), vec![(b"k".to_vec(), b"v".to_vec())]);
}

//! Encryption, compaction and rekey on a database shared by several
//! processes. Handles opened with an explicit `OsVfs` bypass the
//! per-process registry: each has its own pager, shared-index mapping and
//! lock owner, so in one process they behave like two processes.

use std::path::Path;
use std::sync::Arc;

use obj_engine::storage::file::OsVfs;
use obj_engine::{Db, EncryptionKey, Error, Options, ReadableTxn, SyncMode};

fn own_process(key: Option<EncryptionKey>) -> Options {
    Options {
        vfs: Some(Arc::new(OsVfs)),
        sync_mode: SyncMode::Normal,
        wal_autocheckpoint: 0,
        encryption: key,
        ..Options::default()
    }
}

fn key(n: u8) -> EncryptionKey {
    EncryptionKey::raw([n; 32])
}

fn value(i: u32) -> Vec<u8> {
    let mut v = b"secret-value-".repeat(1 + (i as usize % 5) * 30);
    v.extend_from_slice(&i.to_be_bytes());
    v
}

fn fill(db: &Db, range: std::ops::Range<u32>) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in range {
        w.insert(&t, &i.to_be_bytes(), &value(i)).unwrap();
    }
    w.commit().unwrap();
}

fn delete(db: &Db, range: std::ops::Range<u32>) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in range {
        w.delete(&t, &i.to_be_bytes()).unwrap();
    }
    w.commit().unwrap();
}

fn check<R: ReadableTxn>(r: &R, range: std::ops::Range<u32>) {
    let t = r.find_tree("t").unwrap().expect("tree t");
    assert_eq!(r.count(&t).unwrap(), range.len() as u64);
    check_has(r, range);
}

fn check_has<R: ReadableTxn>(r: &R, range: std::ops::Range<u32>) {
    let t = r.find_tree("t").unwrap().expect("tree t");
    for i in range {
        assert_eq!(r.get(&t, &i.to_be_bytes()).unwrap(), Some(value(i)), "entry {i}");
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn side(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

#[test]
fn an_encrypted_database_is_shared_and_checkpointed_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.obj");
    let a = Db::open_with(&path, own_process(Some(key(1)))).unwrap();
    let b = Db::open_with(&path, own_process(Some(key(1)))).unwrap();
    assert!(a.is_encrypted() && b.is_encrypted());
    // The other process needs the key too.
    let err = Db::open_with(&path, own_process(None)).unwrap_err();
    assert!(matches!(err, Error::Encryption(_)), "{err:?}");
    let err = Db::open_with(&path, own_process(Some(key(2)))).unwrap_err();
    assert!(matches!(err, Error::Encryption(_)), "{err:?}");

    fill(&a, 0..400);
    check(&b.begin_read().unwrap(), 0..400);
    // b writes and checkpoints (copying encrypted images), a reads after.
    fill(&b, 400..800);
    let cp = b.checkpoint().unwrap();
    assert!(cp.complete, "{cp:?}");
    check(&a.begin_read().unwrap(), 0..800);
    // The WAL restarts under the next commit; both keep reading.
    fill(&a, 800..900);
    check(&b.begin_read().unwrap(), 0..900);
    b.integrity_check().unwrap();
    drop(b);
    a.close().unwrap();
    assert!(!side(&path, "-wal").exists() && !side(&path, "-shm").exists());
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(13).any(|w| w == b"secret-value-"), "plaintext in the main file");
    let again = Db::open_with(&path, own_process(Some(key(1)))).unwrap();
    check(&again.begin_read().unwrap(), 0..900);
}

#[test]
fn compaction_is_not_cut_under_another_processs_snapshot() {
    for k in [None, Some(key(3))] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.obj");
        let a = Db::open_with(&path, own_process(k.clone())).unwrap();
        let b = Db::open_with(&path, own_process(k.clone())).unwrap();
        fill(&a, 0..3000);
        delete(&a, 100..3000);
        a.checkpoint().unwrap();
        let old = b.begin_read().unwrap();
        let size = file_len(&path);
        let report = a.compact().unwrap();
        assert!(report.rewritten && !report.complete, "{report:?}");
        assert_eq!(file_len(&path), size, "not cut while another process's snapshot may read past the end");
        check(&old, 0..100);
        check(&b.begin_read().unwrap(), 0..100);
        fill(&b, 5000..5010);
        drop(old);
        let cp = a.checkpoint().unwrap();
        assert!(cp.complete, "{cp:?}");
        assert!(file_len(&path) < size / 4, "{} vs {size}", file_len(&path));
        // Both processes read the compacted database (through caches that
        // held pages of the old one), and write on.
        for db in [&a, &b] {
            let r = db.begin_read().unwrap();
            check_has(&r, 0..100);
            check_has(&r, 5000..5010);
            let t = r.find_tree("t").unwrap().unwrap();
            assert_eq!(r.count(&t).unwrap(), 110);
        }
        fill(&b, 6000..6500);
        b.checkpoint().unwrap();
        let r = a.begin_read().unwrap();
        let t = r.find_tree("t").unwrap().unwrap();
        assert_eq!(r.count(&t).unwrap(), 610);
        drop(r);
        a.integrity_check().unwrap();
        b.integrity_check().unwrap();
    }
}

#[test]
fn rekey_refuses_while_another_process_has_the_database_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.obj");
    let mut a = Db::open_with(&path, own_process(None)).unwrap();
    fill(&a, 0..200);
    let b = Db::open_with(&path, own_process(None)).unwrap();
    let err = a.rekey(Some(key(4))).unwrap_err();
    assert!(matches!(err, Error::Busy(_)), "{err:?}");
    // Nothing changed: both handles work on the plain database.
    assert!(!a.is_encrypted());
    fill(&b, 200..300);
    check(&a.begin_read().unwrap(), 0..300);
    b.close().unwrap();

    a.rekey(Some(key(4))).unwrap();
    assert!(a.is_encrypted());
    check(&a.begin_read().unwrap(), 0..300);
    // Another process joins the rekeyed database through a new -shm.
    let c = Db::open_with(&path, own_process(Some(key(4)))).unwrap();
    fill(&c, 300..350);
    check(&a.begin_read().unwrap(), 0..350);
    drop(c);
    a.close().unwrap();
    assert!(!side(&path, "-wal").exists() && !side(&path, "-shm").exists());
    assert!(!side(&path, "-rekey").exists());
    let err = Db::open_with(&path, own_process(None)).unwrap_err();
    assert!(matches!(err, Error::Encryption(_)), "{err:?}");
    check(&Db::open_with(&path, own_process(Some(key(4)))).unwrap().begin_read().unwrap(), 0..350);
}

#[test]
fn restore_refuses_a_target_that_another_process_has_open() {
    let dir = tempfile::tempdir().unwrap();
    let src = Db::open_with(dir.path().join("src.obj"), own_process(None)).unwrap();
    fill(&src, 0..100);
    let backup = dir.path().join("backup.obj");
    src.backup(&backup).unwrap();
    let target = dir.path().join("target.obj");
    let other = Db::open_with(&target, own_process(None)).unwrap();
    fill(&other, 500..510);
    let restore = || {
        Db::restore_from(
            &backup,
            &target,
            obj_engine::RestoreOptions { overwrite: true, ..Default::default() },
        )
    };
    let err = restore().unwrap_err();
    assert!(matches!(err, Error::Busy(_)), "{err:?}");
    // The other process's database is untouched and still works.
    fill(&other, 510..520);
    check(&other.begin_read().unwrap(), 500..520);
    other.close().unwrap();
    restore().unwrap();
    assert!(!side(&target, "-shm").exists() && !side(&target, "-wal").exists());
    let db = Db::open_with(&target, own_process(None)).unwrap();
    check(&db.begin_read().unwrap(), 0..100);
}

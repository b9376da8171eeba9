//! The catalog version (header bytes 64..72): how many trees were created
//! or dropped over the file's life. Bindings cache what they learnt of a
//! collection at one version and learn it again when the version moves,
//! so that a collection another handle or process dropped or made again
//! is never written or read blind.

use obj_engine::{Db, IndexSpec};

#[test]
fn creates_and_drops_move_the_version_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.obj");
    let db = Db::open(&path).unwrap();
    let v0 = db.begin_read().unwrap().catalog_version();

    let mut tx = db.begin_write().unwrap();
    tx.collection_mut("c").unwrap().insert_json(br#"{"e":"a"}"#, 0).unwrap();
    let v1 = tx.catalog_version();
    assert!(v1 > v0, "a new collection moves it");
    tx.collection_mut("c").unwrap().create_index(IndexSpec::unique("by_e", "e").unwrap()).unwrap();
    let v2 = tx.catalog_version();
    assert!(v2 > v1, "a new index moves it");
    // Not yet committed: other snapshots still see the old version.
    assert_eq!(db.begin_read().unwrap().catalog_version(), v0);
    tx.commit().unwrap();
    assert_eq!(db.begin_read().unwrap().catalog_version(), v2);

    // Documents written, replaced and deleted, key-value records, a
    // rolled-back create: the version stays.
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    let id = c.insert_json(br#"{"e":"b"}"#, 0).unwrap();
    c.upsert_json(id, br#"{"e":"bb"}"#, 0).unwrap();
    c.delete(id).unwrap();
    tx.commit().unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.collection_mut("other").unwrap();
    assert!(tx.catalog_version() > v2);
    tx.rollback();
    let snap = db.begin_read().unwrap();
    assert_eq!(snap.catalog_version(), v2);

    // A drop and a create again (the same name, another kind) move it,
    // and an older snapshot keeps its own.
    let mut tx = db.begin_write().unwrap();
    tx.drop_collection("c").unwrap();
    tx.raw_collection_mut("c").unwrap().insert_raw(b"x").unwrap();
    tx.commit().unwrap();
    let v3 = db.begin_read().unwrap().catalog_version();
    assert!(v3 > v2);
    assert_eq!(snap.catalog_version(), v2);
    drop(snap);
    db.close().unwrap();

    // It is in the file.
    let db = Db::open(&path).unwrap();
    assert_eq!(db.begin_read().unwrap().catalog_version(), v3);
}

#[test]
fn compaction_and_a_copy_keep_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    for i in 0..2000u32 {
        tx.collection_mut("c").unwrap().insert_json(format!(r#"{{"i":{i}}}"#).as_bytes(), 0).unwrap();
    }
    tx.collection_mut("d").unwrap();
    tx.commit().unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.drop_collection("c").unwrap();
    tx.commit().unwrap();
    let v = db.begin_read().unwrap().catalog_version();
    assert!(v >= 3);
    db.compact_to(dir.path().join("copy.obj")).unwrap();
    db.compact().unwrap();
    assert_eq!(db.begin_read().unwrap().catalog_version(), v);
    let copy = Db::open(dir.path().join("copy.obj")).unwrap();
    assert_eq!(copy.begin_read().unwrap().catalog_version(), v);
}

/// A rekey rewrites every tree into a new file under the open handle: the
/// catalog is the same, so the version stays what it was (it is not counted
/// again from the copy's own creates, which could bring it back to an old
/// value later with another catalog behind it), and the commit counter goes
/// on from the old file's.
#[test]
fn a_rekey_keeps_the_version_and_the_commit_counter_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.obj");
    let mut db = Db::open(&path).unwrap();
    for i in 0..8 {
        let mut tx = db.begin_write().unwrap();
        tx.collection_mut(&format!("t{i}")).unwrap();
        tx.commit().unwrap();
        let mut tx = db.begin_write().unwrap();
        tx.drop_collection(&format!("t{i}")).unwrap();
        tx.commit().unwrap();
    }
    let mut tx = db.begin_write().unwrap();
    tx.collection_mut("users").unwrap().create_index(IndexSpec::unique("by_e", "e").unwrap()).unwrap();
    tx.collection_mut("users").unwrap().insert_json(br#"{"e":"a"}"#, 0).unwrap();
    tx.commit().unwrap();
    let version = db.begin_read().unwrap().catalog_version();
    let counter = db.stat().unwrap().commit_counter;
    assert!(version >= 18, "{version}");

    db.rekey(Some(obj_engine::EncryptionKey::raw([3; 32]))).unwrap();
    assert_eq!(db.begin_read().unwrap().catalog_version(), version);
    assert!(db.stat().unwrap().commit_counter > counter);
    db.rekey(None).unwrap();
    assert_eq!(db.begin_read().unwrap().catalog_version(), version);
    // The next create moves it past every value the file had.
    let mut tx = db.begin_write().unwrap();
    tx.collection_mut("more").unwrap();
    tx.commit().unwrap();
    assert!(db.begin_read().unwrap().catalog_version() > version);
    drop(db);
    let db = Db::open(&path).unwrap();
    assert!(db.begin_read().unwrap().catalog_version() > version);
    assert_eq!(db.begin_read().unwrap().collection("users").unwrap().count().unwrap(), 1);
}

//! Review 50: what users found.
//!
//! - A file attached (or opened read-only) in this process could not then
//!   be opened for writes in it: the open joined the read-only engine and
//!   was refused `Busy` ("already open read-only in this process"), while
//!   another process could write the file all along, and the same two opens
//!   in the other order worked. Such an open now opens the file anew beside
//!   the read-only engine, as another process would.

use obj_engine::{Db, Options, ReadableTxn};

fn put(db: &Db, key: &[u8], value: &[u8]) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, key, value).unwrap();
    w.commit().unwrap();
}

fn get(db: &Db, key: &[u8]) -> Option<Vec<u8>> {
    let r = db.begin_read().unwrap();
    let t = r.find_tree("t").unwrap()?;
    r.get(&t, key).unwrap()
}

#[test]
fn a_file_attached_in_this_process_can_still_be_opened_for_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (main, archive) = (dir.path().join("main.obj"), dir.path().join("archive.obj"));
    let a = Db::open(&archive).unwrap();
    put(&a, b"k", b"v0");
    a.close().unwrap();
    let db = Db::open(&main).unwrap();
    db.attach(&archive, "archive").unwrap();
    let w = Db::open(&archive).expect("a writable open beside the attachment");
    put(&w, b"k", b"v1");
    assert_eq!(get(&w, b"k").as_deref(), Some(&b"v1"[..]));
    // A read-only open now joins the writable engine, and sees the write.
    let ro = Db::open_with(&archive, Options { read_only: true, ..Options::default() }).unwrap();
    assert_eq!(get(&ro, b"k").as_deref(), Some(&b"v1"[..]));
    drop(ro);
    w.close().unwrap();
    db.detach("archive").unwrap();
    db.close().unwrap();
    assert_eq!(get(&Db::open(&archive).unwrap(), b"k").as_deref(), Some(&b"v1"[..]));
}

/// The two engines exclude each other as two processes do: the writer's
/// checkpoint stops short of the frames the read-only engine's snapshot
/// still needs, and that snapshot keeps reading what it saw.
#[test]
fn a_writer_beside_a_read_only_handle_respects_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro_first.obj");
    let first = Db::open(&path).unwrap();
    put(&first, b"k", b"old");
    first.close().unwrap();
    let ro = Db::open_with(&path, Options { read_only: true, ..Options::default() }).unwrap();
    let w = Db::open(&path).expect("a writable open beside a read-only one");
    put(&w, b"k", b"v0");
    let snapshot = ro.begin_read().unwrap();
    let t = snapshot.find_tree("t").unwrap().unwrap();
    let seen = snapshot.get(&t, b"k").unwrap();
    assert_eq!(seen.as_deref(), Some(&b"v0"[..]), "a new snapshot sees the other engine's commit");
    for i in 0..3000u32 {
        put(&w, format!("n{i:05}").as_bytes(), &[7u8; 300]);
    }
    put(&w, b"k", b"v1");
    let ck = w.checkpoint().unwrap();
    assert!(!ck.complete, "the read-only engine's snapshot holds the checkpoint back: {ck:?}");
    assert_eq!(snapshot.get(&t, b"k").unwrap().as_deref(), Some(&b"v0"[..]));
    assert_eq!(snapshot.get(&t, b"n00001").unwrap(), None);
    drop(snapshot);
    assert!(w.checkpoint().unwrap().complete);
    assert_eq!(get(&ro, b"k").as_deref(), Some(&b"v1"[..]));
    w.close().unwrap();
    assert_eq!(get(&ro, b"k").as_deref(), Some(&b"v1"[..]), "the writer's close leaves the reader whole");
    assert_eq!(get(&ro, b"n02999").as_deref(), Some(&[7u8; 300][..]));
    ro.close().unwrap();
    let again = Db::open(&path).unwrap();
    again.integrity_check().unwrap();
}

/// `Db::create_index` with the spec of an index that is ready did not do
/// nothing, as `obj_db_index_create` and Python's `db.create_index` do: it
/// refused the name (found by a reliability review driving all three).
#[test]
fn creating_a_ready_index_again_does_nothing() {
    use obj_engine::{IndexKind, IndexSpec};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("i.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    w.collection_mut("c").unwrap().insert_json(br#"{"e": "a"}"#, 0).unwrap();
    w.commit().unwrap();
    let spec = IndexSpec::new("em", IndexKind::Unique, &["e"]).unwrap();
    db.create_index("c", spec.clone()).unwrap();
    db.create_index("c", spec).expect("the same index again");
    let other = IndexSpec::new("em", IndexKind::Standard, &["e"]).unwrap();
    let e = db.create_index("c", other).unwrap_err();
    assert!(matches!(e, obj_engine::Error::InvalidArgument(_)), "{e}");
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    assert_eq!(c.indexes().len(), 1);
    assert_eq!(c.indexes()[0].spec.kind, IndexKind::Unique);
}

/// A read-only handle displaced from the registry by a writable open still
/// knows its own file: a backup onto it was `Busy` ("an open database in
/// this process", then "another handle or process" once the writer
/// closed), which a caller retries for good, where its own file is
/// `InvalidArgument` (found by the review of the change above).
#[test]
fn a_read_only_handle_beside_a_writer_refuses_its_own_file_as_a_backup_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("own.obj");
    let first = Db::open(&path).unwrap();
    put(&first, b"k", b"v");
    first.close().unwrap();
    let ro = Db::open_with(&path, Options { read_only: true, ..Options::default() }).unwrap();
    let w = Db::open(&path).unwrap();
    assert!(matches!(ro.backup(&path), Err(obj_engine::Error::InvalidArgument(_))));
    assert!(matches!(ro.compact_to(&path), Err(obj_engine::Error::InvalidArgument(_))));
    w.close().unwrap();
    assert!(matches!(ro.backup(&path), Err(obj_engine::Error::InvalidArgument(_))));
    assert!(matches!(ro.export_to_path(None, &path), Err(obj_engine::Error::Busy(_))));
    // A later open joins the newest engine that can serve it: the read-only
    // one, now that the writer is gone, for a read-only open.
    let ro2 = Db::open_with(&path, Options { read_only: true, ..Options::default() }).unwrap();
    assert_eq!(get(&ro2, b"k").as_deref(), Some(&b"v"[..]));
}

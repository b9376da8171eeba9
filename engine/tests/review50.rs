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

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Member {
    email: String,
}

impl obj_engine::Document for Member {
    const COLLECTION: &'static str = "members";
}

/// A single typed insert clashing with a stored document was reported as
/// "document 0 of the batch" (the batch wording of a685397 reached the
/// one-document path); a batch, even of one, still names its places (found
/// by a Rust embedder).
#[test]
fn a_single_insert_reports_a_unique_violation_as_one() {
    use obj_engine::{IndexKind, IndexSpec};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("m.obj")).unwrap();
    db.insert(&Member { email: "a@x".into() }).unwrap();
    db.create_index("members", IndexSpec::new("email", IndexKind::Unique, &["email"]).unwrap()).unwrap();
    let e = db.insert(&Member { email: "a@x".into() }).unwrap_err().to_string();
    assert!(e.contains("already holds this value (document 1)") && !e.contains("batch"), "{e}");
    let e = db.insert_many(&[Member { email: "b@x".into() }, Member { email: "a@x".into() }]).unwrap_err();
    assert!(e.to_string().contains("document 1 of the batch (from 0) repeats it"), "{e}");
    // A batch of one is still a batch: obj_doc_insert_lines' "line n is
    // document n - 1" needs its place (found by the review of that change).
    let e = db.insert_many(&[Member { email: "a@x".into() }]).unwrap_err();
    assert!(e.to_string().contains("(document 1): document 0 of the batch (from 0) repeats it"), "{e}");
    let mut w = db.begin_write().unwrap();
    let e = w
        .collection_mut("members")
        .unwrap()
        .insert_json_many(br#"[{"email":"a@x"}]"#, 0, |_| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("document 0 of the batch (from 0) repeats it"), "{e}");
    drop(w);
    assert_eq!(db.begin_read().unwrap().collection("members").unwrap().count().unwrap(), 1);
}

/// An index bound with no values was accepted from Rust (and read nothing)
/// though its JSON form, which `QuerySpec::to_json` promises reads back, is
/// refused: both refuse it now (found by a Rust embedder).
#[test]
fn an_empty_index_bound_is_refused() {
    use obj_engine::query::spec::{IndexBound, IndexRange};
    use obj_engine::QuerySpec;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("q.obj")).unwrap();
    db.insert(&Member { email: "a@x".into() }).unwrap();
    db.create_index("members", obj_engine::IndexSpec::standard("by_email", "email").unwrap()).unwrap();
    let mut spec = QuerySpec::new("members");
    spec.index = Some(IndexRange {
        index: "by_email".into(),
        lo: Some(IndexBound { values: vec![], inclusive: true }),
        hi: None,
        reverse: false,
    });
    let r = db.begin_read().unwrap();
    let c = r.collection("members").unwrap();
    match c.query(&spec) {
        Err(obj_engine::Error::InvalidArgument(m)) => assert!(m.contains("at least one key value"), "{m}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
}

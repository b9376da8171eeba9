//! Review 17: what a C user met that earlier tests did not.
//!
//! - `attach` refuses a namespace that would hide a local collection, but
//!   a local `ns.coll` could still appear afterwards: created by a write
//!   transaction that began before the attach (or by another handle or
//!   process). Reads of `ns.coll` then answered from the attached file,
//!   silently, while the local collection was there. Such a read is now
//!   refused, naming both, until the namespace is detached.

use obj_engine::{Db, Error, Value};

#[test]
fn a_local_collection_created_after_an_attach_is_never_hidden() {
    let dir = tempfile::tempdir().unwrap();
    {
        let other = Db::open(dir.path().join("other.obj")).unwrap();
        let mut tx = other.begin_write().unwrap();
        tx.collection_mut("c").unwrap().insert_json(br#"{"from":"other"}"#, 1).unwrap();
        tx.commit().unwrap();
        other.close().unwrap();
    }
    let db = Db::open(dir.path().join("main.obj")).unwrap();
    let mut early = db.begin_write().unwrap();
    db.attach(dir.path().join("other.obj"), "x").unwrap();
    // The transaction began before the attach: x.c is a local name to it.
    early.collection_mut("x.c").unwrap().insert_json(br#"{"from":"main"}"#, 1).unwrap();
    early.commit().unwrap();

    let both = "both in this database and in the database attached as \"x\"";
    let ambiguous = |r: Result<(), Error>| matches!(&r, Err(Error::InvalidArgument(m)) if m.contains(both));
    let rx = db.begin_read().unwrap();
    assert!(ambiguous(rx.collection("x.c").map(|_| ())), "a read names both");
    let wx = db.begin_write().unwrap();
    assert!(ambiguous(wx.collection("x.c").map(|_| ())), "so does a read in a write transaction");
    drop(wx);
    drop(rx);

    db.detach("x").unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("x.c").unwrap();
    let mut out = Vec::new();
    c.get_json(1, &mut out).unwrap().expect("the local document");
    assert_eq!(out, br#"{"from":"main"}"#);
    assert_eq!(c.get(1).unwrap().unwrap().get("from"), Some(&Value::from("main")));
}

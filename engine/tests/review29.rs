//! Review 29: what an embedder of the Rust API met.
//!
//! - A typed read of a raw collection said "holds raw bytes" from
//!   `Db::get`, but a serde type error from `Db::all` and `Db::query`;
//!   every typed read now says the same.
//! - `Db::open("")` said ` is not a file path`, the empty name unquoted.
//! - `CollectionOptions` had no `Default` although `create_collection`
//!   takes one.

use obj_engine::{CollectionOptions, Db, Document, Error, QuerySpec};

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct R {
    a: u8,
}

impl Document for R {
    const COLLECTION: &'static str = "rawc";
}

fn raw_message(e: Error) -> String {
    match e {
        Error::InvalidArgument(m) => m,
        other => panic!("want InvalidArgument, got {other:?}"),
    }
}

#[test]
fn typed_reads_of_a_raw_collection_say_so_alike() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.create_collection("rawc", CollectionOptions { raw: true }).unwrap();
    tx.raw_collection_mut("rawc").unwrap().insert_raw(b"hello").unwrap();
    tx.commit().unwrap();

    let want = "collection \"rawc\" holds raw bytes: no structured access";
    assert!(raw_message(db.get::<R>(1).unwrap_err()).contains(want));
    assert!(raw_message(db.all::<R>().unwrap_err()).contains(want));
    assert!(raw_message(db.query::<R>(&QuerySpec::new("rawc")).unwrap_err()).contains(want));
    let rx = db.begin_read().unwrap();
    let c = rx.collection("rawc").unwrap();
    let first = c.all().unwrap().docs::<R>().next().unwrap();
    assert!(raw_message(first.unwrap_err()).contains(want));
    // The untyped reads still give the bytes.
    assert_eq!(c.all().unwrap().count().unwrap(), 1);
    assert_eq!(c.get_raw(1).unwrap().as_deref(), Some(&b"hello"[..]));
}

#[test]
fn an_empty_path_is_named_in_quotes() {
    let e = Db::open("").unwrap_err();
    assert_eq!(raw_message(e), "\"\" is not a file path");
}

#[test]
fn collection_options_default_to_documents() {
    assert_eq!(CollectionOptions::default(), CollectionOptions { raw: false });
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("d.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.create_collection("c", CollectionOptions::default()).unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    assert_eq!(rx.collection("c").unwrap().kind(), obj_engine::CollectionKind::Documents);
}

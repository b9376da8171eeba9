//! What session 42's helpers found in the Rust and C APIs.

use std::time::Duration;

use obj_engine::doc::json::from_json_str;
use obj_engine::{Db, Document, Error, Options};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Reading {
    level: f32,
}

impl Document for Reading {
    const COLLECTION: &'static str = "readings";
}

#[test]
fn an_f32_field_reads_numbers_written_as_f64() {
    // Python floats, JSON and f64 fields store f64: a struct declaring f32
    // read 0.1 as an error ("a number that f32 holds exactly").
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("f.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("readings").unwrap();
    let id = c.insert(&from_json_str(r#"{"level": 0.1}"#).unwrap()).unwrap();
    let big = c.insert(&from_json_str(r#"{"level": 1e39}"#).unwrap()).unwrap();
    drop(c);
    w.commit().unwrap();
    let got: Reading = db.get(id).unwrap().unwrap();
    assert_eq!(got, Reading { level: 0.1 });
    let e = db.get::<Reading>(big).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("within f32's range")), "{e}");
}

#[test]
fn an_invalid_page_size_is_refused_for_an_existing_file_too() {
    // It was ignored (OBJ_OK) for an existing file, NotFound for a missing
    // one opened without create, and InvalidArgument only when creating.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.obj");
    Db::open(&path).unwrap().close().unwrap();
    let bad = |create| Options { page_size: 1000, create, ..Options::default() };
    for (p, create) in [(&path, true), (&path, false), (&dir.path().join("missing.obj"), false)] {
        let e = Db::open_with(p, bad(create)).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("page size 1000")), "{e}");
    }
    assert!(!dir.path().join("missing.obj").exists());
    // A valid size other than the file's is the file's own, as documented.
    let other = Options { page_size: 8192, ..Options::default() };
    assert_eq!(Db::open_with(&path, other).unwrap().stat().unwrap().page_size, 4096);
}

#[test]
fn a_busy_writer_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.obj");
    let db = Db::open_with(&path, Options { busy_timeout: Duration::from_millis(20), ..Options::default() })
        .unwrap();
    let _w = db.begin_write().unwrap();
    let e = std::thread::scope(|s| s.spawn(|| db.begin_write().map(|_| ()).unwrap_err()).join().unwrap());
    assert!(matches!(&e, Error::Busy(m) if m.contains("busy.obj") && m.contains("waited 20 ms")), "{e}");
}

#[derive(Serialize, Debug)]
struct Keyed {
    by_pair: std::collections::BTreeMap<(u8, u8), u8>,
}

impl Document for Keyed {
    const COLLECTION: &'static str = "keyed";
}

impl<'de> Deserialize<'de> for Keyed {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("never read"))
    }
}

#[test]
fn a_document_that_does_not_serialize_names_its_collection() {
    // The message said only what serde said ("map keys must be ..."),
    // not which write failed.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("k.obj")).unwrap();
    let e = db.insert(&Keyed { by_pair: [((1, 2), 3)].into() }).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.starts_with("a document for collection \"keyed\": map keys")),
        "{e}"
    );
    assert_eq!(db.begin_read().unwrap().collection("keyed").map(|c| c.count().unwrap()).unwrap_or(0), 0);
}

#[test]
fn a_batch_that_runs_out_of_ids_leaves_nothing() {
    // The id check moved out of the shared write returned before the
    // batch's undo: the first document stayed and the next id moved on.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("ids.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    c.upsert(u64::MAX - 2, &from_json_str(r#"{"a":0}"#).unwrap()).unwrap();
    let docs = [from_json_str(r#"{"a":1}"#).unwrap(), from_json_str(r#"{"a":2}"#).unwrap()];
    // The first would take the last id, the second finds none.
    let e = c.insert_many(docs.iter()).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("exhausted")), "{e}");
    let e = c.insert_json_many(b"[{\"a\":1},{\"a\":2}]", 0, |_| Ok(())).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("exhausted")), "{e}");
    assert_eq!(c.count().unwrap(), 1);
    // The next id is where it was: one more document still fits.
    assert_eq!(c.insert(&docs[0]).unwrap(), u64::MAX - 1);
    c.delete(u64::MAX - 1).unwrap();
    assert_eq!(c.count().unwrap(), 1);
    drop(c);
    w.commit().unwrap();
    db.integrity_check().unwrap();
}

#[test]
fn transactions_that_all_spill_keep_the_wal_bounded() {
    // Each transaction changed more pages than max_dirty_bytes holds, so
    // each wrote its first pages to the WAL before its commit; the WAL
    // restarted only where everything was copied back, which the last
    // commit's frames never were (they are copied at the next commit, and
    // the next transaction spilled first): the WAL grew with the database,
    // 693 MB for a 688 MB `obj load --commit-every` (found by the memory
    // review). The first spill of a transaction now checkpoints when due,
    // as a commit does.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.obj");
    let options = Options { max_dirty_bytes: Some(1 << 20), wal_autocheckpoint: 1000, ..Options::default() };
    let db = Db::open_with(&path, options).unwrap();
    let value = vec![7u8; 1000];
    let mut largest = 0;
    for round in 0u32..20 {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        for i in 0u32..3000 {
            w.insert(&t, &[round.to_be_bytes(), i.to_be_bytes()].concat(), &value).unwrap();
        }
        assert!(w.spilled_pages() > 0, "the transaction spilled");
        w.commit().unwrap();
        largest = largest.max(std::fs::metadata(obj_engine::storage::wal_path_of(&path)).unwrap().len());
    }
    let main = std::fs::metadata(&path).unwrap().len();
    // One transaction writes about 3,000 KB: two of them fit; twenty do not.
    assert!(largest < 8 << 20, "largest WAL {largest} bytes beside a main file of {main}");
}

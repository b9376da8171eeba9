//! Review 18: what users of the docs and the Python reference met.
//!
//! - `{"$bytes": …}` without base64 padding was refused in query JSON
//!   ("length 6 is not a multiple of 4") although `query-json.md` says
//!   padding is optional on read, and document JSON (an insert, a unique
//!   lookup) took the same text: a value a user could store could not be
//!   queried with the same spelling.
//! - A unique index built over documents that repeat a value said the
//!   index "already holds this value (document 1)", the words of a write
//!   that collides, naming one document; it now says the index cannot be
//!   built and names both.

use obj_engine::{Db, Error, IndexSpec, QuerySpec, Value};

#[test]
fn query_json_reads_bytes_with_or_without_padding() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("b.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    // Stored from unpadded text, as document JSON allows.
    tx.collection_mut("c").unwrap().insert_json(br#"{"sig":{"$bytes":"3q2+7w"}}"#, 0).unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    for text in ["3q2+7w==", "3q2+7w"] {
        let spec = QuerySpec::from_json(&format!(
            r#"{{"collection":"c","filter":{{"eq":["sig",{{"$bytes":"{text}"}}]}}}}"#
        ))
        .unwrap();
        let hits: Vec<(u64, Value)> = c.query(&spec).unwrap().map(Result::unwrap).collect();
        assert_eq!(hits.len(), 1, "{text}");
        assert_eq!(hits[0].1, Value::Map(vec![("sig".into(), Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]))]));
    }
    for bad in ["3q2+7", "3q2+7x==", "3q2*7w=="] {
        let e = QuerySpec::from_json(&format!(
            r#"{{"collection":"c","filter":{{"eq":["sig",{{"$bytes":"{bad}"}}]}}}}"#
        ))
        .unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("invalid base64")), "{bad}: {e}");
    }
}

#[test]
fn a_unique_index_over_repeated_values_says_it_cannot_be_built() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("u.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    for e in ["a", "b", "c", "b"] {
        c.insert_json(format!(r#"{{"e":"{e}"}}"#).as_bytes(), 0).unwrap();
    }
    tx.commit().unwrap();
    let e = db.create_index("c", IndexSpec::unique("by_e", "e").unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::Constraint(m) if m.contains("cannot build unique index \"by_e\"") && m.contains("documents 2 and 4")),
        "{e}"
    );
    let mut tx = db.begin_write().unwrap();
    let e =
        tx.collection_mut("c").unwrap().create_index(IndexSpec::unique("by_e", "e").unwrap()).unwrap_err();
    assert!(matches!(&e, Error::Constraint(m) if m.contains("documents 2 and 4")), "{e}");
    drop(tx);
    assert!(db.begin_read().unwrap().collection("c").unwrap().indexes().is_empty());
}

//! An index built over existing documents covers the document at id 0 (an
//! upsert may store one there): the build starts at id 0, not 1.

use obj_engine::doc::json::from_json_str;
use obj_engine::{Db, Error, IndexSpec, Value};

fn j(s: &str) -> Value {
    from_json_str(s).unwrap()
}

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    (dir, db)
}

fn docs_at_0_and_1(db: &Db, a: &str, b: &str) {
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.upsert(0, &j(a)).unwrap();
    c.upsert(1, &j(b)).unwrap();
    tx.commit().unwrap();
}

#[test]
fn a_standard_index_built_later_has_the_entry_of_document_0() {
    for batched in [false, true] {
        let (_d, db) = open();
        docs_at_0_and_1(&db, r#"{"k":5}"#, r#"{"k":6}"#);
        let spec = IndexSpec::standard("by_k", "k").unwrap();
        if batched {
            db.create_index("c", spec).unwrap();
        } else {
            let mut tx = db.begin_write().unwrap();
            tx.collection_mut("c").unwrap().create_index(spec).unwrap();
            tx.commit().unwrap();
        }
        db.integrity_check().unwrap();
    }
}

#[test]
fn a_unique_index_built_later_sees_the_value_of_document_0() {
    for batched in [false, true] {
        let (_d, db) = open();
        docs_at_0_and_1(&db, r#"{"u":1}"#, r#"{"u":1}"#);
        let spec = IndexSpec::unique("by_u", "u").unwrap();
        let err = if batched {
            db.create_index("c", spec).unwrap_err()
        } else {
            let mut tx = db.begin_write().unwrap();
            let e = tx.collection_mut("c").unwrap().create_index(spec).unwrap_err();
            tx.commit().unwrap();
            e
        };
        assert!(matches!(err, Error::Constraint(_)), "{err}");
        db.integrity_check().unwrap();

        // Without the duplicate, document 0 is found through the index.
        let (_d, db) = open();
        docs_at_0_and_1(&db, r#"{"u":1}"#, r#"{"u":2}"#);
        db.create_index("c", IndexSpec::unique("by_u", "u").unwrap()).unwrap();
        let r = db.begin_read().unwrap();
        let found = r.collection("c").unwrap().find_unique("by_u", &[Value::Int(1)]).unwrap();
        assert_eq!(found.map(|(id, _)| id), Some(0));
        db.integrity_check().unwrap();
    }
}

//! Documents, collections, key-value namespaces, secondary indexes and
//! queries through the public Rust API.

use std::ops::Bound;

use obj_engine::doc::json::from_json_str;
use obj_engine::txn::ReadableTxn;
use obj_engine::{Db, Document, Error, IndexKind, IndexSpec, QuerySpec, Value};
use serde::{Deserialize, Serialize};

fn j(s: &str) -> Value {
    from_json_str(s).unwrap()
}

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    (dir, db)
}

fn ids(db: &Db, spec: &QuerySpec) -> Vec<u64> {
    let rx = db.begin_read().unwrap();
    let c = rx.collection(&spec.collection).unwrap();
    c.query(spec).unwrap().map(|r| r.unwrap().0).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    email: String,
    age: u32,
}

impl Document for User {
    const COLLECTION: &'static str = "users";
    const VERSION: u32 = 3;
    fn indexes() -> Vec<IndexSpec> {
        vec![IndexSpec::unique("by_email", "email").unwrap(), IndexSpec::standard("by_age", "age").unwrap()]
    }
}

fn user(n: &str, age: u32) -> User {
    User { name: n.into(), email: format!("{n}@x"), age }
}

#[test]
fn typed_crud_and_ids_never_reused() {
    let (_d, db) = open();
    let a = db.insert(&user("ann", 30)).unwrap();
    let b = db.insert(&user("bob", 40)).unwrap();
    assert!(b > a);
    assert_eq!(db.get::<User>(a).unwrap().unwrap(), user("ann", 30));
    assert!(db
        .update::<User>(a, |u| {
            u.age = 31;
            Ok(())
        })
        .unwrap());
    // An error in the closure rolls back.
    let r = db.update::<User>(a, |u| {
        u.age = 99;
        Err(Error::invalid("no"))
    });
    assert!(r.is_err());
    assert_eq!(db.get::<User>(a).unwrap().unwrap().age, 31);
    assert!(db.delete::<User>(b).unwrap());
    let c = db.insert(&user("cy", 20)).unwrap();
    assert!(c > b, "ids are never reused");
    assert!(!db.upsert(100, &user("dee", 50)).unwrap());
    assert!(db.insert(&user("eve", 1)).unwrap() > 100);
    let many = db.insert_many(&[user("f", 1), user("g", 2)]).unwrap();
    assert_eq!(db.get_many::<User>(&many).unwrap().len(), 2);
    assert_eq!(db.all::<User>().unwrap().len(), 6);
    let rx = db.begin_read().unwrap();
    let coll = rx.collection("users").unwrap();
    assert_eq!(coll.get_versioned(a).unwrap().unwrap().0, 3);
    drop(rx);
    db.integrity_check().unwrap();
}

#[test]
fn unique_violation_leaves_no_trace() {
    let (_d, db) = open();
    db.insert(&user("ann", 30)).unwrap();
    let before = db.stat().unwrap().collections;
    let err = db.insert(&User { name: "other".into(), email: "ann@x".into(), age: 5 }).unwrap_err();
    assert!(matches!(err, Error::Constraint(_)), "{err}");
    // Inside one transaction: the failed write changes nothing, the txn goes on.
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("users").unwrap();
    let n = c.count().unwrap();
    assert!(c.insert(&j(r#"{"name":"z","email":"ann@x","age":7,"newfield":1}"#)).is_err());
    assert_eq!(c.count().unwrap(), n);
    c.insert(&j(r#"{"name":"z","email":"z@x","age":7}"#)).unwrap();
    drop(c);
    tx.commit().unwrap();
    assert_eq!(db.stat().unwrap().collections[0].doc_count, before[0].doc_count + 1);
    db.integrity_check().unwrap();
}

#[test]
fn index_moves_on_update_and_goes_on_delete() {
    let (_d, db) = open();
    let a = db.insert(&user("ann", 30)).unwrap();
    let q = |age: i64| {
        let mut s = QuerySpec::new("users");
        s.filter = obj_engine::Filter::Eq("age".parse().unwrap(), Value::Int(age));
        s
    };
    assert_eq!(ids(&db, &q(30)), vec![a]);
    db.update::<User>(a, |u| {
        u.age = 35;
        Ok(())
    })
    .unwrap();
    assert!(ids(&db, &q(30)).is_empty());
    assert_eq!(ids(&db, &q(35)), vec![a]);
    let rx = db.begin_read().unwrap();
    let users = rx.collection("users").unwrap();
    let plan = users.explain(&q(35)).unwrap();
    assert!(plan.contains("INDEX by_age") && plan.contains("filter answered by the index"), "{plan}");
    let plan = users.explain(&QuerySpec::new("users")).unwrap();
    assert!(plan.starts_with("SCAN") && !plan.contains("filter"), "no filter, none evaluated: {plan}");
    drop(users);
    drop(rx);
    db.delete::<User>(a).unwrap();
    assert!(ids(&db, &q(35)).is_empty());
    let st = db.stat().unwrap();
    assert!(st.collections[0].indexes.iter().all(|i| i.entries == 0));
    db.integrity_check().unwrap();
}

#[test]
fn backfill_of_non_empty_collection_and_drop() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("items").unwrap();
    for i in 0..2500u64 {
        c.insert(&j(&format!(r#"{{"n":{},"tags":["t{}","all"]}}"#, i % 7, i % 3))).unwrap();
    }
    drop(c);
    tx.commit().unwrap();
    db.create_index("items", IndexSpec::new("by_tag", IndexKind::Multi, &["tags"]).unwrap()).unwrap();
    let st = db.stat().unwrap();
    let ix = &st.collections[0].indexes[0];
    assert_eq!((ix.status.as_str(), ix.entries), ("ready", 7500));
    let mut s = QuerySpec::from_json(r#"{"collection":"items","filter":{"eq":["tags","t1"]}}"#).unwrap();
    assert_eq!(ids(&db, &s).len(), 833);
    s.count_only = true;
    db.integrity_check().unwrap();
    // A unique index that cannot hold the data is refused and dropped.
    let err = db.create_index("items", IndexSpec::unique("u", "n").unwrap()).unwrap_err();
    assert!(matches!(err, Error::Constraint(_)));
    assert_eq!(db.stat().unwrap().collections[0].indexes.len(), 1);
    db.drop_index("items", "by_tag").unwrap();
    assert!(db.stat().unwrap().collections[0].indexes.is_empty());
    db.integrity_check().unwrap();
}

#[test]
fn sort_over_buffer_limit_is_an_error() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("s").unwrap();
    for i in 0..50 {
        c.insert(&j(&format!(r#"{{"k":{}}}"#, (i * 7) % 50))).unwrap();
    }
    drop(c);
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("s").unwrap();
    let mut spec = QuerySpec::from_json(
        r#"{"collection":"s","sort":[{"field":"k","order":"desc"}],"sort_buffer_limit":10}"#,
    )
    .unwrap();
    let err = c.query(&spec).unwrap().collect::<Result<Vec<_>, _>>().unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    spec.limit = Some(5);
    let got: Vec<Value> = c.query(&spec).unwrap().map(|r| r.unwrap().1).collect();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].get("k"), Some(&Value::Int(49)));
    // offset + limit equal to the cap fits it (the best 10 of 50).
    spec.limit = Some(7);
    spec.offset = 3;
    let got: Vec<Value> = c.query(&spec).unwrap().map(|r| r.unwrap().1).collect();
    let ks: Vec<Option<&Value>> = got.iter().map(|d| d.get("k")).collect();
    assert_eq!(ks, (40..=46).rev().map(Value::Int).collect::<Vec<_>>().iter().map(Some).collect::<Vec<_>>());
    spec.offset = 4;
    assert!(c.query(&spec).unwrap().next().unwrap().is_err(), "offset + limit over the cap");
    spec.offset = 0;
    spec.limit = None;
    spec.sort_buffer_limit = None;
    assert_eq!(c.query(&spec).unwrap().count().unwrap(), 50);
}

#[test]
fn large_documents_and_raw_collections() {
    let (_d, db) = open();
    let big = "x".repeat(16 << 20);
    let doc = Value::Map(vec![("blob".into(), Value::Str(big.clone()))]);
    let mut tx = db.begin_write().unwrap();
    let id = tx.collection_mut("big").unwrap().insert(&doc).unwrap();
    let rid = tx.raw_collection_mut("raw").unwrap().insert_raw(b"\x00opaque\xff").unwrap();
    assert!(tx.collection_mut("raw").is_err(), "kind mismatch");
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    assert_eq!(rx.collection("big").unwrap().get(id).unwrap().unwrap(), doc);
    let raw = rx.collection("raw").unwrap();
    assert_eq!(raw.get_raw(rid).unwrap().unwrap(), b"\x00opaque\xff");
    assert!(raw.get(rid).is_err());
    assert_eq!(raw.all().unwrap().count().unwrap(), 1);
    let mut names = rx.list_collections().unwrap();
    names.sort();
    assert_eq!(names, vec!["big", "raw"]);
    drop(rx);
    let mut tx = db.begin_write().unwrap();
    tx.drop_collection("big").unwrap();
    tx.commit().unwrap();
    assert_eq!(db.begin_read().unwrap().list_collections().unwrap(), vec!["raw"]);
    db.integrity_check().unwrap();
}

#[test]
fn bad_paths_and_malformed_queries_are_invalid_argument() {
    assert!(matches!(IndexSpec::standard("i", "a..b"), Err(Error::InvalidArgument(_))));
    assert!(matches!(IndexSpec::standard("i/x", "a"), Err(Error::InvalidArgument(_))));
    for bad in [
        r#"{"collection":"c","filter":{"gtt":["a",1]}}"#,
        r#"{"collection":"c","filter":{"eq":[".a",1]}}"#,
        r#"{"collection":"c""#,
        r#"{"collection":"c","limit":-1}"#,
    ] {
        assert!(matches!(QuerySpec::from_json(bad), Err(Error::InvalidArgument(_))), "{bad}");
    }
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    assert!(matches!(c.insert(&Value::Int(3)), Err(Error::InvalidArgument(_))));
    c.insert(&j(r#"{"a":1}"#)).unwrap();
    let mut spec = QuerySpec::new("c");
    spec.index =
        Some(obj_engine::query::IndexRange { index: "nope".into(), lo: None, hi: None, reverse: false });
    assert!(matches!(c.read().query(&spec), Err(Error::NotFound(_))));
}

#[test]
fn kv_namespaces() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    for i in 0..10u8 {
        tx.kv_put("cfg", &[b'k', i], &[i]).unwrap();
    }
    tx.kv_put("other", b"k\x01", b"x").unwrap();
    assert!(tx.kv_delete("cfg", &[b'k', 3]).unwrap());
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    assert_eq!(rx.kv_get("cfg", b"k\x02").unwrap(), Some(vec![2]));
    assert_eq!(rx.kv_get("missing", b"k").unwrap(), None);
    let fwd: Vec<u8> = rx.kv_prefix("cfg", b"k", false).unwrap().map(|e| e.unwrap().1[0]).collect();
    assert_eq!(fwd, vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
    let back: Vec<u8> = rx
        .kv_range("cfg", Bound::Included(b"k\x02"), Bound::Excluded(b"k\x06"), true)
        .unwrap()
        .map(|e| e.unwrap().1[0])
        .collect();
    assert_eq!(back, vec![5, 4, 2]);
}

#[test]
fn index_range_and_find_unique() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("o").unwrap();
    c.create_index(IndexSpec::new("st_total", IndexKind::Standard, &["status", "total"]).unwrap()).unwrap();
    c.create_index(IndexSpec::unique("sku", "sku").unwrap()).unwrap();
    for i in 0..20i64 {
        let st = if i % 2 == 0 { "open" } else { "shipped" };
        c.insert(&j(&format!(r#"{{"status":"{st}","total":{i},"sku":"s{i}"}}"#))).unwrap();
    }
    drop(c);
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("o").unwrap();
    let (id, doc) = c.find_unique("sku", &[Value::Str("s7".into())]).unwrap().unwrap();
    assert_eq!(doc.get("total"), Some(&Value::Int(7)));
    assert_eq!(id, 8);
    let s = |x: &str| Value::Str(x.into());
    let totals = |lo: Vec<Value>, hi: Vec<Value>, rev: bool| -> Vec<i64> {
        c.index_range("st_total", Some(&lo), Some(&hi), rev)
            .unwrap()
            .map(|r| r.unwrap().1.get("total").unwrap().as_i64().unwrap())
            .collect()
    };
    assert_eq!(totals(vec![s("open"), Value::Int(4)], vec![s("open"), Value::Int(10)], false), vec![4, 6, 8]);
    assert_eq!(totals(vec![s("open"), Value::Int(4)], vec![s("open"), Value::Int(10)], true), vec![8, 6, 4]);
    assert_eq!(totals(vec![s("shipped")], vec![s("shipped")], false).len(), 10);
}

#[test]
fn a_violation_of_a_later_unique_index_takes_back_the_earlier_ones_entries() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("u").unwrap();
    for (name, field) in [("by_a", "a"), ("by_b", "b"), ("by_c", "c")] {
        c.create_index(IndexSpec::unique(name, field).unwrap()).unwrap();
    }
    c.create_index(IndexSpec::standard("by_d", "d").unwrap()).unwrap();
    let first = c.insert(&j(r#"{"a":1,"b":1,"c":1,"d":1}"#)).unwrap();
    // by_a and by_b take the new keys, by_c refuses: none of them stays.
    for doc in
        [r#"{"a":2,"b":2,"c":1,"d":2}"#, r#"{"a":2,"b":1,"c":2,"d":2}"#, r#"{"a":1,"b":2,"c":2,"d":2}"#]
    {
        let err = c.insert(&j(doc)).unwrap_err();
        assert!(matches!(err, Error::Constraint(_)), "{err}");
        assert_eq!(c.count().unwrap(), 1);
        for (index, v) in [("by_a", 2), ("by_b", 2), ("by_c", 2)] {
            assert!(c.read().find_unique(index, &[Value::Int(v)]).unwrap().is_none(), "{index} kept {v}");
        }
    }
    for (index, v) in [("by_a", 1), ("by_b", 1), ("by_c", 1)] {
        assert_eq!(c.read().find_unique(index, &[Value::Int(v)]).unwrap().map(|(id, _)| id), Some(first));
    }
    // The keys are free for the next document, and an upsert of the first
    // one's id keeps its own keys.
    let second = c.insert(&j(r#"{"a":2,"b":2,"c":2,"d":2}"#)).unwrap();
    assert!(!c.upsert(first + 10, &j(r#"{"a":3,"b":3,"c":3}"#)).unwrap());
    assert!(c.upsert(first, &j(r#"{"a":1,"b":1,"c":1,"d":9}"#)).unwrap());
    assert!(matches!(c.upsert(second, &j(r#"{"a":1}"#)).unwrap_err(), Error::Constraint(_)));
    drop(c);
    tx.commit().unwrap();
    db.integrity_check().unwrap();
    let st = db.stat().unwrap();
    let by = |n: &str| st.collections[0].indexes.iter().find(|i| i.name == n).unwrap().entries;
    // Three documents; the upserted one has no "d", so no by_d entry.
    assert_eq!((by("by_a"), by("by_b"), by("by_c"), by("by_d")), (3, 3, 3, 2));
}

#[test]
fn insert_many_is_all_or_nothing() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("u").unwrap();
    c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
    c.insert(&j(r#"{"email":"a"}"#)).unwrap();
    let next = c.read().next_id();
    // The third document collides with the first of the batch.
    let batch = [j(r#"{"email":"b"}"#), j(r#"{"email":"c"}"#), j(r#"{"email":"b"}"#)];
    let err = c.insert_many_versioned(&batch, 2).unwrap_err();
    assert!(matches!(err, Error::Constraint(_)), "{err}");
    assert_eq!(c.count().unwrap(), 1);
    assert_eq!(c.read().next_id(), next);
    assert!(c.read().find_unique("by_email", &[Value::Str("b".into())]).unwrap().is_none());
    // A non-map document fails the same way.
    assert!(c.insert_many(&[j(r#"{"email":"d"}"#), Value::Int(1)]).is_err());
    assert_eq!(c.count().unwrap(), 1);
    // The transaction goes on; ids continue where they were.
    let ids = c.insert_many_versioned(&batch[..2], 2).unwrap();
    assert_eq!(ids, vec![next, next + 1]);
    assert_eq!(c.read().get_versioned(next).unwrap().unwrap().0, 2);
    drop(c);
    tx.commit().unwrap();
    db.integrity_check().unwrap();
}

#[test]
fn owned_query_cursor_and_stored_records() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    for i in 0..5 {
        c.insert_versioned(&j(&format!(r#"{{"n":{i}}}"#)), 7).unwrap();
    }
    drop(c);
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    // The cursor outlives the collection handle it came from.
    let cursor = {
        let coll = rx.collection("c").unwrap();
        let spec = QuerySpec::from_json(r#"{"collection":"c","filter":{"ge":["n",2]}}"#).unwrap();
        coll.into_query(&spec).unwrap()
    };
    let got: Vec<u64> = cursor.map(|r| r.unwrap().0).collect();
    assert_eq!(got, vec![3, 4, 5]);
    let mut versioned = rx.collection("c").unwrap().into_query(&QuerySpec::new("c")).unwrap();
    let (id, version, doc) = versioned.next_versioned().unwrap().unwrap();
    assert_eq!((id, version, doc), (1, 7, j(r#"{"n":0}"#)));
    assert_eq!(versioned.next().unwrap().unwrap().0, 2);
    assert!(rx.collection("c").unwrap().into_query(&QuerySpec::new("other")).is_err());
    let records = {
        let coll = rx.collection("c").unwrap();
        coll.stored_records().unwrap()
    };
    let recs: Vec<(u64, Vec<u8>)> = records.map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 5);
    let (header, _) = obj_engine::doc::codec::decode_header(&recs[0].1).unwrap();
    assert_eq!((recs[0].0, header.schema_version, header.is_raw()), (1, 7, false));
}

#[test]
fn kv_list_and_drop() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    tx.kv_put("b", b"k", b"v").unwrap();
    tx.kv_put("a", b"k", b"v").unwrap();
    tx.collection_mut("not_a_namespace").unwrap();
    assert_eq!(tx.kv_list().unwrap(), vec!["a", "b"]);
    assert!(tx.kv_drop("a").unwrap());
    assert!(!tx.kv_drop("a").unwrap());
    tx.commit().unwrap();
    assert_eq!(db.begin_read().unwrap().kv_list().unwrap(), vec!["b"]);
}

#[test]
fn kv_create_keeps_an_empty_namespace() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    assert!(tx.kv_create("empty").unwrap());
    assert!(!tx.kv_create("empty").unwrap());
    tx.kv_put("full", b"k", b"v").unwrap();
    assert!(!tx.kv_create("full").unwrap(), "an existing namespace keeps its entries");
    assert!(matches!(tx.kv_create(""), Err(obj_engine::Error::InvalidArgument(_))));
    tx.commit().unwrap();
    let r = db.begin_read().unwrap();
    assert_eq!(r.kv_list().unwrap(), vec!["empty", "full"]);
    assert_eq!(r.kv_prefix("empty", b"", false).unwrap().count(), 0);
    assert_eq!(r.kv_get("full", b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn reopened_collection_handles_in_one_transaction_stay_coherent() {
    // Handles opened one after another in a transaction share the state the
    // transaction keeps; every kind of change must be seen by the next one.
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let a = tx.collection_mut("c").unwrap().insert(&j(r#"{"x":1,"name":"a"}"#)).unwrap();
    tx.collection_mut("c").unwrap().create_index(IndexSpec::unique("by_x", "x").unwrap()).unwrap();
    let err = tx.collection_mut("c").unwrap().insert(&j(r#"{"x":1,"newname":true}"#)).unwrap_err();
    assert!(matches!(err, Error::Constraint(_)));
    let b = tx.collection_mut("c").unwrap().insert(&j(r#"{"x":2,"other":3}"#)).unwrap();
    assert_eq!(b, a + 1);
    assert!(tx.raw_collection_mut("c").is_err(), "kind mismatch");
    assert_eq!(tx.collection("c").unwrap().get(b).unwrap().unwrap(), j(r#"{"x":2,"other":3}"#));
    assert_eq!(tx.collection("c").unwrap().find_unique("by_x", &[Value::Int(2)]).unwrap().unwrap().0, b);
    // Drop and recreate in the same transaction: a fresh, empty collection.
    tx.drop_collection("c").unwrap();
    assert!(tx.collection("c").is_err());
    let mut c = tx.collection_mut("c").unwrap();
    assert_eq!(c.count().unwrap(), 0);
    assert!(c.read().indexes().is_empty());
    assert_eq!(c.insert(&j(r#"{"x":1}"#)).unwrap(), 1);
    drop(c);
    tx.collection_mut("c").unwrap().drop_index("by_x").unwrap_err();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    assert_eq!((c.count().unwrap(), c.next_id()), (1, 2));
    drop(rx);
    db.integrity_check().unwrap();
    // A rolled-back transaction's kept state dies with it.
    let mut tx = db.begin_write().unwrap();
    tx.collection_mut("c").unwrap().insert(&j(r#"{"x":5}"#)).unwrap();
    tx.rollback();
    let mut tx = db.begin_write().unwrap();
    assert_eq!(tx.collection_mut("c").unwrap().insert(&j(r#"{"x":5}"#)).unwrap(), 2);
    tx.commit().unwrap();
    db.integrity_check().unwrap();
}

/// Inserts do not rewrite the collection's metadata; the next id comes
/// from the largest id in use and the stored mark, which deletes keep
/// ahead of every id they free. No id comes back, across reopens and
/// within one transaction.
#[test]
fn deleted_ids_stay_retired_across_reopen_and_within_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.obj");
    let doc = |n: i64| Value::Map(vec![("n".into(), Value::Int(n))]);
    let next = |db: &Db| db.begin_read().unwrap().collection("c").unwrap().next_id();
    {
        let db = Db::open(&path).unwrap();
        let mut w = db.begin_write().unwrap();
        let mut c = w.collection_mut("c").unwrap();
        assert_eq!(c.insert_many(&[doc(1), doc(2), doc(3)]).unwrap(), vec![1, 2, 3]);
        drop(c);
        w.commit().unwrap();
        // Deleting the newest id, alone in its transaction.
        let mut w = db.begin_write().unwrap();
        assert!(w.collection_mut("c").unwrap().delete(3).unwrap());
        w.commit().unwrap();
        assert_eq!(next(&db), 4);
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(next(&db), 4, "the mark survives a reopen");
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    // Insert and delete in one transaction, then insert again.
    let a = c.insert(&doc(4)).unwrap();
    assert_eq!(a, 4);
    assert!(c.delete(a).unwrap());
    assert_eq!(c.insert(&doc(5)).unwrap(), 5);
    // An upsert far ahead moves the next id past it; deleting it keeps it retired.
    assert!(!c.upsert(100, &doc(100)).unwrap());
    assert!(c.delete(100).unwrap());
    drop(c);
    w.commit().unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(next(&db), 101);
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    assert_eq!(c.insert(&doc(101)).unwrap(), 101);
    // Deleting an old id leaves the next id where it is.
    assert!(c.delete(1).unwrap());
    drop(c);
    w.commit().unwrap();
    assert_eq!(next(&db), 102);
    // Emptying the collection keeps every id retired.
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    for id in [2, 5, 101] {
        assert!(c.delete(id).unwrap());
    }
    assert_eq!(c.count().unwrap(), 0);
    drop(c);
    w.commit().unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(next(&db), 102);
    db.integrity_check().unwrap();
}

/// Documents written as JSON text (the C ABI's path, which encodes plain
/// JSON as it parses it) are stored exactly as the same documents written
/// as values, with the same index entries; refused text leaves nothing,
/// not even a field name.
#[test]
fn json_writes_store_what_value_writes_store() {
    let (_d, db) = open();
    let texts = [
        r#"{"email":"a@x","n":1,"tags":["t1","t2"],"addr":{"city":"Oslo","zip":"0150"}}"#,
        r#"{"email":"b@x","n":-2,"big":18446744073709551615,"f":1.5,"addr":{"city":"Bergen"}}"#,
        r#"{"email":"c@x","when":{"$ts":1700000000000000},"blob":{"$bytes":"AAEC"},"$$dollar":true}"#,
        r#"{"email":"d@x","tags":[],"nested":[[1,[2]],{"k":null}]}"#,
    ];
    let specs = || {
        vec![
            IndexSpec::unique("email", "email").unwrap(),
            IndexSpec::new("tags", IndexKind::Multi, &["tags"]).unwrap(),
            IndexSpec::standard("city", "addr.city").unwrap(),
        ]
    };
    let mut w = db.begin_write().unwrap();
    for name in ["by_json", "by_value"] {
        let mut c = w.collection_mut(name).unwrap();
        for spec in specs() {
            c.create_index(spec).unwrap();
        }
    }
    let mut c = w.collection_mut("by_json").unwrap();
    for t in &texts {
        c.insert_json(t.as_bytes(), 7).unwrap();
    }
    assert!(c.upsert_json(3, texts[2].replace("c@x", "c2@x").as_bytes(), 8).unwrap());
    assert!(!c.upsert_json(10, br#"{"email":"e@x","tags":["t1"]}"#, 0).unwrap());
    drop(c);
    let mut c = w.collection_mut("by_value").unwrap();
    for t in &texts {
        c.insert_versioned(&j(t), 7).unwrap();
    }
    assert!(c.upsert_versioned(3, &j(&texts[2].replace("c@x", "c2@x")), 8).unwrap());
    assert!(!c.upsert_versioned(10, &j(r#"{"email":"e@x","tags":["t1"]}"#), 0).unwrap());
    drop(c);
    // Refused: a duplicate unique value, malformed text, not an object, a
    // duplicate key, an unknown $ key. None of them leaves a trace.
    let mut c = w.collection_mut("by_json").unwrap();
    let refused: [&[u8]; 5] = [
        br#"{"email":"a@x","n":1}"#,
        br#"{"other_new_field":1"#,
        b"[1]",
        br#"{"dup_field":1,"dup_field":2}"#,
        br#"{"$nope":1}"#,
    ];
    for text in refused {
        assert!(c.insert_json(text, 0).is_err(), "{}", String::from_utf8_lossy(text));
    }
    assert!(c.upsert_json(1, br#"{"email":"b@x"}"#, 0).is_err());
    assert_eq!(c.read().next_id(), 11);
    // A later write persists the names it uses, and only those.
    assert_eq!(c.insert_json(br#"{"email":"z@x","last":1}"#, 0).unwrap(), 11);
    drop(c);
    w.collection_mut("by_value").unwrap().insert(&j(r#"{"email":"z@x","last":1}"#)).unwrap();
    w.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let (a, b) = (rx.collection("by_json").unwrap(), rx.collection("by_value").unwrap());
    assert_eq!(a.count().unwrap(), 6);
    for id in [1, 2, 3, 4, 10, 11] {
        assert_eq!(a.get_stored(id).unwrap(), b.get_stored(id).unwrap(), "document {id}");
    }
    for name in ["$names/by_json", "$index/by_json/email", "$index/by_json/tags", "$index/by_json/city"] {
        let other = name.replace("by_json", "by_value");
        let (t1, t2) = (rx.open_tree(name).unwrap(), rx.open_tree(&other).unwrap());
        let e1: Vec<_> =
            rx.range(&t1, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(|e| e.unwrap()).collect();
        let e2: Vec<_> =
            rx.range(&t2, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(e1, e2, "{name}");
    }
    assert_eq!(a.find_unique("email", &[Value::from("c2@x")]).unwrap().unwrap().0, 3);
    assert!(a.find_unique("email", &[Value::from("c@x")]).unwrap().is_none());
    drop(rx);
    db.integrity_check().unwrap();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Payment {
    Card,
    Invoice { days: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shipment {
    email: String,
    total: f64,
    tags: Vec<String>,
    payment: Payment,
    dest: Option<Address>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
}

impl Document for Shipment {
    const COLLECTION: &'static str = "shipments";
    const VERSION: u32 = 4;
    fn indexes() -> Vec<IndexSpec> {
        vec![IndexSpec::unique("email", "email").unwrap(), IndexSpec::standard("city", "dest.city").unwrap()]
    }
}

/// Typed writes (`Db::insert`, `insert_many`, `upsert`, `update`) store
/// exactly what writing the same documents as `Value`s stores, index
/// entries included, and a refused batch leaves nothing.
#[test]
fn typed_writes_store_what_value_writes_store() {
    let (_d, db) = open();
    let ship = |i: u32, payment: Payment| Shipment {
        email: format!("s{i}@x"),
        total: f64::from(i) / 4.0,
        tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
        payment,
        dest: i.is_multiple_of(2).then(|| Address { city: format!("c{}", i % 5) }),
    };
    let docs: Vec<Shipment> = (0..40)
        .map(|i| ship(i, if i.is_multiple_of(4) { Payment::Invoice { days: i } } else { Payment::Card }))
        .collect();
    let ids = db.insert_many(&docs[..30]).unwrap();
    assert_eq!(ids, (1..=30).collect::<Vec<u64>>());
    for d in &docs[30..] {
        db.insert(d).unwrap();
    }
    assert!(db.upsert(5, &ship(99, Payment::Card)).unwrap());
    assert!(db
        .update::<Shipment>(6, |s| {
            s.tags.push("more".into());
            Ok(())
        })
        .unwrap());
    // The same documents through Value.
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("mirror").unwrap();
    for spec in Shipment::indexes() {
        c.create_index(spec).unwrap();
    }
    for d in &docs {
        c.insert_versioned(&obj_engine::doc::serde_value::to_value(d).unwrap(), 4).unwrap();
    }
    let mut five = ship(99, Payment::Card);
    c.upsert_versioned(5, &obj_engine::doc::serde_value::to_value(&five).unwrap(), 4).unwrap();
    let mut six = docs[5].clone();
    six.tags.push("more".into());
    c.upsert_versioned(6, &obj_engine::doc::serde_value::to_value(&six).unwrap(), 4).unwrap();
    drop(c);
    w.commit().unwrap();
    // A duplicate email anywhere in a batch: nothing of it remains.
    five.email = "s1@x".into();
    assert!(db.insert_many(&[ship(100, Payment::Card), five]).is_err());
    let rx = db.begin_read().unwrap();
    let (a, b) = (rx.collection("shipments").unwrap(), rx.collection("mirror").unwrap());
    assert_eq!(a.count().unwrap(), 40);
    for id in 1..=40 {
        assert_eq!(a.get_stored(id).unwrap(), b.get_stored(id).unwrap(), "document {id}");
    }
    assert_eq!(a.next_id(), 41);
    for (x, y) in
        [("$index/shipments/email", "$index/mirror/email"), ("$index/shipments/city", "$index/mirror/city")]
    {
        let (t1, t2) = (rx.open_tree(x).unwrap(), rx.open_tree(y).unwrap());
        let e1: Vec<_> =
            rx.range(&t1, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(|e| e.unwrap()).collect();
        let e2: Vec<_> =
            rx.range(&t2, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(e1, e2, "{x}");
    }
    drop(rx);
    assert_eq!(db.get::<Shipment>(6).unwrap().unwrap(), six);
    db.integrity_check().unwrap();
}

/// A JSON array is parsed whole and its count checked before anything is
/// written, then inserted all or nothing.
#[test]
fn json_arrays_are_all_or_nothing() {
    let (_d, db) = open();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("b").unwrap();
    c.create_index(IndexSpec::unique("email", "email").unwrap()).unwrap();
    let any = |_: usize| Ok(());
    let ids =
        c.insert_json_many(br#"[{"email":"a"},{"email":"b","x":[1,2]},{"email":"c"}]"#, 2, any).unwrap();
    assert_eq!(ids, vec![1, 2, 3]);
    // The general path (a $ form) behaves the same.
    assert_eq!(c.insert_json_many(br#"[{"email":"d","t":{"$ts":5}}]"#, 2, any).unwrap(), vec![4]);
    // A unique violation in the middle: nothing of the array remains.
    let e = c.insert_json_many(br#"[{"email":"e","new_name":1},{"email":"a"},{"email":"f"}]"#, 2, any);
    assert!(matches!(e, Err(Error::Constraint(_))));
    assert_eq!(c.count().unwrap(), 4);
    assert_eq!(c.read().next_id(), 5);
    // The count check sees the whole array first and may refuse it, on
    // both paths; nothing is written then.
    for text in
        [&br#"[{"email":"g","late_name":1},{"email":"h"}]"#[..], br#"[{"email":"g","t":{"$ts":1}},{}]"#]
    {
        let seen = std::cell::Cell::new(0);
        let refuse = |n: usize| {
            seen.set(n);
            Err(Error::invalid("too many"))
        };
        assert!(matches!(c.insert_json_many(text, 0, refuse), Err(Error::InvalidArgument(_))));
        assert_eq!(seen.get(), 2);
    }
    assert_eq!(c.count().unwrap(), 4);
    for bad in [&b"{}"[..], b"[{},1]", b"[{\"a\":1},", b"[{\"a\":1,\"a\":2}]"] {
        let e = c.insert_json_many(bad, 0, any).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
    assert!(c.insert_json_many(b"[]", 0, any).unwrap().is_empty());
    // Names that only refused arrays used are not kept.
    assert_eq!(c.insert_json_many(br#"[{"email":"z"}]"#, 0, any).unwrap(), vec![5]);
    drop(c);
    w.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("b").unwrap();
    assert_eq!(c.get_versioned(2).unwrap().unwrap(), (2, j(r#"{"email":"b","x":[1,2]}"#)));
    let names = rx.open_tree("$names/b").unwrap();
    let stored: Vec<String> = rx
        .range(&names, Bound::Unbounded, Bound::Unbounded, false)
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().1).unwrap())
        .collect();
    assert!(!stored.iter().any(|n| n == "late_name"), "{stored:?}");
    drop(rx);
    db.integrity_check().unwrap();
}

/// A JSON array of at least `PARALLEL_ENCODE_BYTES` is encoded on a second
/// thread while this one stores it: the same documents, dictionary and
/// index entries as the same documents sent in small arrays, and a failure
/// late in it (a unique violation, the running count refused, an element
/// that is not an object, a missing `]`) leaves nothing of it.
#[test]
fn large_json_arrays_are_stored_while_encoded() {
    use obj_engine::doc::collection::PARALLEL_ENCODE_BYTES;
    // New field names appear all along the array, not only in its first run.
    let doc = |i: usize| {
        let late = if i % 1000 == 999 { format!(r#","late{i}":[{i},"x"]"#) } else { String::new() };
        format!(r#"{{"email":"e{i}","n":{i},"pad":"{}"{late}}}"#, "p".repeat(i % 300))
    };
    let array = |docs: &mut dyn Iterator<Item = String>| format!("[{}]", docs.collect::<Vec<_>>().join(","));
    const N: usize = 12_000;
    let big = array(&mut (0..N).map(doc));
    assert!(big.len() >= PARALLEL_ENCODE_BYTES, "{} bytes", big.len());
    let (_d, db) = open();
    let mut w = db.begin_write().unwrap();
    for name in ["small", "big"] {
        let mut c = w.collection_mut(name).unwrap();
        c.create_index(IndexSpec::unique("email", "email").unwrap()).unwrap();
        c.create_index(IndexSpec::new("n", IndexKind::Standard, &["n"]).unwrap()).unwrap();
    }
    let any = |_: usize| Ok(());
    let mut small = w.collection_mut("small").unwrap();
    for k in (0..N).step_by(500) {
        let part = array(&mut (k..k + 500).map(doc));
        assert!(part.len() < PARALLEL_ENCODE_BYTES);
        small.insert_json_many(part.as_bytes(), 3, any).unwrap();
    }
    drop(small);
    let mut c = w.collection_mut("big").unwrap();
    assert_eq!(c.insert_json_many(big.as_bytes(), 3, any).unwrap(), (1..=N as u64).collect::<Vec<_>>());
    let more = |first: usize, last: &str| {
        let mut docs = (first..first + 9_000).map(doc).collect::<Vec<_>>();
        docs.push(last.to_owned());
        format!("[{}]", docs.join(","))
    };
    for (text, what) in [
        (more(N, r#"{"email":"e7"}"#), "a unique violation"),
        (more(N, "1"), "an element that is not an object"),
        (more(N, "{}").trim_end_matches(']').to_owned(), "a missing ]"),
        (more(N, r#"{"a":1,"a":2}"#), "a repeated key"),
    ] {
        assert!(text.len() >= PARALLEL_ENCODE_BYTES);
        let e = c.insert_json_many(text.as_bytes(), 0, any).unwrap_err();
        assert!(matches!(e, Error::Constraint(_) | Error::InvalidArgument(_)), "{what}: {e:?}");
        assert_eq!((c.count().unwrap(), c.read().next_id()), (N as u64, N as u64 + 1), "{what}");
    }
    let seen = std::cell::Cell::new(0);
    let at_most = |n: usize| {
        seen.set(seen.get().max(n));
        if n > 5_000 {
            Err(Error::invalid("too many"))
        } else {
            Ok(())
        }
    };
    let e = c.insert_json_many(more(N, "{}").as_bytes(), 0, at_most).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(seen.get() > 5_000 && seen.get() < 9_001, "{}", seen.get());
    assert_eq!(c.count().unwrap(), N as u64);
    // A special form anywhere sends the whole array down the general path.
    let special = more(N, r#"{"email":"t","t":{"$ts":5}}"#);
    let ids = c.insert_json_many(special.as_bytes(), 0, any).unwrap();
    assert_eq!((ids[0], ids.len()), (N as u64 + 1, 9_001));
    drop(c);
    w.commit().unwrap();
    db.integrity_check().unwrap();

    let rx = db.begin_read().unwrap();
    let (s, b) = (rx.collection("small").unwrap(), rx.collection("big").unwrap());
    for id in 1..=N as u64 {
        assert_eq!(b.get_versioned(id).unwrap(), s.get_versioned(id).unwrap(), "document {id}");
    }
    assert_eq!(b.get(N as u64 + 9_001).unwrap(), Some(j(r#"{"email":"t","t":{"$ts":5}}"#)));
    let entries = |tree: &str| -> Vec<_> {
        let t = rx.open_tree(tree).unwrap();
        rx.range(&t, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(|e| e.unwrap()).collect()
    };
    // Names got ids in the same order both ways (the big array's first
    // 12,000 documents brought every name the small ones did).
    let names = entries("$names/small");
    assert_eq!(entries("$names/big")[..names.len()], names[..]);
    // The first N documents' index entries are the same both ways.
    for index in ["email", "n"] {
        let mut big = entries(&format!("$index/big/{index}"));
        // (A unique entry's value is the id; a standard entry's key ends with it.)
        let id_of = |k: &[u8], v: &[u8]| {
            u64::from_be_bytes(if v.is_empty() { &k[k.len() - 8..] } else { v }.try_into().unwrap())
        };
        big.retain(|(k, v)| id_of(k, v) <= N as u64);
        assert!(big == entries(&format!("$index/small/{index}")), "index {index}");
    }
}

/// `create_collection_from_json` creates the collection only once the
/// whole array is encoded, counted and known to fit: a refused array (or
/// an empty one) leaves the transaction without a write, and an accepted
/// one stores what `insert_json_many` on a new collection stores.
#[test]
fn a_new_collection_from_json_is_created_only_for_an_array_that_fits() {
    let (_d, db) = open();
    let pages = || {
        let st = db.stat().unwrap();
        (st.page_count, st.wal_frames)
    };
    let before = pages();
    let any = |_: usize| Ok(());
    let mut w = db.begin_write().unwrap();
    let refuse = |n: usize| if n > 1 { Err(Error::invalid("out_cap")) } else { Ok(()) };
    for (text, check) in [
        (&br#"[{"a":1},2]"#[..], &any as &dyn Fn(usize) -> obj_engine::Result<()>),
        (br#"[{"a":1},{"a":2}]"#, &refuse),
        (br#"[{"a":1},{"a":1,"a":2}]"#, &any),
    ] {
        let r = w.create_collection_from_json("fresh", text, 0, check);
        assert!(matches!(r, Ok(None) | Err(Error::InvalidArgument(_))), "{r:?}");
    }
    assert_eq!(w.create_collection_from_json("fresh", b"[]", 0, any).unwrap(), Some(vec![]));
    // Special forms need the general path: nothing is done here.
    assert_eq!(w.create_collection_from_json("fresh", br#"[{"t":{"$ts":1}}]"#, 0, any).unwrap(), None);
    assert!(matches!(w.collection("fresh"), Err(Error::NotFound(_))));
    w.commit().unwrap();
    assert_eq!(pages(), before, "refused arrays wrote nothing");

    let text = br#"[{"a":1,"b":[1,{"c":"x"}]},{"d":null,"a":2},{}]"#;
    let mut w = db.begin_write().unwrap();
    assert_eq!(w.create_collection_from_json("fresh", text, 4, any).unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(w.create_collection_from_json("fresh", text, 4, any).unwrap(), None, "exists now");
    w.collection_mut("made").unwrap().insert_json_many(text, 4, any).unwrap();
    w.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let (fresh, made) = (rx.collection("fresh").unwrap(), rx.collection("made").unwrap());
    for id in 1..=3 {
        assert_eq!(fresh.get_versioned(id).unwrap(), made.get_versioned(id).unwrap());
    }
    let names = |t: &str| -> Vec<_> {
        let t = rx.open_tree(t).unwrap();
        rx.range(&t, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(|e| e.unwrap()).collect()
    };
    assert_eq!(names("$names/fresh"), names("$names/made"));
    drop(rx);
    db.integrity_check().unwrap();
}

#[test]
fn detached_collection_is_reused_only_while_unchanged() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.create_index(IndexSpec::unique("by_x", "x").unwrap()).unwrap();
    c.insert(&j(r#"{"x":1}"#)).unwrap();
    let d = c.detach();
    assert_eq!(d.name(), "c");
    assert!(d.is_current(&tx));
    // Unrelated writes (key-value) keep it valid.
    tx.kv_put("ns", b"k", b"v").unwrap();
    let mut c = tx.reattach(d).expect("nothing changed");
    assert!(matches!(c.insert(&j(r#"{"x":1}"#)), Err(Error::Constraint(_))));
    assert_eq!(c.insert(&j(r#"{"x":2,"y":3}"#)).unwrap(), 2);
    let d = c.detach();
    // Opening any collection handle (here: dropping the index) makes it stale.
    tx.collection_mut("c").unwrap().drop_index("by_x").unwrap();
    assert!(!d.is_current(&tx));
    assert!(tx.reattach(d).is_none());
    let d = tx.collection_mut("c").unwrap().detach();
    tx.drop_collection("c").unwrap();
    assert!(tx.reattach(d).is_none());
    let d = tx.collection_mut("c").unwrap().detach();
    tx.commit().unwrap();
    // Another transaction never takes it.
    let mut tx = db.begin_write().unwrap();
    assert!(tx.reattach(d).is_none());
    let d = tx.collection_mut("c").unwrap().detach();
    let mut c = tx.reattach(d).unwrap();
    assert_eq!(c.insert(&j(r#"{"x":1}"#)).unwrap(), 1);
    drop(c);
    tx.commit().unwrap();
    db.integrity_check().unwrap();
}

#[test]
fn two_sided_range_on_a_top_level_field_scans_only_its_interval_and_the_lists() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("n").unwrap();
    let mut docs = Vec::new();
    for i in 0..200i64 {
        docs.push(j(&format!(r#"{{"x": {i}}}"#)));
    }
    // Lists whose elements satisfy the two bounds separately, together, or not at all.
    for text in
        [r#"{"x": [1, 150]}"#, r#"{"x": [50.5]}"#, r#"{"x": [1, 2]}"#, r#"{"x": []}"#, r#"{"x": "60"}"#]
    {
        docs.push(j(text));
    }
    for d in &docs {
        c.insert(d).unwrap();
    }
    drop(c);
    tx.commit().unwrap();
    db.create_index("n", IndexSpec::standard("by_x", "x").unwrap()).unwrap();

    let p = || "x".parse::<obj_engine::query::FieldPath>().unwrap();
    let mut q = QuerySpec::new("n");
    q.filter = obj_engine::Filter::And(vec![
        obj_engine::Filter::Ge(p(), Value::Int(50)),
        obj_engine::Filter::Lt(p(), Value::Float(53.0)),
    ]);
    let rx = db.begin_read().unwrap();
    let plan = rx.collection("n").unwrap().explain(&q).unwrap();
    assert!(plan.contains("INDEX by_x") && plan.contains("2 range(s)"), "{plan}");
    drop(rx);
    let want: Vec<u64> =
        (1..=docs.len() as u64).filter(|&id| q.filter.eval(&docs[id as usize - 1])).collect();
    // 50, 51, 52, [1, 150] and [50.5]; not [1, 2], [] or "60".
    assert_eq!(want.len(), 5);
    let mut got = ids(&db, &q);
    got.sort();
    assert_eq!(got, want);

    // Disjoint bounds: only lists can match.
    q.filter = obj_engine::Filter::And(vec![
        obj_engine::Filter::Gt(p(), Value::Int(120)),
        obj_engine::Filter::Le(p(), Value::Int(10)),
    ]);
    assert_eq!(ids(&db, &q), vec![201]);
}

/// The JSON read paths (written straight from the stored encoding) give
/// the bytes of `write_json` on the decoded documents: streamed, sorted
/// (buffered, already decoded), raw, by id and by unique key.
#[test]
fn json_read_paths_match_write_json_of_decoded_documents() {
    use obj_engine::doc::json::to_json_vec;
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.create_index(IndexSpec::unique("by_k", "k").unwrap()).unwrap();
    let docs = [
        r#"{"k":3,"$$price":1.5,"b":{"$bytes":"AAEC"},"t":{"$ts":-5,"$tz":3600},"n":null,"l":[1,18446744073709551615,-0.0,"é\n"]}"#,
        r#"{"k":1,"f":{"$f64":"nan"},"g":{"$f64":"-inf"},"deep":{"a":{"b":[{"c":true}]}}}"#,
        r#"{"k":2,"s":"\"quoted\"","$$$x":[]}"#,
    ];
    for (i, d) in docs.iter().enumerate() {
        c.insert_versioned(&j(d), i as u32 + 4).unwrap();
    }
    drop(c);
    let rid = tx.raw_collection_mut("raw").unwrap().insert_raw(b"\x00opaque\xff").unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    for spec in [
        r#"{"collection":"c"}"#,
        r#"{"collection":"c","sort":[{"field":"k","order":"asc"}]}"#,
        r#"{"collection":"c","filter":{"ge":["k",2]},"offset":1}"#,
    ] {
        let spec = QuerySpec::from_json(spec).unwrap();
        let mut old = c.query(&spec).unwrap();
        let want: Vec<(u64, u32, Vec<u8>)> = std::iter::from_fn(|| old.next_versioned())
            .map(|r| r.unwrap())
            .map(|(id, version, doc)| (id, version, to_json_vec(&doc)))
            .collect();
        let mut q = c.query(&spec).unwrap();
        let mut got = Vec::new();
        let mut out = Vec::new();
        while let Some(r) = q.next_json(&mut out) {
            let (id, version) = r.unwrap();
            got.push((id, version, std::mem::take(&mut out)));
        }
        assert!(!want.is_empty());
        assert_eq!(got, want, "{spec:?}");
    }
    for id in 1..=4 {
        let mut out = b"x".to_vec();
        let got = c.get_json(id, &mut out).unwrap();
        match c.get_versioned(id).unwrap() {
            Some((version, doc)) => {
                assert_eq!(got, Some(version));
                assert_eq!(out[1..], to_json_vec(&doc));
            }
            None => assert_eq!((got, out), (None, b"x".to_vec())),
        }
    }
    let mut out = Vec::new();
    assert_eq!(c.find_unique_json("by_k", &[Value::Int(2)], &mut out).unwrap(), Some((3, 6)));
    assert_eq!(out, to_json_vec(&c.get(3).unwrap().unwrap()));
    assert_eq!(c.find_unique_json("by_k", &[Value::Int(9)], &mut out).unwrap(), None);
    let raw = rx.collection("raw").unwrap();
    let mut q = raw.query(&QuerySpec::new("raw")).unwrap();
    let mut out = Vec::new();
    assert_eq!(q.next_json(&mut out).unwrap().unwrap(), (rid, 0));
    assert_eq!(out, to_json_vec(&Value::Bytes(b"\x00opaque\xff".to_vec())));
    assert!(raw.get_json(rid, &mut Vec::new()).is_err(), "a raw collection has no structured documents");
}

/// The id space ends at `u64::MAX - 1` (the next id must exist): a write
/// past it is refused before anything is written, so the transaction can
/// still commit the rest and the collection stays readable.
#[test]
fn exhausted_id_space_is_refused_without_a_trace() {
    let (_dir, db) = open();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    c.upsert(u64::MAX - 1, &j(r#"{"a":1}"#)).unwrap();
    assert!(matches!(c.insert(&j(r#"{"a":2}"#)), Err(Error::InvalidArgument(m)) if m.contains("exhausted")));
    // A caller's id past the largest is refused as such, whether or not
    // the ids are used up.
    assert!(
        matches!(c.upsert(u64::MAX, &j(r#"{"a":3}"#)), Err(Error::InvalidArgument(m)) if m.contains("is reserved"))
    );
    drop(c);
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("d").unwrap();
    let refused = c.upsert(u64::MAX, &j(r#"{"a":4}"#));
    assert!(matches!(&refused, Err(Error::InvalidArgument(m)) if m.contains("is reserved")), "{refused:?}");
    drop(c);
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    assert_eq!(c.count().unwrap(), 1);
    assert!(c.get(u64::MAX).unwrap().is_none());
    drop(r);
    db.integrity_check().unwrap();
}

/// `count_only` asks for a number: `query` refuses it rather than ignore
/// it, and `query_count` answers it (after offset and limit).
#[test]
fn count_only_is_answered_by_query_count() {
    let (_dir, db) = open();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    for i in 0..5 {
        c.insert(&j(&format!(r#"{{"n":{i}}}"#))).unwrap();
    }
    drop(c);
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    let spec =
        QuerySpec::from_json(r#"{"collection":"c","filter":{"ge":["n",1]},"count_only":true}"#).unwrap();
    assert!(matches!(c.query(&spec), Err(Error::InvalidArgument(m)) if m.contains("query_count")));
    assert_eq!(c.query_count(&spec).unwrap(), 4);
    let limited = QuerySpec { limit: Some(2), count_only: false, ..spec };
    assert_eq!(c.query_count(&limited).unwrap(), 2);
}

/// A sort on an indexed field reads the index in order instead of sorting
/// in memory, so it is not bounded by the sort buffer: with a filter that
/// makes the index eligible, and with none when every document has an
/// entry. A list value makes the index multi-valued for good: sorts on it
/// go back to memory (and to the bound), with the same answers.
#[test]
fn sorts_on_single_valued_indexes_need_no_buffer() {
    let (_dir, db) = open();
    db.create_index("c", IndexSpec::unique("by_e", "e").unwrap()).unwrap();
    db.create_index("c", IndexSpec::standard("by_n", "n").unwrap()).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    for i in 0..300u64 {
        c.insert(&j(&format!(r#"{{"e":"user{:03}","n":{}}}"#, (i * 7) % 300, i % 10))).unwrap();
    }
    drop(c);
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    let run = |q: &str| -> Result<Vec<u64>, Error> {
        c.query(&QuerySpec::from_json(q).unwrap())?.map(|x| x.map(|(id, _)| id)).collect()
    };
    let sorted = r#"{"collection":"c","filter":{"ge":["e",""]},"sort":["e"],"sort_buffer_limit":10}"#;
    assert!(!c.explain(&QuerySpec::from_json(sorted).unwrap()).unwrap().contains("SORT"));
    let ids = run(sorted).unwrap();
    assert_eq!(ids.len(), 300);
    let emails: Vec<String> = ids
        .iter()
        .map(|id| {
            c.get(*id)
                .unwrap()
                .unwrap()
                .get_field_path(&"e".parse().unwrap())
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(emails.windows(2).all(|w| w[0] < w[1]));
    // No filter: the index holds every document, read backwards.
    let all_desc = r#"{"collection":"c","sort":[{"field":"e","order":"desc"}],"sort_buffer_limit":10}"#;
    let plan = c.explain(&QuerySpec::from_json(all_desc).unwrap()).unwrap();
    assert!(plan.contains("INDEX by_e") && plan.contains("reverse") && !plan.contains("SORT"), "{plan}");
    assert_eq!(run(all_desc).unwrap(), ids.iter().rev().copied().collect::<Vec<_>>());
    // Equal values: ties in id order, descending in a descending sort.
    let ties =
        run(r#"{"collection":"c","filter":{"eq":["n",3]},"sort":[{"field":"n","order":"desc"}]}"#).unwrap();
    assert_eq!(ties, (1..=300u64).filter(|id| (id - 1) % 10 == 3).rev().collect::<Vec<_>>());
    drop(c);
    drop(r);

    let mut w = db.begin_write().unwrap();
    w.collection_mut("c").unwrap().insert(&j(r#"{"e":["a","b"],"n":1}"#)).unwrap();
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    let q = QuerySpec::from_json(sorted).unwrap();
    assert!(c.explain(&q).unwrap().contains("SORT"));
    let over: Result<Vec<_>, Error> = c.query(&q).unwrap().collect();
    assert!(matches!(over, Err(Error::InvalidArgument(m)) if m.contains("sort_buffer_limit")));
}

/// A write refused after its document was found multi-valued (here: an
/// index key too long) changes nothing, the flag included; the next list
/// value in the same transaction still clears it, so the sort is right.
#[test]
fn a_refused_write_leaves_the_single_valued_flag_as_saved() {
    let (_dir, db) = open();
    db.create_index("c", IndexSpec::standard("by_s", "s").unwrap()).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    c.insert(&j(r#"{"s":5}"#)).unwrap();
    let long = format!(r#"{{"s":[1,"{}"]}}"#, "x".repeat(3000));
    assert!(matches!(c.insert(&j(&long)), Err(Error::InvalidArgument(m)) if m.contains("too long")));
    c.insert(&j(r#"{"s":[1]}"#)).unwrap();
    drop(c);
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    let q = QuerySpec::from_json(r#"{"collection":"c","filter":{"gt":["s",0]},"sort":["s"]}"#).unwrap();
    assert!(c.explain(&q).unwrap().contains("SORT"), "a list value makes the index multi-valued");
    let ids: Vec<u64> = c.query(&q).unwrap().map(|x| x.unwrap().0).collect();
    assert_eq!(ids, vec![1, 2], "5 sorts before the list [1]");
}

/// Users and the same collection declared again with its unique index on
/// another field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserByLogin {
    name: String,
    email: String,
    age: u32,
}

impl Document for UserByLogin {
    const COLLECTION: &'static str = "users";
    const VERSION: u32 = 3;
    fn indexes() -> Vec<IndexSpec> {
        vec![IndexSpec::unique("by_email", "name").unwrap(), IndexSpec::standard("by_age", "age").unwrap()]
    }
}

#[test]
fn a_changed_index_declaration_is_refused_not_ignored() {
    let (_d, db) = open();
    db.insert(&user("ann", 30)).unwrap();
    let r = db.insert(&UserByLogin { name: "ann".into(), email: "other@x".into(), age: 1 });
    assert!(
        matches!(r, Err(Error::InvalidArgument(ref m)) if m.contains("by_email") && m.contains("drop the index")),
        "{r:?}"
    );
    assert_eq!(db.all::<User>().unwrap().len(), 1, "the refused insert left no trace");
}

/// A type that declares two indexes under one name (here a unique and a
/// standard one) is told so, before its collection is created, rather
/// than asked to drop an index that only its own declaration clashes with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TwiceNamed {
    email: String,
    age: u32,
}

impl Document for TwiceNamed {
    const COLLECTION: &'static str = "twice";
    fn indexes() -> Vec<IndexSpec> {
        vec![IndexSpec::unique("by", "email").unwrap(), IndexSpec::standard("by", "age").unwrap()]
    }
}

#[test]
fn two_indexes_declared_under_one_name_are_refused() {
    let (_d, db) = open();
    let doc = TwiceNamed { email: "a@x".into(), age: 3 };
    for r in [db.insert(&doc).map(|_| ()), db.insert_many(std::slice::from_ref(&doc)).map(|_| ())] {
        assert!(
            matches!(r, Err(Error::InvalidArgument(ref m))
                if m.contains("TwiceNamed declares two indexes named \"by\"") && !m.contains("drop")),
            "{r:?}"
        );
    }
    assert!(db.begin_read().unwrap().collection("twice").is_err(), "no collection was created");
}

#[test]
fn a_failed_index_build_in_a_transaction_leaves_no_index() {
    let (_d, db) = open();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    for v in [1, 2, 1] {
        c.insert(&from_json_str(&format!(r#"{{"v":{v}}}"#)).unwrap()).unwrap();
    }
    let r = c.create_index(IndexSpec::unique("uv", "v").unwrap());
    assert!(matches!(r, Err(Error::Constraint(_))), "{r:?}");
    assert!(c.read().indexes().is_empty(), "{:?}", c.read().indexes());
    tx.commit().unwrap();
    db.integrity_check().unwrap();
}

/// An index build cut short (here by a failed sync, then a crash) stays
/// `building`; creating it again resumes it, and a typed collection that
/// declares it finishes it.
#[test]
fn an_interrupted_index_build_resumes() {
    use obj_engine::storage::sim::{Fault, FaultKind, FaultOp, SimVfs};
    use obj_engine::{IndexStatus, Options};
    let vfs = SimVfs::new();
    let options = || Options { vfs: Some(std::sync::Arc::new(vfs.clone())), ..Options::default() };
    let db = Db::open_with("/i/db.obj", options()).unwrap();
    let users: Vec<User> = (0..5000).map(|i| user(&format!("u{i}"), i % 90)).collect();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("people").unwrap();
    for u in &users {
        c.insert(&obj_engine::doc::serde_value::to_value(u).unwrap()).unwrap();
    }
    tx.commit().unwrap();
    let spec = IndexSpec::standard("by_age", "age").unwrap();
    // Each batch commits with one sync: the third batch's fails.
    vfs.set_fault(Fault { op: FaultOp::Sync, after: 3, kind: FaultKind::Eio, persistent: false });
    assert!(db.create_index("people", spec.clone()).is_err());
    vfs.clear_faults();
    drop(db);
    vfs.crash();
    let db = Db::open_with("/i/db.obj", options()).unwrap();
    let status = |db: &Db| {
        let rx = db.begin_read().unwrap();
        let c = rx.collection("people").unwrap();
        c.indexes().iter().find(|i| i.spec.name == "by_age").map(|i| i.status)
    };
    assert_eq!(status(&db), Some(IndexStatus::Building));
    db.create_index("people", spec.clone()).unwrap();
    assert_eq!(status(&db), Some(IndexStatus::Ready));
    db.integrity_check().unwrap();
    // The same index again does nothing (as in C and Python); another
    // index under the name is refused.
    db.create_index("people", spec).unwrap();
    assert_eq!(status(&db), Some(IndexStatus::Ready));
    let r = db.create_index("people", IndexSpec::unique("by_age", "age").unwrap());
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "another index of the name: {r:?}");
}

#[test]
fn reserved_tree_names_are_refused_to_the_tree_api() {
    let (_d, db) = open();
    db.insert(&user("ann", 30)).unwrap();
    let mut tx = db.begin_write().unwrap();
    let names = tx.list_trees().unwrap();
    let docs = names.iter().find(|n| n.starts_with("$docs/")).expect("a documents tree").clone();
    let reserved = |r: Result<(), Error>| {
        assert!(matches!(r, Err(Error::InvalidArgument(ref m)) if m.contains("reserved")), "{r:?}")
    };
    reserved(tx.drop_tree(&docs));
    reserved(tx.create_tree("$collections").map(|_| ()));
    reserved(tx.create_tree("$new").map(|_| ()));
    // Reading is allowed, writing through the handle is not.
    let t = tx.open_tree(&docs).unwrap();
    assert_eq!(tx.count(&t).unwrap(), 1);
    reserved(tx.insert(&t, b"k", b"v").map(|_| ()));
    reserved(tx.delete(&t, b"k").map(|_| ()));
    reserved(tx.clear(&t));
    tx.commit().unwrap();
    assert_eq!(db.all::<User>().unwrap().len(), 1);
    db.integrity_check().unwrap();
}

#[test]
fn deleting_or_updating_in_a_missing_collection_creates_nothing() {
    let (_d, db) = open();
    assert!(!db.delete::<User>(1).unwrap());
    assert!(!db.update::<User>(1, |_| Ok(())).unwrap());
    assert!(db.begin_read().unwrap().list_collections().unwrap().is_empty());
    // A query for another collection is refused whether or not this one exists.
    let r = db.query::<User>(&QuerySpec::new("other"));
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    db.insert(&user("ann", 1)).unwrap();
    let r = db.query::<User>(&QuerySpec::new("other"));
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

// An index built over existing documents covers the document at id 0 (an
// upsert may store one there): the build starts at id 0, not 1.

fn docs_at_0_and_1(db: &Db, a: &str, b: &str) {
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.upsert(0, &j(a)).unwrap();
    c.upsert(1, &j(b)).unwrap();
    tx.commit().unwrap();
}

/// Builds index `spec` of collection "c" in batches (`Db::create_index`)
/// or in one transaction, which commits even when the build failed.
fn build_index(db: &Db, spec: IndexSpec, batched: bool) -> Result<(), Error> {
    if batched {
        return db.create_index("c", spec).map(|_| ());
    }
    let mut tx = db.begin_write().unwrap();
    let built = tx.collection_mut("c").unwrap().create_index(spec);
    tx.commit().unwrap();
    built
}

#[test]
fn a_standard_index_built_later_has_the_entry_of_document_0() {
    for batched in [false, true] {
        let (_d, db) = open();
        docs_at_0_and_1(&db, r#"{"k":5}"#, r#"{"k":6}"#);
        build_index(&db, IndexSpec::standard("by_k", "k").unwrap(), batched).unwrap();
        db.integrity_check().unwrap();
    }
}

#[test]
fn a_unique_index_built_later_sees_the_value_of_document_0() {
    for batched in [false, true] {
        let (_d, db) = open();
        docs_at_0_and_1(&db, r#"{"u":1}"#, r#"{"u":1}"#);
        let err = build_index(&db, IndexSpec::unique("by_u", "u").unwrap(), batched).unwrap_err();
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

//! Documents, collections, key-value namespaces, secondary indexes and
//! queries through the public Rust API.

use std::ops::Bound;

use obj_engine::doc::json::from_json_str;
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
    assert!(rx.collection("users").unwrap().explain(&q(35)).unwrap().contains("INDEX by_age"));
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

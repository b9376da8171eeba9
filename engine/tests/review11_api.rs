//! Review 11 (Rust API): a small order-keeping application written the way
//! a new user writes it, from the public API and its rustdoc only, plus one
//! test per gap that review found.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use obj_engine::doc::value::Timestamp;
use obj_engine::query::{FieldPath, SortKey};
use obj_engine::{
    Db, Document, EncryptionKey, Error, Filter, ImportOptions, IndexKind, IndexSpec, KdfParams, Options,
    QuerySpec, RestoreOptions, SyncMode, Value,
};
use serde::{Deserialize, Serialize};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
    zip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tier {
    Basic,
    Gold { since: Timestamp },
    Custom(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Customer {
    email: String,
    name: String,
    address: Address,
    tier: Tier,
    tags: Vec<String>,
    prefs: HashMap<String, bool>,
}

impl Document for Customer {
    const COLLECTION: &'static str = "customers";
    const VERSION: u32 = 1;
    fn indexes() -> Vec<IndexSpec> {
        vec![
            IndexSpec::unique("by_email", "email").unwrap(),
            IndexSpec::standard("by_city", "address.city").unwrap(),
            IndexSpec::new("by_tag", IndexKind::Multi, &["tags"]).unwrap(),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Status {
    Pending,
    Shipped { carrier: String },
    Cancelled(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    qty: u32,
    price: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    number: u64,
    customer: u64,
    status: Status,
    region: String,
    total: f64,
    lines: Vec<Line>,
    totals_by_sku: BTreeMap<String, f64>,
    placed: Timestamp,
    note: Option<String>,
    big: u64,
    small: i64,
}

impl Document for Order {
    const COLLECTION: &'static str = "orders";
    fn indexes() -> Vec<IndexSpec> {
        vec![
            IndexSpec::unique("by_number", "number").unwrap(),
            IndexSpec::new("by_region_total", IndexKind::Standard, &["region", "total"]).unwrap(),
            IndexSpec::new("by_sku", IndexKind::Multi, &["lines.sku"]).unwrap(),
            IndexSpec::standard("by_customer", "customer").unwrap(),
        ]
    }
}

fn ts(micros: i64) -> Timestamp {
    Timestamp { micros, offset_secs: Some(3600) }
}

fn customer(i: u64) -> Customer {
    Customer {
        email: format!("c{i}@example.com"),
        name: format!("Customer {i}"),
        address: Address {
            street: format!("{i} Main St"),
            city: ["Oslo", "Lyon", "Kyoto"][i as usize % 3].into(),
            zip: i.is_multiple_of(2).then(|| format!("{:05}", i)),
        },
        tier: match i % 3 {
            0 => Tier::Basic,
            1 => Tier::Gold { since: ts(i as i64 * 1_000_000) },
            _ => Tier::Custom(format!("t{i}")),
        },
        tags: (0..i % 4).map(|t| format!("tag{t}")).collect(),
        prefs: [("mail".to_string(), i.is_multiple_of(2))].into_iter().collect(),
    }
}

fn order(n: u64, customer: u64) -> Order {
    let lines: Vec<Line> = (0..1 + n % 3)
        .map(|k| Line { sku: format!("sku{}", (n + k) % 5), qty: (k + 1) as u32, price: 9.5 + k as f64 })
        .collect();
    Order {
        number: 1000 + n,
        customer,
        status: match n % 3 {
            0 => Status::Pending,
            1 => Status::Shipped { carrier: "DHL".into() },
            _ => Status::Cancelled("changed mind".into()),
        },
        region: ["north", "south"][n as usize % 2].into(),
        total: lines.iter().map(|l| l.price * l.qty as f64).sum(),
        totals_by_sku: lines.iter().map(|l| (l.sku.clone(), l.price * l.qty as f64)).collect(),
        lines,
        placed: ts(1_700_000_000_000_000 + n as i64),
        note: n.is_multiple_of(2).then(|| "leave at door".into()),
        big: u64::MAX - n,
        small: i64::MIN + n as i64,
    }
}

fn fp(s: &str) -> FieldPath {
    FieldPath::parse(s).unwrap()
}

/// The whole application on today's API: typed CRUD, indexes, queries from
/// the struct form and from JSON, kv metadata beside documents, errors.
#[test]
fn order_app_end_to_end() {
    let d = tmp();
    let path = d.path().join("shop.obj");
    let db = Db::open(&path).unwrap();

    // Customers through the Db convenience methods.
    let ids = db.insert_many(&(0..9).map(customer).collect::<Vec<_>>()).unwrap();
    assert_eq!(ids, (1..=9).collect::<Vec<_>>());
    let c1: Customer = db.get(ids[1]).unwrap().unwrap();
    assert_eq!(c1, customer(1));
    assert_eq!(db.get::<Customer>(999).unwrap(), None);
    let many = db.get_many::<Customer>(&[ids[0], 999, ids[2]]).unwrap();
    assert_eq!(many, vec![Some(customer(0)), None, Some(customer(2))]);

    // Orders.
    let mut order_ids = Vec::new();
    for n in 0..30 {
        order_ids.push(db.insert(&order(n, ids[n as usize % 9])).unwrap());
    }
    let o: Order = db.get(order_ids[7]).unwrap().unwrap();
    assert_eq!(o, order(7, ids[7]));
    assert_eq!(o.big, u64::MAX - 7);
    assert_eq!(o.small, i64::MIN + 7);

    // Atomic read-modify-write.
    assert!(db
        .update::<Order>(order_ids[0], |o| {
            o.status = Status::Shipped { carrier: "UPS".into() };
            Ok(())
        })
        .unwrap());
    assert!(!db.update::<Order>(12345, |_| Ok(())).unwrap());
    // An error from the closure leaves the document untouched.
    let err = db.update::<Order>(order_ids[1], |o| {
        o.total = -1.0;
        Err(Error::invalid("refused by the application"))
    });
    assert!(matches!(err, Err(Error::InvalidArgument(_))));
    assert_eq!(db.get::<Order>(order_ids[1]).unwrap().unwrap().total, order(1, ids[1]).total);

    // Unique violation: typed error, no trace.
    let dup = Customer { name: "Dup".into(), ..customer(3) };
    match db.insert(&dup) {
        Err(Error::Constraint(m)) => assert!(m.contains("by_email"), "{m}"),
        other => panic!("expected Constraint, got {other:?}"),
    }
    assert_eq!(db.all::<Customer>().unwrap().len(), 9);
    let err = db.insert(&dup).unwrap_err();
    assert!(err.to_string().starts_with("constraint violated"), "{err}");
    let _: &dyn std::error::Error = &err;

    // Upsert at a chosen id, delete.
    assert!(!db.upsert(500, &customer(50)).unwrap());
    assert!(db.upsert(500, &customer(51)).unwrap());
    assert!(db.delete::<Customer>(500).unwrap());
    assert!(!db.delete::<Customer>(500).unwrap());
    // Ids are never reused after a delete.
    assert_eq!(db.insert(&customer(52)).unwrap(), 501);

    // Queries, struct form.
    let spec = QuerySpec {
        filter: Filter::And(vec![
            Filter::Eq(fp("region"), Value::from("north")),
            Filter::Gt(fp("total"), Value::from(10)),
        ]),
        sort: vec![SortKey { path: fp("total"), descending: true }],
        limit: Some(3),
        ..QuerySpec::new("orders")
    };
    let rows = db.query::<Order>(&spec).unwrap();
    assert!(rows.len() <= 3 && !rows.is_empty());
    assert!(rows.windows(2).all(|w| w[0].1.total >= w[1].1.total));
    let rx = db.begin_read().unwrap();
    let orders = rx.collection("orders").unwrap();
    let plan = orders.explain(&spec).unwrap();
    assert!(plan.contains("by_region_total"), "{plan}");
    // From JSON: the same query.
    let json = spec.to_json();
    let again = QuerySpec::from_json(&json).unwrap();
    assert_eq!(again, spec);
    let from_text = QuerySpec::from_json(
        r#"{"collection":"orders","filter":{"and":[{"eq":["region","north"]},{"gt":["total",10]}]},
            "sort":[{"field":"total","order":"desc"}],"limit":3}"#,
    )
    .unwrap();
    assert_eq!(from_text, spec);
    // Count, offset, multi-value index on a nested list path.
    let by_sku =
        QuerySpec { filter: Filter::Eq(fp("lines.sku"), Value::from("sku1")), ..QuerySpec::new("orders") };
    assert!(orders.explain(&by_sku).unwrap().contains("by_sku"));
    let n = orders.query_count(&by_sku).unwrap();
    let naive = (0..30).filter(|&n| order(n, 0).lines.iter().any(|l| l.sku == "sku1")).count() as u64;
    assert_eq!(n, naive);
    let skipped = orders.query_count(&QuerySpec { offset: 2, ..by_sku.clone() }).unwrap();
    assert_eq!(skipped, naive - 2);
    // Streaming cursor: a std Iterator of Result<(id, Value)>.
    let cursor = orders.query(&by_sku).unwrap();
    let vals: Vec<(u64, Value)> = cursor.collect::<Result<_, _>>().unwrap();
    assert_eq!(vals.len() as u64, naive);
    // Typed streaming.
    let mut cursor = orders.query(&by_sku).unwrap();
    let mut typed = 0;
    while let Some(r) = cursor.next_as::<Order>() {
        let (_, o) = r.unwrap();
        assert!(o.lines.iter().any(|l| l.sku == "sku1"));
        typed += 1;
    }
    assert_eq!(typed, naive);
    // Unique lookup and composite index range.
    let (id, c) = rx
        .collection("customers")
        .unwrap()
        .find_unique_as::<Customer>("by_email", &[Value::from("c4@example.com")])
        .unwrap()
        .unwrap();
    assert_eq!((id, c), (ids[4], customer(4)));
    let north: Vec<_> = orders
        .index_range("by_region_total", Some(&[Value::from("north")]), Some(&[Value::from("north")]), true)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(north.len(), 15);
    let totals: Vec<f64> = north.iter().map(|(_, d)| d.get("total").unwrap().as_f64().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
    // A sort over the buffer limit is InvalidArgument, never unbounded memory.
    let big_sort = QuerySpec {
        sort: vec![SortKey { path: fp("note"), descending: false }],
        sort_buffer_limit: Some(5),
        ..QuerySpec::new("orders")
    };
    let err = orders.query(&big_sort).and_then(|c| c.collect::<Result<Vec<_>, _>>());
    assert!(matches!(err, Err(Error::InvalidArgument(_))), "{err:?}");
    drop(orders);
    drop(rx);

    // Bad input never panics: typed errors.
    assert!(matches!(QuerySpec::from_json("{"), Err(Error::InvalidArgument(_))));
    assert!(matches!(FieldPath::parse("a..b"), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        QuerySpec::from_json(r#"{"collection":"orders","limit":-1}"#),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(db.query::<Order>(&QuerySpec::new("customers")), Err(Error::InvalidArgument(_))));

    // An explicit transaction: documents and kv metadata commit together.
    let mut tx = db.begin_write().unwrap();
    {
        let mut orders = tx.collection_mut("orders").unwrap();
        let v = obj_engine::doc::serde_value::to_value(&order(100, ids[0])).unwrap();
        let id = orders.insert(&v).unwrap();
        assert!(orders
            .update(id, |d| {
                if let Value::Map(fields) = d {
                    fields.iter_mut().find(|(k, _)| k == "region").unwrap().1 = Value::from("east");
                }
                Ok(())
            })
            .unwrap());
        assert_eq!(orders.read().get_as::<Order>(id).unwrap().unwrap().region, "east");
    }
    tx.kv_put("meta", b"last_import", b"2026-01-01").unwrap();
    tx.kv_put("meta", b"schema", b"1").unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let kv: Vec<_> = rx.kv_prefix("meta", b"", true).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(kv[0].0, b"schema");
    let kv: Vec<_> = rx
        .kv_range("meta", Bound::Included(&b"l"[..]), Bound::Excluded(&b"m"[..]), false)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kv.len(), 1);
    drop(rx);

    // A rolled-back transaction leaves no trace.
    let before = db.all::<Order>().unwrap().len();
    let mut tx = db.begin_write().unwrap();
    tx.collection_mut("orders").unwrap().delete(order_ids[3]).unwrap();
    tx.rollback();
    assert_eq!(db.all::<Order>().unwrap().len(), before);

    db.integrity_check().unwrap();
    let st = db.stat().unwrap();
    let oc = st.collections.iter().find(|c| c.name == "orders").unwrap();
    assert!(oc.indexes.iter().all(|i| i.status == "ready"));
    db.close().unwrap();

    // Reopen: everything is there.
    let db = Db::open_with(&path, Options { sync_mode: SyncMode::Normal, ..Options::default() }).unwrap();
    assert_eq!(db.get::<Order>(order_ids[7]).unwrap().unwrap(), order(7, ids[7]));
    db.close().unwrap();
}

/// Issue 8 operations from the Rust side, as the README shows them.
#[test]
fn operations_backup_restore_compact_encrypt_attach_export() {
    let d = tmp();
    let path = d.path().join("shop.obj");
    let key = EncryptionKey::passphrase("s3cret").with_kdf_params(KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    });
    let mut db =
        Db::open_with(&path, Options { encryption: Some(key.clone()), ..Options::default() }).unwrap();
    let ids = db.insert_many(&(0..200).map(|n| order(n, 1)).collect::<Vec<_>>()).unwrap();

    let mut calls = 0;
    let rep = db
        .backup_to(d.path().join("b.obj"), |p| {
            calls += 1;
            assert!(p.pages_done <= p.pages_total);
            true
        })
        .unwrap();
    assert!(calls >= 2 && !rep.cancelled);
    // Restore refuses an open target.
    let err = Db::restore_from(
        d.path().join("b.obj"),
        &path,
        RestoreOptions { overwrite: true, encryption: Some(key.clone()), ..Default::default() },
    );
    assert!(matches!(err, Err(Error::Busy(_))), "{err:?}");
    Db::restore_from(
        d.path().join("b.obj"),
        d.path().join("r.obj"),
        RestoreOptions { encryption: Some(key.clone()), ..Default::default() },
    )
    .unwrap();
    // Without the key: Encryption, not Corruption.
    let err = Db::open(d.path().join("r.obj"));
    assert!(matches!(err, Err(Error::Encryption(_))), "{err:?}");

    for &id in &ids[..180] {
        db.delete::<Order>(id).unwrap();
    }
    let est = db.compaction_estimate().unwrap();
    assert!(est.reclaimable_bytes > 0);
    db.compact_to(d.path().join("c.obj")).unwrap();
    let rep = db.compact().unwrap();
    assert!(rep.file_size_after < rep.file_size_before);

    db.rekey(Some(EncryptionKey::raw([7; 32]))).unwrap();
    db.rekey(None).unwrap();
    assert!(!db.is_encrypted());

    // Attach: read-only namespace.
    let other = Db::open(d.path().join("archive.obj")).unwrap();
    other.insert(&order(999, 1)).unwrap();
    other.close().unwrap();
    db.attach(d.path().join("archive.obj"), "arch").unwrap();
    let rx = db.begin_read().unwrap();
    assert_eq!(rx.collection("arch.orders").unwrap().count().unwrap(), 1);
    drop(rx);
    let mut tx = db.begin_write().unwrap();
    assert!(matches!(tx.collection_mut("arch.orders"), Err(Error::InvalidArgument(_))));
    drop(tx);
    db.detach("arch").unwrap();
    assert!(matches!(db.detach("arch"), Err(Error::NotFound(_))));

    // Export / import round trip.
    let mut out = Vec::new();
    let rep = db.export_collection("orders", &mut out).unwrap();
    assert_eq!(rep.documents, 20);
    let db2 = Db::open(d.path().join("imported.obj")).unwrap();
    db2.import(&out[..], ImportOptions::default()).unwrap();
    assert_eq!(db2.all::<Order>().unwrap(), db.all::<Order>().unwrap());
    db.export_to_path(Some("orders"), d.path().join("dump.jsonl")).unwrap();
    db.close().unwrap();
}

/// `Db` is shared across threads.
#[test]
fn db_is_send_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Db>();
    assert_send_sync::<Error>();
    let d = tmp();
    let db = Db::open(d.path().join("t.obj")).unwrap();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let db = &db;
            s.spawn(move || {
                for n in 0..20 {
                    db.insert(&order(t * 100 + n, t)).unwrap();
                }
            });
        }
    });
    assert_eq!(db.all::<Order>().unwrap().len(), 40);
}

mod v1 {
    use super::*;
    /// Version 1 of the customer record: one `name`, a flat `city`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Contact {
        pub name: String,
        pub city: String,
    }
    impl Document for Contact {
        const COLLECTION: &'static str = "contacts";
        const VERSION: u32 = 1;
    }
}

/// Version 2: `name` split, `city` moved under `address`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Contact {
    first: String,
    last: String,
    address: Address,
}

impl Document for Contact {
    const COLLECTION: &'static str = "contacts";
    const VERSION: u32 = 2;
    fn migrate(version: u32, doc: Value) -> obj_engine::Result<Value> {
        match version {
            2 => Ok(doc),
            1 => {
                let name = doc.get("name").and_then(Value::as_str).unwrap_or_default();
                let (first, last) = name.split_once(' ').unwrap_or((name, ""));
                let city = doc.get("city").cloned().unwrap_or(Value::Null);
                Ok(Value::from_iter([
                    ("first", Value::from(first)),
                    ("last", Value::from(last)),
                    (
                        "address",
                        Value::from_iter([("street", Value::from("")), ("city", city), ("zip", Value::Null)]),
                    ),
                ]))
            }
            v => Err(Error::Unsupported(format!("contact version {v}"))),
        }
    }
}

/// Issue 4: "each stored document carries a small header (schema version
/// at least), so that bindings can run migrations of old versions on
/// read"; a Rust `Document` had a VERSION but no hook, so a version-1
/// document could not be read as version 2 (a deserialize error).
#[test]
fn old_documents_are_migrated_on_every_typed_read() {
    let d = tmp();
    let db = Db::open(d.path().join("m.obj")).unwrap();
    let old = db
        .insert_many(&[
            v1::Contact { name: "Ada Lovelace".into(), city: "London".into() },
            v1::Contact { name: "Alan Turing".into(), city: "Wilmslow".into() },
        ])
        .unwrap();
    let ada = Contact {
        first: "Ada".into(),
        last: "Lovelace".into(),
        address: Address { street: "".into(), city: "London".into(), zip: None },
    };
    assert_eq!(db.get::<Contact>(old[0]).unwrap().unwrap(), ada);
    assert_eq!(db.get_many::<Contact>(&old).unwrap()[1].as_ref().unwrap().last, "Turing");
    assert_eq!(db.all::<Contact>().unwrap().len(), 2);
    let q = QuerySpec::new("contacts").with_filter(Filter::eq("city", "Wilmslow").unwrap());
    assert_eq!(db.query::<Contact>(&q).unwrap()[0].1.first, "Alan");
    // A new document of the current version is read without migration.
    let new = db.insert(&ada).unwrap();
    assert_eq!(db.get::<Contact>(new).unwrap().unwrap(), ada);
    // Update migrates, then writes back with the current version.
    assert!(db
        .update::<Contact>(old[1], |c| {
            c.address.zip = Some("SK9".into());
            Ok(())
        })
        .unwrap());
    let rx = db.begin_read().unwrap();
    let contacts = rx.collection("contacts").unwrap();
    let (version, _) = contacts.get_versioned(old[1]).unwrap().unwrap();
    assert_eq!(version, 2);
    assert_eq!(contacts.get_versioned(old[0]).unwrap().unwrap().0, 1, "a read changes nothing");
    assert_eq!(contacts.get_doc::<Contact>(old[0]).unwrap().unwrap(), ada);
    let streamed: Vec<(u64, Contact)> =
        contacts.all().unwrap().docs::<Contact>().collect::<Result<_, _>>().unwrap();
    assert_eq!(streamed.len(), 3);
    assert_eq!(streamed[1].1.address.zip.as_deref(), Some("SK9"));
    drop(contacts);
    drop(rx);
    // A migration's error is the read's error.
    let mut tx = db.begin_write().unwrap();
    tx.collection_mut("contacts").unwrap().upsert_versioned(77, &Value::from_iter([("x", 1)]), 9).unwrap();
    tx.commit().unwrap();
    assert!(matches!(db.get::<Contact>(77), Err(Error::Unsupported(_))));
}

/// The typed operations of issue 4 inside one explicit transaction: two
/// types written atomically, with declared indexes created on first use.
#[test]
fn typed_documents_inside_an_explicit_transaction() {
    let d = tmp();
    let db = Db::open(d.path().join("tx.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    let cid = {
        let mut customers = tx.documents::<Customer>().unwrap();
        let ids = customers.insert_docs(&[customer(0), customer(1)]).unwrap();
        assert_eq!(customers.get_doc::<Customer>(ids[1]).unwrap().unwrap(), customer(1));
        assert!(customers.read().indexes().iter().any(|i| i.spec.name == "by_email"));
        ids[0]
    };
    let oid = {
        let mut orders = tx.documents::<Order>().unwrap();
        let oid = orders.insert_doc(&order(1, cid)).unwrap();
        assert!(!orders.upsert_doc(900, &order(2, cid)).unwrap());
        assert!(orders
            .update_doc::<Order>(oid, |o| {
                o.note = Some("gift".into());
                Ok(())
            })
            .unwrap());
        assert!(!orders.update_doc::<Order>(12345, |_| Ok(())).unwrap());
        assert!(orders.delete(900).unwrap());
        oid
    };
    // A unique violation inside the transaction is an error that leaves
    // the transaction usable.
    let err = tx.documents::<Customer>().unwrap().insert_doc(&customer(0));
    assert!(matches!(err, Err(Error::Constraint(_))), "{err:?}");
    let rows: Vec<(u64, Order)> =
        tx.collection("orders").unwrap().all().unwrap().docs().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), 1);
    tx.commit().unwrap();
    assert_eq!(db.get::<Order>(oid).unwrap().unwrap().note.as_deref(), Some("gift"));
    assert_eq!(db.all::<Customer>().unwrap().len(), 2);
    db.integrity_check().unwrap();

    // Rolled back: no trace of either type.
    let mut tx = db.begin_write().unwrap();
    tx.documents::<Customer>().unwrap().insert_doc(&customer(7)).unwrap();
    tx.documents::<Order>().unwrap().insert_doc(&order(7, cid)).unwrap();
    drop(tx);
    assert_eq!(db.all::<Customer>().unwrap().len(), 2);
    assert_eq!(db.all::<Order>().unwrap().len(), 1);
}

/// Queries built in Rust without spelling out enum variants and parsed
/// paths: the builder gives the same spec as the JSON form.
#[test]
fn query_builder_matches_the_json_form() {
    let spec = QuerySpec::new("orders")
        .with_filter(
            Filter::eq("region", "north")
                .unwrap()
                .and(
                    Filter::ge("total", 10.5)
                        .unwrap()
                        .or(Filter::is_in("lines.sku", ["sku1", "sku2"]).unwrap()),
                )
                .and(!Filter::exists("note", true).unwrap())
                .and(Filter::prefix("status", "Sh").unwrap())
                .and(Filter::ne("big", u64::MAX).unwrap())
                .and(Filter::lt("small", i64::MIN + 10).unwrap().or(Filter::le("total", 3).unwrap()))
                .and(Filter::gt("placed", ts(0)).unwrap()),
        )
        .sort_by("total", true)
        .unwrap()
        .sort_by("number", false)
        .unwrap()
        .with_limit(5)
        .with_offset(1)
        .with_sort_buffer_limit(1000);
    assert_eq!(QuerySpec::from_json(&spec.to_json()).unwrap(), spec);
    let json = QuerySpec::from_json(
        r#"{"collection":"orders","filter":{"and":[{"eq":["region","north"]},
        {"or":[{"ge":["total",10.5]},{"in":["lines.sku",["sku1","sku2"]]}]},{"not":{"exists":["note",true]}},
        {"prefix":["status","Sh"]},{"ne":["big",18446744073709551615]},
        {"or":[{"lt":["small",-9223372036854775798]},{"le":["total",3]}]},
        {"gt":["placed",{"$ts":0,"$tz":3600}]}]},
        "sort":[{"field":"total","order":"desc"},{"field":"number","order":"asc"}],
        "limit":5,"offset":1,"sort_buffer_limit":1000}"#,
    )
    .unwrap();
    assert_eq!(json, spec);
    assert!(matches!(Filter::eq("a..b", 1), Err(Error::InvalidArgument(_))));
    assert!(matches!(QuerySpec::new("x").sort_by("", false), Err(Error::InvalidArgument(_))));

    // And it runs.
    let d = tmp();
    let db = Db::open(d.path().join("q.obj")).unwrap();
    db.insert_many(&(0..40).map(|n| order(n, 1)).collect::<Vec<_>>()).unwrap();
    let q = QuerySpec::new("orders")
        .with_filter(Filter::eq("region", "south").unwrap().and(Filter::gt("total", 20).unwrap()))
        .sort_by("total", false)
        .unwrap();
    let rows = db.query::<Order>(&q).unwrap();
    let naive = (0..40).map(|n| order(n, 1)).filter(|o| o.region == "south" && o.total > 20.0).count();
    assert_eq!(rows.len(), naive);
    assert!(rows.windows(2).all(|w| w[0].1.total <= w[1].1.total));
}

/// Small things a Rust user reaches for: a unique lookup on `Db` like the
/// other typed conveniences, `export_to_path` taking any path type like
/// every other path argument, timestamps from `SystemTime`, and a multi-value
/// index constructor beside `unique` and `standard`.
#[test]
fn convenience_lookups_paths_timestamps() {
    let d = tmp();
    let db = Db::open(d.path().join("c.obj")).unwrap();
    let ids = db.insert_many(&(0..5).map(customer).collect::<Vec<_>>()).unwrap();
    let found = db.find_unique::<Customer>("by_email", &[Value::from("c3@example.com")]).unwrap();
    assert_eq!(found, Some((ids[3], customer(3))));
    assert_eq!(db.find_unique::<Customer>("by_email", &[Value::from("nobody")]).unwrap(), None);
    assert!(matches!(
        db.find_unique::<Customer>("by_city", &[Value::from("Oslo")]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(db.find_unique::<Customer>("nope", &[Value::from(1)]), Err(Error::NotFound(_))));
    assert_eq!(db.find_unique::<Order>("by_number", &[Value::from(1)]).unwrap(), None, "no collection yet");

    // Any AsRef<Path>, as Db::open, backup_to, compact_to take.
    db.export_to_path(None, d.path().join("all.jsonl")).unwrap();
    db.export_to_path(Some("customers"), "/nonexistent-dir/x.jsonl").unwrap_err();

    let now = std::time::SystemTime::now();
    let t = Timestamp::from(now);
    assert_eq!(t.offset_secs, Some(0));
    let back = std::time::SystemTime::try_from(t).unwrap();
    assert!(now.duration_since(back).unwrap() < std::time::Duration::from_micros(1));
    let before_epoch = std::time::UNIX_EPOCH - std::time::Duration::from_secs(10);
    assert_eq!(Timestamp::from(before_epoch).micros, -10_000_000);
    assert_eq!(std::time::SystemTime::try_from(Timestamp::from(before_epoch)).unwrap(), before_epoch);
    assert!(Timestamp::now().micros > 1_700_000_000_000_000);
    let _: obj_engine::Timestamp = t;

    assert_eq!(
        IndexSpec::multi("by_tag", "tags").unwrap(),
        IndexSpec::new("by_tag", IndexKind::Multi, &["tags"]).unwrap()
    );
}

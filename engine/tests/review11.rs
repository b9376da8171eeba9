//! Review 11: acceptance tests written from the issue texts (3, 4, 7, 8),
//! aimed at misuse and corners the earlier reviews left: index keys that
//! do not fit, snapshots that outlive dropped collections, writers on one
//! thread, odd files in place of a database.

use std::ops::Bound;
use std::time::{Duration, Instant};

use obj_engine::doc::json::from_json_str;
use obj_engine::txn::ReadableTxn;
use obj_engine::{Db, Error, Filter, IndexKind, IndexSpec, Options, QuerySpec, Value};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn j(s: &str) -> Value {
    from_json_str(s).unwrap()
}

fn ids(db: &Db, spec: &QuerySpec) -> Vec<u64> {
    let rx = db.begin_read().unwrap();
    let c = rx.collection(&spec.collection).unwrap();
    c.query(spec).unwrap().map(|r| r.unwrap().0).collect()
}

fn all_docs(db: &Db, coll: &str) -> Vec<(u64, Value)> {
    let rx = db.begin_read().unwrap();
    let c = rx.collection(coll).unwrap();
    c.all().unwrap().map(|r| r.unwrap()).collect()
}

/// An indexed field whose value is too long for an index key is refused as
/// InvalidArgument, and the write leaves no trace: no document, no entry,
/// no id consumed.
#[test]
fn an_index_key_too_long_for_a_page_is_invalid_argument_without_a_trace() {
    let d = tmp();
    let db = Db::open(d.path().join("k.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.create_index(IndexSpec::standard("by_name", "name").unwrap()).unwrap();
    c.create_index(IndexSpec::unique("by_code", "code").unwrap()).unwrap();
    c.insert(&j(r#"{"name":"a","code":1}"#)).unwrap();
    tx.commit().unwrap();

    let long = "x".repeat(8000);
    for doc in [
        Value::Map(vec![("name".into(), Value::Str(long.clone())), ("code".into(), Value::Int(2))]),
        Value::Map(vec![("name".into(), Value::Str("b".into())), ("code".into(), Value::Str(long.clone()))]),
        Value::Map(vec![("name".into(), Value::Bytes(vec![7; 8000])), ("code".into(), Value::Int(3))]),
    ] {
        let mut tx = db.begin_write().unwrap();
        let mut c = tx.collection_mut("c").unwrap();
        let e = c.insert(&doc).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        // The transaction stays usable and commits only what succeeded.
        let ok = c.insert(&j(r#"{"name":"ok","code":10}"#)).unwrap();
        tx.commit().unwrap();
        let mut tx = db.begin_write().unwrap();
        let mut c = tx.collection_mut("c").unwrap();
        let e = c.upsert(1, &doc).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        drop(tx);
        let mut tx = db.begin_write().unwrap();
        let mut c = tx.collection_mut("c").unwrap();
        assert!(c.delete(ok).unwrap());
        tx.commit().unwrap();
    }
    let docs = all_docs(&db, "c");
    assert_eq!(docs.len(), 1, "{:?}", docs.iter().map(|d| d.0).collect::<Vec<_>>());
    assert_eq!(docs[0].1, j(r#"{"name":"a","code":1}"#));
    db.integrity_check().unwrap();

    // Building an index over a collection that already holds such a value
    // fails clearly and leaves no index.
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.insert(&Value::Map(vec![("long".into(), Value::Str(long.clone()))])).unwrap();
    tx.commit().unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    let e = c.create_index(IndexSpec::standard("by_long", "long").unwrap()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    drop(tx);
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    assert!(c.indexes().iter().all(|i| i.spec.name != "by_long"));
    drop(rx);
    db.integrity_check().unwrap();
}

/// A read snapshot keeps iterating a collection that a writer dropped, even
/// after the freed pages were reused by later commits and checkpointed.
#[test]
fn a_reader_outlives_a_dropped_collection_whose_pages_are_reused() {
    let d = tmp();
    let opts = Options { wal_autocheckpoint: 50, ..Options::default() };
    let db = Db::open_with(d.path().join("r.obj"), opts).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("old").unwrap();
    c.create_index(IndexSpec::standard("by_n", "n").unwrap()).unwrap();
    for n in 0..3000 {
        c.insert(&Value::Map(vec![("n".into(), Value::Int(n)), ("pad".into(), Value::Str("p".repeat(100)))]))
            .unwrap();
    }
    tx.commit().unwrap();

    let rx = db.begin_read().unwrap();
    let c = rx.collection("old").unwrap();
    let mut cursor = c.all().unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.push(cursor.next().unwrap().unwrap());
    }
    let mut by_index = c.index_range("by_n", Some(&[Value::Int(2000)]), None, false).unwrap();
    let first = by_index.next().unwrap().unwrap();

    let mut tx = db.begin_write().unwrap();
    tx.drop_collection("old").unwrap();
    tx.commit().unwrap();
    for round in 0..5 {
        let mut tx = db.begin_write().unwrap();
        let mut n = tx.collection_mut("new").unwrap();
        for i in 0..600 {
            n.insert(&Value::Map(vec![("z".into(), Value::Str(format!("{round}-{i}-{}", "q".repeat(100))))]))
                .unwrap();
        }
        tx.commit().unwrap();
        db.checkpoint().unwrap();
    }
    for r in cursor {
        seen.push(r.unwrap());
    }
    assert_eq!(seen.len(), 3000);
    for (i, (id, doc)) in seen.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1);
        assert_eq!(doc.get("n"), Some(&Value::Int(i as i64)));
    }
    assert_eq!(first.1.get("n"), Some(&Value::Int(2000)));
    assert_eq!(by_index.count().unwrap(), 999);
    drop(c);
    drop(rx);
    assert!(matches!(db.begin_read().unwrap().collection("old").unwrap_err(), Error::NotFound(_)));
    db.integrity_check().unwrap();
}

/// A second `begin_write` on the thread that already holds the writer does
/// not deadlock: it waits the busy timeout and reports Busy.
#[test]
fn a_second_writer_on_the_same_thread_is_busy_not_a_deadlock() {
    let d = tmp();
    let opts = Options { busy_timeout: Duration::from_millis(200), ..Options::default() };
    let db = Db::open_with(d.path().join("w.obj"), opts.clone()).unwrap();
    let mut tx = db.begin_write().unwrap();
    let t = tx.create_tree("t").unwrap();
    tx.insert(&t, b"k", b"1").unwrap();
    let start = Instant::now();
    let e = db.begin_write().unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // Through a second handle on the same file, too.
    let db2 = Db::open_with(d.path().join("w.obj"), opts).unwrap();
    assert!(matches!(db2.begin_write().unwrap_err(), Error::Busy(_)));
    // The first transaction is intact and commits from another thread.
    std::thread::spawn(move || tx.commit().unwrap()).join().unwrap();
    let rx = db2.begin_read().unwrap();
    let t = rx.open_tree("t").unwrap();
    assert_eq!(rx.get(&t, b"k").unwrap().as_deref(), Some(&b"1"[..]));
}

/// Many threads race for the writer with increments; every commit counts.
#[test]
fn writers_on_many_threads_serialize_without_lost_updates() {
    let d = tmp();
    let opts = Options { busy_timeout: Duration::from_secs(30), ..Options::default() };
    let db = std::sync::Arc::new(Db::open_with(d.path().join("c.obj"), opts).unwrap());
    let mut tx = db.begin_write().unwrap();
    tx.kv_put("n", b"count", &0u64.to_le_bytes()).unwrap();
    tx.commit().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let mut tx = db.begin_write().unwrap();
                    let v = tx.kv_get("n", b"count").unwrap().unwrap();
                    let n = u64::from_le_bytes(v.try_into().unwrap());
                    tx.kv_put("n", b"count", &(n + 1).to_le_bytes()).unwrap();
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rx = db.begin_read().unwrap();
    let v = rx.kv_get("n", b"count").unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(v.try_into().unwrap()), 200);
}

/// Empty keys are ordinary keys, in trees and key-value namespaces; ranges
/// whose ends cross are empty, not a panic.
#[test]
fn empty_keys_and_inverted_ranges() {
    let d = tmp();
    let db = Db::open(d.path().join("e.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    let t = tx.create_tree("t").unwrap();
    assert!(!tx.insert(&t, b"", b"empty").unwrap());
    tx.insert(&t, b"a", b"1").unwrap();
    tx.insert(&t, b"b", b"2").unwrap();
    tx.kv_put("ns", b"", b"e").unwrap();
    tx.kv_put("ns", b"x", b"1").unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let t = rx.open_tree("t").unwrap();
    assert_eq!(rx.get(&t, b"").unwrap().as_deref(), Some(&b"empty"[..]));
    let keys: Vec<Vec<u8>> = rx
        .range(&t, Bound::Unbounded, Bound::Unbounded, false)
        .unwrap()
        .map(|r| r.unwrap().0.to_vec())
        .collect();
    assert_eq!(keys, vec![b"".to_vec(), b"a".to_vec(), b"b".to_vec()]);
    let rev: Vec<Vec<u8>> = rx
        .range(&t, Bound::Unbounded, Bound::Excluded(b"b"), true)
        .unwrap()
        .map(|r| r.unwrap().0.to_vec())
        .collect();
    assert_eq!(rev, vec![b"a".to_vec(), b"".to_vec()]);
    for reverse in [false, true] {
        assert_eq!(rx.range(&t, Bound::Included(b"b"), Bound::Excluded(b"a"), reverse).unwrap().count(), 0);
        assert_eq!(rx.range(&t, Bound::Excluded(b"a"), Bound::Excluded(b"a"), reverse).unwrap().count(), 0);
        assert_eq!(rx.range(&t, Bound::Included(b"a"), Bound::Included(b"a"), reverse).unwrap().count(), 1);
        assert_eq!(
            rx.kv_range("ns", Bound::Included(b"z"), Bound::Included(b"a"), reverse).unwrap().count(),
            0
        );
        assert_eq!(rx.prefix(&t, b"", reverse).unwrap().count(), 3);
    }
    assert_eq!(rx.kv_get("ns", b"").unwrap().as_deref(), Some(&b"e"[..]));
    // Inverted index ranges are empty too.
    drop(rx);
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.create_index(IndexSpec::standard("by_x", "x").unwrap()).unwrap();
    for x in 0..10 {
        c.insert(&Value::Map(vec![("x".into(), Value::Int(x))])).unwrap();
    }
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    for reverse in [false, true] {
        let n = c
            .index_range("by_x", Some(&[Value::Int(7)]), Some(&[Value::Int(3)]), reverse)
            .unwrap()
            .count()
            .unwrap();
        assert_eq!(n, 0);
    }
}

/// Opening something that is not a database file: a directory, a path under
/// a regular file. Typed errors, nothing created.
#[test]
fn a_directory_or_a_path_through_a_file_is_a_typed_error() {
    let d = tmp();
    let dir = d.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    let e = Db::open(&dir).unwrap_err();
    assert!(matches!(e, Error::Io { .. } | Error::InvalidArgument(_)), "{e:?}");
    assert!(!d.path().join("adir-wal").exists());
    assert!(!d.path().join("adir-shm").exists());
    let file = d.path().join("plain");
    std::fs::write(&file, b"").unwrap();
    let e = Db::open(file.join("db.obj")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    let e = Db::open_with(d.path().join("missing.obj"), Options { create: false, ..Options::default() })
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_) | Error::Io { .. }), "{e:?}");
    assert!(!d.path().join("missing.obj").exists());
    assert!(!d.path().join("missing.obj-wal").exists());
}

/// 0.0 and -0.0 are one value for a unique index and for equality queries,
/// with or without the index; NaN equals NaN in the index order.
#[test]
fn zero_signs_and_nan_in_indexes_agree_with_the_scan() {
    let d = tmp();
    let db = Db::open(d.path().join("z.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("plain").unwrap();
    for x in [0.0, -0.0, f64::NAN, 1.0] {
        c.insert(&Value::Map(vec![("x".into(), Value::Float(x))])).unwrap();
    }
    c.insert(&Value::Map(vec![("x".into(), Value::Int(0))])).unwrap();
    let mut c = tx.collection_mut("indexed").unwrap();
    c.create_index(IndexSpec::standard("by_x", "x").unwrap()).unwrap();
    for x in [0.0, -0.0, f64::NAN, 1.0] {
        c.insert(&Value::Map(vec![("x".into(), Value::Float(x))])).unwrap();
    }
    c.insert(&Value::Map(vec![("x".into(), Value::Int(0))])).unwrap();
    tx.commit().unwrap();
    for operand in [Value::Float(0.0), Value::Float(-0.0), Value::Int(0), Value::Float(f64::NAN)] {
        for f in [
            Filter::Eq(obj_engine::query::expr::FieldPath::parse("x").unwrap(), operand.clone()),
            Filter::Le(obj_engine::query::expr::FieldPath::parse("x").unwrap(), operand.clone()),
            Filter::Gt(obj_engine::query::expr::FieldPath::parse("x").unwrap(), operand.clone()),
            Filter::Ne(obj_engine::query::expr::FieldPath::parse("x").unwrap(), operand.clone()),
        ] {
            let mut a = QuerySpec::new("plain");
            a.filter = f.clone();
            let mut b = QuerySpec::new("indexed");
            b.filter = f.clone();
            let mut ia = ids(&db, &a);
            let mut ib = ids(&db, &b);
            ia.sort();
            ib.sort();
            assert_eq!(ia, ib, "{f:?}");
        }
    }
    // A unique index treats the two zeros (and 0) as one value.
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("u").unwrap();
    c.create_index(IndexSpec::unique("by_x", "x").unwrap()).unwrap();
    c.insert(&Value::Map(vec![("x".into(), Value::Float(0.0))])).unwrap();
    let e = c.insert(&Value::Map(vec![("x".into(), Value::Float(-0.0))])).unwrap_err();
    assert!(matches!(e, Error::Constraint(_)), "{e:?}");
    let e = c.insert(&Value::Map(vec![("x".into(), Value::Int(0))])).unwrap_err();
    assert!(matches!(e, Error::Constraint(_)), "{e:?}");
    tx.commit().unwrap();
    db.integrity_check().unwrap();
}

/// Multi-value entries follow a list through duplicates, updates and
/// deletes; the index always agrees with the documents.
#[test]
fn multi_value_index_with_duplicate_elements_follows_updates() {
    let d = tmp();
    let db = Db::open(d.path().join("m.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.create_index(IndexSpec::new("tags", IndexKind::Multi, &["tags"]).unwrap()).unwrap();
    let a = c.insert(&j(r#"{"tags":["x","x","y",1,1.0]}"#)).unwrap();
    let b = c.insert(&j(r#"{"tags":"x"}"#)).unwrap();
    tx.commit().unwrap();
    db.integrity_check().unwrap();
    let q = |v: Value| {
        let mut s = QuerySpec::new("c");
        s.filter = Filter::Eq(obj_engine::query::expr::FieldPath::parse("tags").unwrap(), v);
        let mut r = ids(&db, &s);
        r.sort();
        r
    };
    assert_eq!(q(Value::Str("x".into())), vec![a, b]);
    assert_eq!(q(Value::Int(1)), vec![a]);
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.update(a, |d| {
        *d = j(r#"{"tags":["y","z"]}"#);
        Ok(())
    })
    .unwrap();
    tx.commit().unwrap();
    db.integrity_check().unwrap();
    assert_eq!(q(Value::Str("x".into())), vec![b]);
    assert_eq!(q(Value::Str("z".into())), vec![a]);
    assert!(q(Value::Int(1)).is_empty());
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.delete(a).unwrap();
    c.delete(b).unwrap();
    tx.commit().unwrap();
    db.integrity_check().unwrap();
    let st = db.stat().unwrap();
    let cs = st.collections.iter().find(|c| c.name == "c").unwrap();
    assert_eq!(cs.indexes[0].entries, 0, "{cs:?}");
}

/// Offset and limit at the edges: past the end, zero, and count with both.
#[test]
fn offsets_and_limits_at_the_edges() {
    let d = tmp();
    let db = Db::open(d.path().join("o.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    c.create_index(IndexSpec::standard("by_x", "x").unwrap()).unwrap();
    for x in 0..20 {
        c.insert(&Value::Map(vec![("x".into(), Value::Int(x % 7))])).unwrap();
    }
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    for (filter, total) in [
        (Filter::True, 20u64),
        (Filter::Ge(obj_engine::query::expr::FieldPath::parse("x").unwrap(), Value::Int(3)), 11),
    ] {
        for sorted in [false, true] {
            for (offset, limit) in [
                (0, Some(0)),
                (25, None),
                (20, Some(5)),
                (19, Some(5)),
                (5, Some(u64::MAX)),
                (u64::MAX, None),
            ] {
                let mut s = QuerySpec::new("c");
                s.filter = filter.clone();
                if sorted {
                    s.sort = vec![obj_engine::query::spec::SortKey {
                        path: obj_engine::query::expr::FieldPath::parse("x").unwrap(),
                        descending: true,
                    }];
                }
                s.offset = offset;
                s.limit = limit;
                let want = total.saturating_sub(offset).min(limit.unwrap_or(u64::MAX));
                assert_eq!(c.query(&s).unwrap().count().unwrap(), want, "{s:?}");
                assert_eq!(c.query_count(&s).unwrap(), want, "{s:?}");
            }
        }
    }
}

/// `SyncMode::Normal` under power cuts: the recovered state is some prefix
/// of the commits that includes every commit before the last completed
/// checkpoint, with nothing partial, and `integrity_check` passes.
#[test]
fn normal_sync_mode_power_cuts_lose_only_a_tail_of_commits() {
    use obj_engine::storage::sim::{CutMode, SimVfs};
    use obj_engine::SyncMode;
    const DB: &str = "/sim/n.obj";
    for seed in 0..40u64 {
        let vfs = SimVfs::new();
        let opts = Options {
            vfs: Some(std::sync::Arc::new(vfs.clone())),
            sync_mode: SyncMode::Normal,
            wal_autocheckpoint: 7 + seed % 11,
            ..Options::default()
        };
        let db = Db::open_with(DB, opts.clone()).unwrap();
        let mut durable = 0u32;
        for i in 1..=40u32 {
            let mut w = db.begin_write().unwrap();
            let t = w.create_tree("t").unwrap();
            w.insert(&t, &i.to_be_bytes(), &vec![i as u8; (i as usize * 331) % 6000]).unwrap();
            if i % 3 == 0 {
                w.delete(&t, &(i - 1).to_be_bytes()).unwrap();
            }
            w.kv_put("counter", b"n", &i.to_be_bytes()).unwrap();
            w.commit().unwrap();
            if i as u64 % 9 == seed % 9 {
                let r = db.checkpoint().unwrap();
                assert!(r.complete);
                durable = i;
            }
        }
        vfs.power_cut(seed, CutMode::Random);
        drop(db);
        let db = Db::open_with(DB, opts).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        db.integrity_check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let r = db.begin_read().unwrap();
        let n = r.kv_get("counter", b"n").unwrap().map_or(0, |v| u32::from_be_bytes(v.try_into().unwrap()));
        assert!(n >= durable && n <= 40, "seed {seed}: {n} < {durable}");
        if n > 0 {
            let t = r.open_tree("t").unwrap();
            for i in 1..=40u32 {
                let want = i <= n && !(i % 3 == 2 && i < n);
                let got = r.get(&t, &i.to_be_bytes()).unwrap();
                assert_eq!(got.is_some(), want, "seed {seed}, key {i}, state {n}");
                if let Some(v) = got {
                    assert_eq!(v.len(), (i as usize * 331) % 6000);
                }
            }
        }
    }
}

/// Two processes reaching one file through two names (a hard link) must
/// not each run a WAL of their own over the same main file: the second
/// open is refused (Busy) or shares, never silently loses commits. A
/// handle with an explicit `OsVfs` behaves as another process. (Since
/// review 16 a symbolic link is followed to the file's own name, so that
/// case shares; the first key is its own, so that the 41 commits leave
/// 41 keys.)
#[test]
fn a_hard_link_opened_by_another_process_does_not_lose_commits() {
    for symbolic in [false, true] {
        opened_by_two_names(symbolic);
    }
}

fn opened_by_two_names(symbolic: bool) {
    use obj_engine::storage::file::OsVfs;
    let d = tmp();
    let a = d.path().join("a.obj");
    let b = d.path().join("b.obj");
    let own = || Options {
        vfs: Some(std::sync::Arc::new(OsVfs)),
        busy_timeout: Duration::from_millis(100),
        ..Options::default()
    };
    let da = Db::open_with(&a, own()).unwrap();
    let mut w = da.begin_write().unwrap();
    w.kv_put("k", b"from-a-start", b"1").unwrap();
    w.commit().unwrap();
    if symbolic {
        std::os::unix::fs::symlink(&a, &b).unwrap();
    } else {
        std::fs::hard_link(&a, &b).unwrap();
    }
    match Db::open_with(&b, own()) {
        Err(e) => assert!(matches!(e, Error::Busy(_)), "{e:?}"),
        Ok(db_b) => {
            for i in 0..20 {
                for (db, who) in [(&da, "a"), (&db_b, "b")] {
                    let mut w = db.begin_write().unwrap();
                    w.kv_put("k", format!("from-{who}-{i}").as_bytes(), b"1").unwrap();
                    w.commit().unwrap();
                }
            }
            drop(db_b);
            drop(da);
            let db = Db::open(&a).unwrap();
            db.integrity_check().unwrap();
            let rx = db.begin_read().unwrap();
            assert_eq!(rx.kv_prefix("k", b"", false).unwrap().count(), 41, "commits were lost");
            return;
        }
    }
    // The refused open left the first handle working.
    let mut w = da.begin_write().unwrap();
    w.kv_put("k", b"from-a-1", b"1").unwrap();
    w.commit().unwrap();
    da.close().unwrap();
    let db = Db::open(&b).unwrap();
    let rx = db.begin_read().unwrap();
    assert_eq!(rx.kv_prefix("k", b"", false).unwrap().count(), 2);
}

/// An index built in batches (`Db::create_index`) while another thread
/// inserts, updates, upserts and deletes between the batches ends equal to
/// the documents, and queries through it equal a scan.
#[test]
fn an_index_built_in_batches_beside_a_writer_matches_the_documents() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let d = tmp();
    let opts = Options { busy_timeout: Duration::from_secs(60), ..Options::default() };
    let db = Arc::new(Db::open_with(d.path().join("b.obj"), opts).unwrap());
    let doc = |x: i64, tags: &[&str]| {
        Value::Map(vec![
            ("x".into(), Value::Int(x)),
            ("tags".into(), Value::List(tags.iter().map(|t| Value::Str(t.to_string())).collect())),
        ])
    };
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    for i in 0..12_000i64 {
        c.insert(&doc(i % 97, &["a", if i % 2 == 0 { "even" } else { "odd" }])).unwrap();
    }
    tx.commit().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            let mut rounds = 0;
            while !done.load(Ordering::Acquire) || rounds < 3 {
                rounds += 1;
                let mut tx = db.begin_write().unwrap();
                let mut c = tx.collection_mut("c").unwrap();
                for _ in 0..20 {
                    n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let id = (n >> 33) % 13_000 + 1;
                    match (n >> 20) % 4 {
                        0 => {
                            c.delete(id).unwrap();
                        }
                        1 => {
                            c.upsert(id, &doc(((n >> 8) % 97) as i64, &["b", "upserted"])).unwrap();
                        }
                        2 => {
                            c.update(id, |d| {
                                *d = doc(1000 + (id % 5) as i64, &["u"]);
                                Ok(())
                            })
                            .unwrap();
                        }
                        _ => {
                            c.insert(&doc(-1, &["new", "new"])).unwrap();
                        }
                    }
                }
                tx.commit().unwrap();
                std::thread::yield_now();
            }
        })
    };
    db.create_index("c", IndexSpec::standard("by_x", "x").unwrap()).unwrap();
    db.create_index("c", IndexSpec::new("by_tag", IndexKind::Multi, &["tags"]).unwrap()).unwrap();
    done.store(true, Ordering::Release);
    writer.join().unwrap();
    db.integrity_check().unwrap();
    let st = db.stat().unwrap();
    let cs = st.collections.iter().find(|c| c.name == "c").unwrap();
    assert!(cs.indexes.iter().all(|i| i.status == "ready"), "{cs:?}");
    let fp = |s: &str| obj_engine::query::expr::FieldPath::parse(s).unwrap();
    for f in [
        Filter::Eq(fp("x"), Value::Int(5)),
        Filter::Ge(fp("x"), Value::Int(1000)),
        Filter::Lt(fp("x"), Value::Int(0)),
        Filter::Eq(fp("tags"), Value::Str("upserted".into())),
        Filter::Eq(fp("tags"), Value::Str("new".into())),
        Filter::Eq(fp("tags"), Value::Str("even".into())),
    ] {
        let mut s = QuerySpec::new("c");
        s.filter = f.clone();
        let rx = db.begin_read().unwrap();
        let c = rx.collection("c").unwrap();
        assert!(c.explain(&s).unwrap().starts_with("INDEX"), "{}", c.explain(&s).unwrap());
        let got: Vec<u64> = c.query(&s).unwrap().map(|r| r.unwrap().0).collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        got_sorted.dedup();
        assert_eq!(got.len(), got_sorted.len(), "no duplicates");
        let want: Vec<u64> =
            c.all().unwrap().map(|r| r.unwrap()).filter(|(_, d)| f.eval(d)).map(|r| r.0).collect();
        assert_eq!(got_sorted, want, "{f:?}");
    }
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Person {
    name: String,
    age: u32,
}

impl obj_engine::Document for Person {
    const COLLECTION: &'static str = "people";
    fn indexes() -> Vec<IndexSpec> {
        vec![IndexSpec::unique("by_name", "name").unwrap()]
    }
}

/// A stored document that does not fit the type asked for is a typed
/// error, for every typed read path; the wrong shape stays readable as a
/// Value and nothing is changed.
#[test]
fn typed_reads_of_a_mismatched_document_are_errors_not_panics() {
    let d = tmp();
    let db = Db::open(d.path().join("p.obj")).unwrap();
    let good = db.insert(&Person { name: "ann".into(), age: 3 }).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("people").unwrap();
    let bad = c.insert(&j(r#"{"name":"bob","age":-4}"#)).unwrap();
    let worse = c.insert(&j(r#"{"name":["x"],"age":"old"}"#)).unwrap();
    let huge = c.insert(&j(r#"{"name":"cy","age":18446744073709551615}"#)).unwrap();
    tx.commit().unwrap();
    for id in [bad, worse, huge] {
        let e = db.get::<Person>(id).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_) | Error::Corruption { .. }), "{e:?}");
        let e = db.get_many::<Person>(&[good, id]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_) | Error::Corruption { .. }), "{e:?}");
        let e = db.update::<Person>(id, |p| {
            p.age += 1;
            Ok(())
        });
        assert!(e.is_err());
    }
    assert!(db.all::<Person>().is_err());
    assert_eq!(db.get::<Person>(good).unwrap().unwrap(), Person { name: "ann".into(), age: 3 });
    let docs = all_docs(&db, "people");
    assert_eq!(docs.len(), 4);
    assert_eq!(docs[1].1, j(r#"{"name":"bob","age":-4}"#));
    db.integrity_check().unwrap();
}

/// Names of key-value namespaces and collections: empty, with '/' or too
/// long are InvalidArgument, and nothing is created.
#[test]
fn bad_names_for_namespaces_and_collections_create_nothing() {
    let d = tmp();
    let db = Db::open(d.path().join("n.obj")).unwrap();
    let long = "n".repeat(5000);
    for name in ["", "a/b", long.as_str()] {
        let mut tx = db.begin_write().unwrap();
        let e = tx.kv_put(name, b"k", b"v").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{name:?}: {e:?}");
        let e = tx.collection_mut(name).err().unwrap();
        assert!(matches!(e, Error::InvalidArgument(_)), "{name:?}: {e:?}");
        tx.commit().unwrap();
    }
    let rx = db.begin_read().unwrap();
    assert!(rx.kv_list().unwrap().is_empty());
    assert!(rx.list_collections().unwrap().is_empty());
    for name in ["", "a/b", long.as_str()] {
        let e = rx.kv_get(name, b"k").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{name:?}: {e:?}");
    }
    drop(rx);
    db.integrity_check().unwrap();
}

/// A read transaction (and its cursor) begun before `close()` keeps
/// reading its snapshot; after the last of them ends, the main file alone
/// holds everything.
#[test]
fn a_cursor_outlives_close_and_then_the_main_file_holds_everything() {
    let d = tmp();
    let path = d.path().join("c.obj");
    let db = Db::open_with(&path, Options { wal_autocheckpoint: 0, ..Options::default() }).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    for i in 0..2000 {
        c.insert(&Value::Map(vec![("i".into(), Value::Int(i))])).unwrap();
    }
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    db.close().unwrap();
    let c = rx.collection("c").unwrap();
    let ids: Vec<u64> = c.all().unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(ids, (1..=2000).collect::<Vec<u64>>());
    drop(c);
    drop(rx);
    assert!(!d.path().join("c.obj-wal").exists(), "the last snapshot's end folded the WAL");
    let copy = d.path().join("copy.obj");
    std::fs::copy(&path, &copy).unwrap();
    let db = Db::open(&copy).unwrap();
    assert_eq!(all_docs(&db, "c").len(), 2000);
    db.integrity_check().unwrap();
}

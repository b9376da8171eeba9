//! Hostile input through the Rust API: each gets its documented error and
//! leaves the database as it was (byte for byte when the open is refused).
//! Complements `recovery.rs`, which checks the error kinds of foreign,
//! newer and truncated files on the real file system.

use std::path::Path;
use std::sync::Arc;

use obj_engine::btree::max_key_len;
use obj_engine::doc::json::{from_json_slice, from_json_str, MAX_NESTING};
use obj_engine::storage::file::Vfs;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Error, Filter, IndexSpec, Options, QuerySpec, ReadableTxn, Value};

const DB: &str = "/h/app.obj";
const WAL: &str = "/h/app.obj-wal";

fn options(vfs: &SimVfs) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() }
}

/// A closed database with a few trees, overflow values and free pages.
fn sample(vfs: &SimVfs) -> Vec<u8> {
    let db = Db::open_with(DB, options(vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0u32..400 {
        w.insert(&t, &i.to_be_bytes(), &vec![i as u8; (i as usize * 37) % 6000]).unwrap();
    }
    let gone = w.create_tree("gone").unwrap();
    w.insert(&gone, b"k", &[1; 10_000]).unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("gone").unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    vfs.read_file(DB).unwrap()
}

fn assert_sample_intact(db: &Db) {
    db.integrity_check().unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    assert_eq!(r.count(&t).unwrap(), 400);
    for i in (0u32..400).step_by(7) {
        assert_eq!(r.get(&t, &i.to_be_bytes()).unwrap().unwrap().len(), (i as usize * 37) % 6000);
    }
    // Only "t" among the user trees ("gone" was dropped); collections and
    // key-value namespaces live in "$"-prefixed trees.
    let trees: Vec<String> = r.list_trees().unwrap().into_iter().filter(|t| !t.starts_with('$')).collect();
    assert_eq!(trees, vec!["t".to_string()]);
}

#[test]
fn every_truncation_is_refused_and_left_untouched() {
    let vfs = SimVfs::new();
    let bytes = sample(&vfs);
    let page = 4096;
    let mut lengths: Vec<usize> = (0..64).chain([100, 511, 512, 4095]).collect();
    lengths.extend((page..bytes.len()).step_by(page / 2));
    lengths.extend([bytes.len() - 1, bytes.len() - page + 1]);
    for len in lengths {
        vfs.write_file(DB, &bytes[..len]);
        match Db::open_with(DB, options(&vfs)) {
            // An empty file is a new database.
            Ok(db) if len == 0 => db.close().unwrap(),
            Ok(_) => panic!("a file truncated to {len} of {} bytes opened", bytes.len()),
            Err(Error::Corruption { .. }) => {}
            Err(Error::InvalidArgument(m)) => assert!(m.contains("not an obj database"), "{len}: {m}"),
            Err(e) => panic!("truncated to {len}: unexpected {e:?}"),
        }
        if len > 0 {
            assert_eq!(vfs.read_file(DB).unwrap(), &bytes[..len], "a refused open changed the file");
        }
        let _ = vfs.remove(Path::new(WAL));
    }
    vfs.write_file(DB, &bytes);
    assert_sample_intact(&Db::open_with(DB, options(&vfs)).unwrap());
}

#[test]
fn not_a_database_and_foreign_wal_are_refused_without_writes() {
    let vfs = SimVfs::new();
    let bytes = sample(&vfs);
    for junk in [vec![b'x'; 10_000], b"SQLite format 3\0".repeat(300), vec![0; 8192], vec![0xff; 3]] {
        vfs.write_file("/h/junk", &junk);
        match Db::open_with("/h/junk", options(&vfs)) {
            Err(Error::InvalidArgument(_) | Error::Corruption { .. }) => {}
            other => panic!("junk opened: {other:?}"),
        }
        assert_eq!(vfs.read_file("/h/junk").unwrap(), junk);
    }
    // A WAL of another database (same page size) next to this one.
    let other = SimVfs::new();
    let db = Db::open_with(DB, options(&other)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"foreign", b"row").unwrap();
    w.commit().unwrap();
    let foreign_wal = other.read_file(WAL).unwrap();
    other.crash();
    drop(db);
    vfs.write_file(WAL, &foreign_wal);
    match Db::open_with(DB, options(&vfs)) {
        Err(Error::Corruption { message, .. }) => assert!(message.contains("another database"), "{message}"),
        other => panic!("a foreign WAL was accepted: {other:?}"),
    }
    assert_eq!(vfs.read_file(DB).unwrap(), bytes);
    assert_eq!(vfs.read_file(WAL).unwrap(), foreign_wal, "the foreign WAL is left for the user to move");
    vfs.remove(Path::new(WAL)).unwrap();
    assert_sample_intact(&Db::open_with(DB, options(&vfs)).unwrap());
}

#[test]
fn oversized_keys_and_stale_handles_leave_the_transaction_usable() {
    let vfs = SimVfs::new();
    sample(&vfs);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let max = max_key_len(4096 - 4);
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    for len in [max + 1, 4096, 1 << 20] {
        match w.insert(&t, &vec![7; len], b"v") {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("key is"), "{m}"),
            other => panic!("a {len}-byte key: {other:?}"),
        }
    }
    // A longest-allowed key still works in the same transaction.
    assert!(!w.insert(&t, &vec![7; max], b"edge").unwrap());
    // Deleting or reading an oversized key finds nothing rather than failing oddly.
    assert!(matches!(w.get(&t, &vec![7; max + 1]), Ok(None) | Err(Error::InvalidArgument(_))));
    w.rollback();

    // A tree handle outlives its tree: use in a later transaction is refused.
    let mut w = db.begin_write().unwrap();
    let doomed = w.create_tree("doomed").unwrap();
    w.insert(&doomed, b"a", b"1").unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("doomed").unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    for result in
        [w.insert(&doomed, b"b", b"2").map(drop), w.delete(&doomed, b"a").map(drop), w.clear(&doomed)]
    {
        match result {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("stale"), "{m}"),
            other => panic!("stale handle: {other:?}"),
        }
    }
    assert!(matches!(w.drop_tree("doomed"), Err(Error::NotFound(_))));
    // The transaction is still fine after all those refusals.
    let t = w.open_tree("t").unwrap();
    w.insert(&t, b"after", b"ok").unwrap();
    w.commit().unwrap();
    // Finished transactions are consumed by commit/rollback; a read
    // snapshot taken before a commit keeps its view.
    let r = db.begin_read().unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.delete(&t, b"after").unwrap();
    w.commit().unwrap();
    assert_eq!(r.get(&r.open_tree("t").unwrap(), b"after").unwrap().as_deref(), Some(&b"ok"[..]));
    drop(r);
    db.close().unwrap();
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    assert_sample_intact(&db);
}

#[test]
fn closed_handle_refuses_clearly() {
    let vfs = SimVfs::new();
    sample(&vfs);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let other = db.clone();
    let r = db.begin_read().unwrap();
    // Closing one of two handles closes nothing.
    db.close().unwrap();
    assert!(other.begin_read().is_ok());
    drop(r);
    other.close().unwrap();
    assert!(!vfs.exists(Path::new(WAL)).unwrap(), "the last close folds and removes the WAL");
    assert_sample_intact(&Db::open_with(DB, options(&vfs)).unwrap());
}

/// Builds `depth` nested one-element lists around a null, iteratively.
fn nested_lists(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |v, _| Value::List(vec![v]))
}

/// Drops a deep value without recursion (the derived drop glue recurses
/// once per level).
fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::List(items) => stack.extend(items),
            Value::Map(entries) => stack.extend(entries.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn invalid_message<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) -> String {
    match result {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

const USERS: &str = "users";

/// Adds a collection of 50 documents with a unique index to the sample.
fn sample_with_documents(vfs: &SimVfs) -> Db {
    sample(vfs);
    let db = Db::open_with(DB, options(vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut(USERS).unwrap();
    c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
    for i in 0..50 {
        c.insert(&from_json_str(&format!(r#"{{"email":"u{i}@x","n":{i},"tags":["a","b"]}}"#)).unwrap())
            .unwrap();
    }
    drop(c);
    w.kv_put("meta", b"k", b"v").unwrap();
    w.commit().unwrap();
    db
}

fn assert_documents_intact(db: &Db) {
    assert_sample_intact(db);
    let r = db.begin_read().unwrap();
    let c = r.collection(USERS).unwrap();
    assert_eq!(c.count().unwrap(), 50);
    for i in (0..50).step_by(7) {
        let (id, doc) = c.find_unique("by_email", &[Value::Str(format!("u{i}@x"))]).unwrap().unwrap();
        assert_eq!(id, i + 1);
        assert_eq!(doc.get("n"), Some(&Value::Int(i as i64)));
    }
    assert_eq!(r.kv_get("meta", b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn documents_that_cannot_be_stored_are_refused_without_a_trace() {
    let vfs = SimVfs::new();
    let db = sample_with_documents(&vfs);
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut(USERS).unwrap();

    // Nesting: 129 levels and 100,000 levels, of lists and of maps, are
    // refused with the documented message (no stack overflow).
    for depth in [MAX_NESTING, 100_000] {
        let deep = Value::from_iter([("deep", nested_lists(depth))]);
        let m = invalid_message(c.insert(&deep), "deep list");
        assert!(m.contains("nested deeper than 128 levels"), "{m}");
        drop_deep(deep);
        let deep_map = (0..=depth).fold(Value::Null, |v, _| Value::from_iter([("k", v)]));
        let m = invalid_message(c.upsert(7, &deep_map), "deep map");
        assert!(m.contains("nested deeper than 128 levels"), "{m}");
        drop_deep(deep_map);
    }
    // Exactly the limit is fine (the document map is one of the 128 levels).
    let edge = Value::from_iter([("deep", nested_lists(MAX_NESTING - 1))]);
    let edge_id = c.insert(&edge).unwrap();
    assert!(c.delete(edge_id).unwrap());

    // A document that is not a map.
    for not_a_map in [Value::Int(1), Value::Null, Value::List(vec![]), Value::Str("doc".into())] {
        let m = invalid_message(c.insert(&not_a_map), "not a map");
        assert!(m.contains("must be a map"), "{m}");
    }
    // A value too long for the unique index: refused before any change,
    // so neither the document nor an index entry remains.
    let long = Value::from_iter([("email", Value::Str("e".repeat(100_000)))]);
    let m = invalid_message(c.insert(&long), "oversized index key");
    assert!(m.contains("too long for index"), "{m}");
    assert!(!m.contains("a list"), "a string's message speaks of lists: {m}");
    let m = invalid_message(c.upsert(3, &long), "oversized index key on upsert");
    assert!(m.contains("too long for index"), "{m}");
    // Raw bytes into a document collection.
    let m = invalid_message(c.insert_raw(b"\xff\xfe"), "raw into documents");
    assert!(m.contains("raw"), "{m}");
    drop(c);

    // Bad collection and namespace names.
    for name in ["", "a/b", &"n".repeat(201)] {
        invalid_message(w.collection_mut(name).map(drop), "bad collection name");
        invalid_message(w.kv_put(name, b"k", b"v"), "bad namespace name");
    }
    // The transaction is still usable and commits the one good change.
    w.kv_put("meta", b"after", b"ok").unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    assert_documents_intact(&db);
    let r = db.begin_read().unwrap();
    let c = r.collection(USERS).unwrap();
    assert_eq!(c.get(3).unwrap().unwrap().get("email"), Some(&Value::Str("u2@x".into())));
    assert_eq!(c.get(edge_id).unwrap(), None);
    assert_eq!(r.kv_get("meta", b"after").unwrap().as_deref(), Some(&b"ok"[..]));
}

#[test]
fn malformed_document_json_is_invalid_argument() {
    let deep_lists = "[".repeat(100_000);
    let deep_closed = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_objects = r#"{"a":"#.repeat(100_000);
    let cases: [(&[u8], &str); 12] = [
        (b"", "EOF"),
        (b"{", "EOF"),
        (b"{\"a\":1,}", "trailing comma"),
        (b"{\"a\":1}x", "trailing characters"),
        (b"{\"a\":1,\"a\":2}", "duplicate key"),
        (b"{\"a\":\"\xff\xfe\"}", "invalid unicode code point"),
        (b"{\"\xc3\x28\":1}", "invalid unicode code point"),
        (b"{\"a\":\"\\ud800\"}", "escape"),
        (b"{\"a\":1e999}", "out of range"),
        (deep_lists.as_bytes(), "deeper than 128 levels"),
        (deep_closed.as_bytes(), "deeper than 128 levels"),
        (deep_objects.as_bytes(), "deeper than 128 levels"),
    ];
    for (text, needle) in cases {
        let m = invalid_message(from_json_slice(text), &String::from_utf8_lossy(&text[..text.len().min(40)]));
        assert!(m.to_lowercase().contains(&needle.to_lowercase()), "{needle}: {m}");
    }
}

#[test]
fn malformed_queries_are_invalid_argument_and_missing_indexes_not_found() {
    let vfs = SimVfs::new();
    let db = sample_with_documents(&vfs);
    let deep_filter = format!(
        r#"{{"collection":"users","filter":{}true{}}}"#,
        r#"{"not":"#.repeat(100_000),
        "}".repeat(100_000)
    );
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "EOF"),
        ("null".into(), "object"),
        ("[]".into(), "object"),
        ("{}".into(), "collection"),
        (r#"{"collection":1}"#.into(), "collection"),
        (r#"{"collection":""}"#.into(), "collection"),
        (r#"{"collection":"users","bogus":1}"#.into(), "bogus"),
        (r#"{"collection":"users","collection":"x"}"#.into(), "duplicate"),
        (r#"{"collection":"users","filter":{"gtt":["n",1]}}"#.into(), "unknown operator"),
        (r#"{"collection":"users","filter":{"eq":["n"]}}"#.into(), "filter.eq"),
        (r#"{"collection":"users","filter":{"eq":["n",1],"ne":["n",2]}}"#.into(), "filter"),
        (r#"{"collection":"users","filter":{"and":{"eq":["n",1]}}}"#.into(), "filter.and"),
        (r#"{"collection":"users","filter":{"eq":["",1]}}"#.into(), "path"),
        (r#"{"collection":"users","limit":-1}"#.into(), "limit"),
        (r#"{"collection":"users","offset":1.5}"#.into(), "offset"),
        (r#"{"collection":"users","sort":[{"field":"n","order":"up"}]}"#.into(), "order"),
        (r#"{"collection":"users","index":{"name":"by_email","ge":"x"}}"#.into(), "index"),
        (deep_filter, "deeper than 128 levels"),
    ];
    for (text, needle) in &cases {
        let m = invalid_message(QuerySpec::from_json(text), &text[..text.len().min(60)]);
        assert!(m.contains(needle), "{needle}: {m}");
    }
    let deep = format!("{}true{}", r#"{"or":["#.repeat(50_000), "]}".repeat(50_000));
    assert!(invalid_message(Filter::from_json(&deep), "deep filter").contains("deeper than 128 levels"));

    // Well-formed queries that cannot run: a missing index is NotFound, a
    // unique lookup with the wrong number of values or on a non-unique
    // index is InvalidArgument; the read transaction keeps working.
    let r = db.begin_read().unwrap();
    let c = r.collection(USERS).unwrap();
    let spec = QuerySpec::from_json(r#"{"collection":"users","index":{"name":"nope"}}"#).unwrap();
    assert!(matches!(c.query(&spec).map(drop), Err(Error::NotFound(_))), "a missing index");
    assert!(matches!(c.find_unique("nope", &[Value::Int(1)]), Err(Error::NotFound(_))));
    invalid_message(c.find_unique("by_email", &[]), "no values");
    invalid_message(c.find_unique("by_email", &[Value::Int(1), Value::Int(2)]), "two values");
    let ok = QuerySpec::from_json(r#"{"collection":"users","filter":{"lt":["n",3]}}"#).unwrap();
    assert_eq!(c.query(&ok).unwrap().count().unwrap(), 3);
    drop(c);
    drop(r);
    db.close().unwrap();
    assert_documents_intact(&Db::open_with(DB, options(&vfs)).unwrap());
}

#[test]
fn random_bytes_as_a_database_or_a_wal_never_panic() {
    let vfs = SimVfs::new();
    let bytes = sample(&vfs);
    let mut rng = 0x5EED_0BAD_F11E_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..200 {
        let len = (next() % 20_000) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // As a main file: refused (or, empty, a new database).
        vfs.write_file("/h/junk", &junk);
        match Db::open_with("/h/junk", options(&vfs)) {
            Ok(db) => {
                assert!(junk.is_empty(), "round {round}: {len} random bytes opened");
                db.close().unwrap();
            }
            Err(Error::InvalidArgument(_) | Error::Corruption { .. } | Error::Unsupported(_)) => {
                assert_eq!(vfs.read_file("/h/junk").unwrap(), junk, "round {round}: a refused open wrote");
            }
            Err(e) => panic!("round {round}: unexpected {e:?}"),
        }
        let _ = vfs.remove(Path::new("/h/junk"));
        let _ = vfs.remove(Path::new("/h/junk-wal"));
        // As the WAL beside a sound database: ignored (no valid frame) or
        // refused, and the database reads exactly as before.
        vfs.write_file(DB, &bytes);
        vfs.write_file(WAL, &junk);
        match Db::open_with(DB, options(&vfs)) {
            Ok(db) => {
                assert_sample_intact(&db);
                db.close().unwrap();
            }
            Err(Error::Corruption { .. } | Error::InvalidArgument(_)) => {
                assert_eq!(vfs.read_file(DB).unwrap(), bytes, "round {round}: a refused open wrote");
            }
            Err(e) => panic!("round {round}: random WAL: unexpected {e:?}"),
        }
        let _ = vfs.remove(Path::new(WAL));
    }
    vfs.write_file(DB, &bytes);
    assert_sample_intact(&Db::open_with(DB, options(&vfs)).unwrap());
}

#[test]
fn every_truncation_of_the_wal_recovers_a_prefix_of_the_commits() {
    let vfs = SimVfs::new();
    sample(&vfs);
    // Ten commits left in the WAL (no checkpoint), each adding one key.
    let db = Db::open_with(DB, Options { wal_autocheckpoint: 0, ..options(&vfs) }).unwrap();
    for i in 0u32..10 {
        let mut w = db.begin_write().unwrap();
        let t = w.open_tree("t").unwrap();
        w.insert(&t, &(1000 + i).to_be_bytes(), &vec![i as u8; 3000]).unwrap();
        w.commit().unwrap();
    }
    let main = vfs.read_file(DB).unwrap();
    let wal = vfs.read_file(WAL).unwrap();
    vfs.crash();
    drop(db);
    let mut last_seen = 0;
    for len in (0..wal.len()).step_by(997).chain([wal.len()]) {
        vfs.write_file(DB, &main);
        vfs.write_file(WAL, &wal[..len]);
        let db = Db::open_with(DB, options(&vfs)).unwrap_or_else(|e| panic!("WAL cut at {len}: {e:?}"));
        db.integrity_check().unwrap();
        let r = db.begin_read().unwrap();
        let t = r.open_tree("t").unwrap();
        let present: Vec<bool> =
            (0u32..10).map(|i| r.get(&t, &(1000 + i).to_be_bytes()).unwrap().is_some()).collect();
        let n = present.iter().take_while(|p| **p).count();
        assert!(present[n..].iter().all(|p| !p), "WAL cut at {len}: not a prefix: {present:?}");
        assert!(n >= last_seen, "WAL cut at {len}: fewer commits ({n}) than a shorter cut ({last_seen})");
        assert_eq!(r.count(&t).unwrap(), 400 + n as u64);
        last_seen = n;
        drop(r);
        db.close().unwrap();
        let _ = vfs.remove(Path::new(WAL));
    }
    assert_eq!(last_seen, 10, "the whole WAL recovers every commit");
}

#[test]
fn handles_outliving_their_database_or_transaction() {
    let vfs = SimVfs::new();
    let db = sample_with_documents(&vfs);
    // A detached collection cannot be reattached to a later transaction.
    let mut w = db.begin_write().unwrap();
    let detached = w.collection_mut(USERS).unwrap().detach();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    assert!(!detached.is_current(&w));
    assert!(w.reattach(detached).is_none());
    // A tree created in a rolled-back transaction is stale afterwards.
    let ghost = w.create_tree("ghost").unwrap();
    w.rollback();
    let mut w = db.begin_write().unwrap();
    let m = invalid_message(w.insert(&ghost, b"k", b"v"), "tree of a rolled-back transaction");
    assert!(m.contains("stale"), "{m}");
    w.rollback();
    // A read snapshot held past the close of the last handle keeps reading
    // its snapshot; the close leaves the WAL for the next open.
    let r = db.begin_read().unwrap();
    db.close().unwrap();
    assert_eq!(r.collection(USERS).unwrap().count().unwrap(), 50);
    drop(r);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    assert_documents_intact(&db);

    // A write transaction begun before the close of the last handle may
    // still commit, and the fold happens once the transaction ends.
    let mut w = db.begin_write().unwrap();
    w.kv_put("late", b"k", b"v").unwrap();
    db.close().unwrap();
    w.kv_put("late", b"k2", b"v2").unwrap();
    w.commit().unwrap();
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    assert_eq!(db.begin_read().unwrap().kv_get("late", b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_documents_intact(&db);
}

/// On the real file system, where the shared index is a `-shm` file: an
/// open refused because the file is junk or truncated leaves no `-wal` or
/// `-shm` beside it, and one that finds a `-wal` already there leaves it.
#[test]
fn a_refused_open_leaves_no_sidecar_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.obj");
    {
        let db = Db::open(&good).unwrap();
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, b"k", &[7u8; 5000]).unwrap();
        w.commit().unwrap();
        db.close().unwrap();
    }
    let bytes = std::fs::read(&good).unwrap();
    let sidecars = |p: &Path| {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        [p.with_file_name(format!("{name}-wal")), p.with_file_name(format!("{name}-shm"))]
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("junk", vec![b'x'; 10_000]),
        ("tiny", vec![0xff; 3]),
        ("short-header", bytes[..100].to_vec()),
        ("cut", bytes[..bytes.len() - 1].to_vec()),
    ];
    for (name, content) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, &content).unwrap();
        assert!(Db::open(&p).is_err(), "{name} opened");
        for side in sidecars(&p) {
            assert!(!side.exists(), "{name}: a refused open left {}", side.display());
        }
        assert_eq!(std::fs::read(&p).unwrap(), content, "{name}: a refused open changed the file");
    }
    // A -wal the user had (here, empty) is not ours to remove.
    let p = dir.path().join("junk-with-wal");
    std::fs::write(&p, vec![b'x'; 10_000]).unwrap();
    let [wal, shm] = sidecars(&p);
    std::fs::write(&wal, b"").unwrap();
    assert!(Db::open(&p).is_err());
    assert!(wal.exists() && !shm.exists());
    // The good database still opens, and its own files come and go as usual.
    let db = Db::open(&good).unwrap();
    assert!(sidecars(&good).iter().all(|s| s.exists()));
    assert!(db.begin_read().unwrap().find_tree("t").unwrap().is_some());
    db.close().unwrap();
    assert!(sidecars(&good).iter().all(|s| !s.exists()));
    // A refused page size creates no file at all.
    for size in [0, 512, 4095, 5000, 131_072] {
        let p = dir.path().join(format!("size-{size}.obj"));
        let r = Db::open_with(&p, Options { page_size: size, ..Options::default() });
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{size}: {r:?}");
        assert!(!p.exists(), "page size {size} left {}", p.display());
        assert!(sidecars(&p).iter().all(|s| !s.exists()));
    }
}

/// A handle to a dropped tree is refused, in its own transaction and in
/// later ones, even when a new tree took over the dropped tree's root page:
/// it never reads or writes the other tree.
#[test]
fn stale_tree_handles_are_refused() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let old = w.create_tree("old").unwrap();
    w.drop_tree("old").unwrap();
    let new = w.create_tree("new").unwrap();
    assert_eq!(old.root(), new.root(), "the test wants the root page reused");
    let stale = |r: Result<(), Error>| {
        assert!(matches!(r, Err(Error::InvalidArgument(ref m)) if m.contains("stale")), "{r:?}")
    };
    stale(w.insert(&old, b"x", b"oops").map(|_| ()));
    stale(w.get(&old, b"x").map(|_| ()));
    stale(w.count(&old).map(|_| ()));
    assert_eq!(w.get(&new, b"x").unwrap(), None);
    w.insert(&new, b"y", b"1").unwrap();
    w.commit().unwrap();

    // A handle from an earlier transaction whose tree was dropped since.
    let mut w = db.begin_write().unwrap();
    let a = w.create_tree("a").unwrap();
    w.insert(&a, b"k", b"a's").unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("a").unwrap();
    let b = w.create_tree("b").unwrap();
    w.commit().unwrap();
    assert_eq!(a.root(), b.root());
    let mut w = db.begin_write().unwrap();
    stale(w.insert(&a, b"x", b"oops").map(|_| ()));
    stale(w.delete(&a, b"x").map(|_| ()));
    drop(w);
    let r = db.begin_read().unwrap();
    stale(r.get(&a, b"k").map(|_| ()));
    stale(r.count(&a).map(|_| ()));
    stale(r.range(&a, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false).map(|_| ()));
    // A live handle from another transaction still works, with this
    // transaction's count.
    let new_r = r.open_tree("new").unwrap();
    let mut w = db.begin_write().unwrap();
    w.insert(&new_r, b"z", b"2").unwrap();
    assert_eq!(w.count(&new_r).unwrap(), 2);
    w.commit().unwrap();
    assert_eq!(db.begin_read().unwrap().count(&new_r).unwrap(), 2);
}

/// A catalog whose entry count disagrees with its tree (a damaged but
/// checksum-valid file) makes the write that would wrap the count a
/// corruption error, not a panic or a count of 2^64 - 1.
#[test]
fn catalog_entry_count_that_would_wrap_is_corruption() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    w.kv_put("n", b"key", b"value").unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    let mut bytes = vfs.read_file(DB).unwrap();
    let page_size = 4096;
    let at = bytes.windows(5).position(|w| w == b"$kv/n").expect("catalog entry");
    // The catalog value follows the key: root and entry count, one-byte
    // varints here; the count (1) becomes 0.
    let pgno = at / page_size;
    assert!(bytes[at + 5] < 0x80 && bytes[at + 6] == 1, "catalog value {:?}", &bytes[at + 5..at + 7]);
    bytes[at + 6] = 0;
    obj_engine::storage::page::seal_page(pgno as u32, &mut bytes[pgno * page_size..(pgno + 1) * page_size]);
    vfs.write_file(DB, &bytes);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let r = w.kv_delete("n", b"key");
    assert!(matches!(r, Err(Error::Corruption { .. })), "{r:?}");
}

/// A header that lost its catalog root (0) in a file that has pages is
/// corruption: the open must not start an empty catalog over the data.
#[test]
fn catalog_root_zero_in_a_populated_file_is_corruption() {
    let vfs = SimVfs::new();
    let mut bytes = sample(&vfs);
    bytes[52..56].copy_from_slice(&0u32.to_le_bytes());
    obj_engine::storage::page::seal_page(0, &mut bytes[..4096]);
    vfs.write_file(DB, &bytes);
    let r = Db::open_with(DB, options(&vfs));
    assert!(
        matches!(r, Err(Error::Corruption { ref message, .. }) if message.contains("no catalog root")),
        "{r:?}"
    );
    assert_eq!(vfs.read_file(DB).unwrap(), bytes, "a refused open writes nothing");
}

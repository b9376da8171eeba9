//! Hostile input through the Rust API: each gets its documented error and
//! leaves the database as it was (byte for byte when the open is refused).
//! Complements `recovery.rs`, which checks the error kinds of foreign,
//! newer and truncated files on the real file system. The last section
//! crafts damage that passes every checksum (pages resealed, WAL frames
//! chained); `hostile_alloc.rs`, a test binary of its own for its counting
//! allocator, adds a lying overflow length.

use std::path::Path;
use std::sync::Arc;

use obj_engine::btree::max_key_len;
use obj_engine::doc::json::{from_json_slice, from_json_str, MAX_NESTING};
use obj_engine::storage::file::Vfs;
use obj_engine::storage::page::seal_page;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Error, Filter, IndexSpec, Options, QuerySpec, ReadableTxn, Value};

const DB: &str = "/h/app.obj";
const WAL: &str = "/h/app.obj-wal";

fn options(vfs: &SimVfs) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() }
}

/// A closed database with a few trees, overflow values and free pages.
fn sample(vfs: &SimVfs) -> Vec<u8> {
    sample_with(vfs, |_| {})
}

/// [`sample`] with what `more` writes in its first transaction, once tree
/// "t" is made (so that the trees it makes have low root pages).
fn sample_with(vfs: &SimVfs, more: impl FnOnce(&mut obj_engine::WriteTxn)) -> Vec<u8> {
    let db = Db::open_with(DB, options(vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    more(&mut w);
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
    assert!(vfs.read_file(WAL).is_none(), "a clean close removes the WAL");
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
    seal_page(pgno as u32, &mut bytes[pgno * page_size..(pgno + 1) * page_size]);
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
    seal_page(0, &mut bytes[..4096]);
    vfs.write_file(DB, &bytes);
    let r = Db::open_with(DB, options(&vfs));
    assert!(
        matches!(r, Err(Error::Corruption { ref message, .. }) if message.contains("no catalog root")),
        "{r:?}"
    );
    assert_eq!(vfs.read_file(DB).unwrap(), bytes, "a refused open writes nothing");
}

// ---- Damage that passes every checksum ----
// A WAL whose commit counts more pages than the file and WAL can hold (the
// checkpoint would extend the main file to it), frames past their commit's
// page count or commits without page 0; catalog entries whose roots are the
// header, the catalog's own root or another tree's root; index entries that
// lead to the wrong document; a child pointer to the wrong subtree. Each is
// `Corruption`, never wrong data or a huge file.

const PS: usize = 4096;

/// [`sample`] with a second tree "u", collection "users" with a unique and
/// a standard index, and a key-value namespace.
fn sample_with_every_kind(vfs: &SimVfs) -> Vec<u8> {
    sample_with(vfs, |w| {
        let u = w.create_tree("u").unwrap();
        w.insert(&u, b"k", b"v").unwrap();
        let mut c = w.collection_mut("users").unwrap();
        c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
        c.create_index(IndexSpec::standard("by_age", "age").unwrap()).unwrap();
        for i in 0..50 {
            let doc = format!(r#"{{"email":"u{i}@x","age":{},"name":"n{i}"}}"#, i % 7);
            c.insert(&from_json_str(&doc).unwrap()).unwrap();
        }
        drop(c);
        w.kv_put("meta", b"k", b"v").unwrap();
    })
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn page(b: &mut [u8], n: u32) -> &mut [u8] {
    &mut b[n as usize * PS..(n as usize + 1) * PS]
}
fn pages(b: &[u8]) -> u32 {
    (b.len() / PS) as u32
}

/// (name, root, leaf page, offset of the root's varint) of every catalog
/// entry; the sample's catalog is one leaf.
fn catalog(b: &[u8]) -> Vec<(String, u32, u32, usize)> {
    let root = u32_at(b, 52);
    let p = &b[root as usize * PS..(root as usize + 1) * PS];
    assert_eq!(p[0], 2, "the sample's catalog is a single leaf");
    (0..u16_at(p, 2))
        .map(|i| {
            let off = u16_at(p, 16 + 2 * i);
            assert_eq!(p[off], 0, "inline catalog cell");
            let klen = u16_at(p, off + 1);
            let name = String::from_utf8(p[off + 5..off + 5 + klen].to_vec()).unwrap();
            let at = off + 5 + klen;
            let (mut v, mut shift, mut i) = (0u32, 0, at);
            loop {
                v |= ((p[i] & 0x7f) as u32) << shift;
                shift += 7;
                i += 1;
                if p[i - 1] & 0x80 == 0 {
                    break;
                }
            }
            (name, v, root, at)
        })
        .collect()
}

fn root_of(b: &[u8], name: &str) -> u32 {
    catalog(b).into_iter().find(|c| c.0 == name).unwrap().1
}

fn varint(v: u32) -> Vec<u8> {
    let (mut v, mut out) = (v, Vec::new());
    loop {
        if v < 0x80 {
            out.push(v as u8);
            return out;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
}

/// Points the catalog entry of `name` at `root` (a varint of the same
/// length as the old one) and reseals the catalog leaf.
fn set_root(b: &mut [u8], name: &str, root: u32) {
    let (_, old, leaf, at) = catalog(b).into_iter().find(|c| c.0 == name).unwrap();
    let (old, new) = (varint(old), varint(root));
    assert_eq!(old.len(), new.len(), "same varint length");
    let p = page(b, leaf);
    p[at..at + new.len()].copy_from_slice(&new);
    seal_page(leaf, p);
}

/// A WAL of the database `b` (same file id) holding `frames`, the last one
/// the commit frame with marker `marker`.
fn wal(b: &[u8], frames: &[(u32, Vec<u8>)], marker: u32) -> Vec<u8> {
    const SALT: u64 = 0x1234_5678_9abc_def0;
    let mut w = vec![0u8; 64];
    w[0..4].copy_from_slice(b"OBJW");
    put_u32(&mut w, 4, 1);
    put_u32(&mut w, 8, PS as u32);
    w[16..32].copy_from_slice(&b[24..40]);
    w[32..40].copy_from_slice(&SALT.to_le_bytes());
    w[40..48].copy_from_slice(&1u64.to_le_bytes());
    let mut chain = crc32fast::hash(&w[..60]);
    put_u32(&mut w, 60, chain);
    for (i, (pgno, image)) in frames.iter().enumerate() {
        let mut h = [0u8; 24];
        put_u32(&mut h, 0, *pgno);
        put_u32(&mut h, 4, if i + 1 == frames.len() { marker } else { 0 });
        h[8..16].copy_from_slice(&SALT.to_le_bytes());
        let mut c = crc32fast::Hasher::new_with_initial(chain);
        c.update(&h[..16]);
        c.update(&image[PS - 4..]);
        c.update(&image[..PS - 4]);
        chain = c.finalize();
        put_u32(&mut h, 16, chain);
        w.extend_from_slice(&h);
        w.extend_from_slice(image);
    }
    w
}

/// Page 0 of `b` as the next commit writes it, with `edit` applied.
fn next_page0(b: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut p = b[..PS].to_vec();
    let counter = u64::from_le_bytes(p[56..64].try_into().unwrap());
    p[56..64].copy_from_slice(&(counter + 1).to_le_bytes());
    p[72..80].copy_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    edit(&mut p);
    seal_page(0, &mut p);
    p
}

/// A sealed empty leaf for page `pgno`.
fn empty_leaf(pgno: u32) -> Vec<u8> {
    let mut img = vec![0u8; PS];
    img[0] = 2;
    put_u32(&mut img, 4, (PS - 4) as u32);
    seal_page(pgno, &mut img);
    img
}

fn corruption<T: std::fmt::Debug>(r: obj_engine::Result<T>, says: &str) -> String {
    match r {
        Err(e @ Error::Corruption { .. }) => {
            let m = e.to_string();
            assert!(m.contains(says), "{m:?} should say {says:?}");
            m
        }
        other => panic!("expected Corruption saying {says:?}, got {other:?}"),
    }
}

/// Installs `main` and `wal`, opens: it must be `Corruption` saying
/// `says`, leaving the main file as it was.
fn open_refused(vfs: &SimVfs, main: &[u8], wal: Vec<u8>, says: &str) {
    vfs.write_file(DB, main);
    vfs.write_file(WAL, &wal);
    corruption(Db::open_with(DB, options(vfs)), says);
    assert_eq!(vfs.read_file(DB).unwrap(), main, "the main file is left as it was");
    // Without the WAL the database opens as of its last checkpoint.
    vfs.write_file(WAL, &[]);
    let db = Db::open_with(DB, options(vfs)).unwrap();
    db.integrity_check().unwrap();
    db.close().unwrap();
}

// ---- A: page counts and page numbers taken from the WAL ----

#[test]
fn a_wal_commit_counting_more_pages_than_file_and_wal_hold_is_refused() {
    let vfs = SimVfs::new();
    let b = sample_with_every_kind(&vfs);
    // One frame: the file's pages plus fewer than 1 + 4096 / 4 more.
    let most = pages(&b) as u64 + 1 + (PS as u64 - 4) / 4;
    for count in [most as u32 + 1, 5000, 1 << 24, 0xFFFF_FFF0] {
        let p0 = next_page0(&b, |p| put_u32(p, 40, count));
        open_refused(&vfs, &b, wal(&b, &[(0, p0)], count), "its newest commit counts");
    }
}

#[test]
fn a_wal_frame_past_its_commits_page_count_is_refused() {
    let vfs = SimVfs::new();
    let b = sample_with_every_kind(&vfs);
    let n = pages(&b);
    let p0 = next_page0(&b, |_| {});
    // With page 0 (an ordinary commit) and without it.
    open_refused(&vfs, &b, wal(&b, &[(0, p0.clone()), (n + 3, empty_leaf(n + 3))], n), "past the");
    open_refused(&vfs, &b, wal(&b, &[(n + 3, empty_leaf(n + 3))], n), "past the");
    open_refused(&vfs, &b, wal(&b, &[(n, empty_leaf(n))], n), "past the");
}

#[test]
fn a_wal_commit_without_page_0_is_refused() {
    let vfs = SimVfs::new();
    let b = sample_with_every_kind(&vfs);
    let n = pages(&b);
    let leaf = root_of(&b, "u");
    let mut img = b[leaf as usize * PS..(leaf as usize + 1) * PS].to_vec();
    seal_page(leaf, &mut img);
    open_refused(&vfs, &b, wal(&b, &[(leaf, img)], n), "holds no page 0");
}

#[test]
fn a_wal_commit_marker_other_than_page_0s_count_is_refused() {
    let vfs = SimVfs::new();
    let b = sample_with_every_kind(&vfs);
    let n = pages(&b);
    let p0 = next_page0(&b, |_| {});
    open_refused(&vfs, &b, wal(&b, &[(0, p0)], n + 1), "its commit records");
}

/// The bound's worst real case: a transaction allocates pages past the end
/// and frees them again, so they are never written and only freelist
/// trunks (written) list them. Recovery and the checkpoint accept it.
#[test]
fn pages_allocated_and_freed_unwritten_are_within_the_bound() {
    let vfs = SimVfs::new();
    let opts = Options { wal_autocheckpoint: 0, ..options(&vfs) };
    let db = Db::open_with(DB, opts.clone()).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"a", b"b").unwrap();
    w.commit().unwrap();
    db.checkpoint().unwrap();
    let before = db.begin_read().unwrap().snapshot().header().page_count;
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    for i in 0u32..3000 {
        w.insert(&t, &i.to_be_bytes(), &[7; 3000]).unwrap();
    }
    for i in 0u32..3000 {
        w.delete(&t, &i.to_be_bytes()).unwrap();
    }
    w.commit().unwrap();
    let after = db.begin_read().unwrap().snapshot().header().page_count;
    let frames = db.stat().unwrap().wal_frames;
    assert!(after - before > 3000, "{before} -> {after}");
    assert!((after - before) as u64 > 10 * frames, "most pages were never written: {frames} frames");
    db.close_without_checkpoint();
    let db = Db::open_with(DB, opts).unwrap();
    db.integrity_check().unwrap();
    db.checkpoint().unwrap();
    assert_eq!(vfs.read_file(DB).unwrap().len(), after as usize * PS);
    db.close().unwrap();
}

// ---- B: tree roots taken from the catalog ----

#[test]
fn a_tree_rooted_at_the_catalogs_root_or_the_header_is_corruption() {
    let vfs = SimVfs::new();
    let good = sample_with_every_kind(&vfs);
    let catalog_root = u32_at(&good, 52);
    for (root, says) in [(catalog_root, "the catalog's root"), (0, "the header")] {
        let mut b = good.clone();
        set_root(&mut b, "t", root);
        vfs.write_file(DB, &b);
        let db = Db::open_with(DB, options(&vfs)).unwrap();
        let r = db.begin_read().unwrap();
        let m = corruption(r.open_tree("t"), says);
        assert!(m.contains("\"t\""), "{m}");
        drop(r);
        corruption(db.export_all(Vec::new()), says);
        let mut w = db.begin_write().unwrap();
        corruption(w.open_tree("t"), says);
        corruption(w.create_tree("t"), says);
        drop(w);
        // The other trees read as before.
        let r = db.begin_read().unwrap();
        let u = r.open_tree("u").unwrap();
        assert_eq!(r.get(&u, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        drop(r);
        db.close().unwrap();
    }
}

#[test]
fn trees_of_a_collection_sharing_a_root_are_corruption() {
    let vfs = SimVfs::new();
    let good = sample_with_every_kind(&vfs);
    let docs = root_of(&good, "$docs/users");
    // (A name dictionary read as the documents has gaps: that is found first.)
    let names = catalog(&good).into_iter().find(|c| c.0.starts_with("$names")).unwrap().0;
    for (tree, root, says) in [
        ("$index/users/by_email", docs, "the same root page"),
        ("$index/users/by_age", root_of(&good, "$index/users/by_email"), "the same root page"),
        (&names[..], docs, ""),
        (&names[..], root_of(&good, "$index/users/by_age"), ""),
    ] {
        let mut b = good.clone();
        set_root(&mut b, tree, root);
        vfs.write_file(DB, &b);
        let db = Db::open_with(DB, options(&vfs)).unwrap();
        let r = db.begin_read().unwrap();
        corruption(r.collection("users").map(|_| ()), says);
        drop(r);
        let mut w = db.begin_write().unwrap();
        corruption(w.collection_mut("users").map(|_| ()), says);
        drop(w);
        corruption(db.compact_to("/h/copy.obj"), "the same root page");
        db.close().unwrap();
    }
}

#[test]
fn two_trees_sharing_a_root_are_corruption_not_a_stale_handle() {
    let vfs = SimVfs::new();
    let mut b = sample_with_every_kind(&vfs);
    let t = root_of(&b, "t");
    let u = root_of(&b, "u");
    assert_eq!(varint(t).len(), varint(u).len());
    set_root(&mut b, "u", t);
    vfs.write_file(DB, &b);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let tt = w.open_tree("t").unwrap();
    let uu = w.open_tree("u").unwrap();
    w.insert(&tt, b"x", b"1").unwrap();
    let m = corruption(w.insert(&uu, b"y", b"2"), "the same root page");
    assert!(m.contains("\"t\"") && m.contains("\"u\""), "{m}");
    drop(w);
    db.close().unwrap();
}

#[test]
fn a_catalog_root_naming_a_data_tree_is_caught_before_a_create_writes_into_it() {
    let vfs = SimVfs::new();
    let mut b = sample_with_every_kind(&vfs);
    let t = root_of(&b, "t");
    put_u32(&mut b, 52, t);
    seal_page(0, page(&mut b, 0));
    vfs.write_file(DB, &b);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    corruption(w.create_tree("new"), "the catalog");
    drop(w);
    let mut w = db.begin_write().unwrap();
    corruption(w.kv_put("other", b"k", b"v").map(|_| ()), "the catalog");
    drop(w);
    let mut w = db.begin_write().unwrap();
    corruption(w.collection_mut("people").map(|_| ()), "the catalog");
    drop(w);
    db.close().unwrap();
    assert_eq!(vfs.read_file(DB).unwrap(), b, "nothing was written");
}

// ---- C: index entries that do not match the document they lead to ----

/// `good` with the index entry of key `key` (bytes) holding id `from`
/// (after the key in a unique index's value, at the key's end in a standard
/// one) made to hold `to`, on a resealed page.
fn repoint(good: &[u8], key: &[u8], from: u64, to: u64) -> Vec<u8> {
    let mut b = good.to_vec();
    let mut want = key.to_vec();
    want.extend_from_slice(&from.to_be_bytes());
    let at = b.windows(want.len()).position(|w| w == want).expect("the index entry");
    b[at + key.len()..at + want.len()].copy_from_slice(&to.to_be_bytes());
    let pgno = (at / PS) as u32;
    seal_page(pgno, page(&mut b, pgno));
    b
}

fn query_ids(db: &Db, json: &str) -> obj_engine::Result<Vec<u64>> {
    let spec = obj_engine::QuerySpec::from_json(json).unwrap();
    let r = db.begin_read()?;
    let c = r.collection("users")?;
    let ids = c.query(&spec)?.map(|row| row.map(|r| r.0)).collect();
    ids
}

#[test]
fn an_index_entry_leading_to_another_document_is_corruption_not_that_document() {
    let vfs = SimVfs::new();
    let good = sample_with_every_kind(&vfs);
    let email = |s: &str| [&[0x40][..], s.as_bytes(), &[0]].concat();
    let find = |db: &Db, key: &str| {
        let r = db.begin_read().unwrap();
        let c = r.collection("users").unwrap();
        c.find_unique("by_email", &[from_json_str(&format!("{key:?}")).unwrap()]).map(|f| f.map(|(id, _)| id))
    };
    // u5@x is document 6; its entry made to lead to document 10 (u9@x),
    // then to a document that does not exist.
    for (to, says) in [(10, "non-matching document 10"), (999, "missing document 999")] {
        vfs.write_file(DB, &repoint(&good, &email("u5@x"), 6, to));
        let db = Db::open_with(DB, options(&vfs)).unwrap();
        corruption(find(&db, "u5@x"), says);
        let eq = r#"{"collection":"users","filter":{"eq":["email","u5@x"]}}"#;
        let m = corruption(query_ids(&db, eq), &to.to_string());
        assert!(m.contains(r#"index "by_email" of "users""#), "{m}");
        assert_eq!(find(&db, "u4@x").unwrap(), Some(5), "the other entries serve");
        db.close().unwrap();
    }
    // A standard index: (age 5, document 6) made to lead to document 10
    // (age 2), for equality and for a sort read through the index.
    vfs.write_file(DB, &repoint(&good, &[0x1f, 5 << 1], 6, 10));
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    for q in [
        r#"{"collection":"users","filter":{"eq":["age",5]}}"#,
        r#"{"collection":"users","sort":[{"field":"age","order":"desc"}]}"#,
    ] {
        corruption(query_ids(&db, q), "index entry holds a key the document does not have");
    }
    assert_eq!(query_ids(&db, r#"{"collection":"users","filter":{"eq":["age",4]}}"#).unwrap().len(), 7);
    db.close().unwrap();
}

// ---- D: a point lookup that reaches a leaf in the wrong place ----

#[test]
fn a_point_lookup_reaching_a_misplaced_leaf_is_corruption_not_a_miss() {
    let vfs = SimVfs::new();
    let good = sample_with_every_kind(&vfs);
    let root = root_of(&good, "t");
    // Children 2 and 5 of t's root swapped: their keys lead to each other's leaves.
    let mut b = good.clone();
    let p = page(&mut b, root);
    let (o2, o5) = (u16_at(p, 16 + 4), u16_at(p, 16 + 10));
    let (c2, c5) = (u32_at(p, o2), u32_at(p, o5));
    put_u32(p, o2, c5);
    put_u32(p, o5, c2);
    seal_page(root, page(&mut b, root));
    vfs.write_file(DB, &b);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    let mut damaged = 0;
    for i in 0u32..400 {
        match r.get(&t, &i.to_be_bytes()) {
            Ok(found) => assert_eq!(found, Some(vec![i as u8; (i as usize * 37) % 6000]), "key {i}"),
            Err(e) => {
                assert!(e.is_corruption() && e.to_string().contains("misplaced"), "{e}");
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "the keys of the swapped children are not all found");
    // Keys absent from a leaf in its place are a plain miss.
    assert_eq!(r.get(&t, &400u32.to_be_bytes()).unwrap(), None);
    assert_eq!(r.get(&t, b"").unwrap(), None);
}

#[test]
fn an_index_entry_leading_to_a_raw_document_is_corruption() {
    // (found by the review: an index-served query passed over it)
    let vfs = SimVfs::new();
    let good = sample_with_every_kind(&vfs);
    // Document 6 (u5@x, age 5): its header's flags byte says RAW.
    let mut b = good.clone();
    let stored = [&6u64.to_be_bytes()[..], &[1, 0, 0]].concat();
    let at = b.windows(stored.len()).position(|w| w == stored).expect("document 6");
    b[at + 10] = 0x01;
    let pgno = (at / PS) as u32;
    seal_page(pgno, page(&mut b, pgno));
    vfs.write_file(DB, &b);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let eq = r#"{"collection":"users","filter":{"eq":["age",5]}}"#;
    corruption(query_ids(&db, eq), "leads to a raw document");
    let r = db.begin_read().unwrap();
    let c = r.collection("users").unwrap();
    corruption(c.find_unique("by_email", &[from_json_str(r#""u5@x""#).unwrap()]), "non-matching document 6");
}

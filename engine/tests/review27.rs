//! Review 27: what a Rust embedder's review found.
//!
//! - `export_all` wrote collections and key-value namespaces but not the
//!   plain B+trees a Rust user makes with `WriteTxn::create_tree` (the
//!   README's first example), so an export followed by an import lost them
//!   without a word. They are now sections of their own, and import
//!   recreates them.

use obj_engine::{Db, ImportOptions, ReadableTxn};

fn entries(db: &Db, tree: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let r = db.begin_read().unwrap();
    let t = r.open_tree(tree).unwrap();
    r.range(&t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
}

#[test]
fn export_all_and_import_keep_plain_trees() {
    let dir = tempfile::tempdir().unwrap();
    let src = Db::open(dir.path().join("src.obj")).unwrap();
    let mut w = src.begin_write().unwrap();
    let users = w.create_tree("users").unwrap();
    for i in 0u32..2_500 {
        w.insert(&users, &i.to_be_bytes(), format!("user {i}").as_bytes()).unwrap();
    }
    w.insert(&users, b"", b"").unwrap(); // an empty key and value
    w.create_tree("empty").unwrap();
    w.kv_put("settings", b"theme", b"dark").unwrap();
    w.commit().unwrap();

    let mut out = Vec::new();
    let report = src.export_all(&mut out).unwrap();
    assert_eq!((report.trees, report.tree_entries), (2, 2_501));
    assert_eq!((report.kv_namespaces, report.kv_entries), (1, 1));
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains(r#"{"obj_export":1,"tree":"users","count":2501}"#), "{}", &text[..200]);

    // In one transaction, and in batches smaller than a section.
    for batch_size in [None, Some(7)] {
        let dst = Db::open(dir.path().join(format!("dst{batch_size:?}.obj"))).unwrap();
        let imported = dst.import(&out[..], ImportOptions { batch_size }).unwrap();
        assert_eq!((imported.trees, imported.tree_entries), (2, 2_501));
        assert_eq!(entries(&dst, "users"), entries(&src, "users"));
        assert!(entries(&dst, "empty").is_empty());
        let r = dst.begin_read().unwrap();
        assert_eq!(r.kv_get("settings", b"theme").unwrap().as_deref(), Some(&b"dark"[..]));
        drop(r);
        // The engine's own trees ($-names) are not sections of their own.
        let mut again = Vec::new();
        dst.export_all(&mut again).unwrap();
        assert_eq!(again, out);
    }
}

#[test]
fn a_tree_section_is_checked_like_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    for (input, needle) in [
        ("{\"obj_export\":1,\"tree\":\"t\",\"count\":2}\n{\"key\":{\"$bytes\":\"YQ==\"},\"value\":{\"$bytes\":\"Yg==\"}}\n", "announces 2"),
        ("{\"obj_export\":1,\"tree\":\"t\",\"count\":0,\"x\":1}\n", "unexpected field"),
        ("{\"obj_export\":1,\"tree\":\"$docs/c\",\"count\":0}\n", "reserved"),
        ("{\"obj_export\":1,\"tree\":\"t\",\"count\":1}\n{\"key\":\"a\",\"value\":\"b\"}\n", "must be bytes"),
    ] {
        let e = db.import(input.as_bytes(), ImportOptions::default()).unwrap_err();
        assert!(matches!(e, obj_engine::Error::InvalidArgument(_)), "{input}: {e}");
        assert!(e.to_string().contains(needle), "{input}: {e}");
        let r = db.begin_read().unwrap();
        assert!(r.open_tree("t").is_err(), "{input}: left a trace");
    }
}

// - A document with many keys took time in the square of their number
//   once its collection existed (400,000 keys: 22.5 s, holding the write
//   lock): each key was checked against every earlier one for a repeat.
//   Large maps now go through a hash set; a repeated key is still refused
//   wherever it is.

#[test]
fn a_map_of_many_keys_round_trips_and_a_late_repeat_is_refused() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("wide").unwrap();
    c.insert_json(br#"{"first": 1}"#, 0).unwrap(); // the collection exists: the direct JSON path
    let n = 20_000;
    let body: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
    let json = format!("{{{}}}", body.join(","));
    let id = c.insert_json(json.as_bytes(), 0).unwrap();
    for repeated in ["k0", "k17", "k19999"] {
        let bad = format!("{{{},\"{repeated}\":0}}", body.join(","));
        let e = c.insert_json(bad.as_bytes(), 0).unwrap_err();
        assert!(e.to_string().contains(repeated), "{e}");
    }
    drop(c);
    w.commit().unwrap();
    // Read back through serde (the typed decoder checks repeats too).
    let r = db.begin_read().unwrap();
    let got: BTreeMap<String, u64> = r.collection("wide").unwrap().get_as(id).unwrap().unwrap();
    assert_eq!(got.len(), n);
    assert_eq!(got["k12345"], 12_345);
}

// - A database left with commits in its `-wal` (a crash), then opened and
//   written through a hard link (whose name has no `-wal`), and then opened
//   by its own name again: recovery replayed the old WAL over the main
//   file, which by then held the link's commit under the same commit
//   number, so the link's write vanished and integrity_check passed. Every
//   page 0 committed through a WAL now names that WAL's generation, and
//   recovery refuses a WAL whose commit the main file holds from another.

fn tree_rows(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries(db, "t")
}

#[test]
fn a_wal_the_main_file_moved_on_without_is_refused() {
    use obj_engine::Options;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.obj");
    let link = dir.path().join("db.hard");
    let opts = || Options { wal_autocheckpoint: 0, ..Options::default() };
    let db = Db::open_with(&path, opts()).unwrap();
    let mut w = db.begin_write().unwrap();
    w.create_tree("t").unwrap();
    w.commit().unwrap();
    db.checkpoint().unwrap();
    for i in 0u8..5 {
        let mut w = db.begin_write().unwrap();
        let t = w.open_tree("t").unwrap();
        w.insert(&t, &[i], b"parent").unwrap();
        w.commit().unwrap();
    }
    db.close_without_checkpoint(); // as a crash leaves it: 5 commits in db.obj-wal
    std::fs::hard_link(&path, &link).unwrap();

    let other = Db::open_with(&link, opts()).unwrap();
    assert!(tree_rows(&other).is_empty(), "the link sees the main file alone");
    let mut w = other.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.insert(&t, b"x", b"through the link").unwrap();
    w.commit().unwrap();
    other.close().unwrap(); // folds its own WAL into the shared main file

    let e = Db::open_with(&path, opts()).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("another WAL"), "{e}");
    // Moved away, as the message says: the main file opens with the link's commit.
    std::fs::rename(dir.path().join("db.obj-wal"), dir.path().join("old-wal")).unwrap();
    let _ = std::fs::remove_file(dir.path().join("db.obj-shm"));
    let db = Db::open(&path).unwrap();
    assert_eq!(tree_rows(&db), vec![(b"x".to_vec(), b"through the link".to_vec())]);
    db.integrity_check().unwrap();
}

#[test]
fn crashes_and_checkpoints_still_recover_with_the_stamp() {
    use obj_engine::Options;
    // A partial history: some commits checkpointed from this WAL, more
    // after them in it, then a crash. Recovery takes the WAL.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.obj");
    let opts = || Options { wal_autocheckpoint: 0, ..Options::default() };
    let db = Db::open_with(&path, opts()).unwrap();
    for round in 0u8..3 {
        for i in 0u8..4 {
            let mut w = db.begin_write().unwrap();
            let t = w.create_tree("t").unwrap();
            w.insert(&t, &[round, i], b"v").unwrap();
            w.commit().unwrap();
            if i == 1 {
                // Copies what readers allow, with a reader pinning: partial.
                let r = db.begin_read().unwrap();
                let mut w = db.begin_write().unwrap();
                let t = w.open_tree("t").unwrap();
                w.insert(&t, &[round, 9], b"after the reader").unwrap();
                w.commit().unwrap();
                db.checkpoint().unwrap();
                drop(r);
            }
        }
    }
    let expected = tree_rows(&db);
    db.close_without_checkpoint();
    let db = Db::open_with(&path, opts()).unwrap();
    assert_eq!(tree_rows(&db), expected);
    db.integrity_check().unwrap();
}

// - An export to a directory wrote the whole export to a temporary file
//   and then failed at the rename with an I/O error; backup and restore
//   refuse a directory at once as InvalidArgument. So does export now.

#[test]
fn an_export_to_a_directory_is_refused_before_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    w.kv_put("n", b"k", b"v").unwrap();
    w.commit().unwrap();
    let target = dir.path().join("out");
    std::fs::create_dir(&target).unwrap();
    let e = db.export_to_path(None, &target).unwrap_err();
    assert!(matches!(e, obj_engine::Error::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("is a directory"), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".tmp")), "{left:?}");
}

// - A unique violation between two documents of one insert_many named
//   "document 3", the id the batch's first document would have had: the
//   failed batch wrote nothing, so no such document exists. It now names
//   both places in the batch. Against a document stored before the batch
//   the message names its id, and (since review 50) the batch document's
//   place, which it had left out.

#[test]
fn a_repeat_inside_a_batch_names_its_places_in_the_batch() {
    use obj_engine::{IndexKind, IndexSpec, Value};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("u").unwrap();
    c.create_index(IndexSpec::new("by_e", IndexKind::Unique, &["e"]).unwrap()).unwrap();
    c.insert_json(br#"{"e": "stored"}"#, 0).unwrap(); // id 1
    let doc = |e: &str| Value::Map(vec![("e".into(), Value::from(e))]);
    // Through the Value path, the JSON path and a large JSON batch (encoded on a second thread).
    let e = c.insert_many(&[doc("a"), doc("b"), doc("a")]).unwrap_err();
    assert!(
        e.to_string().contains("document 2 of the batch (from 0) repeats the value of document 0"),
        "{e}"
    );
    let e = c.insert_json_many(br#"[{"e":"x"},{"e":"x"}]"#, 0, |_| Ok(())).unwrap_err();
    assert!(
        e.to_string().contains("document 1 of the batch (from 0) repeats the value of document 0"),
        "{e}"
    );
    let mut big: Vec<String> =
        (0..30_000).map(|i| format!(r#"{{"e":"k{i}","pad":"{}"}}"#, "p".repeat(40))).collect();
    big.push(r#"{"e":"k7"}"#.to_string());
    let e = c.insert_json_many(format!("[{}]", big.join(",")).as_bytes(), 0, |_| Ok(())).unwrap_err();
    assert!(
        e.to_string().contains("document 30000 of the batch (from 0) repeats the value of document 7"),
        "{e}"
    );
    // Against a stored document: its id, which exists, and the place in the batch.
    let e = c.insert_many(&[doc("c"), doc("stored")]).unwrap_err();
    assert!(e.to_string().contains("already holds this value (document 1)"), "{e}");
    assert!(e.to_string().contains("document 1 of the batch (from 0) repeats it"), "{e}");
    let e = c.insert_json_many(br#"[{"e":"y"},{"e":"z"},{"e":"stored"}]"#, 0, |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("(document 1): document 2 of the batch (from 0) repeats it"), "{e}");
    // Nothing of the batches stayed, and a single insert still names the id.
    assert_eq!(c.count().unwrap(), 1);
    let e = c.insert(&doc("stored")).unwrap_err();
    assert!(e.to_string().contains("(document 1)"), "{e}");
}

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

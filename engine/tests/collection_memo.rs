//! A collection's loaded state is kept between transactions that see the
//! same committed state (`storage::memo`). These tests change collections
//! in every way a state can change, through two handles that act as two
//! processes, and check after each step that every handle answers exactly
//! as a handle that has never read the collection before.

use std::sync::Arc;

use obj_engine::storage::file::OsVfs;
use obj_engine::{CollectionOptions, Db, Error, IndexSpec, Options, ReadTxn, SyncMode};

mod common;
use common::next_rand;

/// Options of a handle that acts as its own process (its own pager, so its
/// own memo).
fn own_process() -> Options {
    Options { vfs: Some(Arc::new(OsVfs)), sync_mode: SyncMode::Off, ..Options::default() }
}

/// Everything a reader can learn about collection `name` in `rx`, as text.
fn describe(rx: &ReadTxn, name: &str) -> String {
    let c = match rx.collection(name) {
        Ok(c) => c,
        Err(Error::NotFound(_)) => return "missing".into(),
        Err(e) => panic!("collection {name}: {e}"),
    };
    let mut out = format!(
        "{:?} count={} next={} indexes={:?}\n",
        c.kind(),
        c.count().unwrap(),
        c.next_id(),
        c.indexes().iter().map(|i| (&i.spec.name, i.spec.kind, i.status)).collect::<Vec<_>>()
    );
    let ids: Vec<u64> = c.ids().unwrap().map(|r| r.unwrap()).collect();
    for id in ids {
        if c.kind() == obj_engine::CollectionKind::Raw {
            out.push_str(&format!("{id}: {:?}\n", c.get_raw(id).unwrap()));
            continue;
        }
        let mut json = Vec::new();
        c.get_json(id, &mut json).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        out.push_str(&format!("{id}: {doc}\n"));
        // Every unique key of the document finds it.
        for info in c.indexes().iter().filter(|i| i.spec.kind == obj_engine::IndexKind::Unique) {
            if let Some(v) = doc.get(info.spec.fields[0].to_string()).and_then(|v| v.as_str()) {
                let found = c.find_unique(&info.spec.name, &[obj_engine::Value::from(v)]).unwrap();
                out.push_str(&format!("  {} {v} -> {:?}\n", info.spec.name, found.map(|f| f.0)));
            }
        }
    }
    out
}

#[test]
fn every_handle_answers_like_a_fresh_one_after_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memo.obj");
    let a = Db::open_with(&path, own_process()).unwrap();
    let b = Db::open_with(&path, own_process()).unwrap();
    let names = ["c1", "c2"];
    let mut seed = 0x5eed_u64;
    for step in 0..300 {
        let writer = if next_rand(&mut seed).is_multiple_of(2) { &a } else { &b };
        let name = names[(next_rand(&mut seed) % 2) as usize];
        // Readers on both handles load the state before the change (the
        // memo then holds it).
        for db in [&a, &b] {
            let _ = describe(&db.begin_read().unwrap(), name);
        }
        let mut w = writer.begin_write().unwrap();
        let op = next_rand(&mut seed) % 10;
        let k = next_rand(&mut seed) % 5;
        let outcome = (|| -> obj_engine::Result<()> {
            match op {
                // A document with a field name no document had before.
                0 | 1 => {
                    let doc = format!(r#"{{"email":"u{k}@x","f{step}":{step}}}"#);
                    w.collection_mut(name)?.insert_json(doc.as_bytes(), 1).map(|_| ())
                }
                2 => w.collection_mut(name)?.upsert_json(k + 1, br#"{"email":"up","n":1}"#, 1).map(|_| ()),
                3 => w.collection_mut(name)?.delete(k + 1).map(|_| ()),
                4 => w.collection_mut(name)?.create_index(IndexSpec::unique("by_email", "email")?),
                5 => w.collection_mut(name)?.create_index(IndexSpec::standard(&format!("i{k}"), "n")?),
                6 => w.collection_mut(name)?.drop_index(&format!("i{k}")),
                7 => w.drop_collection(name),
                8 => w.raw_collection_mut(name)?.insert_raw(format!("raw {step}").as_bytes()).map(|_| ()),
                _ => w.create_collection(name, CollectionOptions { raw: false }),
            }
        })();
        // Failed steps (a unique violation, a missing index) roll back.
        if outcome.is_ok() && !next_rand(&mut seed).is_multiple_of(4) {
            w.commit().unwrap();
        } else {
            drop(w);
        }
        let fresh = Db::open_with(&path, own_process()).unwrap();
        for n in names {
            let truth = describe(&fresh.begin_read().unwrap(), n);
            for (h, db) in [("a", &a), ("b", &b)] {
                // Twice: the first read fills the memo, the second reads it.
                for _ in 0..2 {
                    assert_eq!(describe(&db.begin_read().unwrap(), n), truth, "step {step}, handle {h}, {n}");
                }
                // A write transaction that has not written yet sees it too.
                let w = db.begin_write().unwrap();
                let seen = match w.collection(n) {
                    Ok(c) => format!("{:?} {} {:?}", c.kind(), c.next_id(), c.indexes()),
                    Err(Error::NotFound(_)) => "missing".into(),
                    Err(e) => panic!("{e}"),
                };
                let rx = fresh.begin_read().unwrap();
                let want = match rx.collection(n) {
                    Ok(c) => format!("{:?} {} {:?}", c.kind(), c.next_id(), c.indexes()),
                    Err(Error::NotFound(_)) => "missing".into(),
                    Err(e) => panic!("{e}"),
                };
                assert_eq!(seen, want, "step {step}, handle {h}, write view of {n}");
            }
        }
        fresh.close().unwrap();
    }
}

#[test]
fn a_reader_keeps_its_state_while_a_writer_changes_the_kept_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("old.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    w.collection_mut("orders").unwrap().insert_json(br#"{"email":"a@x"}"#, 1).unwrap();
    w.commit().unwrap();

    let old = db.begin_read().unwrap();
    assert!(old.collection("orders").unwrap().indexes().is_empty());
    // The writer starts from the state the reader just kept, and changes
    // it: its index and its new field name must stay its own.
    let mut w = db.begin_write().unwrap();
    {
        let mut c = w.collection_mut("orders").unwrap();
        c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
        c.insert_json(br#"{"email":"b@x","new_field":1}"#, 1).unwrap();
    }
    // Before and after the commit, the older reader sees its own state.
    assert!(old.collection("orders").unwrap().indexes().is_empty());
    w.commit().unwrap();
    let c = old.collection("orders").unwrap();
    assert!(c.indexes().is_empty());
    assert_eq!(c.count().unwrap(), 1);
    assert!(matches!(c.find_unique("by_email", &["a@x".into()]), Err(Error::NotFound(_))));

    let new = db.begin_read().unwrap();
    let c = new.collection("orders").unwrap();
    assert_eq!(c.indexes().len(), 1);
    assert_eq!(c.count().unwrap(), 2);
    assert_eq!(c.find_unique("by_email", &["b@x".into()]).unwrap().map(|f| f.0), Some(2));
    let mut json = Vec::new();
    c.get_json(2, &mut json).unwrap();
    assert_eq!(json, br#"{"email":"b@x","new_field":1}"#);
    // The old reader still answers as of its snapshot, after the memo moved on.
    assert!(old.collection("orders").unwrap().indexes().is_empty());
}

#[test]
fn a_rolled_back_writer_leaves_the_kept_state_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("rb.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    w.collection_mut("c").unwrap().insert_json(br#"{"a":1}"#, 1).unwrap();
    w.commit().unwrap();
    let before = describe(&db.begin_read().unwrap(), "c");
    for _ in 0..3 {
        let mut w = db.begin_write().unwrap();
        let mut c = w.collection_mut("c").unwrap();
        c.create_index(IndexSpec::standard("by_b", "b").unwrap()).unwrap();
        c.insert_json(br#"{"b":2,"zz":3}"#, 1).unwrap();
        drop(c);
        w.rollback();
        assert_eq!(describe(&db.begin_read().unwrap(), "c"), before);
    }
}

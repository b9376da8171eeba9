//! A collection's loaded state is kept between transactions that see the
//! same committed state (`storage::memo`). These tests change collections
//! in every way a state can change (documents with new field names,
//! indexes created, built in batches and dropped, collections dropped and
//! made again as the other kind, failed operations in a transaction that
//! commits, compaction, imports, rekeying, handles closed and reopened),
//! through handles sharing one engine and handles acting as other
//! processes, and check after each step that every handle answers exactly
//! as a handle that has never read the collection before.

use std::sync::Arc;

use obj_engine::{
    CollectionKind, CollectionOptions, Db, Error, ImportOptions, IndexKind, IndexSpec, Options, ReadTxn,
    SyncMode, Value,
};

mod common;
use common::{next_rand, own_process};

/// Options of a handle that shares the registry's engine.
fn shared() -> Options {
    Options { sync_mode: SyncMode::Off, ..Options::default() }
}

/// Everything a reader can learn about collection `name` in `rx`.
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
        c.indexes()
            .iter()
            .map(|i| (&i.spec.name, i.spec.kind, i.status, i.built_upto, i.single_valued))
            .collect::<Vec<_>>()
    );
    let ids: Vec<u64> = c.ids().unwrap().map(|r| r.unwrap()).collect();
    for id in ids {
        if c.kind() == CollectionKind::Raw {
            out.push_str(&format!("{id}: {:?}\n", c.get_raw(id).unwrap()));
            continue;
        }
        let mut json = Vec::new();
        c.get_json(id, &mut json).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        out.push_str(&format!("{id}: {doc}\n"));
        for info in c.indexes().iter().filter(|i| i.spec.kind == IndexKind::Unique) {
            if let Some(v) = doc.get(info.spec.fields[0].to_string()).and_then(|v| v.as_str()) {
                let found = c.find_unique(&info.spec.name, &[Value::from(v)]).unwrap();
                out.push_str(&format!("  {} {v} -> {:?}\n", info.spec.name, found.map(|f| f.0)));
            }
        }
    }
    out
}

/// Every handle's view of every collection in `names`, read twice (the
/// first read fills the memo, the second takes from it) and by a write
/// transaction that has not written, against a handle opened fresh.
fn check_all(path: &std::path::Path, handles: &[Option<Db>], names: &[&str], step: usize, what: &str) {
    let fresh = Db::open_with(path, own_process()).unwrap();
    for n in names {
        let truth = describe(&fresh.begin_read().unwrap(), n);
        for (h, db) in handles.iter().enumerate() {
            let Some(db) = db else { continue };
            for _ in 0..2 {
                assert_eq!(
                    describe(&db.begin_read().unwrap(), n),
                    truth,
                    "step {step} ({what}), handle {h}, {n}"
                );
            }
            let w = db.begin_write().unwrap();
            let seen = match w.collection(n) {
                Ok(c) => format!("{:?} {} {} {:?}", c.kind(), c.next_id(), c.count().unwrap(), c.indexes()),
                Err(Error::NotFound(_)) => "missing".into(),
                Err(e) => panic!("{e}"),
            };
            drop(w);
            let rx = fresh.begin_read().unwrap();
            let want = match rx.collection(n) {
                Ok(c) => format!("{:?} {} {} {:?}", c.kind(), c.next_id(), c.count().unwrap(), c.indexes()),
                Err(Error::NotFound(_)) => "missing".into(),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(seen, want, "step {step} ({what}), handle {h}, write view of {n}");
        }
    }
    fresh.close().unwrap();
}

/// Random changes of every kind, through a registry handle, a second
/// handle sharing its engine, and a handle acting as another process.
#[test]
fn handles_answer_like_fresh_ones_after_database_wide_operations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memo14.obj");
    let mut handles: Vec<Option<Db>> = vec![
        Some(Db::open_with(&path, shared()).unwrap()),
        Some(Db::open_with(&path, shared()).unwrap()),
        Some(Db::open_with(&path, own_process()).unwrap()),
    ];
    let names = ["c1", "c2"];
    let mut seed = 0x1414_u64;
    for step in 0..250 {
        let hi = (next_rand(&mut seed) % 3) as usize;
        if handles[hi].is_none() {
            handles[hi] = Some(Db::open_with(&path, if hi == 2 { own_process() } else { shared() }).unwrap());
        }
        let name = names[(next_rand(&mut seed) % 2) as usize];
        for db in handles.iter().flatten() {
            let _ = describe(&db.begin_read().unwrap(), name);
        }
        let db = handles[hi].as_ref().unwrap();
        let op = next_rand(&mut seed) % 22;
        let k = next_rand(&mut seed) % 5;
        let what;
        match op {
            0..=9 => {
                what = format!("txn op {op}");
                let mut w = db.begin_write().unwrap();
                // Read through the memo first (a write transaction that has
                // not written yet takes from it).
                let _ = w.collection(name).map(|c| c.count());
                let outcome = (|| -> obj_engine::Result<()> {
                    match op {
                        0 | 1 => {
                            let doc = format!(r#"{{"email":"u{k}@x","f{step}":{step},"n":[{k},{k}]}}"#);
                            w.collection_mut(name)?.insert_json(doc.as_bytes(), 1).map(|_| ())
                        }
                        2 => w
                            .collection_mut(name)?
                            .upsert_json(k + 1, br#"{"email":"up","n":1}"#, 1)
                            .map(|_| ()),
                        3 => {
                            // Delete the largest id: it must never be given again.
                            let mut c = w.collection_mut(name)?;
                            let last = c.read().ids()?.last().transpose()?;
                            match last {
                                Some(id) => c.delete(id).map(|_| ()),
                                None => Ok(()),
                            }
                        }
                        4 => w.collection_mut(name)?.create_index(IndexSpec::unique("by_email", "email")?),
                        5 => {
                            w.collection_mut(name)?.create_index(IndexSpec::standard(&format!("i{k}"), "n")?)
                        }
                        6 => w.collection_mut(name)?.drop_index(&format!("i{k}")),
                        7 => w.drop_collection(name),
                        8 => {
                            // A failed write (unique violation) in a transaction
                            // that goes on and commits something else.
                            let mut c = w.collection_mut(name)?;
                            let _ = c.insert_json(br#"{"email":"up","g":1}"#, 1);
                            let _ = c.insert_json(format!(r#"{{"h{step}":1}}"#).as_bytes(), 1);
                            Ok(())
                        }
                        _ => w.create_collection(name, CollectionOptions { raw: false }),
                    }
                })();
                if outcome.is_ok() && !next_rand(&mut seed).is_multiple_of(5) {
                    w.commit().unwrap();
                } else {
                    drop(w);
                }
            }
            10 => {
                what = "Db::create_index".into();
                let _ = db.create_index(name, IndexSpec::standard(&format!("b{k}"), "email").unwrap());
            }
            11 => {
                what = "compact".into();
                // Make some free pages first, then compact.
                let mut w = db.begin_write().unwrap();
                let t = w.create_tree("junk").unwrap();
                for i in 0..200u32 {
                    w.insert(&t, &i.to_be_bytes(), &[7u8; 100]).unwrap();
                }
                w.commit().unwrap();
                let mut w = db.begin_write().unwrap();
                w.drop_tree("junk").unwrap();
                w.commit().unwrap();
                db.compact().unwrap();
            }
            12 => {
                what = "import".into();
                let mut out = Vec::new();
                if db.export_all(&mut out).is_ok() {
                    // Re-import with a raised next id and an extra index.
                    let text = String::from_utf8(out).unwrap();
                    let _ = db.import(text.as_bytes(), ImportOptions { batch_size: Some(2) });
                }
            }
            13 => {
                what = "checkpoint".into();
                let _ = db.checkpoint();
            }
            14 => {
                what = "close".into();
                if let Some(db) = handles[hi].take() {
                    db.close().unwrap();
                }
            }
            16..=21 => {
                // A write whose commit hands the collection's state to the
                // next transaction (WriteTxn::commit_keeping, as one-call
                // writes do), including the cases where it must not be kept.
                what = format!("commit_keeping op {op}");
                let mut w = db.begin_write().unwrap();
                let other = names.iter().find(|n| **n != name).unwrap();
                let outcome = (|| -> obj_engine::Result<obj_engine::DetachedCollection> {
                    let mut c = w.collection_mut(name)?;
                    match op {
                        16 => {
                            let doc = format!(r#"{{"email":"k{k}@x","new{step}":[{k}],"n":{k}}}"#);
                            c.insert_json(doc.as_bytes(), 2)?;
                        }
                        17 => {
                            // Far above every id, then the next insert after it.
                            let high = c.read().next_id() + 1000 + k;
                            c.upsert_json(high, br#"{"email":"far","n":0}"#, 1)?;
                            c.insert_json(br#"{"after":true}"#, 1)?;
                        }
                        18 => {
                            let last = c.read().ids()?.last().transpose()?;
                            if let Some(id) = last {
                                c.delete(id)?;
                            }
                        }
                        19 => {
                            // A failed write (unique violation, when the index
                            // exists), then one that succeeds.
                            let _ = c.insert_json(br#"{"email":"up","g":2}"#, 1);
                            c.insert_json(format!(r#"{{"late{step}":1}}"#).as_bytes(), 1)?;
                        }
                        20 => {
                            // The index list changes in the same transaction.
                            c.create_index(IndexSpec::standard(&format!("j{k}"), "n")?)?;
                            c.insert_json(br#"{"n":5}"#, 1)?;
                        }
                        _ => {
                            // Another collection opened after this one's last
                            // write: the detached state is no longer current.
                            c.insert_json(br#"{"n":6}"#, 1)?;
                            let kept = c.detach();
                            let _ = w.collection_mut(other).and_then(|mut o| o.insert_json(br#"{"o":1}"#, 1));
                            return Ok(kept);
                        }
                    }
                    Ok(c.detach())
                })();
                match outcome {
                    Ok(kept) => w.commit_keeping(kept).unwrap(),
                    Err(_) => drop(w),
                }
            }
            _ => {
                what = "raw".into();
                let mut w = db.begin_write().unwrap();
                let r = w.raw_collection_mut(name).and_then(|mut c| c.insert_raw(b"raw").map(|_| ()));
                if r.is_ok() {
                    w.commit().unwrap();
                }
            }
        }
        check_all(&path, &handles, &names, step, &what);
    }
}

fn doc_db(path: &std::path::Path, options: Options) -> Db {
    let db = Db::open_with(path, options).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
    c.insert_json(br#"{"email":"a@x","n":1}"#, 1).unwrap();
    c.insert_json(br#"{"email":"b@x","n":2}"#, 1).unwrap();
    drop(c);
    w.commit().unwrap();
    db
}

/// A write transaction takes the kept state, fails a write on it (the
/// unique violation comes after its new field name entered the
/// dictionary), writes another document with other new names and commits:
/// readers of the old state keep the old dictionary, new readers decode
/// the new documents with the new one; ids are never given twice.
#[test]
fn failed_write_then_commit_on_a_kept_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = doc_db(&dir.path().join("f.obj"), shared());
    let old = db.begin_read().unwrap();
    let before = describe(&old, "c");
    let mut w = db.begin_write().unwrap();
    {
        let mut c = w.collection_mut("c").unwrap();
        assert!(matches!(c.insert_json(br#"{"zz_new":1,"email":"a@x"}"#, 1), Err(Error::Constraint(_))));
        // Delete the largest id, then insert: a new id.
        assert!(c.delete(2).unwrap());
        assert_eq!(c.insert_json(br#"{"yy_new":2,"email":"c@x"}"#, 1).unwrap(), 3);
    }
    // The older reader is not disturbed by the writer's copy.
    assert_eq!(describe(&old, "c"), before);
    assert_eq!(describe(&db.begin_read().unwrap(), "c"), before);
    w.commit().unwrap();
    assert_eq!(describe(&old, "c"), before);
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    assert_eq!(c.next_id(), 4);
    let mut json = Vec::new();
    c.get_json(3, &mut json).unwrap();
    assert_eq!(json, br#"{"yy_new":2,"email":"c@x"}"#);
    assert_eq!(c.find_unique("by_email", &["c@x".into()]).unwrap().map(|f| f.0), Some(3));
    assert!(c.find_unique("by_email", &["b@x".into()]).unwrap().is_none());
    drop(c);
    drop(rx);
    // Delete the largest again and commit: the next write transaction, on
    // the kept state, must not give id 3 again.
    let mut w = db.begin_write().unwrap();
    w.collection_mut("c").unwrap().delete(3).unwrap();
    w.commit().unwrap();
    let _ = describe(&db.begin_read().unwrap(), "c");
    let mut w = db.begin_write().unwrap();
    assert_eq!(w.collection_mut("c").unwrap().insert_json(br#"{"email":"d@x"}"#, 1).unwrap(), 4);
    w.commit().unwrap();
    db.integrity_check().unwrap();
}

/// Compaction moves every tree: readers after it (same handle, memo of the
/// state before it) must use the new roots; stat and integrity agree.
#[test]
fn compaction_between_kept_states() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cp.obj");
    let db = doc_db(&path, shared());
    let other = Db::open_with(&path, own_process()).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("junk").unwrap();
    for i in 0..500u32 {
        w.insert(&t, &i.to_be_bytes(), &[1u8; 200]).unwrap();
    }
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("junk").unwrap();
    w.commit().unwrap();
    let before = describe(&db.begin_read().unwrap(), "c");
    assert_eq!(describe(&other.begin_read().unwrap(), "c"), before);
    let old = db.begin_read().unwrap();
    let report = other.compact().unwrap();
    assert!(report.rewritten);
    drop(old);
    for h in [&db, &other] {
        assert_eq!(describe(&h.begin_read().unwrap(), "c"), before);
    }
    for (i, h) in [&db, &other].into_iter().enumerate() {
        let mut w = h.begin_write().unwrap();
        w.collection_mut("c").unwrap().insert_json(format!(r#"{{"email":"z{i}@x"}}"#).as_bytes(), 1).unwrap();
        w.commit().unwrap();
        h.integrity_check().unwrap();
        let st = h.stat().unwrap();
        assert_eq!(st.collections.iter().find(|c| c.name == "c").unwrap().indexes.len(), 1);
    }
    assert_eq!(describe(&db.begin_read().unwrap(), "c"), describe(&other.begin_read().unwrap(), "c"));
}

/// A handle closed while a read transaction still holds its engine, and a
/// new handle opened meanwhile (a second pager in this process), each with
/// a memo of its own.
#[test]
fn closed_and_reopened_handles_keep_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("co.obj");
    let db = doc_db(&path, shared());
    let old = db.begin_read().unwrap();
    let before = describe(&old, "c");
    db.close().unwrap();
    let db = Db::open_with(&path, shared()).unwrap();
    assert_eq!(describe(&db.begin_read().unwrap(), "c"), before);
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    c.drop_index("by_email").unwrap();
    c.insert_json(br#"{"new":true}"#, 1).unwrap();
    drop(c);
    w.commit().unwrap();
    assert_eq!(describe(&old, "c"), before);
    let now = describe(&db.begin_read().unwrap(), "c");
    assert!(now.contains("indexes=[]") && now.contains(r#"3: {"new":true}"#), "{now}");
    drop(old);
    let fresh = Db::open_with(&path, own_process()).unwrap();
    assert_eq!(describe(&fresh.begin_read().unwrap(), "c"), now);
}

/// The attached file is this same database (one engine, one memo): the
/// attached view and the local one agree after every commit.
#[test]
fn attached_self_agrees_with_local() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("self.obj");
    let db = doc_db(&path, shared());
    db.attach(&path, "me").unwrap();
    for i in 0..5 {
        let rx = db.begin_read().unwrap();
        assert_eq!(describe(&rx, "c"), describe(&rx, "me.c"), "round {i}");
        drop(rx);
        let mut w = db.begin_write().unwrap();
        let seen = w.collection("me.c").unwrap().indexes().len();
        assert_eq!(seen, w.collection("c").unwrap().indexes().len());
        let mut c = w.collection_mut("c").unwrap();
        c.insert_json(format!(r#"{{"f{i}":{i}}}"#).as_bytes(), 1).unwrap();
        c.create_index(IndexSpec::standard(&format!("i{i}"), &format!("f{i}")).unwrap()).unwrap();
        drop(c);
        w.commit().unwrap();
    }
    let rx = db.begin_read().unwrap();
    assert_eq!(describe(&rx, "c"), describe(&rx, "me.c"));
}

/// Rekey replaces the pager (and with it the memo); an encrypted database
/// keeps states like a plain one.
#[test]
fn rekey_starts_a_new_memo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rk.obj");
    let key = obj_engine::EncryptionKey::raw([9; 32]);
    let mut db = doc_db(&path, Options { encryption: Some(key.clone()), ..shared() });
    let before = describe(&db.begin_read().unwrap(), "c");
    db.rekey(None).unwrap();
    assert_eq!(describe(&db.begin_read().unwrap(), "c"), before);
    let mut w = db.begin_write().unwrap();
    w.collection_mut("c").unwrap().drop_index("by_email").unwrap();
    w.commit().unwrap();
    db.rekey(Some(key)).unwrap();
    let after = describe(&db.begin_read().unwrap(), "c");
    assert!(after.contains("indexes=[]"), "{after}");
    db.integrity_check().unwrap();
}

/// Readers on several threads while a writer changes the index list and
/// the dictionary: every reader's view is self-consistent (documents
/// decode, unique keys find their documents, counts match).
#[test]
fn concurrent_readers_see_consistent_states() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("th.obj");
    let db = doc_db(&path, shared());
    // Documents carry their own id, so a wrong dictionary shows.
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    for id in c.read().ids().unwrap().map(|r| r.unwrap()).collect::<Vec<_>>() {
        c.upsert_json(id, format!(r#"{{"id":{id},"email":"{id}@x"}}"#).as_bytes(), 1).unwrap();
    }
    drop(c);
    w.commit().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds < 10 {
                    let rx = db.begin_read().unwrap();
                    let c = rx.collection("c").unwrap();
                    let ids: Vec<u64> = c.ids().unwrap().map(|r| r.unwrap()).collect();
                    assert_eq!(ids.len() as u64, c.count().unwrap());
                    assert!(ids.iter().all(|&id| id < c.next_id()));
                    for id in ids {
                        let mut json = Vec::new();
                        c.get_json(id, &mut json).unwrap();
                        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
                        assert_eq!(doc["id"].as_u64(), Some(id), "{doc}");
                        if c.indexes().iter().any(|i| i.spec.name == "by_email") {
                            let e = doc["email"].as_str().unwrap();
                            let found = c.find_unique("by_email", &[e.into()]).unwrap();
                            assert_eq!(found.map(|f| f.0), Some(id));
                        }
                    }
                    rounds += 1;
                }
            })
        })
        .collect();
    for i in 0..200u64 {
        let mut w = db.begin_write().unwrap();
        let mut c = w.collection_mut("c").unwrap();
        let id = c.read().next_id();
        c.insert_json(format!(r#"{{"k{i}":1,"id":{id},"email":"{id}@x"}}"#).as_bytes(), 1).unwrap();
        match i % 7 {
            0 => c.drop_index("by_email").unwrap(),
            1 if c.read().indexes().is_empty() => {
                c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap()
            }
            2 => {
                let first = c.read().ids().unwrap().next().unwrap().unwrap();
                c.delete(first).unwrap();
            }
            _ => {}
        }
        drop(c);
        w.commit().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}

#[test]
fn every_handle_answers_like_a_fresh_one_after_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memo.obj");
    let handles = [
        Some(Db::open_with(&path, own_process()).unwrap()),
        Some(Db::open_with(&path, own_process()).unwrap()),
    ];
    let names = ["c1", "c2"];
    let mut seed = 0x5eed_u64;
    for step in 0..300 {
        let writer = handles[(next_rand(&mut seed) % 2) as usize].as_ref().unwrap();
        let name = names[(next_rand(&mut seed) % 2) as usize];
        // Readers on both handles load the state before the change (the
        // memo then holds it).
        for db in handles.iter().flatten() {
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
        check_all(&path, &handles, &names, step, "random change");
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

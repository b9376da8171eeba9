//! Process-level crash cycles over documents and secondary indexes: a child
//! process runs numbered write transactions that upsert, update and delete
//! documents in a collection with a unique, a standard, a multi-value and a
//! composite index (some documents large enough for overflow pages), keeps
//! a key-value counter beside them, checkpoints now and then, and prints
//! `ack n` after each `commit()` returns. The parent kills it with SIGKILL
//! at a random moment, reopens, and checks: every acknowledged transaction
//! is there and nothing of a later one; every document equals the model;
//! every index answers exactly what the model says; `integrity_check`
//! passes.
//!
//! `OBJ_CRASH_CYCLES` sets the number of cycles (default 50; `make soak`
//! runs thousands), shared with `crash.rs`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{env_cycles, next_rand, CrashChild};
use obj_engine::doc::json::from_json_str;
use obj_engine::{Db, IndexKind, IndexSpec, Options, QuerySpec, Value};

const CHILD_ENV: &str = "OBJ_CRASH_DOCS_CHILD_DB";
const COLL: &str = "orders";
const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];

/// The document with id `k` as of transaction `n` (`k <= n`): written by
/// transaction `k`, updated by transaction `k + 3` (region and tags move,
/// so index entries move), deleted by transaction `k + 9`.
fn doc_of(k: u64, n: u64) -> Option<String> {
    if k == 0 || k > n || n >= k + 9 {
        return None;
    }
    let updated = n >= k + 3;
    let region = REGIONS[((k + u64::from(updated)) % 4) as usize];
    let mut tags = vec![format!("t{}", k % 5), format!("t{}", (k + 2) % 5)];
    if updated {
        tags.push("updated".into());
    }
    let note_len = match k % 10 {
        4 => 70_000,
        7 => 9_000,
        _ => 40 + (k % 200) as usize,
    };
    let note: String = (0..note_len).map(|i| (b'a' + ((k as usize + i) % 26) as u8) as char).collect();
    let tags_json: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    Some(format!(
        r#"{{"email":"user{k}@example.com","region":"{region}","tags":[{}],"customer_id":{},"total":{}.5,"updated":{updated},"note":"{note}"}}"#,
        tags_json.join(","),
        k % 13,
        k * 7 % 1000,
    ))
}

fn model(n: u64) -> BTreeMap<u64, Value> {
    (n.saturating_sub(8)..=n).filter_map(|k| doc_of(k, n).map(|d| (k, from_json_str(&d).unwrap()))).collect()
}

fn indexes() -> Vec<IndexSpec> {
    vec![
        IndexSpec::unique("by_email", "email").unwrap(),
        IndexSpec::standard("by_region", "region").unwrap(),
        IndexSpec::new("by_tag", IndexKind::Multi, &["tags"]).unwrap(),
        IndexSpec::new("by_customer_total", IndexKind::Standard, &["customer_id", "total"]).unwrap(),
    ]
}

fn child(path: &str) {
    let opts = Options { wal_autocheckpoint: 60, ..Options::default() };
    let db = Db::open_with(path, opts).unwrap();
    let start = {
        let r = db.begin_read().unwrap();
        r.kv_get("meta", b"last").unwrap().map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()))
    };
    let mut n = start;
    loop {
        n += 1;
        let mut w = db.begin_write().unwrap();
        {
            let mut c = w.collection_mut(COLL).unwrap();
            for spec in indexes() {
                if !c.read().indexes().iter().any(|i| i.spec.name == spec.name) {
                    c.create_index(spec).unwrap();
                }
            }
            c.upsert(n, &from_json_str(&doc_of(n, n).unwrap()).unwrap()).unwrap();
            if n > 3 {
                let k = n - 3;
                let updated = from_json_str(&doc_of(k, n).unwrap()).unwrap();
                assert!(c
                    .update(k, |d| {
                        *d = updated;
                        Ok(())
                    })
                    .unwrap());
            }
            if n > 9 {
                assert!(c.delete(n - 9).unwrap());
            }
        }
        w.kv_put("meta", b"last", &n.to_be_bytes()).unwrap();
        w.commit().unwrap();
        println!("ack {n}");
        if n % 23 == 0 {
            db.checkpoint().unwrap();
        }
    }
}

fn query_ids(r: &obj_engine::ReadTxn, json: &str) -> Vec<u64> {
    let spec = QuerySpec::from_json(json).unwrap();
    let c = r.collection(COLL).unwrap();
    let mut ids: Vec<u64> = c.query(&spec).unwrap().map(|row| row.unwrap().0).collect();
    ids.sort_unstable();
    ids
}

fn verify(path: &std::path::Path, acked: u64) -> u64 {
    let db = Db::open(path).unwrap();
    db.integrity_check().unwrap_or_else(|e| panic!("integrity after crash: {e}"));
    let r = db.begin_read().unwrap();
    let last = r.kv_get("meta", b"last").unwrap().map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
    // The in-flight commit may or may not have landed; nothing earlier may be lost.
    assert!(last == acked || last == acked + 1, "acknowledged {acked} but recovered {last}");
    if last == 0 {
        return 0;
    }
    let want = model(last);
    let c = r.collection(COLL).unwrap();
    let got: BTreeMap<u64, Value> = c.all().unwrap().map(|row| row.unwrap()).collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "document ids at {last}");
    for (k, doc) in &want {
        assert!(got[k].identical(doc), "document {k} differs from the model at {last}");
    }
    // Every index answers what the model says, through the index.
    for (&k, doc) in &want {
        let email = doc.get("email").unwrap().clone();
        let hit = c.find_unique("by_email", &[email]).unwrap().map(|(id, _)| id);
        assert_eq!(hit, Some(k), "unique index lookup of document {k} at {last}");
    }
    for region in REGIONS {
        let expect: Vec<u64> = want
            .iter()
            .filter(|(_, d)| d.get("region") == Some(&Value::Str(region.into())))
            .map(|(&k, _)| k)
            .collect();
        let q = format!(
            r#"{{"collection":"{COLL}","index":{{"name":"by_region","ge":["{region}"],"le":["{region}"]}}}}"#
        );
        assert_eq!(query_ids(&r, &q), expect, "region {region} through the index at {last}");
    }
    for tag in ["t0", "t1", "t2", "t3", "t4", "updated"] {
        let expect: Vec<u64> = want
            .iter()
            .filter(|(_, d)| match d.get("tags") {
                Some(Value::List(items)) => items.contains(&Value::Str(tag.into())),
                _ => false,
            })
            .map(|(&k, _)| k)
            .collect();
        let q =
            format!(r#"{{"collection":"{COLL}","index":{{"name":"by_tag","ge":["{tag}"],"le":["{tag}"]}}}}"#);
        assert_eq!(query_ids(&r, &q), expect, "tag {tag} through the multi-value index at {last}");
    }
    let all_by_composite =
        query_ids(&r, &format!(r#"{{"collection":"{COLL}","index":{{"name":"by_customer_total"}}}}"#));
    assert_eq!(
        all_by_composite,
        want.keys().copied().collect::<Vec<_>>(),
        "composite index entries at {last}"
    );
    drop(c);
    drop(r);
    db.close().unwrap();
    last
}

#[test]
fn sigkill_cycles_with_documents_and_indexes() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path);
        return;
    }
    let cycles = env_cycles().unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash-docs.obj");
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut last = 0u64;
    let started = Instant::now();
    for cycle in 0..cycles {
        let child = CrashChild::spawn("sigkill_cycles_with_documents_and_indexes", CHILD_ENV, &path);
        std::thread::sleep(Duration::from_micros(3_000 + next_rand(&mut rng) % 80_000));
        let acked = child.kill().unwrap_or(last);
        assert!(acked >= last, "cycle {cycle}: child acknowledged {acked} after {last} had been recovered");
        last = verify(&path, acked);
    }
    assert!(last > 0, "the child never committed");
    println!(
        "document crash cycles: {cycles}, last commit {last}, 0 lost commits, indexes consistent, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn model_is_consistent() {
    // The model itself: 9 live documents at most, ids n-8..=n.
    let m = model(20);
    assert_eq!(m.keys().copied().collect::<Vec<_>>(), (12..=20).collect::<Vec<_>>());
}

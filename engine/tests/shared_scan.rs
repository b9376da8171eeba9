//! A read transaction's filtered scan of a large collection shares the
//! work with a helper thread (engine/src/query/split.rs). Its answers must
//! be those of a scan on one thread: a write transaction's cursor, which
//! never shares, over the same documents. One test, so that the helper
//! threads seen in /proc are this test's own.

use obj_engine::doc::json::from_json_str;
use obj_engine::{Db, Error, QuerySpec, Value};

#[test]
fn shared_scans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.obj");
    let db = Db::open(&path).unwrap();
    fill(&db);
    same_answers_as_one_thread(&db);
    the_helper_ends_with_its_cursor(&db);
    cursors_at_once_share_the_helper_slots(&db);
    db.close().unwrap();
    damage_is_reported_in_scan_order(&path);
    a_leaked_cursor_lets_the_snapshot_go(dir.path());
}

mod common;

fn j(s: &str) -> Value {
    from_json_str(s).unwrap()
}

/// "dense": ids 1..=30,000 with 5,001..=9,000 deleted (blocks with nothing
/// in them), every 997th document large enough for an overflow chain and
/// every 1,499th larger than what the helper copies (it sends the id).
/// "skewed": 20,000 documents and far ids up to the largest, so that
/// almost every document falls in the first block.
fn fill(db: &Db) {
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("dense").unwrap();
    for i in 1..=30_000u64 {
        let big = match (i % 997, i % 1_499) {
            (0, _) => format!(r#","big":"{}""#, "y".repeat(10_000)),
            (_, 0) => format!(r#","big":"{}""#, "z".repeat(100_000)),
            _ => String::new(),
        };
        let doc = format!(
            r#"{{"n":{i},"k":{},"s":"str{}","a":{{"b":{}}},"pad":"{}"{big}}}"#,
            i % 7,
            i % 13,
            i % 5,
            "x".repeat((i % 50) as usize)
        );
        c.insert(&j(&doc)).unwrap();
    }
    for i in 5_001..=9_000u64 {
        assert!(c.delete(i).unwrap());
    }
    drop(c);
    let mut c = w.collection_mut("skewed").unwrap();
    for i in 1..=20_000u64 {
        c.insert(&j(&format!(r#"{{"n":{i},"k":{}}}"#, i % 7))).unwrap();
    }
    c.upsert(1_000_000, &j(r#"{"n":1000000,"k":3}"#)).unwrap();
    c.upsert(5_000_000, &j(r#"{"n":5000000,"k":3}"#)).unwrap();
    c.upsert(u64::MAX - 1, &j(r#"{"n":-1,"k":3}"#)).unwrap();
    drop(c);
    let mut c = w.collection_mut("wide").unwrap();
    for i in 1..=30_000u64 {
        c.insert(&j(&format!(r#"{{"n":{i},"pad":"{}"}}"#, "p".repeat(300)))).unwrap();
    }
    drop(c);
    w.commit().unwrap();
}

fn specs(collection: &str) -> Vec<QuerySpec> {
    let filters = [
        r#"{"eq":["k",3]}"#,
        r#"{"and":[{"eq":["s","str5"]},{"gt":["n",1000]}]}"#,
        r#"{"exists":"big"}"#,
        r#"{"lt":["n",-1]}"#,
        r#"{"ge":["n",0]}"#,
        r#"{"eq":["a.b",2]}"#,
        r#"{"not":{"eq":["k",0]}}"#,
    ];
    let shapes = [
        "",
        r#","limit":10000,"offset":3"#,
        r#","limit":5"#,
        r#","offset":12000"#,
        r#","sort":[{"field":"k","order":"desc"}]"#,
        r#","sort":["k"],"limit":20,"offset":7"#,
    ];
    let mut out = Vec::new();
    for f in filters {
        for s in shapes {
            let text = format!(r#"{{"collection":"{collection}","filter":{f}{s}}}"#);
            out.push(QuerySpec::from_json(&text).unwrap());
        }
    }
    out
}

fn same_answers_as_one_thread(db: &Db) {
    for collection in ["dense", "skewed"] {
        for spec in specs(collection) {
            let rx = db.begin_read().unwrap();
            let shared: Vec<(u64, Value)> =
                rx.collection(collection).unwrap().query(&spec).unwrap().map(Result::unwrap).collect();
            let shared_count = rx.collection(collection).unwrap().query(&spec).unwrap().count().unwrap();
            drop(rx);
            let mut w = db.begin_write().unwrap();
            let c = w.collection_mut(collection).unwrap();
            let one: Vec<(u64, Value)> = c.read().query(&spec).unwrap().map(Result::unwrap).collect();
            drop(c);
            w.rollback();
            assert_eq!(shared.len(), one.len(), "{}", spec.to_json());
            assert!(shared == one, "{}: the shared scan answered otherwise", spec.to_json());
            assert_eq!(shared_count, one.len() as u64, "{}", spec.to_json());
        }
    }
}

/// Threads of this process named like the scan's helper.
fn helpers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "obj-scan")
                .count()
        })
        .unwrap_or(0)
}

fn the_helper_ends_with_its_cursor(db: &Db) {
    if std::thread::available_parallelism().map_or(true, |n| n.get() < 2) {
        return; // one CPU: scans never share
    }
    // Every document of "wide" matches: the helper's blocks hold more than
    // it may send ahead, so it waits for the cursor and is there to be seen.
    let every = QuerySpec::from_json(r#"{"collection":"wide","filter":{"ge":["n",0]}}"#).unwrap();
    let rx = db.begin_read().unwrap();
    let wide = rx.collection("wide").unwrap();
    let c = rx.collection("dense").unwrap();
    let mut cursor = wide.query(&every).unwrap();
    // The helper starts once the cursor has scanned 1,024 documents itself:
    // a caller who takes a few results and stops pays no thread.
    assert!(cursor.by_ref().take(1_000).all(|r| r.is_ok()));
    assert_eq!(helpers(), 0, "a helper for the first few results");
    assert!(cursor.by_ref().take(1_000).all(|r| r.is_ok()));
    // (A thread names itself once it runs.)
    let seen = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        helpers() == 1
    });
    assert!(seen, "a large filtered scan starts one helper");
    // Dropped after one result, with the helper waiting for room or still
    // scanning: it is stopped and joined, not left behind.
    drop(cursor);
    assert_eq!(helpers(), 0, "the helper outlived its cursor");
    // A small limit, a write transaction, no filter: no helper.
    let limited =
        QuerySpec::from_json(r#"{"collection":"dense","filter":{"eq":["k",3]},"limit":5}"#).unwrap();
    let _small = c.query(&limited).unwrap();
    let _all = c.all().unwrap();
    assert_eq!(helpers(), 0);
    // The helper holds the snapshot: the transaction's view, whatever
    // commits after the cursor began.
    let spec = QuerySpec::from_json(r#"{"collection":"dense","filter":{"eq":["k",3]}}"#).unwrap();
    let mut cursor = c.query(&spec).unwrap();
    let first = cursor.next().unwrap().unwrap();
    let mut w = db.begin_write().unwrap();
    let mut wc = w.collection_mut("dense").unwrap();
    for id in (20_000..30_000u64).step_by(7) {
        wc.delete(id).unwrap();
    }
    drop(wc);
    w.commit().unwrap();
    db.checkpoint().unwrap();
    let rest: Vec<u64> = cursor.map(|r| r.unwrap().0).collect();
    assert_eq!(
        rest.len() + 1,
        (1..=30_000u64).filter(|i| i % 7 == 3 && !(5_001..=9_000).contains(i)).count()
    );
    assert_eq!(first.0, 3);
}

/// A damaged page in either thread's blocks is a Corruption error at the
/// same point of the results as on one thread, never a panic or a hang.
fn damage_is_reported_in_scan_order(path: &std::path::Path) {
    // Pages of the overflow chains of "dense"'s 10,000-byte documents (all
    // 'y'): the first belongs to document 997, in the cursor's own first
    // block, the last to document 29,910, in a block of the helper's.
    let file = std::fs::read(path).unwrap();
    let chains: Vec<u64> = (0..file.len() / 4096)
        .filter(|&p| file[p * 4096 + 200..p * 4096 + 1200].iter().all(|&b| b == b'y'))
        .map(|p| p as u64)
        .collect();
    assert!(chains.len() > 2);
    let mut damaged = 0;
    for at in [chains[0], chains[chains.len() - 1]] {
        let copy = path.with_extension(format!("damaged{at}"));
        std::fs::copy(path, &copy).unwrap();
        let mut bytes = std::fs::read(&copy).unwrap();
        let off = (at * 4096 + 2000) as usize;
        bytes[off] ^= 0x5A;
        std::fs::write(&copy, &bytes).unwrap();
        let db = Db::open(&copy).unwrap();
        let spec = QuerySpec::from_json(r#"{"collection":"dense","filter":{"eq":["k",3]}}"#).unwrap();
        let run = |shared: bool| -> (Vec<u64>, Option<Error>) {
            let mut ids = Vec::new();
            let mut each = |r: obj_engine::Result<(u64, Value)>| match r {
                Ok((id, _)) => {
                    ids.push(id);
                    None
                }
                Err(e) => Some(e),
            };
            let err = if shared {
                let rx = db.begin_read().unwrap();
                let c = rx.collection("dense").unwrap();
                let e = c.query(&spec).unwrap().find_map(&mut each);
                e
            } else {
                let mut w = db.begin_write().unwrap();
                let c = w.collection_mut("dense").unwrap();
                let e = c.read().query(&spec).unwrap().find_map(&mut each);
                drop(c);
                w.rollback();
                e
            };
            (ids, err)
        };
        let (shared_ids, shared_err) = run(true);
        let (one_ids, one_err) = run(false);
        assert_eq!(shared_ids, one_ids, "page {at}: results before the damage");
        match (&shared_err, &one_err) {
            (None, None) => {} // the page held none of this collection's documents
            (Some(Error::Corruption { .. }), Some(Error::Corruption { .. })) => damaged += 1,
            other => panic!("page {at}: {other:?}"),
        }
        drop(db);
    }
    assert_eq!(damaged, 2, "a damaged page went unnoticed");
}

/// Several cursors of one filter open at once, stepped in turn: at most
/// one helper per spare CPU runs, the others scan every block themselves,
/// and every cursor answers as a one-thread scan does.
fn cursors_at_once_share_the_helper_slots(db: &Db) {
    let spec = QuerySpec::from_json(r#"{"collection":"dense","filter":{"ne":["k",1]}}"#).unwrap();
    let mut w = db.begin_write().unwrap();
    let c = w.collection_mut("dense").unwrap();
    let want: Vec<u64> = c.read().query(&spec).unwrap().map(|r| r.unwrap().0).collect();
    drop(c);
    w.rollback();
    let spare = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let rx = db.begin_read().unwrap();
    let c = rx.collection("dense").unwrap();
    let mut cursors: Vec<_> = (0..4).map(|_| c.query(&spec).unwrap()).collect();
    let mut got = vec![Vec::new(); cursors.len()];
    loop {
        let mut any = false;
        for (cursor, ids) in cursors.iter_mut().zip(&mut got) {
            for _ in 0..500 {
                match cursor.next() {
                    Some(r) => {
                        ids.push(r.unwrap().0);
                        any = true;
                    }
                    None => break,
                }
            }
        }
        assert!(helpers() <= spare.max(1), "{} helpers for {spare} spare CPUs", helpers());
        if !any {
            break;
        }
    }
    for ids in &got {
        assert!(*ids == want, "a cursor answered otherwise");
    }
}

/// Cursors leaked (std::mem::forget), one whose helper waits for room and
/// one that has not started its helper yet: once the transaction ends
/// neither holds the snapshot, so a checkpoint completes and close removes
/// the WAL.
fn a_leaked_cursor_lets_the_snapshot_go(dir: &std::path::Path) {
    let path = dir.join("leak.obj");
    let db = Db::open(&path).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    for i in 0..30_000u64 {
        c.insert(&j(&format!(r#"{{"n":{i},"pad":"{}"}}"#, "p".repeat(300)))).unwrap();
    }
    drop(c);
    w.commit().unwrap();
    let rx = db.begin_read().unwrap();
    {
        let c = rx.collection("c").unwrap();
        let spec = QuerySpec::from_json(r#"{"collection":"c","filter":{"ge":["n",0]}}"#).unwrap();
        let mut cursor = c.query(&spec).unwrap();
        assert!(cursor.by_ref().take(2_000).all(|r| r.is_ok()));
        assert!(helpers() <= 1);
        std::mem::forget(cursor);
        let mut early = c.query(&spec).unwrap();
        assert!(early.next().unwrap().is_ok());
        std::mem::forget(early);
    }
    drop(rx);
    let mut w = db.begin_write().unwrap();
    w.collection_mut("c").unwrap().insert(&j(r#"{"n":-1}"#)).unwrap();
    w.commit().unwrap();
    let gone = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        helpers() == 0
    });
    assert!(gone, "the leaked cursor's helper outlived its transaction");
    assert!(db.checkpoint().unwrap().complete, "a snapshot is still held");
    db.close().unwrap();
    assert_eq!(common::side_files(&path), (false, false));
}

//! Review 16: what a Rust user of the engine met that earlier tests did not.
//!
//! - The typed `Db` methods looked a collection up in the local catalog
//!   only, so `Db::get::<T>` of an attached `ns.coll` was `None`, `all`
//!   empty, and `update` / `delete` said "no such document" instead of
//!   refusing a write to a read-only database.
//! - A filter built in Rust had no depth limit (the JSON form stops at
//!   128), and a query walks its filter recursively: ten thousand levels
//!   overflowed a thread's stack and aborted the process; so did
//!   `QuerySpec::to_json` (now written without recursion).

mod common;

use obj_engine::{Db, Document, Error, Filter, IndexSpec, QuerySpec, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Event {
    n: u64,
}

impl Document for Event {
    const COLLECTION: &'static str = "events";
    fn indexes() -> Vec<IndexSpec> {
        vec![IndexSpec::unique("by_n", "n").unwrap()]
    }
}

/// The same documents, read through the namespace they are attached under.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Archived {
    n: u64,
}

impl Document for Archived {
    const COLLECTION: &'static str = "arch.events";
}

#[test]
fn typed_reads_reach_attached_collections_and_typed_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let src = Db::open(dir.path().join("src.obj")).unwrap();
        src.insert_many(&(0..10).map(|n| Event { n }).collect::<Vec<_>>()).unwrap();
        src.close().unwrap();
    }
    let db = Db::open(dir.path().join("host.obj")).unwrap();
    db.attach(dir.path().join("src.obj"), "arch").unwrap();
    assert_eq!(db.get::<Archived>(4).unwrap(), Some(Archived { n: 3 }));
    assert_eq!(db.get::<Archived>(99).unwrap(), None);
    assert_eq!(
        db.get_many::<Archived>(&[1, 99, 10]).unwrap(),
        vec![Some(Archived { n: 0 }), None, Some(Archived { n: 9 })]
    );
    assert_eq!(db.all::<Archived>().unwrap().len(), 10);
    let q = QuerySpec::new("arch.events").with_filter(Filter::ge("n", 7).unwrap());
    assert_eq!(
        db.query::<Archived>(&q).unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    assert_eq!(db.find_unique::<Archived>("by_n", &[Value::Int(3)]).unwrap(), Some((4, Archived { n: 3 })));
    let read_only =
        |r: Result<bool, Error>| matches!(r, Err(Error::InvalidArgument(m)) if m.contains("read-only"));
    assert!(read_only(db.update::<Archived>(1, |a| {
        a.n = 99;
        Ok(())
    })));
    assert!(read_only(db.delete::<Archived>(1)));
    assert!(read_only(db.update::<Archived>(999, |_| Ok(()))), "refused even for an id that is not there");
    assert_eq!(db.get::<Archived>(1).unwrap(), Some(Archived { n: 0 }));
    // A namespace that is not attached is an ordinary (missing) collection.
    assert_eq!(db.get::<Event>(1).unwrap(), None);
    db.detach("arch").unwrap();
    assert_eq!(db.get::<Archived>(4).unwrap(), None);
}

#[test]
fn a_filter_deeper_than_the_json_limit_is_refused_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    db.insert(&Event { n: 1 }).unwrap();
    let mut nots = Filter::eq("n", 1).unwrap();
    for _ in 0..10_000 {
        nots = !nots;
    }
    let mut ands = Filter::eq("n", 1).unwrap();
    for _ in 0..10_000 {
        ands = Filter::And(vec![ands, Filter::True]);
    }
    let rx = db.begin_read().unwrap();
    let c = rx.collection("events").unwrap();
    for f in [nots, ands] {
        assert!(f.nesting_depth() > 10_000);
        let spec = QuerySpec::new("events").with_filter(f);
        let deep = |r: Result<(), Error>| matches!(r, Err(Error::InvalidArgument(m)) if m.contains("deeper than 128"));
        assert!(deep(c.query(&spec).map(drop)));
        assert!(deep(c.query_count(&spec).map(drop)));
        assert!(deep(c.explain(&spec).map(drop)));
        assert!(deep(db.query::<Event>(&spec).map(drop)));
        // Its JSON form is written without recursion, and refused when read.
        let json = spec.to_json();
        assert!(
            matches!(QuerySpec::from_json(&json), Err(Error::InvalidArgument(m)) if m.contains("deeper than 128"))
        );
    }
    // At the limit a filter still runs.
    let mut at_limit = Filter::eq("n", 1).unwrap();
    while at_limit.nesting_depth() < 128 {
        at_limit = Filter::And(vec![at_limit]);
    }
    assert_eq!(at_limit.nesting_depth(), 128);
    assert_eq!(c.query_count(&QuerySpec::new("events").with_filter(at_limit)).unwrap(), 1);
    // A filter whose JSON form nests within the JSON limit reads back.
    let mut nots = Filter::eq("n", 1).unwrap();
    for _ in 0..100 {
        nots = !nots;
    }
    let spec = QuerySpec::new("events").with_filter(nots);
    assert_eq!(QuerySpec::from_json(&spec.to_json()).unwrap(), spec);
}

fn put_all(db: &Db, keys: &[&str], value: &[u8]) {
    let mut w = db.begin_write().unwrap();
    for k in keys {
        w.kv_put("k", k.as_bytes(), value).unwrap();
    }
    w.commit().unwrap();
}

fn value_of(db: &Db, key: &str) -> Vec<u8> {
    db.begin_read().unwrap().kv_get("k", key.as_bytes()).unwrap().unwrap()
}

/// Review 16 (reliability): a process that crashed with the file open
/// through a symbolic link left `link.obj-wal` beside the link. An open by
/// the real name did not see it and committed on, and a later open through
/// the link replayed the old WAL over the newer main file: an acknowledged
/// commit was gone, with no error. The sidecars now take the target's name.
#[test]
fn a_wal_left_by_an_open_through_a_symlink_is_the_targets() {
    let dir = tempfile::tempdir().unwrap();
    let (real, link) = (dir.path().join("a.obj"), dir.path().join("link.obj"));
    let db = Db::open(&real).unwrap();
    put_all(&db, &["k0", "k1", "k2", "k3", "k4"], b"base");
    db.close().unwrap();
    std::os::unix::fs::symlink("a.obj", &link).unwrap();
    let db = Db::open(&link).unwrap();
    put_all(&db, &["k0", "k1", "k2"], b"via-link");
    db.close_without_checkpoint(); // as a crash leaves it
    assert!(!dir.path().join("link.obj-wal").exists());
    assert!(dir.path().join("a.obj-wal").exists(), "the WAL is named after the file");
    let db = Db::open(&real).unwrap();
    assert_eq!(value_of(&db, "k0"), b"via-link", "recovered by the open of the real name");
    put_all(&db, &["k3"], b"via-path");
    db.close().unwrap();
    let db = Db::open(&link).unwrap();
    assert_eq!((value_of(&db, "k0"), value_of(&db, "k3")), (b"via-link".to_vec(), b"via-path".to_vec()));
    db.close().unwrap();
    // A chain of links, one of them relative to another directory.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("../link.obj", dir.path().join("sub/chain.obj")).unwrap();
    let db = Db::open(dir.path().join("sub/chain.obj")).unwrap();
    put_all(&db, &["k4"], b"via-chain");
    db.close_without_checkpoint();
    assert!(dir.path().join("a.obj-wal").exists() && !dir.path().join("sub/chain.obj-wal").exists());
    assert_eq!(value_of(&Db::open(&real).unwrap(), "k4"), b"via-chain");
}

/// Review 16 (reliability): an open refused because another process has
/// the file open under another name (a hard link) left the `-shm` it had
/// created. A handle with its own `OsVfs` stands for another process.
#[test]
fn an_open_refused_for_another_name_leaves_no_sidecar() {
    use obj_engine::storage::file::OsVfs;
    use obj_engine::Options;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.obj"), dir.path().join("b.obj"));
    let own = || Options {
        vfs: Some(std::sync::Arc::new(OsVfs)),
        busy_timeout: std::time::Duration::from_millis(50),
        ..Options::default()
    };
    let da = Db::open_with(&a, own()).unwrap();
    put_all(&da, &["k0"], b"a");
    std::fs::hard_link(&a, &b).unwrap();
    let refused = Db::open_with(&b, own());
    assert!(matches!(refused, Err(Error::Busy(ref m)) if m.contains("another name")), "{refused:?}");
    assert!(!dir.path().join("b.obj-shm").exists(), "the refused open's -shm is gone");
    assert!(!dir.path().join("b.obj-wal").exists());
    put_all(&da, &["k1"], b"a");
    da.close().unwrap();
}

/// Review 16 (reliability): readers that each hold a snapshot for a few
/// hundred milliseconds, overlapping so that one is always active, kept
/// the WAL growing: the writer waited 100 ms for old readers, failed, and
/// tried again only once the WAL had doubled, with the same wait. Each
/// failed wait now doubles the next, so the WAL stays within a few
/// doublings of its threshold.
#[test]
fn overlapping_readers_of_a_few_hundred_ms_keep_the_wal_bounded() {
    use obj_engine::{Options, SyncMode};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let options = Options { sync_mode: SyncMode::Off, ..Options::default() };
    let db = Arc::new(Db::open_with(dir.path().join("w.obj"), options).unwrap());
    put_all(&db, &["seed"], b"x");
    let stop = Arc::new(AtomicBool::new(false));
    let readers = common::overlapping_readers(&db, &stop);
    let started = Instant::now();
    let (mut most, mut commits) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(4) {
        common::commit_noting_wal(&db, &mut commits, &mut most);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    // The threshold is 1,000 frames: waits of 100, 200 and 400 ms come at
    // 2,000, 4,000 and 8,000 frames, and the last outlasts the readers.
    assert!(most < 16_000, "the WAL reached {most} frames in {commits} commits");
    eprintln!("{commits} commits, the WAL at most {most} frames");
}

//! Review 28: what reviews of the documents and the file format found.
//!
//! - A `-wal` whose header was sound (magic and checksum right) but of
//!   another WAL format version, as a newer build would leave it after a
//!   crash, was taken for a WAL whose creation was cut: the open went on
//!   without its commits and the clean close removed it, so they were lost
//!   for good. It is now refused as `Unsupported`, and left where it is.

use obj_engine::{Db, Options, ReadableTxn};

fn rows(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    r.range(&t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
}

/// Rewrites the WAL header's version field (bytes 4..8) and its CRC.
fn set_wal_version(wal: &std::path::Path, version: u32) {
    let mut b = std::fs::read(wal).unwrap();
    b[4..8].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(wal, b).unwrap();
}

#[test]
fn a_wal_of_another_format_version_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.obj");
    let wal = dir.path().join("db.obj-wal");
    let opts = || Options { wal_autocheckpoint: 0, ..Options::default() };
    let db = Db::open_with(&path, opts()).unwrap();
    for i in 0u8..5 {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, &[i], b"committed").unwrap();
        w.commit().unwrap();
    }
    let expected = rows(&db);
    db.close_without_checkpoint(); // as a crash leaves it: 5 commits in the WAL
    let original = std::fs::read(&wal).unwrap();

    set_wal_version(&wal, 2);
    for read_only in [false, true] {
        let e = Db::open_with(&path, Options { read_only, ..opts() }).unwrap_err();
        assert!(matches!(e, obj_engine::Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("format version 2"), "{e}");
        assert!(wal.exists(), "the refused WAL stays");
    }

    // Its own version back: every commit is there.
    set_wal_version(&wal, 1);
    assert_eq!(std::fs::read(&wal).unwrap(), original);
    let db = Db::open_with(&path, opts()).unwrap();
    assert_eq!(rows(&db), expected);
    db.integrity_check().unwrap();
}

#[test]
fn a_wal_header_that_never_became_valid_is_still_an_empty_wal() {
    // A header cut while being written (a crash as the WAL was created or
    // restarted) holds nothing committed: the open goes on without it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.obj");
    let db = Db::open(&path).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"k", b"v").unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    let wal = dir.path().join("db.obj-wal");
    let mut torn = vec![0u8; 64]; // the magic written, the rest not yet
    torn[0..4].copy_from_slice(b"OBJW");
    std::fs::write(&wal, &torn).unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(rows(&db), vec![(b"k".to_vec(), b"v".to_vec())]);
}

// - A WAL frame damaged while the database was open (after recovery had
//   read it) made the next checkpoint fail part way: it had already
//   copied page 0 of the newest commit and the pages before the damaged
//   one into the main file. Every later open refused the WAL as stale, and
//   moving it away, as the message said, served a mix of two commits
//   without an error. A checkpoint now checks every frame it will copy
//   before it writes any of them.

/// (page number, offset of the page image) of every frame of the WAL file.
fn wal_frames(wal: &[u8], page_size: usize) -> Vec<(u32, usize)> {
    let mut out = Vec::new();
    let mut at = 64;
    while at + 24 + page_size <= wal.len() {
        out.push((u32::from_le_bytes(wal[at..at + 4].try_into().unwrap()), at + 24));
        at += 24 + page_size;
    }
    out
}

#[test]
fn a_frame_damaged_after_recovery_fails_the_checkpoint_before_it_writes() {
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.obj");
        let wal = dir.path().join("db.obj-wal");
        let opts = || Options {
            wal_autocheckpoint: 0,
            encryption: encrypted.then(|| obj_engine::EncryptionKey::raw([7; 32])),
            ..Options::default()
        };
        let db = Db::open_with(&path, opts()).unwrap();
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        for i in 0u32..400 {
            w.insert(&t, &i.to_be_bytes(), &[1; 100]).unwrap();
        }
        w.commit().unwrap();
        db.checkpoint().unwrap(); // the main file holds the first state
        for round in 0u8..4 {
            let mut w = db.begin_write().unwrap();
            let t = w.open_tree("t").unwrap();
            for i in (u32::from(round)..400).step_by(7) {
                w.insert(&t, &i.to_be_bytes(), &[round + 2; 100]).unwrap();
            }
            w.commit().unwrap();
        }
        db.close_without_checkpoint();
        let before = std::fs::read(&path).unwrap();

        let db = Db::open_with(&path, opts()).unwrap(); // recovery reads the WAL
        let bytes = std::fs::read(&wal).unwrap();
        let frames = wal_frames(&bytes, 4096);
        // The newest frame of the highest page: copied after page 0 and others.
        let &(pgno, image) = frames.iter().filter(|f| f.0 != 0).max_by_key(|f| (f.0, f.1)).unwrap();
        assert!(pgno > 1);
        let mut damaged = bytes.clone();
        damaged[image + 100] ^= 0x01;
        std::fs::write(&wal, &damaged).unwrap();

        let e = db.checkpoint().unwrap_err();
        assert!(e.is_corruption(), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "the main file is untouched");
        db.close_without_checkpoint();

        // The WAL's valid prefix ends before the damaged frame: the file
        // opens as of the last commit before it, whole.
        let db = Db::open_with(&path, opts()).unwrap();
        db.integrity_check().unwrap();
        let r = db.begin_read().unwrap();
        let t = r.open_tree("t").unwrap();
        assert_eq!(r.count(&t).unwrap(), 400);
    }
}

// - A reader holding one snapshot for a long time (another process's, or
//   this one's) made the writer stall again and again: each time the WAL
//   doubled past twice its checkpoint threshold, the commit waited for the
//   old readers to end, twice as long as the last time, up to 1.6 s, and
//   1.6 s at every doubling after (7.9 s of 19 in a review's run). Those
//   waits are for overlapping readers of less than a second; a snapshot
//   that outlasted a wait of 800 ms and is still held costs no more.

#[test]
fn a_long_reader_costs_the_writer_a_few_waits_not_a_stall_per_doubling() {
    use std::time::{Duration, Instant};
    // (a reader of WAL frames; a reader of the main file alone, which began
    // right after a checkpoint; a busy timeout shorter than the waits)
    for (main_only, busy_ms, most) in [(false, 5_000, 4), (true, 5_000, 4), (false, 300, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.obj");
        let opts = Options {
            sync_mode: obj_engine::SyncMode::Off,
            busy_timeout: Duration::from_millis(busy_ms),
            ..Options::default()
        };
        let db = Db::open_with(&path, opts).unwrap();
        let mut w = db.begin_write().unwrap();
        w.create_tree("t").unwrap();
        w.commit().unwrap();
        if main_only {
            db.checkpoint().unwrap();
        }
        let reader = db.begin_read().unwrap(); // held through every commit below
        let mut stalls = Vec::new();
        let mut i = 0u32;
        while db.stat().unwrap().wal_frames < 40_000 {
            let t = Instant::now();
            let mut w = db.begin_write().unwrap();
            let tree = w.open_tree("t").unwrap();
            for _ in 0..8 {
                w.insert(&tree, &i.to_be_bytes(), &[0u8; 2000]).unwrap();
                i += 1;
            }
            w.commit().unwrap();
            // (the waits are at least 100 ms; a commit slowed by a busy
            // machine is shorter, or rare)
            if t.elapsed() >= Duration::from_millis(97) {
                stalls.push(t.elapsed());
            }
        }
        // Waits of 100, 200, 400 and 800 ms at 2, 4, 8 and 16 times the
        // threshold (100, 200, 300 with the short busy timeout), and none
        // after: before, 1.6 s more at 32 times (and at every doubling
        // after it), or the busy timeout at every doubling. One commit
        // more may have been slowed past 97 ms by other work on the
        // machine (make test runs beside other jobs).
        assert!(stalls.len() <= most + 1, "{main_only} {busy_ms}: {stalls:?}");
        assert!(stalls.iter().all(|s| *s < Duration::from_millis(1200)), "{stalls:?}");
        drop(reader);
        // Once the reader has ended, the WAL is copied and restarts.
        for _ in 0..3 {
            let mut w = db.begin_write().unwrap();
            let tree = w.open_tree("t").unwrap();
            w.insert(&tree, b"after", b"x").unwrap();
            w.commit().unwrap();
        }
        assert!(db.stat().unwrap().wal_frames < 1000, "{}", db.stat().unwrap().wal_frames);
    }
}

// - Iterating a query or all of a collection in a write transaction could
//   not go on past a write in it (the Python review: `for oid, o in
//   tx.all(Order): tx.update(...)`, a loop users of the reference package
//   write). A query may now start after an id (`after_id`), read in id
//   order from there, which is how the bindings go on after a write, and
//   how a user pages through a collection by id.

#[test]
fn after_id_reads_in_id_order_from_there() {
    use obj_engine::doc::json::from_json_str;
    use obj_engine::{IndexSpec, QuerySpec};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    {
        let mut c = w.collection_mut("c").unwrap();
        c.create_index(IndexSpec::standard("by_k", "k").unwrap()).unwrap();
        for i in 1..=100u64 {
            c.insert(&from_json_str(&format!(r#"{{"k":{},"even":{}}}"#, i % 10, i % 2 == 0)).unwrap())
                .unwrap();
        }
        assert!(c.delete(60).unwrap());
    }
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    let ids = |spec: &QuerySpec| -> Vec<u64> { c.query(spec).unwrap().map(|x| x.unwrap().0).collect() };

    assert_eq!(ids(&QuerySpec::new("c").with_after_id(95)), vec![96, 97, 98, 99, 100]);
    assert_eq!(ids(&QuerySpec::new("c").with_after_id(100)), Vec::<u64>::new());
    assert_eq!(ids(&QuerySpec::new("c").with_after_id(u64::MAX)), Vec::<u64>::new());
    // With a filter an index could serve: still id order, from the id.
    let spec = QuerySpec::from_json(r#"{"collection":"c","filter":{"eq":["k",3]},"after_id":50}"#).unwrap();
    assert_eq!(ids(&spec), vec![53, 63, 73, 83, 93]);
    assert!(
        c.explain(&spec).unwrap().starts_with("SCAN collection (id order) after id 50"),
        "{}",
        c.explain(&spec).unwrap()
    );
    assert_eq!(c.query_count(&spec).unwrap(), 5);
    // Paging: limit, and the last id of a page starts the next.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = ids(&QuerySpec::new("c").with_after_id(after).with_limit(30));
        let Some(&last) = page.last() else { break };
        seen.extend(page);
        after = last;
    }
    assert_eq!(seen, (1..=100).filter(|&i| i != 60).collect::<Vec<u64>>());
    // A sort applies to what follows the id.
    let spec = QuerySpec::from_json(
        r#"{"collection":"c","sort":[{"field":"k","order":"desc"}],"after_id":90,"limit":3}"#,
    )
    .unwrap();
    assert_eq!(ids(&spec), vec![99, 98, 97]);
    // With an index range: refused, as the two orders differ (when the
    // JSON is read, and by the planner for a spec built in Rust).
    let e = QuerySpec::from_json(r#"{"collection":"c","index":{"name":"by_k","ge":[1]},"after_id":5}"#)
        .unwrap_err();
    assert!(matches!(e, obj_engine::Error::InvalidArgument(_)) && e.to_string().contains("after_id"), "{e}");
    let spec = QuerySpec::from_json(r#"{"collection":"c","index":{"name":"by_k","ge":[1]}}"#)
        .unwrap()
        .with_after_id(5);
    let e = c.query(&spec).map(|_| ()).unwrap_err();
    assert!(matches!(e, obj_engine::Error::InvalidArgument(_)) && e.to_string().contains("after_id"), "{e}");
    // The JSON form round-trips it; a negative one is refused.
    let spec = QuerySpec::new("c").with_after_id(7);
    assert_eq!(QuerySpec::from_json(&spec.to_json()).unwrap(), spec);
    assert!(QuerySpec::from_json(r#"{"collection":"c","after_id":-1}"#).is_err());
}

// - The review of that fix found a window in it: the check skipped a frame
//   whose page was in the cache, and a reader on another thread could
//   evict the page before the copy reached it, which then read the damaged
//   frame part way through (14 of 15 trials). The check now holds what it
//   checked for the copy.

#[test]
fn a_page_evicted_between_the_check_and_the_copy_cannot_mix_the_main_file() {
    use obj_engine::SyncMode;
    use std::ops::Bound::Unbounded;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.obj");
    {
        let db =
            Db::open_with(&template, Options { sync_mode: SyncMode::Off, ..Options::default() }).unwrap();
        let mut w = db.begin_write().unwrap();
        let big = w.create_tree("big").unwrap();
        for i in 0u32..20000 {
            w.insert(&big, &i.to_be_bytes(), &[3; 1500]).unwrap();
        }
        let t = w.create_tree("t").unwrap();
        for i in 0u32..3000 {
            w.insert(&t, &i.to_be_bytes(), &[1; 1500]).unwrap();
        }
        w.commit().unwrap();
        db.close().unwrap();
    }
    for trial in 0..5 {
        let path = dir.path().join(format!("t{trial}.obj"));
        std::fs::copy(&template, &path).unwrap();
        let opts = Options {
            wal_autocheckpoint: 0,
            sync_mode: SyncMode::Off,
            cache_size: 8 << 20,
            ..Options::default()
        };
        let db = Arc::new(Db::open_with(&path, opts).unwrap());
        let mut w = db.begin_write().unwrap();
        let t = w.open_tree("t").unwrap();
        for i in 0u32..3000 {
            w.insert(&t, &i.to_be_bytes(), &[2; 1500]).unwrap();
        }
        w.commit().unwrap();
        {
            let r = db.begin_read().unwrap(); // every page of t in the cache
            let t = r.open_tree("t").unwrap();
            assert_eq!(r.range(&t, Unbounded, Unbounded, false).unwrap().count(), 3000);
        }
        let before = std::fs::read(&path).unwrap();
        let wal = path.with_file_name(format!("t{trial}.obj-wal"));
        let mut bytes = std::fs::read(&wal).unwrap();
        let &(_, image) = wal_frames(&bytes, 4096).iter().max_by_key(|f| (f.0, f.1)).unwrap();
        bytes[image + 200] ^= 0x01;
        std::fs::write(&wal, &bytes).unwrap();
        // A reader scanning the other tree evicts t's pages meanwhile.
        let stop = Arc::new(AtomicBool::new(false));
        let evictor = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = db.begin_read().unwrap();
                    let big = r.open_tree("big").unwrap();
                    for e in r.range(&big, Unbounded, Unbounded, false).unwrap() {
                        e.unwrap();
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                }
            })
        };
        let outcome = db.checkpoint();
        stop.store(true, Ordering::Relaxed);
        evictor.join().unwrap();
        match outcome {
            // The damaged frame's page came from the cache, intact.
            Ok(_) => {}
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                assert_eq!(std::fs::read(&path).unwrap(), before, "trial {trial}: the main file changed");
            }
        }
        let db = Arc::try_unwrap(db).unwrap();
        db.close_without_checkpoint();
        let db = Db::open(&path).unwrap();
        db.integrity_check().unwrap();
        let r = db.begin_read().unwrap();
        let t = r.open_tree("t").unwrap();
        let values: std::collections::BTreeSet<u8> =
            r.range(&t, Unbounded, Unbounded, false).unwrap().map(|e| e.unwrap().1[0]).collect();
        assert_eq!(values.len(), 1, "trial {trial}: one commit's values, not a mix: {values:?}");
    }
}

//! Process-level crash cycles: a child process commits numbered
//! transactions and acknowledges each on stdout after `commit()` returns;
//! the parent kills it with SIGKILL at a random moment, reopens, and checks
//! that every acknowledged transaction is there, no partial one is, and
//! `integrity_check` passes.
//!
//! `OBJ_CRASH_CYCLES` sets the number of cycles (default 50; `make soak`
//! runs thousands).

mod common;

use std::time::{Duration, Instant};

use common::{env_cycles, next_rand, CrashChild};
use obj_engine::{Db, Options, ReadableTxn, SyncMode};

const CHILD_ENV: &str = "OBJ_CRASH_CHILD_DB";

/// Deterministic content of transaction `n`: it writes key `n` in tree
/// "data" with a value whose size varies (some overflow), deletes key
/// `n - 7`, and sets "meta"/"last" = n. So after recovery, with last = L:
/// keys L-6..=L exist, keys <= L-7 and > L do not.
fn value_of(n: u64) -> Vec<u8> {
    let len = match n % 10 {
        0 => 9000,
        3 => 70_000,
        _ => 64 + (n % 300) as usize,
    };
    (0..len).map(|i| (n as usize * 31 + i) as u8).collect()
}

fn child(path: &str) {
    let opts =
        Options { wal_autocheckpoint: 50, busy_timeout: Duration::from_secs(30), ..Options::default() };
    let db = Db::open_with(path, opts).unwrap();
    loop {
        // `n` comes from the database inside the write transaction, so two
        // child processes committing at once continue one sequence.
        let mut w = db.begin_write().unwrap();
        let data = w.create_tree("data").unwrap();
        let meta = w.create_tree("meta").unwrap();
        let n = w.get(&meta, b"last").unwrap().map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap())) + 1;
        w.insert(&data, &n.to_be_bytes(), &value_of(n)).unwrap();
        if n > 7 {
            w.delete(&data, &(n - 7).to_be_bytes()).unwrap();
        }
        w.insert(&meta, b"last", &n.to_be_bytes()).unwrap();
        w.commit().unwrap();
        println!("ack {n}");
        if n.is_multiple_of(37) {
            db.checkpoint().unwrap();
        }
    }
}

/// Reopens and checks the database after a kill; `writers` processes were
/// committing, each of which may have had one commit in flight (or done but
/// not yet acknowledged) when it died.
fn verify(path: &std::path::Path, acked: u64, writers: u64) -> u64 {
    let db = Db::open(path).unwrap();
    db.integrity_check().unwrap_or_else(|e| panic!("integrity after crash: {e}"));
    let r = db.begin_read().unwrap();
    let last = match r.find_tree("meta").unwrap() {
        Some(t) => u64::from_be_bytes(r.get(&t, b"last").unwrap().unwrap().try_into().unwrap()),
        None => 0,
    };
    // The in-flight commit may or may not have landed; nothing earlier may be lost.
    assert!((acked..=acked + writers).contains(&last), "acknowledged {acked} but recovered {last}");
    if last > 0 {
        let data = r.open_tree("data").unwrap();
        for k in last.saturating_sub(12)..=last + 3 {
            let got = r.get(&data, &k.to_be_bytes()).unwrap();
            if k + 7 > last && k <= last && k > 0 {
                assert_eq!(got.as_deref(), Some(&value_of(k)[..]), "key {k} of last {last}");
            } else {
                assert_eq!(got, None, "key {k} must be absent (last {last})");
            }
        }
        assert_eq!(r.count(&data).unwrap(), last.min(7));
    }
    drop(r);
    db.close().unwrap();
    last
}

#[test]
fn sigkill_cycles() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path);
        return;
    }
    let cycles = env_cycles().unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.obj");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut last = 0u64;
    let started = Instant::now();
    for cycle in 0..cycles {
        let child = CrashChild::spawn("sigkill_cycles", CHILD_ENV, &path);
        std::thread::sleep(Duration::from_micros(2_000 + next_rand(&mut rng) % 60_000));
        let acked = child.kill().unwrap_or(last);
        assert!(acked >= last, "cycle {cycle}: child acknowledged {acked} after {last} had been recovered");
        last = verify(&path, acked, 1);
    }
    println!(
        "crash cycles: {cycles}, last commit {last}, 0 lost commits, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The same crash cycles with two child processes committing to the
/// database at once (the writer lock passes between them), both killed at
/// a random moment: the next opener rebuilds the shared index from the WAL,
/// and no acknowledged commit of either is lost.
#[test]
fn sigkill_cycles_two_processes() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path);
        return;
    }
    let cycles = env_cycles().map_or(25, |n| n.div_ceil(2));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash2.obj");
    let mut rng = 0x0123_4567_89AB_CDEFu64;
    let (mut last, mut both) = (0u64, 0u64);
    let started = Instant::now();
    for cycle in 0..cycles {
        let children = [
            CrashChild::spawn("sigkill_cycles_two_processes", CHILD_ENV, &path),
            CrashChild::spawn("sigkill_cycles_two_processes", CHILD_ENV, &path),
        ];
        // Every other cycle waits for both to have committed before the
        // random pause, so that a loaded machine, where the children may
        // take longer to start than the pause, still runs cycles with both
        // committing; the others may kill a child while it starts or
        // recovers.
        if cycle % 2 == 1 {
            for child in &children {
                child.wait_for_first_ack(Duration::from_secs(30));
            }
        }
        std::thread::sleep(Duration::from_micros(5_000 + next_rand(&mut rng) % 80_000));
        let mut acked = last;
        let mut writers = 0;
        for child in children {
            let theirs = child.kill();
            writers += u64::from(theirs.is_some());
            acked = acked.max(theirs.unwrap_or(last));
        }
        both += u64::from(writers == 2);
        // Both were alive at once: neither may have left the other wedged.
        last = verify(&path, acked, 2);
        assert!(last >= acked, "cycle {cycle}");
    }
    println!(
        "two-process crash cycles: {cycles} ({both} with both processes committing), last commit {last}, \
         0 lost commits, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(both > 0 || cycles < 10, "the two processes never both committed");
}

#[test]
fn sync_normal_survives_process_crash() {
    // SyncMode::Normal defers fsync to the checkpoint: a process crash (the
    // OS keeps written data) still loses nothing.
    let vfs = obj_engine::storage::sim::SimVfs::new();
    let opts = Options {
        vfs: Some(std::sync::Arc::new(vfs.clone())),
        sync_mode: SyncMode::Normal,
        wal_autocheckpoint: 10,
        ..Options::default()
    };
    let db = Db::open_with("/n.obj", opts.clone()).unwrap();
    for i in 0u64..100 {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, &i.to_be_bytes(), b"v").unwrap();
        w.commit().unwrap();
    }
    vfs.crash();
    drop(db);
    let db = Db::open_with("/n.obj", opts).unwrap();
    let r = db.begin_read().unwrap();
    assert_eq!(r.count(&r.open_tree("t").unwrap()).unwrap(), 100);
}

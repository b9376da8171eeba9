//! Several processes on one database: one writer at a time, many readers.
//!
//! Two kinds of test. Handles opened with an explicit `OsVfs` bypass the
//! per-process registry, so each has its own pager, shared-index mapping
//! and lock owner: in one process they behave exactly like two processes
//! (fast and deterministic). The rest spawn this test binary again as child
//! processes (the `child` test with `OBJ_MP_ROLE` set) and kill them with
//! SIGKILL, fork, or run them concurrently.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obj_engine::storage::file::OsVfs;
use obj_engine::{Db, Error, Options, ReadableTxn, SyncMode};

mod common;
use common::{get, put, side_files};

const ROLE: &str = "OBJ_MP_ROLE";
const DB_ENV: &str = "OBJ_MP_DB";

/// Options of a handle that acts as its own process.
fn own_process() -> Options {
    Options { vfs: Some(Arc::new(OsVfs)), sync_mode: SyncMode::Normal, ..Options::default() }
}

#[test]
fn two_handles_see_each_others_commits_and_share_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.obj");
    let a = Db::open_with(&path, own_process()).unwrap();
    let b = Db::open_with(&path, own_process()).unwrap();
    put(&a, b"from-a", b"1");
    assert_eq!(get(&b, b"from-a").as_deref(), Some(&b"1"[..]));
    put(&b, b"from-b", b"2");
    assert_eq!(get(&a, b"from-b").as_deref(), Some(&b"2"[..]));

    // One writer across processes: the other waits, then Busy.
    let short = Options { busy_timeout: Duration::from_millis(30), ..own_process() };
    let c = Db::open_with(&path, short).unwrap();
    let w = a.begin_write().unwrap();
    let started = Instant::now();
    assert!(matches!(c.begin_write(), Err(Error::Busy(_))));
    assert!(started.elapsed() >= Duration::from_millis(25), "waited for the busy timeout");
    // Readers in other processes are not blocked by it.
    assert_eq!(get(&b, b"from-b").as_deref(), Some(&b"2"[..]));
    drop(w);
    put(&c, b"from-c", b"3");

    // Lost updates are impossible: read-modify-write in interleaved handles.
    for i in 0..50u64 {
        let db = [&a, &b, &c][i as usize % 3];
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        let n = w.get(&t, b"n").unwrap().map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
        w.insert(&t, b"n", &(n + 1).to_be_bytes()).unwrap();
        w.commit().unwrap();
    }
    assert_eq!(get(&b, b"n"), Some(50u64.to_be_bytes().to_vec()));
    a.integrity_check().unwrap();
    // Only the last process to close folds the WAL and removes the files.
    a.close().unwrap();
    c.close().unwrap();
    assert_eq!(side_files(&path), (true, true), "b still has the database open");
    b.close().unwrap();
    assert_eq!(side_files(&path), (false, false), "the last closer removed -wal and -shm");
    let db = Db::open_with(&path, own_process()).unwrap();
    assert_eq!(get(&db, b"n"), Some(50u64.to_be_bytes().to_vec()));
}

#[test]
fn a_reader_in_another_process_bounds_the_checkpoint_then_the_wal_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.obj");
    let opts = Options { wal_autocheckpoint: 20, ..own_process() };
    let writer = Db::open_with(&path, opts.clone()).unwrap();
    let reader = Db::open_with(&path, opts).unwrap();
    put(&writer, b"k", b"old");
    let snap = reader.begin_read().unwrap();
    let t = snap.open_tree("t").unwrap();
    for i in 0..300u32 {
        put(&writer, &i.to_be_bytes(), &[7u8; 200]);
        put(&writer, b"k", format!("new{i}").as_bytes());
    }
    let result = writer.checkpoint().unwrap();
    assert!(!result.complete, "the reader's snapshot keeps frames in the WAL");
    let frames_held = writer.stat().unwrap().wal_frames;
    assert!(frames_held > 300, "the WAL could not restart under the reader ({frames_held} frames)");
    // The snapshot is intact: the checkpoint copied nothing it could see.
    assert_eq!(snap.get(&t, b"k").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(snap.count(&t).unwrap(), 1);
    assert_eq!(get(&reader, b"k").as_deref(), Some(&b"new299"[..]), "a new snapshot sees everything");
    drop(snap);
    assert!(writer.checkpoint().unwrap().complete);
    put(&writer, b"k", b"after");
    let frames = writer.stat().unwrap().wal_frames;
    assert!(frames < 10, "the WAL restarted once the reader was gone ({frames} frames)");
    assert_eq!(get(&reader, b"k").as_deref(), Some(&b"after"[..]));
    // Main-file pages cached by the reader before the other process's
    // checkpoints are never served stale.
    for i in (0..300u32).step_by(37) {
        let r = reader.begin_read().unwrap();
        assert_eq!(r.get(&r.open_tree("t").unwrap(), &i.to_be_bytes()).unwrap(), Some(vec![7u8; 200]));
    }
    reader.integrity_check().unwrap();
}

/// A reader whose whole snapshot is in the main file does not keep the WAL
/// from restarting; frames it would read from the WAL are overwritten by
/// the new generation, and it reads the main file instead (which no
/// checkpoint may change until it ends).
#[test]
fn the_wal_restarts_under_a_reader_of_a_fully_checkpointed_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restart.obj");
    let a = Db::open_with(&path, Options { wal_autocheckpoint: 0, ..own_process() }).unwrap();
    let b = Db::open_with(&path, Options { cache_size: 4 * 4096, ..own_process() }).unwrap();
    let value = |round: u8, i: u32| vec![round ^ i as u8; 100 + (i as usize % 50)];
    let fill = |round: u8| {
        let mut w = a.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        for i in 0..400u32 {
            w.insert(&t, &i.to_be_bytes(), &value(round, i)).unwrap();
        }
        w.commit().unwrap();
    };
    fill(1);
    let frames_before = a.stat().unwrap().wal_frames;
    let r = b.begin_read().unwrap();
    assert!(a.checkpoint().unwrap().complete, "the reader's snapshot is the newest commit");
    fill(2);
    let frames = a.stat().unwrap().wal_frames;
    assert!(frames <= frames_before, "the WAL restarted under the reader ({frames} frames)");
    let t = r.open_tree("t").unwrap();
    for i in 0..400u32 {
        assert_eq!(r.get(&t, &i.to_be_bytes()).unwrap(), Some(value(1, i)), "key {i}");
    }
    // The main file may not change under it: nothing is copied meanwhile.
    fill(3);
    assert!(!a.checkpoint().unwrap().complete);
    assert_eq!(r.get(&t, &7u32.to_be_bytes()).unwrap(), Some(value(1, 7)));
    drop(r);
    assert!(a.checkpoint().unwrap().complete);
    let r = b.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    for i in 0..400u32 {
        assert_eq!(r.get(&t, &i.to_be_bytes()).unwrap(), Some(value(3, i)), "key {i}");
    }
    drop(r);
    b.integrity_check().unwrap();
}

#[test]
fn damaged_shared_index_is_rebuilt_while_both_processes_run() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.obj");
    let a = Db::open_with(&path, Options { wal_autocheckpoint: 0, ..own_process() }).unwrap();
    let b = Db::open_with(&path, own_process()).unwrap();
    for i in 0..20u32 {
        put(&a, &i.to_be_bytes(), b"v");
    }
    let shm = std::fs::OpenOptions::new().write(true).open(dir.path().join("torn.obj-shm")).unwrap();
    // A writer that died in the middle of a header update: odd sequence.
    shm.write_all_at(&1u32.to_ne_bytes(), 8).unwrap();
    assert_eq!(get(&b, &5u32.to_be_bytes()).as_deref(), Some(&b"v"[..]));
    put(&a, b"after-torn", b"1");
    // Garbage in the header: the checksum no longer matches.
    shm.write_all_at(&[0xAB; 40], 16).unwrap();
    assert_eq!(get(&a, b"after-torn").as_deref(), Some(&b"1"[..]));
    put(&b, b"after-garbage", b"2");
    assert_eq!(get(&a, b"after-garbage").as_deref(), Some(&b"2"[..]));
    for i in 0..20u32 {
        assert_eq!(get(&a, &i.to_be_bytes()).as_deref(), Some(&b"v"[..]));
    }
    a.integrity_check().unwrap();
    b.integrity_check().unwrap();
}

#[test]
fn read_only_handle_beside_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.obj");
    let w = Db::open_with(&path, own_process()).unwrap();
    put(&w, b"k", b"1");
    let ro = Db::open_with(&path, Options { read_only: true, ..own_process() }).unwrap();
    assert_eq!(get(&ro, b"k").as_deref(), Some(&b"1"[..]));
    assert!(matches!(ro.begin_write(), Err(Error::InvalidArgument(_))));
    for i in 0..200u32 {
        put(&w, b"k", &i.to_be_bytes());
        if i % 50 == 0 {
            w.checkpoint().unwrap();
        }
        assert_eq!(get(&ro, b"k"), Some(i.to_be_bytes().to_vec()));
    }
    w.close().unwrap();
    assert_eq!(side_files(&path), (true, true), "the read-only handle is still open");
    assert_eq!(get(&ro, b"k"), Some(199u32.to_be_bytes().to_vec()));
    ro.close().unwrap();
    // A read-only open of a database whose WAL another process creates later.
    let w = Db::open_with(&path, own_process()).unwrap();
    w.close().unwrap();
    assert_eq!(side_files(&path), (false, false));
    let ro = Db::open_with(&path, Options { read_only: true, ..own_process() }).unwrap();
    let w = Db::open_with(&path, own_process()).unwrap();
    put(&w, b"k", b"later");
    assert_eq!(get(&ro, b"k").as_deref(), Some(&b"later"[..]));
    drop(ro);
    w.close().unwrap();
}

// ---------------------------------------------------------------------------
// Child processes.

fn spawn(role: &str, db: &Path, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DB_ENV, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Reads the child's stdout until a line containing `what` (libtest may
/// prefix the first line); returns the rest of that line.
fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, what: &str) -> String {
    for line in lines {
        let line = line.unwrap();
        if let Some(at) = line.find(what) {
            return line[at + what.len()..].trim().to_string();
        }
    }
    panic!("child ended before printing {what:?}");
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name).unwrap().parse().unwrap()
}

fn child_options() -> Options {
    Options {
        sync_mode: SyncMode::Normal,
        wal_autocheckpoint: std::env::var("OBJ_MP_CKPT").ok().map_or(200, |s| s.parse().unwrap()),
        busy_timeout: Duration::from_secs(20),
        ..Options::default()
    }
}

fn ack_path(db: &Path, writer: u64) -> PathBuf {
    db.with_file_name(format!("ack-{writer}"))
}

fn read_ack(db: &Path, writer: u64) -> u64 {
    std::fs::read(ack_path(db, writer))
        .ok()
        .filter(|b| b.len() >= 8)
        .map_or(0, |b| u64::from_be_bytes(b[..8].try_into().unwrap()))
}

fn writer_key(writer: u64, n: u64) -> Vec<u8> {
    format!("w{writer}:{n:06}").into_bytes()
}

/// Commits records `w<id>:<n>` up to `n = OBJ_MP_N`, each with a +1 of
/// `meta/count` (`n` continues from the database, so a killed writer's
/// successor carries on); after each commit returns, records `n` in its ack
/// file and prints it.
fn child_writer(db: &Path) {
    let id = env_u64("OBJ_MP_ID");
    let n_max = env_u64("OBJ_MP_N");
    let db_handle = Db::open_with(db, child_options()).unwrap();
    let ack =
        std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(ack_path(db, id)).unwrap();
    let mine = format!("n{id}").into_bytes();
    loop {
        let mut w = db_handle.begin_write().unwrap();
        let data = w.create_tree("data").unwrap();
        let meta = w.create_tree("meta").unwrap();
        fn read(w: &obj_engine::WriteTxn, meta: &obj_engine::Tree, key: &[u8]) -> u64 {
            w.get(meta, key).unwrap().map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()))
        }
        let n = read(&w, &meta, &mine) + 1;
        if n > n_max {
            break;
        }
        let count = read(&w, &meta, b"count");
        w.insert(&data, &writer_key(id, n), &vec![(n % 251) as u8; 100 + (n as usize * 37) % 3000]).unwrap();
        w.insert(&meta, b"count", &(count + 1).to_be_bytes()).unwrap();
        w.insert(&meta, &mine, &n.to_be_bytes()).unwrap();
        w.commit().unwrap();
        std::os::unix::fs::FileExt::write_all_at(&ack, &n.to_be_bytes(), 0).unwrap();
        println!("ack {n}");
    }
    db_handle.close().unwrap();
    println!("done");
}

/// Checks one read transaction; returns the count it saw.
fn check_snapshot(db: &Db, path: &Path, writers: u64, last_count: u64) -> u64 {
    // Commits acknowledged before this transaction begins must be in it.
    let acked: Vec<u64> = (0..writers).map(|w| read_ack(path, w)).collect();
    let r = db.begin_read().unwrap();
    let (Some(meta), Some(data)) = (r.find_tree("meta").unwrap(), r.find_tree("data").unwrap()) else {
        assert!(acked.iter().all(|&a| a == 0), "acknowledged commits missing: {acked:?}");
        return 0;
    };
    let count = r.get(&meta, b"count").unwrap().map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
    assert!(count >= last_count, "count went backwards: {count} after {last_count}");
    assert_eq!(r.count(&data).unwrap(), count, "count and records disagree in one snapshot");
    let mut total = 0;
    for (w, &a) in acked.iter().enumerate() {
        let prefix = format!("w{w}:").into_bytes();
        let keys: Vec<Vec<u8>> = r.prefix(&data, &prefix, false).unwrap().map(|e| e.unwrap().0).collect();
        let k = keys.len() as u64;
        assert!(k >= a, "writer {w} acknowledged {a} before this read began, but it sees {k}");
        if k > 0 {
            assert_eq!(keys.last().unwrap(), &writer_key(w as u64, k), "writer {w}'s records have a gap");
        }
        total += k;
    }
    assert_eq!(total, count);
    // The snapshot does not move while the writers go on.
    std::thread::sleep(Duration::from_micros(200));
    let again = r.get(&meta, b"count").unwrap().map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
    assert_eq!(again, count, "a snapshot changed under its reader");
    count
}

/// Reads in a loop until the `stop` file appears, then once more: the
/// final read must see every record of every writer.
fn child_reader(path: &Path) {
    let writers = env_u64("OBJ_MP_WRITERS");
    let expect = std::env::var("OBJ_MP_EXPECT").ok().map(|s| s.parse::<u64>().unwrap());
    let db = Db::open_with(
        path,
        Options { read_only: std::env::var("OBJ_MP_RO").is_ok_and(|v| v == "1"), ..child_options() },
    )
    .unwrap();
    let stop = path.with_file_name("stop");
    let (mut reads, mut last) = (0u64, 0u64);
    println!("ready");
    while !stop.exists() {
        last = check_snapshot(&db, path, writers, last);
        reads += 1;
    }
    last = check_snapshot(&db, path, writers, last);
    if let Some(expect) = expect {
        assert_eq!(last, expect, "the final read misses records");
    }
    println!("reads {reads} last {last}");
}

/// Holds a read snapshot until killed.
fn child_holder(path: &Path) {
    let db = Db::open_with(path, child_options()).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    println!("holding {}", r.count(&t).unwrap());
    std::thread::sleep(Duration::from_secs(120));
}

/// Holds the writer lock (a write transaction) until killed.
fn child_busy_writer(path: &Path) {
    let db = Db::open_with(path, child_options()).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"uncommitted", b"x").unwrap();
    println!("writing");
    std::thread::sleep(Duration::from_secs(120));
}

/// Holds the writer lock, forks a child that lives on without touching
/// the database, and waits to be killed.
fn child_fork_holder(path: &Path) {
    let db = Db::open_with(path, child_options()).unwrap();
    let w = db.begin_write().unwrap();
    // SAFETY: the grandchild only sleeps and _exit()s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let msg = b"grandchild running\n";
        // SAFETY: a plain write(2) of a static buffer to stdout.
        unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
        std::thread::sleep(Duration::from_secs(20));
        // SAFETY: ends the forked child without running destructors.
        unsafe { libc::_exit(0) };
    }
    println!("grandchild {pid}");
    std::thread::sleep(Duration::from_secs(120));
    drop(w);
}

#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    // A child outliving a failed test would loop (or sleep) on: die with
    // the test thread that spawned it.
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let path = PathBuf::from(std::env::var(DB_ENV).unwrap());
    match role.as_str() {
        "writer" => child_writer(&path),
        "reader" => child_reader(&path),
        "holder" => child_holder(&path),
        "busy_writer" => child_busy_writer(&path),
        "fork_holder" => child_fork_holder(&path),
        other => panic!("unknown role {other}"),
    }
}

fn finish(mut child: Child) -> String {
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed ({status}); its output:\n{out}");
    out
}

#[test]
fn writers_and_readers_in_several_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mp.obj");
    Db::open(&path).unwrap().close().unwrap();
    let (writers, per_writer) = (2u64, 150u64);
    let env = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut v = vec![("OBJ_MP_WRITERS", writers.to_string()), ("OBJ_MP_CKPT", "60".to_string())];
        v.extend(extra.iter().cloned());
        v
    };
    let expect = (writers * per_writer).to_string();
    let readers: Vec<Child> = (0..2)
        .map(|i| {
            spawn(
                "reader",
                &path,
                &env(&[("OBJ_MP_RO", (i % 2).to_string()), ("OBJ_MP_EXPECT", expect.clone())]),
            )
        })
        .collect();
    let mut readers: Vec<(Child, _)> = readers
        .into_iter()
        .map(|mut c| {
            let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
            wait_for(&mut lines, "ready");
            (c, lines)
        })
        .collect();
    let started = Instant::now();
    let mut ws: Vec<Child> = (0..writers)
        .map(|id| {
            spawn(
                "writer",
                &path,
                &env(&[("OBJ_MP_ID", id.to_string()), ("OBJ_MP_N", per_writer.to_string())]),
            )
        })
        .collect();
    // This process reads too, with the registry's shared handle.
    let db = Db::open(&path).unwrap();
    let mut last = 0;
    while ws.iter_mut().any(|w| w.try_wait().unwrap().is_none()) {
        last = check_snapshot(&db, &path, writers, last);
        assert!(started.elapsed() < Duration::from_secs(90), "writers too slow");
    }
    for w in ws {
        let out = finish(w);
        assert!(out.contains("done"), "{out}");
    }
    std::fs::write(path.with_file_name("stop"), b"").unwrap();
    for (c, lines) in readers.drain(..) {
        let mut c = c;
        let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
        let status = c.wait().unwrap();
        assert!(status.success(), "reader failed: {rest:?}");
        let summary = rest.iter().find(|l| l.contains("reads ")).expect("reader summary");
        println!("reader: {summary}");
        assert!(summary.ends_with(&format!("last {expect}")), "{summary}");
    }
    assert_eq!(check_snapshot(&db, &path, writers, last), writers * per_writer);
    db.integrity_check().unwrap();
    db.close().unwrap();
    assert_eq!(side_files(&path), (false, false));
    println!(
        "{writers} writer and 3 reader processes: {} commits in {:.1} s",
        writers * per_writer,
        started.elapsed().as_secs_f64()
    );
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigkill_of_the_writer_mid_commit_while_readers_continue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.obj");
    Db::open(&path).unwrap().close().unwrap();
    let env = [("OBJ_MP_WRITERS", "1".to_string()), ("OBJ_MP_CKPT", "40".to_string())];
    let mut reader = spawn("reader", &path, &env);
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    wait_for(&mut lines, "ready");
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut acked = 0;
    for cycle in 0..6 {
        let mut env = env.to_vec();
        env.extend([("OBJ_MP_ID", "0".to_string()), ("OBJ_MP_N", "1000000".to_string())]);
        let mut writer = spawn("writer", &path, &env);
        let mut out = BufReader::new(writer.stdout.take().unwrap()).lines();
        wait_for(&mut out, "ack ");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(5 + rng % 40));
        sigkill(&mut writer);
        let now = read_ack(&path, 0);
        assert!(now > acked, "cycle {cycle}: no progress");
        acked = now;
    }
    // The dead writer's lock is gone: this process writes at once.
    let db =
        Db::open_with(&path, Options { busy_timeout: Duration::from_secs(2), ..Options::default() }).unwrap();
    let r = db.begin_read().unwrap();
    let count = u64::from_be_bytes(
        r.get(&r.open_tree("meta").unwrap(), b"count").unwrap().unwrap().try_into().unwrap(),
    );
    assert!(count == acked || count == acked + 1, "acknowledged {acked}, found {count}");
    drop(r);
    let w = db.begin_write().unwrap();
    drop(w);
    std::fs::write(path.with_file_name("stop"), b"").unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = reader.wait().unwrap();
    assert!(status.success(), "the reader failed while writers were killed: {rest:?}");
    let summary = rest.iter().find(|l| l.contains("reads ")).expect("reader summary");
    println!("reader: {summary}; {acked} commits acknowledged across 6 killed writers");
    db.integrity_check().unwrap();
}

#[test]
fn sigkill_of_a_reader_holding_a_snapshot_frees_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holder.obj");
    let db = Db::open_with(&path, Options { wal_autocheckpoint: 20, ..Options::default() }).unwrap();
    put(&db, b"k", b"v0");
    let mut holder = spawn("holder", &path, &[]);
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    assert_eq!(wait_for(&mut lines, "holding"), "1");
    for i in 0..100u32 {
        put(&db, &i.to_be_bytes(), &[1u8; 300]);
    }
    assert!(!db.checkpoint().unwrap().complete, "the holder's snapshot keeps the WAL");
    let held = db.stat().unwrap().wal_frames;
    assert!(held > 100, "WAL restarted under a live reader ({held} frames)");
    sigkill(&mut holder);
    // Its slot is reclaimed by the next checkpoint; the WAL restarts.
    assert!(db.checkpoint().unwrap().complete, "the dead reader's mark still blocks the checkpoint");
    put(&db, b"k", b"v1");
    let frames = db.stat().unwrap().wal_frames;
    assert!(frames < 10, "the WAL did not restart after the reader died ({frames} frames)");
    db.integrity_check().unwrap();
}

#[test]
fn sigkill_of_a_process_holding_the_writer_lock_does_not_wedge_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wlock.obj");
    let db = Db::open_with(&path, Options { busy_timeout: Duration::from_millis(100), ..Options::default() })
        .unwrap();
    put(&db, b"k", b"v0");
    let mut busy = spawn("busy_writer", &path, &[]);
    let mut lines = BufReader::new(busy.stdout.take().unwrap()).lines();
    wait_for(&mut lines, "writing");
    assert!(matches!(db.begin_write(), Err(Error::Busy(_))));
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v0"[..]), "readers go on beside the writer");
    sigkill(&mut busy);
    put(&db, b"k", b"v1");
    assert_eq!(get(&db, b"uncommitted"), None);
    db.integrity_check().unwrap();
}

/// Two handles on the simulated file system (each its own "process", with
/// its own shared-index handle and locks) doing random interleaved commits,
/// reads, long snapshots, checkpoints and reopens against a model; then a
/// random power cut, after which the first opener's rebuild must find the
/// last commit.
#[test]
fn sim_two_handles_random_interleaving_and_power_cut() {
    use obj_engine::storage::sim::{CutMode, SimVfs};
    use std::collections::BTreeMap;
    const DB: &str = "/sim/two.obj";
    for seed in 0..40u64 {
        let vfs = SimVfs::new();
        let opts = Options {
            vfs: Some(Arc::new(vfs.clone())),
            wal_autocheckpoint: 8,
            cache_size: 32 * 4096,
            busy_timeout: Duration::ZERO,
            ..Options::default()
        };
        let mut handles =
            [Some(Db::open_with(DB, opts.clone()).unwrap()), Some(Db::open_with(DB, opts.clone()).unwrap())];
        let mut model: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        let mut held: Option<(obj_engine::ReadTxn, BTreeMap<u32, Vec<u8>>)> = None;
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for step in 0..150u32 {
            let who = (next() % 2) as usize;
            if handles[who].is_none() {
                handles[who] = Some(Db::open_with(DB, opts.clone()).unwrap());
            }
            let db = handles[who].as_ref().unwrap();
            match next() % 10 {
                0..=4 => {
                    let mut w = db.begin_write().unwrap();
                    let t = w.create_tree("t").unwrap();
                    for _ in 0..1 + next() % 4 {
                        let k = (next() % 300) as u32;
                        if next() % 4 == 0 {
                            w.delete(&t, &k.to_be_bytes()).unwrap();
                            model.remove(&k);
                        } else {
                            let v = vec![(step % 251) as u8; 50 + (next() % 2000) as usize];
                            w.insert(&t, &k.to_be_bytes(), &v).unwrap();
                            model.insert(k, v);
                        }
                    }
                    w.commit().unwrap();
                }
                5..=6 => {
                    let r = db.begin_read().unwrap();
                    let got: BTreeMap<u32, Vec<u8>> = match r.find_tree("t").unwrap() {
                        Some(t) => r
                            .range(&t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)
                            .unwrap()
                            .map(|e| e.unwrap())
                            .map(|(k, v)| (u32::from_be_bytes(k.try_into().unwrap()), v))
                            .collect(),
                        None => BTreeMap::new(),
                    };
                    assert_eq!(got, model, "seed {seed} step {step}: handle {who} missed a commit");
                    if held.is_none() && next() % 3 == 0 {
                        held = Some((r, got));
                    }
                }
                7 => {
                    db.checkpoint().unwrap();
                }
                8 => {
                    // Close this handle, even under a held snapshot of it
                    // (which stays readable; the fold waits for it).
                    handles[who].take().unwrap().close().unwrap();
                }
                _ => {
                    // The long snapshot is still exactly what it was.
                    if let Some((r, want)) = held.take() {
                        let t = r.find_tree("t").unwrap();
                        let now: usize = t.map_or(0, |t| r.count(&t).unwrap() as usize);
                        assert_eq!(now, want.len(), "seed {seed} step {step}: a held snapshot moved");
                        for (k, v) in want.iter().take(20) {
                            assert_eq!(
                                r.get(&r.open_tree("t").unwrap(), &k.to_be_bytes()).unwrap().as_ref(),
                                Some(v)
                            );
                        }
                    }
                }
            }
        }
        drop(held);
        vfs.power_cut(seed, CutMode::Random);
        drop(handles);
        let db = Db::open_with(DB, opts).unwrap();
        db.integrity_check().unwrap();
        let r = db.begin_read().unwrap();
        let got: BTreeMap<u32, Vec<u8>> = match r.find_tree("t").unwrap() {
            Some(t) => r
                .range(&t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)
                .unwrap()
                .map(|e| e.unwrap())
                .map(|(k, v)| (u32::from_be_bytes(k.try_into().unwrap()), v))
                .collect(),
            None => BTreeMap::new(),
        };
        assert_eq!(got, model, "seed {seed}: commits lost in the power cut");
    }
}

/// A forked child shares its parent's open file descriptions, and with them
/// the parent's OFD locks: a writer killed while a child it forked lives on
/// must still not wedge the others (the engine drops the child's references
/// to the shared index at fork).
#[test]
fn a_forked_child_does_not_keep_a_dead_parents_writer_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forkheld.obj");
    let db = Db::open_with(&path, Options { busy_timeout: Duration::from_millis(100), ..Options::default() })
        .unwrap();
    put(&db, b"k", b"v0");
    let mut holder = spawn("fork_holder", &path, &[]);
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let mut grandchild = None;
    let mut running = false;
    while grandchild.is_none() || !running {
        let line = lines.next().expect("holder output").unwrap();
        if let Some(at) = line.find("grandchild ") {
            match line[at + 11..].trim().parse::<i32>() {
                Ok(pid) => grandchild = Some(pid),
                Err(_) => running = true,
            }
        }
    }
    let grandchild = grandchild.unwrap();
    assert!(matches!(db.begin_write(), Err(Error::Busy(_))));
    sigkill(&mut holder);
    let patient =
        Db::open_with(&path, Options { busy_timeout: Duration::from_secs(1), ..own_process() }).unwrap();
    let result = patient.begin_write().map(drop);
    drop(patient);
    // SAFETY: kill(2) of the grandchild the holder forked (adopted by init
    // once the holder died, which reaps it).
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    result.expect("the grandchild kept the dead writer's lock");
    put(&db, b"k", b"v1");
    db.close().unwrap();
    assert_eq!(side_files(&path), (false, false));
}

/// A file system where the `-shm` cannot be opened for writing (what a
/// read-only directory or mount gives a non-root user; tests run as root
/// ignore permissions, hence the wrapper).
#[derive(Debug)]
struct ShmDenied;

impl obj_engine::storage::file::Vfs for ShmDenied {
    fn open(
        &self,
        path: &Path,
        mode: obj_engine::storage::file::OpenMode,
    ) -> std::io::Result<Arc<dyn obj_engine::storage::file::StorageFile>> {
        OsVfs.open(path, mode)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        OsVfs.exists(path)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        OsVfs.remove(path)
    }
    fn open_shm(&self, _path: &Path) -> std::io::Result<Arc<dyn obj_engine::storage::shm::ShmFile>> {
        Err(std::io::Error::from_raw_os_error(libc::EACCES))
    }
    fn shm_in_use(&self, path: &Path) -> std::io::Result<bool> {
        OsVfs.shm_in_use(path)
    }
}

#[test]
fn read_only_open_without_a_writable_shared_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noshm.obj");
    let denied = Options { vfs: Some(Arc::new(ShmDenied)), ..Options::default() };
    let ro = Options { read_only: true, ..denied.clone() };
    let w = Db::open_with(&path, own_process()).unwrap();
    put(&w, b"k", b"committed");
    // Another process has the database open: refused, and the message says why.
    match Db::open_with(&path, ro.clone()) {
        Err(Error::Busy(m)) => assert!(m.contains("-shm") && m.contains("write access"), "{m}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    // A writer needs the shared index: the error is the I/O error.
    assert!(matches!(Db::open_with(&path, denied), Err(Error::Io { .. })));
    // Alone (the WAL left behind by a crash is read with a private index).
    std::mem::forget(w);
    drop(std::fs::remove_file(dir.path().join("noshm.obj-shm")));
    let dbro = Db::open_with(&path, ro).unwrap();
    assert_eq!(get(&dbro, b"k").as_deref(), Some(&b"committed"[..]));
    assert!(matches!(dbro.begin_write(), Err(Error::InvalidArgument(_))));
    dbro.close().unwrap();
    assert!(side_files(&path).0, "a read-only close leaves the WAL");
}

/// A read-only handle with a private index (its `-shm` not writable) keeps
/// a writer that starts later out until it closes: the writer would
/// otherwise checkpoint into the main file under the reader's snapshot,
/// which then read pages of two versions or reported false corruption
/// (found by an acceptance test on a read-only bind mount).
#[test]
fn a_private_read_only_handle_keeps_a_later_writer_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.obj");
    let w = Db::open_with(&path, own_process()).unwrap();
    put(&w, b"k", b"v0");
    w.close().unwrap();
    let ro = Options { read_only: true, vfs: Some(Arc::new(ShmDenied)), ..Options::default() };
    let reader = Db::open_with(&path, ro).unwrap();
    let snapshot = reader.begin_read().unwrap();
    let quick = Options { busy_timeout: Duration::from_millis(100), ..own_process() };
    match Db::open_with(&path, quick.clone()) {
        Err(Error::Busy(m)) => assert!(m.contains("read-only"), "{m}"),
        other => panic!("expected Busy while the private reader is open, got {other:?}"),
    }
    let t = snapshot.find_tree("t").unwrap().unwrap();
    assert_eq!(snapshot.get(&t, b"k").unwrap().as_deref(), Some(&b"v0"[..]));
    drop(snapshot);
    reader.close().unwrap();
    let w = Db::open_with(&path, quick).unwrap();
    put(&w, b"k", b"v1");
    w.close().unwrap();
}

//! Read throughput with 1, 2 and 4 reader processes beside one writer
//! process, obj against SQLite (WAL mode, synchronous=NORMAL, 8 MiB cache)
//! on the same workload: N records of 100 bytes keyed by a u64; a reader
//! transaction looks up 100 random keys (`OBJ_BENCH_LOOKUPS` sets how
//! many); a writer transaction updates 10 random keys. Each process is this
//! binary started again with a role.
//!
//! Usage: mp-bench [seconds per run] (default 3)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use obj_engine::{Db, Options, ReadableTxn, SyncMode};

const N: u64 = 50_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Lookups per reader transaction: `OBJ_BENCH_LOOKUPS`, default 100. One
/// lookup a transaction (a web request's shape) weighs beginning and
/// ending a transaction, which 100 hide.
fn lookups_per_txn() -> u64 {
    std::env::var("OBJ_BENCH_LOOKUPS").ok().map_or(100, |s| s.parse().unwrap())
}

fn obj_opts() -> Options {
    let ckpt = std::env::var("OBJ_BENCH_CKPT").ok().map_or(1000, |s| s.parse().unwrap());
    Options {
        sync_mode: SyncMode::Normal,
        busy_timeout: Duration::from_secs(30),
        wal_autocheckpoint: ckpt,
        ..Options::default()
    }
}

fn sqlite_open(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-8192;").unwrap();
    c
}

fn setup(dir: &Path) {
    let db = Db::open_with(dir.join("bench.obj"), obj_opts()).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for k in 0..N {
        w.insert(&t, &k.to_be_bytes(), &[k as u8; 100]).unwrap();
    }
    w.commit().unwrap();
    db.close().unwrap();
    let mut c = sqlite_open(&dir.join("bench.sqlite"));
    c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);").unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut st = tx.prepare("INSERT INTO t VALUES (?1, ?2)").unwrap();
        for k in 0..N {
            st.execute(rusqlite::params![k as i64, vec![k as u8; 100]]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Runs a role until the deadline; returns its operation count.
fn role(engine: &str, role: &str, dir: &Path, secs: f64, seed: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut rng = Rng(seed | 1);
    let mut ops = 0u64;
    let per = lookups_per_txn();
    match (engine, role) {
        ("obj", "reader") => {
            let db = Db::open_with(dir.join("bench.obj"), obj_opts()).unwrap();
            while Instant::now() < deadline {
                let r = db.begin_read().unwrap();
                let t = r.open_tree("t").unwrap();
                for _ in 0..per {
                    let k = rng.next() % N;
                    assert!(r.get(&t, &k.to_be_bytes()).unwrap().is_some());
                }
                ops += per;
            }
        }
        ("obj", "writer") => {
            let db = Db::open_with(dir.join("bench.obj"), obj_opts()).unwrap();
            while Instant::now() < deadline {
                let mut w = db.begin_write().unwrap();
                let t = w.open_tree("t").unwrap();
                for _ in 0..10 {
                    let k = rng.next() % N;
                    w.insert(&t, &k.to_be_bytes(), &[rng.next() as u8; 100]).unwrap();
                }
                w.commit().unwrap();
                ops += 1;
            }
            if std::env::var("OBJ_BENCH_DEBUG").is_ok() {
                let st = db.stat().unwrap();
                let len = std::fs::metadata(dir.join("bench.obj-wal")).map_or(0, |m| m.len());
                eprintln!(
                    "obj writer: wal frames {} backfilled {} bytes {len}",
                    st.wal_frames, st.wal_backfilled
                );
            }
        }
        ("sqlite", "reader") => {
            let c = sqlite_open(&dir.join("bench.sqlite"));
            let mut st = c.prepare("SELECT v FROM t WHERE k = ?1").unwrap();
            while Instant::now() < deadline {
                c.execute_batch("BEGIN").unwrap();
                for _ in 0..per {
                    let k = (rng.next() % N) as i64;
                    let v: Vec<u8> = st.query_row([k], |row| row.get(0)).unwrap();
                    assert_eq!(v.len(), 100);
                }
                c.execute_batch("COMMIT").unwrap();
                ops += per;
            }
        }
        ("sqlite", "writer") => {
            let mut c = sqlite_open(&dir.join("bench.sqlite"));
            while Instant::now() < deadline {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                {
                    let mut st = tx.prepare_cached("UPDATE t SET v = ?2 WHERE k = ?1").unwrap();
                    for _ in 0..10 {
                        let k = (rng.next() % N) as i64;
                        st.execute(rusqlite::params![k, vec![rng.next() as u8; 100]]).unwrap();
                    }
                }
                tx.commit().unwrap();
                ops += 1;
            }
            if std::env::var("OBJ_BENCH_DEBUG").is_ok() {
                let len = std::fs::metadata(dir.join("bench.sqlite-wal")).map_or(0, |m| m.len());
                eprintln!("sqlite writer: wal bytes {len}");
            }
        }
        other => panic!("unknown role {other:?}"),
    }
    ops
}

fn run(exe: &Path, engine: &str, dir: &Path, readers: usize, secs: f64) -> (u64, u64) {
    let spawn = |r: &str, seed: usize| {
        Command::new(exe)
            .args(["role", engine, r, dir.to_str().unwrap(), &secs.to_string(), &seed.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let writer = spawn("writer", 1);
    let rs: Vec<_> = (0..readers).map(|i| spawn("reader", 100 + i)).collect();
    let count = |c: std::process::Child| -> u64 {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
    };
    let reads: u64 = rs.into_iter().map(count).sum();
    (reads, count(writer))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("role") {
        let n =
            role(&args[2], &args[3], Path::new(&args[4]), args[5].parse().unwrap(), args[6].parse().unwrap());
        println!("{n}");
        return;
    }
    let secs: f64 = args.get(1).map_or(3.0, |s| s.parse().unwrap());
    let dir: PathBuf = std::env::temp_dir().join(format!("mp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    setup(&dir);
    let exe = std::env::current_exe().unwrap();
    println!(
        "{N} records of 100 B; reader txn = {} random lookups; writer txn = 10 random updates; {secs} s per run",
        lookups_per_txn()
    );
    println!("| readers | obj lookups/s | SQLite lookups/s | obj/SQLite | obj writer txn/s | SQLite writer txn/s |");
    println!("|---|---|---|---|---|---|");
    let counts: Vec<usize> = std::env::var("OBJ_BENCH_READERS")
        .map_or(vec![1, 2, 4], |s| s.split(',').map(|n| n.parse().unwrap()).collect());
    for readers in counts {
        let (or, ow) = run(&exe, "obj", &dir, readers, secs);
        let (sr, sw) = run(&exe, "sqlite", &dir, readers, secs);
        println!(
            "| {readers} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} |",
            or as f64 / secs,
            sr as f64 / secs,
            or as f64 / (sr as f64).max(1.0),
            ow as f64 / secs,
            sw as f64 / secs
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The key-value workload of issue 3, in the shape of redb's
//! `lmdb_benchmark`: random 24-byte keys, 150-byte values.
//!
//! Each engine implements whole steps ([`KvEngine`]), so its inner loops are
//! monomorphic calls into its own API with no dispatch in between, and each
//! uses its fastest public path (obj: a raw named tree; SQLite: a
//! `WITHOUT ROWID` table and cached prepared statements).

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Rng;

/// Key length in bytes.
pub const KEY_LEN: usize = 24;
/// Value length in bytes.
pub const VALUE_LEN: usize = 150;
/// Entries read per range read.
pub const RANGE_LEN: usize = 10;
/// Reads per read transaction in the concurrent step.
pub const READS_PER_TXN: usize = 1000;
/// Page cache given to every engine that has one (obj, redb, SQLite); LMDB
/// reads through the operating system's page cache. Enough to hold the whole
/// 1M-record data set, as redb's own benchmark does.
pub const CACHE_BYTES: usize = 1 << 30;

/// A boxed error: the harness reports and stops on any engine error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`BoxError`].
pub type Result<T> = std::result::Result<T, BoxError>;

/// A key.
pub type Key = [u8; KEY_LEN];

/// The records: `n` random keys with random values, plus fresh keys for
/// the durable-commit step.
pub struct KvData {
    /// Keys in insertion order.
    pub keys: Vec<Key>,
    values: Vec<u8>,
    /// Keys that are not in the loaded set (one per durable commit).
    pub fresh_keys: Vec<Key>,
}

impl KvData {
    /// `n` records and `fresh` extra keys from a fixed seed.
    pub fn generate(n: usize, fresh: usize) -> KvData {
        let mut rng = Rng::new(3);
        let mut keys = vec![[0u8; KEY_LEN]; n];
        let mut values = vec![0u8; n * VALUE_LEN];
        for (k, v) in keys.iter_mut().zip(values.chunks_mut(VALUE_LEN)) {
            rng.fill(k);
            rng.fill(v);
        }
        let mut fresh_keys = vec![[0u8; KEY_LEN]; fresh];
        for k in &mut fresh_keys {
            rng.fill(k);
        }
        KvData { keys, values, fresh_keys }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Value of record `i`.
    pub fn value(&self, i: usize) -> &[u8] {
        &self.values[i * VALUE_LEN..(i + 1) * VALUE_LEN]
    }

    /// `count` record indexes in random order (a permutation when `count == len`).
    pub fn random_order(&self, seed: u64, count: usize) -> Vec<u32> {
        let mut rng = Rng::new(seed);
        if count == self.len() {
            let mut v: Vec<u32> = (0..self.len() as u32).collect();
            rng.shuffle(&mut v);
            v
        } else {
            (0..count).map(|_| rng.below(self.len() as u64) as u32).collect()
        }
    }
}

/// What a read step saw; engines must agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadSum {
    /// Entries found.
    pub found: u64,
    /// Sum of the first byte of every value found (catches wrong values).
    pub checksum: u64,
}

impl ReadSum {
    fn add(&mut self, v: &[u8]) {
        self.found += 1;
        self.checksum += u64::from(v[0]) + v.len() as u64;
    }
}

/// Bytes on disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskSize {
    /// The main database file.
    pub main: u64,
    /// Every file in the database's directory (main file, WAL, lock file).
    pub total: u64,
}

fn disk_size(dir: &Path, main: &str) -> DiskSize {
    DiskSize {
        main: std::fs::metadata(dir.join(main)).map(|m| m.len()).unwrap_or(0),
        total: crate::dir_size(dir),
    }
}

/// Counts from a concurrent run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Concurrent {
    /// Reads completed by all reader threads.
    pub reads: u64,
    /// Durable commits completed by the writer meanwhile (0 in a run
    /// without one).
    pub commits: u64,
    /// Wall time of the run in seconds.
    pub secs: f64,
    /// CPU time the reader threads used, in seconds (all readers together).
    pub reader_cpu_secs: f64,
    /// CPU time the writer thread used, in seconds (what the kernel does for
    /// it on other threads, such as block-device completion, is not counted).
    pub writer_cpu_secs: f64,
}

impl Concurrent {
    /// Reads per second of wall time.
    pub fn rate(&self) -> f64 {
        self.reads as f64 / self.secs
    }

    /// Reads per second of reader CPU time: what a reader achieves while it
    /// actually runs, whatever else competes for the cores.
    pub fn reads_per_cpu_sec(&self) -> f64 {
        self.reads as f64 / self.reader_cpu_secs
    }

    /// The cores the readers had on average: their CPU time over the wall
    /// time (2.0 for two readers that never waited for a core).
    pub fn cores(&self) -> f64 {
        self.reader_cpu_secs / self.secs
    }

    /// Commits per second of writer CPU time: the share of the cores a
    /// commit takes from the readers.
    pub fn commits_per_cpu_sec(&self) -> f64 {
        self.commits as f64 / self.writer_cpu_secs
    }
}

/// CPU time used by the calling thread so far, in seconds.
pub fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// One engine under test. Every step is one call so the hot loop stays in
/// the engine's own code.
pub trait KvEngine: Send + Sync {
    /// Display name.
    fn name(&self) -> String;
    /// Inserts every record in one write transaction and commits durably.
    /// Engines with a write-ahead log also fold it into the main file here
    /// (checkpoint), so every engine ends with its data in place.
    fn bulk_load(&self, data: &KvData) -> Result<()>;
    /// Point reads of `order`'s records in one read transaction.
    fn point_reads(&self, data: &KvData, order: &[u32]) -> Result<ReadSum>;
    /// For each of `starts`, reads [`RANGE_LEN`] entries from that key on, in
    /// one read transaction.
    fn range_reads(&self, data: &KvData, starts: &[u32]) -> Result<ReadSum>;
    /// One durable write transaction per key, each inserting it with `value`.
    fn durable_commits(&self, keys: &[Key], value: &[u8]) -> Result<()>;
    /// Reader thread body: random point reads, [`READS_PER_TXN`] per read
    /// transaction, until `stop`; returns the number of reads.
    fn read_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64>;
    /// Writer thread body: durable commits, each overwriting one random
    /// record, until `stop`; returns the number of commits.
    fn write_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64>;
    /// Bytes on disk: the database file, and it with every sidecar (WAL,
    /// lock file) in its directory.
    fn disk_size(&self) -> DiskSize;
}

/// Runs `readers` reader threads, and one writer if `writer`, for about
/// `duration`.
pub fn concurrent(
    engine: &dyn KvEngine,
    data: &KvData,
    readers: usize,
    writer: bool,
    duration: Duration,
) -> Result<Concurrent> {
    let stop = &AtomicBool::new(false);
    let start = Instant::now();
    let (reads, commits, cpu, writer_cpu) = std::thread::scope(|s| -> Result<(u64, u64, f64, f64)> {
        let writer = writer.then(|| {
            s.spawn(|| {
                let cpu = thread_cpu_secs();
                let commits = engine.write_loop(data, 0xC0FFEE, stop);
                (commits, thread_cpu_secs() - cpu)
            })
        });
        let handles: Vec<_> = (0..readers)
            .map(|i| {
                s.spawn(move || {
                    let cpu = thread_cpu_secs();
                    let reads = engine.read_loop(data, 1000 + i as u64, stop);
                    (reads, thread_cpu_secs() - cpu)
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let (mut reads, mut cpu) = (0, 0.0);
        for h in handles {
            let (r, c) = h.join().expect("reader thread panicked");
            reads += r?;
            cpu += c;
        }
        match writer {
            Some(w) => {
                let (commits, writer_cpu) = w.join().expect("writer thread panicked");
                Ok((reads, commits?, cpu, writer_cpu))
            }
            None => Ok((reads, 0, cpu, 0.0)),
        }
    })?;
    Ok(Concurrent {
        reads,
        commits,
        secs: crate::secs(start),
        reader_cpu_secs: cpu,
        writer_cpu_secs: writer_cpu,
    })
}

fn value_variant(data: &KvData, i: usize, round: u64) -> [u8; VALUE_LEN] {
    let mut v = [0u8; VALUE_LEN];
    v.copy_from_slice(data.value(i));
    v[0] = v[0].wrapping_add(round as u8);
    v
}

// ---------------------------------------------------------------------------
// obj

/// obj through a raw named tree (the KV namespaces add a catalog lookup per
/// call on top of this).
pub struct ObjKv {
    db: obj_engine::Db,
    dir: PathBuf,
}

const OBJ_TREE: &str = "kv";

impl ObjKv {
    /// A new database in `dir` with a [`CACHE_BYTES`] page cache and
    /// otherwise default options (durable commits: `SyncMode::Full`).
    pub fn create(dir: &Path) -> Result<ObjKv> {
        Self::create_with(dir, CACHE_BYTES)
    }

    /// A new database in `dir` with a page cache of `cache_bytes`.
    pub fn create_with(dir: &Path, cache_bytes: usize) -> Result<ObjKv> {
        std::fs::create_dir_all(dir)?;
        let options = obj_engine::Options { cache_size: cache_bytes, ..Default::default() };
        let db = obj_engine::Db::open_with(dir.join("bench.obj"), options)?;
        Ok(ObjKv { db, dir: dir.to_path_buf() })
    }

    /// The database handle.
    pub fn db(&self) -> &obj_engine::Db {
        &self.db
    }
}

impl KvEngine for ObjKv {
    fn name(&self) -> String {
        "obj".into()
    }

    fn bulk_load(&self, data: &KvData) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        let tree = tx.create_tree(OBJ_TREE)?;
        for (i, k) in data.keys.iter().enumerate() {
            tx.insert(&tree, k, data.value(i))?;
        }
        tx.commit()?;
        self.db.checkpoint()?;
        Ok(())
    }

    fn point_reads(&self, data: &KvData, order: &[u32]) -> Result<ReadSum> {
        use obj_engine::ReadableTxn;
        let rx = self.db.begin_read()?;
        let tree = rx.open_tree(OBJ_TREE)?;
        let mut sum = ReadSum::default();
        // The borrowing form of `get`, as redb's access guards and LMDB's
        // slices are.
        for &i in order {
            if let Some(v) = rx.get_guard(&tree, &data.keys[i as usize])? {
                sum.add(&v);
            }
        }
        Ok(sum)
    }

    fn range_reads(&self, data: &KvData, starts: &[u32]) -> Result<ReadSum> {
        use obj_engine::ReadableTxn;
        let rx = self.db.begin_read()?;
        let tree = rx.open_tree(OBJ_TREE)?;
        let mut sum = ReadSum::default();
        // The lending form of the range (`next_in`): entries are borrowed
        // from the page, as redb's access guards and LMDB's slices are.
        let mut scratch = Vec::new();
        for &i in starts {
            let key = &data.keys[i as usize][..];
            let mut range = rx.range(&tree, Bound::Included(key), Bound::Unbounded, false)?;
            for _ in 0..RANGE_LEN {
                match range.next_in(&mut scratch) {
                    Some(e) => sum.add(e?.1),
                    None => break,
                }
            }
        }
        Ok(sum)
    }

    fn durable_commits(&self, keys: &[Key], value: &[u8]) -> Result<()> {
        for k in keys {
            let mut tx = self.db.begin_write()?;
            let tree = tx.create_tree(OBJ_TREE)?;
            tx.insert(&tree, k, value)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn read_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64> {
        use obj_engine::ReadableTxn;
        let mut rng = Rng::new(seed);
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            let rx = self.db.begin_read()?;
            let tree = rx.open_tree(OBJ_TREE)?;
            for _ in 0..READS_PER_TXN {
                let i = rng.below(data.len() as u64) as usize;
                let v = rx.get_guard(&tree, &data.keys[i])?.ok_or("obj: key missing")?;
                std::hint::black_box(&v);
                reads += 1;
            }
        }
        Ok(reads)
    }

    fn write_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64> {
        let mut rng = Rng::new(seed);
        let mut commits = 0;
        while !stop.load(Ordering::Relaxed) {
            let i = rng.below(data.len() as u64) as usize;
            let mut tx = self.db.begin_write()?;
            let tree = tx.create_tree(OBJ_TREE)?;
            tx.insert(&tree, &data.keys[i], &value_variant(data, i, commits))?;
            tx.commit()?;
            commits += 1;
        }
        Ok(commits)
    }

    fn disk_size(&self) -> DiskSize {
        disk_size(&self.dir, "bench.obj")
    }
}

// ---------------------------------------------------------------------------
// redb

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");

/// redb with a [`CACHE_BYTES`] cache and its default (immediate) durability.
pub struct RedbKv {
    db: redb::Database,
    dir: PathBuf,
}

impl RedbKv {
    /// A new database in `dir`.
    pub fn create(dir: &Path) -> Result<RedbKv> {
        std::fs::create_dir_all(dir)?;
        let db = redb::Database::builder().set_cache_size(CACHE_BYTES).create(dir.join("bench.redb"))?;
        Ok(RedbKv { db, dir: dir.to_path_buf() })
    }
}

impl KvEngine for RedbKv {
    fn name(&self) -> String {
        "redb".into()
    }

    fn bulk_load(&self, data: &KvData) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for (i, k) in data.keys.iter().enumerate() {
                table.insert(&k[..], data.value(i))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn point_reads(&self, data: &KvData, order: &[u32]) -> Result<ReadSum> {
        use redb::ReadableDatabase;
        let rx = self.db.begin_read()?;
        let table = rx.open_table(REDB_TABLE)?;
        let mut sum = ReadSum::default();
        for &i in order {
            if let Some(v) = table.get(&data.keys[i as usize][..])? {
                sum.add(v.value());
            }
        }
        Ok(sum)
    }

    fn range_reads(&self, data: &KvData, starts: &[u32]) -> Result<ReadSum> {
        use redb::ReadableDatabase;
        let rx = self.db.begin_read()?;
        let table = rx.open_table(REDB_TABLE)?;
        let mut sum = ReadSum::default();
        for &i in starts {
            let key = &data.keys[i as usize][..];
            for e in table.range::<&[u8]>(key..)?.take(RANGE_LEN) {
                sum.add(e?.1.value());
            }
        }
        Ok(sum)
    }

    fn durable_commits(&self, keys: &[Key], value: &[u8]) -> Result<()> {
        for k in keys {
            let tx = self.db.begin_write()?;
            tx.open_table(REDB_TABLE)?.insert(&k[..], value)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn read_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64> {
        use redb::ReadableDatabase;
        let mut rng = Rng::new(seed);
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            let rx = self.db.begin_read()?;
            let table = rx.open_table(REDB_TABLE)?;
            for _ in 0..READS_PER_TXN {
                let i = rng.below(data.len() as u64) as usize;
                let v = table.get(&data.keys[i][..])?.ok_or("redb: key missing")?;
                std::hint::black_box(v.value());
                reads += 1;
            }
        }
        Ok(reads)
    }

    fn write_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64> {
        let mut rng = Rng::new(seed);
        let mut commits = 0;
        while !stop.load(Ordering::Relaxed) {
            let i = rng.below(data.len() as u64) as usize;
            let tx = self.db.begin_write()?;
            tx.open_table(REDB_TABLE)?.insert(&data.keys[i][..], &value_variant(data, i, commits)[..])?;
            tx.commit()?;
            commits += 1;
        }
        Ok(commits)
    }

    fn disk_size(&self) -> DiskSize {
        disk_size(&self.dir, "bench.redb")
    }
}

// ---------------------------------------------------------------------------
// LMDB (heed)

type LmdbDb = heed::Database<heed::types::Bytes, heed::types::Bytes>;

/// LMDB through heed, default (durable) flags.
pub struct LmdbKv {
    env: heed::Env,
    db: LmdbDb,
    dir: PathBuf,
}

impl LmdbKv {
    /// A new environment in `dir` (map size 16 GiB; the file grows as needed).
    pub fn create(dir: &Path) -> Result<LmdbKv> {
        std::fs::create_dir_all(dir)?;
        // SAFETY: the environment is opened once in this process and the
        // files are not touched by anything else while it is open.
        let env = unsafe { heed::EnvOpenOptions::new().map_size(16 << 30).max_readers(64).open(dir)? };
        let mut wtxn = env.write_txn()?;
        let db: LmdbDb = env.create_database(&mut wtxn, None)?;
        wtxn.commit()?;
        Ok(LmdbKv { env, db, dir: dir.to_path_buf() })
    }
}

impl KvEngine for LmdbKv {
    fn name(&self) -> String {
        "LMDB".into()
    }

    fn bulk_load(&self, data: &KvData) -> Result<()> {
        let mut tx = self.env.write_txn()?;
        for (i, k) in data.keys.iter().enumerate() {
            self.db.put(&mut tx, &k[..], data.value(i))?;
        }
        tx.commit()?;
        Ok(())
    }

    fn point_reads(&self, data: &KvData, order: &[u32]) -> Result<ReadSum> {
        let rx = self.env.read_txn()?;
        let mut sum = ReadSum::default();
        for &i in order {
            if let Some(v) = self.db.get(&rx, &data.keys[i as usize][..])? {
                sum.add(v);
            }
        }
        Ok(sum)
    }

    fn range_reads(&self, data: &KvData, starts: &[u32]) -> Result<ReadSum> {
        let rx = self.env.read_txn()?;
        let mut sum = ReadSum::default();
        for &i in starts {
            let key = &data.keys[i as usize][..];
            let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(key), Bound::Unbounded);
            for e in self.db.range(&rx, &bounds)?.take(RANGE_LEN) {
                sum.add(e?.1);
            }
        }
        Ok(sum)
    }

    fn durable_commits(&self, keys: &[Key], value: &[u8]) -> Result<()> {
        for k in keys {
            let mut tx = self.env.write_txn()?;
            self.db.put(&mut tx, &k[..], value)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn read_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64> {
        let mut rng = Rng::new(seed);
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            let rx = self.env.read_txn()?;
            for _ in 0..READS_PER_TXN {
                let i = rng.below(data.len() as u64) as usize;
                let v = self.db.get(&rx, &data.keys[i][..])?.ok_or("LMDB: key missing")?;
                std::hint::black_box(v);
                reads += 1;
            }
        }
        Ok(reads)
    }

    fn write_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64> {
        let mut rng = Rng::new(seed);
        let mut commits = 0;
        while !stop.load(Ordering::Relaxed) {
            let i = rng.below(data.len() as u64) as usize;
            let mut tx = self.env.write_txn()?;
            self.db.put(&mut tx, &data.keys[i][..], &value_variant(data, i, commits)[..])?;
            tx.commit()?;
            commits += 1;
        }
        Ok(commits)
    }

    fn disk_size(&self) -> DiskSize {
        disk_size(&self.dir, "data.mdb")
    }
}

// ---------------------------------------------------------------------------
// SQLite (rusqlite)

/// SQLite in WAL mode with `synchronous=FULL` (every commit durable), a
/// [`CACHE_BYTES`] page cache per connection, and the records in a
/// `WITHOUT ROWID` table keyed by the blob (one B-tree, as in the other
/// engines).
pub struct SqliteKv {
    conn: Mutex<rusqlite::Connection>,
    path: PathBuf,
    dir: PathBuf,
}

/// Opens a connection with the settings every benchmark connection uses.
pub fn sqlite_open(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -((CACHE_BYTES / 1024) as i64))?;
    Ok(conn)
}

impl SqliteKv {
    /// A new database in `dir`.
    pub fn create(dir: &Path) -> Result<SqliteKv> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("bench.sqlite");
        let conn = sqlite_open(&path)?;
        conn.execute_batch("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")?;
        Ok(SqliteKv { conn: Mutex::new(conn), path, dir: dir.to_path_buf() })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const SQL_GET: &str = "SELECT v FROM kv WHERE k = ?1";
const SQL_RANGE: &str = "SELECT v FROM kv WHERE k >= ?1 ORDER BY k LIMIT 10";
const SQL_PUT: &str = "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)";

fn sqlite_get(stmt: &mut rusqlite::CachedStatement<'_>, key: &[u8], sum: &mut ReadSum) -> Result<bool> {
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        Some(row) => {
            sum.add(row.get_ref(0)?.as_blob()?);
            Ok(true)
        }
        None => Ok(false),
    }
}

impl KvEngine for SqliteKv {
    fn name(&self) -> String {
        "SQLite".into()
    }

    fn bulk_load(&self, data: &KvData) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(SQL_PUT)?;
            for (i, k) in data.keys.iter().enumerate() {
                stmt.execute(rusqlite::params![&k[..], data.value(i)])?;
            }
        }
        tx.commit()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn point_reads(&self, data: &KvData, order: &[u32]) -> Result<ReadSum> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
        let mut sum = ReadSum::default();
        {
            let mut stmt = tx.prepare_cached(SQL_GET)?;
            for &i in order {
                sqlite_get(&mut stmt, &data.keys[i as usize], &mut sum)?;
            }
        }
        tx.commit()?;
        Ok(sum)
    }

    fn range_reads(&self, data: &KvData, starts: &[u32]) -> Result<ReadSum> {
        debug_assert_eq!(RANGE_LEN, 10, "SQL_RANGE has LIMIT 10");
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
        let mut sum = ReadSum::default();
        {
            let mut stmt = tx.prepare_cached(SQL_RANGE)?;
            for &i in starts {
                let mut rows = stmt.query([&data.keys[i as usize][..]])?;
                while let Some(row) = rows.next()? {
                    sum.add(row.get_ref(0)?.as_blob()?);
                }
            }
        }
        tx.commit()?;
        Ok(sum)
    }

    fn durable_commits(&self, keys: &[Key], value: &[u8]) -> Result<()> {
        let mut conn = self.conn();
        for k in keys {
            let tx = conn.transaction()?;
            tx.prepare_cached(SQL_PUT)?.execute(rusqlite::params![&k[..], value])?;
            tx.commit()?;
        }
        Ok(())
    }

    fn read_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64> {
        let mut conn = sqlite_open(&self.path)?;
        let mut rng = Rng::new(seed);
        let mut reads = 0;
        let mut sum = ReadSum::default();
        while !stop.load(Ordering::Relaxed) {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
            {
                let mut stmt = tx.prepare_cached(SQL_GET)?;
                for _ in 0..READS_PER_TXN {
                    let i = rng.below(data.len() as u64) as usize;
                    if !sqlite_get(&mut stmt, &data.keys[i], &mut sum)? {
                        return Err("SQLite: key missing".into());
                    }
                    reads += 1;
                }
            }
            tx.commit()?;
        }
        std::hint::black_box(sum);
        Ok(reads)
    }

    fn write_loop(&self, data: &KvData, seed: u64, stop: &AtomicBool) -> Result<u64> {
        let mut conn = sqlite_open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mut rng = Rng::new(seed);
        let mut commits = 0;
        while !stop.load(Ordering::Relaxed) {
            let i = rng.below(data.len() as u64) as usize;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.prepare_cached(SQL_PUT)?
                .execute(rusqlite::params![&data.keys[i][..], &value_variant(data, i, commits)[..]])?;
            tx.commit()?;
            commits += 1;
        }
        Ok(commits)
    }

    fn disk_size(&self) -> DiskSize {
        disk_size(&self.dir, "bench.sqlite")
    }
}

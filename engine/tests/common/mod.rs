//! What the process-level crash suites (`crash.rs`, `crash_documents.rs`)
//! share: re-running the test binary as a committing child process,
//! reading the `ack n` lines it prints after each commit, killing it, and
//! the pseudo-random waits between spawn and kill. The fault suites
//! (`faults.rs`, `ops_faults.rs`) use its random sequence and settings;
//! the file-level suites (`recovery.rs`, `wal_file.rs`, `multiprocess.rs`,
//! `fork.rs`) its one-commit writes, one-snapshot reads and side-file
//! check; `creation.rs`, `rekey_window.rs` and `target_shm_race.rs` its
//! simulated file system with hooks on renames and shared-index opens.
//! Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use obj_engine::storage::file::{OpenMode, StorageFile, Vfs};
use obj_engine::storage::shm::ShmFile;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, ReadableTxn};

/// The simulated file system with `hook` run before each rename, given
/// whether it is a `rename_noreplace` and its target: where a test acts at
/// the moment a file is published (another process's move in between).
/// And `on_shm`, if set, run after each open of a shared index, given its
/// path (another process's close between that open and its lock).
pub struct RenameHook {
    pub sim: SimVfs,
    pub hook: OnRename,
    pub on_shm: Option<OnShm>,
}

/// See [`RenameHook`]: called with `noreplace` and the target path.
pub type OnRename = Box<dyn Fn(bool, &Path) + Send + Sync>;
/// See [`RenameHook`]: called with the shared index's path.
pub type OnShm = Box<dyn Fn(&Path) + Send + Sync>;

impl fmt::Debug for RenameHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RenameHook({:?})", self.sim)
    }
}

impl Vfs for RenameHook {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        self.sim.open(path, mode)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.sim.exists(path)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.sim.remove(path)
    }
    fn sync_parent_dir(&self, path: &Path) -> io::Result<()> {
        self.sim.sync_parent_dir(path)
    }
    fn open_shm(&self, path: &Path) -> io::Result<Arc<dyn ShmFile>> {
        let shm = self.sim.open_shm(path)?;
        if let Some(on_shm) = &self.on_shm {
            on_shm(path);
        }
        Ok(shm)
    }
    fn shm_in_use(&self, path: &Path) -> io::Result<bool> {
        self.sim.shm_in_use(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        (self.hook)(false, to);
        self.sim.rename(from, to)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        (self.hook)(true, to);
        self.sim.rename_noreplace(from, to)
    }
}

/// Writes `key = value` into tree `tree` (created if missing) in a
/// transaction of its own.
pub fn put_in(db: &Db, tree: &str, key: &[u8], value: &[u8]) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree(tree).unwrap();
    w.insert(&t, key, value).unwrap();
    w.commit().unwrap();
}

/// The value of `key` in tree `tree` as a new snapshot sees it.
pub fn get_in(db: &Db, tree: &str, key: &[u8]) -> Option<Vec<u8>> {
    let r = db.begin_read().unwrap();
    let t = r.find_tree(tree).unwrap()?;
    r.get(&t, key).unwrap()
}

/// Whether `<path>-wal` and `<path>-shm` exist.
pub fn side_files(path: &Path) -> (bool, bool) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    (Path::new(&wal).exists(), Path::new(&shm).exists())
}

/// [`put_in`] tree `t`.
pub fn put(db: &Db, key: &[u8], value: &[u8]) {
    put_in(db, "t", key, value)
}

/// [`get_in`] tree `t`.
pub fn get(db: &Db, key: &[u8]) -> Option<Vec<u8>> {
    get_in(db, "t", key)
}

/// `OBJ_CRASH_CYCLES` when set (`make test` and `make soak` set it).
pub fn env_cycles() -> Option<u64> {
    std::env::var("OBJ_CRASH_CYCLES").ok().and_then(|s| s.parse().ok())
}

/// The setting `name`: a number, or `all` (None); `default` when unset.
pub fn env_number(name: &str, default: u64) -> Option<u64> {
    match std::env::var(name) {
        Ok(s) if s == "all" => None,
        Ok(s) => Some(s.parse().unwrap_or_else(|_| panic!("{name}={s}: want a number or `all`"))),
        Err(_) => Some(default),
    }
}

/// The next value of a xorshift64 sequence (never 0 for a non-zero seed).
pub fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A child process committing to a database and acknowledging each commit.
pub struct CrashChild {
    child: Child,
    reader: JoinHandle<Option<u64>>,
    /// Commits acknowledged so far.
    acks: Arc<AtomicU64>,
}

impl CrashChild {
    /// Re-runs this test binary with only `test` selected and `env_var` set
    /// to `path`; the test, seeing the variable, runs the child's workload,
    /// which prints `ack n` after each commit returns.
    pub fn spawn(test: &str, env_var: &str, path: &Path) -> CrashChild {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(env_var, path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acks = Arc::new(AtomicU64::new(0));
        let counted = acks.clone();
        let reader = std::thread::spawn(move || {
            let mut acked = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The first ack shares its line with libtest's "test <name> ... ".
                if let Some(n) = line.find("ack ").map(|at| &line[at + 4..]) {
                    acked = Some(n.trim().parse::<u64>().unwrap());
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
            acked
        });
        CrashChild { child, reader, acks }
    }

    /// Waits until the child has acknowledged a commit, or `limit` passed;
    /// whether it had.
    pub fn wait_for_first_ack(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while self.acks.load(Ordering::Relaxed) == 0 {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// SIGKILLs the child and returns the last commit it acknowledged
    /// (None if it acknowledged none).
    pub fn kill(mut self) -> Option<u64> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.reader.join().unwrap()
    }
}

/// Three readers of `db`, each holding a snapshot for 270 ms and then the
/// next, 90 ms apart, so that one is always active, until `stop`: the
/// overlapping readers the WAL's reader waits are for. Each reads key
/// `seed` of key-value namespace `k`, which must be there.
pub fn overlapping_readers(db: &Arc<Db>, stop: &Arc<std::sync::atomic::AtomicBool>) -> Vec<JoinHandle<()>> {
    (0..3)
        .map(|r| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(90 * r));
                while !stop.load(Ordering::Relaxed) {
                    let rx = db.begin_read().unwrap();
                    assert!(rx.kv_get("k", b"seed").unwrap().is_some());
                    std::thread::sleep(Duration::from_millis(270));
                    drop(rx);
                }
            })
        })
        .collect()
}

/// Options of a handle that acts as its own process: an explicit VFS gives
/// it a pager of its own (its own locks, memo and reader-wait record),
/// with sync off.
pub fn own_process() -> obj_engine::Options {
    obj_engine::Options {
        vfs: Some(Arc::new(obj_engine::storage::file::OsVfs)),
        sync_mode: obj_engine::SyncMode::Off,
        ..obj_engine::Options::default()
    }
}

/// One commit of a 100-byte value at key `*commits` of key-value namespace
/// `k`, counted in `commits`; every 64th notes the WAL's size in `most`:
/// the writer beside [`overlapping_readers`].
pub fn commit_noting_wal(db: &Db, commits: &mut u64, most: &mut u64) {
    let mut w = db.begin_write().unwrap();
    w.kv_put("k", &commits.to_be_bytes(), &[7u8; 100]).unwrap();
    w.commit().unwrap();
    *commits += 1;
    if commits.is_multiple_of(64) {
        *most = (*most).max(db.stat().unwrap().wal_frames);
    }
}

/// The bytes of WAL image `wal` up to the end of its last written frame
/// (`frame`: frame length): a small commit at the end of the file extends
/// it with zeros (`Wal::make_room`), which tests that cut or measure the
/// log by its frames leave out. A frame ends in its page's checksum
/// trailer, which is never all zeros in practice.
#[allow(dead_code)]
pub fn wal_frames(wal: &[u8], frame: usize) -> &[u8] {
    let header = obj_engine::storage::WAL_HEADER_LEN as usize;
    let written = wal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let end = if written <= header { written } else { header + (written - header).div_ceil(frame) * frame };
    &wal[..end.min(wal.len())]
}

//! Benchmarks of obj against redb, LMDB (through heed) and SQLite (through
//! rusqlite), run side by side in one process so that the ratios between
//! engines are comparable. `cargo run --release -p obj-bench --bin report`
//! (what `make bench` runs) prints the tables; `docs/performance.md` records
//! them.
//!
//! - [`kv`]: the workload of redb's `lmdb_benchmark` (issue 3): random
//!   24-byte keys and 150-byte values.
//! - [`docs`]: 100k order documents (issue 4) in obj and in SQLite's two
//!   usual shapes.
//!
//! Every engine runs the same operations on the same data, generated from
//! fixed seeds, and every step checks that the engines agree on what they
//! read, so a fast wrong answer cannot pass for a fast right one.

pub mod docs;
pub mod kv;
pub mod table;

use std::path::Path;
use std::time::Instant;

/// A small deterministic random number generator (SplitMix64): the same
/// seed gives every engine the same keys in the same order.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }

    /// Shuffles `v` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Reads a positive integer from the environment variable `name`, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(s) => s.trim().replace('_', "").parse().unwrap_or_else(|_| panic!("{name}={s:?} is not a number")),
        Err(_) => default,
    }
}

/// Seconds since `start`, as f64.
pub fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// The smallest of `runs` timings of `f` (in seconds) and the value of the last run.
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f();
        best = best.min(secs(t));
        last = Some(v);
    }
    (best, last.expect("at least one run"))
}

/// Total size of the files in `dir` (the database and any sidecars).
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// What a raw durable write costs on this disk, measured with the same
/// system calls a WAL commit makes.
#[derive(Debug, Clone, Copy)]
pub struct FsyncFloor {
    /// `write` of a 128-byte record at the end of a file, then `fdatasync`
    /// (the file grows every time, like an appended log).
    pub append_per_sec: f64,
    /// `pwrite` of a 4 KiB block over the same offset, then `fdatasync`
    /// (no size change: the cheapest durable write there is).
    pub overwrite_per_sec: f64,
}

/// Measures [`FsyncFloor`] with `count` syncs of each kind in a file in `dir`.
pub fn fsync_floor(dir: &Path, count: usize) -> std::io::Result<FsyncFloor> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;

    fn fdatasync(f: &std::fs::File) -> std::io::Result<()> {
        // SAFETY: a valid open descriptor.
        if unsafe { libc::fdatasync(f.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    let path = dir.join("fsync-floor.bin");
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    let record = [0xA5u8; 128];
    let t = Instant::now();
    for _ in 0..count {
        f.write_all(&record)?;
        fdatasync(&f)?;
    }
    let append = count as f64 / secs(t);

    let block = [0x5Au8; 4096];
    f.write_all_at(&block, 0)?;
    fdatasync(&f)?;
    let t = Instant::now();
    for _ in 0..count {
        f.write_all_at(&block, 0)?;
        fdatasync(&f)?;
    }
    let overwrite = count as f64 / secs(t);
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(FsyncFloor { append_per_sec: append, overwrite_per_sec: overwrite })
}

//! Overhead of encryption at rest: the same workloads on a plain and on an
//! encrypted database (AES-256-GCM, raw key), best of several rounds.
//!
//!     cargo run --release -p obj-engine --example crypto_overhead [-- ROWS [ROUNDS]]
//!
//! Workloads: a bulk insert (large transactions), random point reads with a
//! cold and with a warm page cache, and small commits (SyncMode::Normal, so
//! that the CPU cost is not hidden behind fsync; and SyncMode::Full).
//! Prints each time and the encrypted / plain ratio, then what one 4 KiB
//! page costs: the codec's seal and check (CRC, or AES-GCM with its
//! allocation, copy and nonce), and below them the raw AES-256-GCM
//! encryption and decryption in place and one `getrandom` call, which tell
//! the cipher's own cost from the codec's overhead. `make bench-crypto`.

use std::path::Path;
use std::time::{Duration, Instant};

use obj_engine::storage::crypto::PageCodec;
use obj_engine::storage::page::{seal_page, Page, PageRef};
use obj_engine::{Db, EncryptionKey, Options, ReadableTxn, SyncMode};

fn options(encrypted: bool, sync_mode: SyncMode, cache_size: usize) -> Options {
    Options {
        encryption: encrypted.then(|| EncryptionKey::raw([0x42; 32])),
        sync_mode,
        cache_size,
        ..Options::default()
    }
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn value(i: u64) -> Vec<u8> {
    (0..100).map(|j| (i as usize * 7 + j) as u8).collect()
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let _ = std::fs::remove_file(wal);
}

/// Inserts `rows` rows in transactions of 10,000 (a bulk load).
fn bulk_insert(path: &Path, encrypted: bool, rows: u64) -> Duration {
    remove(path);
    let start = Instant::now();
    let db = Db::open_with(path, options(encrypted, SyncMode::Full, 8 << 20)).unwrap();
    for batch in 0..rows.div_ceil(10_000) {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        for i in batch * 10_000..((batch + 1) * 10_000).min(rows) {
            w.insert(&t, &key(i), &value(i)).unwrap();
        }
        w.commit().unwrap();
    }
    db.close().unwrap();
    start.elapsed()
}

/// `reads` random point reads on the database `bulk_insert` left; with
/// `warm`, after one pass over every row.
fn random_reads(
    path: &Path,
    encrypted: bool,
    rows: u64,
    reads: u64,
    cache_size: usize,
    warm: bool,
) -> Duration {
    let db = Db::open_with(path, options(encrypted, SyncMode::Full, cache_size)).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    if warm {
        for e in r.range(&t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false).unwrap() {
            e.unwrap();
        }
    }
    let mut rng = 0x1234_5678_9abc_def1u64;
    let start = Instant::now();
    for _ in 0..reads {
        let i = xorshift(&mut rng) % rows;
        assert_eq!(r.get(&t, &key(i)).unwrap().unwrap().len(), 100);
    }
    let elapsed = start.elapsed();
    drop(r);
    db.close().unwrap();
    elapsed
}

/// `commits` transactions of one insert each.
fn small_commits(path: &Path, encrypted: bool, commits: u64, sync_mode: SyncMode) -> Duration {
    remove(path);
    let db = Db::open_with(path, options(encrypted, sync_mode, 8 << 20)).unwrap();
    let start = Instant::now();
    for i in 0..commits {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        w.insert(&t, &key(i), &value(i)).unwrap();
        w.commit().unwrap();
    }
    let elapsed = start.elapsed();
    db.close().unwrap();
    elapsed
}

/// Microseconds per 4 KiB page: (CRC seal, GCM seal, CRC check, GCM open).
fn page_costs() -> [f64; 4] {
    let codec = PageCodec::create(Some(&EncryptionKey::raw([1; 32])), [2; 16]).unwrap();
    let n = 20_000u32;
    let per = |start: Instant| start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let mut page: PageRef = Page::from_vec((0..4096).map(|i| i as u8).collect()).into_ref();
    let start = Instant::now();
    for i in 0..n {
        seal_page(i % 64 + 1, &mut PageRef::make_mut(&mut page)[..]);
    }
    let crc_seal = per(start);
    let start = Instant::now();
    let mut image = None;
    for i in 0..n {
        image = codec.seal(i % 64 + 1, &mut page).unwrap();
    }
    let gcm_seal = per(start);
    let (image, last) = (image.unwrap(), (n - 1) % 64 + 1);
    let plain = PageCodec::Plain;
    let start = Instant::now();
    for _ in 0..n {
        plain.open_page(last, &mut page.to_vec()).unwrap();
    }
    let crc_open = per(start);
    let start = Instant::now();
    for _ in 0..n {
        codec.open_page(last, &mut image.to_vec()).unwrap();
    }
    [crc_seal, gcm_seal, crc_open, per(start)]
}

/// Microseconds per 4 KiB page of the bare cipher, in place, without the
/// codec around it: (`ring`'s AES-256-GCM, which the codec uses: encrypt,
/// decrypt, one 12-byte getrandom).
fn raw_cipher_costs() -> [f64; 3] {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9u8; 32]).unwrap());
    let nonce = || Nonce::assume_unique_for_key([5u8; 12]);
    let aad = [1u8; 20];
    let mut buf: Vec<u8> = (0..4064).map(|i| i as u8).collect();
    let n = 20_000u32;
    let per = |start: Instant| start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let start = Instant::now();
    let mut tag = None;
    for _ in 0..n {
        tag = Some(cipher.seal_in_place_separate_tag(nonce(), Aad::from(&aad), &mut buf).unwrap());
    }
    let enc = per(start);
    // Each decryption starts from a fresh copy of the ciphertext (a 4 KiB
    // copy, included in the figure): decrypting it in place twice would
    // fail the tag check the second time and skip the decryption.
    let (tag, ciphertext) = (tag.unwrap(), buf.clone());
    let start = Instant::now();
    for _ in 0..n {
        buf.copy_from_slice(&ciphertext);
        cipher.open_in_place_separate_tag(nonce(), Aad::from(&aad), tag, &mut buf, 0..).unwrap();
    }
    let dec = per(start);
    let mut nonce_bytes = [0u8; 12];
    let start = Instant::now();
    for _ in 0..n {
        obj_engine::storage::crypto::random_bytes(&mut nonce_bytes).unwrap();
    }
    [enc, dec, per(start)]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(200_000, |a| a.parse().expect("ROWS"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("ROUNDS"));
    let dir = tempfile::tempdir_in(std::env::var_os("OBJ_BENCH_DIR").unwrap_or_else(|| ".".into()))
        .expect("a scratch directory");
    let plain_path = dir.path().join("plain.obj");
    let enc_path = dir.path().join("encrypted.obj");
    let path = |encrypted: bool| if encrypted { enc_path.as_path() } else { plain_path.as_path() };

    type Workload<'a> = Box<dyn Fn(bool) -> Duration + 'a>;
    let workloads: Vec<(String, Workload)> = vec![
        (format!("bulk insert, {rows} rows"), Box::new(|e| bulk_insert(path(e), e, rows))),
        (
            format!("random reads, {rows}, cold 1 MiB cache"),
            Box::new(|e| random_reads(path(e), e, rows, rows, 1 << 20, false)),
        ),
        (
            format!("random reads, {rows}, warm 64 MiB cache"),
            Box::new(|e| random_reads(path(e), e, rows, rows, 64 << 20, true)),
        ),
        (
            "commits, 2000 x 1 row, sync normal".into(),
            Box::new(|e| small_commits(path(e), e, 2000, SyncMode::Normal)),
        ),
        (
            "commits, 300 x 1 row, sync full".into(),
            Box::new(|e| small_commits(path(e), e, 300, SyncMode::Full)),
        ),
    ];

    println!("encryption overhead: best of {rounds} rounds, plain vs AES-256-GCM (raw key)");
    println!("{:<42} {:>12} {:>12} {:>8}", "workload", "plain", "encrypted", "ratio");
    // The bulk insert also builds the files the read workloads use.
    let mut worst: f64 = 0.0;
    for (name, run) in &workloads {
        let (mut plain, mut enc) = (Duration::MAX, Duration::MAX);
        for _ in 0..rounds {
            plain = plain.min(run(false));
            enc = enc.min(run(true));
        }
        let ratio = enc.as_secs_f64() / plain.as_secs_f64();
        worst = worst.max(ratio);
        println!(
            "{name:<42} {:>10.1}ms {:>10.1}ms {:>7.3}x",
            plain.as_secs_f64() * 1e3,
            enc.as_secs_f64() * 1e3,
            ratio
        );
    }
    println!("worst ratio {worst:.3}x (goal: under 1.15x)");
    let [crc_seal, gcm_seal, crc_open, gcm_open] = page_costs();
    println!(
        "per 4 KiB page: seal {crc_seal:.2} us plain, {gcm_seal:.2} us encrypted; \
         check {crc_open:.2} us plain, {gcm_open:.2} us encrypted"
    );
    let [enc, dec, rng] = raw_cipher_costs();
    let gbps = |us: f64| 4064.0 / us / 1e3;
    println!(
        "raw AES-256-GCM on 4064 bytes in place: encrypt {enc:.2} us ({:.2} GB/s), decrypt {dec:.2} us \
         ({:.2} GB/s); getrandom(12 bytes) {rng:.2} us",
        gbps(enc),
        gbps(dec)
    );
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpu.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    println!(
        "cpu: aes {} pclmulqdq {} vaes {} vpclmulqdq {} (ring detects these at run time)",
        has("aes"),
        has("pclmulqdq"),
        has("vaes"),
        has("vpclmulqdq")
    );
}

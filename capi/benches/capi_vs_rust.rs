//! Per-call cost of the C ABI against the Rust API on the same operations:
//! point get, insert, cursor step. Run with `make bench-capi`.
//!
//! The C side calls the exported `obj_*` functions (the very code a C
//! program reaches through libobj; only the PLT jump is missing). The C
//! ABI moves documents as JSON text, so each operation is measured three
//! ways: the Rust API on `Value`s ("rust"), the Rust API plus the JSON
//! conversion a binding would need to do the same work ("rust+json"), and
//! the C ABI ("c"). The overhead of the ABI layer itself is c / rust+json.
//!
//! Two measures: wall-clock time (median of interleaved rounds; noisy on a
//! busy machine) and, when valgrind is installed, instructions executed
//! per operation, counted by callgrind in a child process running one
//! variant at a time (exact and load-independent). `OBJ_BENCH_N` sets the
//! collection size (default 20000; the instruction count uses 2000);
//! `OBJ_BENCH_IR=0` skips the instruction count.

use std::ffi::CString;
use std::hint::black_box;
use std::ptr;
use std::time::Instant;

use obj::*;
use obj_engine::doc::json::{from_json_slice, to_json_vec};
use obj_engine::{Db, QuerySpec};

const ROUNDS: usize = 7;
const IR_N: u64 = 2000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median nanoseconds per operation of each of `fs` (each runs `ops`
/// operations). Rounds interleave the variants, so that a change of load
/// on the machine hits them alike.
fn measure(ops: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let mut samples = vec![Vec::new(); fs.len()];
    for f in fs.iter_mut() {
        f(); // warm up
    }
    for _ in 0..ROUNDS {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            samples[i].push(t.elapsed().as_nanos() as f64 / ops as f64);
        }
    }
    samples.into_iter().map(median).collect()
}

/// The region callgrind counts (`--toggle-collect=obj_bench_measured`).
#[no_mangle]
#[inline(never)]
pub fn obj_bench_measured(f: &mut dyn FnMut()) {
    f();
}

/// What this process does: time every variant, or run one for callgrind.
enum Mode {
    Time,
    Only { op: usize, variant: usize },
}

struct Bench {
    mode: Mode,
    seen: usize,
    /// (operation, operations per run, figure per variant)
    rows: Vec<(&'static str, usize, Vec<f64>)>,
}

impl Bench {
    fn op(&mut self, name: &'static str, ops: usize, fs: &mut [&mut dyn FnMut()]) {
        match self.mode {
            Mode::Time => self.rows.push((name, ops, measure(ops, fs))),
            Mode::Only { op, variant } if op == self.seen => {
                fs[variant](); // warm up
                obj_bench_measured(&mut *fs[variant]);
            }
            Mode::Only { .. } => {}
        }
        self.seen += 1;
    }
}

fn doc_json(i: u64) -> String {
    format!(
        r#"{{"name":"user{i}","email":"user{i}@example.com","age":{},"active":true,"tags":["a","b"],"score":{}.5}}"#,
        20 + i % 50,
        i % 1000
    )
}

/// Pseudo-random ids in 1..=n.
fn ids(n: u64, count: usize) -> Vec<u64> {
    let mut x = 88172645463325252u64;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + x % n
        })
        .collect()
}

fn check(s: obj_status) {
    assert_eq!(s, obj_status::OBJ_OK, "{:?}", unsafe { std::ffi::CStr::from_ptr(obj_last_error()) });
}

/// Instructions per operation of variant `variant` of operation `op`,
/// counted by callgrind in a child process (None without valgrind).
fn count_instructions(op: usize, variant: usize, ops: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--collect-atstart=no",
            "--toggle-collect=obj_bench_measured",
        ])
        .arg(exe)
        .env("OBJ_BENCH_ONLY", format!("{op},{variant}"))
        .env("OBJ_BENCH_N", IR_N.to_string())
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.contains("Collected :"))?;
    let n: f64 = line.rsplit(':').next()?.trim().parse().ok()?;
    Some(n / ops as f64)
}

fn main() {
    let n: u64 = std::env::var("OBJ_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let mode = match std::env::var("OBJ_BENCH_ONLY") {
        Ok(v) => {
            let (op, variant) = v.split_once(',').expect("OBJ_BENCH_ONLY=op,variant");
            Mode::Only { op: op.parse().unwrap(), variant: variant.parse().unwrap() }
        }
        Err(_) => Mode::Time,
    };
    let timing = matches!(mode, Mode::Time);
    let mut b = Bench { mode, seen: 0, rows: Vec::new() };
    let dir = std::env::temp_dir().join(format!("obj-bench-capi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.obj");
    let docs_json: Vec<String> = (0..n).map(doc_json).collect();
    let docs: Vec<obj_engine::Value> =
        docs_json.iter().map(|j| from_json_slice(j.as_bytes()).unwrap()).collect();

    // Both APIs on one file (one engine instance in this process).
    let db = Db::open(&path).unwrap();
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    let mut cdb: *mut obj_db = ptr::null_mut();
    // SAFETY (every unsafe block below): each pointer passed is valid for the call.
    unsafe { check(obj_db_open(cpath.as_ptr(), ptr::null(), &mut cdb)) };

    // --- insert: n documents into a fresh collection in one transaction, rolled back.
    let coll = CString::new("ins").unwrap();
    let mut rust = || {
        let mut tx = db.begin_write().unwrap();
        let mut c = tx.collection_mut("ins").unwrap();
        for d in &docs {
            black_box(c.insert(d).unwrap());
        }
        drop(c);
        tx.rollback();
    };
    let mut rust_json = || {
        let mut tx = db.begin_write().unwrap();
        let mut c = tx.collection_mut("ins").unwrap();
        for j in &docs_json {
            black_box(c.insert(&from_json_slice(j.as_bytes()).unwrap()).unwrap());
        }
        drop(c);
        tx.rollback();
    };
    let mut c = || unsafe {
        let mut w: *mut obj_txn = ptr::null_mut();
        check(obj_txn_begin_write(cdb, &mut w));
        for j in &docs_json {
            let mut id = 0u64;
            check(obj_doc_insert(w, coll.as_ptr(), j.as_ptr(), j.len(), 0, &mut id));
            black_box(id);
        }
        check(obj_txn_free(w));
    };
    b.op("insert", n as usize, &mut [&mut rust, &mut rust_json, &mut c]);

    // The collection the reads use.
    unsafe {
        let mut w: *mut obj_txn = ptr::null_mut();
        check(obj_txn_begin_write(cdb, &mut w));
        let all = format!("[{}]", docs_json.join(","));
        let mut out_ids = vec![0u64; n as usize];
        let mut count = 0usize;
        let bench = CString::new("bench").unwrap();
        check(obj_doc_insert_many(
            w,
            bench.as_ptr(),
            all.as_ptr(),
            all.len(),
            1,
            out_ids.as_mut_ptr(),
            out_ids.len(),
            &mut count,
        ));
        check(obj_txn_commit(w));
        check(obj_txn_free(w));
    }

    // --- point get: random ids, each pass in its own read transaction.
    let lookups = ids(n, n as usize * 5 / 2);
    let bench = CString::new("bench").unwrap();
    let mut rust = || {
        let rx = db.begin_read().unwrap();
        let c = rx.collection("bench").unwrap();
        for &id in &lookups {
            black_box(c.get_versioned(id).unwrap().unwrap());
        }
    };
    let mut rust_json = || {
        let rx = db.begin_read().unwrap();
        let c = rx.collection("bench").unwrap();
        for &id in &lookups {
            black_box(to_json_vec(&c.get_versioned(id).unwrap().unwrap().1));
        }
    };
    let mut c = || unsafe {
        let mut r: *mut obj_txn = ptr::null_mut();
        check(obj_txn_begin_read(cdb, &mut r));
        for &id in &lookups {
            let mut out = obj_bytes { data: ptr::null_mut(), len: 0 };
            let (mut version, mut found) = (0u32, false);
            check(obj_doc_get(r, bench.as_ptr(), id, &mut out, &mut version, &mut found));
            black_box(out.len);
            obj_bytes_free(&mut out);
        }
        check(obj_txn_free(r));
    };
    let mut rust_reopen = || {
        let rx = db.begin_read().unwrap();
        for &id in &lookups {
            black_box(rx.collection("bench").unwrap().get_versioned(id).unwrap().unwrap());
        }
    };
    b.op("point get", lookups.len(), &mut [&mut rust, &mut rust_json, &mut c, &mut rust_reopen]);

    // --- cursor step: a full scan of the collection.
    let spec = QuerySpec::new("bench");
    let query = br#"{"collection":"bench"}"#;
    let mut rust = || {
        let rx = db.begin_read().unwrap();
        let c = rx.collection("bench").unwrap();
        let mut q = c.query(&spec).unwrap();
        while let Some(hit) = q.next_versioned() {
            black_box(hit.unwrap());
        }
    };
    let mut rust_json = || {
        let rx = db.begin_read().unwrap();
        let c = rx.collection("bench").unwrap();
        let mut q = c.query(&spec).unwrap();
        while let Some(hit) = q.next_versioned() {
            black_box(to_json_vec(&hit.unwrap().2));
        }
    };
    let step = |batch: usize| {
        move || unsafe {
            let mut r: *mut obj_txn = ptr::null_mut();
            check(obj_txn_begin_read(cdb, &mut r));
            let mut cur: *mut obj_cursor = ptr::null_mut();
            check(obj_query(r, query.as_ptr(), query.len(), &mut cur));
            loop {
                let mut out = obj_bytes { data: ptr::null_mut(), len: 0 };
                if batch == 1 {
                    let (mut id, mut version, mut done) = (0u64, 0u32, false);
                    check(obj_cursor_next(cur, &mut id, &mut out, &mut version, &mut done));
                    if done {
                        break;
                    }
                    black_box(out.len);
                    obj_bytes_free(&mut out);
                } else {
                    check(obj_cursor_next_batch(cur, batch, &mut out));
                    let end = out.len <= 2;
                    black_box(out.len);
                    obj_bytes_free(&mut out);
                    if end {
                        break;
                    }
                }
            }
            check(obj_cursor_free(cur));
            check(obj_txn_free(r));
        }
    };
    let (mut c, mut c_batch) = (step(1), step(100));
    b.op("cursor step", n as usize, &mut [&mut rust, &mut rust_json, &mut c, &mut c_batch]);

    unsafe { check(obj_db_free(cdb)) };
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);

    if !timing {
        return;
    }
    let rows = b.rows;
    println!("C ABI vs Rust API: {n} documents of ~110 bytes of JSON");
    println!();
    println!("wall clock, ns per operation (median of {ROUNDS} interleaved rounds):");
    print_table(&rows, |_, _, v| v);
    if std::env::var("OBJ_BENCH_IR").as_deref() == Ok("0") {
        return;
    }
    let ir_ops = |op: usize| if op == 1 { IR_N as usize * 5 / 2 } else { IR_N as usize };
    let counted: Option<Vec<Vec<f64>>> = rows
        .iter()
        .enumerate()
        .map(|(op, (_, _, v))| {
            (0..v.len()).map(|variant| count_instructions(op, variant, ir_ops(op))).collect()
        })
        .collect();
    match counted {
        None => println!("\n(valgrind not found: no instruction counts)"),
        Some(ir) => {
            println!();
            println!("instructions per operation (callgrind, {IR_N} documents; exact, independent of load):");
            print_table(&rows, |op, variant, _| ir[op][variant]);
        }
    }
}

/// Prints one table: a row per operation, the ratios, and the extras.
fn print_table(rows: &[(&'static str, usize, Vec<f64>)], figure: impl Fn(usize, usize, f64) -> f64) {
    println!(
        "{:<12} {:>10} {:>11} {:>10} {:>14} {:>10}",
        "operation", "rust", "rust+json", "c abi", "c/(rust+json)", "c/rust"
    );
    for (op, (name, _, v)) in rows.iter().enumerate() {
        let f = |i: usize| figure(op, i, v[i]);
        println!(
            "{:<12} {:>10.0} {:>11.0} {:>10.0} {:>14.3} {:>10.3}",
            name,
            f(0),
            f(1),
            f(2),
            f(2) / f(1),
            f(2) / f(0)
        );
    }
    for (op, (name, _, v)) in rows.iter().enumerate() {
        if v.len() > 3 {
            let what = match *name {
                "point get" => "point get, Rust reopening the collection on every call",
                _ => "cursor step, C obj_cursor_next_batch(100) per document",
            };
            println!("  {what}: {:.0}", figure(op, 3, v[3]));
        }
    }
}

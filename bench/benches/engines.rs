//! Criterion micro-benchmarks of the read paths: batches of 1,000 random
//! point reads and of 100 range reads (10 entries each) in one read
//! transaction, per engine, on `OBJ_BENCH_CRITERION_N` records (default
//! 100,000). `cargo bench -p obj-bench` (or `make bench-criterion`).
//!
//! The side-by-side table with every workload comes from the `report`
//! binary; this gives criterion's statistics (confidence intervals, change
//! since the last run) for the hottest paths.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use obj_bench::kv::{KvData, KvEngine, LmdbKv, ObjKv, RedbKv, SqliteKv};

fn engines(dir: &std::path::Path, data: &KvData) -> Vec<Box<dyn KvEngine>> {
    let v: Vec<Box<dyn KvEngine>> = vec![
        Box::new(ObjKv::create(&dir.join("obj")).expect("obj")),
        Box::new(RedbKv::create(&dir.join("redb")).expect("redb")),
        Box::new(LmdbKv::create(&dir.join("lmdb")).expect("lmdb")),
        Box::new(SqliteKv::create(&dir.join("sqlite")).expect("sqlite")),
    ];
    for e in &v {
        e.bulk_load(data).expect("bulk load");
    }
    v
}

fn reads(c: &mut Criterion) {
    let n = obj_bench::env_usize("OBJ_BENCH_CRITERION_N", 100_000);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-criterion");
    let _ = std::fs::remove_dir_all(&dir);
    let data = KvData::generate(n, 0);
    let engines = engines(&dir, &data);
    let order = data.random_order(7, 1000);
    let starts = data.random_order(8, 100);

    let mut g = c.benchmark_group("point_reads_x1000");
    g.throughput(Throughput::Elements(order.len() as u64));
    for e in &engines {
        g.bench_function(e.name(), |b| b.iter(|| e.point_reads(&data, &order).expect("reads")));
    }
    g.finish();

    let mut g = c.benchmark_group("range_reads_x100");
    g.throughput(Throughput::Elements(starts.len() as u64));
    for e in &engines {
        g.bench_function(e.name(), |b| b.iter(|| e.range_reads(&data, &starts).expect("ranges")));
    }
    g.finish();

    drop(engines);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, reads);
criterion_main!(benches);

//! End-to-end demo: a child process writes and commits, then crashes
//! (abort, no close); the parent reopens — recovery replays the WAL — and
//! reads everything back.
//!
//! Run with `make demo` or `cargo run --release --example demo [DIR]`.

use std::path::{Path, PathBuf};
use std::process::Command;

use obj_engine::{Db, ReadableTxn};

const ORDERS: u64 = 10_000;

fn writer(path: &Path) -> obj_engine::Result<()> {
    let db = Db::open(path)?;
    let mut tx = db.begin_write()?;
    let orders = tx.create_tree("orders")?;
    for id in 1..=ORDERS {
        let doc =
            format!(r#"{{"id":{id},"customer":"c{}","total":{}.{:02}}}"#, id % 97, id * 3 % 1000, id % 100);
        tx.insert(&orders, &id.to_be_bytes(), doc.as_bytes())?;
    }
    tx.commit()?;
    // A second, small commit on its own: durable as soon as commit() returns.
    let mut tx = db.begin_write()?;
    let meta = tx.create_tree("meta")?;
    tx.insert(&meta, b"loaded_by", b"demo writer")?;
    tx.commit()?;
    println!("writer: committed {ORDERS} orders and one metadata record; now crashing without closing");
    std::process::abort();
}

fn main() -> obj_engine::Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--writer") {
        return writer(Path::new(&args.next().expect("path")));
    }
    let dir = first.map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("obj-demo"));
    std::fs::create_dir_all(&dir).map_err(|e| obj_engine::Error::io("creating the demo directory", e))?;
    let path = dir.join("demo.obj");
    let wal = dir.join("demo.obj-wal");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&wal);

    let exe = std::env::current_exe().map_err(|e| obj_engine::Error::io("finding the demo binary", e))?;
    let status = Command::new(exe)
        .arg("--writer")
        .arg(&path)
        .status()
        .map_err(|e| obj_engine::Error::io("running the writer", e))?;
    println!("parent: writer exited with {status} (crashed, as intended)");
    println!(
        "parent: on disk: {} = {} bytes, {} = {} bytes (the commits live in the WAL)",
        path.display(),
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        wal.display(),
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)
    );

    let db = Db::open(&path)?; // recovery happens here
    {
        let rx = db.begin_read()?;
        let orders = rx.open_tree("orders")?;
        let n = rx.count(&orders)?;
        let first = rx.get(&orders, &1u64.to_be_bytes())?.expect("order 1");
        let last = rx.get(&orders, &ORDERS.to_be_bytes())?.expect("last order");
        let meta = rx.open_tree("meta")?;
        let by = rx.get(&meta, b"loaded_by")?.expect("metadata");
        println!("parent: recovered {n} orders; first = {}", String::from_utf8_lossy(&first));
        println!("parent: last = {}", String::from_utf8_lossy(&last));
        println!("parent: meta.loaded_by = {}", String::from_utf8_lossy(&by));
        assert_eq!(n, ORDERS);
        let range: Vec<_> = rx
            .range(
                &orders,
                std::ops::Bound::Included(&100u64.to_be_bytes()[..]),
                std::ops::Bound::Excluded(&105u64.to_be_bytes()[..]),
                false,
            )?
            .collect::<obj_engine::Result<_>>()?;
        println!("parent: range [100, 105) holds {} orders", range.len());
    }
    let report = db.integrity_check()?;
    println!(
        "parent: integrity check passed ({} pages, {} trees, {} entries)",
        report.pages, report.trees, report.entries
    );
    db.close()?;
    println!(
        "parent: closed cleanly; {} = {} bytes, WAL present: {}",
        path.display(),
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        wal.exists()
    );
    println!("demo OK");
    Ok(())
}

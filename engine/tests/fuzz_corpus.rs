//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`)
//! through the same function the cargo-fuzz target calls, without a
//! fuzzing engine, so that every input that once crashed stays fixed.
//!
//! `OBJ_WRITE_SEEDS=1 cargo test --release --test fuzz_corpus write_seeds -- --ignored`
//! regenerates the hand-made seed inputs (`seed-*` files).

use std::path::PathBuf;
use std::sync::Arc;

use obj_engine::doc::codec::{encode_document, MemNameDict};
use obj_engine::doc::json::from_json_str;
use obj_engine::fuzzing::{join_db_input, TARGETS};
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Options, ReadableTxn};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn replay_corpora() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let dir = corpus_dir().join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: empty corpus");
        for file in &files {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", file.display());
        }
        println!("{name}: {} inputs replayed", files.len());
        total += files.len();
    }
    println!("fuzz corpora: {total} inputs, no failures");
}

/// Seed inputs: a real database with its WAL, sample documents and queries.
#[test]
#[ignore]
fn write_seeds() {
    if std::env::var("OBJ_WRITE_SEEDS").is_err() {
        return;
    }
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus_dir().join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    // open_db: a checkpointed database, then one with commits in its WAL.
    let vfs = SimVfs::new();
    let opts = Options { vfs: Some(Arc::new(vfs.clone())), wal_autocheckpoint: 0, ..Options::default() };
    let db = Db::open_with("/s/db", opts).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0u32..60 {
        w.insert(&t, &i.to_be_bytes(), &vec![i as u8; (i as usize * 53) % 700]).unwrap();
    }
    w.insert(&t, b"big", &[3; 9000]).unwrap();
    w.commit().unwrap();
    db.checkpoint().unwrap();
    let main_only = vfs.read_file("/s/db").unwrap();
    let mut w = db.begin_write().unwrap();
    let u = w.create_tree("u").unwrap();
    w.insert(&u, b"k", b"v").unwrap();
    let t = w.open_tree("t").unwrap();
    w.delete(&t, &5u32.to_be_bytes()).unwrap();
    w.commit().unwrap();
    let main = vfs.read_file("/s/db").unwrap();
    let wal = vfs.read_file("/s/db-wal").unwrap();
    vfs.crash();
    drop(db);
    for flags in [0u8, 3] {
        write("open_db", &format!("main-only-{flags}"), &join_db_input(flags, &main_only, &[]));
        write("open_db", &format!("main-and-wal-{flags}"), &join_db_input(flags, &main, &wal));
    }
    write("open_db", "empty", &[]);
    // btree_ops: a few op strings.
    write("btree_ops", "inserts", &[0, 0, 3, 1, 2, 3, 10, 0, 4, 9, 9, 9, 9, 50, 2, 3, 1, 2, 3]);
    write("btree_ops", "big", &[1, 0, 210, 7, 255, 1, 251, 2, 240, 4, 3, 0, 0, 0, 0, 0, 0, 0]);
    write("btree_ops", "mixed", &(0..400u32).map(|i| (i * 37 % 251) as u8).collect::<Vec<_>>());
    // doc_json / doc_decode / query_json: sample documents and queries.
    let docs = [
        r#"{"name":"alice","age":31,"tags":["a","b"],"n":null,"x":{"y":1.5,"z":[true,false]}}"#,
        r#"[1,-2,3.25,"\u00e9",{"a":{"b":{"c":[]}}},18446744073709551615,-9223372036854775808]"#,
        r#""just a string""#,
        r#"{"$bytes":"AAEC"}"#,
    ];
    let mut dict = MemNameDict::from_names(["a", "b", "name", "tags", "n", "x.y", ""]).unwrap();
    for (i, doc) in docs.iter().enumerate() {
        write("doc_json", &i.to_string(), doc.as_bytes());
        if let Ok(value) = from_json_str(doc) {
            let mut out = Vec::new();
            encode_document(&value, &mut dict, &mut out).unwrap();
            write("doc_decode", &i.to_string(), &out);
        }
    }
    let queries = [
        r#"{"collection":"users"}"#,
        r#"{"collection":"orders","filter":{"and":[{"eq":["status","shipped"]},{"gt":["total",500]}]},"sort":[{"field":"total","order":"desc"}],"limit":10,"offset":0}"#,
        r#"{"collection":"c","filter":{"or":[{"in":["a",[1,2,"x"]]},{"not":{"exists":"b.c"}},{"prefix":["name","al"]}]},"sort":["a"],"count_only":true}"#,
    ];
    for (i, q) in queries.iter().enumerate() {
        write("query_json", &i.to_string(), q.as_bytes());
    }
}

/// `collection_ops` over deterministic pseudo-random inputs, so that
/// `make test` exercises the model check beyond the committed corpus.
#[test]
fn collection_ops_random_inputs() {
    let runs: u64 = std::env::var("OBJ_COLLECTION_OPS_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    for input in obj_engine::fuzzing::pseudo_random_inputs(0x0b1d_c011_ec71_0005, runs, 200, 2000) {
        obj_engine::fuzzing::collection_ops(&input);
    }
}

//! Replays the committed corpus of the `c_api` fuzz target
//! (`fuzz/corpus/c_api/`) and a few hundred pseudo-random inputs through
//! the same function, without a fuzzing engine.

use std::path::PathBuf;

#[test]
fn replay_c_api_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/c_api");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus");
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| obj::fuzzing::c_api_calls(&data));
        assert!(outcome.is_ok(), "{} fails", file.display());
    }
    println!("c_api corpus: {} inputs replayed", files.len());
}

#[test]
fn c_api_random_inputs() {
    let runs: u64 = std::env::var("OBJ_C_API_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    for input in obj_engine::fuzzing::pseudo_random_inputs(0x5151_c0de_2026_1201, runs, 16, 1500) {
        obj::fuzzing::c_api_calls(&input);
    }
}

//! See `obj_engine::fuzzing::doc_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| obj_engine::fuzzing::doc_json(data));

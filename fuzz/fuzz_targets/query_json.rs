//! See `obj_engine::fuzzing::query_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| obj_engine::fuzzing::query_json(data));

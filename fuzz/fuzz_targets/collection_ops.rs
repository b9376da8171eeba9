//! See `obj_engine::fuzzing::collection_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| obj_engine::fuzzing::collection_ops(data));

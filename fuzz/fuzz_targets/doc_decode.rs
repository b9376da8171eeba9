//! See `obj_engine::fuzzing::doc_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| obj_engine::fuzzing::doc_decode(data));

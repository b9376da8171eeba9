//! See `obj_engine::fuzzing::btree_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| obj_engine::fuzzing::btree_ops(data));

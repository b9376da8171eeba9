//! See `obj_engine::fuzzing::open_db`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| obj_engine::fuzzing::open_db(data));

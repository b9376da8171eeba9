//! See `obj::fuzzing::c_api_calls` (capi/src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| obj::fuzzing::c_api_calls(data));

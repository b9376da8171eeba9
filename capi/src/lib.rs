//! libobj: the C ABI of obj.
//!
//! Every exported function follows the conventions written at the top of
//! `include/obj.h` (generated from these sources by cbindgen): opaque
//! tagged handles, an `obj_status` return value, results through
//! out-parameters, a per-thread last-error message, library-owned buffers
//! freed by `obj_bytes_free`, and no panic crossing the boundary.
//!
//! One file per handle kind: `db.rs`, `txn.rs`; `kv.rs` for key-value
//! namespaces; `error.rs` for statuses and the panic fence; `bytes.rs` for
//! returned buffers and argument decoding.

#![allow(non_camel_case_types)]

pub mod bytes;
pub mod db;
pub mod error;
pub mod kv;
pub mod txn;

pub use bytes::*;
pub use db::*;
pub use error::*;
pub use kv::*;
pub use txn::*;

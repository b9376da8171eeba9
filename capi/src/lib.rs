//! libobj: the C ABI of obj.
//!
//! Every exported function follows the conventions written at the top of
//! `include/obj.h` (generated from these sources by cbindgen): opaque
//! tagged handles, an `obj_status` return value, results through
//! out-parameters, a per-thread last-error message, library-owned buffers
//! freed by `obj_bytes_free`, and no panic crossing the boundary.
//!
//! One file per concept: `db.rs`, `txn.rs` (transactions, and what their
//! cursors borrow), `collection.rs`, `document.rs` (JSON and raw-bytes
//! documents), `index.rs` (secondary indexes, unique lookup), `cursor.rs`
//! (queries and scans), `kv.rs` (key-value namespaces), `ops.rs`
//! (backup, restore, compaction, attach, export/import, rekey); `error.rs` for
//! statuses and the panic fence; `bytes.rs` for returned buffers and
//! argument decoding.

#![allow(non_camel_case_types)]

/// Runs `$body` with `$t` bound to the transaction of a [`txn::TxnState`]
/// (`&ReadTxn` or `&WriteTxn`); a finished transaction returns its error.
macro_rules! with_readable {
    ($state:expr, |$t:ident| $body:expr) => {
        match $state {
            $crate::txn::TxnState::Read($t) => $body,
            $crate::txn::TxnState::Write($t) => {
                let $t = &**$t;
                $body
            }
            $crate::txn::TxnState::Finished(how) => {
                return Err(obj_engine::Error::invalid(format!("transaction already {how}")))
            }
        }
    };
}

mod batch;
pub mod bytes;
pub mod collection;
pub mod cursor;
pub mod db;
pub mod document;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod kv;
pub mod ops;
pub mod txn;

pub use bytes::*;
pub use collection::*;
pub use cursor::*;
pub use db::*;
pub use document::*;
pub use error::*;
pub use index::*;
pub use kv::*;
pub use ops::*;
pub use txn::*;

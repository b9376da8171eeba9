//! obj: an embedded, serverless, single-file document database.
//!
//! One file (plus its `-wal` and `-shm` sidecars while open), ACID transactions, a
//! stable on-disk format. This crate is the storage engine and its Rust API.
//!
//! ```
//! use obj_engine::{Db, ReadableTxn};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("app.obj");
//! let db = Db::open(&path)?;
//! let mut tx = db.begin_write()?;
//! let users = tx.create_tree("users")?;
//! tx.insert(&users, b"alice", b"admin")?;
//! tx.commit()?;
//!
//! let rx = db.begin_read()?;
//! let users = rx.open_tree("users")?;
//! assert_eq!(rx.get(&users, b"alice")?.as_deref(), Some(&b"admin"[..]));
//! # drop(rx);
//! db.close()?;
//! # Ok::<(), obj_engine::Error>(())
//! ```
//!
//! Layers, top to bottom (see `docs/architecture.md`): [`Db`] and the
//! transactions ([`ReadTxn`], [`WriteTxn`]); the catalog of named trees;
//! [`btree`]; the [`storage`] machinery (pager, WAL, WAL index, cache,
//! freelist) reaching the file system only through [`storage::file::Vfs`].

#![warn(missing_docs)]

pub mod btree;
pub mod catalog;
pub mod db;
pub mod doc;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod ops;
pub mod options;
pub mod parallel;
pub mod query;
pub mod storage;
pub mod txn;

pub use db::Db;
pub use doc::collection::{
    Collection, CollectionKind, CollectionMut, CollectionOptions, DetachedCollection, IndexInfo,
};
pub use doc::typed::Document;
pub use doc::value::{Timestamp, Value};
pub use error::{Error, PageNo, Result};
pub use index::secondary::{IndexKind, IndexSpec, IndexStatus};
pub use ops::backup::{BackupReport, Progress, RestoreOptions};
pub use ops::compact::CompactReport;
pub use ops::export::{ExportReport, ImportOptions, ImportReport};
pub use ops::integrity::IntegrityReport;
pub use ops::stat::{CollectionStat, CompactionEstimate, IndexStat, Stat, TreeStat};
pub use options::{Options, SyncMode, DEFAULT_MAX_DIRTY_BYTES};
pub use query::exec::{DocCursor, QueryCursor, MAX_SORT_BUFFER};
pub use query::{Filter, QuerySpec};
pub use storage::crypto::{EncryptionKey, KdfParams};
pub use storage::pager::CheckpointResult;
pub use txn::{ForkCheck, ReadTxn, ReadableTxn, Tree, WriteTxn};

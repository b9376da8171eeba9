//! Operations on a whole database: integrity checking, statistics, online
//! backup and restore, compaction, attaching other databases, export and
//! import as JSON lines, and rekey.

pub mod attach;
pub mod backup;
pub mod compact;
pub mod export;
pub mod integrity;
pub(crate) mod newfile;
pub mod rekey;
pub mod stat;

//! Operations on a whole database: integrity checking, statistics, online
//! backup and restore, compaction, attaching other databases, and export
//! and import as JSON lines.

pub mod attach;
pub mod backup;
pub mod compact;
pub mod export;
pub mod integrity;
pub(crate) mod newfile;
pub mod stat;

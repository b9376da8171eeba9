//! Storage machinery: the file interface, pages, pager, cache and WAL.
//! Nothing here knows what a key or a document is.

pub mod cache;
pub mod crypto;
pub mod file;
pub mod freelist;
pub mod header;
pub mod memo;
pub mod page;
pub mod page_memory;
// Crate-private (with the WAL and the write set): a pager or WAL of its own
// beside an open `Db` could commit any page image into the file (the public
// API reaches pages only through transactions).
pub(crate) mod pager;
pub mod shm;
pub mod sim;
pub(crate) mod wal;
pub(crate) mod wal_index;
pub(crate) mod write_set;

pub use pager::wal_path_of;
pub use wal::WAL_HEADER_LEN;

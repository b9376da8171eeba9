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
pub mod pager;
pub mod shm;
pub mod sim;
pub mod wal;
pub mod wal_index;
pub mod write_set;

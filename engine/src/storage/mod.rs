//! Storage machinery: the file interface, pages, pager, cache and WAL.
//! Nothing here knows what a key or a document is.

pub mod file;
pub mod page;

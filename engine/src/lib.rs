//! obj: an embedded, single-file document database.

#![warn(missing_docs)]

pub mod btree;
pub mod doc;
pub mod error;
pub mod storage;

pub use error::{Error, PageNo, Result};

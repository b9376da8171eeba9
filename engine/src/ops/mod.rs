//! Operations on a whole database: integrity checking, statistics and rekey.

pub mod integrity;
pub mod rekey;
pub mod stat;

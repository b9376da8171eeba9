//! Operations on a whole database: integrity checking and statistics.

pub mod integrity;
pub mod stat;

//! Queries: filter expressions and the query specification (with its JSON
//! form, which is how the C ABI and the Python package pass queries).

pub mod exec;
pub mod expr;
mod json;
pub mod plan;
pub mod spec;
mod split;

pub use expr::{FieldPath, Filter};
pub use spec::{IndexBound, IndexRange, KeyRange, QuerySpec, SortKey};

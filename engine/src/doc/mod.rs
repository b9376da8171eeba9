//! Documents: the value model, its stored encoding, collections and the
//! key-value namespaces.

pub mod codec;
pub mod collection;
pub mod json;
pub(crate) mod json_direct;
pub mod json_lines;
pub mod kv;
pub mod order;
pub(crate) mod serde_direct;
pub mod serde_encoded;
pub mod serde_value;
pub mod typed;
pub mod value;

#[cfg(test)]
pub(crate) mod testgen;

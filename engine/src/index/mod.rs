//! Secondary indexes: how values become index keys.

#[cfg(test)]
pub(crate) mod arb_value;
pub mod key_encoding;
pub mod secondary;

//! Documents: the value model, its stored encoding, collections and the
//! key-value namespaces.

pub mod value;

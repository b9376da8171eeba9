//! The dynamic value model of documents.
//!
//! A document is a [`Value`] (usually a [`Value::Map`]). The engine stores,
//! indexes and filters values of this model; bindings convert their native
//! types to and from it (serde for Rust, JSON for C, Python objects for the
//! Python package).

/// A point in time: microseconds since the Unix epoch (UTC), plus the UTC
/// offset the writer used, in seconds (`None` for a naive/local time).
/// Ordering and equality compare the instant first, then the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    /// Microseconds since 1970-01-01T00:00:00Z.
    pub micros: i64,
    /// The writer's UTC offset in seconds, or `None` for a naive time.
    pub offset_secs: Option<i32>,
}

/// One value of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent / null.
    Null,
    /// true or false.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// An unsigned 64-bit integer (used for values above `i64::MAX`).
    UInt(u64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text.
    Str(String),
    /// Opaque bytes.
    Bytes(Vec<u8>),
    /// A point in time.
    Timestamp(Timestamp),
    /// An ordered list.
    List(Vec<Value>),
    /// Named fields, in the order the writer gave them. Keys are unique.
    Map(Vec<(String, Value)>),
}

//! The dynamic value model of documents.
//!
//! A document is a [`Value`] (usually a [`Value::Map`]). The engine stores,
//! indexes and filters values of this model; bindings convert their native
//! types to and from it (serde for Rust, JSON for C, Python objects for the
//! Python package).
//!
//! This file owns the model itself plus the helpers every representation
//! shares: path lookup, [`FieldPath`], the nesting limit and conversions.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A point in time: microseconds since the Unix epoch (UTC), plus the UTC
/// offset the writer used, in seconds (`None` for a naive/local time).
/// The struct's own `Eq`/`Ord` tell apart the offsets (the instant first);
/// the engine's value order (`doc::order::compare`, used by filters, sorts
/// and indexes) compares the instant alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    /// Microseconds since 1970-01-01T00:00:00Z.
    pub micros: i64,
    /// The writer's UTC offset in seconds, or `None` for a naive time.
    pub offset_secs: Option<i32>,
}

impl Timestamp {
    /// The current time, in UTC (offset 0).
    pub fn now() -> Timestamp {
        Timestamp::from(std::time::SystemTime::now())
    }
}

impl From<std::time::SystemTime> for Timestamp {
    /// The instant in UTC (offset 0), to the microsecond (truncated toward
    /// the past); saturates at the `i64` range of microseconds.
    fn from(t: std::time::SystemTime) -> Timestamp {
        let micros = match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => {
                let d = e.duration();
                let whole = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
                // A partial microsecond before the epoch rounds down too.
                let partial = i64::from(d.subsec_nanos() % 1000 != 0);
                whole.saturating_add(partial).saturating_neg()
            }
        };
        Timestamp { micros, offset_secs: Some(0) }
    }
}

impl TryFrom<Timestamp> for std::time::SystemTime {
    type Error = Error;

    /// The instant (the offset only records how the writer saw it);
    /// `InvalidArgument` where the platform's `SystemTime` cannot hold it.
    fn try_from(t: Timestamp) -> Result<std::time::SystemTime> {
        let d = std::time::Duration::from_micros(t.micros.unsigned_abs());
        let at = if t.micros >= 0 {
            std::time::UNIX_EPOCH.checked_add(d)
        } else {
            std::time::UNIX_EPOCH.checked_sub(d)
        };
        at.ok_or_else(|| {
            Error::invalid(format!(
                "timestamp {} µs from the epoch is beyond this platform's SystemTime",
                t.micros
            ))
        })
    }
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

/// How many container levels (lists and maps) a document may nest.
///
/// A scalar has depth 0, `[1]` depth 1, `{"a": [1]}` depth 2. Every reader
/// and writer of the document layer enforces this bound, so recursion over a
/// value that came through it stays well inside a thread's stack.
pub const MAX_NESTING: usize = 128;

/// The error message every layer uses for a document over [`MAX_NESTING`].
pub(crate) const NESTING_MESSAGE: &str = "document nested deeper than 128 levels";

impl Value {
    /// The name of this value's type, as error messages and bindings show it:
    /// `null`, `bool`, `int`, `uint`, `float`, `str`, `bytes`, `timestamp`,
    /// `list` or `map`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Timestamp(_) => "timestamp",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number as an `i64`, for an [`Value::Int`] or a [`Value::UInt`]
    /// that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The number of a [`Value::Float`].
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The entries of a [`Value::Map`].
    pub fn as_map(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items of a [`Value::List`].
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The field `key` of a map (`None` for a missing key or a non-map).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Follows `path` into nested maps and lists: at a map a segment names a
    /// field; at a list a segment of digits only selects the item of that
    /// number (`17`, and `017` too; not `+1`). `None` when any step finds
    /// nothing (missing field, index out of range, or a scalar in the way).
    /// An empty path returns `self`.
    pub fn get_path<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        let mut cur = self;
        for seg in path {
            let seg = seg.as_ref();
            cur = match cur {
                Value::Map(_) => cur.get(seg)?,
                Value::List(items) => items.get(usize::try_from(parse_index(seg)?).ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// [`Value::get_path`] for a parsed [`FieldPath`].
    pub fn get_field_path(&self, path: &FieldPath) -> Option<&Value> {
        self.get_path(path.segments())
    }

    /// How many container levels this value has (see [`MAX_NESTING`]).
    /// Iterative, so it is safe on values of any depth.
    pub fn nesting_depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack: Vec<(&Value, usize)> = vec![(self, 0)];
        while let Some((v, depth)) = stack.pop() {
            let children: &mut dyn Iterator<Item = &Value> = match v {
                Value::List(items) => &mut items.iter(),
                Value::Map(entries) => &mut entries.iter().map(|(_, v)| v),
                _ => continue,
            };
            deepest = deepest.max(depth + 1);
            for child in children {
                if matches!(child, Value::List(_) | Value::Map(_)) {
                    stack.push((child, depth + 1));
                }
            }
        }
        deepest
    }

    /// Fails with [`Error::InvalidArgument`] when this value nests deeper
    /// than [`MAX_NESTING`].
    pub fn check_nesting(&self) -> Result<()> {
        if self.nesting_depth() > MAX_NESTING {
            return Err(Error::invalid(NESTING_MESSAGE));
        }
        Ok(())
    }

    /// Fails with [`Error::InvalidArgument`] when one of `values` nests
    /// deeper than [`MAX_NESTING`], as no document may: what a lookup or a
    /// filter checks of the values it is given before they are encoded or
    /// copied (recursively). Scalars cost a match each.
    pub(crate) fn check_all_nesting(values: &[Value]) -> Result<()> {
        let deep = |v: &Value| matches!(v, Value::List(_) | Value::Map(_)) && v.nesting_depth() > MAX_NESTING;
        if values.iter().any(deep) {
            return Err(Error::invalid(format!(
                "a value to look up or compare with nests deeper than {MAX_NESTING} levels, as no document may"
            )));
        }
        Ok(())
    }

    /// Structural equality in which floats compare by bit pattern, except
    /// that any NaN equals any NaN; so `-0.0` differs from `0.0` and a NaN
    /// equals itself, unlike `==`. Round-trip tests and change detection
    /// want this. Iterative, so it is safe on values of any depth.
    pub fn identical(&self, other: &Value) -> bool {
        let mut stack: Vec<(&Value, &Value)> = vec![(self, other)];
        while let Some((a, b)) = stack.pop() {
            let same = match (a, b) {
                (Value::Float(x), Value::Float(y)) => {
                    x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
                }
                (Value::List(x), Value::List(y)) => {
                    if x.len() != y.len() {
                        return false;
                    }
                    stack.extend(x.iter().zip(y));
                    true
                }
                (Value::Map(x), Value::Map(y)) => {
                    if x.len() != y.len() || x.iter().zip(y).any(|((kx, _), (ky, _))| kx != ky) {
                        return false;
                    }
                    stack.extend(x.iter().zip(y).map(|((_, vx), (_, vy))| (vx, vy)));
                    true
                }
                (Value::List(_) | Value::Map(_), _) | (_, Value::List(_) | Value::Map(_)) => false,
                (Value::Float(_), _) | (_, Value::Float(_)) => false,
                _ => a == b,
            };
            if !same {
                return false;
            }
        }
        true
    }
}

/// Parses a list index segment: digits only, read as a number (`01` is
/// element 1), as queries and indexes read a path (`query/expr.rs`), so a
/// path means one thing whichever code resolves it (`get_path`, the stored
/// form's `extract_path`, a filter, an index).
pub(crate) fn parse_index(seg: &str) -> Option<u32> {
    if !is_list_index(seg) {
        return None;
    }
    seg.parse().ok()
}

/// Whether a path segment names a list item (digits only) rather than a
/// field: on a list, any other segment fans out to its maps' fields.
pub(crate) fn is_list_index(seg: &str) -> bool {
    !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())
}

/// The field-name ids met in one map, to refuse a repeated key: ids below
/// 64 in a bit set, a few others in a list, and past those a hash set (a
/// map of many keys must not cost the square of their number).
#[derive(Default)]
pub(crate) struct SeenIds {
    small: u64,
    few: Vec<u32>,
    many: std::collections::HashSet<u32>,
    len: usize,
}

impl SeenIds {
    const FEW: usize = 16;

    /// Adds `id`; false if the map already has it.
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let fresh = if id < 64 {
            let bit = 1u64 << id;
            let fresh = self.small & bit == 0;
            self.small |= bit;
            fresh
        } else if self.many.is_empty() && self.few.len() < Self::FEW {
            let fresh = !self.few.contains(&id);
            if fresh {
                self.few.push(id);
            }
            fresh
        } else {
            self.many.extend(self.few.drain(..));
            self.many.insert(id)
        };
        self.len += usize::from(fresh);
        fresh
    }

    /// How many ids were added.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The first key that occurs twice among `entries`, if any. Maps are small
/// as a rule, so a quadratic scan beats hashing until they are not.
pub(crate) fn duplicate_key<V>(entries: &[(String, V)]) -> Option<&str> {
    if entries.len() <= 16 {
        for (i, (k, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(prev, _)| prev == k) {
                return Some(k);
            }
        }
        return None;
    }
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    entries.iter().map(|(k, _)| k.as_str()).find(|k| !seen.insert(*k))
}

/// A validated dotted field path such as `address.city` or `items.0.sku`.
///
/// Segments are separated by `.`; none may be empty, and there are at most
/// [`MAX_NESTING`] of them (a longer path could never match). A segment
/// addresses a map field by name, or a list item when it is a canonical
/// decimal index and the value there is a list. Field names that contain a
/// `.` cannot be addressed by a dotted path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses and validates `text`; an empty path or an empty segment
    /// (`a..b`, `.a`, `a.`) is [`Error::InvalidArgument`].
    pub fn parse(text: &str) -> Result<FieldPath> {
        if text.is_empty() {
            return Err(Error::invalid("field path is empty"));
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(Error::invalid(format!("field path {text:?} has an empty segment")));
        }
        if segments.len() > MAX_NESTING {
            return Err(Error::invalid(format!(
                "field path has {} segments; documents nest at most {MAX_NESTING} levels",
                segments.len()
            )));
        }
        Ok(FieldPath { segments })
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The number of segments (at least 1).
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Always false: a parsed path has at least one segment. Present
    /// because clippy expects `is_empty` beside `len`.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

impl FromStr for FieldPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<FieldPath> {
        FieldPath::parse(s)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_signed!(i8, i16, i32, i64);

macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            /// Int when it fits in an `i64`, else UInt.
            fn from(v: $t) -> Value {
                let v = u64::from(v);
                i64::try_from(v).map_or(Value::UInt(v), Value::Int)
            }
        }
    )*};
}
from_unsigned!(u8, u16, u32, u64);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}

impl From<Timestamp> for Value {
    fn from(v: Timestamp) -> Value {
        Value::Timestamp(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::List(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// `None` becomes [`Value::Null`].
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Value {
    /// Builds a [`Value::Map`] in iteration order (keys are not deduplicated).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Value {
        Value::Map(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::from_iter([
            ("name", Value::from("Ada")),
            ("address", Value::from_iter([("city", Value::from("London")), ("zip", Value::from("N1"))])),
            ("items", Value::List(vec![Value::from_iter([("sku", 7)]), Value::from_iter([("sku", 9)])])),
            ("0", Value::from(true)),
        ])
    }

    #[test]
    fn doc_seen_ids_finds_a_repeat_in_every_range() {
        // Small ids (bit set), a few large ones (list), then many (hash set).
        let mut seen = SeenIds::default();
        let ids: Vec<u32> = (0..70).chain(1_000..1_100).chain([63, 64, 1_000, 1_099, 5_000]).collect();
        let fresh: Vec<bool> = ids.iter().map(|&id| seen.insert(id)).collect();
        assert!(fresh[..170].iter().all(|&f| f));
        assert_eq!(&fresh[170..], &[false, false, false, false, true]);
        assert_eq!(seen.len(), 171);
        // A repeat of one of the first few large ids, once past the list.
        let mut seen = SeenIds::default();
        assert!((100..100 + SeenIds::FEW as u32 + 5).all(|id| seen.insert(id)));
        assert!(!seen.insert(100) && !seen.insert(100 + SeenIds::FEW as u32));
    }

    #[test]
    fn doc_get_path_follows_maps_and_lists() {
        let v = sample();
        assert_eq!(v.get_path(&["address", "city"]), Some(&Value::from("London")));
        assert_eq!(v.get_path(&["items", "1", "sku"]), Some(&Value::Int(9)));
        assert_eq!(v.get_path(&["0"]), Some(&Value::Bool(true)), "numeric segment on a map is a name");
        assert_eq!(v.get_path(&["items", "2"]), None);
        // Digits are read as a number, as a query or an index reads them.
        assert_eq!(v.get_path(&["items", "01", "sku"]), Some(&Value::Int(9)));
        assert_eq!(v.get_path(&["items", ""]), None);
        assert_eq!(v.get_path(&["items", "+1"]), None);
        assert_eq!(v.get_path(&["name", "x"]), None);
        assert_eq!(v.get_path::<&str>(&[]), Some(&v));
        let p = FieldPath::parse("items.0.sku").unwrap();
        assert_eq!(v.get_field_path(&p), Some(&Value::Int(7)));
        assert_eq!(p.to_string(), "items.0.sku");
    }

    #[test]
    fn doc_field_path_validation() {
        for bad in ["", ".", "a.", ".a", "a..b"] {
            assert!(matches!(FieldPath::parse(bad), Err(Error::InvalidArgument(_))), "{bad:?}");
        }
        assert_eq!(FieldPath::parse("a.b").unwrap().segments(), ["a", "b"]);
        let long = vec!["a"; MAX_NESTING + 1].join(".");
        assert!(FieldPath::parse(&long).is_err());
        assert!(FieldPath::parse(&vec!["a"; MAX_NESTING].join(".")).is_ok());
        assert!("x.y".parse::<FieldPath>().is_ok());
    }

    #[test]
    fn doc_nesting_depth_and_type_names() {
        assert_eq!(Value::Int(1).nesting_depth(), 0);
        assert_eq!(Value::List(vec![]).nesting_depth(), 1);
        assert_eq!(sample().nesting_depth(), 3);
        let mut deep = Value::Null;
        for _ in 0..MAX_NESTING {
            deep = Value::List(vec![deep]);
        }
        assert!(deep.check_nesting().is_ok());
        let deeper = Value::List(vec![deep]);
        assert!(matches!(deeper.check_nesting(), Err(Error::InvalidArgument(_))));
        assert_eq!(Value::UInt(1).type_name(), "uint");
        assert_eq!(sample().type_name(), "map");
    }

    #[test]
    fn doc_conversions() {
        assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
        assert_eq!(Value::from(5u64), Value::Int(5));
        assert_eq!(Value::from(-3i8), Value::Int(-3));
        assert_eq!(Value::from(None::<i32>), Value::Null);
        assert_eq!(Value::from(&b"ab"[..]), Value::Bytes(b"ab".to_vec()));
    }

    #[test]
    fn doc_identical_compares_float_bits() {
        assert!(Value::Float(f64::NAN).identical(&Value::Float(-f64::NAN)));
        assert!(!Value::Float(0.0).identical(&Value::Float(-0.0)));
        assert!(!Value::Int(1).identical(&Value::UInt(1)));
        assert!(sample().identical(&sample()));
        assert!(!Value::List(vec![Value::Float(1.0)]).identical(&Value::List(vec![Value::Float(2.0)])));
    }
}

//! Filter expressions: field paths, the [`Filter`] tree, and its evaluation
//! against a document.
//!
//! This file owns the *meaning* of a filter. Index scans must return the
//! same documents as evaluating the filter on every document, so the index
//! planner (which decides which index ranges can serve a filter) follows
//! the rules documented on [`Filter`] and [`FieldPath::resolve`]; any change
//! here is a change to what indexes must contain.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::doc::order::{compare, type_rank, values_equal};
use crate::doc::value::{is_list_index, Value};
use crate::error::{Error, Result};

/// A validated dotted path to a field of a document, such as
/// `address.city` or `items.0.sku`.
///
/// A path has at least one segment; segments are non-empty (so no leading,
/// trailing or doubled dots) and cannot contain a dot. A segment made only
/// of ASCII digits indexes a list (`items.0` is the first item); on a map
/// it is an ordinary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses a dotted path, e.g. `"address.city"`.
    pub fn parse(path: &str) -> Result<FieldPath> {
        if path.is_empty() {
            return Err(Error::invalid("invalid field path \"\": the path is empty"));
        }
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(Error::invalid(format!(
                "invalid field path {path:?}: empty segment (leading, trailing or doubled dot)"
            )));
        }
        Ok(FieldPath { segments })
    }

    /// Builds a path from its segments (each non-empty and without dots).
    pub fn from_segments<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Result<FieldPath> {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        if segments.is_empty() {
            return Err(Error::invalid("invalid field path: no segments"));
        }
        if let Some(bad) = segments.iter().find(|s| s.is_empty() || s.contains('.')) {
            return Err(Error::invalid(format!(
                "invalid field path segment {bad:?}: segments are non-empty and contain no dot"
            )));
        }
        Ok(FieldPath { segments })
    }

    /// The path's segments, in order.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The single value at this path, following map keys and (for digit
    /// segments) list indexes only: a non-digit segment applied to a list
    /// finds nothing. `None` when the path is missing. Sorting uses this.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        let mut cur = doc;
        for seg in &self.segments {
            cur = step(cur, seg)?;
        }
        Some(cur)
    }

    /// All values this path reaches in `doc`, appended to `out` (nothing
    /// when the path is missing). This is what filters test and what a
    /// multi-value index stores.
    ///
    /// Rules, per segment: on a map, the value under that key; on a list, a
    /// digit segment takes that element, and any other segment is applied to
    /// each element of the list that is a map ("fan-out": `items.sku` reaches
    /// the `sku` of every item), one list level deep; on anything else,
    /// nothing. The final values are returned as they are: a list stays one
    /// list value (the operators decide whether to look inside it).
    pub fn resolve<'a>(&self, doc: &'a Value, out: &mut Vec<&'a Value>) {
        // Iterative so that a long path cannot exhaust the stack.
        let mut frontier = vec![doc];
        let mut next = Vec::new();
        for seg in &self.segments {
            for v in frontier.drain(..) {
                match v {
                    Value::List(items) if !is_list_index(seg) => {
                        next.extend(items.iter().filter_map(|item| match item {
                            Value::Map(_) => step(item, seg),
                            _ => None,
                        }));
                    }
                    _ => next.extend(step(v, seg)),
                }
            }
            std::mem::swap(&mut frontier, &mut next);
            if frontier.is_empty() {
                return;
            }
        }
        out.extend(frontier);
    }
}

/// One step of a path: a map key, or a list index for digit segments.
fn step<'a>(v: &'a Value, seg: &str) -> Option<&'a Value> {
    match v {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| k == seg).map(|(_, v)| v),
        // An index too large for usize simply finds nothing.
        Value::List(items) if is_list_index(seg) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

impl FromStr for FieldPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<FieldPath> {
        FieldPath::parse(s)
    }
}

/// A filter over documents.
///
/// # Semantics
///
/// A field path ([`FieldPath::resolve`]) reaches zero or more values of a
/// document (more than one only when it fans out through a list of maps).
/// An operator matches when **any** reached value matches; a path that
/// reaches nothing is *absent*:
///
/// - `Eq`, `Lt`, `Le`, `Gt`, `Ge`, `In`, `Prefix` are false on an absent
///   path; `Ne` is true; `Exists(p, true)` is false and `Exists(p, false)`
///   true. A field that is present with value null is not absent: it
///   exists, and equals `Null`.
/// - Comparisons use [`order::compare`](crate::doc::order::compare) but only
///   between values of the same type rank (numbers with numbers across
///   Int/UInt/Float, strings with strings, ...). A rank mismatch never
///   matches: `Gt("total", 100)` is false when `total` is a string. Under
///   that order NaN is the greatest number, so `Gt("x", 100)` matches a NaN.
/// - **Lists**: when a reached value is a list and the operand is not a list,
///   the operator matches when any element of the list matches (so
///   `Eq("tags", "red")` matches `tags: ["red", "blue"]`, which is what a
///   multi-value index serves). When the operand is a list, the reached
///   value is compared as a whole (`Eq("tags", ["red", "blue"])` matches that
///   exact list only).
/// - `Ne(p, v)` is exactly `Not(Eq(p, v))`: true when no reached value (nor
///   list element) equals `v`, including on a rank mismatch or absent path.
/// - `In(p, vs)` is `Eq` against any of `vs` (false for an empty list).
/// - `Prefix(p, s)` matches a string that starts with `s` (byte-wise), or a
///   list containing such a string.
/// - `And(vec![])` is true, `Or(vec![])` is false, `True` is true.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The field equals the value.
    Eq(FieldPath, Value),
    /// The field does not equal the value (also true when absent).
    Ne(FieldPath, Value),
    /// The field is less than the value (same type rank).
    Lt(FieldPath, Value),
    /// The field is less than or equal to the value (same type rank).
    Le(FieldPath, Value),
    /// The field is greater than the value (same type rank).
    Gt(FieldPath, Value),
    /// The field is greater than or equal to the value (same type rank).
    Ge(FieldPath, Value),
    /// The field equals one of the values.
    In(FieldPath, Vec<Value>),
    /// The field is a string starting with the given prefix.
    Prefix(FieldPath, String),
    /// The field is present (`true`) or absent (`false`).
    Exists(FieldPath, bool),
    /// All sub-filters match.
    And(Vec<Filter>),
    /// At least one sub-filter matches.
    Or(Vec<Filter>),
    /// The sub-filter does not match.
    Not(Box<Filter>),
    /// Every document matches.
    True,
}

/// Constructors for building filters in Rust. Each leaf parses its dotted
/// path ([`FieldPath::parse`]) and so returns `InvalidArgument` on a bad
/// one; [`and`](Filter::and), [`or`](Filter::or) and `!` combine filters.
///
/// ```
/// use obj_engine::{Filter, QuerySpec};
/// let f = Filter::eq("region", "north")?
///     .and(Filter::gt("total", 100)?.or(Filter::is_in("status", ["vip", "gold"])?))
///     .and(!Filter::exists("deleted_at", true)?);
/// let spec = QuerySpec::new("orders").with_filter(f).sort_by("total", true)?.with_limit(10);
/// assert_eq!(spec, QuerySpec::from_json(&spec.to_json())?);
/// assert!(Filter::eq("a..b", 1).is_err());
/// # Ok::<(), obj_engine::Error>(())
/// ```
impl Filter {
    /// `Eq`: the field equals `value`.
    pub fn eq(path: &str, value: impl Into<Value>) -> Result<Filter> {
        Ok(Filter::Eq(FieldPath::parse(path)?, value.into()))
    }

    /// `Ne`: the field does not equal `value` (or is absent).
    pub fn ne(path: &str, value: impl Into<Value>) -> Result<Filter> {
        Ok(Filter::Ne(FieldPath::parse(path)?, value.into()))
    }

    /// `Lt`: the field is less than `value`.
    pub fn lt(path: &str, value: impl Into<Value>) -> Result<Filter> {
        Ok(Filter::Lt(FieldPath::parse(path)?, value.into()))
    }

    /// `Le`: the field is less than or equal to `value`.
    pub fn le(path: &str, value: impl Into<Value>) -> Result<Filter> {
        Ok(Filter::Le(FieldPath::parse(path)?, value.into()))
    }

    /// `Gt`: the field is greater than `value`.
    pub fn gt(path: &str, value: impl Into<Value>) -> Result<Filter> {
        Ok(Filter::Gt(FieldPath::parse(path)?, value.into()))
    }

    /// `Ge`: the field is greater than or equal to `value`.
    pub fn ge(path: &str, value: impl Into<Value>) -> Result<Filter> {
        Ok(Filter::Ge(FieldPath::parse(path)?, value.into()))
    }

    /// `In`: the field equals one of `values` (`in` is a Rust keyword).
    pub fn is_in<V: Into<Value>>(path: &str, values: impl IntoIterator<Item = V>) -> Result<Filter> {
        Ok(Filter::In(FieldPath::parse(path)?, values.into_iter().map(Into::into).collect()))
    }

    /// `Prefix`: the field is a string starting with `prefix`.
    pub fn prefix(path: &str, prefix: impl Into<String>) -> Result<Filter> {
        Ok(Filter::Prefix(FieldPath::parse(path)?, prefix.into()))
    }

    /// `Exists`: the field is present (`true`) or absent (`false`).
    pub fn exists(path: &str, present: bool) -> Result<Filter> {
        Ok(Filter::Exists(FieldPath::parse(path)?, present))
    }

    /// Both filters (an `And`, extended when `self` already is one).
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::True => other,
            Filter::And(mut v) => {
                v.push(other);
                Filter::And(v)
            }
            f => Filter::And(vec![f, other]),
        }
    }

    /// Either filter (an `Or`, extended when `self` already is one).
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut v) => {
                v.push(other);
                Filter::Or(v)
            }
            f => Filter::Or(vec![f, other]),
        }
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;

    /// `Not`: `!filter`.
    fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }
}

impl Filter {
    /// How many levels of `and`, `or` and `not` this filter has (a leaf or
    /// `True` is 1). Iterative, so it is safe on filters of any depth.
    pub fn nesting_depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack: Vec<(&Filter, usize)> = vec![(self, 1)];
        while let Some((f, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            match f {
                Filter::And(fs) | Filter::Or(fs) => stack.extend(fs.iter().map(|f| (f, depth + 1))),
                Filter::Not(f) => stack.push((f, depth + 1)),
                _ => {}
            }
        }
        deepest
    }

    /// Fails with `InvalidArgument` when the filter nests deeper than
    /// [`MAX_NESTING`](crate::doc::value::MAX_NESTING) levels, or a value
    /// it compares with does, the bound a document has too: a query walks
    /// its filter and copies its values recursively, so a filter built in
    /// Rust without a bound could exhaust the thread's stack. (The JSON
    /// form, which counts each object and array, stops sooner.)
    pub fn check_nesting(&self) -> crate::error::Result<()> {
        let max = crate::doc::value::MAX_NESTING;
        let mut stack: Vec<(&Filter, usize)> = vec![(self, 1)];
        while let Some((f, depth)) = stack.pop() {
            if depth > max {
                return Err(crate::error::Error::invalid(format!(
                    "the filter nests deeper than {max} levels of and/or/not"
                )));
            }
            let values: &[Value] = match f {
                Filter::And(fs) | Filter::Or(fs) => {
                    stack.extend(fs.iter().map(|f| (f, depth + 1)));
                    continue;
                }
                Filter::Not(f) => {
                    stack.push((f, depth + 1));
                    continue;
                }
                Filter::Eq(_, v) | Filter::Ne(_, v) | Filter::Lt(_, v) | Filter::Le(_, v) => {
                    std::slice::from_ref(v)
                }
                Filter::Gt(_, v) | Filter::Ge(_, v) => std::slice::from_ref(v),
                Filter::In(_, vs) => vs,
                Filter::True | Filter::Prefix(..) | Filter::Exists(..) => continue,
            };
            Value::check_all_nesting(values).map_err(|_| {
                crate::error::Error::invalid(format!("a value in the filter nests deeper than {max} levels"))
            })?;
        }
        Ok(())
    }

    /// Evaluates the filter against a document (see the type's
    /// documentation for the rules).
    pub fn eval(&self, doc: &Value) -> bool {
        match self {
            Filter::True => true,
            Filter::And(fs) => fs.iter().all(|f| f.eval(doc)),
            Filter::Or(fs) => fs.iter().any(|f| f.eval(doc)),
            Filter::Not(f) => !f.eval(doc),
            Filter::Eq(p, v) => any_reached(p, doc, |c| eq_match(c, v)),
            Filter::Ne(p, v) => !any_reached(p, doc, |c| eq_match(c, v)),
            Filter::Lt(p, v) => any_reached(p, doc, |c| cmp_match(c, v, Ordering::is_lt)),
            Filter::Le(p, v) => any_reached(p, doc, |c| cmp_match(c, v, Ordering::is_le)),
            Filter::Gt(p, v) => any_reached(p, doc, |c| cmp_match(c, v, Ordering::is_gt)),
            Filter::Ge(p, v) => any_reached(p, doc, |c| cmp_match(c, v, Ordering::is_ge)),
            Filter::In(p, vs) => any_reached(p, doc, |c| vs.iter().any(|v| eq_match(c, v))),
            Filter::Prefix(p, s) => any_reached(p, doc, |c| match c {
                Value::Str(x) => x.starts_with(s.as_str()),
                Value::List(items) => {
                    items.iter().any(|i| matches!(i, Value::Str(x) if x.starts_with(s.as_str())))
                }
                _ => false,
            }),
            Filter::Exists(p, want) => {
                let mut reached = Vec::new();
                p.resolve(doc, &mut reached);
                reached.is_empty() != *want
            }
        }
    }

    /// For a comparison on a one-segment path: whether it matches a
    /// document whose field there is `field` (`None`: absent). The same
    /// answer as [`eval`](Self::eval) on such a document; `None` for
    /// `And`/`Or`/`Not`/`True`, which are not leaves.
    pub(crate) fn eval_field(&self, field: FieldRef<'_>) -> Option<bool> {
        if let FieldRef::Str(x) = field {
            // A string is no list, and a string never equals or compares
            // with a value of another rank.
            let cmp = |v: &Value, pred: fn(Ordering) -> bool| match v {
                Value::Str(y) => pred(x.cmp(y.as_bytes())),
                _ => false,
            };
            // Equality tests the lengths before any byte (most strings a
            // scan meets differ in length from the one it looks for).
            let eq = |v: &Value| matches!(v, Value::Str(y) if x == y.as_bytes());
            return Some(match self {
                Filter::Eq(_, v) => eq(v),
                Filter::Ne(_, v) => !eq(v),
                Filter::Lt(_, v) => cmp(v, Ordering::is_lt),
                Filter::Le(_, v) => cmp(v, Ordering::is_le),
                Filter::Gt(_, v) => cmp(v, Ordering::is_gt),
                Filter::Ge(_, v) => cmp(v, Ordering::is_ge),
                Filter::In(_, vs) => vs.iter().any(eq),
                Filter::Prefix(_, p) => x.starts_with(p.as_bytes()),
                Filter::Exists(_, want) => *want,
                Filter::True | Filter::And(_) | Filter::Or(_) | Filter::Not(_) => return None,
            });
        }
        let c = match field {
            FieldRef::Value(c) => Some(c),
            FieldRef::Absent | FieldRef::Str(_) => None,
        };
        let any = |pred: &dyn Fn(&Value) -> bool| c.is_some_and(pred);
        Some(match self {
            Filter::Eq(_, v) => any(&|c| eq_match(c, v)),
            Filter::Ne(_, v) => !any(&|c| eq_match(c, v)),
            Filter::Lt(_, v) => any(&|c| cmp_match(c, v, Ordering::is_lt)),
            Filter::Le(_, v) => any(&|c| cmp_match(c, v, Ordering::is_le)),
            Filter::Gt(_, v) => any(&|c| cmp_match(c, v, Ordering::is_gt)),
            Filter::Ge(_, v) => any(&|c| cmp_match(c, v, Ordering::is_ge)),
            Filter::In(_, vs) => any(&|c| vs.iter().any(|v| eq_match(c, v))),
            Filter::Prefix(_, s) => any(&|c| match c {
                Value::Str(x) => x.starts_with(s.as_str()),
                Value::List(items) => {
                    items.iter().any(|i| matches!(i, Value::Str(x) if x.starts_with(s.as_str())))
                }
                _ => false,
            }),
            Filter::Exists(_, want) => c.is_none() != *want,
            Filter::True | Filter::And(_) | Filter::Or(_) | Filter::Not(_) => return None,
        })
    }

    /// The path a leaf reads (`None` for `And`/`Or`/`Not`/`True`).
    pub(crate) fn leaf_path(&self) -> Option<&FieldPath> {
        match self {
            Filter::True | Filter::And(_) | Filter::Or(_) | Filter::Not(_) => None,
            Filter::Eq(p, _)
            | Filter::Ne(p, _)
            | Filter::Lt(p, _)
            | Filter::Le(p, _)
            | Filter::Gt(p, _)
            | Filter::Ge(p, _)
            | Filter::In(p, _)
            | Filter::Prefix(p, _)
            | Filter::Exists(p, _) => Some(p),
        }
    }

    /// The distinct field paths the filter reads, in order of first use, so
    /// that the engine can decode only those fields of each document.
    pub fn paths(&self) -> Vec<&FieldPath> {
        let mut out = Vec::new();
        self.collect_paths(&mut out);
        out
    }

    fn collect_paths<'a>(&'a self, out: &mut Vec<&'a FieldPath>) {
        let p = match self {
            Filter::True => return,
            Filter::And(fs) | Filter::Or(fs) => {
                for f in fs {
                    f.collect_paths(out);
                }
                return;
            }
            Filter::Not(f) => return f.collect_paths(out),
            Filter::Eq(p, _)
            | Filter::Ne(p, _)
            | Filter::Lt(p, _)
            | Filter::Le(p, _)
            | Filter::Gt(p, _)
            | Filter::Ge(p, _)
            | Filter::In(p, _)
            | Filter::Prefix(p, _)
            | Filter::Exists(p, _) => p,
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
}

/// A document's field as [`Filter::eval_field`] sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldRef<'a> {
    /// The document has no such field.
    Absent,
    /// A string's bytes, borrowed from the stored document (not checked as
    /// UTF-8: see [`encoded_str_bytes`](crate::doc::codec::encoded_str_bytes)).
    Str(&'a [u8]),
    /// Any other value.
    Value(&'a Value),
}

fn any_reached(p: &FieldPath, doc: &Value, pred: impl Fn(&Value) -> bool) -> bool {
    let mut reached = Vec::new();
    p.resolve(doc, &mut reached);
    reached.into_iter().any(pred)
}

/// Equality of a reached value `c` with operand `v`, with list-any.
fn eq_match(c: &Value, v: &Value) -> bool {
    // values_equal is false across ranks, so no separate rank check.
    if values_equal(c, v) {
        return true;
    }
    match c {
        Value::List(items) if !matches!(v, Value::List(_)) => items.iter().any(|i| values_equal(i, v)),
        _ => false,
    }
}

/// Ordering test of a reached value `c` against operand `v`: same rank
/// only, with list-any when `c` is a list and `v` is not.
fn cmp_match(c: &Value, v: &Value, pred: fn(Ordering) -> bool) -> bool {
    let one = |x: &Value| type_rank(x) == type_rank(v) && pred(compare(x, v));
    match c {
        Value::List(items) if !matches!(v, Value::List(_)) => items.iter().any(one),
        _ => one(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::value::Timestamp;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }
    fn s(x: &str) -> Value {
        Value::Str(x.to_string())
    }
    fn map(pairs: Vec<(&str, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn doc() -> Value {
        map(vec![
            ("status", s("shipped")),
            ("total", Value::Int(750)),
            ("price", Value::Float(9.5)),
            ("big", Value::UInt(u64::MAX)),
            ("label", s("100")),
            ("note", Value::Null),
            ("tags", Value::List(vec![s("red"), s("blue"), Value::Int(7)])),
            ("address", map(vec![("city", s("Paris")), ("zip", s("75001"))])),
            (
                "items",
                Value::List(vec![
                    map(vec![("sku", s("A1")), ("qty", Value::Int(2))]),
                    map(vec![("sku", s("B2")), ("qty", Value::Int(5))]),
                    Value::Int(3),
                ]),
            ),
            ("matrix", Value::List(vec![Value::List(vec![Value::Int(1), Value::Int(2)])])),
            ("at", Value::Timestamp(Timestamp { micros: 1_000, offset_secs: None })),
            ("0", s("zero-key")),
        ])
    }

    #[test]
    fn paths_parse_and_validate() {
        assert_eq!(p("a.b.0").segments(), &["a", "b", "0"]);
        assert_eq!(p("address.city").to_string(), "address.city");
        for bad in ["", ".", "a.", ".a", "a..b"] {
            let e = FieldPath::parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad:?}");
            assert!(e.to_string().contains("field path"), "{e}");
        }
        assert!(FieldPath::from_segments(["a.b"]).is_err());
        assert!(FieldPath::from_segments(Vec::<String>::new()).is_err());
        assert_eq!(FieldPath::from_segments(["a", "b"]).unwrap(), p("a.b"));
        assert_eq!("x.y".parse::<FieldPath>().unwrap(), p("x.y"));
    }

    #[test]
    fn resolve_and_get() {
        let d = doc();
        let all = |path: &str| {
            let mut out = Vec::new();
            p(path).resolve(&d, &mut out);
            out.into_iter().cloned().collect::<Vec<_>>()
        };
        assert_eq!(all("address.city"), vec![s("Paris")]);
        assert_eq!(all("items.sku"), vec![s("A1"), s("B2")]);
        assert_eq!(all("items.1.qty"), vec![Value::Int(5)]);
        assert_eq!(all("tags.1"), vec![s("blue")]);
        assert_eq!(all("tags.99"), vec![]);
        assert_eq!(all("tags.99999999999999999999999"), vec![]);
        assert_eq!(all("0"), vec![s("zero-key")], "a digit segment on a map is a key");
        assert_eq!(all("missing.x"), vec![]);
        assert_eq!(all("total.x"), vec![]);
        assert_eq!(p("items.1.sku").get(&d), Some(&s("B2")));
        assert_eq!(p("items.sku").get(&d), None, "get does not fan out");
        assert_eq!(p("note").get(&d), Some(&Value::Null));
    }

    #[test]
    fn operator_table() {
        use Filter::*;
        let d = doc();
        let cases: Vec<(Filter, bool)> = vec![
            (True, true),
            (Eq(p("status"), s("shipped")), true),
            (Eq(p("status"), s("pending")), false),
            (Eq(p("total"), Value::Float(750.0)), true),
            (Eq(p("total"), Value::UInt(750)), true),
            (Eq(p("big"), Value::UInt(u64::MAX)), true),
            (Eq(p("big"), Value::Float(1.8446744073709552e19)), false),
            // missing paths
            (Eq(p("nope"), Value::Null), false),
            (Lt(p("nope"), Value::Int(1)), false),
            (Gt(p("nope"), Value::Int(1)), false),
            (Ne(p("nope"), Value::Int(1)), true),
            (In(p("nope"), vec![Value::Null]), false),
            (Prefix(p("nope"), String::new()), false),
            (Exists(p("nope"), false), true),
            (Exists(p("nope"), true), false),
            // present null
            (Exists(p("note"), true), true),
            (Eq(p("note"), Value::Null), true),
            (Lt(p("note"), Value::Int(1)), false),
            // ordering within rank
            (Gt(p("total"), Value::Int(500)), true),
            (Gt(p("total"), Value::Int(750)), false),
            (Ge(p("total"), Value::Int(750)), true),
            (Lt(p("total"), Value::Float(750.5)), true),
            (Le(p("total"), Value::Int(749)), false),
            (Gt(p("price"), Value::Int(9)), true),
            (Lt(p("big"), Value::Float(f64::INFINITY)), true),
            (Gt(p("status"), s("p")), true),
            (Lt(p("at"), Value::Timestamp(Timestamp { micros: 2_000, offset_secs: Some(0) })), true),
            // rank mismatches: never a match, except Ne
            (Gt(p("label"), Value::Int(5)), false),
            (Lt(p("label"), Value::Int(5)), false),
            (Eq(p("label"), Value::Int(100)), false),
            (Ne(p("label"), Value::Int(100)), true),
            (Gt(p("total"), s("100")), false),
            (Lt(p("total"), Value::Null), false),
            (Gt(p("status"), Value::Null), false),
            // lists: any element, with a non-list operand
            (Eq(p("tags"), s("red")), true),
            (Eq(p("tags"), Value::Int(7)), true),
            (Eq(p("tags"), s("green")), false),
            (Ne(p("tags"), s("red")), false),
            (Ne(p("tags"), s("green")), true),
            (Gt(p("tags"), Value::Int(6)), true),
            (Gt(p("tags"), Value::Int(7)), false),
            (Lt(p("tags"), s("c")), true),
            (In(p("tags"), vec![s("green"), s("blue")]), true),
            (In(p("tags"), vec![]), false),
            (Prefix(p("tags"), "bl".into()), true),
            (Prefix(p("tags"), "x".into()), false),
            // lists: whole-list comparison with a list operand
            (Eq(p("tags"), Value::List(vec![s("red"), s("blue"), Value::Int(7)])), true),
            (Eq(p("tags"), Value::List(vec![s("red")])), false),
            (Gt(p("tags"), Value::List(vec![s("red")])), true),
            // A list operand is compared with the whole value, never with
            // elements, and list-any looks one level deep only.
            (Eq(p("matrix"), Value::List(vec![Value::Int(1), Value::Int(2)])), false),
            (Eq(p("matrix"), Value::List(vec![Value::List(vec![Value::Int(1), Value::Int(2)])])), true),
            (Eq(p("matrix"), Value::Int(1)), false),
            // nested and fanned-out paths
            (Eq(p("address.city"), s("Paris")), true),
            (Prefix(p("address.zip"), "750".into()), true),
            (Eq(p("items.sku"), s("B2")), true),
            (Gt(p("items.qty"), Value::Int(4)), true),
            (Gt(p("items.qty"), Value::Int(5)), false),
            (Eq(p("items.0.sku"), s("B2")), false),
            (Exists(p("items.sku"), true), true),
            (Exists(p("items.color"), false), true),
            (Prefix(p("status"), "ship".into()), true),
            (Prefix(p("status"), "Ship".into()), false),
            (Prefix(p("total"), "7".into()), false),
            // combinators
            (And(vec![]), true),
            (Or(vec![]), false),
            (And(vec![Eq(p("status"), s("shipped")), Gt(p("total"), Value::Int(500))]), true),
            (And(vec![Eq(p("status"), s("shipped")), Gt(p("total"), Value::Int(800))]), false),
            (Or(vec![Eq(p("status"), s("x")), Gt(p("total"), Value::Int(500))]), true),
            (Not(Box::new(Eq(p("status"), s("x")))), true),
            (Not(Box::new(True)), false),
        ];
        for (f, want) in cases {
            assert_eq!(f.eval(&d), want, "{f:?}");
        }
    }

    #[test]
    fn nan_is_the_greatest_number() {
        let d = map(vec![("x", Value::Float(f64::NAN))]);
        assert!(Filter::Gt(p("x"), Value::Int(100)).eval(&d));
        assert!(Filter::Eq(p("x"), Value::Float(f64::NAN)).eval(&d));
        assert!(!Filter::Lt(p("x"), Value::Float(f64::INFINITY)).eval(&d));
    }

    #[test]
    fn non_map_documents() {
        assert!(!Filter::Eq(p("a"), Value::Int(1)).eval(&Value::Int(1)));
        assert!(Filter::Exists(p("a"), false).eval(&Value::Null));
        assert!(Filter::Eq(p("0"), Value::Int(1)).eval(&Value::List(vec![Value::Int(1)])));
    }

    // The index planner serves comparisons with byte ranges over encoded
    // keys. These properties tie the filter semantics above to those ranges:
    // for a scalar field value x, each operator matches exactly when enc(x)
    // lies in the range the planner would scan.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn comparisons_match_index_ranges(
            x in crate::index::arb_value::scalar_value(),
            v in crate::index::arb_value::scalar_value(),
            pre in "[ab\\x00\\x01]{0,3}",
        ) {
            use crate::index::key_encoding::{encode_key_vec, prefix_end, rank_key_range, str_prefix_key};
            let d = map(vec![("f", x.clone())]);
            let f = p("f");
            let k = encode_key_vec(&x);
            let ev = encode_key_vec(&v);
            let (rs, re) = rank_key_range(&v);
            let after_v = prefix_end(&ev).unwrap();
            let inr = |lo: &[u8], hi: &[u8]| k.as_slice() >= lo && k.as_slice() < hi;
            proptest::prop_assert_eq!(Filter::Eq(f.clone(), v.clone()).eval(&d), inr(&ev, &after_v));
            proptest::prop_assert_eq!(Filter::Gt(f.clone(), v.clone()).eval(&d), inr(&after_v, &re));
            proptest::prop_assert_eq!(Filter::Ge(f.clone(), v.clone()).eval(&d), inr(&ev, &re));
            proptest::prop_assert_eq!(Filter::Lt(f.clone(), v.clone()).eval(&d), inr(&rs, &ev));
            proptest::prop_assert_eq!(Filter::Le(f.clone(), v.clone()).eval(&d), inr(&rs, &after_v));
            let pk = str_prefix_key(&pre);
            let pend = prefix_end(&pk).unwrap();
            proptest::prop_assert_eq!(Filter::Prefix(f.clone(), pre.clone()).eval(&d), inr(&pk, &pend));
            // List-any: a list field matches when one of its elements does,
            // which is what a multi-value index (one entry per element) serves.
            let dl = map(vec![("f", Value::List(vec![v.clone(), x.clone()]))]);
            proptest::prop_assert_eq!(
                Filter::Gt(f.clone(), v.clone()).eval(&dl),
                Filter::Gt(f.clone(), v.clone()).eval(&d)
            );
        }
    }

    #[test]
    fn paths_are_distinct_in_first_use_order() {
        use Filter::*;
        let f = And(vec![
            Eq(p("b"), Value::Int(1)),
            Or(vec![Exists(p("a"), true), Not(Box::new(Lt(p("b"), Value::Int(3))))]),
            In(p("c.d"), vec![]),
            True,
        ]);
        let got: Vec<String> = f.paths().into_iter().map(|x| x.to_string()).collect();
        assert_eq!(got, ["b", "a", "c.d"]);
        assert!(True.paths().is_empty());
    }

    #[test]
    fn a_value_nested_deeper_than_a_document_may_be_is_refused_before_a_query_copies_it() {
        use Filter::*;
        let max = crate::doc::value::MAX_NESTING;
        let nested = |depth: usize| (0..depth).fold(Value::Int(1), |v, _| Value::List(vec![v]));
        assert!(Eq(p("a"), nested(max)).check_nesting().is_ok());
        for f in [
            Eq(p("a"), nested(max + 1)),
            Not(Box::new(Ge(p("a"), nested(max + 1)))),
            And(vec![True, Or(vec![In(p("a"), vec![Value::Null, nested(max + 1)])])]),
        ] {
            let e = f.check_nesting().unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument(m) if m.contains("value in the filter nests deeper")),
                "{e}"
            );
        }
    }
}

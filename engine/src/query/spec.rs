//! The query specification ([`QuerySpec`]) and the JSON form of queries and
//! filters, which is how the C ABI and the Python package pass them.
//!
//! The JSON form is specified with examples in `docs/query-json.md`; keep the
//! two in step. Parsing is strict (unknown fields and operators are errors,
//! not ignored) because a silently ignored typo in a filter returns wrong
//! results instead of failing. Every error is [`Error::InvalidArgument`] and
//! names the place in the query, e.g. `filter.and[1]: unknown operator "gtt"`.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::ops::Bound;

use crate::doc::order::compare;
use crate::doc::value::Value;
use crate::error::{Error, Result};
use crate::index::key_encoding::{encode_composite, prefix_end};
use crate::query::expr::{FieldPath, Filter};
use crate::query::json::{self, Json};

/// One sort key: a field and a direction.
///
/// Documents compare by the value at `path` ([`FieldPath::get`]: no
/// fan-out through lists) under [`compare`]; a document where the path is
/// missing sorts before every document where it is present (even one with
/// null), and `descending` reverses the whole order, missing included.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// The field to sort by.
    pub path: FieldPath,
    /// Largest first when true.
    pub descending: bool,
}

impl SortKey {
    /// Compares two documents by this key.
    pub fn compare_docs(&self, a: &Value, b: &Value) -> Ordering {
        let o = match (self.path.get(a), self.path.get(b)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => compare(x, y),
        };
        if self.descending {
            o.reverse()
        } else {
            o
        }
    }
}

/// One end of an index range: a tuple of values that is the whole index key
/// or a prefix of it (for a composite index), and whether the end includes
/// the keys that start with that tuple.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexBound {
    /// The leading values of the index key.
    pub values: Vec<Value>,
    /// Whether keys starting with `values` are inside the range.
    pub inclusive: bool,
}

/// Byte bounds (lower, upper) on index keys, as [`IndexRange::key_range`]
/// returns them; usable directly as a `RangeBounds<Vec<u8>>`.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// A request to read through a named index, optionally restricted to a key
/// range.
///
/// The query reads the entries of `index` between `lo` and `hi`, in index
/// order (or reverse order), and applies the filter to each document found;
/// documents that have no entry in the range are not returned even if they
/// match the filter. Without `lo` and `hi` the whole index is read, which
/// is a way to get results in index order.
///
/// Bounds are compared as tuples under [`compare`]: on a composite index
/// `(status, total)`, `lo = {values: ["shipped"], inclusive: true}` starts at
/// the first key whose status is "shipped", and
/// `hi = {values: ["shipped"], inclusive: true}` ends after the last one.
/// [`IndexRange::key_range`] turns the bounds into byte bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRange {
    /// The index name.
    pub index: String,
    /// The lower end (`None`: from the first entry).
    pub lo: Option<IndexBound>,
    /// The upper end (`None`: to the last entry).
    pub hi: Option<IndexBound>,
    /// Read from the upper end down.
    pub reverse: bool,
}

impl IndexRange {
    /// The range as bounds on encoded value keys (see
    /// `docs/format.md ("Index key encoding")`, "Scans"), valid for both unique index keys and
    /// non-unique entry keys (value key + document id). `None` when the range
    /// is certainly empty (a strict lower bound above every key).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a bound value nests deeper than 128
    /// levels, as no document may (the encoding recurses).
    pub fn key_range(&self) -> Result<Option<KeyRange>> {
        for b in self.lo.iter().chain(self.hi.iter()) {
            Value::check_all_nesting(&b.values)?;
        }
        Ok(self.encoded_range())
    }

    /// [`IndexRange::key_range`] of bounds whose nesting was checked (the
    /// planner checks every query's first).
    pub(crate) fn encoded_range(&self) -> Option<KeyRange> {
        let key = |b: &IndexBound| encode_composite(&b.values.iter().collect::<Vec<_>>());
        let lo = match &self.lo {
            None => Bound::Unbounded,
            Some(b) if b.inclusive => Bound::Included(key(b)),
            Some(b) => Bound::Included(prefix_end(&key(b))?),
        };
        let hi = match &self.hi {
            None => Bound::Unbounded,
            Some(b) if b.inclusive => prefix_end(&key(b)).map_or(Bound::Unbounded, Bound::Excluded),
            Some(b) => Bound::Excluded(key(b)),
        };
        Some((lo, hi))
    }
}

/// Everything a query asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySpec {
    /// The collection to read.
    pub collection: String,
    /// Which documents match ([`Filter::True`]: all).
    pub filter: Filter,
    /// The result order, most significant key first. Empty: the plan's
    /// order, which is document id for a scan and index-key order (then id)
    /// when an index is read (the one `index` names, or one the planner
    /// picks), so unsorted pages may change when an index is created or
    /// dropped: sort to page stably. Ties are broken by document id so that
    /// results are deterministic.
    pub sort: Vec<SortKey>,
    /// At most this many results (after `offset`).
    pub limit: Option<u64>,
    /// Skip this many results first.
    pub offset: u64,
    /// The most documents the engine may hold in memory to sort results that
    /// no index delivers in order; past it the query fails instead of using
    /// unbounded memory. `None`: the engine's default.
    pub sort_buffer_limit: Option<u64>,
    /// Return only the number of results (after `offset` and `limit`), not
    /// the documents.
    pub count_only: bool,
    /// Read through this index and range instead of letting the planner
    /// choose.
    pub index: Option<IndexRange>,
    /// Only documents whose id is greater than this: paging in id order
    /// (the last id of one page starts the next), and how a binding goes on
    /// with a scan after a write in its transaction ended the cursor. The
    /// query then reads the collection in id order from there (no index;
    /// with `index` it is refused).
    pub after_id: Option<u64>,
}

impl QuerySpec {
    /// Refuses what no collection could answer, whatever it holds: an
    /// index bound without a key value (the JSON form cannot say one: it
    /// would not read back from [`to_json`](Self::to_json)), and after_id
    /// with an index. Checked when JSON is parsed and by the planner, which
    /// every query and explain goes through; a query of a missing
    /// collection is never planned, and must not pass only while the
    /// collection is missing, so the callers that answer one check it too.
    pub(crate) fn check_shape(&self) -> Result<()> {
        if let Some(ix) = &self.index {
            if ix.lo.iter().chain(ix.hi.iter()).any(|b| b.values.is_empty()) {
                return Err(Error::invalid(format!(
                    "index {:?}: a bound needs at least one key value (leave the end open with None)",
                    ix.index
                )));
            }
            if self.after_id.is_some() {
                return Err(Error::invalid(
                    "after_id reads the collection in id order: it does not combine with index",
                ));
            }
        }
        Ok(())
    }

    /// A query returning every document of `collection`.
    pub fn new(collection: impl Into<String>) -> QuerySpec {
        QuerySpec {
            collection: collection.into(),
            filter: Filter::True,
            sort: Vec::new(),
            limit: None,
            offset: 0,
            sort_buffer_limit: None,
            count_only: false,
            index: None,
            after_id: None,
        }
    }

    /// This query with `filter` (see the [`Filter`] constructors).
    pub fn with_filter(mut self, filter: Filter) -> QuerySpec {
        self.filter = filter;
        self
    }

    /// This query sorted by `path` too (after any sort key already given),
    /// largest first when `descending`; `InvalidArgument` on a bad path.
    pub fn sort_by(mut self, path: &str, descending: bool) -> Result<QuerySpec> {
        self.sort.push(SortKey { path: FieldPath::parse(path)?, descending });
        Ok(self)
    }

    /// This query returning at most `limit` results.
    pub fn with_limit(mut self, limit: u64) -> QuerySpec {
        self.limit = Some(limit);
        self
    }

    /// This query reading only documents with an id greater than `id` (see
    /// [`after_id`](Self::after_id)).
    pub fn with_after_id(mut self, id: u64) -> QuerySpec {
        self.after_id = Some(id);
        self
    }

    /// This query skipping its first `offset` results.
    pub fn with_offset(mut self, offset: u64) -> QuerySpec {
        self.offset = offset;
        self
    }

    /// This query with its own sort buffer limit (see
    /// [`sort_buffer_limit`](Self::sort_buffer_limit)).
    pub fn with_sort_buffer_limit(mut self, limit: u64) -> QuerySpec {
        self.sort_buffer_limit = Some(limit);
        self
    }

    /// Parses the JSON form (`docs/query-json.md`).
    pub fn from_json(text: &str) -> Result<QuerySpec> {
        parse_spec(&json::parse(text)?)
    }

    /// The JSON form; [`QuerySpec::from_json`] reads it back to an equal
    /// spec (numbers up to their canonical variant: a `UInt` operand that
    /// fits `i64` reads back as `Int`), as long as the text nests at most
    /// 128 JSON levels (an `and` or `or` takes two, a `not` one): a deeper
    /// filter is written all the same, and refused when read back.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        out.push_str("{\"collection\":");
        json::write_str(&self.collection, &mut out);
        if self.filter != Filter::True {
            out.push_str(",\"filter\":");
            write_filter(&self.filter, &mut out);
        }
        if !self.sort.is_empty() {
            out.push_str(",\"sort\":[");
            for (i, k) in self.sort.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"field\":");
                json::write_str(&k.path.to_string(), &mut out);
                out.push_str(if k.descending { ",\"order\":\"desc\"}" } else { ",\"order\":\"asc\"}" });
            }
            out.push(']');
        }
        if let Some(l) = self.limit {
            let _ = write!(out, ",\"limit\":{l}");
        }
        if self.offset != 0 {
            let _ = write!(out, ",\"offset\":{}", self.offset);
        }
        if let Some(l) = self.sort_buffer_limit {
            let _ = write!(out, ",\"sort_buffer_limit\":{l}");
        }
        if self.count_only {
            out.push_str(",\"count_only\":true");
        }
        if let Some(ix) = &self.index {
            out.push_str(",\"index\":{\"name\":");
            json::write_str(&ix.index, &mut out);
            if let Some(b) = &ix.lo {
                out.push_str(if b.inclusive { ",\"ge\":" } else { ",\"gt\":" });
                write_values(&b.values, &mut out);
            }
            if let Some(b) = &ix.hi {
                out.push_str(if b.inclusive { ",\"le\":" } else { ",\"lt\":" });
                write_values(&b.values, &mut out);
            }
            if ix.reverse {
                out.push_str(",\"reverse\":true");
            }
            out.push('}');
        }
        if let Some(a) = self.after_id {
            let _ = write!(out, ",\"after_id\":{a}");
        }
        out.push('}');
        out
    }

    /// Compares two documents by the sort keys (most significant first);
    /// `Equal` when they tie on every key (or there are none).
    pub fn compare_for_sort(&self, a: &Value, b: &Value) -> Ordering {
        self.sort.iter().map(|k| k.compare_docs(a, b)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    }

    /// How documents that the sort keys tie order: by id, as if the id
    /// were one more key in the direction of the last one (so a sort
    /// descending on one field is the exact reverse of the ascending one,
    /// and an index read backwards delivers it).
    pub fn compare_ids(&self, a: u64, b: u64) -> Ordering {
        match self.sort.last() {
            Some(k) if k.descending => b.cmp(&a),
            _ => a.cmp(&b),
        }
    }
}

impl Filter {
    /// Parses the JSON form of a filter alone (`null` means [`Filter::True`]).
    pub fn from_json(text: &str) -> Result<Filter> {
        match json::parse(text)? {
            Json::Null => Ok(Filter::True),
            j => parse_filter(&j, "filter"),
        }
    }

    /// The JSON form of the filter.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_filter(self, &mut out);
        out
    }
}

// ---------------------------------------------------------------- parsing

const SPEC_FIELDS: &str =
    "collection, filter, sort, limit, offset, sort_buffer_limit, count_only, index, after_id";

fn invalid(at: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{at}: {what}"))
}

/// A short rendering of a JSON value for "got ..." in messages.
fn describe(j: &Json) -> String {
    match j {
        Json::Int(i) => i.to_string(),
        Json::UInt(u) => u.to_string(),
        Json::Float(f) => format!("{f:?}"),
        Json::Str(s) if s.chars().count() <= 40 => format!("{s:?}"),
        Json::Bool(b) => b.to_string(),
        other => other.kind().to_string(),
    }
}

fn parse_spec(j: &Json) -> Result<QuerySpec> {
    let Json::Obj(pairs) = j else {
        return Err(Error::invalid(format!("query: expected a JSON object, got {}", j.kind())));
    };
    let mut collection = None;
    let mut spec = QuerySpec::new(String::new());
    for (key, v) in pairs {
        let at = key.as_str();
        match at {
            "collection" => match v {
                Json::Str(s) if !s.is_empty() => collection = Some(s.clone()),
                _ => return Err(invalid(at, format!("expected a non-empty string, got {}", describe(v)))),
            },
            "filter" => {
                spec.filter = match v {
                    Json::Null => Filter::True,
                    _ => parse_filter(v, at)?,
                }
            }
            "sort" => spec.sort = parse_sort(v)?,
            "limit" => spec.limit = opt_u64(v, at)?,
            "offset" => spec.offset = opt_u64(v, at)?.unwrap_or(0),
            "sort_buffer_limit" => spec.sort_buffer_limit = opt_u64(v, at)?,
            "after_id" => spec.after_id = opt_u64(v, at)?,
            "count_only" => match v {
                Json::Bool(b) => spec.count_only = *b,
                Json::Null => spec.count_only = false,
                _ => return Err(invalid(at, format!("expected true or false, got {}", describe(v)))),
            },
            "index" => {
                spec.index = match v {
                    Json::Null => None,
                    _ => Some(parse_index(v)?),
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "query: unknown field {key:?} (expected one of: {SPEC_FIELDS})"
                )))
            }
        }
    }
    spec.collection = collection
        .ok_or_else(|| Error::invalid("query: missing field \"collection\" (a non-empty string)"))?;
    spec.check_shape()?;
    Ok(spec)
}

fn opt_u64(v: &Json, at: &str) -> Result<Option<u64>> {
    match v {
        Json::Null => Ok(None),
        Json::Int(i) if *i >= 0 => Ok(Some(*i as u64)),
        Json::UInt(u) => Ok(Some(*u)),
        _ => Err(invalid(at, format!("expected a non-negative integer, got {}", describe(v)))),
    }
}

fn parse_sort(v: &Json) -> Result<Vec<SortKey>> {
    let items = match v {
        Json::Null => return Ok(Vec::new()),
        Json::Arr(items) => items,
        _ => return Err(invalid("sort", format!("expected an array of sort keys, got {}", v.kind()))),
    };
    let mut keys = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("sort[{i}]");
        let key = match item {
            // A bare path is an ascending key.
            Json::Str(_) => SortKey { path: parse_path(item, &at)?, descending: false },
            Json::Obj(pairs) => {
                let mut path = None;
                let mut descending = false;
                for (k, v) in pairs {
                    match k.as_str() {
                        "field" => path = Some(parse_path(v, &format!("{at}.field"))?),
                        "order" => {
                            descending = match v {
                                Json::Str(s) if s == "asc" => false,
                                Json::Str(s) if s == "desc" => true,
                                _ => {
                                    return Err(invalid(
                                        &format!("{at}.order"),
                                        format!("expected \"asc\" or \"desc\", got {}", describe(v)),
                                    ))
                                }
                            }
                        }
                        _ => {
                            return Err(invalid(
                                &at,
                                format!("unknown field {k:?} (expected \"field\" and \"order\")"),
                            ))
                        }
                    }
                }
                let path = path.ok_or_else(|| invalid(&at, "missing \"field\""))?;
                SortKey { path, descending }
            }
            _ => {
                return Err(invalid(
                    &at,
                    format!("expected {{\"field\": path, \"order\": \"asc\"|\"desc\"}}, got {}", item.kind()),
                ))
            }
        };
        keys.push(key);
    }
    Ok(keys)
}

fn parse_index(v: &Json) -> Result<IndexRange> {
    let Json::Obj(pairs) = v else {
        return Err(invalid("index", format!("expected an object, got {}", v.kind())));
    };
    let mut name = None;
    let mut range = IndexRange { index: String::new(), lo: None, hi: None, reverse: false };
    for (k, v) in pairs {
        let at = format!("index.{k}");
        match k.as_str() {
            "name" => match v {
                Json::Str(s) if !s.is_empty() => name = Some(s.clone()),
                _ => return Err(invalid(&at, format!("expected a non-empty string, got {}", describe(v)))),
            },
            "ge" | "gt" | "le" | "lt" => {
                let lower = k.starts_with('g');
                let slot = if lower { &mut range.lo } else { &mut range.hi };
                if slot.is_some() {
                    let which = if lower { "\"ge\" and \"gt\"" } else { "\"le\" and \"lt\"" };
                    return Err(invalid("index", format!("{which} cannot both be given")));
                }
                let values = match v {
                    Json::Arr(items) if !items.is_empty() => items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| json::to_value(item, &format!("{at}[{i}]")))
                        .collect::<Result<Vec<_>>>()?,
                    _ => {
                        return Err(invalid(
                            &at,
                            format!(
                                "expected a non-empty array of key values (a tuple, e.g. [500]), got {}",
                                describe(v)
                            ),
                        ))
                    }
                };
                *slot = Some(IndexBound { values, inclusive: k.ends_with('e') });
            }
            "reverse" => match v {
                Json::Bool(b) => range.reverse = *b,
                _ => return Err(invalid(&at, format!("expected true or false, got {}", describe(v)))),
            },
            _ => {
                return Err(invalid(
                    "index",
                    format!("unknown field {k:?} (expected name, ge, gt, le, lt, reverse)"),
                ))
            }
        }
    }
    range.index = name.ok_or_else(|| invalid("index", "missing \"name\" (a non-empty string)"))?;
    Ok(range)
}

fn parse_path(v: &Json, at: &str) -> Result<FieldPath> {
    match v {
        Json::Str(s) => FieldPath::parse(s).map_err(|e| match e {
            Error::InvalidArgument(m) => invalid(at, m),
            other => invalid(at, other),
        }),
        _ => Err(invalid(at, format!("expected a field path string, got {}", describe(v)))),
    }
}

/// The argument of a two-operand operator: `[path, operand]`.
fn pair<'a>(arg: &'a Json, at: &str, shape: &str) -> Result<(FieldPath, &'a Json)> {
    match arg {
        Json::Arr(items) if items.len() == 2 => Ok((parse_path(&items[0], &format!("{at}[0]"))?, &items[1])),
        Json::Arr(items) => {
            Err(invalid(at, format!("expected {shape}, got an array of {} element(s)", items.len())))
        }
        _ => Err(invalid(at, format!("expected {shape}, got {}", arg.kind()))),
    }
}

fn parse_filter(j: &Json, at: &str) -> Result<Filter> {
    let pairs = match j {
        Json::Bool(true) => return Ok(Filter::True),
        Json::Bool(false) => return Ok(Filter::Not(Box::new(Filter::True))),
        Json::Obj(pairs) => pairs,
        _ => {
            return Err(invalid(
                at,
                format!("expected a filter object such as {{\"eq\": [path, value]}}, got {}", j.kind()),
            ))
        }
    };
    let [(op, arg)] = pairs.as_slice() else {
        return Err(invalid(
            at,
            format!("a filter object has exactly one operator key, got {}", pairs.len()),
        ));
    };
    let here = format!("{at}.{op}");
    let cmp = |make: fn(FieldPath, Value) -> Filter| -> Result<Filter> {
        let (path, operand) = pair(arg, &here, "[path, value]")?;
        Ok(make(path, json::to_value(operand, &format!("{here}[1]"))?))
    };
    match op.as_str() {
        "eq" => cmp(Filter::Eq),
        "ne" => cmp(Filter::Ne),
        "lt" => cmp(Filter::Lt),
        "le" => cmp(Filter::Le),
        "gt" => cmp(Filter::Gt),
        "ge" => cmp(Filter::Ge),
        "in" => {
            let (path, operand) = pair(arg, &here, "[path, [values...]]")?;
            let Json::Arr(items) = operand else {
                return Err(invalid(&format!("{here}[1]"), format!("expected an array of values, got {}", operand.kind())));
            };
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| json::to_value(item, &format!("{here}[1][{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(Filter::In(path, values))
        }
        "prefix" => {
            let (path, operand) = pair(arg, &here, "[path, string]")?;
            let Json::Str(s) = operand else {
                return Err(invalid(&format!("{here}[1]"), format!("expected a string, got {}", operand.kind())));
            };
            Ok(Filter::Prefix(path, s.clone()))
        }
        "exists" => match arg {
            Json::Str(_) => Ok(Filter::Exists(parse_path(arg, &here)?, true)),
            _ => {
                let (path, operand) = pair(arg, &here, "a path or [path, true|false]")?;
                let Json::Bool(b) = operand else {
                    return Err(invalid(&format!("{here}[1]"), format!("expected true or false, got {}", operand.kind())));
                };
                Ok(Filter::Exists(path, *b))
            }
        },
        "and" | "or" => {
            let Json::Arr(items) = arg else {
                return Err(invalid(&here, format!("expected an array of filters, got {}", arg.kind())));
            };
            let fs = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_filter(item, &format!("{here}[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(if op == "and" { Filter::And(fs) } else { Filter::Or(fs) })
        }
        "not" => Ok(Filter::Not(Box::new(parse_filter(arg, &here)?))),
        _ => Err(invalid(
            at,
            format!(
                "unknown operator {op:?} (expected one of: eq, ne, lt, le, gt, ge, in, prefix, exists, and, or, not)"
            ),
        )),
    }
}

// ---------------------------------------------------------------- writing

fn write_values(vals: &[Value], out: &mut String) {
    out.push('[');
    for (i, v) in vals.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_value(v, out);
    }
    out.push(']');
}

/// Writes `{"name":[path,operand]}`.
fn write_op2(out: &mut String, name: &str, p: &FieldPath, write_operand: impl FnOnce(&mut String)) {
    let _ = write!(out, "{{\"{name}\":[");
    json::write_str(&p.to_string(), out);
    out.push(',');
    write_operand(out);
    out.push_str("]}");
}

fn write_filter(f: &Filter, out: &mut String) {
    // An explicit stack of what is left to write, not recursion: a filter
    // built in Rust can nest deeper than a thread's stack would allow.
    enum Step<'f> {
        Filter(&'f Filter),
        Text(&'static str),
    }
    let mut todo = vec![Step::Filter(f)];
    while let Some(step) = todo.pop() {
        let f = match step {
            Step::Text(t) => {
                out.push_str(t);
                continue;
            }
            Step::Filter(f) => f,
        };
        match f {
            Filter::True => out.push_str("true"),
            Filter::Eq(p, v) => write_op2(out, "eq", p, |o| json::write_value(v, o)),
            Filter::Ne(p, v) => write_op2(out, "ne", p, |o| json::write_value(v, o)),
            Filter::Lt(p, v) => write_op2(out, "lt", p, |o| json::write_value(v, o)),
            Filter::Le(p, v) => write_op2(out, "le", p, |o| json::write_value(v, o)),
            Filter::Gt(p, v) => write_op2(out, "gt", p, |o| json::write_value(v, o)),
            Filter::Ge(p, v) => write_op2(out, "ge", p, |o| json::write_value(v, o)),
            Filter::In(p, vs) => write_op2(out, "in", p, |o| write_values(vs, o)),
            Filter::Prefix(p, s) => write_op2(out, "prefix", p, |o| json::write_str(s, o)),
            Filter::Exists(p, true) => {
                out.push_str("{\"exists\":");
                json::write_str(&p.to_string(), out);
                out.push('}');
            }
            Filter::Exists(p, false) => write_op2(out, "exists", p, |o| o.push_str("false")),
            Filter::And(fs) | Filter::Or(fs) => {
                out.push_str(if matches!(f, Filter::And(_)) { "{\"and\":[" } else { "{\"or\":[" });
                todo.push(Step::Text("]}"));
                for (i, sub) in fs.iter().enumerate().rev() {
                    todo.push(Step::Filter(sub));
                    if i > 0 {
                        todo.push(Step::Text(","));
                    }
                }
            }
            Filter::Not(sub) => {
                out.push_str("{\"not\":");
                todo.push(Step::Text("}"));
                todo.push(Step::Filter(sub));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::order::values_equal;
    use crate::index::arb_value::{arb_value, scalar_value};
    use crate::index::key_encoding::{encode_composite, index_entry_key};
    use proptest::prelude::*;
    use std::ops::RangeBounds;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }
    fn s(x: &str) -> Value {
        Value::Str(x.to_string())
    }

    /// Structural equality with values compared under the value order (so
    /// NaN equals NaN and UInt(5) equals Int(5)).
    fn same(a: &Filter, b: &Filter) -> bool {
        use Filter::*;
        let vs =
            |x: &[Value], y: &[Value]| x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b));
        match (a, b) {
            (True, True) => true,
            (Eq(p, v), Eq(q, w))
            | (Ne(p, v), Ne(q, w))
            | (Lt(p, v), Lt(q, w))
            | (Le(p, v), Le(q, w))
            | (Gt(p, v), Gt(q, w))
            | (Ge(p, v), Ge(q, w)) => p == q && values_equal(v, w),
            (In(p, v), In(q, w)) => p == q && vs(v, w),
            (Prefix(p, x), Prefix(q, y)) => p == q && x == y,
            (Exists(p, x), Exists(q, y)) => p == q && x == y,
            (And(x), And(y)) | (Or(x), Or(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Not(x), Not(y)) => same(x, y),
            _ => false,
        }
    }

    fn err(text: &str) -> String {
        match QuerySpec::from_json(text) {
            Err(Error::InvalidArgument(m)) => m,
            Err(other) => panic!("{text}: wrong error kind {other:?}"),
            Ok(spec) => panic!("{text}: parsed as {spec:?}"),
        }
    }

    #[test]
    fn parses_the_documented_example() {
        let spec = QuerySpec::from_json(
            r#"{"collection":"orders","filter":{"and":[{"eq":["status","shipped"]},{"gt":["total",500]}]},
                "sort":[{"field":"total","order":"desc"}],"limit":10,"offset":0}"#,
        )
        .unwrap();
        let want = QuerySpec {
            filter: Filter::And(vec![
                Filter::Eq(p("status"), s("shipped")),
                Filter::Gt(p("total"), Value::Int(500)),
            ]),
            sort: vec![SortKey { path: p("total"), descending: true }],
            limit: Some(10),
            ..QuerySpec::new("orders")
        };
        assert_eq!(spec, want);
        assert_eq!(
            spec.to_json(),
            r#"{"collection":"orders","filter":{"and":[{"eq":["status","shipped"]},{"gt":["total",500]}]},"sort":[{"field":"total","order":"desc"}],"limit":10}"#
        );
    }

    /// Every complete example in docs/query-json.md parses, and every error
    /// message quoted there is the one produced.
    #[test]
    fn documented_examples() {
        let doc = include_str!("../../../docs/query-json.md");
        let mut n = 0;
        for block in doc.split("```json").skip(1) {
            let text = block.split("```").next().unwrap_or("").trim();
            if text.starts_with('{') {
                let spec = QuerySpec::from_json(text).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(QuerySpec::from_json(&spec.to_json()).unwrap(), spec);
                n += 1;
            }
        }
        assert!(n >= 5, "found {n} examples");
        assert!(doc.contains(
            &Error::invalid(err(r#"{"collection":"c","filter":{"and":[true,{"gtt":[]}]}}"#)).to_string()
        ));
        assert!(doc.contains(&Error::invalid(err(r#"{"collection":"c","filter":{"eq":["a"]}}"#)).to_string()));
        assert!(doc.contains(&Error::invalid(err(r#"{"collection":"c","limit":-1}"#)).to_string()));
        assert!(doc.contains(
            &Error::invalid(err(r#"{"collection":"c","sort":[{"field":"a","order":"up"}]}"#)).to_string()
        ));
        let dup = Error::invalid(err(r#"{"collection":"c","collection":"d"}"#)).to_string();
        assert!(doc.contains(&dup), "{dup}");
    }

    #[test]
    fn every_operator_parses() {
        use Filter::*;
        let cases: Vec<(&str, Filter)> = vec![
            (r#"{"eq":["a",1]}"#, Eq(p("a"), Value::Int(1))),
            (r#"{"ne":["a","x"]}"#, Ne(p("a"), s("x"))),
            (r#"{"lt":["a.b",1.5]}"#, Lt(p("a.b"), Value::Float(1.5))),
            (r#"{"le":["a",null]}"#, Le(p("a"), Value::Null)),
            (
                r#"{"gt":["a",{"$ts":5,"$tz":-3600}]}"#,
                Gt(
                    p("a"),
                    Value::Timestamp(crate::doc::value::Timestamp { micros: 5, offset_secs: Some(-3600) }),
                ),
            ),
            (r#"{"ge":["a",[1,"x"]]}"#, Ge(p("a"), Value::List(vec![Value::Int(1), s("x")]))),
            (r#"{"in":["a",[1,{"$bytes":"AA=="}]]}"#, In(p("a"), vec![Value::Int(1), Value::Bytes(vec![0])])),
            (r#"{"in":["a",[]]}"#, In(p("a"), vec![])),
            (r#"{"prefix":["a","ab"]}"#, Prefix(p("a"), "ab".into())),
            (r#"{"exists":"a.0"}"#, Exists(p("a.0"), true)),
            (r#"{"exists":["a",false]}"#, Exists(p("a"), false)),
            (r#"{"exists":["a",true]}"#, Exists(p("a"), true)),
            (r#"{"and":[]}"#, And(vec![])),
            (r#"{"or":[true,false]}"#, Or(vec![True, Not(Box::new(True))])),
            (
                r#"{"not":{"eq":["a",{"$f64":"inf"}]}}"#,
                Not(Box::new(Eq(p("a"), Value::Float(f64::INFINITY)))),
            ),
            ("true", True),
            ("null", True),
        ];
        for (text, want) in cases {
            let f = Filter::from_json(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(same(&f, &want), "{text}: {f:?}");
            let back = Filter::from_json(&f.to_json()).unwrap();
            assert!(same(&back, &f), "{text} -> {}", f.to_json());
        }
        for text in [
            r#"{"collection":"c"}"#,
            r#"{"collection":"c","filter":null}"#,
            r#"{"collection":"c","filter":true}"#,
        ] {
            assert_eq!(QuerySpec::from_json(text).unwrap().filter, True);
        }
    }

    #[test]
    fn full_spec_roundtrip() {
        let spec = QuerySpec {
            collection: "or\"ders".into(),
            filter: Filter::Or(vec![
                Filter::Prefix(p("name"), "Jo\n".into()),
                Filter::Not(Box::new(Filter::Exists(p("deleted"), true))),
                Filter::Exists(p("x.1.y"), false),
            ]),
            sort: vec![
                SortKey { path: p("a.b"), descending: false },
                SortKey { path: p("c"), descending: true },
            ],
            limit: Some(0),
            offset: 7,
            sort_buffer_limit: Some(u64::MAX),
            count_only: true,
            index: Some(IndexRange {
                index: "by_status_total".into(),
                lo: Some(IndexBound { values: vec![s("shipped"), Value::Int(500)], inclusive: false }),
                hi: Some(IndexBound { values: vec![s("shipped")], inclusive: true }),
                reverse: true,
            }),
            after_id: None,
        };
        let text = spec.to_json();
        assert_eq!(QuerySpec::from_json(&text).unwrap(), spec, "{text}");
        // (after_id reads in id order, without an index.)
        let spec = QuerySpec { index: None, after_id: Some(41), ..spec };
        let text = spec.to_json();
        assert_eq!(QuerySpec::from_json(&text).unwrap(), spec, "{text}");
        // Sort keys written as bare strings are ascending.
        let q = QuerySpec::from_json(r#"{"collection":"c","sort":["a",{"field":"b"}]}"#).unwrap();
        assert_eq!(
            q.sort,
            vec![SortKey { path: p("a"), descending: false }, SortKey { path: p("b"), descending: false }]
        );
    }

    #[test]
    fn malformed_inputs_say_what_and_where() {
        let cases: &[(&str, &str)] = &[
            ("", "query JSON"),
            ("{", "query JSON"),
            ("[1]", "query: expected a JSON object, got an array"),
            (r#"{"collection":"c"} x"#, "query JSON: trailing characters"),
            (r#"{}"#, "missing field \"collection\""),
            (r#"{"collection":""}"#, "collection: expected a non-empty string"),
            (r#"{"collection":"c","fitler":true}"#, "query: unknown field \"fitler\""),
            (r#"{"collection":"c","collection":"d"}"#, "duplicate key \"collection\""),
            (
                r#"{"collection":"c","filter":{"and":[{"eq":["a",1]},{"gtt":["b",2]}]}}"#,
                "filter.and[1]: unknown operator \"gtt\"",
            ),
            (
                r#"{"collection":"c","filter":{"eq":["a"]}}"#,
                "filter.eq: expected [path, value], got an array of 1 element(s)",
            ),
            (r#"{"collection":"c","filter":{"eq":["a",1,2]}}"#, "filter.eq: expected [path, value]"),
            (r#"{"collection":"c","filter":{"eq":"a"}}"#, "filter.eq: expected [path, value], got a string"),
            (r#"{"collection":"c","filter":{"eq":["a..b",1]}}"#, "filter.eq[0]: invalid field path \"a..b\""),
            (r#"{"collection":"c","filter":{"eq":[".a",1]}}"#, "filter.eq[0]: invalid field path"),
            (r#"{"collection":"c","filter":{"eq":["",1]}}"#, "filter.eq[0]: invalid field path"),
            (
                r#"{"collection":"c","filter":{"eq":[5,1]}}"#,
                "filter.eq[0]: expected a field path string, got 5",
            ),
            (
                r#"{"collection":"c","filter":{"eq":["a",1],"ne":["a",2]}}"#,
                "filter: a filter object has exactly one operator key, got 2",
            ),
            (
                r#"{"collection":"c","filter":{}}"#,
                "filter: a filter object has exactly one operator key, got 0",
            ),
            (r#"{"collection":"c","filter":5}"#, "filter: expected a filter object"),
            (
                r#"{"collection":"c","filter":{"not":[{"eq":["a",1]}]}}"#,
                "filter.not: expected a filter object",
            ),
            (
                r#"{"collection":"c","filter":{"in":["a",1]}}"#,
                "filter.in[1]: expected an array of values, got a number",
            ),
            (r#"{"collection":"c","filter":{"prefix":["a",1]}}"#, "filter.prefix[1]: expected a string"),
            (
                r#"{"collection":"c","filter":{"exists":["a","no"]}}"#,
                "filter.exists[1]: expected true or false",
            ),
            (
                r#"{"collection":"c","filter":{"exists":5}}"#,
                "filter.exists: expected a path or [path, true|false]",
            ),
            (
                r#"{"collection":"c","filter":{"or":{"eq":["a",1]}}}"#,
                "filter.or: expected an array of filters",
            ),
            (
                r#"{"collection":"c","filter":{"or":[{"eq":["a",{"$bytes":"!"}]}]}}"#,
                "filter.or[0].eq[1]: \"$bytes\": invalid base64",
            ),
            (
                r#"{"collection":"c","filter":{"in":["a",[1,{"$ts":"x"}]]}}"#,
                "filter.in[1][1]: \"$ts\" expects an integer",
            ),
            (
                r#"{"collection":"c","filter":{"eq":["a",{"k":{"$f64":"big"}}]}}"#,
                "filter.eq[1].k: \"$f64\" expects",
            ),
            (r#"{"collection":"c","limit":-1}"#, "limit: expected a non-negative integer, got -1"),
            (r#"{"collection":"c","limit":1.5}"#, "limit: expected a non-negative integer, got 1.5"),
            (r#"{"collection":"c","limit":"10"}"#, "limit: expected a non-negative integer, got \"10\""),
            (r#"{"collection":"c","offset":true}"#, "offset: expected a non-negative integer, got true"),
            (
                r#"{"collection":"c","sort_buffer_limit":[]}"#,
                "sort_buffer_limit: expected a non-negative integer, got an array",
            ),
            (r#"{"collection":"c","count_only":1}"#, "count_only: expected true or false"),
            (r#"{"collection":"c","sort":{"field":"a"}}"#, "sort: expected an array of sort keys"),
            (
                r#"{"collection":"c","sort":[{"field":"a","order":"up"}]}"#,
                "sort[0].order: expected \"asc\" or \"desc\", got \"up\"",
            ),
            (r#"{"collection":"c","sort":["a",{"order":"asc"}]}"#, "sort[1]: missing \"field\""),
            (r#"{"collection":"c","sort":[{"field":"a","dir":"asc"}]}"#, "sort[0]: unknown field \"dir\""),
            (r#"{"collection":"c","sort":["a.."]}"#, "sort[0]: invalid field path"),
            (r#"{"collection":"c","sort":[5]}"#, "sort[0]: expected {\"field\": path"),
            (r#"{"collection":"c","index":"ix"}"#, "index: expected an object, got a string"),
            (r#"{"collection":"c","index":{"ge":[1]}}"#, "index: missing \"name\""),
            (
                r#"{"collection":"c","index":{"name":"ix","ge":[1],"gt":[2]}}"#,
                "index: \"ge\" and \"gt\" cannot both be given",
            ),
            (
                r#"{"collection":"c","index":{"name":"ix","lt":1}}"#,
                "index.lt: expected a non-empty array of key values",
            ),
            (r#"{"collection":"c","index":{"name":"ix","lt":[]}}"#, "index.lt: expected a non-empty array"),
            (
                r#"{"collection":"c","index":{"name":"ix","le":[{"$f64":0}]}}"#,
                "index.le[0]: \"$f64\" expects",
            ),
            (
                r#"{"collection":"c","index":{"name":"ix","reverse":"yes"}}"#,
                "index.reverse: expected true or false",
            ),
            (r#"{"collection":"c","index":{"name":"ix","from":[1]}}"#, "index: unknown field \"from\""),
        ];
        for (text, want) in cases {
            let m = err(text);
            assert!(m.contains(want), "{text}\n  got:  {m}\n  want: {want}");
        }
    }

    #[test]
    fn nesting_limit() {
        let mut f = String::from(r#"{"eq":["a",1]}"#);
        for _ in 0..130 {
            f = format!(r#"{{"not":{f}}}"#);
        }
        let m = err(&format!(r#"{{"collection":"c","filter":{f}}}"#));
        assert!(m.contains("nesting deeper than 128"), "{m}");
        let mut f = String::from(r#"{"eq":["a",1]}"#);
        for _ in 0..60 {
            f = format!(r#"{{"and":[{f}]}}"#);
        }
        assert!(QuerySpec::from_json(&format!(r#"{{"collection":"c","filter":{f}}}"#)).is_ok());
    }

    #[test]
    fn key_range_bounds() {
        let range = |lo: Option<(Vec<Value>, bool)>, hi: Option<(Vec<Value>, bool)>| IndexRange {
            index: "ix".into(),
            lo: lo.map(|(values, inclusive)| IndexBound { values, inclusive }),
            hi: hi.map(|(values, inclusive)| IndexBound { values, inclusive }),
            reverse: false,
        };
        let entry =
            |a: &str, b: i64, id: u64| index_entry_key(&encode_composite(&[&s(a), &Value::Int(b)]), id);
        let within = |r: &IndexRange, k: &[u8]| {
            let Some((lo, hi)) = r.key_range().unwrap() else { return false };
            (lo, hi).contains(&k.to_vec())
        };
        let keys = [
            entry("a", 1, 9),
            entry("b", -5, 0),
            entry("b", 0, u64::MAX),
            entry("b", 7, 1),
            entry("c", 0, 0),
        ];
        let pick = |r: &IndexRange| keys.iter().map(|k| within(r, k)).collect::<Vec<_>>();
        // status = "b": [ge b, le b]
        assert_eq!(
            pick(&range(Some((vec![s("b")], true)), Some((vec![s("b")], true)))),
            [false, true, true, true, false]
        );
        // status > "b"
        assert_eq!(pick(&range(Some((vec![s("b")], false)), None)), [false, false, false, false, true]);
        // status < "b"
        assert_eq!(pick(&range(None, Some((vec![s("b")], false)))), [true, false, false, false, false]);
        // ("b", 0) <= key < ("c")
        assert_eq!(
            pick(&range(Some((vec![s("b"), Value::Int(0)], true)), Some((vec![s("c")], false)))),
            [false, false, true, true, false]
        );
        // ("b", > 0.5)
        assert_eq!(
            pick(&range(Some((vec![s("b"), Value::Float(0.5)], false)), Some((vec![s("b")], true)))),
            [false, false, false, true, false]
        );
        assert_eq!(pick(&range(None, None)), [true; 5]);
        // A strict lower bound over the empty tuple is empty.
        assert!(range(Some((vec![], false)), None).key_range().unwrap().is_none());
    }

    #[test]
    fn sort_order() {
        let d = |v: Option<Value>| Value::Map(v.into_iter().map(|v| ("k".to_string(), v)).collect());
        let mut docs = vec![
            d(Some(Value::Int(2))),
            d(None),
            d(Some(s("a"))),
            d(Some(Value::Null)),
            d(Some(Value::Float(1.5))),
        ];
        let mut q = QuerySpec::new("c");
        q.sort = vec![SortKey { path: p("k"), descending: false }];
        docs.sort_by(|a, b| q.compare_for_sort(a, b));
        assert_eq!(
            docs,
            vec![
                d(None),
                d(Some(Value::Null)),
                d(Some(Value::Float(1.5))),
                d(Some(Value::Int(2))),
                d(Some(s("a")))
            ]
        );
        q.sort[0].descending = true;
        docs.sort_by(|a, b| q.compare_for_sort(a, b));
        assert_eq!(docs[0], d(Some(s("a"))));
        assert_eq!(docs[4], d(None));
        assert_eq!(QuerySpec::new("c").compare_for_sort(&docs[0], &docs[1]), Ordering::Equal);
    }

    // ------------------------------------------------------------ properties

    fn arb_path() -> impl Strategy<Value = FieldPath> {
        proptest::collection::vec("[a-z0-9_$\"\\\\\\x00é]{1,4}", 1..4)
            .prop_map(|segs| FieldPath::from_segments(segs).unwrap())
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        let leaf = prop_oneof![
            Just(Filter::True),
            (arb_path(), arb_value()).prop_map(|(p, v)| Filter::Eq(p, v)),
            (arb_path(), arb_value()).prop_map(|(p, v)| Filter::Ne(p, v)),
            (arb_path(), scalar_value()).prop_map(|(p, v)| Filter::Lt(p, v)),
            (arb_path(), scalar_value()).prop_map(|(p, v)| Filter::Le(p, v)),
            (arb_path(), scalar_value()).prop_map(|(p, v)| Filter::Gt(p, v)),
            (arb_path(), scalar_value()).prop_map(|(p, v)| Filter::Ge(p, v)),
            (arb_path(), proptest::collection::vec(scalar_value(), 0..3)).prop_map(|(p, v)| Filter::In(p, v)),
            (arb_path(), "\\PC{0,4}").prop_map(|(p, s)| Filter::Prefix(p, s)),
            (arb_path(), any::<bool>()).prop_map(|(p, b)| Filter::Exists(p, b)),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Filter::And),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Filter::Or),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    fn arb_bound() -> impl Strategy<Value = Option<IndexBound>> {
        proptest::option::of(
            (proptest::collection::vec(arb_value(), 1..3), any::<bool>())
                .prop_map(|(values, inclusive)| IndexBound { values, inclusive }),
        )
    }

    fn arb_spec() -> impl Strategy<Value = QuerySpec> {
        (
            "\\PC{1,8}",
            arb_filter(),
            proptest::collection::vec((arb_path(), any::<bool>()), 0..3),
            (any::<Option<u64>>(), any::<u64>(), any::<Option<u64>>(), any::<bool>()),
            proptest::option::of(("[a-z_]{1,8}", arb_bound(), arb_bound(), any::<bool>())),
        )
            .prop_map(
                |(collection, filter, sort, (limit, offset, sort_buffer_limit, count_only), index)| {
                    QuerySpec {
                        collection,
                        filter,
                        sort: sort
                            .into_iter()
                            .map(|(path, descending)| SortKey { path, descending })
                            .collect(),
                        limit,
                        offset,
                        sort_buffer_limit,
                        count_only,
                        index: index.map(|(index, lo, hi, reverse)| IndexRange { index, lo, hi, reverse }),
                        after_id: None,
                    }
                },
            )
    }

    /// A JSON text built from query vocabulary, valid or not, to reach deep
    /// into the parser.
    fn arb_query_json() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("-1".to_string()),
            Just("1.5".to_string()),
            Just("18446744073709551615".to_string()),
            Just("\"a.b\"".to_string()),
            Just("\"..\"".to_string()),
            Just("\"\"".to_string()),
            Just(r#"{"$bytes":"AA=="}"#.to_string()),
            Just(r#"{"$ts":1,"$tz":2}"#.to_string()),
            Just(r#"{"$f64":"nan"}"#.to_string()),
            Just(r#"{"$map":{}}"#.to_string()),
        ];
        let keys = prop_oneof![
            Just("eq"),
            Just("ne"),
            Just("lt"),
            Just("in"),
            Just("prefix"),
            Just("exists"),
            Just("and"),
            Just("or"),
            Just("not"),
            Just("collection"),
            Just("filter"),
            Just("sort"),
            Just("limit"),
            Just("index"),
            Just("name"),
            Just("ge"),
            Just("field"),
            Just("order"),
            Just("$ts"),
            Just("x"),
        ];
        atom.prop_recursive(6, 64, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((keys.clone(), inner), 0..3).prop_map(|v| {
                    let body: Vec<String> = v.into_iter().map(|(k, x)| format!("\"{k}\":{x}")).collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn spec_json_roundtrip(spec in arb_spec()) {
            let text = spec.to_json();
            let back = QuerySpec::from_json(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            prop_assert!(same(&back.filter, &spec.filter), "{}", text);
            prop_assert_eq!(back.to_json(), text);
            prop_assert_eq!(&back.collection, &spec.collection);
            prop_assert_eq!(&back.sort, &spec.sort);
            prop_assert_eq!((back.limit, back.offset, back.sort_buffer_limit, back.count_only),
                (spec.limit, spec.offset, spec.sort_buffer_limit, spec.count_only));
            prop_assert_eq!(back.index.as_ref().map(|i| &i.index), spec.index.as_ref().map(|i| &i.index));
        }

        #[test]
        fn filter_json_roundtrip_preserves_meaning(f in arb_filter(), doc in arb_value()) {
            let back = Filter::from_json(&f.to_json()).unwrap();
            prop_assert!(same(&back, &f));
            prop_assert_eq!(back.eval(&doc), f.eval(&doc));
        }

        #[test]
        fn random_text_never_panics(text in "\\PC{0,64}") {
            let _ = QuerySpec::from_json(&text);
            let _ = Filter::from_json(&text);
        }

        #[test]
        fn random_query_shaped_json_never_panics(body in arb_query_json(), wrap in any::<bool>()) {
            let text = if wrap { format!(r#"{{"collection":"c","filter":{body}}}"#) } else { body };
            match QuerySpec::from_json(&text) {
                Ok(spec) => {
                    let again = QuerySpec::from_json(&spec.to_json()).unwrap();
                    prop_assert_eq!(again.to_json(), spec.to_json());
                }
                Err(e) => prop_assert!(matches!(e, Error::InvalidArgument(_)), "{}", e),
            }
            if let Ok(f) = Filter::from_json(&text) {
                let _ = f.eval(&Value::Null);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = QuerySpec::from_json(text);
            }
        }

        #[test]
        fn eval_never_panics_and_not_inverts(f in arb_filter(), doc in arb_value()) {
            prop_assert_eq!(Filter::Not(Box::new(f.clone())).eval(&doc), !f.eval(&doc));
        }
    }
}

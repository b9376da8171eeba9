//! Query execution: a streaming cursor over a plan's documents.
//!
//! Unsorted queries hold one document at a time (plus the B+tree cursor),
//! whatever the collection size. A sort that no index serves collects
//! matching documents in a buffer of at most `sort_buffer_limit` documents
//! (default [`MAX_SORT_BUFFER`]); with a `limit` the buffer keeps only the
//! best `offset + limit`, otherwise a query that needs more is an
//! `InvalidArgument` error rather than unbounded memory.
//!
//! A scan evaluates the filter on a partial decode of each document: only
//! the top-level fields the filter reads (`codec::find_value` steps over the
//! rest), and decodes the whole document only when it matches. An index
//! scan may meet one document several times (once per matching entry: list
//! fields, `in` lists); it is returned only at its first entry in scan
//! order, found by recomputing the document's entries, so no set of seen
//! ids is kept.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::Bound;

use serde::de::DeserializeOwned;

use crate::doc::codec::{decode_header, decode_value, encoded_str, find_value, tag, NameLookup, PathStep};
use crate::doc::collection::{decode_stored, id_key, CollState};
use crate::doc::json::{write_json, write_raw_json, write_stored_json};
use crate::doc::serde_encoded::from_encoded;
use crate::doc::serde_value::from_value;
use crate::doc::value::Value;
use crate::error::{Error, Result};
use crate::index::secondary::{doc_index_keys, parse_entry, IndexKind};
use crate::query::expr::{FieldPath, FieldRef, Filter};
use crate::query::plan::{plan, Access, Plan};
use crate::query::spec::{KeyRange, QuerySpec};
use crate::txn::{RangeIter, ReadableTxn, Tree};

/// The default most documents a sort may hold in memory.
pub const MAX_SORT_BUFFER: u64 = 100_000;

enum Source<'a, T: ReadableTxn> {
    Scan(RangeIter<'a, T::Pages>),
    Index {
        tree: Tree,
        kind: IndexKind,
        ranges: Vec<KeyRange>,
        reverse: bool,
        /// Next range to open (counting in scan direction).
        next_range: usize,
        current: Option<RangeIter<'a, T::Pages>>,
    },
}

/// One result: document id, schema version, document.
type Hit = (u64, u32, Value);

/// A result as the source produced it: still encoded (unsorted queries)
/// or decoded already (an in-memory sort needed the document).
enum Found {
    Stored(u64, Vec<u8>),
    Decoded(u64, u32, Value),
}

/// A streaming query result: yields `(id, document)` pairs. For a raw
/// collection the document is its payload as [`Value::Bytes`]. It borrows
/// the transaction, and the collection handle it came from unless it was
/// made by [`Collection::into_query`](crate::Collection::into_query).
pub struct QueryCursor<'a, T: ReadableTxn> {
    txn: &'a T,
    st: Cow<'a, CollState>,
    filter: Filter,
    /// Top-level fields the filter reads: (name, step).
    filter_fields: Vec<(String, PathStep)>,
    /// Top-level fields the index's fields read.
    index_fields: Vec<(String, PathStep)>,
    plan: Plan,
    source: Source<'a, T>,
    spec: QuerySpec,
    sorted: Option<std::vec::IntoIter<Hit>>,
    to_skip: u64,
    remaining: Option<u64>,
    failed: bool,
}

impl<'a, T: ReadableTxn> std::fmt::Debug for QueryCursor<'a, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryCursor({})", self.plan.describe())
    }
}

impl<'a, T: ReadableTxn> QueryCursor<'a, T> {
    pub(crate) fn new(txn: &'a T, st: Cow<'a, CollState>, spec: &QuerySpec) -> Result<Self> {
        let plan = plan(&st, spec)?;
        let source = match &plan.access {
            Access::Scan => Source::Scan(txn.range(&st.docs, Bound::Unbounded, Bound::Unbounded, false)?),
            Access::Index { name, kind, ranges, reverse, .. } => Source::Index {
                tree: st.index_tree_of(txn, name)?,
                kind: *kind,
                ranges: ranges.clone(),
                reverse: *reverse,
                next_range: 0,
                current: None,
            },
        };
        let mut filter_fields: Vec<(String, PathStep)> = Vec::new();
        let add = |fields: &mut Vec<(String, PathStep)>, p: &FieldPath| {
            let seg = &p.segments()[0];
            if !fields.iter().any(|(s, _)| s == seg) {
                fields.push((seg.clone(), PathStep { field: st.dict.lookup_id(seg), index: None }));
            }
        };
        for p in spec.filter.paths() {
            add(&mut filter_fields, p);
        }
        let mut index_fields = Vec::new();
        if let Access::Index { fields, .. } = &plan.access {
            for p in fields {
                add(&mut index_fields, p);
            }
        }
        Ok(QueryCursor {
            txn,
            st,
            filter: spec.filter.clone(),
            filter_fields,
            index_fields,
            plan,
            source,
            spec: spec.clone(),
            sorted: None,
            to_skip: spec.offset,
            remaining: spec.limit,
            failed: false,
        })
    }

    /// The plan this cursor runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The top-level fields of a stored document that `fields` name, as a
    /// map (in `fields` order); `None` for a RAW document. Filters and
    /// index keys read only under their paths' first segments, so they give
    /// the same answer on this partial document as on the whole one.
    fn partial(&self, bytes: &[u8], fields: &[(String, PathStep)]) -> Result<Option<Value>> {
        let (header, payload) = decode_header(bytes)?;
        if header.is_raw() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(fields.len());
        for (name, step) in fields {
            if let Some(enc) = find_value(payload, std::slice::from_ref(step))? {
                out.push((name.clone(), decode_value(enc, &self.st.dict)?));
            }
        }
        Ok(Some(Value::Map(out)))
    }

    /// Does the stored document match the filter? Reads only the fields
    /// the filter names, in place.
    fn matches_stored(&self, bytes: &[u8]) -> Result<bool> {
        if self.filter == Filter::True {
            return Ok(true);
        }
        let (header, payload) = decode_header(bytes)?;
        if header.is_raw() {
            return Ok(false);
        }
        self.eval_stored(&self.filter, payload)
    }

    /// [`Filter::eval`] on a stored document's payload: each leaf finds its
    /// top-level field in the encoding; strings compare where they lie and
    /// other scalars decode without allocating, so most documents that do
    /// not match cost no allocation at all.
    fn eval_stored(&self, filter: &Filter, payload: &[u8]) -> Result<bool> {
        match filter {
            Filter::True => Ok(true),
            Filter::And(fs) => {
                for f in fs {
                    if !self.eval_stored(f, payload)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Filter::Or(fs) => {
                for f in fs {
                    if self.eval_stored(f, payload)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Filter::Not(f) => Ok(!self.eval_stored(f, payload)?),
            leaf => {
                let Some(path) = leaf.leaf_path() else { return Ok(leaf.eval(&Value::Map(Vec::new()))) };
                let seg = &path.segments()[0];
                let step = self
                    .filter_fields
                    .iter()
                    .find(|(s, _)| s == seg)
                    .map_or(PathStep { field: None, index: None }, |(_, step)| *step);
                let found = find_value(payload, std::slice::from_ref(&step))?;
                if path.segments().len() > 1 {
                    let mut doc = Vec::new();
                    if let Some(enc) = found {
                        doc.push((seg.clone(), decode_value(enc, &self.st.dict)?));
                    }
                    return Ok(leaf.eval(&Value::Map(doc)));
                }
                let Some(enc) = found else { return Ok(leaf.eval_field(FieldRef::Absent).unwrap_or(false)) };
                if let Some(s) = encoded_str(enc)? {
                    return Ok(leaf.eval_field(FieldRef::Str(s)).unwrap_or(false));
                }
                let v = decode_value(enc, &self.st.dict)?;
                Ok(leaf.eval_field(FieldRef::Value(&v)).unwrap_or(false))
            }
        }
    }

    /// The schema version and the document of stored bytes.
    fn decode(&self, bytes: &[u8]) -> Result<(u32, Value)> {
        if self.st.raw {
            let (header, payload) = decode_header(bytes)?;
            return Ok((header.schema_version, Value::Bytes(payload.to_vec())));
        }
        decode_stored(bytes, &self.st.dict)
    }

    /// The next matching document in source order (before offset/limit),
    /// still encoded: `(id, stored bytes)`.
    fn next_match(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        loop {
            match &mut self.source {
                Source::Scan(it) => {
                    let Some(entry) = it.next() else { return Ok(None) };
                    let (k, bytes) = entry?;
                    let id = u64::from_be_bytes(
                        k.as_slice().try_into().map_err(|_| Error::corruption(None, "bad document key"))?,
                    );
                    if self.matches_stored(&bytes)? {
                        return Ok(Some((id, bytes)));
                    }
                }
                Source::Index { tree, kind, ranges, reverse, next_range, current } => {
                    if current.is_none() {
                        if *next_range >= ranges.len() {
                            return Ok(None);
                        }
                        let i = if *reverse { ranges.len() - 1 - *next_range } else { *next_range };
                        *next_range += 1;
                        let (lo, hi) = &ranges[i];
                        *current = Some(self.txn.range(tree, as_ref(lo), as_ref(hi), *reverse)?);
                    }
                    let it = current.as_mut().expect("opened above");
                    let Some(entry) = it.next() else {
                        *current = None;
                        continue;
                    };
                    let (k, v) = entry?;
                    let (key, id) = parse_entry(*kind, &k, &v)?;
                    let key = key.to_vec();
                    let reverse = *reverse;
                    let Some(bytes) = self.txn.get(&self.st.docs, &id_key(id))? else {
                        return Err(Error::corruption(
                            None,
                            format!("index of {:?} points at missing document {id}", self.st.name),
                        ));
                    };
                    // An index only holds structured documents; a RAW one
                    // here matches nothing (as its full decode would not).
                    if !self.single_entry(&bytes)? {
                        let Some(doc) = self.partial(&bytes, &self.index_fields)? else { continue };
                        if !self.first_entry(&doc, &key, reverse)? {
                            continue;
                        }
                    }
                    if !self.matches_stored(&bytes)? {
                        continue;
                    }
                    return Ok(Some((id, bytes)));
                }
            }
        }
    }

    /// True when the stored document has exactly one entry in the plan's
    /// index (every indexed path is one segment leading to a present
    /// non-list value), so the entry the scan came through is its only one
    /// and [`first_entry`](Self::first_entry) need not be worked out.
    fn single_entry(&self, bytes: &[u8]) -> Result<bool> {
        let Access::Index { fields, .. } = &self.plan.access else { return Ok(true) };
        let (header, payload) = decode_header(bytes)?;
        if header.is_raw() {
            return Ok(false);
        }
        for p in fields {
            let [seg] = p.segments() else { return Ok(false) };
            let Some((_, step)) = self.index_fields.iter().find(|(s, _)| s == seg) else { return Ok(false) };
            match find_value(payload, std::slice::from_ref(step))? {
                Some(enc) if enc.first() != Some(&tag::LIST) => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Is `key` the first of `doc`'s entries inside the plan's ranges in
    /// scan order (so that a document is returned once)?
    fn first_entry(&self, doc: &Value, key: &[u8], reverse: bool) -> Result<bool> {
        let Access::Index { fields, ranges, .. } = &self.plan.access else { return Ok(true) };
        let keys = doc_index_keys(fields, doc)?;
        let inside = |k: &Vec<u8>| ranges.iter().any(|(lo, hi)| in_range(k, lo, hi));
        let first =
            if reverse { keys.iter().rev().find(|k| inside(k)) } else { keys.iter().find(|k| inside(k)) };
        Ok(first.is_some_and(|f| f.as_slice() == key))
    }

    fn fill_sorted(&mut self) -> Result<()> {
        let cap = self.spec.sort_buffer_limit.unwrap_or(MAX_SORT_BUFFER).max(1);
        let keep = self.spec.limit.map(|l| l.saturating_add(self.spec.offset));
        let spec = self.spec.clone();
        let cmp = |a: &Hit, b: &Hit| -> Ordering { spec.compare_for_sort(&a.2, &b.2).then(a.0.cmp(&b.0)) };
        let mut buf: Vec<Hit> = Vec::new();
        while let Some((id, bytes)) = self.next_match()? {
            let (version, doc) = self.decode(&bytes)?;
            buf.push((id, version, doc));
            if buf.len() as u64 > cap {
                match keep {
                    Some(k) if k < cap => {
                        buf.sort_by(cmp);
                        buf.truncate(k as usize);
                    }
                    _ => {
                        return Err(Error::invalid(format!(
                            "the sort needs more than {cap} documents in memory (sort_buffer_limit); \
                             add a limit, narrow the filter or raise sort_buffer_limit"
                        )))
                    }
                }
            }
        }
        buf.sort_by(cmp);
        self.sorted = Some(buf.into_iter());
        Ok(())
    }

    fn next_inner(&mut self) -> Result<Option<Found>> {
        if self.remaining == Some(0) {
            return Ok(None);
        }
        if self.plan.sort_in_memory && self.sorted.is_none() {
            self.fill_sorted()?;
        }
        loop {
            let item = match &mut self.sorted {
                Some(it) => it.next().map(|(id, version, doc)| Found::Decoded(id, version, doc)),
                None => self.next_match()?.map(|(id, bytes)| Found::Stored(id, bytes)),
            };
            let Some(item) = item else { return Ok(None) };
            if self.to_skip > 0 {
                self.to_skip -= 1;
                continue;
            }
            if let Some(r) = &mut self.remaining {
                *r -= 1;
            }
            return Ok(Some(item));
        }
    }

    /// Counts the results (after offset and limit) without sorting or
    /// decoding whole documents.
    pub fn count(mut self) -> Result<u64> {
        let mut n = 0u64;
        while self.remaining != Some(0) {
            if self.next_match()?.is_none() {
                break;
            }
            if self.to_skip > 0 {
                self.to_skip -= 1;
                continue;
            }
            if let Some(r) = &mut self.remaining {
                *r -= 1;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Runs `f` on the next result unless the cursor already failed;
    /// an error ends the cursor.
    fn step<X>(&mut self, f: impl FnOnce(&Self, Found) -> Result<X>) -> Option<Result<X>> {
        if self.failed {
            return None;
        }
        match self.next_inner().and_then(|found| found.map(|x| f(self, x)).transpose()) {
            Ok(x) => x.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    /// The next result with its document's schema version:
    /// `(id, schema_version, document)`. Mixes freely with `next`.
    pub fn next_versioned(&mut self) -> Option<Result<(u64, u32, Value)>> {
        self.step(|c, found| match found {
            Found::Stored(id, bytes) => c.decode(&bytes).map(|(version, doc)| (id, version, doc)),
            Found::Decoded(id, version, doc) => Ok((id, version, doc)),
        })
    }

    /// The next result's document appended to `out` as JSON text (what
    /// [`write_json`](crate::doc::json::write_json) writes for the document
    /// [`next_versioned`](Self::next_versioned) returns), written straight
    /// from the stored encoding when the cursor has not buffered it for a
    /// sort: `(id, schema_version)`. Mixes freely with `next`. On error
    /// `out` is left as it was.
    pub fn next_json(&mut self, out: &mut Vec<u8>) -> Option<Result<(u64, u32)>> {
        self.step(|c, found| match found {
            Found::Stored(id, bytes) if c.st.raw => {
                let (header, payload) = decode_header(&bytes)?;
                write_raw_json(payload, out);
                Ok((id, header.schema_version))
            }
            Found::Stored(id, bytes) => Ok((id, write_stored_json(&bytes, &c.st.dict, out)?)),
            Found::Decoded(id, version, doc) => {
                write_json(&doc, out);
                Ok((id, version))
            }
        })
    }

    /// The next result as a `D`, read straight from the stored encoding
    /// (no intermediate [`Value`]); same result as `from_value` on the
    /// document `next` returns. Mixes freely with `next`.
    pub fn next_as<D: DeserializeOwned>(&mut self) -> Option<Result<(u64, D)>> {
        self.step(|c, found| match found {
            Found::Stored(id, bytes) if !c.st.raw => {
                let (_, payload) = decode_header(&bytes)?;
                Ok((id, from_encoded(payload, &c.st.dict)?))
            }
            Found::Stored(id, bytes) => Ok((id, from_value(c.decode(&bytes)?.1)?)),
            Found::Decoded(id, _, doc) => Ok((id, from_value(doc)?)),
        })
    }
}

impl<'a, T: ReadableTxn> Iterator for QueryCursor<'a, T> {
    type Item = Result<(u64, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_versioned().map(|r| r.map(|(id, _, doc)| (id, doc)))
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    b.as_ref().map(Vec::as_slice)
}

fn in_range(k: &[u8], lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    let above = match lo {
        Bound::Unbounded => true,
        Bound::Included(l) => k >= l.as_slice(),
        Bound::Excluded(l) => k > l.as_slice(),
    };
    let below = match hi {
        Bound::Unbounded => true,
        Bound::Included(h) => k <= h.as_slice(),
        Bound::Excluded(h) => k < h.as_slice(),
    };
    above && below
}

//! Query execution: a streaming cursor over a plan's documents.
//!
//! Unsorted queries hold one document at a time (plus the B+tree cursors),
//! whatever the collection size. A sort that no index serves collects
//! matching documents in a buffer of at most `sort_buffer_limit` documents
//! (default [`MAX_SORT_BUFFER`]); with a `limit` the buffer keeps only the
//! best `offset + limit`, otherwise a query that needs more is an
//! `InvalidArgument` error rather than unbounded memory.
//!
//! Documents are examined where they lie: a scan lends each stored document
//! from the page the B+tree cursor holds ([`Range::next_in`]), the filter is
//! evaluated on that encoding, reading only the top-level fields it names
//! (one lazy walk of the document's map per document, `TopFields`), and a
//! match is decoded (into a [`Value`], a `D` or JSON) from the same bytes,
//! so a document is never copied. An index scan fetches each document by
//! a point lookup ([`get_guard`]), whose descent reads the snapshot's
//! pinned interior pages in place: only the leaf is looked up in the page
//! cache. (Keeping a cursor's path between fetches, for the ids of one
//! key, which come in order, gained nothing measurable over it.)
//!
//! An index scan may meet one document several times (once per matching
//! entry: list fields, `in` lists); it is returned only at its first entry
//! in scan order, found by recomputing the document's entries, so no set of
//! seen ids is kept.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::{Arc, Weak};

use serde::de::DeserializeOwned;

use crate::btree::{get_guard, Cursor, Range};
use crate::doc::codec::{
    decode_header, decode_value, encoded_number, encoded_str_bytes, tag, NameLookup, PathStep, TopFields,
};
use crate::doc::collection::{decode_stored, id_key, in_document, stored_doc, CollState};
use crate::doc::json::{write_json, write_raw_json, write_stored_json};
use crate::doc::serde_encoded::from_encoded;
use crate::doc::serde_value::from_value;
use crate::doc::value::Value;
use crate::error::{Error, PageNo, Result};
use crate::index::secondary::{doc_index_keys, parse_entry, IndexKind};
use crate::parallel::spare_core;
use crate::query::expr::{FieldRef, Filter};
use crate::query::plan::{plan, Access, Plan};
use crate::query::spec::{KeyRange, QuerySpec};
use crate::query::split::{Blocks, Filtering, Helper};
use crate::storage::pager::Snapshot;
use crate::txn::{shared_snapshot, RangeIter, ReadableTxn, Tree};

/// The default most documents a sort may hold in memory.
pub const MAX_SORT_BUFFER: u64 = 100_000;

/// Where a cursor's documents come from. (One per cursor: the sizes of
/// the variants do not add up anywhere.)
#[allow(clippy::large_enum_variant)]
enum Source<'a, T: ReadableTxn> {
    Scan(RangeIter<'a, T::Pages>),
    /// A scan shared with a helper thread (see `query::split`): this
    /// cursor scans the even blocks (`own`: the current one's range, if
    /// open), the helper the odd ones. The helper starts once the cursor
    /// has scanned [`HELPER_AFTER`] documents or its first block
    /// (`pending` until then), so that a caller who takes a few results
    /// and stops pays no thread; without one (no slot free, no thread) the
    /// cursor scans every block itself.
    Shared {
        pages: &'a T::Pages,
        root: PageNo,
        blocks: Blocks,
        /// The block results come from now.
        block: u64,
        own: Option<RangeIter<'a, T::Pages>>,
        helper: Option<Helper>,
        /// Weak: a leaked cursor must not keep the snapshot alive once its
        /// transaction ends.
        pending: Option<(Weak<Snapshot>, Filtering)>,
        /// Documents this cursor has scanned, counted until the helper starts.
        scanned: u32,
    },
    Index(IndexSource<'a, T>),
}

/// The entries of an index within a plan's ranges, in scan order.
struct IndexSource<'a, T: ReadableTxn> {
    tree: Tree,
    kind: IndexKind,
    ranges: Vec<KeyRange>,
    reverse: bool,
    /// Next range to open (counting in scan direction).
    next_range: usize,
    current: Option<RangeIter<'a, T::Pages>>,
    pages: &'a T::Pages,
}

impl<'a, T: ReadableTxn> IndexSource<'a, T> {
    /// Runs `f(value key, document id)` on the entries in turn until it
    /// returns `Some`, and returns that; `None` past the last entry.
    fn find_entry<X>(
        &mut self,
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(&[u8], u64) -> Result<Option<X>>,
    ) -> Result<Option<X>> {
        loop {
            let it = match &mut self.current {
                Some(it) => it,
                None => {
                    if self.next_range >= self.ranges.len() {
                        return Ok(None);
                    }
                    let i =
                        if self.reverse { self.ranges.len() - 1 - self.next_range } else { self.next_range };
                    self.next_range += 1;
                    let (lo, hi) = &self.ranges[i];
                    let range =
                        Range::new(self.pages, self.tree.root(), as_ref(lo), as_ref(hi), self.reverse)?;
                    self.current.insert(range)
                }
            };
            let Some(entry) = it.next_in(scratch) else {
                self.current = None;
                continue;
            };
            let (k, v) = entry?;
            let (key, id) = parse_entry(self.kind, k, v)?;
            if let Some(x) = f(key, id)? {
                return Ok(Some(x));
            }
        }
    }
}

/// One result: document id, schema version, document.
type Hit = (u64, u32, Value);

/// A result as the cursor produced it: still encoded, lent from a page
/// (unsorted queries), or decoded already (an in-memory sort needed the
/// document).
enum Found<'b> {
    Stored(u64, &'b [u8]),
    Decoded(u64, u32, Value),
}

impl Found<'_> {
    fn id(&self) -> u64 {
        match self {
            Found::Stored(id, _) | Found::Decoded(id, _, _) => *id,
        }
    }
}

/// The filter as a stored document is tested against it: each leaf knows
/// which of the cursor's top-level fields its path starts with.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    True,
    And(Vec<Check>),
    Or(Vec<Check>),
    Not(Box<Check>),
    Leaf {
        leaf: Filter,
        /// Position of the path's first segment in the cursor's fields.
        field: usize,
        /// That segment, when the path goes below it (the leaf is then
        /// evaluated on a document holding only this field, decoded).
        nested: Option<String>,
    },
}

/// The distinct top-level fields (first path segments) the filter and the
/// plan's index read, with their steps for this collection's dictionary.
#[derive(Default)]
struct Fields {
    names: Vec<String>,
    steps: Vec<PathStep>,
}

impl Fields {
    fn position(&mut self, seg: &str, st: &CollState) -> usize {
        if let Some(i) = self.names.iter().position(|n| n == seg) {
            return i;
        }
        self.names.push(seg.to_owned());
        self.steps.push(PathStep { field: st.dict.lookup_id(seg), index: None });
        self.names.len() - 1
    }
}

impl Check {
    fn new(f: &Filter, fields: &mut Fields, st: &CollState) -> Check {
        let all = |fs: &[Filter], fields: &mut Fields| fs.iter().map(|f| Check::new(f, fields, st)).collect();
        match f {
            Filter::True => Check::True,
            Filter::And(fs) => Check::And(all(fs, fields)),
            Filter::Or(fs) => Check::Or(all(fs, fields)),
            Filter::Not(f) => Check::Not(Box::new(Check::new(f, fields, st))),
            leaf => match leaf.leaf_path().map(|p| p.segments()) {
                Some([seg, rest @ ..]) => Check::Leaf {
                    leaf: leaf.clone(),
                    field: fields.position(seg, st),
                    nested: (!rest.is_empty()).then(|| seg.clone()),
                },
                // A leaf always has a path of at least one segment; were it
                // not so, the leaf would see an empty document.
                _ => {
                    if leaf.eval(&Value::Map(Vec::new())) {
                        Check::True
                    } else {
                        Check::Not(Box::new(Check::True))
                    }
                }
            },
        }
    }

    /// [`Filter::eval`] on a stored document's payload, whose fields
    /// `doc` locates: strings compare where they lie and other scalars
    /// decode without allocating, so most documents that do not match cost
    /// no allocation at all.
    fn eval(&self, doc: &mut TopFields<'_, '_>, names: &impl NameLookup) -> Result<bool> {
        match self {
            Check::True => Ok(true),
            Check::And(cs) => {
                for c in cs {
                    if !c.eval(doc, names)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Check::Or(cs) => {
                for c in cs {
                    if c.eval(doc, names)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Check::Not(c) => Ok(!c.eval(doc, names)?),
            Check::Leaf { leaf, field, nested } => {
                let found = doc.get(*field)?;
                if let Some(seg) = nested {
                    let mut partial = Vec::new();
                    if let Some(enc) = found {
                        partial.push((seg.clone(), decode_value(enc, names)?));
                    }
                    return Ok(leaf.eval(&Value::Map(partial)));
                }
                let Some(enc) = found else { return Ok(leaf.eval_field(FieldRef::Absent).unwrap_or(false)) };
                if let Some(s) = encoded_str_bytes(enc)? {
                    return Ok(leaf.eval_field(FieldRef::Str(s)).unwrap_or(false));
                }
                let v = match encoded_number(enc) {
                    Some(v) => v,
                    None => decode_value(enc, names)?,
                };
                Ok(leaf.eval_field(FieldRef::Value(&v)).unwrap_or(false))
            }
        }
    }
}

/// A streaming query result: yields `(id, document)` pairs. For a raw
/// collection the document is its payload as [`Value::Bytes`]. It borrows
/// the transaction, and the collection handle it came from unless it was
/// made by [`Collection::into_query`](crate::Collection::into_query).
pub struct QueryCursor<'a, T: ReadableTxn> {
    st: Cow<'a, CollState>,
    check: Check,
    /// Top-level fields the filter and the index read.
    fields: Fields,
    /// Positions in `fields` of the index's fields' first segments, in
    /// index field order, without repeats.
    index_fields: Vec<usize>,
    plan: Plan,
    source: Source<'a, T>,
    /// Where a value from an overflow chain is read to (document; index entry).
    scratch: Vec<u8>,
    entry_scratch: Vec<u8>,
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
        let plan = plan(txn, &st, spec)?;
        let mut fields = Fields::default();
        let check = Check::new(&spec.filter, &mut fields, &st);
        let source = match &plan.access {
            Access::Scan => match shared_scan(txn, &st, spec, &plan, &check, &fields)? {
                Some((blocks, snap, filtering)) => Source::Shared {
                    pages: txn.pages(),
                    root: st.docs.root(),
                    blocks,
                    block: 0,
                    own: None,
                    helper: None,
                    pending: Some((snap, filtering)),
                    scanned: 0,
                },
                None => {
                    let after = spec.after_id.map(id_key);
                    let start = after.as_ref().map_or(Bound::Unbounded, |a| Bound::Excluded(&a[..]));
                    Source::Scan(txn.range(&st.docs, start, Bound::Unbounded, false)?)
                }
            },
            Access::Index { name, kind, ranges, reverse, .. } => Source::Index(IndexSource {
                tree: st.index_tree_of(txn, name)?.into_owned(),
                kind: *kind,
                ranges: ranges.clone(),
                reverse: *reverse,
                next_range: 0,
                current: None,
                pages: txn.pages(),
            }),
        };
        let mut index_fields = Vec::new();
        if let Access::Index { fields: paths, .. } = &plan.access {
            for p in paths {
                let i = fields.position(&p.segments()[0], &st);
                if !index_fields.contains(&i) {
                    index_fields.push(i);
                }
            }
        }
        Ok(QueryCursor {
            st,
            check,
            fields,
            index_fields,
            plan,
            source,
            scratch: Vec::new(),
            entry_scratch: Vec::new(),
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

    /// Finds the next matching document in source order (before
    /// offset/limit) and runs `on` on it while it is still lent from its
    /// page: `on(collection state, id, stored bytes)`.
    fn next_match_with<X>(
        &mut self,
        on: impl FnOnce(&CollState, u64, &[u8]) -> Result<X>,
    ) -> Result<Option<X>> {
        let QueryCursor { st, check, fields, index_fields, plan, source, scratch, entry_scratch, .. } = self;
        let st: &CollState = st;
        loop {
            match source {
                Source::Scan(it) => {
                    let Some(entry) = it.next_in(scratch) else { return Ok(None) };
                    let (k, bytes) = entry?;
                    if let Some(id) = matching_id(check, &fields.steps, &*st.dict, k, bytes)? {
                        return on(st, id, bytes).map(Some);
                    }
                }
                Source::Shared { pages, root, blocks, block, own, helper, pending, scanned } => {
                    if pending.is_some() && (*scanned >= HELPER_AFTER || *block > 0) {
                        if let Some((snap, filtering)) = pending.take() {
                            *helper = snap
                                .upgrade()
                                .and_then(|snap| Helper::start(snap, *root, *blocks, filtering));
                        }
                    }
                    if *block >= blocks.count {
                        return Ok(None);
                    }
                    if let Some(helper) = helper.as_mut().filter(|_| Blocks::is_helpers(*block)) {
                        let Some((id, bytes)) = helper.next_in_block()? else {
                            *block += 1;
                            continue;
                        };
                        // A large document comes as its id: read it here.
                        let looked_up;
                        let bytes = match bytes {
                            Some(b) => b,
                            None => {
                                looked_up = get_guard(*pages, *root, &id_key(id))?;
                                looked_up.as_deref().ok_or_else(|| {
                                    Error::corruption(
                                        None,
                                        format!("document {id} vanished from its snapshot"),
                                    )
                                })?
                            }
                        };
                        return on(st, id, bytes).map(Some);
                    }
                    let it = match own {
                        Some(it) => it,
                        None => {
                            let (lo, hi) = blocks.bounds(*block);
                            own.insert(Range::new(*pages, *root, as_key(&lo), as_key(&hi), false)?)
                        }
                    };
                    match it.next_in(scratch) {
                        None => {
                            *own = None;
                            *block += 1;
                        }
                        Some(entry) => {
                            *scanned = scanned.saturating_add(1);
                            let (k, bytes) = entry?;
                            if let Some(id) = matching_id(check, &fields.steps, &*st.dict, k, bytes)? {
                                return on(st, id, bytes).map(Some);
                            }
                        }
                    }
                }
                Source::Index(source) => {
                    let pages = source.pages;
                    let reverse = source.reverse;
                    let mut on = Some(on);
                    return source.find_entry(entry_scratch, |key, id| {
                        let looked_up = get_guard(pages, st.docs.root(), &id_key(id))?;
                        let Some(bytes) = looked_up.as_deref() else {
                            return Err(Error::corruption(
                                None,
                                format!(
                                    "index {:?} of {:?} points at missing document {id}",
                                    index_name(plan),
                                    st.name
                                ),
                            ));
                        };
                        // Only a document collection has indexes, and it holds
                        // no RAW document: one here is damage, not a miss.
                        let (header, payload) = decode_header(bytes)?;
                        if header.is_raw() {
                            let raw = Error::corruption(None, "its index entry leads to a raw document");
                            return Err(in_entry(raw, index_name(plan), &st.name, id));
                        }
                        let mut doc = TopFields::new(payload, &fields.steps);
                        let single = single_entry(plan, fields, index_fields, &mut doc)?;
                        if !first_entry(plan, fields, index_fields, st, &mut doc, key, reverse)
                            .map_err(|e| in_entry(e, index_name(plan), &st.name, id))?
                        {
                            return Ok(None);
                        }
                        // On an exact plan, a document's only entry lies in the
                        // ranges exactly when the document matches.
                        if !(single && plan.exact || check.eval(&mut doc, &*st.dict)?) {
                            return Ok(None);
                        }
                        let on = on.take().expect("a match ends the search");
                        on(st, id, bytes).map(Some)
                    });
                }
            }
        }
    }

    fn fill_sorted(&mut self) -> Result<()> {
        let cap = self.spec.sort_buffer_limit.unwrap_or(MAX_SORT_BUFFER);
        let keep = self.spec.limit.map(|l| l.saturating_add(self.spec.offset));
        let spec = self.spec.clone();
        let next = |c: &mut Self| {
            c.next_match_with(|st, id, bytes| {
                let (version, doc) = decode(st, bytes)?;
                Ok(Ranked { hit: (id, version, doc), spec: &spec })
            })
        };
        let mut buf: Vec<Ranked<'_>> = Vec::new();
        if let Some(k) = keep.filter(|&k| k <= cap) {
            // Offset + limit within the cap: only the best that many are
            // kept, the worst of them on top of a heap.
            let k = usize::try_from(k).unwrap_or(usize::MAX);
            let mut heap = BinaryHeap::new();
            while let Some(r) = next(self)? {
                if heap.len() < k {
                    heap.push(r);
                } else if let Some(mut worst) = heap.peek_mut() {
                    if r < *worst {
                        *worst = r;
                    }
                }
            }
            buf = heap.into_sorted_vec();
        } else {
            while let Some(r) = next(self)? {
                buf.push(r);
                if buf.len() as u64 > cap {
                    return Err(Error::invalid(format!(
                        "the sort needs more than {cap} documents in memory (sort_buffer_limit); \
                         add a limit, narrow the filter or raise sort_buffer_limit"
                    )));
                }
            }
            buf.sort();
        }
        self.sorted = Some(buf.into_iter().map(|r| r.hit).collect::<Vec<_>>().into_iter());
        Ok(())
    }

    /// Whether each index entry the plan reads is a result by itself: an
    /// exact plan (module docs of `plan.rs`) over an index in which no
    /// document has more than one entry (so none holds a list value, the
    /// only case an exact plan evaluates). Then counting and skipping read
    /// the entries alone, never the documents.
    fn entries_are_results(&self) -> bool {
        match &self.plan.access {
            Access::Index { name, .. } => {
                self.plan.exact && self.st.index(name).is_ok_and(|info| info.single_valued)
            }
            Access::Scan => false,
        }
    }

    /// The next entry of an index source in the plan's ranges, as a
    /// document id, without reading the document (see
    /// [`QueryCursor::entries_are_results`]); `None` at the end.
    fn next_entry_id(&mut self) -> Result<Option<u64>> {
        let Source::Index(source) = &mut self.source else {
            return Err(Error::invalid("entries are read from an index source only"));
        };
        source.find_entry(&mut self.entry_scratch, |_, id| Ok(Some(id)))
    }

    /// Runs `f` on the next result (after offset and limit).
    fn next_inner<X>(&mut self, f: impl FnOnce(&CollState, Found<'_>) -> Result<X>) -> Result<Option<X>> {
        if self.remaining == Some(0) {
            return Ok(None);
        }
        if self.plan.sort_in_memory && self.sorted.is_none() {
            self.fill_sorted()?;
        }
        let found = if let Some(it) = &mut self.sorted {
            let mut next = it.next();
            while self.to_skip > 0 && next.is_some() {
                self.to_skip -= 1;
                next = it.next();
            }
            match next {
                Some((id, version, doc)) => Some(f(&self.st, Found::Decoded(id, version, doc))?),
                None => None,
            }
        } else {
            let by_entries = self.to_skip > 0 && self.entries_are_results();
            while self.to_skip > 0 {
                let skipped = if by_entries {
                    self.next_entry_id()?.is_some()
                } else {
                    self.next_match_with(|_, _, _| Ok(()))?.is_some()
                };
                if !skipped {
                    return Ok(None);
                }
                self.to_skip -= 1;
            }
            self.next_match_with(|st, id, bytes| f(st, Found::Stored(id, bytes)))?
        };
        if found.is_some() {
            if let Some(r) = &mut self.remaining {
                *r -= 1;
            }
        }
        Ok(found)
    }

    /// Counts the results (after offset and limit) without sorting or
    /// decoding whole documents. This inherent method is what
    /// `cursor.count()` calls, not [`Iterator::count`]: it returns a
    /// `Result<u64>` (a read may fail), where the iterator's would count
    /// the `Result` items themselves, one by one.
    pub fn count(mut self) -> Result<u64> {
        // Counting never sorts: a small limit needs few matches, too few to
        // start a helper for.
        if self.remaining.is_some_and(|r| r.saturating_add(self.to_skip) < SPLIT_SCAN_MIN_DOCS) {
            if let Source::Shared { pending, .. } = &mut self.source {
                *pending = None;
            }
        }
        let by_entries = self.entries_are_results();
        let mut n = 0u64;
        while self.remaining != Some(0) {
            let found = if by_entries {
                self.next_entry_id()?.is_some()
            } else {
                self.next_match_with(|_, _, _| Ok(()))?.is_some()
            };
            if !found {
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
    fn step<X>(&mut self, f: impl FnOnce(&CollState, Found<'_>) -> Result<X>) -> Option<Result<X>> {
        if self.failed {
            return None;
        }
        match self.next_inner(f) {
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
        self.step(|st, found| match found {
            Found::Stored(id, bytes) => decode(st, bytes).map(|(version, doc)| (id, version, doc)),
            Found::Decoded(id, version, doc) => Ok((id, version, doc)),
        })
    }

    /// The next result's document appended to `out` as JSON text (what
    /// [`write_json`] writes for the document
    /// [`next_versioned`](Self::next_versioned) returns), written straight
    /// from the stored encoding when the cursor has not buffered it for a
    /// sort: `(id, schema_version)`. Mixes freely with `next`. On error
    /// `out` is left as it was.
    pub fn next_json(&mut self, out: &mut Vec<u8>) -> Option<Result<(u64, u32)>> {
        self.step(|st, found| match found {
            Found::Stored(id, bytes) if st.raw => {
                let (header, payload) = decode_header(bytes)?;
                write_raw_json(payload, out);
                Ok((id, header.schema_version))
            }
            Found::Stored(id, bytes) => Ok((id, write_stored_json(bytes, &*st.dict, out)?)),
            Found::Decoded(id, version, doc) => {
                write_json(&doc, out);
                Ok((id, version))
            }
        })
    }

    /// The next result as a [`Document`](crate::Document) `D`: read like
    /// [`next_as`](Self::next_as) when its schema version is `D::VERSION`,
    /// otherwise decoded and passed through [`Document::migrate`](crate::Document::migrate)
    /// first. Mixes freely with `next`.
    pub fn next_doc<D: crate::Document>(&mut self) -> Option<Result<(u64, D)>> {
        self.step(|st, found| {
            let id = found.id();
            let doc = match found {
                Found::Stored(_, bytes) if !st.raw => stored_doc(bytes, &*st.dict),
                // A raw record is no document (as Collection::get_doc says).
                Found::Stored(..) => return Err(st.no_structure()),
                Found::Decoded(_, version, doc) => crate::doc::typed::migrated(version, doc),
            };
            Ok((id, doc.map_err(|e| in_document(e, &st.name, id))?))
        })
    }

    /// This cursor as an iterator of typed results
    /// ([`next_doc`](Self::next_doc) at each step): what a `for` loop over
    /// [`Document`](crate::Document)s wants. It stops after the first error.
    ///
    /// ```
    /// # use obj_engine::{Db, Document, QuerySpec};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Note { text: String }
    /// impl Document for Note { const COLLECTION: &'static str = "notes"; }
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::open(dir.path().join("app.obj"))?;
    /// db.insert(&Note { text: "hi".into() })?;
    /// let rx = db.begin_read()?;
    /// for item in rx.collection("notes")?.all()?.docs::<Note>() {
    ///     let (id, note) = item?;
    ///     assert_eq!((id, note.text.as_str()), (1, "hi"));
    /// }
    /// # Ok::<(), obj_engine::Error>(())
    /// ```
    pub fn docs<D: crate::Document>(self) -> DocCursor<'a, T, D> {
        DocCursor { cursor: self, doc: std::marker::PhantomData }
    }

    /// The next result as a `D`, read straight from the stored encoding
    /// (no intermediate [`Value`]); same result as `from_value` on the
    /// document `next` returns. Mixes freely with `next`.
    pub fn next_as<D: DeserializeOwned>(&mut self) -> Option<Result<(u64, D)>> {
        self.step(|st, found| {
            let id = found.id();
            let doc = match found {
                Found::Stored(_, bytes) if !st.raw => {
                    let (_, payload) = decode_header(bytes)?;
                    from_encoded(payload, &*st.dict)
                }
                Found::Stored(_, bytes) => from_value(decode(st, bytes)?.1),
                Found::Decoded(_, _, doc) => from_value(doc),
            };
            Ok((id, doc.map_err(|e| in_document(e, &st.name, id))?))
        })
    }
}

/// A [`QueryCursor`] yielding [`Document`](crate::Document)s: `(id, D)`
/// pairs, each read by [`QueryCursor::next_doc`]. Made by
/// [`QueryCursor::docs`].
pub struct DocCursor<'a, T: ReadableTxn, D> {
    cursor: QueryCursor<'a, T>,
    doc: std::marker::PhantomData<fn() -> D>,
}

impl<'a, T: ReadableTxn, D> std::fmt::Debug for DocCursor<'a, T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DocCursor({})", self.cursor.plan.describe())
    }
}

impl<'a, T: ReadableTxn, D: crate::Document> Iterator for DocCursor<'a, T, D> {
    type Item = Result<(u64, D)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.cursor.next_doc()
    }
}

impl<'a, T: ReadableTxn> Iterator for QueryCursor<'a, T> {
    type Item = Result<(u64, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_versioned().map(|r| r.map(|(id, _, doc)| (id, doc)))
    }
}

/// The id of the documents tree's entry `(key, bytes)` if the document
/// matches the filter. Reads only the fields the filter names, in place. A
/// RAW document matches only the empty filter.
pub(crate) fn matching_id(
    check: &Check,
    steps: &[PathStep],
    names: &impl NameLookup,
    key: &[u8],
    bytes: &[u8],
) -> Result<Option<u64>> {
    let id = id_of(key)?;
    if let Check::True = check {
        return Ok(Some(id));
    }
    let (header, payload) = decode_header(bytes)?;
    if header.is_raw() {
        return Ok(None);
    }
    Ok(check.eval(&mut TopFields::new(payload, steps), names)?.then_some(id))
}

/// Documents a shared scan's cursor scans itself before it starts its
/// helper (a quarter of its first block).
const HELPER_AFTER: u32 = 1024;

/// Collections of fewer documents are scanned on one thread: a shared scan
/// starts a thread (tens of microseconds) to save at most half of the scan.
const SPLIT_SCAN_MIN_DOCS: u64 = 8192;

/// What a scan shared with a helper thread (see `query::split`) needs,
/// when sharing pays: a read transaction's full scan with a filter over a
/// collection of at least [`SPLIT_SCAN_MIN_DOCS`] documents, wanting all
/// the matches (or a sort of them, or at least as many as the threshold),
/// on a machine with a spare CPU.
fn shared_scan<T: ReadableTxn>(
    txn: &T,
    st: &CollState,
    spec: &QuerySpec,
    plan: &Plan,
    check: &Check,
    fields: &Fields,
) -> Result<Option<(Blocks, Weak<Snapshot>, Filtering)>> {
    let wants_many = plan.sort_in_memory
        || spec.limit.is_none_or(|l| l.saturating_add(spec.offset) >= SPLIT_SCAN_MIN_DOCS);
    // (A scan from `after_id` pages through in one: it is not split.)
    if matches!(check, Check::True) || st.raw || !wants_many || spec.after_id.is_some() || !spare_core() {
        return Ok(None);
    }
    let Some(snap) = shared_snapshot(txn) else { return Ok(None) };
    let docs = txn.count(&st.docs)?;
    if docs < SPLIT_SCAN_MIN_DOCS {
        return Ok(None);
    }
    let mut cursor = Cursor::new(txn.pages(), st.docs.root());
    let first = if cursor.seek_first()? { cursor.key()?.map(id_of).transpose()? } else { None };
    let last = if cursor.seek_last()? { cursor.key()?.map(id_of).transpose()? } else { None };
    let Some(blocks) = first.zip(last).and_then(|(first, last)| Blocks::new(first, last, docs)) else {
        return Ok(None);
    };
    let filtering =
        Filtering { check: check.clone(), steps: fields.steps.clone(), dict: Arc::clone(&st.dict) };
    Ok(Some((blocks, Arc::downgrade(&snap), filtering)))
}

fn as_key(b: &Bound<[u8; 8]>) -> Bound<&[u8]> {
    b.as_ref().map(|k| &k[..])
}

fn id_of(key: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(key.try_into().map_err(|_| Error::corruption(None, "bad document key"))?))
}

/// The schema version and the document of stored bytes.
fn decode(st: &CollState, bytes: &[u8]) -> Result<(u32, Value)> {
    if st.raw {
        let (header, payload) = decode_header(bytes)?;
        return Ok((header.schema_version, Value::Bytes(payload.to_vec())));
    }
    decode_stored(bytes, &*st.dict)
}

/// A hit in the order of the query's sort, ties by id in the direction of
/// its last key (so that distinct hits never compare equal).
struct Ranked<'s> {
    hit: Hit,
    spec: &'s QuerySpec,
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.hit, &other.hit);
        self.spec.compare_for_sort(&a.2, &b.2).then(self.spec.compare_ids(a.0, b.0))
    }
}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked<'_> {}

/// True when the document has exactly one entry in the plan's index
/// (every indexed path is one segment leading to a present non-list
/// value), so the entry the scan came through is its only one and
/// [`first_entry`] need not be worked out.
fn single_entry(
    plan: &Plan,
    fields: &Fields,
    index_fields: &[usize],
    doc: &mut TopFields<'_, '_>,
) -> Result<bool> {
    let Access::Index { fields: paths, .. } = &plan.access else { return Ok(true) };
    for p in paths {
        let [seg] = p.segments() else { return Ok(false) };
        let Some(&i) = index_fields.iter().find(|&&i| fields.names[i] == *seg) else { return Ok(false) };
        match doc.get(i)? {
            Some(enc) if enc.first() != Some(&tag::LIST) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Is `key` the first of the document's entries inside the plan's ranges
/// in scan order (so that a document is returned once)? The entries are
/// worked out from the top-level fields the index reads: index keys read
/// only under their paths' first segments, so they are the same on this
/// partial document as on the whole one. A document that does not have
/// `key` at all is one the index should not point at: corruption (see
/// [`in_entry`]), not a document to pass over.
fn first_entry(
    plan: &Plan,
    fields: &Fields,
    index_fields: &[usize],
    st: &CollState,
    doc: &mut TopFields<'_, '_>,
    key: &[u8],
    reverse: bool,
) -> Result<bool> {
    let Access::Index { fields: paths, ranges, .. } = &plan.access else { return Ok(true) };
    let mut partial = Vec::with_capacity(index_fields.len());
    for &i in index_fields {
        if let Some(enc) = doc.get(i)? {
            partial.push((fields.names[i].clone(), decode_value(enc, &*st.dict)?));
        }
    }
    let keys = doc_index_keys(paths, &Value::Map(partial))?;
    if keys.binary_search_by(|k| k.as_slice().cmp(key)).is_err() {
        return Err(Error::corruption(None, "its index entry holds a key the document does not have"));
    }
    let inside = |k: &Vec<u8>| ranges.iter().any(|(lo, hi)| in_range(k, lo, hi));
    let first = if reverse { keys.iter().rev().find(|k| inside(k)) } else { keys.iter().find(|k| inside(k)) };
    Ok(first.is_some_and(|f| f.as_slice() == key))
}

/// An error met checking document `id` against the entry of index `index`
/// that led to it, saying which index, collection and document.
fn in_entry(e: Error, index: &str, collection: &str, id: u64) -> Error {
    match e {
        Error::Corruption { page, message } => Error::Corruption {
            page,
            message: format!("index {index:?} of {collection:?} at document {id}: {message}"),
        },
        e => e,
    }
}

/// The name of the index a plan reads (empty for a scan).
fn index_name(plan: &Plan) -> &str {
    match &plan.access {
        Access::Index { name, .. } => name,
        Access::Scan => "",
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

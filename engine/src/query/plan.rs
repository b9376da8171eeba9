//! The query planner: chooses between a full scan of a collection and a
//! scan of key ranges of one of its ready secondary indexes, and describes
//! the choice for `explain()`.
//!
//! An index can answer a filter only if every document the filter matches
//! has an entry in the ranges scanned. Documents missing an indexed field
//! have no entries (`index/secondary.rs`), so an index is eligible only when
//! the filter's top-level conjunction tests *every* indexed field with an
//! operator that is false on an absent field (eq, in, lt, le, gt, ge,
//! prefix, exists:true). Ranges then come from equality / `in` on leading
//! fields and the range operators on the next field. Two range operators on
//! one field (`x >= a and x < b`) may be satisfied by different elements of
//! a list, so their intersection alone could miss a document. For a
//! top-level field (one path segment) every document whose value is a list
//! also has an entry for the whole list, and those entries sort together
//! after every scalar (the List rank of the key encoding): the plan scans
//! the intersection for scalar values plus the List rank, and the filter
//! picks the matching lists. On a nested path (which can fan out through a
//! list of maps without a whole-list entry) it uses one operator's range
//! only. The filter is evaluated again on each document found, so ranges
//! may be loose, unless the plan is *exact*: every conjunct of the filter
//! went into the ranges and every indexed path is one segment. A document
//! whose indexed fields all hold one non-list value has one entry, the
//! encoding of those values; the key encoding orders exactly as the
//! filter compares (`index/key_encoding.rs`), so that entry lies in the
//! ranges exactly when the document matches, and the scan skips the
//! filter for it. Documents with list values are still evaluated.
//!
//! A sort needs no buffer when the plan's index delivers its order: the
//! index is single-valued (each document has at most one entry, holding
//! what the sort compares; see `index/secondary.rs`), the sort keys are the
//! index's trailing fields in one direction, and every field before them
//! is held to one value by the filter. Ties then come in id order, as an
//! in-memory sort puts them. With no index that the filter makes eligible,
//! a single-valued index with an entry for every document (as many entries
//! as documents) can still serve the sort, read whole.

use std::ops::Bound;

use crate::doc::collection::{CollState, IndexInfo};
use crate::doc::value::Value;
use crate::error::{Error, Result};
use crate::index::key_encoding::{encode_key_vec, prefix_end, rank_key_range, str_prefix_key};
use crate::index::secondary::{IndexKind, IndexStatus};
use crate::query::expr::{FieldPath, Filter};
use crate::query::spec::{KeyRange, QuerySpec};
use crate::txn::ReadableTxn;

/// Most equality prefixes (`in` lists multiply) a plan will enumerate.
const MAX_PREFIXES: usize = 1024;

/// How a query reads its collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Every document, in id order.
    Scan,
    /// The entries of an index within `ranges` (sorted, disjoint), in key
    /// order or reversed.
    Index {
        /// The index name.
        name: String,
        /// Its kind (decides the entry layout).
        kind: IndexKind,
        /// Its fields.
        fields: Vec<FieldPath>,
        /// Byte ranges over value keys, ascending.
        ranges: Vec<KeyRange>,
        /// Read from the last range down.
        reverse: bool,
        /// Why this index (for explain).
        reason: String,
    },
}

/// A chosen plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// How documents are found.
    pub access: Access,
    /// Whether results are sorted in a bounded buffer after filtering.
    pub sort_in_memory: bool,
    /// Whether the query has a filter, evaluated on each document found.
    pub filtered: bool,
    /// Whether the index ranges hold exactly the documents the filter
    /// matches, among documents with one entry in the index (see the
    /// module documentation); the filter is then evaluated only on
    /// documents with several entries.
    pub exact: bool,
    /// The query's `after_id`: the scan starts after this document id.
    pub after_id: Option<u64>,
}

impl Plan {
    /// A one-line human description (what `explain()` returns).
    pub fn describe(&self) -> String {
        let mut s = match &self.access {
            Access::Scan => match self.after_id {
                Some(id) => format!("SCAN collection (id order) after id {id}"),
                None => "SCAN collection (id order)".to_string(),
            },
            Access::Index { name, kind, fields, ranges, reverse, reason } => format!(
                "INDEX {name} ({} on {}) {} range(s){} [{reason}]",
                kind.as_str(),
                fields.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", "),
                ranges.len(),
                if *reverse { " reverse" } else { "" }
            ),
        };
        if self.filtered && self.exact {
            s.push_str(", filter answered by the index (evaluated only on documents with list values)");
        } else if self.filtered {
            s.push_str(", filter evaluated on each document");
        }
        if self.sort_in_memory {
            s.push_str(", then SORT in memory (bounded by sort_buffer_limit)");
        }
        s
    }
}

fn conjuncts<'a>(f: &'a Filter, out: &mut Vec<&'a Filter>) {
    match f {
        Filter::And(fs) => fs.iter().for_each(|g| conjuncts(g, out)),
        other => out.push(other),
    }
}

/// What one conjunct says about one field.
enum Cond {
    Points(Vec<Vec<u8>>),
    /// A key range; `scalar` when the operand is not a list or map (its
    /// range then lies wholly below the List rank).
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>, bool),
    /// The intersection of several scalar ranges, plus the List rank.
    RangesAndLists(Bound<Vec<u8>>, Bound<Vec<u8>>),
    Present,
}

fn cond_for(f: &Filter, path: &FieldPath) -> Option<Cond> {
    let range_of = |v: &Value, lo_incl: Option<bool>, hi_incl: Option<bool>| {
        let (rs, re) = rank_key_range(v);
        let k = encode_key_vec(v);
        let lo = match lo_incl {
            None => Bound::Included(rs),
            Some(true) => Bound::Included(k.clone()),
            Some(false) => prefix_end(&k).map_or(Bound::Excluded(re.clone()), Bound::Included),
        };
        let hi = match hi_incl {
            None => Bound::Excluded(re),
            Some(true) => prefix_end(&k).map_or(Bound::Unbounded, Bound::Excluded),
            Some(false) => Bound::Excluded(k),
        };
        Cond::Range(lo, hi, !matches!(v, Value::List(_) | Value::Map(_)))
    };
    match f {
        Filter::Eq(p, v) if p == path => Some(Cond::Points(vec![encode_key_vec(v)])),
        Filter::In(p, vs) if p == path => {
            let mut ks: Vec<Vec<u8>> = vs.iter().map(encode_key_vec).collect();
            ks.sort();
            ks.dedup();
            Some(Cond::Points(ks))
        }
        Filter::Gt(p, v) if p == path => Some(range_of(v, Some(false), None)),
        Filter::Ge(p, v) if p == path => Some(range_of(v, Some(true), None)),
        Filter::Lt(p, v) if p == path => Some(range_of(v, None, Some(false))),
        Filter::Le(p, v) if p == path => Some(range_of(v, None, Some(true))),
        Filter::Prefix(p, s) if p == path => {
            let k = str_prefix_key(s);
            let hi = prefix_end(&k).map_or(Bound::Unbounded, Bound::Excluded);
            Some(Cond::Range(Bound::Included(k), hi, true))
        }
        Filter::Exists(p, true) if p == path => Some(Cond::Present),
        _ => None,
    }
}

fn rank(c: &Cond) -> u8 {
    match c {
        Cond::Points(_) => 3,
        Cond::RangesAndLists(..) => 2,
        Cond::Range(..) => 1,
        Cond::Present => 0,
    }
}

/// The tighter of two lower bounds.
fn max_lower(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (&a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            match x.cmp(y) {
                std::cmp::Ordering::Less => b,
                std::cmp::Ordering::Greater => a,
                std::cmp::Ordering::Equal if matches!(a, Bound::Excluded(_)) => a,
                std::cmp::Ordering::Equal => b,
            }
        }
    }
}

/// The tighter of two upper bounds.
fn min_upper(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (&a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            match x.cmp(y) {
                std::cmp::Ordering::Less => a,
                std::cmp::Ordering::Greater => b,
                std::cmp::Ordering::Equal if matches!(a, Bound::Excluded(_)) => a,
                std::cmp::Ordering::Equal => b,
            }
        }
    }
}

/// Whether `[lo, hi)` (per the bounds) holds no key.
fn range_is_empty(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => l >= h,
    }
}

/// The strongest condition the conjuncts `cs` put on `path`, with the
/// positions in `cs` of the conjuncts it expresses.
fn best_cond(cs: &[&Filter], path: &FieldPath) -> Option<(Cond, Vec<usize>)> {
    let conds: Vec<(Cond, usize)> =
        cs.iter().enumerate().filter_map(|(i, f)| cond_for(f, path).map(|c| (c, i))).collect();
    let scalar_ranges = conds.iter().filter(|(c, _)| matches!(c, Cond::Range(_, _, true))).count();
    if path.segments().len() == 1
        && scalar_ranges >= 2
        && !conds.iter().any(|(c, _)| matches!(c, Cond::Points(_)))
    {
        let mut lo = Bound::Unbounded;
        let mut hi = Bound::Unbounded;
        let mut used = Vec::new();
        for (c, i) in conds {
            if let Cond::Range(l, h, true) = c {
                lo = max_lower(lo, l);
                hi = min_upper(hi, h);
                used.push(i);
            }
        }
        return Some((Cond::RangesAndLists(lo, hi), used));
    }
    conds.into_iter().max_by_key(|(c, _)| rank(c)).map(|(c, i)| (c, vec![i]))
}

/// Whether reading `info` in key order (or reversed: `Some(true)`) gives
/// `spec`'s sort order, when the filter holds its first `fixed` fields to
/// one value each.
fn sort_order(info: &IndexInfo, spec: &QuerySpec, fixed: usize) -> Option<bool> {
    let first = spec.sort.first()?;
    if !info.single_valued || spec.sort.iter().any(|k| k.descending != first.descending) {
        return None;
    }
    let fields = &info.spec.fields;
    // The sort must end with the index's last field, so that ties are in
    // entry order, which is id order.
    let start = fields.len().checked_sub(spec.sort.len())?;
    let matches = fields[start..].iter().zip(&spec.sort).all(|(f, k)| *f == k.path);
    (start <= fixed && matches).then_some(first.descending)
}

/// For each index of `st`, in order: whether it has exactly one entry for
/// every document (single-valued, and as many entries as documents), so
/// that reading it whole reads every document once. Only a sort asks.
fn complete_indexes<T: ReadableTxn>(txn: &T, st: &CollState, spec: &QuerySpec) -> Result<Vec<bool>> {
    if spec.sort.is_empty() {
        return Ok(Vec::new());
    }
    let docs = txn.count(&st.docs)?;
    st.indexes
        .iter()
        .map(|i| {
            Ok(i.single_valued
                && i.status == IndexStatus::Ready
                && txn.count(&*st.index_tree_of(txn, &i.spec.name)?)? == docs)
        })
        .collect()
}

/// Whether `info` has exactly one entry for every document (see
/// [`complete_indexes`]).
fn holds_every_document<T: ReadableTxn>(txn: &T, st: &CollState, info: &IndexInfo) -> Result<bool> {
    Ok(info.single_valued
        && info.status == IndexStatus::Ready
        && txn.count(&*st.index_tree_of(txn, &info.spec.name)?)? == txn.count(&st.docs)?)
}

fn concat(p: &[u8], b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    b.map(|k| [p, &k[..]].concat())
}

/// Chooses the plan for `spec` on collection state `st`, as transaction
/// `txn` sees it (which indexes hold every document).
pub(crate) fn plan<T: ReadableTxn>(txn: &T, st: &CollState, spec: &QuerySpec) -> Result<Plan> {
    // Every query and explain plans first, before anything walks the
    // filter recursively.
    spec.filter.check_nesting()?;
    if let Some(r) = &spec.index {
        for b in [&r.lo, &r.hi].into_iter().flatten() {
            Value::check_all_nesting(&b.values)?;
        }
    }
    spec.check_shape()?;
    let sort_in_memory = !spec.sort.is_empty();
    let filtered = spec.filter != Filter::True;
    if st.raw && (filtered || sort_in_memory || spec.index.is_some()) {
        return Err(Error::invalid(format!(
            "collection {:?} holds raw bytes: queries cannot filter, sort or use indexes",
            st.name
        )));
    }
    if spec.after_id.is_some() {
        return Ok(Plan {
            access: Access::Scan,
            sort_in_memory,
            filtered,
            exact: false,
            after_id: spec.after_id,
        });
    }
    if let Some(ir) = &spec.index {
        let info = st.index(&ir.index)?;
        if info.status != IndexStatus::Ready {
            return Err(Error::invalid(format!("index {:?} is still building", ir.index)));
        }
        for b in ir.lo.iter().chain(ir.hi.iter()) {
            if b.values.len() > info.spec.fields.len() {
                return Err(Error::invalid(format!(
                    "index {:?} has {} field(s) but a bound has {} value(s)",
                    ir.index,
                    info.spec.fields.len(),
                    b.values.len()
                )));
            }
        }
        let ranges = ir.encoded_range().into_iter().collect();
        // The requested direction matters only without a sort.
        let sorted = sort_order(info, spec, 0);
        return Ok(index_plan(
            info,
            ranges,
            ir.reverse,
            sorted,
            "requested by the query".into(),
            spec,
            false,
        ));
    }
    let mut cs = Vec::new();
    conjuncts(&spec.filter, &mut cs);
    let mut best: Option<(u32, Plan)> = None;
    for info in st.indexes.iter().filter(|i| i.status == IndexStatus::Ready) {
        // The strongest condition per field; all fields must be present.
        let mut per_field = Vec::new();
        for path in &info.spec.fields {
            match best_cond(&cs, path) {
                Some(c) => per_field.push(c),
                None => break,
            }
        }
        // A condition on a leading part of the fields serves only when the
        // index holds every document: a document that lacks a later field
        // has no entry (WHERE a = ? ORDER BY b on an index of (a, b)).
        if per_field.len() != info.spec.fields.len()
            && (per_field.is_empty() || !holds_every_document(txn, st, info)?)
        {
            continue;
        }
        let per_field_len = per_field.len();
        let fixed =
            per_field.iter().take_while(|(c, _)| matches!(c, Cond::Points(ks) if ks.len() == 1)).count();
        let sorted = sort_order(info, spec, fixed);
        let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
        let mut score = 0u32;
        // Ranges under each prefix (sorted, disjoint); `None`: the whole prefix.
        let mut tail: Option<Vec<KeyRange>> = None;
        // Conjuncts that went into the ranges.
        let mut covered = vec![false; cs.len()];
        for (c, used) in per_field {
            let last_field = match c {
                Cond::Points(ks) if prefixes.len() * ks.len() <= MAX_PREFIXES => {
                    prefixes = prefixes
                        .iter()
                        .flat_map(|p| ks.iter().map(move |k| [&p[..], &k[..]].concat()))
                        .collect();
                    score += 10;
                    false
                }
                Cond::Range(lo, hi, _) => {
                    tail = Some(vec![(lo, hi)]);
                    score += 5;
                    true
                }
                Cond::RangesAndLists(lo, hi) => {
                    let (list_lo, list_hi) = rank_key_range(&Value::List(Vec::new()));
                    let mut rs = Vec::with_capacity(2);
                    if !range_is_empty(&lo, &hi) {
                        rs.push((lo, hi));
                    }
                    rs.push((Bound::Included(list_lo), Bound::Excluded(list_hi)));
                    tail = Some(rs);
                    score += 6;
                    true
                }
                _ => break,
            };
            used.iter().for_each(|&i| covered[i] = true);
            if last_field {
                break;
            }
        }
        if score == 0 {
            continue;
        }
        // Behind an index whose every field the filter holds, so that a
        // composite index read by a prefix wins only where it does more
        // (serves the sort) or is the only one.
        let prefix_only = per_field_len != info.spec.fields.len();
        score -= u32::from(prefix_only);
        if score == 0 {
            continue;
        }
        if info.spec.kind == IndexKind::Unique {
            score += 1;
        }
        if sorted.is_some() {
            score += 4;
        }
        prefixes.sort();
        prefixes.dedup();
        let ranges: Vec<KeyRange> = prefixes
            .iter()
            .flat_map(|p| match &tail {
                Some(rs) => {
                    rs.iter().map(|(lo, hi)| (concat(p, lo.clone()), concat(p, hi.clone()))).collect()
                }
                None => {
                    vec![(
                        Bound::Included(p.clone()),
                        prefix_end(p).map_or(Bound::Unbounded, Bound::Excluded),
                    )]
                }
            })
            .collect();
        let exact = covered.iter().all(|&c| c) && info.spec.fields.iter().all(|f| f.segments().len() == 1);
        let plan = index_plan(info, ranges, false, sorted, format!("score {score}"), spec, exact);
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, plan));
        }
    }
    if let Some((_, p)) = best {
        return Ok(p);
    }
    // No index narrows the filter: one that holds every document in the
    // sort's order beats a scan and a sort in memory.
    let complete = complete_indexes(txn, st, spec)?;
    for (info, _) in st.indexes.iter().zip(&complete).filter(|(_, c)| **c) {
        if let Some(reverse) = sort_order(info, spec, 0) {
            let everything = vec![(Bound::Unbounded, Bound::Unbounded)];
            let reason = "every document".into();
            return Ok(index_plan(info, everything, reverse, Some(reverse), reason, spec, false));
        }
    }
    Ok(Plan { access: Access::Scan, sort_in_memory, filtered, exact: false, after_id: None })
}

/// The plan that reads `ranges` of index `info`: in the direction
/// `sorted` gives when the index serves the sort (see [`sort_order`]; no
/// sort in memory then), otherwise backwards when `reverse`.
fn index_plan(
    info: &IndexInfo,
    ranges: Vec<KeyRange>,
    reverse: bool,
    sorted: Option<bool>,
    reason: String,
    spec: &QuerySpec,
    exact: bool,
) -> Plan {
    Plan {
        access: Access::Index {
            name: info.spec.name.clone(),
            kind: info.spec.kind,
            fields: info.spec.fields.clone(),
            ranges,
            reverse: sorted.unwrap_or(reverse),
            reason: if sorted.is_some() { format!("{reason}; serves the sort") } else { reason },
        },
        sort_in_memory: !spec.sort.is_empty() && sorted.is_none(),
        filtered: spec.filter != Filter::True,
        exact,
        after_id: None,
    }
}

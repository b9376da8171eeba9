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
//! fields and at most one range operator on the next field: never the
//! intersection of two range operators on one field, because on a list
//! field they may be satisfied by different elements. The filter is always
//! evaluated again on each document found, so ranges may be loose.

use std::ops::Bound;

use crate::doc::collection::CollState;
use crate::doc::value::Value;
use crate::error::{Error, Result};
use crate::index::key_encoding::{encode_key_vec, prefix_end, rank_key_range, str_prefix_key};
use crate::index::secondary::{IndexKind, IndexStatus};
use crate::query::expr::{FieldPath, Filter};
use crate::query::spec::{KeyRange, QuerySpec};

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
}

impl Plan {
    /// A one-line human description (what `explain()` returns).
    pub fn describe(&self) -> String {
        let mut s = match &self.access {
            Access::Scan => "SCAN collection (id order)".to_string(),
            Access::Index { name, kind, fields, ranges, reverse, reason } => format!(
                "INDEX {name} ({} on {}) {} range(s){} [{reason}]",
                kind.as_str(),
                fields.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", "),
                ranges.len(),
                if *reverse { " reverse" } else { "" }
            ),
        };
        s.push_str(", filter evaluated on each document");
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
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
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
        Cond::Range(lo, hi)
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
            Some(Cond::Range(Bound::Included(k), hi))
        }
        Filter::Exists(p, true) if p == path => Some(Cond::Present),
        _ => None,
    }
}

fn rank(c: &Cond) -> u8 {
    match c {
        Cond::Points(_) => 2,
        Cond::Range(..) => 1,
        Cond::Present => 0,
    }
}

fn concat(p: &[u8], b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    b.map(|k| [p, &k[..]].concat())
}

/// Chooses the plan for `spec` on collection state `st`.
pub(crate) fn plan(st: &CollState, spec: &QuerySpec) -> Result<Plan> {
    let sort_in_memory = !spec.sort.is_empty();
    if st.raw && (spec.filter != Filter::True || !spec.sort.is_empty() || spec.index.is_some()) {
        return Err(Error::invalid(format!(
            "collection {:?} holds raw bytes: queries cannot filter, sort or use indexes",
            st.name
        )));
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
        let ranges = ir.key_range().into_iter().collect();
        return Ok(Plan {
            access: Access::Index {
                name: info.spec.name.clone(),
                kind: info.spec.kind,
                fields: info.spec.fields.clone(),
                ranges,
                reverse: ir.reverse,
                reason: "requested by the query".into(),
            },
            sort_in_memory,
        });
    }
    let mut cs = Vec::new();
    conjuncts(&spec.filter, &mut cs);
    let mut best: Option<(u32, Plan)> = None;
    for info in st.indexes.iter().filter(|i| i.status == IndexStatus::Ready) {
        // The strongest condition per field; all fields must be present.
        let mut per_field = Vec::new();
        for path in &info.spec.fields {
            let c = cs.iter().filter_map(|f| cond_for(f, path)).max_by_key(rank);
            match c {
                Some(c) => per_field.push(c),
                None => break,
            }
        }
        if per_field.len() != info.spec.fields.len() {
            continue;
        }
        let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
        let mut score = 0u32;
        let mut tail: Option<KeyRange> = None;
        for c in per_field {
            match c {
                Cond::Points(ks) if prefixes.len() * ks.len() <= MAX_PREFIXES => {
                    prefixes = prefixes
                        .iter()
                        .flat_map(|p| ks.iter().map(move |k| [&p[..], &k[..]].concat()))
                        .collect();
                    score += 10;
                }
                Cond::Range(lo, hi) => {
                    tail = Some((lo, hi));
                    score += 5;
                    break;
                }
                _ => break,
            }
        }
        if score == 0 {
            continue;
        }
        if info.spec.kind == IndexKind::Unique {
            score += 1;
        }
        prefixes.sort();
        prefixes.dedup();
        let ranges: Vec<KeyRange> = prefixes
            .iter()
            .map(|p| match &tail {
                Some((lo, hi)) => (concat(p, lo.clone()), concat(p, hi.clone())),
                None => (Bound::Included(p.clone()), prefix_end(p).map_or(Bound::Unbounded, Bound::Excluded)),
            })
            .collect();
        let plan = Plan {
            access: Access::Index {
                name: info.spec.name.clone(),
                kind: info.spec.kind,
                fields: info.spec.fields.clone(),
                ranges,
                reverse: false,
                reason: format!("score {score}"),
            },
            sort_in_memory,
        };
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, plan));
        }
    }
    Ok(best.map(|(_, p)| p).unwrap_or(Plan { access: Access::Scan, sort_in_memory }))
}

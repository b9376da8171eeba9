//! Property test: the engine's query answers equal a naive in-memory
//! evaluation of the same filter, sort, offset and limit over the same
//! documents — without indexes, with indexes (standard, multi-value,
//! composite, nested paths), and after reopening the file.

use obj_engine::doc::value::Timestamp;
use obj_engine::query::{FieldPath, SortKey};
use obj_engine::{Db, Filter, IndexKind, IndexSpec, QuerySpec, Value};
use proptest::prelude::*;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::Int),
        (-5i64..5).prop_map(|i| Value::Float(i as f64 + 0.5)),
        "[ab]{0,2}".prop_map(Value::Str),
    ]
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        2 => prop::collection::vec(scalar(), 0..4).prop_map(Value::List),
        1 => prop::collection::vec(
            (scalar(), scalar()).prop_map(|(c, d)| Value::Map(vec![("c".into(), c), ("d".into(), d)])),
            0..3
        )
        .prop_map(Value::List),
    ]
}

fn doc() -> impl Strategy<Value = Value> {
    (
        prop::option::of(field_value()),
        prop::option::of(field_value()),
        prop::option::of((prop::option::of(field_value()), prop::option::of(scalar()))),
    )
        .prop_map(|(a, t, b)| {
            let mut m = Vec::new();
            if let Some(a) = a {
                m.push(("a".to_string(), a));
            }
            if let Some(t) = t {
                m.push(("tags".to_string(), t));
            }
            if let Some((c, d)) = b {
                let mut inner = Vec::new();
                if let Some(c) = c {
                    inner.push(("c".to_string(), c));
                }
                if let Some(d) = d {
                    inner.push(("d".to_string(), d));
                }
                m.push(("b".to_string(), Value::Map(inner)));
            }
            Value::Map(m)
        })
}

fn path() -> impl Strategy<Value = FieldPath> {
    prop_oneof![Just("a"), Just("tags"), Just("b.c"), Just("b.d"), Just("a.c"), Just("tags.0")]
        .prop_map(|p| FieldPath::parse(p).unwrap())
}

fn leaf_filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (path(), scalar()).prop_map(|(p, v)| Filter::Eq(p, v)),
        (path(), scalar()).prop_map(|(p, v)| Filter::Ne(p, v)),
        (path(), scalar()).prop_map(|(p, v)| Filter::Lt(p, v)),
        (path(), scalar()).prop_map(|(p, v)| Filter::Le(p, v)),
        (path(), scalar()).prop_map(|(p, v)| Filter::Gt(p, v)),
        (path(), scalar()).prop_map(|(p, v)| Filter::Ge(p, v)),
        (path(), prop::collection::vec(scalar(), 0..3)).prop_map(|(p, v)| Filter::In(p, v)),
        (path(), "[ab]{0,1}").prop_map(|(p, s)| Filter::Prefix(p, s)),
        (path(), any::<bool>()).prop_map(|(p, b)| Filter::Exists(p, b)),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf_filter().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

fn query() -> impl Strategy<Value = QuerySpec> {
    (filter(), prop::option::of((path(), any::<bool>())), prop::option::of(0u64..10), 0u64..4).prop_map(
        |(filter, sort, limit, offset)| {
            let mut q = QuerySpec::new("c");
            q.filter = filter;
            if let Some((path, descending)) = sort {
                q.sort = vec![SortKey { path, descending }];
                q.limit = limit;
                q.offset = offset;
            }
            q
        },
    )
}

/// Inserts `docs` into collection "c" in one transaction; their ids with them.
fn insert_all(db: &Db, docs: &[Value]) -> Vec<(u64, Value)> {
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    let stored = docs.iter().map(|d| (c.insert(d).unwrap(), d.clone())).collect();
    drop(c);
    tx.commit().unwrap();
    stored
}

fn naive(docs: &[(u64, Value)], q: &QuerySpec) -> Vec<u64> {
    let mut hits: Vec<&(u64, Value)> = docs.iter().filter(|(_, d)| q.filter.eval(d)).collect();
    hits.sort_by(|a, b| q.compare_for_sort(&a.1, &b.1).then(q.compare_ids(a.0, b.0)));
    let it = hits.into_iter().skip(q.offset as usize).map(|(id, _)| *id);
    match q.limit {
        Some(l) => it.take(l as usize).collect(),
        None => it.collect(),
    }
}

fn engine(db: &Db, q: &QuerySpec) -> (Vec<u64>, u64) {
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    let mut ids: Vec<u64> = c.query(q).unwrap().map(|r| r.unwrap().0).collect();
    if q.sort.is_empty() {
        ids.sort();
    }
    let count = c.query(q).unwrap().count().unwrap();
    (ids, count)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn queries_match_naive_evaluation(
        docs in prop::collection::vec(doc(), 0..40),
        queries in prop::collection::vec(query(), 1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.obj");
        let db = Db::open(&file).unwrap();
        let stored = insert_all(&db, &docs);
        let check = |db: &Db, stage: &str| -> Result<(), TestCaseError> {
            for q in &queries {
                let want = naive(&stored, q);
                let (got, count) = engine(db, q);
                prop_assert_eq!(&got, &want, "{} query {}", stage, q.to_json());
                prop_assert_eq!(count as usize, want.len(), "{} count {}", stage, q.to_json());
            }
            Ok(())
        };
        check(&db, "no index")?;
        for spec in [
            IndexSpec::standard("ia", "a").unwrap(),
            IndexSpec::new("it", IndexKind::Multi, &["tags"]).unwrap(),
            IndexSpec::standard("ibc", "b.c").unwrap(),
            IndexSpec::standard("iac", "a.c").unwrap(),
            IndexSpec::new("comp", IndexKind::Standard, &["b.c", "a"]).unwrap(),
        ] {
            db.create_index("c", spec).unwrap();
        }
        check(&db, "indexed")?;
        db.integrity_check().unwrap();
        db.close().unwrap();
        let db = Db::open(&file).unwrap();
        check(&db, "reopened")?;
    }
}

fn range_op() -> impl Strategy<Value = Filter> {
    let p = || prop_oneof![Just("a"), Just("tags")].prop_map(|p| FieldPath::parse(p).unwrap());
    prop_oneof![
        (p(), scalar()).prop_map(|(p, v)| Filter::Lt(p, v)),
        (p(), scalar()).prop_map(|(p, v)| Filter::Le(p, v)),
        (p(), scalar()).prop_map(|(p, v)| Filter::Gt(p, v)),
        (p(), scalar()).prop_map(|(p, v)| Filter::Ge(p, v)),
        (p(), "[ab]{0,1}").prop_map(|(p, s)| Filter::Prefix(p, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Several range operators on one top-level field: the planner scans
    /// their intersection plus the whole-list entries, which must find
    /// every list whose elements satisfy the operators separately.
    #[test]
    fn intersected_ranges_match_naive_evaluation(
        docs in prop::collection::vec(doc(), 0..40),
        filters in prop::collection::vec(prop::collection::vec(range_op(), 2..4), 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("r.obj")).unwrap();
        let stored = insert_all(&db, &docs);
        db.create_index("c", IndexSpec::standard("ia", "a").unwrap()).unwrap();
        db.create_index("c", IndexSpec::new("it", IndexKind::Multi, &["tags"]).unwrap()).unwrap();
        for f in filters {
            let mut q = QuerySpec::new("c");
            q.filter = Filter::And(f);
            let want = naive(&stored, &q);
            let (got, count) = engine(&db, &q);
            prop_assert_eq!(&got, &want, "query {}", q.to_json());
            prop_assert_eq!(count as usize, want.len(), "count {}", q.to_json());
        }
    }
}

fn sorted_doc(u: i64) -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.9, scalar()),
        scalar(),
        prop::option::weighted(0.03, prop::collection::vec(scalar(), 0..3)),
    )
        .prop_map(move |(s, t, list)| {
            let mut m = vec![("t".to_string(), t), ("u".to_string(), Value::Int(u))];
            match (list, s) {
                // Now and then a list, which makes the index on s multi-valued.
                (Some(l), _) => m.push(("s".to_string(), Value::List(l))),
                (None, Some(s)) => m.push(("s".to_string(), s)),
                (None, None) => {}
            }
            Value::Map(m)
        })
}

fn sort_query() -> impl Strategy<Value = QuerySpec> {
    let p = |s: &str| FieldPath::parse(s).unwrap();
    let filters = prop_oneof![
        Just(Filter::True),
        scalar().prop_map(move |v| Filter::Eq(FieldPath::parse("s").unwrap(), v)),
        scalar().prop_map(move |v| Filter::Ge(FieldPath::parse("s").unwrap(), v)),
        prop::collection::vec(scalar(), 1..3)
            .prop_map(move |v| Filter::In(FieldPath::parse("s").unwrap(), v)),
        Just(Filter::Exists(p("s"), true)),
        scalar().prop_map(move |v| Filter::Lt(FieldPath::parse("t").unwrap(), v)),
        (scalar(), scalar()).prop_map(move |(a, b)| Filter::And(vec![
            Filter::Eq(FieldPath::parse("s").unwrap(), a),
            Filter::Ge(FieldPath::parse("t").unwrap(), b)
        ])),
    ];
    let sorts = prop_oneof![
        Just(vec!["s"]),
        Just(vec!["t"]),
        Just(vec!["s", "t"]),
        Just(vec!["u"]),
        Just(vec!["t", "s"])
    ];
    (filters, sorts, any::<bool>(), prop::option::of(0u64..6), 0u64..3).prop_map(
        move |(filter, sort, descending, limit, offset)| {
            let mut q = QuerySpec::new("c");
            q.filter = filter;
            q.sort =
                sort.iter().map(|f| SortKey { path: FieldPath::parse(f).unwrap(), descending }).collect();
            q.limit = limit;
            q.offset = offset;
            q
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Sorts that a single-valued index serves (read in key order or
    /// backwards instead of sorted in memory) give the naive order, ties
    /// in id order in the sort's direction; so do the same sorts once a
    /// list value has made the index multi-valued, and after a reopen.
    #[test]
    fn index_served_sorts_match_naive_evaluation(
        docs in (0usize..30).prop_flat_map(|n| (0..n).map(|i| sorted_doc(i as i64)).collect::<Vec<_>>()),
        queries in prop::collection::vec(sort_query(), 1..10),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.obj");
        let db = Db::open(&file).unwrap();
        for spec in [
            IndexSpec::standard("is", "s").unwrap(),
            IndexSpec::new("ist", IndexKind::Standard, &["s", "t"]).unwrap(),
            IndexSpec::unique("iu", "u").unwrap(),
        ] {
            db.create_index("c", spec).unwrap();
        }
        let stored = insert_all(&db, &docs);
        let mut db = db;
        for stage in ["written", "reopened"] {
            for q in &queries {
                let want = naive(&stored, q);
                let (got, count) = engine(&db, q);
                prop_assert_eq!(&got, &want, "{} query {}", stage, q.to_json());
                prop_assert_eq!(count as usize, want.len(), "{} count {}", stage, q.to_json());
            }
            db.integrity_check().unwrap();
            db.close().unwrap();
            db = Db::open(&file).unwrap();
        }
    }
}

/// Scalars across every rank, with the edge cases of each: numbers equal
/// across types (3, 3u64, 3.0), -0.0, NaN, infinities, the integer
/// extremes, timestamps with and without an offset, and strings and bytes
/// that are prefixes of one another or hold the key encoding's escape bytes.
fn wide_scalar() -> BoxedStrategy<Value> {
    let ts = |micros: i64, offset_secs: Option<i32>| Value::Timestamp(Timestamp { micros, offset_secs });
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just(i64::MIN), Just(-1), Just(0), Just(3), Just(i64::MAX)].prop_map(Value::Int),
        prop_oneof![Just(0u64), Just(3), Just(1 << 53), Just((1 << 53) + 1), Just(u64::MAX)]
            .prop_map(Value::UInt),
        prop_oneof![
            Just(-0.0),
            Just(0.0),
            Just(3.0),
            Just(2.5),
            Just(-1.5),
            Just(9007199254740992.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::NAN),
        ]
        .prop_map(Value::Float),
        prop_oneof![Just(ts(0, None)), Just(ts(0, Some(3600))), Just(ts(-5, None)), Just(ts(7, Some(-60)))],
        prop_oneof![Just(""), Just("a"), Just("a\0"), Just("a\u{1}"), Just("ab"), Just("b"), Just("é")]
            .prop_map(|s| Value::Str(s.to_string())),
        prop_oneof![Just(vec![]), Just(vec![0u8]), Just(vec![0, 1]), Just(vec![1]), Just(vec![255])]
            .prop_map(Value::Bytes),
    ]
    // Boxed: the unboxed union's generator needs more than a test thread's
    // 2 MiB of stack in a debug build.
    .boxed()
}

fn wide_doc() -> impl Strategy<Value = Value> {
    let field = || {
        prop_oneof![
            6 => wide_scalar(),
            1 => prop::collection::vec(wide_scalar(), 0..3).prop_map(Value::List),
            1 => wide_scalar().prop_map(|v| Value::Map(vec![("x".to_string(), v)])),
        ]
    };
    (prop::option::weighted(0.9, field()), prop::option::weighted(0.9, field())).prop_map(|(a, b)| {
        let mut m = Vec::new();
        if let Some(a) = a {
            m.push(("a".to_string(), a));
        }
        if let Some(b) = b {
            m.push(("b".to_string(), b));
        }
        Value::Map(m)
    })
}

/// Conjunctions of comparisons on the indexed fields, the filters whose
/// plans are exact (the filter is skipped on documents with one entry).
fn exact_filter() -> impl Strategy<Value = Filter> {
    let leaf = || {
        let p = || prop_oneof![Just("a"), Just("b")].prop_map(|p| FieldPath::parse(p).unwrap());
        prop_oneof![
            (p(), wide_scalar()).prop_map(|(p, v)| Filter::Eq(p, v)),
            (p(), prop::collection::vec(wide_scalar(), 0..3)).prop_map(|(p, v)| Filter::In(p, v)),
            (p(), wide_scalar()).prop_map(|(p, v)| Filter::Lt(p, v)),
            (p(), wide_scalar()).prop_map(|(p, v)| Filter::Le(p, v)),
            (p(), wide_scalar()).prop_map(|(p, v)| Filter::Gt(p, v)),
            (p(), wide_scalar()).prop_map(|(p, v)| Filter::Ge(p, v)),
            (p(), prop_oneof![Just(""), Just("a"), Just("a\0"), Just("é")])
                .prop_map(|(p, s)| Filter::Prefix(p, s.to_string())),
            (p(), wide_scalar().prop_map(|v| Value::List(vec![v]))).prop_map(|(p, v)| Filter::Eq(p, v)),
        ]
    };
    prop::collection::vec(leaf(), 1..4).prop_map(Filter::And)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    /// Exact plans answer a document with one index entry from the entry
    /// alone: over values of every type, their answers equal the naive
    /// evaluation's, on a one-field and on a composite index.
    #[test]
    fn exact_index_plans_match_naive_evaluation(
        docs in prop::collection::vec(wide_doc(), 0..40),
        filters in prop::collection::vec(exact_filter(), 1..10),
        composite in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("x.obj")).unwrap();
        let stored = insert_all(&db, &docs);
        let spec = if composite {
            IndexSpec::new("iab", IndexKind::Standard, &["a", "b"]).unwrap()
        } else {
            IndexSpec::standard("ia", "a").unwrap()
        };
        db.create_index("c", spec).unwrap();
        for f in filters {
            let mut q = QuerySpec::new("c");
            q.filter = f;
            let want = naive(&stored, &q);
            let (got, count) = engine(&db, &q);
            prop_assert_eq!(&got, &want, "query {}", q.to_json());
            prop_assert_eq!(count as usize, want.len(), "count {}", q.to_json());
        }
    }
}

/// The plans the property test above relies on are exact, and explain says so.
#[test]
fn conjunctions_on_indexed_fields_are_exact_plans() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("e.obj")).unwrap();
    insert_all(&db, &[Value::Map(vec![("a".into(), Value::Int(1)), ("b".into(), Value::Int(2))])]);
    db.create_index("c", IndexSpec::new("iab", IndexKind::Standard, &["a", "b"]).unwrap()).unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    let plan = |f: Filter| {
        let mut q = QuerySpec::new("c");
        q.filter = f;
        c.query(&q).unwrap().plan().clone()
    };
    let p = |s: &str| FieldPath::parse(s).unwrap();
    let exact = plan(Filter::And(vec![Filter::Eq(p("a"), Value::Int(1)), Filter::Ge(p("b"), Value::Int(0))]));
    assert!(exact.exact, "{}", exact.describe());
    assert!(exact.describe().contains("filter answered by the index"), "{}", exact.describe());
    // A range on the first field leaves the second field's condition to the filter.
    let loose = plan(Filter::And(vec![Filter::Ge(p("a"), Value::Int(0)), Filter::Eq(p("b"), Value::Int(2))]));
    assert!(!loose.exact && loose.describe().contains("filter evaluated"), "{}", loose.describe());
    // So does a condition the ranges cannot express.
    let ne = plan(Filter::And(vec![Filter::Eq(p("a"), Value::Int(1)), Filter::Ne(p("b"), Value::Int(2))]));
    assert!(!ne.exact, "{}", ne.describe());
}

//! Property test: the engine's query answers equal a naive in-memory
//! evaluation of the same filter, sort, offset and limit over the same
//! documents — without indexes, with indexes (standard, multi-value,
//! composite, nested paths), and after reopening the file.

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

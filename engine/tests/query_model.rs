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

fn naive(docs: &[(u64, Value)], q: &QuerySpec) -> Vec<u64> {
    let mut hits: Vec<&(u64, Value)> = docs.iter().filter(|(_, d)| q.filter.eval(d)).collect();
    hits.sort_by(|a, b| q.compare_for_sort(&a.1, &b.1).then(a.0.cmp(&b.0)));
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
        let mut tx = db.begin_write().unwrap();
        let mut c = tx.collection_mut("c").unwrap();
        let mut stored = Vec::new();
        for d in &docs {
            stored.push((c.insert(d).unwrap(), d.clone()));
        }
        drop(c);
        tx.commit().unwrap();
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
        let mut tx = db.begin_write().unwrap();
        let mut c = tx.collection_mut("c").unwrap();
        let mut stored = Vec::new();
        for d in &docs {
            stored.push((c.insert(d).unwrap(), d.clone()));
        }
        drop(c);
        tx.commit().unwrap();
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

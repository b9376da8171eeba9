//! What session 39's helpers found in the Rust API.

use obj_engine::query::{FieldPath, IndexBound, IndexRange};
use obj_engine::{Db, Document, Error, Filter, IndexKind, IndexSpec, QuerySpec, Value};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct D {
    a: i64,
}

impl Document for D {
    const COLLECTION: &'static str = "d";
}

/// A list nested `depth` levels around `1`.
fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::Int(1), |v, _| Value::List(vec![v]))
}

#[test]
fn a_filter_value_nested_deeper_than_a_document_may_be_is_refused_not_a_stack_overflow() {
    // A query copied its filter's values recursively before looking at
    // them: a value some tens of thousands of levels deep, built in Rust,
    // aborted the process. The bound is the document's, 128 levels.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("q.obj")).unwrap();
    db.insert(&D { a: 1 }).unwrap();
    let q = |v: Value| QuerySpec::new("d").with_filter(Filter::Eq(FieldPath::parse("a").unwrap(), v));
    assert!(db.query::<D>(&q(nested(128))).unwrap().is_empty());
    for depth in [129, 40_000] {
        let spec = q(nested(depth));
        // On a small stack, where copying the value would overflow.
        let got = std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(512 << 10)
                .spawn_scoped(s, || db.query::<D>(&spec).map(|r| r.len()))
                .unwrap()
                .join()
                .unwrap()
        });
        assert!(
            matches!(&got, Err(Error::InvalidArgument(m)) if m.contains("nests deeper than 128")),
            "{got:?}"
        );
        // The JSON form is written without recursion too.
        let text = std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(512 << 10)
                .spawn_scoped(s, || spec.to_json())
                .unwrap()
                .join()
                .unwrap()
        });
        assert!(text.contains(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth))));
        // (The derived drop of a Value recurses: take it apart a level at a time.)
        let Filter::Eq(_, mut v) = spec.filter else { unreachable!() };
        while let Value::List(items) = &mut v {
            let Some(inner) = items.pop() else { break };
            v = inner;
        }
    }
}

/// Runs `f` on a thread with a small stack, where a recursive walk of a
/// deep value would overflow.
fn on_a_small_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new().stack_size(512 << 10).spawn_scoped(s, f).unwrap().join().unwrap()
    })
}

/// Drops a deep list one level at a time (the derived drop recurses).
fn dismantle(mut v: Value) {
    while let Value::List(items) = &mut v {
        let Some(inner) = items.pop() else { break };
        v = inner;
    }
}

#[test]
fn lookup_values_nested_deeper_than_a_document_may_be_are_refused_before_their_key_is_encoded() {
    // The review of the filter fix: an index range's bounds and a unique
    // lookup's values were encoded recursively, unbounded.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("k.obj")).unwrap();
    db.insert(&D { a: 1 }).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("d").unwrap();
    c.create_index(IndexSpec::new("a", IndexKind::Standard, &["a"]).unwrap()).unwrap();
    c.create_index(IndexSpec::new("u", IndexKind::Unique, &["a"]).unwrap()).unwrap();
    w.commit().unwrap();
    for depth in [128, 129, 40_000] {
        let mut spec = QuerySpec::new("d");
        let bound = IndexBound { values: vec![nested(depth)], inclusive: true };
        spec.index = Some(IndexRange { index: "a".into(), lo: Some(bound), hi: None, reverse: false });
        let got = on_a_small_stack(|| db.query::<D>(&spec).map(|r| r.len()));
        let key = [nested(depth)];
        let found = on_a_small_stack(|| {
            let r = db.begin_read().unwrap();
            let c = r.collection("d").unwrap();
            c.find_unique("u", &key).map(|f| f.is_some())
        });
        // The collection's own index_range (the second review).
        let ranged = on_a_small_stack(|| {
            let r = db.begin_read().unwrap();
            let c = r.collection("d").unwrap();
            let n = c.index_range("a", Some(&key[..]), Some(&key[..]), false)?.count()?;
            Ok::<_, Error>(n)
        });
        key.into_iter().for_each(dismantle);
        if depth == 128 {
            assert_eq!(got.unwrap(), 0);
            assert!(!found.unwrap());
            assert_eq!(ranged.unwrap(), 0);
        } else {
            for e in [
                got.map(|_| ()).unwrap_err(),
                found.map(|_| ()).unwrap_err(),
                ranged.map(|_| ()).unwrap_err(),
            ] {
                assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("deeper than 128")), "{e}");
            }
        }
        let lo = spec.index.take().unwrap().lo.unwrap();
        lo.values.into_iter().for_each(dismantle);
    }
}

#[test]
fn a_new_tree_name_holding_a_nul_is_refused() {
    // Collections and namespaces refused it already; a plain tree took it.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let e = w.create_tree("a\0b").unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("NUL")), "{e}");
    w.create_tree("a b").unwrap();
    w.commit().unwrap();
}

/// `IndexRange::key_range` is public: a bound nested far past what any
/// document may hold is refused before the (recursive) key encoding runs.
#[test]
fn index_range_key_range_refuses_deep_bounds() {
    let range = IndexRange {
        index: "by_x".into(),
        lo: Some(IndexBound { values: vec![nested(40_000)], inclusive: true }),
        hi: None,
        reverse: false,
    };
    let got = on_a_small_stack(|| range.key_range().map(|r| r.is_some()));
    assert!(matches!(got, Err(Error::InvalidArgument(_))), "{got:?}");
    let IndexRange { lo, .. } = range;
    lo.into_iter().flat_map(|b| b.values).for_each(dismantle);
}

//! What session 39's helpers found in the Rust API.

use obj_engine::query::FieldPath;
use obj_engine::{Db, Document, Error, Filter, QuerySpec, Value};
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

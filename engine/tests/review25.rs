//! Review 25: what a Rust embedder's review found.
//!
//! - A `Tree` handle to a dropped tree reached the new tree of the same
//!   name when that tree took over the dropped one's root page (and so did
//!   a handle from a rolled-back `create_tree`, or from another file): the
//!   handle was checked by name and root only. Trees now carry a serial.
//! - `Collection::index_range` with equal bounds holding NaN found nothing:
//!   the bounds were compared with `PartialEq`, where NaN is not NaN, not
//!   with the engine's value order, where it is.

use obj_engine::{CollectionOptions, Db, Error, IndexSpec, ReadableTxn, Value};

fn stale(r: obj_engine::Result<impl std::fmt::Debug>) {
    match r {
        Err(Error::InvalidArgument(m)) if m.contains("stale") => {}
        other => panic!("expected a stale-handle error, got {other:?}"),
    }
}

#[test]
fn a_dropped_trees_handle_does_not_reach_its_successor_at_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("s.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"k", b"old").unwrap();
    w.commit().unwrap();
    let old = db.begin_read().unwrap().open_tree("t").unwrap();

    let mut w = db.begin_write().unwrap();
    w.drop_tree("t").unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    let new = w.create_tree("t").unwrap();
    w.insert(&new, b"k", b"new").unwrap();
    w.commit().unwrap();
    assert_eq!(old.root(), new.root(), "the new tree took over the root page");

    let r = db.begin_read().unwrap();
    stale(r.get(&old, b"k"));
    assert_eq!(r.get(&new, b"k").unwrap().as_deref(), Some(&b"new"[..]));
    drop(r);
    let mut w = db.begin_write().unwrap();
    stale(w.insert(&old, b"via-stale", b"x"));
    w.rollback();
    let r = db.begin_read().unwrap();
    assert_eq!(r.count(&r.open_tree("t").unwrap()).unwrap(), 1);

    // Dropped and created again inside one write transaction.
    let mut w = db.begin_write().unwrap();
    let before = w.open_tree("t").unwrap();
    w.drop_tree("t").unwrap();
    let again = w.create_tree("t").unwrap();
    assert_eq!(before.root(), again.root());
    stale(w.insert(&before, b"a", b"b"));
    w.insert(&again, b"a", b"b").unwrap();
    w.commit().unwrap();
}

#[test]
fn a_rolled_back_or_foreign_handle_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("r.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let ghost = w.create_tree("g").unwrap();
    w.rollback();
    let mut w = db.begin_write().unwrap();
    let real = w.create_tree("g").unwrap();
    w.insert(&real, b"k", b"v").unwrap();
    w.commit().unwrap();
    assert_eq!(ghost.root(), real.root());
    stale(db.begin_read().unwrap().get(&ghost, b"k"));

    // The same history in another file: same name, same root, other tree.
    let other = Db::open(dir.path().join("o.obj")).unwrap();
    let mut w = other.begin_write().unwrap();
    let foreign = w.create_tree("g").unwrap();
    w.commit().unwrap();
    assert_eq!(foreign.root(), real.root());
    stale(db.begin_read().unwrap().get(&foreign, b"k"));

    // A handle that is not stale keeps working across transactions,
    // reopen and compaction (which moves roots but keeps serials).
    let kept = db.begin_read().unwrap().open_tree("g").unwrap();
    assert_eq!(db.begin_read().unwrap().get(&kept, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    db.compact().unwrap();
    let after = db.begin_read().unwrap().open_tree("g").unwrap();
    let mut w = db.begin_write().unwrap();
    w.insert(&after, b"k2", b"v2").unwrap();
    w.commit().unwrap();
    drop(db);
    let db = Db::open(dir.path().join("r.obj")).unwrap();
    let r = db.begin_read().unwrap();
    assert_eq!(r.count(&r.open_tree("g").unwrap()).unwrap(), 2);
    db.integrity_check().unwrap();
}

#[test]
fn index_range_equal_bounds_with_nan_mean_equality() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("n.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.create_collection("c", CollectionOptions { raw: false }).unwrap();
    {
        let mut c = tx.collection_mut("c").unwrap();
        c.create_index(IndexSpec::standard("x", "x").unwrap()).unwrap();
        c.create_index(IndexSpec::new("xy", obj_engine::IndexKind::Standard, &["x", "y"]).unwrap()).unwrap();
        for v in [Value::Float(f64::NAN), Value::Float(1.0), Value::Int(3)] {
            c.insert(&Value::Map(vec![("x".into(), v), ("y".into(), Value::Int(0))])).unwrap();
        }
    }
    tx.commit().unwrap();
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    let ids = |index: &str, lo: &[Value], hi: &[Value]| -> Vec<u64> {
        c.index_range(index, Some(lo), Some(hi), false).unwrap().map(|e| e.unwrap().0).collect()
    };
    let nan = [Value::Float(f64::NAN)];
    assert_eq!(ids("x", &nan, &nan), vec![1]);
    assert_eq!(ids("xy", &nan, &nan), vec![1]);
    assert_eq!(
        ids("xy", &[Value::Float(f64::NAN), Value::Int(0)], &[Value::Float(f64::NAN), Value::Int(0)]),
        vec![1]
    );
    // 1 and 1.0 are one number in the engine's order: equality too.
    assert_eq!(ids("x", &[Value::Int(1)], &[Value::Float(1.0)]), vec![2]);
    assert_eq!(ids("x", &[Value::Int(3)], &[Value::Int(3)]), vec![3]);
}

#[test]
fn building_an_index_over_a_value_too_long_for_a_key_names_index_and_document() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("k.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.create_collection("c", CollectionOptions { raw: false }).unwrap();
    {
        let mut c = tx.collection_mut("c").unwrap();
        c.insert(&Value::Map(vec![("s".into(), Value::from("short"))])).unwrap();
        c.insert(&Value::Map(vec![("s".into(), Value::from("x".repeat(5000)))])).unwrap();
    }
    tx.commit().unwrap();
    let e = db.create_index("c", IndexSpec::standard("by_s", "s").unwrap()).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(m.contains("\"by_s\"") && m.contains("\"c\"") && m.contains("document 2"), "{m}");
}

//! Review 16: what a Rust user of the engine met that earlier tests did not.
//!
//! - The typed `Db` methods looked a collection up in the local catalog
//!   only, so `Db::get::<T>` of an attached `ns.coll` was `None`, `all`
//!   empty, and `update` / `delete` said "no such document" instead of
//!   refusing a write to a read-only database.
//! - A filter built in Rust had no depth limit (the JSON form stops at
//!   128), and a query walks its filter recursively: ten thousand levels
//!   overflowed a thread's stack and aborted the process; so did
//!   `QuerySpec::to_json` (now written without recursion).

use obj_engine::{Db, Document, Error, Filter, IndexSpec, QuerySpec, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Event {
    n: u64,
}

impl Document for Event {
    const COLLECTION: &'static str = "events";
    fn indexes() -> Vec<IndexSpec> {
        vec![IndexSpec::unique("by_n", "n").unwrap()]
    }
}

/// The same documents, read through the namespace they are attached under.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Archived {
    n: u64,
}

impl Document for Archived {
    const COLLECTION: &'static str = "arch.events";
}

#[test]
fn typed_reads_reach_attached_collections_and_typed_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let src = Db::open(dir.path().join("src.obj")).unwrap();
        src.insert_many(&(0..10).map(|n| Event { n }).collect::<Vec<_>>()).unwrap();
        src.close().unwrap();
    }
    let db = Db::open(dir.path().join("host.obj")).unwrap();
    db.attach(dir.path().join("src.obj"), "arch").unwrap();
    assert_eq!(db.get::<Archived>(4).unwrap(), Some(Archived { n: 3 }));
    assert_eq!(db.get::<Archived>(99).unwrap(), None);
    assert_eq!(
        db.get_many::<Archived>(&[1, 99, 10]).unwrap(),
        vec![Some(Archived { n: 0 }), None, Some(Archived { n: 9 })]
    );
    assert_eq!(db.all::<Archived>().unwrap().len(), 10);
    let q = QuerySpec::new("arch.events").with_filter(Filter::ge("n", 7).unwrap());
    assert_eq!(
        db.query::<Archived>(&q).unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    assert_eq!(db.find_unique::<Archived>("by_n", &[Value::Int(3)]).unwrap(), Some((4, Archived { n: 3 })));
    let read_only =
        |r: Result<bool, Error>| matches!(r, Err(Error::InvalidArgument(m)) if m.contains("read-only"));
    assert!(read_only(db.update::<Archived>(1, |a| {
        a.n = 99;
        Ok(())
    })));
    assert!(read_only(db.delete::<Archived>(1)));
    assert!(read_only(db.update::<Archived>(999, |_| Ok(()))), "refused even for an id that is not there");
    assert_eq!(db.get::<Archived>(1).unwrap(), Some(Archived { n: 0 }));
    // A namespace that is not attached is an ordinary (missing) collection.
    assert_eq!(db.get::<Event>(1).unwrap(), None);
    db.detach("arch").unwrap();
    assert_eq!(db.get::<Archived>(4).unwrap(), None);
}

#[test]
fn a_filter_deeper_than_the_json_limit_is_refused_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    db.insert(&Event { n: 1 }).unwrap();
    let mut nots = Filter::eq("n", 1).unwrap();
    for _ in 0..10_000 {
        nots = !nots;
    }
    let mut ands = Filter::eq("n", 1).unwrap();
    for _ in 0..10_000 {
        ands = Filter::And(vec![ands, Filter::True]);
    }
    let rx = db.begin_read().unwrap();
    let c = rx.collection("events").unwrap();
    for f in [nots, ands] {
        assert!(f.nesting_depth() > 10_000);
        let spec = QuerySpec::new("events").with_filter(f);
        let deep = |r: Result<(), Error>| matches!(r, Err(Error::InvalidArgument(m)) if m.contains("deeper than 128"));
        assert!(deep(c.query(&spec).map(drop)));
        assert!(deep(c.query_count(&spec).map(drop)));
        assert!(deep(c.explain(&spec).map(drop)));
        assert!(deep(db.query::<Event>(&spec).map(drop)));
        // Its JSON form is written without recursion, and refused when read.
        let json = spec.to_json();
        assert!(
            matches!(QuerySpec::from_json(&json), Err(Error::InvalidArgument(m)) if m.contains("deeper than 128"))
        );
    }
    // At the limit a filter still runs.
    let mut at_limit = Filter::eq("n", 1).unwrap();
    while at_limit.nesting_depth() < 128 {
        at_limit = Filter::And(vec![at_limit]);
    }
    assert_eq!(at_limit.nesting_depth(), 128);
    assert_eq!(c.query_count(&QuerySpec::new("events").with_filter(at_limit)).unwrap(), 1);
    // A filter whose JSON form nests within the JSON limit reads back.
    let mut nots = Filter::eq("n", 1).unwrap();
    for _ in 0..100 {
        nots = !nots;
    }
    let spec = QuerySpec::new("events").with_filter(nots);
    assert_eq!(QuerySpec::from_json(&spec.to_json()).unwrap(), spec);
}

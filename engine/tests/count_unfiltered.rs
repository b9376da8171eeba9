//! A count with no filter (no index range, no `after_id`) is the id tree's
//! entry count, with offset and limit applied, whatever the sort: the same
//! number a walk of the results gives, also in a write transaction with
//! its own uncommitted writes. (Before, it walked every document: 4 ms a
//! count at 100k documents, 49 ms at 400k, where `Collection::count` is O(1).)

use obj_engine::doc::json::from_json_str;
use obj_engine::query::QuerySpec;
use obj_engine::{Db, IndexSpec};

fn spec(s: &str) -> QuerySpec {
    QuerySpec::from_json(s).unwrap()
}

#[test]
fn an_unfiltered_count_is_the_number_of_results() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    for i in 0..300 {
        // every third document has no "k": an index on k cannot serve every document
        let doc =
            if i % 3 == 0 { format!(r#"{{"n":{i}}}"#) } else { format!(r#"{{"n":{i},"k":{}}}"#, i % 7) };
        c.insert(&from_json_str(&doc).unwrap()).unwrap();
    }
    c.create_index(IndexSpec::standard("k", "k").unwrap()).unwrap();
    for id in (1..300).step_by(5) {
        c.delete(id).unwrap();
    }
    drop(c);
    let queries = [
        r#"{"collection":"c"}"#,
        r#"{"collection":"c","offset":10}"#,
        r#"{"collection":"c","offset":1000}"#,
        r#"{"collection":"c","limit":7}"#,
        r#"{"collection":"c","offset":230,"limit":50}"#,
        r#"{"collection":"c","sort":[{"field":"k"}]}"#,
        r#"{"collection":"c","sort":[{"field":"n","order":"desc"}],"limit":3}"#,
        r#"{"collection":"c","count_only":true,"offset":5}"#,
    ];
    let check = |coll: &dyn Fn(&QuerySpec) -> (u64, u64)| {
        for q in queries {
            let (counted, walked) = coll(&spec(q));
            assert_eq!(counted, walked, "{q}");
        }
    };
    // In the write transaction, with its deletes not yet committed.
    {
        let c = w.collection("c").unwrap();
        assert_eq!(c.query_count(&spec(r#"{"collection":"c"}"#)).unwrap(), 240);
        check(&|s| {
            let walk = QuerySpec { count_only: false, ..s.clone() };
            (
                c.query_count(s).unwrap(),
                c.query(&walk).unwrap().collect::<Result<Vec<_>, _>>().unwrap().len() as u64,
            )
        });
    }
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let c = r.collection("c").unwrap();
    check(&|s| {
        let walk = QuerySpec { count_only: false, ..s.clone() };
        (
            c.query_count(s).unwrap(),
            c.query(&walk).unwrap().collect::<Result<Vec<_>, _>>().unwrap().len() as u64,
        )
    });
}

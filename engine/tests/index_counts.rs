//! Counting, and skipping an offset, through an index whose every entry in
//! the plan's ranges is a result (an exact plan over a single-valued index)
//! reads the entries alone, not the documents. The results must stay those
//! of a scan: checked here on collections with and without list values (a
//! list makes the index multi-valued, and the documents are read again).

use obj_engine::doc::json::from_json_str;
use obj_engine::query::QuerySpec;
use obj_engine::{Db, IndexKind, IndexSpec};

macro_rules! ids {
    ($c:expr, $q:expr) => {
        $c.query($q).unwrap().map(|r| r.unwrap().0).collect::<Vec<u64>>()
    };
}

/// Counts and offset pages of each filter through the planner's index
/// against a scan's, on collection handle `$c`.
macro_rules! check {
    ($c:expr, $name:expr, $filters:expr) => {{
        let c = $c;
        let mut answered = 0;
        for f in $filters {
            for (offset, limit) in [(0, None), (3, None), (7, Some(5)), (1000, None), (0, Some(0))] {
                let mut q =
                    QuerySpec::from_json(&format!(r#"{{"collection":"{}","filter":{f}}}"#, $name)).unwrap();
                q.offset = offset;
                q.limit = limit;
                let plan = c.explain(&q).unwrap();
                answered += plan.contains("filter answered by the index") as usize;
                let page = |all: &[u64]| -> Vec<u64> {
                    all.iter()
                        .copied()
                        .skip(offset as usize)
                        .take(limit.unwrap_or(u64::MAX) as usize)
                        .collect()
                };
                let mut scan = q.clone();
                (scan.after_id, scan.offset, scan.limit) = (Some(0), 0, None);
                let want = page(&ids!(c, &scan)).len() as u64;
                assert_eq!(c.query(&q).unwrap().count().unwrap(), want, "{f} {offset} {limit:?}: {plan}");
                // Skipping through the index yields the same documents as
                // reading them all and dropping the first ones.
                let mut whole = q.clone();
                (whole.offset, whole.limit) = (0, None);
                assert_eq!(ids!(c, &q), page(&ids!(c, &whole)), "{f} {offset} {limit:?}: {plan}");
            }
        }
        answered
    }};
}

#[test]
fn counts_and_offsets_through_an_index_match_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    let filters = [
        r#"{"eq":["a",2]}"#,
        r#"{"in":["a",[0,3]]}"#,
        r#"{"and":[{"ge":["a",1]},{"lt":["a",3]}]}"#,
        r#"{"and":[{"eq":["a",1]},{"gt":["b",40]}]}"#,
        r#"{"eq":["u",17]}"#,
        r#"{"gt":["u",350]}"#,
        r#"{"and":[{"eq":["a",1]},{"gt":["n",100]}]}"#,
    ];
    for lists in [false, true] {
        let name = if lists { "with_lists" } else { "plain" };
        let mut w = db.begin_write().unwrap();
        let mut c = w.collection_mut(name).unwrap();
        for i in 0..500u64 {
            let a = if lists && i % 50 == 0 { format!("[{}, 9]", i % 4) } else { format!("{}", i % 4) };
            let doc = format!(r#"{{"n":{i},"a":{a},"b":{},"u":{i}}}"#, (i * 7919) % 101);
            c.insert(&from_json_str(&doc).unwrap()).unwrap();
        }
        c.create_index(IndexSpec::new("a", IndexKind::Standard, &["a"]).unwrap()).unwrap();
        c.create_index(IndexSpec::new("ab", IndexKind::Standard, &["a", "b"]).unwrap()).unwrap();
        c.create_index(IndexSpec::new("u", IndexKind::Unique, &["u"]).unwrap()).unwrap();
        drop(c);
        // Inside the writing transaction (its own uncommitted state), then after it.
        let answered = check!(w.collection(name).unwrap(), name, filters);
        w.commit().unwrap();
        let r = db.begin_read().unwrap();
        assert_eq!(check!(r.collection(name).unwrap(), name, filters), answered);
        // Six of the filters are answered by an index (the seventh reads a
        // field no index has), at each offset and limit.
        assert_eq!(answered, 6 * 5, "{name}");
    }
}

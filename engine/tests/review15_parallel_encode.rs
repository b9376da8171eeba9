//! Review 15: JSON arrays of at least `PARALLEL_ENCODE_BYTES` are encoded
//! on a second thread while `CollectionMut::insert_json_many` stores them in
//! runs (commit ea26863). The stored state must be what small arrays of the
//! same documents make, and a failure anywhere must leave nothing behind.

use std::cell::RefCell;
use std::ops::Bound;

use obj_engine::doc::collection::PARALLEL_ENCODE_BYTES;
use obj_engine::doc::json::{from_json_str, to_json_vec, MAX_NESTING};
use obj_engine::{Db, Error, IndexKind, IndexSpec, ReadableTxn, Value, WriteTxn};

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    (dir, db)
}

fn entries<T: ReadableTxn>(txn: &T, tree: &str) -> Entries {
    let t = txn.open_tree(tree).unwrap();
    txn.range(&t, Bound::Unbounded, Bound::Unbounded, false).unwrap().map(|e| e.unwrap()).collect()
}

/// Numbers at the edges of what the engine keeps exactly (and past them).
const NUMBERS: [&str; 13] = [
    "0",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "-9223372036854776000",
    "1.5",
    "-0.0",
    "1e300",
    "12345678901234568000000",
    "-0",
    "5e-324",
];

/// Indexed documents: unicode and escaped keys and strings, nested objects,
/// edge numbers; field names new to the dictionary keep appearing (some
/// nested), the indexed `late.id` and `tag` only appear late, document 5000
/// alone encodes larger than a run, and document 6000 is nested as deep as
/// allowed.
fn doc(i: usize) -> String {
    let mut s = format!(
        r#"{{"email":"e{i}","n":{},"s":"caf\u00e9 \ud83d\ude00 \"q\" \\ \n é😀 {i}","ключ":{i},"k\u00e9y":[{i},{{"c":"x{}"}}],"nest":{{"a":{{"b":[{},{{"d":null,"t":true,"f":false}}]}}}},"pad":"{}""#,
        NUMBERS[i % NUMBERS.len()],
        i % 5,
        i % 7,
        "p".repeat(i % 250)
    );
    if i >= 3000 && i.is_multiple_of(97) {
        s += &format!(r#","f{i}":{i},"deep":{{"g{i}":[{{"h{i}":"\u2603"}}]}}"#);
    }
    if i >= 7000 {
        s += &format!(r#","late":{{"id":"L{i}","x":{}}}"#, i % 11);
    }
    if i >= 8950 {
        s += &format!(r#","tag":"t{}""#, i % 3);
    }
    if i == 5000 {
        s += &format!(r#","huge":"{}","after_huge":1"#, "h".repeat(300 << 10));
    }
    if i == 6000 {
        s += &format!(r#","deepest":{}1{}"#, "[".repeat(MAX_NESTING - 1), "]".repeat(MAX_NESTING - 1));
    }
    s.push('}');
    s
}

fn array(docs: &[String]) -> String {
    format!("[{}]", docs.join(","))
}

/// The indexes of the collections the tests fill (one on a field no
/// document has, one compound over a late field).
fn index_specs() -> Vec<IndexSpec> {
    vec![
        IndexSpec::unique("email", "email").unwrap(),
        IndexSpec::unique("late_u", "late.id").unwrap(),
        IndexSpec::standard("tag", "tag").unwrap(),
        IndexSpec::multi("key", "kéy").unwrap(),
        IndexSpec::standard("nb", "nest.a.b").unwrap(),
        IndexSpec::new("cmp", IndexKind::Standard, &["late.x", "n"]).unwrap(),
        IndexSpec::standard("never", "never_there").unwrap(),
    ]
}

fn create(w: &mut WriteTxn, coll: &str) {
    let mut c = w.collection_mut(coll).unwrap();
    for spec in index_specs() {
        c.create_index(spec).unwrap();
    }
}

/// Everything stored for `coll`: its metadata record (but for the next id
/// mark), documents, name dictionary and index trees.
fn snapshot<T: ReadableTxn>(txn: &T, coll: &str) -> Vec<Entries> {
    let t = txn.open_tree("$collections").unwrap();
    let mut meta = txn.get(&t, coll.as_bytes()).unwrap().unwrap();
    // (postcard: the raw flag, then the next id mark as a varint, which a
    // failed batch may raise to the next id without changing what it means,
    // then the index declarations)
    let mark = 1 + meta[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    meta.drain(1..mark);
    let mut all = vec![vec![(Vec::new(), meta)], entries(txn, &format!("$docs/{coll}"))];
    all.push(entries(txn, &format!("$names/{coll}")));
    for spec in index_specs() {
        all.push(entries(txn, &format!("$index/{coll}/{}", spec.name)));
    }
    all
}

/// Asserts that `a` and `b` hold the same stored state (part by part, so a
/// difference names the part).
fn same_state<T: ReadableTxn>(txn: &T, a: &str, b: &str) {
    let (sa, sb) = (snapshot(txn, a), snapshot(txn, b));
    let parts = ["meta", "docs", "names"].into_iter().map(String::from);
    let parts = parts.chain(index_specs().into_iter().map(|s| format!("index {}", s.name)));
    for ((x, y), part) in sa.iter().zip(&sb).zip(parts) {
        assert!(
            x.len() == y.len() && x == y,
            "{a} and {b} differ in {part} ({} and {} entries)",
            x.len(),
            y.len()
        );
    }
}

/// Inserts `docs` with arrays each below `PARALLEL_ENCODE_BYTES` (the
/// direct path on the calling thread), `check_count` accepting anything.
fn insert_small(w: &mut WriteTxn, coll: &str, docs: &[String], version: u32) -> Vec<u64> {
    let mut c = w.collection_mut(coll).unwrap();
    let (mut ids, mut from) = (Vec::new(), 0);
    while from < docs.len() {
        let (mut to, mut bytes) = (from, 2);
        while to < docs.len() && (to == from || bytes + docs[to].len() + 1 < PARALLEL_ENCODE_BYTES / 2) {
            bytes += docs[to].len() + 1;
            to += 1;
        }
        let part = array(&docs[from..to]);
        assert!(part.len() < PARALLEL_ENCODE_BYTES);
        ids.extend(c.insert_json_many(part.as_bytes(), version, |_| Ok(())).unwrap());
        from = to;
    }
    ids
}

/// Inserts `docs` as one large array (the two-thread path).
fn insert_big(w: &mut WriteTxn, coll: &str, docs: &[String], version: u32) -> Result<Vec<u64>, Error> {
    let text = array(docs);
    assert!(text.len() >= PARALLEL_ENCODE_BYTES, "{} bytes", text.len());
    w.collection_mut(coll).unwrap().insert_json_many(text.as_bytes(), version, |_| Ok(()))
}

/// A large array whose new field names (some nested, some of indexed
/// fields first seen in late runs) keep coming, with a document larger
/// than a run and one nested to the limit, stores the same bytes, names,
/// index entries and metadata as the same documents in small arrays;
/// also after commit and reopening, and the database checks clean.
#[test]
fn late_names_and_late_indexed_fields_store_what_small_arrays_do() {
    let docs: Vec<String> = (0..9000).map(doc).collect();
    let (dir, db) = open();
    let mut w = db.begin_write().unwrap();
    create(&mut w, "small");
    create(&mut w, "big");
    let small = insert_small(&mut w, "small", &docs, 7);
    let big = insert_big(&mut w, "big", &docs, 7).unwrap();
    assert_eq!(big, (1..=9000).collect::<Vec<u64>>());
    assert_eq!(small, big);
    same_state(&w, "small", "big");
    w.commit().unwrap();
    db.integrity_check().unwrap();
    let check = |db: &Db| {
        let rx = db.begin_read().unwrap();
        same_state(&rx, "small", "big");
        let c = rx.collection("big").unwrap();
        for (i, text) in docs.iter().enumerate().step_by(7).chain([(5000, &docs[5000]), (6000, &docs[6000])])
        {
            assert_eq!(
                c.get_versioned(i as u64 + 1).unwrap(),
                Some((7, from_json_str(text).unwrap())),
                "doc {i}"
            );
        }
        let late = c.find_unique("late_u", &[Value::from("L8999")]).unwrap().map(|(id, _)| id);
        assert_eq!(late, Some(9000));
    };
    check(&db);
    drop(db);
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    db.integrity_check().unwrap();
    check(&db);
}

/// Every kind of failure, early, in the middle and in the last element of
/// a large array (a unique violation against a stored document or one of
/// the same batch, also on an index whose field appears only late; an
/// element that is not an object; text after the `]`; numbers, strings,
/// nesting, keys and bytes that only the general path can word; an index
/// key too long) leaves the documents, index entries, metadata and next id
/// as they were, the name dictionary only extended, and the transaction
/// usable: the same array without the fault then stores what small arrays do.
#[test]
fn a_failure_anywhere_leaves_nothing_behind() {
    let base: Vec<String> = (0..1000).map(doc).collect();
    let batch: Vec<String> = (1000..8000).map(doc).collect();
    let (_dir, db) = open();
    let mut w = db.begin_write().unwrap();
    create(&mut w, "c");
    create(&mut w, "reference");
    insert_small(&mut w, "c", &base, 0);
    let before = snapshot(&w, "c");
    let next = w.collection("c").unwrap().next_id();
    let with = |at: usize, bad: &str| {
        let mut docs = batch.clone();
        docs.insert(at.min(docs.len()), bad.to_owned());
        array(&docs)
    };
    let last = batch.len();
    let deep = format!(r#"{{"v":{}1{}}}"#, "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
    let long_key = format!(r#"{{"email":"{}"}}"#, "k".repeat(60_000));
    let mut bad_utf8 = with(last, r#"{"s":"@"}"#).into_bytes();
    let at = bad_utf8.len() - 4;
    bad_utf8[at] = 0xFF;
    let cases: Vec<(Vec<u8>, bool, &str)> = vec![
        (with(0, r#"{"email":"e5"}"#).into(), true, "first document against a stored one"),
        (with(20, r#"{"email":"e1010"}"#).into(), true, "first run against the same run"),
        (with(3000, r#"{"email":"e1010"}"#).into(), true, "middle document against an earlier run"),
        (with(last, r#"{"email":"e7999"}"#).into(), true, "last document against the same batch"),
        (with(last, r#"{"late":{"id":"L7000"}}"#).into(), true, "late index, last document"),
        (with(1, "1").into(), false, "not an object, first run"),
        (with(4000, "null").into(), false, "not an object, middle"),
        (with(last, "[]").into(), false, "not an object, last"),
        (format!("{} x", array(&batch)).into(), false, "garbage after ]"),
        (format!("{}[]", array(&batch)).into(), false, "a second array"),
        (array(&batch).trim_end_matches(']').to_owned().into(), false, "no ]"),
        (with(last, r#"{"a":1e400}"#).into(), false, "number out of range, last"),
        (with(2000, r#"{"s":"\ud800"}"#).into(), false, "lone surrogate, middle"),
        (with(last, &deep).into(), false, "too deep, last"),
        (with(last, r#"{"a":1,"a":2}"#).into(), false, "repeated key, last"),
        (with(last, r#"{"\u0024bogus":1}"#).into(), false, "escaped unknown $ key, last"),
        (with(last, r#"{"t":{"\u0024ts":1.5}}"#).into(), false, "escaped bad $ts, last"),
        (with(last, &long_key).into(), false, "index key too long, last"),
        (bad_utf8, false, "invalid UTF-8, last"),
    ];
    for (text, unique, what) in &cases {
        assert!(text.len() >= PARALLEL_ENCODE_BYTES, "{what}");
        let names = snapshot(&w, "c")[2].clone();
        let mut c = w.collection_mut("c").unwrap();
        let e = c.insert_json_many(text, 0, |_| Ok(())).unwrap_err();
        assert!(
            if *unique { matches!(e, Error::Constraint(_)) } else { matches!(e, Error::InvalidArgument(_)) },
            "{what}: {e:?}"
        );
        assert_eq!((c.count().unwrap(), c.read().next_id()), (1000, next), "{what}");
        drop(c);
        let now = snapshot(&w, "c");
        for (part, (x, y)) in before.iter().zip(&now).enumerate().filter(|(p, _)| *p != 2) {
            assert!(x == y, "{what}: part {part} changed");
        }
        assert!(now[2].starts_with(&names), "{what}: names renumbered");
    }
    // The transaction goes on: the batch itself, then the same documents
    // small, in another collection.
    let ids = insert_big(&mut w, "c", &batch, 0).unwrap();
    assert_eq!(ids, (next..next + batch.len() as u64).collect::<Vec<_>>());
    insert_small(&mut w, "reference", &base, 0);
    insert_small(&mut w, "reference", &batch, 0);
    let (c, r) = (w.collection("c").unwrap(), w.collection("reference").unwrap());
    for id in 1..=8000 {
        assert_eq!(c.get_versioned(id).unwrap(), r.get_versioned(id).unwrap(), "doc {id}");
    }
    let (ours, theirs) = (snapshot(&w, "c"), snapshot(&w, "reference"));
    for part in (0..ours.len()).filter(|&p| p != 1 && p != 2) {
        assert!(ours[part] == theirs[part], "part {part}");
    }
    w.commit().unwrap();
    db.integrity_check().unwrap();
}

/// `check_count` sees a growing count and the whole array's count last;
/// a refusal before anything is stored, after the first run, in the middle
/// or only at the last run leaves nothing, and its error is the one returned.
#[test]
fn a_refused_count_at_any_run_leaves_nothing() {
    let docs: Vec<String> = (0..8000).map(doc).collect();
    let text = array(&docs);
    let (_dir, db) = open();
    let mut w = db.begin_write().unwrap();
    create(&mut w, "c");
    insert_small(&mut w, "c", &(8000..8010).map(doc).collect::<Vec<_>>(), 0);
    let before = snapshot(&w, "c");
    for limit in [0, 1, 4000, 7999, 8000] {
        let seen = RefCell::new(Vec::new());
        let check = |n: usize| {
            seen.borrow_mut().push(n);
            if n > limit {
                return Err(Error::invalid(format!("refused {n}")));
            }
            Ok(())
        };
        let mut c = w.collection_mut("c").unwrap();
        let result = c.insert_json_many(text.as_bytes(), 0, check);
        let seen = seen.into_inner();
        assert!(seen.windows(2).all(|p| p[0] < p[1]), "{limit:?}: {seen:?}");
        if limit < 8000 {
            let e = result.unwrap_err();
            assert!(e.to_string().contains(&format!("refused {}", seen.last().unwrap())), "{e}");
            assert!(*seen.last().unwrap() > limit && seen[..seen.len() - 1].iter().all(|&n| n <= limit));
            assert_eq!((c.count().unwrap(), c.read().next_id()), (10, 11));
            drop(c);
            let now = snapshot(&w, "c");
            for (part, (x, y)) in before.iter().zip(&now).enumerate().filter(|(p, _)| *p != 2) {
                assert!(x == y, "{limit:?}: part {part} changed");
            }
            assert!(now[2].starts_with(&before[2]), "{limit:?}: names renumbered");
        } else {
            assert_eq!(result.unwrap().len(), 8000);
            assert_eq!(seen.last(), Some(&8000));
            assert!(seen.len() > 3, "stored in runs: {seen:?}");
        }
    }
}

/// A special form that only the last document has, literal (`"$bytes"`,
/// found before anything is encoded) or with its `$` escaped (only found
/// when the encoder reaches it, after runs were stored), sends the whole
/// array down the general path: it succeeds with the same state as small
/// arrays make, names included.
#[test]
fn a_special_form_only_in_the_last_document_takes_the_general_path() {
    let tails = [
        r#"{"email":"b","b":{"$bytes":"AAE="},"new_b":1}"#,
        r#"{"email":"t","t":{"\u0024ts":5,"\u0024tz":3600},"new_t":[1]}"#,
        r#"{"email":"k","\u0024\u0024k":1,"new_k":{"x":2}}"#,
        r#"{"email":"f","f":{"\u0024f64":"nan"},"late":{"id":"F"}}"#,
    ];
    let (_dir, db) = open();
    let mut w = db.begin_write().unwrap();
    for (k, tail) in tails.iter().enumerate() {
        let mut docs: Vec<String> = (0..4000).map(|i| doc(i + 3000 * (k % 2) + 4000)).collect();
        docs.push(tail.to_string());
        let (small, big) = (format!("small{k}"), format!("big{k}"));
        create(&mut w, &small);
        create(&mut w, &big);
        insert_small(&mut w, &small, &docs, 2);
        let ids = insert_big(&mut w, &big, &docs, 2).unwrap();
        assert_eq!(ids, (1..=4001).collect::<Vec<u64>>(), "{tail}");
        same_state(&w, &small, &big);
        let got = w.collection(&big).unwrap().get(4001).unwrap().unwrap();
        // (as JSON text: NaN is not equal to itself)
        assert_eq!(to_json_vec(&got), to_json_vec(&from_json_str(tail).unwrap()), "{tail}");
    }
    w.commit().unwrap();
    db.integrity_check().unwrap();
}

/// Rolling back a transaction after large batches (into a new collection
/// and into an existing one) leaves nothing of them: the new collection
/// is gone, the existing one as committed, and the next transaction's new
/// names continue the committed dictionary.
#[test]
fn rollback_after_a_large_batch_leaves_nothing() {
    let docs: Vec<String> = (3000..9000).map(doc).collect();
    let (_dir, db) = open();
    let mut w = db.begin_write().unwrap();
    create(&mut w, "e");
    insert_small(&mut w, "e", &(0..50).map(doc).collect::<Vec<_>>(), 0);
    w.commit().unwrap();
    let before = snapshot(&db.begin_read().unwrap(), "e");
    let mut w = db.begin_write().unwrap();
    assert_eq!(insert_big(&mut w, "e", &docs, 0).unwrap().len(), 6000);
    assert_eq!(insert_big(&mut w, "fresh", &docs, 0).unwrap().len(), 6000);
    assert_eq!(w.collection("e").unwrap().count().unwrap(), 6050);
    w.rollback();
    let rx = db.begin_read().unwrap();
    assert!(matches!(rx.collection("fresh"), Err(Error::NotFound(_))));
    assert!(snapshot(&rx, "e") == before);
    drop(rx);
    let mut w = db.begin_write().unwrap();
    let id = w.collection_mut("e").unwrap().insert_json(br#"{"zz_new":1}"#, 0).unwrap();
    assert_eq!(id, 51);
    let names = entries(&w, "$names/e");
    assert_eq!(names.len(), before[2].len() + 1);
    assert_eq!(names.last().unwrap(), &((before[2].len() as u32).to_be_bytes().to_vec(), b"zz_new".to_vec()));
    w.commit().unwrap();
    db.integrity_check().unwrap();
}

/// Running out of ids part-way through a large array (the next id raised
/// close to `u64::MAX`) fails the batch as a small one does, with the next
/// id restored, and smaller inserts still get the ids that were left.
#[test]
fn running_out_of_ids_in_a_large_array_leaves_nothing() {
    let docs: Vec<String> = (0..6000).map(doc).collect();
    let (_dir, db) = open();
    let mut w = db.begin_write().unwrap();
    create(&mut w, "c");
    let first = u64::MAX - 3000;
    w.collection_mut("c").unwrap().raise_next_id(first).unwrap();
    let e = insert_big(&mut w, "c", &docs, 0).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let small = array(&docs[..3001]);
    let e2 = w.collection_mut("c").unwrap().insert_json_many(small.as_bytes(), 0, |_| Ok(())).unwrap_err();
    assert_eq!(std::mem::discriminant(&e), std::mem::discriminant(&e2));
    let c = w.collection("c").unwrap();
    assert_eq!((c.count().unwrap(), c.next_id()), (0, first));
    assert!(entries(&w, "$index/c/email").is_empty());
    let ids = insert_small(&mut w, "c", &docs[..3000], 0);
    assert_eq!((ids[0], ids[2999]), (first, u64::MAX - 1));
    w.commit().unwrap();
    db.integrity_check().unwrap();
}

/// Large texts with few documents: documents spread over whitespace (all
/// of them in the one last run), an array of only whitespace (no
/// documents, nothing stored), and one large object instead of an array
/// (refused, nothing stored).
#[test]
fn large_texts_of_few_documents() {
    let gap = " \n\t\r".repeat(100 << 10);
    let docs = [doc(1), doc(7001), "{}".to_owned()];
    let spread = format!("{gap}[{gap}{}{gap}]{gap}", docs.join(&format!("{gap},{gap}")));
    let (_dir, db) = open();
    let mut w = db.begin_write().unwrap();
    create(&mut w, "c");
    create(&mut w, "ref");
    let mut c = w.collection_mut("c").unwrap();
    assert_eq!(c.insert_json_many(spread.as_bytes(), 4, |_| Ok(())).unwrap(), vec![1, 2, 3]);
    let empty = format!("[{gap}]");
    assert!(c.insert_json_many(empty.as_bytes(), 4, |_| Ok(())).unwrap().is_empty());
    let object = format!(r#"{{"a":"{}"}}"#, "x".repeat(PARALLEL_ENCODE_BYTES));
    assert!(matches!(c.insert_json_many(object.as_bytes(), 4, |_| Ok(())), Err(Error::InvalidArgument(_))));
    assert_eq!((c.count().unwrap(), c.read().next_id()), (3, 4));
    drop(c);
    insert_small(&mut w, "ref", &docs, 4);
    same_state(&w, "c", "ref");
    w.commit().unwrap();
    db.integrity_check().unwrap();
}

/// Several threads each inserting large arrays into their own database at
/// once store exactly their own documents (a repeated array fails whole on
/// its unique index), and each database checks clean.
#[test]
fn threads_insert_large_arrays_into_separate_databases() {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                s.spawn(move || {
                    let docs: Vec<String> = (0..5000).map(|i| doc(i + 1000 * t)).collect();
                    let (_dir, db) = open();
                    let mut w = db.begin_write().unwrap();
                    create(&mut w, "c");
                    let ids = insert_big(&mut w, "c", &docs, t as u32).unwrap();
                    assert_eq!(ids, (1..=5000).collect::<Vec<u64>>());
                    let e = insert_big(&mut w, "c", &docs, t as u32).unwrap_err();
                    assert!(matches!(e, Error::Constraint(_)), "{e:?}");
                    w.commit().unwrap();
                    db.integrity_check().unwrap();
                    let rx = db.begin_read().unwrap();
                    let c = rx.collection("c").unwrap();
                    assert_eq!(c.count().unwrap(), 5000);
                    for (i, text) in docs.iter().enumerate().step_by(3) {
                        let want = Some((t as u32, from_json_str(text).unwrap()));
                        assert_eq!(c.get_versioned(i as u64 + 1).unwrap(), want, "thread {t} doc {i}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

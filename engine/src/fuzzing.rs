//! The bodies of the fuzz targets in `fuzz/`, kept here so that ordinary
//! tests can replay the committed corpora without a fuzzing engine
//! (`engine/tests/fuzz_corpus.rs`). Each function takes arbitrary bytes and
//! panics only when it finds a bug: a panic inside the engine, a wrong
//! answer compared with a model, or an error of a kind the documentation
//! does not allow. Not part of the stable API.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::btree;
use crate::doc::codec::{decode_document, encode_document, encode_document_versioned, MemNameDict};
use crate::doc::json::{from_json_slice, from_json_str, to_json_string};
use crate::doc::json_direct::document_from_json;
use crate::doc::order::values_equal;
use crate::doc::value::Value;
use crate::error::Error;
use crate::options::Options;
use crate::query::spec::QuerySpec;
use crate::storage::page::{seal_page, MemPageStore, PageRead};
use crate::storage::sim::SimVfs;
use crate::txn::ReadableTxn;
use crate::Db;

const DB: &str = "/fuzz/db";
const WAL: &str = "/fuzz/db-wal";
const WAL_HEADER_LEN: usize = 64;
const FRAME_HEADER_LEN: usize = 24;

/// Splits fuzz input into a main file and a WAL. Layout: one flags byte
/// (bit 0: reseal the main file's page checksums, bit 1: reseal the WAL's
/// header and frame checksums, so that mutations reach the decoders behind
/// them), a little-endian u32 length of the main file, the main file, the
/// WAL.
pub fn split_db_input(data: &[u8]) -> (u8, Vec<u8>, Vec<u8>) {
    let flags = data.first().copied().unwrap_or(0);
    let rest = data.get(1..).unwrap_or(&[]);
    let len = rest.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4")) as usize);
    let rest = rest.get(4..).unwrap_or(&[]);
    let len = len.min(rest.len());
    (flags, rest[..len].to_vec(), rest[len..].to_vec())
}

/// The inverse of [`split_db_input`].
pub fn join_db_input(flags: u8, main: &[u8], wal: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(main.len() as u32).to_le_bytes());
    out.extend_from_slice(main);
    out.extend_from_slice(wal);
    out
}

/// The page size a main file claims (bytes 12..16 of the header), if sane.
fn claimed_page_size(main: &[u8], wal: &[u8]) -> usize {
    let from = |b: Option<&[u8]>| b.map(|b| u32::from_le_bytes(b.try_into().expect("4")) as usize);
    let size = from(main.get(12..16)).or_else(|| from(wal.get(8..12))).unwrap_or(4096);
    if size.is_power_of_two() && (4096..=65536).contains(&size) {
        size
    } else {
        4096
    }
}

fn reseal_main(main: &mut [u8], page_size: usize) {
    for (pgno, page) in main.chunks_exact_mut(page_size).enumerate() {
        seal_page(pgno as u32, page);
    }
}

fn reseal_wal(wal: &mut [u8], page_size: usize) {
    if wal.len() < WAL_HEADER_LEN {
        return;
    }
    let crc = crc32fast::hash(&wal[..60]);
    wal[60..64].copy_from_slice(&crc.to_le_bytes());
    let salt: [u8; 8] = wal[32..40].try_into().expect("8");
    let mut chain = crc32fast::hash(&wal[..60]);
    for frame in wal[WAL_HEADER_LEN..].chunks_exact_mut(FRAME_HEADER_LEN + page_size) {
        let pgno = u32::from_le_bytes(frame[..4].try_into().expect("4"));
        seal_page(pgno, &mut frame[FRAME_HEADER_LEN..]);
        frame[8..16].copy_from_slice(&salt);
        let mut h = crc32fast::Hasher::new_with_initial(chain);
        h.update(&frame[..16]);
        h.update(&frame[FRAME_HEADER_LEN..]);
        chain = h.finalize();
        frame[16..20].copy_from_slice(&chain.to_le_bytes());
    }
}

/// Errors that a damaged or foreign file may produce.
fn allowed_for_bad_file(e: &Error) -> bool {
    matches!(
        e,
        Error::Corruption { .. }
            | Error::InvalidArgument(_)
            | Error::Unsupported(_)
            // A damaged flags field can claim the file is encrypted.
            | Error::Encryption(_)
            | Error::Integrity(_)
            | Error::NotFound(_)
    )
}

/// Target `open_db`: opens arbitrary main-file and WAL bytes (see
/// [`split_db_input`]), reads every tree, runs `integrity_check`, commits
/// a small change and closes. The result must be a database or a
/// documented error; never a panic, a hang or an unbounded allocation.
pub fn open_db(data: &[u8]) {
    let (flags, mut main, mut wal) = split_db_input(data);
    let page_size = claimed_page_size(&main, &wal);
    if flags & 1 != 0 {
        reseal_main(&mut main, page_size);
    }
    if flags & 2 != 0 {
        reseal_wal(&mut wal, page_size);
    }
    let vfs = SimVfs::new();
    vfs.write_file(DB, &main);
    if !wal.is_empty() {
        vfs.write_file(WAL, &wal);
    }
    // Growth is bounded, so a runaway write loop fails rather than eats memory.
    vfs.set_capacity(Some(main.len() as u64 + wal.len() as u64 + (4 << 20)));
    let options = Options {
        vfs: Some(Arc::new(vfs.clone())),
        cache_size: 64 * 4096,
        busy_timeout: std::time::Duration::ZERO,
        ..Options::default()
    };
    let db = match Db::open_with(DB, options) {
        Ok(db) => db,
        Err(e) => {
            assert!(allowed_for_bad_file(&e), "open: {e:?}");
            return;
        }
    };
    let check = |e: Error, what: &str| {
        // The capacity limit may also answer a write.
        // The simulator's limits (capacity, largest file) may also answer a
        // write driven by a corrupt header; both are bounded sandboxes.
        let full = matches!(&e, Error::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EFBIG)));
        assert!(allowed_for_bad_file(&e) || full, "{what}: {e:?}");
    };
    if let Err(e) = db.integrity_check() {
        check(e, "integrity_check");
    }
    if let Err(e) = read_everything(&db) {
        check(e, "reading");
    }
    if let Err(e) = db.stat() {
        check(e, "stat");
    }
    let write = || -> crate::Result<()> {
        let mut w = db.begin_write()?;
        let t = w.create_tree("fuzz")?;
        w.insert(&t, b"key", &[7; 5000])?;
        w.commit()?;
        db.checkpoint()?;
        Ok(())
    };
    if let Err(e) = write() {
        check(e, "writing");
    }
    if let Err(e) = db.close() {
        check(e, "close");
    }
}

fn read_everything(db: &Db) -> crate::Result<()> {
    let r = db.begin_read()?;
    // Bounded: a corrupt catalog may be huge or cyclic.
    for name in r.list_trees()?.into_iter().take(64) {
        let t = r.open_tree(&name)?;
        for entry in r.range(&t, Bound::Unbounded, Bound::Unbounded, false)?.take(10_000) {
            entry?;
        }
        for entry in r.range(&t, Bound::Unbounded, Bound::Unbounded, true)?.take(100) {
            entry?;
        }
        r.get(&t, b"key")?;
    }
    Ok(())
}

/// Target `btree_ops`: a sequence of operations on one B+tree in memory,
/// compared with a `BTreeMap` after each step, then `btree::verify`.
pub fn btree_ops(data: &[u8]) {
    let mut input = data.iter().copied();
    let mut next = move || input.next();
    let page_size = [4096, 8192, 65536][next().unwrap_or(0) as usize % 3];
    let mut store = MemPageStore::new(page_size);
    let root = btree::create(&mut store).expect("create");
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let max_key = btree::max_key_len(store.usable_size());
    let mut steps = 0;
    while let Some(op) = next() {
        steps += 1;
        if steps > 2000 {
            break;
        }
        let key = |next: &mut dyn FnMut() -> Option<u8>| -> Vec<u8> {
            let len = next().unwrap_or(0);
            match len {
                // Short keys from a small alphabet collide often.
                0..=199 => (0..len % 5).map(|i| next().unwrap_or(i) % 4).collect(),
                200..=249 => (0..(len - 200) as usize * 3).map(|_| next().unwrap_or(0)).collect(),
                // Long keys, up to and past the limit.
                _ => vec![next().unwrap_or(0); max_key - 2 + (len as usize - 250)],
            }
        };
        match op % 6 {
            0 | 1 => {
                let k = key(&mut next);
                let len = match next().unwrap_or(0) {
                    b @ 0..=199 => b as usize,
                    b @ 200..=249 => (b as usize - 199) * 400,
                    b => (b as usize - 249) * 20_000,
                };
                let v: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(op)).collect();
                match btree::insert(&mut store, root, &k, &v) {
                    Ok(replaced) => {
                        assert!(k.len() <= max_key, "a {}-byte key was accepted", k.len());
                        assert_eq!(replaced, model.insert(k, v).is_some());
                    }
                    Err(Error::InvalidArgument(_)) => assert!(k.len() > max_key, "insert refused"),
                    Err(e) => panic!("insert: {e:?}"),
                }
            }
            2 => {
                let k = key(&mut next);
                let existed = btree::delete(&mut store, root, &k).expect("delete");
                assert_eq!(existed, model.remove(&k).is_some());
            }
            3 => {
                let k = key(&mut next);
                let got = btree::get(&store, root, &k).expect("get");
                assert_eq!(got.as_ref(), model.get(&k));
            }
            4 => {
                let lo = key(&mut next);
                let hi = key(&mut next);
                let reverse = next().unwrap_or(0) & 1 == 1;
                if lo <= hi {
                    let got: Vec<(Vec<u8>, Vec<u8>)> = btree::Range::new(
                        &store,
                        root,
                        Bound::Included(&lo[..]),
                        Bound::Excluded(&hi[..]),
                        reverse,
                    )
                    .expect("range")
                    .collect::<crate::Result<_>>()
                    .expect("range entries");
                    let mut want: Vec<(Vec<u8>, Vec<u8>)> =
                        model.range(lo.clone()..hi.clone()).map(|(k, v)| (k.clone(), v.clone())).collect();
                    if reverse {
                        want.reverse();
                    }
                    assert_eq!(got, want, "range {lo:?}..{hi:?} reverse {reverse}");
                }
            }
            _ => {
                if next().unwrap_or(0) < 16 {
                    btree::clear(&mut store, root).expect("clear");
                    model.clear();
                }
            }
        }
    }
    let entries = btree::verify(&store, root, &mut |_| Ok(())).expect("verify");
    assert_eq!(entries, model.len() as u64);
    let all: Vec<(Vec<u8>, Vec<u8>)> =
        btree::Range::new(&store, root, Bound::Unbounded, Bound::Unbounded, false)
            .expect("scan")
            .collect::<crate::Result<_>>()
            .expect("scan entries");
    assert!(all.iter().map(|(k, v)| (k, v)).eq(model.iter()));
    btree::destroy(&mut store, root).expect("destroy");
    assert_eq!(store.pages_in_use(), 0, "destroy leaks pages");
}

/// Target `doc_decode`: decodes arbitrary bytes as a stored document with
/// a small name dictionary; whatever decodes must survive an encode and
/// decode round trip unchanged.
pub fn doc_decode(data: &[u8]) {
    let dict = MemNameDict::from_names(["a", "b", "name", "tags", "n", "x.y", ""]).expect("dict");
    let Ok(value) = decode_document(data, &dict) else { return };
    let mut dict2 = dict.clone();
    let mut out = Vec::new();
    encode_document(&value, &mut dict2, &mut out).expect("a decoded document encodes");
    let again = decode_document(&out, &dict2).expect("a re-encoded document decodes");
    assert!(values_equal(&value, &again), "round trip changed {value:?} into {again:?}");
}

/// Target `doc_json`: parses arbitrary text as a JSON document; whatever
/// parses must print and parse back to an equal value. The direct
/// encoder (JSON straight to stored bytes) must agree with parsing then
/// encoding: the same bytes, or a refusal, never different bytes, and no
/// refusal of a plain-JSON object the general path accepts.
pub fn doc_json(data: &[u8]) {
    let mut dict = MemNameDict::new();
    let mut direct = Vec::new();
    let accepted = document_from_json(data, 5, &mut dict, &mut direct);
    let general = from_json_slice(data).ok().filter(|v| matches!(v, Value::Map(_))).and_then(|v| {
        let mut out = Vec::new();
        encode_document_versioned(&v, 5, &mut MemNameDict::new(), &mut out).ok().map(|()| out)
    });
    if accepted {
        assert_eq!(Some(&direct), general.as_ref(), "direct encoding differs");
    } else if general.is_some() {
        assert!(data.windows(2).any(|w| w == b"\"$"), "a plain JSON object was refused");
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(value) = from_json_str(text) else { return };
    let printed = to_json_string(&value);
    let again = from_json_str(&printed).unwrap_or_else(|e| panic!("printed JSON {printed:?} fails: {e}"));
    assert!(values_equal(&value, &again), "JSON round trip changed {value:?} into {again:?}");
}

/// Target `query_json`: parses arbitrary text as a query; whatever parses
/// must print and parse back to the same query.
pub fn query_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(spec) = QuerySpec::from_json(text) else { return };
    let printed = spec.to_json();
    let again =
        QuerySpec::from_json(&printed).unwrap_or_else(|e| panic!("printed query {printed:?} fails: {e}"));
    assert_eq!(again.to_json(), printed, "query round trip");
}

/// A document of the `collection_ops` model: unique key `k`, grouping `g`
/// (standard index), `tags` (multi-value index), composite `(g, n)`.
fn fuzz_doc(k: u8, g: u8, tags: u8, n: u8, big: bool) -> crate::Value {
    use crate::Value;
    let mut fields = vec![
        ("k".to_string(), Value::Int(i64::from(k % 24))),
        ("g".to_string(), Value::Str(format!("g{}", g % 4))),
        (
            "tags".to_string(),
            Value::List(
                (0..tags % 4).map(|t| Value::Int(i64::from((tags >> 2).wrapping_add(t) % 6))).collect(),
            ),
        ),
        (
            "n".to_string(),
            if n.is_multiple_of(3) { Value::Float(f64::from(n) / 2.0) } else { Value::UInt(u64::from(n)) },
        ),
    ];
    if big {
        fields.push(("blob".to_string(), Value::Bytes(vec![n; 9000 + usize::from(k) * 37])));
    }
    Value::Map(fields)
}

/// Target `collection_ops`: random writes to a collection with unique,
/// standard, multi-value and composite indexes, grouped into transactions
/// that commit or roll back, checked against an in-memory model after every
/// transaction: documents by id, unique lookups, and index scans (which
/// must agree with a full scan evaluated in the model). A unique violation
/// must be refused exactly when the model says so, and leave no trace.
pub fn collection_ops(data: &[u8]) {
    use crate::doc::collection::CollectionOptions;
    use crate::index::secondary::{IndexKind, IndexSpec};
    use crate::Value;
    let vfs = SimVfs::new();
    let options = Options { vfs: Some(Arc::new(vfs)), wal_autocheckpoint: 32, ..Options::default() };
    let db = Db::open_with(DB, options).expect("open");
    {
        let mut w = db.begin_write().expect("begin");
        w.create_collection("c", CollectionOptions { raw: false }).expect("create");
        let mut c = w.collection_mut("c").expect("collection");
        c.create_index(IndexSpec::unique("by_k", "k").expect("spec")).expect("index");
        c.create_index(IndexSpec::standard("by_g", "g").expect("spec")).expect("index");
        c.create_index(IndexSpec::new("by_tag", IndexKind::Multi, &["tags"]).expect("spec")).expect("index");
        c.create_index(IndexSpec::new("by_g_n", IndexKind::Standard, &["g", "n"]).expect("spec"))
            .expect("index");
        w.commit().expect("commit");
    }
    let mut model: BTreeMap<u64, Value> = BTreeMap::new();
    let mut input = data.iter().copied();
    let mut next = move || input.next().unwrap_or(0);
    for _txn in 0..64 {
        let ops = next() % 12;
        if ops == 0 && data.is_empty() {
            break;
        }
        let mut w = db.begin_write().expect("begin");
        let mut pending = model.clone();
        for _ in 0..ops {
            let op = next();
            let doc = fuzz_doc(next(), next(), next(), next(), op & 0x80 != 0 && next() < 40);
            let clash = |m: &BTreeMap<u64, Value>, id: Option<u64>| {
                m.iter().any(|(other, d)| Some(*other) != id && d.get("k") == doc.get("k"))
            };
            let mut c = w.collection_mut("c").expect("collection");
            match op % 5 {
                0 | 1 => match c.insert(&doc) {
                    Ok(id) => {
                        assert!(!clash(&pending, None), "insert accepted a duplicate unique key");
                        assert!(pending.keys().all(|&other| other < id), "ids increase");
                        pending.insert(id, doc);
                    }
                    Err(Error::Constraint(_)) => {
                        assert!(clash(&pending, None), "insert refused without a clash")
                    }
                    Err(e) => panic!("insert: {e:?}"),
                },
                2 => {
                    let id = u64::from(next() % 40) + 1;
                    match c.upsert(id, &doc) {
                        Ok(replaced) => {
                            assert!(!clash(&pending, Some(id)), "upsert accepted a duplicate unique key");
                            assert_eq!(replaced, pending.contains_key(&id));
                            pending.insert(id, doc);
                        }
                        Err(Error::Constraint(_)) => {
                            assert!(clash(&pending, Some(id)), "upsert refused without a clash")
                        }
                        Err(e) => panic!("upsert: {e:?}"),
                    }
                }
                3 => {
                    let id = u64::from(next() % 40) + 1;
                    assert_eq!(c.delete(id).expect("delete"), pending.remove(&id).is_some());
                }
                _ => {
                    let id = u64::from(next() % 40) + 1;
                    let replacement = doc.clone();
                    match c.update(id, |d| {
                        *d = replacement;
                        Ok(())
                    }) {
                        Ok(found) => {
                            assert_eq!(found, pending.contains_key(&id));
                            if found {
                                assert!(!clash(&pending, Some(id)), "update accepted a duplicate unique key");
                                pending.insert(id, doc);
                            }
                        }
                        Err(Error::Constraint(_)) => {
                            assert!(clash(&pending, Some(id)), "update refused without a clash")
                        }
                        Err(e) => panic!("update: {e:?}"),
                    }
                }
            }
        }
        if next() % 4 == 0 {
            w.rollback();
        } else {
            w.commit().expect("commit");
            model = pending;
        }
        check_collection(&db, &model);
    }
    db.integrity_check().expect("integrity");
}

fn check_collection(db: &Db, model: &BTreeMap<u64, crate::Value>) {
    use crate::Value;
    let r = db.begin_read().expect("read");
    let c = r.collection("c").expect("collection");
    let all: Vec<(u64, Value)> = c.all().expect("all").collect::<crate::Result<_>>().expect("scan");
    assert_eq!(all.len(), model.len(), "document count");
    for ((id, got), (want_id, want)) in all.iter().zip(model) {
        assert_eq!(id, want_id);
        assert!(got.identical(want), "document {id}: {got:?} != {want:?}");
    }
    let ids_through = |index: &str, lo: &[Value], hi: &[Value]| -> Vec<u64> {
        let json = |vals: &[Value]| {
            let items: Vec<String> = vals.iter().map(to_json_string).collect();
            format!("[{}]", items.join(","))
        };
        let q = format!(
            r#"{{"collection":"c","index":{{"name":"{index}","ge":{},"le":{}}}}}"#,
            json(lo),
            json(hi)
        );
        let spec = QuerySpec::from_json(&q).expect("query");
        let mut ids: Vec<u64> = c.query(&spec).expect("query").map(|r| r.expect("row").0).collect();
        ids.sort_unstable();
        ids
    };
    for k in 0..24i64 {
        let want = model.iter().find(|(_, d)| d.get("k") == Some(&Value::Int(k))).map(|(id, _)| *id);
        let got = c.find_unique("by_k", &[Value::Int(k)]).expect("find_unique").map(|(id, _)| id);
        assert_eq!(got, want, "unique lookup k={k}");
    }
    for g in 0..4 {
        let gv = Value::Str(format!("g{g}"));
        let want: Vec<u64> =
            model.iter().filter(|(_, d)| d.get("g") == Some(&gv)).map(|(id, _)| *id).collect();
        assert_eq!(
            ids_through("by_g", std::slice::from_ref(&gv), std::slice::from_ref(&gv)),
            want,
            "by_g = g{g}"
        );
        assert_eq!(
            ids_through("by_g_n", std::slice::from_ref(&gv), std::slice::from_ref(&gv)),
            want,
            "by_g_n prefix g{g}"
        );
    }
    for t in 0..6i64 {
        let tv = Value::Int(t);
        let want: Vec<u64> = model
            .iter()
            .filter(|(_, d)| d.get("tags").and_then(Value::as_list).is_some_and(|l| l.contains(&tv)))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(
            ids_through("by_tag", std::slice::from_ref(&tv), std::slice::from_ref(&tv)),
            want,
            "by_tag = {t}"
        );
    }
    // Sorts, served by an index while it is single-valued (and in memory
    // once a document has made it multi-valued), in the model's order.
    for q in [
        r#"{"collection":"c","sort":["k"]}"#,
        r#"{"collection":"c","filter":{"exists":["k",true]},"sort":[{"field":"k","order":"desc"}],"limit":5}"#,
        r#"{"collection":"c","filter":{"eq":["g","g1"]},"sort":["n"]}"#,
        r#"{"collection":"c","filter":{"ge":["g","g1"]},"sort":[{"field":"g","order":"desc"},{"field":"n","order":"desc"}]}"#,
        r#"{"collection":"c","sort":["g","n"],"offset":2}"#,
    ] {
        let spec = QuerySpec::from_json(q).expect("query");
        let mut want: Vec<(&u64, &Value)> = model.iter().filter(|(_, d)| spec.filter.eval(d)).collect();
        want.sort_by(|a, b| spec.compare_for_sort(a.1, b.1).then(spec.compare_ids(*a.0, *b.0)));
        let want: Vec<u64> = want
            .into_iter()
            .skip(spec.offset as usize)
            .take(spec.limit.map_or(usize::MAX, |l| l as usize))
            .map(|(id, _)| *id)
            .collect();
        let got: Vec<u64> = c.query(&spec).expect("query").map(|r| r.expect("row").0).collect();
        assert_eq!(got, want, "{q}");
    }
}

/// Deterministic pseudo-random fuzz inputs (xorshift), for tests that run
/// a target beyond its committed corpus without a fuzzing engine: `runs`
/// inputs of `min_len` to `min_len + spread - 1` bytes, from `seed`.
pub fn pseudo_random_inputs(
    seed: u64,
    runs: u64,
    min_len: usize,
    spread: usize,
) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..runs).map(move |_| {
        let len = min_len + (next() % spread.max(1) as u64) as usize;
        (0..len).map(|_| next() as u8).collect()
    })
}

/// The body of one fuzz target.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay test.
pub const TARGETS: [(&str, Target); 6] = [
    ("open_db", open_db),
    ("btree_ops", btree_ops),
    ("collection_ops", collection_ops),
    ("doc_decode", doc_decode),
    ("doc_json", doc_json),
    ("query_json", query_json),
];

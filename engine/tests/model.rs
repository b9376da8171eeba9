//! Random operation sequences against `std::collections::BTreeMap`: inserts,
//! deletes, reads and range scans in several trees, with commits, rollbacks,
//! checkpoints and reopens in between. Every read is compared with the model
//! and `integrity_check` runs after every reopen.

use std::collections::BTreeMap;
use std::ops::Bound;

use obj_engine::{Db, Options, ReadableTxn, SyncMode};
use proptest::prelude::*;

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Clone)]
enum Op {
    Insert { tree: u8, key: Vec<u8>, value_len: usize },
    Delete { tree: u8, key: Vec<u8> },
    Get { tree: u8, key: Vec<u8> },
    Range { tree: u8, lo: Vec<u8>, hi: Vec<u8>, reverse: bool },
    Commit,
    Rollback,
    Checkpoint,
    Reopen,
    DropTree { tree: u8 },
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(0u8..4, 0..4),
        2 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => proptest::collection::vec(any::<u8>(), 200..900),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0u8..3, key(), prop_oneof![8 => 0usize..200, 1 => 1000usize..3000, 1 => 5000usize..20000])
            .prop_map(|(tree, key, value_len)| Op::Insert { tree, key, value_len }),
        10 => (0u8..3, key()).prop_map(|(tree, key)| Op::Delete { tree, key }),
        10 => (0u8..3, key()).prop_map(|(tree, key)| Op::Get { tree, key }),
        5 => (0u8..3, key(), key(), any::<bool>()).prop_map(|(tree, lo, hi, reverse)| Op::Range { tree, lo, hi, reverse }),
        6 => Just(Op::Commit),
        2 => Just(Op::Rollback),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        1 => (0u8..3).prop_map(|tree| Op::DropTree { tree }),
    ]
}

fn value_for(key: &[u8], len: usize, salt: usize) -> Vec<u8> {
    (0..len).map(|i| (i + salt + key.len() * 7) as u8).collect()
}

fn tree_name(t: u8) -> String {
    format!("tree{t}")
}

fn options() -> Options {
    Options { sync_mode: SyncMode::Off, cache_size: 64 * 4096, wal_autocheckpoint: 64, ..Options::default() }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.obj");
    let mut db = Some(Db::open_with(&path, options()).unwrap());
    let mut committed: Model = Model::new();
    let mut pending: Model = committed.clone();
    let mut tx = Some(db.as_ref().unwrap().begin_write().unwrap());
    for (i, op) in ops.into_iter().enumerate() {
        let w = tx.as_mut().unwrap();
        match op {
            Op::Insert { tree, key, value_len } => {
                let name = tree_name(tree);
                let t = w.create_tree(&name).unwrap();
                let value = value_for(&key, value_len, i);
                let replaced = w.insert(&t, &key, &value).unwrap();
                let m = pending.entry(name).or_default();
                assert_eq!(replaced, m.insert(key, value).is_some());
            }
            Op::Delete { tree, key } => {
                let name = tree_name(tree);
                if let Some(t) = w.find_tree(&name).unwrap() {
                    let existed = w.delete(&t, &key).unwrap();
                    assert_eq!(existed, pending.get_mut(&name).unwrap().remove(&key).is_some());
                }
            }
            Op::Get { tree, key } => {
                let name = tree_name(tree);
                let got = w.find_tree(&name).unwrap().and_then(|t| w.get(&t, &key).unwrap());
                assert_eq!(got, pending.get(&name).and_then(|m| m.get(&key)).cloned());
                // A fresh reader sees the committed state only.
                let r = db.as_ref().unwrap().begin_read().unwrap();
                let got = r.find_tree(&name).unwrap().and_then(|t| r.get(&t, &key).unwrap());
                assert_eq!(got, committed.get(&name).and_then(|m| m.get(&key)).cloned());
            }
            Op::Range { tree, lo, hi, reverse } => {
                let name = tree_name(tree);
                let Some(t) = w.find_tree(&name).unwrap() else { continue };
                let got: Vec<(Vec<u8>, Vec<u8>)> = w
                    .range(&t, Bound::Included(&lo), Bound::Excluded(&hi), reverse)
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let m = &pending[&name];
                let mut want: Vec<(Vec<u8>, Vec<u8>)> = if lo < hi {
                    m.range(lo.clone()..hi.clone()).map(|(k, v)| (k.clone(), v.clone())).collect()
                } else {
                    Vec::new()
                };
                if reverse {
                    want.reverse();
                }
                assert_eq!(got, want);
                assert_eq!(w.count(&t).unwrap(), m.len() as u64);
            }
            Op::Commit => {
                tx.take().unwrap().commit().unwrap();
                committed = pending.clone();
                tx = Some(db.as_ref().unwrap().begin_write().unwrap());
            }
            Op::Rollback => {
                tx.take().unwrap().rollback();
                pending = committed.clone();
                tx = Some(db.as_ref().unwrap().begin_write().unwrap());
            }
            Op::Checkpoint => {
                tx.take().unwrap().commit().unwrap();
                committed = pending.clone();
                db.as_ref().unwrap().checkpoint().unwrap();
                tx = Some(db.as_ref().unwrap().begin_write().unwrap());
            }
            Op::Reopen => {
                drop(tx.take());
                pending = committed.clone();
                db.take().unwrap().close().unwrap();
                let reopened = Db::open_with(&path, options()).unwrap();
                reopened.integrity_check().unwrap();
                db = Some(reopened);
                tx = Some(db.as_ref().unwrap().begin_write().unwrap());
            }
            Op::DropTree { tree } => {
                let name = tree_name(tree);
                if pending.remove(&name).is_some() {
                    w.drop_tree(&name).unwrap();
                } else {
                    assert!(matches!(w.drop_tree(&name), Err(obj_engine::Error::NotFound(_))));
                }
            }
        }
    }
    tx.take().unwrap().commit().unwrap();
    let db = db.take().unwrap();
    db.integrity_check().unwrap();
    let r = db.begin_read().unwrap();
    let mut names = r.list_trees().unwrap();
    names.sort();
    assert_eq!(names, pending.keys().cloned().collect::<Vec<_>>());
    for (name, m) in &pending {
        let t = r.open_tree(name).unwrap();
        let all: Vec<(Vec<u8>, Vec<u8>)> = r
            .range(&t, Bound::Unbounded, Bound::Unbounded, false)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all, m.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>());
    }
    drop(r);
    db.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 2000, ..ProptestConfig::default() })]
    #[test]
    fn matches_btreemap(ops in proptest::collection::vec(op(), 1..400)) {
        run(ops);
    }
}

#[test]
fn many_keys_then_delete_all_and_refill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refill.obj");
    let db = Db::open_with(&path, options()).unwrap();
    let fill = |db: &Db| {
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("t").unwrap();
        for i in 0u32..100_000 {
            let k = (i.wrapping_mul(2_654_435_761)).to_be_bytes();
            w.insert(&t, &k, &[7u8; 40]).unwrap();
        }
        w.commit().unwrap();
        db.checkpoint().unwrap();
    };
    fill(&db);
    let first = db.stat().unwrap().page_count;
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    for i in 0u32..100_000 {
        let k = (i.wrapping_mul(2_654_435_761)).to_be_bytes();
        assert!(w.delete(&t, &k).unwrap());
    }
    assert_eq!(w.count(&t).unwrap(), 0);
    w.commit().unwrap();
    db.integrity_check().unwrap();
    fill(&db);
    let second = db.stat().unwrap().page_count;
    assert!(second as f64 <= first as f64 * 1.2, "file grew from {first} to {second} pages");
    db.integrity_check().unwrap();
    db.close().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size as f64 <= first as f64 * 4096.0 * 1.2);
}

//! Whole-module tests: a model-based property test against
//! `std::collections::BTreeMap`, and garbage-page robustness (every entry
//! point must fail with `Error::Corruption` or succeed, never panic or hang).

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;

use super::node::{HEADER, KIND_INTERIOR, KIND_LEAF};
use super::tree::tests::{check, Rng};
use super::*;
use crate::error::{PageNo, Result};
use crate::storage::page::{MemPageStore, PageRead, PageWrite};

#[derive(Debug, Clone)]
enum Op {
    Insert { key: usize, len: usize, fill: u8 },
    Delete(usize),
    Get(usize),
    Range { lo: Bound<usize>, hi: Bound<usize>, reverse: bool },
    Walk { start: usize, seek: u8, steps: Vec<bool> },
    Verify,
}

fn value_of(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|j| (j as u8).wrapping_mul(31) ^ fill).collect()
}

fn key_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(0u8..3, 0..4),
        3 => proptest::collection::vec(any::<u8>(), 0..40),
        // Long keys share long prefixes (few fill bytes), so separators
        // stay long and interior nodes narrow: deep trees from few keys.
        1 => (0..=max, 0u8..2, any::<u16>()).prop_map(move |(len, b, tail)| {
            let mut k = vec![b; len];
            if len >= 2 {
                k[len - 2..].copy_from_slice(&tail.to_be_bytes());
            }
            k
        }),
        2 => (max - 40..=max, 0u8..2, any::<u16>()).prop_map(move |(len, b, tail)| {
            let mut k = vec![b; len];
            k[len - 2..].copy_from_slice(&tail.to_be_bytes());
            k
        }),
    ]
}

fn bound_strategy(pool: usize) -> impl Strategy<Value = Bound<usize>> {
    prop_oneof![
        (0..pool).prop_map(Bound::Included),
        (0..pool).prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn op_strategy(pool: usize, page: usize) -> impl Strategy<Value = Op> {
    // The band around half a page holds the largest inline cells and the
    // smallest values sent to overflow chains.
    let len =
        prop_oneof![4 => 0usize..20, 3 => 0usize..400, 2 => page / 5..page / 2 + 16, 1 => 0usize..3 * page];
    prop_oneof![
        10 => (0..pool, len, any::<u8>()).prop_map(|(key, len, fill)| Op::Insert { key, len, fill }),
        4 => (0..pool).prop_map(Op::Delete),
        2 => (0..pool).prop_map(Op::Get),
        1 => (bound_strategy(pool), bound_strategy(pool), any::<bool>())
            .prop_map(|(lo, hi, reverse)| Op::Range { lo, hi, reverse }),
        1 => (0..pool, 0u8..5, proptest::collection::vec(any::<bool>(), 0..30))
            .prop_map(|(start, seek, steps)| Op::Walk { start, seek, steps }),
        1 => Just(Op::Verify),
    ]
}

fn case_strategy() -> impl Strategy<Value = (usize, Vec<Vec<u8>>, Vec<Op>)> {
    prop_oneof![6 => Just(4096usize), 1 => Just(8192usize), 1 => Just(65536usize)].prop_flat_map(|page| {
        let max = max_key_len(page - 4);
        proptest::collection::vec(key_strategy(max), 1..200).prop_flat_map(move |pool| {
            let n = pool.len();
            (Just(page), Just(pool), proptest::collection::vec(op_strategy(n, page), 1..400))
        })
    })
}

fn map_bound(b: Bound<usize>, pool: &[Vec<u8>]) -> Bound<&[u8]> {
    match b {
        Bound::Included(i) => Bound::Included(&pool[i][..]),
        Bound::Excluded(i) => Bound::Excluded(&pool[i][..]),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn in_bounds(k: &[u8], lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    let above = match lo {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => k <= h,
        Bound::Excluded(h) => k < h,
        Bound::Unbounded => true,
    };
    above && below
}

/// Replays `ops` on a tree and on a `BTreeMap`, comparing every result.
fn run_model(page: usize, pool: &[Vec<u8>], ops: &[Op]) -> std::result::Result<(), TestCaseError> {
    let mut s = MemPageStore::new(page);
    let root = create(&mut s).unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Insert { key, len, fill } => {
                let (k, v) = (&pool[*key], value_of(*len, *fill));
                let replaced = insert(&mut s, root, k, &v).unwrap();
                prop_assert_eq!(replaced, model.insert(k.clone(), v).is_some());
            }
            Op::Delete(key) => {
                let k = &pool[*key];
                prop_assert_eq!(delete(&mut s, root, k).unwrap(), model.remove(k).is_some());
            }
            Op::Get(key) => {
                let k = &pool[*key];
                prop_assert_eq!(get(&s, root, k).unwrap(), model.get(k).cloned());
            }
            Op::Range { lo, hi, reverse } => {
                let (lo, hi) = (map_bound(*lo, pool), map_bound(*hi, pool));
                let got: Vec<_> =
                    Range::new(&s, root, lo, hi, *reverse).unwrap().map(|e| e.unwrap()).collect();
                let mut want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| in_bounds(k, lo, hi))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if *reverse {
                    want.reverse();
                }
                prop_assert_eq!(got, want);
            }
            Op::Walk { start, seek, steps } => {
                let keys: Vec<&Vec<u8>> = model.keys().collect();
                let k = &pool[*start][..];
                let mut c = Cursor::new(&s, root);
                // Model position: Some(index into keys) or None.
                let mut pos = match seek {
                    0 => c.seek(k).map(|_| keys.iter().position(|x| x.as_slice() >= k)),
                    1 => c.seek_before(k).map(|_| keys.iter().rposition(|x| x.as_slice() < k)),
                    2 => c.seek_at_or_before(k).map(|_| keys.iter().rposition(|x| x.as_slice() <= k)),
                    3 => c.seek_first().map(|_| (!keys.is_empty()).then_some(0)),
                    _ => c.seek_last().map(|_| keys.len().checked_sub(1)),
                }
                .unwrap();
                prop_assert_eq!(c.is_positioned(), pos.is_some());
                for &forward in steps {
                    let want = pos.map(|i| keys[i].clone());
                    let got = if forward { c.next_key().unwrap() } else { c.prev_key().unwrap() };
                    prop_assert_eq!(got, want);
                    pos = pos.and_then(|i| {
                        if forward {
                            Some(i + 1).filter(|&j| j < keys.len())
                        } else {
                            i.checked_sub(1)
                        }
                    });
                    prop_assert_eq!(c.key().unwrap().map(<[u8]>::to_vec), pos.map(|i| keys[i].clone()));
                }
                if let Some(i) = pos {
                    prop_assert_eq!(c.value().unwrap(), model.get(keys[i]).cloned());
                }
            }
            Op::Verify => {
                prop_assert_eq!(check(&s, root), model.len() as u64);
            }
        }
    }
    prop_assert_eq!(check(&s, root), model.len() as u64);
    let all: Vec<_> = Range::new(&s, root, Bound::Unbounded, Bound::Unbounded, false)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    prop_assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>());
    // Emptying the tree gives back every page but the root.
    for k in model.keys() {
        prop_assert!(delete(&mut s, root, k).unwrap());
    }
    prop_assert_eq!(check(&s, root), 0);
    prop_assert_eq!(s.pages_in_use(), 1);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn btree_prop_matches_btreemap((page, pool, ops) in case_strategy()) {
        run_model(page, &pool, &ops)?;
    }
}

/// Runs every read entry point on the tree at `root`; returns whether any
/// of them reported an error. Must not panic or hang.
fn poke_reads(s: &MemPageStore, root: PageNo, rng: &mut Rng) -> bool {
    let mut failed = false;
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            assert!(e.is_corruption(), "not a corruption error: {e}");
            failed = true;
        }
    };
    for _ in 0..4 {
        let k = rng.bytes_upto(12);
        note(get(s, root, &k).map(drop));
        let mut c = Cursor::new(s, root);
        note(c.seek(&k).map(drop));
        note(c.seek_before(&k).map(drop));
    }
    note(verify(s, root, &mut |_| Ok(())).map(drop));
    for reverse in [false, true] {
        match Range::new(s, root, Bound::Unbounded, Bound::Unbounded, reverse) {
            Ok(range) => {
                for (n, e) in range.enumerate() {
                    note(e.map(drop));
                    assert!(n < 1_000_000, "runaway scan");
                }
            }
            Err(e) => note(Err(e)),
        }
    }
    failed
}

fn poke_writes(s: &mut MemPageStore, root: PageNo, rng: &mut Rng) {
    for _ in 0..6 {
        let k = rng.bytes_upto(12);
        let v = rng.bytes_upto(6000);
        for r in [insert(s, root, &k, &v).map(drop), delete(s, root, &k).map(drop)] {
            if let Err(e) = r {
                assert!(e.is_corruption(), "not a corruption error: {e}");
            }
        }
    }
}

/// Trial count and seed of the garbage tests; raise them with
/// `BTREE_FUZZ_TRIALS=100000 BTREE_FUZZ_SEED=7` for a longer run.
fn fuzz_params(default_trials: usize, default_seed: u64) -> (usize, Rng) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let trials = env("BTREE_FUZZ_TRIALS").map_or(default_trials, |t| t as usize);
    let seed = env("BTREE_FUZZ_SEED").map_or(default_seed, |s| s.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (trials, Rng(seed))
}

#[test]
fn btree_garbage_root_page() {
    let (trials, mut rng) = fuzz_params(3000, 0x9E37_79B9_7F4A_7C15);
    let mut caught = 0;
    for t in 0..trials {
        let page_size = [4096, 8192, 65536][t % 3];
        let mut s = MemPageStore::new(page_size);
        let root = s.allocate_page().unwrap();
        let usable = s.usable_size();
        let garbage = rng.bytes(usable);
        let buf = s.page_mut(root).unwrap();
        buf[..usable].copy_from_slice(&garbage);
        if t % 2 == 0 {
            // Make the header plausible so decoding goes past it.
            buf[0] = if t % 4 == 0 { KIND_LEAF } else { KIND_INTERIOR };
            let n = 1 + (t / 4) % 40;
            buf[2..4].copy_from_slice(&(n as u16).to_le_bytes());
            let content = HEADER + 2 * n + (t * 37) % (usable - HEADER - 2 * n);
            buf[4..8].copy_from_slice(&(content as u32).to_le_bytes());
        }
        if poke_reads(&s, root, &mut rng) {
            caught += 1;
        } else {
            panic!("garbage page accepted by every reader (trial {t})");
        }
        // Pure garbage must fail the plain lookup and the full check.
        if t % 2 == 1 {
            assert!(get(&s, root, b"k").unwrap_err().is_corruption());
            assert!(verify(&s, root, &mut |_| Ok(())).unwrap_err().is_corruption());
        }
        poke_writes(&mut s, root, &mut rng);
    }
    assert_eq!(caught, trials);
}

fn build_tree(page_size: usize, rng: &mut Rng) -> (MemPageStore, PageNo, Vec<PageNo>) {
    let mut s = MemPageStore::new(page_size);
    let root = create(&mut s).unwrap();
    for i in 0..400u32 {
        let len = if i % 37 == 0 { 9000 } else { rng.below(200) as usize };
        insert(&mut s, root, format!("key{:05}", i * 3).as_bytes(), &value_of(len, i as u8)).unwrap();
    }
    let mut pages = Vec::new();
    verify(&s, root, &mut |p| {
        pages.push(p);
        Ok(())
    })
    .unwrap();
    (s, root, pages)
}

#[test]
fn btree_garbage_damaged_tree() {
    let (trials, mut rng) = fuzz_params(600, 12345);
    for t in 0..trials {
        let (mut s, root, pages) = build_tree(4096, &mut rng);
        let usable = s.usable_size();
        let victim = pages[rng.below(pages.len() as u64) as usize];
        let kind = t % 4;
        {
            let buf = &mut s.page_mut(victim).unwrap()[..usable];
            match kind {
                // A few flipped bytes, mostly in the header and slots.
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let at =
                            if rng.below(2) == 0 { rng.below(64) } else { rng.below(usable as u64) } as usize;
                        buf[at] ^= 1 << rng.below(8);
                    }
                }
                // The whole page replaced by random bytes.
                1 => buf.copy_from_slice(&rng.bytes(usable)),
                // A random 4-byte word set to a page of the tree (forging
                // child pointers that make cycles and shared subtrees).
                2 => {
                    let at = rng.below(usable as u64 - 4) as usize;
                    let target = pages[rng.below(pages.len() as u64) as usize];
                    buf[at..at + 4].copy_from_slice(&target.to_le_bytes());
                }
                // A random 2-byte field (lengths, slots) set to an extreme.
                _ => {
                    let at = rng.below(usable as u64 - 2) as usize;
                    let v: u16 = [0, 1, 0xFFFF, 0x7FFF, usable as u16][rng.below(5) as usize];
                    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        poke_reads(&s, root, &mut rng);
        poke_writes(&mut s, root, &mut rng);
        let _ = verify(&s, root, &mut |_| Ok(()));
        if let Err(e) = clear(&mut s, root) {
            assert!(e.is_corruption(), "{e}");
        }
    }
}

#[test]
fn btree_forged_cycles_are_reported() {
    let mut rng = Rng(777);
    let (mut s, root, _) = build_tree(4096, &mut rng);
    let usable = s.usable_size();
    // Point the root's rightmost child back at the root.
    s.page_mut(root).unwrap()[12..16].copy_from_slice(&root.to_le_bytes());
    assert!(get(&s, root, b"zzz").unwrap_err().is_corruption());
    assert!(verify(&s, root, &mut |_| Ok(())).unwrap_err().is_corruption());
    let r: Vec<_> = Range::new(&s, root, Bound::Unbounded, Bound::Unbounded, false).unwrap().collect();
    assert!(r.last().unwrap().as_ref().unwrap_err().is_corruption());
    assert!(Range::new(&s, root, Bound::Unbounded, Bound::Unbounded, true).is_err());
    assert!(destroy(&mut s, root).unwrap_err().is_corruption());

    // Every child of the root pointing at the same subtree: each leaf is
    // reachable many times. Scans must stop at the first repeat.
    let (mut s, root, _) = build_tree(4096, &mut rng);
    let (n, child0) = {
        let page = s.read_page(root).unwrap();
        let node = super::node::Node::parse(&page, root, usable).unwrap();
        (node.len(), node.child(0).unwrap())
    };
    assert!(n >= 2);
    let buf = s.page_mut(root).unwrap();
    buf[12..16].copy_from_slice(&child0.to_le_bytes());
    let mut steps = 0;
    let mut err = false;
    for e in Range::new(&s, root, Bound::Unbounded, Bound::Unbounded, false).unwrap() {
        steps += 1;
        err |= e.is_err();
    }
    assert!(err && steps < 1000);
    assert!(verify(&s, root, &mut |_| Ok(())).unwrap_err().is_corruption());
}

/// Throughput smoke test on the in-memory store; run with
/// `cargo test --release -p obj-engine btree_bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn btree_bench_1m_random() {
    use std::time::Instant;
    let n = 1_000_000u64;
    let mut rng = Rng(42);
    let keys: Vec<Vec<u8>> = (0..n).map(|_| rng.bytes(24)).collect();
    let value = vec![7u8; 150];
    let mut s = MemPageStore::new(4096);
    let root = create(&mut s).unwrap();
    let t = Instant::now();
    for k in &keys {
        insert(&mut s, root, k, &value).unwrap();
    }
    let ins = t.elapsed();
    let t = Instant::now();
    let mut found = 0;
    for i in 0..n {
        let k = &keys[(i * 7919 % n) as usize];
        found += get(&s, root, k).unwrap().is_some() as u64;
    }
    let gets = t.elapsed();
    assert_eq!(found, n);
    let t = Instant::now();
    let scanned = Range::new(&s, root, Bound::Unbounded, Bound::Unbounded, false).unwrap().count();
    let scan = t.elapsed();
    let t = Instant::now();
    let entries = verify(&s, root, &mut |_| Ok(())).unwrap();
    let ver = t.elapsed();
    assert_eq!((scanned as u64, entries), (n, n));
    let t = Instant::now();
    for k in keys.iter().step_by(2) {
        delete(&mut s, root, k).unwrap();
    }
    let del = t.elapsed();
    eprintln!(
        "insert {:?} ({:.0} ns/op), get {:?} ({:.0} ns/op), scan {scan:?}, verify {ver:?}, delete half {del:?}, pages {}",
        ins,
        ins.as_nanos() as f64 / n as f64,
        gets,
        gets.as_nanos() as f64 / n as f64,
        s.pages_in_use()
    );
}

/// A value guard reads what `get` reads, inline or from an overflow chain,
/// and keeps its page image when the tree changes afterwards.
#[test]
fn btree_value_guard_borrows_and_outlives_changes() {
    let mut s = MemPageStore::new(4096);
    let root = create(&mut s).unwrap();
    let big = value_of(20_000, 7);
    for i in 0..500u32 {
        insert(&mut s, root, format!("k{i:05}").as_bytes(), &value_of(10 + (i as usize % 90), i as u8))
            .unwrap();
    }
    insert(&mut s, root, b"big", &big).unwrap();
    for i in (0..500u32).step_by(37) {
        let key = format!("k{i:05}");
        let guard = get_guard(&s, root, key.as_bytes()).unwrap().unwrap();
        assert_eq!(&guard[..], &get(&s, root, key.as_bytes()).unwrap().unwrap()[..]);
        assert_eq!(&guard[..], &value_of(10 + (i as usize % 90), i as u8)[..]);
        // Overwrite the key (its leaf changes in place): the guard keeps
        // the image it borrowed.
        insert(&mut s, root, key.as_bytes(), b"changed").unwrap();
        assert_eq!(&guard[..], &value_of(10 + (i as usize % 90), i as u8)[..]);
        assert_eq!(guard.clone().into_vec(), value_of(10 + (i as usize % 90), i as u8));
    }
    let guard = get_guard(&s, root, b"big").unwrap().unwrap();
    assert_eq!(&guard[..], &big[..]);
    assert!(get_guard(&s, root, b"absent").unwrap().is_none());
}

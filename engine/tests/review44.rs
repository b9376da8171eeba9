//! Review 44 (large-file helper): one flipped byte in a value's overflow
//! page made `integrity_check` report, besides the checksum mismatch,
//! 146,081 pages "neither in use nor free (leaked)": the walk of a tree
//! stopped at its first problem and every page it had not reached counted
//! as leaked. It now goes on past a damaged subtree or chain, and pages it
//! could not reach are called that, not leaked.

use obj_engine::{Db, Error};

#[test]
fn one_damaged_page_costs_its_own_subtree_not_the_rest_of_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.obj");
    {
        let db = Db::open(&path).unwrap();
        let mut w = db.begin_write().unwrap();
        let a = w.create_tree("a").unwrap();
        for i in 0u32..3000 {
            w.insert(&a, &i.to_be_bytes(), &[i as u8; 50]).unwrap();
        }
        let b = w.create_tree("b").unwrap();
        for i in 0u32..10 {
            w.insert(&b, &i.to_be_bytes(), &vec![i as u8; 10_000]).unwrap();
        }
        w.commit().unwrap();
        db.close().unwrap();
    }
    let clean = std::fs::read(&path).unwrap();
    let pages = clean.len() / 4096;
    let (mut named, mut many_unreached) = (0, Vec::new());
    for page in 1..pages {
        let mut bad = clean.clone();
        bad[page * 4096 + 100] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let findings = match Db::open(&path).and_then(|db| db.integrity_check()) {
            Err(Error::Integrity(f)) => f,
            other => panic!("page {page}: {other:?}"),
        };
        named += findings.iter().any(|f| f.contains(&format!("page {page}"))) as usize;
        assert!(!findings.iter().any(|f| f.contains("leaked")), "page {page}: {findings:?}");
        let unreached = findings
            .iter()
            .find(|f| f.contains("not reached"))
            .map_or(0, |f| f.split(' ').next().unwrap().parse::<usize>().unwrap());
        if unreached > 3 {
            many_unreached.push((page, unreached));
        }
    }
    // Every damaged page is named. A damaged leaf leaves nothing else
    // unaccounted for, an overflow page its chain (3 pages here); only an
    // interior page (in a file this small, the roots of the catalog and of
    // the two trees) leaves its whole subtree.
    assert_eq!(named, pages - 1);
    assert!(many_unreached.len() <= 3, "{many_unreached:?}");
}

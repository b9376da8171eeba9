//! Files whose every page passes its checksum but whose structure does not
//! hold (crafted, or damaged and resealed): session 30's review found two
//! that read or wrote silently. Each now gives a corruption error.

use std::ops::Bound;
use std::sync::Arc;

use obj_engine::storage::page::seal_page;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Error, Options, ReadableTxn};

const DB: &str = "/h/app.obj";
const PAGE: usize = 4096;

fn options(vfs: &SimVfs) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() }
}

fn key(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

/// A closed database whose tree "t" holds keys 0..n (values of 100
/// bytes): a tree of several levels.
fn tree_file(vfs: &SimVfs, n: u32) -> Vec<u8> {
    let db = Db::open_with(DB, options(vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0..n {
        w.insert(&t, &key(i), &[i as u8; 100]).unwrap();
    }
    w.commit().unwrap();
    db.close().unwrap();
    vfs.read_file(DB).unwrap()
}

fn page_mut(bytes: &mut [u8], pgno: usize) -> &mut [u8] {
    &mut bytes[pgno * PAGE..(pgno + 1) * PAGE]
}

fn reseal(bytes: &mut [u8], pgno: usize) {
    seal_page(pgno as u32, page_mut(bytes, pgno));
}

fn is_corruption<T: std::fmt::Debug>(r: &Result<T, Error>, what: &str) -> bool {
    matches!(r, Err(Error::Corruption { message, .. }) if message.contains(what))
}

/// An interior node whose count is 0 sent every key to its last child:
/// reads of the other keys said "absent" and scans returned a part of the
/// tree, all without an error.
#[test]
fn an_interior_node_without_separators_is_corruption() {
    let vfs = SimVfs::new();
    let mut bytes = tree_file(&vfs, 3000);
    let pages = bytes.len() / PAGE;
    // The interior nodes (kind 3) of the file: the tree's and the catalog's
    // (if any); every one with separators is emptied in its own copy.
    let interior: Vec<usize> =
        (1..pages).filter(|&p| bytes[p * PAGE] == 3 && bytes[p * PAGE + 2] > 0).collect();
    assert!(!interior.is_empty(), "a tree of 3000 entries has interior nodes");
    let original = bytes.clone();
    for &p in &interior {
        bytes.copy_from_slice(&original);
        page_mut(&mut bytes, p)[2..4].copy_from_slice(&0u16.to_le_bytes());
        reseal(&mut bytes, p);
        vfs.write_file(DB, &bytes);
        let db = Db::open_with(DB, options(&vfs)).unwrap();
        let r = db.begin_read().unwrap();
        let t = r.open_tree("t").unwrap();
        // Every key is either read back whole or the read is a corruption
        // error; a key reported absent is the silent loss.
        let mut errors = 0;
        for i in (0..3000).step_by(7) {
            match r.get(&t, &key(i)) {
                Ok(Some(v)) => assert_eq!(v, vec![i as u8; 100]),
                Ok(None) => panic!("page {p} emptied: key {i} read as absent without an error"),
                Err(Error::Corruption { message, .. }) => {
                    assert!(message.contains("no separator"), "{message}");
                    errors += 1;
                }
                Err(e) => panic!("page {p}: {e:?}"),
            }
        }
        assert!(errors > 0, "page {p}: some lookup goes through it");
        for reverse in [false, true] {
            let scan = r
                .range(&t, Bound::Unbounded, Bound::Unbounded, reverse)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>());
            assert!(is_corruption(&scan, "no separator"), "page {p}: a scan {:?}", scan.map(|v| v.len()));
        }
        drop(r);
        // A write through it is refused too, and leaves the file readable
        // as it was (the read above still fails the same way).
        let mut w = db.begin_write().unwrap();
        let t = w.open_tree("t").unwrap();
        let mut refused = false;
        for i in (0..3000).step_by(97) {
            match w.insert(&t, &key(i), b"new") {
                Ok(_) => {}
                Err(Error::Corruption { .. }) => refused = true,
                Err(e) => panic!("page {p}: {e:?}"),
            }
        }
        assert!(refused, "page {p}: some insert goes through it");
        drop(w);
        db.close().unwrap();
    }
}

/// A freelist trunk listing a page twice handed the page out twice in one
/// transaction: two new pages of one write were the same page, and the
/// second overwrote the first (found only by a later integrity check).
#[test]
fn a_page_the_freelist_hands_out_twice_is_corruption() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0..3000 {
        w.insert(&t, &key(i), &[1; 100]).unwrap();
    }
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    for i in 1000..3000 {
        w.delete(&t, &key(i)).unwrap();
    }
    w.commit().unwrap();
    db.close().unwrap();
    let mut bytes = vfs.read_file(DB).unwrap();
    let head = u32::from_le_bytes(bytes[44..48].try_into().unwrap()) as usize;
    assert_ne!(head, 0, "deletes left free pages");
    let trunk = page_mut(&mut bytes, head);
    assert_eq!(trunk[0], 5, "the freelist head is a trunk");
    let n = u32::from_le_bytes(trunk[8..12].try_into().unwrap()) as usize;
    assert!(n >= 2, "the trunk lists pages");
    // The entry popped first (the last) is listed again just before it.
    let last = trunk[12 + 4 * (n - 1)..12 + 4 * n].to_vec();
    trunk[12 + 4 * (n - 2)..12 + 4 * (n - 1)].copy_from_slice(&last);
    reseal(&mut bytes, head);
    vfs.write_file(DB, &bytes);

    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    let mut result = Ok(());
    for i in 3000..6000 {
        if let Err(e) = w.insert(&t, &key(i), &[2; 100]) {
            result = Err(e);
            break;
        }
    }
    assert!(is_corruption(&result, "already uses"), "{result:?}");
    drop(w);
    // Nothing of the refused transaction reached the file.
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    assert_eq!(r.count(&t).unwrap(), 1000);
    assert_eq!(r.get(&t, &key(999)).unwrap(), Some(vec![1; 100]));
    assert_eq!(r.get(&t, &key(3000)).unwrap(), None);
}

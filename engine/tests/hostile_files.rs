//! Hostile files whose every checksum is valid: a WAL whose commit counts
//! more pages than the file and WAL can hold (the checkpoint would extend
//! the main file to it), frames past their commit's page count or commits
//! without page 0, and catalog entries whose roots are the header, the
//! catalog's own root or another tree's root. Each is `Corruption`, never
//! wrong data or a huge file.

use std::sync::Arc;

use obj_engine::doc::json::from_json_str;
use obj_engine::storage::page::seal_page;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Error, IndexSpec, Options, ReadableTxn};

const DB: &str = "/h/app.obj";
const WAL: &str = "/h/app.obj-wal";
const PS: usize = 4096;

fn options(vfs: &SimVfs) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() }
}

/// A closed database: tree "t" (400 entries, overflow values), collection
/// "users" with two indexes, a key-value namespace, free pages.
fn sample(vfs: &SimVfs) -> Vec<u8> {
    let db = Db::open_with(DB, options(vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    let u = w.create_tree("u").unwrap();
    for i in 0u32..400 {
        w.insert(&t, &i.to_be_bytes(), &vec![i as u8; (i as usize * 37) % 6000]).unwrap();
    }
    w.insert(&u, b"k", b"v").unwrap();
    {
        let mut c = w.collection_mut("users").unwrap();
        c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
        c.create_index(IndexSpec::standard("by_age", "age").unwrap()).unwrap();
        for i in 0..50 {
            let doc = format!(r#"{{"email":"u{i}@x","age":{},"name":"n{i}"}}"#, i % 7);
            c.insert(&from_json_str(&doc).unwrap()).unwrap();
        }
    }
    w.kv_put("meta", b"k", b"v").unwrap();
    let gone = w.create_tree("gone").unwrap();
    w.insert(&gone, b"k", &[1; 10_000]).unwrap();
    w.commit().unwrap();
    let mut w = db.begin_write().unwrap();
    w.drop_tree("gone").unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    assert!(vfs.read_file(WAL).is_none(), "a clean close removes the WAL");
    vfs.read_file(DB).unwrap()
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn page(b: &mut [u8], n: u32) -> &mut [u8] {
    &mut b[n as usize * PS..(n as usize + 1) * PS]
}
fn pages(b: &[u8]) -> u32 {
    (b.len() / PS) as u32
}

/// (name, root, leaf page, offset of the root's varint) of every catalog
/// entry; the sample's catalog is one leaf.
fn catalog(b: &[u8]) -> Vec<(String, u32, u32, usize)> {
    let root = u32_at(b, 52);
    let p = &b[root as usize * PS..(root as usize + 1) * PS];
    assert_eq!(p[0], 2, "the sample's catalog is a single leaf");
    (0..u16_at(p, 2))
        .map(|i| {
            let off = u16_at(p, 16 + 2 * i);
            assert_eq!(p[off], 0, "inline catalog cell");
            let klen = u16_at(p, off + 1);
            let name = String::from_utf8(p[off + 5..off + 5 + klen].to_vec()).unwrap();
            let at = off + 5 + klen;
            let (mut v, mut shift, mut i) = (0u32, 0, at);
            loop {
                v |= ((p[i] & 0x7f) as u32) << shift;
                shift += 7;
                i += 1;
                if p[i - 1] & 0x80 == 0 {
                    break;
                }
            }
            (name, v, root, at)
        })
        .collect()
}

fn root_of(b: &[u8], name: &str) -> u32 {
    catalog(b).into_iter().find(|c| c.0 == name).unwrap().1
}

fn varint(v: u32) -> Vec<u8> {
    let (mut v, mut out) = (v, Vec::new());
    loop {
        if v < 0x80 {
            out.push(v as u8);
            return out;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
}

/// Points the catalog entry of `name` at `root` (a varint of the same
/// length as the old one) and reseals the catalog leaf.
fn set_root(b: &mut [u8], name: &str, root: u32) {
    let (_, old, leaf, at) = catalog(b).into_iter().find(|c| c.0 == name).unwrap();
    let (old, new) = (varint(old), varint(root));
    assert_eq!(old.len(), new.len(), "same varint length");
    let p = page(b, leaf);
    p[at..at + new.len()].copy_from_slice(&new);
    seal_page(leaf, p);
}

/// A WAL of the database `b` (same file id) holding `frames`, the last one
/// the commit frame with marker `marker`.
fn wal(b: &[u8], frames: &[(u32, Vec<u8>)], marker: u32) -> Vec<u8> {
    const SALT: u64 = 0x1234_5678_9abc_def0;
    let mut w = vec![0u8; 64];
    w[0..4].copy_from_slice(b"OBJW");
    put_u32(&mut w, 4, 1);
    put_u32(&mut w, 8, PS as u32);
    w[16..32].copy_from_slice(&b[24..40]);
    w[32..40].copy_from_slice(&SALT.to_le_bytes());
    w[40..48].copy_from_slice(&1u64.to_le_bytes());
    let mut chain = crc32fast::hash(&w[..60]);
    put_u32(&mut w, 60, chain);
    for (i, (pgno, image)) in frames.iter().enumerate() {
        let mut h = [0u8; 24];
        put_u32(&mut h, 0, *pgno);
        put_u32(&mut h, 4, if i + 1 == frames.len() { marker } else { 0 });
        h[8..16].copy_from_slice(&SALT.to_le_bytes());
        let mut c = crc32fast::Hasher::new_with_initial(chain);
        c.update(&h[..16]);
        c.update(&image[PS - 4..]);
        c.update(&image[..PS - 4]);
        chain = c.finalize();
        put_u32(&mut h, 16, chain);
        w.extend_from_slice(&h);
        w.extend_from_slice(image);
    }
    w
}

/// Page 0 of `b` as the next commit writes it, with `edit` applied.
fn next_page0(b: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut p = b[..PS].to_vec();
    let counter = u64::from_le_bytes(p[56..64].try_into().unwrap());
    p[56..64].copy_from_slice(&(counter + 1).to_le_bytes());
    p[72..80].copy_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    edit(&mut p);
    seal_page(0, &mut p);
    p
}

/// A sealed empty leaf for page `pgno`.
fn empty_leaf(pgno: u32) -> Vec<u8> {
    let mut img = vec![0u8; PS];
    img[0] = 2;
    put_u32(&mut img, 4, (PS - 4) as u32);
    seal_page(pgno, &mut img);
    img
}

fn corruption<T: std::fmt::Debug>(r: obj_engine::Result<T>, says: &str) -> String {
    match r {
        Err(e @ Error::Corruption { .. }) => {
            let m = e.to_string();
            assert!(m.contains(says), "{m:?} should say {says:?}");
            m
        }
        other => panic!("expected Corruption saying {says:?}, got {other:?}"),
    }
}

/// Installs `main` and `wal`, opens: it must be `Corruption` saying
/// `says`, leaving the main file as it was.
fn open_refused(vfs: &SimVfs, main: &[u8], wal: Vec<u8>, says: &str) {
    vfs.write_file(DB, main);
    vfs.write_file(WAL, &wal);
    corruption(Db::open_with(DB, options(vfs)), says);
    assert_eq!(vfs.read_file(DB).unwrap(), main, "the main file is left as it was");
    // Without the WAL the database opens as of its last checkpoint.
    vfs.write_file(WAL, &[]);
    let db = Db::open_with(DB, options(vfs)).unwrap();
    db.integrity_check().unwrap();
    db.close().unwrap();
}

// ---- A: page counts and page numbers taken from the WAL ----

#[test]
fn a_wal_commit_counting_more_pages_than_file_and_wal_hold_is_refused() {
    let vfs = SimVfs::new();
    let b = sample(&vfs);
    // One frame: the file's pages plus fewer than 1 + 4096 / 4 more.
    let most = pages(&b) as u64 + 1 + (PS as u64 - 4) / 4;
    for count in [most as u32 + 1, 5000, 1 << 24, 0xFFFF_FFF0] {
        let p0 = next_page0(&b, |p| put_u32(p, 40, count));
        open_refused(&vfs, &b, wal(&b, &[(0, p0)], count), "its newest commit counts");
    }
}

#[test]
fn a_wal_frame_past_its_commits_page_count_is_refused() {
    let vfs = SimVfs::new();
    let b = sample(&vfs);
    let n = pages(&b);
    let p0 = next_page0(&b, |_| {});
    // With page 0 (an ordinary commit) and without it.
    open_refused(&vfs, &b, wal(&b, &[(0, p0.clone()), (n + 3, empty_leaf(n + 3))], n), "past the");
    open_refused(&vfs, &b, wal(&b, &[(n + 3, empty_leaf(n + 3))], n), "past the");
    open_refused(&vfs, &b, wal(&b, &[(n, empty_leaf(n))], n), "past the");
}

#[test]
fn a_wal_commit_without_page_0_is_refused() {
    let vfs = SimVfs::new();
    let b = sample(&vfs);
    let n = pages(&b);
    let leaf = root_of(&b, "u");
    let mut img = b[leaf as usize * PS..(leaf as usize + 1) * PS].to_vec();
    seal_page(leaf, &mut img);
    open_refused(&vfs, &b, wal(&b, &[(leaf, img)], n), "holds no page 0");
}

#[test]
fn a_wal_commit_marker_other_than_page_0s_count_is_refused() {
    let vfs = SimVfs::new();
    let b = sample(&vfs);
    let n = pages(&b);
    let p0 = next_page0(&b, |_| {});
    open_refused(&vfs, &b, wal(&b, &[(0, p0)], n + 1), "its commit records");
}

/// The bound's worst real case: a transaction allocates pages past the end
/// and frees them again, so they are never written and only freelist
/// trunks (written) list them. Recovery and the checkpoint accept it.
#[test]
fn pages_allocated_and_freed_unwritten_are_within_the_bound() {
    let vfs = SimVfs::new();
    let opts = Options { wal_autocheckpoint: 0, ..options(&vfs) };
    let db = Db::open_with(DB, opts.clone()).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"a", b"b").unwrap();
    w.commit().unwrap();
    db.checkpoint().unwrap();
    let before = db.begin_read().unwrap().snapshot().header().page_count;
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    for i in 0u32..3000 {
        w.insert(&t, &i.to_be_bytes(), &[7; 3000]).unwrap();
    }
    for i in 0u32..3000 {
        w.delete(&t, &i.to_be_bytes()).unwrap();
    }
    w.commit().unwrap();
    let after = db.begin_read().unwrap().snapshot().header().page_count;
    let frames = db.stat().unwrap().wal_frames;
    assert!(after - before > 3000, "{before} -> {after}");
    assert!((after - before) as u64 > 10 * frames, "most pages were never written: {frames} frames");
    db.close_without_checkpoint();
    let db = Db::open_with(DB, opts).unwrap();
    db.integrity_check().unwrap();
    db.checkpoint().unwrap();
    assert_eq!(vfs.read_file(DB).unwrap().len(), after as usize * PS);
    db.close().unwrap();
}

// ---- B: tree roots taken from the catalog ----

#[test]
fn a_tree_rooted_at_the_catalogs_root_or_the_header_is_corruption() {
    let vfs = SimVfs::new();
    let good = sample(&vfs);
    let catalog_root = u32_at(&good, 52);
    for (root, says) in [(catalog_root, "the catalog's root"), (0, "the header")] {
        let mut b = good.clone();
        set_root(&mut b, "t", root);
        vfs.write_file(DB, &b);
        let db = Db::open_with(DB, options(&vfs)).unwrap();
        let r = db.begin_read().unwrap();
        let m = corruption(r.open_tree("t"), says);
        assert!(m.contains("\"t\""), "{m}");
        drop(r);
        corruption(db.export_all(Vec::new()), says);
        let mut w = db.begin_write().unwrap();
        corruption(w.open_tree("t"), says);
        corruption(w.create_tree("t"), says);
        drop(w);
        // The other trees read as before.
        let r = db.begin_read().unwrap();
        let u = r.open_tree("u").unwrap();
        assert_eq!(r.get(&u, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        drop(r);
        db.close().unwrap();
    }
}

#[test]
fn trees_of_a_collection_sharing_a_root_are_corruption() {
    let vfs = SimVfs::new();
    let good = sample(&vfs);
    let docs = root_of(&good, "$docs/users");
    // (A name dictionary read as the documents has gaps: that is found first.)
    let names = catalog(&good).into_iter().find(|c| c.0.starts_with("$names")).unwrap().0;
    for (tree, root, says) in [
        ("$index/users/by_email", docs, "the same root page"),
        ("$index/users/by_age", root_of(&good, "$index/users/by_email"), "the same root page"),
        (&names[..], docs, ""),
        (&names[..], root_of(&good, "$index/users/by_age"), ""),
    ] {
        let mut b = good.clone();
        set_root(&mut b, tree, root);
        vfs.write_file(DB, &b);
        let db = Db::open_with(DB, options(&vfs)).unwrap();
        let r = db.begin_read().unwrap();
        corruption(r.collection("users").map(|_| ()), says);
        drop(r);
        let mut w = db.begin_write().unwrap();
        corruption(w.collection_mut("users").map(|_| ()), says);
        drop(w);
        corruption(db.compact_to("/h/copy.obj"), "the same root page");
        db.close().unwrap();
    }
}

#[test]
fn two_trees_sharing_a_root_are_corruption_not_a_stale_handle() {
    let vfs = SimVfs::new();
    let mut b = sample(&vfs);
    let t = root_of(&b, "t");
    let u = root_of(&b, "u");
    assert_eq!(varint(t).len(), varint(u).len());
    set_root(&mut b, "u", t);
    vfs.write_file(DB, &b);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let tt = w.open_tree("t").unwrap();
    let uu = w.open_tree("u").unwrap();
    w.insert(&tt, b"x", b"1").unwrap();
    let m = corruption(w.insert(&uu, b"y", b"2"), "the same root page");
    assert!(m.contains("\"t\"") && m.contains("\"u\""), "{m}");
    drop(w);
    db.close().unwrap();
}

#[test]
fn a_catalog_root_naming_a_data_tree_is_caught_before_a_create_writes_into_it() {
    let vfs = SimVfs::new();
    let mut b = sample(&vfs);
    let t = root_of(&b, "t");
    put_u32(&mut b, 52, t);
    seal_page(0, page(&mut b, 0));
    vfs.write_file(DB, &b);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    corruption(w.create_tree("new"), "the catalog");
    drop(w);
    let mut w = db.begin_write().unwrap();
    corruption(w.kv_put("other", b"k", b"v").map(|_| ()), "the catalog");
    drop(w);
    let mut w = db.begin_write().unwrap();
    corruption(w.collection_mut("people").map(|_| ()), "the catalog");
    drop(w);
    db.close().unwrap();
    assert_eq!(vfs.read_file(DB).unwrap(), b, "nothing was written");
}

// ---- C: index entries that do not match the document they lead to ----

/// `good` with the index entry of key `key` (bytes) holding id `from`
/// (after the key in a unique index's value, at the key's end in a standard
/// one) made to hold `to`, on a resealed page.
fn repoint(good: &[u8], key: &[u8], from: u64, to: u64) -> Vec<u8> {
    let mut b = good.to_vec();
    let mut want = key.to_vec();
    want.extend_from_slice(&from.to_be_bytes());
    let at = b.windows(want.len()).position(|w| w == want).expect("the index entry");
    b[at + key.len()..at + want.len()].copy_from_slice(&to.to_be_bytes());
    let pgno = (at / PS) as u32;
    seal_page(pgno, page(&mut b, pgno));
    b
}

fn query_ids(db: &Db, json: &str) -> obj_engine::Result<Vec<u64>> {
    let spec = obj_engine::QuerySpec::from_json(json).unwrap();
    let r = db.begin_read()?;
    let c = r.collection("users")?;
    let ids = c.query(&spec)?.map(|row| row.map(|r| r.0)).collect();
    ids
}

#[test]
fn an_index_entry_leading_to_another_document_is_corruption_not_that_document() {
    let vfs = SimVfs::new();
    let good = sample(&vfs);
    let email = |s: &str| [&[0x40][..], s.as_bytes(), &[0]].concat();
    let find = |db: &Db, key: &str| {
        let r = db.begin_read().unwrap();
        let c = r.collection("users").unwrap();
        c.find_unique("by_email", &[from_json_str(&format!("{key:?}")).unwrap()]).map(|f| f.map(|(id, _)| id))
    };
    // u5@x is document 6; its entry made to lead to document 10 (u9@x),
    // then to a document that does not exist.
    for (to, says) in [(10, "non-matching document 10"), (999, "missing document 999")] {
        vfs.write_file(DB, &repoint(&good, &email("u5@x"), 6, to));
        let db = Db::open_with(DB, options(&vfs)).unwrap();
        corruption(find(&db, "u5@x"), says);
        let eq = r#"{"collection":"users","filter":{"eq":["email","u5@x"]}}"#;
        let m = corruption(query_ids(&db, eq), &to.to_string());
        assert!(m.contains(r#"index "by_email" of "users""#), "{m}");
        assert_eq!(find(&db, "u4@x").unwrap(), Some(5), "the other entries serve");
        db.close().unwrap();
    }
    // A standard index: (age 5, document 6) made to lead to document 10
    // (age 2), for equality and for a sort read through the index.
    vfs.write_file(DB, &repoint(&good, &[0x1f, 5 << 1], 6, 10));
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    for q in [
        r#"{"collection":"users","filter":{"eq":["age",5]}}"#,
        r#"{"collection":"users","sort":[{"field":"age","order":"desc"}]}"#,
    ] {
        corruption(query_ids(&db, q), "index entry holds a key the document does not have");
    }
    assert_eq!(query_ids(&db, r#"{"collection":"users","filter":{"eq":["age",4]}}"#).unwrap().len(), 7);
    db.close().unwrap();
}

// ---- D: a point lookup that reaches a leaf in the wrong place ----

#[test]
fn a_point_lookup_reaching_a_misplaced_leaf_is_corruption_not_a_miss() {
    let vfs = SimVfs::new();
    let good = sample(&vfs);
    let root = root_of(&good, "t");
    // Children 2 and 5 of t's root swapped: their keys lead to each other's leaves.
    let mut b = good.clone();
    let p = page(&mut b, root);
    let (o2, o5) = (u16_at(p, 16 + 4), u16_at(p, 16 + 10));
    let (c2, c5) = (u32_at(p, o2), u32_at(p, o5));
    put_u32(p, o2, c5);
    put_u32(p, o5, c2);
    seal_page(root, page(&mut b, root));
    vfs.write_file(DB, &b);
    let db = Db::open_with(DB, options(&vfs)).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    let mut damaged = 0;
    for i in 0u32..400 {
        match r.get(&t, &i.to_be_bytes()) {
            Ok(found) => assert_eq!(found, Some(vec![i as u8; (i as usize * 37) % 6000]), "key {i}"),
            Err(e) => {
                assert!(e.is_corruption() && e.to_string().contains("misplaced"), "{e}");
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "the keys of the swapped children are not all found");
    // Keys absent from a leaf in its place are a plain miss.
    assert_eq!(r.get(&t, &400u32.to_be_bytes()).unwrap(), None);
    assert_eq!(r.get(&t, b"").unwrap(), None);
}

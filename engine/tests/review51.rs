//! Review 51: what users found.
//!
//! - One byte of the name of the `$collections` tree, changed in the
//!   catalog with the page's checksum made right again, hid every
//!   collection (a count read 0, the documents were unreachable) and the
//!   integrity check passed: it now reports each collection's tree that
//!   belongs to no listed collection.
//!   A damaged name of a collection's name dictionary left its documents
//!   unreadable and passed too: the first document of a collection with no
//!   ready index is decoded now (the others are, for each index).
//! - A query with both `after_id` and `index` was accepted (and read
//!   nothing) while its collection was missing, and refused once it existed
//!   (from Rust's typed `Db::query` too).

use std::sync::Arc;

use obj_engine::doc::json::from_json_str;
use obj_engine::storage::page::seal_page;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Error, IndexSpec, Options};

fn fill(db: &Db, coll: &str) {
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut(coll).unwrap();
    c.create_index(IndexSpec::unique("by_email", "email").unwrap()).unwrap();
    for i in 0..50 {
        c.insert(&from_json_str(&format!(r#"{{"email":"u{i}"}}"#)).unwrap()).unwrap();
    }
    w.commit().unwrap();
}

/// Closes `db` (at `path` on `vfs`), changes byte `at` of tree name `name`
/// in its catalog root to `to`, with the page's checksum made right
/// again, and returns the integrity check's findings on the reopened file.
fn findings_after_renaming(db: Db, vfs: &SimVfs, path: &str, name: &[u8], at: usize, to: u8) -> Vec<String> {
    db.integrity_check().unwrap();
    let ps = db.stat().unwrap().page_size as usize;
    db.close().unwrap();
    let mut f = vfs.read_file(path).unwrap();
    let root = u32::from_le_bytes(f[52..56].try_into().unwrap()) as usize;
    let page = &mut f[root * ps..(root + 1) * ps];
    let start = page.windows(name.len()).position(|w| w == name).expect("the name in the catalog root");
    page[start + at] = to;
    seal_page(root as u32, page);
    vfs.write_file(path, &f);
    let db = Db::open_with(path, Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() }).unwrap();
    match db.integrity_check() {
        Err(Error::Integrity(f)) => f,
        other => panic!("expected findings, got {other:?}"),
    }
}

#[test]
fn a_collection_hidden_by_a_damaged_catalog_name_is_an_integrity_finding() {
    let vfs = SimVfs::new();
    let o = Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() };
    let db = Db::open_with("/r.obj", o).unwrap();
    fill(&db, "users");
    fill(&db, "orders");
    // "$collections" -> "$colmections"
    let findings = findings_after_renaming(db, &vfs, "/r.obj", b"$collections", 4, b'm');
    for tree in ["$docs/users", "$names/users", "$index/users/by_email", "$docs/orders"] {
        let want = format!("tree {tree:?} belongs to no collection that \"$collections\" lists");
        assert!(findings.contains(&want), "{want} in {findings:?}");
    }
}

/// The review of that check: damage to the kind part of a tree's name
/// (`$names/users` read as `$namez/users`) passed it, and left every
/// document of a collection with no index unreadable (its name dictionary
/// lost). The first document of such a collection is decoded now.
#[test]
fn a_lost_name_dictionary_is_an_integrity_finding() {
    let vfs = SimVfs::new();
    let o = Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() };
    let db = Db::open_with("/n.obj", o).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("users").unwrap();
    for i in 0..20 {
        c.insert(&from_json_str(&format!(r#"{{"email":"u{i}"}}"#)).unwrap()).unwrap();
    }
    w.commit().unwrap();
    let findings = findings_after_renaming(db, &vfs, "/n.obj", b"$names/users", 5, b'z');
    assert!(findings.iter().any(|f| f.starts_with("collection \"users\": document 1:")), "{findings:?}");
}

/// A query's `after_id` with an `index` was refused by the planner alone,
/// which a query of a missing collection never reaches (found from C).
#[test]
fn after_id_with_an_index_is_refused_when_the_query_is_parsed() {
    let e = obj_engine::QuerySpec::from_json(r#"{"collection":"c","after_id":3,"index":{"name":"x"}}"#)
        .unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("does not combine with index")), "{e}");
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    region: String,
}

impl obj_engine::Document for Order {
    const COLLECTION: &'static str = "orders";
    fn indexes() -> Vec<IndexSpec> {
        vec![IndexSpec::standard("by_region", "region").unwrap()]
    }
}

/// Rust's typed `Db::query` of a collection not made yet answered empty.
#[test]
fn a_typed_query_with_after_id_and_an_index_is_refused_before_its_collection_exists() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("a.obj")).unwrap();
    let index = obj_engine::QuerySpec::from_json(r#"{"collection":"orders","index":{"name":"by_region"}}"#)
        .unwrap()
        .index;
    let spec = obj_engine::QuerySpec { index, ..obj_engine::QuerySpec::new("orders").with_after_id(1) };
    for _ in 0..2 {
        let e = db.query::<Order>(&spec).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("does not combine with index")), "{e}");
        db.insert(&Order { region: "eu".into() }).unwrap();
    }
}

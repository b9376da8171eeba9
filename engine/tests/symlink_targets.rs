//! Copies written to a path that is a symbolic link replace the file the
//! link names, as an open through the link would use it, and the link
//! stays: backup, restore, compact_to and export.

use std::os::unix::fs::symlink;
use std::path::Path;

use obj_engine::{Db, ReadableTxn, RestoreOptions};

fn source(dir: &Path, rows: u32) -> Db {
    let db = Db::open(dir.join("src.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0..rows {
        w.insert(&t, &i.to_be_bytes(), b"value").unwrap();
    }
    w.commit().unwrap();
    db
}

fn rows(path: &Path) -> u64 {
    let db = Db::open(path).unwrap();
    let r = db.begin_read().unwrap();
    let n = r.count(&r.find_tree("t").unwrap().unwrap()).unwrap();
    drop(r);
    db.close().unwrap();
    n
}

fn assert_link_to(link: &Path, target: &Path) {
    let meta = std::fs::symlink_metadata(link).unwrap();
    assert!(meta.file_type().is_symlink(), "{} is no longer a symbolic link", link.display());
    assert_eq!(std::fs::read_link(link).unwrap(), target);
}

#[test]
fn backup_and_compact_to_a_link_replace_the_file_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = source(dir, 50);
    for (name, dangling) in [("backup", false), ("backup", true), ("compact", false), ("compact", true)] {
        let target = dir.join(format!("{name}-{dangling}.obj"));
        let link = dir.join(format!("{name}-{dangling}-link.obj"));
        if !dangling {
            Db::open(&target).unwrap().close().unwrap();
        }
        symlink(&target, &link).unwrap();
        if name == "backup" {
            db.backup(&link).unwrap();
        } else {
            db.compact_to(&link).unwrap();
        }
        assert_link_to(&link, &target);
        assert_eq!(rows(&target), 50, "{name} (dangling {dangling})");
        assert_eq!(rows(&link), 50);
    }
}

#[test]
fn restore_to_a_link_replaces_the_database_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = source(dir, 30);
    db.backup(dir.join("bak.obj")).unwrap();
    let (target, link) = (dir.join("live.obj"), dir.join("live-link.obj"));
    Db::open(&target).unwrap().close().unwrap();
    symlink(&target, &link).unwrap();
    Db::restore_from(
        dir.join("bak.obj"),
        &link,
        RestoreOptions { overwrite: true, ..RestoreOptions::default() },
    )
    .unwrap();
    assert_link_to(&link, &target);
    assert_eq!(rows(&target), 30);
}

#[test]
fn an_export_to_a_link_replaces_the_file_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = source(dir, 10);
    let (target, link) = (dir.join("out.jsonl"), dir.join("out-link.jsonl"));
    std::fs::write(&target, b"old\n").unwrap();
    symlink(&target, &link).unwrap();
    db.export_to_path(None, &link).unwrap();
    assert_link_to(&link, &target);
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.lines().count() > 10 && !text.starts_with("old"), "{text}");
}

//! Creating a database: the new file appears whole or not at all.
//!
//! Page 0 of a new database is written and synced under a temporary name
//! and then renamed into place (never over an existing file), so that a
//! crash or power cut during the creation leaves either no file (the next
//! open creates it) or a complete one; never a file with a torn header,
//! which no open could tell from damage, nor a second name for it.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{get, put, RenameHook};
use obj_engine::storage::file::{OpenMode, StorageFile, Vfs};
use obj_engine::storage::sim::{CutMode, Fault, FaultKind, FaultOp, SimVfs};
use obj_engine::{Db, EncryptionKey, Options, ReadableTxn};

const DB: &str = "new.obj";

fn options(vfs: Arc<dyn Vfs>, encrypted: bool) -> Options {
    Options {
        vfs: Some(vfs),
        encryption: encrypted.then(|| EncryptionKey::raw([7; 32])),
        ..Options::default()
    }
}

/// Opens (creating), writes one row and closes.
fn create_and_write(opts: Options) -> obj_engine::Result<()> {
    let db = Db::open_with(DB, opts)?;
    let mut w = db.begin_write()?;
    let t = w.create_tree("t")?;
    w.insert(&t, b"k", b"v")?;
    w.commit()?;
    db.close()
}

fn no_temporary_files(names: &[PathBuf]) {
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains(".tmp-")),
        "a temporary creation file was left: {names:?}"
    );
}

/// Power cut at every call of a creation (plain and encrypted), with each
/// unsynced write dropped, kept, or decided at random: the next open works
/// and, where the first open had acknowledged its commit, finds it.
#[test]
fn a_power_cut_during_creation_never_leaves_an_unopenable_file() {
    for encrypted in [false, true] {
        let calls = {
            let vfs = SimVfs::new();
            create_and_write(options(Arc::new(vfs.clone()), encrypted)).unwrap();
            vfs.op_counts().total()
        };
        for at in 0..calls {
            for (seed, mode) in
                [(0, CutMode::DropAll), (1, CutMode::KeepAll), (2, CutMode::Random), (3, CutMode::Random)]
            {
                let vfs = SimVfs::new();
                vfs.set_fault(Fault { op: FaultOp::Any, after: at, kind: FaultKind::Eio, persistent: true });
                let acked = create_and_write(options(Arc::new(vfs.clone()), encrypted)).is_ok();
                vfs.power_cut(seed, mode);
                vfs.clear_faults();
                let what = format!("encrypted {encrypted}, cut at call {at} of {calls}, {mode:?}");
                let db = Db::open_with(DB, options(Arc::new(vfs.clone()), encrypted))
                    .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
                db.integrity_check().unwrap_or_else(|e| panic!("{what}: integrity: {e}"));
                let r = db.begin_read().unwrap();
                let row = match r.find_tree("t").unwrap() {
                    Some(t) => r.get(&t, b"k").unwrap(),
                    None => None,
                };
                if acked {
                    assert_eq!(row.as_deref(), Some(&b"v"[..]), "{what}: the acknowledged row is lost");
                }
                drop(r);
                db.close().unwrap();
                no_temporary_files(&vfs.file_names());
            }
        }
    }
}

/// A file system that cannot rename without replacing (the trait's
/// default): the database is created in place, as before.
#[derive(Debug)]
struct NoAtomicRename(SimVfs);

impl Vfs for NoAtomicRename {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        self.0.open(path, mode)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.0.exists(path)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.0.remove(path)
    }
}

#[test]
fn without_an_atomic_rename_the_file_is_created_in_place() {
    let sim = SimVfs::new();
    create_and_write(options(Arc::new(NoAtomicRename(sim.clone())), false)).unwrap();
    no_temporary_files(&sim.file_names());
    let db = Db::open_with(DB, options(Arc::new(NoAtomicRename(sim)), false)).unwrap();
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v"[..]));
}

/// Another process puts its new database in place between this open's
/// check and its own rename: this open opens that database (and leaves no
/// temporary file).
#[test]
fn an_open_that_loses_the_creation_race_opens_the_winners_database() {
    // The other process's database, complete, holding one row.
    let other = {
        let sim = SimVfs::new();
        create_and_write(options(Arc::new(sim.clone()), false)).unwrap();
        sim.read_file(DB).unwrap()
    };
    let sim = SimVfs::new();
    let raced = Arc::new(AtomicBool::new(false));
    let (disk, seen) = (sim.clone(), raced.clone());
    let hook = move |noreplace: bool, to: &Path| {
        if noreplace && !seen.swap(true, Ordering::SeqCst) {
            disk.write_file(to, &other);
        }
    };
    let vfs = Arc::new(RenameHook { sim: sim.clone(), hook: Box::new(hook), on_shm: None });
    let db = Db::open_with(DB, options(vfs, false)).unwrap();
    assert!(raced.load(Ordering::SeqCst), "the open did not try to rename");
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v"[..]), "the winner's row");
    db.close().unwrap();
    no_temporary_files(&sim.file_names());
}

/// On the real file system: a new database leaves nothing but itself in
/// its directory after a clean close, and a second open finds it.
#[test]
fn creating_on_disk_leaves_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let path = dir.join("app.obj");
    let db = Db::open(&path).unwrap();
    put(&db, b"k", b"v");
    db.close().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("app.obj")]);
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v"[..]));
    db.close().unwrap();
}

/// A creation's temporary file that a kill left behind (between its write
/// and the rename; a rekey creates its `<path>-rekey` this way too) has the
/// form a copy's has, and the next creation at that path removes it once
/// it is a minute old, as the next copy would; a younger one may be another
/// creation's under way and stays.
#[test]
fn a_creation_removes_the_temporary_file_a_killed_one_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.obj");
    let stale = dir.path().join("app.obj.tmp-0123456789abcdef");
    let young = dir.path().join("app.obj.tmp-fedcba9876543210");
    for p in [&stale, &young] {
        std::fs::write(p, [0u8; 4096]).unwrap();
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
    let db = Db::open(&path).unwrap();
    put(&db, b"k", b"v");
    db.close().unwrap();
    assert!(!stale.exists(), "the stale temporary file stayed");
    assert!(young.exists(), "a temporary file under a minute old was removed");
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v"[..]));
    db.close().unwrap();
}

//! Review 17: what C and Rust users met that earlier tests did not.
//!
//! - A typed read of a document its type cannot take said only serde's
//!   words ("invalid type: string \"Ann\", expected u64"): it now names the
//!   document and the collection, from `get`, `all`, `query`, `update` and
//!   the cursors.
//! - A restore over a database a crash had left with its `-wal` renamed the
//!   new file in, then removed that WAL: killed between the two, it left a
//!   file that did not open ("belongs to another database"). The WAL now
//!   moves aside first (`-wal-replaced`); an open of the old file takes it
//!   back, and one of the new file removes it.
//! - `attach` refuses a namespace that would hide a local collection, but
//!   a local `ns.coll` could still appear afterwards: created by a write
//!   transaction that began before the attach (or by another handle or
//!   process). Reads of `ns.coll` then answered from the attached file,
//!   silently, while the local collection was there. Such a read is now
//!   refused, naming both, until the namespace is detached.

use obj_engine::storage::file::{OpenMode, StorageFile, Vfs};
use obj_engine::storage::shm::ShmFile;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Error, ReadableTxn, RestoreOptions, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn a_local_collection_created_after_an_attach_is_never_hidden() {
    let dir = tempfile::tempdir().unwrap();
    {
        let other = Db::open(dir.path().join("other.obj")).unwrap();
        let mut tx = other.begin_write().unwrap();
        tx.collection_mut("c").unwrap().insert_json(br#"{"from":"other"}"#, 1).unwrap();
        tx.commit().unwrap();
        other.close().unwrap();
    }
    let db = Db::open(dir.path().join("main.obj")).unwrap();
    let mut early = db.begin_write().unwrap();
    db.attach(dir.path().join("other.obj"), "x").unwrap();
    // The transaction began before the attach: x.c is a local name to it.
    early.collection_mut("x.c").unwrap().insert_json(br#"{"from":"main"}"#, 1).unwrap();
    early.commit().unwrap();

    let both = "both in this database and in the database attached as \"x\"";
    let ambiguous = |r: Result<(), Error>| matches!(&r, Err(Error::InvalidArgument(m)) if m.contains(both));
    let rx = db.begin_read().unwrap();
    assert!(ambiguous(rx.collection("x.c").map(|_| ())), "a read names both");
    let wx = db.begin_write().unwrap();
    assert!(ambiguous(wx.collection("x.c").map(|_| ())), "so does a read in a write transaction");
    drop(wx);
    drop(rx);
    // A local x.only, where the attached file has no collection "only":
    // refused too, without saying that the attached file holds it.
    let mut tx = db.begin_write().unwrap();
    assert!(tx.collection_mut("x.only").is_err(), "x is attached now");
    drop(tx);
    let second = Db::open(dir.path().join("main.obj")).unwrap(); // a handle with nothing attached
    let mut w = second.begin_write().unwrap();
    w.collection_mut("x.only").unwrap().insert_json(br#"{"a":1}"#, 1).unwrap();
    w.commit().unwrap();
    let err = db.begin_read().unwrap().collection("x.only").map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("shadowed by the database attached as \"x\"") && !err.contains("both"), "{err}");

    db.detach("x").unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("x.c").unwrap();
    let mut out = Vec::new();
    c.get_json(1, &mut out).unwrap().expect("the local document");
    assert_eq!(out, br#"{"from":"main"}"#);
    assert_eq!(c.get(1).unwrap().unwrap().get("from"), Some(&Value::from("main")));
}

/// A database with `n` trees' worth of commits, the last of them in its WAL
/// only (closed as a crash would leave it).
fn crashed_db(path: &Path, tree: &str) {
    let db = Db::open(path).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree(tree).unwrap();
    w.insert(&t, b"k", tree.as_bytes()).unwrap();
    w.commit().unwrap();
    db.close_without_checkpoint();
}

fn value_of(path: &Path, tree: &str) -> Option<Vec<u8>> {
    let db = Db::open(path).unwrap();
    db.integrity_check().unwrap();
    let rx = db.begin_read().unwrap();
    let t = rx.find_tree(tree).unwrap()?;
    let v = rx.get(&t, b"k").unwrap().map(|v| v.to_vec());
    drop(rx);
    db.close().unwrap();
    v
}

#[test]
fn a_restore_cut_around_its_rename_leaves_a_database_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (bak, app) = (dir.path().join("bak.obj"), dir.path().join("app.obj"));
    let (wal, aside) = (dir.path().join("app.obj-wal"), dir.path().join("app.obj-wal-replaced"));
    crashed_db(&bak, "new");
    let restore = || {
        Db::restore_from(&bak, &app, RestoreOptions { overwrite: true, ..Default::default() }).unwrap();
    };

    // Cut after the old WAL moved aside, before the new file went in: the
    // old database, its last commit in that WAL, is whole.
    crashed_db(&app, "old");
    std::fs::rename(&wal, &aside).unwrap();
    assert_eq!(value_of(&app, "old").as_deref(), Some(&b"old"[..]));
    assert!(!aside.exists());

    // Cut after the new file went in, before the old WAL was removed.
    crashed_db(&app, "old");
    let old_wal = std::fs::read(&wal).unwrap();
    restore();
    assert!(!wal.exists() && !aside.exists(), "a whole restore leaves neither");
    std::fs::write(&aside, &old_wal).unwrap();
    assert_eq!(value_of(&app, "new").as_deref(), Some(&b"new"[..]));
    assert_eq!(value_of(&app, "old"), None);
    assert!(!aside.exists(), "the replaced file's WAL is removed");

    // A read-only open of the old file reads the WAL where it was moved.
    crashed_db(&app, "old2");
    std::fs::rename(&wal, &aside).unwrap();
    let ro = Db::open_with(&app, obj_engine::Options { read_only: true, ..Default::default() }).unwrap();
    let rx = ro.begin_read().unwrap();
    let t = rx.find_tree("old2").unwrap().expect("the commit in the moved WAL");
    assert_eq!(rx.get(&t, b"k").unwrap().as_deref(), Some(&b"old2"[..]));
}

fn sim_options(vfs: &Arc<dyn Vfs>, read_only: bool) -> obj_engine::Options {
    obj_engine::Options { vfs: Some(vfs.clone()), read_only, ..Default::default() }
}

fn commit_tree(db: &Db, tree: &str) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree(tree).unwrap();
    w.insert(&t, b"k", tree.as_bytes()).unwrap();
    w.commit().unwrap();
}

fn has_tree(db: &Db, tree: &str) {
    let rx = db.begin_read().unwrap();
    let t = rx.find_tree(tree).unwrap().unwrap_or_else(|| panic!("{tree} is missing"));
    assert_eq!(rx.get(&t, b"k").unwrap().as_deref(), Some(tree.as_bytes()));
}

/// On the simulated file system: `tree` committed to `/d/app.obj`, in its
/// WAL only (a crash), and the WAL then moved aside, as a restore cut
/// before it renamed the new file in leaves it.
fn wal_moved_aside_after_a_crash(sim: &SimVfs, vfs: &Arc<dyn Vfs>, tree: &str) {
    let db = Db::open_with(APP, sim_options(vfs, false)).unwrap();
    commit_tree(&db, tree);
    sim.crash();
    drop(db);
    sim.rename(Path::new(WAL), Path::new(ASIDE)).unwrap();
}

const APP: &str = "/d/app.obj";
const WAL: &str = "/d/app.obj-wal";
const ASIDE: &str = "/d/app.obj-wal-replaced";

/// After a restore cut with the old WAL moved aside, the openers after a
/// read-only first one find that WAL too, read-only or not; a writable one
/// moves it back. (They looked at its place only: a writable one failed on
/// the empty WAL it created there, and the next first opener removed the
/// moved one as the replaced file's, losing the commits in it. Found by the
/// session-37 review.) Simulated file system: two handles on one file in
/// one process act as two processes there.
#[test]
fn every_opener_finds_a_wal_a_cut_restore_moved_aside() {
    let sim = SimVfs::new();
    let vfs: Arc<dyn Vfs> = Arc::new(sim.clone());
    let db = Db::open_with(APP, sim_options(&vfs, false)).unwrap();
    commit_tree(&db, "checkpointed");
    db.close().unwrap();
    wal_moved_aside_after_a_crash(&sim, &vfs, "in the wal");

    let first = Db::open_with(APP, sim_options(&vfs, true)).unwrap();
    has_tree(&first, "in the wal");
    let second = Db::open_with(APP, sim_options(&vfs, true)).unwrap();
    has_tree(&second, "in the wal");
    assert!(!sim.exists(Path::new(WAL)).unwrap(), "a read-only open moves nothing");
    let writer = Db::open_with(APP, sim_options(&vfs, false)).unwrap();
    assert!(sim.exists(Path::new(WAL)).unwrap() && !sim.exists(Path::new(ASIDE)).unwrap(), "moved back");
    has_tree(&writer, "in the wal");
    commit_tree(&writer, "after");
    has_tree(&first, "after");
    drop((first, second));
    writer.close().unwrap();
    let db = Db::open_with(APP, sim_options(&vfs, false)).unwrap();
    for tree in ["checkpointed", "in the wal", "after"] {
        has_tree(&db, tree);
    }
    db.integrity_check().unwrap();
}

/// A simulated file system on which a writable opener in another process
/// moves `<db>-wal-replaced` back the moment after the first open of it
/// (the file-id check of a read-only opener that then reads it there).
#[derive(Debug)]
struct MovedBackAfterOpen {
    sim: SimVfs,
    armed: AtomicBool,
}

impl Vfs for MovedBackAfterOpen {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Arc<dyn StorageFile>> {
        let f = self.sim.open(path, mode)?;
        if path == Path::new(ASIDE) && self.armed.swap(false, Ordering::SeqCst) {
            self.sim.rename(path, Path::new(WAL))?;
        }
        Ok(f)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.sim.exists(path)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.sim.remove(path)
    }
    fn sync_parent_dir(&self, path: &Path) -> std::io::Result<()> {
        self.sim.sync_parent_dir(path)
    }
    fn open_shm(&self, path: &Path) -> std::io::Result<Arc<dyn ShmFile>> {
        self.sim.open_shm(path)
    }
    fn shm_in_use(&self, path: &Path) -> std::io::Result<bool> {
        self.sim.shm_in_use(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.sim.rename(from, to)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.sim.rename_noreplace(from, to)
    }
}

/// A read-only opener that found the WAL moved aside, and then finds it
/// moved back by a writable opener before it opens it, reads it at its
/// place (it used to keep looking at the aside path, and every read
/// failed). Found by the session-37 review.
#[test]
fn a_read_only_opener_follows_a_wal_moved_back_under_it() {
    let sim = SimVfs::new();
    let racing = Arc::new(MovedBackAfterOpen { sim: sim.clone(), armed: false.into() });
    let vfs: Arc<dyn Vfs> = racing.clone();
    wal_moved_aside_after_a_crash(&sim, &vfs, "in the wal");

    let first = Db::open_with(APP, sim_options(&vfs, true)).unwrap();
    racing.armed.store(true, Ordering::SeqCst);
    let second = Db::open_with(APP, sim_options(&vfs, true)).unwrap();
    assert!(!racing.armed.load(Ordering::SeqCst), "moved back during the open");
    has_tree(&first, "in the wal");
    has_tree(&second, "in the wal");
}

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Person {
    name: String,
    age: u32,
}

impl obj_engine::Document for Person {
    const COLLECTION: &'static str = "people";
}

/// The same collection read as another shape: `name` is a number here.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Numbered {
    name: u64,
}

impl obj_engine::Document for Numbered {
    const COLLECTION: &'static str = "people";
}

/// A typed read of a document its type cannot take names the document and
/// the collection (serde's words alone named neither, and a query reads many).
#[test]
fn a_typed_read_error_names_the_document_and_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.obj")).unwrap();
    db.insert(&Person { name: "Ann".into(), age: 3 }).unwrap();
    let id = db.insert(&Person { name: "Bob".into(), age: 4 }).unwrap();
    let names = |r: Result<(), Error>| match r {
        Err(Error::InvalidArgument(m)) => {
            assert!(m.contains("of collection \"people\"") && m.contains("expected u64"), "{m}");
            m
        }
        other => panic!("{other:?}"),
    };
    assert!(names(db.get::<Numbered>(id).map(|_| ())).starts_with("document 2 of collection"));
    assert!(names(db.all::<Numbered>().map(|_| ())).contains("document 1 of"));
    let q = obj_engine::QuerySpec::new("people");
    assert!(names(db.query::<Numbered>(&q).map(|_| ())).contains("document 1 of"));
    assert!(names(db.update::<Numbered>(id, |_| Ok(())).map(|_| ())).contains("document 2 of"));
    let rx = db.begin_read().unwrap();
    let c = rx.collection("people").unwrap();
    assert!(names(c.get_as::<Numbered>(id).map(|_| ())).contains("document 2 of"));
    let mut cur = c.all().unwrap();
    assert!(names(cur.next_as::<Numbered>().unwrap().map(|_| ())).contains("document 1 of"));
}

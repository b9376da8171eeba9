//! An open that arrives while a rekey swaps the files: it opened the old
//! main file, then waited for the shared index that the swap holds; by the
//! time it gets it, the new file has the path. It must use the new file
//! (found by a review: it used the old, deleted one, and its commits were
//! lost).

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use obj_engine::storage::file::{OpenMode, StorageFile, Vfs};
use obj_engine::storage::shm::ShmFile;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, EncryptionKey, Options, ReadableTxn};

const DB: &str = "t.obj";
const KEY: [u8; 32] = [9; 32];

fn options(vfs: Arc<dyn Vfs>, key: Option<[u8; 32]>) -> Options {
    Options { vfs: Some(vfs), encryption: key.map(EncryptionKey::raw), ..Options::default() }
}

/// The simulated file system, where the rekey's rename first starts
/// another "process" (a handle of its own) opening the database.
#[derive(Debug)]
struct OpenDuringSwap {
    sim: SimVfs,
    opener: Mutex<Option<JoinHandle<obj_engine::Result<()>>>>,
}

impl Vfs for OpenDuringSwap {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        self.sim.open(path, mode)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.sim.exists(path)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.sim.remove(path)
    }
    fn sync_parent_dir(&self, path: &Path) -> io::Result<()> {
        self.sim.sync_parent_dir(path)
    }
    fn open_shm(&self, path: &Path) -> io::Result<Arc<dyn ShmFile>> {
        self.sim.open_shm(path)
    }
    fn shm_in_use(&self, path: &Path) -> io::Result<bool> {
        self.sim.shm_in_use(path)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.sim.rename_noreplace(from, to)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if to == Path::new(DB) {
            let sim = self.sim.clone();
            *self.opener.lock().unwrap() = Some(std::thread::spawn(move || {
                // Opens the old main file, then waits for the shared index.
                let db = Db::open_with(DB, options(Arc::new(sim), Some(KEY)))?;
                let mut w = db.begin_write()?;
                let t = w.create_tree("other")?;
                w.insert(&t, b"k", b"acknowledged")?;
                w.commit()?;
                db.close()
            }));
            // Long enough for the opener to reach the wait.
            std::thread::sleep(Duration::from_millis(300));
        }
        self.sim.rename(from, to)
    }
}

#[test]
fn an_open_during_a_rekeys_swap_uses_the_new_file() {
    let sim = SimVfs::new();
    let vfs = Arc::new(OpenDuringSwap { sim: sim.clone(), opener: Mutex::new(None) });
    let mut db = Db::open_with(DB, options(vfs.clone(), None)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"a", b"1").unwrap();
    w.commit().unwrap();
    db.rekey(Some(EncryptionKey::raw(KEY))).unwrap();
    db.close().unwrap();
    let opener = vfs.opener.lock().unwrap().take().expect("the rekey renamed the new file into place");
    opener.join().unwrap().expect("the open during the swap (with the new key) and its commit");
    let db = Db::open_with(DB, options(Arc::new(sim), Some(KEY))).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.find_tree("t").unwrap().unwrap();
    assert_eq!(r.get(&t, b"a").unwrap().as_deref(), Some(&b"1"[..]));
    let other = r.find_tree("other").unwrap().expect("the acknowledged commit of the open during the swap");
    assert_eq!(r.get(&other, b"k").unwrap().as_deref(), Some(&b"acknowledged"[..]));
    drop(r);
    db.integrity_check().unwrap();
}

//! An open that arrives while a rekey swaps the files: it opened the old
//! main file, then waited for the shared index that the swap holds; by the
//! time it gets it, the new file has the path. It must use the new file
//! (found by a review: it used the old, deleted one, and its commits were
//! lost).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{get, get_in, put, put_in, RenameHook};
use obj_engine::storage::file::Vfs;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, EncryptionKey, Options};

const DB: &str = "t.obj";
const KEY: [u8; 32] = [9; 32];

fn options(vfs: Arc<dyn Vfs>, key: Option<[u8; 32]>) -> Options {
    Options { vfs: Some(vfs), encryption: key.map(EncryptionKey::raw), ..Options::default() }
}

#[test]
fn an_open_during_a_rekeys_swap_uses_the_new_file() {
    let sim = SimVfs::new();
    // The rekey's rename into place first starts another "process" (a
    // handle of its own) opening the database with the new key.
    let opener: Arc<Mutex<Option<JoinHandle<obj_engine::Result<()>>>>> = Arc::default();
    let (disk, started) = (sim.clone(), opener.clone());
    let hook = move |noreplace: bool, to: &Path| {
        if noreplace || to != Path::new(DB) {
            return;
        }
        let disk = disk.clone();
        *started.lock().unwrap() = Some(std::thread::spawn(move || {
            // Opens the old main file, then waits for the shared index.
            let db = Db::open_with(DB, options(Arc::new(disk), Some(KEY)))?;
            put_in(&db, "other", b"k", b"acknowledged");
            db.close()
        }));
        // Long enough for the opener to reach the wait.
        std::thread::sleep(Duration::from_millis(300));
    };
    let vfs = Arc::new(RenameHook { sim: sim.clone(), hook: Box::new(hook), on_shm: None });
    let mut db = Db::open_with(DB, options(vfs, None)).unwrap();
    put(&db, b"a", b"1");
    db.rekey(Some(EncryptionKey::raw(KEY))).unwrap();
    db.close().unwrap();
    let opener = opener.lock().unwrap().take().expect("the rekey renamed the new file into place");
    opener.join().unwrap().expect("the open during the swap (with the new key) and its commit");
    let db = Db::open_with(DB, options(Arc::new(sim), Some(KEY))).unwrap();
    assert_eq!(get(&db, b"a").as_deref(), Some(&b"1"[..]));
    assert_eq!(
        get_in(&db, "other", b"k").as_deref(),
        Some(&b"acknowledged"[..]),
        "the acknowledged commit of the open during the swap"
    );
    db.integrity_check().unwrap();
}

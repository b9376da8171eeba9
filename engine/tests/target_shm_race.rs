//! A copy's lock on its target's `-shm` (restore, backup and compaction
//! targets, the rekey swap) must be on the file at the path. A last closer
//! that removes the `-shm` between the copy's open of it and its lock
//! leaves the copy locking a removed file, which keeps no opener out: the
//! restore then renames over a database another handle has open and has
//! just committed to.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::RenameHook;
use obj_engine::storage::file::Vfs;
use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Options, ReadableTxn, RestoreOptions};

const TARGET: &str = "t.obj";
const BACKUP: &str = "b.obj";

fn opts(sim: &SimVfs) -> Options {
    Options {
        vfs: Some(Arc::new(sim.clone())),
        busy_timeout: Duration::from_millis(200),
        ..Options::default()
    }
}

fn put(db: &Db, k: &[u8]) -> obj_engine::Result<()> {
    let mut w = db.begin_write()?;
    let t = w.create_tree("t")?;
    w.insert(&t, k, b"v")?;
    w.commit()
}

#[test]
fn a_restore_never_replaces_a_database_opened_during_its_lock() {
    let sim = SimVfs::new();
    let b = Db::open_with(BACKUP, opts(&sim)).unwrap();
    put(&b, b"from-backup").unwrap();
    b.close().unwrap();
    let first = Db::open_with(TARGET, opts(&sim)).unwrap();
    put(&first, b"old").unwrap();
    // `first` closes (the last closer, removing t.obj-shm) just after the
    // restore opened t.obj-shm and before it locks it.
    let closer: Arc<Mutex<Option<Db>>> = Arc::new(Mutex::new(Some(first)));
    // Another "process" opens the target just before the rename (it waits
    // for the lock the restore holds) and commits.
    let late: Arc<Mutex<Option<std::thread::JoinHandle<obj_engine::Result<Db>>>>> = Arc::default();
    let c = closer.clone();
    let (l, s2) = (late.clone(), sim.clone());
    let hooks = RenameHook {
        sim: sim.clone(),
        on_shm: Some(Box::new(move |p| {
            if p == Path::new("t.obj-shm") {
                if let Some(db) = c.lock().unwrap().take() {
                    db.close().unwrap();
                }
            }
        })),
        hook: Box::new(move |_, to| {
            if to == Path::new(TARGET) && l.lock().unwrap().is_none() {
                let s2 = s2.clone();
                *l.lock().unwrap() = Some(std::thread::spawn(move || {
                    let db =
                        Db::open_with(TARGET, Options { busy_timeout: Duration::from_secs(3), ..opts(&s2) })?;
                    put(&db, b"acknowledged")?;
                    Ok(db)
                }));
                // Long enough for the opener to reach its wait.
                std::thread::sleep(Duration::from_millis(300));
            }
        }),
    };
    let vfs: Arc<dyn Vfs> = Arc::new(hooks);
    let restored = Db::restore_from(
        BACKUP,
        TARGET,
        RestoreOptions { overwrite: true, vfs: Some(vfs), ..RestoreOptions::default() },
    );
    assert!(closer.lock().unwrap().is_none(), "the hook closed the first handle");
    restored.as_ref().unwrap();
    let late = late.lock().unwrap().take().expect("the hook ran").join().unwrap();
    match late {
        Ok(db) => {
            // Its commit was acknowledged: it must be in the database at the path.
            drop(db);
            let reopened = Db::open_with(TARGET, opts(&sim));
            let has = reopened.as_ref().ok().map(|db| {
                let r = db.begin_read().unwrap();
                let t = r.open_tree("t").unwrap();
                (r.get(&t, b"acknowledged").unwrap().is_some(), r.get(&t, b"from-backup").unwrap().is_some())
            });
            assert_eq!(has, Some((true, true)), "reopen: {:?}", reopened.err());
        }
        Err(e) => panic!("late open: {e:?}"),
    }
}

//! fork() and a database handle, in a test binary of its own: the child
//! of a fork inherits only the forking thread, so a lock another test's
//! thread held at that moment (the handle registry's, say) would stay held
//! in the child forever. Alone here, nothing else runs at the fork.

use obj_engine::{Db, Error, Options, ReadableTxn};

mod common;
use common::{get, put, side_files};

/// One test, so that its forks happen with no other test's thread running.
#[test]
fn fork_with_open_handles() {
    a_handle_used_after_fork_is_refused();
    a_child_dropping_a_spilled_transaction_leaves_the_wal_alone();
}

fn a_handle_used_after_fork_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fork.obj");
    let db = Db::open(&path).unwrap();
    put(&db, b"k", b"v");
    let before = db.begin_read().unwrap();
    // SAFETY: the child only calls into the engine (which checks the pid
    // first) and then _exit()s without running destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let read = db.begin_read().map(drop);
        let write = db.begin_write().map(drop);
        let refused =
            |r: &obj_engine::Result<()>| matches!(r, Err(Error::InvalidArgument(m)) if m.contains("fork"));
        // A snapshot taken before the fork is the parent's too.
        let inherited = before.find_tree("t").map(drop);
        // The child opens the file itself (the parent's engine is not
        // joined) and works like any other process.
        let own = Db::open(&path).and_then(|child| {
            let mut w = child.begin_write()?;
            let t = w.create_tree("t")?;
            w.insert(&t, b"child", b"c")?;
            w.commit()?;
            child.close()
        });
        let ok = refused(&read) && refused(&write) && refused(&inherited) && own.is_ok();
        // SAFETY: ends the forked child at once, as a child of a threaded
        // process should.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child could use the handle");
    // The parent's handle and locks are intact, and it sees the child's commit.
    drop(before);
    put(&db, b"k2", b"v2");
    assert_eq!(get(&db, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&db, b"child").as_deref(), Some(&b"c"[..]));
    db.close().unwrap();
    assert_eq!(side_files(&path), (false, false));
}

/// A write transaction that spilled pages to the WAL, inherited by a child
/// that drops it (as a child leaving a `with` block or exiting normally
/// does): the rollback must not rewind or cut the WAL under the parent,
/// whose commit of the same transaction goes on.
fn a_child_dropping_a_spilled_transaction_leaves_the_wal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.obj");
    let options = || Options { max_dirty_bytes: Some(64 * 4096), ..Options::default() };
    let db = Db::open_with(&path, options()).unwrap();
    let value = |i: u32| vec![(i % 251) as u8; 3000];
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0..8_000u32 {
        w.insert(&t, &i.to_be_bytes(), &value(i)).unwrap();
    }
    assert!(w.spilled_pages() > 4_000, "spilled only {} pages", w.spilled_pages());
    // SAFETY: the child drops its copy of the transaction and then
    // _exit()s without running other destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(w);
        // SAFETY: ends the forked child at once.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    w.commit().unwrap();
    let check = |db: &Db| {
        let r = db.begin_read().unwrap();
        let t = r.open_tree("t").unwrap();
        assert_eq!(r.count(&t).unwrap(), 8_000);
        for i in (0..8_000u32).step_by(97) {
            assert_eq!(r.get(&t, &i.to_be_bytes()).unwrap(), Some(value(i)), "record {i}");
        }
        assert!(db.integrity_check().is_ok());
    };
    check(&db);
    db.close().unwrap();
    check(&Db::open_with(&path, options()).unwrap());
}

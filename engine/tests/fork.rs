//! fork() and a database handle, in a test binary of its own: the child
//! of a fork inherits only the forking thread, so a lock another test's
//! thread held at that moment would stay held in the child forever. Alone
//! here, nothing else runs at the fork, but for the thread the last case
//! starts on purpose: the handle registry's lock, which an open holds
//! through its file I/O, is the process's own, and a child gets a new one.

use obj_engine::{Db, Error, Options, ReadableTxn};

mod common;
use common::{get, put, side_files};

/// One test, so that its forks happen with no other test's thread running.
#[test]
fn fork_with_open_handles() {
    a_handle_used_after_fork_is_refused();
    a_child_dropping_a_spilled_transaction_leaves_the_wal_alone();
    a_shared_scan_inherited_by_a_child_is_refused_without_waiting();
    a_child_opens_while_another_parent_thread_opens_and_closes();
    a_child_gets_pages_while_another_parent_thread_takes_and_frees_them();
    a_rekey_of_an_inherited_handle_leaves_the_childs_engine_registered();
}

/// Forks `rounds` children, `pause` apart, each running `child` under a
/// 5 s alarm and exiting 0 if it returned true; how many did not (a child
/// killed by the alarm hung).
fn children_that_fail(rounds: usize, pause: std::time::Duration, child: impl Fn() -> bool) -> usize {
    let mut failed = 0;
    for _ in 0..rounds {
        std::thread::sleep(pause);
        // SAFETY: the child runs `child` and then _exit()s without running
        // destructors; alarm() ends it should it hang.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: a plain libc call in the child.
            unsafe { libc::alarm(5) };
            let ok = child();
            // SAFETY: ends the forked child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            failed += 1;
        }
    }
    failed
}

/// A child opens the file (its own engine) and then calls rekey on the
/// handle it inherited: refused as the parent's, and without taking the
/// child's engine out of the registry (which let a second open of the file
/// in the child build a second engine: two writers in one process).
fn a_rekey_of_an_inherited_handle_leaves_the_childs_engine_registered() {
    use obj_engine::SyncMode;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rekeyed.obj");
    let mut db = Db::open(&path).unwrap();
    // SAFETY: the child calls into the engine and then _exit()s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: a plain libc call in the child.
        unsafe { libc::alarm(10) };
        let normal = Options { sync_mode: SyncMode::Normal, ..Options::default() };
        let own = Db::open_with(&path, normal).unwrap();
        let rekey = db.rekey(None);
        // The same engine answers a second open: it asks for its sync mode.
        let full = Options { sync_mode: SyncMode::Full, ..Options::default() };
        let second = Db::open_with(&path, full).map(drop);
        let ok = matches!(&rekey, Err(Error::InvalidArgument(m)) if m.contains("fork"))
            && matches!(&second, Err(Error::InvalidArgument(m)) if m.contains("sync mode"));
        drop(own);
        // SAFETY: ends the forked child at once.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child's engine was unregistered");
    db.close().unwrap();
}

/// Another thread of the parent opens and closes databases in a loop (so
/// that it often holds the handle registry's lock at the fork); each child
/// opens the database itself. Children hung in the registry's lock.
fn a_child_opens_while_another_parent_thread_opens_and_closes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forked.obj");
    let db = Db::open(&path).unwrap();
    put(&db, b"k", b"v");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, dir) = (stop.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                drop(Db::open(dir.join(format!("churn{}.obj", i % 3))));
                i += 1;
            }
        })
    };
    let hung = children_that_fail(30, std::time::Duration::from_millis(3), || {
        let ok = Db::open(&path).and_then(|child| {
            let seen = child.begin_read()?.open_tree("t").is_ok();
            child.close().map(|_| seen)
        });
        matches!(ok, Ok(true))
    });
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert_eq!(hung, 0, "children that did not open the database (killed by alarm: hung)");
    db.close().unwrap();
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

/// A query cursor whose scan a helper thread shares (a large filtered
/// scan in a read transaction), inherited by a child: the helper is not in
/// the child, so the cursor must answer with the fork error rather than
/// wait for it, and dropping it must not wait either. The parent's cursor
/// goes on to the end.
fn a_shared_scan_inherited_by_a_child_is_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan.obj");
    let db = Db::open(&path).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    // 30,000 documents of 300 bytes: the helper's blocks hold more than
    // its channel, so it is still at work when the child is forked.
    for i in 0..30_000u64 {
        let pad = obj_engine::Value::Str("p".repeat(300));
        c.insert(&obj_engine::Value::Map(vec![
            ("n".into(), obj_engine::Value::UInt(i)),
            ("pad".into(), pad),
        ]))
        .unwrap();
    }
    drop(c);
    w.commit().unwrap();
    let spec = obj_engine::QuerySpec::from_json(r#"{"collection":"c","filter":{"ge":["n",0]}}"#).unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    let mut cursor = c.query(&spec).unwrap();
    // Into the second block (ids from 4,287 of 30,000 in 7 blocks), which
    // the helper scans: the child's next results come from its channel.
    let taken: Vec<u64> = cursor.by_ref().take(5_000).map(|r| r.unwrap().0).collect();
    assert_eq!(taken, (1..=5_000).collect::<Vec<u64>>());
    // SAFETY: the child only calls into the engine (which checks the pid)
    // and then _exit()s without running other destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let refused = cursor.by_ref().find_map(Result::err);
        let ok = matches!(&refused, Some(Error::InvalidArgument(m)) if m.contains("fork"));
        drop(cursor);
        // SAFETY: ends the forked child at once.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    let mut waited = 0;
    loop {
        // SAFETY: polls the child forked above.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        waited += 1;
        if waited > 600 {
            // SAFETY: stops the child forked above, which hangs.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child waited for a helper thread that is not in its process");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child's cursor answered");
    let rest: Vec<u64> = cursor.map(|r| r.unwrap().0).collect();
    assert_eq!(rest, (5_001..=30_000).collect::<Vec<u64>>());
    drop(c);
    drop(rx);
    db.close().unwrap();
}

/// The page buffers' pools are the process's own, like the allocator: a
/// child forked while another thread of the parent held a pool's lock
/// (taking or freeing a page) must still get pages (the fork takes every
/// pool's lock first and releases it in both processes). Without that, 2
/// to 5 of 20 such children hung.
fn a_child_gets_pages_while_another_parent_thread_takes_and_frees_them() {
    use obj_engine::storage::page::PageRef;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                kept.extend((0..600).map(|_| PageRef::zeroed(4096)));
                kept.clear();
            }
        })
    };
    let hung = children_that_fail(40, std::time::Duration::from_millis(2), || {
        PageRef::zeroed(4096).iter().all(|&b| b == 0)
    });
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert_eq!(hung, 0, "children that got no page (killed by alarm: hung)");
}

//! Recovery and hostile files: a torn WAL tail, flipped bytes, files that
//! are not databases, newer versions, truncation, a WAL of another database.
//! Crashes are simulated with the in-memory `SimVfs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use obj_engine::storage::sim::{CutMode, SimVfs};
use obj_engine::{Db, Error, Options, ReadableTxn};

mod common;
use common::{get_in as get, put_in as put};

const DB: &str = "/sim/app.obj";
const WAL: &str = "/sim/app.obj-wal";

fn sim_options(vfs: &SimVfs) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), wal_autocheckpoint: 0, ..Options::default() }
}

#[test]
fn torn_last_frame_recovers_previous_commit() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
    put(&db, "t", b"a", b"first");
    let frame_len = 4096 + 24;
    let len_a = common::wal_frames(&vfs.read_file(Path::new(WAL)).unwrap(), frame_len).len();
    put(&db, "t", b"b", &[9u8; 100]);
    let wal = common::wal_frames(&vfs.read_file(Path::new(WAL)).unwrap(), frame_len).to_vec();
    vfs.crash();
    drop(db);
    assert!(wal.len() >= len_a + frame_len);
    let last_frame = wal.len() - frame_len;
    for cut in last_frame..wal.len() {
        vfs.write_file(Path::new(WAL), &wal[..cut]);
        let db = Db::open_with(DB, sim_options(&vfs)).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(get(&db, "t", b"a").as_deref(), Some(&b"first"[..]), "cut at {cut}");
        assert_eq!(get(&db, "t", b"b"), None, "cut at {cut}");
        db.integrity_check().unwrap();
        vfs.crash();
        drop(db);
    }
    // Flipping any byte of the last frame also loses exactly that commit.
    for at in (last_frame..wal.len()).step_by(97) {
        let mut bad = wal.clone();
        bad[at] ^= 0x40;
        vfs.write_file(Path::new(WAL), &bad);
        let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
        assert_eq!(get(&db, "t", b"a").as_deref(), Some(&b"first"[..]));
        assert_eq!(get(&db, "t", b"b"), None, "flip at {at}");
        vfs.crash();
        drop(db);
    }
    // The intact WAL recovers both.
    vfs.write_file(Path::new(WAL), &wal);
    let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
    assert_eq!(get(&db, "t", b"b"), Some(vec![9u8; 100]));
}

#[test]
fn flipped_page_bytes_are_corruption_not_panic() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0u32..3000 {
        w.insert(&t, &i.to_be_bytes(), &[i as u8; 50]).unwrap();
    }
    w.commit().unwrap();
    db.close().unwrap();
    assert!(vfs.read_file(Path::new(WAL)).is_none(), "clean close removes the WAL");
    let clean = vfs.read_file(Path::new(DB)).unwrap();
    let pages = clean.len() / 4096;
    for page in 0..pages {
        for offset in [0usize, 17, 2048, 4091, 4095] {
            let mut bad = clean.clone();
            bad[page * 4096 + offset] ^= 0x01;
            vfs.write_file(Path::new(DB), &bad);
            let outcome = Db::open_with(DB, sim_options(&vfs)).and_then(|db| {
                let r = db.begin_read()?;
                let t = r.open_tree("t")?;
                for i in 0u32..3000 {
                    let v = r.get(&t, &i.to_be_bytes())?;
                    assert_eq!(
                        v,
                        Some(vec![i as u8; 50]),
                        "wrong data returned, page {page} offset {offset}"
                    );
                }
                drop(r);
                db.integrity_check()?;
                Ok(())
            });
            match outcome {
                Err(Error::Corruption { .. }) | Err(Error::Integrity(_)) => {}
                // A damaged magic no longer says "obj database" at all.
                Err(Error::InvalidArgument(_)) if page == 0 && offset < 8 => {}
                other => panic!("page {page} offset {offset}: expected corruption, got {other:?}"),
            }
            vfs.crash();
        }
    }
}

#[test]
fn foreign_newer_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let not_db = dir.path().join("notes.txt");
    std::fs::write(&not_db, vec![b'x'; 10_000]).unwrap();
    assert!(matches!(Db::open(&not_db), Err(Error::InvalidArgument(_))));
    std::fs::write(&not_db, b"short").unwrap();
    assert!(matches!(Db::open(&not_db), Err(Error::InvalidArgument(_))));

    let path = dir.path().join("real.obj");
    let db = Db::open(&path).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0u32..5000 {
        w.insert(&t, &i.to_be_bytes(), &[1u8; 100]).unwrap();
    }
    w.commit().unwrap();
    db.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();

    // A newer format keeps page 0's checksum trailer: a file of version 99
    // with a valid page 0 is Unsupported; the same bytes with the old
    // checksum are a damaged header (a flipped bit), Corruption.
    let mut newer = bytes.clone();
    newer[8] = 99;
    let p = dir.path().join("newer.obj");
    std::fs::write(&p, &newer).unwrap();
    assert!(matches!(Db::open(&p), Err(Error::Corruption { .. })), "{:?}", Db::open(&p));
    obj_engine::storage::page::seal_page(0, &mut newer[..4096]);
    std::fs::write(&p, &newer).unwrap();
    assert!(matches!(Db::open(&p), Err(Error::Unsupported(_))), "{:?}", Db::open(&p));
    for (byte, bit) in [(9, 0x01), (11, 0x80), (8, 0x02)] {
        let mut flipped = bytes.clone();
        flipped[byte] ^= bit;
        std::fs::write(&p, &flipped).unwrap();
        let err = Db::open(&p).unwrap_err();
        assert!(matches!(&err, Error::Corruption { .. }) && err.to_string().contains("newer"), "{err:?}");
    }
    // The version and the page size garbled together (page 0 then cannot
    // be checked at the size it claims): still damage, found by trying
    // page 0 at every page size. A newer file with another page size
    // verifies at its own.
    let mut garbled = bytes.clone();
    garbled[11..15].copy_from_slice(&[0x40, 0x12, 0x34, 0x56]);
    std::fs::write(&p, &garbled).unwrap();
    let err = Db::open(&p).unwrap_err();
    assert!(matches!(&err, Error::Corruption { .. }), "{err:?}");
    let big = dir.path().join("big.obj");
    let db = Db::open_with(&big, Options { page_size: 16384, ..Options::default() }).unwrap();
    db.close().unwrap();
    let mut newer = std::fs::read(&big).unwrap();
    newer[8] = 99;
    newer[12..16].copy_from_slice(&7u32.to_le_bytes());
    obj_engine::storage::page::seal_page(0, &mut newer[..16384]);
    std::fs::write(&p, &newer).unwrap();
    assert!(matches!(Db::open(&p), Err(Error::Unsupported(_))), "{:?}", Db::open(&p));

    let p = dir.path().join("truncated.obj");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(Db::open(&p), Err(Error::Corruption { .. })), "{:?}", Db::open(&p));
    std::fs::write(&p, &bytes[..50]).unwrap();
    assert!(matches!(Db::open(&p), Err(Error::Corruption { .. })));

    let missing = dir.path().join("missing.obj");
    let opts = Options { create: false, ..Options::default() };
    assert!(matches!(Db::open_with(&missing, opts), Err(Error::NotFound(_))));
    let bad_page = Options { page_size: 5000, ..Options::default() };
    assert!(matches!(Db::open_with(dir.path().join("p.obj"), bad_page), Err(Error::InvalidArgument(_))));
}

#[test]
fn wal_of_another_database_is_refused() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
    put(&db, "t", b"k", b"v");
    vfs.crash();
    drop(db);
    let other = "/sim/other.obj";
    let db2 = Db::open_with(other, sim_options(&vfs)).unwrap();
    put(&db2, "t", b"x", b"y");
    vfs.crash();
    drop(db2);
    let foreign = vfs.read_file(Path::new("/sim/other.obj-wal")).unwrap();
    vfs.write_file(Path::new(WAL), &foreign);
    match Db::open_with(DB, sim_options(&vfs)) {
        Err(Error::Corruption { message, .. }) => assert!(message.contains("another database"), "{message}"),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn an_empty_main_file_beside_a_log_is_refused_untouched() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
    put(&db, "t", b"k", b"v");
    vfs.crash();
    drop(db);
    // The main file lost (truncated), its WAL still there: no open may
    // turn it into a new, empty database.
    vfs.write_file(Path::new(DB), b"");
    let lost = |opts: Options| match Db::open_with(DB, opts) {
        Err(Error::Corruption { message, .. }) => {
            assert!(message.contains("holds a database's log"), "{message}")
        }
        other => panic!("expected corruption, got {other:?}"),
    };
    for read_only in [false, true] {
        lost(Options { read_only, ..sim_options(&vfs) });
        assert_eq!(vfs.read_file(Path::new(DB)).unwrap().len(), 0, "the main file was written");
    }
    // With no main file at all, the refused open leaves none behind.
    let log = vfs.read_file(Path::new(WAL)).unwrap();
    let files = vfs.file_names();
    vfs.write_file(Path::new("/sim/new.obj-wal"), &log);
    assert!(matches!(Db::open_with("/sim/new.obj", sim_options(&vfs)), Err(Error::Corruption { .. })));
    let mut left = vfs.file_names();
    left.retain(|f| !files.contains(f));
    assert_eq!(left, [Path::new("/sim/new.obj-wal")], "files left by the refused open");
    // A WAL file that never got a valid header is no log: the open creates
    // the database over it.
    vfs.write_file(Path::new(WAL), &[0x5A; 100]);
    let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
    assert_eq!(get(&db, "t", b"k"), None);
    put(&db, "t", b"k", b"new");
    assert_eq!(get(&db, "t", b"k").as_deref(), Some(&b"new"[..]));
}

#[test]
fn power_cut_keeps_every_durable_commit() {
    for seed in 0..40u64 {
        let vfs = SimVfs::new();
        let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
        let mut acked = 0u32;
        for i in 1..=30u32 {
            let mut w = db.begin_write().unwrap();
            let t = w.create_tree("t").unwrap();
            let c = w.create_tree("counter").unwrap();
            w.insert(&t, &i.to_be_bytes(), &vec![i as u8; (i as usize * 131) % 5000]).unwrap();
            w.insert(&c, b"n", &i.to_be_bytes()).unwrap();
            w.commit().unwrap();
            acked = i;
            if i % 10 == (seed % 10) as u32 {
                db.checkpoint().unwrap();
            }
        }
        // One more transaction, left unacknowledged mid-flight.
        let mut w = db.begin_write().unwrap();
        let t = w.open_tree("t").unwrap();
        w.insert(&t, b"partial", b"never committed").unwrap();
        drop(w);
        vfs.power_cut(seed, CutMode::Random);
        drop(db);
        let db = Db::open_with(DB, sim_options(&vfs)).unwrap();
        db.integrity_check().unwrap();
        let r = db.begin_read().unwrap();
        let c = r.open_tree("counter").unwrap();
        let n = u32::from_be_bytes(r.get(&c, b"n").unwrap().unwrap().try_into().unwrap());
        assert_eq!(n, acked, "seed {seed}");
        let t = r.open_tree("t").unwrap();
        for i in 1..=n {
            assert_eq!(r.get(&t, &i.to_be_bytes()).unwrap().unwrap().len(), (i as usize * 131) % 5000);
        }
        assert_eq!(r.get(&t, b"partial").unwrap(), None);
    }
}

#[test]
fn second_writer_gets_busy_and_handles_share() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.obj");
    let opts = Options { busy_timeout: std::time::Duration::from_millis(50), ..Options::default() };
    let db = Db::open_with(&path, opts.clone()).unwrap();
    let w = db.begin_write().unwrap();
    assert!(matches!(db.begin_write(), Err(Error::Busy(_))));
    drop(w);
    // A second handle in this process shares the engine: no lost commits.
    let db2 = Db::open_with(&path, opts).unwrap();
    put(&db, "t", b"1", b"one");
    put(&db2, "t", b"2", b"two");
    assert_eq!(get(&db, "t", b"2").as_deref(), Some(&b"two"[..]));
    assert_eq!(get(&db2, "t", b"1").as_deref(), Some(&b"one"[..]));
    db2.close().unwrap();
    put(&db, "t", b"3", b"three");
    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(get(&db, "t", b"3").as_deref(), Some(&b"three"[..]));
}

/// A second open of a file already open in this process joins its engine
/// by the file's identity, whatever the path (a hard link too: two engines
/// would write two WALs over one file and lose commits), and keeps its own
/// read-only flag and busy timeout; a different sync mode is refused.
#[test]
fn second_open_shares_by_file_identity_and_keeps_its_own_options() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.obj");
    let b = dir.path().join("b.obj");
    Db::open(&a).unwrap().close().unwrap();
    std::fs::hard_link(&a, &b).unwrap();
    let da = Db::open(&a).unwrap();
    let db = Db::open(&b).unwrap();
    put(&da, "t", b"a", b"1");
    put(&db, "t", b"b", b"2");
    assert_eq!(get(&db, "t", b"a").as_deref(), Some(&b"1"[..]), "one engine behind both paths");
    da.close().unwrap();
    db.close().unwrap();
    let reopened = Db::open(&a).unwrap();
    assert_eq!(get(&reopened, "t", b"a").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&reopened, "t", b"b").as_deref(), Some(&b"2"[..]));

    // A read-only handle on a writable engine stays read-only.
    let ro = Db::open_with(&b, Options { read_only: true, ..Options::default() }).unwrap();
    assert!(ro.is_read_only() && !reopened.is_read_only());
    assert!(matches!(ro.begin_write(), Err(Error::InvalidArgument(_))));
    assert!(matches!(ro.checkpoint(), Err(Error::InvalidArgument(_))));
    assert!(matches!(ro.compact(), Err(Error::InvalidArgument(_))));
    assert_eq!(get(&ro, "t", b"a").as_deref(), Some(&b"1"[..]));

    // Durability is the engine's: another sync mode is refused, not ignored.
    let off = Options { sync_mode: obj_engine::SyncMode::Off, ..Options::default() };
    assert!(matches!(Db::open_with(&a, off), Err(Error::InvalidArgument(m)) if m.contains("sync mode")));

    // Each handle waits for the writer as long as it asked to.
    let quick =
        Db::open_with(&a, Options { busy_timeout: Duration::from_millis(20), ..Options::default() }).unwrap();
    let w = reopened.begin_write().unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(quick.begin_write(), Err(Error::Busy(_))));
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
    drop(w);
    drop((ro, quick));
    reopened.close().unwrap();
}

/// A file system without shared memory (a `Vfs` that does not implement
/// `open_shm`) cannot coordinate processes: its database is opened
/// exclusively, and a second handle is `Busy`, as before shared indexes.
#[test]
fn vfs_without_shared_memory_opens_exclusively() {
    #[derive(Debug)]
    struct NoShm(obj_engine::storage::file::OsVfs);
    impl obj_engine::storage::file::Vfs for NoShm {
        fn open(
            &self,
            path: &Path,
            mode: obj_engine::storage::file::OpenMode,
        ) -> std::io::Result<Arc<dyn obj_engine::storage::file::StorageFile>> {
            self.0.open(path, mode)
        }
        fn exists(&self, path: &Path) -> std::io::Result<bool> {
            self.0.exists(path)
        }
        fn remove(&self, path: &Path) -> std::io::Result<()> {
            self.0.remove(path)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.obj");
    let opts = Options { vfs: Some(Arc::new(NoShm(obj_engine::storage::file::OsVfs))), ..Options::default() };
    let db = Db::open_with(&path, opts.clone()).unwrap();
    put(&db, "t", b"k", b"v");
    assert!(matches!(Db::open_with(&path, opts.clone()), Err(Error::Busy(_))));
    assert!(!dir.path().join("locked.obj-shm").exists(), "no shared index file");
    db.close().unwrap();
    let db = Db::open_with(&path, opts).unwrap();
    assert_eq!(get(&db, "t", b"k").as_deref(), Some(&b"v"[..]));
    db.close().unwrap();
    assert!(!dir.path().join("locked.obj-wal").exists());
}

#[test]
fn oversized_keys_and_bad_names_are_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("k.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, &vec![1u8; 1024], b"ok at 1 KiB").unwrap();
    assert!(matches!(w.insert(&t, &vec![1u8; 100_000], b"v"), Err(Error::InvalidArgument(_))));
    assert!(matches!(w.create_tree(""), Err(Error::InvalidArgument(_))));
    assert!(matches!(w.open_tree("missing"), Err(Error::NotFound(_))));
    w.commit().unwrap();
    db.integrity_check().unwrap();
}

#[test]
fn large_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.obj");
    let db = Db::open(&path).unwrap();
    let big: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    put(&db, "t", b"big", &big);
    assert!(get(&db, "t", b"big").unwrap() == big);
    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert!(get(&db, "t", b"big").unwrap() == big);
    db.integrity_check().unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.open_tree("t").unwrap();
    w.delete(&t, b"big").unwrap();
    w.commit().unwrap();
    let st = db.stat().unwrap();
    assert!(st.free_pages as f64 > 0.9 * (64 << 20) as f64 / 4096.0);
    db.integrity_check().unwrap();
}

/// A WAL restart that keeps the file (automatic checkpoints below the size
/// limit) writes the new generation over the old one. Unless the new
/// header is durable before any new frame, a power cut can keep a later
/// write (in `SyncMode::Normal` another commit's frames) and drop the
/// header and the first frames: the old header then reads as valid the old
/// frames before the kept write, a prefix older than the main file, and
/// the open is refused as a stale WAL.
#[test]
fn normal_mode_power_cuts_after_a_restart_over_old_frames_never_leave_a_stale_wal() {
    let mut refused = Vec::new();
    for seed in 0..300u64 {
        let vfs = SimVfs::new();
        let opts = Options {
            sync_mode: obj_engine::SyncMode::Normal,
            wal_autocheckpoint: 7 + seed % 11,
            ..sim_options(&vfs)
        };
        let db = Db::open_with(DB, opts.clone()).unwrap();
        for i in 0..(5 + seed % 40) as u32 {
            put(&db, "t", &i.to_be_bytes(), &vec![i as u8; (i as usize * 331) % 6000]);
        }
        vfs.power_cut(seed, CutMode::Random);
        drop(db);
        match Db::open_with(DB, opts) {
            Ok(db) => drop(db.integrity_check().unwrap()),
            Err(e) => refused.push((seed, e.to_string())),
        }
    }
    assert!(refused.is_empty(), "{} refused opens, first {:?}", refused.len(), refused[0]);
}

/// The same in `SyncMode::Full`, where each commit is synced: the first
/// commit of a generation written over an old one in several writes (more
/// than 1 MiB of frames), cut short by a power cut before its fsync.
#[test]
fn full_mode_power_cut_in_a_big_first_commit_over_old_frames_never_leaves_a_stale_wal() {
    use obj_engine::storage::sim::{Fault, FaultKind, FaultOp};
    let opts = |vfs: &SimVfs| Options { wal_autocheckpoint: 10, ..sim_options(vfs) };
    // Small, big (one generation past the threshold), then big again: the
    // first commit of the next generation, over the old frames.
    let run = |vfs: &SimVfs| -> Option<Db> {
        let db = Db::open_with(DB, opts(vfs)).ok()?;
        for (i, len) in [100usize, 1_500_000, 1_500_000].into_iter().enumerate() {
            let mut w = db.begin_write().ok()?;
            let t = w.create_tree("t").ok()?;
            w.insert(&t, &[i as u8], &vec![i as u8; len]).ok()?;
            w.commit().ok()?;
        }
        Some(db)
    };
    let vfs = SimVfs::new();
    let db = run(&vfs).unwrap();
    let total = vfs.op_counts().total();
    drop(db);
    let mut refused = Vec::new();
    // All I/O stops at one of the last calls (inside the third commit).
    for at in total.saturating_sub(12)..total {
        for seed in 0..40 {
            let vfs = SimVfs::new();
            vfs.set_fault(Fault { op: FaultOp::Any, after: at, kind: FaultKind::Eio, persistent: true });
            let db = run(&vfs);
            vfs.power_cut(seed, CutMode::Random);
            drop(db);
            vfs.clear_faults();
            match Db::open_with(DB, opts(&vfs)) {
                Ok(db) => drop(db.integrity_check().unwrap()),
                Err(e) => refused.push((at, seed, e.to_string())),
            }
        }
    }
    assert!(refused.is_empty(), "{} refused opens, first {:?}", refused.len(), refused[0]);
}

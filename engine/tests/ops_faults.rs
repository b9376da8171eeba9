//! Compaction, backup and restore under I/O faults and power loss, on the
//! simulated file system, for plain and for encrypted databases.
//!
//! **Compaction.**
//! A deterministic database (trees with inline and overflow values, a
//! collection with two indexes, most of it deleted again, WAL not yet
//! checkpointed) is built fault-free; then the *phase* runs: `compact()`
//! (tried once more on the same handle if it failed, which after a one-shot
//! fault must work), one more commit (a marker), a checkpoint and a close — once with no
//! reader, once with a reader holding the pre-compaction snapshot across
//! the compaction (so the file is cut by the later checkpoint, not by
//! `compact()` itself). The phase is run once to count its file calls, then
//! again with a fault at each of those calls (EIO and ENOSPC), or with all
//! I/O stopping for good at a random call followed by a random power cut.
//!
//! After each run the process crashes or the power is cut, the database is
//! reopened on a healthy disk (with its key, if encrypted), and:
//! `integrity_check` passes; every tree holds exactly what it held before
//! the compaction, plus the marker if its commit was acknowledged (never if
//! it failed cleanly; either way if its outcome is unknown); and a second,
//! fault-free `compact()` brings the file down to the compacted size.
//!
//! `OBJ_FAULT_SAMPLE` (`all`, or a number of points, default 240: every
//! write, sync and truncate point plus an even spread of reads) and
//! `OBJ_POWER_CUTS` (default 200) as in `faults.rs`; each applies to the
//! plain and to the encrypted runs alike.
//!
//! **Backup, compacted copy and restore.** A backup, a `compact_to` copy,
//! and a restore over an existing database, are cut at every file call
//! (all I/O stops there, then a random power cut), and failed at every file
//! call by one EIO or ENOSPC (the process goes on: no temporary file is
//! left, and a retry works; then it crashes): the target is
//! afterwards either absent / the old database, or the complete new copy,
//! never anything in between; the source is unharmed.
//!
//! **Encryption.** The same runs on a database encrypted with a raw 32-byte
//! key (compaction, copies, restore) and with a passphrase (power cuts,
//! copies, restore): every database and copy reopens with the key, is still
//! encrypted, and is refused without it.

use std::collections::BTreeMap;
use std::sync::Arc;

use obj_engine::storage::sim::{CutMode, Fault, FaultKind, FaultOp, OpCounts, SimVfs};
use obj_engine::{
    Db, EncryptionKey, Error, IndexSpec, KdfParams, Options, ReadableTxn, RestoreOptions, Value,
};

mod common;
use common::{env_number, next_rand};

const DB: &str = "/sim/compact.obj";

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// How the databases of a run are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crypt {
    Plain,
    /// AES-256-GCM under a raw 32-byte key.
    RawKey,
    /// AES-256-GCM under a key derived from a passphrase (cheap Argon2
    /// costs: the runs open the database thousands of times).
    Passphrase,
}

impl Crypt {
    fn key(self) -> Option<EncryptionKey> {
        match self {
            Crypt::Plain => None,
            Crypt::RawKey => Some(EncryptionKey::raw(*b"ops-faults: a 32-byte raw key...")),
            Crypt::Passphrase => Some(EncryptionKey::passphrase("ops faults").with_kdf_params(KdfParams {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            })),
        }
    }

    fn encrypted(self) -> bool {
        self != Crypt::Plain
    }
}

fn options(vfs: &SimVfs, crypt: Crypt) -> Options {
    Options {
        vfs: Some(Arc::new(vfs.clone())),
        cache_size: 16 * 4096,
        wal_autocheckpoint: 40,
        encryption: crypt.key(),
        ..Options::default()
    }
}

/// Opens `path` with the key of `crypt`, checking that it is encrypted
/// exactly when `crypt` says so.
fn open(vfs: &SimVfs, path: &str, crypt: Crypt) -> obj_engine::Result<Db> {
    let db = Db::open_with(path, options(vfs, crypt))?;
    assert_eq!(db.is_encrypted(), crypt.encrypted(), "{path}: encrypted?");
    Ok(db)
}

fn value_of(n: u64) -> Vec<u8> {
    let len = match n % 6 {
        0 => 9_000,
        1 => 30_000,
        _ => 100 + (n as usize * 7) % 400,
    };
    (0..len).map(|i| (n as usize * 13 + i * 7) as u8).collect()
}

fn read_state(db: &Db) -> obj_engine::Result<Model> {
    let r = db.begin_read()?;
    let mut model = Model::new();
    for name in r.list_trees()? {
        let t = r.open_tree(&name)?;
        let mut entries = BTreeMap::new();
        for e in r.range(&t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)? {
            let (k, v) = e?;
            entries.insert(k, v);
        }
        assert_eq!(r.count(&t)?, entries.len() as u64, "entry count of {name}");
        model.insert(name, entries);
    }
    Ok(model)
}

/// Builds the database to compact (fault-free) and returns it open, with
/// its contents.
fn setup(vfs: &SimVfs, crypt: Crypt) -> (Db, Model) {
    let db = open(vfs, DB, crypt).unwrap();
    for n in 1..=24u64 {
        let mut w = db.begin_write().unwrap();
        let data = w.create_tree("data").unwrap();
        w.insert(&data, &n.to_be_bytes(), &value_of(n)).unwrap();
        let mut c = w.collection_mut("docs").unwrap();
        if n == 1 {
            c.create_index(IndexSpec::unique("by_k", "k").unwrap()).unwrap();
            c.create_index(IndexSpec::standard("by_tag", "tag").unwrap()).unwrap();
        }
        for i in 0..20u64 {
            let k = n * 100 + i;
            c.insert(&Value::Map(vec![
                ("k".into(), Value::Int(k as i64)),
                ("tag".into(), Value::Str(format!("tag{}", k % 7))),
                ("pad".into(), Value::Str("p".repeat((k % 50) as usize * 8))),
            ]))
            .unwrap();
        }
        drop(c);
        w.commit().unwrap();
    }
    // Delete most of it: the compaction has much to give back.
    let mut w = db.begin_write().unwrap();
    let data = w.open_tree("data").unwrap();
    for n in (1..=24u64).filter(|n| n % 4 != 0) {
        w.delete(&data, &n.to_be_bytes()).unwrap();
    }
    let mut c = w.collection_mut("docs").unwrap();
    for id in (1..=480u64).filter(|id| id % 5 != 0) {
        c.delete(id).unwrap();
    }
    drop(c);
    w.commit().unwrap();
    let model = read_state(&db).unwrap();
    (db, model)
}

#[derive(Debug, Default)]
struct Ledger {
    marker_acked: bool,
    marker_failed: bool,
    marker_unknown: bool,
    io_errors: u64,
    poisoned: bool,
    /// The first `compact()` failed.
    compact_failed: bool,
    /// A `compact()` succeeded (the first or its retry).
    compacted: bool,
}

fn check_error(e: &Error, ledger: &mut Ledger) {
    match e {
        Error::Io { .. } => ledger.io_errors += 1,
        Error::Closed(_) => ledger.poisoned = true,
        other => panic!("unexpected error under an I/O fault: {other:?}"),
    }
}

/// The phase under test. Returns the handle if it is still open.
fn phase(db: Db, hold_reader: bool, ledger: &mut Ledger) -> Option<Db> {
    let reader = if hold_reader {
        match db.begin_read() {
            Ok(r) => Some(r),
            Err(e) => {
                check_error(&e, ledger);
                None
            }
        }
    } else {
        None
    };
    // A compaction that failed is tried once more on the same handle (if
    // it is not poisoned): after a one-shot fault the retry must work.
    for attempt in 0..2 {
        match db.compact() {
            Ok(report) => {
                // The retry finds nothing to do if the first attempt
                // committed the compacted image and failed after it.
                assert!(report.rewritten || attempt == 1, "{report:?}");
                // (A reader the fault kept from beginning holds nothing.)
                assert_eq!(report.complete, reader.is_none(), "{report:?}");
                ledger.compacted = true;
                break;
            }
            Err(e) => {
                check_error(&e, ledger);
                ledger.compact_failed |= attempt == 0;
                if ledger.poisoned {
                    break;
                }
            }
        }
    }
    if let Some(r) = reader {
        // The old snapshot still reads (or fails with an I/O error).
        if let Err(e) = r.list_trees().and_then(|names| {
            for n in names {
                let t = r.open_tree(&n)?;
                for e in r.range(&t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, false)? {
                    e?;
                }
            }
            Ok(())
        }) {
            check_error(&e, ledger);
        }
    }
    let marker = db.begin_write().and_then(|mut w| {
        let t = w.create_tree("marker")?;
        w.insert(&t, b"k", b"v")?;
        w.commit()
    });
    match marker {
        Ok(()) => {
            assert!(!ledger.poisoned, "a commit succeeded on a poisoned handle");
            ledger.marker_acked = true;
        }
        Err(e) => {
            check_error(&e, ledger);
            // A failed fsync poisons the handle: then the outcome is unknown.
            if let Err(e) = db.begin_read() {
                check_error(&e, ledger);
            }
            if ledger.poisoned {
                ledger.marker_unknown = true;
            } else {
                ledger.marker_failed = true;
            }
        }
    }
    if ledger.poisoned {
        return Some(db);
    }
    if let Err(e) = db.checkpoint() {
        check_error(&e, ledger);
    }
    if let Err(e) = db.close() {
        check_error(&e, ledger);
    }
    None
}

fn verify(vfs: &SimVfs, crypt: Crypt, model: &Model, ledger: &Ledger, what: &str) {
    vfs.clear_faults();
    let db = open(vfs, DB, crypt).unwrap_or_else(|e| panic!("{what}: reopen: {e} ({ledger:?})"));
    db.integrity_check().unwrap_or_else(|e| panic!("{what}: integrity: {e} ({ledger:?})"));
    let mut state = read_state(&db).unwrap_or_else(|e| panic!("{what}: read: {e}"));
    let marker = state.remove("marker");
    match &marker {
        Some(m) => {
            assert!(!ledger.marker_failed, "{what}: a cleanly failed commit appeared ({ledger:?})");
            assert_eq!(m.get(&b"k"[..]).map(Vec::as_slice), Some(&b"v"[..]), "{what}");
        }
        None => assert!(!ledger.marker_acked, "{what}: an acknowledged commit was lost ({ledger:?})"),
    }
    if state != *model {
        let names = |m: &Model| m.iter().map(|(k, v)| (k.clone(), v.len())).collect::<Vec<_>>();
        panic!("{what}: contents changed: {:?} vs {:?} ({ledger:?})", names(&state), names(model));
    }
    // A fault-free compaction now finishes the job.
    let report = db.compact().unwrap_or_else(|e| panic!("{what}: second compaction: {e}"));
    assert!(report.complete, "{what}: {report:?}");
    let stat = db.stat().unwrap();
    assert_eq!(db.compaction_estimate().unwrap().reclaimable_bytes, 0, "{what}");
    assert_eq!(stat.file_size, stat.page_count * stat.page_size, "{what}: {stat:?}");
    db.integrity_check().unwrap_or_else(|e| panic!("{what}: integrity after compaction: {e}"));
    let mut again = read_state(&db).unwrap();
    again.remove("marker");
    assert!(again == *model, "{what}: the second compaction changed the contents");
    db.close().unwrap();
}

fn counts(crypt: Crypt, hold_reader: bool) -> OpCounts {
    let vfs = SimVfs::new();
    let (db, model) = setup(&vfs, crypt);
    vfs.reset_op_counts();
    let mut ledger = Ledger::default();
    assert!(phase(db, hold_reader, &mut ledger).is_none());
    assert!(ledger.compacted && ledger.marker_acked && ledger.io_errors == 0, "{ledger:?}");
    let counts = vfs.op_counts();
    verify(&vfs, crypt, &model, &ledger, "fault-free run");
    counts
}

#[test]
fn compaction_is_deterministic_and_shrinks_the_file() {
    for crypt in [Crypt::Plain, Crypt::RawKey] {
        for hold in [false, true] {
            assert_eq!(counts(crypt, hold), counts(crypt, hold), "{crypt:?}, reader {hold}");
        }
    }
}

/// The phase with a one-shot EIO and ENOSPC at each of its file calls (or
/// the `OBJ_FAULT_SAMPLE` sample of them), with and without a reader.
fn fault_sweep(crypt: Crypt) -> String {
    let mut summary = Vec::new();
    for hold_reader in [false, true] {
        let c = counts(crypt, hold_reader);
        let mut points = Vec::new();
        for (op, count) in [
            (FaultOp::Read, c.reads),
            (FaultOp::Write, c.writes),
            (FaultOp::Sync, c.syncs),
            (FaultOp::Truncate, c.truncates),
        ] {
            for after in 0..count {
                for kind in [FaultKind::Eio, FaultKind::Enospc] {
                    points.push((op, after, kind));
                }
            }
        }
        let total = points.len();
        if let Some(n) = env_number("OBJ_FAULT_SAMPLE", 240).map(|n| n as usize / 2) {
            if n < total {
                let (always, rest): (Vec<_>, Vec<_>) = points.into_iter().partition(|p| p.0 != FaultOp::Read);
                let spread = n.saturating_sub(always.len()).max(1).min(rest.len());
                points = always;
                points.extend((0..spread).map(|i| rest[i * rest.len() / spread]));
            }
        }
        let (mut poisoned, mut failed, mut retried) = (0, 0, 0);
        for (i, &(op, after, kind)) in points.iter().enumerate() {
            let vfs = SimVfs::new();
            let (db, model) = setup(&vfs, crypt);
            vfs.set_fault(Fault { op, after, kind, persistent: false });
            let mut ledger = Ledger::default();
            let open = phase(db, hold_reader, &mut ledger);
            let what = format!("{crypt:?}, reader {hold_reader}: {kind:?} at {op:?} #{after}");
            assert!(ledger.io_errors <= 1, "{what}: a one-shot fault kept failing: {ledger:?}");
            poisoned += u64::from(ledger.poisoned);
            failed += u64::from(ledger.compact_failed);
            retried += u64::from(ledger.compact_failed && ledger.compacted);
            if ledger.compact_failed && !ledger.poisoned {
                assert!(ledger.compacted, "{what}: the retry of a failed compaction failed: {ledger:?}");
            }
            if i % 2 == 0 {
                vfs.crash();
            } else {
                vfs.power_cut(i as u64, CutMode::Random);
            }
            drop(open);
            verify(&vfs, crypt, &model, &ledger, &what);
        }
        summary.push(format!(
            "{} of {total} points with{} a reader ({} reads, {} writes, {} syncs, {} truncates per run): \
             {failed} compactions failed ({retried} then worked on retry), {poisoned} handles poisoned",
            points.len(),
            if hold_reader { "" } else { "out" },
            c.reads,
            c.writes,
            c.syncs,
            c.truncates
        ));
    }
    summary.join("; ")
}

#[test]
fn compaction_survives_a_fault_at_every_io_call() {
    println!("compaction fault sweep: {}; 0 lost or changed data", fault_sweep(Crypt::Plain));
}

#[test]
fn encrypted_compaction_survives_a_fault_at_every_io_call() {
    println!(
        "encrypted compaction fault sweep (raw key): {}; 0 lost or changed data",
        fault_sweep(Crypt::RawKey)
    );
}

/// `OBJ_POWER_CUTS` runs of the phase, all I/O stopping for good at a
/// random call and then a random power cut; runs alternate between no
/// reader and a reader, then between the kinds of database in `crypts`.
fn power_cuts(crypts: &[Crypt]) -> String {
    let cuts = env_number("OBJ_POWER_CUTS", 200).unwrap_or(2000);
    let mut rng = 0xc0_4ac7_u64.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let totals: Vec<[u64; 2]> =
        crypts.iter().map(|&c| [counts(c, false).total(), counts(c, true).total()]).collect();
    let mut acked = 0;
    for i in 0..cuts {
        let hold_reader = i % 2 == 1;
        let which = (i / 2) as usize % crypts.len();
        let crypt = crypts[which];
        let at = next_rand(&mut rng) % totals[which][hold_reader as usize];
        let seed = next_rand(&mut rng);
        let vfs = SimVfs::new();
        let (db, model) = setup(&vfs, crypt);
        vfs.set_fault(Fault { op: FaultOp::Any, after: at, kind: FaultKind::Eio, persistent: true });
        let mut ledger = Ledger::default();
        let open = phase(db, hold_reader, &mut ledger);
        let report = vfs.power_cut(seed, CutMode::Random);
        drop(open);
        acked += u64::from(ledger.marker_acked);
        verify(
            &vfs,
            crypt,
            &model,
            &ledger,
            &format!("{crypt:?}: cut {i} at call {at} (reader {hold_reader}), seed {seed:#x} ({report:?})"),
        );
    }
    format!("{cuts} at random calls of {totals:?}, {acked} marker commits acknowledged, 0 lost")
}

#[test]
fn compaction_survives_power_cuts_at_random_points() {
    println!("compaction power cuts: {}", power_cuts(&[Crypt::Plain]));
}

#[test]
fn encrypted_compaction_survives_power_cuts_at_random_points() {
    println!(
        "encrypted compaction power cuts (raw key, passphrase): {}",
        power_cuts(&[Crypt::RawKey, Crypt::Passphrase])
    );
}

const COPY: &str = "/sim/copy.obj";

/// Opens `path` if it exists and returns its contents (after checking it;
/// an encrypted one must also be refused without its key).
fn contents_of(vfs: &SimVfs, path: &str, crypt: Crypt, what: &str) -> Option<Model> {
    vfs.read_file(path)?;
    let db = open(vfs, path, crypt).unwrap_or_else(|e| panic!("{what}: {path} does not open: {e}"));
    db.integrity_check().unwrap_or_else(|e| panic!("{what}: {path}: {e}"));
    let state = read_state(&db).unwrap();
    db.close().unwrap();
    if crypt.encrypted() {
        let err = Db::open_with(path, options(vfs, Crypt::Plain)).err();
        assert!(matches!(err, Some(Error::Encryption(_))), "{what}: {path} without its key: {err:?}");
    }
    Some(state)
}

/// How a run can fail: all I/O stops at a call and the power is cut, or
/// one call fails with EIO or ENOSPC and later the process crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    PowerCut,
    OneShot(FaultKind),
}

/// Each `Cut` at each of the `total` file calls of a run (a power cut also
/// after the last one).
fn cuts(total: u64) -> impl Iterator<Item = (u64, Cut)> {
    (0..=total).flat_map(move |at| {
        let kind = if at % 2 == 0 { FaultKind::Eio } else { FaultKind::Enospc };
        let one_shot = (at < total).then_some((at, Cut::OneShot(kind)));
        std::iter::once((at, Cut::PowerCut)).chain(one_shot)
    })
}

impl Cut {
    fn arm(self, vfs: &SimVfs, at: u64) {
        let (kind, persistent) = match self {
            Cut::PowerCut => (FaultKind::Eio, true),
            Cut::OneShot(kind) => (kind, false),
        };
        vfs.set_fault(Fault { op: FaultOp::Any, after: at, kind, persistent });
    }

    /// After the run: if the process lives on, a failed run left no
    /// temporary file behind and `retry` now works; then the machine goes
    /// down. Returns the outcome of the last attempt.
    fn strike<T: std::fmt::Debug>(
        self,
        vfs: &SimVfs,
        at: u64,
        result: obj_engine::Result<T>,
        retry: impl FnOnce() -> obj_engine::Result<T>,
        what: &str,
    ) -> obj_engine::Result<T> {
        if let Err(e) = &result {
            assert!(matches!(e, Error::Io { .. }), "{what}: not an I/O error");
        }
        let result = match self {
            Cut::PowerCut => {
                vfs.power_cut(at ^ 0x5eed, CutMode::Random);
                result
            }
            Cut::OneShot(_) => {
                let stray: Vec<_> =
                    vfs.file_names().into_iter().filter(|p| p.to_string_lossy().contains(".tmp-")).collect();
                assert!(stray.is_empty(), "{what}: temporary files left: {stray:?}");
                let result = match result {
                    Ok(done) => Ok(done),
                    Err(_) => Ok(retry().unwrap_or_else(|e| panic!("{what}: the retry failed: {e}"))),
                };
                vfs.crash();
                result
            }
        };
        vfs.clear_faults();
        result
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyKind {
    Backup,
    CompactTo,
}

/// Runs a backup or a compacted copy of the setup database to `COPY`;
/// returns the pages written.
fn make_copy(db: &Db, kind: CopyKind) -> obj_engine::Result<u64> {
    match kind {
        CopyKind::Backup => db.backup(COPY).map(|r| r.pages),
        CopyKind::CompactTo => db.compact_to(COPY).map(|r| r.pages_after),
    }
}

/// A copy cut at each of its file calls: afterwards `COPY` is absent (and
/// the copy was not reported done) or the complete copy; the source is
/// unchanged.
fn copy_sweep(crypt: Crypt, kind: CopyKind) -> String {
    let (total, pages) = {
        let vfs = SimVfs::new();
        let (db, _) = setup(&vfs, crypt);
        vfs.reset_op_counts();
        let pages = make_copy(&db, kind).unwrap();
        (vfs.op_counts().total(), pages)
    };
    let (mut whole, mut absent, mut runs, mut retried) = (0, 0, 0, 0);
    for (at, cut) in cuts(total) {
        let vfs = SimVfs::new();
        let (db, model) = setup(&vfs, crypt);
        cut.arm(&vfs, at);
        let result = make_copy(&db, kind);
        let what = format!("{crypt:?} {kind:?}: {cut:?} at call {at} of {total} ({result:?})");
        if matches!(cut, Cut::OneShot(_)) {
            // The source handle is unharmed and goes on.
            assert_eq!(read_state(&db).as_ref().ok(), Some(&model), "{what}: the source reads differently");
        }
        retried += u64::from(matches!(cut, Cut::OneShot(_)) && result.is_err());
        let result = cut.strike(&vfs, at, result, || make_copy(&db, kind), &what);
        drop(db);
        runs += 1;
        match contents_of(&vfs, COPY, crypt, &what) {
            Some(copy) => {
                assert_eq!(copy, model, "{what}: the copy differs");
                let len = vfs.read_file(COPY).unwrap().len() as u64;
                assert_eq!(len, pages * 4096, "{what}: the copy has another size");
                whole += 1;
            }
            None => {
                assert!(result.is_err(), "{what}: a copy reported done is missing");
                absent += 1;
            }
        }
        assert_eq!(contents_of(&vfs, DB, crypt, &what).as_ref(), Some(&model), "{what}: the source changed");
    }
    format!(
        "{kind:?} cut at each of {total} calls ({runs} runs): {whole} whole copies, {absent} absent, \
         {retried} failed copies retried"
    )
}

/// A restore over an existing, older database cut at each of its file
/// calls: afterwards the target is the old database (and the restore was
/// not reported done) or the complete new one; the backup is unchanged.
/// `old_wal`: the old database at the target was left by a crash, its last
/// commit in its WAL only (a restore moves that WAL aside and takes the old
/// file's place; cut before, the old database must keep it).
fn restore_sweep(crypt: Crypt, old_wal: bool) -> String {
    // The old database at the target: `COPY` with one tree.
    let old_db = |vfs: &SimVfs| -> Model {
        let db = open(vfs, COPY, crypt).unwrap();
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("old").unwrap();
        w.insert(&t, b"old", b"data").unwrap();
        w.commit().unwrap();
        let m = read_state(&db).unwrap();
        if old_wal {
            db.close_without_checkpoint();
            assert!(vfs.read_file(format!("{COPY}-wal")).is_some_and(|w| !w.is_empty()));
        } else {
            db.close().unwrap();
        }
        m
    };
    let old_model = old_db(&SimVfs::new());
    let prepare = |vfs: &SimVfs| -> Model {
        let (db, model) = setup(vfs, crypt);
        db.close().unwrap();
        old_db(vfs);
        model
    };
    let restore = |vfs: &SimVfs, crypt: Crypt| {
        Db::restore_from(
            DB,
            COPY,
            RestoreOptions { overwrite: true, vfs: Some(Arc::new(vfs.clone())), encryption: crypt.key() },
        )
    };
    let total = {
        let vfs = SimVfs::new();
        let model = prepare(&vfs);
        if crypt.encrypted() {
            // Without the key the backup is refused before the target changes.
            let err = restore(&vfs, Crypt::Plain).err();
            assert!(matches!(err, Some(Error::Encryption(_))), "{crypt:?}: restore without the key: {err:?}");
            assert_eq!(contents_of(&vfs, COPY, crypt, "refused").as_ref(), Some(&old_model));
        }
        vfs.reset_op_counts();
        restore(&vfs, crypt).unwrap();
        let total = vfs.op_counts().total();
        assert_eq!(contents_of(&vfs, COPY, crypt, "restored").as_ref(), Some(&model));
        total
    };
    let (mut new, mut old, mut runs, mut retried) = (0, 0, 0, 0);
    for (at, cut) in cuts(total) {
        let vfs = SimVfs::new();
        let model = prepare(&vfs);
        cut.arm(&vfs, at);
        let result = restore(&vfs, crypt);
        let what = format!("{crypt:?} restore: {cut:?} at call {at} of {total} ({result:?})");
        retried += u64::from(matches!(cut, Cut::OneShot(_)) && result.is_err());
        let result = cut.strike(&vfs, at, result, || restore(&vfs, crypt), &what);
        runs += 1;
        let got =
            contents_of(&vfs, COPY, crypt, &what).unwrap_or_else(|| panic!("{what}: the target vanished"));
        if got == model {
            new += 1;
        } else {
            assert_eq!(got, old_model, "{what}: the target is neither the old nor the new database");
            assert!(result.is_err(), "{what}: a restore reported done left the old database");
            old += 1;
        }
        assert_eq!(contents_of(&vfs, DB, crypt, &what).as_ref(), Some(&model), "{what}: the backup changed");
    }
    format!(
        "restore{} cut at each of {total} calls ({runs} runs): {new} restored, {old} old database kept, \
         {retried} failed restores retried",
        if old_wal { " over a crashed database" } else { "" }
    )
}

fn copies_and_restore(crypt: Crypt) -> String {
    [
        copy_sweep(crypt, CopyKind::Backup),
        copy_sweep(crypt, CopyKind::CompactTo),
        restore_sweep(crypt, false),
        restore_sweep(crypt, true),
    ]
    .join("; ")
}

/// Every file call of a backup, of a compacted copy, then of a restore
/// over an existing database, with a cut or a fault there.
#[test]
fn backup_and_restore_never_leave_a_partial_file() {
    println!("{}; 0 partial", copies_and_restore(Crypt::Plain));
}

#[test]
fn encrypted_backup_and_restore_never_leave_a_partial_file() {
    for crypt in [Crypt::RawKey, Crypt::Passphrase] {
        println!("encrypted ({crypt:?}): {}; 0 partial", copies_and_restore(crypt));
    }
}

/// A compaction image of several MiB, streamed to the WAL in several
/// parts: a write fault in any part must leave no trace of the parts before
/// it (the WAL append position moves back), even after the next commit
/// reuses that space and the process crashes.
#[test]
fn compaction_interrupted_between_streamed_parts() {
    for crypt in [Crypt::Plain, Crypt::RawKey] {
        streamed_parts(crypt);
    }
}

fn streamed_parts(crypt: Crypt) {
    let setup_large = |vfs: &SimVfs| -> (Db, Model) {
        let db = open(vfs, DB, crypt).unwrap();
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("big").unwrap();
        for i in 0..6000u32 {
            w.insert(&t, &i.to_be_bytes(), &[i as u8; 700]).unwrap();
        }
        w.commit().unwrap();
        let mut w = db.begin_write().unwrap();
        let t = w.open_tree("big").unwrap();
        for i in (0..6000u32).filter(|i| i % 3 == 0) {
            w.delete(&t, &i.to_be_bytes()).unwrap();
        }
        w.commit().unwrap();
        db.checkpoint().unwrap();
        let model = read_state(&db).unwrap();
        (db, model)
    };
    let writes = {
        let vfs = SimVfs::new();
        let (db, model) = setup_large(&vfs);
        vfs.reset_op_counts();
        let report = db.compact().unwrap();
        assert!(report.pages_after > 3 * 256, "{report:?}");
        let writes = vfs.op_counts().writes;
        db.close().unwrap();
        verify(&vfs, crypt, &model, &Ledger { compacted: true, ..Ledger::default() }, "large, fault-free");
        writes
    };
    // The encrypted run takes every third point unless all are asked for.
    let step = if crypt.encrypted() && env_number("OBJ_FAULT_SAMPLE", 240).is_some() { 3 } else { 1 };
    for after in (0..writes.min(24)).step_by(step) {
        let vfs = SimVfs::new();
        let (db, model) = setup_large(&vfs);
        vfs.set_fault(Fault { op: FaultOp::Write, after, kind: FaultKind::Enospc, persistent: false });
        let mut ledger = Ledger::default();
        let open = phase(db, false, &mut ledger);
        vfs.crash();
        drop(open);
        verify(&vfs, crypt, &model, &ledger, &format!("{crypt:?} large: write fault #{after}"));
    }
}

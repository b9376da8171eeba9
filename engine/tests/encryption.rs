//! Encryption at rest: round trips, keys, tampering, recovery and rekey.
//! Layout under test: docs/format.md, "Encrypted databases".

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use obj_engine::doc::json::from_json_str;
use obj_engine::storage::file::Vfs;
use obj_engine::storage::page::seal_page;
use obj_engine::storage::sim::{CutMode, Fault, FaultKind, FaultOp, SimVfs};
use obj_engine::{Db, EncryptionKey, Error, KdfParams, Options, ReadableTxn};

mod common;

const DB: &str = "/enc/app.obj";
const WAL: &str = "/enc/app.obj-wal";
const PAGE: usize = 4096;
/// Content bytes of an encrypted 4 KiB page: nonce, tag and CRC follow.
const USABLE: usize = PAGE - 32;
const MARKER: &[u8] = b"PLAINTEXT-MARKER-7f3a";

fn key(n: u8) -> EncryptionKey {
    EncryptionKey::raw([n; 32])
}

/// Cheap Argon2 costs, so that debug-build tests stay fast.
fn weak_passphrase(p: &str) -> EncryptionKey {
    EncryptionKey::passphrase(p).with_kdf_params(KdfParams { memory_kib: 256, iterations: 1, parallelism: 1 })
}

fn options(vfs: &SimVfs, key: Option<EncryptionKey>) -> Options {
    Options { vfs: Some(Arc::new(vfs.clone())), wal_autocheckpoint: 0, encryption: key, ..Options::default() }
}

fn marked_value(i: u32) -> Vec<u8> {
    let mut v = MARKER.repeat(1 + (i as usize % 7) * 40);
    v.extend_from_slice(&i.to_be_bytes());
    v
}

/// Trees with small, inline and overflow values, all carrying the marker.
fn fill(db: &Db, from: u32, to: u32) {
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("secret-tree").unwrap();
    for i in from..to {
        let mut k = MARKER.to_vec();
        k.extend_from_slice(&i.to_be_bytes());
        w.insert(&t, &k, &marked_value(i)).unwrap();
    }
    w.commit().unwrap();
}

fn check(db: &Db, upto: u32) {
    let r = db.begin_read().unwrap();
    let t = r.open_tree("secret-tree").unwrap();
    assert_eq!(r.count(&t).unwrap(), upto as u64);
    for i in 0..upto {
        let mut k = MARKER.to_vec();
        k.extend_from_slice(&i.to_be_bytes());
        assert_eq!(r.get(&t, &k).unwrap(), Some(marked_value(i)), "entry {i}");
    }
    drop(r);
    db.integrity_check().unwrap();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A closed encrypted database with `n` entries; returns its bytes.
fn sample(vfs: &SimVfs, k: EncryptionKey, n: u32) -> Vec<u8> {
    let db = Db::open_with(DB, options(vfs, Some(k))).unwrap();
    assert!(db.is_encrypted());
    fill(&db, 0, n);
    db.close().unwrap();
    vfs.read_file(DB).unwrap()
}

fn open_err(vfs: &SimVfs, k: Option<EncryptionKey>) -> Error {
    Db::open_with(DB, options(vfs, k)).expect_err("the open must be refused")
}

#[test]
fn round_trip_and_no_plaintext_on_disk() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs, Some(key(1)))).unwrap();
    fill(&db, 0, 300);
    fill(&db, 300, 600);
    // The WAL holds both commits now: no plaintext in it either.
    let wal = vfs.read_file(WAL).unwrap();
    assert!(wal.len() > 64 + 10 * (24 + PAGE));
    assert!(!contains(&wal, MARKER), "plaintext in the WAL");
    assert!(!contains(&wal, b"secret-tree"), "tree name in the WAL");
    check(&db, 600);
    db.close().unwrap();
    let main = vfs.read_file(DB).unwrap();
    assert!(!contains(&main, MARKER), "plaintext in the main file");
    assert!(!contains(&main, b"secret-tree"));
    // The header prefix stays readable: magic, flags, trailer length.
    assert_eq!(&main[..8], b"OBJDB\0\r\n");
    assert_eq!(u32::from_le_bytes(main[16..20].try_into().unwrap()), 32, "trailer bytes");
    assert_eq!(u32::from_le_bytes(main[20..24].try_into().unwrap()) & 1, 1, "encrypted flag");

    let read_only = Options { read_only: true, ..options(&vfs, Some(key(1))) };
    let db = Db::open_with(DB, read_only).unwrap();
    check(&db, 600);
    drop(db);
    let db = Db::open_with(DB, options(&vfs, Some(key(1)))).unwrap();
    assert!(db.is_encrypted());
    check(&db, 600);
    // The B+tree sees the smaller pages.
    let r = db.begin_read().unwrap();
    assert_eq!(obj_engine::storage::page::PageRead::usable_size(r.snapshot()), USABLE);
}

#[test]
fn documents_round_trip_encrypted() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs, Some(key(2)))).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("people").unwrap();
    let doc = from_json_str(r#"{"name": "PLAINTEXT-MARKER-7f3a", "age": 41}"#).unwrap();
    let id = c.insert(&doc).unwrap();
    drop(c);
    w.commit().unwrap();
    db.close().unwrap();
    assert!(!contains(&vfs.read_file(DB).unwrap(), MARKER));
    let db = Db::open_with(DB, options(&vfs, Some(key(2)))).unwrap();
    let r = db.begin_read().unwrap();
    assert_eq!(r.collection("people").unwrap().get(id).unwrap(), Some(doc));
}

#[test]
fn passphrase_round_trip_and_kdf_parameters_in_the_header() {
    let vfs = SimVfs::new();
    sample(&vfs, weak_passphrase("correct horse"), 50);
    let main = vfs.read_file(DB).unwrap();
    assert_eq!(main[97], 2, "key source: Argon2id");
    assert_eq!(u32::from_le_bytes(main[100..104].try_into().unwrap()), 256, "memory KiB");
    // Opening uses the stored costs, whatever the key value says.
    let db = Db::open_with(DB, options(&vfs, Some(EncryptionKey::passphrase("correct horse")))).unwrap();
    check(&db, 50);
    db.close().unwrap();
    assert!(matches!(open_err(&vfs, Some(weak_passphrase("wrong horse"))), Error::Encryption(_)));
    match open_err(&vfs, Some(key(1))) {
        Error::Encryption(m) => assert!(m.contains("passphrase"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_missing_and_unexpected_keys_are_encryption_errors() {
    let vfs = SimVfs::new();
    let bytes = sample(&vfs, key(1), 100);
    match open_err(&vfs, Some(key(9))) {
        Error::Encryption(m) => assert!(m.contains("wrong"), "{m}"),
        other => panic!("wrong key: {other:?}"),
    }
    match open_err(&vfs, None) {
        Error::Encryption(m) => assert!(m.contains("key is required"), "{m}"),
        other => panic!("no key: {other:?}"),
    }
    assert_eq!(vfs.read_file(DB).unwrap(), bytes, "a refused open wrote to the file");
    assert!(!vfs.exists(Path::new(WAL)).unwrap(), "a refused open created a WAL");

    // A key for a plain database.
    let plain = SimVfs::new();
    let db = Db::open_with(DB, options(&plain, None)).unwrap();
    assert!(!db.is_encrypted());
    db.close().unwrap();
    match Db::open_with(DB, options(&plain, Some(key(1)))) {
        Err(Error::Encryption(m)) => assert!(m.contains("not encrypted"), "{m}"),
        other => panic!("key for a plain database: {other:?}"),
    }
}

/// A second open in the same process joins the open engine (real file
/// system only): it must give the same key as a fresh open would.
#[test]
fn joining_an_open_database_checks_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.obj");
    let opts = |k: Option<EncryptionKey>| Options { encryption: k, ..Options::default() };
    let db = Db::open_with(&path, opts(Some(key(1)))).unwrap();
    fill(&db, 0, 10);
    assert!(matches!(Db::open_with(&path, opts(None)), Err(Error::Encryption(_))));
    assert!(matches!(Db::open_with(&path, opts(Some(key(2)))), Err(Error::Encryption(_))));
    check(&Db::open_with(&path, opts(Some(key(1)))).unwrap(), 10);
    let plain = dir.path().join("plain.obj");
    let p = Db::open(&plain).unwrap();
    assert!(matches!(Db::open_with(&plain, opts(Some(key(1)))), Err(Error::Encryption(_))));
    drop((p, db));
}

/// An encrypted file attaches with its key; without it, or with another,
/// it is an Encryption error and nothing is attached.
#[test]
fn an_encrypted_file_attaches_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.obj");
    let db = Db::open_with(&secret, Options { encryption: Some(key(3)), ..Options::default() }).unwrap();
    let mut w = db.begin_write().unwrap();
    w.collection_mut("notes").unwrap().insert(&from_json_str(r#"{"n":1}"#).unwrap()).unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    let main = Db::open(dir.path().join("main.obj")).unwrap();
    assert!(matches!(main.attach(&secret, "s"), Err(Error::Encryption(_))));
    assert!(matches!(main.attach_with_key(&secret, "s", Some(key(4))), Err(Error::Encryption(_))));
    assert!(main.attached().is_empty());
    main.attach_with_key(&secret, "s", Some(key(3))).unwrap();
    assert_eq!(main.begin_read().unwrap().collection("s.notes").unwrap().count().unwrap(), 1);
    main.detach("s").unwrap();
}

#[test]
fn crash_recovery_replays_the_encrypted_wal() {
    for mode in [CutMode::KeepAll, CutMode::DropAll] {
        let vfs = SimVfs::new();
        let db = Db::open_with(DB, options(&vfs, Some(key(3)))).unwrap();
        fill(&db, 0, 200);
        db.checkpoint().unwrap();
        fill(&db, 200, 400);
        fill(&db, 400, 500);
        // The last two commits are only in the WAL (synced: SyncMode::Full).
        vfs.power_cut(11, mode);
        drop(db);
        let db = Db::open_with(DB, options(&vfs, Some(key(3)))).unwrap();
        check(&db, 500);
        fill(&db, 500, 510);
        check(&db, 510);
    }
}

#[test]
fn truncated_or_torn_wal_loses_only_the_last_commit() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs, Some(key(4)))).unwrap();
    fill(&db, 0, 20);
    let frame = 24 + PAGE;
    let len_first = common::wal_frames(&vfs.read_file(WAL).unwrap(), frame).len();
    fill(&db, 20, 21);
    let wal = common::wal_frames(&vfs.read_file(WAL).unwrap(), frame).to_vec();
    vfs.crash();
    drop(db);
    assert!(wal.len() > len_first);
    let cuts =
        [len_first, len_first + 1, len_first + 24, len_first + frame - 1, wal.len() - 1, wal.len() - 700];
    for cut in cuts {
        vfs.write_file(WAL, &wal[..cut]);
        let db = Db::open_with(DB, options(&vfs, Some(key(4)))).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        check(&db, 20);
        vfs.crash();
        drop(db);
    }
    for at in (len_first..wal.len()).step_by(331) {
        let mut bad = wal.clone();
        bad[at] ^= 0x10;
        vfs.write_file(WAL, &bad);
        let db = Db::open_with(DB, options(&vfs, Some(key(4)))).unwrap();
        check(&db, 20);
        vfs.crash();
        drop(db);
    }
    vfs.write_file(WAL, &wal);
    check(&Db::open_with(DB, options(&vfs, Some(key(4)))).unwrap(), 21);
}

/// Opens and reads everything; the error, if any.
fn read_all(vfs: &SimVfs, k: EncryptionKey) -> Result<(), Error> {
    read_all_at(vfs, DB, k)
}

/// Opens `path`, reads every entry, runs the integrity check, then crashes
/// the file system (so that the next open starts afresh).
fn read_all_at(vfs: &SimVfs, path: &str, k: EncryptionKey) -> Result<(), Error> {
    let db = Db::open_with(path, options(vfs, Some(k)))?;
    let r = db.begin_read()?;
    let t = r.open_tree("secret-tree")?;
    for e in r.range(&t, Bound::Unbounded, Bound::Unbounded, false)? {
        e?;
    }
    drop(r);
    let result = db.integrity_check().map(drop);
    vfs.crash();
    result
}

fn expect_corruption_on(result: Result<(), Error>, page: u32, what: &str) {
    match result {
        Err(Error::Corruption { page: Some(p), message }) => {
            assert_eq!(p, page, "{what}: {message}");
        }
        other => panic!("{what}: expected corruption on page {page}, got {other:?}"),
    }
}

#[test]
fn flipped_bits_are_corruption_naming_the_page() {
    let vfs = SimVfs::new();
    let clean = sample(&vfs, key(5), 400);
    let pages = clean.len() / PAGE;
    assert!(pages > 8);
    for page in 1..pages {
        for (offset, reseal) in
            [(0, false), (100, true), (USABLE - 1, true), (USABLE + 3, true), (USABLE + 20, true)]
        {
            let mut bad = clean.clone();
            let at = page * PAGE;
            bad[at + offset] ^= 0x04;
            if reseal {
                // Past the CRC: only the GCM tag can catch it.
                seal_page(page as u32, &mut bad[at..at + PAGE]);
            }
            vfs.write_file(DB, &bad);
            let result = read_all(&vfs, key(5));
            match &result {
                Err(Error::Corruption { message, .. }) if reseal => {
                    assert!(message.contains("authentication"), "page {page} offset {offset}: {message}")
                }
                _ => {}
            }
            expect_corruption_on(result, page as u32, &format!("page {page} offset {offset}"));
        }
    }
    // Page 0's plaintext header is authenticated too.
    for offset in [40, 56, 130, 200] {
        let mut bad = clean.clone();
        bad[offset] ^= 0x01;
        seal_page(0, &mut bad[..PAGE]);
        vfs.write_file(DB, &bad);
        match read_all(&vfs, key(5)) {
            Err(Error::Corruption { page: Some(0), .. }) => {}
            // Bytes 96..160 hold the key check: damage there reads as a wrong key.
            Err(Error::Encryption(_)) if (96..160).contains(&offset) => {}
            other => panic!("header offset {offset}: {other:?}"),
        }
    }
    // Unchecked header bytes damaged without resealing: corruption, not "wrong key".
    let mut bad = clean.clone();
    bad[130] ^= 0x01;
    vfs.write_file(DB, &bad);
    assert!(read_all(&vfs, key(5)).unwrap_err().is_corruption());
}

#[test]
fn swapped_pages_and_pages_from_another_file_fail_authentication() {
    let vfs = SimVfs::new();
    let clean = sample(&vfs, key(6), 400);
    let pages = clean.len() / PAGE;
    let (a, b) = (2, pages - 2);
    for reseal in [false, true] {
        let mut bad = clean.clone();
        let (pa, pb) = (clean[a * PAGE..(a + 1) * PAGE].to_vec(), clean[b * PAGE..(b + 1) * PAGE].to_vec());
        bad[a * PAGE..(a + 1) * PAGE].copy_from_slice(&pb);
        bad[b * PAGE..(b + 1) * PAGE].copy_from_slice(&pa);
        if reseal {
            seal_page(a as u32, &mut bad[a * PAGE..(a + 1) * PAGE]);
            seal_page(b as u32, &mut bad[b * PAGE..(b + 1) * PAGE]);
        }
        vfs.write_file(DB, &bad);
        let err = read_all(&vfs, key(6)).unwrap_err();
        assert!(err.is_corruption(), "swap (reseal {reseal}): {err:?}");
        if reseal {
            assert!(err.to_string().contains("authentication"), "{err}");
        }
    }

    // The same key and the same content, but another file (another file id).
    let other = SimVfs::new();
    let twin = sample(&other, key(6), 400);
    assert_eq!(twin.len(), clean.len());
    for page in [1, 3, pages - 1] {
        let mut bad = clean.clone();
        bad[page * PAGE..(page + 1) * PAGE].copy_from_slice(&twin[page * PAGE..(page + 1) * PAGE]);
        vfs.write_file(DB, &bad);
        let err = read_all(&vfs, key(6)).unwrap_err();
        assert!(err.to_string().contains("authentication"), "page {page} from another file: {err}");
        expect_corruption_on(Err(err), page as u32, "foreign page");
    }
    // The other file's WAL next to this one is refused as another database's.
    vfs.write_file(DB, &clean);
    let db = Db::open_with(DB, options(&other, Some(key(6)))).unwrap();
    fill(&db, 400, 401);
    let foreign_wal = other.read_file(WAL).unwrap();
    other.crash();
    drop(db);
    vfs.write_file(WAL, &foreign_wal);
    assert!(open_err(&vfs, Some(key(6))).is_corruption());
    vfs.remove(Path::new(WAL)).unwrap();
    check(&Db::open_with(DB, options(&vfs, Some(key(6)))).unwrap(), 400);
}

#[test]
fn hostile_kdf_costs_are_refused_before_any_work() {
    let vfs = SimVfs::new();
    let mut bytes = sample(&vfs, weak_passphrase("pw"), 10);
    bytes[100..104].copy_from_slice(&u32::MAX.to_le_bytes());
    seal_page(0, &mut bytes[..PAGE]);
    vfs.write_file(DB, &bytes);
    assert!(open_err(&vfs, Some(EncryptionKey::passphrase("pw"))).is_corruption());
    bytes[96] = 7; // an unknown cipher
    seal_page(0, &mut bytes[..PAGE]);
    vfs.write_file(DB, &bytes);
    assert!(matches!(open_err(&vfs, Some(EncryptionKey::passphrase("pw"))), Error::Unsupported(_)));
}

#[test]
fn rekey_encrypts_changes_the_key_and_decrypts() {
    let vfs = SimVfs::new();
    let mut db = Db::open_with(DB, options(&vfs, None)).unwrap();
    fill(&db, 0, 500);
    db.close().unwrap();
    assert!(contains(&vfs.read_file(DB).unwrap(), MARKER), "the plain file holds plaintext");

    // Encrypt (the WAL holds a commit not yet checkpointed).
    db = Db::open_with(DB, options(&vfs, None)).unwrap();
    fill(&db, 500, 520);
    db.rekey(Some(key(7))).unwrap();
    assert!(db.is_encrypted());
    check(&db, 520);
    fill(&db, 520, 530);
    db.close().unwrap();
    assert!(!contains(&vfs.read_file(DB).unwrap(), MARKER));
    assert_eq!(vfs.file_names(), vec![Path::new(DB).to_path_buf()], "no stray files");
    assert!(matches!(open_err(&vfs, None), Error::Encryption(_)));

    // Change the key, to a passphrase.
    db = Db::open_with(DB, options(&vfs, Some(key(7)))).unwrap();
    db.rekey(Some(weak_passphrase("new pass"))).unwrap();
    check(&db, 530);
    db.close().unwrap();
    assert!(matches!(open_err(&vfs, Some(key(7))), Error::Encryption(_)));
    assert!(!contains(&vfs.read_file(DB).unwrap(), MARKER));

    // Decrypt.
    db = Db::open_with(DB, options(&vfs, Some(EncryptionKey::passphrase("new pass")))).unwrap();
    db.rekey(None).unwrap();
    assert!(!db.is_encrypted());
    db.close().unwrap();
    assert!(matches!(open_err(&vfs, Some(key(7))), Error::Encryption(_)));
    let db = Db::open_with(DB, options(&vfs, None)).unwrap();
    check(&db, 530);
}

#[test]
fn rekey_needs_exclusive_use_and_fitting_keys() {
    let vfs = SimVfs::new();
    let mut db = Db::open_with(DB, options(&vfs, None)).unwrap();
    fill(&db, 0, 50);
    let other = db.clone();
    assert!(matches!(db.rekey(Some(key(1))), Err(Error::Busy(_))));
    drop(other);
    let r = db.begin_read().unwrap();
    assert!(matches!(db.rekey(Some(key(1))), Err(Error::Busy(_))));
    drop(r);
    // A key that fits a plain page but not an encrypted one.
    let max_plain = obj_engine::btree::max_key_len(PAGE - 4);
    assert!(obj_engine::btree::max_key_len(USABLE) < max_plain);
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("long").unwrap();
    w.insert(&t, &vec![b'k'; max_plain], b"v").unwrap();
    w.commit().unwrap();
    match db.rekey(Some(key(1))) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("long"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Nothing changed, the handle works, and no temporary file is left.
    assert!(!db.is_encrypted());
    check(&db, 50);
    db.close().unwrap();
    assert!(!vfs.file_names().iter().any(|p| p.to_string_lossy().contains("rekey")));
    check(&Db::open_with(DB, options(&vfs, None)).unwrap(), 50);
}

#[test]
fn rekey_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("real.obj");
    let opts = |k: Option<EncryptionKey>| Options { encryption: k, ..Options::default() };
    let mut db = Db::open_with(&path, opts(None)).unwrap();
    fill(&db, 0, 300);
    db.rekey(Some(key(8))).unwrap();
    fill(&db, 300, 310);
    // Another open in this process joins the engine, with the new key only.
    assert!(matches!(Db::open_with(&path, opts(None)), Err(Error::Encryption(_))));
    let again = Db::open_with(&path, opts(Some(key(8)))).unwrap();
    check(&again, 310);
    drop(again);
    db.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(!contains(&bytes, MARKER));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("real.obj")]);
    check(&Db::open_with(&path, opts(Some(key(8)))).unwrap(), 310);
}

/// A crash at any I/O call of a rekey leaves the old database or the new
/// one, whole: it opens with one of the two keys and holds everything.
#[test]
fn rekey_survives_a_crash_at_any_point() {
    let setup = || {
        let vfs = SimVfs::new();
        let db = Db::open_with(DB, options(&vfs, Some(key(1)))).unwrap();
        fill(&db, 0, 300);
        db.close().unwrap();
        let db = Db::open_with(DB, options(&vfs, Some(key(1)))).unwrap();
        fill(&db, 300, 320);
        vfs.reset_op_counts();
        (vfs, db)
    };
    let (vfs, mut db) = setup();
    db.rekey(Some(key(2))).unwrap();
    let total = vfs.op_counts().total();
    drop(db);
    assert!(total > 20, "{total}");
    let points: Vec<u64> = (0..total).step_by((total as usize / 40).max(1)).chain([total - 1]).collect();
    let (mut old, mut new) = (0, 0);
    for (i, at) in points.into_iter().enumerate() {
        let (vfs, mut db) = setup();
        vfs.set_fault(Fault { op: FaultOp::Any, after: at, kind: FaultKind::Eio, persistent: true });
        let result = db.rekey(Some(key(2)));
        vfs.power_cut(i as u64, CutMode::Random);
        drop(db);
        vfs.clear_faults();
        let reopened = match Db::open_with(DB, options(&vfs, Some(key(1)))) {
            Ok(db) => {
                old += 1;
                db
            }
            Err(Error::Encryption(_)) => {
                new += 1;
                assert!(result.is_ok() || at > 0, "call {at}");
                Db::open_with(DB, options(&vfs, Some(key(2))))
                    .unwrap_or_else(|e| panic!("crash at call {at}: neither key opens: {e}"))
            }
            Err(e) => panic!("crash at call {at}: {e} (rekey said {result:?})"),
        };
        check(&reopened, 320);
    }
    assert!(old > 0 && new > 0, "old {old}, new {new}");
}

#[test]
fn compaction_of_an_encrypted_database_stays_encrypted() {
    let vfs = SimVfs::new();
    let db = Db::open_with(DB, options(&vfs, Some(key(7)))).unwrap();
    fill(&db, 0, 3000);
    {
        // Delete most entries so that compaction has something to reclaim.
        let mut w = db.begin_write().unwrap();
        let t = w.create_tree("secret-tree").unwrap();
        for i in 300..3000u32 {
            let mut k = MARKER.to_vec();
            k.extend_from_slice(&i.to_be_bytes());
            assert!(w.delete(&t, &k).unwrap());
        }
        w.commit().unwrap();
    }
    db.checkpoint().unwrap();
    let report = db.compact().unwrap();
    assert!(report.rewritten && report.pages_after < report.pages_before, "{report:?}");
    check(&db, 300);
    db.close().unwrap();
    let main = vfs.read_file(DB).unwrap();
    assert!(!contains(&main, MARKER), "plaintext in the compacted file");
    let db = Db::open_with(DB, options(&vfs, Some(key(7)))).unwrap();
    check(&db, 300);
    assert!(matches!(
        Db::open_with("/enc/app.obj", options(&vfs, Some(key(8)))),
        Err(Error::Encryption(_)) | Err(Error::Busy(_))
    ));
}

/// Opens `path` with `k` and checks every entry and the integrity check.
fn check_copy(vfs: &SimVfs, path: &str, k: EncryptionKey, upto: u32) {
    let db = Db::open_with(path, options(vfs, Some(k))).unwrap();
    assert!(db.is_encrypted());
    check(&db, upto);
    db.close().unwrap();
}

/// A backup and a compacted copy of an encrypted database are encrypted
/// with the same key under their own file id: no plaintext on disk, the
/// original's key opens them (no key or another key is an `Encryption`
/// error), their pages do not authenticate in the original, and a flipped
/// bit in a copy is `Corruption` naming the page.
#[test]
fn backup_and_compact_to_of_an_encrypted_database_are_encrypted_copies() {
    for k in [key(7), weak_passphrase("copy me")] {
        let vfs = SimVfs::new();
        let db = Db::open_with(DB, options(&vfs, Some(k.clone()))).unwrap();
        fill(&db, 0, 1200);
        // Backed up before the deletes, so that every page of the backup
        // is in use (a free page's content is never read).
        let backup = db.backup_to("/enc/backup.obj", |_| true).unwrap();
        assert!(!backup.cancelled);
        {
            let mut w = db.begin_write().unwrap();
            let t = w.create_tree("secret-tree").unwrap();
            for i in 600..1200u32 {
                let mut key = MARKER.to_vec();
                key.extend_from_slice(&i.to_be_bytes());
                assert!(w.delete(&t, &key).unwrap());
            }
            w.commit().unwrap();
        }
        let compacted = db.compact_to("/enc/compact.obj").unwrap();
        assert!(compacted.pages_after < compacted.pages_before, "{compacted:?}");
        db.close().unwrap();
        let original = vfs.read_file(DB).unwrap();

        for (path, pages, entries) in
            [("/enc/backup.obj", backup.pages, 1200), ("/enc/compact.obj", compacted.pages_after, 600)]
        {
            let bytes = vfs.read_file(path).unwrap();
            assert_eq!(bytes.len() as u64, pages * PAGE as u64, "{path}");
            assert!(!contains(&bytes, MARKER), "{path}: plaintext on disk");
            // Its own file id, the same key source, costs and salt, its own key check.
            assert_ne!(bytes[24..40], original[24..40], "{path}: file id");
            assert_eq!(bytes[96..128], original[96..128], "{path}: key source, costs and salt");
            assert_ne!(bytes[128..144], original[128..144], "{path}: key check");
            check_copy(&vfs, path, k.clone(), entries);
            assert!(matches!(Db::open_with(path, options(&vfs, None)), Err(Error::Encryption(_))), "{path}");
            let wrong = if k.is_passphrase() { weak_passphrase("not me") } else { key(8) };
            assert!(matches!(Db::open_with(path, options(&vfs, Some(wrong))), Err(Error::Encryption(_))));

            // A bit flipped in a page of the copy: the CRC catches it, or,
            // with the CRC redone, the GCM tag does.
            let copy_pages = bytes.len() / PAGE;
            for page in [1, copy_pages / 2, copy_pages - 1] {
                for reseal in [false, true] {
                    let mut bad = bytes.clone();
                    bad[page * PAGE + 100] ^= 0x10;
                    if reseal {
                        seal_page(page as u32, &mut bad[page * PAGE..(page + 1) * PAGE]);
                    }
                    vfs.write_file(path, &bad);
                    let result = read_all_at(&vfs, path, k.clone());
                    let what = format!("{path} page {page} reseal {reseal}");
                    if reseal {
                        let err = result.as_ref().unwrap_err().to_string();
                        assert!(err.contains("authentication"), "{what}: {err}");
                    }
                    expect_corruption_on(result, page as u32, &what);
                }
            }
            vfs.write_file(path, &bytes);

            // The copy's pages are sealed under its own page key: the
            // original's image of a page (same page number, same key, a
            // valid CRC) fails authentication in the copy.
            let mut mixed = bytes.clone();
            mixed[PAGE..2 * PAGE].copy_from_slice(&original[PAGE..2 * PAGE]);
            vfs.write_file(path, &mixed);
            let err = read_all_at(&vfs, path, k.clone()).unwrap_err();
            assert!(err.to_string().contains("authentication"), "{path}: the original's page 1: {err}");
            expect_corruption_on(Err(err), 1, "the original's page 1");
            vfs.write_file(path, &bytes);
        }

        // Restore of an encrypted backup needs its key; the restored file is
        // encrypted with it.
        let restore = |encryption| {
            Db::restore_from(
                "/enc/backup.obj",
                "/enc/restored.obj",
                obj_engine::RestoreOptions { vfs: Some(Arc::new(vfs.clone())), encryption, overwrite: true },
            )
        };
        assert!(matches!(restore(None), Err(Error::Encryption(_))));
        assert!(!vfs.exists(Path::new("/enc/restored.obj")).unwrap(), "a refused restore leaves nothing");
        restore(Some(k.clone())).unwrap();
        let restored = vfs.read_file("/enc/restored.obj").unwrap();
        assert!(!contains(&restored, MARKER));
        check_copy(&vfs, "/enc/restored.obj", k.clone(), 1200);
        check_copy(&vfs, DB, k.clone(), 600);
    }
}

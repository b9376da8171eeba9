//! The body of the `c_api` fuzz target (`fuzz/fuzz_targets/c_api.rs`),
//! kept here so that `capi/tests/fuzz_corpus.rs` replays the committed
//! corpus without a fuzzing engine. It drives the exported functions the
//! way a careless C caller might: names and keys made of arbitrary bytes
//! (invalid UTF-8, interior NULs), documents, index specs and queries from
//! arbitrary text, cursors used after their transaction ended, handles of
//! the wrong kind, NULL out-pointers. Every call must return a status; a
//! panic inside is reported as OBJ_INTERNAL, which this target treats as a
//! bug. Not part of the stable API.

use std::ffi::CString;
use std::ptr;

use crate::*;

/// Runs the operations encoded in `data` against a fresh database in a
/// temporary directory; panics on OBJ_INTERNAL or a broken invariant.
pub fn c_api_calls(data: &[u8]) {
    // One file per call; several calls share a path only in the test below.
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("obj-capi-fuzz-{}-{run}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("f.obj");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(dir.join("f.obj-wal"));
    let cpath = CString::new(path.to_str().expect("utf-8 temp path")).expect("no NUL");
    let mut input = data.iter().copied();
    let mut next = move || input.next();
    let ok = |s: obj_status| assert_ne!(s, obj_status::OBJ_INTERNAL, "internal error: {}", last_error());
    let mut db: *mut obj_db = ptr::null_mut();
    // SAFETY: valid C strings and out-pointers throughout; handles are
    // freed exactly once, below.
    unsafe {
        ok(obj_db_open(cpath.as_ptr(), ptr::null(), &mut db));
        assert!(!db.is_null());
        let mut txn: *mut obj_txn = ptr::null_mut();
        let mut cursors: Vec<*mut obj_cursor> = Vec::new();
        let mut steps = 0;
        while let Some(op) = next() {
            steps += 1;
            if steps > 300 {
                break;
            }
            // Pieces of input: a short byte string, and one made a C string
            // (interior NULs cut it, which is what C would see).
            let mut piece = |n: u8| -> Vec<u8> { (0..n % 24).map_while(|_| next()).collect() };
            let text = piece(op.rotate_left(3));
            let name = {
                let raw = piece(op);
                let cut: Vec<u8> = raw.into_iter().take_while(|&b| b != 0).collect();
                CString::new(cut).expect("no NUL left")
            };
            let fixed = [c"c".as_ptr(), c"k".as_ptr(), name.as_ptr()][(op as usize / 7) % 3];
            let mut out = obj_bytes { data: ptr::null_mut(), len: 0 };
            let mut id = 0u64;
            let mut found = false;
            match op % 16 {
                0 => {
                    if !txn.is_null() {
                        ok(obj_txn_free(txn));
                    }
                    txn = ptr::null_mut();
                    // No transaction of this thread holds the write lock:
                    // a one-call write at the current catalog version or
                    // (odd op) another one, which writes nothing.
                    let mut version = 0u64;
                    let mut done = false;
                    let mut r = ptr::null_mut();
                    ok(obj_txn_begin_read(db, &mut r));
                    ok(obj_txn_catalog_version(r, &mut version));
                    ok(obj_txn_free(r));
                    let at = version.wrapping_add(u64::from(op & 1));
                    ok(obj_db_doc_insert_if(db, fixed, text.as_ptr(), text.len(), 0, at, &mut id, &mut done));
                    ok(obj_db_doc_upsert_if(
                        db,
                        fixed,
                        3,
                        text.as_ptr(),
                        text.len(),
                        0,
                        at,
                        &mut found,
                        &mut done,
                    ));
                    ok(if op & 0x10 == 0 {
                        obj_txn_begin_write(db, &mut txn)
                    } else {
                        obj_txn_begin_read(db, &mut txn)
                    });
                }
                1 => ok(obj_txn_commit(txn)),
                2 => ok(obj_txn_rollback(txn)),
                3 => ok(obj_doc_insert(txn, fixed, text.as_ptr(), text.len(), u32::from(op), &mut id)),
                4 => {
                    let doc = format!("{{\"k\":{},\"s\":\"{}\"}}", op % 5, op);
                    ok(obj_doc_insert(txn, fixed, doc.as_ptr(), doc.len(), 1, &mut id));
                }
                5 => {
                    ok(obj_doc_get(txn, fixed, u64::from(op % 8), &mut out, ptr::null_mut(), &mut found));
                    obj_bytes_free(&mut out);
                }
                6 => ok(obj_doc_delete(txn, fixed, u64::from(op % 8), ptr::null_mut())),
                7 => {
                    let spec = if op & 1 == 0 {
                        &text[..]
                    } else {
                        &br#"{"name":"by_k","kind":"unique","fields":["k"]}"#[..]
                    };
                    ok(obj_index_create(txn, fixed, spec.as_ptr(), spec.len()));
                }
                8 => {
                    let mut cur: *mut obj_cursor = ptr::null_mut();
                    let q = if op & 1 == 0 {
                        text.clone()
                    } else {
                        br#"{"collection":"c","filter":{"gt":["k",1]}}"#.to_vec()
                    };
                    ok(obj_query(txn, q.as_ptr(), q.len(), &mut cur));
                    if !cur.is_null() {
                        cursors.push(cur);
                    }
                }
                9 => {
                    if let Some(&cur) = cursors.last() {
                        let mut done = false;
                        ok(obj_cursor_next(cur, &mut id, &mut out, ptr::null_mut(), &mut done));
                        obj_bytes_free(&mut out);
                        ok(obj_cursor_next_batch(cur, usize::from(op % 4), &mut out));
                        obj_bytes_free(&mut out);
                        ok(obj_cursor_next_batch_columns(cur, usize::from(op % 3), op % 2 == 0, &mut out));
                        obj_bytes_free(&mut out);
                    }
                }
                10 => {
                    if let Some(cur) = cursors.pop() {
                        ok(obj_cursor_free(cur));
                    }
                }
                11 => ok(obj_kv_put(txn, fixed, text.as_ptr(), text.len(), text.as_ptr(), text.len())),
                12 => {
                    ok(obj_kv_get(txn, fixed, text.as_ptr(), text.len(), &mut out, &mut found));
                    obj_bytes_free(&mut out);
                }
                13 => {
                    // Handles of the wrong kind, and NULL out-pointers.
                    ok(obj_txn_commit(db.cast()));
                    ok(obj_doc_insert(txn, fixed, text.as_ptr(), text.len(), 0, ptr::null_mut()));
                    ok(obj_cursor_next(txn.cast(), &mut id, &mut out, ptr::null_mut(), ptr::null_mut()));
                }
                14 => {
                    ok(obj_doc_insert_many(
                        txn,
                        fixed,
                        text.as_ptr(),
                        text.len(),
                        0,
                        ptr::null_mut(),
                        0,
                        ptr::null_mut(),
                    ));
                    let mut ids = [1u64, 2, u64::from(op)];
                    let mut n = 0usize;
                    ok(obj_doc_insert_lines(
                        txn,
                        fixed,
                        text.as_ptr(),
                        text.len(),
                        0,
                        ids.as_mut_ptr(),
                        usize::from(op % 4),
                        &mut n,
                    ));
                    let lens = [text.len() / 2, text.len() - text.len() / 2];
                    ok(obj_raw_insert_many(
                        txn,
                        fixed,
                        text.as_ptr(),
                        lens.as_ptr(),
                        usize::from(op % 3),
                        ids.as_mut_ptr(),
                    ));
                    ids = [1u64, 2, u64::from(op)];
                    ok(obj_doc_get_many(txn, fixed, ids.as_ptr(), ids.len(), &mut out));
                    obj_bytes_free(&mut out);
                    ok(obj_doc_get_many_plain(txn, fixed, ids.as_ptr(), ids.len(), &mut out));
                    obj_bytes_free(&mut out);
                    ok(obj_find_unique_many(
                        txn,
                        fixed,
                        fixed,
                        text.as_ptr(),
                        text.len(),
                        op & 1 == 0,
                        &mut out,
                    ));
                    obj_bytes_free(&mut out);
                    ok(obj_db_doc_get(db, fixed, u64::from(op), &mut out, ptr::null_mut(), &mut found));
                    obj_bytes_free(&mut out);
                }
                _ => {
                    let mut n = 0u64;
                    ok(obj_query_count(txn, text.as_ptr(), text.len(), &mut n));
                    ok(obj_db_stat_json(db, &mut out));
                    obj_bytes_free(&mut out);
                }
            }
        }
        for cur in cursors {
            ok(obj_cursor_free(cur));
        }
        if !txn.is_null() {
            ok(obj_txn_free(txn));
        }
        // Whatever happened, the file is sound.
        assert_eq!(obj_db_integrity_check(db, ptr::null_mut()), obj_status::OBJ_OK, "{}", last_error());
        ok(obj_db_free(db));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn last_error() -> String {
    // SAFETY: obj_last_error never returns NULL and the string is valid
    // until this thread's next call.
    unsafe { std::ffi::CStr::from_ptr(obj_last_error()) }.to_string_lossy().into_owned()
}

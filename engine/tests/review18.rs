//! Review 18: what users of the docs and the Python reference met.
//!
//! - `{"$bytes": …}` without base64 padding was refused in query JSON
//!   ("length 6 is not a multiple of 4") although `query-json.md` says
//!   padding is optional on read, and document JSON (an insert, a unique
//!   lookup) took the same text: a value a user could store could not be
//!   queried with the same spelling.
//! - A unique index built over documents that repeat a value said the
//!   index "already holds this value (document 1)", the words of a write
//!   that collides, naming one document; it now says the index cannot be
//!   built and names both.
//! - An encrypted file whose header was altered (its CRC made to match)
//!   said "header page checksum mismatch"; it is authentication that fails,
//!   and the error now says so, as it does for every other page.

use obj_engine::{Db, Error, IndexSpec, QuerySpec, Value};

#[test]
fn query_json_reads_bytes_with_or_without_padding() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("b.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    // Stored from unpadded text, as document JSON allows.
    tx.collection_mut("c").unwrap().insert_json(br#"{"sig":{"$bytes":"3q2+7w"}}"#, 0).unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let c = rx.collection("c").unwrap();
    for text in ["3q2+7w==", "3q2+7w"] {
        let spec = QuerySpec::from_json(&format!(
            r#"{{"collection":"c","filter":{{"eq":["sig",{{"$bytes":"{text}"}}]}}}}"#
        ))
        .unwrap();
        let hits: Vec<(u64, Value)> = c.query(&spec).unwrap().map(Result::unwrap).collect();
        assert_eq!(hits.len(), 1, "{text}");
        assert_eq!(hits[0].1, Value::Map(vec![("sig".into(), Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]))]));
    }
    for bad in ["3q2+7", "3q2+7x==", "3q2*7w=="] {
        let e = QuerySpec::from_json(&format!(
            r#"{{"collection":"c","filter":{{"eq":["sig",{{"$bytes":"{bad}"}}]}}}}"#
        ))
        .unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("invalid base64")), "{bad}: {e}");
    }
}

#[test]
fn a_unique_index_over_repeated_values_says_it_cannot_be_built() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("u.obj")).unwrap();
    let mut tx = db.begin_write().unwrap();
    let mut c = tx.collection_mut("c").unwrap();
    for e in ["a", "b", "c", "b"] {
        c.insert_json(format!(r#"{{"e":"{e}"}}"#).as_bytes(), 0).unwrap();
    }
    tx.commit().unwrap();
    let e = db.create_index("c", IndexSpec::unique("by_e", "e").unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::Constraint(m) if m.contains("cannot build unique index \"by_e\"") && m.contains("documents 2 and 4")),
        "{e}"
    );
    let mut tx = db.begin_write().unwrap();
    let e =
        tx.collection_mut("c").unwrap().create_index(IndexSpec::unique("by_e", "e").unwrap()).unwrap_err();
    assert!(matches!(&e, Error::Constraint(m) if m.contains("documents 2 and 4")), "{e}");
    drop(tx);
    assert!(db.begin_read().unwrap().collection("c").unwrap().indexes().is_empty());
}

/// An altered header of an encrypted file whose CRC was made to match
/// said "header page checksum mismatch"; it is authentication that fails,
/// and the error says so, as for every other page.
#[test]
fn an_altered_encrypted_header_fails_authentication_in_so_many_words() {
    use obj_engine::storage::page::page_checksum;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.obj");
    let options = || obj_engine::Options {
        encryption: Some(obj_engine::EncryptionKey::raw([7; 32])),
        ..Default::default()
    };
    let db = Db::open_with(&path, options()).unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.collection_mut("c").unwrap().insert_json(br#"{"a":1}"#, 0).unwrap();
    tx.commit().unwrap();
    db.close().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let page = &mut bytes[..4096];
    page[44] ^= 1; // the freelist head
    let crc = page_checksum(0, &page[..4092]);
    page[4092..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = Db::open_with(&path, options()).unwrap_err();
    assert!(e.is_corruption() && e.to_string().contains("failed authentication"), "{e}");
}

/// A repeated or falling id in a section replaced the document before it
/// while the import counted both; the format says ascending id order.
#[test]
fn an_import_refuses_ids_out_of_order_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("i.obj")).unwrap();
    let header = r#"{"obj_export":1,"collection":"u","kind":"documents","next_id":3,"count":2,"indexes":[]}"#;
    for ids in [[1, 1], [2, 1]] {
        let text = format!(
            "{header}\n{{\"id\":{},\"doc\":{{\"a\":1}}}}\n{{\"id\":{},\"doc\":{{\"a\":2}}}}\n",
            ids[0], ids[1]
        );
        let e = db.import(text.as_bytes(), obj_engine::ImportOptions::default()).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("line 3") && m.contains("ascending id order")),
            "{e}"
        );
        assert!(db.begin_read().unwrap().collection("u").is_err(), "nothing written");
    }
    let ok = format!("{header}\n{{\"id\":1,\"doc\":{{\"a\":1}}}}\n{{\"id\":2,\"doc\":{{\"a\":2}}}}\n");
    assert_eq!(db.import(ok.as_bytes(), obj_engine::ImportOptions::default()).unwrap().documents, 2);
}

//! Review 13: the extremes of the storage parameters and of documents —
//! nesting at the limit, sizes at the limit — through whole-database
//! operations.

use std::io::Cursor;

use obj_engine::doc::json::MAX_NESTING;
use obj_engine::{Db, ImportOptions, Value};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `depth` nested one-element lists around an integer.
fn nested_lists(depth: usize) -> Value {
    (0..depth).fold(Value::Int(1), |v, _| Value::List(vec![v]))
}

/// A document at the nesting limit is accepted by every write, so an
/// export holding it must import again: the line's envelope
/// (`{"id": …, "doc": …}`) is one level the document itself does not have.
#[test]
fn a_document_nested_to_the_limit_survives_export_and_import() {
    let d = tmp();
    let src = Db::open(d.path().join("src.obj")).unwrap();
    let doc = Value::from_iter([("v", nested_lists(MAX_NESTING - 1))]);
    assert_eq!(doc.nesting_depth(), MAX_NESTING);
    let mut tx = src.begin_write().unwrap();
    let id = tx.collection_mut("deep").unwrap().insert(&doc).unwrap();
    // A key-value entry beside it, so the kv section is read after it.
    tx.kv_put("cfg", b"k", b"v").unwrap();
    tx.commit().unwrap();

    let mut out = Vec::new();
    src.export_all(&mut out).unwrap();
    for batch in [None, Some(1)] {
        let dst = Db::open(d.path().join(format!("dst{batch:?}.obj"))).unwrap();
        dst.import(Cursor::new(&out), ImportOptions { batch_size: batch }).unwrap();
        let rx = dst.begin_read().unwrap();
        assert_eq!(rx.collection("deep").unwrap().get(id).unwrap(), Some(doc.clone()));
    }

    // One level deeper is still refused, naming the line.
    let text = String::from_utf8(out).unwrap();
    let deeper = text.replacen("[1]", "[[1]]", 1);
    assert_ne!(deeper, text);
    let dst = Db::open(d.path().join("deeper.obj")).unwrap();
    let e = dst.import(Cursor::new(deeper.as_bytes()), ImportOptions::default()).unwrap_err();
    assert!(matches!(e, obj_engine::Error::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("line 2") && e.to_string().contains("128 levels"), "{e}");
}

/// A special form (`{"$bytes"}`, `{"$ts"}`, `{"$f64"}`) is a scalar, not a
/// level of nesting: a document that nests to the limit around one is
/// accepted as a `Value`, so its JSON form (the C ABI's and Python's, and
/// an export line) must be accepted too, one document or a batch of them.
#[test]
fn a_special_form_at_the_nesting_limit_is_a_scalar_in_json_too() {
    let d = tmp();
    let src = Db::open(d.path().join("src.obj")).unwrap();
    let leaves = [
        Value::Bytes(vec![1, 2]),
        Value::Float(f64::NAN),
        Value::Timestamp(obj_engine::Timestamp { micros: 7, offset_secs: Some(3600) }),
    ];
    let mut tx = src.begin_write().unwrap();
    let mut c = tx.collection_mut("deep").unwrap();
    let mut expect = Vec::new();
    for leaf in &leaves {
        let doc =
            Value::from_iter([("v", (0..MAX_NESTING - 1).fold(leaf.clone(), |v, _| Value::List(vec![v])))]);
        assert_eq!(doc.nesting_depth(), MAX_NESTING);
        let json = obj_engine::doc::json::to_json_vec(&doc);
        let a = c.insert(&doc).unwrap();
        let b = c.insert_json(&json, 0).unwrap();
        let mut batch = b"[".to_vec();
        batch.extend_from_slice(&json);
        batch.push(b']');
        let many = c.insert_json_many(&batch, 0, |_| Ok(())).unwrap();
        for id in [a, b, many[0]] {
            expect.push((id, doc.clone()));
        }
        // One level more is still refused, by every path.
        let deeper = Value::from_iter([("v", Value::List(vec![doc.get_path(&["v"]).unwrap().clone()]))]);
        let json = obj_engine::doc::json::to_json_vec(&deeper);
        assert!(matches!(c.insert(&deeper), Err(obj_engine::Error::InvalidArgument(_))));
        assert!(matches!(c.insert_json(&json, 0), Err(obj_engine::Error::InvalidArgument(_))));
    }
    // An empty map is a level, as in Value::nesting_depth.
    let empty_at = |n: usize| (0..n).fold(b"{}".to_vec(), |v, _| [b"[".as_slice(), &v, b"]"].concat());
    let ok = [b"{\"v\":".as_slice(), &empty_at(MAX_NESTING - 2), b"}"].concat();
    let too_deep = [b"{\"v\":".as_slice(), &empty_at(MAX_NESTING - 1), b"}"].concat();
    c.insert_json(&ok, 0).unwrap();
    assert!(matches!(c.insert_json(&too_deep, 0), Err(obj_engine::Error::InvalidArgument(_))));
    drop(c);
    tx.commit().unwrap();

    let mut out = Vec::new();
    src.export_all(&mut out).unwrap();
    let dst = Db::open(d.path().join("dst.obj")).unwrap();
    dst.import(Cursor::new(&out), ImportOptions::default()).unwrap();
    let rx = dst.begin_read().unwrap();
    let c = rx.collection("deep").unwrap();
    for (id, doc) in &expect {
        let got = c.get(*id).unwrap().unwrap();
        // NaN != NaN: compare the JSON forms.
        assert_eq!(
            obj_engine::doc::json::to_json_vec(&got),
            obj_engine::doc::json::to_json_vec(doc),
            "id {id}"
        );
    }
}

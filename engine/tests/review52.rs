//! Review 52: what users found.
//!
//! - A page size that is not one was refused by an open that opened the
//!   file, and accepted by one that joined a handle already open on it in
//!   this process (which never reaches the pager's check).
//! - An import into a read-only handle was refused once it had something
//!   to write, and answered an empty input with an empty report.

use obj_engine::{Db, Error, ImportOptions, Options};

#[test]
fn a_bad_page_size_is_refused_also_when_the_open_joins_an_open_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    let first = Db::open(&path).unwrap();
    for size in [0, 3000, 4095, 131_072] {
        let r = Db::open_with(&path, Options { page_size: size, ..Options::default() });
        assert!(matches!(r, Err(Error::InvalidArgument(ref m)) if m.contains("page size")), "{size}: {r:?}");
    }
    // A valid size other than the file's own is not an error: the file keeps its own.
    let second = Db::open_with(&path, Options { page_size: 8192, ..Options::default() }).unwrap();
    assert_eq!(second.stat().unwrap().page_size, first.stat().unwrap().page_size);
}

#[test]
fn an_import_into_a_read_only_handle_is_refused_whatever_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.obj");
    Db::open(&path).unwrap().close().unwrap();
    let ro = Db::open_with(&path, Options { read_only: true, ..Options::default() }).unwrap();
    for input in ["", "{\"obj_export\":1,\"collection\":\"c\",\"kind\":\"documents\",\"count\":0}\n"] {
        let r = ro.import(input.as_bytes(), ImportOptions::default());
        assert!(
            matches!(r, Err(Error::InvalidArgument(ref m)) if m.contains("read-only")),
            "{input:?}: {r:?}"
        );
    }
}

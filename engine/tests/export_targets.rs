//! An export to a pipe or a character device writes into it, as a shell's
//! redirection would; a file renamed over it would replace the device node
//! or take the pipe's name from its reader (who then waits forever). A
//! block device or a socket is refused.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use obj_engine::{Db, Error};

fn source(dir: &Path) -> Db {
    let db = Db::open(dir.join("src.obj")).unwrap();
    let mut w = db.begin_write().unwrap();
    let mut c = w.collection_mut("c").unwrap();
    for i in 0..200u64 {
        c.insert(&obj_engine::Value::Map(vec![("n".into(), obj_engine::Value::UInt(i))])).unwrap();
    }
    drop(c);
    w.commit().unwrap();
    db
}

/// Makes a special file with the system's tool (`mkfifo`, `mknod`);
/// false when it cannot (`mknod` needs root).
fn make(tool: &str, args: &[&str]) -> bool {
    Command::new(tool).args(args).status().is_ok_and(|s| s.success())
}

#[test]
fn an_export_to_a_fifo_streams_into_it_and_the_fifo_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let db = source(tmp.path());
    let fifo = tmp.path().join("pipe");
    assert!(make("mkfifo", &[fifo.to_str().unwrap()]));
    let link = tmp.path().join("pipe-link");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for target in [&fifo, &link] {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                std::fs::File::open(fifo).unwrap().read_to_string(&mut text).unwrap();
                text
            })
        };
        let report = db.export_to_path(Some("c"), target).unwrap();
        // (Checked before waiting for the reader, which a FIFO replaced
        // by a file would leave waiting for a writer forever.)
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        let text = reader.join().unwrap();
        assert_eq!(report.documents, 200);
        assert_eq!(text.lines().count(), 201, "a header line and 200 documents");
    }
    // Nothing was left beside it.
    let mut names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["pipe", "pipe-link", "src.obj", "src.obj-shm", "src.obj-wal"]);
}

#[test]
fn an_export_to_a_character_device_writes_into_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = source(tmp.path());
    let dev = tmp.path().join("null");
    // A device node of /dev/null's numbers in the scratch directory, so
    // that a broken export could only replace that one.
    if !make("mknod", &[dev.to_str().unwrap(), "c", "1", "3"]) {
        eprintln!("skipped: mknod needs root");
        return;
    }
    assert_eq!(db.export_to_path(None, &dev).unwrap().documents, 200);
    assert!(std::fs::metadata(&dev).unwrap().file_type().is_char_device());
    // /dev/full's numbers: every write fails, and the error names the device.
    let full = tmp.path().join("full");
    assert!(make("mknod", &[full.to_str().unwrap(), "c", "1", "7"]));
    let e = db.export_to_path(None, &full).unwrap_err();
    assert!(
        matches!(&e, Error::Io { context, .. } if context.ends_with(&*full.display().to_string())),
        "{e}"
    );
    assert!(std::fs::metadata(&full).unwrap().file_type().is_char_device());
}

#[test]
fn an_export_to_a_socket_or_a_block_device_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let db = source(tmp.path());
    let sock = tmp.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let e = db.export_to_path(None, &sock).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("is a socket")), "{e}");
    assert!(std::fs::metadata(&sock).unwrap().file_type().is_socket());
    let block = tmp.path().join("block");
    // (a loop device's numbers; nothing is opened)
    if make("mknod", &[block.to_str().unwrap(), "b", "7", "200"]) {
        let e = db.export_to_path(None, &block).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("is a block device")), "{e}");
        assert!(std::fs::metadata(&block).unwrap().file_type().is_block_device());
    } else {
        eprintln!("block device part skipped: mknod needs root");
    }
}

#[test]
fn an_export_to_a_descriptor_link_appends_to_what_it_names() {
    // `db.export("/dev/stdout")` with stdout redirected to a log (`>>`):
    // the log keeps its lines (a file renamed over it would drop them).
    let tmp = tempfile::tempdir().unwrap();
    let db = source(tmp.path());
    let log_path = tmp.path().join("log");
    let mut log = std::fs::File::options().create(true).append(true).open(&log_path).unwrap();
    log.write_all(b"PRECIOUS\n").unwrap();
    let fd = log.as_raw_fd();
    for link in [format!("/proc/self/fd/{fd}"), format!("/dev/fd/{fd}")] {
        assert_eq!(db.export_to_path(Some("c"), &link).unwrap().documents, 200);
    }
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.starts_with("PRECIOUS\n"), "{}", &text[..40]);
    assert_eq!(text.lines().count(), 1 + 2 * 201);
    drop(log);
}

#[test]
fn a_missing_collection_is_refused_before_a_fifo_is_opened() {
    // No reader ever comes: an open of the FIFO would wait forever.
    let tmp = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(source(tmp.path()));
    let fifo = tmp.path().join("pipe");
    assert!(make("mkfifo", &[fifo.to_str().unwrap()]));
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = {
        let db = db.clone();
        std::thread::spawn(move || tx.send(db.export_to_path(Some("nosuch"), &fifo).map(|r| r.documents)))
    };
    let got = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the export waited for a reader");
    assert!(matches!(got, Err(Error::NotFound(_))), "{got:?}");
    worker.join().unwrap().unwrap();
}

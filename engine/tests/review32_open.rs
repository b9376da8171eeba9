//! Opening a file while another thread closes its last handle on it
//! (session 32's C API review): the open held the registry of open engines
//! while it waited for the closing engine's pager to let go of the file,
//! and the closing thread waited for the registry before letting go, so
//! the open failed with `Busy` ("open in another process under another
//! name") after its whole busy timeout, about once a second with two
//! threads opening and closing in a loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use obj_engine::{Db, Options, ReadableTxn};

#[test]
fn threads_opening_and_closing_one_file_are_never_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("race.obj"));
    let timeout = Duration::from_millis(1500);
    let threads: Vec<_> = (0..2u8)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let (mut opens, mut slowest) = (0u32, Duration::ZERO);
                let end = Instant::now() + Duration::from_secs(4);
                while Instant::now() < end {
                    let began = Instant::now();
                    let db = Db::open_with(&*path, Options { busy_timeout: timeout, ..Options::default() })
                        .unwrap_or_else(|e| panic!("thread {t}, open {opens}: {e}"));
                    slowest = slowest.max(began.elapsed());
                    let mut w = db.begin_write().unwrap();
                    let tree = match w.find_tree("t").unwrap() {
                        Some(tree) => tree,
                        None => w.create_tree("t").unwrap(),
                    };
                    w.insert(&tree, &[t], &opens.to_be_bytes()).unwrap();
                    w.commit().unwrap();
                    if opens % 2 == 0 {
                        db.close().unwrap();
                    } else {
                        drop(db);
                    }
                    opens += 1;
                }
                (opens, slowest)
            })
        })
        .collect();
    for t in threads {
        let (opens, slowest) = t.join().unwrap();
        assert!(opens > 10, "{opens} opens");
        assert!(slowest < timeout, "an open took {slowest:?}");
    }
}

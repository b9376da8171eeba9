//! A backup or compacted copy that fails to write says which file.

use std::sync::Arc;

use obj_engine::storage::sim::{Fault, FaultKind, FaultOp, SimVfs};
use obj_engine::{Db, Options};

#[test]
fn a_failed_copy_names_the_file_it_was_writing() {
    let sim = SimVfs::new();
    let db =
        Db::open_with("db.obj", Options { vfs: Some(Arc::new(sim.clone())), ..Options::default() }).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    for i in 0..200u32 {
        w.insert(&t, &i.to_be_bytes(), &[7u8; 300]).unwrap();
    }
    w.commit().unwrap();
    for (what, copy) in [("backup", "bak.obj"), ("compact_to", "small.obj")] {
        sim.set_fault(Fault { op: FaultOp::Write, after: 0, kind: FaultKind::Enospc, persistent: true });
        let err = if what == "backup" { db.backup(copy).err() } else { db.compact_to(copy).err() };
        sim.clear_faults();
        let message = err.unwrap_or_else(|| panic!("{what} wrote on a full disk")).to_string();
        assert!(message.contains(copy), "{what}: {message:?} does not name {copy}");
        assert!(
            !sim.file_names().iter().any(|n| n.to_string_lossy().starts_with(copy)),
            "{what} left a file"
        );
    }
}

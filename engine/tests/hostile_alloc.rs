//! A value length read from a damaged (checksum-valid) page must not drive
//! a huge allocation before the overflow chain is found to be short.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use obj_engine::storage::sim::SimVfs;
use obj_engine::{Db, Options, ReadableTxn};

/// The system allocator, noting the largest block asked for.
struct Largest;
static LARGEST: AtomicUsize = AtomicUsize::new(0);
// SAFETY: every call is passed on unchanged to the system allocator, which
// upholds GlobalAlloc's contract; the counter touches no allocation.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from System.alloc/realloc above with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, Ordering::Relaxed);
        // SAFETY: as dealloc; `new` is the caller's, valid per the contract.
        unsafe { System.realloc(p, l, new) }
    }
}
#[global_allocator]
static A: Largest = Largest;

#[test]
fn overflow_length_of_4_gib_does_not_reserve_a_gib() {
    const DB: &str = "/h/app.obj";
    let vfs = SimVfs::new();
    let options = || Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() };
    let db = Db::open_with(DB, options()).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"bigkey!!", &[7; 5000]).unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    let mut bytes = vfs.read_file(DB).unwrap();
    // Overflow cell: flags 1, key length, value length (u64), first page, key.
    let at = bytes.windows(8).position(|w| w == b"bigkey!!").expect("leaf cell");
    assert_eq!(bytes[at - 15], 1, "an overflow cell");
    assert_eq!(u64::from_le_bytes(bytes[at - 12..at - 4].try_into().unwrap()), 5000);
    bytes[at - 12..at - 4].copy_from_slice(&(u32::MAX as u64).to_le_bytes());
    let pgno = at / 4096;
    obj_engine::storage::page::seal_page(pgno as u32, &mut bytes[pgno * 4096..(pgno + 1) * 4096]);
    vfs.write_file(DB, &bytes);

    let db = Db::open_with(DB, options()).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    LARGEST.store(0, Ordering::Relaxed);
    let got = r.get(&t, b"bigkey!!");
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(got.as_ref().is_err_and(|e| e.is_corruption()), "{got:?}");
    assert!(largest < 64 << 20, "a read of a damaged cell allocated {largest} bytes at once");
}

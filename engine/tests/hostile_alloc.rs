//! A value length read from a damaged (checksum-valid) page must not drive
//! a huge allocation before the overflow chain is found to be short or to
//! loop. A test binary of its own: it counts allocations with a global
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

/// Reads back a 5,000-byte overflow value after its cell's length was set
/// to `claimed` (and, with `loop_back`, the chain's second page pointed
/// back at the first), every page resealed: it must be `Corruption`, and
/// the largest single allocation the read made is returned.
fn read_damaged(claimed: u64, loop_back: bool) -> usize {
    // (One read at a time: the counter is the whole process's.)
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    const DB: &str = "/h/app.obj";
    const PS: usize = 4096;
    let vfs = SimVfs::new();
    let options = || Options { vfs: Some(Arc::new(vfs.clone())), ..Options::default() };
    let db = Db::open_with(DB, options()).unwrap();
    let mut w = db.begin_write().unwrap();
    let t = w.create_tree("t").unwrap();
    w.insert(&t, b"bigkey!!", &[7; 5000]).unwrap();
    w.commit().unwrap();
    db.close().unwrap();
    let mut bytes = vfs.read_file(DB).unwrap();
    let reseal = |bytes: &mut Vec<u8>, pgno: usize| {
        obj_engine::storage::page::seal_page(pgno as u32, &mut bytes[pgno * PS..(pgno + 1) * PS]);
    };
    // Overflow cell: flags 1, key length, value length (u64), first page, key.
    let at = bytes.windows(8).position(|w| w == b"bigkey!!").expect("leaf cell");
    assert_eq!(bytes[at - 15], 1, "an overflow cell");
    assert_eq!(u64::from_le_bytes(bytes[at - 12..at - 4].try_into().unwrap()), 5000);
    bytes[at - 12..at - 4].copy_from_slice(&claimed.to_le_bytes());
    reseal(&mut bytes, at / PS);
    if loop_back {
        // An overflow page: kind, then its next page at bytes 4..8.
        let first = u32::from_le_bytes(bytes[at - 4..at].try_into().unwrap()) as usize;
        let second = u32::from_le_bytes(bytes[first * PS + 4..first * PS + 8].try_into().unwrap()) as usize;
        assert_ne!(second, 0, "a chain of two pages");
        bytes[second * PS + 4..second * PS + 8].copy_from_slice(&(first as u32).to_le_bytes());
        reseal(&mut bytes, second);
    }
    vfs.write_file(DB, &bytes);

    let db = Db::open_with(DB, options()).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_tree("t").unwrap();
    LARGEST.store(0, Ordering::Relaxed);
    let got = r.get(&t, b"bigkey!!");
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(got.as_ref().is_err_and(|e| e.is_corruption()), "{got:?}");
    largest
}

#[test]
fn overflow_length_of_4_gib_does_not_reserve_a_gib() {
    let largest = read_damaged(u32::MAX as u64, false);
    assert!(largest < 64 << 20, "a read of a damaged cell allocated {largest} bytes at once");
}

#[test]
fn a_looping_overflow_chain_is_found_before_its_claimed_length_is_read() {
    // (found by the review: the read grew to the 200 MiB claimed)
    let largest = read_damaged(200 << 20, true);
    assert!(largest < 64 << 20, "a read of a looping chain allocated {largest} bytes at once");
}

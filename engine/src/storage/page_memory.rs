//! The memory behind shared page images ([`PageRef`]).
//!
//! A warm lookup in a large cache touches a page or two per tree level,
//! each in its own allocation. With the allocator's 4 KiB pages, a cache of
//! a few hundred MiB spans far more pages than the TLB maps, so each touch
//! pays a page-table walk (dearer still under a hypervisor) on top of the
//! memory read. Buffers of a page size (4 to 64 KiB) are therefore carved
//! from 2 MiB-aligned regions that ask the kernel for huge pages
//! (`MADV_HUGEPAGE`, granted where transparent huge pages are set to
//! `madvise` or `always`): one TLB entry then covers 500 cached pages.
//!
//! A buffer starts with a 64-byte header (the reference count and where
//! the buffer came from) and is followed by the bytes, so the first touch
//! of a page (its count, on clone) also brings in the node header, as one
//! `Arc` allocation did. Each page size has its pool of regions, shared by
//! every database in the process. A freed buffer goes back to its
//! region's free list; new buffers come from the lowest region with room,
//! so that the others empty out, and a region that empties is unmapped
//! unless it is the pool's only empty one. Any other size, and any buffer
//! wanted when no region can be mapped, comes from the global allocator.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes before a buffer's content: its header, padded to a cache line so
/// that the content starts on one.
const HEADER: usize = 64;
/// Alignment of every buffer (and so of its content).
const ALIGN: usize = 64;
/// The regions buffers of a page size are carved from.
const REGION: usize = 2 << 20;

/// Where a buffer's memory came from, so that its last reference knows
/// where to give it back.
#[derive(Clone, Copy)]
enum Origin {
    /// The global allocator, with this layout.
    Heap(Layout),
    /// A slot of the region pool of this size class.
    Pool(usize),
}

#[repr(C)]
struct Header {
    refs: AtomicUsize,
    origin: Origin,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER && std::mem::align_of::<Header>() <= ALIGN);

/// A shared, immutable view of a page as some snapshot sees it: cheap to
/// clone (one count), freed with its last clone. [`PageRef::make_mut`]
/// gives write access to a buffer no one else holds, copying it first
/// otherwise (as `Arc::make_mut` does).
pub struct PageRef {
    header: NonNull<Header>,
    len: usize,
}

// SAFETY: a PageRef's bytes are only written through `make_mut` while it is
// the buffer's one reference (`&mut self`, count 1), and its count is
// atomic; sharing or sending one is as safe as for `Arc<[u8]>`.
unsafe impl Send for PageRef {}
// SAFETY: as above: `&PageRef` gives only reads of bytes no one writes.
unsafe impl Sync for PageRef {}

impl PageRef {
    /// A buffer of `len` bytes whose content `fill` writes (through a
    /// pointer to its `len` bytes, which it must all initialize).
    fn new_with(len: usize, fill: impl FnOnce(*mut u8)) -> PageRef {
        let pooled = pool_class(len).and_then(|class| Some((POOLS[class].take()?, Origin::Pool(class))));
        let (raw, origin) = match pooled {
            Some(found) => found,
            None => {
                let layout = Layout::from_size_align(HEADER + len, ALIGN).expect("a page fits a layout");
                // SAFETY: the layout's size is at least HEADER, never zero.
                let raw = unsafe { alloc(layout) };
                let Some(raw) = NonNull::new(raw) else { handle_alloc_error(layout) };
                (raw, Origin::Heap(layout))
            }
        };
        let header = raw.cast::<Header>();
        // SAFETY: `raw` is ALIGN-aligned and holds HEADER + len bytes that
        // nothing else references (fresh, or a slot taken off a free list).
        unsafe {
            header.as_ptr().write(Header { refs: AtomicUsize::new(1), origin });
            fill(raw.as_ptr().add(HEADER));
        }
        PageRef { header, len }
    }

    /// A zero-filled page of `len` bytes.
    pub fn zeroed(len: usize) -> PageRef {
        // SAFETY: `to` points at `len` writable bytes (see `new_with`).
        PageRef::new_with(len, |to| unsafe { std::ptr::write_bytes(to, 0, len) })
    }

    /// A page holding a copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> PageRef {
        // SAFETY: `to` points at `bytes.len()` writable bytes (see
        // `new_with`), in a buffer that cannot overlap `bytes`, which a
        // live reference holds.
        PageRef::new_with(bytes.len(), |to| unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), to, bytes.len())
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: the header lives as long as any reference, and this is one.
        unsafe { self.header.as_ref() }
    }

    /// The content, writable: `self` must be the only reference.
    fn unique_bytes(&mut self) -> &mut [u8] {
        debug_assert_eq!(self.header().refs.load(Ordering::Relaxed), 1);
        // SAFETY: the content follows the header, `len` bytes long, and no
        // other PageRef shares it (count 1, and `&mut self`), so no reader
        // can see the write.
        unsafe { std::slice::from_raw_parts_mut(self.header.as_ptr().cast::<u8>().add(HEADER), self.len) }
    }

    /// Write access to the bytes, copying them into a buffer of its own
    /// first when another reference shares them.
    pub fn make_mut(this: &mut PageRef) -> &mut [u8] {
        // Acquire pairs with the Release of other references' drops, so
        // their reads are done before this writes.
        if this.header().refs.load(Ordering::Acquire) != 1 {
            *this = PageRef::copy_of(this);
        }
        this.unique_bytes()
    }
}

impl Deref for PageRef {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the content follows the header, `len` bytes long, and is
        // written only while this is its one reference (`make_mut`).
        unsafe { std::slice::from_raw_parts(self.header.as_ptr().cast::<u8>().add(HEADER), self.len) }
    }
}

impl Clone for PageRef {
    fn clone(&self) -> PageRef {
        // Relaxed as in `Arc::clone`: the new reference comes from an
        // existing one, which keeps the buffer alive meanwhile.
        let old = self.header().refs.fetch_add(1, Ordering::Relaxed);
        // As `Arc::clone`: a count run up by forgotten clones must not wrap
        // to a free of a buffer still referenced.
        if old > isize::MAX as usize {
            std::process::abort();
        }
        PageRef { header: self.header, len: self.len }
    }
}

impl Drop for PageRef {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other reference's reads happen before the buffer is reused.
        fence(Ordering::Acquire);
        match self.header().origin {
            Origin::Heap(layout) => {
                // SAFETY: allocated in `new_with` with this layout, and
                // this was its last reference.
                unsafe { dealloc(self.header.as_ptr().cast(), layout) }
            }
            Origin::Pool(class) => POOLS[class].give_back(self.header.cast()),
        }
    }
}

impl PartialEq for PageRef {
    fn eq(&self, other: &PageRef) -> bool {
        **self == **other
    }
}

impl Eq for PageRef {}

impl std::fmt::Debug for PageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageRef({} bytes)", self.len)
    }
}

/// Page sizes with a pool: 4, 8, 16, 32 and 64 KiB.
const POOL_SIZES: usize = 5;
const SMALLEST_POOLED: usize = 4096;

/// Whether page-sized buffers come from the pools: yes unless the
/// environment sets `OBJ_PAGE_POOLS=off` when the first is made. Memory
/// checkers such as valgrind see each heap buffer's life, but a pooled
/// slot stays mapped when freed, so a read after its last release would
/// go unseen; with the pools off, every buffer is a heap allocation again.
fn pools_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| pools_wanted(std::env::var_os("OBJ_PAGE_POOLS").as_deref()))
}

/// What a value of `OBJ_PAGE_POOLS` asks for: the pools, unless `off`.
fn pools_wanted(setting: Option<&std::ffi::OsStr>) -> bool {
    setting.is_none_or(|v| v != "off")
}

/// The pool serving buffers of `len` bytes, if any.
fn pool_class(len: usize) -> Option<usize> {
    if !cfg!(target_os = "linux") || !len.is_power_of_two() || len < SMALLEST_POOLED || !pools_on() {
        return None;
    }
    let class = (len / SMALLEST_POOLED).trailing_zeros() as usize;
    (class < POOL_SIZES).then_some(class)
}

/// The regions of one buffer size and their free slots.
struct Pool {
    class: usize,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Each region by its (REGION-aligned) address.
    regions: BTreeMap<usize, Region>,
    /// The regions with a free slot. Slots are taken from the lowest, so
    /// that the others empty out and can be unmapped.
    with_room: BTreeSet<usize>,
    /// Regions with no slot in use. One is kept mapped so that a page
    /// taken and freed over and over does not map and unmap a region each
    /// time; a second is unmapped as soon as it empties.
    empty: usize,
}

struct Region {
    /// Free slots by index, the next to hand out last.
    free: Vec<u16>,
    /// Slots in use.
    live: usize,
}

static POOLS: [Pool; POOL_SIZES] = [Pool::new(0), Pool::new(1), Pool::new(2), Pool::new(3), Pool::new(4)];

impl Pool {
    const fn new(class: usize) -> Pool {
        Pool {
            class,
            state: Mutex::new(PoolState { regions: BTreeMap::new(), with_room: BTreeSet::new(), empty: 0 }),
        }
    }

    /// Bytes from one slot to the next: header and content.
    fn stride(&self) -> usize {
        HEADER + (SMALLEST_POOLED << self.class)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free slot, mapping a new region when none is left; `None` when
    /// no region can be mapped.
    fn take(&self) -> Option<NonNull<u8>> {
        // Before any pool lock is first taken (`give_back` follows a take).
        install_fork_handlers();
        let mut state = self.lock();
        let base = match state.with_room.first() {
            Some(&base) => base,
            None => {
                let base = map_region()?;
                let slots = (REGION / self.stride()) as u16;
                state.regions.insert(base, Region { free: (0..slots).rev().collect(), live: 0 });
                state.with_room.insert(base);
                state.empty += 1;
                base
            }
        };
        let region = state.regions.get_mut(&base)?;
        let slot = region.free.pop()?;
        region.live += 1;
        let (now_full, was_empty) = (region.free.is_empty(), region.live == 1);
        if now_full {
            state.with_room.remove(&base);
        }
        if was_empty {
            state.empty -= 1;
        }
        NonNull::new((base + usize::from(slot) * self.stride()) as *mut u8)
    }

    /// Returns a slot that `take` handed out, unmapping its region when
    /// that leaves a second region empty.
    fn give_back(&self, slot: NonNull<u8>) {
        let addr = slot.as_ptr() as usize;
        let base = addr & !(REGION - 1);
        let index = ((addr - base) / self.stride()) as u16;
        let mut state = self.lock();
        let Some(region) = state.regions.get_mut(&base) else {
            debug_assert!(false, "a pooled page outside every region");
            return;
        };
        region.free.push(index);
        region.live -= 1;
        let now_empty = region.live == 0;
        state.with_room.insert(base);
        if !now_empty {
            return;
        }
        state.empty += 1;
        if state.empty > 1 {
            state.regions.remove(&base);
            state.with_room.remove(&base);
            state.empty -= 1;
            drop(state);
            unmap_region(base);
        }
    }
}

/// Makes fork() take every pool's lock first and release it in both
/// processes after, as the allocator does its own: a child inherits only
/// the forking thread, so a pool lock another thread held at the fork
/// would stay held in the child, and its first page would wait for good.
fn install_fork_handlers() {
    #[cfg(target_os = "linux")]
    {
        use std::cell::RefCell;
        use std::sync::{MutexGuard, Once};
        thread_local! {
            static HELD: RefCell<Vec<MutexGuard<'static, PoolState>>> = const { RefCell::new(Vec::new()) };
        }
        extern "C" fn prepare() {
            // Always in the same order; no thread takes a second pool lock
            // while it holds one, nor forks while it holds one.
            HELD.with(|held| held.borrow_mut().extend(POOLS.iter().map(Pool::lock)));
        }
        extern "C" fn release() {
            HELD.with(|held| held.borrow_mut().clear());
        }
        static ONCE: Once = Once::new();
        // SAFETY: registers three functions that only lock and unlock
        // the pools' mutexes, in the thread that forks.
        ONCE.call_once(|| unsafe {
            libc::pthread_atfork(Some(prepare), Some(release), Some(release));
        });
    }
}

/// Maps a REGION-aligned region of REGION bytes and asks for huge pages.
#[cfg(target_os = "linux")]
fn map_region() -> Option<usize> {
    // Map twice the size, then trim to an aligned region, so that the
    // whole region can be one huge page.
    let span = 2 * REGION;
    // SAFETY: an anonymous private mapping at an address the kernel picks;
    // it touches no existing memory.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = (start + REGION - 1) & !(REGION - 1);
    let (head, tail) = (aligned - start, start + span - (aligned + REGION));
    // SAFETY: both trimmed ranges lie inside the mapping just made and
    // outside the region kept; nothing references them. A failure to unmap
    // only leaves address space mapped, so the results are not needed; the
    // huge-page request is a hint (without it the region works as well,
    // with more TLB entries).
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + REGION) as *mut libc::c_void, tail);
        }
        libc::madvise(aligned as *mut libc::c_void, REGION, libc::MADV_HUGEPAGE);
    }
    Some(aligned)
}

#[cfg(not(target_os = "linux"))]
fn map_region() -> Option<usize> {
    None
}

/// Unmaps a region `map_region` made, none of whose slots is in use.
fn unmap_region(base: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: the region was mapped by `map_region`, is no longer listed
    // in its pool, and no PageRef points into it (its live count was 0).
    unsafe {
        libc::munmap(base as *mut libc::c_void, REGION);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = base;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_and_heap_pages_read_back_what_was_written() {
        for len in [0, 16, 4095, 4096, 8192, 65536, 131072] {
            let mut p = PageRef::zeroed(len);
            assert!(p.iter().all(|&b| b == 0), "{len}");
            PageRef::make_mut(&mut p).iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
            let q = p.clone();
            assert_eq!(q.len(), len);
            assert!(q.iter().enumerate().all(|(i, &b)| b == i as u8), "{len}");
        }
    }

    #[test]
    fn only_off_turns_the_pools_off() {
        assert!(pools_wanted(None));
        assert!(pools_wanted(Some("on".as_ref())));
        assert!(pools_wanted(Some("".as_ref())));
        assert!(!pools_wanted(Some("off".as_ref())));
    }

    #[test]
    fn make_mut_copies_a_shared_page_and_writes_a_unique_one_in_place() {
        let mut a = PageRef::copy_of(&[7u8; 4096]);
        let b = a.clone();
        PageRef::make_mut(&mut a)[0] = 1;
        assert_eq!((a[0], b[0]), (1, 7), "the other reference keeps its bytes");
        let before = a.as_ptr();
        PageRef::make_mut(&mut a)[1] = 2;
        assert_eq!(a.as_ptr(), before, "a unique page is written in place");
        assert_eq!(a.header().refs.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_reused_slot_starts_zeroed() {
        let mut a = PageRef::zeroed(8192);
        PageRef::make_mut(&mut a).fill(0xAB);
        drop(a);
        // Taken from the same list, most likely the same slot.
        for _ in 0..4 {
            assert!(PageRef::zeroed(8192).iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn pooled_pages_sit_in_huge_page_sized_regions() {
        let pages: Vec<PageRef> = (0..1200).map(|i| PageRef::copy_of(&[i as u8; 4096])).collect();
        for (i, p) in pages.iter().enumerate() {
            assert!(p.iter().all(|&b| b == i as u8));
            assert_eq!(p.as_ptr() as usize % ALIGN, 0);
        }
        // With `OBJ_PAGE_POOLS=off` (a run under a memory checker) the
        // pages are heap buffers, packed or not.
        if cfg!(target_os = "linux") && pools_on() {
            let regions: std::collections::BTreeSet<usize> =
                pages.iter().map(|p| p.as_ptr() as usize & !((2 << 20) - 1)).collect();
            assert!(
                regions.len() <= 1200 / (2 * 1024 * 1024 / (4096 + HEADER)) + 3,
                "{} regions",
                regions.len()
            );
        }
    }

    /// Checks what the pool's bookkeeping says of itself.
    fn consistent(pool: &Pool) -> (usize, usize) {
        let state = pool.lock();
        let slots = REGION / pool.stride();
        let empty = state.regions.values().filter(|r| r.live == 0).count();
        assert_eq!(empty, state.empty);
        assert!(empty <= 1, "{empty} empty regions kept");
        for (base, r) in &state.regions {
            assert_eq!(r.free.len() + r.live, slots);
            assert_eq!(state.with_room.contains(base), !r.free.is_empty());
        }
        (state.regions.len(), empty)
    }

    #[test]
    fn a_pool_packs_slots_low_and_unmaps_regions_that_empty() {
        let pool = Pool::new(0);
        let per_region = REGION / pool.stride();
        let mut taken: Vec<NonNull<u8>> = (0..3 * per_region + 5).map_while(|_| pool.take()).collect();
        if !cfg!(target_os = "linux") {
            assert!(taken.is_empty());
            return;
        }
        assert_eq!(taken.len(), 3 * per_region + 5);
        assert_eq!(consistent(&pool), (4, 0));
        let distinct: BTreeSet<usize> = taken.iter().map(|p| p.as_ptr() as usize).collect();
        assert_eq!(distinct.len(), taken.len(), "no slot handed out twice");
        // Free everything but one slot of the last region: three regions
        // empty, two of them are unmapped.
        let last = taken.pop().unwrap();
        for p in taken.drain(..) {
            pool.give_back(p);
        }
        assert_eq!(consistent(&pool), (2, 1));
        // The next slot comes from the lowest region with room.
        let next = pool.take().unwrap();
        let low = *pool.lock().regions.keys().next().unwrap();
        assert_eq!(next.as_ptr() as usize & !(REGION - 1), low);
        pool.give_back(next);
        pool.give_back(last);
        assert_eq!(consistent(&pool), (1, 1));
        let remaining = *pool.lock().regions.keys().next().unwrap();
        unmap_region(remaining);
    }

    #[test]
    fn threads_share_and_drop_pages_without_losing_or_doubling_any() {
        let shared: Vec<PageRef> = (0..64).map(|i| PageRef::copy_of(&[i as u8; 4096])).collect();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let shared = &shared;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for round in 0..2000usize {
                        let p = shared[round % 64].clone();
                        assert!(p.iter().all(|&b| b == (round % 64) as u8));
                        let mut own = PageRef::zeroed(4096);
                        PageRef::make_mut(&mut own).fill(t);
                        mine.push(own);
                        if mine.len() > 50 {
                            mine.drain(..25);
                        }
                        assert!(mine.iter().all(|p| p.iter().all(|&b| b == t)));
                    }
                });
            }
        });
        for (i, p) in shared.iter().enumerate() {
            assert_eq!(p.header().refs.load(Ordering::Relaxed), 1);
            assert!(p.iter().all(|&b| b == i as u8));
        }
        consistent(&POOLS[0]);
    }
}

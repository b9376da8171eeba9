//! A filtered full scan of a large collection shared with a helper thread.
//!
//! The ids are cut into blocks of about [`BLOCK_DOCS`] documents. The
//! caller's thread scans the even blocks, a helper thread the odd ones at
//! the same time, testing each document against the filter and sending
//! copies of those that match. The cursor takes block 0 from its own scan,
//! block 1 from the helper, block 2 from its own scan, and so on, so
//! results still come in id order, and while the caller works through a
//! block the helper works through the next one.
//!
//! Memory stays bounded: the helper sends its matches in chunks of about
//! [`CHUNK_BYTES`] and waits while [`MAX_IN_FLIGHT`] bytes of them are
//! sent and not yet taken; a matching document larger than [`BIG_DOC`] is
//! sent as its id alone, and the cursor reads it itself. At most one
//! helper per spare CPU runs in the process ([`helper_slots`]); a cursor
//! that gets none scans every block itself. The helper reads through its
//! own reference to the read transaction's snapshot, so it sees exactly
//! what the transaction sees, and stops when the cursor is dropped (which
//! waits for it) or the transaction ends (a leaked cursor's helper then
//! lets the snapshot go). In a child process after fork() the helper does
//! not exist, and the cursor answers with the handle's fork error instead
//! of waiting.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::btree::Range;
use crate::doc::codec::{MemNameDict, PathStep};
use crate::doc::collection::id_key;
use crate::error::{Error, PageNo, Result};
use crate::query::exec::{matching_id, Check};
use crate::storage::pager::{Pager, Snapshot};

/// Documents a block holds when ids are dense: enough that a block's
/// scan (about a millisecond) dwarfs the hand-over, few enough that the
/// two threads finish close together.
pub(crate) const BLOCK_DOCS: u64 = 4096;
/// Bytes of matching documents the helper gathers before sending them.
const CHUNK_BYTES: usize = 128 << 10;
/// Most bytes of chunks sent and not yet taken by the cursor (one chunk
/// more may always go, so a large document still passes).
const MAX_IN_FLIGHT: usize = 1 << 20;
/// A matching document larger than this is sent as its id alone: the
/// cursor reads it itself, as a scan of one thread holds it.
const BIG_DOC: usize = 64 << 10;
/// Messages the channel holds (chunks and block ends).
const CHANNEL_MSGS: usize = 16;
/// Longest wait between looks at a full channel.
const MAX_WAIT: Duration = Duration::from_millis(1);

/// Helper threads running in this process.
static LIVE_HELPERS: AtomicUsize = AtomicUsize::new(0);

/// How many helpers may run at once: one per CPU beyond the first, so
/// that cursors on many threads do not crowd the CPUs with helpers.
fn helper_slots() -> usize {
    static SLOTS: OnceLock<usize> = OnceLock::new();
    *SLOTS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1))
}

/// A helper's place in [`LIVE_HELPERS`], given back when dropped.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        let slots = helper_slots();
        LIVE_HELPERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < slots).then_some(n + 1))
            .ok()?;
        Some(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        LIVE_HELPERS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How the ids are cut: block `b` holds ids from `first + b * width` up
/// to the next block's first; the last block has no upper end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Blocks {
    pub(crate) first: u64,
    pub(crate) width: u64,
    pub(crate) count: u64,
}

impl Blocks {
    /// Blocks over the ids `first..=last` of `docs` documents; `None`
    /// when there would be fewer than two.
    pub(crate) fn new(first: u64, last: u64, docs: u64) -> Option<Blocks> {
        let span = last.checked_sub(first)?.checked_add(1)?;
        let count = (docs / BLOCK_DOCS).min(span);
        if count < 2 {
            return None;
        }
        Some(Blocks { first, width: span.div_ceil(count), count })
    }

    /// The key bounds of block `b`.
    pub(crate) fn bounds(&self, b: u64) -> (Bound<[u8; 8]>, Bound<[u8; 8]>) {
        // Saturating: near the top of the id space a block may start past
        // the last id (and be empty); blocks still cover every id in order.
        let start = |b: u64| id_key(self.first.saturating_add(b.saturating_mul(self.width)));
        let lo = if b == 0 { Bound::Unbounded } else { Bound::Included(start(b)) };
        let hi = if b + 1 >= self.count { Bound::Unbounded } else { Bound::Excluded(start(b + 1)) };
        (lo, hi)
    }

    /// Whether the helper scans block `b`.
    pub(crate) fn is_helpers(b: u64) -> bool {
        b % 2 == 1
    }
}

/// Matching documents: their bytes end to end, and for each its id and
/// span in `bytes` (`None`: a large document, sent as its id alone).
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    docs: Vec<(u64, Option<(usize, usize)>)>,
}

enum Msg {
    Docs(Chunk),
    /// The block's matches have all been sent.
    BlockDone,
    Failed(Error),
}

/// What the filter reads, owned so that the helper can take it along.
pub(crate) struct Filtering {
    pub(crate) check: Check,
    pub(crate) steps: Vec<PathStep>,
    pub(crate) dict: Arc<MemNameDict>,
}

/// A match the helper sent: its id, and its stored bytes (`None` for a
/// large document, which the cursor reads itself).
pub(crate) type Match<'a> = (u64, Option<&'a [u8]>);

/// The helper's side of a shared scan, as the cursor sees it.
pub(crate) struct Helper {
    rx: Option<Receiver<Msg>>,
    chunk: Chunk,
    /// Next document of `chunk` to hand out.
    pos: usize,
    failed: bool,
    stop: Arc<AtomicBool>,
    /// Bytes of chunks sent and not yet taken.
    in_flight: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
    /// For the fork check; weak, so that a leaked cursor holds nothing of
    /// the database.
    pager: Weak<Pager>,
}

impl Helper {
    /// Starts the helper on the odd blocks of the documents tree at
    /// `root`; `None` when every helper slot is taken or no thread can be
    /// started (the cursor then scans every block itself).
    pub(crate) fn start(
        snap: Arc<Snapshot>,
        root: PageNo,
        blocks: Blocks,
        filtering: Filtering,
    ) -> Option<Helper> {
        let slot = Slot::take()?;
        let (tx, rx) = sync_channel(CHANNEL_MSGS);
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let pager = Arc::downgrade(snap.pager());
        let thread = {
            let (stop, in_flight) = (Arc::clone(&stop), Arc::clone(&in_flight));
            std::thread::Builder::new()
                .name("obj-scan".into())
                .spawn(move || {
                    let _slot = slot;
                    let out = Out { tx, stop: &stop, in_flight: &in_flight, snap: &snap };
                    scan(&snap, root, blocks, &filtering, &out);
                })
                .ok()?
        };
        Some(Helper {
            rx: Some(rx),
            chunk: Chunk::default(),
            pos: 0,
            failed: false,
            stop,
            in_flight,
            thread: Some(thread),
            pager,
        })
    }

    /// The next matching document of the helper's current block, `(id,
    /// stored bytes)`, the bytes `None` for a large document the caller
    /// reads itself; `None` at the block's end (the next call goes on with
    /// the helper's next block).
    pub(crate) fn next_in_block(&mut self) -> Result<Option<Match<'_>>> {
        while self.pos == self.chunk.docs.len() {
            match self.receive()? {
                Msg::Docs(chunk) => {
                    self.in_flight.fetch_sub(chunk.bytes.len(), Ordering::AcqRel);
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Msg::BlockDone => return Ok(None),
                Msg::Failed(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        let (id, span) = self.chunk.docs[self.pos];
        self.pos += 1;
        Ok(Some((id, span.map(|(start, end)| &self.chunk.bytes[start..end]))))
    }

    fn forked(&self) -> bool {
        self.pager.upgrade().is_some_and(|p| p.forked())
    }

    fn receive(&mut self) -> Result<Msg> {
        let lost = || Error::corruption(None, "the scan's helper thread ended before its blocks");
        if self.failed {
            return Err(lost());
        }
        let Some(rx) = &self.rx else { return Err(lost()) };
        let got = match rx.try_recv() {
            Ok(msg) => Ok(msg),
            Err(TryRecvError::Empty) => {
                // After fork() the helper is not in this process: waiting
                // for it would never end.
                if let Some(pager) = self.pager.upgrade() {
                    pager.check_process()?;
                }
                rx.recv().map_err(|_| ())
            }
            Err(TryRecvError::Disconnected) => Err(()),
        };
        got.or_else(|()| {
            // The helper sends every block it owes, or Failed, before it
            // ends (unless the cursor or its transaction is gone): a channel
            // closed early means it panicked, and the panic goes on here, as
            // it would have on a scan without a helper.
            self.failed = true;
            match self.thread.take().map(JoinHandle::join) {
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                _ => Err(lost()),
            }
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the channel ends a helper's wait to send.
        self.rx = None;
        if let Some(thread) = self.thread.take() {
            if self.forked() {
                // The thread is the parent's: there is nothing to join here.
                std::mem::forget(thread);
            } else {
                let _ = thread.join();
            }
        }
    }
}

/// Where the helper's messages go, and why it would stop.
struct Out<'a> {
    tx: SyncSender<Msg>,
    stop: &'a AtomicBool,
    in_flight: &'a AtomicUsize,
    snap: &'a Snapshot,
}

impl Out<'_> {
    /// Whether the cursor is gone (dropped, or leaked with its transaction
    /// ended).
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.snap.is_released()
    }

    /// Sends `msg` (holding `bytes` of documents) once the channel has room
    /// for it; false when the cursor is gone. Waits by short sleeps (up to
    /// [`MAX_WAIT`]) rather than blocking, so that it notices a leaked
    /// cursor's transaction ending.
    fn send(&self, mut msg: Msg, bytes: usize) -> bool {
        let mut wait = Duration::from_micros(20);
        loop {
            if self.stopped() {
                return false;
            }
            let held = self.in_flight.fetch_add(bytes, Ordering::AcqRel);
            if held == 0 || held + bytes <= MAX_IN_FLIGHT {
                match self.tx.try_send(msg) {
                    Ok(()) => return true,
                    Err(TrySendError::Full(back)) => msg = back,
                    Err(TrySendError::Disconnected(_)) => return false,
                }
            }
            self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
            std::thread::sleep(wait);
            wait = (wait * 2).min(MAX_WAIT);
        }
    }
}

/// The helper's loop: scans the odd blocks in order, sending each one's
/// matches in chunks and then `BlockDone`, or `Failed` at the first
/// error. Returns early when the cursor is gone.
fn scan(snap: &Snapshot, root: PageNo, blocks: Blocks, f: &Filtering, out: &Out<'_>) {
    let scan_block = |b: u64| -> Result<bool> {
        let (lo, hi) = blocks.bounds(b);
        let mut chunk = Chunk::default();
        // Whether to go on (false: the cursor is gone).
        let scanned = (|| -> Result<bool> {
            let mut range =
                Range::new(snap, root, lo.as_ref().map(|k| &k[..]), hi.as_ref().map(|k| &k[..]), false)?;
            let mut scratch = Vec::new();
            while let Some(entry) = range.next_in(&mut scratch) {
                if out.stopped() {
                    return Ok(false);
                }
                let (k, bytes) = entry?;
                if let Some(id) = matching_id(&f.check, &f.steps, &*f.dict, k, bytes)? {
                    if bytes.len() > BIG_DOC {
                        chunk.docs.push((id, None));
                    } else {
                        let start = chunk.bytes.len();
                        chunk.bytes.extend_from_slice(bytes);
                        chunk.docs.push((id, Some((start, chunk.bytes.len()))));
                    }
                    if chunk.bytes.len() >= CHUNK_BYTES || chunk.docs.len() >= CHUNK_BYTES / 64 {
                        let full = std::mem::take(&mut chunk);
                        let len = full.bytes.len();
                        if !out.send(Msg::Docs(full), len) {
                            return Ok(false);
                        }
                    }
                }
            }
            Ok(true)
        })();
        // The matches before an error come first, as in a scan of one thread.
        if !chunk.docs.is_empty() {
            let len = chunk.bytes.len();
            if !out.send(Msg::Docs(chunk), len) {
                return Ok(false);
            }
        }
        Ok(scanned? && out.send(Msg::BlockDone, 0))
    };
    for b in (1..blocks.count).step_by(2) {
        match scan_block(b) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = out.send(Msg::Failed(e), 0);
                return;
            }
        }
    }
}

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
//! Memory stays bounded: the helper sends its matches in chunks of at most
//! [`CHUNK_BYTES`] through a channel of [`CHANNEL_MSGS`] messages, and waits
//! when the cursor has not taken them yet. It reads through its own
//! reference to the read transaction's snapshot, so it sees exactly what
//! the transaction sees. Dropping the cursor stops the helper and waits for
//! it; in a child process after fork() the helper does not exist, and the
//! cursor answers with the handle's fork error instead of waiting.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::btree::Range;
use crate::doc::codec::{MemNameDict, PathStep};
use crate::doc::collection::id_key;
use crate::error::{Error, PageNo, Result};
use crate::query::exec::{matching_id, Check};
use crate::storage::pager::Snapshot;

/// Documents a block holds when ids are dense: enough that a block's
/// scan (about a millisecond) dwarfs the hand-over, few enough that the
/// two threads finish close together.
pub(crate) const BLOCK_DOCS: u64 = 4096;
/// Bytes of matching documents the helper gathers before sending them.
const CHUNK_BYTES: usize = 128 << 10;
/// Messages the channel holds before the helper waits for the cursor.
const CHANNEL_MSGS: usize = 8;
/// Documents the helper scans between looks at the stop flag.
const STOP_CHECK_EVERY: u32 = 256;

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

/// Matching documents, copied: their bytes end to end, and for each its id
/// and span in `bytes`.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    docs: Vec<(u64, usize, usize)>,
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

/// The helper's side of a shared scan, as the cursor sees it.
pub(crate) struct Helper {
    rx: Option<Receiver<Msg>>,
    chunk: Chunk,
    /// Next document of `chunk` to hand out.
    pos: usize,
    failed: bool,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    snap: Arc<Snapshot>,
}

impl Helper {
    /// Starts the helper on the odd blocks of the documents tree at
    /// `root`; `None` when no thread can be started (the caller then scans
    /// everything itself).
    pub(crate) fn start(
        snap: Arc<Snapshot>,
        root: PageNo,
        blocks: Blocks,
        filtering: Filtering,
    ) -> Option<Helper> {
        let (tx, rx) = sync_channel(CHANNEL_MSGS);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (snap, stop) = (Arc::clone(&snap), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("obj-scan".into())
                .spawn(move || scan(&snap, root, blocks, &filtering, &stop, &tx))
                .ok()?
        };
        Some(Helper {
            rx: Some(rx),
            chunk: Chunk::default(),
            pos: 0,
            failed: false,
            stop,
            thread: Some(thread),
            snap,
        })
    }

    /// The next matching document of the helper's current block, `(id,
    /// stored bytes)`; `None` at the block's end (the next call goes on
    /// with the helper's next block).
    pub(crate) fn next_in_block(&mut self) -> Result<Option<(u64, &[u8])>> {
        while self.pos == self.chunk.docs.len() {
            match self.receive()? {
                Msg::Docs(chunk) => {
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
        let (id, start, end) = self.chunk.docs[self.pos];
        self.pos += 1;
        Ok(Some((id, &self.chunk.bytes[start..end])))
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
                self.snap.pager().check_process()?;
                rx.recv().map_err(|_| ())
            }
            Err(TryRecvError::Disconnected) => Err(()),
        };
        got.or_else(|()| {
            // The helper sends every block it owes, or Failed, before it
            // ends: a channel closed early means it panicked, and the panic
            // goes on here, as it would have on a scan without a helper.
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
        // Closing the channel wakes a helper waiting to send.
        self.rx = None;
        if let Some(thread) = self.thread.take() {
            if self.snap.pager().forked() {
                // The thread is the parent's: there is nothing to join here.
                std::mem::forget(thread);
            } else {
                let _ = thread.join();
            }
        }
    }
}

/// The helper's loop: scans the odd blocks in order, sending each one's
/// matches in chunks and then `BlockDone`, or `Failed` at the first
/// error. Returns early when the cursor is gone.
fn scan(
    snap: &Snapshot,
    root: PageNo,
    blocks: Blocks,
    f: &Filtering,
    stop: &AtomicBool,
    tx: &SyncSender<Msg>,
) {
    let mut seen = 0u32;
    let mut scan_block = |b: u64| -> Result<bool> {
        let (lo, hi) = blocks.bounds(b);
        let mut chunk = Chunk::default();
        // Whether to go on (false: the cursor is gone).
        let scanned = (|| -> Result<bool> {
            let mut range =
                Range::new(snap, root, lo.as_ref().map(|k| &k[..]), hi.as_ref().map(|k| &k[..]), false)?;
            let mut scratch = Vec::new();
            while let Some(entry) = range.next_in(&mut scratch) {
                let (k, bytes) = entry?;
                if let Some(id) = matching_id(&f.check, &f.steps, &*f.dict, k, bytes)? {
                    let start = chunk.bytes.len();
                    chunk.bytes.extend_from_slice(bytes);
                    chunk.docs.push((id, start, chunk.bytes.len()));
                    if chunk.bytes.len() >= CHUNK_BYTES
                        && tx.send(Msg::Docs(std::mem::take(&mut chunk))).is_err()
                    {
                        return Ok(false);
                    }
                }
                seen = seen.wrapping_add(1);
                if seen.is_multiple_of(STOP_CHECK_EVERY) && stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Ok(true)
        })();
        // The matches before an error come first, as in a scan of one thread.
        if !chunk.docs.is_empty() && tx.send(Msg::Docs(chunk)).is_err() {
            return Ok(false);
        }
        Ok(scanned? && tx.send(Msg::BlockDone).is_ok())
    };
    for b in (1..blocks.count).step_by(2) {
        match scan_block(b) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = tx.send(Msg::Failed(e));
                return;
            }
        }
    }
}

//! The write-ahead log file: `<db>-wal`.
//!
//! A commit appends its dirty pages as frames, the last one marked as the
//! commit frame, and (in `SyncMode::Full`) makes them durable with one write
//! and one fdatasync. Frames carry the WAL's salt and a running CRC-32 chained
//! from the header, so recovery reads forward until the first frame that is
//! torn, from an older generation (other salt), or out of chain, and keeps
//! everything up to the last commit frame before it.
//!
//! This module owns the byte layout of the WAL and nothing else: which frame
//! holds which page for which snapshot is `wal_index`'s job; when to
//! checkpoint is the pager's.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::error::{Error, PageNo, Result};
use crate::storage::file::StorageFile;
use crate::storage::header::{wal_durable_of, wal_salt_of};
use crate::storage::page::{u32_at, u64_at, verify_page, CHECKSUM_TRAILER};

/// Bytes of the WAL header.
pub const WAL_HEADER_LEN: u64 = 64;
/// Bytes of a frame header (before the page image).
pub const FRAME_HEADER_LEN: usize = 24;
const WAL_MAGIC: [u8; 4] = *b"OBJW";
const WAL_VERSION: u32 = 1;

/// Identifies a WAL generation: the WAL restarts from frame 1 with a new
/// salt after a complete checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    /// Page size of the database.
    pub page_size: u32,
    /// The owning database's file id.
    pub file_id: [u8; 16],
    /// Random per generation; every frame repeats it.
    pub salt: u64,
    /// Counts restarts over the file's life.
    pub generation: u64,
}

impl WalHeader {
    fn encode(&self) -> [u8; WAL_HEADER_LEN as usize] {
        let mut b = [0u8; WAL_HEADER_LEN as usize];
        b[0..4].copy_from_slice(&WAL_MAGIC);
        b[4..8].copy_from_slice(&WAL_VERSION.to_le_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        b[16..32].copy_from_slice(&self.file_id);
        b[32..40].copy_from_slice(&self.salt.to_le_bytes());
        b[40..48].copy_from_slice(&self.generation.to_le_bytes());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a header: `Ok(None)` if the bytes are not a valid WAL
    /// header (a WAL whose creation was interrupted holds nothing
    /// committed), `Err(version)` for a sound header of another WAL
    /// format version (a newer build's log, which must be neither
    /// replayed nor thrown away).
    fn decode(b: &[u8]) -> std::result::Result<Option<WalHeader>, u32> {
        if b.len() < WAL_HEADER_LEN as usize || b[0..4] != WAL_MAGIC {
            return Ok(None);
        }
        if u32_at(b, 60) != crc32fast::hash(&b[..60]) {
            return Ok(None);
        }
        let version = u32_at(b, 4);
        if version != WAL_VERSION {
            return Err(version);
        }
        let mut file_id = [0u8; 16];
        file_id.copy_from_slice(&b[16..32]);
        Ok(Some(WalHeader {
            page_size: u32_at(b, 8),
            file_id,
            salt: u64_at(b, 32),
            generation: u64_at(b, 40),
        }))
    }

    /// Reads the header at the start of `file` (`size` bytes long), as
    /// [`decode`](Self::decode) does; a sound header of another format
    /// version is an `Unsupported` error.
    fn read(file: &dyn StorageFile, size: u64, name: &str) -> Result<Option<WalHeader>> {
        let Some(head) =
            header_bytes(file, size).map_err(|e| Error::io(format!("reading the header of {name}"), e))?
        else {
            return Ok(None);
        };
        WalHeader::decode(&head).map_err(|version| {
            Error::Unsupported(format!(
                "{name} is a WAL of format version {version}, which this build does not read (it reads \
                 version {WAL_VERSION}): open the database with the build that wrote it, whose commits \
                 the WAL may hold"
            ))
        })
    }

    /// The seed of the running checksum of frame 1.
    fn chain_seed(&self) -> u32 {
        crc32fast::hash(&self.encode()[..60])
    }
}

/// The first `WAL_HEADER_LEN` bytes of WAL `file` (`size` bytes long), or
/// `None` when it is shorter.
fn header_bytes(file: &dyn StorageFile, size: u64) -> std::io::Result<Option<[u8; WAL_HEADER_LEN as usize]>> {
    if size < WAL_HEADER_LEN {
        return Ok(None);
    }
    let mut head = [0u8; WAL_HEADER_LEN as usize];
    file.read_at(&mut head, 0)?;
    Ok(Some(head))
}

/// A WAL header that fails its check is taken for one whose writing was
/// cut (see [`Wal::open`]), unless frame 1 was written under that very
/// header: its salt is the header's (or, the header's salt damaged, the
/// header with frame 1's salt in place checks against its stored CRC) and
/// its running checksum continues from the header's CRC (the stored one,
/// or, that one damaged, the CRC of the header's bytes). A cut write of a
/// header over the generation before leaves the salt and generation of one
/// header beside the CRC of the same or the other, never a header that
/// differs from frame 1's in the salt or the CRC alone (while the drive
/// writes the header's sector whole, as the simulated disk of the tests
/// does), so such a frame proves that the header was once whole and was damaged since, and the
/// frames after it may hold commits the main file lacks: a `Corruption`
/// error instead of a log silently taken as empty.
fn refuse_a_damaged_header(file: &dyn StorageFile, size: u64, page_size: usize, name: &str) -> Result<()> {
    let head_len = WAL_HEADER_LEN as usize;
    if size < (head_len + FRAME_HEADER_LEN + page_size) as u64 {
        return Ok(());
    }
    let mut buf = vec![0u8; head_len + FRAME_HEADER_LEN + page_size];
    file.read_at(&mut buf, 0).map_err(|e| Error::io(format!("reading {name}"), e))?;
    let (head, frame) = buf.split_at(head_len);
    let written_under =
        |seed: u32| frame_checksum(seed, &frame[..16], &frame[FRAME_HEADER_LEN..]) == u32_at(frame, 16);
    let (stored_crc, same_salt) = (u32_at(head, 60), u64_at(frame, 8) == u64_at(head, 32));
    // The header's bytes with frame 1's salt, and their CRC.
    let mut with_frame_salt = [0u8; 60];
    with_frame_salt.copy_from_slice(&head[..60]);
    with_frame_salt[32..40].copy_from_slice(&frame[8..16]);
    let crc_with_frame_salt = crc32fast::hash(&with_frame_salt);
    let damaged_elsewhere = same_salt && written_under(stored_crc);
    let crc_damaged = same_salt && written_under(crc_with_frame_salt);
    let salt_damaged = !same_salt && crc_with_frame_salt == stored_crc && written_under(stored_crc);
    if damaged_elsewhere || crc_damaged || salt_damaged {
        return Err(Error::corruption(
            None,
            format!(
                "{name}: its header is damaged (it fails its checksum) although frame 1 was written under \
                 it, so the log may hold commits the database file lacks; restore the database from a \
                 backup, or move {name} away to open it as of its last checkpoint without them"
            ),
        ));
    }
    Ok(())
}

/// The file id in the header of WAL `file`, or `None` if it has no valid
/// header (a WAL whose creation was cut holds nothing committed). A
/// sound header of another format version gives its file id too (at the
/// same place), so that such a log is kept rather than removed.
pub(crate) fn file_id_of(file: &dyn StorageFile) -> std::io::Result<Option<[u8; 16]>> {
    let Some(head) = header_bytes(file, file.size()?)? else { return Ok(None) };
    Ok(match WalHeader::decode(&head) {
        Ok(h) => h.map(|h| h.file_id),
        Err(_) => head[16..32].try_into().ok(),
    })
}

/// One page image to append.
pub struct FrameWrite<'a> {
    /// The page number.
    pub pgno: PageNo,
    /// The whole page (content and sealed trailer).
    pub page: &'a [u8],
}

/// An append position of the WAL (see [`Wal::position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPosition {
    frames: u64,
    chain: u32,
}

/// What recovery found in an existing WAL.
#[derive(Debug, Default)]
pub struct Recovered {
    /// (frame number, page number) of every frame up to the last commit.
    pub frames: Vec<(u64, PageNo)>,
    /// Number of the last commit frame (0 = nothing committed).
    pub last_commit: u64,
    /// (frame number, commit marker: the page count it records) of every
    /// commit frame, in order.
    pub commits: Vec<(u64, PageNo)>,
}

/// The open WAL file and the append position of the current generation.
#[derive(Debug)]
pub struct Wal {
    file: Arc<dyn StorageFile>,
    name: String,
    header: WalHeader,
    /// Whether `header` has been written to the file in this generation.
    header_written: bool,
    /// Frames written in this generation (committed or not yet).
    frames: u64,
    /// Running checksum after the last committed frame.
    chain: u32,
    /// Frames of this generation up to the last commit frame written (or
    /// adopted, or recovered): frames a transaction spilled after them are
    /// not among them, and a rollback may rewind over those.
    committed: u64,
    /// Committed frames known durable: those committed before this
    /// handle's last fdatasync of the file (0 until it syncs). Each commit
    /// records it in its page 0, for recovery (see [`Wal::recover`]); never
    /// more than were committed, so that no later rewind and overwrite
    /// can make a stale page 0 vouch for frames that are not there.
    synced: AtomicU64,
    page_size: usize,
    /// Whether a cut of the file and a new header written over an old log
    /// are fsynced at once (see [`Wal::shrink`]; not in `SyncMode::Off`).
    sync_cuts: bool,
    /// The frames of an append, gathered for one write. Kept between
    /// commits (up to [`KEEP_BUF`]): a fresh buffer each time cost a
    /// small commit an allocation and the page faults of touching it.
    buf: Vec<u8>,
    /// Bytes the file is known to hold: its size when last read, or how
    /// far [`Wal::make_room`] extended it. Only a hint (another process
    /// may have grown or cut the file since); appends past it read the
    /// size again.
    room: u64,
}

/// The largest append buffer kept for the next append.
const KEEP_BUF: usize = 256 << 10;

/// How far ahead of a small append at its end the WAL file is extended
/// at most, and at first (see [`Wal::make_room`]).
const PREFILL: u64 = 1 << 20;
const FIRST_PREFILL: u64 = 64 << 10;

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Whether `file` starts with a valid WAL header (of any database): a log
/// that recovery would replay, not an empty or never-written file.
pub(crate) fn holds_a_log(file: &dyn StorageFile) -> std::io::Result<bool> {
    let Some(head) = header_bytes(file, file.size()?)? else { return Ok(false) };
    // Another format version's log is a log all the same.
    Ok(!matches!(WalHeader::decode(&head), Ok(None)))
}

impl Wal {
    /// Opens the WAL and recovers its committed frames. A missing or
    /// empty WAL, or one whose header never became valid, is empty.
    /// A valid header of another database is a `Corruption` error: replaying
    /// it would mix two databases, and ignoring it silently could hide lost data.
    pub fn open(
        file: Arc<dyn StorageFile>,
        name: String,
        page_size: usize,
        file_id: [u8; 16],
    ) -> Result<(Wal, Recovered)> {
        let size = file.size().map_err(|e| Error::io(format!("reading the size of {name}"), e))?;
        let Some(header) = WalHeader::read(&*file, size, &name)? else {
            refuse_a_damaged_header(&*file, size, page_size, &name)?;
            let header =
                WalHeader { page_size: page_size as u32, file_id, salt: fresh_salt(0), generation: 1 };
            let chain = header.chain_seed();
            return Ok((Wal::with_header(file, name, page_size, header, false, chain), Recovered::default()));
        };
        if header.file_id != file_id {
            return Err(Error::corruption(
                None,
                format!("{name} belongs to another database (file id mismatch); move it away to open the database"),
            ));
        }
        if header.page_size as usize != page_size {
            return Err(Error::corruption(
                None,
                format!("{name} has page size {} but the database has {page_size}", header.page_size),
            ));
        }
        let chain = header.chain_seed();
        let mut wal = Wal::with_header(file, name, page_size, header, true, chain);
        let recovered = wal.recover(size)?;
        Ok((wal, recovered))
    }

    fn frame_len(&self) -> u64 {
        (FRAME_HEADER_LEN + self.page_size) as u64
    }

    fn frame_offset(&self, frame: u64) -> u64 {
        WAL_HEADER_LEN + (frame - 1) * self.frame_len()
    }

    /// Scans frames from the start, in chunks, keeping those up to the
    /// last valid commit frame.
    fn recover(&mut self, size: u64) -> Result<Recovered> {
        let frame_len = self.frame_len() as usize;
        let available = (size.saturating_sub(WAL_HEADER_LEN)) / frame_len as u64;
        let per_chunk = (1 << 20) / frame_len + 1;
        let mut buf = vec![0u8; per_chunk * frame_len];
        let mut out = Recovered::default();
        let mut pending: Vec<(u64, PageNo)> = Vec::new();
        let mut chain = self.header.chain_seed();
        let mut committed_chain = chain;
        let mut frame = 1u64;
        'scan: while frame <= available {
            for f in self.read_frames(frame, available, &mut buf)?.chunks_exact(frame_len) {
                let pgno = u32::from_le_bytes(f[0..4].try_into().expect("4"));
                let commit = u32::from_le_bytes(f[4..8].try_into().expect("4"));
                let salt = u64::from_le_bytes(f[8..16].try_into().expect("8"));
                let stored = u32::from_le_bytes(f[16..20].try_into().expect("4"));
                if salt != self.header.salt {
                    break 'scan;
                }
                let sum = frame_checksum(chain, &f[..16], &f[FRAME_HEADER_LEN..]);
                if sum != stored {
                    break 'scan;
                }
                chain = sum;
                pending.push((frame, pgno));
                if commit != 0 {
                    out.frames.append(&mut pending);
                    out.commits.push((frame, commit));
                    out.last_commit = frame;
                    committed_chain = chain;
                }
                frame += 1;
            }
        }
        if frame <= available {
            self.refuse_damage_before_a_sync(frame, available, &mut buf)?;
        }
        self.frames = out.last_commit;
        self.committed = out.last_commit;
        self.chain = committed_chain;
        Ok(out)
    }

    /// Reads frames from `frame` on, as many as `buf` holds (up to frame
    /// `available`, the last whole one in the file), for a scan.
    fn read_frames<'b>(&self, frame: u64, available: u64, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        let frame_len = self.frame_len() as usize;
        let n = ((available - frame + 1) as usize).min(buf.len() / frame_len);
        let chunk = &mut buf[..n * frame_len];
        self.file
            .read_at(chunk, self.frame_offset(frame))
            .map_err(|e| Error::io(format!("reading {}", self.name), e))?;
        Ok(chunk)
    }

    /// The scan of [`Wal::recover`] stopped at frame `bad`: a frame torn by
    /// a crash (nothing after it was ever acknowledged as durable) or one
    /// damaged on the medium after it was synced. A commit records in its
    /// page 0 how many frames of its generation were durable when it was
    /// written; if a later frame of this generation holds a page 0 that
    /// passes its own checksum and says frame `bad` was durable, dropping
    /// the log from `bad` on would silently lose acknowledged commits, so
    /// it is a `Corruption` error instead. Without such a frame (the tail
    /// of a commit torn by a crash; `SyncMode::Normal` and `Off`, which
    /// sync at checkpoints only) the tail is ignored as before.
    fn refuse_damage_before_a_sync(&self, bad: u64, available: u64, buf: &mut [u8]) -> Result<()> {
        let frame_len = self.frame_len() as usize;
        let mut frame = bad + 1;
        while frame <= available {
            for f in self.read_frames(frame, available, buf)?.chunks_exact(frame_len) {
                let pgno = u32::from_le_bytes(f[0..4].try_into().expect("4"));
                let salt = u64::from_le_bytes(f[8..16].try_into().expect("8"));
                let page = &f[FRAME_HEADER_LEN..];
                if pgno == 0
                    && salt == self.header.salt
                    && verify_page(0, page).is_ok()
                    && wal_salt_of(page) == salt
                    && wal_durable_of(page) >= bad
                {
                    // The damaged frame's page number, as far as its header still says.
                    let mut head = [0u8; 4];
                    let named = self
                        .file
                        .read_at(&mut head, self.frame_offset(bad))
                        .ok()
                        .map(|_| u32::from_le_bytes(head));
                    return Err(Error::corruption(
                        named,
                        format!(
                            "{}: frame {bad} fails its checksum, but the commit in frame {frame} was \
                             written after it was made durable: committed transactions are damaged \
                             (restore from a backup; moving the WAL away opens the database as of its \
                             last checkpoint)",
                            self.name
                        ),
                    ));
                }
                frame += 1;
            }
        }
        Ok(())
    }

    /// A WAL whose state comes from the shared index rather than a scan
    /// (another process has the database open and the index is current):
    /// [`Wal::adopt`] sets it before each write transaction.
    pub fn attach(file: Arc<dyn StorageFile>, name: String, page_size: usize, file_id: [u8; 16]) -> Wal {
        let header = WalHeader { page_size: page_size as u32, file_id, salt: 0, generation: 0 };
        Wal::with_header(file, name, page_size, header, false, 0)
    }

    /// A WAL with no frames yet under `header` (already in the file when
    /// `header_written`), its running checksum at `chain`.
    fn with_header(
        file: Arc<dyn StorageFile>,
        name: String,
        page_size: usize,
        header: WalHeader,
        header_written: bool,
        chain: u32,
    ) -> Wal {
        Wal {
            file,
            name,
            header,
            header_written,
            frames: 0,
            chain,
            committed: 0,
            synced: AtomicU64::new(0),
            page_size,
            sync_cuts: true,
            buf: Vec::new(),
            room: 0,
        }
    }

    /// Whether a restart's cut of the file, or its header written over the
    /// old log, is fsynced at once (see [`Wal::shrink`]); on by default,
    /// off for `SyncMode::Off`, which never syncs.
    pub fn set_sync_cuts(&mut self, on: bool) {
        self.sync_cuts = on;
    }

    /// Takes the append position from the shared index: generation `generation`
    /// with salt `salt`, `frames` committed frames, running checksum `chain`
    /// after them. Another process may have appended or restarted since.
    pub fn adopt(&mut self, generation: u64, salt: u64, frames: u64, chain: u32) {
        if self.header.generation != generation || self.header.salt != salt {
            self.header.generation = generation;
            self.header.salt = salt;
            self.header_written = false;
            self.synced.store(0, Relaxed);
        }
        if frames > 0 {
            self.header_written = true;
        }
        self.frames = frames;
        self.committed = frames;
        self.chain = chain;
        self.synced.fetch_min(frames, Relaxed);
    }

    /// Scans the WAL again from its header (rebuilding a damaged shared
    /// index while other processes have the database open).
    pub fn reload(&mut self) -> Result<Recovered> {
        let size =
            self.file.size().map_err(|e| Error::io(format!("reading the size of {}", self.name), e))?;
        match WalHeader::read(&*self.file, size, &self.name)? {
            Some(h) if h.file_id == self.header.file_id && h.page_size == self.header.page_size => {
                self.header = h;
                self.header_written = true;
                self.chain = h.chain_seed();
                self.synced.store(0, Relaxed);
                self.recover(size)
            }
            None => {
                refuse_a_damaged_header(&*self.file, size, self.page_size, &self.name)?;
                self.restart();
                Ok(Recovered::default())
            }
            Some(_) => {
                self.restart();
                Ok(Recovered::default())
            }
        }
    }

    /// Replaces the file (a read-only handle opening a WAL that another
    /// process created after it opened the database).
    pub fn set_file(&mut self, file: Arc<dyn StorageFile>) {
        self.file = file;
    }

    /// The current header (generation and salt).
    pub fn header(&self) -> WalHeader {
        self.header
    }

    /// The running checksum after the last committed frame.
    pub fn chain(&self) -> u32 {
        self.chain
    }

    /// Frames committed in this generation.
    pub fn frame_count(&self) -> u64 {
        self.frames
    }

    /// Appends one transaction's pages; the last frame is the commit frame
    /// and records `page_count`. Returns the frame number of the first page.
    /// Nothing is durable until [`Wal::sync`]. On error the append position
    /// is unchanged, so the next commit overwrites the partial frames (the
    /// checksum chain makes any leftover bytes unreadable to recovery).
    /// (The pager appends through [`Wal::append_sealing`]; this is the
    /// tests' one-call form.)
    #[cfg(test)]
    pub fn append(&mut self, pages: &[FrameWrite<'_>], page_count: PageNo) -> Result<u64> {
        self.append_frames(pages, Some(page_count))
    }

    /// The append position, to [`Wal::rewind`] to if a transaction written
    /// in several [`Wal::append_frames`] calls fails before its commit frame.
    pub fn position(&self) -> WalPosition {
        WalPosition { frames: self.frames, chain: self.chain }
    }

    /// Moves the append position back to `pos` (of this generation): the
    /// frames after it were never committed, and the next append overwrites
    /// them (their checksums no longer chain, so recovery never reads them).
    pub fn rewind(&mut self, pos: WalPosition) {
        debug_assert!(pos.frames <= self.frames);
        self.frames = pos.frames;
        self.committed = self.committed.min(pos.frames);
        self.chain = pos.chain;
        self.synced.fetch_min(pos.frames, Relaxed);
    }

    /// After a rollback rewound over spilled frames: cuts the file back to
    /// `keep_bytes`, or to the end of the last frame when that is further,
    /// if it is longer, so that an abandoned large transaction does not
    /// keep its disk space until the next restart. Nothing after the append
    /// position was committed; a cut that a power cut undoes only brings
    /// back frames that never chain, as a rewind without a cut leaves them.
    pub fn trim(&mut self, keep_bytes: u64) -> Result<()> {
        let end = WAL_HEADER_LEN + self.frames * self.frame_len();
        let keep = keep_bytes.max(end);
        let size =
            self.file.size().map_err(|e| Error::io(format!("reading the size of {}", self.name), e))?;
        if size > keep {
            self.room = self.room.min(keep);
            self.file.truncate(keep).map_err(|e| Error::io(format!("truncating {}", self.name), e))?;
        }
        Ok(())
    }

    /// [`Wal::append`] for one part of a transaction: with `commit` `None`
    /// no frame is a commit frame, so the part stays invisible to recovery
    /// until a later call ends the transaction with `Some(page_count)`.
    /// Returns the frame number of the first page.
    pub fn append_frames(&mut self, pages: &[FrameWrite<'_>], commit: Option<PageNo>) -> Result<u64> {
        self.append_sealing(pages, commit, |_| Ok(()))
    }

    /// [`Wal::append_frames`] for pages that are not their own images yet:
    /// `seal` turns their copies in the write buffer into the images the
    /// frames store (an encrypted database's pages are encrypted there),
    /// before the frame checksums are computed over them. It is given each
    /// part of the append that goes out in one write.
    pub fn append_sealing(
        &mut self,
        pages: &[FrameWrite<'_>],
        commit: Option<PageNo>,
        mut seal: impl FnMut(&mut [(PageNo, &mut [u8])]) -> Result<()>,
    ) -> Result<u64> {
        let frame_len = self.frame_len() as usize;
        let first = self.frames + 1;
        // Write in chunks of about 1 MiB: one syscall for a small commit,
        // bounded extra memory for a bulk load.
        let per_chunk = ((1 << 20) / frame_len).max(1);
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.reserve(per_chunk.min(pages.len()) * frame_len);
        let mut chain = self.chain;
        let mut offset = self.frame_offset(first);
        if !self.header_written {
            self.write_header()?;
        }
        let end = offset + (pages.len() * frame_len) as u64;
        // Whether this append grows the file (read before its frames are
        // written, so that whatever lies past `end` afterwards is zeros of
        // `make_room` alone) and is small enough to extend it ahead.
        let prefill = end > self.room
            && (pages.len() * frame_len) < PREFILL as usize
            && self
                .file
                .size()
                .map(|size| {
                    self.room = size;
                    end > size
                })
                .unwrap_or(false);
        for (c, chunk) in pages.chunks(per_chunk).enumerate() {
            buf.clear();
            for p in chunk {
                debug_assert_eq!(p.page.len(), self.page_size);
                buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
                buf.extend_from_slice(p.page);
            }
            let mut images: Vec<(PageNo, &mut [u8])> = chunk
                .iter()
                .zip(buf.chunks_exact_mut(frame_len))
                .map(|(p, frame)| (p.pgno, &mut frame[FRAME_HEADER_LEN..]))
                .collect();
            seal(&mut images)?;
            drop(images);
            for (k, frame) in buf.chunks_exact_mut(frame_len).enumerate() {
                let (head, page) = frame.split_at_mut(FRAME_HEADER_LEN);
                let last = c * per_chunk + k + 1 == pages.len();
                let marker = if last { commit.unwrap_or(0) } else { 0 };
                head[0..4].copy_from_slice(&chunk[k].pgno.to_le_bytes());
                head[4..8].copy_from_slice(&marker.to_le_bytes());
                head[8..16].copy_from_slice(&self.header.salt.to_le_bytes());
                chain = frame_checksum(chain, &head[..16], page);
                head[16..20].copy_from_slice(&chain.to_le_bytes());
            }
            self.file
                .write_at(&buf, offset)
                .map_err(|e| Error::io(format!("appending frames to {}", self.name), e))?;
            offset += buf.len() as u64;
        }
        if buf.capacity() <= KEEP_BUF {
            self.buf = buf;
        }
        if prefill {
            self.make_room(end);
        }
        self.frames += pages.len() as u64;
        if commit.is_some() {
            self.committed = self.frames;
        }
        self.chain = chain;
        Ok(first)
    }

    /// After a small append that grew the file to `end`: writes zeros from
    /// `end` to the next multiple of a step that doubles with the file,
    /// from [`FIRST_PREFILL`] for a new log (so that a session of one
    /// commit writes little more than its frames) to [`PREFILL`]. A sync
    /// after an append that grows the file must also make its new size and
    /// blocks durable (on ext4, a journal commit), which costs a small
    /// commit about twice the sync of a write over existing bytes; writing
    /// the zeros once makes the next commits such writes. The zeros lie
    /// past every frame, where recovery stops (a frame of zeros fails its
    /// salt), as it does at the stale frames a restarted log leaves. They are written after the
    /// append's frames, so that those take the disk space first, and a
    /// failure to write them (a full disk) cuts them off again: zeros left
    /// half-written would hold space that the next commits' frames need
    /// (on a disk with less than `PREFILL` free, every commit after a
    /// checkpoint would fail), and costs only that speed.
    fn make_room(&mut self, end: u64) {
        let step = end.next_power_of_two().clamp(FIRST_PREFILL, PREFILL);
        let target = end.next_multiple_of(step);
        let mut at = end;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64);
            if self.file.write_at(&ZEROS[..n as usize], at).is_err() {
                // Nothing past `end` but these zeros (the file ended before
                // it when the append began).
                let _ = self.file.truncate(end);
                self.room = end;
                return;
            }
            at += n;
        }
        self.room = target;
    }

    /// Makes every appended frame durable.
    pub fn sync(&self) -> Result<()> {
        self.file.sync().map_err(|e| Error::io(format!("syncing {}", self.name), e))?;
        self.synced.store(self.committed, Relaxed);
        Ok(())
    }

    /// How many frames of this generation are known durable, for the next
    /// commit's page 0 (which recovery reads back, see [`Wal::open`]).
    pub fn durable_frames(&self) -> u64 {
        self.synced.load(Relaxed)
    }

    /// Reads the page image of `frame` into `buf` (page-size bytes).
    pub fn read_frame(&self, frame: u64, buf: &mut [u8]) -> Result<()> {
        let offset = self.frame_offset(frame) + FRAME_HEADER_LEN as u64;
        self.file
            .read_at(buf, offset)
            .map_err(|e| Error::io(format!("reading frame {frame} of {}", self.name), e))
    }

    /// Starts a new generation: frame numbering restarts at 1 with a new
    /// salt. Called only when every frame has been checkpointed and no
    /// reader needs the WAL. The header is written with the next append, so
    /// a crash before then leaves the old (fully checkpointed) WAL in place.
    /// Nothing is written here: the caller publishes the new generation
    /// (to other processes) and then calls [`Wal::shrink`].
    pub fn restart(&mut self) {
        let generation = self.header.generation + 1;
        self.header.salt = fresh_salt(self.header.salt ^ generation);
        self.header.generation = generation;
        self.header_written = false;
        self.frames = 0;
        self.committed = 0;
        self.chain = self.header.chain_seed();
        self.synced.store(0, Relaxed);
    }

    /// Truncates the file when it has grown past `keep_bytes`; only right
    /// after [`Wal::restart`], once every process knows of the new
    /// generation (a writer in another process that still believed in the
    /// old one would append to a file without a header). A file it keeps
    /// gets the new header at once, synced: the new frames overwrite the
    /// old ones, and a power cut that kept a later write of them (another
    /// unsynced commit, a later part of a big one) but not the header
    /// would leave the old header over a prefix of the old log, older than
    /// the main file (an open refused as a stale WAL).
    pub fn shrink(&mut self, keep_bytes: u64) -> Result<()> {
        debug_assert_eq!(self.frames, 0);
        let size =
            self.file.size().map_err(|e| Error::io(format!("reading the size of {}", self.name), e))?;
        if size > keep_bytes {
            self.cut()?;
        } else if size > WAL_HEADER_LEN {
            self.write_header()?;
            if self.sync_cuts {
                self.sync()?;
            }
        }
        Ok(())
    }

    fn write_header(&mut self) -> Result<()> {
        let head = self.header.encode();
        self.file
            .write_at(&head, 0)
            .map_err(|e| Error::io(format!("writing the header of {}", self.name), e))?;
        self.header_written = true;
        Ok(())
    }

    /// Empties the file, durably: a power cut could otherwise undo the
    /// truncation and bring old frames back, and a later write of the new
    /// log that survived it (while the new header and first frames did not)
    /// would cut that old log in the middle rather than at its start,
    /// leaving a prefix of it that recovery would read as the newest
    /// commits.
    fn cut(&mut self) -> Result<()> {
        self.room = 0;
        self.file.truncate(0).map_err(|e| Error::io(format!("truncating {}", self.name), e))?;
        if self.sync_cuts {
            self.sync()?;
        }
        Ok(())
    }

    /// Cuts the file back to a fresh header alone: what an explicit
    /// checkpoint leaves (SQLite's `wal_checkpoint(TRUNCATE)`). Only right
    /// after [`Wal::restart`] has been published, like [`Wal::shrink`]. A
    /// failure leaves a valid state: the old frames (all in the main file,
    /// under the old salt) or an empty file, whose header the next append
    /// writes.
    pub fn reset_to_header(&mut self) -> Result<()> {
        debug_assert_eq!(self.frames, 0);
        self.header_written = false;
        let size =
            self.file.size().map_err(|e| Error::io(format!("reading the size of {}", self.name), e))?;
        // An empty file was cut (and synced) already, by `shrink(0)`.
        if size > 0 {
            self.cut()?;
        }
        self.write_header()
    }

    /// Empties the WAL file (after a complete checkpoint at close).
    pub fn truncate_all(&mut self) -> Result<()> {
        self.cut()?;
        self.restart();
        Ok(())
    }
}

/// The running frame checksum over the frame header's first 16 bytes, the
/// page's 4-byte checksum trailer, then the page body. The order matters:
/// a CRC-32 run over a message followed by that message's own CRC-32 ends
/// in the same state whatever the message, so with the trailer after the
/// body the frame checksum would not see the body (a torn frame whose old
/// and new images share a prefix would pass holding the old page); and
/// leaving the trailer out would let a frame pass whose body is new but
/// whose trailer is old. Covering the trailer first sees both.
fn frame_checksum(seed: u32, head: &[u8], page: &[u8]) -> u32 {
    let split = page.len() - CHECKSUM_TRAILER;
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(head);
    h.update(&page[split..]);
    h.update(&page[..split]);
    h.finalize()
}

/// A salt that differs between generations and between databases opened at
/// the same moment; uniqueness, not secrecy, is what matters.
pub(crate) fn fresh_salt(mix: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(mix);
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::storage::file::{OpenMode, Vfs};
    use crate::storage::page::seal_page;
    use crate::storage::sim::SimVfs;

    const PAGE: usize = 4096;

    /// The WAL in `file` opened, and recovered, as the tests' database's.
    fn open_wal(file: &Arc<dyn StorageFile>) -> Result<(Wal, Recovered)> {
        Wal::open(file.clone(), "wal".into(), PAGE, [7; 16])
    }

    /// Where the tests' WAL lives on their simulated disk.
    const WAL_PATH: &str = "/t/db-wal";

    /// A simulated disk holding a new, empty WAL file at [`WAL_PATH`], and
    /// the log opened on it.
    fn fresh_wal() -> (SimVfs, Arc<dyn StorageFile>, Wal) {
        let vfs = SimVfs::new();
        let file = vfs.open(Path::new(WAL_PATH), OpenMode::ReadWriteCreate).unwrap();
        let (wal, _) = open_wal(&file).unwrap();
        (vfs, file, wal)
    }

    fn sealed(pgno: PageNo, fill: impl Fn(usize) -> u8) -> Vec<u8> {
        let mut page: Vec<u8> = (0..PAGE).map(fill).collect();
        seal_page(pgno, &mut page);
        page
    }

    /// Small commits at the end of the file extend it with zeros once for
    /// many (so that their syncs overwrite), recovery stops at the zeros,
    /// and a large append is written as it is.
    #[test]
    fn small_appends_extend_the_file_ahead_and_recovery_stops_at_the_zeros() {
        let (vfs, file, mut wal) = fresh_wal();
        let path = Path::new(WAL_PATH);
        let frame = (FRAME_HEADER_LEN + PAGE) as u64;
        // The step doubles from 64 KiB: 64, 128, 256, 512 KiB, then 1 MiB
        // boundaries.
        let mut extended = Vec::new();
        for k in 0..300u32 {
            wal.append(&[FrameWrite { pgno: 5, page: &sealed(5, |_| k as u8) }], 6).unwrap();
            let size = file.size().unwrap();
            if extended.last() != Some(&size) {
                extended.push(size);
            }
        }
        assert_eq!(extended, [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20]);
        wal.sync().unwrap();
        let end = (WAL_HEADER_LEN + 300 * frame) as usize;
        assert!(vfs.read_file(path).unwrap()[end..].iter().all(|&b| b == 0));
        let (mut wal, recovered) = open_wal(&file).unwrap();
        assert_eq!((recovered.last_commit, recovered.commits.len()), (300, 300));

        let pages: Vec<Vec<u8>> = (0..300u32).map(|k| sealed(k + 1, |i| (i as u32 + k) as u8)).collect();
        let frames: Vec<FrameWrite<'_>> =
            pages.iter().enumerate().map(|(k, page)| FrameWrite { pgno: k as PageNo + 1, page }).collect();
        wal.append(&frames, 300).unwrap();
        assert_eq!(file.size().unwrap(), WAL_HEADER_LEN + 600 * frame, "no zeros after a large append");
        let (_, recovered) = open_wal(&file).unwrap();
        assert_eq!((recovered.last_commit, recovered.commits.len()), (600, 301));
    }

    /// On a disk without room for the zeros, the append still takes only
    /// its frames' space: the zeros that fitted are cut off again.
    #[test]
    fn zeros_that_do_not_fit_take_no_space_from_the_frames() {
        let (vfs, file, mut wal) = fresh_wal();
        let frame = (FRAME_HEADER_LEN + PAGE) as u64;
        // Room for the 40 frames and a few more bytes: the zeros to 64 and
        // 128 KiB fit, those to 256 KiB do not.
        vfs.set_capacity(Some(vfs.used_bytes() + WAL_HEADER_LEN + 40 * frame + 1000));
        for k in 0..40u8 {
            wal.append(&[FrameWrite { pgno: 5, page: &sealed(5, |_| k) }], 6).unwrap();
            let end = WAL_HEADER_LEN + (k as u64 + 1) * frame;
            let size = file.size().unwrap();
            assert!(
                size == end || (end < 128 << 10 && size == end.next_multiple_of(64 << 10)),
                "{k}: {size}"
            );
        }
        assert_eq!(file.size().unwrap(), WAL_HEADER_LEN + 40 * frame, "the zeros that did not fit are cut");
        let (_, recovered) = open_wal(&file).unwrap();
        assert_eq!(recovered.commits.len(), 40);
    }

    /// A frame torn over an older generation's frame, where the new image
    /// shares a prefix with the old one, must not pass as the new frame: it
    /// holds the old page. (Regression: the frame checksum once covered the
    /// page's CRC trailer, which made it blind to the body.)
    #[test]
    fn torn_frame_over_an_older_frame_with_a_shared_prefix_is_rejected() {
        let vfs = SimVfs::new();
        let path = Path::new(WAL_PATH);
        let file = vfs.open(path, OpenMode::ReadWriteCreate).unwrap();
        let (mut wal, recovered) = open_wal(&file).unwrap();
        assert_eq!(recovered.last_commit, 0);
        let old = sealed(5, |i| (i % 251) as u8);
        wal.append(&[FrameWrite { pgno: 5, page: &old }], 6).unwrap();
        wal.sync().unwrap();
        let generation_one = vfs.read_file(path).unwrap();

        // Same first half, different second half.
        let new = sealed(5, |i| if i < PAGE / 2 { (i % 251) as u8 } else { 0xAB });
        wal.restart();
        wal.append(&[FrameWrite { pgno: 5, page: &new }], 6).unwrap();
        wal.sync().unwrap();
        let (_, whole) = open_wal(&file).unwrap();
        assert_eq!(whole.frames, vec![(1, 5)], "the complete new frame is recovered");

        // Tear the new frame: its header and first half reached the disk,
        // the rest is still the old frame's.
        let body = (WAL_HEADER_LEN as usize) + FRAME_HEADER_LEN;
        let tail = body + PAGE / 2;
        file.write_at(&generation_one[tail..body + PAGE], tail as u64).unwrap();
        let (_, torn) = open_wal(&file).unwrap();
        assert_eq!(torn.last_commit, 0, "a torn frame holding the old page must not be replayed");
        assert!(torn.frames.is_empty());
    }

    /// A header damaged after its frames were written (a flipped byte
    /// anywhere, the salt and the stored CRC included) is a `Corruption`
    /// error: it used to pass for a header whose writing was cut, and the
    /// log's commits were dropped without a word. A header whose writing was
    /// cut over the generation before (new salt, old CRC, or the other way)
    /// still leaves a log taken as empty.
    #[test]
    fn a_header_damaged_under_its_frames_is_corruption_not_an_empty_log() {
        let (vfs, file, mut wal) = fresh_wal();
        let path = Path::new(WAL_PATH);
        for k in 0..3u8 {
            wal.append(&[FrameWrite { pgno: 5, page: &sealed(5, |_| k) }], 6).unwrap();
        }
        wal.sync().unwrap();
        let whole = vfs.read_file(path).unwrap();
        let reopen = |bytes: &[u8]| {
            file.write_at(bytes, 0).unwrap();
            open_wal(&file).map(|(_, r)| r.last_commit)
        };
        assert_eq!(reopen(&whole).unwrap(), 3);
        // The salt and the stored CRC too (frame 1 shows what they were).
        for at in [0, 4, 8, 12, 16, 31, 32, 39, 40, 47, 48, 59, 60, 63] {
            let mut damaged = whole.clone();
            damaged[at] ^= 0x10;
            let err = reopen(&damaged).expect_err("a damaged header must not read as an empty log");
            assert!(matches!(err, Error::Corruption { .. }), "byte {at}: {err}");
            assert!(err.to_string().contains("header is damaged"), "{err}");
        }
        // A restart's header cut over the old one: the new salt with the
        // old CRC, or the old salt with the new CRC; the frames after it
        // are the old generation's, all checkpointed before any restart.
        file.write_at(&whole, 0).unwrap();
        let (mut wal, _) = open_wal(&file).unwrap();
        wal.restart();
        wal.append(&[FrameWrite { pgno: 5, page: &sealed(5, |_| 9) }], 6).unwrap();
        let next = vfs.read_file(path).unwrap()[..WAL_HEADER_LEN as usize].to_vec();
        let mut new_salt_old_crc = whole.clone();
        new_salt_old_crc[32..60].copy_from_slice(&next[32..60]);
        assert_eq!(reopen(&new_salt_old_crc).unwrap(), 0);
        let mut old_salt_new_crc = whole.clone();
        old_salt_new_crc[40..64].copy_from_slice(&next[40..64]);
        assert_eq!(reopen(&old_salt_new_crc).unwrap(), 0);
    }

    /// The other way round: the new image's body with the old image's
    /// trailer (a tear where old and new share everything after the cut but
    /// the trailer). Such a frame must not pass either: its page would then
    /// fail its own checksum on every read.
    #[test]
    fn torn_frame_with_a_new_body_and_an_old_trailer_is_rejected() {
        let (vfs, file, mut wal) = fresh_wal();
        let path = Path::new(WAL_PATH);
        let old = sealed(5, |i| if i < 16 { 1 } else { (i % 251) as u8 });
        wal.append(&[FrameWrite { pgno: 5, page: &old }], 6).unwrap();
        let generation_one = vfs.read_file(path).unwrap();
        let new = sealed(5, |i| if i < 16 { 2 } else { (i % 251) as u8 });
        wal.restart();
        wal.append(&[FrameWrite { pgno: 5, page: &new }], 6).unwrap();
        let trailer = (WAL_HEADER_LEN as usize) + FRAME_HEADER_LEN + PAGE - CHECKSUM_TRAILER;
        file.write_at(&generation_one[trailer..trailer + CHECKSUM_TRAILER], trailer as u64).unwrap();
        let (_, torn) = open_wal(&file).unwrap();
        assert_eq!(
            torn.last_commit, 0,
            "a frame whose trailer does not belong to its body must not be replayed"
        );
    }

    /// `append_sealing` seals each chunk of an append (one write each) in
    /// the write buffer before its frame checksums: recovery replays the
    /// sealed images, and the pages handed in are left as they were.
    #[test]
    fn append_sealing_seals_each_chunk_before_its_checksums() {
        let (_vfs, file, mut wal) = fresh_wal();
        let per_chunk = (1 << 20) / (FRAME_HEADER_LEN + PAGE);
        let pages: Vec<Vec<u8>> = (0..per_chunk + 10).map(|k| vec![k as u8; PAGE]).collect();
        let frames: Vec<FrameWrite<'_>> =
            pages.iter().enumerate().map(|(k, page)| FrameWrite { pgno: k as PageNo + 1, page }).collect();
        let mut chunks = Vec::new();
        wal.append_sealing(&frames, Some(999), |images| {
            chunks.push(images.len());
            for (pgno, image) in images.iter_mut() {
                image.iter_mut().for_each(|b| *b ^= 0xA5);
                seal_page(*pgno, image);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(chunks, [per_chunk, 10]);
        assert!(pages.iter().enumerate().all(|(k, page)| page[..] == [k as u8; PAGE]), "pages unchanged");
        let (reopened, recovered) = open_wal(&file).unwrap();
        assert_eq!(recovered.last_commit, pages.len() as u64);
        let mut image = vec![0u8; PAGE];
        for (frame, pgno) in recovered.frames {
            reopened.read_frame(frame, &mut image).unwrap();
            let k = (pgno - 1) as u8;
            assert!(image[..PAGE - CHECKSUM_TRAILER].iter().all(|&b| b == k ^ 0xA5), "page {pgno}");
            verify_page(pgno, &image).unwrap();
        }
    }

    /// Cutting the file back (a restart past the size limit, an explicit
    /// checkpoint) is durable at once: a power cut after the next append
    /// finds the empty file, never the old frames, which the new ones
    /// could cut short anywhere.
    #[test]
    fn a_cut_survives_a_power_cut() {
        use crate::storage::sim::CutMode;
        let (vfs, _, mut wal) = fresh_wal();
        let page = sealed(3, |i| (i % 13) as u8 + 1);
        for _ in 0..8 {
            wal.append(&[FrameWrite { pgno: 3, page: &page }], 4).unwrap();
        }
        wal.sync().unwrap();
        wal.restart();
        wal.reset_to_header().unwrap();
        wal.append(&[FrameWrite { pgno: 3, page: &page }], 4).unwrap();
        // Every unsynced write lost: what remains is what was synced.
        vfs.power_cut(0, CutMode::DropAll);
        let file = vfs.open(Path::new(WAL_PATH), OpenMode::ReadWriteCreate).unwrap();
        assert_eq!(file.size().unwrap(), 0, "the cut was synced, nothing after it");
        let (_, recovered) = open_wal(&file).unwrap();
        assert_eq!(recovered.last_commit, 0);
    }
}

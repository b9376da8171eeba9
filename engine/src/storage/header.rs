//! The file header: the first bytes of page 0.
//!
//! Page 0 is written like any other page (through the WAL, checksummed), so
//! a snapshot's header is read from the newest page-0 frame it can see. The
//! fields that never change after creation (magic, version, page size, file
//! id) are also what `open` reads straight from the main file before the WAL
//! is known. Layout: docs/format.md, "File header".

use crate::error::{Error, PageNo, Result};
use crate::storage::crypto::{CryptHeader, ENCRYPTED_TRAILER};
use crate::storage::page::{u32_at, CHECKSUM_TRAILER};

/// The first 8 bytes of every obj database.
pub const MAGIC: [u8; 8] = *b"OBJDB\0\r\n";
/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of page 0 the header occupies (the rest of page 0 is zero, but
/// for the encryption block of an encrypted file).
pub const HEADER_LEN: usize = 96;
/// Feature flag: the file is encrypted (encryption block at byte 96,
/// trailer of `ENCRYPTED_TRAILER` bytes).
pub const FLAG_ENCRYPTED: u32 = 1;
/// Feature flag: page 0 holds entry counts of trees ([`TreeCount`], from
/// [`COUNTS_AT`]) that overrule their catalog records. Set exactly when it
/// holds at least one: a build that does not know the flag would read the
/// catalog's older counts, so it refuses the file instead.
pub const FLAG_TREE_COUNTS: u32 = 2;
const KNOWN_FLAGS: u32 = FLAG_ENCRYPTED | FLAG_TREE_COUNTS;
/// Where page 0's entry counts start: after the encryption block (bytes
/// 96..160), and so encrypted with the rest of the page in an encrypted
/// file. A u32 count of records, then the records.
pub const COUNTS_AT: usize = 160;
/// Bytes of one [`TreeCount`] record: root page u32, serial u64, entries u64.
const COUNT_RECORD: usize = 20;

/// The entry count of one tree, kept in page 0 instead of the tree's
/// catalog record: a commit that only adds or removes entries then writes
/// page 0 (which every commit writes) and not the catalog leaf as well.
/// The tree is named by its root page and serial, which together are
/// unique among the trees of a file; a commit that changes the catalog in
/// any other way (a tree created, dropped or moved) folds every record
/// back into the catalog, so a record never outlives its tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeCount {
    /// The tree's root page.
    pub root: PageNo,
    /// The tree's serial (`TreeMeta::serial`).
    pub serial: u64,
    /// Its number of entries.
    pub entries: u64,
}

impl TreeCount {
    /// Whether this is the count of the tree rooted at `root` with serial
    /// `serial`.
    pub fn is_of(&self, root: PageNo, serial: u64) -> bool {
        self.root == root && self.serial == serial
    }
}

/// The decoded file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version of the file.
    pub format_version: u32,
    /// Page size in bytes.
    pub page_size: u32,
    /// Bytes reserved at the end of every page (the checksum trailer).
    pub trailer_len: u32,
    /// Feature flags ([`FLAG_ENCRYPTED`]; an unknown bit is `Unsupported`).
    /// [`FLAG_TREE_COUNTS`] is not kept here: [`Header::encode`] sets it
    /// from `tree_counts`.
    pub flags: u32,
    /// Random identity of this database, repeated in its WAL header so that
    /// a WAL of another database is never replayed here.
    pub file_id: [u8; 16],
    /// Number of pages in the database, page 0 included.
    pub page_count: PageNo,
    /// First freelist trunk page, 0 when the freelist is empty.
    pub freelist_head: PageNo,
    /// Pages on the freelist (trunks included).
    pub freelist_count: u32,
    /// Root page of the catalog tree (names → trees); 0 until the first
    /// transaction creates it.
    pub catalog_root: PageNo,
    /// Number of write transactions committed over the file's life.
    pub commit_counter: u64,
    /// Number of trees created or dropped over the file's life: bindings
    /// that cache what a collection is (its kind, its indexes) compare it
    /// to learn that another handle or process changed the catalog.
    pub catalog_version: u64,
    /// Entry counts that overrule the catalog's (see [`TreeCount`]), in no
    /// particular order, at most [`Header::count_capacity`] of them.
    pub tree_counts: Vec<TreeCount>,
}

/// What the first bytes of a file say about how to read its pages: what
/// `open` needs before any page can be read (and checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Page size in bytes.
    pub page_size: u32,
    /// The file id.
    pub file_id: [u8; 16],
    /// The encryption block of an encrypted file.
    pub crypt: Option<CryptHeader>,
}

/// Whether a header prefix whose magic is wrong is still an obj header
/// with a damaged magic rather than another kind of file: at most two of
/// the eight magic bytes differ, or the fields after it (format version 1,
/// a valid page size, a known trailer length, a non-zero file id) are what
/// obj writes. A bit flip in the magic is then `Corruption`, as it is
/// anywhere else in the file.
fn damaged_magic(prefix: &[u8]) -> bool {
    let differing = prefix[0..8].iter().zip(MAGIC.iter()).filter(|(a, b)| a != b).count();
    let trailer = u32_at(prefix, 16) as usize;
    differing <= 2
        || (u32_at(prefix, 8) == FORMAT_VERSION
            && valid_page_size(u32_at(prefix, 12) as usize)
            && (trailer == CHECKSUM_TRAILER || trailer == ENCRYPTED_TRAILER)
            && prefix[24..40].iter().any(|&b| b != 0))
}

/// Where page 0 records the salt of the WAL generation its image was
/// committed into (see [`stamp_wal_position`]). Outside [`Header`]: the
/// transaction that makes the image does not know it; the commit does.
const WAL_SALT_AT: std::ops::Range<usize> = 72..80;

/// Where page 0 records how many frames of that generation were durable
/// (fdatasynced) before its commit was written.
const WAL_DURABLE_AT: std::ops::Range<usize> = 80..88;

/// Records in a page-0 image (plaintext content) the salt of the WAL
/// generation it is being committed into, and how many frames of that
/// generation were already durable. A checkpoint carries the image into
/// the main file, so recovery can tell a WAL whose commits the main file
/// has partly taken from one the main file moved on without (the same
/// file written under another name, a hard link, while this WAL held
/// commits): see `check_wal_matches_main` in the pager. The durable count
/// lets recovery tell a frame damaged after it was synced from a torn
/// one (see `Wal::recover`).
pub fn stamp_wal_position(page: &mut [u8], salt: u64, durable_frames: u64) {
    page[WAL_SALT_AT].copy_from_slice(&salt.to_le_bytes());
    page[WAL_DURABLE_AT].copy_from_slice(&durable_frames.to_le_bytes());
}

/// The salt [`stamp_wal_position`] recorded; 0 in images written before the
/// field existed (and in page 0 of a new database).
pub fn wal_salt_of(page: &[u8]) -> u64 {
    u64::from_le_bytes(page[WAL_SALT_AT].try_into().expect("8 bytes"))
}

/// The durable frame count [`stamp_wal_position`] recorded; 0 when none
/// was known (and in images written before the field existed).
pub fn wal_durable_of(page: &[u8]) -> u64 {
    u64::from_le_bytes(page[WAL_DURABLE_AT].try_into().expect("8 bytes"))
}

impl Header {
    /// The header of a new, empty database (the caller sets `catalog_root`).
    pub fn new(page_size: u32, trailer_len: u32, file_id: [u8; 16]) -> Self {
        Header {
            format_version: FORMAT_VERSION,
            page_size,
            trailer_len,
            flags: 0,
            file_id,
            page_count: 1,
            freelist_head: 0,
            freelist_count: 0,
            catalog_root: 0,
            commit_counter: 0,
            catalog_version: 0,
            tree_counts: Vec::new(),
        }
    }

    /// How many [`TreeCount`] records page 0 has room for.
    pub fn count_capacity(&self) -> usize {
        count_capacity(self.page_size as usize, self.trailer_len as usize)
    }

    /// The entry count page 0 holds for the tree rooted at `root` with
    /// serial `serial`, if it holds one (else the catalog's is current).
    pub fn tree_count(&self, root: PageNo, serial: u64) -> Option<u64> {
        self.tree_counts.iter().find(|c| c.is_of(root, serial)).map(|c| c.entries)
    }

    /// True when the file is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Marks the header as that of an encrypted (or a plain) file, with the
    /// matching trailer length. The encryption block itself (bytes 96..160)
    /// is the page codec's: it stamps it into every image of page 0.
    pub fn set_encrypted(&mut self, encrypted: bool) {
        if encrypted {
            self.flags |= FLAG_ENCRYPTED;
            self.trailer_len = ENCRYPTED_TRAILER as u32;
        } else {
            self.flags &= !FLAG_ENCRYPTED;
            self.trailer_len = CHECKSUM_TRAILER as u32;
        }
    }

    /// Writes the header into page 0's content: its first [`HEADER_LEN`]
    /// bytes, and the entry counts from [`COUNTS_AT`] (whose flag it sets
    /// when there are any). `page` is the whole page.
    pub fn encode(&self, page: &mut [u8]) {
        assert!(self.tree_counts.len() <= self.count_capacity(), "more tree counts than page 0 holds");
        let flags = match self.tree_counts.is_empty() {
            true => self.flags & !FLAG_TREE_COUNTS,
            false => self.flags | FLAG_TREE_COUNTS,
        };
        let end = self.page_size as usize - self.trailer_len as usize;
        // (Zero past the records too: the page may be an older image.)
        page[COUNTS_AT..end].fill(0);
        let counts = &mut page[COUNTS_AT..COUNTS_AT + 4 + self.tree_counts.len() * COUNT_RECORD];
        counts[..4].copy_from_slice(&(self.tree_counts.len() as u32).to_le_bytes());
        for (c, out) in self.tree_counts.iter().zip(counts[4..].chunks_exact_mut(COUNT_RECORD)) {
            out[0..4].copy_from_slice(&c.root.to_le_bytes());
            out[4..12].copy_from_slice(&c.serial.to_le_bytes());
            out[12..20].copy_from_slice(&c.entries.to_le_bytes());
        }
        let b = &mut page[..HEADER_LEN];
        b.fill(0);
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.format_version.to_le_bytes());
        b[12..16].copy_from_slice(&self.page_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.trailer_len.to_le_bytes());
        b[20..24].copy_from_slice(&flags.to_le_bytes());
        b[24..40].copy_from_slice(&self.file_id);
        b[40..44].copy_from_slice(&self.page_count.to_le_bytes());
        b[44..48].copy_from_slice(&self.freelist_head.to_le_bytes());
        b[48..52].copy_from_slice(&self.freelist_count.to_le_bytes());
        b[52..56].copy_from_slice(&self.catalog_root.to_le_bytes());
        b[56..64].copy_from_slice(&self.commit_counter.to_le_bytes());
        b[64..72].copy_from_slice(&self.catalog_version.to_le_bytes());
    }

    /// Reads the page size, file id and encryption block from the first
    /// bytes of a file, before its pages can be read. Only the encryption
    /// flag is looked at here: the other flags and the trailer length are
    /// checked by [`Header::decode`] once page 0 has passed its checks.
    pub fn probe_layout(prefix: &[u8]) -> Result<Layout> {
        let page_size = Self::probe(prefix)?;
        let crypt =
            if u32_at(prefix, 20) & FLAG_ENCRYPTED != 0 { Some(CryptHeader::decode(prefix)?) } else { None };
        Ok(Layout { page_size, file_id: prefix[24..40].try_into().expect("16 bytes"), crypt })
    }

    /// Checks the magic, version and page size of a header prefix, as read
    /// from the start of a file, and returns the page size. This is what
    /// tells "not an obj database" from "newer format" from "corrupt".
    pub fn probe(prefix: &[u8]) -> Result<u32> {
        if prefix.len() < HEADER_LEN || prefix[0..8] != MAGIC {
            if prefix.len() >= HEADER_LEN && damaged_magic(prefix) {
                return Err(Error::corruption(0, "damaged header: bad magic, but the rest is an obj header"));
            }
            return Err(Error::InvalidArgument("file is not an obj database (bad magic)".into()));
        }
        let version = u32_at(prefix, 8);
        if version > FORMAT_VERSION {
            return Err(Error::Unsupported(format!(
                "file format version {version} is newer than this build supports ({FORMAT_VERSION})"
            )));
        }
        if version == 0 {
            return Err(Error::corruption(0, "format version 0"));
        }
        let page_size = u32_at(prefix, 12);
        if !valid_page_size(page_size as usize) {
            return Err(Error::corruption(0, format!("invalid page size {page_size}")));
        }
        Ok(page_size)
    }

    /// Decodes a header from page 0's content (checksum already verified):
    /// the whole page, or at least its first [`HEADER_LEN`] bytes when the
    /// entry counts flag is clear.
    pub fn decode(page: &[u8]) -> Result<Header> {
        let page_size = Self::probe(page)?;
        let mut h = Header {
            format_version: u32_at(page, 8),
            page_size,
            trailer_len: u32_at(page, 16),
            flags: u32_at(page, 20),
            file_id: page[24..40].try_into().expect("16 bytes"),
            page_count: u32_at(page, 40),
            freelist_head: u32_at(page, 44),
            freelist_count: u32_at(page, 48),
            catalog_root: u32_at(page, 52),
            commit_counter: u64::from_le_bytes(page[56..64].try_into().expect("8 bytes")),
            catalog_version: u64::from_le_bytes(page[64..72].try_into().expect("8 bytes")),
            tree_counts: Vec::new(),
        };
        if h.flags & !KNOWN_FLAGS != 0 {
            return Err(Error::Unsupported(format!("unknown feature flags {:#x}", h.flags & !KNOWN_FLAGS)));
        }
        let trailer = if h.is_encrypted() { ENCRYPTED_TRAILER } else { CHECKSUM_TRAILER };
        if h.trailer_len as usize != trailer {
            return Err(Error::Unsupported(format!("page trailer of {} bytes", h.trailer_len)));
        }
        // catalog_root 0 means "created, catalog not yet made": the first
        // open makes it in its first transaction.
        if h.page_count < 1 || h.catalog_root >= h.page_count {
            return Err(Error::corruption(0, "header page count or catalog root out of range"));
        }
        // The first transaction makes the catalog and the file's second
        // page together: a longer file without one lost its catalog root.
        if h.catalog_root == 0 && h.page_count > 1 {
            return Err(Error::corruption(
                0,
                format!("header has no catalog root in a database of {} pages", h.page_count),
            ));
        }
        if h.freelist_head >= h.page_count || h.freelist_count >= h.page_count {
            return Err(Error::corruption(0, "header freelist out of range"));
        }
        if h.flags & FLAG_TREE_COUNTS != 0 {
            h.flags &= !FLAG_TREE_COUNTS;
            h.tree_counts = decode_counts(page, &h)?;
        }
        Ok(h)
    }
}

/// How many [`TreeCount`] records fit in page 0 between [`COUNTS_AT`] and
/// the page's trailer.
fn count_capacity(page_size: usize, trailer_len: usize) -> usize {
    (page_size - trailer_len - COUNTS_AT - 4) / COUNT_RECORD
}

/// The entry counts of page 0, whose flag `h` has: at least one, no more
/// than fit, each of a tree rooted inside the file (not at the header or
/// the catalog's root). (That no root is counted twice is the integrity
/// check's to find: a lookup takes the first.)
fn decode_counts(page: &[u8], h: &Header) -> Result<Vec<TreeCount>> {
    let n = u32_at(page, COUNTS_AT) as usize;
    if n == 0 || n > h.count_capacity() || page.len() < COUNTS_AT + 4 + n * COUNT_RECORD {
        return Err(Error::corruption(0, format!("header holds {n} tree entry counts")));
    }
    let mut counts: Vec<TreeCount> = Vec::with_capacity(n);
    for r in page[COUNTS_AT + 4..COUNTS_AT + 4 + n * COUNT_RECORD].chunks_exact(COUNT_RECORD) {
        let c = TreeCount {
            root: u32_at(r, 0),
            serial: u64::from_le_bytes(r[4..12].try_into().expect("8 bytes")),
            entries: u64::from_le_bytes(r[12..20].try_into().expect("8 bytes")),
        };
        if c.root == 0 || c.root == h.catalog_root || c.root >= h.page_count {
            return Err(Error::corruption(
                0,
                format!("header counts the entries of a tree rooted at page {}", c.root),
            ));
        }
        counts.push(c);
    }
    Ok(counts)
}

/// True for a power of two from 4 KiB to 64 KiB.
pub fn valid_page_size(size: usize) -> bool {
    size.is_power_of_two()
        && (crate::storage::page::MIN_PAGE_SIZE..=crate::storage::page::MAX_PAGE_SIZE).contains(&size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut h = Header::new(8192, 4, [7; 16]);
        h.page_count = 10;
        h.catalog_root = 1;
        h.freelist_head = 3;
        h.freelist_count = 2;
        h.commit_counter = 99;
        let mut page = vec![0u8; 8192];
        h.encode(&mut page);
        assert_eq!(Header::decode(&page).unwrap(), h);
    }

    #[test]
    fn round_trip_encrypted() {
        use crate::storage::crypto::{CryptHeader, KeySource};
        let mut h = Header::new(4096, 0, [9; 16]);
        h.set_encrypted(true);
        h.page_count = 3;
        h.catalog_root = 1;
        assert_eq!((h.flags, h.trailer_len), (FLAG_ENCRYPTED, 32));
        let mut page = vec![0u8; 4096];
        h.encode(&mut page);
        assert_eq!(Header::decode(&page).unwrap(), h);
        let crypt = CryptHeader { source: KeySource::Raw, salt: [0; 16], key_check: [5; 16] };
        crypt.encode(&mut page);
        let layout = Header::probe_layout(&page[..160]).unwrap();
        assert_eq!((layout.page_size, layout.file_id, layout.crypt), (4096, [9; 16], Some(crypt)));
        // An encrypted flag with a plain trailer length is refused.
        page[16] = 4;
        assert!(matches!(Header::decode(&page), Err(Error::Unsupported(_))));
    }

    #[test]
    fn rejects_foreign_and_newer_files() {
        let page = vec![b'x'; 4096];
        assert!(matches!(Header::decode(&page), Err(Error::InvalidArgument(_))));
        let mut h = Header::new(4096, 4, [0; 16]);
        h.page_count = 2;
        h.catalog_root = 1;
        let mut page = vec![0u8; 4096];
        h.encode(&mut page);
        page[8] = 2;
        assert!(matches!(Header::decode(&page), Err(Error::Unsupported(_))));
        page[8] = 1;
        page[12..16].copy_from_slice(&3000u32.to_le_bytes());
        assert!(Header::decode(&page).unwrap_err().is_corruption());
    }
}

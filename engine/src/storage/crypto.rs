//! Encryption at rest: AES-256-GCM per page, keyed per file.
//!
//! The pager turns plaintext pages into on-disk images and back through a
//! [`PageCodec`], at the two points where a plain database seals and checks
//! its CRC trailer. A plain codec does exactly that; an AES codec encrypts
//! the page content, stores a fresh random nonce and the GCM tag in the
//! page's trailer and then seals the CRC over the encrypted image, so the
//! WAL (whose frame checksums cover what is on disk) and the checkpoint
//! (which copies images) never see plaintext and need no change. Layout and
//! rationale: `docs/format.md`, "Encrypted databases".
//!
//! Keys: the user gives 32 raw bytes or a passphrase, which Argon2id
//! stretches into 32 bytes with the salt and costs stored in the header.
//! That master key never encrypts anything itself: HKDF-SHA256 with the
//! file id as salt derives the page key and an independent key-check value
//! stored in the header, so a wrong key is told from a damaged page before
//! any page is read, and two files under one master key have unrelated
//! page keys (the nonce space is per file). The codec keeps the master key
//! so that a copy of the file (a backup, a compacted copy) can be sealed
//! under its own file id with the same key ([`PageCodec::for_copy`]).

use std::fmt;

use hkdf::Hkdf;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, PageNo, Result};
use crate::parallel::in_two_halves_mut;
use crate::storage::page::{seal_page, verify_page, Page, PageRef, CHECKSUM_TRAILER};

/// Bytes of the random GCM nonce stored in each encrypted page.
pub const NONCE_LEN: usize = 12;
/// Bytes of the GCM authentication tag stored in each encrypted page.
pub const TAG_LEN: usize = 16;
/// Trailer of an encrypted page: nonce, tag, then the usual CRC-32.
pub const ENCRYPTED_TRAILER: usize = NONCE_LEN + TAG_LEN + CHECKSUM_TRAILER;
/// Bytes at the start of page 0 that stay plaintext in an encrypted file
/// (the header and the encryption block); they are authenticated as part of
/// page 0's associated data.
pub const PLAINTEXT_PREFIX: usize = 160;
/// Offset of the encryption block within page 0.
pub const CRYPT_BLOCK_AT: usize = 96;
/// Length of the encryption block.
pub const CRYPT_BLOCK_LEN: usize = PLAINTEXT_PREFIX - CRYPT_BLOCK_AT;

/// Commits of at least this many pages are encrypted on two threads (a
/// page takes about 2 µs, starting a thread a few tens).
const PARALLEL_SEAL_PAGES: usize = 64;

/// Cipher id stored in the encryption block: AES-256-GCM.
pub const CIPHER_AES_256_GCM: u8 = 1;

/// Upper bounds on Argon2 costs read from a file header, so that a hostile
/// file cannot make `open` allocate or spin without limit.
pub const MAX_KDF_MEMORY_KIB: u32 = 1 << 20;
/// See [`MAX_KDF_MEMORY_KIB`].
pub const MAX_KDF_ITERATIONS: u32 = 1000;
/// See [`MAX_KDF_MEMORY_KIB`].
pub const MAX_KDF_PARALLELISM: u32 = 64;

const INFO_PAGE_KEY: &[u8] = b"obj v1 page key (AES-256-GCM)";
const INFO_KEY_CHECK: &[u8] = b"obj v1 key check";

/// Argon2id costs for turning a passphrase into a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB (default 19456, i.e. 19 MiB).
    pub memory_kib: u32,
    /// Passes over the memory (default 2).
    pub iterations: u32,
    /// Lanes (default 1).
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// The OWASP-recommended minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        KdfParams { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

impl KdfParams {
    fn check(&self) -> Result<()> {
        let ok = (1..=MAX_KDF_ITERATIONS).contains(&self.iterations)
            && (1..=MAX_KDF_PARALLELISM).contains(&self.parallelism)
            && self.memory_kib >= 8 * self.parallelism
            && self.memory_kib <= MAX_KDF_MEMORY_KIB;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "Argon2 costs out of range: {} KiB, {} iterations, {} lanes (memory 8·lanes..={MAX_KDF_MEMORY_KIB} KiB, \
                 iterations 1..={MAX_KDF_ITERATIONS}, lanes 1..={MAX_KDF_PARALLELISM})",
                self.memory_kib, self.iterations, self.parallelism
            )))
        }
    }
}

#[derive(Clone)]
enum KeyMaterial {
    Raw(Zeroizing<[u8; 32]>),
    Passphrase(Zeroizing<Vec<u8>>),
}

/// The key of an encrypted database: 32 raw bytes, or a passphrase that
/// Argon2id turns into one. Its `Debug` form never shows the secret, and
/// the secret is wiped from memory when the value is dropped.
#[derive(Clone)]
pub struct EncryptionKey {
    material: KeyMaterial,
    kdf: KdfParams,
}

impl EncryptionKey {
    /// A raw 256-bit key, used as the file's master key.
    pub fn raw(key: [u8; 32]) -> Self {
        EncryptionKey { material: KeyMaterial::Raw(Zeroizing::new(key)), kdf: KdfParams::default() }
    }

    /// A passphrase (any bytes, usually UTF-8). A new database stores a
    /// random salt and the Argon2id costs ([`KdfParams::default`] unless
    /// [`EncryptionKey::with_kdf_params`] says otherwise) in its header;
    /// opening uses the stored ones.
    pub fn passphrase(passphrase: impl AsRef<[u8]>) -> Self {
        EncryptionKey {
            material: KeyMaterial::Passphrase(Zeroizing::new(passphrase.as_ref().to_vec())),
            kdf: KdfParams::default(),
        }
    }

    /// Argon2id costs for a database created (or rekeyed) with this
    /// passphrase. Ignored for raw keys and when opening existing files.
    pub fn with_kdf_params(mut self, params: KdfParams) -> Self {
        self.kdf = params;
        self
    }

    /// True for a passphrase key.
    pub fn is_passphrase(&self) -> bool {
        matches!(self.material, KeyMaterial::Passphrase(_))
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.material {
            KeyMaterial::Raw(_) => f.write_str("EncryptionKey::Raw(<redacted>)"),
            KeyMaterial::Passphrase(_) => write!(f, "EncryptionKey::Passphrase(<redacted>, {:?})", self.kdf),
        }
    }
}

/// Where the master key of a file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// 32 raw bytes given by the user.
    Raw,
    /// A passphrase through Argon2id (version 0x13) with the stored salt and costs.
    Argon2id(KdfParams),
}

/// The encryption block of page 0 (bytes 96..160, plaintext and
/// authenticated). Layout: `docs/format.md`, "Encrypted databases".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptHeader {
    /// How the master key is obtained.
    pub source: KeySource,
    /// Argon2 salt (zero for a raw key).
    pub salt: [u8; 16],
    /// HKDF output that tells a right key from a wrong one.
    pub key_check: [u8; 16],
}

impl CryptHeader {
    /// Writes the block at `CRYPT_BLOCK_AT` of page 0.
    pub fn encode(&self, page: &mut [u8]) {
        let b = &mut page[CRYPT_BLOCK_AT..PLAINTEXT_PREFIX];
        b.fill(0);
        b[0] = CIPHER_AES_256_GCM;
        let kdf = match self.source {
            KeySource::Raw => {
                b[1] = 1;
                KdfParams { memory_kib: 0, iterations: 0, parallelism: 0 }
            }
            KeySource::Argon2id(p) => {
                b[1] = 2;
                p
            }
        };
        b[4..8].copy_from_slice(&kdf.memory_kib.to_le_bytes());
        b[8..12].copy_from_slice(&kdf.iterations.to_le_bytes());
        b[12..16].copy_from_slice(&kdf.parallelism.to_le_bytes());
        b[16..32].copy_from_slice(&self.salt);
        b[32..48].copy_from_slice(&self.key_check);
    }

    /// Reads the block from the start of page 0 (at least
    /// [`PLAINTEXT_PREFIX`] bytes). An unknown cipher or key source is
    /// `Unsupported`; anything else out of place is `Corruption`.
    pub fn decode(page: &[u8]) -> Result<CryptHeader> {
        if page.len() < PLAINTEXT_PREFIX {
            return Err(Error::corruption(0, "encrypted file is truncated inside its header"));
        }
        let b = &page[CRYPT_BLOCK_AT..PLAINTEXT_PREFIX];
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        if b[0] != CIPHER_AES_256_GCM {
            return Err(Error::Unsupported(format!("cipher {} (this build knows AES-256-GCM = 1)", b[0])));
        }
        if b[2..4] != [0, 0] || b[48..] != [0; 16] {
            return Err(Error::corruption(0, "reserved bytes of the encryption block are not zero"));
        }
        let params = KdfParams { memory_kib: u32_at(4), iterations: u32_at(8), parallelism: u32_at(12) };
        let source = match b[1] {
            1 if params == (KdfParams { memory_kib: 0, iterations: 0, parallelism: 0 }) => KeySource::Raw,
            1 => return Err(Error::corruption(0, "raw-key file with key-derivation costs")),
            2 => {
                params.check().map_err(|_| {
                    Error::corruption(
                        0,
                        format!(
                            "Argon2 costs in the header out of range ({} KiB, {} iterations, {} lanes)",
                            params.memory_kib, params.iterations, params.parallelism
                        ),
                    )
                })?;
                KeySource::Argon2id(params)
            }
            other => return Err(Error::Unsupported(format!("key source {other}"))),
        };
        Ok(CryptHeader {
            source,
            salt: b[16..32].try_into().expect("16 bytes"),
            key_check: b[32..48].try_into().expect("16 bytes"),
        })
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::io("drawing random bytes from the OS", std::io::Error::other(e)))
}

/// The master key: the raw key, or Argon2id of the passphrase.
fn master_key(key: &EncryptionKey, source: &KeySource, salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>> {
    match (&key.material, source) {
        (KeyMaterial::Raw(k), KeySource::Raw) => Ok(k.clone()),
        (KeyMaterial::Passphrase(p), KeySource::Argon2id(params)) => {
            let argon_params =
                argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
                    .map_err(|e| Error::invalid(format!("Argon2 costs rejected: {e}")))?;
            let argon =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon_params);
            let mut out = Zeroizing::new([0u8; 32]);
            argon
                .hash_password_into(p, salt, &mut out[..])
                .map_err(|e| Error::invalid(format!("Argon2 failed: {e}")))?;
            Ok(out)
        }
        (KeyMaterial::Raw(_), KeySource::Argon2id(_)) => Err(Error::Encryption(
            "the database is encrypted with a passphrase, but a raw key was given".into(),
        )),
        (KeyMaterial::Passphrase(_), KeySource::Raw) => Err(Error::Encryption(
            "the database is encrypted with a raw key, but a passphrase was given".into(),
        )),
    }
}

/// HKDF-SHA256 (salt = file id) of the master key: the page key and the
/// key-check value, independent outputs of one PRF.
fn derive(master: &[u8; 32], file_id: &[u8; 16]) -> (Zeroizing<[u8; 32]>, [u8; 16]) {
    let hk = Hkdf::<Sha256>::new(Some(file_id), master);
    let mut page_key = Zeroizing::new([0u8; 32]);
    let mut check = [0u8; 16];
    hk.expand(INFO_PAGE_KEY, &mut page_key[..]).expect("32 bytes is a valid HKDF length");
    hk.expand(INFO_KEY_CHECK, &mut check).expect("16 bytes is a valid HKDF length");
    (page_key, check)
}

/// Turns plaintext pages into on-disk images and back. See the module
/// documentation.
pub enum PageCodec {
    /// No encryption: a CRC-32 trailer only.
    Plain,
    /// AES-256-GCM with the file's page key.
    Aes(Box<AesCodec>),
}

/// The state of an encrypted file's codec.
pub struct AesCodec {
    /// The page key, expanded for `ring`'s AES-256-GCM (standard GCM, so
    /// any implementation opens the file: a test checks one against
    /// RustCrypto's `aes-gcm`).
    cipher: LessSafeKey,
    file_id: [u8; 16],
    header: CryptHeader,
    /// The master key, kept to derive the keys of copies of the file.
    master: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for PageCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageCodec::Plain => f.write_str("PageCodec::Plain"),
            PageCodec::Aes(a) => write!(f, "PageCodec::Aes({:?})", a.header.source),
        }
    }
}

impl PageCodec {
    /// The codec of a new file with id `file_id`: plain without a key;
    /// with one, a fresh salt (for a passphrase) and key-check value.
    pub fn create(key: Option<&EncryptionKey>, file_id: [u8; 16]) -> Result<PageCodec> {
        let Some(key) = key else { return Ok(PageCodec::Plain) };
        let mut salt = [0u8; 16];
        let source = if key.is_passphrase() {
            key.kdf.check()?;
            random_bytes(&mut salt)?;
            KeySource::Argon2id(key.kdf)
        } else {
            KeySource::Raw
        };
        let master = master_key(key, &source, &salt)?;
        Ok(PageCodec::aes(master, file_id, source, salt))
    }

    /// The codec of a copy of this file with the id `file_id` (a backup, a
    /// compacted copy, a restore): plain for a plain file; for an encrypted
    /// one, the same master key, key source, Argon2 costs and salt (so the
    /// same key or passphrase opens the copy, without running Argon2
    /// again), and the page key and key-check value of the new file id, so
    /// that no page of one file authenticates in the other.
    pub fn for_copy(&self, file_id: [u8; 16]) -> PageCodec {
        match self {
            PageCodec::Plain => PageCodec::Plain,
            PageCodec::Aes(a) => PageCodec::aes(a.master.clone(), file_id, a.header.source, a.header.salt),
        }
    }

    /// The codec of an existing file: `stored` is its encryption block
    /// (`None` for a plain file). A missing key, a key for a plain file, or
    /// a wrong key is an [`Error::Encryption`].
    pub fn open(
        stored: Option<&CryptHeader>,
        key: Option<&EncryptionKey>,
        file_id: [u8; 16],
    ) -> Result<PageCodec> {
        match (stored, key) {
            (None, None) => Ok(PageCodec::Plain),
            (None, Some(_)) => Err(Error::Encryption(
                "an encryption key was given, but the database is not encrypted (use rekey to encrypt it)"
                    .into(),
            )),
            (Some(_), None) => Err(Error::Encryption("the database is encrypted; a key is required".into())),
            (Some(stored), Some(key)) => {
                let master = master_key(key, &stored.source, &stored.salt)?;
                let codec = PageCodec::aes(master, file_id, stored.source, stored.salt);
                if codec.crypt_header() != Some(*stored) {
                    return Err(Error::Encryption("wrong encryption key".into()));
                }
                Ok(codec)
            }
        }
    }

    fn aes(master: Zeroizing<[u8; 32]>, file_id: [u8; 16], source: KeySource, salt: [u8; 16]) -> PageCodec {
        let (page_key, key_check) = derive(&master, &file_id);
        let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &page_key[..]).expect("a 32-byte key"));
        let header = CryptHeader { source, salt, key_check };
        PageCodec::Aes(Box::new(AesCodec { cipher, file_id, header, master }))
    }

    /// Checks that `key` opens this file, as [`PageCodec::open`] would
    /// (used when a second handle joins an open database).
    pub fn check_key(&self, key: Option<&EncryptionKey>) -> Result<()> {
        match self {
            PageCodec::Plain => Self::open(None, key, [0; 16]).map(drop),
            PageCodec::Aes(a) => Self::open(Some(&a.header), key, a.file_id).map(drop),
        }
    }

    /// Bytes reserved at the end of every page.
    pub fn trailer_len(&self) -> usize {
        match self {
            PageCodec::Plain => CHECKSUM_TRAILER,
            PageCodec::Aes(_) => ENCRYPTED_TRAILER,
        }
    }

    /// The encryption block for the header, `None` for a plain file.
    pub fn crypt_header(&self) -> Option<CryptHeader> {
        match self {
            PageCodec::Plain => None,
            PageCodec::Aes(a) => Some(a.header),
        }
    }

    /// True for an encrypted file.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, PageCodec::Aes(_))
    }

    /// Prepares committed pages for the WAL: plain pages are sealed in
    /// place (their CRC trailer) and are their own images. Encrypted pages
    /// stay plaintext, for the cache: the WAL encrypts their copies in its
    /// write buffer ([`PageCodec::encrypt_images`]), which spares each page
    /// an image of its own.
    pub fn seal_pages(&self, pages: &mut [(PageNo, PageRef)]) {
        if let PageCodec::Plain = self {
            for (pgno, page) in pages.iter_mut() {
                seal_page(*pgno, &mut PageRef::make_mut(page)[..]);
            }
        }
    }

    /// Turns plaintext page images into their on-disk images, in place, for
    /// an encrypted file (their trailers are overwritten), under nonces
    /// drawn from the OS in one call; a large batch is encrypted half on a
    /// second thread. A plain file's images are left as they are (sealed
    /// already, by [`PageCodec::seal_pages`] or [`PageCodec::seal_run`]).
    pub fn encrypt_images(&self, images: &mut [(PageNo, &mut [u8])]) -> Result<()> {
        let PageCodec::Aes(a) = self else { return Ok(()) };
        let mut nonces = vec![0u8; NONCE_LEN * images.len()];
        random_bytes(&mut nonces)?;
        in_two_halves_mut(images, PARALLEL_SEAL_PAGES, |part, at| {
            for ((pgno, image), nonce) in
                part.iter_mut().zip(nonces[at * NONCE_LEN..].chunks_exact(NONCE_LEN))
            {
                a.encrypt_in_place(*pgno, image, nonce.try_into().expect("12 bytes"))?;
            }
            Ok(())
        })
    }

    /// Seals `pages.len() / page_size` consecutive pages in place, numbered
    /// from `first`: the CRC trailer of plain pages; encryption of the
    /// content (which becomes the on-disk image). For files written page by
    /// page (copies), where the plaintext is not needed afterwards.
    pub fn seal_run(&self, first: PageNo, pages: &mut [u8], page_size: usize) -> Result<()> {
        debug_assert_eq!(pages.len() % page_size, 0);
        let numbered = (first..).zip(pages.chunks_exact_mut(page_size));
        match self {
            PageCodec::Plain => {
                numbered.for_each(|(pgno, page)| seal_page(pgno, page));
                Ok(())
            }
            PageCodec::Aes(_) => self.encrypt_images(&mut numbered.collect::<Vec<_>>()),
        }
    }

    /// The on-disk image of one page: `None` when the (plain) page, sealed
    /// in place, is its own image.
    pub fn seal(&self, pgno: PageNo, page: &mut PageRef) -> Result<Option<Page>> {
        match self {
            PageCodec::Plain => {
                seal_page(pgno, &mut PageRef::make_mut(page)[..]);
                Ok(None)
            }
            PageCodec::Aes(_) => {
                let mut image = Page::from_vec(page.to_vec());
                self.encrypt_images(&mut [(pgno, &mut image[..])])?;
                Ok(Some(image))
            }
        }
    }

    /// Checks (and, if encrypted, decrypts in place) a page image read for
    /// page `pgno`. A CRC mismatch or an authentication failure is
    /// `Corruption` naming the page: the key was verified at open.
    pub fn open_page(&self, pgno: PageNo, page: &mut [u8]) -> Result<()> {
        verify_page(pgno, page)?;
        match self {
            PageCodec::Plain => Ok(()),
            PageCodec::Aes(a) => a.decrypt(pgno, page),
        }
    }
}

impl AesCodec {
    /// The associated data of page `pgno`: the file id, the page number
    /// and, for page 0, its plaintext prefix.
    fn aad(&self, pgno: PageNo, prefix: &[u8], out: &mut [u8; 20 + PLAINTEXT_PREFIX]) -> usize {
        out[..16].copy_from_slice(&self.file_id);
        out[16..20].copy_from_slice(&pgno.to_le_bytes());
        out[20..20 + prefix.len()].copy_from_slice(prefix);
        20 + prefix.len()
    }

    /// Turns the plaintext page `image` (its trailer is overwritten) into
    /// its on-disk image.
    fn encrypt_in_place(&self, pgno: PageNo, image: &mut [u8], nonce: [u8; NONCE_LEN]) -> Result<()> {
        let body_end = image.len() - ENCRYPTED_TRAILER;
        let start = if pgno == 0 { PLAINTEXT_PREFIX } else { 0 };
        if pgno == 0 {
            // The encryption block is the codec's, in every image of page 0.
            self.header.encode(image);
        }
        let mut aad = [0u8; 20 + PLAINTEXT_PREFIX];
        let aad_len = self.aad(pgno, &image[..start], &mut aad);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..aad_len]),
                &mut image[start..body_end],
            )
            .map_err(|_| Error::Encryption(format!("encrypting page {pgno} failed")))?;
        image[body_end..body_end + NONCE_LEN].copy_from_slice(&nonce);
        image[body_end + NONCE_LEN..body_end + NONCE_LEN + TAG_LEN].copy_from_slice(tag.as_ref());
        seal_page(pgno, image);
        Ok(())
    }

    fn decrypt(&self, pgno: PageNo, page: &mut [u8]) -> Result<()> {
        let body_end = page.len() - ENCRYPTED_TRAILER;
        let start = if pgno == 0 { PLAINTEXT_PREFIX } else { 0 };
        let nonce: [u8; NONCE_LEN] = page[body_end..body_end + NONCE_LEN].try_into().expect("12 bytes");
        let tag: [u8; TAG_LEN] =
            page[body_end + NONCE_LEN..body_end + NONCE_LEN + TAG_LEN].try_into().expect("16 bytes");
        let mut aad = [0u8; 20 + PLAINTEXT_PREFIX];
        let (prefix, rest) = page.split_at_mut(start);
        let aad_len = self.aad(pgno, prefix, &mut aad);
        self.cipher
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..aad_len]),
                Tag::from(tag),
                &mut rest[..body_end - start],
                0..,
            )
            .map_err(|_| {
                Error::corruption(
                    pgno,
                    "page failed authentication (altered, moved from another page, or from another file)",
                )
            })?;
        if pgno == 0 && CryptHeader::decode(page).ok() != Some(self.header) {
            return Err(Error::corruption(0, "the encryption block of page 0 changed"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> PageCodec {
        PageCodec::create(Some(&EncryptionKey::raw([7; 32])), [3; 16]).unwrap()
    }

    #[test]
    fn round_trip_and_binding() {
        let c = codec();
        let mut page: PageRef = Page::from_vec((0..4096).map(|i| (i % 251) as u8).collect()).into_ref();
        let image = c.seal(5, &mut page).unwrap().unwrap();
        assert_ne!(&image[..4064], &page[..4064]);
        let mut back = image.clone();
        c.open_page(5, &mut back).unwrap();
        assert_eq!(&back[..4064], &page[..4064]);
        // Another page number: the CRC catches it; with the CRC redone, GCM does.
        let mut moved = image.clone();
        assert!(c.open_page(6, &mut moved).unwrap_err().is_corruption());
        seal_page(6, &mut moved);
        let err = c.open_page(6, &mut moved).unwrap_err();
        assert!(err.to_string().contains("authentication"), "{err}");
        // Same key, another file id.
        let other = PageCodec::create(Some(&EncryptionKey::raw([7; 32])), [4; 16]).unwrap();
        let mut foreign = image.clone();
        assert!(other.open_page(5, &mut foreign).unwrap_err().is_corruption());
        // Two seals of one page never share a nonce.
        let again = c.seal(5, &mut page).unwrap().unwrap();
        assert_ne!(image[4064..4076], again[4064..4076]);
    }

    /// The on-disk format is standard AES-256-GCM, not one library's: a page
    /// sealed by the codec (`ring`) opens with RustCrypto's `aes-gcm`, and a
    /// page sealed by `aes-gcm` (as builds before the switch wrote them)
    /// opens with the codec, on page 0 (with its plaintext prefix in the
    /// associated data) and on another page.
    #[test]
    fn pages_are_standard_aes_gcm() {
        use aes_gcm::aead::{AeadInOut, Nonce as RcNonce, Tag as RcTag};
        use aes_gcm::{Aes256Gcm, KeyInit};
        let c = codec();
        let PageCodec::Aes(a) = &c else { unreachable!("an encrypted codec") };
        let (page_key, _) = derive(&a.master, &a.file_id);
        let reference = Aes256Gcm::new_from_slice(&page_key[..]).unwrap();
        for pgno in [0, 7] {
            let start = if pgno == 0 { PLAINTEXT_PREFIX } else { 0 };
            let body_end = 4096 - ENCRYPTED_TRAILER;
            let mut page: PageRef =
                Page::from_vec((0..4096).map(|i| (i * 7 % 253) as u8).collect()).into_ref();
            let image = c.seal(pgno, &mut page).unwrap().unwrap();
            let mut aad = [0u8; 20 + PLAINTEXT_PREFIX];
            let aad_len = a.aad(pgno, &image[..start], &mut aad);
            let nonce: [u8; NONCE_LEN] = image[body_end..body_end + NONCE_LEN].try_into().unwrap();
            let tag =
                RcTag::<Aes256Gcm>::try_from(&image[body_end + NONCE_LEN..body_end + NONCE_LEN + TAG_LEN])
                    .unwrap();
            let mut body = image[start..body_end].to_vec();
            reference
                .decrypt_inout_detached(
                    &RcNonce::<Aes256Gcm>::from(nonce),
                    &aad[..aad_len],
                    body.as_mut_slice().into(),
                    &tag,
                )
                .expect("aes-gcm opens the codec's page");
            assert_eq!(&body[..], &page[start..body_end], "page {pgno}");

            // The other way: a plaintext page sealed by aes-gcm, as the
            // codec lays it out (page 0 stamped with the encryption block).
            let mut old = page.to_vec();
            if pgno == 0 {
                a.header.encode(&mut old);
            }
            let aad_len = a.aad(pgno, &old[..start], &mut aad);
            let nonce = [0x5A; NONCE_LEN];
            let tag = reference
                .encrypt_inout_detached(
                    &RcNonce::<Aes256Gcm>::from(nonce),
                    &aad[..aad_len],
                    (&mut old[start..body_end]).into(),
                )
                .unwrap();
            assert_ne!(&old[start..body_end], &page[start..body_end]);
            old[body_end..body_end + NONCE_LEN].copy_from_slice(&nonce);
            old[body_end + NONCE_LEN..body_end + NONCE_LEN + TAG_LEN].copy_from_slice(&tag);
            seal_page(pgno, &mut old);
            c.open_page(pgno, &mut old).expect("the codec opens aes-gcm's page");
            assert_eq!(&old[start..body_end], &page[start..body_end], "page {pgno}");
        }
    }

    /// A batch large enough to be encrypted on two threads gives each page
    /// its own image, in order, under its own nonce; the plaintext pages
    /// of a commit are left as they are.
    #[test]
    fn large_commits_seal_every_page_in_order() {
        let c = codec();
        let count = 3 * PARALLEL_SEAL_PAGES + 1;
        let mut pages: Vec<(PageNo, PageRef)> =
            (0..count as PageNo).map(|k| (k + 1, Page::from_vec(vec![k as u8; 4096]).into_ref())).collect();
        c.seal_pages(&mut pages);
        assert!(pages.iter().all(|(pgno, page)| page[..] == [(*pgno - 1) as u8; 4096]));
        let mut images: Vec<Vec<u8>> = pages.iter().map(|(_, page)| page.to_vec()).collect();
        let mut batch: Vec<(PageNo, &mut [u8])> =
            pages.iter().zip(images.iter_mut()).map(|((pgno, _), image)| (*pgno, &mut image[..])).collect();
        c.encrypt_images(&mut batch).unwrap();
        let mut nonces = std::collections::HashSet::new();
        for ((pgno, plain), image) in pages.iter().zip(&images) {
            let mut back = image.clone();
            c.open_page(*pgno, &mut back).unwrap();
            assert_eq!(&back[..4064], &plain[..4064], "page {pgno}");
            assert!(nonces.insert(image[4064..4064 + NONCE_LEN].to_vec()), "page {pgno} reuses a nonce");
        }
    }

    #[test]
    fn page_zero_keeps_its_prefix_in_plaintext() {
        let c = codec();
        let mut page: PageRef = Page::from_vec(vec![0xAB; 4096]).into_ref();
        let image = c.seal(0, &mut page).unwrap().unwrap();
        assert_eq!(&image[..CRYPT_BLOCK_AT], &page[..CRYPT_BLOCK_AT]);
        assert_eq!(
            CryptHeader::decode(&image).unwrap(),
            c.crypt_header().unwrap(),
            "the codec stamps its block"
        );
        let mut back = image.clone();
        c.open_page(0, &mut back).unwrap();
        assert_eq!(&back[PLAINTEXT_PREFIX..4064], &page[PLAINTEXT_PREFIX..4064]);
        assert_ne!(&image[PLAINTEXT_PREFIX..4064], &page[PLAINTEXT_PREFIX..4064]);
        let mut tampered = image.clone();
        tampered[40] ^= 1;
        seal_page(0, &mut tampered);
        assert!(c.open_page(0, &mut tampered).unwrap_err().is_corruption());
    }

    #[test]
    fn copies_have_their_own_page_key_and_the_same_master_key() {
        let c = codec();
        let copy = c.for_copy([9; 16]);
        let (h, hc) = (c.crypt_header().unwrap(), copy.crypt_header().unwrap());
        assert_eq!((h.source, h.salt), (hc.source, hc.salt));
        assert_ne!(h.key_check, hc.key_check);
        // The original's key opens the copy (by its own file id), not another.
        assert!(PageCodec::open(Some(&hc), Some(&EncryptionKey::raw([7; 32])), [9; 16]).is_ok());
        assert!(matches!(
            PageCodec::open(Some(&hc), Some(&EncryptionKey::raw([7; 32])), [3; 16]),
            Err(Error::Encryption(_))
        ));
        // seal_run seals pages in place, numbered from `first`, each under
        // its own nonce; only the copy opens them.
        let plain: Vec<u8> = (0..3 * 4096).map(|i| (i % 253) as u8).collect();
        let mut run = plain.clone();
        copy.seal_run(4, &mut run, 4096).unwrap();
        for (i, page) in run.chunks_exact(4096).enumerate() {
            let pgno = 4 + i as PageNo;
            let mut back = page.to_vec();
            copy.open_page(pgno, &mut back).unwrap();
            assert_eq!(&back[..4064], &plain[i * 4096..i * 4096 + 4064]);
            assert!(c.open_page(pgno, &mut page.to_vec()).unwrap_err().is_corruption());
        }
        assert_ne!(run[4064..4076], run[4096 + 4064..4096 + 4076], "nonces repeat");
        let mut plain_run = plain.clone();
        PageCodec::Plain.seal_run(1, &mut plain_run, 4096).unwrap();
        PageCodec::Plain.open_page(2, &mut plain_run[4096..8192].to_vec()).unwrap();
        assert!(PageCodec::Plain.for_copy([1; 16]).crypt_header().is_none());
    }

    #[test]
    fn keys_are_checked() {
        let c = codec();
        let stored = c.crypt_header().unwrap();
        assert!(matches!(PageCodec::open(Some(&stored), None, [3; 16]), Err(Error::Encryption(_))));
        let wrong = EncryptionKey::raw([8; 32]);
        assert!(matches!(PageCodec::open(Some(&stored), Some(&wrong), [3; 16]), Err(Error::Encryption(_))));
        assert!(PageCodec::open(Some(&stored), Some(&EncryptionKey::raw([7; 32])), [3; 16]).is_ok());
        assert!(matches!(PageCodec::open(None, Some(&wrong), [3; 16]), Err(Error::Encryption(_))));
        let pass = EncryptionKey::passphrase("pw").with_kdf_params(KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        });
        assert!(matches!(PageCodec::open(Some(&stored), Some(&pass), [3; 16]), Err(Error::Encryption(_))));
        let p = PageCodec::create(Some(&pass), [3; 16]).unwrap();
        let ph = p.crypt_header().unwrap();
        let mut block = vec![0u8; 4096];
        ph.encode(&mut block);
        assert_eq!(CryptHeader::decode(&block).unwrap(), ph);
        assert!(PageCodec::open(Some(&ph), Some(&EncryptionKey::passphrase("pw")), [3; 16]).is_ok());
        assert!(matches!(
            PageCodec::open(Some(&ph), Some(&EncryptionKey::passphrase("px")), [3; 16]),
            Err(Error::Encryption(_))
        ));
        assert!(format!("{pass:?}").contains("redacted"));
    }
}

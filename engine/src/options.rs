//! Options for opening a database.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::storage::crypto::EncryptionKey;
use crate::storage::file::Vfs;

/// When commits are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Every commit is durable when `commit()` returns (one fdatasync of the WAL).
    #[default]
    Full,
    /// Commits are durable at the next checkpoint; a power cut may lose the
    /// last commits but never corrupts the database. A process crash loses nothing.
    Normal,
    /// Never sync. For bulk loads that can be redone: a power cut may corrupt.
    Off,
}

/// How to open a database. `Options::default()` is what `Db::open` uses.
#[derive(Clone)]
pub struct Options {
    /// Page size of a new database: a power of two from 4096 to 65536
    /// (default 4096). When the file exists its own page size is used, but
    /// any other value is refused all the same.
    pub page_size: usize,
    /// Bytes of page cache (default 8 MiB). The cache never holds more.
    pub cache_size: usize,
    /// Durability of commits (default [`SyncMode::Full`]).
    pub sync_mode: SyncMode,
    /// How long `begin_write` waits for another writer, in this process or
    /// another (default 5 s); also bounds the rarer waits of opening and
    /// closing while another process does the same. `Duration::MAX` waits
    /// without limit.
    pub busy_timeout: Duration,
    /// Checkpoint automatically, before a commit appends, once the WAL
    /// holds this many frames (default 1000; 0 disables automatic
    /// checkpoints, and so, in effect, does any threshold the WAL never
    /// reaches).
    pub wal_autocheckpoint: u64,
    /// Open without writing the database, its WAL or anything else but the
    /// shared index `<file>-shm` (created if needed, as readers in every
    /// process must register there); write transactions fail. Works while
    /// another process writes. When the `-shm` file cannot be opened for
    /// writing (read-only directory or mount), the open still works if no
    /// other process has the database open (with a private index; a writer
    /// that starts later is not seen), and is `Busy` otherwise.
    pub read_only: bool,
    /// Create the file when it does not exist (default true).
    pub create: bool,
    /// File system to use; `None` is the operating system's. A file system
    /// without shared memory (`Vfs::open_shm` unsupported) opens the
    /// database exclusively: a second handle gets `Busy`.
    pub vfs: Option<Arc<dyn Vfs>>,
    /// Encryption at rest (AES-256-GCM): a new database is created
    /// encrypted with this key; an existing one must have been encrypted
    /// with it. `None` (the default) for a plain database. A missing, wrong
    /// or unexpected key is an `Error::Encryption`. See `Db::rekey` to
    /// encrypt, decrypt or change the key of an existing database.
    pub encryption: Option<EncryptionKey>,
    /// Bytes of changed pages a write transaction keeps in memory. Past
    /// it, the half changed least recently is written to the WAL ahead of
    /// the commit (as frames no reader or recovery takes for committed)
    /// and read back from there when needed, so the pages of a transaction
    /// of any size (an import, a bulk load) stay within it (its bookkeeping
    /// grows by about 120 bytes a spilled page); a rollback forgets
    /// those frames. `None` (the default): [`DEFAULT_MAX_DIRTY_BYTES`], or
    /// the cache size when that is larger. At least 8 pages.
    pub max_dirty_bytes: Option<usize>,
}

/// The default of [`Options::max_dirty_bytes`] (64 MiB) when the cache is
/// smaller.
pub const DEFAULT_MAX_DIRTY_BYTES: usize = 64 << 20;

impl Options {
    /// The most changed pages (of `page_size` bytes) a write transaction
    /// keeps in memory: [`Options::max_dirty_bytes`] resolved.
    pub(crate) fn dirty_page_limit(&self, page_size: usize) -> usize {
        let bytes = self.max_dirty_bytes.unwrap_or(DEFAULT_MAX_DIRTY_BYTES.max(self.cache_size));
        (bytes / page_size.max(1)).max(8)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: crate::storage::page::DEFAULT_PAGE_SIZE,
            cache_size: 8 << 20,
            sync_mode: SyncMode::Full,
            busy_timeout: Duration::from_secs(5),
            wal_autocheckpoint: 1000,
            read_only: false,
            create: true,
            vfs: None,
            encryption: None,
            max_dirty_bytes: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("page_size", &self.page_size)
            .field("cache_size", &self.cache_size)
            .field("sync_mode", &self.sync_mode)
            .field("busy_timeout", &self.busy_timeout)
            .field("wal_autocheckpoint", &self.wal_autocheckpoint)
            .field("read_only", &self.read_only)
            .field("create", &self.create)
            .field("vfs", &self.vfs.as_ref().map(|_| "custom"))
            .field("encryption", &self.encryption)
            .field("max_dirty_bytes", &self.max_dirty_bytes)
            .finish()
    }
}

//! The storage interface: the only way the engine reaches the file system.
//!
//! Everything below the pager goes through [`Vfs`] and [`StorageFile`], so a
//! test can substitute an implementation that injects I/O errors or simulates
//! a power cut (see [`crate::storage::sim`]) without touching the pager.
//! [`OsVfs`] is the production implementation: plain positional reads and
//! writes on `std::fs::File`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::storage::shm::{OsShm, ShmFile, LOCK_DMS};
use crate::storage::wal::fresh_salt;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    ReadOnly,
    /// Read and write; create the file if it does not exist.
    ReadWriteCreate,
}

/// A file system: opens files and removes them.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Opens (or creates, per `mode`) the file at `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// True when a file exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Removes the file at `path`; a missing file is not an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the creation or removal of files in `path`'s directory durable
    /// (fsync of the directory). A no-op where the file system has no
    /// separate directory metadata.
    fn sync_parent_dir(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    /// Opens (creating) the shared-memory index at `path` (`<db>-shm`)
    /// read-write, for every process that opens the database to map.
    /// `Unsupported` (the default) means this file system has no shared
    /// memory: the database is then opened exclusively, with a private
    /// index, as one process's file.
    fn open_shm(&self, _path: &Path) -> io::Result<Arc<dyn ShmFile>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no shared memory on this file system"))
    }
    /// Opens the existing shared-memory index at `path` for reading only,
    /// for a read-only handle that cannot open it read-write while other
    /// processes have the database open (see `OsShm::open_read_only`).
    /// `Unsupported` (the default): such an open is refused as `Busy`.
    fn open_shm_read_only(&self, _path: &Path) -> io::Result<Arc<dyn ShmFile>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no read-only shared memory on this file system"))
    }
    /// Whether some process has the shared index at `path` open (asked
    /// without opening it for writing); false when it does not exist.
    fn shm_in_use(&self, _path: &Path) -> io::Result<bool> {
        Ok(false)
    }
    /// Atomically replaces `to` with the file at `from` (POSIX `rename`):
    /// afterwards `to` names the file that `from` named, and a file that
    /// `to` named before is unlinked. Used to publish a finished backup or
    /// compacted copy under its final name; make it durable with
    /// [`Vfs::sync_parent_dir`]. The default refuses (`Unsupported`).
    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "this file system cannot rename files"))
    }
    /// Like [`Vfs::rename`], but fails with `AlreadyExists` when `to`
    /// exists, atomically (Linux `renameat2` with `RENAME_NOREPLACE`): a
    /// new database appears this way, whole or not at all, and never
    /// under a second name. Make it durable with [`Vfs::sync_parent_dir`].
    /// The default refuses (`Unsupported`), and a database is then created
    /// in place.
    fn rename_noreplace(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "this file system cannot rename without replacing"))
    }
}

/// One open file. All methods take `&self` so that readers on several
/// threads can read at once.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `offset`; a short file is
    /// `io::ErrorKind::UnexpectedEof`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every write so far durable (fdatasync). An error means the
    /// outcome of earlier writes is unknown: callers must not retry.
    fn sync(&self) -> io::Result<()>;
    /// Sets the file's length (truncates or extends with zeros).
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// The file's current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Tries to take an exclusive advisory lock for this open file;
    /// `Ok(false)` when another holder has it.
    fn try_lock_exclusive(&self) -> io::Result<bool>;
    /// Releases the lock taken by [`StorageFile::try_lock_exclusive`] or
    /// [`StorageFile::try_lock_shared`].
    fn unlock(&self) -> io::Result<()>;
    /// Whether `path` names this open file now (false when another file
    /// was renamed over it, or it was removed). The default, for file
    /// systems that cannot tell, says yes.
    fn is_at(&self, _path: &Path) -> io::Result<bool> {
        Ok(true)
    }
    /// Tries to take a shared advisory lock for this open file (replacing
    /// an exclusive one this file holds); `Ok(false)` when another holder
    /// has it exclusively. The default, for file systems without shared
    /// locks, always succeeds.
    fn try_lock_shared(&self) -> io::Result<bool> {
        Ok(true)
    }
    /// Takes (`take`) or releases a shared lock on the one byte at `offset`
    /// of this open file, apart from the whole-file lock (a byte-range lock
    /// of the open file, released when it closes); `Ok(false)` when another
    /// holder has the byte exclusively. The default, for file systems
    /// without byte locks, always succeeds.
    fn lock_byte_shared(&self, _offset: u64, _take: bool) -> io::Result<bool> {
        Ok(true)
    }
    /// Whether another open file holds a lock on the byte at `offset`. The
    /// default, for file systems without byte locks, says no.
    fn byte_locked_by_others(&self, _offset: u64) -> io::Result<bool> {
        Ok(false)
    }
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsVfs;

/// The error [`OsVfs::open`] gives for a path that is not a regular file
/// (a directory, a FIFO, a device): tell it with [`is_not_a_file`].
#[derive(Debug)]
struct NotAFile(&'static str);

impl fmt::Display for NotAFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for NotAFile {}

fn refuse_irregular(meta: &std::fs::Metadata) -> io::Result<()> {
    let why = if meta.is_dir() {
        "is a directory"
    } else if !meta.is_file() {
        "is not a regular file"
    } else {
        return Ok(());
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, NotAFile(why)))
}

/// Whether `e` is [`OsVfs::open`]'s refusal of a path that is not a
/// regular file; its text says which ("is a directory", "is not a
/// regular file").
pub(crate) fn is_not_a_file(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NotAFile>())
}

impl Vfs for OsVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        // A database's files are regular files (or links to them): opening
        // a FIFO for reading would block until a writer came, and a device
        // or a directory holds no database. Checked before the open (the
        // FIFO) and on the file opened (a path replaced meanwhile).
        if let Ok(meta) = std::fs::metadata(path) {
            refuse_irregular(&meta)?;
        }
        let file = match mode {
            OpenMode::ReadOnly => OpenOptions::new().read(true).open(path)?,
            OpenMode::ReadWriteCreate => {
                OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?
            }
        };
        refuse_irregular(&file.metadata()?)?;
        Ok(Arc::new(OsFile { file, locked: AtomicBool::new(false) }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    #[cfg(target_os = "linux")]
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
        let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: both paths are NUL-terminated strings that outlive the
        // call, which only reads them.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // A file system whose rename takes no flags (NFS, 9p, many
            // FUSE ones: EINVAL) or a kernel without renameat2 (ENOSYS):
            // the caller's fallback, as for a Vfs without the call.
            Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                Err(io::Error::new(io::ErrorKind::Unsupported, format!("rename without replacing: {e}")))
            }
            _ => Err(e),
        }
    }

    fn sync_parent_dir(&self, path: &Path) -> io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }

    fn open_shm(&self, path: &Path) -> io::Result<Arc<dyn ShmFile>> {
        Ok(Arc::new(OsShm::open(path)?))
    }

    fn open_shm_read_only(&self, path: &Path) -> io::Result<Arc<dyn ShmFile>> {
        Ok(Arc::new(OsShm::open_read_only(path)?))
    }

    fn shm_in_use(&self, path: &Path) -> io::Result<bool> {
        OsShm::locked_by_anyone(path, LOCK_DMS)
    }
}

/// A file of the operating system's file system.
#[derive(Debug)]
pub struct OsFile {
    file: File,
    /// Whether this file holds a `flock`: its descriptor is then pointed
    /// at /dev/null in a forked child (`shm::register_fd`), so that a child
    /// living on does not keep the lock after this process lets it go.
    locked: AtomicBool,
}

impl OsFile {
    /// What a non-blocking `flock` attempt came to: `Ok(false)` when
    /// another holder has the lock.
    fn took(&self, attempt: io::Result<()>) -> io::Result<bool> {
        match attempt {
            Ok(()) => {
                if !self.locked.swap(true, Ordering::AcqRel) {
                    crate::storage::shm::register_fd(self.file.as_raw_fd());
                }
                Ok(true)
            }
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Drop for OsFile {
    fn drop(&mut self) {
        if self.locked.load(Ordering::Acquire) {
            crate::storage::shm::unregister_fd(self.file.as_raw_fd());
        }
    }
}

/// Whether `path` names the open `file` now: same device and inode (false
/// when another file was renamed over it, or it was removed).
pub(crate) fn path_names(path: &Path, file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let mine = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.dev() == mine.dev() && m.ino() == mine.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl StorageFile for OsFile {
    fn is_at(&self, path: &Path) -> io::Result<bool> {
        path_names(path, &self.file)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn try_lock_exclusive(&self) -> io::Result<bool> {
        self.took(fs2::FileExt::try_lock_exclusive(&self.file))
    }

    fn unlock(&self) -> io::Result<()> {
        fs2::FileExt::unlock(&self.file)?;
        if self.locked.swap(false, Ordering::AcqRel) {
            crate::storage::shm::unregister_fd(self.file.as_raw_fd());
        }
        Ok(())
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        self.took(fs2::FileExt::try_lock_shared(&self.file))
    }

    fn lock_byte_shared(&self, offset: u64, take: bool) -> io::Result<bool> {
        let kind = if take { libc::F_RDLCK } else { libc::F_UNLCK };
        if !crate::storage::shm::set_byte_lock(self.file.as_raw_fd(), offset, kind)? {
            return Ok(false);
        }
        if take && !self.locked.swap(true, Ordering::AcqRel) {
            // A forked child must not keep the lock alive (see `took`).
            crate::storage::shm::register_fd(self.file.as_raw_fd());
        }
        Ok(true)
    }

    fn byte_locked_by_others(&self, offset: u64) -> io::Result<bool> {
        crate::storage::shm::byte_held_elsewhere(self.file.as_raw_fd(), offset)
    }
}

/// A fresh temporary name beside `path` (which has a file name):
/// `<name>.tmp-<16 hex digits>`, the form [`remove_stale_temps`] sweeps.
pub(crate) fn temp_path_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(ToOwned::to_owned).unwrap_or_default();
    name.push(format!(".tmp-{:016x}", fresh_salt(std::process::id() as u64)));
    path.with_file_name(name)
}

/// Removes the temporary files `<target>.tmp-<16 hex digits>` beside
/// `target`, other than `ours`, that no copy holds locked and that were last
/// written more than a minute ago: what a backup, compaction, restore or
/// export killed before its rename left behind. Best effort: anything it cannot
/// read, lock or remove stays.
pub(crate) fn remove_stale_temps(vfs: &dyn Vfs, target: &Path, ours: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(suffix) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        if suffix.len() != 16 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > std::time::Duration::from_secs(60)));
        if path == ours || !old {
            continue;
        }
        if let Ok(f) = vfs.open(&path, OpenMode::ReadOnly) {
            if f.try_lock_exclusive().unwrap_or(false) {
                let _ = vfs.remove(&path);
            }
        }
    }
}

//! Writing a new database file (a backup, a compacted copy, a restore) so
//! that a crash never leaves a partial file under the final name.
//!
//! The pages go to a temporary file beside the target (`<name>.tmp-<hex>`,
//! same directory, so the rename stays within one file system). Publishing
//! fsyncs it, moves a `-wal` of the target aside to `-wal-replaced` (and
//! fsyncs the directory), renames the new file over the target (atomic),
//! fsyncs the directory, then removes the set-aside WAL (and fsyncs the
//! directory again). Until the rename the target is whole (its next open
//! takes the set-aside WAL back); a crash before it leaves at most a stray
//! temporary file, which the next copy to the same target removes (a copy
//! holds its temporary file locked, so only files nobody holds, untouched
//! for a minute, are taken for stray).
//!
//! An existing target is locked while the copy is written, so that nobody
//! opens it meanwhile: its main file, and the DMS lock of its shared index
//! `-shm` held exclusively (the index is removed with the lock's release);
//! a target open in this process or in another is refused with `Busy`.
//!
//! A copy gets a new file id. The copy of an encrypted database is
//! encrypted with the same key, sealed through the source codec's
//! [`PageCodec::for_copy`] for the new id, so that it opens with the key of
//! the original and no page of one file authenticates in the other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::btree::bulk::PageSink;
use crate::error::{Error, PageNo, Result};
use crate::storage::crypto::{random_bytes, PageCodec};
use crate::storage::file::{remove_stale_temps, temp_path_beside, OpenMode, StorageFile, Vfs};
use crate::storage::header::{Header, MAGIC};
use crate::storage::pager::{open_failed, replaced_wal_path_of, wal_path_of, Pager};
use crate::storage::shm::{shm_path_of, LockTable, ShmFile, LOCK_DMS};
use crate::storage::wal::WAL_HEADER_LEN;

/// A file being written under a temporary name. Dropping it without
/// [`NewFile::publish`] removes the temporary file.
pub(crate) struct NewFile {
    vfs: Arc<dyn Vfs>,
    path: PathBuf,
    tmp: PathBuf,
    file: Arc<dyn StorageFile>,
    /// The existing target, locked until the rename.
    existing: Option<Arc<dyn StorageFile>>,
    /// The existing target's shared index, DMS held exclusively until the
    /// rename.
    _shm: Option<TargetShm>,
    published: bool,
}

/// The shared index `<target>-shm` of an existing target, held with the
/// DMS lock exclusive: no process has the target open, and none can open
/// it (openers wait for the DMS lock, then time out with `Busy`). On drop
/// the file is removed (it indexes nothing: the target is closed, and after
/// the rename it belongs to the replaced file) and the lock released.
pub(crate) struct TargetShm {
    vfs: Arc<dyn Vfs>,
    path: PathBuf,
    shm: Arc<dyn ShmFile>,
    locks: LockTable,
}

impl TargetShm {
    pub(crate) fn lock(vfs: &Arc<dyn Vfs>, target: &Path) -> Result<Option<TargetShm>> {
        // A last closer may remove the `-shm` between its open here and the
        // lock: a lock on the removed file keeps nobody out (the next
        // opener makes a new `-shm`), and dropping it would remove that
        // opener's index. Only a lock on the file at the path counts.
        // (As an opener joining the index does, `Pager::join`.)
        crate::storage::shm::retry(std::time::Duration::from_secs(1), 50, || Self::lock_once(vfs, target))?
            .ok_or_else(|| {
                Error::Busy(format!(
                    "{}: another process keeps opening or closing the database",
                    target.display()
                ))
            })
    }

    /// One try of [`TargetShm::lock`]: `None` when the `-shm` locked was
    /// removed meanwhile (try again).
    fn lock_once(vfs: &Arc<dyn Vfs>, target: &Path) -> Result<Option<Option<TargetShm>>> {
        let path = shm_path_of(target);
        let display = target.display();
        let busy = || Error::Busy(format!("{display} is open in another handle or process"));
        let shm = match vfs.open_shm(&path) {
            Ok(shm) => shm,
            // No shared memory: the main-file lock keeps other handles out.
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => return Ok(Some(None)),
            Err(e) => {
                // Cannot open it for writing: refuse if anyone uses it.
                let in_use = vfs
                    .shm_in_use(&path)
                    .map_err(|e| Error::io(format!("checking {}", path.display()), e))?;
                return if in_use {
                    Err(busy())
                } else {
                    let _ = e;
                    Ok(Some(None))
                };
            }
        };
        let locks = LockTable::default();
        if !locks
            .exclusive(&*shm, LOCK_DMS)
            .map_err(|e| Error::io(format!("locking {}", path.display()), e))?
        {
            return Err(busy());
        }
        if !shm.is_current().map_err(|e| Error::io(format!("checking {}", path.display()), e))? {
            locks.release_all(&*shm);
            return Ok(None);
        }
        Ok(Some(Some(TargetShm { vfs: vfs.clone(), path, shm, locks })))
    }
}

impl Drop for TargetShm {
    fn drop(&mut self) {
        let _ = self.vfs.remove(&self.path);
        self.locks.release_all(&*self.shm);
    }
}

/// `InvalidArgument` when `path` is the `-wal` or `-shm` file of an obj
/// database (one open in this process, or a file that starts with the
/// magic): writing over the `-wal` would lose that database's last
/// commits, over the `-shm` its readers' locks. `what` names the write.
pub(crate) fn refuse_sidecar(vfs: &dyn Vfs, path: &Path, what: &str) -> Result<()> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Ok(()) };
    let Some(main) = name.strip_suffix("-wal").or_else(|| name.strip_suffix("-shm")) else { return Ok(()) };
    let main_path = path.with_file_name(main);
    if crate::db::open_in_process(&main_path) || starts_with_magic(vfs, &main_path) {
        return Err(Error::invalid(format!(
            "{} belongs to the database {main}; {what} over it would lose that database's commits",
            path.display()
        )));
    }
    Ok(())
}

/// Whether the file at `path` exists and begins with an obj database's
/// magic.
pub(crate) fn starts_with_magic(vfs: &dyn Vfs, path: &Path) -> bool {
    vfs.open(path, OpenMode::ReadOnly).is_ok_and(|f| {
        let mut head = [0u8; 8];
        f.read_at(&mut head, 0).is_ok() && head == MAGIC
    })
}

/// Whether `a` and `b` are one file: one inode, under one name, a link or
/// two names (hard links). Both must exist.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    let key = crate::db::file_key(a);
    key.is_some() && key == crate::db::file_key(b)
}

/// Refuses a `target` that is the file `own` has open: `what` (a backup,
/// a compacted copy) written over its own source. Without this the target
/// reads as an open database, `Busy`, which a caller would retry. (By the
/// inode recorded at open, not the path given then: a relative one names
/// another file after a `chdir`.)
pub(crate) fn refuse_own_file(own: &Arc<Pager>, target: &Path, what: &str) -> Result<()> {
    if crate::db::is_open_file_of(own, target) {
        return Err(Error::invalid(format!(
            "{} is this database's own file: write {what} to another path",
            target.display()
        )));
    }
    Ok(())
}

/// What [`NewFile::create`] may do with an existing file at the target.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Refuse it (`InvalidArgument`): a restore not told to overwrite.
    Never,
    /// Replace it: a restore told to overwrite.
    Always,
    /// Replace it unless its `-wal` holds frames: nobody has it open
    /// (`create` holds its lock), so it was not closed cleanly and those
    /// frames may be commits its main file lacks, which replacing it would
    /// delete. For a backup or a compacted copy, which replace an existing
    /// file without being asked to.
    IfClosedCleanly,
}

impl NewFile {
    /// Checks that `path` may be (re)written and creates the temporary file.
    pub(crate) fn create(vfs: Arc<dyn Vfs>, path: &Path, replace: Replace) -> Result<NewFile> {
        // A symbolic link names the file, as for an open: the copy replaces
        // the file it names (with that file's sidecars), and the link stays.
        let resolved = crate::db::through_symlinks(path);
        let path: &Path = &resolved;
        let display = path.display();
        if path.file_name().is_none() {
            return Err(Error::invalid(format!("{:?} is not a file path", display.to_string())));
        }
        refuse_sidecar(&*vfs, path, "a database written")?;
        // The registry knows databases opened through the OS file system;
        // on another file system the lock below is what tells.
        if crate::db::open_in_process(path) {
            return Err(Error::Busy(format!("{display} is an open database in this process")));
        }
        let exists = vfs.exists(path).map_err(|e| Error::io(format!("checking {display}"), e))?;
        let mut existing = None;
        let mut shm = None;
        if exists {
            if replace == Replace::Never {
                return Err(Error::invalid(format!(
                    "{display} already exists (allow overwriting to replace it)"
                )));
            }
            // Processes sharing the database hold its shared index's DMS
            // lock, not the main file's: hold it exclusively until the
            // rename, which refuses an open target and keeps openers out.
            shm = TargetShm::lock(&vfs, path)?;
            let f = vfs
                .open(path, OpenMode::ReadOnly)
                .map_err(|e| open_failed(&display.to_string(), "a place for a database file", e))?;
            // A directory that a file system opens for reading (the OS one
            // refuses it above) would be copied in full and then fail at
            // the rename.
            if f.read_at(&mut [0u8; 1], 0).is_err_and(|e| e.kind() == std::io::ErrorKind::IsADirectory) {
                return Err(Error::invalid(format!("{display} is a directory, not a file path")));
            }
            if !f.try_lock_exclusive().map_err(|e| Error::io(format!("locking {display}"), e))? {
                return Err(Error::Busy(format!("{display} is open (locked by another handle or process)")));
            }
            if replace == Replace::IfClosedCleanly {
                refuse_unrecovered(&*vfs, path)?;
            }
            existing = Some(f);
        }
        let tmp = temp_path_beside(path);
        let file = vfs.open(&tmp, OpenMode::ReadWriteCreate).map_err(|e| {
            Error::io(format!("creating {display} (its temporary copy {})", tmp.display()), e)
        })?;
        // Held while the copy is written: the next copy to this target
        // removes only temporary files that nobody holds (left by a copy
        // whose process was killed).
        let _ = file.try_lock_exclusive();
        remove_stale_temps(&*vfs, path, &tmp);
        let new = NewFile { vfs, path: path.to_path_buf(), tmp, file, existing, _shm: shm, published: false };
        new.file.truncate(0).map_err(|e| Error::io(format!("truncating {}", new.tmp.display()), e))?;
        Ok(new)
    }

    /// A sink writing the copy's pages into the temporary file with
    /// `codec`.
    pub(crate) fn sink<'f>(&'f self, codec: &'f PageCodec, page_size: usize) -> FileSink<'f> {
        FileSink {
            file: &*self.file,
            name: &self.tmp,
            codec,
            page_size,
            next: 1,
            buf: Vec::with_capacity(1 << 20),
            buf_start: 1,
        }
    }

    /// Makes the file durable and moves it to its final name.
    pub(crate) fn publish(mut self) -> Result<()> {
        let tmp = self.tmp.display().to_string();
        let display = self.path.display().to_string();
        let vfs = &self.vfs;
        let sync_dir = || {
            vfs.sync_parent_dir(&self.path)
                .map_err(|e| Error::io(format!("syncing the directory of {display}"), e))
        };
        self.file.sync().map_err(|e| Error::io(format!("syncing {tmp}"), e))?;
        // A target that did not exist at `create` was not locked: one that
        // appeared since (a database another process created, perhaps
        // with commits only in its WAL; another copy to the same name) is
        // not replaced. `Busy`, as for a target open elsewhere: a retry
        // finds it there and replaces it as any existing file, locked.
        let created_meanwhile = || {
            Error::Busy(format!("{display} was created while the copy was being written: not replacing it"))
        };
        if self.existing.is_none()
            && vfs.exists(&self.path).map_err(|e| Error::io(format!("checking {display}"), e))?
        {
            return Err(created_meanwhile());
        }
        // A WAL left by the file being replaced would belong to another
        // database once the new file is in (a new file id), and the open
        // would refuse it. It moves aside first, where an open of the old
        // file takes it back if the replace is cut before the rename (see
        // storage::pager::restore_replaced_wal), and goes once the new file is in.
        let wal = wal_path_of(&self.path);
        let aside = replaced_wal_path_of(&self.path);
        let moved_aside =
            vfs.exists(&wal).map_err(|e| Error::io(format!("checking {}", wal.display()), e))?;
        if moved_aside {
            vfs.rename(&wal, &aside).map_err(|e| Error::io(format!("moving aside {}", wal.display()), e))?;
            sync_dir()?;
        }
        // The check above leaves a moment before the rename in which a
        // file may still appear: where the file system can, the rename
        // itself refuses to replace one.
        let renamed = match self.existing {
            None => match vfs.rename_noreplace(&self.tmp, &self.path) {
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => vfs.rename(&self.tmp, &self.path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // The WAL moved aside may be that new database's own:
                    // it goes back (unless another took its place).
                    if moved_aside {
                        let _ = vfs.rename_noreplace(&aside, &wal);
                    }
                    return Err(created_meanwhile());
                }
                r => r,
            },
            Some(_) => vfs.rename(&self.tmp, &self.path),
        };
        renamed.map_err(|e| Error::io(format!("renaming {tmp} to {display}"), e))?;
        self.published = true;
        sync_dir()?;
        if vfs.exists(&aside).map_err(|e| Error::io(format!("checking {}", aside.display()), e))? {
            vfs.remove(&aside).map_err(|e| Error::io(format!("removing {}", aside.display()), e))?;
            sync_dir()?;
        }
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.published {
            let _ = self.vfs.remove(&self.tmp);
        }
    }
}

/// `InvalidArgument` when the `-wal` of `target` holds frames
/// ([`Replace::IfClosedCleanly`]).
fn refuse_unrecovered(vfs: &dyn Vfs, target: &Path) -> Result<()> {
    let wal = wal_path_of(target);
    let size = match vfs.open(&wal, OpenMode::ReadOnly) {
        Ok(f) => f.size().map_err(|e| Error::io(format!("reading the size of {}", wal.display()), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("opening {}", wal.display()), e)),
    };
    if size > WAL_HEADER_LEN {
        return Err(Error::invalid(format!(
            "{} was not closed cleanly: its {} may hold commits that the file lacks; open and close it to \
             fold them in (or remove it) before replacing it",
            target.display(),
            wal.display()
        )));
    }
    Ok(())
}

/// A fresh file id from the OS's CSPRNG (in an encrypted copy it keys
/// the pages, as in a new encrypted database).
pub(crate) fn fresh_file_id() -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    random_bytes(&mut id)?;
    Ok(id)
}

/// Appends pages to a file in order, in writes of about 1 MiB, sealing
/// them (CRC trailer, or encryption) through `codec` as they are written.
/// Pages start at page 1; page 0 is written last, by [`FileSink::finish`].
pub(crate) struct FileSink<'f> {
    file: &'f dyn StorageFile,
    /// The file's path, for error messages.
    name: &'f Path,
    codec: &'f PageCodec,
    page_size: usize,
    next: PageNo,
    /// Plaintext pages not yet written.
    buf: Vec<u8>,
    /// Page number of the first page in `buf`.
    buf_start: PageNo,
}

impl<'f> FileSink<'f> {
    /// Appends a plaintext page as the next page (its trailer is
    /// overwritten when it is sealed).
    pub(crate) fn push(&mut self, page: &[u8]) -> Result<PageNo> {
        debug_assert_eq!(page.len(), self.page_size);
        let pgno = self.next;
        self.buf.extend_from_slice(page);
        self.next =
            self.next.checked_add(1).ok_or_else(|| Error::invalid("database is full (2^32 pages)"))?;
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(pgno)
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.codec.seal_run(self.buf_start, &mut self.buf, self.page_size)?;
            self.file
                .write_at(&self.buf, self.buf_start as u64 * self.page_size as u64)
                .map_err(|e| Error::io(format!("writing {}", self.name.display()), e))?;
            self.buf.clear();
        }
        self.buf_start = self.next;
        Ok(())
    }

    /// Writes what is buffered and page 0 (`header` with `page_count` set
    /// to the pages written). Returns the page count.
    pub(crate) fn finish(mut self, mut header: Header) -> Result<PageNo> {
        self.flush()?;
        header.page_count = self.next;
        let mut page = vec![0u8; self.page_size];
        header.encode(&mut page);
        self.codec.seal_run(0, &mut page, self.page_size)?;
        self.file
            .write_at(&page, 0)
            .map_err(|e| Error::io(format!("writing the header of {}", self.name.display()), e))?;
        Ok(self.next)
    }
}

impl PageSink for FileSink<'_> {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn usable_size(&self) -> usize {
        self.page_size - self.codec.trailer_len()
    }

    fn next_pgno(&self) -> PageNo {
        self.next
    }

    fn emit(&mut self, page: &[u8]) -> Result<PageNo> {
        self.push(page)
    }

    fn skip(&mut self, _n: u64) -> Result<()> {
        Err(Error::invalid("a file sink writes every page"))
    }
}

/// Counts the pages a build would emit, writing nothing.
pub(crate) struct CountSink {
    pub(crate) page_size: usize,
    /// Usable bytes per page of the database being counted.
    pub(crate) usable: usize,
    pub(crate) next: PageNo,
}

impl PageSink for CountSink {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn usable_size(&self) -> usize {
        self.usable
    }

    fn next_pgno(&self) -> PageNo {
        self.next
    }

    fn emit(&mut self, _page: &[u8]) -> Result<PageNo> {
        self.skip(1)?;
        Ok(self.next - 1)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.next = u32::try_from(self.next as u64 + n)
            .map_err(|_| Error::invalid("database is full (2^32 pages)"))?;
        Ok(())
    }

    fn wants_content(&self) -> bool {
        false
    }
}

//! Online backup and restore.
//!
//! A backup copies the pages of one read snapshot, as they are, into a new
//! file: page 0 gets a fresh file id (the copy is a database of its own, so
//! a WAL of the original is never replayed on it), free pages become empty
//! sealed pages, every other page is copied after its checksum is verified:
//! byte for byte in a plain database; in an encrypted one, decrypted (as
//! every read does) and encrypted again with the same key under the copy's
//! file id (`ops/newfile.rs`). The result is a normal database file with no WAL:
//! its header's page count and commit counter are the snapshot's. Writers
//! keep committing meanwhile (the snapshot pins the pages it sees: the
//! checkpoint does not overwrite them until the backup ends). The file is
//! written under a temporary name and renamed into place (see
//! `ops/newfile.rs`).
//!
//! Restore is a backup *of* the backup file into a path that is not open:
//! the backup is opened read-only (which checks it, and replays a WAL if it
//! has one), then copied like any database.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::ops::newfile::{fresh_file_id, NewFile, Replace};
use crate::options::Options;
use crate::storage::crypto::EncryptionKey;
use crate::storage::file::Vfs;
use crate::storage::freelist;
use crate::storage::page::PageRead;
use crate::txn::ReadTxn;

/// How far a backup has got, passed to its progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Pages copied so far.
    pub pages_done: u64,
    /// Pages to copy in all.
    pub pages_total: u64,
}

/// What a backup (or restore) wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackupReport {
    /// Pages in the copy (page 0 included). When cancelled: the pages
    /// copied before the cancel (the `pages_done` of the progress call that
    /// returned false: 0 for the first call, all of them for the last),
    /// none of which was kept.
    pub pages: u64,
    /// Bytes of the copy; when cancelled, of the pages copied before the
    /// cancel (`pages` times the page size).
    pub bytes: u64,
    /// The commit counter of the snapshot copied: the copy holds exactly
    /// the database as of that commit.
    pub commit_counter: u64,
    /// The progress callback asked to stop (at any of its calls, the last
    /// included): nothing was written at the target, and `pages`/`bytes`
    /// say how far the copy got.
    pub cancelled: bool,
    /// Wall time taken, in milliseconds.
    pub millis: u64,
}

/// How [`Db::restore_from`] works.
#[derive(Clone, Default)]
pub struct RestoreOptions {
    /// Replace an existing file at the target (never one that is open).
    pub overwrite: bool,
    /// File system of both paths; `None` is the operating system's.
    pub vfs: Option<Arc<dyn Vfs>>,
    /// The key of an encrypted backup; the restored file is encrypted with
    /// it too (under its own file id).
    pub encryption: Option<EncryptionKey>,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("overwrite", &self.overwrite)
            .field("vfs", &self.vfs.as_ref().map(|_| "custom"))
            .field("encryption", &self.encryption)
            .finish()
    }
}

/// Pages between progress calls (and between cancellation checks).
const PROGRESS_EVERY: u64 = 256;

/// Copies the snapshot of `txn` into `target`.
fn copy_snapshot(
    txn: &ReadTxn,
    target: NewFile,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Result<BackupReport> {
    let started = Instant::now();
    let snap = txn.snapshot();
    let header = snap.header();
    let page_size = snap.page_size();
    let total = header.page_count as u64;
    // Pages listed on freelist trunks (not the trunks): their content is
    // garbage, or was never written at all.
    let free = freelist::listed_pages(snap, header)?;
    let report = |pages: u64, cancelled: bool| BackupReport {
        pages,
        bytes: pages * page_size as u64,
        commit_counter: header.commit_counter,
        cancelled,
        millis: started.elapsed().as_millis() as u64,
    };
    // A false from any call cancels: `target` is then dropped unpublished,
    // which removes the temporary file.
    if !progress(Progress { pages_done: 0, pages_total: total }) {
        return Ok(report(0, true));
    }
    // (The copy of page 0 keeps the entry counts it holds: the copy's
    // catalog pages are the same.)
    let mut copy = header.clone();
    copy.file_id = fresh_file_id()?;
    let codec = snap.pager().codec().for_copy(copy.file_id);
    let mut sink = target.sink(&codec, page_size);
    let empty = vec![0u8; page_size];
    for pgno in 1..header.page_count {
        if free[pgno as usize / 64] & (1 << (pgno % 64)) != 0 {
            sink.push(&empty)?;
        } else {
            sink.push(&snap.read_page(pgno)?)?;
        }
        let done = pgno as u64 + 1;
        // The last count is reported once, below.
        if done.is_multiple_of(PROGRESS_EVERY)
            && done < total
            && !progress(Progress { pages_done: done, pages_total: total })
        {
            return Ok(report(done, true));
        }
    }
    // The last call comes before the copy is published, so that it can
    // still cancel.
    if !progress(Progress { pages_done: total, pages_total: total }) {
        return Ok(report(total, true));
    }
    sink.finish(copy)?;
    target.publish()?;
    Ok(report(total, false))
}

impl ReadTxn {
    /// Writes this transaction's snapshot to `path` as a standalone database
    /// file (see [`Db::backup_to`]). Compare the copy with this same
    /// transaction to check it document by document.
    pub fn backup_to(
        &self,
        path: impl AsRef<Path>,
        mut progress: impl FnMut(Progress) -> bool,
    ) -> Result<BackupReport> {
        let pager = self.snapshot().pager();
        crate::ops::newfile::refuse_own_file(pager, path.as_ref(), "a backup")?;
        let target = NewFile::create(pager.vfs().clone(), path.as_ref(), Replace::IfClosedCleanly)?;
        copy_snapshot(self, target, &mut progress)
    }
}

impl Db {
    /// Writes a consistent copy of the database, as of one snapshot taken
    /// now, to `path`, while other threads keep reading and writing. The
    /// copy is a normal database file (no WAL needed, a new file id) that
    /// opens on its own. It is written under a temporary name, fsynced and
    /// renamed into place, so a crash never leaves a partial backup at
    /// `path`; an existing file there is replaced, unless it is an open
    /// database (`Busy`; so is a file that appears at `path` while the
    /// copy is written), this database's own file, or a database not
    /// closed cleanly, whose `-wal` may hold commits it lacks
    /// (`InvalidArgument`: open and close it first).
    /// The backup of an encrypted database is encrypted
    /// with the same key and opens with it. A symbolic link at `path` is
    /// followed, as by an open: the file it names is replaced, the link
    /// stays.
    ///
    /// `progress` is called before the first page, every 256 pages and
    /// once all pages are copied, before the copy is put in place;
    /// returning false from any of these calls cancels the backup (nothing
    /// is written at `path`, and the report says `cancelled` and how many
    /// pages were copied before the cancel).
    pub fn backup_to(
        &self,
        path: impl AsRef<Path>,
        progress: impl FnMut(Progress) -> bool,
    ) -> Result<BackupReport> {
        self.begin_read()?.backup_to(path, progress)
    }

    /// [`Db::backup_to`] without a progress callback.
    pub fn backup(&self, path: impl AsRef<Path>) -> Result<BackupReport> {
        self.backup_to(path, |_| true)
    }

    /// Copies the database file `backup` (a backup, or any database that is
    /// not being written) to `target`, which must not be open: `Busy` if it
    /// is open in this process or in another, or appears there while the
    /// copy is written; `InvalidArgument` if a file exists there and
    /// `options.overwrite` is off. A stale `-wal` of
    /// the target is removed. The backup is opened read-only first, so a
    /// damaged one is refused (`Corruption`, `InvalidArgument`) before
    /// anything at the target changes. An encrypted backup needs its key in
    /// `options.encryption` (else `Encryption`); the restored file is
    /// encrypted with the same key. A symbolic link at `target` is
    /// followed: the database it names is replaced, the link stays.
    pub fn restore_from(
        backup: impl AsRef<Path>,
        target: impl AsRef<Path>,
        options: RestoreOptions,
    ) -> Result<BackupReport> {
        let (backup, target) = (backup.as_ref(), target.as_ref());
        // (Hard links too: the target's lock would be the backup's own
        // open, read as another process's.)
        if backup == target || crate::ops::newfile::same_file(backup, target) {
            return Err(Error::invalid(format!("{} is both the backup and the target", backup.display())));
        }
        let vfs: Arc<dyn Vfs> = options.vfs.clone().unwrap_or_else(|| Arc::new(crate::storage::file::OsVfs));
        let replace = if options.overwrite { Replace::Always } else { Replace::Never };
        let new = NewFile::create(vfs, target, replace)?;
        let source = Db::open_with(
            backup,
            Options {
                read_only: true,
                create: false,
                vfs: options.vfs.clone(),
                encryption: options.encryption.clone(),
                ..Options::default()
            },
        )
        .map_err(|e| match e {
            // The read-only open's own words ("not an obj database yet, and a
            // read-only open cannot create one") speak of an open the
            // caller never asked for.
            Error::InvalidArgument(_)
                if std::fs::metadata(backup).is_ok_and(|m| m.is_file() && m.len() == 0) =>
            {
                Error::invalid(format!(
                    "{} is empty (0 bytes): not an obj database to restore from",
                    backup.display()
                ))
            }
            other => other,
        })?;
        let rx = source.begin_read()?;
        let report = copy_snapshot(&rx, new, &mut |_| true);
        drop(rx);
        drop(source);
        report
    }
}

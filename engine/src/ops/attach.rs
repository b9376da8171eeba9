//! Attaching other database files, read-only, under a namespace.
//!
//! `db.attach(path, "arch")` opens `path` read-only (a `Db` of its own,
//! kept by this handle and its clones) and makes its collections readable
//! as `arch.<collection>` through [`ReadTxn::collection`] and
//! [`WriteTxn::collection`]: get, iteration, index lookups and queries.
//! Writing there — `collection_mut`, `create_collection`,
//! `drop_collection`, `create_index`, `drop_index` on an `arch.` name — is
//! `InvalidArgument`.
//!
//! **Snapshots.** Every transaction takes a snapshot of each attached
//! database when it begins, next to its own, and reads it for its whole
//! life: an attached file that changes meanwhile (another handle in this
//! process writing it) is seen as of the transaction's start, like the main
//! database. Attaching or detaching affects transactions that begin
//! afterwards; one in progress keeps its snapshots.
//!
//! **Names.** A namespace is 1 to 200 bytes without `/` or `.`; `ns.coll`
//! means the attached collection whenever `ns` is attached, so attaching
//! `ns` is refused while a local collection named `ns.<something>` exists,
//! and creating one is refused while `ns` is attached. Key-value namespaces
//! are not reachable through an attachment.
//!
//! **Files.** The attached file is opened like any read-only database
//! (`Options::read_only`): other processes may go on writing it, and their
//! commits become visible to transactions that begin later; a file already
//! open in this process is shared with that handle, with the same effect.
//!
//! [`ReadTxn::collection`]: crate::ReadTxn::collection
//! [`WriteTxn::collection`]: crate::WriteTxn::collection

use std::path::{Path, PathBuf};

use crate::db::Db;
use crate::doc::collection::{check_component_name, list_collections, state};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::storage::crypto::EncryptionKey;

/// Checks a namespace name for [`Db::attach`].
fn check_namespace(ns: &str) -> Result<()> {
    check_component_name("namespace", ns)?;
    if ns.contains('.') {
        return Err(Error::invalid(format!("namespace name {ns:?} is invalid: it may not contain '.'")));
    }
    Ok(())
}

impl Db {
    /// Opens the database at `path` read-only and makes its collections
    /// readable as `namespace.<collection>` in transactions that begin
    /// afterwards (see the module documentation of `ops::attach`).
    /// Errors: `NotFound` (no such file), `Corruption` (a damaged
    /// database), `InvalidArgument` (not an obj database, a bad or taken
    /// namespace, or a local collection named `namespace.…`), `Busy`
    /// (another process has the file open), `Io`.
    pub fn attach(&self, path: impl AsRef<Path>, namespace: &str) -> Result<()> {
        self.attach_with_key(path, namespace, None)
    }

    /// [`Db::attach`] for an encrypted file: `key` is the one it was
    /// written with (`None`: a plain file). A wrong or missing key is an
    /// `Encryption` error and attaches nothing.
    pub fn attach_with_key(
        &self,
        path: impl AsRef<Path>,
        namespace: &str,
        key: Option<EncryptionKey>,
    ) -> Result<()> {
        check_namespace(namespace)?;
        if self.attachments().contains_key(namespace) {
            return Err(Error::invalid(format!("namespace {namespace:?} is already attached")));
        }
        let prefix = format!("{namespace}.");
        if let Some(hidden) =
            list_collections(&self.begin_read()?)?.into_iter().find(|c| c.starts_with(&prefix))
        {
            return Err(Error::invalid(format!(
                "attaching {namespace:?} would hide the local collection {hidden:?}"
            )));
        }
        let options = Options {
            read_only: true,
            create: false,
            vfs: if self.uses_os_vfs() { None } else { Some(self.pager().vfs().clone()) },
            encryption: key,
            ..Options::default()
        };
        let other = Db::open_with(path.as_ref(), options)?;
        // Read the catalog and every collection's metadata now, so that a
        // damaged file is refused here rather than at first use.
        {
            let rx = other.begin_read()?;
            for name in list_collections(&rx)? {
                state(&rx, &name)?;
            }
        }
        let mut table = self.attachments_mut();
        if table.contains_key(namespace) {
            return Err(Error::invalid(format!("namespace {namespace:?} is already attached")));
        }
        table.insert(namespace.to_string(), other);
        Ok(())
    }

    /// Detaches `namespace`; `NotFound` if it is not attached. Transactions
    /// already running keep reading their snapshot of it.
    pub fn detach(&self, namespace: &str) -> Result<()> {
        match self.attachments_mut().remove(namespace) {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!("attached namespace {namespace:?}"))),
        }
    }

    /// The attached namespaces with their files' paths, in namespace order.
    pub fn attached(&self) -> Vec<(String, PathBuf)> {
        self.attachments().iter().map(|(ns, db)| (ns.clone(), db.path().to_path_buf())).collect()
    }
}

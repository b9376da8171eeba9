//! Read and write transactions over named B+trees.
//!
//! A [`ReadTxn`] is a snapshot: it sees the database as of the last commit
//! before it began, for as long as it lives, and never blocks or is blocked
//! by the writer. A [`WriteTxn`] holds the single writer slot; its changes
//! are private until [`WriteTxn::commit`] appends them to the WAL as one
//! atomic unit. Dropping a write transaction without committing rolls it
//! back: nothing reached the file.

use std::ops::Bound;
use std::sync::Arc;

use crate::btree;
use crate::catalog::{check_name, TreeMeta};
use crate::error::{Error, PageNo, Result};
use crate::storage::header::{Header, TreeCount};
use crate::storage::page::{PageRead, PageRef};
use crate::storage::pager::{Pager, Snapshot, WriterGuard};
use crate::storage::wal_index::PageMap;
use crate::storage::write_set::WritePages;

/// A handle to a named tree, valid in the transaction that returned it.
/// Used in another transaction, it is checked against that transaction's
/// catalog: a handle whose tree was dropped (its root perhaps reused by
/// another tree) is `InvalidArgument`, never a way into the other tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    name: Arc<str>,
    root: PageNo,
    /// Entry count as of opening (read transactions use it directly).
    entries: u64,
    /// The transaction that returned the handle (see [`next_txn_id`]).
    origin: u64,
    /// Opened by the engine itself: only such a handle writes a tree whose
    /// name is reserved (starts with `$`: collections, indexes, key-value
    /// namespaces, the catalog of collections).
    engine: bool,
    /// The tree's serial ([`TreeMeta::serial`]): a dropped tree's handle
    /// does not reach a new tree of its name at its root page.
    serial: u64,
}

/// Whether tree `name` is the engine's (see `docs/format.md`).
fn reserved(name: &str) -> bool {
    name.starts_with('$')
}

#[cold]
fn reserved_error(name: &str) -> Error {
    Error::invalid(format!(
        "tree {name:?}: names starting with '$' are reserved for the engine (collections, indexes, \
         key-value namespaces)"
    ))
}

/// The engine's own way to its trees: handles that may write reserved
/// (`$`) trees. Not part of the public API.
pub(crate) trait EngineTrees: ReadableTxn {
    /// [`ReadableTxn::find_tree`] for the engine.
    fn find_engine_tree(&self, name: &str) -> Result<Option<Tree>> {
        Ok(self.find_tree(name)?.map(|t| Tree { engine: true, ..t }))
    }

    /// [`ReadableTxn::open_tree`] for the engine.
    fn open_engine_tree(&self, name: &str) -> Result<Tree> {
        self.open_tree(name).map(|t| Tree { engine: true, ..t })
    }
}

impl<T: ReadableTxn + ?Sized> EngineTrees for T {}

impl Tree {
    /// The entry count as of opening (see [`ReadableTxn::count`] for the
    /// count a transaction sees now).
    #[cfg(debug_assertions)]
    pub(crate) fn entries_at_open(&self) -> u64 {
        self.entries
    }

    /// This handle with entry count `entries`.
    pub(crate) fn with_entries(&self, entries: u64) -> Tree {
        Tree { entries, ..self.clone() }
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root page the tree had when this handle was opened. A
    /// compaction moves roots and a dropped tree's root may be reused:
    /// read through a transaction's calls ([`ReadableTxn::cursor`], `get`,
    /// `range`...), which refuse a handle whose tree is gone or moved.
    pub fn root(&self) -> PageNo {
        self.root
    }

    /// This handle as `txn` would have returned it: for a handle kept in
    /// the memo of derived values, which `txn` sees the same tree through
    /// (the same committed state), so that `txn` trusts it without a
    /// catalog lookup.
    pub(crate) fn for_txn<T: ReadableTxn + ?Sized>(&self, txn: &T) -> Tree {
        Tree { origin: txn.txn_id(), ..self.clone() }
    }
}

/// The committed state `txn` sees, when it sees exactly one.
pub(crate) fn committed_view<T: ReadableTxn + ?Sized>(txn: &T) -> Option<sealed::CommittedView<'_>> {
    txn.committed_view()
}

/// Iterator over a range of a tree: `(key, value)` pairs in key order
/// (or reverse key order).
pub type RangeIter<'a, P> = btree::Range<&'a P>;

/// What a transaction tells the handle checks, kept out of the public
/// trait (and sealing it: only this crate's transactions implement it).
mod sealed {
    pub trait Identity {
        /// Process-unique id of this transaction (see `Tree::origin`).
        fn txn_id(&self) -> u64;

        /// The file header as this transaction sees it.
        fn file_header(&self) -> &crate::storage::header::Header;

        /// Whether a handle this transaction returned may have gone stale
        /// in it (a write transaction that dropped a tree).
        fn dropped_trees(&self) -> bool {
            false
        }

        /// The committed state this transaction sees, when it sees exactly
        /// one (a read transaction; a write transaction that has not
        /// written yet).
        fn committed_view(&self) -> Option<CommittedView<'_>> {
            None
        }

        /// The snapshot this transaction reads, shared, when other threads
        /// may read it too (a read transaction's).
        fn shared_snapshot(&self) -> Option<std::sync::Arc<crate::storage::pager::Snapshot>> {
            None
        }
    }

    /// A transaction's view of one committed state, with the memo of values
    /// derived from it (see `storage::memo`).
    pub struct CommittedView<'a> {
        pub memo: &'a crate::storage::memo::SnapshotMemo,
        /// The state's commit counter.
        pub counter: u64,
        /// Whether values this transaction derives go into the memo (a read
        /// transaction's; a write transaction's are about to change).
        pub keep: bool,
    }
}

/// `tree` as `txn` sees it: the handle itself when `txn` returned it, else
/// the catalog's entry for its name, which must have the same root
/// (`InvalidArgument` when stale).
fn resolve<'t, T: ReadableTxn + ?Sized>(txn: &T, tree: &'t Tree) -> Result<std::borrow::Cow<'t, Tree>> {
    if tree.origin == txn.txn_id() && !txn.dropped_trees() {
        return Ok(std::borrow::Cow::Borrowed(tree));
    }
    match txn.find_tree(&tree.name)? {
        Some(t) if t.root == tree.root && t.serial == tree.serial => Ok(std::borrow::Cow::Owned(t)),
        _ => Err(stale(tree)),
    }
}

/// The snapshot `txn` reads, when other threads may share it (see
/// `query::split`).
pub(crate) fn shared_snapshot<T: ReadableTxn>(txn: &T) -> Option<Arc<Snapshot>> {
    txn.shared_snapshot()
}

/// Read operations shared by [`ReadTxn`] and [`WriteTxn`].
pub trait ReadableTxn: sealed::Identity {
    /// The page source the trees are read through.
    type Pages: PageRead;

    /// This transaction's view of the pages.
    fn pages(&self) -> &Self::Pages;

    /// Root page of the catalog (0 in a database that has none yet).
    fn catalog_root(&self) -> PageNo {
        self.file_header().catalog_root
    }

    /// Opens the tree `name`; `NotFound` if it does not exist.
    fn open_tree(&self, name: &str) -> Result<Tree> {
        check_name(name)?;
        self.find_tree(name)?.ok_or_else(|| Error::not_found(format!("tree {name:?}")))
    }

    /// The tree `name`, if it exists.
    fn find_tree(&self, name: &str) -> Result<Option<Tree>> {
        let root = self.catalog_root();
        if root == 0 {
            return Ok(None);
        }
        Ok(btree::get(self.pages(), root, name.as_bytes())?
            .map(|v| TreeMeta::decode(&v, name).map(|meta| meta.current(self.file_header())))
            .transpose()?
            .map(|meta| check_root(name, meta.root, root).map(|()| meta))
            .transpose()?
            .map(|meta| Tree {
                name: Arc::from(name),
                root: meta.root,
                entries: meta.entries,
                origin: self.txn_id(),
                engine: false,
                serial: meta.serial,
            }))
    }

    /// Names of all trees, in byte order.
    fn list_trees(&self) -> Result<Vec<String>> {
        let root = self.catalog_root();
        if root == 0 {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        for entry in btree::Range::new(self.pages(), root, Bound::Unbounded, Bound::Unbounded, false)? {
            let (k, _) = entry?;
            names.push(
                String::from_utf8(k)
                    .map_err(|_| Error::corruption(root, "catalog holds a non-UTF-8 tree name"))?,
            );
        }
        Ok(names)
    }

    /// The value stored under `key`.
    fn get(&self, tree: &Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        btree::get(self.pages(), resolve(self, tree)?.root, key)
    }

    /// The value stored under `key`, borrowed from the page that holds it
    /// rather than copied (see [`btree::ValueGuard`]).
    fn get_guard(&self, tree: &Tree, key: &[u8]) -> Result<Option<btree::ValueGuard>> {
        btree::get_guard(self.pages(), resolve(self, tree)?.root, key)
    }

    /// Number of entries in `tree`.
    fn count(&self, tree: &Tree) -> Result<u64>;

    /// Entries with `start <= key < end` (per the bounds), in key order or,
    /// with `reverse`, in reverse key order.
    fn range<'a>(
        &'a self,
        tree: &Tree,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<RangeIter<'a, Self::Pages>> {
        btree::Range::new(self.pages(), resolve(self, tree)?.root, start, end, reverse)
    }

    /// An unpositioned cursor over `tree`, to seek to a key and step both
    /// ways from there (see [`btree::Cursor`]): `seek`, `seek_first`,
    /// `seek_last`, `seek_before`, then `next` / `prev`. A stale handle is
    /// refused here, as by every call that takes one.
    fn cursor<'a>(&'a self, tree: &Tree) -> Result<btree::Cursor<&'a Self::Pages>> {
        Ok(btree::Cursor::new(self.pages(), resolve(self, tree)?.root))
    }

    /// Entries whose key starts with `prefix`.
    fn prefix<'a>(&'a self, tree: &Tree, prefix: &[u8], reverse: bool) -> Result<RangeIter<'a, Self::Pages>> {
        btree::Range::prefix(self.pages(), resolve(self, tree)?.root, prefix, reverse)
    }
}

/// Whether this process may use a transaction, answered without the
/// transaction: a binding that serialises calls on a transaction behind a
/// lock checks it before taking the lock. In a child of fork() that lock
/// may be held forever (another thread of the parent held it at the fork),
/// and the child must get the fork error, not wait.
///
/// It does not keep the database open: a handle's transaction ended by
/// the handle's close may still be checked.
#[derive(Clone, Debug)]
pub struct ForkCheck {
    /// The process's forks when the transaction began (`shm::fork_count`).
    forks: u64,
    /// For the error's words (the file, the parent's pid).
    pager: std::sync::Weak<Pager>,
}

impl ForkCheck {
    fn of(pager: &Arc<Pager>) -> ForkCheck {
        ForkCheck { forks: crate::storage::shm::fork_count(), pager: Arc::downgrade(pager) }
    }

    /// `InvalidArgument` in a child process after fork() (see
    /// [`ReadTxn::check_process`]).
    pub fn check(&self) -> Result<()> {
        if crate::storage::shm::fork_count() == self.forks {
            return Ok(());
        }
        Err(match self.pager.upgrade() {
            Some(pager) => pager.fork_error(),
            None => Error::invalid(
                "transaction used after fork(): it was begun by the parent process; a child process must \
                 open the database itself",
            ),
        })
    }
}

/// A consistent, read-only view of the database. Cheap to create; hold it
/// only as long as needed, because the WAL cannot be recycled past the
/// oldest live snapshot.
#[derive(Debug)]
pub struct ReadTxn {
    /// Shared with the helper thread of a shared scan (`query::split`).
    snap: Arc<Snapshot>,
    id: u64,
    /// Snapshots of the attached databases, taken when this one began.
    attached: Vec<(String, ReadTxn)>,
}

impl ReadTxn {
    pub(crate) fn new(snap: Snapshot) -> Self {
        ReadTxn { snap: Arc::new(snap), id: next_txn_id(), attached: Vec::new() }
    }

    pub(crate) fn with_attached(mut self, attached: Vec<(String, ReadTxn)>) -> Self {
        self.attached = attached;
        self
    }

    /// The snapshot of attached namespace `ns` this transaction reads
    /// (taken when it began); `None` if `ns` was not attached then.
    pub fn attached(&self, ns: &str) -> Option<&ReadTxn> {
        self.attached.iter().find(|(n, _)| n == ns).map(|(_, t)| t)
    }

    /// The attached namespaces this transaction sees, in order.
    pub fn attached_namespaces(&self) -> Vec<&str> {
        self.attached.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Ends the transaction (the same as dropping it).
    pub fn close(self) {}

    /// `InvalidArgument` in a child process after fork(): a transaction
    /// begun in the parent reads the parent's files and locks, and must not
    /// answer even from what it has cached. Bindings check it on each call.
    pub fn check_process(&self) -> Result<()> {
        self.snap.pager().check_process()
    }

    /// [`ReadTxn::check_process`] as a value kept apart from the
    /// transaction (see [`ForkCheck`]).
    pub fn fork_check(&self) -> ForkCheck {
        ForkCheck::of(self.snap.pager())
    }

    /// The snapshot behind this transaction.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// How many trees were created or dropped over the file's life, as of
    /// this snapshot. Equal values mean the same set of collections and
    /// indexes (their contents aside).
    pub fn catalog_version(&self) -> u64 {
        self.snap.header().catalog_version
    }
}

impl Drop for ReadTxn {
    fn drop(&mut self) {
        // A helper thread still sharing the snapshot (a leaked cursor's)
        // lets it go, so its WAL frames can be checkpointed.
        self.snap.release();
    }
}

impl sealed::Identity for ReadTxn {
    fn txn_id(&self) -> u64 {
        self.id
    }

    fn file_header(&self) -> &Header {
        self.snap.header()
    }

    fn shared_snapshot(&self) -> Option<Arc<Snapshot>> {
        Some(Arc::clone(&self.snap))
    }

    fn committed_view(&self) -> Option<sealed::CommittedView<'_>> {
        // A transaction begun before fork() must fail in the child on its
        // first read, not answer from the memo.
        if self.snap.pager().forked() {
            return None;
        }
        Some(sealed::CommittedView {
            memo: self.snap.pager().memo(),
            counter: self.snap.header().commit_counter,
            keep: true,
        })
    }
}

impl ReadableTxn for ReadTxn {
    type Pages = Snapshot;

    fn pages(&self) -> &Snapshot {
        &self.snap
    }

    fn count(&self, tree: &Tree) -> Result<u64> {
        Ok(resolve(self, tree)?.entries)
    }
}

/// Per-tree state a write transaction keeps until commit.
#[derive(Debug)]
struct OpenTree {
    name: Arc<str>,
    entries: u64,
    changed: bool,
    serial: u64,
}

impl OpenTree {
    /// Whether `tree` is this tree (tracked by its root, which a dropped
    /// tree's successor, of the same name or another, may have taken over).
    fn is(&self, tree: &Tree) -> bool {
        self.serial == tree.serial && (Arc::ptr_eq(&self.name, &tree.name) || self.name == tree.name)
    }
}

/// The single write transaction. See the module documentation.
pub struct WriteTxn {
    pages: WritePages,
    trees: PageMap<OpenTree>,
    /// `None` for a read view of an attached database, which never commits.
    guard: Option<WriterGuard>,
    pager: Arc<Pager>,
    /// Unique among the write transactions of this process.
    pub(crate) id: u64,
    /// Bumped whenever a collection handle is opened or a collection is
    /// dropped: a detached collection state is reusable only while it is
    /// unchanged (`doc/collection.rs`, `DetachedCollection`).
    pub(crate) collection_epoch: u64,
    /// Whether this transaction dropped a tree: its handles are then
    /// checked against the catalog on every use.
    dropped: bool,
    /// Read views of the attached databases, taken when this one began.
    attached: Vec<(String, WriteTxn)>,
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteTxn({} dirty pages)", self.pages.dirty_count())
    }
}

/// A tree's root from the catalog (whose own root is `catalog`): page 0 is
/// the header and the catalog's root is the catalog's, so a tree rooted at
/// either would read (and write) what is not its own.
pub(crate) fn check_root(name: &str, root: PageNo, catalog: PageNo) -> Result<()> {
    if root == 0 || root == catalog {
        let what = if root == 0 { "the header" } else { "the catalog's root" };
        return Err(Error::corruption(
            root,
            format!("the catalog gives tree {name:?} the root page {root}, which is {what}"),
        ));
    }
    Ok(())
}

/// Refuses trees of one owner (a collection's documents, indexes and name
/// dictionary) that share a root page: each would read the other's entries.
pub(crate) fn check_distinct_roots<'a>(owner: &str, trees: impl IntoIterator<Item = &'a Tree>) -> Result<()> {
    let mut seen: Vec<&Tree> = Vec::new();
    for t in trees {
        if let Some(other) = seen.iter().find(|o| o.root == t.root) {
            return Err(shared_root(Some(owner), &other.name, &t.name, t.root));
        }
        seen.push(t);
    }
    Ok(())
}

/// Catalog entries `a` and `b` (trees of `owner`, if named) rooted at one
/// page, `root`.
pub(crate) fn shared_root(owner: Option<&str>, a: &str, b: &str, root: PageNo) -> Error {
    let of = owner.map(|o| format!(" (of {o})")).unwrap_or_default();
    Error::corruption(root, format!("the catalog gives trees {a:?} and {b:?}{of} the same root page {root}"))
}

#[cold]
fn stale(tree: &Tree) -> Error {
    Error::invalid(format!(
        "tree handle {:?} is stale (the tree was dropped, or moved by a compaction): open it again",
        tree.name
    ))
}

/// A process-unique id for each transaction and read view.
fn next_txn_id() -> u64 {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl WriteTxn {
    pub(crate) fn new(pager: Arc<Pager>, guard: WriterGuard) -> Result<Self> {
        let base = pager.writer_snapshot()?;
        Ok(WriteTxn {
            pages: WritePages::new(base),
            trees: PageMap::default(),
            guard: Some(guard),
            pager,
            id: next_txn_id(),
            collection_epoch: 0,
            dropped: false,
            attached: Vec::new(),
        })
    }

    /// `InvalidArgument` in a child process after fork(), as
    /// [`ReadTxn::check_process`]: a write transaction begun in the parent
    /// holds the parent's write lock and pages.
    pub fn check_process(&self) -> Result<()> {
        self.pager.check_process()
    }

    /// [`WriteTxn::check_process`] as a value kept apart from the
    /// transaction (see [`ForkCheck`]).
    pub fn fork_check(&self) -> ForkCheck {
        ForkCheck::of(&self.pager)
    }

    /// A read-only view of the last commit of `pager` (an attached
    /// database): reads like a write transaction, never commits.
    pub(crate) fn read_view(pager: Arc<Pager>) -> Result<Self> {
        let base = pager.snapshot()?;
        Ok(WriteTxn {
            pages: WritePages::new(base),
            trees: PageMap::default(),
            guard: None,
            pager,
            id: next_txn_id(),
            collection_epoch: 0,
            dropped: false,
            attached: Vec::new(),
        })
    }

    pub(crate) fn with_attached(mut self, attached: Vec<(String, WriteTxn)>) -> Self {
        self.attached = attached;
        self
    }

    /// The read view of attached namespace `ns` (a snapshot taken when
    /// this transaction began); `None` if `ns` was not attached then.
    pub(crate) fn attached(&self, ns: &str) -> Option<&WriteTxn> {
        self.attached.iter().find(|(n, _)| n == ns).map(|(_, t)| t)
    }

    /// The attached namespaces this transaction sees, in order.
    pub fn attached_namespaces(&self) -> Vec<&str> {
        self.attached.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// [`ReadTxn::catalog_version`], counting this transaction's own
    /// creates and drops: what it commits.
    pub fn catalog_version(&self) -> u64 {
        self.pages.header().catalog_version
    }

    fn check_writable(&self) -> Result<()> {
        if self.guard.is_none() {
            return Err(Error::invalid("an attached database is read-only"));
        }
        Ok(())
    }

    /// Makes this transaction commit the catalog version `catalog_version`
    /// and a commit counter past `commit_counter`: for a rewritten copy
    /// that replaces a file under an open handle (a rekey), which holds the
    /// same catalog and must not take the counters back (bindings key
    /// their caches on the version; a version counted again from the
    /// copy's own creates could come back to an old value with another
    /// catalog behind it).
    pub(crate) fn carry_counters(&mut self, commit_counter: u64, catalog_version: u64) {
        let h = self.pages.header_mut();
        h.catalog_version = catalog_version;
        h.commit_counter = h.commit_counter.max(commit_counter);
    }

    /// Makes the catalog if this database has none yet (first open).
    pub(crate) fn ensure_catalog(&mut self) -> Result<()> {
        if self.pages.header().catalog_root == 0 {
            let root = btree::create(&mut self.pages)?;
            self.pages.header_mut().catalog_root = root;
        }
        Ok(())
    }

    fn track(&mut self, tree: &Tree) -> Result<&mut OpenTree> {
        if !tree.engine && reserved(&tree.name) {
            return Err(reserved_error(&tree.name));
        }
        match self.trees.get(&tree.root) {
            // Tracked under this name: the tree at this root is the handle's
            // (a dropped tree's root may now belong to another tree).
            Some(t) if t.is(tree) => {}
            Some(t) => {
                // Another tree is tracked at this root. Stale, unless the
                // catalog still gives the handle's tree this root: then two
                // trees share a root page.
                return match self.find_tree(&tree.name)? {
                    Some(c) if c.root == tree.root && c.serial == tree.serial => {
                        Err(shared_root(None, &t.name, &tree.name, tree.root))
                    }
                    _ => Err(stale(tree)),
                };
            }
            // A handle this transaction returned, and no tree dropped since:
            // the catalog holds what it says (a tree it has not written yet
            // has its entry as the transaction found it; see `resolve`), so
            // a one-call write does not look each of its trees up again.
            None if tree.origin == self.id && !self.dropped => {
                self.trees.insert(
                    tree.root,
                    OpenTree {
                        name: tree.name.clone(),
                        entries: tree.entries,
                        changed: false,
                        serial: tree.serial,
                    },
                );
            }
            None => {
                // A handle from another transaction, or of a dropped tree.
                let current = self.find_tree(&tree.name)?;
                match current {
                    Some(t) if t.root == tree.root && t.serial == tree.serial => {
                        self.trees.insert(
                            t.root,
                            OpenTree { name: t.name, entries: t.entries, changed: false, serial: t.serial },
                        );
                    }
                    _ => return Err(stale(tree)),
                }
            }
        }
        Ok(self.trees.get_mut(&tree.root).expect("tracked"))
    }

    /// Creates the tree `name`, or opens it if it exists. Names starting
    /// with `$` are reserved for the engine (`InvalidArgument`), and a new
    /// name may not hold a NUL, as a collection's may not (a tool reading
    /// names through the C API could not name it).
    pub fn create_tree(&mut self, name: &str) -> Result<Tree> {
        if reserved(name) {
            return Err(reserved_error(name));
        }
        if name.contains('\0') && self.find_engine_tree(name)?.is_none() {
            crate::doc::collection::refuse_nul_in_new_name("tree", name)?;
        }
        self.create_engine_tree(name).map(|t| Tree { engine: false, ..t })
    }

    /// [`create_tree`](Self::create_tree) for the engine, reserved names
    /// included.
    pub(crate) fn create_engine_tree(&mut self, name: &str) -> Result<Tree> {
        self.check_writable()?;
        check_name(name)?;
        if let Some(t) = self.find_engine_tree(name)? {
            return Ok(t);
        }
        self.ensure_catalog()?;
        self.check_catalog_beside(name)?;
        let serial = TreeMeta::new_serial()?;
        let root = btree::create(&mut self.pages)?;
        let catalog = self.pages.header().catalog_root;
        btree::insert(
            &mut self.pages,
            catalog,
            name.as_bytes(),
            &TreeMeta { root, entries: 0, serial }.encode(),
        )?;
        self.pages.header_mut().catalog_version += 1;
        let name: Arc<str> = Arc::from(name);
        self.trees.insert(root, OpenTree { name: name.clone(), entries: 0, changed: false, serial });
        Ok(Tree { name, root, entries: 0, origin: self.id, engine: true, serial })
    }

    /// Before a new tree's entry goes into the catalog: the entries on
    /// either side of where it goes (on the pages the lookup that missed
    /// it just read) must read as catalog entries. A header whose catalog
    /// root names a data tree makes every lookup miss, and a caller that
    /// creates what is missing would write into that tree; its entries
    /// seldom pass as tree names with catalog records (this catches such
    /// damage often, not always).
    fn check_catalog_beside(&self, name: &str) -> Result<()> {
        let catalog = self.pages.header().catalog_root;
        let page_count = self.pages.header().page_count;
        let key = name.as_bytes();
        let below =
            btree::Range::new(&self.pages, catalog, Bound::Unbounded, Bound::Excluded(key), true)?.next();
        let above =
            btree::Range::new(&self.pages, catalog, Bound::Excluded(key), Bound::Unbounded, false)?.next();
        for entry in [below, above].into_iter().flatten() {
            let (k, v) = entry?;
            let bad = |what: &str| {
                Error::corruption(
                    catalog,
                    format!("the catalog (root page {catalog}) holds {what}: is it a tree's?"),
                )
            };
            let shown = String::from_utf8(k).map_err(|_| bad("a non-UTF-8 tree name"))?;
            check_name(&shown).map_err(|_| bad("an empty or overlong tree name"))?;
            let meta = TreeMeta::decode(&v, &shown)?;
            check_root(&shown, meta.root, catalog)?;
            if meta.root >= page_count {
                return Err(bad(&format!("tree {shown:?} rooted past the end, at page {}", meta.root)));
            }
        }
        Ok(())
    }

    /// Drops the tree `name` and frees all its pages. `NotFound` if absent;
    /// `InvalidArgument` for a reserved (`$`) name.
    pub fn drop_tree(&mut self, name: &str) -> Result<()> {
        if reserved(name) {
            return Err(reserved_error(name));
        }
        self.drop_engine_tree(name)
    }

    /// [`drop_tree`](Self::drop_tree) for the engine, reserved names
    /// included.
    pub(crate) fn drop_engine_tree(&mut self, name: &str) -> Result<()> {
        self.check_writable()?;
        let tree = self.open_tree(name)?;
        btree::destroy(&mut self.pages, tree.root)?;
        let catalog = self.pages.header().catalog_root;
        btree::delete(&mut self.pages, catalog, name.as_bytes())?;
        self.trees.remove(&tree.root);
        self.pages.header_mut().catalog_version += 1;
        self.dropped = true;
        Ok(())
    }

    /// Inserts or replaces `key`; returns true if it replaced a value.
    pub fn insert(&mut self, tree: &Tree, key: &[u8], value: &[u8]) -> Result<bool> {
        self.check_writable()?;
        self.track(tree)?;
        let replaced =
            btree::insert(&mut self.pages, tree.root, key, value).inspect_err(|e| self.damaged(e))?;
        if !replaced {
            self.count_entry(tree, true)?;
        }
        Ok(replaced)
    }

    /// Inserts `key` with `value` only if `key` is absent: `None` after
    /// inserting, else the value already there (and nothing is written).
    pub fn insert_new(&mut self, tree: &Tree, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_writable()?;
        self.track(tree)?;
        let existing =
            btree::insert_new(&mut self.pages, tree.root, key, value).inspect_err(|e| self.damaged(e))?;
        if existing.is_none() {
            self.count_entry(tree, true)?;
        }
        Ok(existing)
    }

    /// Deletes `key`; returns true if it existed.
    pub fn delete(&mut self, tree: &Tree, key: &[u8]) -> Result<bool> {
        self.check_writable()?;
        self.track(tree)?;
        let existed = btree::delete(&mut self.pages, tree.root, key).inspect_err(|e| self.damaged(e))?;
        if existed {
            self.count_entry(tree, false)?;
        }
        Ok(existed)
    }

    /// A damaged page met in the middle of a change: the change may have
    /// stopped halfway, so the transaction breaks (see
    /// [`WriteTxn::is_broken`]). (A page that cannot be read or spilled
    /// breaks it where that fails; refused arguments are checked before
    /// anything changes and do not.)
    fn damaged(&self, e: &Error) {
        if matches!(e, Error::Corruption { .. }) {
            self.pages.note_failure(e);
        }
    }

    /// Notes one entry added to (or removed from) tracked `tree`, for its
    /// entry count in the catalog.
    fn count_entry(&mut self, tree: &Tree, added: bool) -> Result<()> {
        let t = self.trees.get_mut(&tree.root).expect("tracked");
        // The count comes from the file: a damaged catalog must not wrap it.
        t.entries = match added {
            true => t.entries.checked_add(1),
            false => t.entries.checked_sub(1),
        }
        .ok_or_else(|| {
            Error::corruption(
                tree.root,
                format!("the catalog's entry count of tree {:?} does not match its entries", tree.name),
            )
        })?;
        t.changed = true;
        Ok(())
    }

    /// Deletes every entry of `tree`.
    pub fn clear(&mut self, tree: &Tree) -> Result<()> {
        self.check_writable()?;
        self.track(tree)?;
        btree::clear(&mut self.pages, tree.root).inspect_err(|e| self.damaged(e))?;
        let t = self.trees.get_mut(&tree.root).expect("tracked");
        t.entries = 0;
        t.changed = true;
        Ok(())
    }

    /// Makes every change durable (per the sync mode) and visible to
    /// transactions that begin afterwards, atomically. On an error nothing
    /// of the transaction is applied, except when the fsync that makes it
    /// durable fails (`Io`; the handle is then unusable, `Closed`): the
    /// commit was written but may or may not be on disk, an outcome that
    /// reopening the database tells.
    pub fn commit(self) -> Result<()> {
        self.commit_counted().map(|_| ())
    }

    /// [`commit`](Self::commit), and hands `kept` (the state of the one
    /// collection this transaction wrote, detached after its last write)
    /// to the transactions that begin from this commit, so that the next
    /// one-call write does not read that collection's metadata, name
    /// dictionary and index list from the catalog again. Kept only while
    /// nothing else could have changed that state: no collection was
    /// opened after `kept`'s, and no tree was created or dropped.
    pub fn commit_keeping(self, kept: crate::doc::collection::DetachedCollection) -> Result<()> {
        let base = self.pages.base();
        let keep = kept.is_current(&self)
            && !self.dropped
            && self.catalog_version() == base.header().catalog_version
            && !base.pager().forked();
        // (A state that cannot be taken is simply not kept.)
        let state = keep.then(|| kept.committed_state(&self).ok()).flatten();
        let pager = self.pager.clone();
        let counter = self.commit_counted()?;
        if let (Some((name, state)), Some(counter)) = (state, counter) {
            pager.memo().put(counter, &name, state);
        }
        Ok(())
    }

    /// Commits; the commit counter of the new state, `None` when there
    /// was nothing to write (the state is the one the transaction began
    /// from).
    fn commit_counted(mut self) -> Result<Option<u64>> {
        self.record_counts()?;
        let WriteTxn { pages, guard, pager, .. } = self;
        let guard = guard.ok_or_else(|| Error::invalid("an attached database is read-only"))?;
        let changes = pages.into_commit()?;
        let wrote = !changes.pages.is_empty();
        let counter = changes.header.commit_counter;
        pager.commit(&guard, changes.pages, &changes.header, changes.spill, changes.base)?;
        Ok(wrote.then_some(counter))
    }

    /// Records the entry counts of the trees this transaction changed. In
    /// page 0, which every commit writes, so that a commit that only adds
    /// or removes entries writes no catalog page; but when the catalog
    /// changed otherwise (a tree created or dropped, the catalog made), or
    /// page 0 has no room for them all, every count page 0 held goes back
    /// into the catalog records, and page 0 holds none (docs/format.md,
    /// "Tree entry counts").
    fn record_counts(&mut self) -> Result<()> {
        let (header, base) = (self.pages.header(), self.pages.base().header());
        let catalog_changed =
            header.catalog_version != base.catalog_version || header.catalog_root != base.catalog_root;
        let mut counts = header.tree_counts.clone();
        let mut changed = false;
        for (&root, t) in self.trees.iter().filter(|(_, t)| t.changed) {
            changed = true;
            match counts.iter_mut().find(|c| c.is_of(root, t.serial)) {
                Some(c) => c.entries = t.entries,
                None => counts.push(TreeCount { root, serial: t.serial, entries: t.entries }),
            }
        }
        if !catalog_changed && counts.len() <= header.count_capacity() {
            if changed {
                self.pages.header_mut().tree_counts = counts;
            }
            return Ok(());
        }
        let catalog = header.catalog_root;
        let mut folded: Vec<(Vec<u8>, TreeMeta)> = Vec::new();
        if !counts.is_empty() && catalog != 0 {
            for entry in btree::Range::new(&self.pages, catalog, Bound::Unbounded, Bound::Unbounded, false)? {
                let (name, value) = entry?;
                let meta = TreeMeta::decode(&value, &String::from_utf8_lossy(&name))?;
                if let Some(c) = counts.iter().find(|c| c.is_of(meta.root, meta.serial)) {
                    if c.entries != meta.entries {
                        folded.push((name, TreeMeta { entries: c.entries, ..meta }));
                    }
                }
            }
        }
        for (name, meta) in folded {
            btree::insert(&mut self.pages, catalog, &name, &meta.encode())?;
        }
        if !self.pages.header().tree_counts.is_empty() {
            self.pages.header_mut().tree_counts.clear();
        }
        Ok(())
    }

    /// Discards every change (the same as dropping the transaction).
    pub fn rollback(self) {}

    /// Whether a page change of this transaction failed (a spill that could
    /// not be written, a page that could not be read): then it refuses
    /// further changes, reads (a tree may be half changed) and its commit,
    /// and can only be rolled back.
    pub fn is_broken(&self) -> bool {
        self.pages.check_intact().is_err()
    }

    /// Changed pages held in memory now (at most what
    /// `Options::max_dirty_bytes` allows).
    pub fn dirty_pages(&self) -> usize {
        self.pages.dirty_count()
    }

    /// Keeps at most `bytes` of changed pages in memory from now on, when
    /// that is less than `Options::max_dirty_bytes` (a long streaming
    /// write, such as an import, gains nothing from holding more).
    pub(crate) fn cap_dirty_bytes(&mut self, bytes: usize) {
        let page_size = self.pages.base().page_size();
        self.pages.cap_dirty(bytes / page_size);
    }

    /// Changed pages written to the WAL ahead of the commit so far, because
    /// the transaction outgrew `Options::max_dirty_bytes` (counting a page
    /// once per time it was written).
    pub fn spilled_pages(&self) -> usize {
        self.pages.spilled_count()
    }

    /// Reads a page as this transaction sees it.
    pub fn read_page(&self, pgno: PageNo) -> Result<PageRef> {
        self.pages.read(pgno)
    }
}

impl sealed::Identity for WriteTxn {
    fn txn_id(&self) -> u64 {
        self.id
    }

    fn file_header(&self) -> &Header {
        self.pages.header()
    }

    fn dropped_trees(&self) -> bool {
        self.dropped
    }

    fn committed_view(&self) -> Option<sealed::CommittedView<'_>> {
        let base = self.pages.base();
        (self.pages.unchanged() && !self.dropped && !base.pager().forked()).then(|| sealed::CommittedView {
            memo: base.pager().memo(),
            counter: base.header().commit_counter,
            keep: false,
        })
    }
}

impl ReadableTxn for WriteTxn {
    type Pages = WritePages;

    fn pages(&self) -> &WritePages {
        &self.pages
    }

    fn count(&self, tree: &Tree) -> Result<u64> {
        match self.trees.get(&tree.root) {
            Some(t) if t.is(tree) => Ok(t.entries),
            _ => Ok(resolve(self, tree)?.entries),
        }
    }
}

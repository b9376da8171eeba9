//! Typed documents: the [`Document`] trait that ties a serde type to its
//! collection, schema version and indexes, and the `Db` convenience
//! methods that each run in their own transaction.
//!
//! Declared indexes are created (and filled) on the first write through a
//! typed method, in that write's transaction.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::db::Db;
use crate::doc::collection::{has_collection, split_attached, CollectionMut, CollectionOptions};
use crate::doc::serde_value::from_value;
use crate::doc::value::Value;
use crate::error::{Error, Result};
use crate::index::secondary::{IndexSpec, IndexStatus};
use crate::query::spec::QuerySpec;
use crate::txn::{ReadTxn, WriteTxn};

/// A Rust type stored as documents of one collection.
///
/// A document serializes to a map (a struct with named fields, a map, or
/// an enum variant that serializes as one): a tuple struct, a unit, a
/// list or a scalar at the top level is `InvalidArgument`. `None` and `()`
/// are both stored as `null`, as in serde_json, so `Some(None)` of an
/// `Option<Option<T>>` reads back as `None`.
///
/// ```
/// use obj_engine::{Db, Document, IndexSpec};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct User { name: String, email: String }
/// impl Document for User {
///     const COLLECTION: &'static str = "users";
///     fn indexes() -> Vec<IndexSpec> {
///         vec![IndexSpec::unique("by_email", "email").unwrap()]
///     }
/// }
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Db::open(dir.path().join("app.obj"))?;
/// let id = db.insert(&User { name: "Ann".into(), email: "a@x".into() })?;
/// assert_eq!(db.get::<User>(id)?.unwrap().name, "Ann");
/// # Ok::<(), obj_engine::Error>(())
/// ```
pub trait Document: Serialize + DeserializeOwned {
    /// The collection's name.
    const COLLECTION: &'static str;
    /// The schema version written into each document's header.
    const VERSION: u32 = 0;
    /// The secondary indexes the collection should have.
    fn indexes() -> Vec<IndexSpec> {
        Vec::new()
    }

    /// Brings a stored document written with another schema version
    /// (`version`, from its header) to the shape of this type, before it is
    /// deserialized. Every typed read calls it for a document whose version
    /// is not [`VERSION`](Self::VERSION): the `Db` methods ([`Db::get`],
    /// [`Db::get_many`], [`Db::all`], [`Db::query`], [`Db::update`]),
    /// [`Collection::get_doc`](crate::Collection::get_doc),
    /// [`CollectionMut::update_doc`](crate::CollectionMut::update_doc) and
    /// [`QueryCursor::next_doc`](crate::QueryCursor::next_doc). The stored
    /// document is not changed by a read; an update writes it back with the
    /// current version. The default returns the document as it is.
    ///
    /// Filters and indexes see documents as they are stored, not migrated.
    ///
    /// ```
    /// use obj_engine::{Db, Document, Error, Value};
    /// // Version 1 stored `name`; version 2 splits it.
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct PersonV1 { name: String }
    /// impl Document for PersonV1 { const COLLECTION: &'static str = "people"; const VERSION: u32 = 1; }
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Person { first: String, last: String }
    /// impl Document for Person {
    ///     const COLLECTION: &'static str = "people";
    ///     const VERSION: u32 = 2;
    ///     fn migrate(version: u32, doc: Value) -> obj_engine::Result<Value> {
    ///         if version >= 2 {
    ///             return Ok(doc);
    ///         }
    ///         let name = doc.get("name").and_then(Value::as_str).ok_or_else(|| Error::invalid("no name"))?;
    ///         let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    ///         Ok(Value::from_iter([("first", first), ("last", last)]))
    ///     }
    /// }
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::open(dir.path().join("app.obj"))?;
    /// let id = db.insert(&PersonV1 { name: "Ada Lovelace".into() })?;
    /// assert_eq!(db.get::<Person>(id)?.unwrap().last, "Lovelace");
    /// # Ok::<(), obj_engine::Error>(())
    /// ```
    fn migrate(version: u32, doc: Value) -> Result<Value> {
        let _ = version;
        Ok(doc)
    }
}

/// A decoded document of schema version `version` as a `T`, through
/// [`Document::migrate`] when the version is not `T::VERSION`.
pub(crate) fn migrated<T: Document>(version: u32, doc: Value) -> Result<T> {
    let doc = if version == T::VERSION { doc } else { T::migrate(version, doc)? };
    from_value(doc)
}

/// A one-call write of the typed API: runs `f` on `T`'s collection in
/// `tx` and commits, handing the collection's state on to the transactions
/// that begin from the commit ([`WriteTxn::commit_keeping`]). An error from
/// `f` or the commit rolls everything back.
fn write_typed<T: Document, R>(
    mut tx: WriteTxn,
    f: impl FnOnce(&mut CollectionMut<'_>) -> Result<R>,
) -> Result<R> {
    let mut c = typed_collection::<T>(&mut tx)?;
    let out = f(&mut c)?;
    let kept = c.detach();
    tx.commit_keeping(kept)?;
    Ok(out)
}

/// Opens `T`'s collection for writing, creating it and any missing
/// declared index.
pub fn typed_collection<T: Document>(txn: &mut WriteTxn) -> Result<CollectionMut<'_>> {
    let specs = T::indexes();
    for (k, spec) in specs.iter().enumerate() {
        if specs[..k].iter().any(|earlier| earlier.name == spec.name) {
            return Err(Error::invalid(format!(
                "{} declares two indexes named {:?}; give each index of a collection its own name",
                std::any::type_name::<T>(),
                spec.name
            )));
        }
    }
    let mut c = CollectionMut::open_or_create(txn, T::COLLECTION, CollectionOptions { raw: false })?;
    for spec in specs {
        let existing = c.read().indexes().iter().find(|i| i.spec.name == spec.name).cloned();
        match existing {
            None => c.create_index(spec)?,
            // A declaration that changed would otherwise be ignored
            // silently (and a unique constraint go unenforced).
            Some(i) if i.spec != spec => {
                return Err(Error::invalid(format!(
                    "collection {:?} has index {:?} as {}, but {} declares it as {}; drop the index \
                     (Db::drop_index) to declare it anew",
                    T::COLLECTION,
                    spec.name,
                    describe(&i.spec),
                    std::any::type_name::<T>(),
                    describe(&spec)
                )))
            }
            // An interrupted Db::create_index: finish it now.
            Some(i) if i.status == IndexStatus::Building => while !c.backfill(&spec.name, usize::MAX)? {},
            Some(_) => {}
        }
    }
    Ok(c)
}

/// Whether `name` names a collection a read can find: one of this
/// database, or `ns.coll` of a database attached as `ns`.
fn readable(rx: &ReadTxn, name: &str) -> Result<bool> {
    match split_attached(name, |ns| rx.attached(ns).is_some()) {
        Some((ns, rest)) => has_collection(rx.attached(ns).expect("attached"), rest),
        None => has_collection(rx, name),
    }
}

/// Whether a write to collection `name` has something to work on: an
/// existing collection of this database, or any name of an attached one,
/// which the write then refuses as read-only rather than report nothing
/// there.
fn writable_exists(tx: &WriteTxn, name: &str) -> Result<bool> {
    if split_attached(name, |ns| tx.attached(ns).is_some()).is_some() {
        return Ok(true);
    }
    has_collection(tx, name)
}

fn describe(spec: &IndexSpec) -> String {
    let fields: Vec<String> = spec.fields.iter().map(|f| f.to_string()).collect();
    format!("{:?} on ({})", spec.kind, fields.join(", "))
}

/// Documents indexed per batch (one write transaction each) when
/// [`Db::create_index`] fills an index from existing documents.
pub const BACKFILL_BATCH: usize = 1000;

impl Db {
    /// Inserts `doc` into `T::COLLECTION`; returns its new id.
    pub fn insert<T: Document>(&self, doc: &T) -> Result<u64> {
        write_typed::<T, _>(self.begin_write()?, |c| c.insert_doc(doc))
    }

    /// Inserts every document in one transaction; returns their ids.
    pub fn insert_many<T: Document>(&self, docs: &[T]) -> Result<Vec<u64>> {
        write_typed::<T, _>(self.begin_write()?, |c| c.insert_docs(docs))
    }

    /// Document `id` of `T::COLLECTION` (`None` if absent), migrated by
    /// [`Document::migrate`] if it was written with another version.
    pub fn get<T: Document>(&self, id: u64) -> Result<Option<T>> {
        let rx = self.begin_read()?;
        if !readable(&rx, T::COLLECTION)? {
            return Ok(None);
        }
        rx.collection(T::COLLECTION)?.get_doc(id)
    }

    /// Documents with the given ids (`None` for missing ones).
    pub fn get_many<T: Document>(&self, ids: &[u64]) -> Result<Vec<Option<T>>> {
        let rx = self.begin_read()?;
        if !readable(&rx, T::COLLECTION)? {
            return Ok(ids.iter().map(|_| None).collect());
        }
        rx.collection(T::COLLECTION)?.get_many_docs(ids)
    }

    /// The document of `T::COLLECTION` whose unique index `index` holds
    /// `values` (one per indexed field), with its id; `None` when there is
    /// none (or no such collection yet). `NotFound` for an unknown index,
    /// `InvalidArgument` for one that is not unique or a wrong number of
    /// values. Migrated like [`Db::get`].
    pub fn find_unique<T: Document>(&self, index: &str, values: &[Value]) -> Result<Option<(u64, T)>> {
        let rx = self.begin_read()?;
        if !readable(&rx, T::COLLECTION)? {
            return Ok(None);
        }
        rx.collection(T::COLLECTION)?.find_unique_doc(index, values)
    }

    /// Every document of `T::COLLECTION` in id order.
    pub fn all<T: Document>(&self) -> Result<Vec<(u64, T)>> {
        self.query::<T>(&QuerySpec::new(T::COLLECTION))
    }

    /// The results of `spec` (on `T::COLLECTION`) as `T`s.
    pub fn query<T: Document>(&self, spec: &QuerySpec) -> Result<Vec<(u64, T)>> {
        if spec.collection != T::COLLECTION {
            return Err(Error::invalid(format!(
                "query names collection {:?} but runs on {:?}",
                spec.collection,
                T::COLLECTION
            )));
        }
        // (Refused whether or not the collection exists: see the planner.)
        spec.check_shape()?;
        let rx = self.begin_read()?;
        if !readable(&rx, T::COLLECTION)? {
            return Ok(Vec::new());
        }
        let c = rx.collection(T::COLLECTION)?;
        let mut out = Vec::new();
        let mut cursor = c.query(spec)?;
        while let Some(item) = cursor.next_doc() {
            out.push(item?);
        }
        Ok(out)
    }

    /// Atomically reads document `id`, applies `f` and writes it back, in
    /// one write transaction (a document of an older version is migrated
    /// first, [`Document::migrate`], and written back with `T::VERSION`). If `f` returns an error nothing is written and
    /// the error is returned. `Ok(false)` when there is no such document.
    /// The document is written back as `T` serializes: fields that `T`
    /// does not have (read past by serde) are gone afterwards, so update
    /// with the type that holds every field.
    pub fn update<T: Document>(&self, id: u64, f: impl FnOnce(&mut T) -> Result<()>) -> Result<bool> {
        let mut tx = self.begin_write()?;
        if !writable_exists(&tx, T::COLLECTION)? {
            return Ok(false);
        }
        let mut c = typed_collection::<T>(&mut tx)?;
        if !c.update_doc(id, f)? {
            return Ok(false);
        }
        let kept = c.detach();
        tx.commit_keeping(kept)?;
        Ok(true)
    }

    /// Writes `doc` at `id`; true if it replaced a document.
    pub fn upsert<T: Document>(&self, id: u64, doc: &T) -> Result<bool> {
        write_typed::<T, _>(self.begin_write()?, |c| c.upsert_doc(id, doc))
    }

    /// Deletes document `id` of `T::COLLECTION`; true if it existed.
    pub fn delete<T: Document>(&self, id: u64) -> Result<bool> {
        let tx = self.begin_write()?;
        // Nothing to delete: no collection (and no commit) is made.
        if !writable_exists(&tx, T::COLLECTION)? {
            return Ok(false);
        }
        write_typed::<T, _>(tx, |c| c.delete(id))
    }

    /// Creates index `spec` on collection `coll` (created if missing) and
    /// fills it from existing documents in batches of [`BACKFILL_BATCH`],
    /// one write transaction each, so other writers can run between
    /// batches (a waiting thread of this process after the batch under
    /// way, a writer in another process within about 100 ms). Until it is complete its status is `building` and queries do
    /// not use it. A unique violation found while filling drops the index
    /// and returns the error. A build cut short (a `Busy` batch, a crash)
    /// leaves the index `building`: calling this again with the same `spec`
    /// resumes it where it stopped. The same `spec` on an index that is
    /// ready does nothing; another index of that name is `InvalidArgument`.
    pub fn create_index(&self, coll: &str, spec: IndexSpec) -> Result<()> {
        // Done already: answered from a snapshot, without the writer lock
        // (and so on a read-only handle too).
        let rx = self.begin_read()?;
        match rx.collection(coll) {
            Ok(c) if c.index_status(&spec)? == Some(IndexStatus::Ready) => return Ok(()),
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        drop(rx);
        let name = spec.name.clone();
        let mut tx = self.begin_write()?;
        let mut c = tx.collection_mut(coll)?;
        // Again under the lock: another handle may have made it meanwhile.
        match c.read().index_status(&spec)? {
            Some(IndexStatus::Ready) => return Ok(()),
            Some(IndexStatus::Building) => {}
            None => c.add_index(spec, IndexStatus::Building)?,
        }
        tx.commit()?;
        let mut last_gap = std::time::Instant::now();
        loop {
            let mut tx = self.begin_write()?;
            let result = tx.collection_mut(coll)?.backfill(&name, BACKFILL_BATCH);
            match result {
                Ok(done) => {
                    tx.commit()?;
                    if done {
                        return Ok(());
                    }
                    self.pager().let_waiting_writers_in();
                    // A writer in another process polls for the lock, at
                    // most 4 ms apart (`shm::retry`): leave it a longer gap
                    // every 100 ms of building (at most 5% of the build's
                    // time: a batch of small documents takes about 1 ms),
                    // or it may wait out its busy timeout.
                    if last_gap.elapsed() >= std::time::Duration::from_millis(100) {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        last_gap = std::time::Instant::now();
                    }
                }
                Err(e) => {
                    drop(tx);
                    let mut tx = self.begin_write()?;
                    let mut c = tx.collection_mut(coll)?;
                    if !c.read().indexes().iter().any(|i| i.spec.name == name) {
                        // Gone meanwhile: another transaction finished it
                        // and found a unique violation, or dropped it.
                        return Err(Error::Constraint(format!(
                            "index {name:?} of collection {coll:?} was dropped while this build ran (a \
                             transaction that finished it found a unique violation, or dropped it)"
                        )));
                    }
                    c.drop_index(&name)?;
                    tx.commit()?;
                    return Err(e);
                }
            }
        }
    }

    /// Drops index `name` of collection `coll`.
    pub fn drop_index(&self, coll: &str, name: &str) -> Result<()> {
        let mut tx = self.begin_write()?;
        CollectionMut::open(&mut tx, coll)?.drop_index(name)?;
        tx.commit()
    }
}

//! Export and import: collections (and key-value namespaces) as JSON lines.
//!
//! The format is specified in `docs/format.md`, "Export files (JSON
//! lines)". In short, one JSON value per line: a section header naming a
//! collection with its kind, next id, document count and index
//! declarations, then one line per document `{"id": …, "doc": …}` in id
//! order, with documents in the engine's JSON form (`doc/json.rs`, which
//! keeps every value type: u64 beyond i64, NaN and infinities, bytes,
//! timestamps with and without offset). Key-value namespaces follow the
//! same pattern.
//!
//! Both directions stream: export holds one document at a time (it reads
//! one snapshot), import one line at a time. Import creates each collection
//! with its kind and declared indexes, then writes every document at its id
//! (upsert, keeping its schema version) and raises the collection's next id
//! to the exported one, so ids of deleted documents are not reused. By
//! default it runs in one write transaction (all or nothing); its memory is
//! bounded all the same, because a write transaction spills the pages it
//! changed beyond `Options::max_dirty_bytes` to the WAL
//! (`storage/write_set.rs`). With [`ImportOptions::batch_size`] it commits
//! every that many lines instead, and a failure leaves the batches before
//! it committed.

use std::io::{BufRead, Write};
use std::ops::Bound;
use std::path::Path;

use crate::db::Db;
use crate::doc::codec::decode_header;
use crate::doc::collection::{decode_stored, list_collections, Collection, CollectionMut, CollectionOptions};
use crate::doc::json::{from_json_str_enveloped, write_json};
use crate::doc::value::Value;
use crate::error::{Error, Result};
use crate::index::secondary::{IndexKind, IndexSpec};
use crate::query::expr::FieldPath;
use crate::storage::file::{remove_stale_temps, temp_path_beside, OsVfs, Vfs};
use crate::txn::EngineTrees;
use crate::txn::{ReadTxn, ReadableTxn, WriteTxn};

/// The export format version this build writes and reads.
pub const EXPORT_VERSION: i64 = 1;

const KV_PREFIX: &str = "$kv/";

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportReport {
    /// Collection sections.
    pub collections: u64,
    /// Document lines.
    pub documents: u64,
    /// Key-value namespace sections.
    pub kv_namespaces: u64,
    /// Key-value entry lines.
    pub kv_entries: u64,
    /// Plain B+tree sections (trees made with `WriteTxn::create_tree`).
    pub trees: u64,
    /// Plain B+tree entry lines.
    pub tree_entries: u64,
    /// The commit counter of the snapshot exported.
    pub commit_counter: u64,
}

/// How [`Db::import`] commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOptions {
    /// `None` (default): one transaction for the whole input (all or
    /// nothing; the changed pages kept in memory are bounded by 16 MiB, or
    /// `Options::max_dirty_bytes` if less, and the rest go to the WAL as
    /// the transaction runs). `Some(n)`:
    /// commit after every `n` document or entry lines (not atomic as a
    /// whole).
    pub batch_size: Option<usize>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// Collection sections read.
    pub collections: u64,
    /// Documents written.
    pub documents: u64,
    /// Indexes created.
    pub indexes_created: u64,
    /// Key-value namespace sections read.
    pub kv_namespaces: u64,
    /// Key-value entries written.
    pub kv_entries: u64,
    /// Plain B+tree sections read.
    pub trees: u64,
    /// Plain B+tree entries written.
    pub tree_entries: u64,
    /// Transactions committed.
    pub commits: u64,
}

/// The context of an export's write errors (see [`named`]).
const WRITING: &str = "writing the export";

fn io_err(e: std::io::Error) -> Error {
    Error::io(WRITING, e)
}

/// `e` with the export's target named, when it is a write error.
fn named(e: Error, target: &str) -> Error {
    match e {
        Error::Io { context, source } if context == WRITING => {
            Error::io(format!("{WRITING} to {target}"), source)
        }
        e => e,
    }
}

/// What an export does with an existing target that is not a regular file.
enum Special {
    /// A FIFO or a character device: written straight into.
    Stream,
    /// Anything else (a block device, a socket): refused, as `what`.
    Other(&'static str),
}

/// The kind of special file `path` is (following links), `None` for a
/// regular file, a directory or a missing path.
fn special_file(path: &Path) -> Option<Special> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata(path).ok()?.file_type();
    if kind.is_fifo() || kind.is_char_device() {
        Some(Special::Stream)
    } else if kind.is_block_device() {
        Some(Special::Other("a block device"))
    } else if kind.is_socket() {
        Some(Special::Other("a socket"))
    } else {
        None
    }
}

struct LineWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> LineWriter<W> {
    fn line(&mut self, v: &Value) -> Result<()> {
        self.buf.clear();
        write_json(v, &mut self.buf);
        self.buf.push(b'\n');
        self.out.write_all(&self.buf).map_err(io_err)
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn kind_name(kind: IndexKind) -> &'static str {
    kind.as_str()
}

fn export_one<T: ReadableTxn, W: Write>(
    c: &Collection<'_, T>,
    w: &mut LineWriter<W>,
    report: &mut ExportReport,
) -> Result<()> {
    let raw = c.st.raw;
    let indexes = c
        .indexes()
        .iter()
        .map(|i| {
            Value::Map(vec![
                ("name".into(), s(&i.spec.name)),
                ("kind".into(), s(kind_name(i.spec.kind))),
                ("fields".into(), Value::List(i.spec.field_strings().iter().map(|f| s(f)).collect())),
            ])
        })
        .collect();
    w.line(&Value::Map(vec![
        ("obj_export".into(), Value::Int(EXPORT_VERSION)),
        // Its own name, not `ns.coll` for an attached one: the dump loads
        // into any database.
        ("collection".into(), s(&c.st.name)),
        ("kind".into(), s(if raw { "raw" } else { "documents" })),
        ("next_id".into(), Value::from(c.next_id())),
        ("count".into(), Value::from(c.count()?)),
        ("indexes".into(), Value::List(indexes)),
    ]))?;
    report.collections += 1;
    for entry in c.txn.range(&c.st.docs, Bound::Unbounded, Bound::Unbounded, false)? {
        let (key, bytes) = entry?;
        let id = u64::from_be_bytes(
            key.as_slice().try_into().map_err(|_| Error::corruption(None, "document key is not 8 bytes"))?,
        );
        let (version, doc) = if raw {
            let (h, payload) = decode_header(&bytes)?;
            (h.schema_version, Value::Bytes(payload.to_vec()))
        } else {
            decode_stored(&bytes, &*c.st.dict)?
        };
        let mut line = vec![("id".to_string(), Value::from(id))];
        if version != 0 {
            line.push(("v".into(), Value::from(version as u64)));
        }
        line.push(("doc".into(), doc));
        w.line(&Value::Map(line))?;
        report.documents += 1;
    }
    Ok(())
}

/// Writes one section of key-value entries: a `kv` namespace (stored in
/// the engine tree `$kv/<ns>`) or a plain B+tree of the user's.
fn export_entries<T: ReadableTxn, W: Write>(
    txn: &T,
    section: EntrySection<'_>,
    w: &mut LineWriter<W>,
    report: &mut ExportReport,
) -> Result<()> {
    let (key, name, tree) = match section {
        EntrySection::Kv(ns) => ("kv", ns, txn.open_engine_tree(&format!("{KV_PREFIX}{ns}"))?),
        EntrySection::Tree(name) => ("tree", name, txn.open_tree(name)?),
    };
    w.line(&Value::Map(vec![
        ("obj_export".into(), Value::Int(EXPORT_VERSION)),
        (key.into(), s(name)),
        ("count".into(), Value::from(txn.count(&tree)?)),
    ]))?;
    let mut lines = 0;
    for entry in txn.range(&tree, Bound::Unbounded, Bound::Unbounded, false)? {
        let (k, v) = entry?;
        w.line(&Value::Map(vec![("key".into(), Value::Bytes(k)), ("value".into(), Value::Bytes(v))]))?;
        lines += 1;
    }
    match section {
        EntrySection::Kv(_) => {
            report.kv_namespaces += 1;
            report.kv_entries += lines;
        }
        EntrySection::Tree(_) => {
            report.trees += 1;
            report.tree_entries += lines;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum EntrySection<'a> {
    Kv(&'a str),
    Tree(&'a str),
}

impl ReadTxn {
    /// [`export_collection`](Self::export_collection) of `Some(name)`,
    /// [`export_all`](Self::export_all) for `None`.
    pub fn export<W: Write>(&self, collection: Option<&str>, out: W) -> Result<ExportReport> {
        match collection {
            Some(name) => self.export_collection(name, out),
            None => self.export_all(out),
        }
    }

    /// Writes collection `name` (as this snapshot sees it; `ns.coll` for an
    /// attached one) to `out` as JSON lines: its header line, then one line
    /// per document in id order.
    pub fn export_collection<W: Write>(&self, name: &str, out: W) -> Result<ExportReport> {
        let mut w = LineWriter { out, buf: Vec::new() };
        let mut report =
            ExportReport { commit_counter: self.snapshot().header().commit_counter, ..Default::default() };
        export_one(&self.collection(name)?, &mut w, &mut report)?;
        w.out.flush().map_err(io_err)?;
        Ok(report)
    }

    /// Writes every collection, then every key-value namespace, then every
    /// plain B+tree (made with `WriteTxn::create_tree`), of this snapshot
    /// to `out` as JSON lines.
    pub fn export_all<W: Write>(&self, out: W) -> Result<ExportReport> {
        let mut w = LineWriter { out, buf: Vec::new() };
        let mut report =
            ExportReport { commit_counter: self.snapshot().header().commit_counter, ..Default::default() };
        for name in list_collections(self)? {
            export_one(&self.collection(&name)?, &mut w, &mut report)?;
        }
        let trees = self.list_trees()?;
        for tree in &trees {
            if let Some(ns) = tree.strip_prefix(KV_PREFIX) {
                export_entries(self, EntrySection::Kv(ns), &mut w, &mut report)?;
            }
        }
        // Names starting with `$` are the engine's (documents, indexes,
        // names, namespaces): written above in their own form.
        for tree in trees.iter().filter(|t| !t.starts_with('$')) {
            export_entries(self, EntrySection::Tree(tree), &mut w, &mut report)?;
        }
        w.out.flush().map_err(io_err)?;
        Ok(report)
    }
}

/// Reads non-empty lines and parses each as a JSON value.
struct Lines<R: BufRead> {
    input: R,
    /// Bytes, not a `String`: a line that is not UTF-8 is a malformed line
    /// (named, `InvalidArgument`), not an I/O error of the reader.
    buf: Vec<u8>,
    lineno: u64,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> Result<Option<(u64, Value)>> {
        loop {
            self.buf.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| Error::io("reading the import", e))?;
            if n == 0 {
                return Ok(None);
            }
            self.lineno += 1;
            let text = std::str::from_utf8(&self.buf)
                .map_err(|e| bad(self.lineno, format_args!("not valid UTF-8 ({e})")))?;
            // A byte order mark that an editor put at the start of the file
            // is no part of the first line (JSON parsers may ignore one).
            let text = if self.lineno == 1 { text.strip_prefix('\u{feff}').unwrap_or(text) } else { text };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            // A document line wraps its document in one more object.
            let v = from_json_str_enveloped(text).map_err(|e| at_line(self.lineno, e))?;
            return Ok(Some((self.lineno, v)));
        }
    }
}

/// Prefixes the message of a caller-side error with the line number.
fn at_line(lineno: u64, e: Error) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("import line {lineno}: {m}")),
        Error::Constraint(m) => Error::Constraint(format!("import line {lineno}: {m}")),
        Error::NotFound(m) => Error::NotFound(format!("import line {lineno}: {m}")),
        other => other,
    }
}

fn bad(lineno: u64, what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("import line {lineno}: {what}"))
}

/// A section's line `n` beyond the `expected` its header (at line
/// `header`) announced.
fn one_too_many(n: u64, header: u64, expected: u64) -> Error {
    bad(n, format!("one line more than the {expected} that the section header at line {header} announces"))
}

fn fields(v: &Value) -> Option<&[(String, Value)]> {
    v.as_map()
}

fn get<'a>(map: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn as_u64(v: &Value) -> Option<u64> {
    match *v {
        Value::Int(i) => u64::try_from(i).ok(),
        Value::UInt(u) => Some(u),
        _ => None,
    }
}

fn is_header(v: &Value) -> bool {
    fields(v).is_some_and(|m| get(m, "obj_export").is_some())
}

enum Section {
    Collection { name: String, raw: bool, next_id: u64, count: u64, indexes: Vec<IndexSpec> },
    Kv { ns: String, count: u64 },
    Tree { name: String, count: u64 },
}

fn only_keys(lineno: u64, map: &[(String, Value)], allowed: &[&str]) -> Result<()> {
    match map.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(bad(lineno, format!("unexpected field {k:?}"))),
        None => Ok(()),
    }
}

fn parse_header(lineno: u64, v: &Value) -> Result<Section> {
    let map = fields(v).filter(|m| get(m, "obj_export").is_some()).ok_or_else(|| {
        bad(
            lineno,
            "expected a section header ({\"obj_export\": 1, \"collection\": …}, {\"obj_export\": 1, \"kv\": …} \
             or {\"obj_export\": 1, \"tree\": …})",
        )
    })?;
    let version = get(map, "obj_export").and_then(Value::as_i64);
    match version {
        Some(EXPORT_VERSION) => {}
        Some(v) if v > EXPORT_VERSION => {
            return Err(Error::Unsupported(format!("import line {lineno}: export format version {v}")));
        }
        _ => return Err(bad(lineno, "obj_export must be 1")),
    }
    let text = |key: &str| -> Result<String> {
        get(map, key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(lineno, format!("{key:?} must be a string")))
    };
    let number = |key: &str| -> Result<u64> {
        get(map, key)
            .and_then(as_u64)
            .ok_or_else(|| bad(lineno, format!("{key:?} must be a non-negative integer")))
    };
    if get(map, "kv").is_some() {
        only_keys(lineno, map, &["obj_export", "kv", "count"])?;
        return Ok(Section::Kv { ns: text("kv")?, count: number("count")? });
    }
    if get(map, "tree").is_some() {
        only_keys(lineno, map, &["obj_export", "tree", "count"])?;
        return Ok(Section::Tree { name: text("tree")?, count: number("count")? });
    }
    only_keys(lineno, map, &["obj_export", "collection", "kind", "next_id", "count", "indexes"])?;
    let raw = match text("kind")?.as_str() {
        "documents" => false,
        "raw" => true,
        other => return Err(bad(lineno, format!("unknown collection kind {other:?}"))),
    };
    let mut indexes = Vec::new();
    let list = get(map, "indexes")
        .and_then(Value::as_list)
        .ok_or_else(|| bad(lineno, "\"indexes\" must be a list"))?;
    for ix in list {
        let m = fields(ix).ok_or_else(|| bad(lineno, "an index must be an object"))?;
        only_keys(lineno, m, &["name", "kind", "fields"])?;
        let name = get(m, "name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(lineno, "index \"name\" must be a string"))?;
        let kind = match get(m, "kind").and_then(Value::as_str) {
            Some("unique") => IndexKind::Unique,
            Some("standard") => IndexKind::Standard,
            Some("multi") => IndexKind::Multi,
            _ => return Err(bad(lineno, "index \"kind\" must be unique, standard or multi")),
        };
        let paths = get(m, "fields")
            .and_then(Value::as_list)
            .ok_or_else(|| bad(lineno, "index \"fields\" must be a list"))?
            .iter()
            .map(|f| {
                f.as_str()
                    .ok_or_else(|| bad(lineno, "an index field must be a string"))
                    .and_then(|f| FieldPath::parse(f).map_err(|e| at_line(lineno, e)))
            })
            .collect::<Result<Vec<_>>>()?;
        let spec = IndexSpec { name: name.to_string(), kind, fields: paths };
        spec.validate().map_err(|e| at_line(lineno, e))?;
        indexes.push(spec);
    }
    Ok(Section::Collection {
        name: text("collection")?,
        raw,
        next_id: number("next_id")?,
        count: number("count")?,
        indexes,
    })
}

/// `(id, schema version, document)` of a document line.
fn parse_doc_line(lineno: u64, v: Value) -> Result<(u64, u32, Value)> {
    let Value::Map(map) = v else {
        return Err(bad(lineno, "expected a document line {\"id\": …, \"doc\": …}"));
    };
    only_keys(lineno, &map, &["id", "v", "doc"])?;
    let id = get(&map, "id")
        .and_then(as_u64)
        .ok_or_else(|| bad(lineno, "\"id\" must be a non-negative integer"))?;
    let version = match get(&map, "v") {
        None => 0,
        Some(v) => {
            as_u64(v).and_then(|v| u32::try_from(v).ok()).ok_or_else(|| bad(lineno, "\"v\" must be a u32"))?
        }
    };
    let doc =
        map.into_iter().find(|(k, _)| k == "doc").map(|(_, v)| v).ok_or_else(|| bad(lineno, "no \"doc\""))?;
    Ok((id, version, doc))
}

fn parse_kv_line(lineno: u64, v: Value) -> Result<(Vec<u8>, Vec<u8>)> {
    let Value::Map(map) = v else {
        return Err(bad(lineno, "expected an entry line {\"key\": …, \"value\": …}"));
    };
    only_keys(lineno, &map, &["key", "value"])?;
    let mut key = None;
    let mut value = None;
    for (k, v) in map {
        match (k.as_str(), v) {
            ("key", Value::Bytes(b)) => key = Some(b),
            ("value", Value::Bytes(b)) => value = Some(b),
            _ => return Err(bad(lineno, "\"key\" and \"value\" must be bytes ({\"$bytes\": …})")),
        }
    }
    match (key, value) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(bad(lineno, "an entry needs \"key\" and \"value\"")),
    }
}

/// Most bytes of changed pages an import keeps in memory (less when
/// `Options::max_dirty_bytes` says so): a stream of documents in id order
/// fills pages once and leaves them, so a larger set only costs memory
/// (200k documents: 83 MB peak at the 64 MiB default, 59 MB at this, and
/// no slower).
const IMPORT_DIRTY_BYTES: usize = 16 << 20;

/// The running import: the open transaction and how full its batch is.
struct Importer<'d> {
    db: &'d Db,
    tx: Option<WriteTxn>,
    in_batch: usize,
    batch: Option<usize>,
    report: ImportReport,
}

impl Importer<'_> {
    fn tx(&mut self) -> Result<&mut WriteTxn> {
        if self.tx.is_none() {
            let mut tx = self.db.begin_write()?;
            tx.cap_dirty_bytes(IMPORT_DIRTY_BYTES);
            self.tx = Some(tx);
        }
        Ok(self.tx.as_mut().expect("just begun"))
    }

    fn batch_full(&self) -> bool {
        self.batch.is_some_and(|b| self.in_batch >= b.max(1))
    }

    fn commit(&mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit()?;
            self.report.commits += 1;
        }
        self.in_batch = 0;
        Ok(())
    }
}

/// `Busy` when `path` is a database open in this process, `InvalidArgument`
/// when it holds any obj database (its first bytes are the magic).
fn refuse_database_file(path: &Path) -> Result<()> {
    let display = path.display();
    if crate::db::open_in_process(path) {
        return Err(Error::Busy(format!("{display} is an open database; export to another path")));
    }
    if crate::ops::newfile::starts_with_magic(&OsVfs, path) {
        return Err(Error::invalid(format!(
            "{display} is an obj database; an export writes JSON lines and would destroy it"
        )));
    }
    Ok(())
}

impl Db {
    /// Writes collection `name` to `out` as JSON lines (see
    /// [`ReadTxn::export_collection`]), from a snapshot taken now.
    pub fn export_collection<W: Write>(&self, name: &str, out: W) -> Result<ExportReport> {
        self.begin_read()?.export_collection(name, out)
    }

    /// Writes every collection and key-value namespace to `out` as JSON
    /// lines (see [`ReadTxn::export_all`]), from a snapshot taken now.
    pub fn export_all<W: Write>(&self, out: W) -> Result<ExportReport> {
        self.begin_read()?.export_all(out)
    }

    /// Writes collection `collection` (every collection and namespace when
    /// `None`) to the file at `path` as JSON lines. The lines go to a
    /// temporary file beside `path`, which replaces it only once the export
    /// is complete and synced: a failed export leaves `path` as it was.
    /// Refuses a `path` that holds an obj database (`Busy` if it is open in
    /// this process, `InvalidArgument` otherwise), or that is a database's
    /// `-wal` or `-shm` file (`InvalidArgument`): an export over either
    /// would destroy the database or its last commits; and a directory
    /// (`InvalidArgument`). A symbolic link at `path` is followed: the file
    /// it names is replaced, the link stays. A `path` that is a pipe (FIFO)
    /// or a character device is written straight into (nothing to replace
    /// or sync; a FIFO's open waits for its reader, and cannot be
    /// interrupted), and one that names a descriptor of the process
    /// (`/dev/stdout`, `/proc/self/fd/1`) is appended to; a block device
    /// or a socket is refused (`InvalidArgument`). A write into a pipe
    /// whose reader has gone raises `SIGPIPE`, as any write does: a
    /// program that does not ignore it (Python does) is killed.
    pub fn export_to_path(&self, collection: Option<&str>, path: impl AsRef<Path>) -> Result<ExportReport> {
        // A symbolic link names the file to replace; the link stays.
        let resolved = crate::db::through_symlinks(path.as_ref());
        let path: &Path = &resolved;
        let display = path.display();
        refuse_database_file(path)?;
        crate::ops::newfile::refuse_sidecar(&OsVfs, path, "an export")?;
        if path.file_name().is_none() {
            return Err(Error::invalid(format!("{:?} is not a file path", display.to_string())));
        }
        // Refused before the export is written, not at the final rename.
        if path.is_dir() {
            return Err(Error::invalid(format!("{display} is a directory; an export needs a file path")));
        }
        // One of the process's descriptors (/dev/stdout, /proc/self/fd/N)
        // is written into, appended to: a file renamed over what it names
        // would replace a redirected log, and a pipe has no name to use.
        if crate::db::is_descriptor_link(path) {
            return self.export_streamed(collection, path, true);
        }
        // A pipe or a character device (a FIFO a compressor reads, a
        // terminal) is written straight into: a file renamed over it would
        // take its name from the reader, or replace the device.
        if let Some(kind) = special_file(path) {
            return match kind {
                Special::Stream => self.export_streamed(collection, path, false),
                Special::Other(what) => Err(Error::invalid(format!(
                    "{display} is {what}; an export needs a file path, a pipe or a character device"
                ))),
            };
        }
        // A name of its own (two exports to one path at once, from two
        // threads or processes, each write their own), held locked while
        // written: the next export or copy to `path` removes only the
        // temporary files nobody holds (left by a killed process).
        let tmp = temp_path_beside(path);
        let written = (|| {
            let file = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
            let _ = fs2::FileExt::try_lock_exclusive(&file);
            remove_stale_temps(&OsVfs, path, &tmp);
            let mut out = std::io::BufWriter::new(file);
            let report = self
                .begin_read()?
                .export(collection, &mut out)
                .map_err(|e| named(e, &tmp.display().to_string()))?;
            let file = out
                .into_inner()
                .map_err(|e| Error::io(format!("writing {}", tmp.display()), e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
            std::fs::rename(&tmp, path)
                .map_err(|e| Error::io(format!("renaming the export to {display}"), e))?;
            // The rename is durable only with the directory synced.
            OsVfs
                .sync_parent_dir(path)
                .map_err(|e| Error::io(format!("syncing the directory of {display}"), e))?;
            Ok(report)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// [`export_to_path`](Self::export_to_path) into a pipe, a character
    /// device or (`descriptor`) what one of the process's descriptors
    /// names, appended to. The snapshot is taken and the collection checked
    /// first; then the target is opened (a FIFO's open waits for a reader,
    /// as a shell's redirection does) and checked to still be a pipe or a
    /// device (it could have been replaced since it was looked at).
    fn export_streamed(
        &self,
        collection: Option<&str>,
        path: &Path,
        descriptor: bool,
    ) -> Result<ExportReport> {
        use std::os::unix::fs::FileTypeExt;
        let display = path.display();
        let r = self.begin_read()?;
        if let Some(c) = collection {
            r.collection(c)?;
        }
        let file = std::fs::File::options()
            .write(true)
            .append(descriptor)
            .open(path)
            .map_err(|e| Error::io(format!("opening {display}"), e))?;
        let kind =
            file.metadata().map_err(|e| Error::io(format!("reading the type of {display}"), e))?.file_type();
        if !descriptor && !kind.is_fifo() && !kind.is_char_device() {
            return Err(Error::invalid(format!(
                "{display} was replaced while the export opened it; it is no longer a pipe or a device"
            )));
        }
        let mut out = std::io::BufWriter::new(file);
        let report = r.export(collection, &mut out).map_err(|e| named(e, &display.to_string()))?;
        out.flush().map_err(|e| Error::io(format!("writing {display}"), e))?;
        Ok(report)
    }

    /// Reads JSON lines written by an export and writes their collections
    /// (created with their kind and indexes if missing), documents (at
    /// their ids, replacing what is there) and key-value entries. See the
    /// module documentation of `ops::export` for batching. A section whose
    /// line count differs from its header's `count` (a truncated file) is
    /// `InvalidArgument`; so is an existing collection of the other kind,
    /// an existing index of the same name with another declaration, or a
    /// read-only handle (whatever the input).
    pub fn import<R: BufRead>(&self, input: R, options: ImportOptions) -> Result<ImportReport> {
        self.check_writable()?;
        let mut lines = Lines { input, buf: Vec::new(), lineno: 0 };
        let mut imp = Importer {
            db: self,
            tx: None,
            in_batch: 0,
            batch: options.batch_size,
            report: ImportReport::default(),
        };
        let mut next = lines.next()?;
        while let Some((lineno, header)) = next.take() {
            let section = parse_header(lineno, &header)?;
            let mut seen = 0u64;
            // Documents come in ascending id order (docs/format.md): a
            // repeated id would silently replace the one before it.
            let mut last_id: Option<u64> = None;
            let expected = match &section {
                Section::Collection { name, raw, next_id, count, indexes } => {
                    let tx = imp.tx()?;
                    let mut c = CollectionMut::open_or_create(tx, name, CollectionOptions { raw: *raw })
                        .map_err(|e| at_line(lineno, e))?;
                    let mut created = 0;
                    for spec in indexes {
                        match c.read().indexes().iter().find(|i| i.spec.name == spec.name) {
                            Some(i) if i.spec == *spec => {}
                            Some(_) => {
                                return Err(bad(
                                    lineno,
                                    format!("index {:?} exists with another declaration", spec.name),
                                ))
                            }
                            None => {
                                c.create_index(spec.clone()).map_err(|e| at_line(lineno, e))?;
                                created += 1;
                            }
                        }
                    }
                    c.raise_next_id(*next_id)?;
                    imp.report.indexes_created += created;
                    imp.report.collections += 1;
                    *count
                }
                Section::Kv { ns, count } => {
                    imp.tx()?.kv_create(ns).map_err(|e| at_line(lineno, e))?;
                    imp.report.kv_namespaces += 1;
                    *count
                }
                Section::Tree { name, count } => {
                    imp.tx()?.create_tree(name).map_err(|e| at_line(lineno, e))?;
                    imp.report.trees += 1;
                    *count
                }
            };
            // The section's lines, in batches.
            loop {
                if imp.batch_full() {
                    imp.commit()?;
                }
                let batch_limit = imp.batch;
                let mut in_batch = imp.in_batch;
                let tx = imp.tx()?;
                let mut stop = false;
                match &section {
                    Section::Collection { name, raw, .. } => {
                        let mut c = CollectionMut::open(tx, name)?;
                        while batch_limit.is_none_or(|b| in_batch < b.max(1)) {
                            let Some((n, v)) = lines.next()? else {
                                stop = true;
                                break;
                            };
                            if is_header(&v) {
                                next = Some((n, v));
                                stop = true;
                                break;
                            }
                            if seen == expected {
                                return Err(one_too_many(n, lineno, expected));
                            }
                            let (id, version, doc) = parse_doc_line(n, v)?;
                            if let Some(last) = last_id.filter(|&last| id <= last) {
                                return Err(bad(
                                    n,
                                    format!(
                                        "id {id} after id {last}: a section's documents come in ascending id order"
                                    ),
                                ));
                            }
                            last_id = Some(id);
                            let result = if *raw {
                                match doc {
                                    Value::Bytes(b) => c.upsert_raw_versioned(id, &b, version),
                                    other => Err(Error::invalid(format!(
                                        "a raw collection's document must be bytes, not {}",
                                        other.type_name()
                                    ))),
                                }
                            } else {
                                c.upsert_versioned(id, &doc, version)
                            };
                            result.map_err(|e| at_line(n, e))?;
                            seen += 1;
                            in_batch += 1;
                        }
                    }
                    Section::Kv { .. } | Section::Tree { .. } => {
                        // (A tree's handle is taken again per batch: a
                        // batch commit ends the transaction it came from.)
                        let tree = match &section {
                            Section::Tree { name, .. } => Some(tx.open_tree(name)?),
                            _ => None,
                        };
                        while batch_limit.is_none_or(|b| in_batch < b.max(1)) {
                            let Some((n, v)) = lines.next()? else {
                                stop = true;
                                break;
                            };
                            if is_header(&v) {
                                next = Some((n, v));
                                stop = true;
                                break;
                            }
                            if seen == expected {
                                return Err(one_too_many(n, lineno, expected));
                            }
                            let (k, v) = parse_kv_line(n, v)?;
                            match (&section, &tree) {
                                (Section::Kv { ns, .. }, _) => tx.kv_put(ns, &k, &v).map(drop),
                                (_, Some(tree)) => tx.insert(tree, &k, &v).map(drop),
                                _ => Err(Error::invalid("an entry line outside a kv or tree section")),
                            }
                            .map_err(|e| at_line(n, e))?;
                            seen += 1;
                            in_batch += 1;
                        }
                    }
                }
                imp.in_batch = in_batch;
                if stop {
                    break;
                }
            }
            match section {
                Section::Collection { .. } => imp.report.documents += seen,
                Section::Kv { .. } => imp.report.kv_entries += seen,
                Section::Tree { .. } => imp.report.tree_entries += seen,
            }
            if seen != expected {
                return Err(bad(
                    lineno,
                    format!(
                        "the section header announces {expected} lines but only {seen} follow (truncated file?)"
                    ),
                ));
            }
        }
        imp.commit()?;
        Ok(imp.report)
    }
}

//! The stored binary encoding of a document (see docs/format.md ("Stored document format") for
//! the byte layout) and the per-collection field-name dictionary interface.
//!
//! A stored document is a [`DocHeader`] followed by a payload: either opaque
//! bytes (RAW) or one encoded [`Value`]. Values are a tag byte followed by
//! postcard primitives (LEB128 varints, zigzag for signed numbers, 8-byte
//! little-endian floats). Map keys are varint ids from the collection's
//! [`NameDict`], so names are not repeated in every document. Lists and maps
//! carry their body's byte length, so [`extract_path`] can step over fields
//! it does not need without looking inside them.
//!
//! Decoding treats its input as untrusted: every length is checked against
//! the bytes that remain before anything is allocated, nesting is limited
//! to [`MAX_NESTING`], and every failure is [`Error::Corruption`] whose
//! message starts with "document".

use super::value::{duplicate_key, parse_index, Timestamp, Value, MAX_NESTING, NESTING_MESSAGE};
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// The document format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Value tags: the first byte of every encoded value.
pub(crate) mod tag {
    pub const NULL: u8 = 0x00;
    pub const FALSE: u8 = 0x01;
    pub const TRUE: u8 = 0x02;
    pub const INT: u8 = 0x03;
    pub const UINT: u8 = 0x04;
    pub const FLOAT: u8 = 0x05;
    pub const STR: u8 = 0x06;
    pub const BYTES: u8 = 0x07;
    pub const TIMESTAMP: u8 = 0x08;
    pub const TIMESTAMP_TZ: u8 = 0x09;
    pub const LIST: u8 = 0x0A;
    pub const MAP: u8 = 0x0B;
}

/// The collection's field-name dictionary, as the encoder sees it.
pub trait NameDict {
    /// The id of `name`, assigning the next free id when the name is new.
    /// The caller persists new entries along with the document that needed
    /// them; an id, once handed out, must never change meaning.
    fn id_of(&mut self, name: &str) -> Result<u32>;
}

/// The collection's field-name dictionary, as readers see it.
pub trait NameLookup {
    /// The name that `id` stands for, if assigned.
    fn name_of(&self, id: u32) -> Option<&str>;
    /// The id of `name`, if it has one (never assigns).
    fn lookup_id(&self, name: &str) -> Option<u32>;
}

/// An in-memory name dictionary with dense ids from 0: the cached copy of a
/// collection's dictionary, and the one tests use.
///
/// Its names are in two parts: a base held through an `Arc`, which copies
/// of the dictionary share, and the names added since it was last folded
/// into that base. A copy (each transaction that brings in a name makes
/// one of the committed dictionary, see `SharedDict`) thus costs the
/// recent names, not every name the collection ever had: a collection
/// whose map keys are data (user ids, dates) has as many names as keys.
/// The tail is folded once it holds more than the square root of the
/// base's names (and at least `FOLD_AT_LEAST`), so that folding, which
/// copies a shared base, is paid once for that many new names.
#[derive(Debug, Clone, Default)]
pub struct MemNameDict {
    base: Arc<NameTable>,
    tail: NameTable,
    /// The id after the one `id_of` returned last: documents of one
    /// collection mostly repeat one field order (typed documents always
    /// do), so the next name asked for is usually this one, found with one
    /// string comparison instead of a hash lookup.
    next_guess: usize,
}

/// The fewest names a dictionary's tail holds before it is folded into
/// its base (see [`MemNameDict`]).
const FOLD_AT_LEAST: usize = 64;

/// Names and their ids, the ids of one table being consecutive.
#[derive(Debug, Clone, Default)]
struct NameTable {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl MemNameDict {
    /// An empty dictionary.
    pub fn new() -> MemNameDict {
        MemNameDict::default()
    }

    /// A dictionary whose ids are the positions of `names` (as persisted).
    /// A repeated name is [`Error::Corruption`]: a stored dictionary never
    /// has one.
    pub fn from_names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Result<MemNameDict> {
        let mut dict = MemNameDict::new();
        for name in names {
            let name = name.into();
            if dict.lookup_id(&name).is_some() {
                return Err(Error::corruption(None, format!("document name dictionary repeats {name:?}")));
            }
            dict.push(name)?;
        }
        dict.fold();
        Ok(dict)
    }

    /// How many names are assigned (the next new id).
    pub fn len(&self) -> usize {
        self.base.names.len() + self.tail.names.len()
    }

    /// True when no name is assigned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All names, in id order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.base.names.iter().chain(&self.tail.names).map(String::as_str)
    }

    /// The names with ids from `first_id` on, e.g. the ones assigned since
    /// the caller last persisted (pass the old [`len`](Self::len)).
    pub fn names_since(&self, first_id: u32) -> impl Iterator<Item = (u32, &str)> {
        let first = usize::try_from(first_id).unwrap_or(usize::MAX);
        let (base, tail) = (&self.base.names, &self.tail.names);
        let in_tail = first.saturating_sub(base.len()).min(tail.len());
        let since = base[first.min(base.len())..].iter().chain(&tail[in_tail..]);
        // ids are positions and `push` keeps them below u32::MAX.
        since.zip(first_id..).map(|(n, id)| (id, n.as_str()))
    }

    /// Forgets the names with ids from `len` on: the ones a refused
    /// document brought in, before anything persisted them.
    pub(crate) fn truncate(&mut self, len: usize) {
        let in_base = self.base.names.len();
        if len < in_base {
            // (Rare: the refused document's names were folded already.)
            self.fold();
            let base = Arc::make_mut(&mut self.base);
            for name in base.names.drain(len..) {
                base.ids.remove(&name);
            }
        } else {
            for name in self.tail.names.drain((len - in_base).min(self.tail.names.len())..) {
                self.tail.ids.remove(&name);
            }
        }
        self.next_guess = 0;
    }

    fn push(&mut self, name: String) -> Result<u32> {
        let id = u32::try_from(self.len())
            .ok()
            .filter(|&id| id < u32::MAX)
            .ok_or_else(|| Error::invalid("collection has too many distinct field names"))?;
        self.tail.ids.insert(name.clone(), id);
        self.tail.names.push(name);
        let tail = self.tail.names.len();
        if tail >= FOLD_AT_LEAST && tail.saturating_mul(tail) > self.base.names.len() {
            self.fold();
        }
        Ok(id)
    }

    /// Moves the tail's names into the base (a copy of the base first when
    /// another dictionary shares it).
    fn fold(&mut self) {
        if self.tail.names.is_empty() {
            return;
        }
        let tail = std::mem::take(&mut self.tail);
        let base = Arc::make_mut(&mut self.base);
        base.ids.extend(tail.ids);
        base.names.extend(tail.names);
    }

    /// The name of id `id`, if assigned.
    fn name_at(&self, id: usize) -> Option<&String> {
        match id.checked_sub(self.base.names.len()) {
            None => self.base.names.get(id),
            Some(i) => self.tail.names.get(i),
        }
    }

    /// The id of `name` if it has one, tried first at id `guess` (see
    /// `next_guess`).
    fn find(&self, name: &str, guess: usize) -> Option<u32> {
        // Past the last name, the next document starts again at the first.
        let guess = if guess < self.len() { guess } else { 0 };
        match self.name_at(guess) {
            // Positions are ids, and `push` keeps them below u32::MAX.
            Some(n) if n == name => Some(guess as u32),
            _ => self.lookup_id(name),
        }
    }
}

impl NameDict for MemNameDict {
    fn id_of(&mut self, name: &str) -> Result<u32> {
        let id = match self.find(name, self.next_guess) {
            Some(id) => id,
            None => self.push(name.to_owned())?,
        };
        self.next_guess = id as usize + 1;
        Ok(id)
    }
}

/// A dictionary held through an `Arc` that others may share (a collection
/// state's, which the memo of committed states keeps a copy of): names it
/// has are found in the shared copy, and only a new name makes the holder's
/// copy its own (as `Arc::make_mut` does), so that a write of known names
/// does not copy the whole dictionary.
pub(crate) struct SharedDict<'a> {
    dict: &'a mut Arc<MemNameDict>,
    /// `next_guess` while the copy is shared.
    guess: usize,
}

impl<'a> SharedDict<'a> {
    pub(crate) fn new(dict: &'a mut Arc<MemNameDict>) -> Self {
        SharedDict { dict, guess: 0 }
    }
}

impl NameDict for SharedDict<'_> {
    fn id_of(&mut self, name: &str) -> Result<u32> {
        if let Some(own) = Arc::get_mut(self.dict) {
            return own.id_of(name);
        }
        match self.dict.find(name, self.guess) {
            Some(id) => {
                self.guess = id as usize + 1;
                Ok(id)
            }
            None => Arc::make_mut(self.dict).id_of(name),
        }
    }
}

impl NameLookup for MemNameDict {
    fn name_of(&self, id: u32) -> Option<&str> {
        self.name_at(usize::try_from(id).ok()?).map(String::as_str)
    }

    fn lookup_id(&self, name: &str) -> Option<u32> {
        self.base.ids.get(name).or_else(|| self.tail.ids.get(name)).copied()
    }
}

/// The few bytes in front of every stored document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocHeader {
    /// The document format version; this build knows [`FORMAT_VERSION`].
    pub format: u8,
    /// The application's schema version for this document (0 when unused);
    /// the engine stores it and never interprets it.
    pub schema_version: u32,
    /// Bit set of `DocHeader::FLAG_*`.
    pub flags: u8,
}

impl DocHeader {
    /// The payload is opaque bytes that the engine does not interpret,
    /// rather than an encoded [`Value`].
    pub const FLAG_RAW: u8 = 0x01;
    /// The flags this build understands; others mean corruption.
    const KNOWN_FLAGS: u8 = DocHeader::FLAG_RAW;

    /// The header of an encoded-value document.
    pub fn value(schema_version: u32) -> DocHeader {
        DocHeader { format: FORMAT_VERSION, schema_version, flags: 0 }
    }

    /// The header of a RAW document.
    pub fn raw(schema_version: u32) -> DocHeader {
        DocHeader { format: FORMAT_VERSION, schema_version, flags: DocHeader::FLAG_RAW }
    }

    /// True when the payload is RAW bytes.
    pub fn is_raw(&self) -> bool {
        self.flags & DocHeader::FLAG_RAW != 0
    }
}

/// Appends `header` (3 to 7 bytes: format, varint schema version, flags) to `out`.
pub fn encode_header(header: &DocHeader, out: &mut Vec<u8>) -> Result<()> {
    out.push(header.format);
    put(out, &header.schema_version)?;
    out.push(header.flags);
    Ok(())
}

/// Splits a stored document into its header and payload. An unknown format
/// version or flag is [`Error::Corruption`]: the file-level version check
/// has already vouched that this build can read the file.
pub fn decode_header(bytes: &[u8]) -> Result<(DocHeader, &[u8])> {
    let mut r = Reader::new(bytes);
    let format = r.byte("header format byte")?;
    if format != FORMAT_VERSION {
        return Err(corrupt(format!(
            "document format {format} is not {FORMAT_VERSION} (corrupt, or written by a newer version)"
        )));
    }
    let schema_version = r.u32_varint("header schema version")?;
    let flags = r.byte("header flags")?;
    if flags & !DocHeader::KNOWN_FLAGS != 0 {
        return Err(corrupt(format!("document header has unknown flags {flags:#04x}")));
    }
    Ok((DocHeader { format, schema_version, flags }, r.rest()))
}

/// Appends a stored document (header with schema version 0, then the
/// encoded `value`) to `out`. On error `out` is left as it was (though
/// `dict` may have assigned ids to names it saw).
pub fn encode_document(value: &Value, dict: &mut impl NameDict, out: &mut Vec<u8>) -> Result<()> {
    encode_document_versioned(value, 0, dict, out)
}

/// [`encode_document`] with an application schema version in the header.
pub fn encode_document_versioned(
    value: &Value,
    schema_version: u32,
    dict: &mut impl NameDict,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    let result =
        encode_header(&DocHeader::value(schema_version), out).and_then(|()| encode_value(value, dict, out));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends a RAW stored document: header, then `payload` verbatim.
pub fn encode_raw_document(payload: &[u8], schema_version: u32, out: &mut Vec<u8>) -> Result<()> {
    encode_header(&DocHeader::raw(schema_version), out)?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends the encoding of `value` alone (no header) to `out`. A value
/// deeper than [`MAX_NESTING`] or a map with a repeated key is
/// [`Error::InvalidArgument`].
pub fn encode_value(value: &Value, dict: &mut impl NameDict, out: &mut Vec<u8>) -> Result<()> {
    encode_at(value, dict, out, 0)
}

fn encode_at(value: &Value, dict: &mut impl NameDict, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    match value {
        Value::Null => out.push(tag::NULL),
        Value::Bool(false) => out.push(tag::FALSE),
        Value::Bool(true) => out.push(tag::TRUE),
        Value::Int(i) => {
            out.push(tag::INT);
            put(out, i)?;
        }
        Value::UInt(u) => {
            out.push(tag::UINT);
            put(out, u)?;
        }
        Value::Float(f) => {
            out.push(tag::FLOAT);
            put(out, f)?;
        }
        Value::Str(s) => {
            out.push(tag::STR);
            put_bytes(out, s.as_bytes())?;
        }
        Value::Bytes(b) => {
            out.push(tag::BYTES);
            put_bytes(out, b)?;
        }
        Value::Timestamp(Timestamp { micros, offset_secs: None }) => {
            out.push(tag::TIMESTAMP);
            put(out, micros)?;
        }
        Value::Timestamp(Timestamp { micros, offset_secs: Some(offset) }) => {
            out.push(tag::TIMESTAMP_TZ);
            put(out, micros)?;
            put(out, offset)?;
        }
        Value::List(items) => {
            if depth >= MAX_NESTING {
                return Err(Error::invalid(NESTING_MESSAGE));
            }
            out.push(tag::LIST);
            let body = begin_body(out);
            put(out, &(items.len() as u64))?;
            for item in items {
                encode_at(item, dict, out, depth + 1)?;
            }
            end_body(out, body)?;
        }
        Value::Map(entries) => {
            if depth >= MAX_NESTING {
                return Err(Error::invalid(NESTING_MESSAGE));
            }
            if let Some(k) = duplicate_key(entries) {
                return Err(Error::invalid(format!("document map has the key {k:?} twice")));
            }
            out.push(tag::MAP);
            let body = begin_body(out);
            put(out, &(entries.len() as u64))?;
            for (key, item) in entries {
                put(out, &dict.id_of(key)?)?;
                encode_at(item, dict, out, depth + 1)?;
            }
            end_body(out, body)?;
        }
    }
    Ok(())
}

/// Reserves one byte for a container's body length; most bodies are under
/// 128 bytes, and a longer one pays for a single move of its bytes.
pub(crate) fn begin_body(out: &mut Vec<u8>) -> usize {
    out.push(0);
    out.len()
}

pub(crate) fn end_body(out: &mut Vec<u8>, body_start: usize) -> Result<()> {
    patch_varint(out, body_start - 1, (out.len() - body_start) as u64)
}

/// Starts a list or map whose item count is not known yet (the direct
/// encoders of JSON and serde): its tag, then one byte each reserved for
/// the body length and the count, which [`close_container`] fills in.
/// Returns where the body starts.
pub(crate) fn open_container(out: &mut Vec<u8>, container: u8) -> usize {
    out.push(container);
    let body = begin_body(out);
    out.push(0);
    body
}

/// Ends the container [`open_container`] started at `body`, holding `count` items.
pub(crate) fn close_container(out: &mut Vec<u8>, body: usize, count: u64) -> Result<()> {
    patch_varint(out, body, count)?;
    end_body(out, body)
}

/// Writes `value` as a varint over the one byte reserved at `at`, moving
/// what follows when it needs more than that byte.
pub(crate) fn patch_varint(out: &mut Vec<u8>, at: usize, value: u64) -> Result<()> {
    let mut buf = [0u8; 10];
    let varint = varint_bytes(value, &mut buf);
    let extra = varint.len() - 1;
    if extra > 0 {
        let old_len = out.len();
        out.resize(old_len + extra, 0);
        out.copy_within(at + 1..old_len, at + 1 + extra);
    }
    out[at..at + 1 + extra].copy_from_slice(varint);
    Ok(())
}

pub(crate) fn put<T: Serialize>(out: &mut Vec<u8>, v: &T) -> Result<()> {
    let mut buf = [0u8; 10];
    out.extend_from_slice(postcard::to_slice(v, &mut buf).map_err(encode_error)?);
    Ok(())
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
    Ok(())
}

/// `value` as postcard writes a `u64` (or any unsigned integer): LEB128,
/// seven bits a byte, low bits first, the high bit set on all but the last.
fn varint_bytes(mut value: u64, buf: &mut [u8; 10]) -> &[u8] {
    let mut n = 0;
    while value >= 0x80 {
        buf[n] = value as u8 | 0x80;
        value >>= 7;
        n += 1;
    }
    buf[n] = value as u8;
    &buf[..=n]
}

/// Appends `value` as postcard's unsigned varint ([`put`] of a `u64`,
/// `u32` or `usize`, without serde in between).
pub(crate) fn put_varint(out: &mut Vec<u8>, value: u64) {
    let mut buf = [0u8; 10];
    out.extend_from_slice(varint_bytes(value, &mut buf));
}

/// Appends `value` as postcard writes an `i64`: zigzag, then the varint.
pub(crate) fn put_zigzag(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Cannot happen (the buffers fit any primitive), but is not worth a panic.
fn encode_error(e: postcard::Error) -> Error {
    Error::invalid(format!("document encoding failed: {e}"))
}

pub(crate) fn corrupt(message: String) -> Error {
    Error::corruption(None, message)
}

/// Decodes a stored document. A RAW document decodes to [`Value::Bytes`]
/// holding its payload.
pub fn decode_document(bytes: &[u8], names: &impl NameLookup) -> Result<Value> {
    let (header, payload) = decode_header(bytes)?;
    if header.is_raw() {
        return Ok(Value::Bytes(payload.to_vec()));
    }
    decode_value(payload, names)
}

/// Decodes one encoded value (no header), which must fill `bytes` exactly.
pub fn decode_value(bytes: &[u8], names: &impl NameLookup) -> Result<Value> {
    decode_value_at(bytes, names, 0)
}

pub(crate) fn decode_value_at(bytes: &[u8], names: &impl NameLookup, depth: usize) -> Result<Value> {
    let mut r = Reader::new(bytes);
    let value = decode_at(&mut r, names, depth)?;
    if !r.is_empty() {
        return Err(corrupt(format!("document has {} stray bytes after its value", r.remaining())));
    }
    Ok(value)
}

pub(crate) fn decode_at(r: &mut Reader<'_>, names: &impl NameLookup, depth: usize) -> Result<Value> {
    let at = r.offset();
    Ok(match r.byte("value tag")? {
        tag::NULL => Value::Null,
        tag::FALSE => Value::Bool(false),
        tag::TRUE => Value::Bool(true),
        tag::INT => Value::Int(r.i64_varint("int")?),
        tag::UINT => Value::UInt(r.u64_varint("uint")?),
        tag::FLOAT => Value::Float(r.f64_le("float")?),
        tag::STR => {
            let bytes = r.len_prefixed("string")?;
            let text = std::str::from_utf8(bytes)
                .map_err(|_| corrupt(format!("document string at offset {at} is not UTF-8")))?;
            Value::Str(text.to_owned())
        }
        tag::BYTES => Value::Bytes(r.len_prefixed("bytes")?.to_vec()),
        tag::TIMESTAMP => {
            Value::Timestamp(Timestamp { micros: r.i64_varint("timestamp")?, offset_secs: None })
        }
        tag::TIMESTAMP_TZ => {
            let micros = r.i64_varint("timestamp")?;
            Value::Timestamp(Timestamp { micros, offset_secs: Some(r.i32_varint("timestamp offset")?) })
        }
        tag::LIST => {
            let (mut body, count) = enter(r, depth, "list", 1)?;
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(decode_at(&mut body, names, depth + 1)?);
            }
            leave(&body, "list")?;
            Value::List(items)
        }
        tag::MAP => {
            let (mut body, count) = enter(r, depth, "map", 2)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let id = body.u32_varint("field name id")?;
                let name = names.name_of(id).ok_or_else(|| {
                    corrupt(format!("document names field id {id}, which the dictionary lacks"))
                })?;
                entries.push((name.to_owned(), decode_at(&mut body, names, depth + 1)?));
            }
            leave(&body, "map")?;
            if let Some(k) = duplicate_key(&entries) {
                return Err(corrupt(format!("document map at offset {at} has the key {k:?} twice")));
            }
            Value::Map(entries)
        }
        other => return Err(corrupt(format!("document has unknown value tag {other:#04x} at offset {at}"))),
    })
}

/// Reads a container's body length and item count (after its tag) and
/// returns a reader over the items. `min_item_len` bounds the count by the
/// body size, so a forged count cannot make the caller over-allocate.
pub(crate) fn enter<'a>(
    r: &mut Reader<'a>,
    depth: usize,
    what: &str,
    min_item_len: usize,
) -> Result<(Reader<'a>, usize)> {
    if depth >= MAX_NESTING {
        return Err(corrupt(NESTING_MESSAGE.to_owned()));
    }
    let mut body = r.sub(what)?;
    let count = body.u64_varint("item count")?;
    let count =
        usize::try_from(count).ok().filter(|&c| c <= body.remaining() / min_item_len).ok_or_else(|| {
            corrupt(format!(
                "document {what} at offset {} claims {count} items in {} bytes",
                body.offset(),
                body.remaining()
            ))
        })?;
    Ok((body, count))
}

pub(crate) fn leave(body: &Reader<'_>, what: &str) -> Result<()> {
    if !body.is_empty() {
        return Err(corrupt(format!(
            "document {what} ending at offset {} has {} bytes beyond its items",
            body.offset() + body.remaining(),
            body.remaining()
        )));
    }
    Ok(())
}

/// One step of a path into a stored value. The same textual segment can
/// mean a field (at a map) or an index (at a list), and which one applies
/// is only known when the walk reaches it, so a step carries both readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStep {
    /// The field's name id, used when the value here is a map (`None`: the
    /// name has no id, so no map can contain it).
    pub field: Option<u32>,
    /// The item index, used when the value here is a list (`None`: the
    /// segment is not a canonical decimal index).
    pub index: Option<u32>,
}

impl PathStep {
    /// A step that only matches a map field.
    pub fn field(id: u32) -> PathStep {
        PathStep { field: Some(id), index: None }
    }

    /// A step that only matches a list item.
    pub fn index(index: u32) -> PathStep {
        PathStep { field: None, index: Some(index) }
    }
}

/// Resolves path segments (e.g. a [`FieldPath`](super::value::FieldPath)'s)
/// to steps against a collection's dictionary, with the same meaning as
/// [`Value::get_path`].
pub fn resolve_path<S: AsRef<str>>(segments: &[S], names: &impl NameLookup) -> Vec<PathStep> {
    segments
        .iter()
        .map(|s| PathStep { field: names.lookup_id(s.as_ref()), index: parse_index(s.as_ref()) })
        .collect()
}

/// Decodes only the value at `path` in a stored document: `Ok(None)` when
/// the path leads nowhere (like [`Value::get_path`]). Fields and items off
/// the path are stepped over by their length without being decoded or
/// checked. For a RAW document only the empty path finds something (the
/// payload as [`Value::Bytes`]).
pub fn extract_path(bytes: &[u8], path: &[PathStep], names: &impl NameLookup) -> Result<Option<Value>> {
    let (header, payload) = decode_header(bytes)?;
    if header.is_raw() {
        return Ok(path.is_empty().then(|| Value::Bytes(payload.to_vec())));
    }
    match find_value(payload, path)? {
        Some(found) => Ok(Some(decode_value_at(found, names, path.len())?)),
        None => Ok(None),
    }
}

/// Finds the encoded value at `path` within an encoded value (no header)
/// and returns its bytes, without allocating. Callers that compare or
/// index the value can use the bytes directly; [`decode_value`] turns them
/// into a [`Value`].
pub fn find_value<'a>(encoded: &'a [u8], path: &[PathStep]) -> Result<Option<&'a [u8]>> {
    let mut r = Reader::new(encoded);
    for (depth, step) in path.iter().enumerate() {
        match r.peek("value tag")? {
            tag::MAP => {
                let Some(want) = step.field else { return Ok(None) };
                r.byte("value tag")?;
                let (mut body, count) = enter(&mut r, depth, "map", 2)?;
                let mut found = false;
                for _ in 0..count {
                    let id = body.u32_varint("field name id")?;
                    if id == want {
                        found = true;
                        break;
                    }
                    body.skip_value()?;
                }
                if !found {
                    return Ok(None);
                }
                r = body;
            }
            tag::LIST => {
                let Some(want) = step.index else { return Ok(None) };
                r.byte("value tag")?;
                let (mut body, count) = enter(&mut r, depth, "list", 1)?;
                if usize::try_from(want).map_or(true, |w| w >= count) {
                    return Ok(None);
                }
                for _ in 0..want {
                    body.skip_value()?;
                }
                r = body;
            }
            t if t <= tag::MAP => return Ok(None),
            other => {
                return Err(corrupt(format!(
                    "document has unknown value tag {other:#04x} at offset {}",
                    r.offset()
                )))
            }
        }
    }
    let start = r.pos;
    r.skip_value()?;
    Ok(Some(&r.buf[start..r.pos]))
}

/// The top-level fields of one stored document's payload that a caller
/// names by [`PathStep`]s, located lazily: each [`get`](Self::get) walks
/// the top-level map only as far as its field and remembers the named
/// fields it passes, so however many filter leaves (and index fields) read
/// a document, its map is walked at most once, and never further than the
/// furthest field read. `get(i)` answers what `find_value` would with the
/// path `[steps[i]]`.
pub(crate) struct TopFields<'a, 's> {
    payload: &'a [u8],
    steps: &'s [PathStep],
    /// The first occurrence of each of the first [`TopFields::SLOTS`]
    /// steps' fields among the items walked so far.
    seen: [Option<&'a [u8]>; TopFields::SLOTS],
    walk: Walk<'a>,
}

enum Walk<'a> {
    /// Nothing read yet.
    Unstarted,
    /// Inside the top-level map, with `left` items not yet walked.
    Map { body: Reader<'a>, left: usize },
    /// The payload is not a map: every lookup goes to [`find_value`].
    Other,
}

impl<'a, 's> TopFields<'a, 's> {
    /// Steps beyond this many are looked up with [`find_value`] (correct,
    /// only not shared), so that the walk state needs no allocation.
    pub(crate) const SLOTS: usize = 8;

    /// Fields `steps` of `payload` (an encoded value, no header). Reads
    /// nothing yet.
    pub(crate) fn new(payload: &'a [u8], steps: &'s [PathStep]) -> TopFields<'a, 's> {
        TopFields { payload, steps, seen: [None; TopFields::SLOTS], walk: Walk::Unstarted }
    }

    /// The encoded value of field `steps[i]`, or `None` when the payload
    /// has none.
    pub(crate) fn get(&mut self, i: usize) -> Result<Option<&'a [u8]>> {
        let step = self.steps[i];
        if let Walk::Unstarted = self.walk {
            if Reader::new(self.payload).peek("value tag")? != tag::MAP {
                self.walk = Walk::Other;
            } else if step.field.is_none() {
                // No map holds a name without an id (nor does find_value
                // read the map to say so).
                return Ok(None);
            } else {
                let mut r = Reader::new(self.payload);
                r.byte("value tag")?;
                let (body, left) = enter(&mut r, 0, "map", 2)?;
                self.walk = Walk::Map { body, left };
            }
        }
        let Walk::Map { body, left } = &mut self.walk else {
            return find_value(self.payload, std::slice::from_ref(&step));
        };
        let Some(want) = step.field else { return Ok(None) };
        if i >= TopFields::SLOTS {
            return find_value(self.payload, std::slice::from_ref(&step));
        }
        if let Some(found) = self.seen[i] {
            return Ok(Some(found));
        }
        while *left > 0 {
            *left -= 1;
            let rest = body.rest();
            let (id, value) = match plain_item(rest) {
                Some((id, len)) => {
                    body.pos += 1 + len;
                    (id, &rest[1..1 + len])
                }
                None => {
                    let id = body.u32_varint("field name id")?;
                    let start = body.pos;
                    body.skip_value()?;
                    (id, &body.buf[start..body.pos])
                }
            };
            for (j, s) in self.steps.iter().take(TopFields::SLOTS).enumerate() {
                if s.field == Some(id) && self.seen[j].is_none() {
                    self.seen[j] = Some(value);
                }
            }
            if id == want {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }
}

/// The map item at the start of `b` when it is of the plain shape most
/// items have, which needs no checked decoding: a one-byte field id and a
/// value whose size shows in its first bytes (a scalar, a varint of at
/// most 9 bytes, which any u64 or i64 accepts, or a string, bytes, list or
/// map with a one-byte length), all within `b`. Returns the id and the
/// value's encoded length; `None` leaves the item to the checked path
/// ([`Reader::skip_value`]), which accepts exactly these items too.
#[inline(always)]
fn plain_item(b: &[u8]) -> Option<(u32, usize)> {
    let [id, t, after @ ..] = b else { return None };
    if *id >= 0x80 {
        return None;
    }
    let body = match *t {
        tag::NULL | tag::FALSE | tag::TRUE => 0,
        tag::FLOAT => 8,
        tag::INT | tag::UINT | tag::TIMESTAMP => after.iter().take(9).position(|&x| x < 0x80)? + 1,
        tag::STR | tag::BYTES | tag::LIST | tag::MAP => match after.first() {
            Some(&len) if len < 0x80 => 1 + usize::from(len),
            _ => return None,
        },
        _ => return None,
    };
    (after.len() >= body).then_some((u32::from(*id), 1 + body))
}

/// The string an encoded value (from [`find_value`]) holds, borrowed;
/// `None` when it is not a string.
pub fn encoded_str(encoded: &[u8]) -> Result<Option<&str>> {
    match encoded_str_bytes(encoded)? {
        Some(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| corrupt("document string is not UTF-8".to_owned())),
        None => Ok(None),
    }
}

/// [`encoded_str`] before its UTF-8 check: the string's bytes. A filter
/// compares strings byte by byte, and whatever a filter selects is decoded
/// (and so checked) before anyone sees it, so a scan need not check the
/// strings of the documents it passes over.
#[inline]
pub(crate) fn encoded_str_bytes(encoded: &[u8]) -> Result<Option<&[u8]>> {
    match encoded {
        // The usual short string: a one-byte length.
        [tag::STR, len, rest @ ..] if *len < 0x80 && rest.len() >= usize::from(*len) => {
            Ok(Some(&rest[..usize::from(*len)]))
        }
        [tag::STR, ..] => {
            let mut r = Reader::new(encoded);
            r.byte("value tag")?;
            r.len_prefixed("string").map(Some)
        }
        [_, ..] => Ok(None),
        [] => Reader::new(encoded).byte("value tag").map(|_| None),
    }
}

/// The number an encoded value holds, read without the general decoder;
/// `None` when it is not a well-formed int, uint or float filling
/// `encoded` exactly (the general decoder then decides, and reports any
/// damage).
#[inline]
pub(crate) fn encoded_number(encoded: &[u8]) -> Option<Value> {
    let mut r = Reader::new(encoded);
    let v = match r.byte("value tag").ok()? {
        tag::INT => Value::Int(r.i64_varint("int").ok()?),
        tag::UINT => Value::UInt(r.u64_varint("uint").ok()?),
        tag::FLOAT => Value::Float(r.f64_le("float").ok()?),
        _ => return None,
    };
    r.is_empty().then_some(v)
}

/// A bounds-checked cursor over encoded bytes. `base` is the offset of
/// `buf` within the whole encoding, for error messages.
#[derive(Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, base: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// The current position, for [`reset`](Self::reset).
    pub(crate) fn mark(&self) -> usize {
        self.pos
    }

    /// Moves back to a position from [`mark`](Self::mark).
    pub(crate) fn reset(&mut self, mark: usize) {
        self.pos = mark;
    }

    #[inline]
    pub(crate) fn peek(&self, what: &str) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => Err(self.ended(what)),
        }
    }

    #[cold]
    fn ended(&self, what: &str) -> Error {
        corrupt(format!("document ends at offset {} where its {what} should be", self.offset()))
    }

    #[cold]
    fn unknown_tag(&self, tag: u8, at: usize) -> Error {
        corrupt(format!("document has unknown value tag {tag:#04x} at offset {at}"))
    }

    #[inline]
    pub(crate) fn byte(&mut self, what: &str) -> Result<u8> {
        let b = self.peek(what)?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads one postcard primitive (a varint, zigzag varint or float)
    /// through postcard itself: what the tests hold the readers below to.
    #[cfg(test)]
    pub(crate) fn take<T: serde::Deserialize<'a>>(&mut self, what: &str) -> Result<T> {
        let (value, rest) = postcard::take_from_bytes::<T>(self.rest()).map_err(|_| {
            corrupt(format!("document has a truncated or malformed {what} at offset {}", self.offset()))
        })?;
        self.pos = self.buf.len() - rest.len();
        Ok(value)
    }

    /// A LEB128 varint of at most `max_len` bytes whose last byte may be
    /// at most `last_max` (so that the value fits its type): exactly the
    /// encodings postcard accepts for that type, read without going
    /// through a serde deserializer, since every document step reads a few.
    #[inline]
    fn varint(&mut self, max_len: usize, last_max: u8, what: &str) -> Result<u64> {
        // Most varints in a document (lengths, counts, name ids) are one byte.
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.long_varint(max_len, last_max, what),
        }
    }

    fn long_varint(&mut self, max_len: usize, last_max: u8, what: &str) -> Result<u64> {
        let mut out = 0u64;
        for i in 0..max_len {
            let Some(&b) = self.buf.get(self.pos + i) else { break };
            out |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if i == max_len - 1 && b > last_max {
                    break;
                }
                self.pos += i + 1;
                return Ok(out);
            }
        }
        Err(self.malformed(what))
    }

    #[cold]
    fn malformed(&self, what: &str) -> Error {
        corrupt(format!("document has a truncated or malformed {what} at offset {}", self.offset()))
    }

    /// A `u64` varint (what `take::<u64>` reads).
    #[inline]
    pub(crate) fn u64_varint(&mut self, what: &str) -> Result<u64> {
        self.varint(10, 0x01, what)
    }

    /// A `u32` varint (what `take::<u32>` reads).
    #[inline]
    pub(crate) fn u32_varint(&mut self, what: &str) -> Result<u32> {
        // At most 5 bytes, the last holding at most 4 bits: it fits.
        self.varint(5, 0x0F, what).map(|v| v as u32)
    }

    /// An `f64`: eight little-endian bytes (what `take::<f64>` reads).
    #[inline]
    pub(crate) fn f64_le(&mut self, what: &str) -> Result<f64> {
        match self.buf.get(self.pos..).and_then(<[u8]>::first_chunk::<8>) {
            Some(b) => {
                self.pos += 8;
                Ok(f64::from_le_bytes(*b))
            }
            None => Err(self.malformed(what)),
        }
    }

    /// A zigzag `i32` varint (what `take::<i32>` reads).
    #[inline]
    pub(crate) fn i32_varint(&mut self, what: &str) -> Result<i32> {
        // At most 5 bytes, the last holding at most 4 bits: it fits a u32.
        let n = self.varint(5, 0x0F, what)? as u32;
        Ok((n >> 1) as i32 ^ -((n & 1) as i32))
    }

    /// A zigzag `i64` varint (what `take::<i64>` reads).
    #[inline]
    pub(crate) fn i64_varint(&mut self, what: &str) -> Result<i64> {
        let n = self.u64_varint(what)?;
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    /// Takes `len` bytes, failing before any allocation could happen when
    /// the length claims more than there is.
    #[inline]
    pub(crate) fn slice(&mut self, len: u64, what: &str) -> Result<&'a [u8]> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..usize::try_from(len).ok()?)) {
            Some(s) => {
                self.pos += s.len();
                Ok(s)
            }
            None => Err(self.overlong(len, what)),
        }
    }

    #[cold]
    fn overlong(&self, len: u64, what: &str) -> Error {
        corrupt(format!(
            "document {what} at offset {} claims {len} bytes but only {} remain",
            self.offset(),
            self.remaining()
        ))
    }

    #[inline(always)]
    pub(crate) fn len_prefixed(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = self.u64_varint(what)?;
        self.slice(len, what)
    }

    /// A reader over a length-prefixed container body.
    pub(crate) fn sub(&mut self, what: &str) -> Result<Reader<'a>> {
        let len = self.u64_varint(what)?;
        let base = self.offset();
        let buf = self.slice(len, what)?;
        Ok(Reader { buf, pos: 0, base })
    }

    /// Steps over one value without decoding it: constant work for
    /// containers, whose contents are not checked.
    #[inline(always)]
    pub(crate) fn skip_value(&mut self) -> Result<()> {
        match self.byte("value tag")? {
            tag::NULL | tag::FALSE | tag::TRUE => {}
            tag::INT | tag::TIMESTAMP => {
                self.u64_varint("int")?;
            }
            tag::UINT => {
                self.u64_varint("uint")?;
            }
            tag::FLOAT => {
                self.slice(8, "float")?;
            }
            tag::TIMESTAMP_TZ => {
                self.u64_varint("timestamp")?;
                self.u32_varint("timestamp offset")?;
            }
            tag::STR | tag::BYTES | tag::LIST | tag::MAP => {
                self.len_prefixed("value")?;
            }
            other => return Err(self.unknown_tag(other, self.offset() - 1)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::testgen::{arb_value, nested_lists};
    use proptest::prelude::*;
    use proptest::sample::Index;

    fn encode(v: &Value, dict: &mut MemNameDict) -> Vec<u8> {
        let mut out = Vec::new();
        encode_document(v, dict, &mut out).unwrap();
        out
    }

    fn must_be_corruption<T: std::fmt::Debug>(r: Result<T>) {
        match r {
            Ok(_) => {}
            Err(Error::Corruption { page: None, message }) => {
                assert!(message.starts_with("document"), "{message}")
            }
            Err(e) => panic!("expected Ok or Corruption, got {e:?}"),
        }
    }

    #[test]
    fn encoded_str_bytes_reads_short_and_long_strings_and_refuses_truncation() {
        let mut dict = MemNameDict::new();
        for text in ["", "shipped", &"x".repeat(127), &"é".repeat(300)] {
            let mut enc = Vec::new();
            encode_value(&Value::from(text), &mut dict, &mut enc).unwrap();
            assert_eq!(encoded_str_bytes(&enc).unwrap(), Some(text.as_bytes()));
            assert_eq!(encoded_str(&enc).unwrap(), Some(text));
            if !text.is_empty() {
                must_be_corruption(encoded_str_bytes(&enc[..enc.len() - 1]));
                assert!(encoded_str_bytes(&enc[..enc.len() - 1]).is_err());
            }
        }
        let mut enc = Vec::new();
        encode_value(&Value::Int(7), &mut dict, &mut enc).unwrap();
        assert_eq!(encoded_str_bytes(&enc).unwrap(), None);
        assert!(encoded_str_bytes(&[]).is_err());
    }

    #[test]
    fn encoded_number_agrees_with_the_decoder_or_defers_to_it() {
        let mut dict = MemNameDict::new();
        let numbers = [Value::Int(-1), Value::Int(i64::MIN), Value::UInt(u64::MAX), Value::UInt(300)];
        for v in numbers.into_iter().chain([Value::Float(-0.5), Value::Float(f64::INFINITY)]) {
            let mut enc = Vec::new();
            encode_value(&v, &mut dict, &mut enc).unwrap();
            assert_eq!(encoded_number(&enc), Some(decode_value(&enc, &dict).unwrap()));
            assert_eq!(encoded_number(&enc[..enc.len() - 1]), None, "truncated: the decoder reports it");
            enc.push(0);
            assert_eq!(encoded_number(&enc), None, "trailing bytes: the decoder reports them");
        }
        for v in [Value::from("7"), Value::Bool(true), Value::Null, Value::List(vec![Value::Int(1)])] {
            let mut enc = Vec::new();
            encode_value(&v, &mut dict, &mut enc).unwrap();
            assert_eq!(encoded_number(&enc), None);
        }
    }

    #[test]
    fn name_ids_are_the_same_whether_guessed_or_looked_up() {
        let mut dict = MemNameDict::new();
        let names = ["a", "b", "c", "d"];
        let first: Vec<u32> = names.iter().map(|n| dict.id_of(n).unwrap()).collect();
        assert_eq!(first, [0, 1, 2, 3]);
        // In order (guessed), out of order, repeated, and after a truncate.
        for order in [[0, 1, 2, 3], [3, 1, 0, 2], [2, 2, 2, 2], [1, 0, 3, 3]] {
            for i in order {
                assert_eq!(dict.id_of(names[i]).unwrap(), i as u32);
                assert_eq!(dict.lookup_id(names[i]), Some(i as u32));
            }
        }
        dict.truncate(2);
        assert_eq!(dict.id_of("d").unwrap(), 2, "a forgotten name gets the next free id");
        assert_eq!(dict.id_of("a").unwrap(), 0);
        assert_eq!(dict.id_of("b").unwrap(), 1);
        assert_eq!(dict.id_of("d").unwrap(), 2);
        assert_eq!(dict.lookup_id("c"), None);
    }

    fn order() -> Value {
        Value::from_iter([
            ("customer_id", Value::Int(12345)),
            ("email", Value::from("user12345@example.com")),
            ("region", Value::from("north")),
            ("total", Value::Float(512.25)),
            ("status", Value::from("shipped")),
            ("tags", Value::List(vec![Value::from("vip"), Value::from("new")])),
            ("note", Value::from("n".repeat(200))),
        ])
    }

    #[test]
    fn doc_codec_compactness() {
        let mut dict = MemNameDict::new();
        let bytes = encode(&order(), &mut dict);
        // Payload proper: 2 bytes for the int's value, 8 for the float,
        // 21+5+7+3+3+200 of text.
        let raw_payload = 2 + 8 + 21 + 5 + 7 + 3 + 3 + 200;
        let json = crate::doc::json::to_json_string(&order()).len();
        println!(
            "compactness: order document encodes to {} bytes (raw payload {raw_payload}, JSON {json})",
            bytes.len()
        );
        assert!(bytes.len() <= raw_payload + 40, "{} bytes", bytes.len());
        // Names are in the dictionary once, not in the document.
        assert_eq!(dict.len(), 7);
        assert!(!bytes.windows(5).any(|w| w == b"email"));
        assert!(decode_document(&bytes, &dict).unwrap().identical(&order()));
    }

    /// The worked example in docs/format.md ("Stored document format").
    #[test]
    fn doc_codec_documented_example() {
        let mut dict = MemNameDict::new();
        let v = Value::from_iter([
            ("a", Value::Int(1)),
            ("b", Value::List(vec![Value::Bool(true), Value::from("hi")])),
        ]);
        let bytes = encode(&v, &mut dict);
        assert_eq!(
            bytes,
            [
                0x01, 0x00, 0x00, 0x0B, 0x0D, 0x02, 0x00, 0x03, 0x02, 0x01, 0x0A, 0x06, 0x02, 0x02, 0x06,
                0x02, 0x68, 0x69
            ]
        );
        let long = Value::Str("x".repeat(200));
        let mut out = Vec::new();
        encode_value(&Value::List(vec![long]), &mut dict, &mut out).unwrap();
        // body = count (1) + tag (1) + length varint (2) + 200 bytes = 204 = 0xCC 0x01
        assert_eq!(out[..6], [0x0A, 0xCC, 0x01, 0x01, 0x06, 0xC8]);
    }

    #[test]
    fn doc_codec_header_and_raw() {
        let mut out = Vec::new();
        encode_raw_document(b"\x00opaque", 300, &mut out).unwrap();
        let (h, payload) = decode_header(&out).unwrap();
        assert_eq!(h, DocHeader::raw(300));
        assert!(h.is_raw());
        assert_eq!(payload, b"\x00opaque");
        let dict = MemNameDict::new();
        assert_eq!(decode_document(&out, &dict).unwrap(), Value::Bytes(b"\x00opaque".to_vec()));
        assert_eq!(extract_path(&out, &[], &dict).unwrap(), Some(Value::Bytes(b"\x00opaque".to_vec())));
        assert_eq!(extract_path(&out, &[PathStep::field(0)], &dict).unwrap(), None);

        let mut dict = MemNameDict::new();
        let mut out = Vec::new();
        encode_document_versioned(&Value::Int(1), u32::MAX, &mut dict, &mut out).unwrap();
        assert_eq!(out, [1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, tag::INT, 2]);
        assert_eq!(decode_header(&out).unwrap().0, DocHeader::value(u32::MAX));

        for bad in [
            &[][..],
            &[1],
            &[1, 0],
            &[0, 0, 0],
            &[2, 0, 0],
            &[1, 0, 0x02],
            &[1, 0x80, 0x80, 0x80, 0x80, 0x80, 0],
        ] {
            assert!(decode_header(bad).unwrap_err().is_corruption(), "{bad:?}");
        }
        // Trailing bytes after the value.
        assert!(decode_document(&[1, 0, 0, tag::NULL, 0], &dict).unwrap_err().is_corruption());
    }

    #[test]
    fn doc_codec_rejects_forged_lengths_and_ids() {
        let dict = MemNameDict::from_names(["a"]).unwrap();
        let cases: &[&[u8]] = &[
            // string claiming 2^63 bytes
            &[1, 0, 0, tag::STR, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            // list claiming u64::MAX items in a 10-byte body
            &[1, 0, 0, tag::LIST, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            // map naming id 5 that the dictionary lacks
            &[1, 0, 0, tag::MAP, 3, 1, 5, tag::NULL],
            // map with a repeated key
            &[1, 0, 0, tag::MAP, 5, 2, 0, tag::NULL, 0, tag::NULL],
            // body longer than its items
            &[1, 0, 0, tag::LIST, 3, 1, tag::NULL, tag::NULL],
            // item running past its body
            &[1, 0, 0, tag::LIST, 2, 1, tag::INT, 0x02],
            // invalid UTF-8
            &[1, 0, 0, tag::STR, 1, 0xFF],
            // unknown tag
            &[1, 0, 0, 0x0C],
            // truncated float
            &[1, 0, 0, tag::FLOAT, 0, 0],
        ];
        for case in cases {
            let e = decode_document(case, &dict).unwrap_err();
            assert!(e.is_corruption(), "{case:?}: {e}");
            assert!(e.to_string().contains("document"), "{e}");
        }
        assert!(MemNameDict::from_names(["a", "a"]).is_err());
    }

    /// A dictionary of many names, against a plain list of them: ids, names,
    /// `names_since` and `truncate` across the fold of its recent names into
    /// its shared base; a copy shares the base (it is not copied whole for
    /// each new name), and neither copy sees the other's new names.
    #[test]
    fn a_large_dictionary_shares_its_base_and_agrees_with_a_list() {
        let mut dict = MemNameDict::new();
        let mut model: Vec<String> = Vec::new();
        let check = |dict: &MemNameDict, model: &[String]| {
            assert_eq!(dict.len(), model.len());
            assert!(dict.names().eq(model.iter().map(String::as_str)));
            for (id, name) in model.iter().enumerate().step_by(97) {
                assert_eq!(dict.lookup_id(name), Some(id as u32));
                assert_eq!(dict.name_of(id as u32), Some(name.as_str()));
            }
            assert_eq!(dict.name_of(model.len() as u32), None);
            for first in [0, 1, model.len() / 2, model.len().saturating_sub(3), model.len(), model.len() + 5]
            {
                let since: Vec<(u32, &str)> = dict.names_since(first as u32).collect();
                let want: Vec<(u32, &str)> =
                    model.iter().enumerate().skip(first).map(|(i, n)| (i as u32, n.as_str())).collect();
                assert_eq!(since, want, "names_since({first})");
            }
        };
        for i in 0..5_000 {
            let name = format!("k{i}");
            assert_eq!(dict.id_of(&name).unwrap(), i);
            model.push(name);
            if i % 1_000 == 999 {
                check(&dict, &model);
            }
        }
        // A copy shares the base; each side's new names stay its own.
        let mut shared = Arc::new(dict);
        let kept = shared.clone();
        for i in 0..300 {
            SharedDict::new(&mut shared).id_of(&format!("new{i}")).unwrap();
            model.push(format!("new{i}"));
            if i == 0 {
                assert!(Arc::ptr_eq(&kept.base, &shared.base), "a new name copied the whole base");
            }
        }
        check(&shared, &model);
        check(&kept, &model[..5_000]);
        assert_eq!(kept.lookup_id("new0"), None);
        // Truncating within the tail, then past the fold point.
        let mine = Arc::make_mut(&mut shared);
        for len in [5_290, 5_100, 4_000, 10] {
            mine.truncate(len);
            model.truncate(len);
            check(mine, &model);
            assert_eq!(mine.id_of("again").unwrap(), len as u32);
            model.push("again".into());
        }
        // The other copy never saw any of it.
        check(&kept, &(0..5_000).map(|i| format!("k{i}")).collect::<Vec<_>>());
    }

    /// A shared dictionary is copied only for a new name: known names are
    /// found in the shared copy (in any order), and the other holder never
    /// sees a name assigned through the copy.
    #[test]
    fn shared_dict_copies_only_for_a_new_name() {
        let kept = Arc::new(MemNameDict::from_names(["a", "b", "c"]).unwrap());
        let mut mine = kept.clone();
        let mut d = SharedDict::new(&mut mine);
        let ids: Vec<u32> = ["a", "b", "c", "b", "a", "c"].iter().map(|n| d.id_of(n).unwrap()).collect();
        assert_eq!(ids, [0, 1, 2, 1, 0, 2]);
        assert!(Arc::ptr_eq(&kept, &mine), "known names copied the dictionary");
        let mut d = SharedDict::new(&mut mine);
        assert_eq!(d.id_of("b").unwrap(), 1);
        assert_eq!(d.id_of("new").unwrap(), 3);
        assert_eq!(d.id_of("a").unwrap(), 0);
        assert_eq!(d.id_of("new").unwrap(), 3);
        assert!(!Arc::ptr_eq(&kept, &mine));
        assert_eq!(kept.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(mine.names().collect::<Vec<_>>(), ["a", "b", "c", "new"]);
        // Held alone, it is written in place.
        let before = Arc::as_ptr(&mine);
        assert_eq!(SharedDict::new(&mut mine).id_of("other").unwrap(), 4);
        assert_eq!(Arc::as_ptr(&mine), before);
    }

    /// Encodes `depth` nested single-item lists around a null directly,
    /// in O(depth), bypassing the encoder's own limit.
    fn forged_nested_lists(depth: usize) -> Vec<u8> {
        let mut sizes = vec![1usize];
        let varint_len = |n: usize| postcard::to_stdvec(&(n as u64)).unwrap().len();
        for _ in 0..depth {
            let body = 1 + sizes.last().unwrap();
            sizes.push(1 + varint_len(body) + body);
        }
        let mut out = vec![1, 0, 0];
        for level in (0..depth).rev() {
            out.push(tag::LIST);
            out.extend(postcard::to_stdvec(&((1 + sizes[level]) as u64)).unwrap());
            out.push(1);
        }
        out.push(tag::NULL);
        out
    }

    #[test]
    fn doc_codec_nesting_limit() {
        let mut dict = MemNameDict::new();
        let ok = nested_lists(MAX_NESTING);
        let bytes = encode(&ok, &mut dict);
        assert_eq!(bytes, forged_nested_lists(MAX_NESTING));
        assert_eq!(decode_document(&bytes, &dict).unwrap(), ok);
        let path = vec![PathStep::index(0); MAX_NESTING];
        assert_eq!(extract_path(&bytes, &path, &dict).unwrap(), Some(Value::Null));

        let deeper = nested_lists(MAX_NESTING + 1);
        let mut out = vec![9];
        let e = encode_document(&deeper, &mut dict, &mut out).unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("nested deeper than 128")), "{e}");
        assert_eq!(out, [9], "failed encode leaves the buffer as it was");
        let deep_map = (0..MAX_NESTING + 1).fold(Value::Null, |v, _| Value::from_iter([("k", v)]));
        assert!(encode_value(&deep_map, &mut dict, &mut Vec::new()).is_err());

        for depth in [MAX_NESTING + 1, 100_000] {
            let forged = forged_nested_lists(depth);
            let e = decode_document(&forged, &dict).unwrap_err();
            assert!(e.is_corruption() && e.to_string().contains("nested deeper than 128"), "{e}");
            let path = vec![PathStep::index(0); depth];
            assert!(extract_path(&forged, &path, &dict).unwrap_err().is_corruption());
            // Stepping over it never looks inside.
            assert_eq!(find_value(&forged[3..], &[]).unwrap().map(<[u8]>::len), Some(forged.len() - 3));
        }
    }

    #[test]
    fn doc_codec_extract_path_examples() {
        let mut dict = MemNameDict::new();
        let v = Value::from_iter([
            (
                "a",
                Value::from_iter([("b", Value::List(vec![Value::Int(1), Value::from_iter([("c", "x")])]))]),
            ),
            ("7", Value::Bool(true)),
            ("s", Value::from("skip me")),
        ]);
        let bytes = encode(&v, &mut dict);
        let get = |p: &str| {
            let segs: Vec<&str> = p.split('.').collect();
            extract_path(&bytes, &resolve_path(&segs, &dict), &dict).unwrap()
        };
        assert_eq!(get("a.b.1.c"), Some(Value::from("x")));
        assert_eq!(get("a.b.0"), Some(Value::Int(1)));
        assert_eq!(get("a.b.2"), None);
        assert_eq!(get("7"), Some(Value::Bool(true)));
        assert_eq!(get("s.0"), None);
        assert_eq!(get("nope"), None);
        assert_eq!(get("a"), v.get("a").cloned());
        let found = find_value(&bytes[3..], &resolve_path(&["a", "b"], &dict)).unwrap().unwrap();
        assert_eq!(decode_value(found, &dict).unwrap(), *v.get_path(&["a", "b"]).unwrap());
        let new: Vec<_> = dict.names_since(1).collect();
        assert_eq!(new, [(1, "b"), (2, "c"), (3, "7"), (4, "s")]);
    }

    /// A path that mostly follows what is in `v`, sometimes strays.
    fn path_into(v: &Value, picks: &[(Index, u8)]) -> Vec<String> {
        let mut path = Vec::new();
        let mut cur = Some(v);
        for (pick, mode) in picks {
            let seg = match (cur, mode % 4) {
                (_, 0) => ["zz", "0", "3", ""][pick.index(4)].to_owned(),
                (Some(Value::Map(e)), _) if !e.is_empty() => e[pick.index(e.len())].0.clone(),
                (Some(Value::List(l)), _) if !l.is_empty() => pick.index(l.len() + 1).to_string(),
                _ => "0".to_owned(),
            };
            cur = cur.and_then(|c| c.get_path(&[&seg]));
            path.push(seg);
        }
        path
    }

    proptest! {
        /// The hand-written varints are postcard's, byte for byte.
        #[test]
        fn varints_are_postcards(u in any::<u64>(), i in any::<i64>(), small in 0u64..300) {
            for v in [u, small, u >> 7, u >> 35, u64::MAX, 0, 127, 128] {
                let mut out = Vec::new();
                put_varint(&mut out, v);
                prop_assert_eq!(&out, &postcard::to_stdvec(&v).unwrap());
            }
            for v in [i, small as i64, -(small as i64), i64::MIN, i64::MAX, -1, 0] {
                let mut out = Vec::new();
                put_zigzag(&mut out, v);
                prop_assert_eq!(&out, &postcard::to_stdvec(&v).unwrap());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn doc_codec_round_trip(v in arb_value(), schema in any::<u32>()) {
            let mut dict = MemNameDict::new();
            let mut bytes = Vec::new();
            encode_document_versioned(&v, schema, &mut dict, &mut bytes).unwrap();
            let back = decode_document(&bytes, &dict).unwrap();
            prop_assert!(back.identical(&v), "{v:?}\n{back:?}");
            prop_assert_eq!(decode_header(&bytes).unwrap().0.schema_version, schema);
            // A second dictionary loaded from the first's names reads it too.
            let reloaded = MemNameDict::from_names(dict.names()).unwrap();
            prop_assert!(decode_document(&bytes, &reloaded).unwrap().identical(&v));
        }

        #[test]
        fn doc_codec_extract_agrees_with_get_path(
            v in arb_value(),
            picks in proptest::collection::vec((any::<Index>(), any::<u8>()), 0..6),
        ) {
            let mut dict = MemNameDict::new();
            let bytes = encode(&v, &mut dict);
            let path = path_into(&v, &picks);
            let steps = resolve_path(&path, &dict);
            let got = extract_path(&bytes, &steps, &dict).unwrap();
            let want = v.get_path(&path);
            prop_assert_eq!(got.is_some(), want.is_some(), "{:?}", path);
            if let (Some(got), Some(want)) = (got, want) {
                prop_assert!(got.identical(want));
            }
        }

        #[test]
        fn doc_codec_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let dict = MemNameDict::from_names(["a", "b", "c"]).unwrap();
            let mut framed = vec![1, 0, 0];
            framed.extend_from_slice(&bytes);
            must_be_corruption(decode_document(&bytes, &dict));
            must_be_corruption(decode_document(&framed, &dict));
            must_be_corruption(extract_path(&framed, &[PathStep { field: Some(0), index: Some(0) }], &dict));
            must_be_corruption(extract_path(&framed, &[PathStep::field(1), PathStep::index(1)], &dict));
        }

        #[test]
        fn doc_codec_varints_accept_what_postcard_accepts(
            bytes in proptest::collection::vec(
                prop_oneof![Just(0x80u8), Just(0xFF), Just(0x00), Just(0x01), Just(0x0F), Just(0x10), Just(0x7F), any::<u8>()],
                0..12,
            ),
        ) {
            fn same<T: PartialEq + std::fmt::Debug>(
                bytes: &[u8],
                fast: impl Fn(&mut Reader<'_>) -> Result<T>,
                slow: impl Fn(&mut Reader<'_>) -> Result<T>,
            ) -> std::result::Result<(), TestCaseError> {
                let (mut a, mut b) = (Reader::new(bytes), Reader::new(bytes));
                match (fast(&mut a), slow(&mut b)) {
                    (Ok(x), Ok(y)) => {
                        prop_assert_eq!(x, y);
                        prop_assert_eq!(a.offset(), b.offset());
                    }
                    (Err(x), Err(y)) => prop_assert_eq!(x.to_string(), y.to_string()),
                    (x, y) => prop_assert!(false, "{bytes:?}: fast {x:?}, postcard {y:?}"),
                }
                Ok(())
            }
            same(&bytes, |r| r.u64_varint("n"), |r| r.take::<u64>("n"))?;
            same(&bytes, |r| r.u32_varint("n"), |r| r.take::<u32>("n"))?;
            same(&bytes, |r| r.i64_varint("n"), |r| r.take::<i64>("n"))?;
            same(&bytes, |r| r.i32_varint("n"), |r| r.take::<i32>("n"))?;
            same(&bytes, |r| r.f64_le("n").map(f64::to_bits), |r| r.take::<f64>("n").map(f64::to_bits))?;
        }

        #[test]
        fn doc_codec_top_fields_agree_with_find_value(
            v in arb_value(),
            wanted in proptest::collection::vec((any::<Option<u8>>(), any::<Option<u8>>()), 0..12),
            order in proptest::collection::vec(any::<Index>(), 0..16),
            flip in proptest::option::of((any::<Index>(), 0u8..8)),
        ) {
            let mut dict = MemNameDict::new();
            let mut bytes = encode(&v, &mut dict);
            if let Some((at, bit)) = flip {
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            let Ok((_, payload)) = decode_header(&bytes) else { return Ok(()) };
            let steps: Vec<PathStep> = wanted
                .iter()
                .map(|(f, i)| PathStep { field: f.map(|x| u32::from(x % 10)), index: i.map(|x| u32::from(x % 3)) })
                .collect();
            if steps.is_empty() {
                return Ok(());
            }
            // Any order of lookups, repeats included, answers as find_value
            // does for each step alone (corruption only where it would be).
            let mut doc = TopFields::new(payload, &steps);
            for pick in &order {
                let i = pick.index(steps.len());
                let want = find_value(payload, std::slice::from_ref(&steps[i]));
                match (doc.get(i), want) {
                    (Ok(x), Ok(y)) => prop_assert_eq!(x, y, "step {:?}", steps[i]),
                    (Err(e), want) => {
                        // The walk meets the damage find_value meets on the
                        // way to the same field; the error ends the lookups.
                        prop_assert!(want.is_err(), "walk failed ({e}), find_value found {want:?}");
                        must_be_corruption(Err::<(), _>(e));
                        break;
                    }
                    (Ok(x), Err(e)) => prop_assert!(false, "walk found {x:?}, find_value failed: {e}"),
                }
            }
        }

        #[test]
        fn doc_codec_damaged_encodings_never_panic(
            v in arb_value(),
            cut in any::<Index>(),
            flips in proptest::collection::vec((any::<Index>(), 0u8..8), 1..4),
            steps in proptest::collection::vec(any::<Option<u32>>(), 0..4),
        ) {
            let mut dict = MemNameDict::new();
            let bytes = encode(&v, &mut dict);
            let steps: Vec<_> = steps.iter().map(|s| PathStep { field: s.map(|x| x % 8), index: s.map(|x| x % 3) }).collect();
            let truncated = &bytes[..cut.index(bytes.len())];
            must_be_corruption(decode_document(truncated, &dict));
            must_be_corruption(extract_path(truncated, &steps, &dict));
            let mut flipped = bytes.clone();
            for (at, bit) in &flips {
                flipped[at.index(bytes.len())] ^= 1 << bit;
            }
            must_be_corruption(decode_document(&flipped, &dict));
            must_be_corruption(extract_path(&flipped, &steps, &dict));
        }
    }
}

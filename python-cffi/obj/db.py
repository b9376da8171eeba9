"""The database handle :class:`Db`: open/close (with the checkpoint on a
clean close), transactions, the convenience methods that each run in their
own transaction, diagnostics (``stat``, ``dump_raw``, ``integrity_check``,
``checkpoint``) and read-only attached namespaces.

One ``Db`` may be shared by any number of threads: every C call releases
the GIL, and each convenience call uses its own transaction.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload

from . import _codec
from ._ffi import OutHandle, ffi, lib, check, fail, fork_generation, slots, take_bytes
from .document import Schema, schema_of
from .errors import (
    BusyError, ClosedError, ConstraintError, CorruptionError, InvalidArgumentError, NotFoundError, ObjError,
    _plain_function,
)
from .kv import KvNamespace, list_namespaces
from .query import Query
from .txn import _ENSURED_MAX, ReadTxn, WriteTxn, _index_request, _index_spec_json

if TYPE_CHECKING:
    from .txn import _Bytes, _Doc, _Payload

__all__ = [
    "Db",
    "Stat",
    "CollectionStat",
    "IndexStat",
    "RawRecord",
    "DocumentHeader",
    "CheckpointResult",
    "IntegrityReport",
]

T = TypeVar("T")  # a document class's instances (type checkers only; see obj.txn.T)

_SYNC = {"full": 0, "normal": 1, "off": 2}
# The library's advice when a restore's target exists, in the C API's terms.
_C_OVERWRITE = "(allow overwriting to replace it)"
# The largest value each integer option of obj_options holds (its C type's range).
_OPTION_MAX = {name: 2 ** (8 * ffi.sizeof(field.type)) - 1 for name, field in ffi.typeof("obj_options").fields
               if name in ("page_size", "cache_size", "busy_timeout_ms", "wal_autocheckpoint", "max_dirty_bytes")}
_U64_MAX = 2**64 - 1
_db_doc_get = lib.obj_db_doc_get
_db_raw_get = lib.obj_db_raw_get
_db_count = lib.obj_db_count
_db_doc_insert = lib.obj_db_doc_insert_if
_db_doc_upsert = lib.obj_db_doc_upsert_if


def _refused(st: int) -> bool:
    """Whether a one-call read's status ``st`` is a refusal as an invalid
    argument (the collection is not of the kind the call reads: the
    transaction path learns it again); any other failure raises."""
    if not st:
        return False
    e = fail(st)
    if isinstance(e, InvalidArgumentError):
        return True
    raise e


# The process-global schema registry: (collection, version) -> [shape, the
# first Schema with it, the open Dbs using it (weakly: a Db nobody holds
# does not keep its shape registered)]. Stored documents are
# read by position-free field names, but two shapes under one key would
# still mean two meanings for the same stored version; an entry lives while
# an open Db uses it (released on close).
# Reentrant: a Db collected while the lock is held (its __del__ closes it)
# releases its entries on the same thread.
_shapes_lock = threading.RLock()
_shapes: dict[tuple, list] = {}


_thread_local = threading.local()


def _thread_token() -> object:
    """An object unique to the calling thread while it lives. Not the
    thread's ident: an ident is reused once its thread exits, and a new
    thread would then be taken for the holder of an open write transaction."""
    token = getattr(_thread_local, "token", None)
    if token is None:
        token = _thread_local.token = object()
    return token


@dataclasses.dataclass(frozen=True)
class IndexStat:
    """A secondary index as :meth:`Db.stat` reports it."""

    name: str
    kind: str
    key_paths: list
    status: str
    entries: int = 0


@dataclasses.dataclass(frozen=True)
class CollectionStat:
    """One collection's figures."""

    name: str
    doc_count: int
    file_size_bytes: int
    indexes: list
    kind: str = "documents"


@dataclasses.dataclass(frozen=True)
class Stat:
    """Sizes and counters of the database (``db.stat()``). ``raw`` holds the
    library's whole report."""

    collections: list
    page_size: int
    page_count: int
    file_size: int
    wal_frames: int
    raw: dict

    @property
    def reclaimable_bytes(self) -> int:
        """About how much ``compact()`` would give back (a cheap bound from
        the free pages and the file's tail; ``db.compaction_estimate()``
        has the exact figure)."""
        return int(self.raw.get("reclaimable_bytes", 0))

    @property
    def compacted_size(self) -> int:
        """About the file's size after ``compact()`` (a bound, as
        :attr:`reclaimable_bytes`)."""
        return int(self.raw.get("compacted_size", self.file_size))


@dataclasses.dataclass(frozen=True)
class DocumentHeader:
    """What the engine keeps beside a document: its collection, the schema
    version it was written with, and whether it is raw bytes."""

    collection: str
    type_version: int
    raw: bool = False

    @property
    def collection_id(self) -> str:
        """The collection (by name; obj-db 1.1.0 showed a numeric id)."""
        return self.collection


@dataclasses.dataclass(frozen=True)
class RawRecord:
    """One record of :meth:`Db.dump_raw`: the id, the header, and the
    payload: the bytes after the record header as on disk (a raw
    collection's bytes exactly as stored; for documents the binary encoding
    of docs/format.md, "Stored document format")."""

    id: int
    header: DocumentHeader
    payload: bytes


@dataclasses.dataclass(frozen=True)
class CheckpointResult:
    """What :meth:`Db.checkpoint` did."""

    frames_backfilled: int
    pages_written: int
    wal_frames: int
    complete: bool


@dataclasses.dataclass(frozen=True)
class IntegrityReport:
    """A clean :meth:`Db.integrity_check` summary."""

    pages: int
    free_pages: int
    trees: int
    entries: int
    raw: dict


class Db:
    """An open obj database file.

    ``obj.Db("app.obj")`` opens (creating by default) the file. Use it as a
    context manager: a clean exit closes it and folds the write-ahead log
    into the main file; an exit by exception closes it without the fold and
    never masks the exception.

    Keyword options: ``read_only``, ``create`` (default True), ``sync``
    (``"full"`` default: every commit durable; ``"normal"``: durable at
    checkpoints; ``"off"``), ``page_size`` (new files), ``cache_size``
    (bytes), ``busy_timeout_ms``, ``wal_autocheckpoint`` (frames; 0 = never),
    ``max_dirty_bytes`` (changed pages a write transaction keeps in memory
    before it writes the oldest to the WAL ahead of its commit; default
    64 MiB or the cache size if larger), and encryption at rest: ``key`` (32 bytes) or ``passphrase`` (a str,
    taken as UTF-8, or bytes of any value but NUL). A wrong or missing key
    raises EncryptionError.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        read_only: bool = False,
        create: bool = True,
        sync: str = "full",
        page_size: int | None = None,
        cache_size: int | None = None,
        busy_timeout_ms: int | None = None,
        wal_autocheckpoint: int | None = None,
        max_dirty_bytes: int | None = None,
        key: bytes | None = None,
        passphrase: str | bytes | None = None,
    ) -> None:
        self._h: Any = None
        self._closed = True
        self.path = _codec.path_arg(path, "a database path")
        if sync not in _SYNC:
            raise InvalidArgumentError(f"sync must be one of {sorted(_SYNC)}, not {sync!r}")
        o = ffi.new("obj_options *")
        check(lib.obj_options_init(o))
        o.read_only = bool(read_only)
        o.create = bool(create)
        o.sync_mode = _SYNC[sync]
        for name, v in (("page_size", page_size), ("cache_size", cache_size),
                        ("busy_timeout_ms", busy_timeout_ms), ("wal_autocheckpoint", wal_autocheckpoint),
                        ("max_dirty_bytes", max_dirty_bytes)):
            if v is not None:
                top = _OPTION_MAX[name]  # the largest value of the C field (uint32_t or uint64_t)
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= top:
                    raise InvalidArgumentError(f"{name} must be an int from 0 to {top}, not {v!r:.40}")
                setattr(o, name, v)
        keep = _key_args(key, passphrase)
        o.encryption_key, o.passphrase = keep
        cpath = _codec.cstr(self.path, "path")
        # Freed when this object is collected, never earlier: a thread still
        # inside a call after close() gets OBJ_CLOSED, not freed memory.
        self._h = OutHandle.make("obj_db **", lib.obj_db_free, lambda p: check(lib.obj_db_open(cpath, o, p)))
        del keep
        self._closed = False
        self.read_only = bool(read_only)
        # What this Db knows of the file's collections, true at catalog
        # version _cat (see _at_catalog): their kinds, the typed classes set
        # up (collection and declared indexes made), and those whose
        # declared indexes the file was seen to hold.
        self._cat: int | None = None
        self._cat_lock = threading.Lock()  # (a version and the caches of it change together)
        self._kinds: dict[bytes, str] = {}
        self._ensured: set = set()
        self._declared_ok: set = set()
        self._shapes: dict[tuple, Schema] = {}
        self._attached: dict[str, Db] = {}
        # Attachment bookkeeping (under _att_lock, reentrant: a transaction
        # collected while it is held ends on the same thread): how many
        # running transactions read each attached Db (by id), and the
        # detached ones still read by some (closed when the last ends).
        self._att_users: dict[int, int] = {}
        self._lingering: dict[int, Db] = {}
        self._att_lock = threading.RLock()
        self._names: dict[str, bytes] = {}
        self._lock = threading.Lock()
        # (thread, weak reference, fork generation) of the open write
        # transaction; `_close_lock` makes its registration and close()
        # exclusive, so that a transaction that began while close() ran
        # is either rolled back by it or refused.
        self._writer: tuple[object, Any, int] | None = None
        # The read transactions of this Db's own iterators (see `_own`).
        # (transaction -> the fork generation it began in)
        self._readers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._close_lock = threading.Lock()

    def _at_catalog(self, version: int, newest: bool) -> None:
        """Called, under ``_cat_lock``, by a transaction that sees catalog
        version ``version``, another than the one this Db's caches hold for:
        a newer one (another handle or process created or dropped a
        collection or an index), or any other one seen by a write
        transaction (``newest``: it reads the last commit), empties them; an
        older snapshot leaves them alone."""
        if self._cat is None or version > self._cat or newest:
            self._kinds = {}
            self._ensured = set()
            self._declared_ok = set()
            self._cat = version

    @classmethod
    def open(cls, path: str | os.PathLike, **options: Any) -> Db:
        """Same as ``obj.Db(path, **options)``."""
        return cls(path, **options)

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Db:
        self._handle()  # a closed Db: ClosedError here, not at the first call in the block
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if et is None:
            self.close()
        else:
            self._close(checkpoint=False)

    def close(self) -> None:
        """Closes the database. A clean close folds the WAL into the main
        file (best effort: a failed fold is swallowed, the data is already
        durable in the WAL); while another process has the file open, the
        fold is left to the last process to close. Idempotent."""
        self._close(checkpoint=True)

    def _close(self, checkpoint: bool) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            w = self._writer
            # Only this process's: in a forked child, the parent's are
            # not ours to end (a parent thread may have held their lock at
            # the fork, and ending one would wait for it forever).
            gen = fork_generation[0]
            readers = [t for t, g in list(self._readers.items()) if g == gen]
            if w is not None and w[2] != gen:
                w = None
        # An open write transaction of this handle is rolled back, as
        # sqlite3's close() does: left open it would keep the file's write
        # lock, and a new handle would wait for a writer nothing ends. The
        # snapshots of this Db's unfinished iterators end too (their next
        # batch raises ClosedError): each would keep the file open.
        tx = w[1]() if w is not None else None
        for t in ([tx] if tx is not None else []) + readers:
            if t._h is not None:
                t._end_by_close()
        self._release_shapes()
        with self._att_lock:
            others = list(self._attached.values()) + list(self._lingering.values())
            self._attached.clear()
            self._lingering.clear()
        for other in others:
            try:
                other._close(checkpoint=False)
            except Exception:  # noqa: BLE001
                pass
        try:
            # A read-only handle has nothing to fold: its plain close only
            # removes the -shm it may have created (an attached file's too).
            if not checkpoint and not self.read_only:
                lib.obj_db_close_no_checkpoint(self._h)
            else:
                lib.obj_db_close(self._h)
        except Exception:  # noqa: BLE001 - close never raises
            pass

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _handle(self) -> Any:
        if self._closed:
            raise ClosedError(f"database {self.path!r} is closed")
        return self._h

    def __repr__(self) -> str:
        return f"<obj.Db {self.path!r}{' closed' if self._closed else ''}>"

    def __del__(self) -> None:
        # A Db dropped without close() (a script that just ends) closes like
        # close(), as obj_db_free does: the last handle on the file in any
        # process folds the WAL and removes the -wal and -shm files.
        try:
            if not self._closed:
                self._close(checkpoint=True)
        except Exception:  # noqa: BLE001
            pass

    # -- helpers --------------------------------------------------------------
    def _cname(self, name: str, what: str = "collection") -> bytes:
        """``name`` as the C library takes it (UTF-8, no NUL); ``what``
        names it in errors (a collection or a key-value namespace)."""
        b = self._names.get(name)
        if b is None:
            if not isinstance(name, str):
                raise InvalidArgumentError(f"a {what} name must be a str, not {type(name).__name__}")
            b = _codec.utf8(name, f"{what} name")
            if b"\0" in b or not b:
                raise InvalidArgumentError(f"bad {what} name {name!r}")
            if len(self._names) < 10_000:
                self._names[name] = b
        return b

    def _check_shape(self, s: Schema) -> None:
        """Registers ``s`` for its (collection, version) in the process-global
        registry; InvalidArgumentError if an open Db (this one or another)
        registered another shape there."""
        key = (s.collection, s.version)
        if self._shapes.get(key) is s:  # the hot path: this class already checked here
            return
        shape = s.shape()
        for attempt in range(2):
            with _shapes_lock:
                ent = _shapes.get(key)
                if ent is not None and ent[0] != shape and not any(not d._closed for d in ent[2]):
                    del _shapes[key]  # no open Db holds the other shape any more
                    ent = None
                if ent is None:
                    if self._closed:  # a transaction that outlived close(): checked, not registered
                        return
                    _shapes[key] = ent = [shape, s, weakref.WeakSet()]
                if ent[0] == shape:
                    if not self._closed:  # (a closed Db's entries are already released)
                        ent[2].add(self)
                        self._shapes[key] = s
                    return
                if attempt == 1:
                    where = "this Db" if self in ent[2] else "another open Db"
                    # The class an open Db registered (the entry's first
                    # class may belong to a Db closed since).
                    holder = self if self in ent[2] else next((d for d in ent[2] if not d._closed), None)
                    other = (holder._shapes.get(key) if holder is not None else None) or ent[1]
                    raise InvalidArgumentError(
                        f"collection {s.collection!r} version {s.version} is already registered by "
                        f"{other.cls.__module__}.{other.cls.__qualname__} (in {where}) with another shape; "
                        f"{s.cls.__module__}.{s.cls.__qualname__} must use a distinct collection name or bump "
                        f"version= (the registration ends when the Dbs using it close)"
                    )
            # A Db nobody can reach any more, but not yet collected (a
            # reference cycle), may still hold the other shape: collect it
            # (its __del__ closes it) and look again.
            gc.collect()

    def _release_shapes(self) -> None:
        """Drops this Db's registrations (on close)."""
        with _shapes_lock:
            for key in list(self._shapes):
                ent = _shapes.get(key)
                if ent is not None:
                    ent[2].discard(self)
                    if not ent[2]:
                        del _shapes[key]
            self._shapes.clear()

    def _no_nested_write(self) -> None:
        """BusyError at once when this thread holds an open write transaction
        of this Db: a second writer from it would wait for itself (the busy
        timeout, then BusyError), and the open transaction is left as it is."""
        w = self._writer
        # (A forked child holds none of its parent's transactions.)
        if w is not None and w[0] is _thread_token() and w[2] == fork_generation[0]:
            tx = w[1]()
            if tx is not None and not tx.finished:
                raise BusyError(
                    f"this thread already holds the open write transaction of {self.path!r}; a nested write "
                    f"(db.transaction() or a one-call write such as db.insert) cannot begin until it ends: "
                    f"write through the open transaction (tx.insert(...)) instead"
                )

    # -- transactions ---------------------------------------------------------
    def transaction(self) -> WriteTxn:
        """Begins the write transaction (waits up to the busy timeout for
        another writer, then :class:`obj.BusyError`; at once when this thread
        already holds it). As a context manager it commits on a clean exit
        and rolls back on an exception."""
        h = self._handle()
        self._no_nested_write()
        out = OutHandle("obj_txn **", lib.obj_txn_free)
        txh = None
        try:
            check(lib.obj_txn_begin_write(h, out.p))
            txh = out.take()
            if self._closed:  # closed while this waited for the write lock
                lib.obj_txn_rollback(txh)
                self._handle()
            tx = WriteTxn(self, txh, True)
            if self._attached:
                self._begin_attached(tx)
            with self._close_lock:
                if self._closed:
                    tx._end_by_close()
                    self._handle()
                self._writer = (_thread_token(), weakref.ref(tx), fork_generation[0])
            return tx
        except BaseException:
            # Not handed to the caller: end it now, not when the traceback
            # that holds it goes (a Ctrl-C as the lock was granted would
            # otherwise keep every writer of the file waiting).
            out.release()
            if txh is not None:
                lib.obj_txn_rollback(txh)
            raise

    def read_transaction(self) -> ReadTxn:
        """Begins a read transaction: a snapshot of the last commit (and of
        every attached file)."""
        out = OutHandle("obj_txn **", lib.obj_txn_free)
        txh = None
        try:
            check(lib.obj_txn_begin_read(self._handle(), out.p))
            txh = out.take()
            tx = ReadTxn(self, txh, False)
            if self._attached:
                self._begin_attached(tx)
            return tx
        except BaseException:
            out.release()  # (its snapshot would hold back checkpoints)
            if txh is not None:
                lib.obj_txn_rollback(txh)
            raise

    def _own(self, tx: ReadTxn) -> ReadTxn:
        """Registers ``tx``, a read transaction that an iterator of this Db
        (``db.all``, ``db.query(...).iter()``, ...) began for itself:
        ``close()`` ends it, so that an iteration left half read does not
        keep the file open. (A transaction the caller began keeps its
        snapshot after ``close()`` until it ends, as in the C API.)"""
        with self._close_lock:
            if self._closed:  # closed while it began
                tx._end_by_close()
                self._handle()
            self._readers[tx] = fork_generation[0]
        return tx

    def _begin_attached(self, tx: ReadTxn) -> None:
        """Begins, for transaction ``tx`` that has just begun, a read
        snapshot of every file attached now: ``tx`` reads each namespace as
        of its own beginning, whatever is committed there, attached or
        detached later (as the C library's attach does). On failure ``tx``
        is ended and the error raised."""
        with self._att_lock:
            items = list(self._attached.items())
            users = self._att_users
            for _, other in items:
                users[id(other)] = users.get(id(other), 0) + 1
        snaps: dict[str, ReadTxn] = {}
        try:
            for ns, other in items:
                snaps[ns] = other.read_transaction()
        except BaseException:
            for t in snaps.values():
                t._abandon()
            for _, other in items:
                self._attached_done(other)
            tx._abandon()
            raise
        tx._attached = snaps

    def _attached_done(self, other: Db) -> None:
        """A transaction's snapshot of attached ``other`` ended: a detached
        file nobody reads any more is closed."""
        with self._att_lock:
            key = id(other)
            n = self._att_users.get(key, 0) - 1
            if n > 0:
                self._att_users[key] = n
                return
            self._att_users.pop(key, None)
            if self._lingering.pop(key, None) is None:
                return
        other._close(checkpoint=False)

    # -- documents, one transaction per call --------------------------------------
    @overload
    def insert(self, what: str, payload: _Payload) -> int: ...
    @overload
    def insert(self, what: object) -> int: ...

    def insert(self, what: Any, payload: Any = None) -> int:
        """Inserts a document in its own transaction; returns its id. See
        :meth:`WriteTxn.insert`."""
        target = self._autocommit_target(what if payload is None else payload, what)
        if target is not None:
            self._no_nested_write()
            out, done = slots.u64, slots.done  # (this thread's output slots, as everywhere)
            check(_db_doc_insert(self._handle(), target[0], target[2], len(target[2]), target[1], target[3],
                                 out, done))
            if done[0]:
                return out[0]
            # The catalog changed since this Db learnt the collection: the
            # transaction below sees the new one and sets it up again.
        with self.transaction() as tx:
            return tx.insert(what, payload)

    def _autocommit_target(self, doc: Any, what: Any) -> tuple[bytes, int, bytes, int] | None:
        """``(C name, schema version, JSON, catalog version)`` when writing
        ``doc`` can be one C call that begins, writes and commits (a dict
        into a document collection this Db already knows, or a typed
        document whose collection it has already set up), on the condition
        that the catalog is still at the version this Db learnt that at;
        None sends the write through a transaction with the general checks
        and first-use set-up."""
        cat = self._cat
        if type(what) is str:
            if not isinstance(doc, dict) or (self._attached and "." in what):
                return None
            cname = self._names.get(what)
            if cname is None or self._kinds.get(cname) != "documents" or cat is None:
                return None
            return cname, 0, _codec.dumps(doc), cat
        s = schema_of(doc)
        if s is None or what is not doc or (s.collection, s.cls) not in self._ensured or isinstance(doc, type):
            return None  # (a class passed for an instance: the transaction's write says so)
        if (self._attached and "." in s.collection) or cat is None:
            return None
        self._check_shape(s)
        return self._names[s.collection], s.version, _codec.dumps(s.validate(doc)), cat

    @overload
    def insert_many(self, what: str, payloads: Iterable[_Doc] | Iterable[_Bytes]) -> list[int]: ...
    @overload
    def insert_many(self, what: Iterable[object]) -> list[int]: ...

    def insert_many(self, what: Any, payloads: Iterable[Any] | None = None) -> list[int]:
        """Inserts many documents in one transaction and one call."""
        with self.transaction() as tx:
            return tx.insert_many(what, payloads)  # type: ignore[arg-type]  # (as given)

    @overload
    def get(self, what: type[T], doc_id: int) -> T | None: ...
    @overload
    def get(self, what: str, doc_id: int) -> Any: ...

    def get(self, what: Any, doc_id: int) -> Any:
        """The document with id ``doc_id`` or None. See :meth:`ReadTxn.get`."""
        if type(doc_id) is int and 0 <= doc_id <= 0xFFFFFFFFFFFFFFFF:
            # One C call that takes and ends its own snapshot, for a known
            # document or raw collection of this file.
            # A refusal (InvalidArgument: another handle or process made the
            # collection again as the other kind since this Db learnt it)
            # goes on to the transaction, which learns it again. Not for a
            # dotted name: the transaction routes it (an attached namespace,
            # or NotFoundError once no local collection has the name).
            if type(what) is str:
                cname = self._names.get(what)
                if cname is not None and "." not in what:
                    kind = self._kinds.get(cname)
                    if kind == "documents":
                        r = self._get_one(cname, doc_id, False)
                        if r is not False:
                            return None if r is None else _codec.loads(r[1])
                    elif kind == "raw":
                        r = self._raw_get_one(cname, doc_id)
                        if r is not False:
                            return r
            else:
                s = schema_of(what)
                if s is not None and s.collection in self._names and "." not in s.collection:
                    self._check_shape(s)
                    r = self._get_one(self._names[s.collection], doc_id, True)
                    if r is None:
                        return None
                    if r is not False:
                        return s.decode_doc(doc_id, r[0], _codec.loads(r[1]))
        with self.read_transaction() as tx:
            return tx.get(what, doc_id)

    def _get_one(self, cname: bytes, doc_id: int, versioned: bool) -> tuple[int, bytes] | None | bool:
        """``(version, JSON text)`` of one document read in its own snapshot
        (version 0 unless ``versioned``), None if absent, False if the
        library refused the read as an invalid argument (the collection is
        not a document collection)."""
        buf, found = slots.buf, slots.found
        ver = slots.ver if versioned else ffi.NULL
        if _refused(_db_doc_get(self._handle(), cname, doc_id, buf, ver, found)):
            return False
        if not found[0]:
            return None
        data = ffi.buffer(buf.data, buf.len)[:]
        lib.obj_bytes_free(buf)
        return (ver[0] if versioned else 0), data

    def _raw_get_one(self, cname: bytes, doc_id: int) -> bytes | None | bool:
        """The bytes of one raw document read in its own snapshot, None if
        absent, False if the library refused the read as an invalid
        argument (the collection is not a raw collection)."""
        buf, found = slots.buf, slots.found
        if _refused(_db_raw_get(self._handle(), cname, doc_id, buf, found)):
            return False
        if not found[0]:
            return None
        return take_bytes(buf)

    @overload
    def get_many(self, what: type[T], ids: Iterable[int]) -> list[T | None]: ...
    @overload
    def get_many(self, what: str, ids: Iterable[int]) -> list[Any]: ...

    def get_many(self, what: Any, ids: Iterable[int]) -> list[Any]:
        """Documents for many ids in one call (None where absent)."""
        with self.read_transaction() as tx:
            return tx.get_many(what, ids)

    @overload
    def update(self, what: type[T], doc_id: int, fn: Callable[[T], T | None]) -> T: ...
    @overload
    def update(self, what: str, doc_id: int, fn: Callable[[Any], Any]) -> Any: ...

    def update(self, what: Any, doc_id: int, fn: Callable[[Any], Any]) -> Any:
        """Atomic read-modify-write in one write transaction; a raising
        ``fn`` rolls everything back. Returns the new document."""
        with self.transaction() as tx:
            return tx.update(what, doc_id, fn)

    def migrate_all(self, what: type) -> int:
        """Rewrites, in one write transaction, every document of class
        ``what``'s collection stored under an older ``version=``, through
        its migration; returns how many. See :meth:`WriteTxn.migrate_all`."""
        with self.transaction() as tx:
            return tx.migrate_all(what)

    @overload
    def upsert(self, what: type[T], doc_id: int, payload: T) -> bool: ...
    @overload
    def upsert(self, what: str, doc_id: int, payload: _Payload) -> bool: ...

    def upsert(self, what: Any, doc_id: int, payload: Any) -> bool:
        """Writes a document at ``doc_id``; True if it was created."""
        if type(doc_id) is int and 0 <= doc_id <= 0xFFFFFFFFFFFFFFFF:
            if type(what) is str:
                target = self._autocommit_target(payload, what)
            else:
                s = schema_of(what)
                target = self._autocommit_target(payload, payload) if s and schema_of(payload) is s else None
            if target is not None:
                self._no_nested_write()
                created, done = slots.found, slots.done
                check(_db_doc_upsert(self._handle(), target[0], doc_id, target[2], len(target[2]), target[1],
                                     target[3], created, done))
                if done[0]:
                    return bool(created[0])
        with self.transaction() as tx:
            return tx.upsert(what, doc_id, payload)

    def delete(self, what: Any, doc_id: int) -> bool:
        """Deletes a document; True if it existed."""
        with self.transaction() as tx:
            return tx.delete(what, doc_id)

    @overload
    def all(self, what: type[T]) -> Iterator[tuple[int, T]]: ...
    @overload
    def all(self, what: str) -> Iterator[tuple[int, Any]]: ...

    def all(self, what: Any) -> Iterator[tuple[int, Any]]:
        """Every ``(id, doc)`` of a collection (a class, or a name) in id
        order, read from one snapshot."""
        # Checked at the call, not at the first next() of the generator.
        self._handle()
        if type(what) is str:
            self._cname(what)
        elif schema_of(what) is None:
            from .txn import _not_document

            raise _not_document(what)
        return self._all(what, False)

    def iter_all(self, collection: str) -> Iterator[tuple[int, Any]]:
        """``(id, payload)`` of a collection by name (bytes for raw ones)."""
        self._handle()
        if type(collection) is not str:
            raise InvalidArgumentError("iter_all takes a collection name (str)")
        self._cname(collection)
        return self._all(collection, True)

    def _all(self, what: Any, named: bool) -> Iterator[tuple[int, Any]]:
        with self._own(self.read_transaction()) as tx:
            yield from (tx.iter_all(what) if named else tx.all(what))

    def count(self, what: Any) -> int:
        """Number of documents in a collection."""
        # One C call that takes and ends its own snapshot, for a collection
        # name of this file already seen (of either kind; a missing one
        # counts 0, as in the transaction). Not for a dotted name: the
        # transaction routes it (an attached namespace, or NotFoundError
        # when no local collection has the name).
        name = what if type(what) is str else None
        s = None
        if name is None:
            s = schema_of(what)
            name = None if s is None else s.collection
        cname = self._names.get(name) if name is not None else None
        if cname is not None and "." not in name:
            h = self._handle()
            if s is not None:
                self._check_shape(s)
            out = slots.u64
            check(_db_count(h, cname, out))
            return out[0]
        with self.read_transaction() as tx:
            return tx.count(what)

    def _declared_snapshot(self, what: Any) -> ReadTxn:
        """A read transaction for a lookup through the indexes that ``what``
        (a document class) declares, once those this file lacks (an index
        added to the class after its documents were written) are built, so
        that the lookup works before the class's first write, which would
        build them too. Only on a writable handle, and only when an index
        is missing: the check reads the snapshot itself (what this Db
        remembers of the class holds for the catalog version it sees). If
        the build cannot run now (another writer holds the lock past the
        busy timeout, this thread holds a write transaction), the read goes
        on and says what it finds; a build that fails (a unique index over
        documents that repeat a value) raises."""
        tx = self.read_transaction()
        s = schema_of(what)
        if s is None or self.read_only or "." in s.collection:
            return tx
        key = (s.collection, s.cls)
        if tx._cat == self._cat and (key in self._ensured or key in self._declared_ok):
            return tx
        specs = s.index_specs()
        if not specs:
            return tx
        try:
            info = tx._c_coll_info(self._cname(s.collection))
        except BaseException:
            tx.close()
            raise
        if info is None:
            return tx
        if {sp["name"] for sp in specs} <= {i.get("name") for i in info.get("indexes", ())}:
            with self._cat_lock:
                if tx._cat == self._cat:
                    if len(self._declared_ok) >= _ENSURED_MAX:
                        self._declared_ok = set()  # (a cache, see WriteTxn.commit)
                    self._declared_ok.add(key)
            return tx
        tx.close()
        try:
            with self.transaction() as wtx:
                wtx._ensure(s)
        except ConstraintError:
            raise
        except (BusyError, InvalidArgumentError):
            pass
        return self.read_transaction()

    @overload
    def find_unique(self, what: type[T], index: str, *values: Any) -> T | None: ...
    @overload
    def find_unique(self, what: str, index: str, *values: Any) -> Any: ...

    def find_unique(self, what: Any, index: str, *values: Any) -> Any:
        """The document whose unique index ``index`` holds ``values``, or
        None."""
        with self._declared_snapshot(what) as tx:
            return tx.find_unique(what, index, *values)

    @overload
    def find_unique_many(self, what: type[T], index: str, keys: Iterable[Any]) -> list[T | None]: ...
    @overload
    def find_unique_many(self, what: str, index: str, keys: Iterable[Any]) -> list[Any]: ...

    def find_unique_many(self, what: Any, index: str, keys: Iterable[Any]) -> list[Any]:
        """Documents for many unique keys in one snapshot and one call per
        2048 keys (None where absent). See :meth:`ReadTxn.find_unique_many`."""
        with self._declared_snapshot(what) as tx:
            return tx.find_unique_many(what, index, keys)

    @overload
    def find_unique_with_id(self, what: type[T], index: str, *values: Any) -> tuple[int, T] | None: ...
    @overload
    def find_unique_with_id(self, what: str, index: str, *values: Any) -> tuple[int, Any] | None: ...

    def find_unique_with_id(self, what: Any, index: str, *values: Any) -> tuple[int, Any] | None:
        """``(id, doc)`` for a unique key, or None."""
        with self._declared_snapshot(what) as tx:
            return tx.find_unique_with_id(what, index, *values)

    @overload
    def index_range(self, what: type[T], index: str, lo: Any = None, hi: Any = None) -> Iterator[tuple[int, T]]: ...
    @overload
    def index_range(self, what: str, index: str, lo: Any = None, hi: Any = None) -> Iterator[tuple[int, Any]]: ...

    def index_range(self, what: Any, index: str, lo: Any = None, hi: Any = None) -> Iterator[tuple[int, Any]]:
        """``(id, doc)`` with index keys in ``[lo, hi)`` in key order; equal
        bounds mean equality."""
        return self.query(what).index_range(index, lo, hi).iter()

    @overload
    def query(self, what: type[T]) -> Query[T]: ...
    @overload
    def query(self, what: str) -> Query[Any]: ...

    def query(self, what: Any) -> Query[Any]:
        """A lazy, immutable query over a document class or collection. On
        a writable handle, indexes that the class declares and the file
        lacks are built (a write transaction) when the query first runs, as
        the class's first write would build them."""
        self._handle()
        return Query(self, what)

    def collections(self) -> list[str]:
        """Names of the collections, sorted."""
        with self.read_transaction() as tx:
            return tx.collections()

    def create_index(self, collection: Any, name: str, fields: Any, kind: str = "standard") -> None:
        """Creates a secondary index (``kind``: standard, unique or multi)
        over ``fields`` and fills it from the existing documents in batches,
        each a write transaction of its own, so that other writers go on
        between them (``WriteTxn.create_index`` builds it whole in its
        transaction). Until it is complete ``stat()`` shows it "building"
        and queries do not use it; the same index again does nothing, and
        resumes a build cut short."""
        coll, spec = _index_request(self, collection, name, fields, kind)
        js = _index_spec_json(spec)
        cname = self._wname(coll)
        self._no_nested_write()
        check(lib.obj_db_index_create(self._handle(), cname, js, len(js)))

    def _wname(self, name: str, attached: Any = ()) -> bytes:
        """The C name of collection ``name`` for a write: InvalidArgumentError
        when it is in a namespace attached to this Db (or in ``attached``, a
        transaction's own), which is read-only."""
        if (self._attached or attached) and "." in name:
            ns = name.partition(".")[0]
            if ns in self._attached or ns in attached:
                raise InvalidArgumentError(f"{name!r} is in an attached namespace, which is read-only")
        return self._cname(name)

    def drop_index(self, collection: Any, name: str) -> None:
        """Drops a secondary index with its entries (NotFoundError if
        absent), in a write transaction of its own."""
        with self.transaction() as tx:
            tx.drop_index(collection, name)

    def drop_collection(self, name: str) -> bool:
        """Drops a collection; True if it existed."""
        with self.transaction() as tx:
            return tx.drop_collection(name)

    def kv(self, namespace: str) -> KvNamespace:
        """A key-value namespace (each call its own transaction)."""
        self._handle()
        return KvNamespace(self, namespace)

    def kv_namespaces(self) -> list[str]:
        """Names of the key-value namespaces."""
        with self.read_transaction() as tx:
            return list_namespaces(tx)

    # -- attach -----------------------------------------------------------------
    def attach(
        self,
        path: str | os.PathLike,
        namespace: str,
        *,
        key: bytes | None = None,
        passphrase: str | bytes | None = None,
    ) -> None:
        """Opens another obj file read-only; its collections read as
        ``"namespace.collection"``. Writes there raise InvalidArgumentError.
        An encrypted file takes its ``key`` or ``passphrase`` (a wrong or
        missing one raises EncryptionError)."""
        self._handle()
        if not isinstance(namespace, str):
            raise InvalidArgumentError(f"an attach namespace is a str, not {type(namespace).__name__}")
        # The engine's rule (ops/attach.rs), which C and C++ callers meet.
        raw = _codec.utf8(namespace, "attach namespace")
        if not 1 <= len(raw) <= 200 or any(c in namespace for c in "./\0"):
            raise InvalidArgumentError(
                f"namespace name {namespace!r:.80} is invalid: 1 to 200 bytes without '.', '/' or NUL")
        # The namespace would hide a local collection named
        # "namespace.something" (the engine's attach refuses it too) or, in
        # Python, where db.kv("namespace.name") reads the attached file's
        # "name", a local key-value namespace of that dotted name. One
        # snapshot lists both.
        with self.read_transaction() as tx:
            local = (("collection", tx.collections()), ("key-value namespace", list_namespaces(tx)))
        for what, names in local:
            hidden = [n for n in names if n.startswith(namespace + ".")]
            if hidden:
                raise InvalidArgumentError(f"attaching {namespace!r} would hide the local {what} {hidden[0]!r}")
        if namespace in self._attached:
            raise InvalidArgumentError(f"namespace {namespace!r} is already attached")
        other = Db(path, read_only=True, create=False, key=key, passphrase=passphrase)
        other._attached_as = (namespace, self.path)
        try:
            other._read_catalog()
            with self._lock, self._att_lock:
                if namespace in self._attached:
                    raise InvalidArgumentError(f"namespace {namespace!r} is already attached")
                # (a new dict: a transaction beginning copies it without the lock)
                self._attached = {**self._attached, namespace: other}
        except BaseException:
            other._close(checkpoint=False)
            raise

    def _read_catalog(self) -> None:
        """Reads the whole catalog (every collection's kind, count and
        index metadata, and the key-value namespaces) from one snapshot:
        a damaged catalog fails here (CorruptionError), not at its first read."""
        with self.read_transaction() as tx:
            for name in tx.collections():
                cname = self._cname(name)
                info = tx._c_coll_info(cname)
                if info is None:
                    raise CorruptionError(f"{self.path}: the catalog lists collection {name!r} but does not hold it")
            list_namespaces(tx)

    def detach(self, namespace: str) -> None:
        """Detaches a namespace (NotFoundError if not attached).
        Transactions begun afterwards no longer see it; one already running
        keeps reading its snapshot, and the file closes when the last of
        them ends."""
        self._handle()
        if not isinstance(namespace, str):
            raise InvalidArgumentError(f"detach takes the namespace name (str), not {type(namespace).__name__}")
        with self._lock, self._att_lock:
            other = self._attached.get(namespace)
            if other is None:
                raise NotFoundError(f"no attached namespace {namespace!r}")
            self._attached = {k: v for k, v in self._attached.items() if k != namespace}
            if self._att_users.get(id(other), 0) > 0:
                self._lingering[id(other)] = other
                return
        other._close(checkpoint=False)

    def attached(self) -> dict[str, str]:
        """Attached namespaces and their paths."""
        return {ns: d.path for ns, d in self._attached.items()}

    # -- operations -------------------------------------------------------------
    def backup(self, path: str | os.PathLike, progress: Callable[[int, int], Any] | None = None) -> dict:
        """Writes a consistent copy of the database (one snapshot) to
        ``path`` while other threads keep working; the copy opens on its
        own. ``progress(done_pages, total_pages)`` is called as it goes;
        returning False cancels (nothing is left at ``path``). An exception
        raised by ``progress`` (Ctrl-C's KeyboardInterrupt included) cancels
        too, and is then raised by ``backup``. Returns the report (pages,
        bytes, commit_counter, cancelled, millis). A file at ``path`` is
        replaced, unless it is an open database (BusyError, as is a file
        that appears there while the copy is written), this database's own
        file, or a database not closed cleanly (InvalidArgumentError)."""
        cb = ffi.NULL
        raised: list[BaseException] = []
        if progress is not None and not callable(progress):
            raise InvalidArgumentError(
                f"backup's progress must be a callable (done_pages, total_pages), not {type(progress).__name__}")
        if progress is not None:
            _plain_function(progress, "backup's progress")
        declined: list[bool] = []
        if progress is not None:
            # An exception in the callback cancels the copy and is raised below.
            @ffi.callback("bool(uint64_t, uint64_t, void *)", error=False, onerror=_raised_into(raised, False))
            def cb(done: int, total: int, _ctx: Any) -> bool:
                if progress(done, total) is False:
                    declined.append(True)
                    return False
                return True
        buf = ffi.new("obj_bytes *")
        dest = _codec.cpath(path, "backup path")
        st = lib.obj_db_backup(self._handle(), dest, cb, ffi.NULL, buf)
        if raised:  # the copy was abandoned (nothing at path): the caller sees why
            _take(buf)
            raise raised[0]
        check(st)
        report = json.loads(_take(buf))
        if report.get("cancelled") and not declined:
            # Cancelled, yet progress never said so: its exception was lost
            # in cffi (one raised inside on_error itself). Never a silent
            # success without a file.
            raise ObjError(f"the backup to {os.fspath(path)!r} was cancelled: its progress callback failed")
        return report

    def backup_to(self, path: str | os.PathLike, progress: Callable[[int, int], Any] | None = None) -> dict:
        """Same as :meth:`backup` (the Rust API's name)."""
        return self.backup(path, progress)

    @staticmethod
    def restore_from(backup: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool = False,
                     key: bytes | None = None, passphrase: str | bytes | None = None) -> None:
        """Same as :meth:`restore` (the Rust API's name)."""
        Db.restore(backup, target, overwrite=overwrite, key=key, passphrase=passphrase)

    @staticmethod
    def restore(backup: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool = False,
                key: bytes | None = None, passphrase: str | bytes | None = None) -> None:
        """Copies the database file ``backup`` to ``target``, which must not
        be open (BusyError, as is one that appears there while the copy is
        written) and, unless ``overwrite``, must not exist. An
        encrypted backup needs its ``key`` or ``passphrase`` (EncryptionError
        otherwise); the restored file is encrypted with it too."""
        src = _codec.cpath(backup, "backup path")
        dst = _codec.cpath(target, "target path")
        k, p = _key_args(key, passphrase)
        try:
            check(lib.obj_db_restore_with_key(src, dst, bool(overwrite), k, p))
        except InvalidArgumentError as e:
            # The library's advice names the C option; here it is a keyword.
            if _C_OVERWRITE not in e.args[0]:
                raise
            raise InvalidArgumentError(e.args[0].replace(_C_OVERWRITE, "(pass overwrite=True to replace it)"),
                                       status=e.status) from None

    def compact(self) -> dict:
        """Shrinks the file in place (crash-safe); returns the report
        (pages_before, pages_after, file_size_before, file_size_after, ...)."""
        self._no_nested_write()
        buf = ffi.new("obj_bytes *")
        check(lib.obj_db_compact(self._handle(), buf))
        return json.loads(_take(buf))

    def compaction_estimate(self) -> dict:
        """The exact effect of ``compact()`` from a dry run (reads every tree
        node): database_size, file_size, compacted_size, reclaimable_bytes.
        ``stat()`` is cheap and gives only bounds of the last two."""
        buf = ffi.new("obj_bytes *")
        check(lib.obj_db_compaction_estimate(self._handle(), buf))
        return json.loads(_take(buf))

    def compact_to(self, path: str | os.PathLike) -> dict:
        """Writes a compacted copy of the current snapshot to ``path``
        (replacing a file there as :meth:`backup` does, with the same
        errors)."""
        buf = ffi.new("obj_bytes *")
        check(lib.obj_db_compact_to(self._handle(), _codec.cpath(path, "compact_to path"), buf))
        return json.loads(_take(buf))

    def export(self, path: str | os.PathLike | Any, collection: str | None = None) -> dict:
        """Streams one collection (or everything) to ``path`` as JSON lines,
        from one snapshot, in constant memory. Returns the report. An
        attached collection (``"ns.coll"``) is exported from its file,
        under its own name (``"coll"``). A ``path`` that names a pipe
        (FIFO) or a character device is written straight into, one that
        names a descriptor of the process (``"/dev/stdout"``) is appended
        to, and any other file is replaced once the export is complete
        (a failed export leaves it as it was). ``path`` may also be a binary file
        object (``sys.stdout.buffer``, a pipe, a ``gzip.open(..., "wb")``
        file; a text stream is an ``InvalidArgumentError``): the lines go to its ``write`` in pieces of at most 64 KiB,
        and an exception ``write`` raises stops the export and is raised
        here (what it took so far is a prefix of the export)."""
        if isinstance(collection, str) and "." in collection:
            ns, _, inner = collection.partition(".")
            other = self._attached.get(ns)
            if other is not None:
                self._handle()
                return other.export(path, inner)
        if isinstance(path, io.TextIOBase):
            # Its write would raise TypeError at the first piece.
            raise InvalidArgumentError(
                "export writes bytes: pass a binary file (sys.stdout.buffer, open(path, 'wb')), not a text stream"
            )
        if not isinstance(path, (str, bytes, os.PathLike)) and callable(getattr(path, "write", None)):
            return self._export_to(path.write, collection, isinstance(path, io.RawIOBase))
        dest = _codec.cpath(path, "export path")
        coll = ffi.NULL if collection is None else _codec.cstr(collection, "collection name")
        buf = ffi.new("obj_bytes *")
        check(lib.obj_db_export(self._handle(), coll, dest, buf))
        return json.loads(_take(buf))

    def _export_to(self, write: Callable[[bytes], Any], collection: str | None, raw: bool) -> dict:
        """:meth:`export` to a file object's ``write``. ``raw``: it is a raw
        file (``io.RawIOBase``), whose ``write`` may take part of what it is
        given, or nothing (``None``, a non-blocking file that would block);
        any other writer's return value is not read."""
        coll = ffi.NULL if collection is None else _codec.cstr(collection, "collection name")
        raised: list[BaseException] = []

        # An exception in the callback stops the export and is raised below.
        @ffi.callback("int32_t(const uint8_t *, size_t, void *)", error=1, onerror=_raised_into(raised, 1))
        def sink(data: Any, n: int, _ctx: Any) -> int:
            piece = memoryview(ffi.buffer(data, n)[:])
            if not raw:  # a buffered file, or any other writer: it takes it all, or raises
                write(piece)
                return 0
            while piece:  # a raw file's write may take part of it
                done = write(piece)
                if type(done) is not int or done <= 0:  # would block: no busy loop, no silent loss
                    raise BlockingIOError(f"the export's write took {done!r} of {len(piece)} bytes")
                piece = piece[done:]
            return 0

        buf = ffi.new("obj_bytes *")
        st = lib.obj_db_export_to(self._handle(), coll, sink, ffi.NULL, buf)
        if raised:
            _take(buf)
            raise raised[0]
        check(st)
        return json.loads(_take(buf))

    def import_(self, path: str | os.PathLike, *, batch_size: int = 0) -> dict:
        """Loads a JSON-lines export: collections, indexes, documents at
        their ids. ``batch_size`` 0 is one transaction (all or nothing)."""
        src = _codec.cpath(path, "import path")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 0 <= batch_size <= _U64_MAX:
            raise InvalidArgumentError(f"batch_size must be an int from 0 to {_U64_MAX}, not {batch_size!r:.40}")
        self._no_nested_write()
        buf = ffi.new("obj_bytes *")
        check(lib.obj_db_import(self._handle(), src, batch_size, buf))
        return json.loads(_take(buf))

    def rekey(self, key: bytes | None = None, passphrase: str | bytes | None = None) -> None:
        """Rewrites the database under a new key (``key`` 32 bytes or a
        ``passphrase``), or decrypts it when both are None. Needs the only
        handle on the file and no open transaction (else BusyError)."""
        k, p = _key_args(key, passphrase)
        check(lib.obj_db_rekey(self._handle(), k, p))

    # -- diagnostics ------------------------------------------------------------
    def checkpoint(self) -> CheckpointResult:
        """Folds committed WAL frames into the main file (partially when a
        reader still needs older frames); once everything is folded and no
        reader needs the WAL, it is reset to its 64-byte header. Raises
        ObjError on a read-only handle or an I/O failure."""
        if self.read_only:
            raise InvalidArgumentError("checkpoint on a read-only database")
        self._no_nested_write()
        r = ffi.new("obj_checkpoint_result *")
        check(lib.obj_db_checkpoint(self._handle(), r))
        return CheckpointResult(r.frames_backfilled, r.pages_written, r.wal_frames, bool(r.complete))

    def stat(self) -> Stat:
        """Sizes and counters, with per-collection figures and indexes."""
        buf = ffi.new("obj_bytes *")
        check(lib.obj_db_stat_json(self._handle(), buf))
        raw = json.loads(_take(buf))
        out = []
        for c in raw["collections"]:
            out.append(CollectionStat(
                name=c["name"], doc_count=c["doc_count"], file_size_bytes=c["file_size_bytes"],
                indexes=[IndexStat(i["name"], i["kind"], list(i["key_paths"]), i["status"], i["entries"])
                         for i in c["indexes"]],
                kind=c["kind"],
            ))
        return Stat(out, raw.get("page_size", 0), raw.get("page_count", 0), raw.get("file_size", 0),
                    raw.get("wal_frames", 0), raw)

    def integrity_check(self) -> IntegrityReport:
        """Walks every page and tree. Raises IntegrityError listing the
        problems (CorruptionError if the walk itself fails)."""
        buf = ffi.new("obj_bytes *")
        check(lib.obj_db_integrity_check(self._handle(), buf))
        raw = json.loads(_take(buf) or b"{}")
        return IntegrityReport(raw.get("pages", 0), raw.get("free_pages", 0), raw.get("trees", 0),
                               raw.get("entries", 0), raw)

    def dump_raw(self, collection: str, max_records: int | None = None) -> Iterator[RawRecord]:
        """Low-level, type-erased dump of a collection's primary tree:
        a :class:`RawRecord` per stored record in id order (id, header with
        the schema version and the raw flag, payload = what follows the
        record header on disk: a raw collection's bytes as stored, or the
        binary document). A missing collection yields nothing."""
        # Checked here, at the call, not at the first next() of the generator.
        if not isinstance(collection, str):
            raise InvalidArgumentError(f"dump_raw takes a collection name (str), not {type(collection).__name__}")
        if max_records is not None and (
            not isinstance(max_records, int) or isinstance(max_records, bool) or max_records < 0
        ):
            raise InvalidArgumentError(f"max_records must be None or an int >= 0, not {max_records!r}")
        self._handle()
        return self._dump_raw(collection, max_records)

    def _dump_raw(self, collection: str, max_records: int | None) -> Iterator[RawRecord]:
        with self._own(self.read_transaction()) as tx:
            core, cname = tx._route(collection)
            cur = OutHandle.make(
                "obj_cursor **", lib.obj_cursor_free, lambda p: check(lib.obj_collection_dump(core._handle(), cname, p))
            )
            idp, buf = ffi.new("uint64_t *"), ffi.new("obj_bytes *")
            ver, done = ffi.new("uint32_t *"), ffi.new("bool *")
            n = 0
            try:
                while max_records is None or n < max_records:
                    st = lib.obj_dump_cursor_next(cur, idp, ver, buf, done)
                    if st:
                        raise tx._fail(st)  # (ClosedError once close() ended it)
                    if done[0]:
                        return
                    n += 1
                    yield _raw_record(idp[0], collection, ver[0], _take(buf))
            finally:
                ffi.release(cur)


def _raw_record(doc_id: int, collection: str, version: int, stored: bytes) -> RawRecord:
    """A stored record split at the end of its header (docs/format.md,
    "Document = header + payload": a format byte, the schema version as a
    varint, a flags byte whose bit 0 marks raw bytes)."""
    end = 1
    while stored[end] & 0x80:
        end += 1
    flags = stored[end + 1]
    return RawRecord(doc_id, DocumentHeader(collection, version, bool(flags & 1)), stored[end + 2:])


def _key_args(key: bytes | None, passphrase: str | bytes | None) -> tuple:
    """cffi pointers for an encryption key or passphrase (NULL when unused)."""
    if key is not None and passphrase is not None:
        raise InvalidArgumentError("give key or passphrase, not both")
    k = p = ffi.NULL
    if key is not None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
            raise InvalidArgumentError("key must be 32 bytes")
        k = ffi.new("uint8_t[32]", bytes(key))
    if passphrase is not None:
        if not isinstance(passphrase, (str, bytes, bytearray)):
            # (bytes(5) would be five NUL bytes, bytes([1, 2]) a passphrase)
            raise InvalidArgumentError(f"passphrase must be a str or bytes, not {type(passphrase).__name__}")
        if isinstance(passphrase, str):
            # UTF-8; a str that came from undecodable bytes (os.environ,
            # sys.argv) gives those bytes back. Never echoed in the error.
            try:
                raw = passphrase.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise InvalidArgumentError(
                    "passphrase is not valid UTF-8 (it holds a lone surrogate); give its bytes instead") from None
        else:
            raw = bytes(passphrase)
        if not raw or b"\0" in raw:
            raise InvalidArgumentError("passphrase must be non-empty and hold no NUL byte")
        p = ffi.new("char[]", raw)
    return k, p


def _raised_into(raised: list, result: Any) -> Callable[[Any, BaseException | None, Any], Any]:
    """A cffi ``onerror`` for a callback of a long C call: it keeps the
    exception in ``raised`` for the caller to raise once the call returns,
    and answers ``result`` to C (which then stops). cffi's onerror sees
    every exception, also a KeyboardInterrupt that Ctrl-C raises as the
    callback is entered, before any try block of its own could run."""

    def on_error(_type: Any, value: BaseException | None, _tb: Any) -> Any:
        raised.append(value if value is not None else _type())
        return result

    return on_error


def _take(buf: Any) -> bytes:
    data = ffi.buffer(buf.data, buf.len)[:] if buf.len else b""
    lib.obj_bytes_free(buf)
    return data

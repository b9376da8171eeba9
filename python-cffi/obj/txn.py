"""Transactions: :class:`ReadTxn` (a snapshot) and :class:`WriteTxn` (the
one writer), with the bytes, dict and typed surfaces overloaded by argument
type, plus typed collection handles (:class:`Collection`).

This module turns Python calls into C calls on one ``obj_txn``; it owns
the argument dispatch (class / instance / collection name), typed-schema
checks and attached-namespace routing. Encoding lives in ``_codec``,
schemas in ``document``, query building in ``query``.

A transaction object is meant for one thread at a time (the C library
serialises calls on one handle anyway); share the :class:`obj.Db` between
threads, not a transaction. Used from several threads at once it still
gives each call its own results: the C calls' output slots are per thread
(``_ffi.slots``), and a transaction ended by one thread is not freed under
another's call.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import operator
import re
import threading
import typing
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar, Union, overload

from . import _codec
from ._ffi import OutHandle, ffi, lib, fail, fork_generation, slots as _slots
from .document import Schema, declared, never_holds, schema_of
from .errors import ClosedError, InvalidArgumentError, NotFoundError, _no_coroutine, _plain_function

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .db import Db
    from .kv import KvNamespace
    from .query import Query

    # What a collection name takes: a dict (a document collection) or bytes
    # (a raw one). For type checkers only.
    _Bytes = Union[bytes, bytearray, memoryview]
    # A Mapping, so that a TypedDict is one (a document is a dict at run
    # time; another Mapping is refused there).
    _Doc = Mapping[str, Any]
    _Payload = Union[_Doc, bytes, bytearray, memoryview]

__all__ = ["ReadTxn", "WriteTxn", "Collection"]

T = TypeVar("T")
"""A document class's instances, for the static types of the calls that
take a class (``get(Order, id)`` is an ``Order | None``) or a collection
name (``Any``: dicts, or bytes). The overloads declare types only: which
path a call takes is decided at run time, as before."""

_new = ffi.new
_buffer = ffi.buffer
_bytes_free = lib.obj_bytes_free
_find_unique = lib.obj_find_unique
_get_many_plain = lib.obj_doc_get_many_plain
_find_unique_many = lib.obj_find_unique_many
_find_unique_many_plain = lib.obj_find_unique_many_plain
_next_batch_columns = lib.obj_cursor_next_batch_columns
_DOC = "documents"
# Most (collection, class) pairs a Db remembers as set up (Db._ensured,
# Db._declared_ok) before it starts over.
_ENSURED_MAX = 256
_RAW = "raw"
# An iteration reads ahead in batches that grow from FIRST_BATCH documents
# to MAX_BATCH, and to no more than about BATCH_BYTES of documents as the
# batches so far ran (each batch is held about three times at once: the C
# buffer, its copy and the decoded documents), so that large documents do
# not make an iteration hold thousands of them.
FIRST_BATCH = 32
BATCH_BYTES = 8 << 20
# The C library's words for a cursor used after a write in its transaction.
_STALE_CURSOR = (
    "a write call on the transaction since the cursor was opened ended it, even a call that failed "
    "(transaction changed under the cursor)"
)
MAX_BATCH = 4096
GET_MANY_CHUNK = 2048


def _cstr(s: str) -> bytes:
    if not isinstance(s, str):
        raise InvalidArgumentError(f"a collection or index name must be a str, not {type(s).__name__}")
    return _codec.cstr(s, "name")


def _id(doc_id: Any) -> int:
    if type(doc_id) is not int:
        # An int subclass or an integer type of another library (numpy's
        # int64 has __index__); never a bool, a float or a str.
        if isinstance(doc_id, bool) or not hasattr(type(doc_id), "__index__"):
            raise InvalidArgumentError(f"a document id must be an int, not {type(doc_id).__name__}")
        doc_id = operator.index(doc_id)
    if not 0 <= doc_id < 2**64:
        raise InvalidArgumentError(f"document id {doc_id} is outside 0 .. 2**64-1")
    return doc_id


def _ids(ids: list) -> list:
    """``ids`` (a list) checked as document ids: each an int (not a bool)
    in 0 .. 2**64-1. Two C-speed passes when all are plain ints in range."""
    if ids and (set(map(type, ids)) != _INT_ONLY or min(ids) < 0 or max(ids) >= 2**64):
        return [_id(i) for i in ids]
    return ids


_INT_ONLY = {int}

# Where a batch call's error names a key of its JSON array.
_KEY_AT = re.compile(r"keys_json\[(\d+)\]")


def _lookup_keys(s: Schema, index: Any, vals: list) -> list:
    """The key ``vals`` of a lookup on ``s``'s index ``index`` as a write
    stores them: an ``int`` for a field declared ``Decimal`` as that
    Decimal, and a bytes value for a field declared ``str`` decoded from
    UTF-8 (the pre-encoded form of such a key); ``vals`` is changed in
    place. Bytes for a field declared another type that is not bytes (an
    int, a date, ...) are an InvalidArgumentError: no document of the class
    can hold them there, and this package takes no other pre-encoded form;
    so is a value of another kind for a field declared str, int, float or
    bool (an int for a str field)."""
    if type(index) is not str:
        return vals
    for i, (field, tp) in enumerate(s.key_slot_types(index)):
        if i < len(vals) and _decimals_in(tp):
            v = vals[i]
            if type(v) is int:
                vals[i] = Decimal(v)
                continue
            if type(v) is list or type(v) is tuple:  # (a list field's whole-list key)
                vals[i] = type(v)(Decimal(x) if type(x) is int else x for x in v)
                continue
        if i >= len(vals):
            continue
        if not isinstance(vals[i], (bytes, bytearray, memoryview)):
            _refuse_another_scalar(s, index, field, tp, vals[i])
            continue
        if tp is str:
            try:
                vals[i] = bytes(vals[i]).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgumentError(
                    f"{s.cls.__qualname__} index {index!r}: the key value {bytes(vals[i])!r:.60} is given as "
                    f"bytes for a str field, and is not UTF-8"
                ) from None
        elif _holds_no_bytes(tp):
            raise InvalidArgumentError(
                f"{s.cls.__qualname__} index {index!r}: the key value {bytes(vals[i])!r:.60} is given as bytes "
                f"for field {field!r}, declared {tp.__name__}; pass the {tp.__name__} itself (bytes stand for a "
                f"key only of a str field, as its UTF-8)"
            )
    return vals


# For a field declared one of these scalar types, the kinds of value a
# lookup key may be: any other (an int for a str field, a str for an int
# one) matches no document of the class, so it is a mistake, not a miss.
_KEY_KINDS: dict[Any, tuple] = {str: (str,), int: (int, float), float: (int, float), bool: (bool, int)}


def _refuse_another_scalar(s: Schema, index: str, field: str, tp: Any, v: Any) -> None:
    """InvalidArgumentError when key value ``v`` (not bytes) cannot be
    held by ``field``, declared the scalar type ``tp``; None (an Optional
    field's) and every other declared type pass."""
    kinds = _KEY_KINDS.get(tp)
    if kinds is None or v is None or isinstance(v, kinds):
        return
    raise InvalidArgumentError(
        f"{s.cls.__qualname__} index {index!r}: the key value {v!r:.60} ({type(v).__name__}) is given for "
        f"field {field!r}, declared {tp.__name__}: no document of the class holds it there"
    )


def _decimals_in(tp: Any) -> bool:
    """Whether a field declared ``tp`` holds a Decimal, or a list, tuple
    or set of them (whose elements an index keys)."""
    if tp is Decimal:
        return True
    args = typing.get_args(tp)
    return typing.get_origin(tp) in (list, tuple, set, frozenset) and bool(args) and \
        all(a is Decimal or a is Ellipsis for a in args)


# Field types whose values are never bytes (bool is an int, datetime a date).
_NOT_BYTES = (int, float, _dt.date, _dt.time, uuid.UUID, Decimal)


def _holds_no_bytes(tp: Any) -> bool:
    """Whether a field declared ``tp`` can never hold bytes: a number, a
    date or time, a UUID, a Decimal, or an Enum none of whose values are
    bytes. Any other declaration (Any, object, a union, an abstract type)
    may, and is left alone."""
    return never_holds(tp, _NOT_BYTES, (bytes, bytearray))


def _payload(b: Any) -> bytes:
    if type(b) is bytes:
        return b
    if isinstance(b, (bytes, bytearray, memoryview)):
        return bytes(b)
    raise InvalidArgumentError(f"raw payloads are bytes, bytearray or memoryview, not {type(b).__name__}")


def _declared_hint(e: NotFoundError, s: Schema | None, index: Any, attached: bool = False) -> NotFoundError:
    """``e`` with how a declared index gets built, when ``e`` is that the
    file lacks ``index`` and the class of ``s`` declares it: an index added
    to a class after its documents were written exists only once something
    builds it, which an attached file (never written) leaves to a writable
    handle of its own."""
    if s is None or f"index {json.dumps(index)}" not in str(e) or index not in {sp["name"] for sp in s.index_specs()}:
        return e
    if attached:
        ns, _, coll = s.collection.partition(".")
        return NotFoundError(
            f"{e}: {s.cls.__name__} declares it, but the file attached as {ns!r} does not have it yet, and an "
            f"attached file is only read: a writable handle of that file builds it (the first write or lookup "
            f"there of a class of collection {coll!r} that declares it)")
    return NotFoundError(
        f"{e}: {s.cls.__name__} declares it, but this file does not have it yet; the class's first "
        f"write builds it, and so do db.find_unique, db.query and db.index_range of the class on a "
        f"writable handle (outside a transaction)")


def _undeclared_index(s: Schema | None, index: Any, coll: str) -> None:
    """For an index that ``s``'s class does not declare, on a collection
    the file does not have yet: the NotFoundError the same call raises
    once the collection exists (a misspelt name must not pass as "nothing
    found" while the file is empty)."""
    if s is not None and index not in {sp["name"] for sp in s.index_specs()}:
        raise NotFoundError(f"not found: index {json.dumps(index)} of collection {json.dumps(coll)}")


def _index_spec_json(spec: dict) -> bytes:
    """An index spec as the C calls take it. (Not ASCII-escaped: a lone
    surrogate in a name or path is refused here, by name, rather than as a
    broken escape in C's JSON.)"""
    return _codec.utf8(json.dumps(spec, ensure_ascii=False), "index spec")


def _index_request(db: Any, what: Any, name: str, fields: Sequence[str] | str, kind: str) -> tuple[str, dict]:
    """``(collection name, spec)`` of a ``create_index`` call on ``db``
    (a class's shape checked against the one ``db`` knows)."""
    if type(what) is str:
        coll = what
    else:
        s = schema_of(what)
        if s is None:
            raise _not_document(what)
        db._check_shape(s)
        coll = s.collection
    fields = [fields] if isinstance(fields, str) else _codec.listed(fields, "create_index's fields")
    return coll, {"name": name, "kind": kind, "fields": list(fields)}


def _not_document(x: Any) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{x!r:.60} is not an @obj.document class or instance; pass a document, or a collection "
        f"name (str) followed by a dict (document) or bytes (raw)"
    )


def _the_rows(batch: list) -> tuple[list]:
    """The list a batch of rows is iterated as: itself."""
    return (batch,)


def _the_columns(batch: list) -> list:
    """The lists a batch of columns is iterated as: each column."""
    return batch


class _HeldBatch:
    """The batch an iteration of a transaction is consuming (see
    ``_Core._c_batches``)."""

    __slots__ = ("batch", "lists", "__weakref__")

    def __init__(self, lists: Callable[[Any], Iterable[list]]) -> None:
        self.batch: Any = None
        self.lists = lists

    def drop(self) -> None:
        b, self.batch = self.batch, None
        if b is not None:
            for part in self.lists(b):
                part.clear()


class _Core:
    """The C calls of one transaction handle (no dispatch)."""

    def __init__(self, db: Db, handle: Any, write: bool) -> None:
        self._db = db
        self._h = handle
        self._write = write
        self._attached: dict[str, ReadTxn] = {}
        self._ensured: set = set()
        self._dropped: set = set()  # collections whose declared indexes this txn may have dropped (_set_up_again)
        self._writes = 0  # write calls so far, failed ones too (see _wcall)
        # Held by a write call and by an iteration opening its cursor (see
        # _resuming): threads sharing the transaction count writes exactly.
        # Reentrant: a finaliser or signal handler that writes in the
        # transaction may run while this thread holds it.
        self._wlock = threading.RLock()
        self._forks = fork_generation[0]  # the process that began it (see _serialised)
        self._held: weakref.WeakSet[_HeldBatch] | None = None  # see _c_batches
        self._ended_by_close = False  # rolled back by Db.close()
        self._commit_failed = False  # ended by a commit that raised (nothing applied but an fsync's)
        # The file's catalog version in this snapshot (trees created or
        # dropped over its life). The Db's caches of what collections are
        # (kinds, typed set-up) hold for one version: a newer one, from
        # another handle or process, empties them (Db._at_catalog); a
        # transaction at another version keeps the kinds it learns to itself
        # (_kc), so that an older snapshot never caches its kinds where newer
        # transactions look, nor reads theirs.
        self._cat = self._c_catalog_version()
        with db._cat_lock:
            if self._cat != db._cat:
                db._at_catalog(self._cat, write)
            self._kc = db._kinds if self._cat == db._cat else {}

    # The C calls' output slots are the calling thread's (_ffi.slots), not
    # the transaction's: a transaction used from two threads at once (a
    # misuse: the C library serialises the calls) still gives each call its
    # own results.

    # -- lifecycle ----------------------------------------------------------
    def _closed_error(self) -> ClosedError:
        """What using this transaction raises once Db.close() rolled it back."""
        ended = "it was rolled back" if self._write else "its snapshot was released"
        # An attached file is closed by its Db's close: name that one.
        ns, parent = getattr(self._db, "_attached_as", (None, None))
        what = f"{self._db.path!r}" if ns is None else f"{parent!r} (with {self._db.path!r} attached as {ns!r})"
        return ClosedError(f"database {what} was closed while this transaction was open: {ended}")

    def _fail(self, st: int) -> Exception:
        """The error of a call on this transaction that returned status
        ``st``: ClosedError once Db.close() has rolled the transaction back
        (a call racing the close finds it rolled back), else the library's."""
        return self._closed_error() if self._ended_by_close else fail(st)

    def _check(self, st: int) -> None:
        """:func:`check` for a call on this transaction (see :meth:`_fail`)."""
        if st:
            raise self._fail(st)

    def _handle(self) -> Any:
        h = self._h
        if h is None:
            if self._ended_by_close:
                raise self._closed_error()
            how = "ended by a failed commit" if self._commit_failed else "finished"
            raise InvalidArgumentError(f"transaction already {how}")
        return h

    def _serialised(self) -> contextlib.AbstractContextManager[Any]:
        """:attr:`_wlock`, but no lock in a child of fork(): a thread of the
        parent may have held it at the fork, and the child's copy would
        never be released. The C library refuses the child's call on the
        parent's transaction with the fork error, without waiting."""
        return self._wlock if self._forks == fork_generation[0] else contextlib.nullcontext()

    def _wcall(self, fn: Callable[..., int], *args: Any) -> int:
        """``fn(handle, *args)``, a write call of the C library; its status.
        A write call ends the transaction's cursors in C, even one that
        fails; counting them lets an iteration see it at its next step
        (see :meth:`_resuming`), not after the rows Python already holds
        from the cursor's batch."""
        with self._serialised():
            self._writes += 1
            return fn(self._handle(), *args)

    def _resuming(self, query_js: bytes, limit: int | None,
                  rows_of: Callable[[bytes, int | None], tuple[Iterator[Any], Callable[[], None]]]) -> Iterator[Any]:
        """The rows of a query of this write transaction (each starting with
        its document id), from ``rows_of(query, limit)``. A write call on
        the transaction ends the C cursor, which may have read ahead; the
        rows already fetched past the last one yielded are dropped then.
        A query that reads in id order (no sort, no index range, and a
        plan that scans) goes on after the last id it yielded, reading the
        transaction as it now is: a document the loop updated or deleted
        further on is read as written, or not at all; one inserted with a
        greater id is read too. Any other query raises
        ``InvalidArgumentError`` at its first step after the write (the
        order it reads in may have changed under it).

        The write count is read as the C cursor opens (its first row is
        read under the lock a write call holds): a write another thread
        began before would otherwise end a cursor that took its count as
        already seen."""

        def opened(q: bytes, lim: int | None) -> tuple[int, Iterator[Any], Callable[[], None]]:
            with self._serialised():
                while True:
                    at = self._writes
                    rows, close = rows_of(q, lim)
                    try:
                        first = list(islice(rows, 1))
                    except InvalidArgumentError:
                        close()
                        if self._writes == at:
                            raise
                        # A write on this thread (a finaliser run by the
                        # garbage collector) ended the cursor as it opened:
                        # nothing was given yet, open it again.
                        continue
                    return at, chain(first, rows), close

        at, rows, close = opened(query_js, limit)
        q: dict | None = None  # the query, parsed at the first write
        in_id_order: bool | None = None  # its plan's order, as the cursor began
        last: int | None = None
        given = 0
        try:
            while True:
                try:
                    r = next(rows)
                except StopIteration:
                    return
                except InvalidArgumentError:
                    if self._writes == at:
                        raise
                    # (the C cursor, reading its next batch, met the write)
                if in_id_order is None:
                    # Decided before anything is written: a write (an index
                    # dropped) may change the plan a new cursor would take.
                    q = json.loads(query_js)
                    in_id_order = not q.get("sort") and q.get("index") is None and (
                        "filter" not in q or q.get("after_id") is not None or self._scans(query_js))
                if self._writes == at:
                    if self._h is None:
                        # Committed or rolled back since: the rows read ahead
                        # are not to be given (a rolled-back write's least of all).
                        self._handle()
                    last = r[0]
                    given += 1
                    yield r
                    continue
                close()
                if not in_id_order or q is None:
                    raise InvalidArgumentError(_STALE_CURSOR)
                again = dict(q)
                if given:  # the offset is behind; the limit counts what is left
                    again.pop("offset", None)
                    again["after_id"] = last
                    if again.get("limit") is not None:
                        again["limit"] = max(again["limit"] - given, 0)
                # A first batch of one row, growing: a loop that writes at
                # every row must not read a batch ahead for each.
                at, rows, close = opened(json.dumps(again).encode(), 1)
        finally:
            close()

    def _scans(self, query_js: bytes) -> bool:
        """Whether the query's plan reads the collection in id order."""
        plan = self._c_explain(query_js)
        return str(plan.get("plan", "")).startswith("SCAN")

    # Ending a transaction ends it in C at once (commit or rollback) but
    # leaves freeing the handle to its last reference (ffi.gc): another
    # thread may still be inside a call on it (a misuse, which must not
    # free memory under that call; the call finds the transaction finished).
    def _finish(self, commit: bool) -> None:
        h = self._handle()
        try:
            st = lib.obj_txn_commit(h) if commit else lib.obj_txn_rollback(h)
            if st:
                self._commit_failed = commit
                raise self._fail(st)
        finally:
            self._h = None
            del h  # (not kept by the frame of a raised error)
            self._drop_held_batches()
            self._end_attached()

    def _abandon(self) -> None:
        """Ends the transaction (rolling back a write) without raising."""
        h = self._h
        if h is not None:
            self._h = None
            lib.obj_txn_rollback(h)  # ends it now (a write's lock goes) whoever else holds the handle
            del h
        self._drop_held_batches()
        self._end_attached()

    def _drop_held_batches(self) -> None:
        """Empties the batch each open iteration holds, so that its next
        step fetches and raises (the transaction has ended) instead of
        yielding the rows it read ahead."""
        held = self._held
        if held:
            for b in list(held):
                b.drop()

    def _end_by_close(self) -> None:
        """Ends the transaction because Db.close() ran: its later use (and
        that of its attached snapshots) raises ClosedError."""
        self._ended_by_close = True
        self._abandon()

    def _end_attached(self) -> None:
        """Ends the snapshots of attached files this transaction took when
        it began (a detached file nobody reads any more then closes)."""
        snaps = self._attached
        if snaps:
            self._attached = {}
            for t in snaps.values():
                try:
                    # (ended by Db.close(): their next call says so too)
                    t._end_by_close() if self._ended_by_close else t._abandon()
                finally:
                    self._db._attached_done(t._db)

    @property
    def finished(self) -> bool:
        """Whether the transaction was committed, rolled back or closed."""
        return self._h is None

    def __repr__(self) -> str:
        return f"<obj.{type(self).__name__} on {self._db.path!r}{' finished' if self._h is None else ''}>"

    # -- C calls: documents --------------------------------------------------
    def _c_doc_get(self, coll: bytes, doc_id: int) -> tuple[int, bytes] | None:
        sl = _slots
        buf = sl.buf
        st = lib.obj_doc_get(self._handle(), coll, doc_id, buf, sl.ver, sl.found)
        if st:
            raise self._fail(st)
        if not sl.found[0]:
            return None
        data = _buffer(buf.data, buf.len)[:]
        _bytes_free(buf)
        return sl.ver[0], data

    def _c_doc_insert(self, coll: bytes, js: bytes, version: int) -> int:
        out = _slots.u64
        st = self._wcall(lib.obj_doc_insert, coll, js, len(js), version, out)
        if st:
            raise self._fail(st)
        return out[0]

    def _c_doc_insert_many(self, coll: bytes, js: bytes, n: int, version: int) -> list[int]:
        """Inserts the ``n`` documents of the JSON array ``js``."""
        return self._c_doc_insert_batch(lib.obj_doc_insert_many, coll, js, n, version)

    def _c_doc_insert_lines(self, coll: bytes, text: bytes, n: int, version: int) -> list[int]:
        """Inserts one document per line of ``text`` (``n`` lines): the
        engine checks that each line holds exactly one document."""
        return self._c_doc_insert_batch(lib.obj_doc_insert_lines, coll, text, n, version)

    def _c_doc_insert_batch(self, fn: Any, coll: bytes, data: bytes, n: int, version: int) -> list[int]:
        ids = _new("uint64_t[]", max(n, 1))
        cnt = _new("size_t *")
        st = self._wcall(fn, coll, data, len(data), version, ids, n, cnt)
        if st:
            raise self._fail(st)
        return ffi.unpack(ids, cnt[0])

    def _c_doc_upsert(self, coll: bytes, doc_id: int, js: bytes, version: int) -> bool:
        """Writes a document at ``doc_id``; True when it was created (no
        document was there)."""
        created = _slots.found
        st = self._wcall(lib.obj_doc_upsert, coll, doc_id, js, len(js), version, created)
        if st:
            raise self._fail(st)
        return bool(created[0])

    def _c_doc_replace(self, coll: bytes, doc_id: int, js: bytes, version: int) -> None:
        self._check(self._wcall(lib.obj_doc_replace, coll, doc_id, js, len(js), version))

    def _c_raise_next_id(self, coll: bytes, next_id: int) -> None:
        """No id below ``next_id`` is ever assigned in ``coll`` (a load that
        keeps a dump's ids keeps its deleted ones unused too)."""
        self._check(self._wcall(lib.obj_collection_raise_next_id, coll, next_id))

    def _c_doc_delete(self, coll: bytes, doc_id: int) -> bool:
        found = _slots.found
        st = self._wcall(lib.obj_doc_delete, coll, doc_id, found)
        if st:
            raise self._fail(st)
        return bool(found[0])

    def _c_get_many(self, coll: bytes, ids: Sequence[int]) -> list:
        # In chunks: bounded buffers, and each JSON array stays cache-sized.
        n = len(ids)
        if n > GET_MANY_CHUNK:
            out: list = []
            for k in range(0, n, GET_MANY_CHUNK):
                out += self._c_get_many(coll, ids[k:k + GET_MANY_CHUNK])
            return out
        try:
            arr = _new("uint64_t[]", ids) if n else _new("uint64_t[]", 1)
        except (TypeError, OverflowError):
            arr = _new("uint64_t[]", [_id(i) for i in ids])
        self._check(lib.obj_doc_get_many(self._handle(), coll, arr, n, _slots.buf))
        return _codec.loads_batch(self._take_bytes())

    def _c_raw_insert(self, coll: bytes, data: bytes) -> int:
        out = _slots.u64
        st = self._wcall(lib.obj_raw_insert, coll, data, len(data), out)
        if st:
            raise self._fail(st)
        return out[0]

    def _c_raw_get(self, coll: bytes, doc_id: int) -> bytes | None:
        sl = _slots
        buf, found = sl.buf, sl.found
        st = lib.obj_raw_get(self._handle(), coll, doc_id, buf, found)
        if st:
            raise self._fail(st)
        if not found[0]:
            return None
        data = _buffer(buf.data, buf.len)[:] if buf.len else b""
        _bytes_free(buf)
        return data

    def _c_raw_upsert(self, coll: bytes, doc_id: int, data: bytes) -> bool:
        """As :meth:`_c_doc_upsert`, for raw bytes."""
        created = _slots.found
        st = self._wcall(lib.obj_raw_upsert, coll, doc_id, data, len(data), created)
        if st:
            raise self._fail(st)
        return bool(created[0])

    def _c_get_many_plain(self, coll: bytes, ids: Sequence[int]) -> list:
        """Documents (or None) for ``ids``, without schema versions."""
        n = len(ids)
        if n > GET_MANY_CHUNK:
            out: list = []
            for k in range(0, n, GET_MANY_CHUNK):
                out += self._c_get_many_plain(coll, ids[k:k + GET_MANY_CHUNK])
            return out
        try:
            arr = _new("uint64_t[]", ids) if n else _new("uint64_t[]", 1)
        except (TypeError, OverflowError):
            arr = _new("uint64_t[]", [_id(i) for i in ids])
        st = _get_many_plain(self._handle(), coll, arr, n, _slots.buf)
        if st:
            raise self._fail(st)
        return _codec.loads_batch(self._take_bytes())

    def _keyed_batches(self, keys: list, call: Callable[[bytes, Any], int]) -> Iterator[Any]:
        """The decoded answers of ``call(keys_json, out_buf)`` (a C call
        answering a JSON array for a JSON array of keys), one chunk of
        GET_MANY_CHUNK keys at a time."""
        for k in range(0, len(keys), GET_MANY_CHUNK):
            js = _codec.dumps(keys[k:k + GET_MANY_CHUNK])
            st = call(js, _slots.buf)
            if st:
                e = self._fail(st)
                if k and type(e) is InvalidArgumentError:
                    # The library counts from the chunk's start; say where
                    # the key is in the caller's list.
                    e = InvalidArgumentError(
                        _KEY_AT.sub(lambda m, k=k: f"keys_json[{int(m.group(1)) + k}]", str(e), count=1), status=st)
                raise e
            yield _codec.loads_batch(self._take_bytes())

    def _take_bytes(self) -> bytes:
        """The bytes the last call of this thread left in its buf slot."""
        buf = _slots.buf
        data = _buffer(buf.data, buf.len)[:] if buf.len else b""
        _bytes_free(buf)
        return data

    def _take_json(self) -> Any:
        return _codec.loads(self._take_bytes())

    # -- C calls: collections, indexes, queries ---------------------------
    def _c_catalog_version(self) -> int:
        """The catalog version this transaction sees (its own creates and
        drops counted)."""
        out = _slots.u64
        self._check(lib.obj_txn_catalog_version(self._handle(), out))
        return out[0]

    def _c_coll_info(self, coll: bytes) -> dict | None:
        st = lib.obj_collection_info(self._handle(), coll, _slots.buf)
        if st == 5:  # OBJ_NOT_FOUND
            return None
        if st:
            raise self._fail(st)
        return json.loads(self._take_bytes())

    def _c_coll_count(self, coll: bytes) -> int:
        out = _slots.u64
        self._check(lib.obj_collection_count(self._handle(), coll, out))
        return out[0]

    def _c_index_create(self, coll: bytes, spec: dict) -> None:
        js = _index_spec_json(spec)
        self._check(self._wcall(lib.obj_index_create, coll, js, len(js)))

    def _c_find_unique(self, coll: bytes, index: bytes, values_js: bytes,
                       versioned: bool = True) -> tuple[int, int, Any] | None:
        sl = _slots
        ver = sl.ver if versioned else ffi.NULL
        st = _find_unique(self._handle(), coll, index, values_js, len(values_js), sl.u64, sl.buf, ver, sl.found)
        if st:
            raise self._fail(st)
        if not sl.found[0]:
            return None
        return sl.u64[0], (sl.ver[0] if versioned else 0), self._take_json()

    def _c_query_cursor(self, query_js: bytes) -> Any:
        """A cursor over a query's results (see ``OutHandle`` for why the
        handle is taken through one)."""
        return OutHandle.make(
            "obj_cursor **",
            lib.obj_cursor_free,
            lambda p: self._check(lib.obj_query(self._handle(), query_js, len(query_js), p)),
        )

    def _c_batches(self, query_js: bytes, limit: int | None, fetch: Any, ended: Any,
                   lists: Callable[[Any], Iterable[list]]) -> Iterator[Any]:
        """Runs a query and yields each decoded batch that ``fetch(cursor,
        size, out)`` writes, until ``ended(batch)``; batches grow from
        ``FIRST_BATCH`` (or ``limit``) to ``MAX_BATCH``, each held to about
        ``BATCH_BYTES`` by the size of the one before. Nothing runs before
        the first ``next``. The batch in use stays known to a read
        transaction (``lists(batch)``: the lists its consumer iterates),
        which empties them when it ends (see :meth:`_drop_held_batches`)."""
        cur = self._c_query_cursor(query_js)
        buf = _new("obj_bytes *")
        loads = _codec.loads_batch
        batch = FIRST_BATCH if limit is None else max(1, min(limit, MAX_BATCH))
        held = _HeldBatch(lists)
        if not self._write:  # (a write transaction's iterations check for themselves: _resuming)
            if self._held is None:
                self._held = weakref.WeakSet()
            self._held.add(held)
        try:
            while True:
                st = fetch(cur, batch, buf)
                if st:
                    raise self._fail(st)
                data = _buffer(buf.data, buf.len)[:]
                _bytes_free(buf)
                decoded = loads(data)
                if ended(decoded):
                    return
                held.batch = decoded
                yield decoded
                per_doc = len(data) // batch + 1  # (a short batch was the last)
                batch = max(1, min(batch * 4, MAX_BATCH, BATCH_BYTES // per_doc))
        finally:
            ffi.release(cur)

    def _c_rows(self, query_js: bytes, limit: int | None = None) -> Iterator[list]:
        """Streams ``[id, version, doc]`` rows of a query, in batches."""

        def rows_of(q: bytes, lim: int | None) -> tuple[Iterator[list], Callable[[], None]]:
            batches = self._c_batches(q, lim, lib.obj_cursor_next_batch, operator.not_, _the_rows)
            return chain.from_iterable(batches), batches.close

        if self._write:
            return self._resuming(query_js, limit, rows_of)
        return rows_of(query_js, limit)[0]

    def _c_columns(self, query_js: bytes, limit: int | None, versions: bool) -> Iterator[list]:
        """Streams a query's results in batches of columns: ``[docs, ids]``
        (``[docs, ids, versions]`` with ``versions``), the lists in the
        same order. Nothing runs before the first ``next``."""

        def fetch(cur: Any, size: int, buf: Any) -> int:
            return _next_batch_columns(cur, size, versions, buf)

        return self._c_batches(query_js, limit, fetch, lambda cols: not cols[1], _the_columns)

    def _c_pairs(self, query_js: bytes, limit: int | None = None) -> Iterator[tuple[int, Any]]:
        """Streams ``(id, doc)`` of a query. The pairs come from ``zip`` over
        each batch's columns, chained: no Python code runs per document."""
        def pairs_of(q: bytes, lim: int | None) -> tuple[Iterator[tuple[int, Any]], Callable[[], None]]:
            columns = self._c_columns(q, lim, False)
            return chain.from_iterable(zip(c[1], c[0]) for c in columns), columns.close

        if self._write:
            return self._resuming(query_js, limit, pairs_of)
        return pairs_of(query_js, limit)[0]

    def _c_count(self, query_js: bytes) -> int:
        out = _slots.u64
        self._check(lib.obj_query_count(self._handle(), query_js, len(query_js), out))
        return out[0]

    def _c_explain(self, query_js: bytes) -> dict:
        self._check(lib.obj_query_explain(self._handle(), query_js, len(query_js), _slots.buf))
        return json.loads(self._take_bytes())

    def _c_json_rows(self, query_js: bytes) -> Iterator[tuple[int, int, bytes]]:
        """Streams ``(id, version, document JSON text)`` one per call (for
        tools that pass the text on unparsed)."""
        cur = self._c_query_cursor(query_js)
        idp, buf, ver, done = _new("uint64_t *"), _new("obj_bytes *"), _new("uint32_t *"), _new("bool *")
        try:
            while True:
                st = lib.obj_cursor_next(cur, idp, buf, ver, done)
                if st:
                    raise self._fail(st)
                if done[0]:
                    return
                data = _buffer(buf.data, buf.len)[:]
                _bytes_free(buf)
                yield idp[0], ver[0], data
        finally:
            ffi.release(cur)


class ReadTxn(_Core):
    """A read transaction: a consistent snapshot of the last commit. Use as
    a context manager (``with db.read_transaction() as tx:``) or call
    :meth:`close`. Never blocks, and is never blocked by, the writer.

    Read methods are overloaded by their first argument:

    * an ``@obj.document`` class -> typed documents (instances of it);
    * a collection name ``str`` -> dicts for document collections, bytes for
      raw collections (``"ns.collection"`` reads an attached file).
    """

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> ReadTxn:
        self._handle()  # a finished transaction cannot be entered again
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        try:
            if self._h is not None:
                if et is None:
                    self.close()
                else:
                    self._abandon()
        except BaseException:
            self._abandon()  # (a Ctrl-C must not leave the snapshot open)
            raise

    def close(self) -> None:
        """Ends the snapshot (idempotent)."""
        if self._h is not None:
            self._finish(commit=not self._write and True)

    def __del__(self) -> None:  # a leaked snapshot must not pin the WAL forever
        try:
            self._abandon()
        except Exception:  # noqa: BLE001
            pass

    # -- routing -------------------------------------------------------------
    def _route(self, name: str) -> tuple[_Core, bytes]:
        """(transaction, C name) for a collection name, following attached
        namespaces (``"ns.coll"``)."""
        db = self._db
        if type(name) is str and "." in name:
            ns, _, rest = name.partition(".")
            # The namespaces attached when this transaction began, each read
            # from the snapshot taken then (Db._begin_attached).
            t = self._attached.get(ns) if self._attached else None
            if t is not None:
                if name not in self._unshadowed:
                    self._check_unshadowed(name, ns, t, rest)
                return t, t._db._cname(rest)
            cname = db._cname(name)
            if self._kind(self, cname) is None:  # a dotted name of this file's own is fine
                raise NotFoundError(
                    f"no attached namespace {ns!r} (and no collection {name!r} in this file); "
                    f"attach it first: db.attach(path, {ns!r})"
                )
            return self, cname
        return self, db._cname(name)

    @property
    def _unshadowed(self) -> set:
        """Attached names this transaction found no local collection for
        (its snapshot cannot gain one: a write there is refused)."""
        try:
            return self.__dict__["_unsh"]
        except KeyError:
            u = self.__dict__["_unsh"] = set()
            return u

    def _check_unshadowed(self, name: str, ns: str, attached: Any, rest: str) -> None:
        # attach() refuses a namespace that would hide a local collection,
        # but one can appear later (a write transaction that began before
        # the attach, another handle or process): a read could then mean
        # either, and is refused rather than answered from the attached file.
        try:
            local = self._kind(self, self._db._cname(name))
        except InvalidArgumentError:  # not a name a collection of this file can have
            local = None
        if local is not None:
            there = self._kind(attached, attached._db._cname(rest)) is not None
            where = ("is both in this database and in the database attached as" if there
                     else "of this database is shadowed by the database attached as")
            raise InvalidArgumentError(
                f"collection {name!r} {where} {ns!r}; detach {ns!r} to read the local one"
            )
        self._unshadowed.add(name)

    def _ns_schema(self, name: str, kind: str | None) -> Schema | None:
        """For a read addressed by name in an attached namespace: the schema
        registered under the namespaced name to decode it with, None for a
        raw collection (bytes); InvalidArgumentError when a document
        collection has no class registered there, as the reference says
        ("an unregistered namespaced read fails loud")."""
        if kind == _RAW:
            return None
        db = self._db
        mine = [s for (c, _v), s in list(db._shapes.items()) if c == name]  # classes this Db already uses
        cands = mine or declared(name)
        if not cands:
            ns = name.partition(".")[0]
            raise InvalidArgumentError(
                f"{name!r} is in the attached namespace {ns!r}: a namespaced read needs its schema registered "
                f"under the namespaced name; declare @obj.document(collection={name!r}) on a dataclass matching "
                f"that file's documents (then db.all({name!r}) or db.all(ThatClass) decodes to it), or read a "
                f"raw collection as bytes"
            )
        s = max(reversed(cands), key=lambda x: x.version)  # the newest version; the latest declared on a tie
        db._check_shape(s)
        return s

    def _ns_class(self, core: _Core, cname: bytes, name: str) -> type | None:
        """The class to read an attached namespace's document collection
        with, or None (not attached, absent or raw)."""
        if core is self:
            return None
        kind = self._kind(core, cname)
        if kind is None:
            return None
        s = self._ns_schema(name, kind)
        return None if s is None else s.cls

    def _kind(self, core: _Core, cname: bytes) -> str | None:
        """The kind of a collection ("documents", "raw") or None if absent;
        cached on the Db once it exists."""
        cache = core._kc
        k = cache.get(cname)
        if k is None:
            info = core._c_coll_info(cname)
            if info is None:
                return None
            k = info.get("kind", _DOC)
            if core is self and self._write:
                self._new_kinds[cname] = k
            else:
                cache[cname] = k
        return k

    @property
    def _new_kinds(self) -> dict:
        try:
            return self.__dict__["_nk"]
        except KeyError:
            nk = self.__dict__["_nk"] = {}
            return nk

    def _schema(self, cls_or_doc: Any) -> Schema:
        s = schema_of(cls_or_doc)
        if s is None:
            raise _not_document(cls_or_doc)
        self._db._check_shape(s)
        return s

    # -- reads ------------------------------------------------------------------
    @overload
    def get(self, what: type[T], doc_id: int) -> T | None: ...
    @overload
    def get(self, what: str, doc_id: int) -> Any: ...

    def get(self, what: Any, doc_id: int) -> Any:
        """The document with id ``doc_id``, or None.

        ``get(Order, 7)`` -> ``Order``; ``get("events", 7)`` -> ``dict`` (or
        ``bytes`` for a raw collection)."""
        if type(doc_id) is not int or not 0 <= doc_id <= 0xFFFFFFFFFFFFFFFF:
            doc_id = _id(doc_id)
        if type(what) is str:
            db = self._db
            cname = db._names.get(what)
            if cname is None or "." in what:
                core, cname = self._route(what)
            else:
                core = self
            kind = self._kc.get(cname) if core is self else None
            if kind is None:
                kind = self._kind(core, cname)
                if kind is None:
                    return None
            if kind == _RAW:
                return core._c_raw_get(cname, doc_id)
            if core is not self:
                return self.get(self._ns_schema(what, kind).cls, doc_id)  # type: ignore[union-attr]
            sl = _slots
            buf, found = sl.buf, sl.found
            st = lib.obj_doc_get(core._handle(), cname, doc_id, buf, ffi.NULL, found)
            if st:
                raise self._fail(st)
            if not found[0]:
                return None
            data = _buffer(buf.data, buf.len)[:]
            _bytes_free(buf)
            return _codec.loads(data)
        s = self._schema(what)
        core, cname = self._route(s.collection)
        r = core._c_doc_get(cname, doc_id)
        if r is None:
            return None
        return s.decode_doc(doc_id, r[0], _codec.loads(r[1]))

    @overload
    def get_many(self, what: type[T], ids: Iterable[int]) -> list[T | None]: ...
    @overload
    def get_many(self, what: str, ids: Iterable[int]) -> list[Any]: ...

    def get_many(self, what: Any, ids: Iterable[int]) -> list[Any]:
        """Documents for many ids in one call; None where an id is absent."""
        ids = _ids(_codec.listed(ids, "get_many's ids"))
        if type(what) is str:
            core, cname = self._route(what)
            kind = self._kind(core, cname)
            if kind is None:
                return [None] * len(ids)
            if kind == _RAW:
                return [core._c_raw_get(cname, i) for i in ids]
            if core is not self:
                return self.get_many(self._ns_schema(what, kind).cls, ids)  # type: ignore[union-attr]
            return core._c_get_many_plain(cname, ids)
        s = self._schema(what)
        core, cname = self._route(s.collection)
        dd = s.decode_doc
        return [None if r is None else dd(i, r[0], r[1]) for i, r in zip(ids, core._c_get_many(cname, ids))]

    @overload
    def all(self, what: type[T]) -> Iterator[tuple[int, T]]: ...
    @overload
    def all(self, what: str) -> Iterator[tuple[int, Any]]: ...

    def all(self, what: Any) -> Iterator[tuple[int, Any]]:
        """Every document of a collection as ``(id, doc)``, in id order."""
        if type(what) is str:
            return self._iter_named(what)
        return self.query(what).iter()

    def iter_all(self, collection: str) -> Iterator[tuple[int, Any]]:
        """``(id, payload)`` for every document of ``collection`` in id
        order (bytes for raw collections, dicts for document collections)."""
        if type(collection) is not str:
            raise InvalidArgumentError("iter_all takes a collection name (str)")
        return self._iter_named(collection)

    def _iter_named(self, name: str) -> Iterator[tuple[int, Any]]:
        core, cname = self._route(name)
        if self._kind(core, cname) is None:
            return iter(())
        cls = self._ns_class(core, cname, name)
        if cls is not None:
            return self.query(cls).iter()
        q = b'{"collection":' + json.dumps(cname.decode()).encode() + b"}"
        return core._c_pairs(q)

    def count(self, what: Any) -> int:
        """Number of documents in a collection (0 if it does not exist)."""
        name = what if type(what) is str else self._schema(what).collection
        core, cname = self._route(name)
        if core._c_coll_info(cname) is None:
            return 0
        return core._c_coll_count(cname)

    count_all = count

    @overload
    def find_unique(self, what: type[T], index: str, *values: Any) -> T | None: ...
    @overload
    def find_unique(self, what: str, index: str, *values: Any) -> Any: ...

    def find_unique(self, what: Any, index: str, *values: Any) -> Any:
        """The document whose unique index ``index`` holds ``values`` (one
        per indexed field), or None."""
        if type(what) is str and type(index) is str and len(values) == 1 and type(values[0]) is not tuple:
            # The common dict lookup, with no detour: a known document
            # collection of this file, one key value, no schema version.
            db = self._db
            cname = db._names.get(what)
            if cname is not None and self._kc.get(cname) == _DOC and not (db._attached and "." in what):
                h = self._h
                if h is None:
                    self._handle()
                v = values[0]
                js = _codec.dumps_one_str(v) if type(v) is str else _codec.dumps([v])
                sl = _slots
                st = _find_unique(h, cname, _cstr(index), js, len(js), sl.u64, sl.buf, ffi.NULL, sl.found)
                if st:
                    raise self._fail(st)
                return self._take_json() if sl.found[0] else None
        r = self.find_unique_with_id(what, index, *values)
        return None if r is None else r[1]

    @overload
    def find_unique_many(self, what: type[T], index: str, keys: Iterable[Any]) -> list[T | None]: ...
    @overload
    def find_unique_many(self, what: str, index: str, keys: Iterable[Any]) -> list[Any]: ...

    def find_unique_many(self, what: Any, index: str, keys: Iterable[Any]) -> list[Any]:
        """:meth:`find_unique` for many keys in one call: the documents (None
        where no document has the key), in the order of ``keys``. A key is
        the index value, or a tuple of values for a composite index."""
        keys = _codec.listed(keys, "find_unique_many's keys")
        typed = type(what) is not str
        if not typed and not any(type(k) is tuple for k in keys):
            # One value per key (an index of one field): sent as it is, the
            # documents come back without ids to pick them from.
            plain = self._find_unique_many_plain(what, index, keys)
            if plain is not None:
                return plain
        keys = [list(k) if type(k) is tuple else [k] for k in keys]
        if typed:
            s = self._schema(what)
            keys = [_lookup_keys(s, index, k) for k in keys]
            core, cname = self._route(s.collection)
            if self._kind(core, cname) is None:
                _undeclared_index(s, index, s.collection)
        else:
            core, cname = self._route(what)
            if self._kind(core, cname) is None:
                return [None] * len(keys)
            cls = self._ns_class(core, cname, what)
            if cls is not None:
                return self.find_unique_many(cls, index, [tuple(k) for k in keys])
        iname = _cstr(index)
        out: list = []
        try:
            for rows in core._keyed_batches(
                    keys, lambda js, buf: _find_unique_many(core._handle(), cname, iname, js, len(js), typed, buf)):
                if typed:
                    dd = s.decode_doc
                    out += [None if r is None else dd(r[0], r[1], r[2]) for r in rows]
                else:
                    out += [None if r is None else r[1] for r in rows]
        except NotFoundError as e:
            raise _declared_hint(e, s if typed else None, index, core is not self) from None
        return out

    def _find_unique_many_plain(self, name: str, index: str, keys: list) -> list | None:
        """:meth:`find_unique_many` of dict documents by single values;
        None when the collection's documents are read through a class (an
        attached namespace's), which takes the general path."""
        core, cname = self._route(name)
        if self._kind(core, cname) is None:
            return [None] * len(keys)
        if self._ns_class(core, cname, name) is not None:
            return None
        iname = _cstr(index)
        out: list = []
        for docs in core._keyed_batches(
                keys, lambda js, buf: _find_unique_many_plain(core._handle(), cname, iname, js, len(js), buf)):
            out += docs
        return out

    @overload
    def find_unique_with_id(self, what: type[T], index: str, *values: Any) -> tuple[int, T] | None: ...
    @overload
    def find_unique_with_id(self, what: str, index: str, *values: Any) -> tuple[int, Any] | None: ...

    def find_unique_with_id(self, what: Any, index: str, *values: Any) -> tuple[int, Any] | None:
        """Like :meth:`find_unique` but returns ``(id, doc)``."""
        if not values:
            raise InvalidArgumentError("find_unique needs the value(s) of the index key")
        vals = list(values[0]) if len(values) == 1 and isinstance(values[0], tuple) else list(values)
        if type(what) is str:
            js = _codec.dumps(vals)
            core, cname = self._route(what)
            if self._kind(core, cname) is None:
                return None
            cls = self._ns_class(core, cname, what)
            if cls is not None:
                return self.find_unique_with_id(cls, index, *values)
            r = core._c_find_unique(cname, _cstr(index), js, versioned=False)
            return None if r is None else (r[0], r[2])
        s = self._schema(what)
        js = _codec.dumps(_lookup_keys(s, index, vals))
        core, cname = self._route(s.collection)
        try:
            r = core._c_find_unique(cname, _cstr(index), js)
        except NotFoundError as e:
            raise _declared_hint(e, s, index, core is not self) from None
        if r is None:
            if self._kind(core, cname) is None:
                _undeclared_index(s, index, s.collection)
            return None
        return r[0], s.decode_doc(r[0], r[1], r[2])

    @overload
    def index_range(self, what: type[T], index: str, lo: Any = None, hi: Any = None) -> Iterator[tuple[int, T]]: ...
    @overload
    def index_range(self, what: str, index: str, lo: Any = None, hi: Any = None) -> Iterator[tuple[int, Any]]: ...

    def index_range(self, what: Any, index: str, lo: Any = None, hi: Any = None) -> Iterator[tuple[int, Any]]:
        """``(id, doc)`` for documents whose ``index`` key is in ``[lo, hi)``
        in key order; ``lo == hi`` means equality; None = unbounded."""
        return self.query(what).index_range(index, lo, hi).iter()

    @overload
    def query(self, what: type[T]) -> Query[T]: ...
    @overload
    def query(self, what: str) -> Query[Any]: ...

    def query(self, what: Any) -> Query[Any]:
        """A query over a collection, read in this transaction."""
        from .query import Query

        return Query(self._db, what, txn=self)

    @overload
    def collection(self, what: type[T]) -> Collection[T]: ...
    @overload
    def collection(self, what: str) -> Collection[Any]: ...

    def collection(self, what: Any) -> Collection[Any]:
        """A handle binding a document class (or collection name) to this
        transaction."""
        return Collection(self, what)

    def explain(self, query: Query[Any]) -> str:
        """The engine's plan for ``query`` as text."""
        from .query import Query

        if not isinstance(query, Query):
            raise InvalidArgumentError(f"explain takes a query (db.query(...)), not {type(query).__name__}")
        return query._bind(self).explain()

    def kv(self, namespace: str) -> KvNamespace:
        """A key-value namespace read (and, in a write transaction, written)
        through this transaction."""
        from .kv import KvNamespace

        return KvNamespace(self._db, namespace, txn=self)

    def collections(self) -> list[str]:
        """Names of the collections, sorted."""
        self._check(lib.obj_collection_list(self._handle(), _slots.buf))
        return json.loads(self._take_bytes())

    def collection_info(self, name: str) -> dict | None:
        """The engine's description of a collection (kind, count, next_id,
        indexes), or None."""
        core, cname = self._route(name)
        return core._c_coll_info(cname)


class WriteTxn(ReadTxn):
    """The write transaction (one at a time per database). As a context
    manager it commits on a clean exit and rolls back when the block
    raises. Reads see its own uncommitted writes.

    Write methods are overloaded like the reads: a document instance (typed),
    or a collection name plus a dict (document) or bytes (raw).
    """

    def __enter__(self) -> WriteTxn:
        self._handle()  # a finished transaction cannot be entered again
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        try:
            if self._h is None:
                if et is None and self._ended_by_close:
                    self._handle()  # ClosedError: close() rolled the block's writes back
                return
            if et is None:
                self.commit()
            else:
                try:
                    self.rollback()
                except Exception:  # noqa: BLE001 - never mask the block's error
                    self._abandon()
        except BaseException:
            # A Ctrl-C (or another asynchronous exception) before the commit
            # reached C must not leave the transaction, and the file's write
            # lock, open after the block: it is rolled back.
            self._abandon()
            raise

    def commit(self) -> None:
        """Makes the writes durable (with the default sync mode) and ends
        the transaction. On error nothing of the transaction is applied,
        except when the fsync that makes it durable fails (an ``ObjError``
        that names the fsync, after which the ``Db`` is closed): the commit
        may or may not be on disk, which reopening the file tells."""
        after = self._c_catalog_version()  # what this commit makes (its own creates and drops counted)
        self._finish(commit=True)
        db = self._db
        with db._cat_lock:
            if after != self._cat:
                # It created or dropped collections or indexes itself: the
                # Db keeps only what this transaction learnt, which holds
                # for the catalog it leaves (a drop forgets what it knew of
                # the collection).
                db._at_catalog(after, True)
            if db._cat == after:
                if len(db._ensured) + len(self._ensured) > _ENSURED_MAX:
                    # A cache (a class set up again just checks again): kept
                    # from holding every class a long-running process ever
                    # defined (one made per call would be held for good).
                    db._ensured = set()
                db._ensured |= self._ensured
                db._kinds.update(self._new_kinds)

    def rollback(self) -> None:
        """Discards every change and ends the transaction. After a commit
        that raised it does nothing, so an error path may always call it:
        nothing of the transaction was applied, or, when the commit's fsync
        failed, its outcome is unknown, as the commit's error said."""
        if self._h is None and self._commit_failed:
            return
        self._finish(commit=False)

    def close(self) -> None:
        """Rolls back if still open."""
        if self._h is not None:
            self.rollback()

    def _wname(self, name: str) -> bytes:
        return self._db._wname(name, self._attached)

    def _ensure(self, s: Schema) -> bytes:
        """The C name of a typed collection, creating it and its declared
        indexes on first use."""
        cname = self._wname(s.collection)
        if self._needs_setup(s):
            self._check(self._wcall(lib.obj_collection_create, cname, 0))
            specs = s.index_specs()
            info = self._c_coll_info(cname) if specs and s.version > 0 else None
            had = {i.get("name") for i in info.get("indexes", ())} if info else set()
            # Documents are migrated before the new indexes are built: an
            # error in either (a migration giving two documents one unique
            # key) leaves an index missing, so that the next use tries
            # again, rather than an index that misses the documents the
            # rest of the migration would have rewritten.
            if info and info.get("count") and any(sp["name"] not in had for sp in specs) and (
                    s.history or hasattr(s.cls, "migrate")):
                self._migrate_older(s, cname)
            for spec in specs:
                self._c_index_create(cname, spec)
            self._ensured.add((s.collection, s.cls))
        return cname

    def _needs_setup(self, s: Schema) -> bool:
        """Whether :meth:`_ensure` has yet to make sure of typed collection
        ``s`` and its declared indexes in this transaction."""
        key = (s.collection, s.cls)
        return key not in self._ensured and (key not in self._db._ensured or s.collection in self._dropped)

    def migrate_all(self, what: type) -> int:
        """Rewrites every document of class ``what``'s collection stored
        under an older ``version=`` at the class's version, through its
        migration (``history`` / ``cls.migrate``; one whose migration
        raises is left as stored), and returns how many it rewrote. Until a
        document is written back, indexes, ``find_unique`` and engine-side
        filters see its stored fields: after a migration that changes an
        indexed field, this brings them to the fields the class reads (and
        a unique index then refuses a key the migration made twice, with
        ``ConstraintError``, writing nothing)."""
        s = self._schema(what)
        cname = self._wname(s.collection)
        if self._c_coll_info(cname) is None:
            return 0  # (no collection: none made)
        n = self._migrate_older(s, cname)
        self._ensure(s)
        return n

    def _migrate_older(self, s: Schema, cname: bytes) -> int:
        """Rewrites, at the class's version, every document of ``s``'s
        collection stored with an older version, through its migration
        (``history`` / ``cls.migrate``): run when the class brings an index
        the collection did not have, whose entries must cover the documents
        as the class reads them (a field renamed or computed by ``migrate``
        would otherwise be missing from it). A document whose migration
        raises is left as it is (reading it raises, as before)."""
        q = json.dumps({"collection": s.collection}).encode()
        old = [doc_id for doc_id, ver, _ in self._c_json_rows(q) if ver < s.version]
        n = 0
        for doc_id in old:
            r = self._c_doc_get(cname, doc_id)
            if r is None:
                continue
            try:
                doc = s.decode_versioned(r[0], _codec.loads(r[1]))
            except Exception:  # noqa: BLE001 - an unreadable document stays as stored
                continue
            self._c_doc_replace(cname, doc_id, _codec.dumps(s.validate(doc)), s.version)
            n += 1
        return n

    def _doc_kind(self, name: str) -> tuple[bytes, str]:
        cname = self._wname(name)
        return cname, (self._kind(self, cname) or "")

    # -- writes -----------------------------------------------------------------
    @overload
    def insert(self, what: str, payload: _Payload) -> int: ...
    @overload
    def insert(self, what: object) -> int: ...

    def insert(self, what: Any, payload: Any = None) -> int:
        """Inserts a document and returns its new id.

        ``insert(Order(...))`` (typed), ``insert("events", {...})`` (dict
        document) or ``insert("audit", b"...")`` (raw bytes)."""
        if type(what) is str:
            if isinstance(payload, dict):
                cname, kind = self._doc_kind(what)
                if kind == _RAW:
                    raise InvalidArgumentError(f"collection {what!r} holds raw bytes; insert bytes, not a dict")
                return self._c_doc_insert(cname, _codec.dumps(payload), 0)
            if isinstance(payload, (bytes, bytearray, memoryview)):
                cname = self._wname(what)
                return self._c_raw_insert(cname, _payload(payload))
            raise InvalidArgumentError(
                f"insert({what!r}, ...) takes a dict (document) or bytes (raw), not {type(payload).__name__}"
            )
        s = self._schema(what)
        if isinstance(what, type) or payload is not None:
            raise InvalidArgumentError("insert takes a document instance, e.g. tx.insert(Order(...))")
        return self._c_doc_insert(self._ensure(s), _codec.dumps(s.validate(what)), s.version)

    def _raw_insert_all(self, cname: bytes, payloads: list[bytes]) -> list[int]:
        """Inserts raw documents in one call, all or nothing."""
        n = len(payloads)
        ids = _new("uint64_t[]", max(n, 1))
        lens = _new("size_t[]", [len(p) for p in payloads])
        st = self._wcall(lib.obj_raw_insert_many, cname, b"".join(payloads), lens, n, ids)
        if st:
            raise self._fail(st)
        return ffi.unpack(ids, n)

    @overload
    def insert_many(self, what: str, payloads: Iterable[_Doc] | Iterable[_Bytes]) -> list[int]: ...
    @overload
    def insert_many(self, what: Iterable[object]) -> list[int]: ...

    def insert_many(self, what: Any, payloads: Iterable[Any] | None = None) -> list[int]:
        """Inserts many documents in one call; returns their ids in order.
        All or nothing. ``insert_many([Order(...), ...])`` or
        ``insert_many("events", [dict, ...])`` / ``(name, [bytes, ...])``."""
        if type(what) is str:
            if payloads is None:
                raise InvalidArgumentError(
                    f"insert_many({what!r}, docs) takes the documents after the collection name: a list of dicts "
                    f"(documents) or bytes (raw)"
                )
            items = _codec.listed(payloads, "insert_many's documents")
            if not items:
                return []
            if isinstance(items[0], (bytes, bytearray, memoryview)):
                cname = self._wname(what)
                return self._raw_insert_all(cname, [_payload(p) for p in items])  # (all checked first)
            for d in (items[0], items[-1]):
                if not isinstance(d, dict):
                    raise InvalidArgumentError(f"insert_many({what!r}, ...) takes dicts or bytes")
            cname, kind = self._doc_kind(what)
            if kind == _RAW:
                raise InvalidArgumentError(f"collection {what!r} holds raw bytes")
            js = _codec.dumps(items)
            if not js.startswith(b"[{") and items:
                raise InvalidArgumentError("insert_many takes a list of dicts")
            try:
                return self._c_doc_insert_many(cname, js, len(items), 0)
            except InvalidArgumentError:
                # (only the first and last were checked above, to keep big
                # batches fast): say which one is not a dict, in Python terms
                for i, d in enumerate(items):
                    if not isinstance(d, dict):
                        raise InvalidArgumentError(
                            f"document [{i}]: insert_many({what!r}, ...) takes dicts (documents) or bytes (raw), "
                            f"not {type(d).__name__}"
                        ) from None
                raise
        items = _codec.listed(what, "insert_many's documents")
        if payloads is not None:
            raise InvalidArgumentError("insert_many takes a list of document instances")
        if not items:
            return []
        cls = type(items[0])
        if isinstance(items[0], type) and schema_of(items[0]) is not None:
            raise InvalidArgumentError("insert_many takes document instances, e.g. tx.insert_many([Order(...), ...])")
        s = self._schema(cls)
        for d in items:
            if type(d) is not cls:
                raise InvalidArgumentError("insert_many: every document must be of the same class")
        check = s.validate
        return self._c_doc_insert_many(self._ensure(s), _codec.dumps([check(d) for d in items]), len(items),
                                       s.version)

    @overload
    def upsert(self, what: type[T], doc_id: int, payload: T) -> bool: ...
    @overload
    def upsert(self, what: str, doc_id: int, payload: _Payload) -> bool: ...

    def upsert(self, what: Any, doc_id: int, payload: Any) -> bool:
        """Writes a document at a chosen id (insert or replace); True when
        it was created. ``upsert(Order, 7, Order(...))``,
        ``upsert("events", 7, {...})`` or ``upsert("audit", 7, b"...")``."""
        doc_id = _id(doc_id)
        if type(what) is str:
            if isinstance(payload, (bytes, bytearray, memoryview)):
                return self._c_raw_upsert(self._wname(what), doc_id, _payload(payload))
            if not isinstance(payload, dict):
                raise InvalidArgumentError(f"upsert({what!r}, id, ...) takes a dict or bytes")
            cname, kind = self._doc_kind(what)
            if kind == _RAW:
                raise InvalidArgumentError(f"collection {what!r} holds raw bytes")
            return self._c_doc_upsert(cname, doc_id, _codec.dumps(payload), 0)
        s = self._schema(what)
        if schema_of(payload) is not s or isinstance(payload, type):
            raise InvalidArgumentError(
                f"upsert({s.cls.__name__}, id, doc): doc must be an instance of {s.cls.__name__}, "
                f"e.g. tx.upsert({s.cls.__name__}, id, {s.cls.__name__}(...))"
            )
        return self._c_doc_upsert(self._ensure(s), doc_id, _codec.dumps(s.validate(payload)), s.version)

    @overload
    def replace(self, what: type[T], doc_id: int, payload: T) -> None: ...
    @overload
    def replace(self, what: str, doc_id: int, payload: _Payload) -> None: ...

    def replace(self, what: Any, doc_id: int, payload: Any) -> None:
        """Replaces an existing document; NotFoundError if the id is absent."""
        doc_id = _id(doc_id)
        if type(what) is str:
            cname, kind = self._doc_kind(what)
            if kind == _RAW:
                if self._c_raw_get(cname, doc_id) is None:
                    raise NotFoundError(f"no document {doc_id} in {what!r}")
                self._c_raw_upsert(cname, doc_id, _payload(payload))
                return
            if not isinstance(payload, dict):
                raise InvalidArgumentError("replace on a document collection takes a dict")
            self._c_doc_replace(cname, doc_id, _codec.dumps(payload), 0)
            return
        s = self._schema(what)
        if not isinstance(payload, s.cls):
            raise InvalidArgumentError(
                f"replace({s.cls.__name__}, id, doc) / update: the new document must be an instance of "
                f"{s.cls.__name__}, not {type(payload).__name__}"
            )
        self._c_doc_replace(self._ensure(s), doc_id, _codec.dumps(s.validate(payload)), s.version)

    @overload
    def update(self, what: type[T], doc_id: int, fn: Callable[[T], T | None]) -> T: ...
    @overload
    def update(self, what: str, doc_id: int, fn: Callable[[Any], Any]) -> Any: ...

    def update(self, what: Any, doc_id: int, fn: Callable[[Any], Any]) -> Any:
        """Atomic read-modify-write: reads the document, calls ``fn`` on it
        (mutate it in place, or return a new value), writes the result back
        and returns it. NotFoundError when the id is absent. If ``fn``
        raises, nothing is written (and ``Db.update`` rolls back)."""
        doc_id = _id(doc_id)
        if not callable(fn):
            raise InvalidArgumentError("update(what, id, fn): fn must be callable")
        _plain_function(fn, "update's fn")
        cur = self.get(what, doc_id)
        if cur is None:
            name = what if type(what) is str else getattr(schema_of(what), "collection", what)
            raise NotFoundError(f"no document {doc_id} in collection {name!r}")
        new = fn(cur)
        if new is None:
            self.replace(what, doc_id, cur)
            return cur
        _no_coroutine(new, "update's fn")
        try:
            self.replace(what, doc_id, new)
        except InvalidArgumentError as e:
            # A document it returned was refused for what it holds (a unique
            # key, a value too long for an index): that error as it is.
            if type(e) is not InvalidArgumentError or isinstance(new, (dict, bytes)) or schema_of(new) is not None:
                raise
            # Something else replaces the document: say where it came from.
            raise InvalidArgumentError(
                f"update's fn returned {type(new).__name__} (what it returns replaces the document; "
                f"return None after changing the one it was given): {e}"
            ) from None
        return new

    def delete(self, what: Any, doc_id: int) -> bool:
        """Deletes a document; True if it existed. ``delete(Order, 7)`` or
        ``delete("events", 7)``."""
        doc_id = _id(doc_id)
        if type(what) is str:
            cname = self._wname(what)
        else:
            s = self._schema(what)
            if self._needs_setup(s) and self._c_coll_info(self._wname(s.collection)) is None:
                return False  # (no collection: the delete finds nothing, and makes none)
            cname = self._ensure(s)
        return self._c_doc_delete(cname, doc_id)

    def create_collection(self, name: str, *, raw: bool = False) -> None:
        """Creates a collection (a no-op when it exists with that kind)."""
        self._check(self._wcall(lib.obj_collection_create, self._wname(name), 1 if raw else 0))

    def drop_collection(self, name: str) -> bool:
        """Drops a collection with its documents and indexes; True if it
        existed."""
        cname = self._wname(name)
        found = _slots.found
        self._check(self._wcall(lib.obj_collection_drop, cname, found))
        existed = bool(found[0])
        # From here this transaction's view differs from the committed one.
        self._kc = {}
        self._new_kinds.pop(cname, None)
        self._set_up_again(name)
        return existed

    def create_index(self, collection: Any, name: str, fields: Sequence[str] | str, kind: str = "standard") -> None:
        """Creates a secondary index (``kind``: standard, unique or multi)
        over ``fields`` and fills it from the existing documents."""
        coll, spec = _index_request(self._db, collection, name, fields, kind)
        self._c_index_create(self._wname(coll), spec)

    def drop_index(self, collection: Any, name: str) -> None:
        """Drops a secondary index (NotFoundError if absent)."""
        coll = collection if type(collection) is str else self._schema(collection).collection
        self._check(self._wcall(lib.obj_index_drop, self._wname(coll), _cstr(name)))
        self._set_up_again(coll)

    def _set_up_again(self, coll: str) -> None:
        """After a drop of collection ``coll`` or of one of its indexes: a
        class of it may declare what was dropped, so its next write in this
        transaction sets it up again (whatever the handle remembers)."""
        self._ensured = {k for k in self._ensured if k[0] != coll}
        self._dropped.add(coll)


def _read_only(name: str) -> Callable[..., Any]:
    """``ReadTxn.<name>`` for a write method of :class:`WriteTxn`: raises
    InvalidArgumentError (an ObjError, not the AttributeError of a missing
    method)."""

    def refuse(self: ReadTxn, *args: Any, **kwargs: Any) -> Any:
        raise InvalidArgumentError(
            f"read transaction is read-only: tx.{name}(...) needs a write transaction "
            f"(`with db.transaction() as tx:`, or `async with adb.transaction() as tx:` on an AsyncDb)"
        )

    refuse.__name__ = refuse.__qualname__ = name
    refuse.__doc__ = f"A write: in a read transaction it raises InvalidArgumentError (see WriteTxn.{name})."
    return refuse


_WRITES = ("insert", "insert_many", "upsert", "replace", "update", "delete", "create_collection",
           "drop_collection", "create_index", "drop_index")
for _name in _WRITES:
    assert _name in WriteTxn.__dict__, _name
    setattr(ReadTxn, _name, _read_only(_name))
del _name


class Collection(Generic[T]):
    """A document class (or collection name) bound to one transaction:
    ``orders = tx.collection(Order)`` then ``orders.insert(o)``,
    ``orders.get(id)``, ``orders.count_all()``..."""

    def __init__(self, txn: ReadTxn, what: Any) -> None:
        if type(what) is not str and schema_of(what) is None:
            raise _not_document(what)
        self._txn = txn
        self._what = what
        self.name: str = what if type(what) is str else schema_of(what).collection  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"<obj.Collection {self.name!r} in {self._txn!r}>"

    def _w(self) -> WriteTxn:
        if not isinstance(self._txn, WriteTxn):
            raise InvalidArgumentError("this collection handle belongs to a read transaction")
        return self._txn

    def insert(self, doc: T) -> int:
        """Inserts ``doc``; returns its id."""
        if type(self._what) is str:
            return self._w().insert(self._what, doc)  # type: ignore[call-overload]  # (a dict or bytes)
        self._own(doc, "insert")
        return self._w().insert(doc)

    def insert_many(self, docs: Iterable[T]) -> list[int]:
        """Inserts many documents in one call."""
        if type(self._what) is str:
            return self._w().insert_many(self._what, docs)  # type: ignore[arg-type]  # (dicts or bytes)
        items = _codec.listed(docs, "insert_many's documents")
        if items:
            self._own(items[0], "insert_many")
        return self._w().insert_many(items)

    def _own(self, doc: Any, call: str) -> None:
        """Refuses a document of another class than the one this handle is
        bound to (it would be written to that class's collection)."""
        s = schema_of(self._what)
        # (A class given for an instance gets insert's own advice.)
        if not isinstance(doc, type) and schema_of(doc) is not s:
            name = s.cls.__name__  # type: ignore[union-attr]
            raise InvalidArgumentError(
                f"{call}: this handle is bound to {name} (collection {self.name!r}); "
                f"the document must be an instance of {name}, not {type(doc).__name__}"
            )

    def get(self, doc_id: int) -> T | None:
        """The document with that id, or None."""
        return self._txn.get(self._what, doc_id)

    def get_many(self, ids: Iterable[int]) -> list[T | None]:
        """Documents for many ids (None where absent)."""
        return self._txn.get_many(self._what, ids)

    def update(self, doc_id: int, fn: Callable[[T], T | None]) -> T:
        """Read-modify-write of one document (see WriteTxn.update)."""
        return self._w().update(self._what, doc_id, fn)

    def upsert(self, doc_id: int, doc: T) -> bool:
        """Writes ``doc`` at ``doc_id``; True if created."""
        return self._w().upsert(self._what, doc_id, doc)

    def delete(self, doc_id: int) -> bool:
        """Deletes a document; True if it existed."""
        return self._w().delete(self._what, doc_id)

    def all(self) -> Iterator[tuple[int, T]]:
        """Every ``(id, doc)`` in id order."""
        return self._txn.all(self._what)

    def count_all(self) -> int:
        """Number of documents, including this transaction's own writes."""
        return self._txn.count(self._what)

    def find_unique(self, index: str, *values: Any) -> T | None:
        """The document with that unique key, or None."""
        return self._txn.find_unique(self._what, index, *values)

    def find_unique_many(self, index: str, keys: Iterable[Any]) -> list[T | None]:
        """The documents for many unique keys (None where absent)."""
        return self._txn.find_unique_many(self._what, index, keys)

    def index_range(self, index: str, lo: Any = None, hi: Any = None) -> Iterator[tuple[int, T]]:
        """``(id, doc)`` over ``[lo, hi)`` of an index (``lo == hi``: equality)."""
        return self._txn.index_range(self._what, index, lo, hi)

    def query(self) -> Query[T]:
        """A query over this collection in this transaction."""
        return self._txn.query(self._what)

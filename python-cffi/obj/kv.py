"""Key-value namespaces: ``db.kv("sessions")`` gives ordered byte keys to
byte values beside the documents, with ``put``/``get``/``delete`` and
ordered ``scan`` by prefix or half-open range.

Keys are ``bytes`` (a ``str`` is UTF-8 encoded); values are ``bytes``.
Through ``db.kv(...)`` each call is its own transaction; through
``tx.kv(...)`` calls join that transaction.

``"ns.name"`` where ``ns`` is an attached namespace (``db.attach(path,
"ns")``) is namespace ``name`` of that file: readable, and read-only
(a write raises InvalidArgumentError). Any other dotted name is a
namespace of this file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import _codec
from ._ffi import OutHandle, check, ffi, lib, slots, take_bytes
from .errors import InvalidArgumentError, KeyNotFoundError

if TYPE_CHECKING:
    from .db import Db
    from .txn import ReadTxn

__all__ = ["KvNamespace"]

_D = TypeVar("_D")
_MISSING = object()
_db_kv_get = lib.obj_db_kv_get


def _key(k: Any) -> bytes:
    if type(k) is bytes:
        return k
    if isinstance(k, str):
        return _codec.utf8(k, "key")
    if isinstance(k, (bytearray, memoryview)):
        return bytes(k)
    raise InvalidArgumentError(f"a key is bytes or str, not {type(k).__name__}")


def _value(v: Any) -> bytes:
    if type(v) is bytes:
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return _codec.utf8(v, "value")
    raise InvalidArgumentError(f"a value is bytes (or str), not {type(v).__name__}")


class KvNamespace:
    """One key-value namespace (created on first write, or empty by
    :meth:`create`). ``"ns.name"`` with
    ``ns`` attached reads namespace ``name`` of the attached file (writes
    there raise InvalidArgumentError)."""

    def __init__(self, db: Db, name: str, txn: ReadTxn | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("a key-value namespace name is a non-empty str")
        self._db = db
        self.name = name
        self._c = db._cname(name, "key-value namespace")
        self._txn = txn
        # For a dotted name: the attach namespace it may be in, and the C
        # name of the rest (a namespace of the attached file).
        ns, dot, rest = name.partition(".")
        self._ns = ns if dot else None
        self._rest = rest

    def __repr__(self) -> str:
        where = f" in {self._txn!r}" if self._txn is not None else f" of {self._db!r}"
        return f"<obj.KvNamespace {self.name!r}{where}>"

    def _attached_in(self, tx: Any) -> Any:
        """The snapshot of the attached file this name reads in ``tx``, or
        None (a namespace of this file)."""
        snaps = tx._attached if self._ns is not None else None
        return snaps.get(self._ns) if snaps else None

    def _refuse_write(self, tx: Any) -> None:
        """InvalidArgumentError for a write, in ``tx``, to a namespace of an
        attached file."""
        ns = self._ns
        if ns is None:
            return
        if ns in self._db._attached or ns in tx._attached:
            raise InvalidArgumentError(
                f"key-value namespace {self.name!r} is in the attached namespace {ns!r}: attachments are "
                f"read-only"
            )

    def _target(self, tx: Any) -> tuple[Any, bytes]:
        """``(transaction, C name)`` to read this namespace in ``tx``."""
        t = self._attached_in(tx)
        if t is not None:
            self._check_unshadowed(tx)
            return t, t._db._cname(self._rest, "key-value namespace")
        return tx, self._c

    def _check_unshadowed(self, tx: Any) -> None:
        """InvalidArgumentError when this file has a key-value namespace of
        this very name (``ns.name``) beside the attached file's ``name``:
        attach() refuses a namespace that would hide one, but one can appear
        later (another handle or process), and a read could then mean
        either. Checked once a transaction."""
        seen = tx._unshadowed
        key = ("kv", self.name)
        if key in seen:
            return
        if self.name in list_namespaces(tx):
            raise InvalidArgumentError(
                f"key-value namespace {self.name!r} is both in this database and in the database attached "
                f"as {self._ns!r}; detach {self._ns!r} to read the local one"
            )
        seen.add(key)

    def _run(self, write: bool, fn: Any) -> Any:
        """``fn(transaction, C name)`` in this handle's transaction, or in
        one of its own."""
        tx = self._txn
        if tx is not None:
            if write:
                self._refuse_write(tx)
                if not getattr(tx, "_write", False):
                    raise InvalidArgumentError("write through a read transaction")
                return fn(tx, self._c)
            return fn(*self._target(tx))
        if write:
            with self._db.transaction() as tx:
                self._refuse_write(tx)
                return fn(tx, self._c)
        with self._db.read_transaction() as tx:
            return fn(*self._target(tx))

    def put(self, key: Any, value: Any) -> None:
        """Sets ``key`` to ``value``."""
        k, v = _key(key), _value(value)
        self._run(True, lambda tx, c: tx._check(tx._wcall(lib.obj_kv_put, c, k, len(k), v, len(v))))

    @overload
    def get(self, key: Any) -> bytes | None: ...
    @overload
    def get(self, key: Any, default: _D) -> bytes | _D: ...
    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        k = _key(key)
        if self._txn is None and (self._ns is None or not self._db._attached):
            # One C call that takes and ends its own snapshot: a namespace of
            # this file (a dotted name while a namespace is attached goes
            # through the transaction, which routes it).
            db = self._db
            found = slots.found
            check(_db_kv_get(db._handle(), self._c, k, len(k), slots.buf, found))
            return take_bytes(slots.buf) if found[0] else default

        return self._run(False, lambda tx, c: _get_in(tx, c, k, default))

    def __getitem__(self, key: Any) -> bytes:
        v = self.get(key, _MISSING)
        if v is _MISSING:
            raise KeyNotFoundError(key, self.name)
        return v

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __contains__(self, key: Any) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise KeyNotFoundError(key, self.name)

    def __iter__(self) -> Iterator[bytes]:
        """The keys, in order (as ``scan`` reads them)."""
        return (k for k, _ in self.scan())

    def __len__(self) -> int:
        """The number of entries, as :meth:`count`."""
        return self.count()

    def count(self) -> int:
        """The number of entries (kept with the namespace: no walk; 0 for a
        namespace that does not exist). ``len(ns)`` is the same; from
        asyncio, ``await adb.kv(name).count()``."""

        def run(tx: Any, c: bytes) -> int:
            out = slots.u64
            st = lib.obj_kv_count(tx._handle(), c, out)
            if st:
                raise tx._fail(st)
            return int(out[0])

        return self._run(False, run)

    @overload
    def pop(self, key: Any) -> bytes: ...
    @overload
    def pop(self, key: Any, default: _D) -> bytes | _D: ...
    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Removes ``key`` and returns its value, read and removed in one
        write transaction; ``default`` when it is not there (without one,
        ``KeyNotFoundError``, a ``KeyError``), as ``dict.pop``."""
        k = _key(key)

        def run(tx: Any, c: bytes) -> Any:
            # The read and the delete as one step for threads sharing ``tx``
            # (else two could read the value before either deletes it, and
            # both return it).
            with tx._serialised():
                value = _get_in(tx, c, k, _MISSING)
                if value is not _MISSING:
                    tx._check(tx._wcall(lib.obj_kv_delete, c, k, len(k), slots.found))
                return value

        value = self._run(True, run)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyNotFoundError(key, self.name)
            return default
        return value

    def delete(self, key: Any) -> bool:
        """Removes ``key``; True if it was there."""
        k = _key(key)

        def run(tx: Any, c: bytes) -> bool:
            found = slots.found
            tx._check(tx._wcall(lib.obj_kv_delete, c, k, len(k), found))
            return bool(found[0])

        return self._run(True, run)

    def scan(
        self, prefix: Any = None, start: Any = None, end: Any = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs in key order: those starting with
        ``prefix`` and in ``[start, end)`` (each of the three may be None).
        ``reverse=True`` walks from the top."""
        p, s, e = self._check_scan(prefix, start, end)
        reverse = bool(reverse)  # (as Query.sort_by and index_range take it)
        if self._txn is not None:
            self._txn._handle()  # (a finished transaction raises here, at the call)
            return self._scan(*self._target(self._txn), p, s, e, reverse)
        self._db._handle()  # (a closed Db too)
        return self._scan_own(p, s, e, reverse)

    @staticmethod
    def _check_scan(prefix: Any = None, start: Any = None, end: Any = None, *, reverse: bool = False) -> tuple:
        """The bounds of :meth:`scan` as its cursor takes them: ``(prefix,
        start, end)`` as bytes or None; a wrong argument raises here
        (AsyncKv checks a scan's arguments at the call this way)."""
        p = None if prefix is None else _key(prefix)
        s = None if start is None else _key(start)
        e = None if end is None else _key(end)
        if p is not None and (s is not None or e is not None):
            # Both given: the keys of the prefix within the range. The prefix
            # is the range [p, the next key after every key starting with p).
            s = p if s is None else max(s, p)
            top = _after_prefix(p)
            e = top if e is None else (e if top is None else min(e, top))
            p = None
        return p, s, e

    def _scan_own(self, p: Any, s: Any, e: Any, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        with self._db._own(self._db.read_transaction()) as tx:
            yield from self._scan(*self._target(tx), p, s, e, reverse)

    def _scan(self, tx: Any, c: bytes, p: Any, s: Any, e: Any, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        null = ffi.NULL
        cur = OutHandle.make(
            "obj_cursor **",
            lib.obj_cursor_free,
            lambda slot: tx._check(
                lib.obj_kv_scan(
                    tx._handle(), c,
                    null if s is None else s, 0 if s is None else len(s),
                    null if e is None else e, 0 if e is None else len(e),
                    null if p is None else p, 0 if p is None else len(p),
                    reverse, slot,
                )
            ),
        )
        kb, vb, done = ffi.new("obj_bytes *"), ffi.new("obj_bytes *"), ffi.new("bool *")
        buffer, free = ffi.buffer, lib.obj_bytes_free
        try:
            while True:
                st = lib.obj_kv_cursor_next(cur, kb, vb, done)
                if st:
                    raise tx._fail(st)
                if done[0]:
                    return
                k = buffer(kb.data, kb.len)[:] if kb.len else b""
                v = buffer(vb.data, vb.len)[:] if vb.len else b""
                free(kb)
                free(vb)
                yield k, v
        finally:
            ffi.release(cur)

    def keys(self, prefix: Any = None) -> list[bytes]:
        """The keys (optionally under ``prefix``)."""
        return [k for k, _ in self.scan(prefix=prefix)]

    def values(self, prefix: Any = None) -> list[bytes]:
        """The values, in key order (optionally of the keys under ``prefix``)."""
        return [v for _, v in self.scan(prefix=prefix)]

    def items(self, prefix: Any = None) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` pairs in key order (optionally of the keys under
        ``prefix``); ``scan`` streams them instead."""
        return list(self.scan(prefix=prefix))

    def create(self) -> bool:
        """Creates the namespace if it is missing, so that it exists (is
        listed, dumped and backed up) while empty; True if it was created.
        An existing namespace keeps its entries."""

        def run(tx: Any, c: bytes) -> bool:
            found = slots.found
            tx._check(tx._wcall(lib.obj_kv_create, c, found))
            return bool(found[0])

        return self._run(True, run)

    def drop(self) -> bool:
        """Deletes the whole namespace; True if it existed."""

        def run(tx: Any, c: bytes) -> bool:
            found = slots.found
            tx._check(tx._wcall(lib.obj_kv_drop, c, found))
            return bool(found[0])

        return self._run(True, run)



def _get_in(tx: Any, c: bytes, k: bytes, default: Any) -> Any:
    """The value of key ``k`` in namespace ``c`` (its C name) as
    transaction ``tx`` sees it, or ``default``."""
    found = slots.found
    st = lib.obj_kv_get(tx._handle(), c, k, len(k), slots.buf, found)
    if st:
        raise tx._fail(st)
    return tx._take_bytes() if found[0] else default


def _after_prefix(p: bytes) -> bytes | None:
    """The least key above every key starting with ``p`` (None: no such
    key, ``p`` is empty or all 0xff bytes)."""
    p = p.rstrip(b"\xff")
    return p[:-1] + bytes([p[-1] + 1]) if p else None


def list_namespaces(tx: Any) -> list[str]:
    """Names of the key-value namespaces."""
    tx._check(lib.obj_kv_list(tx._handle(), slots.buf))
    return json.loads(tx._take_bytes())

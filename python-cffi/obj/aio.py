"""``obj.AsyncDb``: the blocking :class:`obj.Db` for asyncio callers.

Each call runs in a worker thread (the C library releases the GIL), so the
event loop never blocks on the engine. Calls that take the database's
write lock (the one-call writes: insert, update, kv puts...) run on worker
threads of their own, so a read never waits in a queue behind writes that
wait for that lock. A transaction pins one dedicated worker thread for its
whole life, so ``async with adb.transaction() as tx`` drives one
transaction op by op from one thread. No dependency beyond the standard
library.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar, overload

from ._ffi import fork_generation
from .db import Db, _thread_local
from .errors import BusyError, InvalidArgumentError
from .kv import KvNamespace
from .query import Query
from .txn import _STALE_CURSOR

if TYPE_CHECKING:
    from .db import RawRecord
    from .query import Expr, Field, SortKey
    from .txn import _Bytes, _Doc, _Payload

__all__ = ["AsyncDb", "AsyncTxn", "AsyncQuery", "AsyncCollection", "AsyncKv", "AsyncStream"]

T = TypeVar("T")  # a document class's instances (type checkers only; see obj.txn.T)
_D = TypeVar("_D")  # a default value (KvNamespace.get)

# The methods of Db and of a key-value namespace that take the database's
# write lock (each in a transaction of its own: they may wait up to the busy
# timeout for another writer). AsyncDb runs them on its writer threads.
_WRITES = frozenset({
    "insert", "insert_many", "upsert", "update", "delete", "create_index", "drop_collection", "import_",
    "migrate_all", "drop_index",
    "compact", "rekey", "checkpoint", "put", "create", "drop",
})


# The one-call document and key-value writes that AsyncDb runs in a write
# transaction of its own on a writer thread, so that the call's outcome is
# the write's: a call that times out (asyncio.wait_for) or is cancelled
# before its commit begins is rolled back, not applied later behind the
# caller's back (a retry would write it twice), and one cancelled once its
# commit has begun returns the commit's result (see _write_in_tx).
_TX_WRITES = frozenset({
    "insert", "insert_many", "upsert", "update", "delete", "create_index", "drop_collection", "migrate_all",
    "drop_index",
})
_KV_TX_WRITES = frozenset({"put", "delete", "pop", "create", "drop"})


# Tasks owed a cancellation that a write took in and returned past (see
# _redeliver_cancel), with the task's cancellation count when it did.
_owed_cancels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _still_requested(task: asyncio.Task, count: int | None) -> bool:
    """Whether the cancellation taken in at ``count`` requests is still
    wanted: not taken back since (a timeout scope takes back its own when
    the call returns inside it). Before Python 3.11 nothing takes one
    back, and nothing counts them."""
    return count is None or task.cancelling() >= count


def _redeliver_cancel(count: int | None) -> None:
    """For a call that took in its task's cancellation and returns anyway (a
    write whose commit had begun): the task is cancelled again, so that
    ``task.cancel()`` (a shutdown, a task group) still ends it, unless the
    cancellation is no longer wanted (see _still_requested; 3.11's
    ``wait_for`` ran the call in a task of its own, done by then). It is
    delivered at the task's next await, or at once by the task's next
    one-call write (:func:`_take_owed_cancel`), which must not begin."""
    task = asyncio.current_task()
    if task is None:
        return
    _owed_cancels[task] = count

    def again() -> None:
        if task not in _owed_cancels:
            return  # delivered by a write meanwhile
        count = _owed_cancels.pop(task)
        if task.done() or not _still_requested(task, count):
            return
        if count is not None:
            task.uncancel()  # (one request, delivered again: not two)
        task.cancel()

    asyncio.get_running_loop().call_soon(again)


def _take_owed_cancel() -> None:
    """Raises the cancellation this task is owed, if it is still wanted,
    before a one-call write begins."""
    task = asyncio.current_task()
    if task is None or task not in _owed_cancels:
        return
    count = _owed_cancels.pop(task)
    if not task.done() and _still_requested(task, count):
        raise asyncio.CancelledError()


class _CancelledWrite(Exception):
    """Raised in a writer thread to roll back a cancelled one-call write."""


class _CommitRace:
    """Which comes first for a write driven from a task: the task's
    cancellation (the write is then rolled back and the task raises
    CancelledError) or the commit, which the thread begins (a cancellation
    can no longer stop it: the task reports the commit's outcome and is
    cancelled again at its next await, see _redeliver_cancel). Used by the
    one-call writes and by the exit of ``async with adb.transaction()``."""

    def __init__(self) -> None:
        self._gate = threading.Lock()
        self._state = "waiting"  # then "cancelled" or "committing"
        # The task's cancellation count when its first cancellation came.
        self.taken_at: int | None = None

    @property
    def cancelled(self) -> bool:
        return self._state == "cancelled"

    @property
    def committing(self) -> bool:
        return self._state == "committing"

    def commit_begins(self) -> bool:
        """(The thread, before it commits.) False if the task was cancelled
        first: the thread rolls back instead."""
        with self._gate:
            if self._state == "cancelled":
                return False
            self._state = "committing"
            return True

    def cancel(self) -> bool:
        """(The task, at its first cancellation.) True if it came before
        the commit began, which now never will."""
        task = asyncio.current_task()
        self.taken_at = task.cancelling() if task is not None and hasattr(task, "cancelling") else None
        with self._gate:
            if self._state == "waiting":
                self._state = "cancelled"
            return self._state == "cancelled"


class _Pinned:
    """One worker thread, for everything of one transaction or iterator."""

    def __init__(self) -> None:
        self._ex = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="obj-txn")
        self.done = False

    async def run(self, fn: Callable, *args: Any, on_abandon: Callable[[Any], Any] | None = None) -> Any:
        """Runs ``fn(*args)`` on the thread. When the awaiting task is
        cancelled (or interrupted) while ``fn`` runs, its result is nobody's:
        ``on_abandon(result)`` disposes of it once ``fn`` returns (a
        transaction begun after its task gave up waiting for the write lock
        would otherwise hold the lock until garbage collection)."""
        cf = self._ex.submit(functools.partial(fn, *args))
        try:
            return await asyncio.wrap_future(cf)
        except BaseException:
            if on_abandon is not None:
                def dispose(f: concurrent.futures.Future) -> None:
                    if not f.cancelled() and f.exception() is None:
                        on_abandon(f.result())

                cf.add_done_callback(dispose)
            raise

    async def run_to_end(self, fn: Callable, on_cancel: Callable[[], Any] | None = None) -> Any:
        """Runs ``fn()`` on the thread and waits for it to finish even when
        the awaiting task is cancelled (any number of times): a rollback or
        commit queued behind a running call is never dropped. ``on_cancel``
        is called at the first cancellation. Once ``fn`` has run: if the task
        was cancelled, CancelledError (chained to ``fn``'s error, if any), as
        asyncio's timeouts and task groups expect; else ``fn``'s error or
        result. Another exception thrown into the task while ``fn`` runs
        (KeyboardInterrupt) propagates at once."""
        fut = asyncio.wrap_future(self._ex.submit(fn))
        cancelled = False
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                if fut.done() and (fut.cancelled() or isinstance(fut.exception(), asyncio.CancelledError)):
                    break  # fn itself raised CancelledError
                # (the task's, even when fn ended before it reached the task)
                if not cancelled and on_cancel is not None:
                    on_cancel()
                cancelled = True
            except BaseException:
                if not fut.done():
                    raise  # thrown into the task, not fn's: not ours to hold
                break  # fn's error: raised below
        if not cancelled:
            return fut.result()  # fn's result or error
        error = None if fut.cancelled() else fut.exception()
        raise asyncio.CancelledError() from error

    def shutdown(self) -> None:
        self.done = True
        self._ex.shutdown(wait=False)


def _take(it: Iterator, batch: int) -> list:
    """Up to ``batch`` items of ``it`` (fewer only at its end)."""
    out = []
    for x in it:
        out.append(x)
        if len(out) >= batch:
            break
    return out


async def _batches(run: Callable[..., Awaitable], make: Callable[[], Iterable], batch: int = 256) -> AsyncIterator:
    """Drives the blocking iterator ``make()`` a batch per hop, each step
    (making it, every batch, closing it) through ``await run(fn, *args)``."""
    it = await run(lambda: iter(make()))
    try:
        while True:
            items = await run(_take, it, batch)
            if not items:
                return
            for x in items:
                yield x
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            await run(close)


def _as_is(fn: Callable) -> Callable:
    return fn


async def _aiter_pinned(make: Callable[[], Iterable], batch: int = 256,
                        wrap: Callable[[Callable], Callable] = _as_is) -> AsyncIterator:
    """Drives a blocking iterator in one pinned thread, a batch per hop
    (each step run as ``wrap(step)``)."""
    pin = _Pinned()
    inner = _batches(lambda fn, *a: pin.run(wrap(fn), *a), make, batch)
    try:
        async for x in inner:
            yield x
    finally:
        try:
            await inner.aclose()  # (closes the blocking iterator on the thread)
        finally:
            pin.shutdown()


class AsyncQuery(Generic[T]):
    """An immutable query whose terminal methods are awaitable:
    ``await adb.query(Order).filter(...).fetch()``; ``async for`` streams.
    From ``adb.query(...)`` it runs on the database's worker threads; from
    ``tx.query(...)`` inside ``async with adb.transaction() as tx`` on the
    transaction's own thread, seeing its uncommitted writes."""

    def __init__(self, owner: AsyncDb | AsyncTxn, q: Query[T]) -> None:
        self._owner = owner
        self._q = q

    if TYPE_CHECKING:
        # The builder calls of Query (served by __getattr__), each giving a
        # new AsyncQuery of the same documents.
        def filter(self, *preds: Expr | Callable[[T], object], **equals: Any) -> AsyncQuery[T]: ...
        def where(self, expr: Expr) -> AsyncQuery[T]: ...
        def sort_by(self, key: str | Field | SortKey | Callable[[T], Any], reverse: bool = False) -> AsyncQuery[T]: ...
        def limit(self, n: int | None) -> AsyncQuery[T]: ...
        def offset(self, n: int) -> AsyncQuery[T]: ...
        def index_range(self, index: str, lo: Any = None, hi: Any = None, *,
                        reverse: bool = False) -> AsyncQuery[T]: ...
        def after_id(self, doc_id: int | None) -> AsyncQuery[T]: ...
        def sort_buffer_limit(self, n: int) -> AsyncQuery[T]: ...

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._q, name)
        if name in ("filter", "where", "sort_by", "limit", "offset", "index_range", "sort_buffer_limit",
                    "after_id"):
            @functools.wraps(attr)
            def build(*a: Any, **k: Any) -> AsyncQuery:
                return AsyncQuery(self._owner, attr(*a, **k))
            return build
        raise AttributeError(name)

    async def fetch(self) -> list[tuple[int, T]]:
        """All results."""
        return await self._owner._run(self._q.fetch)

    async def count(self) -> int:
        """Number of results."""
        return await self._owner._run(self._q.count)

    async def first(self) -> tuple[int, T] | None:
        """The first result or None."""
        return await self._owner._run(self._q.first)

    async def ids(self) -> list[int]:
        """The ids of the results."""
        return await self._owner._run(self._q.ids)

    async def explain(self) -> str:
        """The engine's plan."""
        return await self._owner._run(self._q.explain)

    async def explain_json(self) -> dict:
        """The engine's plan as a dict (see :meth:`Query.explain_json`)."""
        return await self._owner._run(self._q.explain_json)

    def to_json(self) -> str:
        """The engine half of the query as query JSON (for inspection)."""
        return self._q.to_json()

    def __aiter__(self) -> AsyncIterator[tuple[int, T]]:
        return self._owner._aiter(self._q.iter)


class _AsyncBound:
    """A blocking helper object of a transaction (a typed collection handle,
    a key-value namespace) driven from asyncio: each method is awaitable and
    runs on the transaction's pinned thread; the methods named in ``_ITER``
    (which return iterators) are async iterators."""

    _ITER: frozenset = frozenset()

    def __init__(self, atx: AsyncTxn | AsyncDb, inner: Any) -> None:
        self._atx = atx
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        atx = self._atx
        if name in _KV_TX_WRITES and isinstance(atx, AsyncDb) and isinstance(self._inner, KvNamespace):
            kv = self._inner

            @functools.wraps(attr)
            async def write(*a: Any, **k: Any) -> Any:
                return await atx._write_in_tx(
                    lambda tx: getattr(KvNamespace(kv._db, kv.name, tx), name)(*a, **k))

            return write
        if name in self._ITER:
            @functools.wraps(attr)
            def iterate(*a: Any, **k: Any) -> AsyncStream:
                # Wrong arguments raise at the call where the helper can
                # check them without the transaction (as the Db's streams
                # do); the iterator is made, and read, on the transaction's
                # thread. Awaited, the stream gives the list.
                check = getattr(self._inner, f"_check_{name}", None)
                if check is not None:
                    check(*a, **k)
                return AsyncStream(atx, lambda: attr(*a, **k))
            return iterate
        run = atx._runner(name)

        @functools.wraps(attr)
        async def call(*a: Any, **k: Any) -> Any:
            return await run(attr, *a, **k)

        return call


class AsyncCollection(_AsyncBound, Generic[T]):
    """``tx.collection(Order)`` of an async transaction: ``await
    orders.insert(o)``, ``await orders.get(oid)``, ``await
    orders.count_all()``...; ``async for oid, o in orders.all()`` (and
    ``index_range``); ``orders.query()`` is an :class:`AsyncQuery` run in
    the transaction."""

    _ITER = frozenset({"all", "index_range"})

    if TYPE_CHECKING:
        # The calls of Collection (served by _AsyncBound.__getattr__).
        name: str

        async def insert(self, doc: T) -> int: ...
        async def insert_many(self, docs: Iterable[T]) -> list[int]: ...
        async def get(self, doc_id: int) -> T | None: ...
        async def get_many(self, ids: Iterable[int]) -> list[T | None]: ...
        async def update(self, doc_id: int, fn: Callable[[T], T | None]) -> T: ...
        async def upsert(self, doc_id: int, doc: T) -> bool: ...
        async def delete(self, doc_id: int) -> bool: ...
        async def count_all(self) -> int: ...
        async def find_unique(self, index: str, *values: Any) -> T | None: ...
        async def find_unique_many(self, index: str, keys: Iterable[Any]) -> list[T | None]: ...
        def all(self) -> AsyncStream[tuple[int, T]]: ...
        def index_range(self, index: str, lo: Any = None, hi: Any = None) -> AsyncStream[tuple[int, T]]: ...

    def query(self) -> AsyncQuery[T]:
        """A query over this collection in this transaction."""
        return AsyncQuery(self._atx, self._inner.query())


if TYPE_CHECKING:
    class _AsyncKvCalls:
        """The awaitable calls that AsyncKv serves through ``__getattr__``
        (KvNamespace's), declared for type checkers; not a class at run
        time."""

        name: str

        @overload
        async def get(self, key: Any) -> bytes | None: ...
        @overload
        async def get(self, key: Any, default: _D) -> bytes | _D: ...
        async def get(self, key: Any, default: Any = None) -> Any: ...

        async def put(self, key: Any, value: Any) -> None: ...
        async def delete(self, key: Any) -> bool: ...
        async def count(self) -> int: ...
        async def keys(self, prefix: Any = None) -> list[bytes]: ...
        async def values(self, prefix: Any = None) -> list[bytes]: ...
        async def items(self, prefix: Any = None) -> list[tuple[bytes, bytes]]: ...

        @overload
        async def pop(self, key: Any) -> bytes: ...
        @overload
        async def pop(self, key: Any, default: _D) -> bytes | _D: ...
        async def pop(self, key: Any, default: Any = ...) -> Any: ...
        async def create(self) -> bool: ...
        async def drop(self) -> bool: ...

        def scan(
            self, prefix: Any = None, start: Any = None, end: Any = None, *, reverse: bool = False
        ) -> AsyncStream[tuple[bytes, bytes]]: ...
else:
    _AsyncKvCalls = object


class AsyncKv(_AsyncBound, _AsyncKvCalls):
    """A key-value namespace driven from asyncio: ``adb.kv(name)`` (each
    call its own transaction, on the database's worker threads) or
    ``tx.kv(name)`` of an async transaction (on its thread). ``await
    ns.put(k, v)``, ``await ns.get(k)``, ``await ns.delete(k)``, ``await
    ns.keys()``; ``async for k, v in ns.scan(prefix=...)``. Awaiting the
    handle itself gives it back (``ns = await adb.kv(name)`` works too)."""

    _ITER = frozenset({"scan"})

    def __await__(self) -> Any:
        return _itself(self).__await__()


async def _itself(x: Any) -> Any:
    return x


class AsyncStream(Generic[T]):
    """The results of a blocking iterator for asyncio: ``async for x in
    it`` streams them (the blocking reads run on one worker thread, a batch
    per hop; in a transaction, on its thread), ``await it`` gives them all
    as a list."""

    def __init__(self, owner: AsyncDb | AsyncTxn, make: Callable[[], Iterable[T]]) -> None:
        self._owner = owner
        self._make = make

    def __aiter__(self) -> AsyncIterator[T]:
        return self._owner._aiter(self._make)

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self._owner._run(lambda: list(self._make())).__await__()


if TYPE_CHECKING:
    class _AsyncDocCalls:
        """The awaitable document calls that AsyncDb and AsyncTxn serve
        through ``__getattr__`` (those of Db and of the transactions),
        declared for type checkers; not a class at run time."""

        @overload
        async def get(self, what: type[T], doc_id: int) -> T | None: ...
        @overload
        async def get(self, what: str, doc_id: int) -> Any: ...
        async def get(self, what: Any, doc_id: int) -> Any: ...

        @overload
        async def get_many(self, what: type[T], ids: Iterable[int]) -> list[T | None]: ...
        @overload
        async def get_many(self, what: str, ids: Iterable[int]) -> list[Any]: ...
        async def get_many(self, what: Any, ids: Iterable[int]) -> list[Any]: ...

        @overload
        async def find_unique(self, what: type[T], index: str, *values: Any) -> T | None: ...
        @overload
        async def find_unique(self, what: str, index: str, *values: Any) -> Any: ...
        async def find_unique(self, what: Any, index: str, *values: Any) -> Any: ...

        @overload
        async def find_unique_many(self, what: type[T], index: str, keys: Iterable[Any]) -> list[T | None]: ...
        @overload
        async def find_unique_many(self, what: str, index: str, keys: Iterable[Any]) -> list[Any]: ...
        async def find_unique_many(self, what: Any, index: str, keys: Iterable[Any]) -> list[Any]: ...

        @overload
        async def find_unique_with_id(self, what: type[T], index: str, *values: Any) -> tuple[int, T] | None: ...
        @overload
        async def find_unique_with_id(self, what: str, index: str, *values: Any) -> tuple[int, Any] | None: ...
        async def find_unique_with_id(self, what: Any, index: str, *values: Any) -> tuple[int, Any] | None: ...

        @overload
        async def insert(self, what: str, payload: _Payload) -> int: ...
        @overload
        async def insert(self, what: object) -> int: ...
        async def insert(self, what: Any, payload: Any = None) -> int: ...

        @overload
        async def insert_many(self, what: str, payloads: Iterable[_Doc] | Iterable[_Bytes]) -> list[int]: ...
        @overload
        async def insert_many(self, what: Iterable[object]) -> list[int]: ...
        async def insert_many(self, what: Any, payloads: Iterable[Any] | None = None) -> list[int]: ...

        @overload
        async def upsert(self, what: type[T], doc_id: int, payload: T) -> bool: ...
        @overload
        async def upsert(self, what: str, doc_id: int, payload: _Payload) -> bool: ...
        async def upsert(self, what: Any, doc_id: int, payload: Any) -> bool: ...

        @overload
        async def update(self, what: type[T], doc_id: int, fn: Callable[[T], T | None]) -> T: ...
        @overload
        async def update(self, what: str, doc_id: int, fn: Callable[[Any], Any]) -> Any: ...
        async def update(self, what: Any, doc_id: int, fn: Callable[[Any], Any]) -> Any: ...

        async def delete(self, what: Any, doc_id: int) -> bool: ...
        async def count(self, what: Any) -> int: ...
        async def migrate_all(self, what: type) -> int: ...
        async def drop_index(self, collection: Any, name: str) -> None: ...
else:
    _AsyncDocCalls = object


class AsyncTxn(_AsyncDocCalls):
    """A transaction driven from asyncio; every method is awaitable and runs
    on the transaction's own pinned thread. ``all``, ``iter_all`` and
    ``index_range`` are async iterators that stream in batches (and
    awaitable, giving a list);
    ``query``, ``collection`` and ``kv`` return (synchronously) an
    :class:`AsyncQuery`, :class:`AsyncCollection` or :class:`AsyncKv` whose
    operations are awaitable and run on that same thread."""

    def __init__(self, adb: AsyncDb, write: bool) -> None:
        self._adb = adb
        self._write = write
        self._pin = _Pinned()
        self._tx: Any = None
        self._task: asyncio.Task | None = None  # the task that entered it (a write transaction)

    async def __aenter__(self) -> AsyncTxn:
        if self._tx is not None or self._pin.done:
            raise InvalidArgumentError("transaction already finished (or already entered); begin a new one "
                                       "with adb.transaction()")
        db = self._adb._db
        db._handle()  # a closed Db: ClosedError, as the blocking API raises
        if self._write:
            self._adb._no_nested_write()
        try:
            self._tx = await self._pin.run(db.transaction if self._write else db.read_transaction,
                                           on_abandon=lambda tx: tx._abandon())
        except BaseException:
            self._pin.shutdown()
            raise
        if self._write:
            self._task = self._adb._writer_task = asyncio.current_task()
        return self

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> None:
        # The commit or rollback runs on the transaction's thread to its end
        # whatever happens to this task: a cancellation (a second one too)
        # while it waits behind a running call can no longer drop it and
        # leave the write transaction, and the database's write lock, open.
        # As for the one-call writes (AsyncDb._write_in_tx), a cancellation
        # (a timeout too) before the commit begins makes it a rollback and
        # raises CancelledError, so a caller told CancelledError or
        # TimeoutError knows nothing was written; one that comes once the
        # commit has begun cannot stop it, so the block ends as the commit
        # does and the cancellation reaches the task at its next await.
        tx = self._tx
        race = _CommitRace()

        def finish() -> None:
            if et is None and not race.commit_begins():
                tx.__exit__(asyncio.CancelledError, asyncio.CancelledError(), None)
            else:
                tx.__exit__(et, ev, tb)

        try:
            await self._to_end(finish, race, commits=self._write and et is None)
        finally:
            self._pin.shutdown()
            # (compared with the entering task: the exit may run in another
            # task, and a write transaction of another task may have begun)
            if self._write and self._adb._writer_task is self._task:
                self._adb._writer_task = None

    def __repr__(self) -> str:
        kind = "transaction" if self._write else "read_transaction"
        state = " (not entered)" if self._tx is None else (" finished" if self._tx.finished else "")
        return f"<obj.AsyncTxn {kind} on {self._adb._db.path!r}{state}>"

    def _live(self) -> bool:
        """Whether the transaction can still run calls on its thread; a
        finished one runs them inline, where they raise what the blocking API
        raises (InvalidArgumentError: transaction already finished)."""
        if self._tx is None:
            raise InvalidArgumentError("use the transaction as `async with adb.transaction() as tx:`")
        return not (self._pin.done or self._tx.finished)

    def __getattr__(self, name: str) -> Any:
        tx = self.__dict__.get("_tx")
        if tx is None:
            if name.startswith("_"):
                raise AttributeError(name)
            self._live()  # raises: not entered
        attr = getattr(tx, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        async def call(*a: Any, **k: Any) -> Any:
            return await self._run(attr, *a, **k)

        return call

    async def commit(self) -> None:
        """``await tx.commit()``: as the clean exit of ``async with``, a
        cancellation (a timeout too) that comes before the commit begins
        leaves the transaction uncommitted and raises CancelledError (the
        block's exit rolls it back when the error leaves the block); one
        that comes once it has begun
        cannot stop it, so the call ends as the commit does and the
        cancellation reaches the task at its next await."""
        if not self._write or not self._live():
            return await self._run(self._tx.commit)  # raises what the blocking API raises
        tx = self._tx
        race = _CommitRace()

        def finish() -> None:
            if race.commit_begins():
                tx.commit()

        await self._to_end(finish, race, commits=True)

    async def _to_end(self, finish: Callable[[], None], race: _CommitRace, commits: bool) -> None:
        """Runs ``finish`` on the transaction's thread to its end whatever
        happens to this task. When it commits (``commits``) and a
        cancellation came once the commit had begun, the call ends as the
        commit did (its outcome is the caller's) and the cancellation
        reaches the task at its next await."""
        try:
            await self._pin.run_to_end(finish, race.cancel)
        except asyncio.CancelledError as e:
            if not (commits and race.committing):
                raise
            _redeliver_cancel(race.taken_at)
            if e.__cause__ is not None:
                raise e.__cause__ from None

    def _runner(self, name: str) -> Callable:
        """How to run method ``name`` of a bound helper: on this
        transaction's thread, whatever it is."""
        return self._run

    async def _run(self, fn: Callable, *a: Any, **k: Any) -> Any:
        """Runs ``fn`` on the transaction's thread (an iterator it returns is
        drained there too); inline once the transaction is finished, where
        it raises what the blocking API raises."""
        r = await self._on_thread(functools.partial(fn, *a, **k))
        if hasattr(r, "__next__") and self._live():  # an iterator: drain it on this thread
            r = await self._pin.run(list, r)
        return r

    def _aiter(self, make: Callable) -> AsyncIterator:
        """An async iterator over ``make()``, run on the transaction's thread."""
        self._live()  # raises now when the transaction was never entered
        return self._iter(make)

    @overload
    def all(self, what: type[T]) -> AsyncStream[tuple[int, T]]: ...
    @overload
    def all(self, what: str) -> AsyncStream[tuple[int, Any]]: ...

    def all(self, what: Any) -> AsyncStream[tuple[int, Any]]:
        """``async for oid, doc in tx.all(Order)`` (``await`` gives the
        list)."""
        self._live()
        return AsyncStream(self, lambda: self._tx.all(what))

    def iter_all(self, collection: str) -> AsyncStream[tuple[int, Any]]:
        """``async for oid, payload in tx.iter_all("coll")`` (``await``
        gives the list)."""
        self._live()
        return AsyncStream(self, lambda: self._tx.iter_all(collection))

    @overload
    def index_range(self, what: type[T], index: str, lo: Any = None,
                    hi: Any = None) -> AsyncStream[tuple[int, T]]: ...
    @overload
    def index_range(self, what: str, index: str, lo: Any = None, hi: Any = None) -> AsyncStream[tuple[int, Any]]: ...

    def index_range(self, what: Any, index: str, lo: Any = None, hi: Any = None) -> AsyncStream[tuple[int, Any]]:
        """``async for oid, doc in tx.index_range(Order, "region", "us",
        "us")`` (``await`` gives the list)."""
        self._live()
        q = self._tx.query(what).index_range(index, lo, hi)  # bad arguments raise here, at the call
        return AsyncStream(self, q.iter)

    @overload
    def query(self, what: type[T]) -> AsyncQuery[T]: ...
    @overload
    def query(self, what: str) -> AsyncQuery[Any]: ...

    def query(self, what: Any) -> AsyncQuery[Any]:
        """``await tx.query(Order).filter(...).fetch()``: an :class:`AsyncQuery`
        read in this transaction (its own writes included), on its thread."""
        self._live()  # raises when not entered
        return AsyncQuery(self, self._tx.query(what))

    @overload
    def collection(self, what: type[T]) -> AsyncCollection[T]: ...
    @overload
    def collection(self, what: str) -> AsyncCollection[Any]: ...

    def collection(self, what: Any) -> AsyncCollection[Any]:
        """``orders = tx.collection(Order)`` then ``await orders.insert(o)``:
        an :class:`AsyncCollection` bound to this transaction."""
        self._live()
        return AsyncCollection(self, self._tx.collection(what))

    def kv(self, namespace: str) -> AsyncKv:
        """``await tx.kv("sessions").put(k, v)``: an :class:`AsyncKv` read and
        (in a write transaction) written through this transaction."""
        self._live()
        return AsyncKv(self, self._tx.kv(namespace))

    async def _on_thread(self, fn: Callable, *a: Any) -> Any:
        """``fn(*a)`` on the transaction's thread while it lives; inline once
        it is finished, where it raises what the blocking API raises."""
        if not self._live():
            return fn(*a)
        return await self._pin.run(fn, *a)

    async def _iter(self, make: Callable, batch: int = 256) -> AsyncIterator:
        # Streams in batches on the transaction's thread, so a scan of a big
        # collection holds one batch at a time, never the whole result.
        if not self._live():
            self._tx._handle()  # raises: the transaction is finished
        # A write in this transaction ends the iteration at its next step,
        # not after the rest of the batch in hand (read before the write).
        # The blocking API's id-order iterations go on after a write (they
        # read again after the last id given); this one, reading ahead in
        # batches, raises for every order, as the README says.
        at = self._tx._writes
        inner = _batches(self._on_thread, make, batch)
        try:
            async for x in inner:
                if self._tx._writes != at:
                    raise InvalidArgumentError(_STALE_CURSOR)
                yield x
        finally:
            await inner.aclose()


class AsyncDb(_AsyncDocCalls):
    """The asyncio face of :class:`obj.Db`. Create with
    ``adb = await obj.AsyncDb.open(path)`` (or ``obj.AsyncDb(path)``, as
    ``obj.Db(path)``, usable as ``async with``); every method of ``Db`` is an
    awaitable here, ``all`` / ``iter_all`` / ``index_range`` / ``dump_raw``
    are async iterators (and awaitable, giving a list), ``query`` returns an
    :class:`AsyncQuery`, ``kv`` an :class:`AsyncKv`, and
    ``transaction()`` / ``read_transaction()`` are async context managers."""

    def __init__(self, db: Db | str | os.PathLike, max_workers: int | None = None, **options: Any) -> None:
        if isinstance(db, (str, os.PathLike)):
            # As `obj.Db(path)` does (opening is quick; `await AsyncDb.open`
            # opens on a worker thread instead).
            db = Db(db, **options)
        elif not isinstance(db, Db):
            raise InvalidArgumentError(
                f"obj.AsyncDb(...) takes a path or an open obj.Db, not {type(db).__name__}; or open a file "
                f"with `adb = await obj.AsyncDb.open(path, **options)`"
            )
        elif options:
            raise InvalidArgumentError("options go with a path: obj.AsyncDb(path, **options)")
        self._db = db
        n = max_workers or min(8, (os.cpu_count() or 2) + 2)
        # Reads, and the writes that wait for the write lock, on separate
        # threads (made when first needed): a read never queues behind
        # writers waiting for that lock (which an open transaction may hold
        # while it awaits this read).
        self._ex = concurrent.futures.ThreadPoolExecutor(max_workers=n, thread_name_prefix="obj")
        self._fork_generation = fork_generation[0]
        self._wex = concurrent.futures.ThreadPoolExecutor(max_workers=n, thread_name_prefix="obj-w")
        # The task inside an open `async with adb.transaction()`, if any.
        self._writer_task: asyncio.Task | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike, **options: Any) -> AsyncDb:
        """Opens the database in a worker thread."""
        loop = asyncio.get_running_loop()
        db = await loop.run_in_executor(None, functools.partial(Db, path, **options))
        return cls(db)

    @property
    def db(self) -> Db:
        """The underlying blocking :class:`obj.Db`."""
        return self._db

    def _aiter(self, make: Callable[[], Iterable]) -> AsyncIterator:
        return _aiter_pinned(make, wrap=self._as_writer())

    async def _run(self, fn: Callable, *args: Any, **kw: Any) -> Any:
        """Runs a call that does not take the write lock on a worker thread."""
        return await self._submit(self._ex, self._as_writer()(fn), args, kw)

    def _as_writer(self) -> Callable[[Callable], Callable]:
        """Called by the task inside this database's open write transaction:
        a wrapper that runs a function as that transaction's thread, which
        ``Db`` knows holds the write lock, so that a read that would first
        build a class's missing declared indexes (find_unique, index_range,
        a query of the class) goes on at once, as on the blocking API's
        writer thread, instead of waiting the busy timeout for the lock its
        own task holds. For any other task, the function as it is."""
        w = self._db._writer
        if w is None or self._writer_task is None or self._writer_task is not asyncio.current_task():
            return _as_is
        tx = w[1]()
        if tx is None or tx.finished:
            # (its transaction was committed in the block, and the writer
            # now may be another thread's)
            return _as_is
        token = w[0]

        def wrap(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def run(*a: Any, **k: Any) -> Any:
                had = getattr(_thread_local, "token", None)
                _thread_local.token = token
                try:
                    return fn(*a, **k)
                finally:
                    _thread_local.token = had

            return run

        return wrap

    async def _run_write(self, fn: Callable, *args: Any, **kw: Any) -> Any:
        """Runs a call that takes the write lock on a writer thread."""
        self._no_nested_write()
        return await self._submit(self._wex, fn, args, kw)

    def _no_nested_write(self) -> None:
        """BusyError at once when the calling task is inside an open write
        transaction of this database, as the blocking API raises on its
        thread: the nested write would wait for the transaction that waits
        for it (the busy timeout, then BusyError)."""
        if self._writer_task is not None and self._writer_task is asyncio.current_task():
            raise BusyError(
                f"this task already holds the open write transaction of {self._db.path!r}; a nested write "
                f"(adb.transaction() or a one-call write such as adb.insert) cannot begin until it ends: "
                f"write through the open transaction (await tx.insert(...)) instead"
            )

    def _runner(self, name: str) -> Callable:
        """How to run method ``name`` (of Db or of a key-value namespace)."""
        return self._run_write if name in _WRITES else self._run

    async def _submit(self, ex: concurrent.futures.Executor, fn: Callable, args: tuple, kw: dict) -> Any:
        self._db._handle()  # closed: ClosedError, like the blocking Db (the executor is gone too)
        if self._fork_generation != fork_generation[0]:
            # A forked child: the executors' threads are the parent's and do
            # not exist here (a call handed to them would never run). Run it
            # here, where the handle raises what the blocking Db raises.
            return fn(*args, **kw)
        loop = asyncio.get_running_loop()
        try:
            fut = loop.run_in_executor(ex, functools.partial(fn, *args, **kw))
        except RuntimeError:  # closed by another task since the check above
            self._db._handle()
            raise
        return await fut

    async def _write_in_tx(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(tx)`` in a write transaction of its own on a writer thread;
        the call's outcome is the write's. A cancellation (a timeout too)
        that comes before the commit begins rolls the write back and raises
        CancelledError; one that comes once the commit has begun cannot stop
        it, so the call waits for the commit and returns its result (or
        raises its error): a caller told CancelledError or TimeoutError can
        retry without writing twice. A cancellation that no timeout scope
        takes back then reaches the task at its next await."""
        db = self._db
        race = _CommitRace()
        outcome: concurrent.futures.Future = concurrent.futures.Future()

        def work() -> Any:
            try:
                if race.cancelled:  # (before waiting for the write lock)
                    raise _CancelledWrite()
                with db.transaction() as tx:  # (waits for the write lock)
                    r = fn(tx)
                    if not race.commit_begins():
                        raise _CancelledWrite()  # rolls back
            except BaseException as e:
                outcome.set_exception(e)
                raise
            outcome.set_result(r)
            return r

        _take_owed_cancel()
        try:
            return await self._run_write(work)
        except asyncio.CancelledError:
            if race.cancel():
                raise
        # The commit had begun: its outcome is the call's, whatever further
        # cancellations come meanwhile; the cancellation itself goes back to
        # the task for its next await (see _redeliver_cancel).
        waiter = asyncio.wrap_future(outcome)
        try:
            while not waiter.done():
                try:
                    await asyncio.shield(waiter)
                except asyncio.CancelledError:
                    pass
            return waiter.result()
        finally:
            _redeliver_cancel(race.taken_at)

    def _shutdown(self) -> None:
        self._ex.shutdown(wait=False)
        self._wex.shutdown(wait=False)

    async def close(self) -> None:
        """Closes the database (clean close: the WAL is folded). Idempotent."""
        if self._db.closed:
            self._shutdown()
            return
        try:
            await self._run(self._db.close)
        finally:
            self._shutdown()

    async def __aenter__(self) -> AsyncDb:
        return self

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> None:
        if et is None:
            await self.close()
        elif not self._db.closed:
            try:
                await self._run(self._db._close, False)
            finally:
                self._shutdown()

    def __repr__(self) -> str:
        return f"<obj.AsyncDb {self._db!r}>"

    def transaction(self) -> AsyncTxn:
        """``async with adb.transaction() as tx:`` (commits on clean exit)."""
        return AsyncTxn(self, True)

    def read_transaction(self) -> AsyncTxn:
        """``async with adb.read_transaction() as tx:``."""
        return AsyncTxn(self, False)

    @overload
    def query(self, what: type[T]) -> AsyncQuery[T]: ...
    @overload
    def query(self, what: str) -> AsyncQuery[Any]: ...

    def query(self, what: Any) -> AsyncQuery[Any]:
        """An awaitable query builder."""
        return AsyncQuery(self, self._db.query(what))

    def _stream(self, make: Callable[[], Iterable[T]]) -> AsyncStream[T]:
        """An :class:`AsyncStream` over ``make()``, a Db iterator made now
        (its arguments and the handle are checked at the call; nothing is
        read yet), read on a worker thread; made again for a second pass."""
        first = [make()]
        return AsyncStream(self, lambda: first.pop() if first else make())

    @overload
    def all(self, what: type[T]) -> AsyncStream[tuple[int, T]]: ...
    @overload
    def all(self, what: str) -> AsyncStream[tuple[int, Any]]: ...

    def all(self, what: Any) -> AsyncStream[tuple[int, Any]]:
        """``async for oid, doc in adb.all(Order)`` (``await`` gives the
        list), as in a transaction."""
        return self._stream(lambda: self._db.all(what))

    def iter_all(self, collection: str) -> AsyncStream[tuple[int, Any]]:
        """``async for oid, payload in adb.iter_all("coll")`` (``await``
        gives the list)."""
        return self._stream(lambda: self._db.iter_all(collection))

    @overload
    def index_range(self, what: type[T], index: str, lo: Any = None,
                    hi: Any = None) -> AsyncStream[tuple[int, T]]: ...
    @overload
    def index_range(self, what: str, index: str, lo: Any = None, hi: Any = None) -> AsyncStream[tuple[int, Any]]: ...

    def index_range(self, what: Any, index: str, lo: Any = None, hi: Any = None) -> AsyncStream[tuple[int, Any]]:
        """``async for oid, doc in adb.index_range(Order, "region", "us",
        "us")`` (``await`` gives the list)."""
        return self._stream(lambda: self._db.index_range(what, index, lo, hi))

    def dump_raw(self, collection: str, max_records: int | None = None) -> AsyncStream[RawRecord]:
        """``async for rec in adb.dump_raw("orders")``: the records of
        :meth:`Db.dump_raw`, read on a worker thread (``await
        adb.dump_raw(...)`` gives them as a list). Bad arguments raise
        here, at the call."""
        return self._stream(lambda: self._db.dump_raw(collection, max_records))

    def kv(self, namespace: str) -> AsyncKv:
        """``await adb.kv("sessions").put(k, v)``, ``await
        adb.kv("sessions").get(k)``, ``async for k, v in
        adb.kv("sessions").scan(prefix=...)``: an :class:`AsyncKv` whose
        calls each run in their own transaction on a worker thread."""
        return AsyncKv(self, self._db.kv(namespace))  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._db, name)
        if not callable(attr):
            return attr
        # (wraps: help() and inspect.signature show the Db method's)
        if name in _TX_WRITES:

            @functools.wraps(attr)
            async def write(*a: Any, **k: Any) -> Any:
                return await self._write_in_tx(lambda tx: getattr(tx, name)(*a, **k))

            return write
        run = self._runner(name)

        @functools.wraps(attr)
        async def call(*a: Any, **k: Any) -> Any:
            return await run(attr, *a, **k)

        return call

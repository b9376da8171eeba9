"""Review 43 (asyncio under cancellation):

- ``await tx.commit()`` in ``async with adb.transaction()`` timed out once
  its commit had begun raised TimeoutError though the commit was applied
  (a retry wrote twice), unlike the block's own exit and the one-call
  writes. It now ends as the commit does; a timeout before the commit
  begins still leaves nothing written.
- A read of ``AsyncDb`` that first builds a class's missing declared
  indexes (find_unique, index_range, a query of the class) awaited by the
  task inside its own open write transaction waited the whole busy timeout
  for the lock that task holds; the blocking API goes on at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated

import obj


def test_a_timeout_during_an_explicit_commit_gives_the_commit(tmp_path, slow_commits):
    begun = slow_commits(0.3)

    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "c.obj"))
        async with adb.transaction() as tx:
            await tx.insert("c", {"a": 1})
            await asyncio.wait_for(tx.commit(), 0.05)  # the commit has begun: no TimeoutError
        assert begun and await adb.count("c") == 1
        await adb.close()

    asyncio.run(main())


def test_a_timeout_before_an_explicit_commit_begins_writes_nothing(tmp_path):
    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "c.obj"))
        await adb.insert("c", {"a": 0})
        try:
            async with adb.transaction() as tx:
                # The commit queues behind a long insert on the transaction's thread.
                big = asyncio.ensure_future(tx.insert_many("c", [{"i": i} for i in range(50000)]))
                await asyncio.sleep(0)
                await asyncio.wait_for(tx.commit(), 0.001)
        except asyncio.TimeoutError:
            told = "timeout"
        else:
            told = "committed"
        await asyncio.gather(big, return_exceptions=True)
        n = await adb.count("c")
        assert (told, n) in (("timeout", 1), ("committed", 50001))
        async with adb.transaction() as tx:  # the write lock is free
            await tx.insert("c", {"a": 2})
        await adb.close()

    asyncio.run(main())


@obj.document(collection="users43", version=1)
@dataclass
class U:
    email: Annotated[str, obj.Unique]
    region: Annotated[str, obj.Index]


def test_a_read_of_the_writer_task_does_not_wait_for_its_own_lock(tmp_path):
    path = str(tmp_path / "r.obj")
    db = obj.Db(path)
    db.insert("users43", {"email": "a@b", "region": "us"})  # no indexes yet
    db.close()

    async def main():
        adb = await obj.AsyncDb.open(path, busy_timeout_ms=3000)
        calls = [
            lambda: adb.find_unique(U, "email", "a@b"),
            lambda: adb.index_range(U, "region", "us", "us"),
            lambda: adb.query(U).index_range("region", "us", "us").fetch(),
        ]

        async def stream():
            return [x async for x in adb.index_range(U, "region", "us", "us")]

        calls.append(stream)
        for call in calls:
            async with adb.transaction() as tx:
                await tx.insert("other", {"x": 1})
                t0 = time.monotonic()
                try:
                    await call()
                except obj.NotFoundError:
                    pass  # as the blocking API on its writer thread
                assert time.monotonic() - t0 < 1.0
        # Outside the transaction the read builds them and finds the document.
        assert (await adb.find_unique(U, "email", "a@b")).region == "us"
        await adb.close()

    asyncio.run(main())


def test_async_methods_show_the_signature_and_help_of_the_blocking_ones(tmp_path):
    # They showed (*a, **k) to inspect.signature and help().
    import inspect

    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "s.obj"))
        db = obj.Db  # the blocking methods' signatures
        for name in ("insert", "get", "upsert", "delete", "count", "checkpoint"):
            assert inspect.signature(getattr(adb, name)) == inspect.signature(getattr(db, name)).replace(
                parameters=list(inspect.signature(getattr(db, name)).parameters.values())[1:]), name
            assert inspect.iscoroutinefunction(getattr(adb, name)), name
        async with adb.transaction() as tx:
            assert inspect.signature(tx.insert) == inspect.signature(tx._tx.insert)
            assert inspect.iscoroutinefunction(tx.insert)
        await adb.close()

    asyncio.run(main())


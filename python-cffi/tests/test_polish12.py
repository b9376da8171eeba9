"""Session 12 polish: behaviour found by the review-12 readings."""

import asyncio
import time

import pytest

import obj


async def test_nested_async_write_in_the_same_task_is_busy_at_once(path):
    # The blocking API raises BusyError at once for a write nested in the
    # thread's open transaction; the async one waited out the busy timeout.
    async with await obj.AsyncDb.open(path, busy_timeout_ms=3000) as adb:
        async with adb.transaction() as tx:
            await tx.insert("c", {"i": 0})
            t0 = time.monotonic()
            with pytest.raises(obj.BusyError, match="already holds the open write transaction"):
                await adb.insert("c", {"i": 1})
            with pytest.raises(obj.BusyError):
                async with adb.transaction():
                    pass
            assert time.monotonic() - t0 < 1.0
            # The open transaction is untouched and still commits.
            await tx.insert("c", {"i": 2})
        assert sorted(d["i"] for _, d in await adb.all("c")) == [0, 2]
        # Once it has ended, the same task writes again.
        await adb.insert("c", {"i": 3})
        assert await adb.count("c") == 3


async def test_another_task_still_waits_for_the_open_write_transaction(path):
    async with await obj.AsyncDb.open(path, busy_timeout_ms=5000) as adb:
        order = []

        async def other():
            await adb.insert("c", {"who": "other"})
            order.append("other")

        async with adb.transaction() as tx:
            task = asyncio.create_task(other())
            await asyncio.sleep(0.2)
            await tx.insert("c", {"who": "tx"})
            order.append("tx")
        await task
        assert order == ["tx", "other"]
        assert await adb.count("c") == 2


async def test_a_write_transaction_exited_from_another_task_frees_the_entering_task(path):
    async with await obj.AsyncDb.open(path, busy_timeout_ms=3000) as adb:
        tx = adb.transaction()
        await tx.__aenter__()
        await tx.insert("c", {"i": 0})

        async def leave():
            await tx.__aexit__(None, None, None)

        await asyncio.create_task(leave())
        # The transaction has ended: the task that entered it writes again.
        await adb.insert("c", {"i": 1})
        assert await adb.count("c") == 2

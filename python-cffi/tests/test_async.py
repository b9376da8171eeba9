"""obj.AsyncDb with pytest-asyncio."""

import asyncio
import threading
from dataclasses import dataclass

import pytest

import obj


@obj.document(collection="items")
@dataclass
class Item:
    n: int


async def test_async_crud_query_and_iteration(path):
    adb = await obj.AsyncDb.open(path)
    ids = await adb.insert_many([Item(n=i) for i in range(10)])
    assert await adb.get(Item, ids[3]) == Item(n=3)
    got = [o.n async for _, o in adb.all(Item)]
    assert got == list(range(10))
    q = adb.query(Item).filter(obj.field("n") >= 5).sort_by("-n")
    assert [o.n for _, o in await q.fetch()] == [9, 8, 7, 6, 5]
    assert await q.count() == 5
    assert [o.n async for _, o in q.limit(2)] == [9, 8]
    assert isinstance(await q.explain(), str)
    await adb.close()


async def test_async_transaction_pins_one_thread_and_rolls_back(path):
    adb = await obj.AsyncDb.open(path)
    threads = set()
    async with adb.transaction() as tx:
        for i in range(5):
            await tx.insert(Item(n=i))
            threads.add(await tx._pin.run(threading.get_ident))
        assert await tx.count(Item) == 5
        assert len([x async for x in tx.all(Item)]) == 5
    assert len(threads) == 1
    with pytest.raises(RuntimeError):
        async with adb.transaction() as tx:
            await tx.insert(Item(n=99))
            raise RuntimeError("no")
    assert await adb.count(Item) == 5
    async with adb.read_transaction() as rx:
        assert await rx.get(Item, 1) == Item(n=0)
    await adb.close()


async def test_async_concurrent_calls(path):
    async with await obj.AsyncDb.open(path) as adb:
        await asyncio.gather(*(adb.insert("c", {"i": i}) for i in range(20)))
        assert await adb.count("c") == 20
        kv = adb.db.kv("k")
        kv.put(b"a", b"1")
        assert adb.db.kv("k").get(b"a") == b"1"


async def test_async_closed_and_finished_raise_the_blocking_errors(path):
    with pytest.raises(obj.InvalidArgumentError, match=r"AsyncDb\.open"):
        obj.AsyncDb(42)  # neither a path nor a Db: says how to open one
    async with obj.AsyncDb(path) as direct:  # a path opens, as obj.Db(path) does
        await direct.insert(Item(n=0))
    adb = await obj.AsyncDb.open(path)
    async with adb.transaction() as tx:
        await tx.insert(Item(n=1))
    with pytest.raises(obj.InvalidArgumentError, match="already finished"):
        await tx.insert(Item(n=2))
    with pytest.raises(obj.InvalidArgumentError, match="already finished"):
        await tx.count(Item)
    with pytest.raises(obj.InvalidArgumentError, match="already finished"):
        [x async for x in tx.all(Item)]
    with pytest.raises(obj.InvalidArgumentError, match="already finished"):
        async with tx:
            pass
    await adb.close()
    await adb.close()  # idempotent, like Db.close
    with pytest.raises(obj.ClosedError):
        await adb.insert(Item(n=3))
    with pytest.raises(obj.ClosedError):
        await adb.get(Item, 1)
    with pytest.raises(obj.ClosedError):
        [x async for x in adb.all(Item)]
    with pytest.raises(obj.ClosedError):
        async with adb.transaction():
            pass

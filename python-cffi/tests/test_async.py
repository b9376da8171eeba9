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


async def test_async_transaction_query_collection_and_kv_are_awaitable_on_its_thread(path):
    # As in the blocking API: tx.query / tx.collection / tx.kv see the
    # transaction's own writes; here their operations are awaited and run on
    # the transaction's pinned thread.
    adb = await obj.AsyncDb.open(path)
    pinned, threads = set(), set()

    async with adb.transaction() as tx:
        pinned.add(await tx._pin.run(threading.get_ident))
        handle = tx._tx._handle

        def spy():  # every C call of the blocking transaction takes its handle here
            threads.add(threading.get_ident())
            return handle()

        tx._tx._handle = spy
        await tx.insert(Item(n=1))
        q = tx.query(Item)
        assert isinstance(q, obj.AsyncQuery)
        assert await q.fetch() == [(1, Item(n=1))]
        assert await q.filter(obj.field("n") >= 1).count() == 1
        assert await q.first() == (1, Item(n=1))
        assert [x async for x in q] == [(1, Item(n=1))]
        items = tx.collection(Item)
        assert isinstance(items, obj.AsyncCollection)
        assert await items.insert(Item(n=2)) == 2
        assert await items.insert_many([Item(n=3), Item(n=4)]) == [3, 4]
        assert await items.get(2) == Item(n=2)
        assert await items.count_all() == 4
        assert await items.update(4, lambda o: Item(n=40)) == Item(n=40)
        assert await items.delete(3) is True
        assert [o.n async for _, o in items.all()] == [1, 2, 40]
        assert [o.n for _, o in await items.query().filter(obj.field("n") > 1).fetch()] == [2, 40]
        ns = tx.kv("sessions")
        assert isinstance(ns, obj.AsyncKv) and ns.name == "sessions"
        await ns.put(b"user:1", b"a")
        await ns.put(b"user:2", b"b")
        assert await ns.get(b"user:1") == b"a"
        assert [k async for k, _ in ns.scan(prefix=b"user:")] == [b"user:1", b"user:2"]
        assert await ns.keys() == [b"user:1", b"user:2"]
        assert await ns.delete(b"user:2") is True
        assert await tx.kv("empty").create() is True
    assert threads == pinned  # all on the transaction's one thread
    assert await adb.count(Item) == 3 and adb.db.kv("sessions").keys() == [b"user:1"]
    assert await adb.kv("empty").create() is False and await adb.kv("also_empty").create() is True
    assert adb.db.kv_namespaces() == ["also_empty", "empty", "sessions"]

    async with adb.read_transaction() as rx:
        assert await rx.query(Item).count() == 3
        assert await rx.collection(Item).get(1) == Item(n=1)
        assert await rx.kv("sessions").get(b"user:1") == b"a"
        with pytest.raises(obj.InvalidArgumentError):
            await rx.collection(Item).insert(Item(n=5))
        with pytest.raises(obj.InvalidArgumentError):
            await rx.kv("sessions").put(b"k", b"v")
    # a finished transaction's handles raise what the blocking API raises
    with pytest.raises(obj.InvalidArgumentError, match="already finished"):
        await tx.query(Item).fetch()
    with pytest.raises(obj.InvalidArgumentError, match="already finished"):
        await items.insert(Item(n=6))
    with pytest.raises(obj.InvalidArgumentError, match="already finished"):
        await ns.get(b"user:1")
    # and one never entered says how to use it
    with pytest.raises(obj.InvalidArgumentError, match="async with"):
        adb.transaction().query(Item)
    await adb.close()

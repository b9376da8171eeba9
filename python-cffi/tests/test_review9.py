"""Fixes from review 9: bool ids in get_many, the message for a class passed
as a document, find_unique with pre-encoded bytes, async iterators of an
async transaction, one transaction used by several threads, union fields,
cancellation while an async transaction exits, and AsyncDb scheduling of
reads behind waiting writers."""

import asyncio
import datetime as dt
import enum
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Optional, Union

import pytest

import obj


@obj.document(collection="r9_items")
@dataclass
class Item:
    n: int
    tag: str = ""


# -- 5. a bool is not a document id, in get_many as in get ---------------------------


def test_get_many_refuses_bool_ids(db):
    db.insert(Item(5))
    db.insert("d", {"a": 1})
    db.insert("raw", b"x")
    with pytest.raises(obj.InvalidArgumentError):
        db.get(Item, True)
    for what in (Item, "d", "raw", "missing"):
        with pytest.raises(obj.InvalidArgumentError, match="bool"):
            db.get_many(what, [True])
        with pytest.raises(obj.InvalidArgumentError, match="bool"):
            db.get_many(what, [1, False])
    with db.read_transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError, match="bool"):
            tx.collection(Item).get_many([True])
        with pytest.raises(obj.InvalidArgumentError):
            tx.get_many("d", [-1])
        with pytest.raises(obj.InvalidArgumentError):
            tx.get_many("missing", [2**64])


def test_get_many_still_takes_int_like_ids(db):
    class Id(enum.IntEnum):
        ONE = 1

    db.insert(Item(5))
    db.insert("d", {"a": 1})
    assert db.get_many(Item, [Id.ONE, 1, 2]) == [Item(5), Item(5), None]
    assert db.get_many("d", (i for i in [1, 2])) == [{"a": 1}, None]
    assert db.get_many("d", []) == []


# -- 8. a class passed where a document instance goes: one clear message -------------


@obj.document(collection="r9_u")
@dataclass
class U:
    email: str


def test_class_for_instance_message_does_not_depend_on_caches(path):
    with obj.Db(path) as db:
        for _ in range(2):  # before the collection is set up, and after (the one-call fast path)
            with pytest.raises(obj.InvalidArgumentError, match="insert takes a document instance"):
                db.insert(U)
            with pytest.raises(obj.InvalidArgumentError, match="instance"):
                db.upsert(U, 1, U)
            with pytest.raises(obj.InvalidArgumentError, match="instance"):
                db.insert_many([U])
            with db.transaction() as tx:
                with pytest.raises(obj.InvalidArgumentError, match="instance"):
                    tx.upsert(U, 1, U)
                with pytest.raises(obj.InvalidArgumentError, match="insert takes a document instance"):
                    tx.collection(U).insert(U)
            db.insert(U("x@y"))
        assert db.count(U) == 2


# -- 7. find_unique with a pre-encoded (UTF-8 bytes) key of a str field --------------


@obj.document(collection="r9_emails", indexes=[obj.Composite(("region", "email"), name="by_re", unique=True)])
@dataclass
class Mail:
    email: Annotated[str, obj.Unique]
    region: str = "us"
    blob: Annotated[bytes, obj.Unique] = b""
    alias: Annotated[Optional[str], obj.Unique] = None


def test_find_unique_takes_utf8_bytes_for_a_str_field(db):
    m = Mail("a@b.com", blob=b"\xff\x00", alias="é")
    oid = db.insert(m)
    assert db.find_unique(Mail, "email", "a@b.com") == m
    assert db.find_unique(Mail, "email", b"a@b.com") == m
    assert db.find_unique(Mail, "email", bytearray(b"a@b.com")) == m
    assert db.find_unique(Mail, "alias", "é".encode()) == m
    assert db.find_unique_with_id(Mail, "email", b"a@b.com") == (oid, m)
    assert db.find_unique(Mail, "by_re", "us", b"a@b.com") == m
    assert db.find_unique(Mail, "by_re", (b"us", b"a@b.com")) == m
    assert db.find_unique_many(Mail, "email", [b"a@b.com", "a@b.com", b"zz"]) == [m, m, None]
    assert db.find_unique_many(Mail, "by_re", [(b"us", b"a@b.com")]) == [m]
    assert db.find_unique(Mail, "email", b"nobody") is None
    # a bytes field keeps its bytes (no decoding)
    assert db.find_unique(Mail, "blob", b"\xff\x00") == m
    with db.read_transaction() as tx:
        assert tx.collection(Mail).find_unique("email", b"a@b.com") == m
        with pytest.raises(obj.InvalidArgumentError, match="UTF-8"):
            tx.find_unique(Mail, "email", b"\xff")
        with pytest.raises(obj.InvalidArgumentError, match="UTF-8"):
            tx.find_unique_many(Mail, "email", [b"\xff"])


# -- 6. async for over tx.index_range / tx.iter_all in an async transaction ----------


@obj.document(collection="r9_idx")
@dataclass
class Ix:
    region: Annotated[str, obj.Index]


async def test_async_txn_index_range_and_iter_all_are_async_iterators(path):
    adb = await obj.AsyncDb.open(path)
    await adb.insert(Ix("us"))
    await adb.insert(Ix("eu"))
    await adb.insert("raw", b"r1")
    async with adb.transaction() as tx:
        await tx.insert(Ix("us"))  # its own writes are seen
        got = [x async for x in tx.index_range(Ix, "region", "us", "us")]
        assert [d for _, d in got] == [Ix("us"), Ix("us")]
        assert [i for i, _ in await tx.index_range(Ix, "region", "us", "us")] == [i for i, _ in got]
        assert [p async for p in tx.iter_all("raw")] == [(1, b"r1")]
        assert await tx.iter_all("raw") == [(1, b"r1")]
        assert len([x async for x in tx.iter_all("r9_idx")]) == 3
        with pytest.raises(obj.InvalidArgumentError):
            tx.index_range(Ix, 5)  # a bad argument raises at the call
    async with adb.read_transaction() as rx:
        assert len([x async for x in rx.index_range(Ix, "region", "us", "us")]) == 2
        assert len([x async for x in rx.index_range(Ix, "region")]) == 3
    with pytest.raises(obj.InvalidArgumentError):  # finished: as the blocking API
        [x async for x in rx.iter_all("raw")]
    await adb.close()


# -- 2. one transaction used from several threads at once (a misuse) ----------------
# Each call's output slots are the calling thread's, and ending a transaction
# never frees the handle under another thread's call. Run in a child process:
# before the fix this corrupted the heap (the process aborted).

SHARED_TXN = textwrap.dedent(r"""
    import sys, threading, time
    import obj
    db = obj.Db(sys.argv[1])
    mode = sys.argv[2]
    died = []
    def guard(fn, k):
        try:
            fn(k)
        except BaseException as e:
            died.append(e)
    def run(fn, n=4):
        ts = [threading.Thread(target=guard, args=(fn, k)) for k in range(n)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    if mode == "write":
        tx = db.transaction()
        got, bad = {}, []
        def w(k):
            for i in range(1500):
                p = b"%d:%d" % (k, i)
                oid = tx.insert("r", p) if i % 2 else tx.insert("d", {"p": p.decode()})
                if (oid, i % 2) in got:
                    bad.append(oid)
                got[(oid, i % 2)] = p
        run(w)
        tx.commit()
        wrong = sum(1 for (i, raw), p in got.items()
                    if db.get("r" if raw else "d", i) != (p if raw else {"p": p.decode()}))
        print("dups", len(bad), "wrong", wrong + len(died), "n", len(got))
    elif mode == "read":
        db.insert_many("c", [{"i": i, "pad": "x" * (i % 50)} for i in range(2000)])
        db.insert_many("r", [bytes([i % 256]) * (100 + i % 3000) for i in range(2000)])
        bad = []
        def r(k):
            for j in range(4000):
                i = (j * 7 + k) % 2000
                if rx.get("c", i + 1) != {"i": i, "pad": "x" * (i % 50)}:
                    bad.append(i)
                if rx.get("r", i + 1) != bytes([i % 256]) * (100 + i % 3000):
                    bad.append(i)
                if rx.count("c") != 2000 or rx.find_unique("c", "nope", i) != {"i": i, "pad": "x" * (i % 50)}:
                    bad.append(i)
        db.create_index("c", "nope", ["i"], "unique")
        rx = db.read_transaction()
        run(r)
        print("dups 0 wrong", len(bad) + len(died), "n", 4)
    else:  # end the transaction while other threads are inside calls on it
        db.insert_many("r", [bytes([i % 256]) * (100 + i % 3000) for i in range(3000)])
        errs = set()
        for rnd in range(150):
            tx = db.read_transaction() if rnd % 2 else db.transaction()
            stop = []
            def r(k):
                j = 0
                while not stop:
                    j += 1
                    try:
                        tx.get("r", (j * 7 + k) % 3000 + 1)
                    except obj.InvalidArgumentError:
                        pass
            ts = [threading.Thread(target=r, args=(k,)) for k in range(3)]
            [t.start() for t in ts]
            time.sleep(0.002)
            tx.close() if rnd % 2 else tx.rollback()
            time.sleep(0.001)
            stop.append(1)
            [t.join() for t in ts]
        db.insert("r", b"after")  # the write lock is free
        print("dups 0 wrong 0 n", 150)
""")


@pytest.mark.parametrize("mode", ["write", "read", "end"])
def test_one_transaction_used_by_threads_at_once(tmp_path, mode):
    script = tmp_path / "shared.py"
    script.write_text(SHARED_TXN)
    r = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "x.obj"), mode], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"rc={r.returncode}: {r.stderr.strip()[-300:]}"
    out = r.stdout.split()
    assert out[:4] == ["dups", "0", "wrong", "0"], r.stdout


# -- 3. union fields decode with the arm that fits the stored value ------------------


@dataclass
class Cat:
    name: str


@dataclass
class Dog:
    name: str
    good: bool = True


@dataclass
class Fish:
    name: str
    fins: int


class Color(enum.Enum):
    RED = "red"


@obj.document(collection="r9_pets")
@dataclass
class Pet:
    animal: Union[Cat, Dog]
    others: list[Union[Cat, Dog, Fish]] = field(default_factory=list)
    maybe: Optional[Union[Dog, Cat]] = None
    num: Union[float, int] = 0
    num2: Union[int, float] = 0
    flag: Union[int, bool] = 0
    text: Union[str, bytes] = ""
    uid: Union[str, uuid.UUID] = ""
    day: Union[str, dt.date] = ""
    color: Union[str, Color] = ""
    fl: Union[float, str] = ""
    any_: Union[Cat, Any] = None


def test_union_fields_round_trip_exactly(db):
    u = uuid.uuid4()
    p = Pet(
        Dog("rex", False),
        [Cat("c"), Dog("d", True), Fish("f", 2)],
        Cat("m"),
        2,
        2.0,
        True,
        b"b",
        u,
        dt.date(2024, 1, 2),
        Color.RED,
        1.5,
        Cat("x"),
    )
    i = db.insert(p)
    got = db.get(Pet, i)
    assert got == p
    assert type(got.num) is int and type(got.num2) is float and got.flag is True
    p2 = Pet(
        Cat("tom"),
        num=2.0,
        num2=3,
        flag=5,
        text="t",
        uid="not-a-uuid",
        day="monday",
        color="blue",
        fl="x",
        any_={"k": 1},
    )
    j = db.insert(p2)
    got2 = db.get(Pet, j)
    assert got2 == p2
    assert type(got2.num) is float and type(got2.num2) is int and type(got2.flag) is int
    assert [x for _, x in db.all(Pet)] == [p, p2]
    assert db.get_many(Pet, [i, j]) == [p, p2]
    # a no-op update writes back what was stored
    before = db.get("r9_pets", i)
    db.update(Pet, i, lambda pet: None)
    assert db.get("r9_pets", i) == before
    assert before["animal"] == {"name": "rex", "good": False}
    assert before["others"][1] == {"name": "d", "good": True}


def test_union_field_stored_by_other_writers(db):
    base = {
        "others": [],
        "maybe": None,
        "num": 0,
        "num2": 0,
        "flag": 0,
        "text": "",
        "uid": "",
        "day": "",
        "color": "",
        "fl": "",
        "any_": None,
    }
    db.insert(Pet(Cat("seed")))  # sets the collection up
    # the arm whose fields are exactly the keys wins over one lacking a field with a default (even if
    # declared first); an int in a float-or-str field reads as a float
    i = db.insert(
        "r9_pets",
        {**base, "animal": {"name": "a"}, "maybe": {"name": "z"}, "fl": 3, "others": [{"name": "n", "fins": 1}]},
    )
    got = db.get(Pet, i)
    assert got.animal == Cat("a") and got.maybe == Cat("z") and got.others == [Fish("n", 1)]
    assert got.fl == 3.0 and type(got.fl) is float
    # a map with a key no arm has (a field dropped since): the arm with the fewest unknown keys
    j = db.insert("r9_pets", {**base, "animal": {"name": "b", "good": False, "color": "x"}})
    assert db.get(Pet, j).animal == Dog("b", False)
    # a value no arm takes is an error, not a guess
    k = db.insert("r9_pets", {**base, "animal": {"nom": "c"}})
    with pytest.raises(obj.InvalidArgumentError, match="animal"):
        db.get(Pet, k)
    k2 = db.insert("r9_pets", {**base, "animal": {"name": "c"}, "num": "two"})
    with pytest.raises(obj.InvalidArgumentError, match="num"):
        db.get(Pet, k2)


# -- 1. cancellation (twice) while an async transaction exits -------------------------


async def _cancel_twice(task, first=0.005):
    await asyncio.sleep(first)
    task.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    return await asyncio.gather(task, return_exceptions=True)  # keeps the exception and its frames


async def test_double_cancel_while_async_txn_exits_does_not_leak_the_write_lock(path):
    adb = await obj.AsyncDb.open(path, busy_timeout_ms=1000)
    await adb.insert_many([Item(i) for i in range(20000)])
    for body in ("query", "clean"):
        inside = asyncio.Event()

        async def victim(inside=inside, body=body):
            async with adb.transaction() as tx:
                await tx.insert(Item(1, "dc"))
                inside.set()
                if body == "query":
                    await tx.query(Item).fetch()  # still running on the txn's thread when cancelled
                else:
                    await asyncio.sleep(0.005)  # the cancellations land while the commit is queued or running

        t = asyncio.create_task(victim())
        await inside.wait()
        res = await _cancel_twice(t, 0.005 if body == "query" else 0.004)
        assert isinstance(res[0], asyncio.CancelledError), res
        # the transaction has ended by the time the task has: no wait, the write lock is free
        await adb.insert(Item(2))
        if body == "query":
            assert await adb.query(Item).filter(obj.field("tag") == "dc").count() == 0
    await adb.close()


async def test_cancel_while_async_txn_waits_for_the_write_lock(path):
    adb = await obj.AsyncDb.open(path, busy_timeout_ms=3000)
    await adb.insert(Item(0))
    hold = asyncio.Event()
    release = asyncio.Event()

    async def holder():
        async with adb.transaction() as tx:
            await tx.insert(Item(1))
            hold.set()
            await release.wait()

    async def waiter():
        async with adb.transaction() as tx:  # waits (on its thread) for the holder's lock
            await tx.insert(Item(2, "waiter"))

    h = asyncio.create_task(holder())
    await hold.wait()
    w = asyncio.create_task(waiter())
    res = await _cancel_twice(w, 0.05)
    assert isinstance(res[0], asyncio.CancelledError)
    release.set()
    await h
    await asyncio.sleep(0.2)  # the waiter's begin returns once the holder commits, and is ended at once
    await asyncio.wait_for(adb.insert(Item(3)), 2)
    assert await adb.query(Item).filter(obj.field("tag") == "waiter").count() == 0
    await adb.close()


# -- 4. AsyncDb: reads never queue behind one-call writes waiting for the write lock --


async def test_asyncdb_reads_do_not_wait_behind_writers_waiting_for_the_lock(path):
    adb = obj.AsyncDb(path, max_workers=2)
    oid = await adb.insert(Item(0))
    await adb.kv("s").put(b"k", b"v")
    locked, read = asyncio.Event(), asyncio.Event()

    async def long_txn():
        # Held until the reads are done (not for a fixed time, which a
        # loaded machine can outlast before the reads even start); reads
        # that queued behind the writers would end only after the 10 s.
        async with adb.transaction() as tx:
            await tx.insert(Item(1))
            locked.set()
            try:
                await asyncio.wait_for(read.wait(), 10)
            except asyncio.TimeoutError:
                pass

    async def writer(i):
        # Only once the long transaction holds the lock: a writer that took
        # it first would commit before the reads and change their counts.
        await locked.wait()
        await adb.insert(Item(100 + i)) if i % 2 else await adb.kv("s").put(b"w%d" % i, b"x")

    async def reader():
        await locked.wait()
        await asyncio.sleep(0.2)  # the writers now fill every worker, waiting for the lock
        t0 = time.monotonic()
        assert await adb.get(Item, oid) == Item(0)
        assert await adb.kv("s").get(b"k") == b"v"
        assert await adb.count(Item) == 1
        assert await adb.query(Item).count() == 1
        read.set()
        return time.monotonic() - t0

    res = await asyncio.gather(long_txn(), *[writer(i) for i in range(6)], reader())
    assert res[-1] < 5, f"the reads waited {res[-1]:.2f}s behind the writers"
    assert await adb.count(Item) == 5
    await adb.close()


async def test_async_txn_awaiting_an_adb_read_while_writers_wait(path):
    adb = obj.AsyncDb(path, max_workers=2, busy_timeout_ms=3000)
    await adb.insert(Item(0))
    t0 = time.monotonic()

    async def txn():
        async with adb.transaction() as tx:
            await tx.insert(Item(1))
            await asyncio.sleep(0.05)
            n = await adb.count(Item)  # a read of the last commit, outside the transaction
            await tx.insert(Item(n))
        return time.monotonic() - t0

    async def writer(i):
        await adb.insert(Item(100 + i))
        return "ok"

    res = await asyncio.gather(txn(), *[writer(i) for i in range(8)], return_exceptions=True)
    assert res[1:] == ["ok"] * 8, res
    assert res[0] < 1.0, f"the transaction took {res[0]:.2f}s"
    assert await adb.count(Item) == 11
    await adb.close()

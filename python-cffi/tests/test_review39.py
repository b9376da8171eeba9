"""Review 39: what helpers and a re-read found in session 39."""

import asyncio
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj


async def test_a_timed_out_schema_or_namespace_call_of_an_async_db_is_not_applied_later(path):
    # create_index, drop_collection and a namespace's create and drop ran
    # on a writer thread that went on waiting for the write lock after the
    # caller's wait_for had raised TimeoutError, and then wrote anyway: a
    # collection the caller was told was not dropped lost its documents.
    adb = await obj.AsyncDb.open(path, busy_timeout_ms=3000)
    try:
        await adb.insert_many("c", [{"i": i} for i in range(10)])
        await adb.insert("keep", {"x": 1})
        await adb.kv("ns_keep").put(b"a", b"b")
        held = asyncio.Event()

        async def holder():
            async with adb.transaction() as tx:
                await tx.insert("c", {"holder": 1})
                held.set()
                await asyncio.sleep(0.5)

        h = asyncio.create_task(holder())
        await held.wait()
        calls = [
            adb.create_index("c", "ix", ["i"]),
            adb.drop_collection("keep"),
            adb.kv("ns_new").create(),
            adb.kv("ns_keep").drop(),
        ]
        for call in calls:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(call, 0.02)
        await h
        await asyncio.sleep(0.3)  # (time for a late write to land, had one been queued)
        st = await adb.stat()
        colls = {c.name: [i.name for i in c.indexes] for c in st.collections}
        assert "ix" not in colls["c"]
        assert await adb.get("keep", 1) == {"x": 1}
        assert await adb.kv_namespaces() == ["ns_keep"]
        assert await adb.kv("ns_keep").get(b"a") == b"b"
        # Not held up, the same calls write and answer as the blocking Db's do.
        await adb.create_index("c", "ix", ["i"])
        assert await adb.drop_collection("keep") is True
        assert await adb.kv("ns_new").create() is True
        assert await adb.kv("ns_keep").drop() is True
        assert await adb.kv_namespaces() == ["ns_new"]
        assert [i.name for c in (await adb.stat()).collections if c.name == "c" for i in c.indexes] == ["ix"]
    finally:
        await adb.close()


@obj.document(collection="bounds39", version=1)
@dataclass
class Named:
    s: Annotated[str, obj.Index]


def test_bytes_bounds_of_a_class_index_range_read_as_utf8_as_find_unique_keys_do(path):
    # What the README's "Pre-encoded unique keys" now says of index_range.
    with obj.Db(path) as db:
        db.insert(Named("a"))
        db.insert("D", {"s": "a"})
        db.create_index("D", "s", ["s"])
        assert db.query(Named).index_range("s", b"a", b"a").ids() == [1]
        assert [i for i, _ in db.index_range(Named, "s", b"a", b"b")] == [1]
        assert db.query("D").index_range("s", b"a", b"a").ids() == []
        assert db.query(Named).filter(obj.field("s") == b"a").ids() == []
        with pytest.raises(obj.InvalidArgumentError):
            db.query(Named).index_range("s", b"\xff", None).ids()


def test_an_iteration_reads_ahead_by_bytes_as_well_as_by_documents(path, monkeypatch):
    # It read ahead up to 4,096 documents whatever their size: 8,000
    # documents of 50 KB took 664 MB to iterate with a 1 MB cache.
    from obj import txn

    sizes = []
    real = txn._next_batch_columns
    monkeypatch.setattr(txn, "_next_batch_columns", lambda cur, n, v, buf: (sizes.append(n), real(cur, n, v, buf))[1])
    with obj.Db(path) as db:
        db.insert_many("big", [{"i": i, "pad": "x" * 20_000} for i in range(200)])
        db.insert_many("small", [{"i": i} for i in range(10_000)])
        monkeypatch.setattr(txn, "BATCH_BYTES", 100_000)
        assert sum(1 for _ in db.all("big")) == 200
        assert sizes[0] == txn.FIRST_BATCH and max(sizes[1:]) <= 5, sizes
        sizes.clear()
        assert [d["i"] for _, d in db.query("small").iter()] == list(range(10_000))
        assert sizes[:5] == [32, 128, 512, 2048, 4096], sizes

"""Session 49: what an outside user or a review found missing or wrong."""

import pytest

import obj


async def test_an_async_namespace_counts(tmp_path):
    adb = obj.AsyncDb(str(tmp_path / "akv.obj"))
    try:
        ns = adb.kv("s")
        assert await ns.count() == 0
        for i in range(5):
            await ns.put(b"k%d" % i, b"v")
        assert await ns.count() == 5
        async with adb.transaction() as tx:
            await tx.kv("s").delete(b"k0")
            assert await tx.kv("s").count() == 4
        assert await ns.count() == 4
    finally:
        await adb.close()


def test_count_is_len(tmp_path):
    with obj.Db(str(tmp_path / "kv.obj")) as d:
        ns = d.kv("s")
        assert ns.count() == len(ns) == 0
        ns.put(b"a", b"1")
        with d.transaction() as tx:
            tx.kv("s").put(b"b", b"2")
            assert tx.kv("s").count() == 2
            assert ns.count() == 1  # the caller's own snapshot, before the commit
        assert ns.count() == len(ns) == 2


def test_update_says_when_its_function_returned_something_else(tmp_path):
    with obj.Db(str(tmp_path / "u.obj")) as d:
        i = d.insert("ev", {"a": 1, "meta": [1, 2]})
        with pytest.raises(obj.InvalidArgumentError, match=r"update's fn returned int .*return None"):
            d.update("ev", i, lambda doc: doc["meta"].pop())
        assert d.get("ev", i) == {"a": 1, "meta": [1, 2]}
        assert d.update("ev", i, lambda doc: doc.update(b=2)) == {"a": 1, "meta": [1, 2], "b": 2}
        assert d.update("ev", i, lambda doc: {"c": 3}) == {"c": 3}
        assert d.get("ev", i) == {"c": 3}

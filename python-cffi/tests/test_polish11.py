"""Small things a Python user meets: readable reprs of every handle, and
ids given as integers of another library (anything with ``__index__``,
as numpy's int64), never as bools, floats or strings."""

import pytest

import obj


class NumpyLikeInt:
    """Stands in for numpy.int64: not an int subclass, has __index__."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


def test_handles_have_readable_reprs(path):
    with obj.Db(path) as db:
        assert repr(db) == f"<obj.Db {path!r}>"
        with db.transaction() as tx:
            assert repr(tx) == f"<obj.WriteTxn on {path!r}>"
            assert repr(tx.collection("c")) == f"<obj.Collection 'c' in <obj.WriteTxn on {path!r}>>"
            assert repr(tx.kv("k")) == f"<obj.KvNamespace 'k' in <obj.WriteTxn on {path!r}>>"
        assert repr(tx) == f"<obj.WriteTxn on {path!r} finished>"
        with db.read_transaction() as rtx:
            assert repr(rtx) == f"<obj.ReadTxn on {path!r}>"
        assert repr(db.kv("k")) == f"<obj.KvNamespace 'k' of <obj.Db {path!r}>>"
    assert repr(db) == f"<obj.Db {path!r} closed>"


async def test_async_handles_have_readable_reprs(path):
    adb = obj.AsyncDb(path)
    assert repr(adb) == f"<obj.AsyncDb <obj.Db {path!r}>>"
    t = adb.transaction()
    assert repr(t) == f"<obj.AsyncTxn transaction on {path!r} (not entered)>"
    async with t as tx:
        assert repr(tx) == f"<obj.AsyncTxn transaction on {path!r}>"
    assert repr(t) == f"<obj.AsyncTxn transaction on {path!r} finished>"
    await adb.close()


def test_ids_with_index_are_ids(path):
    with obj.Db(path) as db:
        i = db.insert("c", {"a": 1})
        assert db.get("c", NumpyLikeInt(i)) == {"a": 1}
        assert db.upsert("c", NumpyLikeInt(7), {"a": 7}) is True
        assert db.get_many("c", [NumpyLikeInt(7), i]) == [{"a": 7}, {"a": 1}]
        assert db.delete("c", NumpyLikeInt(7)) is True
        for bad in (True, 1.0, "1", None):
            with pytest.raises(obj.InvalidArgumentError, match="must be an int"):
                db.get("c", bad)
        with pytest.raises(obj.InvalidArgumentError, match="outside"):
            db.get("c", NumpyLikeInt(-1))

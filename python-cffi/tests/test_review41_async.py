"""Review 41: an async function where a plain one is expected (a filter
predicate, a sort key, an update function) is refused, in the sync and the
async API, instead of matching everything (a coroutine is truthy) or
failing with a misleading message."""

import functools
import warnings

import pytest

import obj


async def _big(d):
    return d["n"] > 100


async def _bump(d):
    d["n"] += 1


class _AsyncCall:
    async def __call__(self, d):
        return d["n"]


def _expect_refused(fn_call):
    with pytest.raises(obj.InvalidArgumentError, match="plain .*non-async.* function"):
        fn_call()


def test_sync_query_refuses_async_predicates_and_keys(db):
    db.insert_many("c", [{"n": i} for i in range(5)])
    q = db.query("c")
    _expect_refused(lambda: q.filter(_big))
    _expect_refused(lambda: q.filter(obj.field("n") > 1, functools.partial(_big)))
    _expect_refused(lambda: q.filter(_AsyncCall()))
    _expect_refused(lambda: q.sort_by(_big))
    _expect_refused(lambda: q.sort_by(_AsyncCall()))
    assert q.filter(lambda d: d["n"] > 2).count() == 2  # plain functions as before
    assert [d["n"] for _, d in q.sort_by(lambda d: -d["n"]).fetch()] == [4, 3, 2, 1, 0]


def test_sync_update_refuses_async_functions_and_returned_coroutines(db):
    (i,) = db.insert_many("c", [{"n": 1}])
    _expect_refused(lambda: db.update("c", i, _bump))
    with db.transaction() as tx:
        _expect_refused(lambda: tx.update("c", i, _bump))
        _expect_refused(lambda: tx.collection("c").update(i, _bump))
    # A plain function that returns a coroutine: closed, no "never awaited" warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _expect_refused(lambda: db.update("c", i, lambda d: _bump(d)))
    assert db.get("c", i) == {"n": 1}
    assert db.update("c", i, lambda d: d.update(n=2)) == {"n": 2}


async def test_async_api_refuses_async_predicates_keys_and_update_functions(path):
    adb = await obj.AsyncDb.open(path)
    try:
        await adb.insert_many("c", [{"n": i} for i in range(10)])
        with pytest.raises(obj.InvalidArgumentError, match="non-async"):
            await adb.query("c").filter(_big).count()
        with pytest.raises(obj.InvalidArgumentError, match="non-async"):
            await adb.query("c").sort_by(_big).fetch()
        with pytest.raises(obj.InvalidArgumentError, match="non-async"):
            await adb.update("c", 1, _bump)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(obj.InvalidArgumentError, match="non-async"):
                await adb.update("c", 1, lambda d: _bump(d))
        assert await adb.get("c", 1) == {"n": 0}
        assert await adb.query("c").filter(lambda d: d["n"] > 6).count() == 3
    finally:
        await adb.close()


async def test_async_transaction_update_refuses_async_functions(path):
    adb = await obj.AsyncDb.open(path)
    try:
        await adb.insert("c", {"n": 0})
        async with adb.transaction() as tx:
            with pytest.raises(obj.InvalidArgumentError, match="non-async"):
                await tx.update("c", 1, _bump)
        assert await adb.get("c", 1) == {"n": 0}
    finally:
        await adb.close()


async def _progress(done, total):
    return False


async def test_backup_refuses_an_async_progress_callback(path, tmp_path):
    adb = await obj.AsyncDb.open(path)
    try:
        await adb.insert("c", {"n": 0})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no coroutine left never awaited)
            with pytest.raises(obj.InvalidArgumentError, match="non-async"):
                await adb.backup(str(tmp_path / "copy.obj"), progress=_progress)
        assert not (tmp_path / "copy.obj").exists()
    finally:
        await adb.close()

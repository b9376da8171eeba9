"""``async for`` inside an async transaction streams: it holds one batch of
results at a time, never the whole result, and it keeps working (or fails
as the blocking API does) around the transaction's other calls and end."""

import tracemalloc

import pytest

import obj

DOCS = 4000
NOTE = "x" * 2000  # about 8 MiB of documents in all


async def _fill(adb):
    await adb.insert_many("notes", [{"n": i, "note": NOTE} for i in range(DOCS)])


async def _peak_while_taking_two(make):
    """Peak traced memory while the first two results of ``make()`` are taken
    (after a first round, so that one-time set-up does not count)."""
    warm = make().__aiter__()
    await warm.__anext__()
    await warm.aclose()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        it = make().__aiter__()
        first = await it.__anext__()
        second = await it.__anext__()
        _, peak = tracemalloc.get_traced_memory()
        await it.aclose()
    finally:
        tracemalloc.stop()
    return first, second, peak


@pytest.mark.parametrize("source", ["all", "query", "iter_all", "index_range"])
async def test_async_for_in_a_transaction_streams(path, source):
    adb = await obj.AsyncDb.open(path)
    await adb.create_index("notes", "n", "n")
    await _fill(adb)
    async with adb.read_transaction() as tx:
        make = {
            "all": lambda: tx.all("notes"),
            "query": lambda: tx.query("notes").filter(obj.field("n") >= 0),
            "iter_all": lambda: tx.iter_all("notes"),
            "index_range": lambda: tx.index_range("notes", "n", 0, DOCS),
        }[source]
        first, second, peak = await _peak_while_taking_two(make)
        assert first[0] < second[0]
        # Held whole, the result takes about 75 MiB of Python objects; one
        # batch of 256 about half a MiB (orjson's parser briefly takes 6 MiB).
        assert peak < 16 * 2**20, f"{source}: {peak / 2**20:.1f} MiB held for two results"
        # The transaction's other calls still run between batches.
        it = make().__aiter__()
        seen = 0
        async for _ in it:
            seen += 1
            if seen % 500 == 0:
                assert await tx.count("notes") == DOCS
        assert seen == DOCS
    await adb.close()


async def test_async_for_outliving_its_transaction_fails_like_the_blocking_api(path):
    adb = await obj.AsyncDb.open(path)
    await _fill(adb)
    async with adb.read_transaction() as tx:
        it = tx.all("notes").__aiter__()
        await it.__anext__()
    with pytest.raises(obj.ObjError):
        async for _ in it:
            pass
    await adb.close()

"""Review 19: Db.close() against transactions open or beginning on other
threads, and handles used in a forked child. Each test failed before its
fix."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time

import pytest

import obj


def test_close_inside_a_with_block_raises_on_exit(tmp_path):
    # close() rolls back the open transaction: the block must not end as
    # though its writes were committed.
    p = str(tmp_path / "c.obj")
    db = obj.Db(p)
    with pytest.raises(obj.ClosedError, match="rolled back"):
        with db.transaction() as tx:
            tx.insert("c", {"v": 1})
            db.close()
    with obj.Db(p) as d:
        assert d.count("c") == 0


def test_close_inside_an_async_with_block_raises_on_exit(tmp_path):
    p = str(tmp_path / "a.obj")

    async def main():
        adb = obj.AsyncDb(p)
        with pytest.raises(obj.ClosedError):
            async with adb.transaction() as tx:
                await tx.insert("c", {"v": 1})
                adb.db.close()
        await adb.close()

    asyncio.run(main())
    with obj.Db(p) as d:
        assert d.count("c") == 0


def test_a_writer_waiting_for_the_lock_at_close_gets_closed_error(tmp_path):
    p = str(tmp_path / "w.obj")
    db = obj.Db(p, busy_timeout_ms=10_000)
    holding = threading.Event()
    out: dict = {}

    def holder():
        try:
            with db.transaction() as tx:
                tx.insert("c", {"who": "A"})
                holding.set()
                time.sleep(0.6)
        except obj.ObjError as e:
            out["A"] = type(e)

    def waiter():
        try:
            with db.transaction() as tx:
                tx.insert("c", {"who": "B"})
            out["B"] = "committed"
        except obj.ObjError as e:
            out["B"] = type(e)

    a = threading.Thread(target=holder)
    a.start()
    assert holding.wait(10)
    b = threading.Thread(target=waiter)
    b.start()
    time.sleep(0.3)  # B is now waiting inside the C call for A's lock
    db.close()
    a.join(10)
    b.join(10)
    assert out == {"A": obj.ClosedError, "B": obj.ClosedError}
    with obj.Db(p) as d:
        assert d.count("c") == 0


def test_a_call_racing_close_raises_closed_error(tmp_path):
    # A call that took the transaction's handle just before another thread's
    # close() rolled it back finds it rolled back in C: that is ClosedError,
    # not "transaction already rolled back" (InvalidArgumentError). The race
    # is made deterministic by putting the handle back after the close.
    db = obj.Db(str(tmp_path / "r.obj"))
    tx = db.transaction()
    tx.insert("c", {"v": 1})
    kv = db.kv("ns")
    h = tx._h
    db.close()
    tx._h = h
    with pytest.raises(obj.ClosedError, match="rolled back"):
        tx.insert("c", {"v": 2})
    with pytest.raises(obj.ClosedError):
        tx.get("c", 1)
    with pytest.raises(obj.ClosedError):
        kv._run(True, lambda t, c: t._check(obj._ffi.lib.obj_kv_put(h, c, b"k", 1, b"v", 1)))
    with pytest.raises(obj.ClosedError):
        tx.commit()


fork_only = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)


def _in_forked_child(fn) -> str:
    """What ``fn()`` gave in a forked child: its result, or the error's type
    name ("HANG" when it did not return in 20 s)."""
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()

    def child():
        try:
            q.put(repr(fn()))
        except BaseException as e:  # noqa: BLE001 - report anything
            q.put(f"{type(e).__name__}: {e}")

    pr = ctx.Process(target=child)
    pr.start()
    pr.join(20)
    if pr.is_alive():
        pr.kill()
        pr.join()
        return "HANG"
    return q.get(timeout=5)


@fork_only
def test_async_db_in_a_forked_child_raises_instead_of_hanging(tmp_path):
    adb = obj.AsyncDb(str(tmp_path / "f.obj"))
    asyncio.run(adb.insert("c", {"v": 1}))  # its worker threads exist now
    got = _in_forked_child(lambda: asyncio.run(adb.count("c")))
    assert got.startswith("InvalidArgumentError") and "fork" in got, got
    got = _in_forked_child(lambda: asyncio.run(adb.insert("c", {"v": 2})))
    assert got.startswith("InvalidArgumentError") and "fork" in got, got
    assert asyncio.run(adb.count("c")) == 1
    asyncio.run(adb.close())


@fork_only
def test_forked_child_of_a_writer_gets_the_fork_error(tmp_path):
    # The parent's open write transaction is not the child's: no BusyError
    # telling it to write through a transaction it does not hold.
    db = obj.Db(str(tmp_path / "b.obj"))
    tx = db.transaction()
    tx.insert("c", {"v": 1})
    got = _in_forked_child(lambda: db.insert("c", {"v": 2}))
    assert got.startswith("InvalidArgumentError") and "fork" in got, got
    tx.commit()
    assert db.count("c") == 1
    db.close()


def test_fork_generation_counts_children():
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    before = obj._ffi.fork_generation[0]
    assert _in_forked_child(lambda: obj._ffi.fork_generation[0]) == repr(before + 1)
    assert obj._ffi.fork_generation[0] == before


def test_a_failed_write_that_ends_a_cursor_says_so(tmp_path):
    # A unique violation is undone, but the write call still ended the
    # transaction's C cursors (the C error says so: tests/c). Since review
    # 28 the iteration, in id order, goes on after the last id it gave.
    with obj.Db(str(tmp_path / "u.obj")) as db:
        with db.transaction() as tx:
            tx.create_index("c", "email", "email", kind="unique")
            tx.insert_many("c", [{"email": f"u{i}", "n": i} for i in range(5000)])
        with db.transaction() as tx:
            it = tx.query("c").iter()
            next(it)
            with pytest.raises(obj.ConstraintError):
                tx.insert("c", {"email": "u1"})
            assert sum(1 for _ in it) == 4999
            assert tx.count("c") == 5000

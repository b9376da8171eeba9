"""Review 29: what a review of threads, asyncio and Ctrl-C found.

- A KeyboardInterrupt that came inside ``WriteTxn.__exit__`` before the
  commit reached C (a Ctrl-C lands at any bytecode boundary) left the
  transaction open after the ``with`` block, holding the file's write lock
  for as long as the ``tx`` name lived: every later write on the thread
  raised BusyError, every other thread waited its busy timeout. It is now
  rolled back. (The first instruction of ``__exit__`` stays outside any
  handler, as in every context manager written in Python.)
- ``async with adb.transaction()`` whose task was cancelled (or timed out)
  once the commit had begun raised CancelledError although the commit was
  made: a caller retrying on CancelledError or TimeoutError wrote twice.
  As for the one-call writes, the block now ends as the commit does and
  the cancellation reaches the task at its next await; CancelledError from
  the block means nothing was written.
- A half-read iterator of a read transaction that was closed said
  "transaction already committed"; it now says "ended".
"""

import asyncio
import random
import sys
import threading
import time

import pytest

import obj
from obj import txn as T


def _interrupt_at_line(codes, k):
    """A tracer raising KeyboardInterrupt at the k-th line event of ``codes``."""
    n = [0]

    def tracer(frame, event, arg):
        if frame.f_code not in codes:
            return None

        def local(frame, event, arg):
            if event == "line":
                n[0] += 1
                if n[0] == k:
                    raise KeyboardInterrupt
            return local

        return local

    return tracer, n


def _other_thread_writes(db) -> bool:
    ok = []

    def w():
        try:
            db.insert("x", {"a": 1})
            ok.append(True)
        except obj.BusyError:
            ok.append(False)

    t = threading.Thread(target=w)
    t.start()
    t.join()
    return ok[0]


def test_ctrl_c_in_a_write_transactions_exit_leaves_no_lock(tmp_path):
    db = obj.Db(str(tmp_path / "k.obj"), busy_timeout_ms=300)
    db.insert("acct", {"bal": 1})
    codes = {T.WriteTxn.__exit__.__code__, T.WriteTxn.commit.__code__, T.ReadTxn._finish.__code__}
    interrupted = 0
    # Line event 1 is the ``try:`` of __exit__, before its handler.
    for k in range(2, 12):
        tracer, seen = _interrupt_at_line(codes, k)
        try:
            sys.settrace(tracer)
            with db.transaction() as tx:
                tx.insert("acct", {"bal": k})
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            sys.settrace(None)
        assert tx.finished, k
        with db.transaction() as again:  # this thread may write again at once
            again.insert("acct", {"bal": -k})
        assert _other_thread_writes(db), k
        if seen[0] < k:
            break  # past the last line: the rest commit untouched
    assert interrupted >= 3
    db.close()


def test_ctrl_c_in_a_read_transactions_exit_ends_the_snapshot(tmp_path):
    db = obj.Db(str(tmp_path / "r.obj"))
    db.insert("c", {"a": 1})
    codes = {T.ReadTxn.__exit__.__code__, T.ReadTxn.close.__code__, T.ReadTxn._finish.__code__}
    for k in range(2, 8):
        tracer, seen = _interrupt_at_line(codes, k)
        try:
            sys.settrace(tracer)
            with db.read_transaction() as rx:
                rx.count("c")
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        assert rx.finished, k
        db.insert("c", {"a": k})  # a frame the open snapshot would keep in the WAL
        assert db.checkpoint().complete, k
        if seen[0] < k:
            break
    db.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.uncancel is 3.11's")
def test_a_cancelled_async_transaction_raised_only_when_nothing_was_written(tmp_path):
    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "a.obj"))
        outcomes = []
        for i in range(40):
            task = asyncio.current_task()
            completed = redelivered = False
            h = None
            try:
                async with adb.transaction() as tx:
                    # A commit of a few hundred pages, cancelled at some point
                    # from before it begins to after it ends.
                    await tx.insert_many("log", [{"i": i, "pad": "x" * 200}] * 3000)
                    h = asyncio.get_running_loop().call_later(0.0005 * (i % 20), task.cancel)
                completed = True
            except asyncio.CancelledError:
                task.uncancel()
            if h is not None:
                h.cancel()
            if completed:
                try:
                    await asyncio.sleep(0.02)
                except asyncio.CancelledError:  # the cancellation, delivered after the block
                    task.uncancel()
                    redelivered = True
            written = await adb.query("log").filter(obj.field("i") == i).count()
            outcomes.append((completed, bool(written), redelivered))
        await adb.close()
        return outcomes

    outcomes = asyncio.run(main())
    assert all(completed == written for completed, written, _ in outcomes), outcomes


needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="cancellation counts are 3.11's")


async def _delivered_then_count(adb, wait):
    """Whether a cancellation reaches this task within ``wait`` seconds, and
    how many documents collection "c" then holds (``adb`` is closed)."""
    task = asyncio.current_task()
    delivered = False
    try:
        await asyncio.sleep(wait)
    except asyncio.CancelledError:
        task.uncancel()
        delivered = True
    n = await adb.query("c").count()
    await adb.close()
    return delivered, n


@needs_311
def test_a_cancel_before_the_commit_begins_rolls_back_and_raises(tmp_path):
    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "b.obj"))
        task = asyncio.current_task()
        raised = False
        try:
            async with adb.transaction() as tx:
                await tx.insert("c", {"a": 1})
                tx._pin._ex.submit(time.sleep, 0.3)  # the exit waits behind this
                asyncio.get_running_loop().call_later(0.05, task.cancel)
        except asyncio.CancelledError:
            task.uncancel()
            raised = True
        n = await adb.query("c").count()
        await adb.close()
        return raised, n

    assert asyncio.run(main()) == (True, 0)


@needs_311
def test_a_cancel_landing_as_the_commit_ends_is_delivered_not_lost(tmp_path, slow_commits):
    """The commit is done but the task has not woken when task.cancel()
    lands: the cancellation was taken for the exit's own and dropped."""
    slow_commits(0.1)

    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "w.obj"))
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        # The loop is blocked from 0.05 to 0.35 s: the commit ends (0.1 s),
        # then the cancel is posted (0.2 s), before the task wakes.
        loop.call_later(0.05, time.sleep, 0.3)
        threading.Timer(0.2, lambda: loop.call_soon_threadsafe(task.cancel)).start()
        async with adb.transaction() as tx:
            await tx.insert("c", {"a": 1})
        return await _delivered_then_count(adb, 0.2)

    assert asyncio.run(main()) == (True, 1)


@needs_311
def test_a_shutdown_cancel_during_a_timed_out_commit_still_reaches_the_task(tmp_path, slow_commits):
    """A timeout scope's cancellation, then task.cancel(), both during the
    commit: the scope takes its own back; the other must still arrive."""
    slow_commits(0.4)

    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "t.obj"))
        task = asyncio.current_task()
        asyncio.get_running_loop().call_later(0.25, task.cancel)
        async with asyncio.timeout(0.1):
            async with adb.transaction() as tx:
                await tx.insert("c", {"a": 1})
        return await _delivered_then_count(adb, 0.3)

    assert asyncio.run(main()) == (True, 1)


def test_an_iterator_of_an_ended_read_transaction_says_ended(tmp_path):
    """It said "transaction already committed" of a read transaction."""
    db = obj.Db(str(tmp_path / "i.obj"))
    db.insert_many("d", [{"i": i} for i in range(2000)])
    tx = db.read_transaction()
    rows = tx.all("d")
    next(rows)
    tx.close()
    with pytest.raises(obj.InvalidArgumentError, match="transaction already ended"):
        for _ in rows:
            pass
    db.close()


def test_long_batch_reads_answer_as_single_reads(tmp_path):
    """get_many and find_unique_many of 256 ids or keys or more are read in
    two halves on two threads (in a read transaction): the answers and their
    order are those of reading one by one, and an error in either half is
    the call's."""
    db = obj.Db(str(tmp_path / "m.obj"))
    db.create_index("d", "email", "email", kind="unique")
    db.create_index("d", "pair", ["a", "b"], kind="unique")
    n = 3000
    db.insert_many("d", [{"email": f"e{i}", "a": i % 50, "b": i // 50, "note": "x" * (9000 if i % 97 == 0 else 50)}
                         for i in range(n)])
    rng = random.Random(7)
    for size in (255, 256, 257, 1000, 2999):
        ids = [rng.randrange(0, n + 200) for _ in range(size)]
        ids[10:60] = range(500, 550)  # a run of consecutive ids
        mid = size // 2
        ids[mid - 5:mid + 5] = range(1200, 1210)  # one across the halves
        emails = [f"e{rng.randrange(0, n + 200)}" for _ in range(size)]
        pairs = [(rng.randrange(0, 60), rng.randrange(0, 70)) for _ in range(size)]
        with db.read_transaction() as tx:
            assert tx.get_many("d", ids) == [tx.get("d", i) for i in ids]
            assert tx.find_unique_many("d", "email", emails) == [tx.find_unique("d", "email", e) for e in emails]
            assert tx.find_unique_many("d", "pair", pairs) == [tx.find_unique("d", "pair", *p) for p in pairs]
            # with schema versions (what typed reads use)
            versioned = [None if r is None else [r[0], obj._codec.loads(r[1])] for r in map(
                lambda i: tx._c_doc_get(b"d", i), ids)]
            assert [None if r is None else [r[0], r[1]] for r in tx._c_get_many(b"d", ids)] == versioned
        with db.transaction() as tx:  # a write transaction reads on its own thread only
            assert tx.get_many("d", ids[:300]) == [tx.get("d", i) for i in ids[:300]]
    for bad_at in (3, 300, 700):
        pairs = [(1, 1)] * 800
        pairs[bad_at] = [1]
        wrong = rf"keys_json\[{bad_at}\].*1 value"
        with db.read_transaction() as tx, pytest.raises(obj.InvalidArgumentError, match=wrong):
            tx.find_unique_many("d", "pair", pairs)
    # An error in each half: the first in the list is the call's.
    pairs = [(1, 1)] * 800
    pairs[100] = (1, 2, 3)
    pairs[700] = [1]
    with db.read_transaction() as tx, pytest.raises(obj.InvalidArgumentError, match=r"keys_json\[100\].*3 value"):
        tx.find_unique_many("d", "pair", pairs)
    # Past the package's chunk of keys, the position is still the list's.
    pairs = [(1, 1)] * 5000
    pairs[4999] = [1]
    for tx in (db.read_transaction(), db.transaction()):
        with tx, pytest.raises(obj.InvalidArgumentError, match=r"keys_json\[4999\].*1 value") as e:
            tx.find_unique_many("d", "pair", pairs)
        assert e.value.status_name == "OBJ_INVALID_ARGUMENT"
    db.close()

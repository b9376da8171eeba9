"""Review 27: what a long-running service's review found.

- Ctrl-C while ``db.transaction()`` waited for the write lock: the C call
  had begun the transaction by the time the KeyboardInterrupt surfaced, but
  Python had not yet taken the handle, so nothing ever rolled it back and
  every writer of the file (this process or another) got BusyError until
  the process ended. Handles a C call makes are now owned from before the
  call (``_ffi.OutHandle``) and ended on any exception.
- An AsyncDb one-call write cancelled (or timed out) just as its commit
  began was committed though the caller got CancelledError / TimeoutError,
  so a retry wrote it twice. Once the commit has begun the call now
  returns its result; before, it still rolls back.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time

import obj


def test_ctrl_c_while_waiting_for_the_write_lock_leaves_no_transaction(tmp_path):
    path = str(tmp_path / "k.obj")
    db = obj.Db(path, busy_timeout_ms=3000)
    db.insert("c", {"a": 1})
    holding = threading.Event()

    def holder():
        with db.transaction() as tx:
            tx.insert("c", {"a": 2})
            holding.set()
            time.sleep(0.6)

    # Python raises KeyboardInterrupt only where SIGINT was not ignored at
    # its start (a shell ignores it for background jobs): install it here.
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for _ in range(3):
            h = threading.Thread(target=holder)
            h.start()
            assert holding.wait(10), "the write lock stayed taken"
            # Sent while this thread waits in C for the lock: the interrupt
            # surfaces once the lock is granted, as the call returns.
            timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            try:
                tx = db.transaction()
            except KeyboardInterrupt:
                pass
            else:  # (the interrupt came late: not the case under test)
                tx.rollback()
            finally:
                timer.cancel()
                h.join()
                holding.clear()
            time.sleep(0.1)  # (a late signal lands here, not in the checks below)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, old_handler)

    # The write lock is free: for this handle, another one and another process.
    fast = obj.Db(path, busy_timeout_ms=100)
    fast.insert("c", {"a": 3})
    fast.close()
    db.insert("c", {"a": 4})
    assert db.checkpoint().complete
    code = "import obj, sys; obj.Db(sys.argv[1], busy_timeout_ms=100).insert('c', {'a': 5})"
    subprocess.run([sys.executable, "-c", code, path], check=True, timeout=60)
    assert db.count("c") == 3 + 3 + 1  # 1, the holder's three 2s, 3, 4, 5
    db.close()


def test_a_cancelled_async_write_is_committed_only_when_the_call_says_so(tmp_path):
    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "c.obj"), sync="normal")
        await adb.insert("warm", {"x": 1})
        await adb.upsert("counter", 1, {"n": 0})
        rng = random.Random(0)
        returned, timed_out = [], []
        for tag in range(600):
            try:
                await asyncio.wait_for(adb.insert("c", {"tag": tag}), timeout=rng.random() * 0.002)
                returned.append(tag)
            except asyncio.TimeoutError:
                timed_out.append(tag)
        present = {doc["tag"] for _, doc in await adb.all("c")}
        assert set(returned) <= present
        assert not present & set(timed_out), "timed-out writes were committed"
        assert timed_out and returned  # (both outcomes were met)

        # A read-modify-write counter: its value is the number of calls
        # that said they wrote.
        def bump(d):
            d["n"] += 1
            return d

        said = 0
        for _ in range(300):
            try:
                await asyncio.wait_for(adb.update("counter", 1, bump), timeout=rng.random() * 0.002)
                said += 1
            except asyncio.TimeoutError:
                pass
        assert (await adb.get("counter", 1))["n"] == said
        await adb.close()

    asyncio.run(main())


def test_a_cancel_during_the_commit_still_ends_the_task(tmp_path, slow_commits):
    slow_commits(0.3)

    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "a.obj"))
        await adb.insert("c", {"n": 0})  # (the collection exists)
        q: asyncio.Queue = asyncio.Queue()
        done = []

        async def worker():
            while True:
                item = await q.get()
                done.append(await adb.insert("c", item))

        t = asyncio.create_task(worker())
        await q.put({"n": 1})
        await asyncio.sleep(0.1)  # the worker's insert is committing now
        t.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(t), 5)
        except asyncio.CancelledError:
            pass
        assert t.cancelled(), "the task went on after task.cancel()"
        assert done == [2]  # the insert it was in returned, and is in
        assert await adb.count("c") == 2
        await adb.close()

    asyncio.run(main())


def test_a_timeout_during_the_commit_gives_the_result_and_no_stray_cancel(tmp_path, slow_commits):
    slow_commits(0.3)

    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "a.obj"))
        await adb.insert("c", {"n": 0})
        ids = []
        # wait_for (a task of its own in 3.11), then a timeout scope (3.11+).
        ids.append(await asyncio.wait_for(adb.insert("c", {"n": 1}), 0.1))
        await asyncio.sleep(0.05)  # not cancelled afterwards
        if hasattr(asyncio, "timeout"):
            async with asyncio.timeout(0.1):
                ids.append(await adb.insert("c", {"n": 2}))
            await asyncio.sleep(0.05)
            assert asyncio.current_task().cancelling() == 0
        assert await adb.count("c") == 1 + len(ids)
        await adb.close()

    asyncio.run(main())


def test_an_interrupt_at_any_line_of_the_handover_leaves_no_transaction(tmp_path):
    """A trace function (a debugger, a coverage tool) lets an exception
    surface at every line: raised at each line of OutHandle.take in turn,
    the transaction is ended at once (the lock free), and freed once."""
    import gc

    from obj import _ffi

    path = str(tmp_path / "a.obj")
    db = obj.Db(path, busy_timeout_ms=100)
    db.insert("c", {"x": 1})
    take_code = _ffi.OutHandle.take.__code__
    # The lines that run code (not the def line, not the docstring).
    body = sorted({line for _, _, line in take_code.co_lines() if line and line > take_code.co_firstlineno})
    assert len(body) >= 3, body
    for target in body:
        for event_kind in ("line", "return"):
            def tracer(frame, event, arg, target=target, event_kind=event_kind):
                if frame.f_code is not take_code:
                    return None

                def local(frame, event, arg):
                    if event == event_kind and frame.f_lineno == target:
                        raise KeyboardInterrupt
                    return local

                return local

            sys.settrace(tracer)
            try:
                tx = db.transaction()
            except KeyboardInterrupt:
                pass
            else:
                tx.rollback()
            finally:
                sys.settrace(None)
            other = obj.Db(path, busy_timeout_ms=100)
            other.insert("c", {"x": 2})  # BusyError if the transaction lived on
            other.close()
            gc.collect()
    assert db.count("c") == 1 + 2 * len(body)
    db.close()


def test_a_cancelled_task_begins_no_further_write(tmp_path, slow_commits):
    """A task cancelled while its write commits gets the cancellation at
    its next one-call write, which does not begin (it used to begin and
    commit, and the next, and so on)."""
    begun = slow_commits(0.2)

    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "a.obj"))
        await adb.insert("c", {"n": 0})
        started = []

        async def writer():
            for n in range(1, 50):
                started.append(n)
                await adb.insert("c", {"n": n})  # back to back: no other await between

        t = asyncio.create_task(writer())
        await asyncio.sleep(0.1)  # write 1 is committing
        t.cancel()
        cancelled_at = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(t), 5)
        except asyncio.CancelledError:
            pass
        assert t.cancelled()
        assert started == [1, 2]  # write 2 was called and refused before it began
        assert not [b for b in begun if b > cancelled_at], "a write began after the cancel"
        assert await adb.count("c") == 2  # the first document and write 1
        await adb.close()

    asyncio.run(main())


def test_a_timeout_in_cancellation_cleanup_leaves_no_stray_cancel(tmp_path, slow_commits):
    """Cleanup inside ``except CancelledError`` (the task's count is 1
    there) whose write times out during its commit returns the result, and
    the cleanup's next await is not cancelled."""
    if not hasattr(asyncio, "timeout"):
        return
    slow_commits(0.3)

    async def main():
        adb = await obj.AsyncDb.open(str(tmp_path / "a.obj"))
        await adb.insert("c", {"n": 0})
        seen = []

        async def job():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                async with asyncio.timeout(0.1):
                    seen.append(await adb.insert("c", {"cleanup": True}))
                await asyncio.sleep(0.05)  # must not be cancelled
                seen.append("after")
                raise

        t = asyncio.create_task(job())
        await asyncio.sleep(0.05)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        assert seen == [2, "after"]
        await adb.close()

    asyncio.run(main())

"""Review 24: what users of the package met that earlier tests did not.

- The writer was remembered by thread ident. An ident is reused once its
  thread exits, so a new thread that got the ident of the (exited) thread
  that began the open write transaction was told it held that transaction
  (BusyError at once, "a nested write") instead of waiting for it.
  With ``AsyncDb`` this followed a cancelled ``async with
  adb.transaction()``: its worker thread took the write lock after the
  task gave up and exited; the next thread with its ident failed at once,
  and that error's traceback kept the abandoned transaction (and the write
  lock) alive, so every writer in every process timed out. The abandoned
  transaction is now also ended as soon as it begins, instead of whenever
  it is garbage-collected.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

import obj


def test_a_new_thread_with_a_reused_ident_waits_for_the_writer(tmp_path):
    db = obj.Db(tmp_path / "a.obj", busy_timeout_ms=5000)
    box: dict = {}

    def begin() -> None:
        box["tx"] = db.transaction()
        box["ident"] = threading.get_ident()

    t = threading.Thread(target=begin)
    t.start()
    t.join()
    box["tx"].insert("c", {"a": 1})
    # A thread that gets the exited thread's ident (CPython reuses it at
    # once on Linux; try a few to be sure of one).
    for _ in range(50):
        seen: dict = {}
        probe = threading.Thread(target=lambda seen=seen: seen.setdefault("ident", threading.get_ident()))
        probe.start()
        probe.join()
        if seen["ident"] == box["ident"]:
            break
    else:
        pytest.skip("no thread got the exited thread's ident")
    out: dict = {}

    def writer() -> None:
        out["same ident"] = threading.get_ident() == box["ident"]
        start = time.monotonic()
        try:
            db.insert("c", {"b": 1})
            out["waited"] = time.monotonic() - start
        except obj.ObjError as e:  # the bug: BusyError at once
            out["error"] = e

    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.3)
    box["tx"].commit()  # from the main thread: the writer then goes on
    w.join()
    assert "error" not in out, out
    assert out["waited"] >= 0.2, out
    assert db.count("c") == 2
    db.close()


async def test_writers_go_on_after_a_task_cancelled_while_waiting_for_the_lock(tmp_path):
    # The scenario of the review: the cancelled task's worker takes the lock
    # once it is free; other writers, on other threads and in the loop, must
    # not wait for that abandoned transaction. (Under CPython's reference
    # counting the abandoned transaction is also freed at once without
    # `on_abandon`; that disposal makes it not depend on the collector.)
    adb = await obj.AsyncDb.open(tmp_path / "a.obj", busy_timeout_ms=3000)
    held = adb.db.transaction()  # another writer holds the lock

    async def cancelled_writer() -> None:
        async with adb.transaction() as tx:
            await tx.insert("c", {"never": 1})

    task = asyncio.create_task(cancelled_writer())
    await asyncio.sleep(0.2)  # its worker thread waits for the lock
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    held.commit()  # the abandoned worker takes the lock now, and gives it back
    await asyncio.sleep(0.2)
    start = time.monotonic()
    done: list = []
    t = threading.Thread(target=lambda: done.append(adb.db.insert("c", {"other": 1})))
    t.start()
    t.join()
    await adb.insert("c", {"later": 1})
    assert time.monotonic() - start < 2.0, "a writer waited for the abandoned transaction"
    assert done and await adb.count("c") == 2
    await adb.close()


@pytest.mark.parametrize("n", [10, 300])
async def test_an_async_iteration_ends_at_its_next_step_after_a_write(tmp_path, n):
    # README: "An iteration over a query or tx.all(...) cannot go on past a
    # write in its transaction: its next step raises InvalidArgumentError".
    # The async iterator holds a batch of 256: with 10 documents the loop
    # ended without an error, with 300 after the batch.
    adb = await obj.AsyncDb.open(tmp_path / "a.obj")
    await adb.insert_many("c", [{"i": i} for i in range(n)])
    for make in (lambda tx: tx.all("c"), lambda tx: tx.query("c").filter(obj.field("i") >= 0)):
        seen = 0
        with pytest.raises(obj.InvalidArgumentError, match="since the cursor was opened"):
            async with adb.transaction() as tx:
                async for _ in make(tx):
                    seen += 1
                    if seen == 1:
                        await tx.insert("c", {"x": 1})
        assert seen == 1
        assert await adb.count("c") == n  # rolled back
    await adb.close()


def test_close_ends_the_snapshots_of_unfinished_iterators(tmp_path):
    # A db.all() left half read kept its read transaction, and so the file,
    # open after close(): rekey on a new handle was BusyError, and the
    # iterator went on reading the closed database. (A transaction the
    # caller began keeps its snapshot, as test_hostile checks.)
    path = tmp_path / "r.obj"
    db = obj.Db(path)
    db.insert_many("c", [{"i": i} for i in range(3000)])
    db.kv("ns").put(b"k", b"v")
    with obj.Db(tmp_path / "arch.obj") as arch, arch.transaction() as atx:
        for i in range(3000):
            atx.insert("x", b"raw %d" % i)  # a raw collection reads as bytes without a class
    db.attach(tmp_path / "arch.obj", "arch")
    iterators = [iter(db.all("c")), iter(db.query("c").filter(obj.field("i") >= 0).iter()),
                 iter(db.kv("ns").scan()), iter(db.dump_raw("c")), iter(db.iter_all("c")),
                 iter(db.iter_all("arch.x"))]
    for it in iterators:
        next(it)
    db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.obj", "r.obj"]
    with obj.Db(path) as again:
        again.rekey(passphrase="x")  # needs the only handle on the file
    for it in iterators:
        with pytest.raises(obj.ClosedError, match="snapshot was released"):
            for _ in it:
                pass


def test_a_missing_declared_index_read_in_a_transaction_says_how_it_gets_built(tmp_path):
    # An index added to a class after its documents were written: db.find_unique
    # builds it; in a transaction the same read said only "index not found".
    # (Building it there would make a read write: it would end the
    # transaction's open iterations, run migrations, and fail on a unique
    # violation the read never asked about.)
    from dataclasses import dataclass
    from typing import Annotated

    db = obj.Db(tmp_path / "ix.obj")
    db.insert_many("late_ix", [{"b": f"s{i}"} for i in range(10)])

    @obj.document(collection="late_ix")
    @dataclass
    class LateIx:
        b: Annotated[str, obj.Unique]

    for begin in (db.transaction, db.read_transaction):
        with begin() as tx:
            for read in (lambda: tx.find_unique(LateIx, "b", "s7"),
                         lambda: list(tx.index_range(LateIx, "b", "s7", "s7")),
                         lambda: tx.find_unique_many(LateIx, "b", ["s1"])):
                with pytest.raises(obj.NotFoundError, match="LateIx declares it.*db.find_unique"):
                    read()
    assert db.find_unique(LateIx, "b", "s7") == LateIx("s7")  # builds it
    with db.transaction() as tx:
        assert [d for _, d in tx.index_range(LateIx, "b", "s7", "s7")] == [LateIx("s7")]
    db.close()


async def test_an_async_query_explains_as_json_like_a_query(tmp_path):
    adb = await obj.AsyncDb.open(tmp_path / "q.obj")
    await adb.create_index("c", "by_n", "n")
    await adb.insert_many("c", [{"n": i} for i in range(5)])
    q = adb.query("c").filter(obj.field("n") == 3)
    plan = await q.explain_json()
    assert plan == adb.db.query("c").filter(obj.field("n") == 3).explain_json()
    assert plan["access"] == "index" and plan["index"] == "by_n"
    async with adb.read_transaction() as tx:
        assert await tx.query("c").filter(obj.field("n") == 3).explain_json() == plan
    await adb.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True)


def test_cli_dump_to_dash_writes_stdout_and_restore_names_its_flag(tmp_path):
    src = tmp_path / "a.obj"
    with obj.Db(src) as db:
        db.insert("c", {"a": 1})
    r = _cli("dump", str(src), "c", "-o", "-")
    assert r.returncode == 0 and '"a":1' in r.stdout, r.stderr
    assert not (tmp_path / "-").exists() and not os.path.exists("-")
    copy = tmp_path / "b.obj"
    assert _cli("backup", str(src), str(copy)).returncode == 0
    r = _cli("restore", str(copy), str(src))
    assert r.returncode == 5 and "--overwrite" in r.stderr, r.stderr
    # A backup or compacted copy onto the file itself: the caller's mistake
    # (exit 5), not a file another process holds (exit 4).
    for args in (("backup", str(src), str(src)), ("compact", str(src), "--to", str(src))):
        r = _cli(*args)
        assert r.returncode == 5 and "own file" in r.stderr, (args, r.stderr)


def test_a_forked_child_closes_without_ending_its_parents_iterations(tmp_path):
    # close() ends the Db's own iterators' snapshots, but in a forked child
    # those are the parent's: a parent thread inside a cursor batch held
    # the transaction's lock at the fork, and the child's close() waited
    # for it forever.
    import warnings

    db = obj.Db(tmp_path / "f.obj")
    db.insert_many("c", [{"i": i, "pad": "x" * 200} for i in range(20000)])
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            for _ in db.all("c"):
                if stop.is_set():
                    break

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    time.sleep(0.2)
    hung = 0
    try:
        for _ in range(10):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads
                pid = os.fork()
            if pid == 0:
                db.close()
                os._exit(0)
            deadline = time.monotonic() + 5
            while os.waitpid(pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    hung += 1
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.01)
    finally:
        stop.set()
        t.join()
        db.close()
    assert hung == 0


def test_load_refuses_a_byte_order_mark_after_the_first_line_as_import_does(tmp_path):
    src = tmp_path / "late.jsonl"
    src.write_bytes(b'{"obj_export":1,"collection":"u","kind":"documents","next_id":3,"count":2,"indexes":[]}\n'
                    b'\xef\xbb\xbf{"id":1,"doc":{"a":1}}\n{"id":2,"doc":{"a":2}}\n')
    r = _cli("load", str(tmp_path / "cli.obj"), "--all", str(src))
    assert r.returncode == 5 and "line 2" in r.stderr and "byte order mark" in r.stderr, r.stderr
    with obj.Db(tmp_path / "py.obj") as db:
        with pytest.raises(obj.InvalidArgumentError, match="import line 2"):
            db.import_(src)


def test_a_copy_to_a_relative_path_after_chdir_is_not_taken_for_the_database(tmp_path, monkeypatch):
    # The own-file check compared the path given at open ("own.obj",
    # relative) resolved in the new working directory, where it names an
    # unrelated file: that file was refused as "this database's own file".
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "own.obj").write_bytes(b"scratch, not the database")
    monkeypatch.chdir(tmp_path / "a")
    db = obj.Db("own.obj")
    db.insert("c", {"x": 1})
    monkeypatch.chdir(tmp_path / "b")
    db.backup("own.obj")  # replaces b/own.obj, as an existing file is replaced
    with obj.Db(tmp_path / "b" / "own.obj") as copy:
        assert copy.get("c", 1) == {"x": 1}
    with pytest.raises(obj.InvalidArgumentError, match="own file"):
        db.backup(tmp_path / "a" / "own.obj")  # the database itself, by another path
    db.close()

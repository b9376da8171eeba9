"""Review 10, several processes on one database as a new user writes it:
what the [multiprocess] and [core] issues promise, checked from other
processes (multiprocessing, spawn)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import obj

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mp_review10_worker as worker  # after the sys.path insert (spawned children import it too)


def test_wal_stays_bounded_beside_overlapping_readers_in_other_processes(tmp_path):
    # [core]: "the WAL restarts as soon as no reader needs it, so a workload
    # of a writer and overlapping short readers keeps the WAL bounded".
    # Three reader processes always have some read transaction open.
    path = str(tmp_path / "bounded.obj")
    with obj.Db(path) as db:
        db.insert("h", {"n": 0})
    ctx = multiprocessing.get_context("spawn")
    stop, started = ctx.Event(), ctx.Semaphore(0)
    readers = [ctx.Process(target=worker.short_reader, args=(path, stop, started)) for _ in range(3)]
    for p in readers:
        p.start()
    try:
        for _ in readers:
            assert started.acquire(timeout=60)
        biggest = 0
        with obj.Db(path, sync="normal", wal_autocheckpoint=50) as db:
            for i in range(2000):
                db.insert("h", {"n": i, "pad": "x" * 100})
                if i % 25 == 0:
                    biggest = max(biggest, db.stat().wal_frames)
            assert db.count("h") == 2001
    finally:
        stop.set()
        for p in readers:
            p.join(timeout=60)
    assert [p.exitcode for p in readers] == [0, 0, 0]
    # About 6,000 frames are committed; without restarts the WAL holds them
    # all. The writer waits for older snapshots past 1,000 frames.
    assert biggest < 2500, f"WAL grew to {biggest} frames with a 50-frame checkpoint threshold"


def _run(code: str, *args: str) -> None:
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=120)


def test_a_process_that_ends_without_close_is_still_the_last_to_close(tmp_path):
    # A script that opens, writes and just ends (no close(), no `with`):
    # its Db is collected at exit, and as the last handle on the file it
    # folds the WAL like close() (obj_db_free does the same in C).
    path = str(tmp_path / "noclose.obj")
    _run("import obj, sys\ndb = obj.Db(sys.argv[1])\ndb.insert('h', {'n': 1})\n", path)
    assert sorted(os.listdir(tmp_path)) == ["noclose.obj"]
    # With another process's handle open, the WAL stays for that one.
    with obj.Db(path) as db:
        _run("import obj, sys\ndb = obj.Db(sys.argv[1])\ndb.insert('h', {'n': 2})\n", path)
        assert os.path.exists(path + "-wal")
        assert db.count("h") == 2
    assert sorted(os.listdir(tmp_path)) == ["noclose.obj"]
    # Collected inside a function, with a read transaction left unclosed.
    _run(
        "import obj, sys, os\n"
        "def f():\n"
        "    db = obj.Db(sys.argv[1])\n"
        "    db.insert('h', {'n': 3})\n"
        "    tx = db.read_transaction().__enter__()\n"
        "    tx.count('h')\n"
        "f()\n"
        "assert not os.path.exists(sys.argv[1] + '-wal'), os.listdir(os.path.dirname(sys.argv[1]))\n",
        path,
    )
    with obj.Db(path) as db:
        assert sorted(d["n"] for _, d in db.all("h")) == [1, 2, 3]

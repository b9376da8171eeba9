"""Several processes (multiprocessing, spawn) writing and reading one
database at once: every committed document is seen by the readers of
every process that start after the commit, counts never move inside a read
transaction nor go backwards across them, and nothing is lost."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

import obj

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mp_worker  # after the sys.path insert: importable by the spawned children through sys.path

PROCS = 4
WRITES = 60


def test_processes_write_and_read_one_database(tmp_path):
    path = str(tmp_path / "mp.obj")
    with obj.Db(path) as db:
        with db.transaction() as tx:
            tx.create_collection(mp_worker.COLL)
            tx.create_index(mp_worker.COLL, "key", "key", kind="unique")

    ctx = multiprocessing.get_context("spawn")
    committed = ctx.Array("q", PROCS)
    start = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=mp_worker.run, args=(path, k, PROCS, WRITES, committed, start, results))
        for k in range(PROCS)
    ]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    start.set()
    reports = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [r[2] for r in reports if r[1] != "ok"]
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in procs] == [0] * PROCS
    assert sorted(r[0] for r in reports) == list(range(PROCS))
    assert all(r[2] > 0 for r in reports)
    assert list(committed[:]) == [WRITES] * PROCS

    # Nothing lost: each (process, seq) exactly once, in one database.
    with obj.Db(path) as db:
        got = sorted((d["proc"], d["seq"]) for _, d in db.all(mp_worker.COLL))
        assert got == [(k, i) for k in range(PROCS) for i in range(1, WRITES + 1)]
        assert db.integrity_check().entries > 0
    assert time.monotonic() - t0 < 60


def test_a_forked_child_opens_the_database_its_parent_has_open(tmp_path):
    # The usual server shape: open, then fork workers that open it again.
    path = str(tmp_path / "fork.obj")
    with obj.Db(path) as db:
        db.insert("w", {"n": 0})
        with db.read_transaction() as rtx:
            pid = os.fork()
            if pid == 0:  # the child: never returns to pytest
                code = 1
                try:
                    try:
                        rtx.count("w")  # the parent's snapshot: refused in the child
                    except obj.InvalidArgumentError as e:
                        if "fork" in str(e):
                            with obj.Db(path) as mine:
                                mine.insert("w", {"n": 1})
                            code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert sorted(d["n"] for _, d in db.all("w")) == [0, 1]

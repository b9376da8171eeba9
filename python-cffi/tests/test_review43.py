"""Review 43: a child of fork() that touched its parent's transaction while
another thread of the parent was inside a call on it could hang (3 to 8
of 20 forks) instead of getting the fork error: the child's copy of the
lock serialising calls on the transaction (the C library's, and the
Python transaction's write lock) was never released. The child now gets
the fork error at once and may end its copy of the transaction."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
import warnings

import pytest

import obj

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def _child(tx, write: bool) -> None:
    signal.alarm(5)  # a hang ends the child with SIGALRM
    code = 0
    try:
        try:
            if write:
                tx.insert("c", {"child": 1})
            else:
                tx.get("c", 1)
            code = 3  # the parent's transaction answered in the child
        except obj.InvalidArgumentError as e:
            code = 0 if "fork()" in str(e) else 4
        # Ends the child's copy without waiting: a write transaction is
        # left with an exception (rolled back), a read one plainly.
        err = RuntimeError("leaving")
        tx.__exit__(RuntimeError, err, None) if write else tx.__exit__(None, None, None)
    except BaseException:  # noqa: BLE001 - reported through the exit code
        traceback.print_exc()
        code = 5
    os._exit(code)


def _calls(tx, write: bool, stop: threading.Event) -> None:
    # Calls long enough that the fork mostly comes during one.
    batch = [{"n": i, "pad": "x" * 100} for i in range(500)]
    while not stop.is_set():
        if write:
            tx.insert_many("c", batch)
        else:
            tx.get_many("c", range(1, 400))


@pytest.mark.parametrize("write", [True, False])
def test_a_child_touching_a_transaction_a_parent_thread_is_in_gets_the_fork_error(tmp_path, write):
    outcomes = []
    for trial in range(16):
        db = obj.Db(str(tmp_path / f"f{trial}.obj"))
        db.insert_many("c", [{"seed": i} for i in range(400)])
        tx = db.transaction() if write else db.read_transaction()
        tx.__enter__()
        stop = threading.Event()

        t = threading.Thread(target=_calls, args=(tx, write, stop))
        t.start()
        time.sleep(0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() beside a thread
            pid = os.fork()
        if pid == 0:
            _child(tx, write)
        _, status = os.waitpid(pid, 0)
        stop.set()
        t.join()
        outcomes.append(os.waitstatus_to_exitcode(status))
        # The parent's transaction goes on, unharmed.
        if write:
            tx.insert("c", {"after": 1})
        tx.__exit__(None, None, None)
        if write:
            assert db.query("c").filter(obj.field("after") == 1).count() == 1
        db.close()
    hung = outcomes.count(-signal.SIGALRM)
    assert outcomes == [0] * len(outcomes), f"{hung} children hung; exit codes {outcomes}"


def _wait_for_the_lock_then_close(db, holder_note: str) -> None:
    """A thread waits for the write lock on ``db`` (10 s busy timeout)
    while another handle or process holds it; closing ``db`` ends the wait
    at once with ClosedError."""
    got: list = []

    def writer() -> None:
        t0 = time.monotonic()
        try:
            with db.transaction() as tx:
                tx.insert("c", {"late": 1})
            got.append(("committed", time.monotonic() - t0))
        except obj.ObjError as e:
            got.append((e, time.monotonic() - t0))

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.3)  # the thread is waiting for the lock
    t0 = time.monotonic()
    db.close()
    t.join(5)
    assert not t.is_alive(), holder_note
    err, waited = got[0]
    assert isinstance(err, obj.ClosedError), (holder_note, err)
    assert "closed while this call waited for the write lock" in str(err)
    assert time.monotonic() - t0 < 2 and waited < 3, (holder_note, waited)


def test_closing_a_handle_ends_its_waits_for_the_write_lock(tmp_path):
    # They waited out the busy timeout, and a program closing its handles
    # (an asyncio service whose write had timed out) could not exit meanwhile.
    path = str(tmp_path / "w.obj")
    holder = obj.Db(path)
    tx = holder.transaction()
    tx.__enter__()
    _wait_for_the_lock_then_close(obj.Db(path, busy_timeout_ms=10_000), "another handle of this process")
    tx.__exit__(None, None, None)
    holder.close()
    code = (
        "import obj, sys, time\n"
        "db = obj.Db(sys.argv[1])\n"
        "with db.transaction() as tx:\n"
        "    tx.insert('c', {'other': 1})\n"
        "    print('holding', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    import subprocess

    other = subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env={**os.environ})
    try:
        assert other.stdout.readline().strip() == "holding"
        _wait_for_the_lock_then_close(obj.Db(path, busy_timeout_ms=10_000), "another process")
    finally:
        other.stdin.write("\n")
        other.stdin.close()
        assert other.wait(10) == 0
    with obj.Db(path) as db:
        assert db.query("c").filter(obj.field("other") == 1).count() == 1
        assert db.query("c").filter(obj.field("late") == 1).count() == 0


def test_a_close_does_not_cut_short_a_batched_import_in_progress(tmp_path):
    # The close's interrupt of waits for the write lock ended the import's
    # next batch (it never had to wait): calls in progress finish.
    src, dump, dst = tmp_path / "src.obj", str(tmp_path / "dump.jsonl"), str(tmp_path / "dst.obj")
    with obj.Db(src) as db:
        db.insert_many("c", [{"i": i, "pad": "x" * 50} for i in range(60_000)])
        db.export(dump)
    db = obj.Db(dst)
    got: list = []
    t = threading.Thread(target=lambda: got.append(db.import_(dump, batch_size=100)))
    t.start()
    time.sleep(0.1)
    db.close()
    t.join(60)
    assert got, "the import raised (see the thread's exception above)"
    with obj.Db(dst) as again:
        assert again.count("c") == 60_000

"""Review 26: what a user of obj-db 1.1.0 found.

A clean close folds the WAL into the main file ("the .obj file is
self-contained after a normal shutdown") even when another handle of the
process keeps the file open. While another process has it open, the
close-time checkpoint is the last process's (issue 9: "Close-time
checkpoint only by the last process to close").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

import obj


def _docs_in_main_file_alone(path: str, tmp_path) -> int:
    copy = str(tmp_path / "copy.obj")
    shutil.copy(path, copy)
    with obj.Db(copy) as c:
        n = c.query("notes").count() if "notes" in c.collections() else 0
    os.remove(copy)
    return n


def test_clean_close_folds_with_another_handle_open(tmp_path):
    path = str(tmp_path / "app.obj")
    idle = obj.Db(path)
    with obj.Db(path) as db:
        for i in range(10):
            db.insert("notes", {"i": i})
    assert _docs_in_main_file_alone(path, tmp_path) == 10
    assert os.path.getsize(path + "-wal") <= 64
    assert idle.query("notes").count() == 10
    idle.close()


def test_only_the_last_process_to_close_folds(tmp_path):
    path = str(tmp_path / "app.obj")
    with obj.Db(path) as db:
        db.insert("notes", {"i": -1})
    # Another process opens the file and waits until told to leave.
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, obj\n"
         "db = obj.Db(sys.argv[1])\n"
         "print('open', flush=True)\n"
         "sys.stdin.readline()\n"
         "print(db.query('notes').count(), flush=True)\n"
         "db.close()\n",
         path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "open"
        main_before = os.path.getsize(path)
        with obj.Db(path) as db:
            for i in range(10):
                db.insert("notes", {"i": i})
        wal = os.path.getsize(path + "-wal")
        assert wal > 64, "the WAL keeps the ten commits"
        assert os.path.getsize(path) == main_before, "the main file is not written"
        assert _docs_in_main_file_alone(path, tmp_path) == 1
        assert os.path.getsize(path + "-wal") == wal
        out, _ = child.communicate("\n", timeout=60)
        assert out.strip() == "11"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0
    assert _docs_in_main_file_alone(path, tmp_path) == 11
    assert not os.path.exists(path + "-wal"), "the last process removed the WAL"


def test_close_after_an_exception_still_skips_the_fold(tmp_path):
    path = str(tmp_path / "app.obj")
    idle = obj.Db(path)
    try:
        with obj.Db(path) as db:
            db.insert("notes", {"i": 1})
            raise KeyError("boom")
    except KeyError:
        pass
    assert _docs_in_main_file_alone(path, tmp_path) == 0
    idle.close()
    assert _docs_in_main_file_alone(path, tmp_path) == 1


def test_ctrl_c_during_a_backup_raises(tmp_path):
    """Ctrl-C while the engine copies pages raises KeyboardInterrupt as the
    progress callback is next entered, before its own code runs: cffi
    printed it and the backup returned as cancelled, with no file (and the
    CLI reported success)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    src = str(tmp_path / "src.obj")
    with obj.Db(src) as db:
        db.insert_many("d", [{"i": i, "note": "x" * 300} for i in range(30000)])
    called = threading.Event()

    def interrupt():
        called.wait(30)
        os.kill(os.getpid(), signal.SIGINT)

    def progress(done, total):
        called.set()
        return True

    # Python raises KeyboardInterrupt only where SIGINT was not ignored at
    # its start (a shell ignores it for background jobs): install it here.
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_backups(tmp_path, src, called, interrupt, progress)
    finally:
        signal.signal(signal.SIGINT, old_handler)


def _interrupt_backups(tmp_path, src, called, interrupt, progress):
    import threading

    with obj.Db(src, read_only=True) as db:
        for attempt in range(3):
            dest = str(tmp_path / f"bk{attempt}.obj")
            called.clear()
            t = threading.Thread(target=interrupt)
            t.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    db.backup(dest, progress)
                    time.sleep(5)  # a signal that came after the copy lands here
            finally:
                t.join()
            if os.path.exists(dest):  # interrupted after the copy was complete
                with obj.Db(dest, read_only=True) as copy:
                    assert copy.query("d").count() == 30000


def test_progress_that_raises_cancels_the_backup(tmp_path):
    src = str(tmp_path / "src.obj")
    with obj.Db(src) as db:
        db.insert_many("d", [{"i": i, "note": "x" * 300} for i in range(5000)])
        dest = str(tmp_path / "bk.obj")

        def progress(done, total):
            raise ValueError("stop")

        with pytest.raises(ValueError, match="stop"):
            db.backup(dest, progress)
        assert not os.path.exists(dest)
        report = db.backup(dest, lambda d, t: False)
        assert report["cancelled"] and not os.path.exists(dest)
        report = db.backup(dest, lambda d, t: None)
        assert not report["cancelled"] and os.path.exists(dest)


def test_cli_decrypt_of_a_plain_file_says_there_is_nothing_to_do(tmp_path):
    path = str(tmp_path / "p.obj")
    with obj.Db(path) as db:
        db.insert("d", {"i": 1})
    before = open(path, "rb").read()
    r = subprocess.run([sys.executable, "-m", "obj", "rekey", path, "--decrypt"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "not encrypted: nothing to do" in r.stderr and "decrypted:" not in r.stderr
    assert open(path, "rb").read() == before


def _child(path: str, code: str) -> subprocess.Popen:
    """A process running ``code`` on ``db`` (the database at ``path``),
    that prints 'ready' and waits for a line on stdin before leaving."""
    prog = "import sys, obj\ndb = obj.Db(sys.argv[1])\n" + code + \
        "\nprint('ready', flush=True)\nsys.stdin.readline()\ndb.close()\n"
    child = subprocess.Popen([sys.executable, "-c", prog, path],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def _finish(child: subprocess.Popen) -> None:
    try:
        child.communicate("\n", timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_read_only_last_handle_of_a_process_writes_nothing(tmp_path):
    """A read-only Db sharing its process's engine with a writable one that
    closed first checkpointed at its own close, as if writable."""
    path = str(tmp_path / "a.obj")
    w = obj.Db(path)
    ro = obj.Db(path, read_only=True)
    w.close()
    child = _child(path, "db.insert_many('n', [{'i': i} for i in range(50)])")
    try:
        before = (open(path, "rb").read(), open(path + "-wal", "rb").read())
        ro.close()
        assert (open(path, "rb").read(), open(path + "-wal", "rb").read()) == before
    finally:
        _finish(child)


def test_a_close_does_not_wait_on_a_shared_index_in_need_of_repair(tmp_path):
    """A writer that died in the middle of updating the shared index leaves
    its header torn; its repair waits for every reader. A close, which now
    checkpoints, waited for it (5 to 10 s, then Busy)."""
    import mmap
    import struct

    path = str(tmp_path / "a.obj")
    with obj.Db(path) as db:
        db.insert("n", {"i": 1})
    reader = _child(path, "rt = db.read_transaction()\nrt.query('n').count()")
    try:
        db = obj.Db(path, busy_timeout_ms=3000)
        other = obj.Db(path, busy_timeout_ms=3000)
        with open(path + "-shm", "r+b") as f:
            m = mmap.mmap(f.fileno(), 4096)
            seq = struct.unpack_from("<I", m, 8)[0]
            struct.pack_into("<I", m, 8, seq | 1)  # odd: a header update in progress
            m.close()
        for handle in (other, db):  # not the last handle, then the last one
            start = time.monotonic()
            handle.close()
            assert time.monotonic() - start < 1.0
    finally:
        _finish(reader)


def test_processes_closing_at_once_leave_no_sidecars(tmp_path):
    """Each clean close now folds what it can while holding the file open,
    so processes closing at the same moment each saw the others still there
    and none removed the -wal and -shm (23 runs of 30 left them); the last
    one now looks again after its fold."""
    worker = ("import sys, time, obj\n"
              "db = obj.Db(sys.argv[1])\n"
              "for i in range(20):\n"
              "    db.insert('n', {'i': i, 'pad': 'z' * 1000})\n"
              "while time.time() < float(sys.argv[2]):\n"
              "    pass\n"
              "db.close()\n")
    left = 0
    for run in range(6):
        path = str(tmp_path / f"a{run}.obj")
        with obj.Db(path) as db:
            db.insert("n", {"i": -1})
        at = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", worker, path, str(at)]) for _ in range(3)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
        copy = str(tmp_path / "copy.obj")
        shutil.copy(path, copy)
        with obj.Db(copy) as c:
            assert c.query("n").count() == 61
        os.remove(copy)
        left += os.path.exists(path + "-wal") or os.path.exists(path + "-shm")
    assert left <= 1, f"{left} runs of 6 left -wal or -shm after every process closed cleanly"

"""Review 26: what a user of obj-db 1.1.0 found.

A clean close folds the WAL into the main file ("the .obj file is
self-contained after a normal shutdown") even when another handle, in
this process or another, keeps the file open.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

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


def test_clean_close_folds_while_another_process_has_the_file(tmp_path):
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
        with obj.Db(path) as db:
            for i in range(10):
                db.insert("notes", {"i": i})
        assert os.path.exists(path + "-wal"), "the other process still uses the WAL"
        assert _docs_in_main_file_alone(path, tmp_path) == 11
        out, _ = child.communicate("\n", timeout=60)
        assert out.strip() == "11"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0
    assert _docs_in_main_file_alone(path, tmp_path) == 11


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

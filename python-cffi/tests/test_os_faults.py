"""Failures of real system calls (an LD_PRELOAD shim, os_faults/fault_shim.c,
built here with gcc): after a failed fsync or a failed rekey, the handle and
a reopen of the path in the same process recover, and other processes are
not locked out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SHIM_SOURCE = Path(__file__).parent / "os_faults" / "fault_shim.c"


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the fault shim")
    out = tmp_path_factory.mktemp("shim") / "fault_shim.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(out), str(SHIM_SOURCE), "-ldl"], check=True)
    return out


PRELUDE = """
import ctypes, errno, json, os, subprocess, sys
import obj
shim = ctypes.CDLL(os.environ["LD_PRELOAD"])
shim.fault_arm.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_long]
P = sys.argv[1]
out = {}
def other_process():
    code = ("import obj, sys; d = obj.Db(sys.argv[1], busy_timeout_ms=2000); d.insert('c', {'o': 1}); "
            "print(sum(1 for _ in d.iter_all('c'))); d.close()")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    r = subprocess.run([sys.executable, "-c", code, P], capture_output=True, text=True, timeout=60, env=env)
    return r.stdout.strip() or r.stderr.strip().splitlines()[-1]
def outcome(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
        return "ok"
    except obj.ObjError as e:
        return type(e).__name__
def fail_an_fsync(db):
    # A commit whose WAL fdatasync fails (EIO): the handle is dead after it.
    shim.fault_arm(b"fdatasync", b"t.obj-wal", errno.EIO, 1)
    return outcome(db.insert, "c", {"a": 2})
"""


def run(shim: Path, tmp_path: Path, body: str) -> dict:
    script = tmp_path / "child.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(out))\n")
    env = dict(os.environ, LD_PRELOAD=str(shim))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "t.obj")], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_reopening_after_a_failed_fsync_gives_a_working_handle(shim, tmp_path):
    out = run(shim, tmp_path, """
        db = obj.Db(P)
        db.insert("c", {"a": 1})
        out["commit"] = fail_an_fsync(db)
        out["old handle"] = outcome(db.insert, "c", {"a": 3})
        # What the message says: reopen (the old handle still alive).
        db = obj.Db(P)
        out["docs"] = [d["a"] for _, d in db.iter_all("c")]
        out["insert"] = db.insert("c", {"a": 4}) > 0
        out["other"] = other_process()
        db.close()
    """)
    assert out["commit"] == "IoError"
    assert out["old handle"] == "ClosedError"
    assert out["docs"][0] == 1 and set(out["docs"]) <= {1, 2}
    assert out["insert"] is True
    assert out["other"] == str(len(out["docs"]) + 2)


def test_a_failed_rekey_leaves_the_handle_working_and_the_file_open_to_others(shim, tmp_path):
    out = run(shim, tmp_path, """
        db = obj.Db(P, wal_autocheckpoint=100000)
        db.insert_many("c", [{"i": i} for i in range(20)])
        # The rekey's checkpoint into the database file fails once.
        shim.fault_arm(b"pwrite", b"/t.obj", errno.ENOSPC, 1)
        out["rekey"] = outcome(db.rekey, b"k" * 32)
        shim.fault_clear()
        out["count"] = sum(1 for _ in db.iter_all("c"))
        out["insert"] = db.insert("c", {"i": 20}) > 0
        second = obj.Db(P)
        out["second"] = sum(1 for _ in second.iter_all("c"))
        second.close()
        out["other"] = other_process()
        db.close()
        with obj.Db(P) as again:
            out["after"] = sum(1 for _ in again.iter_all("c"))
    """)
    assert out["rekey"] == "IoError"
    assert out["count"] == 20
    assert out["insert"] is True
    assert out["second"] == 21
    assert out["other"] == "22"
    assert out["after"] == 22


def test_a_rekey_on_a_dead_handle_does_not_take_the_file_back_from_the_new_one(shim, tmp_path):
    out = run(shim, tmp_path, """
        old = obj.Db(P)
        old.insert("c", {"a": 1})
        fail_an_fsync(old)
        db = obj.Db(P)
        out["rekey"] = outcome(old.rekey, b"k" * 32)
        # The open engine (sync full) is still the file's in this process.
        out["normal"] = outcome(obj.Db, P, sync="normal")
        again = obj.Db(P)
        out["again"] = again.insert("c", {"a": 3}) > 0
        again.close()
        db.close()
    """)
    assert out["rekey"] == "ClosedError"
    assert out["normal"] == "InvalidArgumentError"
    assert out["again"] is True


def test_an_export_that_cannot_write_names_its_file_and_leaves_nothing(shim, tmp_path):
    out = run(shim, tmp_path, """
        db = obj.Db(P)
        db.insert_many("c", [{"n": i, "pad": "x" * 500} for i in range(2000)])
        dest = os.path.join(os.path.dirname(P), "dump.jsonl")
        shim.fault_arm(b"write", b"*dump.jsonl.tmp-", errno.ENOSPC, 1)
        try:
            db.export(dest)
            out["export"] = "ok"
        except obj.ObjError as e:
            out["export"] = [type(e).__name__, str(e)]
        shim.fault_arm(b"", b"", 0, 0)
        out["left"] = sorted(n for n in os.listdir(os.path.dirname(P)) if n.startswith("dump"))
        out["again"] = db.export(dest)["documents"]
        db.close()
    """)
    kind, message = out["export"]
    assert kind == "IoError" and "writing the export to" in message and "dump.jsonl.tmp-" in message, message
    assert out["left"] == [] and out["again"] == 2000


def test_a_failed_commit_can_be_rolled_back_and_later_calls_say_how_it_ended(shim, tmp_path):
    # A commit whose WAL write fails (a full disk) applies nothing and leaves
    # the handle working. The rollback of the caller's error path succeeds
    # (it raised), and the transaction's later calls, in Python and in C,
    # say that a failed commit ended it (C said "already committed").
    out = run(shim, tmp_path, """
        from obj._ffi import ffi, lib
        db = obj.Db(P)
        db.insert("c", {"a": 1})
        def failed_commit():
            tx = db.transaction()
            tx.insert("c", {"a": 2})
            h = tx._h  # kept for the C calls below
            shim.fault_arm(b"pwrite", b"t.obj-wal", errno.ENOSPC, 1)
            out["commit"] = outcome(tx.commit)
            shim.fault_arm(b"", b"", 0, 0)
            return tx, h
        tx, h = failed_commit()
        out["rollback"] = outcome(tx.rollback)
        out["rollback again"] = outcome(tx.rollback)
        try:
            tx.insert("c", {"a": 3})
        except obj.ObjError as e:
            out["python later"] = [type(e).__name__, str(e)]
        st = lib.obj_kv_put(h, b"k", b"k", 1, b"v", 1)
        out["c later"] = [st == lib.OBJ_INVALID_ARGUMENT, ffi.string(lib.obj_last_error()).decode()]
        out["c rollback"] = lib.obj_txn_rollback(h)
        out["c commit again"] = lib.obj_txn_commit(h) == lib.OBJ_INVALID_ARGUMENT
        del h
        # The block form: the commit's error, not the rollback's, reaches the caller.
        try:
            with db.transaction() as tx2:
                tx2.insert("c", {"a": 5})
                shim.fault_arm(b"pwrite", b"t.obj-wal", errno.ENOSPC, 1)
        except obj.ObjError as e:
            out["block"] = type(e).__name__
        shim.fault_arm(b"", b"", 0, 0)
        out["docs"] = sorted(d["a"] for _, d in db.iter_all("c"))
        out["insert"] = db.insert("c", {"a": 4}) > 0
        db.close()
    """)
    assert out["commit"] == "IoError" and out["block"] == "IoError", out
    assert out["rollback"] == out["rollback again"] == "ok", out
    assert out["python later"] == ["InvalidArgumentError", "transaction already ended by a failed commit"], out
    ok, message = out["c later"]
    assert ok and "ended by a failed commit" in message, message
    assert out["c rollback"] == 0 and out["c commit again"], out
    assert out["docs"] == [1] and out["insert"], out

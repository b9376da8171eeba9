"""Each exception of the hierarchy, provoked for real."""

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj


@obj.document(collection="users")
@dataclass
class User:
    email: Annotated[str, obj.Unique]


def test_bad_arguments(db):
    with pytest.raises(obj.InvalidArgumentError):
        db.get("users", -1)
    with pytest.raises(obj.InvalidArgumentError):
        db.get("users", "1")
    with pytest.raises(obj.InvalidArgumentError):
        db.insert("users", 42)
    with pytest.raises(obj.InvalidArgumentError):
        db.query("users").filter(obj.field("a") > 1).limit(-1)
    with pytest.raises(obj.InvalidArgumentError):
        obj.Db(os.path.join(os.path.dirname(db.path), "x.obj"), sync="sometimes")
    with db.read_transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError):
            tx.kv("k").put(b"a", b"b")


def test_library_reports_invalid_argument_with_message(db):
    db.insert("raw", b"x")
    with pytest.raises(obj.InvalidArgumentError) as ei:
        db.query("raw").filter(obj.field("a") == 1).fetch()
    assert str(ei.value) and ei.value.status_name == "OBJ_INVALID_ARGUMENT"


def test_unique_violation_is_constraint_and_invalid_argument(db):
    db.insert(User(email="a"))
    with pytest.raises(obj.ConstraintError) as ei:
        db.insert(User(email="a"))
    assert isinstance(ei.value, obj.InvalidArgumentError)
    with db.transaction() as tx:  # the transaction stays usable after the violation
        with pytest.raises(obj.InvalidArgumentError):
            tx.insert(User(email="a"))
        tx.insert(User(email="b"))
    assert db.count(User) == 2


def test_closed_handle(path):
    db = obj.Db(path)
    db.close()
    db.close()  # idempotent
    with pytest.raises(obj.ClosedError, match="closed"):
        db.get("x", 1)
    with pytest.raises(obj.ObjError):
        db.transaction()


def test_finished_transaction(db):
    tx = db.transaction()
    tx.commit()
    with pytest.raises(obj.InvalidArgumentError, match="finished"):
        tx.insert("a", {"x": 1})


def test_not_found(db, tmp_path):
    with pytest.raises(obj.NotFoundError):
        db.update("users", 99, lambda d: d)
    with pytest.raises(obj.NotFoundError):
        obj.Db(str(tmp_path / "missing.obj"), create=False)
    with pytest.raises(obj.NotFoundError):
        db.detach("nope")


def test_update_raising_fn_rolls_back(db):
    oid = db.insert("c", {"n": 1})

    def bad(d):
        d["n"] = 2
        raise KeyError("nope")

    with pytest.raises(KeyError):
        db.update("c", oid, bad)
    assert db.get("c", oid) == {"n": 1}


def test_over_cap_sort(db):
    db.insert_many("c", [{"n": i} for i in range(20)])
    with pytest.raises(obj.InvalidArgumentError):
        db.query("c").sort_by("n").sort_buffer_limit(3).fetch()


def test_write_to_attached_namespace(db, tmp_path):
    other = str(tmp_path / "other.obj")
    with obj.Db(other) as o:
        o.insert("c", {"n": 1})
    db.attach(other, "arch")
    with pytest.raises(obj.InvalidArgumentError, match="read-only"):
        db.insert("arch.c", {"n": 2})
    with pytest.raises(obj.InvalidArgumentError):
        db.delete("arch.c", 1)


def test_corrupt_file(tmp_path):
    p = str(tmp_path / "c.obj")
    with obj.Db(p) as db:
        db.insert_many("c", [{"n": i, "pad": "x" * 200} for i in range(2000)])
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        for off in range(4096 * 2, size, 4096):
            f.seek(off + 100)
            f.write(b"\xde\xad\xbe\xef" * 16)
    with pytest.raises((obj.CorruptionError, obj.IntegrityError)):
        with obj.Db(p) as db:
            db.integrity_check()
            list(db.all("c"))


def test_not_an_obj_file(tmp_path):
    p = tmp_path / "junk.obj"
    p.write_bytes(b"this is not a database" * 500)
    with pytest.raises(obj.ObjError):
        obj.Db(str(p))


def test_second_process_holding_the_file_is_busy(path):
    obj.Db(path).close()
    code = textwrap.dedent(f"""
        import sys, time, obj
        db = obj.Db({path!r})
        tx = db.transaction()
        tx.insert("c", {{"n": 1}})
        print("ready", flush=True)
        sys.stdin.readline()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        with pytest.raises(obj.BusyError):
            db = obj.Db(path, busy_timeout_ms=200)
            try:
                with db.transaction() as tx:
                    tx.insert("c", {"n": 2})
            finally:
                db.close()
    finally:
        p.stdin.write("\n")
        p.stdin.flush()
        p.wait(timeout=30)


def test_exceptions_carry_status():
    e = obj.errors.error_for_status(4, "busy!")
    assert isinstance(e, obj.BusyError) and e.status == 4 and e.status_name == "OBJ_BUSY" and str(e) == "busy!"
    for st, cls in [(3, obj.CorruptionError), (5, obj.NotFoundError), (6, obj.IntegrityError),
                    (7, obj.FeatureUnsupportedError), (8, obj.EncryptionError), (9, obj.ClosedError)]:
        assert isinstance(obj.errors.error_for_status(st, "m"), cls)


def test_newer_format_is_feature_unsupported(path):
    with obj.Db(path) as db:
        db.insert("c", {"n": 1})
    with open(path, "r+b") as f:
        f.seek(8)
        f.write((99).to_bytes(4, "little"))  # the header's format version
    with pytest.raises(obj.FeatureUnsupportedError, match="newer"):
        obj.Db(path)

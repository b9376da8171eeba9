"""Review 16: what a new user met that the earlier tests did not.

- A NUL character in a path or a C-string name ended the string early,
  so the call named another file ("x\\0y" wrote "x"); now it is an
  InvalidArgumentError before any file is touched.
- compact(), import_() and checkpoint() inside the same thread's open
  write transaction waited out the busy timeout; they now fail at once,
  as the other writes do.
- A copy into a missing directory named only its temporary file; it
  names the path asked for too.
- backup's progress must be callable (it leaked a TypeError).
- A typed document newer than its class was read as the class, dropping
  the fields the class lacks, and an update wrote the loss back.
- A file that is not an obj database is both an InvalidArgumentError and a
  CorruptionError (NotADatabaseError).
- A map key that is not a str, where nothing says the key's type (a dict
  document, a field typed dict or Any), was stored as text and read back
  as a str: {1: "a"} came back {"1": "a"}. It is refused now.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import pytest

import obj


def test_a_nul_in_a_path_or_name_is_refused_before_any_file_is_touched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with obj.Db("src.obj") as db:
        db.insert("users", {"a": 1})
        db.export("plain.jsonl")
        calls = {
            "backup": lambda: db.backup("x3\0y"),
            "compact_to": lambda: db.compact_to("x4\0y"),
            "export": lambda: db.export("x5\0y"),
            "import": lambda: db.import_("plain.jsonl\0y"),
            "export collection": lambda: db.export("e.jsonl", "users\0zz"),
            "attach": lambda: db.attach("src.obj\0x", "ns"),
            "restore from": lambda: obj.Db.restore("src.obj\0zzz", "x1"),
            "restore to": lambda: obj.Db.restore("src.obj", "x2\0zzz"),
            "open": lambda: obj.Db("a\0b"),
            "open bytes": lambda: obj.Db(b"a\0b"),
        }
        for what, call in calls.items():
            with pytest.raises(obj.InvalidArgumentError, match="NUL"):
                call()
                pytest.fail(f"{what}: no error")
    left = sorted(os.listdir(tmp_path))
    assert left == ["plain.jsonl", "src.obj"], left


def test_compact_import_and_checkpoint_in_the_threads_write_transaction_fail_at_once(path, tmp_path):
    dump = str(tmp_path / "n.jsonl")
    with obj.Db(path, busy_timeout_ms=3000) as db:
        db.insert("c", {"i": 1})
        db.export(dump, "c")
        for call in (db.compact, lambda: db.import_(dump), db.checkpoint):
            with db.transaction() as tx:
                tx.insert("c", {"i": 2})
                t = time.monotonic()
                with pytest.raises(obj.BusyError, match="this thread already holds"):
                    call()
                assert time.monotonic() - t < 1.0
                tx.rollback()
        assert db.count("c") == 1
        db.compact()
        assert db.checkpoint().complete


def test_a_copy_into_a_missing_directory_names_the_path_asked_for(path, tmp_path):
    with obj.Db(path) as db:
        db.insert("c", {"i": 1})
        with pytest.raises(obj.IoError, match="creating .*nodir/x.obj "):
            db.backup(str(tmp_path / "nodir" / "x.obj"))
        with pytest.raises(obj.IoError, match="creating .*nodir/y.obj "):
            db.compact_to(str(tmp_path / "nodir" / "y.obj"))
        assert db.get("c", 1) == {"i": 1}


def test_backup_progress_must_be_callable(path, tmp_path):
    with obj.Db(path) as db:
        db.insert("c", {"i": 1})
        with pytest.raises(obj.InvalidArgumentError, match="progress must be a callable"):
            db.backup(str(tmp_path / "b.obj"), progress=5)
        assert not os.path.exists(tmp_path / "b.obj")


@obj.document(collection="people16", version=3)
@dataclass
class Person3:
    first: str
    last: str
    age: int


def test_a_document_newer_than_its_class_is_refused_not_truncated(path):
    with obj.Db(path) as db:
        pid = db.insert(Person3("a", "b", 41))
    # An older build of the application, in another process, declares
    # version 2 of the class; here a class of the same collection with a
    # lower version stands for it.
    old = obj.document(collection="people16", version=2)(dataclass(type("Person2", (), {
        "__annotations__": {"first": str, "last": str}, "last": ""})))
    with obj.Db(path) as db:
        for call in (lambda: db.get(old, pid),
                     lambda: db.update(old, pid, lambda p: setattr(p, "last", "c")),
                     lambda: list(db.all(old)),
                     lambda: db.query(old).fetch()):
            with pytest.raises(obj.InvalidArgumentError, match="newer than Person2's version 2"):
                call()
        assert db.get("people16", pid) == {"first": "a", "last": "b", "age": 41}


def test_a_file_that_is_not_a_database_is_both_invalid_and_corrupt(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_bytes(b"these are not the pages you are looking for " * 200)
    for call in (lambda: obj.Db(str(other)), lambda: obj.Db(str(other), read_only=True)):
        with pytest.raises(obj.NotADatabaseError, match="not an obj database") as e:
            call()
        assert isinstance(e.value, obj.InvalidArgumentError) and isinstance(e.value, obj.CorruptionError)
    with obj.Db(str(tmp_path / "a.obj")) as db:
        with pytest.raises(obj.CorruptionError, match="not an obj database"):
            db.attach(str(other), "ns")


@obj.document(collection="keyed16")
@dataclass
class Keyed:
    loose: dict
    anything: Any = None
    ints: dict[int, str] | None = None


def test_a_map_key_that_is_not_a_str_is_refused_where_nothing_says_its_type(path, backend):
    """A dict document, or a field typed dict or Any, keeps its keys as
    text: {1: "a"} read back as {"1": "a"}. Such keys are refused now; a
    typed dict[int, str] still round-trips."""
    import uuid
    with obj.Db(path) as db:
        for bad in ({1: "a"}, {True: 1}, {None: 1}, {1.5: 2}, {uuid.uuid4(): 1},
                    {"ok": [{"x": {2: "deep"}}]}, {"ok": ({3: 4},)}):
            with pytest.raises(obj.InvalidArgumentError, match="map keys must be str"):
                db.insert("c", bad)
            with pytest.raises(obj.InvalidArgumentError, match="map keys must be str"):
                db.insert_many("c", [{"fine": 1}, bad])
            # (A tuple in an Any field is refused first: it would read back as a list.)
            with pytest.raises(obj.InvalidArgumentError, match="map keys must be str|reads back as itself"):
                db.insert(Keyed(loose={}, anything=[bad]))
        with pytest.raises(obj.InvalidArgumentError, match="map keys must be str"):
            db.insert(Keyed(loose={7: "x"}))
        assert db.count("c") == 0 and db.count(Keyed) == 0
        k = Keyed(loose={"a": {"b": 1}}, anything={"n": [1, {"m": None}]}, ints={1: "a", -20: "b"})
        assert db.get(Keyed, db.insert(k)) == k
        assert db.get("c", db.insert("c", {"1": "a", "$x": {"y": [1]}})) == {"1": "a", "$x": {"y": [1]}}
        with pytest.raises(obj.InvalidArgumentError, match="map keys must be str"):
            db.query("c").filter(obj.field("m") == {1: "a"}).fetch()
        # A value that holds itself is refused, not walked for ever.
        loop: dict = {"a": 1}
        loop["self"] = loop
        with pytest.raises(obj.InvalidArgumentError):
            db.insert("c", loop)

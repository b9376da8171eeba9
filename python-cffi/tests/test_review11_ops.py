"""Review 11: operating a database (backup, restore, compaction,
encryption, dump and load) from Python and from the command line, as an
operator meets them."""

import datetime
import decimal
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Optional

import pytest

import obj
from obj import cli


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True, input=stdin)


def _files(d):
    return sorted(os.listdir(d))


@pytest.fixture
def filled(tmp_path):
    """A database of 3000 documents (several progress calls' worth of pages)."""
    p = str(tmp_path / "src.obj")
    with obj.Db(p) as db:
        db.insert_many("orders", [{"n": i, "pad": "p" * 400} for i in range(3000)])
    return p


# -- a progress callback that raises ------------------------------------------------


@pytest.mark.parametrize("exc", [ValueError("stop here"), KeyboardInterrupt()])
def test_an_exception_in_the_backup_progress_callback_is_raised_and_leaves_no_copy(filled, tmp_path, exc):
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if done:
            raise exc

    with obj.Db(filled) as db:
        before = _files(tmp_path)
        with pytest.raises(type(exc)):
            db.backup(tmp_path / "copy.obj", progress)
        assert len(calls) == 2  # the copy stopped at the call that raised
        assert _files(tmp_path) == before  # no copy, no temporary file
        # the database is still usable, and the next backup works
        assert db.backup(tmp_path / "copy.obj")["pages"] > 0
    with obj.Db(tmp_path / "copy.obj", read_only=True) as copy:
        assert copy.count("orders") == 3000


def test_ctrl_c_during_a_cli_backup_is_exit_130_and_leaves_no_copy(filled, tmp_path, monkeypatch, capsys):
    def interrupted(self, done, count):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli._Progress, "show", interrupted)
    dest = tmp_path / "nightly.obj"
    assert cli.main(["backup", filled, str(dest)]) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err == "obj: backup: interrupted\n"  # not "backed up ..."
    assert not dest.exists()


# -- read-only handles leave no -shm behind ------------------------------------------


def test_a_read_only_block_that_raises_leaves_no_shm(filled, tmp_path):
    before = _files(tmp_path)
    with pytest.raises(LookupError):
        with obj.Db(filled, read_only=True) as db:
            raise LookupError(db.count("orders"))
    assert _files(tmp_path) == before


def test_attach_and_detach_leave_no_shm_beside_the_attached_file(filled, tmp_path):
    app = tmp_path / "app.obj"
    with obj.Db(app) as db:
        db.attach(filled, "archive")
        assert db.count("archive.orders") == 3000
        db.detach("archive")
        assert not os.path.exists(filled + "-shm")
        db.attach(filled, "archive")
    assert _files(tmp_path) == ["app.obj", "src.obj"]


def test_a_failed_cli_backup_leaves_no_shm_beside_the_database(filled, tmp_path):
    r = run("backup", filled, str(tmp_path / "missing" / "dir" / "b.obj"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert _files(tmp_path) == ["src.obj"]


# -- a file to be written in a missing directory -------------------------------------


def test_a_new_file_in_a_missing_directory_is_not_found_exit_3_naming_it(filled, tmp_path):
    missing = str(tmp_path / "no" / "such" / "x.obj")
    for args, what in [
        (("backup", filled, missing), "backup file"),
        (("restore", filled, missing), "target file"),
        (("compact", filled, "--to", missing), "compacted copy"),
        (("load", missing, "orders"), "database"),
    ]:
        r = run(*args, stdin='{"a": 1}\n')
        assert r.returncode == cli.EXIT_NOT_FOUND, (args, r.returncode, r.stderr)
        assert r.stderr == f"obj: {args[0]}: {what} {missing}: No such file or directory\n", r.stderr
    assert _files(tmp_path) == ["src.obj"]


# -- dump and load of the whole database --------------------------------------------


@obj.document(collection="things", version=2)
@dataclass
class Thing:
    n: int
    blob: bytes
    at: datetime.datetime
    day: datetime.date
    price: decimal.Decimal
    uid: uuid.UUID
    tags: list
    extra: Optional[dict]


def _thing(i):
    tz = datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))
    return Thing(n=i - 2**62, blob=bytes([i % 256, 0, 255]), at=datetime.datetime(2024, 5, 6, 7, 8, 9, i, tzinfo=tz),
                 day=datetime.date(2000, 2, 29), price=decimal.Decimal(f"{i}.10"), uid=uuid.UUID(int=i),
                 tags=["a", i, None, 1.5], extra={"k": [True]} if i % 2 else None)


def _fill_everything(path):
    with obj.Db(path) as db:
        db.create_index("things", "by_n", ["n"], kind="unique")
        db.insert_many([_thing(i) for i in range(1, 301)])
        db.delete(Thing, 7)
        db.insert_many("orders", [{"region": r, "total": i} for i, r in enumerate(["eu", "us"] * 50)])
        db.create_index("orders", "by_region", ["region"])
        db.insert("blobs", b"\x00raw\xff")
        db.kv("sessions").put(b"\x00k", b"\xffv")
        db.kv("sessions").put("text", "value")


def _everything(path):
    with obj.Db(path, read_only=True) as db:
        st = {c.name: (c.kind, sorted((i.name, i.kind, tuple(i.key_paths)) for i in c.indexes))
              for c in db.stat().collections}
        return (st, list(db.all(Thing)), list(db.all("orders")), list(db.all("blobs")),
                list(db.kv("sessions").scan()), db.find_unique(Thing, "by_n", 5 - 2**62))


def test_cli_dump_without_a_collection_is_the_whole_database_as_db_export_writes_it(tmp_path):
    src, exported = str(tmp_path / "src.obj"), tmp_path / "export.jsonl"
    _fill_everything(src)
    with obj.Db(src) as db:
        db.export(exported)
    r = subprocess.run([sys.executable, "-m", "obj", "dump", src], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == exported.read_bytes()
    with obj.Db(src) as db:
        kv_n = sum(len(db.kv(n).keys()) for n in db.kv_namespaces())
    assert kv_n and r.stderr == f"dumped 400 documents and {kv_n} key-value entries\n".encode()
    # -o writes the same; db.import_ reads it back
    assert run("dump", src, "-o", str(tmp_path / "all.jsonl")).returncode == 0
    assert (tmp_path / "all.jsonl").read_bytes() == exported.read_bytes()
    with obj.Db(tmp_path / "imported.obj") as db:
        db.import_(tmp_path / "all.jsonl")
    assert _everything(str(tmp_path / "imported.obj")) == _everything(src)
    r = run("dump", src, "--limit", "3")
    assert r.returncode == cli.EXIT_USAGE and r.stderr == "obj: dump: --limit needs a COLLECTION\n"


@pytest.mark.parametrize("how", ["stdin", "--all"])
def test_cli_load_without_a_collection_restores_every_section_and_value_type(tmp_path, how):
    src, dump = str(tmp_path / "src.obj"), tmp_path / "all.jsonl"
    _fill_everything(src)
    assert run("dump", src, "-o", str(dump)).returncode == 0
    copy = str(tmp_path / "copy.obj")
    if how == "stdin":
        r = run("load", copy, stdin=dump.read_text("utf-8"))
    else:
        r = run("load", copy, "--all", str(dump))
    assert r.returncode == 0, r.stderr
    assert r.stderr == f"loaded 400 documents and 2 key-value entries into {copy}\n"
    assert _everything(copy) == _everything(src)
    assert _everything(copy)[1][5] == (6, _thing(6))  # ids kept: 7 was deleted
    # a whole-database dump into one collection says what to do instead
    r = run("load", str(tmp_path / "other.obj"), "orders", str(dump))
    assert r.returncode == cli.EXIT_ERROR and "load it without a COLLECTION" in r.stderr
    # and plain documents need a collection: nothing is created
    r = run("load", str(tmp_path / "plain.obj"), stdin='{"a": 1}\n')
    assert r.returncode == cli.EXIT_ERROR and "whole-database dump" in r.stderr
    assert not os.path.exists(tmp_path / "other.obj") and not os.path.exists(tmp_path / "plain.obj")


def test_a_load_at_the_dumps_ids_keeps_deleted_ids_unused(tmp_path):
    # Ids are never reused after a delete: a dump of a collection whose last
    # documents were deleted, loaded back at its ids (--ids, or a whole
    # database), assigns new ids above the deleted ones, as the source does.
    src = str(tmp_path / "src.obj")
    with obj.Db(src) as db:
        db.insert_many("docs", [{"n": i} for i in range(10)])
        db.insert_many("blobs", [b"a", b"b", b"c"])
        for i in (8, 9, 10):
            db.delete("docs", i)
        db.delete("blobs", 3)
        assert db.insert("docs", {"n": 99}) == 11
        db.delete("docs", 11)
    one = run("dump", src, "docs")
    whole = run("dump", src)
    assert one.returncode == 0 and whole.returncode == 0, (one.stderr, whole.stderr)
    by_ids = str(tmp_path / "ids.obj")
    assert run("load", by_ids, "docs", "--ids", stdin=one.stdout).returncode == 0
    everything = str(tmp_path / "all.obj")
    assert run("load", everything, stdin=whole.stdout).returncode == 0
    fresh = str(tmp_path / "fresh.obj")
    assert run("load", fresh, "docs", stdin=one.stdout).returncode == 0  # new ids: 1..7, then on
    with obj.Db(by_ids) as db:
        assert db.insert("docs", {"n": 100}) == 12
    with obj.Db(everything) as db:
        assert db.insert("docs", {"n": 100}) == 12
        assert db.insert("blobs", b"d") == 4
    with obj.Db(fresh) as db:
        assert db.insert("docs", {"n": 100}) == 8

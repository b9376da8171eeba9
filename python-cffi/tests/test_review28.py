"""Review 28: what a command-line operator's review found.

- Ctrl-C while a step that cannot stop part way ran (a load's commit, a
  compaction, a rekey, a restore) made the command say "interrupted" and
  exit 130 although the step had completed: an operator told that keeps
  believing the old state remains (and might throw away the new key of a
  rekey). The command now completes and says that the Ctrl-C came too late.
- `obj load DB -` loaded standard input into a collection named "-".
- `obj dump DB -o OUT COLLECTION` (an option before the collection) was
  refused; load took that order.
- An unset --passphrase-env variable exited 5, not 6 (key missing).
"""

import os
import signal
import subprocess
import sys

import pytest

import obj
from obj import cli


@pytest.fixture
def sigint_default():
    """Python's own SIGINT handler, which the command line takes over."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c_during(monkeypatch, owner, name):
    """Makes ``owner.name`` receive a Ctrl-C (SIGINT to this process) as
    it begins, as an operator's keypress during the engine call lands."""
    real = getattr(owner, name)

    def hit(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, hit)


def _db(path, n=50):
    with obj.Db(str(path)) as db:
        db.insert_many("notes", [{"n": i} for i in range(n)])
        db.delete("notes", 1)


def test_ctrl_c_during_a_compaction_reports_that_it_completed(tmp_path, monkeypatch, capsys, sigint_default):
    p = tmp_path / "a.obj"
    _db(p)
    _ctrl_c_during(monkeypatch, obj.Db, "compact")
    assert cli.main(["compact", str(p)]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "interrupted" not in err and "it completed" in err, err
    # Python's handler is back: a later Ctrl-C is a KeyboardInterrupt again.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_a_rekey_and_a_restore(tmp_path, monkeypatch, capsys, sigint_default):
    p = tmp_path / "a.obj"
    _db(p)
    monkeypatch.setenv("OBJ_TEST_PW", "correct horse")
    _ctrl_c_during(monkeypatch, obj.Db, "rekey")
    assert cli.main(["rekey", str(p), "--new-passphrase-env", "OBJ_TEST_PW"]) == cli.EXIT_OK
    assert "it completed" in capsys.readouterr().err
    with obj.Db(str(p), passphrase="correct horse") as db:
        assert db.count("notes") == 49

    b = tmp_path / "b.obj"
    _db(b, 7)
    _ctrl_c_during(monkeypatch, obj.Db, "restore")
    assert cli.main(["restore", str(b), str(tmp_path / "c.obj")]) == cli.EXIT_OK
    assert "it completed" in capsys.readouterr().err
    with obj.Db(str(tmp_path / "c.obj")) as db:
        assert db.count("notes") == 6


def test_ctrl_c_during_a_loads_commit(tmp_path, monkeypatch, capsys, sigint_default):
    src = tmp_path / "src.obj"
    _db(src)
    dump = tmp_path / "all.jsonl"
    assert cli.main(["dump", str(src), "-o", str(dump)]) == cli.EXIT_OK
    _ctrl_c_during(monkeypatch, obj.txn.WriteTxn, "commit")
    dst = tmp_path / "dst.obj"
    assert cli.main(["load", str(dst), "--all", str(dump), "-q"]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "loaded 49 documents" in err and "it completed" in err, err
    with obj.Db(str(dst)) as db:
        assert db.count("notes") == 49


def test_ctrl_c_during_an_intermediate_commit_stops_after_it(tmp_path, monkeypatch, capsys, sigint_default):
    # --commit-every: the commit the Ctrl-C came in completes, and the load
    # stops there (exit 130), keeping what was committed.
    src = tmp_path / "src.obj"
    _db(src)
    dump = tmp_path / "notes.jsonl"
    assert cli.main(["dump", str(src), "notes", "-o", str(dump)]) == cli.EXIT_OK
    dst = tmp_path / "dst.obj"
    with obj.Db(str(dst)) as db:
        db.insert("other", {"x": 1})
    _ctrl_c_during(monkeypatch, obj.txn.WriteTxn, "commit")
    assert cli.main(["load", str(dst), "notes", str(dump), "--commit-every", "10", "-q"]) == cli.EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err
    with obj.Db(str(dst)) as db:
        assert db.count("notes") == 10
        assert db.count("other") == 1


def run(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, input=stdin,
                          env=env)


def test_a_dash_is_standard_input_wherever_it_stands(tmp_path):
    src = tmp_path / "src.obj"
    _db(src)
    dump = run("dump", str(src)).stdout
    r = run("load", str(tmp_path / "dst.obj"), "-", stdin=dump)
    assert r.returncode == 0, r.stderr
    with obj.Db(str(tmp_path / "dst.obj")) as db:
        assert db.collections() == ["notes"] and db.count("notes") == 49
    r = run("load", str(tmp_path / "dst2.obj"), "-", "notes", stdin=dump)
    assert r.returncode == cli.EXIT_USAGE and b"give the COLLECTION before it" in r.stderr
    assert not os.path.exists(tmp_path / "dst2.obj")


def test_dump_takes_options_before_the_collection(tmp_path):
    src = tmp_path / "src.obj"
    _db(src)
    out = tmp_path / "notes.jsonl"
    r = run("dump", str(src), "-o", str(out), "notes")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().count(b"\n") == 50  # the header and 49 documents
    r = run("dump", str(src), "-o", str(out), "notes", "extra")
    assert r.returncode == cli.EXIT_USAGE


def test_a_missing_passphrase_is_a_key_error(tmp_path):
    src = tmp_path / "src.obj"
    _db(src)
    env = {k: v for k, v in os.environ.items() if k != "OBJ_NO_SUCH_PW"}
    r = run("stat", str(src), "--passphrase-env", "OBJ_NO_SUCH_PW", env=env)
    assert r.returncode == cli.EXIT_KEY and b"unset or empty" in r.stderr


# - `obj dump` of a whole database left out the plain B+trees a Rust
#   program makes with create_tree (db.export writes them), saying nothing.
#   It now streams db.export itself, which takes a file object too (through
#   the C call obj_db_export_to); `obj load` names what reads such a section.

_TREE_SECTION = (b'{"obj_export":1,"tree":"users","count":2}\n'
                 b'{"key":{"$bytes":"YQ=="},"value":{"$bytes":"MQ=="}}\n'
                 b'{"key":{"$bytes":"Yg=="},"value":{"$bytes":"Mg=="}}\n')


def _db_with_a_tree(tmp_path):
    p = tmp_path / "t.obj"
    _db(p)
    section = tmp_path / "tree.jsonl"
    section.write_bytes(_TREE_SECTION)
    with obj.Db(str(p)) as db:
        assert db.import_(str(section))["trees"] == 1
        db.kv("settings").put(b"theme", b"dark")
    return p


def test_export_to_a_file_object_writes_what_export_to_a_path_does(tmp_path):
    import gzip
    import io

    p = _db_with_a_tree(tmp_path)
    with obj.Db(str(p)) as db:
        want_report = db.export(str(tmp_path / "all.jsonl"))
        want = (tmp_path / "all.jsonl").read_bytes()
        assert _TREE_SECTION in want
        out = io.BytesIO()
        assert db.export(out) == want_report
        assert out.getvalue() == want
        with gzip.open(tmp_path / "all.jsonl.gz", "wb") as z:
            db.export(z)
        assert gzip.decompress((tmp_path / "all.jsonl.gz").read_bytes()) == want
        one = io.BytesIO()
        assert db.export(one, "notes")["documents"] == 49
        assert one.getvalue().startswith(b'{"obj_export":1,"collection":"notes"')

        # What write raises stops the export and is raised; the db goes on.
        seen = []

        def refuse(b):
            seen.append(len(b))
            raise OSError(28, "No space left on device")

        class Sink:
            write = staticmethod(refuse)

        with pytest.raises(OSError, match="No space left"):
            db.export(Sink())
        assert len(seen) == 1  # not called again once it raised
        with pytest.raises(obj.NotFoundError):
            db.export(io.BytesIO(), "nope")
        assert db.count("notes") == 49


def test_export_to_a_raw_file_that_takes_part_of_each_piece(tmp_path):
    p = _db_with_a_tree(tmp_path)

    class Trickle:
        def __init__(self):
            self.data = bytearray()

        def write(self, b):
            take = max(1, len(b) // 3)
            self.data += bytes(b[:take])
            return take

    with obj.Db(str(p)) as db:
        t = Trickle()
        db.export(t)
        db.export(str(tmp_path / "all.jsonl"))
    assert bytes(t.data) == (tmp_path / "all.jsonl").read_bytes()


def test_dump_keeps_plain_trees_and_load_names_what_reads_them(tmp_path):
    p = _db_with_a_tree(tmp_path)
    r = run("dump", str(p))
    assert r.returncode == 0, r.stderr
    assert _TREE_SECTION in r.stdout
    out = tmp_path / "all.jsonl"
    assert run("dump", str(p), "-o", str(out)).returncode == 0
    assert out.read_bytes() == r.stdout
    r2 = run("load", str(tmp_path / "copy.obj"), "--all", str(out))
    assert r2.returncode == cli.EXIT_ERROR and b"db.import_" in r2.stderr, r2.stderr
    with obj.Db(str(tmp_path / "copy2.obj")) as db:
        rep = db.import_(str(out))
        assert rep["trees"] == 1 and rep["tree_entries"] == 2 and rep["documents"] == 49

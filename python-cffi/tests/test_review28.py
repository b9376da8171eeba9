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
        # A text stream is refused before anything is written.
        text = io.StringIO()
        with pytest.raises(obj.InvalidArgumentError, match="sys.stdout.buffer"):
            db.export(text)
        assert text.getvalue() == ""
        assert db.count("notes") == 49


def test_export_to_a_raw_file_that_takes_part_of_each_piece(tmp_path):
    p = _db_with_a_tree(tmp_path)

    import io

    class Trickle(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            take = max(1, len(b) // 3)
            self.data += bytes(b[:take])
            return take

    class Fluent:  # a writer that returns itself (or True, or nothing): its return is not read
        def __init__(self):
            self.data = bytearray()

        def write(self, b):
            self.data += b
            return self

    with obj.Db(str(p)) as db:
        t, f = Trickle(), Fluent()
        db.export(t)
        db.export(f)
        db.export(str(tmp_path / "all.jsonl"))
    assert bytes(t.data) == (tmp_path / "all.jsonl").read_bytes() == bytes(f.data)


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


# - `for oid, o in tx.all(Order): tx.update(...)` in one write transaction
#   (a loop users of obj-db 1.1.0 write) raised at its second step: a write
#   ends the C cursor. An iteration in id order now goes on after the last
#   id it yielded, reading the transaction as it is (through the engine's
#   `after_id`); a sorted or index-ordered one still raises.

from dataclasses import dataclass  # noqa: E402
from typing import Annotated  # noqa: E402


@obj.document(collection="r28_orders", version=1)
@dataclass
class Order:
    n: int
    region: Annotated[str, obj.Index]
    total: float = 0.0


def _orders(path, n=600):
    with obj.Db(str(path)) as db:
        db.insert_many([Order(n=i, region="eu" if i % 3 else "us", total=float(i)) for i in range(n)])


def test_updating_every_document_while_iterating_a_write_transaction(tmp_path):
    p = tmp_path / "o.obj"
    _orders(p)  # more than one batch of the C cursor
    with obj.Db(str(p)) as db:
        with db.transaction() as tx:
            seen = []
            for oid, o in tx.all(Order):
                seen.append(oid)
                tx.update(Order, oid, lambda o: Order(n=o.n, region=o.region, total=o.total * 2))
        assert seen == list(range(1, 601))
        assert [o.total for _, o in db.all(Order)] == [float(i) * 2 for i in range(600)]


def test_deletes_ahead_and_inserts_behind_while_iterating(tmp_path):
    p = tmp_path / "o.obj"
    _orders(p, 40)
    with obj.Db(str(p)) as db:
        with db.transaction() as tx:
            seen = []
            for oid, _o in tx.all("r28_orders"):
                seen.append(oid)
                if oid == 10:
                    tx.delete("r28_orders", 11)  # ahead: never read
                if oid == 39:
                    tx.insert(Order(n=99, region="x"))  # id 41: read, as it is after the last
            assert seen == [i for i in range(1, 42) if i != 11]
        # iter_all and a filtered scan go on the same way; a limit counts on.
        with db.transaction() as tx:
            got = []
            for oid, _o in tx.query(Order).filter(obj.field("total") >= 5).limit(6).iter():
                got.append(oid)
                tx.upsert(Order, oid, Order(n=-1, region="y", total=100.0))
            assert got == [6, 7, 8, 9, 10, 12]


def test_a_sorted_or_index_ordered_iteration_still_raises_after_a_write(tmp_path):
    p = tmp_path / "o.obj"
    _orders(p, 40)
    with obj.Db(str(p)) as db, db.transaction() as tx:
        it = tx.query(Order).sort_by("-total").iter()
        oid, _ = next(it)
        tx.update(Order, oid, lambda o: o)
        with pytest.raises(obj.InvalidArgumentError, match="changed under the cursor"):
            next(it)
        it = tx.query(Order).filter(obj.field("region") == "us").iter()  # served by the index
        next(it)
        tx.insert(Order(n=1, region="us"))
        with pytest.raises(obj.InvalidArgumentError, match="changed under the cursor"):
            next(it)


def test_after_id_pages_through_a_collection_by_id(tmp_path):
    p = tmp_path / "o.obj"
    _orders(p, 100)
    with obj.Db(str(p)) as db:
        db.delete(Order, 50)
        pages, after = [], None
        while True:
            page = db.query(Order).after_id(after).limit(30).fetch()
            if not page:
                break
            pages.append([i for i, _ in page])
            after = page[-1][0]
        assert [len(x) for x in pages] == [30, 30, 30, 9]
        assert sum(pages, []) == [i for i in range(1, 101) if i != 50]
        q = db.query(Order).filter(obj.field("region") == "us").after_id(90)
        assert [i for i, _ in q.fetch()] == [91, 94, 97, 100]
        assert q.count() == 4 and "SCAN" in str(q.explain())
        assert db.query("r28_orders").after_id(98).ids() == [99, 100]
        for bad in (-1, 2**64, "3", True, 1.5):
            with pytest.raises(obj.InvalidArgumentError, match="after_id takes"):
                db.query(Order).after_id(bad)
        with pytest.raises(obj.InvalidArgumentError, match="after_id"):
            db.query(Order).index_range("region", "eu", "us").after_id(3).fetch()


# What the review of this session's commits found in them:
# - db.export to a non-blocking raw file that would block (write returns
#   None) took None for "all written" and lost the rest without a word;
# - a failed intermediate commit of `load --commit-every` after a noted
#   Ctrl-C was reported as "interrupted" instead of its own error;
# - cli.main() run in another thread reset the SIGINT state of a command
#   running on the main thread.


def test_export_to_a_non_blocking_pipe_that_would_block_raises(tmp_path):
    import io

    p = tmp_path / "o.obj"
    _orders(p, 3000)  # far more than a pipe holds
    r, w = os.pipe()
    try:
        os.set_blocking(w, False)
        with obj.Db(str(p)) as db, io.FileIO(w, "wb", closefd=False) as raw:
            with pytest.raises(BlockingIOError):
                db.export(raw)
    finally:
        os.close(r)
        os.close(w)


def test_a_failed_intermediate_commit_is_reported_as_itself(tmp_path, monkeypatch, capsys, sigint_default):
    src = tmp_path / "src.obj"
    _db(src)
    dump = tmp_path / "notes.jsonl"
    assert cli.main(["dump", str(src), "notes", "-o", str(dump)]) == cli.EXIT_OK

    def busy(self):
        os.kill(os.getpid(), signal.SIGINT)
        raise obj.BusyError("simulated: the commit failed")

    monkeypatch.setattr(obj.txn.WriteTxn, "commit", busy)
    rc = cli.main(["load", str(tmp_path / "dst.obj"), "notes", str(dump), "--commit-every", "10", "-q"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_BUSY and "simulated" in err and "interrupted" not in err, (rc, err)


def test_main_in_another_thread_leaves_sigint_alone(tmp_path, sigint_default):
    import threading

    p = tmp_path / "a.obj"
    _db(p)
    codes = []
    t = threading.Thread(target=lambda: codes.append(cli.main(["stat", str(p)])))
    t.start()
    t.join()
    assert codes == [cli.EXIT_OK]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert cli._Sigint.owner is None


# What the review of the iteration change found in it:
# - an index-ordered iteration whose loop dropped the index went on in id
#   order (the plan was looked at after the write): rows came twice;
# - a write call that failed ended the C cursor uncounted, and a kv
#   namespace's drop() was not counted: the iteration raised later;
# - AsyncQuery had no after_id.


def test_an_index_ordered_iteration_that_drops_its_index_raises(tmp_path):
    with obj.Db(str(tmp_path / "d.obj")) as db:
        db.insert_many("c", [{"n": 10 - i} for i in range(10)])
        db.create_index("c", "by_n", "n")
        with db.transaction() as tx:
            it = tx.query("c").filter(obj.field("n") > 0).iter()
            assert [next(it)[0] for _ in range(3)] == [10, 9, 8]
            tx.drop_index("c", "by_n")
            with pytest.raises(obj.InvalidArgumentError, match="changed under the cursor"):
                next(it)


def test_failed_writes_and_kv_drops_in_the_loop_do_not_end_it(tmp_path):
    with obj.Db(str(tmp_path / "f.obj")) as db:
        db.insert_many("c", [{"n": i} for i in range(300)])
        db.create_index("c", "u", "n", kind="unique")
        db.kv("meta").put(b"k", b"v")
        with db.transaction() as tx:
            seen = []
            for i, d in tx.all("c"):
                seen.append(i)
                with pytest.raises(obj.ConstraintError):
                    tx.insert("c", {"n": d["n"]})  # a duplicate: refused, no trace
                if i == 150:
                    tx.kv("meta").drop()
            assert seen == list(range(1, 301))


async def test_async_query_takes_after_id(tmp_path):
    async with obj.AsyncDb(str(tmp_path / "a.obj")) as adb:
        await adb.insert_many("c", [{"n": i} for i in range(5)])
        got = await adb.query("c").after_id(2).fetch()
        assert [i for i, _ in got] == [3, 4, 5]

"""Review 18: what users of the package met that earlier tests did not.

- attach() refused a namespace that would hide a local collection, but not
  a local key-value namespace: with one called "arch.meta",
  db.kv("arch.meta") after attaching "arch" silently answered from the
  attached file's "meta" (and the C API, which does not route key-value
  names, answered from the local one).
- The command line (a review of export/import and the CLI):
  - `obj dump -o LINK`, LINK a symbolic link to a database's -wal, replaced
    that WAL: the database lost its last commits. Refused now, as the -wal
    named directly is.
  - `obj load` took a section header only when its line began with
    `{"obj_export"`: a header with its keys in another order was loaded as
    a document (and the records as documents wrapping theirs).
  - An option before COLLECTION (`obj load db -q orders`) made COLLECTION
    the INPUT file.
  - A document at id 0 (which the engine and db.import_ take) was refused
    by `load --ids`/`--all`, so a dump of it did not load back.
  - A record with "v" after "doc" was refused with a JSON message about
    trailing characters.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import obj


def test_attach_never_hides_a_local_key_value_namespace(tmp_path):
    # In Python db.kv("ns.name") reads namespace "name" of the file attached
    # as "ns": a local namespace called "ns.name" must not be hidden by it.
    other, main = tmp_path / "other.obj", tmp_path / "main.obj"
    with obj.Db(other) as o:
        o.kv("meta").put(b"k", b"attached")
    with obj.Db(main) as db:
        db.kv("arch.meta").put(b"k", b"local")
        with pytest.raises(obj.InvalidArgumentError, match="would hide the local key-value namespace 'arch.meta'"):
            db.attach(other, "arch")
    with obj.Db(tmp_path / "fresh.obj") as db:
        db.attach(other, "arch")
        assert db.kv("arch.meta").get(b"k") == b"attached"
        # Made afterwards, by another handle: reads are refused, not answered
        # from the attached file.
        with obj.Db(tmp_path / "fresh.obj") as peer:
            peer.kv("arch.meta").put(b"k", b"local")
        with pytest.raises(obj.InvalidArgumentError, match="both in this database and in the database attached"):
            db.kv("arch.meta").get(b"k")
        db.detach("arch")
        assert db.kv("arch.meta").get(b"k") == b"local"


def cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True, input=stdin)


def test_dump_never_writes_through_a_link_to_a_databases_wal(tmp_path):
    app, other, link = tmp_path / "app.obj", tmp_path / "other.obj", tmp_path / "out.jsonl"
    with obj.Db(other) as o:
        o.insert("x", {"a": 1})
    code = (f"import obj, os; db = obj.Db({str(app)!r}); "
            f"db.insert_many('c', [{{'i': i}} for i in range(50)]); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True)  # a crash: the commits are in app.obj-wal
    os.symlink(str(app) + "-wal", link)
    r = cli("dump", str(other), "-o", str(link))
    assert r.returncode == 5 and "belongs to the database" in r.stderr, r.stderr
    with obj.Db(app) as db:
        assert db.count("c") == 50


def test_load_reads_a_header_whatever_the_order_of_its_keys(tmp_path):
    dump = ('{"indexes":[{"name":"by_email","kind":"unique","fields":["email"]}],"count":2,"next_id":3,'
            '"kind":"documents","collection":"u","obj_export":1}\n'
            '{"id":1,"doc":{"email":"a"}}\n{"id":2,"doc":{"email":"b"}}\n')
    for args in (("u",), ("--all",)):
        path = tmp_path / f"{args[0].strip('-')}.obj"
        r = cli("load", str(path), *args, stdin=dump)
        assert r.returncode == 0, r.stderr
        with obj.Db(path) as db:
            assert [d for _, d in db.all("u")] == [{"email": "a"}, {"email": "b"}]
            with pytest.raises(obj.ConstraintError):
                db.insert("u", {"email": "a"})


def test_load_takes_options_before_the_collection(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orders").write_text('{"decoy": true}\n')  # a file named like the collection
    r = cli("load", "t.obj", "-q", "orders", stdin='{"a": 1}\n')
    assert r.returncode == 0, r.stderr
    r = cli("load", "t.obj", "-q", "orders", "-", stdin='{"a": 2}\n')
    assert r.returncode == 0, r.stderr
    with obj.Db("t.obj") as db:
        assert db.collections() == ["orders"] and [d for _, d in db.all("orders")] == [{"a": 1}, {"a": 2}]


def test_a_dump_with_id_0_and_v_after_doc_loads_back(tmp_path):
    src = tmp_path / "src.obj"
    with obj.Db(src) as db:
        db.upsert("u", 0, {"a": 0})
        db.insert("u", {"a": 1})
    dump = cli("dump", str(src)).stdout
    r = cli("load", str(tmp_path / "dst.obj"), "--all", stdin=dump)
    assert r.returncode == 0, r.stderr
    with obj.Db(tmp_path / "dst.obj") as db:
        assert list(db.all("u")) == [(0, {"a": 0}), (1, {"a": 1})]
    r = cli("load", str(tmp_path / "v.obj"), "p", "--ids", stdin='{"id":10,"doc":{"a":1},"v":3}\n')
    assert r.returncode == 0, r.stderr
    with obj.Db(tmp_path / "v.obj") as db:
        (rec,) = db.dump_raw("p")
        assert rec.id == 10 and rec.header.type_version == 3


def test_load_commit_every_bounds_the_transaction_and_keeps_what_it_committed(tmp_path):
    # Issue 8: load "in constant memory". By default a load is one
    # transaction (all or nothing; the engine spills what it changed beyond
    # its memory bound to the WAL); --commit-every N commits as it goes.
    lines = "".join(f'{{"i": {i}}}\n' for i in range(2600))
    path = tmp_path / "c.obj"
    with obj.Db(path) as db:
        db.insert("other", {"x": 1})  # an existing database: a failed load keeps what it committed
    r = cli("load", str(path), "c", "-q", "--batch", "500", "--commit-every", "1000", stdin=lines)
    assert r.returncode == 0, r.stderr
    bad = lines.replace('{"i": 2500}', '{"i": ')
    r = cli("load", str(path), "d", "-q", "--batch", "500", "--commit-every", "1000", stdin=bad)
    assert r.returncode == 5 and "line 2501" in r.stderr, r.stderr
    r = cli("load", str(path), "e", "-q", "--batch", "500", stdin=bad)  # one transaction: nothing
    assert r.returncode == 5
    with obj.Db(path) as db:
        assert db.count("c") == 2600 and [d["i"] for _, d in db.all("c")] == list(range(2600))
        assert db.count("d") == 2000  # the transactions committed before the bad line
        assert "e" not in db.collections()
        db.kv("ns").put(b"k", b"v")
        with db.transaction() as tx:
            for i in range(1200):
                tx.kv("big").put(i.to_bytes(2, "big"), b"v%d" % i)
    dump = cli("dump", str(path)).stdout
    r = cli("load", str(tmp_path / "copy.obj"), "--all", "-q", "--batch", "500", "--commit-every", "1000",
            stdin=dump)
    assert r.returncode == 0, r.stderr
    with obj.Db(tmp_path / "copy.obj") as db:
        assert db.count("c") == 2600 and db.count("d") == 2000
        assert len(list(db.kv("big").scan())) == 1200 and db.kv("ns").get(b"k") == b"v"


def test_load_commit_every_into_a_new_file_keeps_what_it_committed(tmp_path):
    # The README: "--commit-every 50000 # commits as it goes (a failure keeps
    # what was committed)", into a new file too; the commits fall every N
    # documents whatever --batch is. A load that committed nothing leaves
    # no file behind.
    lines = "".join(f'{{"i": {i}}}\n' for i in range(2600)).replace('{"i": 2500}', '{"i": ')
    path = tmp_path / "new.obj"
    r = cli("load", str(path), "c", "-q", "--batch", "700", "--commit-every", "1000", stdin=lines)
    assert r.returncode == 5 and "line 2501" in r.stderr, r.stderr
    with obj.Db(path) as db:
        assert [d["i"] for _, d in db.all("c")] == list(range(2000))
    early = tmp_path / "early.obj"
    r = cli("load", str(early), "c", "-q", "--commit-every", "3000", stdin=lines)
    assert r.returncode == 5 and "line 2501" in r.stderr, r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("early.obj")]


@pytest.mark.parametrize("header, lines, words", [
    ('{"obj_export":1,"collection":"u","kind":"documents","next_id":3,"count":2,"indexes":[]}',
     '{"id":1,"doc":{"a":1}}\n{"id":1,"doc":{"a":2}}\n', "ascending id order"),
    ('{"obj_export":1,"collection":"u","kind":"documents","next_id":3,"count":2,"indexes":[]}',
     '{"id":2,"doc":{"a":1}}\n{"id":1,"doc":{"a":2}}\n', "ascending id order"),
    ('{"obj_export":1,"collection":"u","kind":"documents","next_id":3,"count":1,"indexes":[],"zzz":1}',
     '{"id":1,"doc":{"a":1}}\n', "unexpected field"),
    ('{"obj_export":1,"collection":"u","kind":"documents","next_id":-1,"count":1,"indexes":[]}',
     '{"id":1,"doc":{"a":1}}\n', "next_id"),
    # A field a document line does not have (a typo of "v"): the command
    # line dropped it silently.
    ('{"obj_export":1,"collection":"u","kind":"documents","next_id":3,"count":1,"indexes":[]}',
     '{"id":1,"vv":3,"doc":{"a":1}}\n', 'unexpected field "vv"'),
    ('{"obj_export":1,"collection":"u","kind":"documents","next_id":3,"count":1,"indexes":[]}',
     '{"id":1,"doc":{"a":1},"vv":3}\n', 'unexpected field "vv"'),
])
def test_a_dump_that_breaks_its_format_is_refused_by_load_and_import(tmp_path, header, lines, words):
    # A repeated id replaced the document before it while the load counted
    # both; the command line also took fields the format does not allow.
    text = header + "\n" + lines
    src = tmp_path / "in.jsonl"
    src.write_text(text)
    r = cli("load", str(tmp_path / "cli.obj"), "--all", str(src))
    assert r.returncode == 5 and words in r.stderr, r.stderr
    with obj.Db(tmp_path / "py.obj") as db:
        with pytest.raises(obj.InvalidArgumentError, match=words):
            db.import_(src)
        assert db.collections() == []


def test_a_dump_that_starts_with_a_byte_order_mark_loads_everywhere(tmp_path):
    # An editor's UTF-8 BOM before the first header: the command line
    # loaded it and import_ said "expected value at line 1 column 1".
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + b'{"obj_export":1,"collection":"u","kind":"documents","next_id":2,'
                    b'"count":1,"indexes":[]}\n{"id":1,"doc":{"a":1}}\n')
    r = cli("load", str(tmp_path / "cli.obj"), "--all", str(src))
    assert r.returncode == 0, r.stderr
    with obj.Db(tmp_path / "py.obj") as db:
        db.import_(src)
        assert db.get("u", 1) == {"a": 1}
    with obj.Db(tmp_path / "cli.obj") as db:
        assert db.get("u", 1) == {"a": 1}

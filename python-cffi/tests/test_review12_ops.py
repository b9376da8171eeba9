"""Review 12: operating a database (dump and load, attach, backup, rekey)
from Python and from the command line, as an operator meets them."""

import subprocess
import sys

import pytest

import obj
from obj import cli


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, input=stdin)


def _err(r):
    return r.stderr.decode("utf-8", "replace")


# -- load: the error names the line at fault, not the last line of its batch --------


def test_a_malformed_plain_line_is_named_by_its_own_line_number(tmp_path):
    target = tmp_path / "new.obj"
    lines = b'{"a": 1}\n{"a": 2}\n{bad json}\n{"a": 4}\n{"a": 5}\n'
    r = run("load", str(target), "things", stdin=lines)
    assert r.returncode == cli.EXIT_ERROR
    assert _err(r).startswith("obj: load: line 3: "), _err(r)
    assert _err(r).count("\n") == 1 and "Traceback" not in _err(r)
    assert not target.exists()


def test_a_line_that_is_no_document_is_named_without_a_place_in_a_batch(tmp_path):
    # The error used to say "document [0]: ...", its place in the insert
    # call that found it, which means nothing to the user.
    r = run("load", str(tmp_path / "t.obj"), "c", stdin=b'{"a": 1}\n{"a": 2}\n[1, 2]\n')
    assert r.returncode == cli.EXIT_ERROR
    assert _err(r) == "obj: load: line 3: invalid argument: a document must be a JSON object, not list\n", _err(r)


def test_a_malformed_line_of_a_dump_is_named_by_its_own_line_number(tmp_path):
    src = tmp_path / "src.obj"
    with obj.Db(src) as db:
        db.insert_many("c", [{"n": i} for i in range(20)])
    dump = run("dump", str(src), "c").stdout.split(b"\n")
    assert dump[5] == b'{"id":5,"doc":{"n":4}}'
    dump[5] = b'{"id":5,"doc":{"n":4 oops}}'  # line 6 (the header is line 1)
    for extra in ([], ["--ids"]):
        r = run("load", str(tmp_path / "copy.obj"), "c", *extra, stdin=b"\n".join(dump))
        assert r.returncode == cli.EXIT_ERROR
        assert _err(r).startswith("obj: load: line 6: "), (extra, _err(r))
    assert not (tmp_path / "copy.obj").exists()


def test_a_unique_conflict_names_the_line_of_the_conflicting_document(tmp_path):
    target = tmp_path / "t.obj"
    with obj.Db(target) as db:
        db.create_index("users", "by_email", ["email"], kind="unique")
        db.insert("users", {"email": "taken@x"})
    lines = b"".join(b'{"email": "u%d@x"}\n' % i for i in range(10))
    lines += b'{"email": "taken@x"}\n' + b'{"email": "later@x"}\n'  # line 11
    r = run("load", str(target), "users", stdin=lines)
    assert r.returncode == cli.EXIT_ERROR
    assert _err(r).startswith("obj: load: line 11: constraint violated"), _err(r)
    # a duplicate within the input: the second one is at fault
    r = run("load", str(target), "users", stdin=b'{"email": "a"}\n{"email": "b"}\n{"email": "a"}\n')
    assert _err(r).startswith("obj: load: line 3: constraint violated"), _err(r)
    with obj.Db(target) as db:
        assert db.count("users") == 1  # nothing loaded


def test_bad_lines_of_raw_and_key_value_sections_are_named(tmp_path):
    src = tmp_path / "src.obj"
    with obj.Db(src) as db:
        db.insert_many("blobs", [b"a", b"b", b"c"])
        db.kv("kv").put(b"k1", b"v1")
        db.kv("kv").put(b"k2", b"v2")
    lines = run("dump", str(src)).stdout.split(b"\n")
    # header blobs (1), 3 blobs (2-4), header kv (5), 2 entries (6-7)
    assert lines[0].startswith(b'{"obj_export":1,"collection":"blobs"') and lines[4].startswith(b'{"obj_export":1,"kv"')
    bad_raw = list(lines)
    bad_raw[2] = b'{"id":2,"doc":{"$bytes":"Yg=="'
    r = run("load", str(tmp_path / "a.obj"), stdin=b"\n".join(bad_raw))
    assert r.returncode == cli.EXIT_ERROR and _err(r).startswith("obj: load: line 3: "), _err(r)
    bad_kv = list(lines)
    bad_kv[6] = b'{"key":{"$bytes":"azI="}}'
    r = run("load", str(tmp_path / "b.obj"), stdin=b"\n".join(bad_kv))
    assert r.returncode == cli.EXIT_ERROR and _err(r).startswith("obj: load: line 7: "), _err(r)
    assert not (tmp_path / "a.obj").exists() and not (tmp_path / "b.obj").exists()


# -- load: "$bytes" that is not base64 is refused, as db.import_ refuses it -----------


def _whole_dump(tmp_path):
    src = tmp_path / "src.obj"
    with obj.Db(src) as db:
        db.insert_many("blobs", [b"a", b"bb", b"ccc"])
        db.kv("kv").put(b"k1", b"v1")
    lines = run("dump", str(src)).stdout.split(b"\n")
    assert lines[2] == b'{"id":2,"doc":{"$bytes":"YmI="}}'
    assert lines[5] == b'{"key":{"$bytes":"azE="},"value":{"$bytes":"djE="}}'
    return lines


@pytest.mark.parametrize("where,bad", [
    (2, b'{"id":2,"doc":{"$bytes":"Ym*I="}}'),                 # raw document, a character outside base64
    (2, b'{"doc":{"$bytes":"!!!!"},"id":2}'),                  # the same in another key order
    (2, b'{"id":2,"doc":{"$bytes":"YmI=","x":1}}'),            # not only "$bytes"
    (5, b'{"key":{"$bytes":"azE="},"value":{"$bytes":"d j E="}}'),  # a key-value entry
])
def test_a_load_refuses_bytes_that_are_not_base64_like_db_import(tmp_path, where, bad):
    lines = _whole_dump(tmp_path)
    lines[where] = bad
    data = b"\n".join(lines)
    target = tmp_path / "copy.obj"
    r = run("load", str(target), stdin=data)
    assert r.returncode == cli.EXIT_ERROR, _err(r)
    assert _err(r).startswith(f"obj: load: line {where + 1}: "), _err(r)
    assert not target.exists()
    (tmp_path / "in.jsonl").write_bytes(data)
    with obj.Db(tmp_path / "imported.obj") as db, pytest.raises(obj.InvalidArgumentError):
        db.import_(tmp_path / "in.jsonl")


def test_a_document_line_in_another_key_order_keeps_its_bytes_for_the_engine_to_check(tmp_path):
    target = str(tmp_path / "t.obj")
    r = run("load", target, "docs", "--ids", stdin=b'{"doc": {"b": {"$bytes": "%%%%"}}, "id": 4}\n')
    assert r.returncode == cli.EXIT_ERROR and "not valid base64" in _err(r), _err(r)
    r = run("load", target, "docs", "--ids", stdin=b'{"doc": {"b": {"$bytes": "YmI"}, "n": -0.0}, "id": 4}\n')
    assert r.returncode == 0, _err(r)
    r = run("load", target, stdin=b"\n".join(_whole_dump(tmp_path)).replace(b'"YmI="', b'"YmI"'))  # unpadded
    assert r.returncode == 0, _err(r)
    with obj.Db(target) as db:
        assert db.get("docs", 4) == {"b": b"bb", "n": -0.0}
        assert list(db.all("blobs")) == [(1, b"a"), (2, b"bb"), (3, b"ccc")]
        assert db.kv("kv").get(b"k1") == b"v1"


# -- attach: the namespace rule is the engine's (as C and C++ callers meet it) -------


@pytest.mark.parametrize("ns", ["a/b", "n" * 201, "a\0b", "\ud800", "", "a.b"])
def test_attach_refuses_a_namespace_the_engine_refuses(tmp_path, ns):
    from obj._ffi import lib

    other = tmp_path / "other.obj"
    with obj.Db(other) as db:
        db.insert("x", {"a": 1})
    with obj.Db(tmp_path / "main.obj") as db:
        with pytest.raises(obj.InvalidArgumentError):
            db.attach(other, ns)
        assert db.attached() == {}
        if "\0" not in ns and "\ud800" not in ns:  # what C can pass: the engine refuses it too
            st = lib.obj_db_attach(db._handle(), str(other).encode(), ns.encode())
            assert type(obj.errors.error_for_status(st, "")) is obj.InvalidArgumentError
        db.attach(other, "n" * 200)  # the longest namespace
        assert db.count("n" * 200 + ".x") == 1

"""Review 41: `obj load` reads each input line as exactly one JSON value
(lines that are not merged silently into other documents), says what is
wrong with a line that is not UTF-8 or holds a lone surrogate, refuses a
COLLECTION that is an existing file when no INPUT is given; `obj stat`
lists key-value namespaces and survives a standard output that cannot
encode a name."""

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import obj
from obj import cli


def run(*args, stdin=None, env=None, cwd=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, input=stdin, env=e, cwd=cwd)


def _docs(path, coll):
    if not os.path.exists(path):
        return None
    with obj.Db(path) as db:
        return [d for _, d in db.query(coll).fetch()] if coll in db.collections() else []


# -- 1. one JSON value a line --------------------------------------------------

def test_load_refuses_a_string_with_a_raw_newline_split_over_two_lines(tmp_path):
    src = tmp_path / "sloppy.jsonl"
    src.write_bytes(b'{"text":"hello\nworld"}\n{"n":2}\n')
    db = str(tmp_path / "s.obj")
    r = run("load", db, "notes", str(src))
    assert r.returncode == cli.EXIT_ERROR, r.stderr
    err = r.stderr.decode()
    assert err.startswith("obj: load: line 1: ") and err.count("\n") == 1, err
    assert not os.path.exists(db)  # nothing loaded: the new file is not left behind


def test_load_refuses_lines_that_merge_into_as_many_documents(tmp_path):
    # Four lines, none a JSON value alone, that joined read as four documents.
    src = tmp_path / "four.jsonl"
    src.write_bytes(b'{"x":1},{"y":2}\n{"a":[1\n2]}\n{"z":1}\n')
    db = str(tmp_path / "f.obj")
    with obj.Db(db) as d:
        d.insert("c", {"keep": 1})
    r = run("load", db, "c", str(src))
    assert r.returncode == cli.EXIT_ERROR, r.stderr
    assert r.stderr.decode().startswith("obj: load: line 1: ")
    assert _docs(db, "c") == [{"keep": 1}]  # nothing of the load remains


def test_load_refuses_a_dump_whose_doc_texts_merge(tmp_path):
    # A dump (header, no --ids): the "doc" texts were joined as well.
    header = {"obj_export": 1, "collection": "c", "kind": "documents", "next_id": 4, "count": 3, "indexes": []}
    src = tmp_path / "dump.jsonl"
    src.write_bytes(json.dumps(header).encode() + b"\n" + b'{"id":1,"doc":{"x":1},{"y":2}}\n'
                    b'{"id":2,"doc":{"a":[{"b":1}}\n{"id":3,"doc":{"c":1}]}}\n')
    db = str(tmp_path / "d.obj")
    r = run("load", db, "c", str(src))
    assert r.returncode == cli.EXIT_ERROR, r.stderr
    assert r.stderr.decode().startswith("obj: load: line 2: ")
    assert not os.path.exists(db)


@pytest.mark.usefixtures("backend")
def test_load_in_process_with_each_backend_names_the_line_and_loads_good_input(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"ok":1}\n{"ok":2}\n{"x":1},{"y":2}\n{"a":[1\n2]}\n{"z":1}\n')
    db = str(tmp_path / "b.obj")
    assert cli.main(["load", db, "c", str(bad)]) == cli.EXIT_ERROR
    assert "line 3: " in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    lines = [json.dumps({"n": i, "s": "x" * (i % 7), "l": [i, {"k": i}]}) for i in range(12)]
    good.write_text("\n".join(lines) + "\n\n")
    assert cli.main(["load", db, "c", str(good), "--batch", "5"]) == cli.EXIT_OK
    assert "loaded 12 documents into c" in capsys.readouterr().err
    assert [d["n"] for d in _docs(db, "c")] == list(range(12))


@pytest.mark.usefixtures("backend")
def test_load_names_the_line_that_leaves_a_bracket_open(tmp_path, capsys):
    # No line holds two documents, so joined as an array the lines would
    # give a count one short; the engine refuses the batch for the line
    # that leaves a bracket open, and the line named is that one (the
    # documents before it, under a unique index, are not reported as
    # clashing: nothing is inserted again).
    db = str(tmp_path / "p.obj")
    with obj.Db(db) as d:
        d.create_index("c", "by_a", "a", kind="unique")
        d.insert("c", {"a": 0})
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"a":1}\n{"a":2,"l":[1\n2]}\n{"a":3}\n')
    assert cli.main(["load", db, "c", str(src)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("obj: load: line 2: ") and "a bracket is still open" in err, err
    assert _docs(db, "c") == [{"a": 0}]


@pytest.mark.usefixtures("backend")
def test_load_of_documents_holding_lists_of_objects(tmp_path, capsys):
    # Their lines hold "},{" (between two objects of a list, or in a
    # string): one document a line all the same.
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"n": i, "items": [{"k": 1}, {"k": 2}]}, separators=(",", ":")) + "\n"
                           for i in range(7)) + '{"n": 7, "s": "},{"}\n')
    db = str(tmp_path / "l.obj")
    assert cli.main(["load", db, "c", str(src), "--batch", "3"]) == cli.EXIT_OK
    assert "loaded 8 documents into c" in capsys.readouterr().err
    assert [d["n"] for d in _docs(db, "c")] == list(range(8))
    src.write_text('{"n": 0, "items": [{"k": 1}, {"k": 2}]}\n{"x":1}, {"y":2}\n{"a":[1\n2]}\n')
    assert cli.main(["load", db, "c", str(src)]) == cli.EXIT_ERROR
    assert "line 2: " in capsys.readouterr().err
    assert len(_docs(db, "c")) == 8


def test_load_reports_the_engines_count_not_the_lines(tmp_path, capsys, monkeypatch):
    # Should the engine ever store another number of documents than the
    # batch has lines, the load fails (and is rolled back) instead of
    # reporting the lines as loaded.
    from obj import txn

    real = txn.WriteTxn._c_doc_insert_lines

    def fewer(self, coll, text, n, version):
        return real(self, coll, text, n, version)[:-1]

    monkeypatch.setattr(txn.WriteTxn, "_c_doc_insert_lines", fewer)
    src = tmp_path / "in.jsonl"
    src.write_text('{"a":1}\n{"a":2}\n')
    db = str(tmp_path / "c.obj")
    assert cli.main(["load", db, "c", str(src)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "loaded" not in err and "2 lines" in err and "1 document(s)" in err
    assert not os.path.exists(db)


# -- 6. what is wrong with a line ----------------------------------------------

@pytest.mark.parametrize("data, line, words", [
    (b'{"a":1}\n{"a":"\xe9t\xe9"}\n', 2, "not UTF-8"),
    (b'{"a":1}\n\xff\xfe{\n', 2, "not UTF-8"),
    (b'{"a":1}\n{"a":"\\ud800"}\n', 2, "lone surrogate"),
    (b'{"a":"x\\udc00y"}\n', 1, "lone surrogate"),
])
def test_load_says_a_line_is_not_utf8_or_has_a_lone_surrogate(tmp_path, data, line, words):
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    r = run("load", str(tmp_path / "m.obj"), "c", str(src))
    assert r.returncode == cli.EXIT_ERROR
    err = r.stderr.decode()
    assert err.startswith(f"obj: load: line {line}: ") and words in err, err


def test_load_surrogate_pairs_and_escaped_backslashes_still_load(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"a":"\\ud83d\\ude00"}\n{"b":"\\\\ud800"}\n')
    db = str(tmp_path / "ok.obj")
    r = run("load", db, "c", str(src))
    assert r.returncode == 0, r.stderr
    assert _docs(db, "c") == [{"a": "\U0001f600"}, {"b": "\\ud800"}]


# -- 2. text output an encoding cannot show ------------------------------------

def test_stat_on_an_ascii_stdout_escapes_names_and_dump_stays_utf8(tmp_path):
    db = str(tmp_path / "u.obj")
    with obj.Db(db) as d:
        d.insert("événements", {"a": "é"})
    env = {"PYTHONIOENCODING": "ascii"}
    r = run("stat", db, env=env)
    assert r.returncode == 0, r.stderr
    assert b"\\xe9v\\xe9nements" in r.stdout and r.stderr == b""
    r = run("dump", db, "événements", env=env)
    assert r.returncode == 0, r.stderr
    assert '{"a":"é"}'.encode() in r.stdout and "événements".encode() in r.stdout


# -- 4. COLLECTION that is a file, no INPUT ------------------------------------

def test_load_with_an_existing_file_as_collection_and_no_input_is_usage(tmp_path):
    db = str(tmp_path / "u.obj")
    with obj.Db(db) as d:
        d.insert("c", {"a": 1})
    assert run("dump", db, "-o", str(tmp_path / "all.jsonl")).returncode == 0
    copy = str(tmp_path / "copy.obj")
    r = run("load", copy, "all.jsonl", stdin=b"", cwd=str(tmp_path))
    assert r.returncode == cli.EXIT_USAGE
    err = r.stderr.decode()
    assert "--all" in err and "all.jsonl" in err and err.count("\n") == 1, err
    assert not os.path.exists(copy)
    # What was meant works; so does '-' for stdin into a collection of that name.
    assert run("load", copy, "--all", "all.jsonl", cwd=str(tmp_path)).returncode == 0
    r = run("load", copy, "all.jsonl", "-", stdin=b'{"b":2}\n', cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert _docs(copy, "all.jsonl") == [{"b": 2}]


def test_load_with_an_existing_file_as_collection_and_stdin_a_terminal_is_usage(tmp_path):
    # Any file, stdin a terminal: the load would wait for input never meant.
    import pty

    (tmp_path / "orders.jsonl").write_text('{"a": 1}\n')
    master, slave = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "obj", "load", "copy.obj", "orders.jsonl"], stdin=slave,
                           capture_output=True, cwd=str(tmp_path), timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == cli.EXIT_USAGE and b"--all" in r.stderr
    assert not (tmp_path / "copy.obj").exists()


# -- 5. key-value namespaces in text stat --------------------------------------

def test_text_stat_lists_key_value_namespaces(tmp_path):
    db = str(tmp_path / "k.obj")
    with obj.Db(db) as d:
        d.insert("c", {"a": 1})
        d.kv("sess").put(b"k1", b"v")
        d.kv("sess").put(b"k2", b"v")
        d.kv("empty").create()
    r = run("stat", db)
    assert r.returncode == 0
    lines = r.stdout.decode().splitlines()
    assert "kv          sess  [key-value]  2 entries" in lines
    assert "kv          empty  [key-value]  0 entries" in lines


# -- the rule, on random cuts: a load succeeds exactly when each line is one document

_values = st.recursive(st.integers(-5, 5) | st.sampled_from(["a", "},{", "]", ","]),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner,
                                                                                     max_size=3), max_leaves=6)
_docs_st = st.lists(st.dictionaries(st.sampled_from("xyz"), _values, max_size=3), min_size=1, max_size=6)


@pytest.mark.usefixtures("backend")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=_docs_st, cuts=st.lists(st.integers(0, 400), max_size=6), glue=st.sampled_from([",", "\n", ", "]))
def test_load_succeeds_exactly_when_each_line_is_one_document(tmp_path, docs, cuts, glue):
    # The documents' texts, glued with commas or newlines, cut into lines
    # at random places (inside strings, lists, between documents...).
    text = glue.join(json.dumps(d, separators=(",", ":")) for d in docs)
    for c in sorted(set(cuts), reverse=True):
        c = min(c, len(text))
        text = text[:c] + "\n" + text[c:]
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]

    def one_doc(ln):
        try:
            return isinstance(json.loads(ln), dict)
        except ValueError:
            return False

    src = tmp_path / "in.jsonl"
    src.write_text(text)
    db = str(tmp_path / f"h{len(os.listdir(tmp_path))}.obj")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        rc = cli.main(["load", db, "c", str(src), "--batch", "4"])
    if all(one_doc(ln) for ln in lines):
        assert rc == cli.EXIT_OK, err.getvalue()
        assert _docs(db, "c") == [json.loads(ln) for ln in lines]
    else:
        assert rc == cli.EXIT_ERROR and err.getvalue().startswith("obj: load: line ")
        assert not os.path.exists(db)


def test_dump_to_a_file_syncs_its_directory_after_the_rename(tmp_path, monkeypatch):
    db = str(tmp_path / "d.obj")
    with obj.Db(db) as d:
        d.insert("c", {"x": 1})
    out = tmp_path / "out" / "dump.jsonl"
    out.parent.mkdir()
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert cli.main(["dump", db, "c", "-o", str(out)]) == cli.EXIT_OK
    assert out.read_text().count("\n") == 2
    # The file, then (after the rename) its directory.
    assert synced[-1] == os.path.realpath(out.parent), synced

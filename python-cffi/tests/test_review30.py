"""Session 30's review findings: a unique lookup given bytes for a field
that is neither str nor bytes, the command line started with standard
output or input closed (and, in test_cli.py, a progress bar cut by an
error)."""

import enum
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import pytest

import obj


@obj.document(collection="nums30", version=1)
@dataclass
class Num:
    n: Annotated[int, obj.Unique]
    s: Annotated[str, obj.Unique]
    b: Annotated[Optional[bytes], obj.Unique] = None


def test_a_bytes_key_for_a_field_neither_str_nor_bytes_is_refused(tmp_path):
    with obj.Db(str(tmp_path / "d.obj")) as db:
        db.insert(Num(5, "five", b"\x05"))
        # Before: None, as if no document had the key.
        for key in (b"\x05", (5).to_bytes(8, "big"), bytearray(b"\x0a")):
            with pytest.raises(obj.InvalidArgumentError, match=r"declared int; pass the int itself"):
                db.find_unique(Num, "n", key)
            with pytest.raises(obj.InvalidArgumentError, match=r"declared int"):
                db.find_unique_many(Num, "n", [5, key])
        # A str field takes its UTF-8; a bytes field its bytes.
        assert db.find_unique(Num, "s", b"five") == Num(5, "five", b"\x05")
        assert db.find_unique_many(Num, "s", [b"five", "five", b"six"]) == [Num(5, "five", b"\x05")] * 2 + [None]
        assert db.find_unique(Num, "b", b"\x05") == Num(5, "five", b"\x05")
        assert db.find_unique(Num, "b", b"\x06") is None
        assert db.find_unique(Num, "n", 5) == Num(5, "five", b"\x05")


class BytesKind(enum.Enum):
    A = b"a"


@obj.document(collection="loose30", version=1)
@dataclass
class Loose:
    k: Annotated[Any, obj.Unique]
    e: Annotated[BytesKind, obj.Unique]
    o: Annotated[object, obj.Unique]


def test_a_bytes_key_for_a_field_that_may_hold_bytes_still_finds_it(tmp_path):
    # (the review of the first version: Any, object and a bytes-valued Enum
    # were refused like int)
    with obj.Db(str(tmp_path / "l.obj")) as db:
        doc = Loose(b"ab", BytesKind.A, b"cd")
        db.insert(doc)
        assert db.find_unique(Loose, "k", b"ab") == doc
        assert db.find_unique(Loose, "e", b"a") == doc
        assert db.find_unique(Loose, "o", b"cd") == doc
        assert db.find_unique_many(Loose, "k", [b"ab", b"zz"]) == [doc, None]


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True, **kw)


def test_cli_with_standard_output_or_input_closed(tmp_path):
    path = str(tmp_path / "d.obj")
    with obj.Db(path) as db:
        db.insert("c", {"a": 1})
    # Before: AttributeError's traceback, exit 1 (the corruption code).
    r = subprocess.run([sys.executable, "-m", "obj", "dump", path, "c"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, preexec_fn=lambda: __import__("os").close(1))
    assert r.returncode == 5, r.stderr
    assert r.stderr.strip() == "obj: dump: standard output is closed: give the dump a file with -o"
    r = subprocess.run([sys.executable, "-m", "obj", "load", path, "c", "-"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, preexec_fn=lambda: __import__("os").close(0))
    assert r.returncode == 5, r.stderr
    assert r.stderr.strip() == "obj: load: standard input is closed: give the load an INPUT file"
    assert _cli("dump", path, "c").stdout.count('"doc"') == 1  # nothing changed
    # Standard error closed: the summary line went into the dump (stdout).
    r = subprocess.run([sys.executable, "-m", "obj", "dump", path, "c"], capture_output=True, text=True,
                       preexec_fn=lambda: __import__("os").close(2))
    assert r.returncode == 0
    assert r.stdout.count("\n") == 2 and "dumped" not in r.stdout, r.stdout

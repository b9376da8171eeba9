"""Review 52: what users found.

- ``history=`` took a class at or past the class's own version (never used:
  documents of that version were read by field name, losing the fields the
  class lacks) and two shapes of one version.
- A typed ``delete`` in a file without the class's collection created it.
- Comparing a field with a field raised "cannot store a value of type Field".
- The command line wrote "dumped 1 documents".
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import obj
from obj import cli


def _shape(name):
    return dataclass(type(name, (), {"__annotations__": {"x": str}}))


def test_history_lists_only_older_versions_once(tmp_path):
    @dataclass
    class A:
        first: str

    @dataclass
    class B:
        first: str
        last: str = ""

    with pytest.raises(obj.InvalidArgumentError, match="lists 'B' as version 2"):
        obj.document(collection="h52", version=2, history=[A, B])(_shape("P"))

    @obj.document(collection="h52_v2", version=2)
    @dataclass
    class V2:
        first: str

    with pytest.raises(obj.InvalidArgumentError, match="lists 'V2' as version 2"):
        obj.document(collection="h52_v2", version=2, history=[V2])(_shape("Q"))

    @obj.document(collection="h52_v1", version=1)
    @dataclass
    class V1:
        first: str

    with pytest.raises(obj.InvalidArgumentError, match="history lists classes"):
        obj.document(collection="h52_str", version=2, history=["nope"])(_shape("S"))

    with pytest.raises(obj.InvalidArgumentError, match="two shapes of version 1"):
        obj.document(collection="h52_two", version=3, history=[A, V1])(_shape("R"))

    # What the reference describes still works: older shapes, in order.
    @obj.document(collection="h52_ok", version=3, history=[A, B])
    @dataclass
    class Person:
        name: str

        @classmethod
        def migrate(cls, old, from_version):
            return cls(name=old.first + (" " + old.last if from_version == 2 else ""))

    @obj.document(collection="h52_ok", version=2)
    @dataclass
    class Writer:
        first: str
        last: str

    with obj.Db(str(tmp_path / "a.obj")) as db:
        i = db.insert(Writer("Ada", "Lovelace"))
        assert db.get(Person, i) == Person("Ada Lovelace")


def test_a_typed_delete_does_not_create_the_collection(tmp_path):
    @obj.document(collection="never52")
    @dataclass
    class Never:
        a: int

    with obj.Db(str(tmp_path / "a.obj")) as db:
        assert db.delete(Never, 1) is False
        with db.transaction() as tx:
            assert tx.delete(Never, 1) is False
        assert db.collections() == []
        i = db.insert(Never(1))
        assert db.delete(Never, i) is True and db.collections() == ["never52"]


def test_a_field_compared_with_a_field_says_so():
    for compare in (
        lambda: obj.field("qty") > obj.field("price"),
        lambda: obj.field("qty") == obj.field("price"),
        lambda: obj.field("qty").isin([obj.field("price")]),
        lambda: obj.field("qty") < obj.field("price").desc(),
    ):
        with pytest.raises(obj.InvalidArgumentError, match="compares a field with a value, not with obj.field"):
            compare()


def test_a_write_in_a_read_transaction_names_both_ways_to_write(tmp_path):
    with obj.Db(str(tmp_path / "a.obj")) as db:
        with db.read_transaction() as tx:
            with pytest.raises(obj.InvalidArgumentError, match="async with adb.transaction"):
                tx.insert("e", {"a": 1})


def test_the_command_line_counts_one_in_the_singular(tmp_path, capsys):
    db = str(tmp_path / "d.obj")
    with obj.Db(db) as d:
        d.insert("c", {"a": 1})
        d.kv("k")[b"x"] = b"1"
    assert cli.main(["dump", db, "-o", str(tmp_path / "all.jsonl")]) == cli.EXIT_OK
    assert "dumped 1 document and 1 key-value entry" in capsys.readouterr().err
    assert cli.main(["stat", db]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "[documents]  1 doc  " in out and "[key-value]  1 entry" in out
    assert cli.main(["load", str(tmp_path / "e.obj"), "--all", str(tmp_path / "all.jsonl")]) == cli.EXIT_OK
    assert "loaded 1 document and 1 key-value entry into" in capsys.readouterr().err

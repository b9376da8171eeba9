"""Review 42: a list field with two index markers (``obj.Each`` and
``obj.Unique``) said only "two indexes share a name" with a list of every
index; it now names the field and its markers and says that one marker
indexes every element. A Composite named as a marked field names the
clash."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import pytest

import obj


@obj.document(collection="tagged42")
@dataclass
class Tagged:
    key: Annotated[str, obj.Unique]
    codes: Annotated[list[str], obj.Each, obj.Unique] = field(default_factory=list)


@obj.document(collection="clash42", indexes=[obj.Composite(("key", "n"), name="key")])
@dataclass
class Clash:
    key: Annotated[str, obj.Index]
    n: int = 0


def test_two_markers_on_one_field_name_the_field_and_the_markers(tmp_path):
    with obj.Db(str(tmp_path / "t.obj")) as db:
        with pytest.raises(obj.InvalidArgumentError) as e:
            db.insert(Tagged("a", ["x"]))
    msg = str(e.value)
    assert "field 'codes' has more than one index marker (obj.Each, obj.Unique)" in msg, msg
    assert "obj.Unique alone makes the elements unique" in msg


def test_a_unique_list_field_makes_each_element_unique(tmp_path):
    @obj.document(collection="codes42")
    @dataclass
    class Codes:
        codes: Annotated[list[str], obj.Unique] = field(default_factory=list)

    with obj.Db(str(tmp_path / "u.obj")) as db:
        db.insert(Codes(["x", "y"]))
        with pytest.raises(obj.ConstraintError):
            db.insert(Codes(["z", "y"]))


def test_a_composite_named_as_a_marked_field_names_the_clash(tmp_path):
    with obj.Db(str(tmp_path / "c.obj")) as db:
        with pytest.raises(obj.InvalidArgumentError) as e:
            db.insert(Clash("a"))
    assert "two indexes share a name: key (" in str(e.value), str(e.value)

"""Review 25: edges of the value model and the query builder that a
user's review found.

- A set was stored as a list in its iteration order, which for equal sets
  differs (and for str sets changes with PYTHONHASHSEED): an engine
  equality filter, ``isin``, ``find_unique`` or a unique index on an equal
  set missed the document.
- A Python predicate with a field sort and a limit over a collection of
  exactly ``sort_buffer_limit`` documents raised "the sort needs more than
  ... documents", although every document fit.
- ``limit`` and ``offset`` past ``sys.maxsize`` escaped the exception
  hierarchy (``ValueError`` from ``islice``).
- ``index_range`` bounds ``1`` and ``(1,)`` are one key, but equal bounds
  written the two ways did not mean equality.
- A timestamp no ``datetime`` can hold (year 10000, an offset of a day;
  C, JSON and Rust may store one) came back as a plain dict, which a no-op
  ``update`` then stored as a map. It reads back as ``obj.RawTimestamp``,
  which writes back as the same timestamp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import pytest

import obj


@obj.document(collection="tagsets", version=1)
@dataclass
class Tagged:
    tags: set[int]
    names: Annotated[frozenset[str], obj.Unique]


def test_equal_sets_find_each_other(tmp_path):
    with obj.Db(tmp_path / "s.obj") as db:
        a, b = {9, 1}, {1, 9}
        assert list(a) != list(b)  # the hash table orders them apart
        db.insert(Tagged(a, frozenset({"x", "y"})))
        assert db.query(Tagged).filter(obj.field("tags") == b).ids() == [1]
        assert db.query(Tagged).filter(obj.field("tags").isin([b])).ids() == [1]
        assert db.get(Tagged, 1).tags == a


_SET_PROGRAM = """
import sys, obj
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
@obj.document(collection="s", version=1)
@dataclass
class S:
    st: Annotated[frozenset[str], obj.Unique]
s = frozenset(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"])
with obj.Db(sys.argv[1]) as db:
    if sys.argv[2] == "write":
        db.insert(S(s))
    else:
        assert db.query(S).filter(obj.field("st") == s).ids() == [1]
        assert db.find_unique(S, "st", s) is not None
        try:
            db.insert(S(s))
        except obj.ConstraintError:
            pass
        else:
            raise SystemExit("an equal set passed the unique index")
"""


def test_str_sets_match_across_processes_with_other_hash_seeds(tmp_path):
    path = str(tmp_path / "seeds.obj")
    for seed, mode in [("1", "write"), ("2", "read"), ("3", "read"), ("4", "read")]:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", _SET_PROGRAM, path, mode], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, (seed, r.stdout, r.stderr)


@obj.document(collection="sorted", version=1)
@dataclass
class P:
    a: int


def test_predicate_sort_limit_over_exactly_the_sort_buffer(tmp_path):
    with obj.Db(tmp_path / "b.obj") as db:
        db.insert_many([P(i) for i in range(5)])
        q = db.query(P).filter(lambda o: o.a != 2).sort_by("a").sort_buffer_limit(5)
        assert [o.a for _, o in q.limit(10).fetch()] == [0, 1, 3, 4]
        assert [o.a for _, o in q.limit(3).fetch()] == [0, 1, 3]
        db.insert(P(5))
        with pytest.raises(obj.InvalidArgumentError, match="sort_buffer_limit"):
            q.limit(10).fetch()  # now six documents: over the buffer


def test_huge_limit_and_offset(tmp_path):
    with obj.Db(tmp_path / "l.obj") as db:
        for i in range(3):
            db.insert("c", {"a": i})
        big = 2**70
        assert db.query("c").limit(big).ids() == [1, 2, 3]
        assert db.query("c").filter(lambda d: True).limit(big).ids() == [1, 2, 3]
        assert db.query("c").sort_by(lambda d: -d["a"]).limit(big).ids() == [3, 2, 1]
        assert db.query("c").filter(lambda d: True).offset(big).ids() == []
        assert db.query("c").offset(big).limit(big).ids() == []
        assert db.query("c").filter(lambda d: True).offset(sys.maxsize).limit(10).ids() == []


@obj.document(collection="ir", version=1, indexes=[obj.Composite(("v", "w"), name="vw")])
@dataclass
class IR:
    v: Annotated[int, obj.Index]
    w: int


def test_index_range_equal_bounds_as_scalar_and_one_tuple(tmp_path):
    with obj.Db(tmp_path / "ir.obj") as db:
        db.insert_many([IR(1, 1), IR(1, 2), IR(2, 1)])
        for index in ("v", "vw"):
            for lo, hi in [(1, 1), ((1,), (1,)), ((1,), 1), (1, (1,))]:
                got = [i for i, _ in db.query(IR).index_range(index, lo, hi).fetch()]
                assert got == [1, 2], (index, lo, hi)
        # (1, 2) against 1 are different keys: a range, empty as lo > hi.
        assert db.query(IR).index_range("vw", (1, 2), 1).ids() == []


def test_timestamps_outside_datetime_read_back_as_raw_timestamps(tmp_path):
    path = tmp_path / "t.obj"
    lines = [
        {"obj_export": 1, "collection": "c", "kind": "documents", "next_id": 4, "count": 3, "indexes": []},
        {"id": 1, "doc": {"t": {"$ts": 253402300800000000}, "a": 1}},  # 10000-01-01
        {"id": 2, "doc": {"t": {"$ts": 0, "$tz": 86400}, "a": 1}},  # an offset of a day
        {"id": 3, "doc": {"t": {"$ts": 0, "$tz": 3600}, "a": 1}},  # a datetime
    ]
    dump = tmp_path / "d.jsonl"
    dump.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with obj.Db(path) as db:
        db.import_(str(dump))
        far, day = db.get("c", 1)["t"], db.get("c", 2)["t"]
        assert far == obj.RawTimestamp(253402300800000000) and far.offset is None
        assert day == obj.RawTimestamp(0, 86400)
        assert isinstance(db.get("c", 3)["t"], datetime)
        # A no-op update writes the timestamps back as timestamps, not maps.
        for i in (1, 2):
            db.update("c", i, lambda d: {**d, "a": 2})
        assert db.get("c", 1)["t"] == far and db.get("c", 2)["t"] == day
        assert db.query("c").filter(obj.field("t") == far).ids() == [1]
        assert db.query("c").filter(obj.field("t") > datetime(9999, 1, 1)).ids() == [1]
        assert db.query("c").filter(obj.field("t") == day).ids() == [2, 3]  # one instant
        # Written by the user too, and through the stdlib JSON backend's path.
        db.insert("c", {"t": [obj.RawTimestamp(-(2**63), -(2**31))]})
        assert db.get("c", 4)["t"] == [obj.RawTimestamp(-(2**63), -(2**31))]
    with pytest.raises(obj.InvalidArgumentError):
        obj.RawTimestamp(2**63)
    with pytest.raises(obj.InvalidArgumentError):
        obj.RawTimestamp(0, 2**31)


def test_sets_that_python_cannot_order_still_store(tmp_path):
    from decimal import Decimal

    with obj.Db(tmp_path / "d.obj") as db:
        db.insert("c", {"s": {Decimal("NaN"), Decimal("1")}})
        assert db.get("c", 1)["s"] == ["1", "NaN"]


def test_a_set_of_raw_timestamps_is_stored_in_order(tmp_path):
    stamps = [obj.RawTimestamp(2**62 + i, None if i % 2 else 7200) for i in range(8)]
    with obj.Db(tmp_path / "r.obj") as db:
        db.insert("c", {"s": set(reversed(stamps))})
        assert db.get("c", 1)["s"] == stamps
        assert db.query("c").filter(obj.field("s") == set(stamps)).ids() == [1]

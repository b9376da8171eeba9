"""Review 44 (JSON fidelity helper): a time with a UTC offset is stored as
its ISO text, which the engine compared as text: `obj.field("t") < t`
returned 07:00-05:00 (12:00 UTC) below 11:45 UTC and left out 12:00+01:00
(11:00 UTC). Ordering by such a time is now refused, as for Decimal;
naive times, whose text orders as they do, still work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj

UTC = dt.timezone.utc
P1 = dt.timezone(dt.timedelta(hours=1))
M5 = dt.timezone(dt.timedelta(hours=-5))


@obj.document(collection="shifts44", version=1)
@dataclass
class Shift:
    name: str
    t: Annotated[dt.time, obj.Index]


def test_order_by_an_aware_time_is_refused(tmp_path):
    with obj.Db(tmp_path / "t.obj") as db:
        shifts = [("a", dt.time(12, tzinfo=P1)), ("b", dt.time(11, 30, tzinfo=UTC)), ("c", dt.time(7, tzinfo=M5))]
        for name, t in shifts:
            db.insert(Shift(name, t))
        probe = dt.time(11, 45, tzinfo=UTC)
        for expr in (lambda f: f < probe, lambda f: f <= probe, lambda f: f > probe, lambda f: f >= probe,
                     lambda f: f < [probe]):
            with pytest.raises(obj.InvalidArgumentError, match="compares text, not instants"):
                expr(obj.field("t"))
        with pytest.raises(obj.InvalidArgumentError, match="compares text, not instants"):
            db.index_range(Shift, "t", dt.time(11, tzinfo=UTC), probe)
        with pytest.raises(obj.InvalidArgumentError, match="compares text, not instants"):
            db.query("shifts44").index_range("t", None, probe)
        # Equality is on the stored text: the same offset finds it.
        assert [o.name for _, o in db.query(Shift).filter(obj.field("t") == dt.time(12, tzinfo=P1)).fetch()] == ["a"]
        assert [o.name for _, o in db.index_range(Shift, "t", dt.time(11, 30, tzinfo=UTC),
                                                   dt.time(11, 30, tzinfo=UTC))] == ["b"]


def test_naive_times_order_as_python_orders_them(tmp_path):
    times = [dt.time(9), dt.time(12, 0, 0, 500000), dt.time(12, 0, 1), dt.time(0, 0, 0, 1), dt.time(23, 59, 59)]
    with obj.Db(tmp_path / "n.obj") as db:
        for i, t in enumerate(times):
            db.insert(Shift(str(i), t))
        probe = dt.time(12, 0, 0, 700000)
        eng = sorted(o.t for _, o in db.query(Shift).filter(obj.field("t") < probe).fetch())
        assert eng == sorted(t for t in times if t < probe)
        assert [o.t for _, o in db.query(Shift).sort_by("t").fetch()] == sorted(times)
        assert [o.t for _, o in db.index_range(Shift, "t", dt.time(9), probe)] == \
            sorted(t for t in times if dt.time(9) <= t < probe)


@obj.document(collection="slots44", version=1, indexes=[obj.Composite(("t", "k"), name="tk")])
@dataclass
class Slot:
    t: dt.time
    k: int


def test_an_aware_time_in_the_equal_prefix_of_tuple_bounds_is_equality(tmp_path):
    t = dt.time(12, tzinfo=P1)
    with obj.Db(tmp_path / "p.obj") as db:
        for k in range(6):
            db.insert(Slot(t, k))
        db.insert(Slot(dt.time(12, tzinfo=UTC), 2))
        assert [o.k for _, o in db.index_range(Slot, "tk", (t, 1), (t, 4))] == [1, 2, 3]
        with pytest.raises(obj.InvalidArgumentError, match="compares text, not instants"):
            db.index_range(Slot, "tk", (t, 1), (dt.time(13, tzinfo=P1), 0))
        with pytest.raises(obj.InvalidArgumentError, match="compares text, not instants"):
            db.index_range(Slot, "tk", (t, 1), None)


def test_a_single_value_bound_is_the_one_field_tuple_in_the_equal_prefix_rule(tmp_path):
    # t and (t,) are one bound: t to (t, 4) is the equality on t then a
    # range on k, as (t,) to (t, 4) is, not an order on the aware time.
    t = dt.time(12, tzinfo=P1)
    with obj.Db(tmp_path / "q.obj") as db:
        for k in range(6):
            db.insert(Slot(t, k))
        want = [o.k for _, o in db.index_range(Slot, "tk", (t,), (t, 4))]
        assert want == [0, 1, 2, 3]
        assert [o.k for _, o in db.index_range(Slot, "tk", t, (t, 4))] == want
        with pytest.raises(obj.InvalidArgumentError, match="compares text, not instants"):
            db.index_range(Slot, "tk", dt.time(11, tzinfo=P1), (t, 4))

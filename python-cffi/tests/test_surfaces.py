"""Hypothesis: random nested documents through every surface (typed, dict,
bytes), in and out of the engine."""

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Optional

from hypothesis import HealthCheck, given, settings, strategies as st

import obj

leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False), st.text(max_size=10), st.binary(max_size=10),
    st.datetimes(),
    # the whole calendar, the UTC instant of its ends outside it
    st.datetimes(timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=45)),
                                            dt.timezone(dt.timedelta(hours=-8))])),
)
keys = st.text(max_size=5) | st.sampled_from(["$", "$a", "$$", "$bytes", "$ts"])
tree = st.recursive(leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=3), max_leaves=12)
docs = st.dictionaries(keys, tree, max_size=5)


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a == b and (a.utcoffset() == b.utcoffset())
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@obj.document(collection="typed")
@dataclass
class Box:
    payload: Any
    extra: Optional[dict] = None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(d=docs, raw=st.binary(max_size=50))
def test_every_surface_roundtrips(db, d, raw):
    i1 = db.insert("dicts", d)
    i2 = db.insert(Box(payload=d, extra={"k": d}))
    i3 = db.insert("bytes", raw)
    assert same(db.get("dicts", i1), d)
    b = db.get(Box, i2)
    assert same(b.payload, d) and same(b.extra, {"k": d})
    assert db.get("bytes", i3) == raw
    # through the cursor path and the batch path as well
    assert same(dict(db.all("dicts"))[i1], d)
    assert same(db.get_many("dicts", [i1])[0], d)
    db.upsert("dicts", 10**6, d)
    assert same(db.get("dicts", 10**6), d)

"""The JSON text form (no database needed): both backends, special values,
escaping, ranges."""

import datetime as dt
import json
import math

import pytest
from hypothesis import given, settings, strategies as st

import obj
from obj import _codec


def roundtrip(v):
    return _codec.loads(_codec.dumps(v))


def test_special_values(backend):
    doc = {
        "b": b"\x00\x01\xff",
        "naive": dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
        "aware": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": float("-inf"),
        "$price": 3,
        "$$x": {"$ts": "not special inside a value map"},
        "big": 2**64 - 1,
        "small": -(2**63),
        "f": 1.0,
        "neg0": -0.0,
        "none": None,
    }
    back = roundtrip(doc)
    assert back["b"] == b"\x00\x01\xff"
    assert back["naive"] == doc["naive"] and back["naive"].tzinfo is None
    assert back["aware"] == doc["aware"] and back["aware"].utcoffset() == dt.timedelta(hours=2)
    assert math.isnan(back["nan"]) and back["inf"] == math.inf and back["ninf"] == -math.inf
    assert back["$price"] == 3 and back["$$x"] == {"$ts": "not special inside a value map"}
    assert back["big"] == 2**64 - 1 and back["small"] == -(2**63)
    assert type(back["f"]) is float and math.copysign(1, back["neg0"]) == -1
    assert back["none"] is None
    assert list(back) == list(doc)


def test_escaped_form_is_the_engine_form(backend):
    text = _codec.dumps({"$a": b"\x01", "n": float("nan")}).decode()
    assert json.loads(text) == {"$$a": {"$bytes": "AQ=="}, "n": {"$f64": "nan"}}


@pytest.mark.parametrize("bad", [2**64, -(2**63) - 1, 10**30])
def test_out_of_range_int_is_a_clear_error(backend, bad):
    with pytest.raises(obj.InvalidArgumentError, match="outside the storable range"):
        _codec.dumps({"x": [1, {"y": bad}]})


def test_unstorable_type(backend):
    with pytest.raises(obj.InvalidArgumentError, match="cannot store"):
        _codec.dumps({"x": object()})


def test_subsecond_utc_offset_rejected(backend):
    tz = dt.timezone(dt.timedelta(seconds=1, microseconds=5))
    with pytest.raises(obj.InvalidArgumentError):
        _codec.dumps({"t": dt.datetime(2020, 1, 1, tzinfo=tz)})


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True), st.text(), st.binary(max_size=20),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
)
keys = st.text(max_size=6) | st.sampled_from(["$", "$a", "$$b", "$bytes", "$ts", "$f64", "$map"])
values = st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=4), max_leaves=20)


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, values, max_size=5))
def test_random_documents_roundtrip_both_backends(doc):
    for b in ["stdlib"] + (["orjson"] if _codec._orjson else []):
        old = _codec.backend()
        _codec.use_backend(b)
        try:
            assert same(roundtrip(doc), doc), b
        finally:
            _codec.use_backend(old)

"""The JSON text form (no database needed): both backends, special values,
escaping, ranges."""

import datetime as dt
import gc
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
values = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=4), max_leaves=20
)


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


# -- the orjson fast path: exact per document, no needless slow walks ------

needs_orjson = pytest.mark.skipif(_codec._orjson is None, reason="orjson not installed")


@pytest.fixture
def walker_calls(monkeypatch):
    """Counts the documents that take the slow Python walker."""
    calls = []
    real = _codec.to_jsonable

    def counting(o, _depth=0):
        if _depth == 0:
            calls.append(o)
        return real(o, _depth)

    monkeypatch.setattr(_codec, "to_jsonable", counting)
    old = _codec.backend()
    _codec.use_backend("orjson")
    yield calls
    _codec.use_backend(old)


@needs_orjson
def test_none_and_dollar_strings_stay_on_the_fast_path(walker_calls):
    docs = [
        {"a": None, "note": "xx null yy", "s": "$not a key", "t": ["$", "$x", None]},
        {"k": 'quote \\"$a\\": inside', "m": {"v": "$ts"}, "u": b"\x01", "when": dt.datetime(2020, 1, 1), "z": None},
        {"nested": [{"n": None}, {"s": '"$q":'}]},
    ]
    text = _codec.dumps(docs)
    assert walker_calls == []
    assert json.loads(text) == [_codec.to_jsonable(d) for d in docs]
    back = _codec.loads(text)
    assert back[0] == docs[0] and back[2] == docs[2]
    assert back[1]["u"] == b"\x01" and back[1]["when"] == docs[1]["when"] and back[1]["k"] == docs[1]["k"]


@needs_orjson
def test_one_odd_document_does_not_slow_the_batch(walker_calls):
    docs = [{"i": i, "x": None, "t": (1, 2)} for i in range(50)]
    docs[17] = {"i": 17, "x": float("nan")}
    docs[33] = {"i": 33, "$k": 1}
    docs[40] = {"i": 40, "$bytes": b"\x02", "b": b"\x03"}  # a user "$bytes" key beside a real bytes value
    text = _codec.dumps(docs)
    assert [d["i"] for d in walker_calls] == [17, 33, 40]
    raw = json.loads(text)
    assert raw[17]["x"] == {"$f64": "nan"} and raw[33] == {"i": 33, "$$k": 1}
    assert raw[40] == {"i": 40, "$$bytes": {"$bytes": "Ag=="}, "b": {"$bytes": "Aw=="}}
    back = _codec.loads(text)
    assert math.isnan(back[17]["x"]) and back[33] == {"i": 33, "$k": 1}
    assert back[40] == {"i": 40, "$bytes": b"\x02", "b": b"\x03"}
    assert [d["i"] for d in back] == list(range(50)) and back[0] == {"i": 0, "x": None, "t": [1, 2]}


@needs_orjson
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_float_beside_none_is_exact(bad):
    text = _codec._orjson_dumps({"a": None, "b": [1.5, None, bad]})
    assert json.loads(text)["b"][2] == {"$f64": "nan" if bad != bad else ("inf" if bad > 0 else "-inf")}
    assert json.loads(text)["a"] is None


dollar_text = st.text(max_size=8) | st.sampled_from(
    ['$', '$x', 'null', ':null,', '[null]', 'nullnull', '"$a":', '\\"$b\\":', '$bytes', 'a"$c":']
)
fast_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True), dollar_text, st.binary(max_size=4),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
)
fast_keys = dollar_text | st.sampled_from(["$a", "$$b", "$bytes", "$ts", "$tz", "$f64", "$map", "null"])
fast_values = st.recursive(
    fast_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(fast_keys, c, max_size=4), max_leaves=20
)


@needs_orjson
@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(fast_keys, fast_values, max_size=5), max_size=6))
def test_fast_path_text_equals_the_walker_text(docs):
    """The fast path writes byte for byte what the exact walker writes, for
    a batch and for each document alone, and the batch round-trips."""
    exact = [_codec._orjson.dumps(_codec.to_jsonable(d), option=_codec._OR_OPTS) for d in docs]
    assert _codec._orjson_dumps(docs) == b"[" + b",".join(exact) + b"]"
    for d, e in zip(docs, exact):
        assert _codec._orjson_dumps(d) == e
    old = _codec.backend()
    _codec.use_backend("orjson")
    try:
        assert same(_codec.loads(_codec.dumps(docs)), docs)
    finally:
        _codec.use_backend(old)


def _null_scans(s: bytes, monkeypatch) -> tuple[bool, bool]:
    """``_has_null_token`` of ``s`` by the Python search and by the library's."""
    out = []
    for long_text in (10**12, 0):
        monkeypatch.setattr(_codec, "_LONG_TEXT", long_text)
        out.append(_codec._has_null_token(s))
    return out[0], out[1]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='nul:[,]}{"a \n', max_size=40))
def test_the_library_null_scan_agrees_with_the_python_one(text):
    """On compact text the two scans answer alike; with blanks the library
    also sees a null between them (``[1, null]``), never less."""
    with pytest.MonkeyPatch.context() as mp:
        py, lib = _null_scans(text.encode(), mp)
    if not any(c in text for c in " \n"):
        assert py == lib
    else:
        assert lib or not py


@needs_orjson
@pytest.mark.parametrize("late", [float("nan"), float("inf"), float("-inf")])
def test_a_long_batch_takes_the_library_scan_and_stays_exact(late):
    """A batch longer than _LONG_TEXT whose strings hold the word null
    where no value can be (so only the late value can be seen) and a NaN
    or infinity in its last document only: the exact walker's text."""
    docs = [{"i": i, "note": "a null b", "nullable": True} for i in range(400)] + [{"x": [1, {"y": late}]}]
    text = _codec._orjson.dumps(docs)
    assert len(text) > _codec._LONG_TEXT and _codec._has_null_token(text)
    assert not _codec._has_null_token(_codec._orjson.dumps(docs[:-1]))
    exact = [_codec._orjson.dumps(_codec.to_jsonable(d), option=_codec._OR_OPTS) for d in docs]
    assert _codec._orjson_dumps(docs) == b"[" + b",".join(exact) + b"]"


def test_lone_surrogate_is_a_clear_error(backend):
    for v in ({"s": "a\ud800"}, ["x", "\udfff"]):
        with pytest.raises(obj.InvalidArgumentError):
            _codec.dumps(v)
    with pytest.raises(obj.InvalidArgumentError):
        _codec.dumps_one_str("\ud800")
    assert json.loads(_codec.dumps_one_str('a"$b:null')) == ['a"$b:null']


def test_loads_batch_pauses_gc_only_during_the_decode(backend, monkeypatch):
    seen = []
    real = _codec.loads

    def spy(b):
        seen.append(gc.isenabled())
        return real(b)

    monkeypatch.setattr(_codec, "loads", spy)
    assert gc.isenabled()
    assert _codec.loads_batch(b'[[1,0,{"a":{"$bytes":"AAE="}}]]') == [[1, 0, {"a": b"\x00\x01"}]]
    assert seen == [False] and gc.isenabled()
    with pytest.raises(ValueError):
        _codec.loads_batch(b"[1,")
    assert gc.isenabled(), "re-enabled after a failed decode"
    gc.disable()
    try:
        assert _codec.loads_batch(b"[]") == []
        assert not gc.isenabled(), "left off when the caller had turned it off"
    finally:
        gc.enable()


def test_batch_reads_leave_gc_enabled(db):
    docs = [{"i": i, "tags": [str(i)], "m": {"k": i}} for i in range(300)]
    ids = db.insert_many("docs", docs)
    assert gc.isenabled()
    assert [d for _, d in db.all("docs")] == docs
    assert db.get_many("docs", ids) == docs
    assert gc.isenabled()

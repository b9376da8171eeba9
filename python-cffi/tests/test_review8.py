"""Fixes from review 8: recursive dataclasses, typed dict keys, enum values,
key-value namespaces of attached files, AsyncDb.kv and dump_raw, the
command line's --limit and failed loads, and attach (catalog read at
attach, one snapshot per transaction, dicts without a class)."""

import datetime as dt
import enum
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Optional

import pytest

import obj


# -- 1. recursive dataclasses ------------------------------------------------------

@dataclass
class Node:
    v: int
    next: Optional["Node"] = None


@dataclass
class Ping:
    n: int
    pong: Optional["Pong"] = None


@dataclass
class Pong:
    ping: Optional[Ping] = None


@obj.document(collection="r8_lists")
@dataclass
class LinkedList:
    head: Node
    ping: Ping
    more: list[Node] = field(default_factory=list)


def test_recursive_and_mutually_recursive_dataclasses_round_trip(db):
    doc = LinkedList(Node(1, Node(2, Node(3))), Ping(1, Pong(Ping(2, Pong(None)))), [Node(4, Node(5)), Node(6)])
    oid = db.insert(doc)
    assert db.get(LinkedList, oid) == doc
    assert list(db.all(LinkedList)) == [(oid, doc)]
    assert db.query(LinkedList).fetch() == [(oid, doc)]
    assert db.query(LinkedList).filter(lambda o: o.head.next.v == 2).fetch() == [(oid, doc)]
    assert db.get_many(LinkedList, [oid, 99]) == [doc, None]
    with db.transaction() as tx:
        tx.update(LinkedList, oid, lambda o: setattr(o.head.next, "next", None))
    assert db.get(LinkedList, oid).head == Node(1, Node(2))
    # A cycle cannot be stored: refused, not a crash.
    loop = Node(1)
    loop.next = loop
    with pytest.raises(obj.InvalidArgumentError):
        db.insert(LinkedList(loop, Ping(0)))


# -- 2. typed dict keys ---------------------------------------------------------------

class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Colour(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Shape(enum.Enum):
    SQUARE = "square"
    POINT = (1, 2)


_AWARE = dt.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))


@obj.document(collection="r8_keys")
@dataclass
class Keyed:
    flags: dict[bool, int]
    stamps: dict[dt.datetime, int]
    days: dict[dt.date, int]
    times: dict[dt.time, int]
    ids: dict[uuid.UUID, int]
    prices: dict[Decimal, int]
    levels: dict[Level, int]
    colours: dict[Colour, int]
    shapes: dict[Shape, int]
    ints: dict[int, int]
    floats: dict[float, int]
    maybe: dict[Optional[int], int]
    maybe_day: dict[Optional[dt.date], str]
    maybe_str: dict[Optional[str], int]


def _keyed() -> Keyed:
    return Keyed(
        flags={True: 1, False: 0},
        stamps={dt.datetime(2020, 1, 2): 1, _AWARE: 2, dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc): 3},
        days={dt.date(99, 1, 2): 1, dt.date(2024, 2, 29): 2},
        times={dt.time(1, 2, 3, 4): 1, dt.time(23, 59, tzinfo=dt.timezone.utc): 2},
        ids={uuid.UUID(int=5): 1},
        prices={Decimal("1.10"): 1, Decimal("-0"): 2, Decimal("1E+3"): 3},
        levels={Level.LOW: 1, Level.HIGH: 2},
        colours={Colour.RED: 1, Colour.BLUE: 2},
        shapes={Shape.SQUARE: 1, Shape.POINT: 2},
        ints={-5: 1, 2**70: 2, 0: 3},
        floats={1.5: 1, float("inf"): 2, -0.0: 3, 1e300: 4},
        maybe={None: 1, 3: 2},
        maybe_day={None: "none", dt.date(2020, 1, 1): "day"},
        maybe_str={None: 1, "a": 2},
    )


def test_typed_dict_keys_round_trip_exactly(db, backend):
    doc = _keyed()
    oid = db.insert(doc)
    for got in (db.get(Keyed, oid), db.query(Keyed).fetch()[0][1], next(iter(db.all(Keyed)))[1],
                db.get_many(Keyed, [oid])[0]):
        for name in doc.__dataclass_fields__:
            sent, back = getattr(doc, name), getattr(got, name)
            assert sent == back, name
            assert [type(k) for k in sent] == [type(k) for k in back], name
            if name != "stamps":  # (an aware datetime comes back with a fixed offset: equal, another repr)
                assert [repr(k) for k in sent] == [repr(k) for k in back], name
    assert db.get(Keyed, oid).flags == {True: 1, False: 0}


def test_typed_dict_keys_are_checked(db):
    doc = _keyed()
    for name, bad in (("flags", {1: 1}), ("ints", {True: 1}), ("days", {dt.datetime(2020, 1, 1): 1}),
                      ("levels", {1: 1}), ("maybe_str", {"null": 1})):
        with pytest.raises(obj.InvalidArgumentError, match=name):
            db.insert(Keyed(**{**doc.__dict__, name: bad}))
    assert db.count(Keyed) == 0


# -- 3. enum values ---------------------------------------------------------------------

class Pri(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Pair(enum.Enum):
    P = (1, 2)
    Q = (3, 4)


class Clash(enum.Enum):
    TEXT = "1.5"
    NUMBER = Decimal("1.5")  # stored as the text "1.5" too
    OTHER = 7


@obj.document(collection="r8_enums")
@dataclass
class Enums:
    by_pri: dict[Pri, int]
    pair: Pair
    pairs: list[Pair]
    by_pair: dict[Pair, Pri]
    clash: Optional[Clash] = None


def test_every_storable_enum_value_reads_back_as_its_member(db, backend):
    doc = Enums({Pri.LOW: 1, Pri.HIGH: 2}, Pair.P, [Pair.Q, Pair.P], {Pair.Q: Pri.HIGH}, Clash.OTHER)
    oid = db.insert(doc)
    got = db.get(Enums, oid)
    assert got == doc
    assert type(got.pair) is Pair and all(type(k) is Pri for k in got.by_pri)
    assert db.query(Enums).fetch() == [(oid, doc)]


def test_an_enum_value_that_cannot_be_read_back_is_refused_at_insert(db):
    for member in (Clash.TEXT, Clash.NUMBER):
        with pytest.raises(obj.InvalidArgumentError, match="told apart"):
            db.insert(Enums({}, Pair.P, [], {}, member))
    assert db.count(Enums) == 0


# -- 4. key-value namespaces of attached files ----------------------------------------

def _attached_kv(db, tmp_path):
    other = str(tmp_path / "other.obj")
    with obj.Db(other) as o:
        o.kv("sessions").put(b"a", b"1")
        o.kv("sessions").put(b"b", b"2")
    db.attach(other, "arch")
    return other


def test_kv_of_an_attached_namespace_reads_that_file_and_refuses_writes(db, tmp_path):
    other = _attached_kv(db, tmp_path)
    ns = db.kv("arch.sessions")
    assert ns.get(b"a") == b"1" and b"b" in ns
    assert list(ns.scan()) == [(b"a", b"1"), (b"b", b"2")]
    assert ns.keys(prefix=b"b") == [b"b"]
    for write in (lambda: ns.put(b"c", b"3"), lambda: ns.delete(b"a"), lambda: ns.drop()):
        with pytest.raises(obj.InvalidArgumentError, match="attachments are read-only"):
            write()
    with db.read_transaction() as tx:
        assert tx.kv("arch.sessions").get(b"b") == b"2"
        assert list(tx.kv("arch.sessions").scan(start=b"b")) == [(b"b", b"2")]
    with db.transaction() as tx:
        assert tx.kv("arch.sessions").get(b"a") == b"1"
        with pytest.raises(obj.InvalidArgumentError, match="attachments are read-only"):
            tx.kv("arch.sessions").put(b"c", b"3")
    assert "arch.sessions" not in db.kv_namespaces()  # no local namespace was made
    db.detach("arch")
    with obj.Db(other) as o:
        assert o.kv("sessions").keys() == [b"a", b"b"]
        assert o.kv_namespaces() == ["sessions"]
    # A dotted name whose prefix is not attached is a namespace of this file.
    db.kv("local.sessions").put(b"k", b"v")
    assert db.kv("local.sessions").get(b"k") == b"v" and "local.sessions" in db.kv_namespaces()


async def test_async_kv_of_an_attached_namespace(db, tmp_path):
    _attached_kv(db, tmp_path)
    adb = obj.AsyncDb(db)
    assert await adb.kv("arch.sessions").get(b"a") == b"1"
    with pytest.raises(obj.InvalidArgumentError, match="attachments are read-only"):
        await adb.kv("arch.sessions").put(b"c", b"3")


# -- 5. AsyncDb.kv ------------------------------------------------------------------

async def test_async_db_kv_returns_an_async_handle(path):
    async with await obj.AsyncDb.open(path) as adb:
        ns = adb.kv("s")
        assert isinstance(ns, obj.AsyncKv)
        await ns.put(b"k", b"v")
        await adb.kv("s").put(b"l", b"w")
        assert await adb.kv("s").get(b"k") == b"v"
        assert [kv async for kv in adb.kv("s").scan(prefix=b"l")] == [(b"l", b"w")]
        assert await ns.keys() == [b"k", b"l"]
        assert await ns.delete(b"k") is True
        same = await adb.kv("s")  # the handle is awaitable too, giving itself
        assert await same.get(b"l") == b"w" and await same.get(b"k") is None
        with pytest.raises(obj.InvalidArgumentError):
            adb.kv("")


# -- 6. AsyncDb.dump_raw ---------------------------------------------------------------

async def test_async_dump_raw_is_an_async_iterator(path):
    async with await obj.AsyncDb.open(path) as adb:
        await adb.insert_many("c", [{"n": i} for i in range(300)])
        ids = [r.id async for r in adb.dump_raw("c")]
        assert ids == list(range(1, 301))
        assert [r.id async for r in adb.dump_raw("c", max_records=2)] == [1, 2]
        recs = await adb.dump_raw("c", max_records=3)  # awaiting gives a list
        assert [r.id for r in recs] == [1, 2, 3]
        with pytest.raises(obj.InvalidArgumentError):
            adb.dump_raw("c", max_records=-1)


# -- 7. command line ----------------------------------------------------------------

def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True, input=stdin)


def test_cli_dump_negative_limit_is_bad_usage(path):
    with obj.Db(path) as d:
        d.insert("c", {"n": 1})
    r = _cli("dump", path, "c", "--limit", "-1")
    assert r.returncode == 2 and "--limit" in r.stderr and r.stdout == ""
    assert _cli("load", path, "c", "--batch", "0", stdin="").returncode == 2
    assert _cli("dump", path, "c", "--limit", "0").returncode == 0


def test_cli_failed_load_leaves_no_new_database(tmp_path):
    target = str(tmp_path / "new.obj")
    r = _cli("load", target, "c", stdin='{"n": 1}\nnot json\n')
    assert r.returncode != 0 and "line 2" in r.stderr
    assert sorted(os.listdir(tmp_path)) == []
    # An existing database is kept (without the failed load's documents).
    with obj.Db(target) as d:
        d.insert("c", {"n": 0})
    assert _cli("load", target, "c", stdin='{"n": 1}\nnot json\n').returncode != 0
    with obj.Db(target) as d:
        assert [x for _, x in d.all("c")] == [{"n": 0}]


# -- 8. attach reads the catalog ------------------------------------------------------

def test_attach_of_a_corrupt_file_fails_at_attach(db, tmp_path):
    other = str(tmp_path / "other.obj")
    with obj.Db(other) as o:
        o.insert_many("orders", [{"i": i} for i in range(500)])
    with open(other, "r+b") as f:  # the catalog (page 1)
        f.seek(4096 + 104)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(obj.CorruptionError):
        db.attach(other, "arch")
    assert db.attached() == {}
    with pytest.raises(obj.NotFoundError):
        db.count("arch.orders")
    with pytest.raises(obj.NotFoundError):
        db.attach(str(tmp_path / "missing.obj"), "gone")
    assert db.attached() == {} and not os.path.exists(tmp_path / "missing.obj")


# -- 9. one snapshot of each attached file per transaction ----------------------------

def test_attached_files_are_read_as_of_the_transaction_begin(db, tmp_path):
    other = str(tmp_path / "other.obj")
    o = obj.Db(other)
    try:
        o.insert_many("orders", [{"i": i} for i in range(5)])
        o.kv("k").put(b"a", b"1")
        db.attach(other, "a")
        with db.read_transaction() as rx:
            o.insert("orders", {"i": 99})  # committed after rx began
            o.kv("k").put(b"b", b"2")
            assert rx.count("a.orders") == 5
            assert rx.query("a.orders").count() == 5
            assert rx.kv("a.k").keys() == [b"a"]
        with db.transaction() as tx:
            o.insert("orders", {"i": 100})
            assert tx.count("a.orders") == 6
        assert db.count("a.orders") == 7
        # detach affects transactions begun afterwards only.
        with db.read_transaction() as rx:
            db.detach("a")
            assert rx.count("a.orders") == 7 and rx.kv("a.k").get(b"a") == b"1"
            assert db.attached() == {}
            with pytest.raises(obj.NotFoundError):
                db.count("a.orders")
        db.attach(other, "a")
        rx = db.read_transaction()
        db.detach("a")
        db.attach(other, "a")  # attached again meanwhile: the old snapshot stays
        o.insert("orders", {"i": 101})
        assert rx.count("a.orders") == 7 and db.count("a.orders") == 8
        rx.close()
    finally:
        o.close()


def test_a_transaction_begun_before_attach_does_not_see_it(db, tmp_path):
    other = str(tmp_path / "other.obj")
    with obj.Db(other) as o:
        o.insert("orders", {"i": 1})
    with db.read_transaction() as rx:
        db.attach(other, "a")
        with pytest.raises(obj.NotFoundError):
            rx.count("a.orders")
    assert db.count("a.orders") == 1


# -- 10. attached document collections without a class ------------------------------

def test_attached_document_collection_without_a_class_fails_loud(db, tmp_path):
    # The reference: "an unregistered namespaced read fails loud with
    # obj.InvalidArgumentError"; a class declared under the namespaced name decodes.
    other = str(tmp_path / "other.obj")
    with obj.Db(other) as o:
        o.insert_many("orders", [{"i": i, "r": i % 3} for i in range(6)])
    db.attach(other, "arch")
    for read in (lambda: db.get("arch.orders", 3), lambda: list(db.all("arch.orders")),
                 lambda: db.get_many("arch.orders", [3]), lambda: db.query("arch.orders").fetch()):
        with pytest.raises(obj.InvalidArgumentError, match="registered"):
            read()
    assert db.count("arch.orders") == 6

    @obj.document(collection="arch.orders")
    @dataclass
    class ArchOrder:
        i: int
        r: int

    assert db.get("arch.orders", 3) == ArchOrder(i=2, r=2)
    assert [o.i for _, o in db.all("arch.orders")] == list(range(6))


# -- engine order: aware datetimes by instant; top-k sorts within the cap ------------

def test_aware_datetimes_compare_by_instant_in_the_engine(db):
    @obj.document(collection="ev8")
    @dataclass
    class Ev:
        when: Annotated[dt.datetime, obj.Index]

    t0 = dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone.utc)
    t3 = t0.astimezone(dt.timezone(dt.timedelta(hours=3)))
    assert t0 == t3
    db.insert(Ev(t0))
    q = db.query(Ev)
    got = (q.filter(obj.field("when") == t3).count(), q.filter(obj.field("when") < t3).count(),
           q.filter(obj.field("when") <= t3).count(), q.index_range("when", t3, t3).count())
    assert got == (1, 0, 1, 1)
    assert db.get(Ev, 1).when.utcoffset() == dt.timedelta(0)  # the offset written is kept


def test_field_sort_with_offset_plus_limit_equal_to_the_cap(db):
    db.insert_many("c8", [{"x": (i * 7) % 10} for i in range(10)])
    by_field = db.query("c8").sort_by("x").limit(2).sort_buffer_limit(2).fetch()
    by_key = db.query("c8").sort_by(lambda d: d["x"]).limit(2).sort_buffer_limit(2).fetch()
    assert [d["x"] for _, d in by_field] == [d["x"] for _, d in by_key] == [0, 1]
    with pytest.raises(obj.InvalidArgumentError):
        db.query("c8").sort_by("x").limit(3).sort_buffer_limit(2).fetch()


def test_index_range_decides_equal_bounds_by_the_engine_order(db):
    nan = float("nan")
    db.insert_many("c9", [{"x": [True]}, {"x": [True, "z"]}, {"x": [1]},
                          {"x": {"a": 1, "b": 2}}, {"x": {"a": 5}}, {"x": {"b": 2, "a": 1}},
                          {"x": [nan]}, {"t": dt.datetime(1970, 1, 1)}, {"b": b"a"}, {"p": "1.0"}])
    for name, path in (("ix", "x"), ("it", "t"), ("ib", "b"), ("ip", "p")):
        db.create_index("c9", name, path)

    def r(ix, lo, hi):
        return db.query("c9").index_range(ix, lo, hi).ids()

    assert r("ix", [True], [1]) == [1, 2]                      # half-open: [True] is no [1]
    assert r("ix", {"a": 1, "b": 2}, {"b": 2, "a": 1}) == [4, 5]  # maps compare pairs in order
    assert r("ix", [nan], [float("nan")]) == [7]               # NaN equals NaN: equality
    utc = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    assert r("it", dt.datetime(1970, 1, 1), utc) == [8]        # one instant: equality
    assert r("ib", b"a", bytearray(b"a")) == [9]
    assert r("ip", Decimal("1.0"), Decimal("1.0")) == [10]
    with pytest.raises(obj.InvalidArgumentError):             # two texts: a Decimal range
        r("ip", Decimal("1.0"), Decimal("1.00"))
    assert r("ix", 3, 3.0) == []  # one number: equality (no document holds 3)
    assert r("ix", True, True) == [1, 2]  # the elements of [True] and [True, "z"]

"""Field types round-trip exactly through typed documents; migrations."""

import datetime as dt
import enum
import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Optional, Tuple  # noqa: UP035 - the bare typing alias is tested

import pytest

import obj


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Address:
    city: str
    zip: Optional[str] = None


@obj.document(collection="everything", version=1)
@dataclass
class Everything:
    i: int
    big: int
    neg: int
    f: float
    s: str
    flag: bool
    raw: bytes
    nothing: Optional[int]
    maybe: Optional[str]
    items: list[int]
    mapping: dict[str, float]
    intkeys: dict[int, str]
    address: Address
    addresses: list[Address]
    when: dt.datetime
    when_aware: dt.datetime
    day: dt.date
    uid: uuid.UUID
    price: Decimal
    color: Color
    level: Level
    pair: tuple[int, str]
    nan: float = math.nan
    default_list: list[str] = field(default_factory=list)


def make():
    return Everything(
        i=1, big=2**64 - 1, neg=-(2**63), f=0.1, s="héllo \u2603", flag=True, raw=b"\x00\xff",
        nothing=None, maybe="x", items=[1, 2, 3], mapping={"a": 1.5, "$b": -0.0}, intkeys={1: "a", 20: "b"},
        address=Address("Paris", "75001"), addresses=[Address("Oslo"), Address("Rome", "00100")],
        when=dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
        when_aware=dt.datetime(1969, 7, 20, 20, 17, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
        day=dt.date(2000, 1, 1), uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        price=Decimal("12.3400"), color=Color.BLUE, level=Level.HIGH, pair=(7, "seven"),
        default_list=["x"],
    )


def test_every_field_type_roundtrips(db, backend):
    e = make()
    oid = db.insert(e)
    got = db.get(Everything, oid)
    for name in vars(e):
        a, b = getattr(e, name), getattr(got, name)
        if name == "nan":
            assert math.isnan(b)
            continue
        assert a == b and type(a) is type(b), (name, a, b)
    assert got.when.tzinfo is None
    assert got.when_aware.utcoffset() == dt.timedelta(hours=-5, minutes=-30)
    assert math.copysign(1, got.mapping["$b"]) == -1
    # the same object read as a dict: the storable forms
    d = db.get("everything", oid)
    assert d["uid"] == str(e.uid) and d["day"] == "2000-01-01" and d["price"] == "12.3400"
    assert d["color"] == "blue" and d["address"] == {"city": "Paris", "zip": "75001"}
    assert d["raw"] == b"\x00\xff" and d["big"] == 2**64 - 1


def test_int_beyond_64_bits_is_a_clear_error(db):
    e = make()
    e.big = 2**64
    with pytest.raises(obj.InvalidArgumentError, match="outside the storable range"):
        db.insert(e)
    assert db.count(Everything) == 0


def test_insert_many_get_many_typed_and_dict(db, backend):
    docs = [make() for _ in range(50)]
    for k, d in enumerate(docs):
        d.i = k
    ids = db.insert_many(docs)
    assert len(ids) == 50 and ids == sorted(ids)
    got = db.get_many(Everything, ids + [10**9])
    assert [g.i for g in got[:-1]] == list(range(50)) and got[-1] is None
    ids2 = db.insert_many("events", [{"n": k} for k in range(10)])
    assert db.get_many("events", ids2) == [{"n": k} for k in range(10)]
    ids3 = db.insert_many("blobs", [b"a", b"", b"c"])
    assert db.get_many("blobs", ids3) == [b"a", b"", b"c"]


# -- migrations ----------------------------------------------------------------

@dataclass
class PersonV1:
    name: str


@obj.document(collection="people", version=1)
@dataclass
class PersonOld:
    name: str


@obj.document(collection="people", version=2, history=[PersonV1])
@dataclass
class Person:
    first: str
    last: str

    @classmethod
    def migrate(cls, doc, from_version):
        assert from_version == 1 and isinstance(doc, PersonV1)
        first, _, last = doc.name.partition(" ")
        return cls(first=first, last=last)


def test_lazy_migration(path):
    with obj.Db(path) as db:
        oid = db.insert(PersonOld(name="Ada Lovelace"))
    with obj.Db(path) as db:
        p = db.get(Person, oid)
        assert p == Person(first="Ada", last="Lovelace")
        # a write stores the new version
        db.update(Person, oid, lambda p: setattr(p, "last", "King"))
        assert next(db.dump_raw("people")).header.type_version == 2
        assert db.get(Person, oid) == Person(first="Ada", last="King")
        assert [p for _, p in db.query(Person).fetch()] == [Person(first="Ada", last="King")]


@obj.document(collection="things", version=1)
@dataclass
class Thing:
    a: int


@obj.document(collection="things", version=2)
@dataclass
class Thing2:
    a: int
    b: str = "default"


def test_new_field_with_default_reads_old_documents(path):
    with obj.Db(path) as db:
        oid = db.insert(Thing(a=1))
    with obj.Db(path) as db:
        assert db.get(Thing2, oid) == Thing2(a=1, b="default")


def test_frozen_and_slots_dataclasses(db):
    @obj.document(collection="frozen")
    @dataclass(frozen=True)
    class F:
        x: int
        tags: tuple[str, ...] = ()

    @obj.document(collection="slotted")
    @dataclass(slots=True)
    class S:
        x: int

    i = db.insert(F(x=1, tags=("a",)))
    j = db.insert(S(x=2))
    assert db.get(F, i) == F(x=1, tags=("a",))
    assert db.get(S, j) == S(x=2)


def test_one_call_get_paths_agree_with_a_transaction(path):
    """Db.get takes a one-call path once a collection is known (typed,
    with the stored version and migration; dict; raw and attached names
    keep the general path): the answers are those of a read transaction."""
    with obj.Db(path) as db:
        old = db.insert(PersonOld(name="Ada Lovelace"))
        did = db.insert("events", {"k": None, "s": "$x"})
        rid = db.insert("blobs", b"\x00raw")
    with obj.Db(path) as db:
        for _ in range(2):  # the first call learns the names, the second takes the short path
            assert db.get(Person, old) == Person(first="Ada", last="Lovelace")
            assert db.get("events", did) == {"k": None, "s": "$x"}
            assert db.get("blobs", rid) == b"\x00raw"
            assert db.get(Person, 999) is None and db.get("events", 999) is None
            with db.read_transaction() as tx:
                assert tx.get(Person, old) == db.get(Person, old)
        with pytest.raises(obj.InvalidArgumentError):
            db.get("events", -1)
    with pytest.raises(obj.ClosedError):
        db.get("events", did)


@obj.document(collection="accounts", version=2,
              indexes=[obj.Composite(("org", "user"), name="by_org_user", unique=True)])
@dataclass
class Account:
    org: str
    user: str
    email: Annotated[str, obj.Unique]


def test_find_unique_many(path):
    """One call per 2048 keys, in key order, None where absent; typed
    (with versions), dict, composite keys, and a missing collection."""
    with obj.Db(path) as db:
        accts = [Account(org=f"o{i % 3}", user=f"u{i}", email=f"e{i}@x") for i in range(2100)]
        db.insert_many(accts)
        emails = [f"e{i}@x" for i in range(2099, -1, -7)] + ["missing@x"]
        got = db.find_unique_many(Account, "email", emails)
        assert got == [db.find_unique(Account, "email", e) for e in emails]
        assert got[-1] is None and got[0] == accts[2099]
        assert db.find_unique_many("accounts", "email", ["e5@x", "nope"]) == [
            {"org": "o2", "user": "u5", "email": "e5@x"}, None]
        assert db.find_unique_many(Account, "by_org_user", [("o1", "u4"), ("o0", "u4")]) == [accts[4], None]
        assert db.find_unique_many("nothing", "email", ["a"]) == [None]
        assert db.find_unique_many(Account, "email", []) == []
        with db.read_transaction() as tx:
            assert tx.collection(Account).find_unique_many("email", ["e1@x"]) == [accts[1]]
        with pytest.raises(obj.NotFoundError):
            db.find_unique_many(Account, "no_such_index", ["x"])


def test_find_unique_many_of_dict_documents_by_single_values(path, tmp_path):
    """Dict documents looked up by single values take the library's plain
    call (no ids, no wrapped keys); the answers are those of one
    find_unique per key, across chunks, for every kind of key value, and
    the errors are the general path's."""
    with obj.Db(path) as db:
        with db.transaction() as tx:
            tx.create_collection("people")
            tx.create_index("people", "email", "email", kind="unique")
            tx.create_index("people", "num", "num", kind="unique")
            tx.create_index("people", "blob", "blob", kind="unique")
            tx.create_index("people", "pair", ["a", "b"], kind="unique")
            tx.create_index("people", "tags", "tags", kind="unique")
        db.insert_many("people", [
            {"email": f"p{i}@x", "num": i - 2000, "blob": bytes([i % 256, i // 256]), "a": i % 7, "b": i,
             "tags": [i, f"t{i}"]} for i in range(4500)])
        emails = [f"p{i}@x" for i in range(4499, -1, -3)] + ["nobody@x", "p7@x"]
        got = db.find_unique_many("people", "email", emails)
        assert got == [db.find_unique("people", "email", e) for e in emails]
        assert got[0]["num"] == 2499 and got[-2] is None and got[-1]["b"] == 7
        assert db.find_unique_many("people", "num", [-2000, 2499, 2500, 3.0]) == [
            db.find_unique("people", "num", v) for v in (-2000, 2499, 2500, 3.0)]
        assert db.find_unique_many("people", "num", [2**64 - 1, -(2**63)]) == [None, None]
        assert [d["b"] for d in db.find_unique_many("people", "blob", [bytes([5, 1]), b"\x00\x00"])] == [261, 0]
        # A list is one value of a one-field index, and a 1-tuple is a key
        # of one value: both paths answer alike.
        keys = ["t3", 4, [3, "t3"], ([3, "t3"],), ("t3",)]
        assert db.find_unique_many("people", "tags", keys) == [
            db.find_unique("people", "tags", k[0] if type(k) is tuple else k) for k in keys]
        assert db.find_unique_many("people", "tags", ["t3", 4])[0]["b"] == 3
        assert db.find_unique_many("people", "pair", [(5, 5), (5, 6)]) == [
            db.find_unique("people", "pair", 5, 5), None]
        assert db.find_unique_many("people", "email", []) == []
        assert db.find_unique_many("nothing", "email", ["a", "b"]) == [None, None]
        with pytest.raises(obj.InvalidArgumentError, match="2 field"):
            db.find_unique_many("people", "pair", [5])
        with pytest.raises(obj.NotFoundError):
            db.find_unique_many("people", "no_such_index", ["x"])
        with pytest.raises(obj.InvalidArgumentError):
            db.find_unique_many("people", 7, ["x"])
        db.insert("raw", b"bytes")
        with pytest.raises(obj.InvalidArgumentError):
            db.find_unique_many("raw", "email", ["x"])
        # An attached file's documents are read through a class declared
        # for them: without one, both paths say so.
        other = str(tmp_path / "other.obj")
        with obj.Db(other) as o:
            with o.transaction() as tx:
                tx.create_collection("people")
                tx.create_index("people", "email", "email", kind="unique")
            o.insert("people", {"email": "far@x"})
        db.attach(other, "ns")
        for call in (lambda: db.find_unique_many("ns.people", "email", ["far@x"]),
                     lambda: db.find_unique("ns.people", "email", "far@x")):
            with pytest.raises(obj.InvalidArgumentError, match="schema registered"):
                call()


@obj.document(collection="bare_containers")
@dataclass
class BareContainers:
    t: tuple
    s: set
    fs: frozenset
    tt: Tuple  # noqa: UP006
    ot: Optional[tuple] = None


def test_bare_tuple_set_frozenset_keep_their_type(db, backend):
    doc = BareContainers(t=(1, "a"), s={1, 2}, fs=frozenset({"x"}), tt=(3,), ot=(4, 5))
    oid = db.insert(doc)
    for got in (db.get(BareContainers, oid), db.all(BareContainers).__next__()[1],
                db.get_many(BareContainers, [oid])[0]):
        assert got == doc
        assert [type(getattr(got, f)) for f in ("t", "s", "fs", "tt", "ot")] == [tuple, set, frozenset, tuple, tuple]


@dataclass
class Point:
    x: float
    label: str = ""


@obj.document(collection="checked", version=1)
@dataclass
class Checked:
    i: int
    f: float = 0.0
    maybe: Optional[int] = None
    nums: list[float] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)
    point: Optional[Point] = None
    color: Color = Color.RED
    uid: Optional[uuid.UUID] = None
    price: Decimal = Decimal(0)
    day: Optional[dt.date] = None
    when: Optional[dt.datetime] = None
    tagged: Annotated[int, obj.Index] = 0


@pytest.mark.parametrize("bad, where, expected, got", [
    (dict(i="12"), "Checked.i", "int", "str"),
    (dict(i=True), "Checked.i", "int", "bool"),
    (dict(i=1, f="1.5"), "Checked.f", "float", "str"),
    (dict(i=1, maybe=1.5), "Checked.maybe", r"Optional\[int\]", "float"),
    (dict(i=1, nums=[1.0, "x"]), r"Checked.nums\[1\]", "float", "str"),
    (dict(i=1, scores={"a": "b"}), r"Checked.scores\['a'\]", "int", "str"),
    (dict(i=1, point=Point(x="far")), "Checked.point.x", "float", "str"),
    (dict(i=1, point={"x": 1.0}), "Checked.point", "Optional", "dict"),
    (dict(i=1, color="red"), "Checked.color", "a member of Color", "str"),
    (dict(i=1, uid="not-a-uuid"), "Checked.uid", "UUID", "str"),
    (dict(i=1, price=1.5), "Checked.price", "Decimal", "float"),
    (dict(i=1, day=dt.datetime(2020, 1, 1)), "Checked.day", "date", "datetime"),
    (dict(i=1, when="2020-01-01"), "Checked.when", "datetime", "str"),
    (dict(i=1, tagged="x"), "Checked.tagged", "int", "str"),
])
def test_typed_writes_are_type_checked(db, bad, where, expected, got):
    good = db.insert(Checked(i=0))
    doc = Checked(**bad)
    msg = rf"{where}: expected .*{expected}.*, got {got}"
    writes = [
        lambda: db.insert(doc),
        lambda: db.insert_many([Checked(i=5), doc]),
        lambda: db.upsert(Checked, 99, doc),
        lambda: db.update(Checked, good, lambda o: Checked(**bad)),
    ]
    for write in writes:
        with pytest.raises(obj.InvalidArgumentError, match=msg):
            write()
    with pytest.raises(obj.InvalidArgumentError, match=msg):
        with db.transaction() as tx:
            tx.insert(Checked(i=7))
            tx.insert(doc)
    assert [o for _, o in db.all(Checked)] == [Checked(i=0)]  # nothing else was written


def test_typed_writes_widen_int_to_float_and_decimal(db):
    oid = db.insert(Checked(i=1, f=2, nums=[1, 2.5], point=Point(x=3), price=5))
    stored = db.get("checked", oid)
    assert type(stored["f"]) is float and stored["nums"] == [1.0, 2.5] and type(stored["nums"][0]) is float
    assert type(stored["point"]["x"]) is float and stored["price"] == "5"
    got = db.get(Checked, oid)
    assert got == Checked(i=1, f=2.0, nums=[1.0, 2.5], point=Point(x=3.0), price=Decimal(5))
    assert type(got.f) is float
    # The instance written is left as it was.
    doc = Checked(i=1, f=2)
    db.insert(doc)
    assert type(doc.f) is int


def test_a_stored_document_the_class_cannot_take_names_id_and_field(db):
    ok = db.insert(Checked(i=1))
    db.upsert("checked", 60, {"i": 1, "color": "purple"})  # written by another tool
    db.upsert("checked", 61, {"i": 1, "uid": "bogus"})
    for read in (lambda: db.get(Checked, 60), lambda: list(db.all(Checked)), lambda: db.get_many(Checked, [ok, 60]),
                 lambda: db.query(Checked).fetch()):
        with pytest.raises(obj.InvalidArgumentError, match=r"document 60 .*Checked\.color.*'purple'"):
            read()
    with pytest.raises(obj.InvalidArgumentError, match=r"document 61 .*Checked\.uid"):
        db.get(Checked, 61)
    with db.read_transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError, match="document 60"):
            tx.get(Checked, 60)
    assert db.get(Checked, ok) == Checked(i=1)


@dataclass
class Private:
    _x: int
    y: int = 0


@obj.document(collection="ledger", version=1)
@dataclass
class Ledger:
    name: str
    inner: Private
    inners: list[Private]
    by_key: dict[str, Private]
    _balance: int = 0


def test_underscore_fields_roundtrip(db, backend):
    # orjson's own dataclass encoding drops fields named "_...", at any depth
    led = Ledger("ann", Private(1, 2), [Private(3)], {"k": Private(4)}, _balance=100)
    oid = db.insert(led)
    assert db.get(Ledger, oid) == led
    assert db.get("ledger", oid) == {"name": "ann", "inner": {"_x": 1, "y": 2}, "inners": [{"_x": 3, "y": 0}],
                                     "by_key": {"k": {"_x": 4, "y": 0}}, "_balance": 100}
    ids = db.insert_many([led, Ledger("bob", Private(5), [], {}, _balance=-7)])
    assert [o._balance for o in db.get_many(Ledger, ids)] == [100, -7]
    # dataclasses inside dict documents too
    did = db.insert("plain", {"p": Private(6, 7), "ps": [Private(8)]})
    assert db.get("plain", did) == {"p": {"_x": 6, "y": 7}, "ps": [{"_x": 8, "y": 0}]}
    assert db.query(Ledger).filter(obj.field("_balance") == 100).count() == 2
    assert db.query(Ledger).filter(obj.field("inner._x") == 5).count() == 1


@obj.document(collection="moments", version=1)
@dataclass
class Moment:
    at: dt.datetime


CALENDAR_ENDS = [
    # local time in years 1..9999, UTC instant outside them
    dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
    dt.datetime(1, 1, 1, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=23, minutes=59))),
    dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-2))),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-23, minutes=-59))),
    # and the plain ends
    dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=14))),
    dt.datetime.min,
    dt.datetime.max,
]


@pytest.mark.parametrize("when", CALENDAR_ENDS, ids=str)
def test_datetimes_at_the_ends_of_the_calendar_roundtrip(db, backend, when):
    oid = db.insert(Moment(when))
    did = db.insert("moments_dict", {"at": when, "list": [when]})
    for got in (db.get(Moment, oid).at, db.get("moments", oid)["at"], db.get("moments_dict", did)["at"],
                db.get("moments_dict", did)["list"][0], dict(db.all("moments_dict"))[did]["at"]):
        assert type(got) is dt.datetime, got
        assert got == when and got.utcoffset() == when.utcoffset()
        assert (got.year, got.month, got.day, got.hour, got.minute, got.microsecond) == \
            (when.year, when.month, when.day, when.hour, when.minute, when.microsecond)

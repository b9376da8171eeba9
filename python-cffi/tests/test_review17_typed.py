"""Review 17: typed documents whose field types were written and read
differently.

- typing.NewType fields were checked as their real type on write but read
  back as the stored text or map (and an update of what was read failed).
- Literal[SomeEnum.MEMBER] read back the member's value; the
  collections.abc annotations (Sequence, MutableSequence, Set, MutableSet,
  Mapping, MutableMapping and their typing aliases) were not converted on
  read (nor checked on write).
- A Union read a value written as one arm as another: a str with a date's
  (UUID's, Decimal's, time's, a str Enum's) text, an Enum member whose value
  is a date's text, a tuple or a set in a union with a list, a Cat in
  Union[Dog, Cat] with the same fields, a member whose value is None in
  Optional[that Enum]. Such values are refused when written now.
- A dict that cls.migrate() returned could not hold values of the field
  types (a nested dataclass instance...).
- A typed read did not check int, str, float, bool, bytes... fields: a
  document written by another tool came back with a str in an int field.
"""

import collections.abc as cabc
import datetime as dt
import enum
import math
import re
import typing
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal, NewType, Optional, Union

import pytest

import obj


def _reads(db, cls, oid):
    """The document read by every typed read path (they must agree)."""
    got = db.get(cls, oid)
    assert db.get_many(cls, [oid]) == [got]
    assert dict(db.all(cls))[oid] == got
    assert dict(db.query(cls).fetch())[oid] == got
    with db.read_transaction() as tx:
        assert tx.get(cls, oid) == got
    return got


# -- 1. NewType ---------------------------------------------------------------------


@dataclass
class Money:
    cents: Annotated[int, obj.Index]


UserId = NewType("UserId", uuid.UUID)
Day = NewType("Day", dt.date)
Price = NewType("Price", Decimal)
Amount = NewType("Amount", Money)
Email = NewType("Email", str)
PrimaryEmail = NewType("PrimaryEmail", Email)  # a NewType of a NewType
When = NewType("When", dt.time)


@obj.document(collection="r17_acct")
@dataclass
class Acct:
    owner: UserId
    opened: Day
    price: Price
    bal: Amount
    email: Annotated[PrimaryEmail, obj.Unique]
    at: Optional[When] = None
    days: list[Day] = field(default_factory=list)
    by_owner: dict[UserId, Price] = field(default_factory=dict)
    maybe: Union[Day, int] = 0


def test_newtype_fields_read_back_as_their_type(path, backend):
    v = Acct(UserId(uuid.UUID(int=1)), Day(dt.date(2020, 1, 1)), Price(Decimal("9.99")), Amount(Money(5)),
             PrimaryEmail(Email("a@x")), When(dt.time(1, 2)), [Day(dt.date(2021, 2, 3))],
             {UserId(uuid.UUID(int=2)): Price(Decimal("1.5"))}, Day(dt.date(2022, 1, 1)))
    with obj.Db(path) as db:
        oid = db.insert(v)
        got = _reads(db, Acct, oid)
        assert got == v
        assert [type(x) for x in (got.owner, got.opened, got.price, got.bal, got.at, got.days[0], got.maybe)] == [
            uuid.UUID, dt.date, Decimal, Money, dt.time, dt.date, dt.date]
        assert type(next(iter(got.by_owner))) is uuid.UUID
        assert db.update(Acct, oid, lambda o: None) == v  # what was read is written back as it was
        with pytest.raises(obj.InvalidArgumentError, match=r"Acct\.owner: expected UUID"):
            db.insert(Acct("not-a-uuid", v.opened, v.price, v.bal, v.email))
        # index paths and unique keys see through the NewType too
        names = {s["name"]: s["kind"] for s in obj.schema_of(Acct).index_specs()}
        assert names == {"bal.cents": "standard", "email": "unique"}
        assert obj.schema_of(Acct).key_slot_types("email") == (("email", str),)
        assert db.find_unique(Acct, "email", "a@x") == v
        assert db.find_unique(Acct, "email", b"a@x") == v


# -- 2. Literal of Enum members, collections.abc annotations ----------------------------


class Kind(enum.Enum):
    BOOK = "book"
    DVD = "dvd"


class Code(enum.Enum):
    ONE = (1, 2)


@obj.document(collection="r17_items")
@dataclass
class Item:
    kind: Literal[Kind.BOOK, Kind.DVD]
    days: cabc.MutableSequence[dt.date]
    ids: cabc.Set[int]
    more: cabc.MutableSet[uuid.UUID]
    seq: cabc.Sequence[Decimal]
    tseq: typing.Sequence[dt.date]  # noqa: UP006 - the typing alias is tested
    tmut: typing.MutableSequence[int]  # noqa: UP006
    tset: typing.AbstractSet[int]  # noqa: UP006
    by: cabc.Mapping[str, dt.date]
    mby: cabc.MutableMapping[uuid.UUID, int]
    tby: typing.MutableMapping[str, Kind]  # noqa: UP006
    bare_set: cabc.Set = frozenset()
    mixed: Literal["x", Kind.DVD, 3, Code.ONE] = "x"
    either: Union[Literal[Kind.BOOK], int] = 0


def test_literal_of_enum_members_and_abc_collections_read_back(path, backend):
    v = Item(Kind.BOOK, [dt.date(2020, 1, 1)], {1, 2}, {uuid.UUID(int=3)}, (Decimal("1.5"),),
             [dt.date(2020, 1, 2)], [7], frozenset({8}), {"a": dt.date(2020, 1, 3)}, {uuid.UUID(int=4): 1},
             {"k": Kind.DVD}, {5, 6}, Code.ONE, Kind.BOOK)
    with obj.Db(path) as db:
        oid = db.insert(v)
        got = _reads(db, Item, oid)
        assert got.kind is Kind.BOOK and got.mixed is Code.ONE and got.either is Kind.BOOK
        assert got.days == [dt.date(2020, 1, 1)] and type(got.days) is list
        assert got.ids == {1, 2} and type(got.ids) is set and type(got.more) is set and type(got.bare_set) is set
        assert got.more == {uuid.UUID(int=3)} and got.tset == {8} and type(got.tset) is set
        assert got.seq == [Decimal("1.5")] and got.tseq == [dt.date(2020, 1, 2)] and got.tmut == [7]
        assert got.by == {"a": dt.date(2020, 1, 3)} and type(got.by) is dict
        assert got.mby == {uuid.UUID(int=4): 1} and got.tby == {"k": Kind.DVD}
        assert db.update(Item, oid, lambda o: None) == got
        for other in ("x", Kind.DVD, 3):
            assert db.update(Item, oid, lambda o, other=other: setattr(o, "mixed", other)).mixed == other
            assert db.get(Item, oid).mixed == other and type(db.get(Item, oid).mixed) is type(other)
        # the abc annotations are checked on write as their concrete kinds are
        for bad, where in ((dict(days=["2020-01-01"]), r"Item\.days\[0\]: expected date"),
                           (dict(ids={"1"}), r"Item\.ids\[0\]: expected int"),
                           (dict(by={"a": 1}), r"Item\.by\['a'\]: expected date"),
                           (dict(mby={"k": 1}), r"Item\.mby\['k'\]: expected UUID"),
                           (dict(ids=[1]), r"Item\.ids: expected")):
            with pytest.raises(obj.InvalidArgumentError, match=where):
                db.insert(Item(**{**v.__dict__, **bad}))


class Dup(enum.Enum):
    A = "a"


@obj.document(collection="r17_lit_dup")
@dataclass
class LitDup:
    v: Literal[Dup.A, "a", "b"]


def test_literal_values_with_one_stored_form_are_refused(path, backend):
    with obj.Db(path) as db:
        for bad in (Dup.A, "a"):
            with pytest.raises(obj.InvalidArgumentError, match=r"LitDup\.v: expected .*stored as 'a'"):
                db.insert(LitDup(bad))
        assert db.get(LitDup, db.insert(LitDup("b"))) == LitDup("b")


# -- 3, 4, 5. a value a Union (or Optional) reads back as another arm is refused -------


class Day17(enum.Enum):
    NEWYEAR = "2020-01-01"


class Red(enum.Enum):
    RED = "red"


class P(enum.Enum):
    UNSET = None
    ONE = 1


class Small(enum.IntEnum):
    ONE = 1


@dataclass
class Dog:
    name: str


@dataclass
class Cat:
    name: str


@dataclass
class Lab(Dog):
    pass


@obj.document(collection="r17_unions")
@dataclass
class U:
    a: Union[str, dt.date] = ""
    b: Union[str, uuid.UUID] = ""
    c: Union[str, Decimal] = ""
    t: Union[str, dt.time] = ""
    e: Union[dt.date, Day17] = dt.date(2000, 1, 1)
    e2: Union[Day17, dt.date] = Day17.NEWYEAR
    r: Union[str, Red] = ""
    ts: Union[list[int], tuple[int, ...]] = field(default_factory=list)
    lt: Union[list, tuple] = field(default_factory=list)
    ls: Union[list[int], set[int]] = field(default_factory=list)
    st: Union[tuple[int, ...], list[int]] = ()
    pet: Union[Dog, Cat] = field(default_factory=lambda: Dog("d"))
    pets: list[Union[Dog, Cat]] = field(default_factory=list)
    opt: Optional[P] = None
    i: Union[int, Small] = 0
    dts: Union[str, dt.datetime] = ""
    num: Union[float, Decimal] = 0.0
    lo: Union[list[dt.date], list[str]] = field(default_factory=list)


AMBIGUOUS = [  # (field, value, what it would read back as)
    ("a", "2020-01-01", "datetime.date(2020, 1, 1)"),
    ("b", "00000000-0000-0000-0000-000000000001", "UUID('00000000-0000-0000-0000-000000000001')"),
    ("c", "1.5", "Decimal('1.5')"),
    ("t", "12:00:00", "datetime.time(12, 0)"),
    ("e", Day17.NEWYEAR, "datetime.date(2020, 1, 1)"),
    ("e2", dt.date(2020, 1, 1), "<Day17.NEWYEAR: '2020-01-01'>"),
    ("r", "red", "<Red.RED: 'red'>"),
    ("ts", (1, 2), "[1, 2]"),
    ("lt", (1, 2), "[1, 2]"),
    ("ls", {1, 2}, "[1, 2]"),
    ("st", [7], "(7,)"),
    ("pet", Cat("tom"), "Dog(name='tom')"),
    ("pets", [Dog("a"), Cat("tom")], "Dog(name='tom')"),
    ("opt", P.UNSET, "None"),
    ("i", 1, "<Small.ONE: 1>"),
    ("lo", ["2020-01-01"], "[datetime.date(2020, 1, 1)]"),
]


@pytest.mark.parametrize("name, value, back", AMBIGUOUS, ids=[a[0] for a in AMBIGUOUS])
def test_a_union_value_that_reads_back_as_another_arm_is_refused(path, backend, name, value, back):
    with obj.Db(path) as db:
        with pytest.raises(obj.InvalidArgumentError,
                           match=rf"U\.{name}(\[1\])?: expected a value of .* that reads back as itself "
                                 rf"\(stored as .*, it reads back as {re.escape(back)}: the two could not be told "
                                 rf"apart\), got "):
            db.insert(U(**{name: value}))
        with db.transaction() as tx:
            with pytest.raises(obj.InvalidArgumentError, match=rf"U\.{name}"):
                tx.insert(U(**{name: value}))
        assert db.count(U) == 0


def test_union_values_that_read_back_as_themselves_round_trip(path, backend):
    v = U(a="monday", b="not-a-uuid", c="abc", t="noon", e=dt.date(2020, 1, 1), e2=Day17.NEWYEAR, r="blue",
          ts=[1, 2], lt=[3], ls=[4], st=(5, 6), pet=Dog("rex"), pets=[Dog("a"), Lab("b")], opt=P.ONE, i=Small.ONE,
          dts="2020-01-01T00:00:00", num=Decimal("2.5"), lo=["x"])
    w = U(a=dt.date(2020, 1, 2), b=uuid.UUID(int=1), c=Decimal("1.5"), t=dt.time(12), dts=dt.datetime(2020, 1, 1),
          num=float("nan"), lo=[dt.date(2020, 1, 1)], opt=None)
    with obj.Db(path) as db:
        gv = db.get(U, db.insert(v))
        # a subclass of an arm reads back as the arm (as it would in a field of the arm's type)
        assert gv == U(**{**v.__dict__, "pets": [Dog("a"), Dog("b")]})
        assert [type(getattr(gv, f)) for f in ("a", "e", "e2", "ts", "lt", "ls", "st", "pet", "i", "dts", "num")] == [
            str, dt.date, Day17, list, list, list, tuple, Dog, Small, str, Decimal]
        gw = db.get(U, db.insert(w))
        assert [type(getattr(gw, f)) for f in ("a", "b", "c", "t", "dts", "num")] == [
            dt.date, uuid.UUID, Decimal, dt.time, dt.datetime, float]
        assert math.isnan(gw.num) and gw.lo == [dt.date(2020, 1, 1)] and gw.opt is None


# -- 6. a dict from migrate() holding values of the field types -----------------------------


@dataclass
class Addr:
    city: str


@obj.document(collection="r17_mig", version=1)
@dataclass
class Person1:
    name: str


@obj.document(collection="r17_mig", version=2, history=[Person1])
@dataclass
class Person2:
    name: str
    addr: Optional[Addr] = None
    homes: list[Addr] = field(default_factory=list)
    by_city: dict[str, Addr] = field(default_factory=dict)
    since: Optional[dt.date] = None
    pair: tuple[int, str] = (0, "")
    tags: set[str] = field(default_factory=set)
    kind: Optional[Kind] = None
    lit: Literal[Kind.BOOK, Kind.DVD] = Kind.DVD
    pet: Union[Dog, Cat] = field(default_factory=lambda: Dog("none"))
    price: Decimal = Decimal(0)
    blob: bytes = b""
    seq: cabc.Sequence[dt.date] = ()

    @classmethod
    def migrate(cls, old, from_version):
        return {"name": old.name, "addr": Addr("x"), "homes": [Addr("y")], "by_city": {"z": Addr("z")},
                "since": dt.date(2020, 1, 1), "pair": (1, "a"), "tags": {"t"}, "kind": Kind.BOOK,
                "lit": Kind.BOOK, "pet": Cat("c"), "price": Decimal("1.25"), "blob": b"\x00",
                "seq": (dt.date(2020, 1, 2),)}


def test_a_dict_from_migrate_may_hold_values_of_the_field_types(path, backend):
    with obj.Db(path) as db:
        oid = db.insert(Person1("ann"))
        got = db.get(Person2, oid)
        assert got == Person2("ann", Addr("x"), [Addr("y")], {"z": Addr("z")}, dt.date(2020, 1, 1), (1, "a"), {"t"},
                              Kind.BOOK, Kind.BOOK, Cat("c"), Decimal("1.25"), b"\x00", [dt.date(2020, 1, 2)])
        assert type(got.pet) is Cat and type(got.seq) is list
        assert dict(db.all(Person2)) == {oid: got}


# -- 7. a typed read checks every field against the stored value ----------------------------


@obj.document(collection="r17_flat")
@dataclass
class Flat:
    a: int
    b: str
    f: float = 0.0
    flag: bool = False
    raw: bytes = b""
    when: Optional[dt.datetime] = None
    maybe: Optional[int] = None
    either: Union[int, str] = 0
    nums: list[int] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)
    pair: tuple[int, int] = (0, 0)
    tags: set[str] = field(default_factory=set)
    day: Optional[dt.date] = None
    price: Decimal = Decimal(0)
    anything: Any = None


BAD_STORED = [
    ("a", "notanint"), ("a", True), ("a", 1.5), ("b", 5), ("f", "1.5"), ("f", True), ("flag", 1), ("raw", "xx"),
    ("when", "2020-01-01"), ("maybe", "1"), ("either", 1.5), ("nums", "abc"), ("nums", [1, "x"]),
    ("scores", {"k": "v"}), ("scores", [1]), ("pair", [1, 2, 3]), ("pair", "ab"), ("tags", {"k": 1}),
    ("day", 20200101), ("price", True), ("price", [1]),
]


@pytest.mark.parametrize("name, stored", BAD_STORED, ids=[f"{a}={b!r}" for a, b in BAD_STORED])
def test_a_stored_value_of_the_wrong_type_is_an_error_on_read(path, backend, name, stored):
    with obj.Db(path) as db:
        good = db.insert(Flat(1, "x"))
        doc = {**db.get("r17_flat", good), name: stored}
        bad = db.insert("r17_flat", doc)  # written by "another tool"
        reads = [lambda: db.get(Flat, bad), lambda: db.get_many(Flat, [good, bad]), lambda: list(db.all(Flat)),
                 lambda: db.query(Flat).fetch()]
        for read in reads:
            with pytest.raises(obj.InvalidArgumentError, match=rf"document {bad} .*Flat\.{name}: the stored value"):
                read()
        assert db.get(Flat, good) == Flat(1, "x")


def test_values_of_the_right_types_read_back_as_they_are(path, backend):
    v = Flat(-1, "s", 2.5, True, b"\x01", dt.datetime(2020, 1, 1, 1, tzinfo=dt.timezone.utc), 3, "e", [1, 2],
             {"k": 1}, (1, 2), {"t"}, dt.date(2020, 1, 1), Decimal("0.1"), {"any": [1]})
    with obj.Db(path) as db:
        assert _reads(db, Flat, db.insert(v)) == v
        # an int stored in a float field (another tool) reads as a float
        i = db.insert("r17_flat", {"a": 1, "b": "x", "f": 2, "either": "y", "nums": [], "scores": {}})
        got = db.get(Flat, i)
        assert got.f == 2.0 and type(got.f) is float and got.either == "y"

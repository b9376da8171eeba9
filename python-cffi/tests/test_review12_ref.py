"""Review 12 (reference reading): statements of the obj-db 1.1.0
description and of the issue that test_reference.py does not pin down.
No behaviour differed; these keep it so."""

import datetime as dt
import enum
import math
import os
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Optional

import pytest

import obj


class R12Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class R12Inner:
    x: int
    y: str = "y"


@obj.document(collection="r12_all", version=1)
@dataclass
class R12All:
    i: int
    f: float
    s: str
    b: bool
    by: bytes
    n: Optional[int]
    lst: list
    d: dict
    inner: R12Inner
    inners: list[R12Inner]
    aware: dt.datetime
    naive: dt.datetime
    day: dt.date
    u: uuid.UUID
    dec: Decimal
    e: R12Color


def _same(a, b):
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dt.datetime):
        return a == b and (a.tzinfo is None) == (b.tzinfo is None) and a.utcoffset() == b.utcoffset()
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("i", [0, -1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1])
@pytest.mark.parametrize("f", [0.1, -0.0, math.inf, -math.inf, math.nan, 5e-324])
def test_exact_round_trip_of_every_field_type(path, i, f):
    doc = R12All(
        i=i, f=f, s="héllo \x00 😀", b=True, by=bytes(range(256)), n=None, lst=[1, "a", None, 1.5, [2], {"k": 1}],
        d={"a": [1, {"c": None}], "$x": -0.0}, inner=R12Inner(5, "z"), inners=[R12Inner(1), R12Inner(2, "q")],
        aware=dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        naive=dt.datetime(2024, 5, 6, 7, 8, 9, 1), day=dt.date(1, 1, 1), u=uuid.uuid4(),
        dec=Decimal("-123456789012345678901234567890.1230"), e=R12Color.BLUE,
    )
    with obj.Db(path) as db:
        oid = db.insert(doc)
        reads = [db.get(R12All, oid), dict(db.all(R12All))[oid], dict(db.query(R12All).fetch())[oid]]
    with obj.Db(path) as db:
        reads.append(db.get(R12All, oid))
    for got in reads:
        for name in vars(doc):
            assert _same(getattr(doc, name), getattr(got, name)), (name, getattr(doc, name), getattr(got, name))
    with obj.Db(path) as db, pytest.raises(obj.InvalidArgumentError):
        db.insert(R12All(**{**vars(doc), "i": 2**64}))


@obj.document(collection="r12_idx", version=1, indexes=[obj.Composite(("addr.x", "when"))])
@dataclass
class R12Idx:
    uid: Annotated[uuid.UUID, obj.Unique]
    when: Annotated[dt.datetime, obj.Index]
    color: Annotated[R12Color, obj.Index]
    addr: R12Inner
    big: Annotated[int, obj.Index] = 0
    tags: Annotated[tuple[str, ...], obj.Each] = ()


def test_index_range_and_find_unique_take_native_values(path):
    utc = dt.timezone.utc
    bigs = [2**64 - 1, -(2**63), 0, 2**63, -1, 1]
    with obj.Db(path) as db:
        db.insert_many([R12Idx(uuid.UUID(int=k), dt.datetime(2024, 1, 1 + k, tzinfo=utc), list(R12Color)[k % 2],
                               R12Inner(k // 3, "c"), bigs[k], ("all", f"t{k}")) for k in range(6)])

        def r(index, lo=None, hi=None):
            return [i for i, _ in db.index_range(R12Idx, index, lo, hi)]

        assert db.find_unique(R12Idx, "uid", uuid.UUID(int=3)).big == 2**63
        assert r("when", dt.datetime(2024, 1, 2, tzinfo=utc), dt.datetime(2024, 1, 4, tzinfo=utc)) == [2, 3]
        # equal bounds are equality, whatever the offset the instant is written in
        plus1 = dt.timezone(dt.timedelta(hours=1))
        assert r("when", dt.datetime(2024, 1, 2, 1, tzinfo=plus1), dt.datetime(2024, 1, 2, 1, tzinfo=plus1)) == [2]
        assert r("color", R12Color.BLUE, R12Color.BLUE) == [2, 4, 6]
        assert r("big") == [2, 5, 3, 6, 4, 1]  # numeric order over the full 64-bit range
        assert r("big", 2**63, 2**63) == [4] and r("big", -1.5, 0.5) == [5, 3]
        assert r("tags", "t4", "t4") == [5] and len(r("tags", "all", "all")) == 6
        assert r("addr.x_when", (1,), (1,)) == [4, 5, 6]
        assert sorted(db.query(R12Idx).filter(obj.field("big") > 2**63 - 1).ids()) == [1, 4]


def test_field_expressions_combine_and_explain(path):
    with obj.Db(path) as db:
        db.insert_many("orders", [{"total": t, "status": s} for t, s in
                                  [(50, "new"), (150, "new"), (250, "shipped"), (99, "shipped")]])
        q = db.query("orders")
        assert q.filter(obj.field("total") > 100).ids() == [2, 3]
        assert q.filter((obj.field("total") > 100) & (obj.field("status") == "new")).ids() == [2]
        assert q.filter((obj.field("total") > 200) | (obj.field("total") < 60)).ids() == [1, 3]
        assert q.filter(~(obj.field("status") == "new")).ids() == [3, 4]
        assert isinstance(q.filter(obj.field("total") > 100).explain(), str)
        with pytest.raises(obj.InvalidArgumentError):
            bool(obj.field("total") > 1)


def test_kv_put_get_delete_scan(db):
    kv = db.kv("cfg")
    for k in [b"a", b"ab", b"abc", b"ac", b"a\xff", b"b", b"b1"]:
        kv.put(k, k + b"!")
    assert kv.get(b"ab") == b"ab!" and kv.get(b"zz") is None
    assert [k for k, _ in kv.scan(prefix=b"ab")] == [b"ab", b"abc"]
    assert [k for k, _ in kv.scan(prefix=b"a\xff")] == [b"a\xff"]
    assert [k for k, _ in kv.scan(start=b"ab", end=b"b")] == [b"ab", b"abc", b"ac", b"a\xff"]  # half-open
    assert kv.delete(b"a") is True and kv.delete(b"a") is False
    assert [k for k, _ in kv.scan()] == [b"ab", b"abc", b"ac", b"a\xff", b"b", b"b1"]


def test_closed_handles_and_finished_transactions_raise_obj_errors(path):
    db = obj.Db(path)
    with db.transaction() as tx:
        tx.insert("e", {"a": 1})
    with pytest.raises(obj.ObjError):
        tx.insert("e", {"a": 2})
    with pytest.raises(obj.InvalidArgumentError):
        db.read_transaction().insert("e", {"a": 1})
    db.close()
    db.close()  # idempotent
    with pytest.raises(obj.ObjError):
        db.get("e", 1)
    with pytest.raises(obj.NotFoundError):
        obj.Db(path + ".missing", create=False)


def test_exceptional_exit_keeps_the_wal_and_the_exception(in_tmp):
    class Boom(Exception):
        pass

    err = Boom()
    with pytest.raises(Boom) as info:
        with obj.Db("app.obj") as db:
            db.insert("notes", {"t": 1})
            raise err
    assert info.value is err
    assert os.path.getsize("app.obj-wal") > 64  # the close-time fold was skipped
    with obj.Db("app.obj") as db:
        assert db.get("notes", 1) == {"t": 1}
    assert not os.path.exists("app.obj-wal") or os.path.getsize("app.obj-wal") <= 64

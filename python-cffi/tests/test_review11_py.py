"""Fixes from review 11 (a new user's acceptance tests). This module uses
postponed annotations on purpose, as many test files and applications do:
every annotation below is a string that obj resolves itself."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Optional

import pytest

import obj

# -- 1. classes defined in a function, with postponed annotations ---------------------


def test_document_classes_defined_in_a_function_resolve_their_local_types(path):
    # Under `from __future__ import annotations` the field types are text;
    # `Inner` and `Tag` exist only in this function's scope.
    class Tag:  # (not a dataclass: a local name that must not be needed)
        pass

    @dataclass
    class Point:
        x: int
        y: int = 0

    @dataclass
    class Inner:
        x: int
        at: Optional[dt.datetime] = None  # noqa: UP045 - evaluated on Python 3.9 too
        points: list[Point] = field(default_factory=list)

    @obj.document(collection="r11_local", version=1)
    @dataclass
    class Outer:
        inner: Inner
        items: list[Inner]
        by_name: dict[str, Inner]
        email: Annotated[str, obj.Unique]
        maybe: Optional[Inner] = None  # noqa: UP045

    doc = Outer(
        inner=Inner(1, dt.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc), [Point(1, 2)]),
        items=[Inner(2)], by_name={"k": Inner(3, points=[Point(5)])}, email="e", maybe=Inner(4),
    )
    with obj.Db(path) as db:
        oid = db.insert(doc)
        assert db.get(Outer, oid) == doc
        assert type(db.get(Outer, oid).by_name["k"].points[0]) is Point
        assert db.find_unique(Outer, "email", "e") == doc
        assert [i.name for i in db.stat().collections[0].indexes] == ["email"]
        assert db.query(Outer).filter(obj.field("inner.x") == 1).fetch() == [(oid, doc)]
    assert Tag  # (used)


def test_a_history_shape_defined_in_a_function_resolves_too(path):
    @dataclass
    class Name:
        text: str

    @obj.document(collection="r11_hist", version=1)
    @dataclass
    class V1:
        name: Name

    with obj.Db(path) as db:
        oid = db.insert(V1(Name("Ann Lee")))

    @dataclass
    class OldV1:
        name: Name

    @obj.document(collection="r11_hist", version=2, history=[OldV1])
    @dataclass
    class V2:
        first: str
        last: str

        @classmethod
        def migrate(cls, old, from_version):
            first, last = old.name.text.split()
            return cls(first, last)

    with obj.Db(path) as db:
        assert db.get(V2, oid) == V2("Ann", "Lee")


# -- 2. the iterator methods check their arguments and the handle at the call -------


@obj.document(collection="r11_items", version=1)
@dataclass
class R11Item:
    n: int


def test_iterators_raise_at_the_call_not_at_the_first_next(path):
    db = obj.Db(path)
    db.insert(R11Item(1))
    db.kv("k").put(b"a", b"1")
    kv, q = db.kv("k"), db.query(R11Item)
    with pytest.raises(obj.InvalidArgumentError, match="not an @obj.document"):
        db.all(object())
    with pytest.raises(obj.InvalidArgumentError):
        db.iter_all(5)
    with pytest.raises(obj.InvalidArgumentError):
        db.all("")
    tx = db.read_transaction()
    tx.close()
    with pytest.raises(obj.InvalidArgumentError, match="finished"):
        tx.all(R11Item)
    with pytest.raises(obj.InvalidArgumentError, match="finished"):
        tx.query(R11Item).iter()
    db.close()
    for call in (lambda: db.all(R11Item), lambda: db.all("r11_items"), lambda: db.iter_all("r11_items"),
                 lambda: kv.scan(), lambda: kv.scan(prefix=b"a"), lambda: q.iter(), lambda: iter(q)):
        with pytest.raises(obj.ClosedError):
            call()


# -- 3. count() of a query sorted by a Python key does not sort ---------------------


def test_count_ignores_a_python_sort_key_as_the_engine_ignores_a_field_sort(db):
    db.insert_many([R11Item(n) for n in range(10)])
    for q in (db.query(R11Item).sort_by("n"), db.query(R11Item).sort_by(lambda o: -o.n)):
        q = q.sort_buffer_limit(3)
        assert q.count() == 10
        assert q.filter(lambda o: o.n % 2 == 0).count() == 5
        assert q.limit(4).count() == 4
        assert q.offset(8).count() == 2
        assert q.filter(lambda o: o.n > 2).offset(1).limit(20).count() == 6
    # fetching still sorts, and still refuses an over-cap sort
    with pytest.raises(obj.InvalidArgumentError, match="sort_buffer_limit"):
        db.query(R11Item).sort_by(lambda o: -o.n).sort_buffer_limit(3).fetch()
    assert db.query(R11Item).sort_by(lambda o: -o.n).limit(2).count() == 2


# -- 4. kv scan with a prefix and a range together -----------------------------------


def test_kv_scan_takes_a_prefix_and_a_range_together(db):
    kv = db.kv("r11")
    keys = [b"a", b"user:", b"user:1", b"user:2", b"user:3", b"user;", b"\xff", b"\xff\xff", b"\xff\xff\x01"]
    for k in keys:
        kv.put(k, b"v")

    def want(prefix=b"", start=None, end=None):
        return [k for k in sorted(keys)
                if k.startswith(prefix) and (start is None or k >= start) and (end is None or k < end)]

    cases = [(b"user:", b"user:2", None), (b"user:", None, b"user:3"), (b"user:", b"user:1", b"user:3"),
             (b"user:", b"a", b"zzz"), (b"user:", b"user;", None), (b"user:", None, b"a"),
             (b"\xff", b"\xff\xff", None), (b"\xff\xff", None, b"\xff\xff\x00"), (b"", b"user:", b"user;"),
             ("user:", "user:2", "user:3")]
    for prefix, start, end in cases:
        b = [x.encode() if isinstance(x, str) else x for x in (prefix, start, end)]
        got = [k for k, _ in kv.scan(prefix=prefix, start=start, end=end)]
        assert got == want(*b), (prefix, start, end)
        assert [k for k, _ in kv.scan(prefix=prefix, start=start, end=end, reverse=True)] == got[::-1]
        with db.read_transaction() as tx:
            assert [k for k, _ in tx.kv("r11").scan(prefix=prefix, start=start, end=end)] == got


# -- 5. AsyncDb's iterators are awaitable too, and check their arguments at the call ----


async def test_asyncdb_iterators_are_awaitable_and_check_at_the_call(path):
    @obj.document(collection="r11_async", version=1)
    @dataclass
    class Item:
        n: Annotated[int, obj.Index]

    adb = await obj.AsyncDb.open(path)
    ids = await adb.insert_many([Item(n) for n in range(5)])
    await adb.insert("r11_raw", b"x")
    assert await adb.all(Item) == [(i, Item(n)) for n, i in enumerate(ids)]
    assert [o.n async for _, o in adb.all(Item)] == list(range(5))
    assert await adb.index_range(Item, "n", 1, 3) == [(ids[1], Item(1)), (ids[2], Item(2))]
    assert [i async for i, _ in adb.index_range(Item, "n", 3, None)] == ids[3:]
    assert await adb.iter_all("r11_raw") == [(1, b"x")]
    stream = adb.all(Item)
    assert len(await stream) == 5 and len(await stream) == 5  # made again for a second pass
    with pytest.raises(obj.InvalidArgumentError):
        adb.all(object())
    await adb.close()
    with pytest.raises(obj.ClosedError):
        adb.all(Item)


async def test_async_transaction_all_is_awaitable_like_iter_all_and_index_range(path):
    @obj.document(collection="r11_async_tx", version=1)
    @dataclass
    class Item:
        n: Annotated[int, obj.Index]

    adb = await obj.AsyncDb.open(path)
    ids = await adb.insert_many([Item(n) for n in range(3)])
    async with adb.read_transaction() as tx:
        assert await tx.all(Item) == [(i, Item(n)) for n, i in enumerate(ids)]
        assert [o.n async for _, o in tx.all(Item)] == [0, 1, 2]
    async with adb.transaction() as tx:
        await tx.insert(Item(3))
        assert [o.n for _, o in await tx.all(Item)] == [0, 1, 2, 3]  # its own write included
    with pytest.raises(obj.InvalidArgumentError):
        await tx.all(Item)  # finished: what the blocking API raises
    await adb.close()

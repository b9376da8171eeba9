"""Fixes from review 9: bool ids in get_many, the message for a class passed
as a document, find_unique with pre-encoded bytes, async iterators of an
async transaction, one transaction used by several threads, union fields,
cancellation while an async transaction exits, and AsyncDb scheduling of
reads behind waiting writers."""

import enum
from dataclasses import dataclass
from typing import Annotated, Optional

import pytest

import obj


@obj.document(collection="r9_items")
@dataclass
class Item:
    n: int
    tag: str = ""


# -- 5. a bool is not a document id, in get_many as in get ---------------------------

def test_get_many_refuses_bool_ids(db):
    db.insert(Item(5))
    db.insert("d", {"a": 1})
    db.insert("raw", b"x")
    with pytest.raises(obj.InvalidArgumentError):
        db.get(Item, True)
    for what in (Item, "d", "raw", "missing"):
        with pytest.raises(obj.InvalidArgumentError, match="bool"):
            db.get_many(what, [True])
        with pytest.raises(obj.InvalidArgumentError, match="bool"):
            db.get_many(what, [1, False])
    with db.read_transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError, match="bool"):
            tx.collection(Item).get_many([True])
        with pytest.raises(obj.InvalidArgumentError):
            tx.get_many("d", [-1])
        with pytest.raises(obj.InvalidArgumentError):
            tx.get_many("missing", [2**64])


def test_get_many_still_takes_int_like_ids(db):
    class Id(enum.IntEnum):
        ONE = 1

    db.insert(Item(5))
    db.insert("d", {"a": 1})
    assert db.get_many(Item, [Id.ONE, 1, 2]) == [Item(5), Item(5), None]
    assert db.get_many("d", (i for i in [1, 2])) == [{"a": 1}, None]
    assert db.get_many("d", []) == []


# -- 8. a class passed where a document instance goes: one clear message -------------

@obj.document(collection="r9_u")
@dataclass
class U:
    email: str


def test_class_for_instance_message_does_not_depend_on_caches(path):
    with obj.Db(path) as db:
        for _ in range(2):  # before the collection is set up, and after (the one-call fast path)
            with pytest.raises(obj.InvalidArgumentError, match="insert takes a document instance"):
                db.insert(U)
            with pytest.raises(obj.InvalidArgumentError, match="instance"):
                db.upsert(U, 1, U)
            with pytest.raises(obj.InvalidArgumentError, match="instance"):
                db.insert_many([U])
            with db.transaction() as tx:
                with pytest.raises(obj.InvalidArgumentError, match="instance"):
                    tx.upsert(U, 1, U)
                with pytest.raises(obj.InvalidArgumentError, match="insert takes a document instance"):
                    tx.collection(U).insert(U)
            db.insert(U("x@y"))
        assert db.count(U) == 2


# -- 7. find_unique with a pre-encoded (UTF-8 bytes) key of a str field --------------

@obj.document(collection="r9_emails", indexes=[obj.Composite(("region", "email"), name="by_re", unique=True)])
@dataclass
class Mail:
    email: Annotated[str, obj.Unique]
    region: str = "us"
    blob: Annotated[bytes, obj.Unique] = b""
    alias: Annotated[Optional[str], obj.Unique] = None


def test_find_unique_takes_utf8_bytes_for_a_str_field(db):
    m = Mail("a@b.com", blob=b"\xff\x00", alias="é")
    oid = db.insert(m)
    assert db.find_unique(Mail, "email", "a@b.com") == m
    assert db.find_unique(Mail, "email", b"a@b.com") == m
    assert db.find_unique(Mail, "email", bytearray(b"a@b.com")) == m
    assert db.find_unique(Mail, "alias", "é".encode()) == m
    assert db.find_unique_with_id(Mail, "email", b"a@b.com") == (oid, m)
    assert db.find_unique(Mail, "by_re", "us", b"a@b.com") == m
    assert db.find_unique(Mail, "by_re", (b"us", b"a@b.com")) == m
    assert db.find_unique_many(Mail, "email", [b"a@b.com", "a@b.com", b"zz"]) == [m, m, None]
    assert db.find_unique_many(Mail, "by_re", [(b"us", b"a@b.com")]) == [m]
    assert db.find_unique(Mail, "email", b"nobody") is None
    # a bytes field keeps its bytes (no decoding)
    assert db.find_unique(Mail, "blob", b"\xff\x00") == m
    with db.read_transaction() as tx:
        assert tx.collection(Mail).find_unique("email", b"a@b.com") == m
        with pytest.raises(obj.InvalidArgumentError, match="UTF-8"):
            tx.find_unique(Mail, "email", b"\xff")
        with pytest.raises(obj.InvalidArgumentError, match="UTF-8"):
            tx.find_unique_many(Mail, "email", [b"\xff"])


# -- 6. async for over tx.index_range / tx.iter_all in an async transaction ----------

@obj.document(collection="r9_idx")
@dataclass
class Ix:
    region: Annotated[str, obj.Index]


async def test_async_txn_index_range_and_iter_all_are_async_iterators(path):
    adb = await obj.AsyncDb.open(path)
    await adb.insert(Ix("us"))
    await adb.insert(Ix("eu"))
    await adb.insert("raw", b"r1")
    async with adb.transaction() as tx:
        await tx.insert(Ix("us"))  # its own writes are seen
        got = [x async for x in tx.index_range(Ix, "region", "us", "us")]
        assert [d for _, d in got] == [Ix("us"), Ix("us")]
        assert [i for i, _ in await tx.index_range(Ix, "region", "us", "us")] == [i for i, _ in got]
        assert [p async for p in tx.iter_all("raw")] == [(1, b"r1")]
        assert await tx.iter_all("raw") == [(1, b"r1")]
        assert len([x async for x in tx.iter_all("r9_idx")]) == 3
        with pytest.raises(obj.InvalidArgumentError):
            tx.index_range(Ix, 5)  # a bad argument raises at the call
    async with adb.read_transaction() as rx:
        assert len([x async for x in rx.index_range(Ix, "region", "us", "us")]) == 2
        assert len([x async for x in rx.index_range(Ix, "region")]) == 3
    with pytest.raises(obj.InvalidArgumentError):  # finished: as the blocking API
        [x async for x in rx.iter_all("raw")]
    await adb.close()

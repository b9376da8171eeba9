"""Single-document writes on `Db` (`db.insert`, `db.upsert` outside a
transaction). Once the collection is known they go through one C call that
begins, writes and commits; these tests pin that the result is the same as
through an explicit transaction, errors included."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj
from obj import db as db_module


@obj.document(collection="people", version=2)
@dataclass
class Person:
    name: str
    email: Annotated[str, obj.Unique]


@obj.document(collection="pets")
@dataclass
class Pet:
    name: str


@obj.document(collection="ns.c")
@dataclass
class NsC:
    n: int


@pytest.fixture
def calls(monkeypatch):
    """Counts the one-call writes that reach the library."""
    seen = {"insert": 0, "upsert": 0}
    real_insert, real_upsert = db_module._db_doc_insert, db_module._db_doc_upsert

    def insert(*a):
        seen["insert"] += 1
        return real_insert(*a)

    def upsert(*a):
        seen["upsert"] += 1
        return real_upsert(*a)

    monkeypatch.setattr(db_module, "_db_doc_insert", insert)
    monkeypatch.setattr(db_module, "_db_doc_upsert", upsert)
    return seen


def test_dict_writes_take_one_call_once_the_collection_is_known(db, calls):
    with db.transaction() as tx:
        tx.create_index("users", "email", "email", kind="unique")
    assert db.insert("users", {"email": "a@x"}) == 1
    assert db.insert("users", {"email": "b@x"}) == 2
    assert db.upsert("users", 10, {"email": "c@x"}) is True
    assert db.upsert("users", 10, {"email": "c2@x"}) is False
    assert calls["insert"] >= 1 and calls["upsert"] == 2
    assert db.get("users", 10) == {"email": "c2@x"}
    # Ids keep counting past an upsert at a chosen id.
    assert db.insert("users", {"email": "d@x"}) == 11
    assert db.count("users") == 4


def test_one_call_errors_leave_nothing(db, calls):
    with db.transaction() as tx:
        tx.create_index("users", "email", "email", kind="unique")
        tx.insert("users", {"email": "a@x"})
        tx.insert("blobs", b"raw")
    with pytest.raises(obj.ConstraintError, match="email"):
        db.insert("users", {"email": "a@x"})
    with pytest.raises(obj.InvalidArgumentError):
        db.upsert("users", 5, {"email": "a@x"})
    assert calls["insert"] == 1 and calls["upsert"] == 1
    assert db.count("users") == 1 and db.get("users", 5) is None
    # A dict into a raw collection, bytes where a dict belongs, bad ids.
    db.get("blobs", 1)
    with pytest.raises(obj.InvalidArgumentError):
        db.insert("blobs", {"a": 1})
    with pytest.raises(obj.InvalidArgumentError):
        db.upsert("blobs", 1, {"a": 1})
    with pytest.raises(obj.InvalidArgumentError):
        db.upsert("users", -1, {"email": "z@x"})
    with pytest.raises(obj.InvalidArgumentError):
        db.upsert("users", 2**64, {"email": "z@x"})
    with pytest.raises(obj.InvalidArgumentError):
        db.insert("users", [{"email": "z@x"}])
    assert db.get("blobs", 1) == b"raw"
    assert db.count("users") == 1
    # The next id did not move for the refused writes.
    assert db.insert("users", {"email": "n@x"}) == 2


def test_typed_writes_take_one_call_after_the_first(db, calls):
    a = db.insert(Person("ann", "ann@x"))
    assert db.get(Person, a) == Person("ann", "ann@x")
    b = db.insert(Person("bob", "bob@x"))
    assert b == a + 1
    assert db.upsert(Person, 50, Person("cy", "cy@x")) is True
    assert db.upsert(Person, 50, Person("cy", "cy2@x")) is False
    assert calls["insert"] >= 1 and calls["upsert"] == 2
    with db.read_transaction() as tx:
        assert tx.collection(Person).get(50) == Person("cy", "cy2@x")
    # The schema version is stored with each document.
    assert {r.id: r.header.type_version for r in db.dump_raw("people")} == {a: 2, b: 2, 50: 2}
    with pytest.raises(obj.InvalidArgumentError):
        db.insert(Person("dup", "ann@x"))
    with pytest.raises(obj.InvalidArgumentError):
        db.upsert(Person, 51, Pet("rex"))
    with pytest.raises(obj.InvalidArgumentError):
        db.insert(Person, Person("x", "x@x"))
    assert db.count(Person) == 3


def test_attached_namespaces_stay_read_only(db, tmp_path, calls):
    other = obj.Db(str(tmp_path / "other.obj"))
    other.insert("c", {"n": 1})
    other.close()
    db.attach(str(tmp_path / "other.obj"), "ns")
    assert db.get("ns.c", 1) == NsC(n=1)  # decoded with the class registered under the namespaced name
    with pytest.raises(obj.InvalidArgumentError):
        db.insert("ns.c", {"n": 2})
    with pytest.raises(obj.InvalidArgumentError):
        db.upsert("ns.c", 7, {"n": 2})
    assert calls["insert"] == 0 and calls["upsert"] == 0


def test_closed_db_refuses_one_call_writes(path, calls):
    d = obj.Db(path)
    d.insert("c", {"n": 1})
    d.insert("c", {"n": 2})
    d.close()
    with pytest.raises(obj.ObjError):
        d.insert("c", {"n": 3})
    with pytest.raises(obj.ObjError):
        d.upsert("c", 9, {"n": 3})
    with obj.Db(path) as again:
        assert again.count("c") == 2


def test_threads_share_one_call_writes(path, calls):
    d = obj.Db(path)
    d.insert("c", {"t": -1})

    def work(t):
        for i in range(100):
            d.insert("c", {"t": t, "i": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert calls["insert"] >= 300
    ids = [i for i, _ in d.all("c")]
    assert ids == list(range(1, 402))
    d.close()
    with obj.Db(path) as again:
        assert again.count("c") == 401

"""The one-call reads outside a transaction (review 48): ``db.get`` on a raw
collection (obj_db_raw_get), ``db.kv(name).get`` (obj_db_kv_get) and
``db.count`` (obj_db_count) each take and end a snapshot of their own in one
C call where the Db's caches say the name is a collection or namespace of
this file; otherwise, and when the library refuses the read, they go through
a read transaction. Either way the answers and the errors are those of the
transaction."""

import dataclasses

import pytest

import obj


@obj.document(collection="r48_items")
@dataclasses.dataclass
class Item:
    n: int = 0


@obj.document(collection="r48ns.items")
@dataclasses.dataclass
class NsItem:
    n: int = 0


def _no_transactions(db, monkeypatch):
    """Makes any read or write transaction of ``db`` fail: what still works
    took the one-call path."""
    def refuse(*_a, **_k):
        raise AssertionError("went through a transaction")

    monkeypatch.setattr(db, "read_transaction", refuse)
    monkeypatch.setattr(db, "transaction", refuse)


def test_raw_get_kv_get_count_take_one_call(db, monkeypatch):
    db.insert_many("blobs", [b"xy", b""])
    db.insert_many("docs", [{"a": 1}, {"a": 2}, {"a": 3}])
    db.insert(Item(n=5))
    ns = db.kv("sess")
    ns.put(b"k", b"v")
    ns.put(b"", b"")
    # (the first reads learn the kinds)
    assert db.get("blobs", 1) == b"xy" and db.get("docs", 1) == {"a": 1}
    assert db.count("docs") == 3
    assert db.count("never_made") == 0  # (a name seen once: the next count is one call)
    _no_transactions(db, monkeypatch)
    assert db.get("blobs", 1) == b"xy"
    assert db.get("blobs", 2) == b""
    assert db.get("blobs", 3) is None
    assert db.get("blobs", 2**64 - 1) is None
    assert ns.get(b"k") == b"v" and ns.get("k") == b"v"
    assert ns.get(bytearray(b"k")) == b"v" and ns.get(memoryview(b"k")) == b"v"
    assert ns.get(b"") == b""
    assert ns.get(b"nope") is None and ns.get(b"nope", 7) == 7
    assert ns[b"k"] == b"v" and b"k" in ns and b"nope" not in ns
    with pytest.raises(KeyError):
        ns[b"nope"]
    assert ns.get(b"k" * 70000) is None  # over the key limit: missing
    assert db.kv("no_such_namespace").get(b"k") is None
    assert db.count("docs") == 3
    assert db.count("blobs") == 2
    assert db.count(Item) == 1
    assert db.count("never_made") == 0


def test_the_answers_are_the_last_commit_of_any_handle(path):
    a, b = obj.Db(path), obj.Db(path)
    try:
        a.insert("blobs", b"one")
        a.insert("docs", {"d": 1})
        a.kv("sess").put(b"k", b"v1")
        assert a.get("blobs", 1) == b"one" and a.get("docs", 1) == {"d": 1}
        assert a.count("blobs") == 1 and a.kv("sess").get(b"k") == b"v1"
        # Another handle writes, then swaps the two collections' kinds and
        # drops the namespace: this Db's caches still hold the old kinds.
        b.insert("blobs", b"two")
        b.kv("sess").put(b"k", b"v2")
        assert a.get("blobs", 2) == b"two" and a.count("blobs") == 2
        assert a.kv("sess").get(b"k") == b"v2"
        with b.transaction() as tx:
            tx.drop_collection("blobs")
            tx.drop_collection("docs")
            tx.insert("blobs", {"now": "a document"})
            tx.insert("docs", b"now raw")
            tx.kv("sess").drop()
        assert a.get("blobs", 1) == {"now": "a document"}
        assert a.get("docs", 1) == b"now raw"
        assert a.get("blobs", 2) is None and a.get("docs", 2) is None
        assert a.count("blobs") == 1 and a.count("docs") == 1
        assert a.kv("sess").get(b"k") is None and a.kv("sess").get(b"k", "gone") == "gone"
        # Dropped without a new one: empty, as in a transaction.
        b.drop_collection("docs")
        assert a.get("docs", 1) is None and a.count("docs") == 0
        with a.read_transaction() as tx:
            assert tx.get("docs", 1) is None and tx.count("docs") == 0
        # Re-learnt: the fast paths serve the new kinds again.
        assert a.get("blobs", 1) == {"now": "a document"}
    finally:
        a.close()
        b.close()


def test_a_read_in_a_write_transaction_of_the_thread_sees_the_last_commit(db):
    db.insert("blobs", b"old")
    db.kv("sess").put(b"k", b"old")
    assert db.get("blobs", 1) == b"old"
    with db.transaction() as tx:
        tx.insert("blobs", b"new")
        tx.kv("sess").put(b"k", b"new")
        assert db.get("blobs", 2) is None
        assert db.kv("sess").get(b"k") == b"old"
        assert db.count("blobs") == 1
        assert tx.kv("sess").get(b"k") == b"new" and tx.count("blobs") == 2
    assert db.get("blobs", 2) == b"new" and db.count("blobs") == 2


def test_errors_are_those_of_the_transaction(path):
    db = obj.Db(path)
    db.insert("blobs", b"x")
    db.insert(Item(n=1))
    ns = db.kv("sess")
    ns.put(b"k", b"v")
    assert db.get("blobs", 1) == b"x" and db.count("blobs") == 1 and db.count(Item) == 1
    for bad in (1.5, None, object()):
        with pytest.raises(obj.InvalidArgumentError):
            ns.get(bad)
    with pytest.raises(obj.InvalidArgumentError):
        db.count(123)
    with pytest.raises(obj.InvalidArgumentError):
        db.count("")
    with pytest.raises(obj.InvalidArgumentError):
        db.get("blobs", -1)
    db.close()
    for call in (lambda: db.get("blobs", 1), lambda: db.count("blobs"), lambda: db.count(Item),
                 lambda: ns.get(b"k"), lambda: ns.get(b"k", 0), lambda: db.kv("sess")):
        with pytest.raises(obj.ClosedError):
            call()


def test_dotted_names_go_through_the_transaction(path, tmp_path, monkeypatch):
    other = str(tmp_path / "other.obj")
    with obj.Db(other) as o:
        o.insert("blobs", b"theirs")
        o.insert("items", {"n": 1})
        o.kv("sess").put(b"k", b"theirs")
    db = obj.Db(path)
    try:
        # A dotted name of this file's own, with nothing attached.
        db.insert("a.blobs", b"mine")
        db.kv("a.sess").put(b"k", b"mine")
        assert db.get("a.blobs", 1) == b"mine" and db.count("a.blobs") == 1
        assert db.kv("a.sess").get(b"k") == b"mine"
        # Dropped by another handle: the transaction's NotFoundError, not a
        # cached None (for a document collection too).
        db.insert("a.docs", {"d": 1})
        assert db.get("a.docs", 1) == {"d": 1}
        with obj.Db(path) as b:
            b.drop_collection("a.blobs")
            b.drop_collection("a.docs")
        # (the document read first: a transaction seeing the drop would
        # empty the caches)
        for call in (lambda: db.get("a.docs", 1), lambda: db.get("a.blobs", 1), lambda: db.count("a.blobs")):
            with pytest.raises(obj.NotFoundError):
                call()
        with pytest.raises(obj.NotFoundError):
            db.count("nope.nothing")
        # An attached namespace reads the attached file.
        db.attach(other, "r48ns")
        assert db.get("r48ns.blobs", 1) == b"theirs"
        assert db.count("r48ns.blobs") == 1 and db.count("r48ns.items") == 1
        assert db.count(NsItem) == 1
        assert db.kv("r48ns.sess").get(b"k") == b"theirs"
        assert db.kv("r48ns.none").get(b"k") is None
        with pytest.raises(obj.InvalidArgumentError):
            db.kv("r48ns.sess").put(b"k", b"x")
        # While one is attached, any dotted key-value name goes through the
        # transaction (which reads this file's "a.sess").
        assert db.kv("a.sess").get(b"k") == b"mine"
        db.detach("r48ns")
        with pytest.raises(obj.NotFoundError):
            db.get("r48ns.blobs", 1)
        assert db.kv("r48ns.sess").get(b"k") is None  # a namespace of this file now
    finally:
        db.close()


def test_a_read_only_handle_reads_in_one_call(path, monkeypatch):
    with obj.Db(path) as w:
        w.insert("blobs", b"x")
        w.kv("sess").put(b"k", b"v")
    db = obj.Db(path, read_only=True)
    try:
        assert db.get("blobs", 1) == b"x"
        _no_transactions(db, monkeypatch)
        assert db.get("blobs", 1) == b"x"
        assert db.kv("sess").get(b"k") == b"v"
        assert db.count("blobs") == 1
    finally:
        db.close()

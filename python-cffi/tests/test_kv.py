"""Key-value namespaces."""

import pytest

import obj


def test_put_get_delete_scan(db):
    kv = db.kv("sessions")
    for k in [b"a", b"ab", b"abc", b"b", b"c"]:
        kv.put(k, k.upper())
    kv["s"] = "str value"
    assert kv.get(b"ab") == b"AB" and kv.get("missing") is None and kv["s"] == b"str value"
    assert [k for k, _ in kv.scan(prefix=b"ab")] == [b"ab", b"abc"]
    assert [k for k, _ in kv.scan(start=b"ab", end=b"c")] == [b"ab", b"abc", b"b"]
    assert [k for k, _ in kv.scan(start=b"b")] == [b"b", b"c", b"s"]
    assert [k for k, _ in kv.scan(end=b"ab")] == [b"a"]
    assert [k for k, _ in kv.scan(reverse=True)][:2] == [b"s", b"c"]
    assert kv.delete(b"a") is True and kv.delete(b"a") is False
    assert b"a" not in kv and b"b" in kv
    with pytest.raises(KeyError):
        kv[b"zzz"]
    # a prefix and a range together: the prefix's keys within the range
    assert [k for k, _ in kv.scan(prefix=b"a", start=b"ab")] == [b"ab", b"abc"]
    assert list(kv.scan(prefix=b"a", start=b"b")) == []
    assert "sessions" in db.kv_namespaces()


def test_kv_in_transactions(db):
    with db.transaction() as tx:
        tx.kv("n").put(b"k", b"v")
        assert tx.kv("n").get(b"k") == b"v"
        assert list(tx.kv("n").scan()) == [(b"k", b"v")]
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.kv("n").put(b"k", b"other")
            raise RuntimeError
    assert db.kv("n").get(b"k") == b"v"
    with db.read_transaction() as tx:
        assert tx.kv("n").get(b"k") == b"v"


def test_empty_values_and_binary_keys(db):
    kv = db.kv("bin")
    kv.put(b"\x00\xff", b"")
    assert kv.get(b"\x00\xff") == b""
    assert list(kv.scan()) == [(b"\x00\xff", b"")]


def test_create_keeps_an_empty_namespace(db):
    assert db.kv("empty").create() is True
    assert db.kv("empty").create() is False
    assert "empty" in db.kv_namespaces() and list(db.kv("empty").scan()) == []
    db.kv("full").put(b"k", b"v")
    assert db.kv("full").create() is False and db.kv("full").get(b"k") == b"v"
    with db.transaction() as tx:
        assert tx.kv("in_txn").create() is True
    assert "in_txn" in db.kv_namespaces()
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.kv("rolled_back").create()
            raise RuntimeError
    assert "rolled_back" not in db.kv_namespaces()
    with db.read_transaction() as tx, pytest.raises(obj.InvalidArgumentError):
        tx.kv("new").create()
    assert db.kv("empty").drop() is True and "empty" not in db.kv_namespaces()

"""Session 48: the package's changes of that session (typed queries that
refuse a field their class does not declare, errors that name the file or
read as English, key-value namespaces that count and pop)."""

import dataclasses
import sys
import threading

import pytest

import obj

F = obj.field


@dataclasses.dataclass
class Addr:
    city: str


@obj.document(collection="orders")
@dataclasses.dataclass
class Order:
    status: str
    total: int
    addr: Addr
    items: list[Addr]
    meta: dict


@pytest.fixture
def db(tmp_path):
    with obj.Db(str(tmp_path / "t.obj")) as d:
        d.insert(Order("paid", 3, Addr("x"), [Addr("y")], {"k": 1}))
        d.insert(Order("new", 5, Addr("z"), [], {}))
        yield d


@pytest.mark.parametrize("build, field, owner", [
    (lambda q: q.filter(F("stauts") == "paid"), "stauts", "Order"),
    (lambda q: q.filter(stauts="paid"), "stauts", "Order"),
    (lambda q: q.filter((F("status") == "a") | ~F("nope").exists()), "nope", "Order"),
    (lambda q: q.filter(F("addr.cty").startswith("x")), "cty", "Addr"),
    (lambda q: q.filter(F("items.cty").isin(["y"])), "cty", "Addr"),
    (lambda q: q.sort_by("totl"), "totl", "Order"),
    (lambda q: q.sort_by(F("addr.cty").desc()), "cty", "Addr"),
])
def test_a_typed_query_refuses_a_field_its_class_lacks(db, build, field, owner):
    with pytest.raises(obj.InvalidArgumentError, match=f"{owner} has no field '{field}' \\(its fields: "):
        build(db.query(Order))


def test_declared_fields_and_free_form_parts_still_work(db):
    q = db.query(Order)
    assert q.filter(F("status") == "paid").count() == 1
    assert q.filter(F("addr.city") == "z").count() == 1
    assert q.filter(F("items.city") == "y").count() == 1
    assert q.filter(F("items.0.city") == "y").count() == 1  # a numeric segment: one element
    assert q.filter(F("meta.k") == 1).count() == 1  # below a dict: any key
    assert [o.total for _, o in q.sort_by("-total").fetch()] == [5, 3]
    # By collection name nothing is declared, so nothing is checked.
    assert db.query("orders").filter(F("stauts") == "paid").count() == 0


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_bytes(b"just some text, longer than a header would be: " * 10)
    with pytest.raises(obj.InvalidArgumentError, match="notes.txt: file is not an obj database"):
        obj.Db(str(p))


def test_a_wrong_document_type_reads_as_english(db):
    with pytest.raises(obj.InvalidArgumentError, match="doc must be an instance of Order, "):
        db.upsert(Order, 1, Addr("x"))


def test_a_namespace_counts_and_pops_like_a_dict(tmp_path):
    with obj.Db(str(tmp_path / "kv.obj")) as d:
        ns = d.kv("s")
        assert len(ns) == 0 and not ns
        for k in (b"a", b"b", b"c"):
            ns[k] = k.upper()
        assert len(ns) == 3 and ns
        assert ns.items() == [(b"a", b"A"), (b"b", b"B"), (b"c", b"C")]
        assert ns.values() == [b"A", b"B", b"C"] and ns.values(prefix=b"b") == [b"B"]
        assert ns.pop(b"b") == b"B" and b"b" not in ns and len(ns) == 2
        assert ns.pop(b"b", None) is None
        with pytest.raises(KeyError):
            ns.pop(b"b")
        with d.transaction() as tx:
            t = tx.kv("s")
            t[b"d"] = b"D"
            assert len(t) == 3 and t.pop(b"a") == b"A" and len(t) == 2  # its own writes
            assert len(ns) == 2  # a snapshot of its own: the last commit
        assert ns.items() == [(b"c", b"C"), (b"d", b"D")]
        with d.read_transaction() as r:
            with pytest.raises(obj.InvalidArgumentError):
                r.kv("s").pop(b"c")
        assert len(d.kv("never")) == 0


async def test_an_async_namespace_pops_in_a_write_of_its_own(tmp_path):
    adb = obj.AsyncDb(str(tmp_path / "akv.obj"))
    try:
        ns = adb.kv("s")
        await ns.put(b"k", b"v")
        assert await ns.items() == [(b"k", b"v")]
        assert await ns.pop(b"k") == b"v"
        assert await ns.pop(b"k", b"gone") == b"gone"
        assert await ns.values() == []
    finally:
        await adb.close()


def test_threads_sharing_a_transaction_pop_a_key_once(tmp_path):
    # pop read the value and deleted it in two calls: two threads sharing
    # the write transaction could both read it before either deleted it,
    # and both returned it.
    n = 2000
    with obj.Db(str(tmp_path / "kvt.obj")) as d, d.transaction() as tx:
        ns = tx.kv("q")
        for i in range(n):
            ns[b"%06d" % i] = b"v"
        got: list[list[int]] = [[], []]
        bar = threading.Barrier(2)

        def worker(j: int) -> None:
            bar.wait()
            for i in range(n):
                if ns.pop(b"%06d" % i, None) is not None:
                    got[j].append(i)

        ts = [threading.Thread(target=worker, args=(j,)) for j in range(2)]
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # threads taking turns often: the race shows
        try:
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        finally:
            sys.setswitchinterval(switch)
        assert not set(got[0]) & set(got[1])
        assert len(got[0]) + len(got[1]) == n and len(ns) == 0

"""Every example of the obj-db 1.1.0 package description, run as written
(in an empty directory, as the examples use relative paths)."""

import asyncio
import os
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj


def test_bytes_api(in_tmp):
    with obj.Db("app.obj") as db:
        with db.transaction() as tx:
            doc_id = tx.insert("orders", b"<your payload bytes>")

        with db.read_transaction() as tx:
            payload = tx.get("orders", doc_id)
            seen = []
            for (id_, bytes_) in tx.iter_all("orders"):
                seen.append((id_, bytes_))
    assert payload == b"<your payload bytes>"
    assert seen == [(doc_id, b"<your payload bytes>")]


@obj.document(collection="orders", version=1)
@dataclass
class Order:
    customer_id: int
    total: float
    status: str


def test_typed_documents(in_tmp):
    with obj.Db("app.obj") as db:
        doc_id = db.insert(Order(customer_id=1, total=99.5, status="pending"))
        order = db.get(Order, doc_id)
        got = []
        for (oid, o) in db.all(Order):
            got.append((oid, o))
    assert order == Order(customer_id=1, total=99.5, status="pending")
    assert got == [(doc_id, order)]


def test_typed_docs_inside_an_explicit_transaction(in_tmp):
    with obj.Db("app.obj") as db:
        with db.transaction() as tx:
            for i in range(1000):
                tx.insert(Order(customer_id=i, total=float(i), status="new"))
            # one commit + one fsync for the whole batch on __exit__

            # reads inside the txn see its own uncommitted writes:
            first = tx.get(Order, 1)
            tx.update(Order, 1, lambda o: setattr(o, "status", "shipped"))
            tx.upsert(Order, 2, Order(customer_id=2, total=2.0, status="done"))
            tx.delete(Order, 3)

            # the raw-bytes overload still works on the same handle:
            tx.insert("audit_log", b"<raw bytes>")
        assert first == Order(customer_id=0, total=0.0, status="new")
        assert db.get(Order, 1).status == "shipped"
        assert db.get(Order, 2) == Order(customer_id=2, total=2.0, status="done")
        assert db.get(Order, 3) is None
        assert db.count(Order) == 999
        assert list(db.iter_all("audit_log"))[0][1] == b"<raw bytes>"


def test_typed_path_rejects_non_documents(in_tmp):
    with obj.Db("app.obj") as db:
        with pytest.raises(obj.InvalidArgumentError, match="not an @obj.document"):
            db.insert(object())
        with db.transaction() as tx:
            with pytest.raises(obj.InvalidArgumentError, match="not an @obj.document"):
                tx.get(dict, 1)


def test_dict_documents(in_tmp):
    with obj.Db("app.obj") as db:
        doc_id = db.insert("events", {"event": "click", "user_id": 42})
        event = db.get("events", doc_id)
    assert event == {"event": "click", "user_id": 42}


@obj.document(
    collection="orders", version=1,
    indexes=[obj.Composite(("region", "status"), name="by_region_status")],
)
@dataclass
class IOrder:
    email:  Annotated[str, obj.Unique]        # unique index "email"
    region: Annotated[str, obj.Index]         # standard index "region"
    tags:   Annotated[list[str], obj.Each]    # multi-value index "tags"
    status: str = "new"


def test_secondary_indexes(in_tmp):
    Order = IOrder
    with obj.Db("app.obj") as db:
        db.insert(Order(email="a@b.com", region="us", tags=["vip", "new"]))

        # exact lookup on a unique index (native value or pre-encoded bytes):
        order = db.find_unique(Order, "email", "a@b.com")

        # half-open range scan over a standard/composite index, in key order:
        found = []
        for oid, o in db.index_range(Order, "region", "us", "us"):  # noqa: B007 - the example as written
            found.append(o)
        assert order == Order(email="a@b.com", region="us", tags=["vip", "new"])
        assert found == [order]

        # A duplicate Unique key raises InvalidArgumentError and rolls back.
        with pytest.raises(obj.InvalidArgumentError):
            db.insert(Order(email="a@b.com", region="eu", tags=[]))
        assert db.count(Order) == 1
        assert list(db.index_range(Order, "region", "eu", "eu")) == []
        # half-open: ["eu", "us") has the eu orders, not the us ones
        db.insert(Order(email="b@b.com", region="eu", tags=[]))
        assert [o.region for _, o in db.index_range(Order, "region", "eu", "us")] == ["eu"]
        # updating an indexed field moves its entry; deleting removes it
        oid = db.find_unique_with_id(Order, "email", "b@b.com")[0]
        db.update(Order, oid, lambda o: setattr(o, "region", "apac"))
        assert [o.email for _, o in db.index_range(Order, "region", "apac", "apac")] == ["b@b.com"]
        db.delete(Order, oid)
        assert list(db.index_range(Order, "region", "apac", "apac")) == []
        # multi-value and composite indexes
        assert [o.email for _, o in db.query(Order).index_range("tags", "vip", "vip").fetch()] == ["a@b.com"]
        assert len(db.query(Order).index_range("by_region_status", ("us", "new"), ("us", "new")).fetch()) == 1


def test_schema_conflict_in_one_db(in_tmp):
    with obj.Db("app.obj") as db:
        db.insert(Order(customer_id=1, total=1.0, status="x"))
        with pytest.raises(obj.InvalidArgumentError, match="another shape"):
            db.insert(IOrder(email="x", region="y", tags=[]))


@obj.document(collection="orders", version=1,
              indexes=[obj.Composite(("region", "status"), name="by_region_status")])
@dataclass
class QOrder:
    email: Annotated[str, obj.Unique]
    region: Annotated[str, obj.Index]
    tags: Annotated[list[str], obj.Each]
    status: str = "new"
    total: float = 0.0


def test_querying(in_tmp):
    Order = QOrder
    with obj.Db("app.obj") as db:
        for i in range(30):
            db.insert(Order(email=f"{i}@x", region=["us", "eu"][i % 2], tags=[],
                            status=["shipped", "new"][i % 3 == 0], total=float(i * 10)))
        # typed: returns Order instances
        top = (db.query(Order)
                 .filter(lambda o: o.status == "shipped")   # Python predicate, AND-combined
                 .sort_by(lambda o: o.total)                 # order-preserving key
                 .limit(10)
                 .fetch())                                   # -> list[tuple[int, Order]]

        # count() uses the engine's no-decode fast path when there is no filter:
        open_count = db.query(Order).filter(lambda o: o.total > 100).count()

        # scan a declared index slice, then compose:
        us = db.query(Order).index_range("region", "us", "us").fetch()

        assert [o.total for _, o in top] == sorted(o.total for _, o in db.all(Order) if o.status == "shipped")[:10]
        assert all(isinstance(o, Order) for _, o in top)
        assert open_count == sum(1 for i in range(30) if i * 10 > 100)
        assert sorted(o.email for _, o in us) == sorted(f"{i}@x" for i in range(0, 30, 2))

        # each builder call returns a fresh Query
        q = db.query(Order)
        q2 = q.limit(1)
        assert len(q.fetch()) == 30 and len(q2.fetch()) == 1

        # bounded sort buffer
        assert obj.MAX_SORT_BUFFER >= 1000
        with pytest.raises(obj.InvalidArgumentError):
            db.query(Order).sort_by(lambda o: o.total).sort_buffer_limit(5).fetch()
        with pytest.raises(obj.InvalidArgumentError):
            db.query(Order).sort_by("total").sort_buffer_limit(5).fetch()


def test_typed_collection_handles(in_tmp):
    Order = QOrder
    with obj.Db("app.obj") as db:
        with db.transaction() as tx:
            orders = tx.collection(Order)
            oid = orders.insert(Order(email="c@d.com", region="eu", tags=[]))
            assert orders.get(oid).region == "eu"
            assert orders.count_all() == 1       # reflects this txn's own uncommitted writes


def test_multi_file_attach(in_tmp):
    with obj.Db("archive.obj") as arch:
        arch.insert("orders", {"n": 1})
        arch.insert("orders", {"n": 2})

    @obj.document(collection="archive.orders", version=1)
    @dataclass
    class ArchivedOrder:
        n: int

    with obj.Db("app.obj") as db:
        db.attach("archive.obj", "archive")
        # reads route to the attached file; declare a class with the
        # namespaced collection name (matching the archive's shape) to decode:
        archived = list(db.all("archive.orders"))    # or db.get / db.query
        assert [d for _, d in archived] == [ArchivedOrder(1), ArchivedOrder(2)]
        assert db.get("archive.orders", archived[0][0]) == ArchivedOrder(1)
        assert db.query("archive.orders").filter(obj.field("n") > 1).count() == 1
        with pytest.raises(obj.InvalidArgumentError):
            db.insert("archive.orders", {"n": 3})
        db.detach("archive")
        with pytest.raises(obj.NotFoundError):
            db.detach("archive")


def test_attach_with_a_namespaced_class(in_tmp):
    @obj.document(collection="archive.orders", version=1)
    @dataclass
    class Archived:
        n: int

    with obj.Db("archive.obj") as arch:
        arch.insert("orders", {"n": 7})
    with obj.Db("app.obj") as db:
        db.attach("archive.obj", "archive")
        assert [o for _, o in db.all(Archived)] == [Archived(n=7)]
        with pytest.raises(obj.InvalidArgumentError):
            db.insert(Archived(n=8))


@obj.document(collection="orders", version=1)
@dataclass
class AOrder:
    email: Annotated[str, obj.Unique]
    region: Annotated[str, obj.Index]
    tags: list


def test_async(in_tmp):
    Order = AOrder
    seen = {}

    async def main():
        adb = await obj.AsyncDb.open("app.obj")
        oid = await adb.insert(Order(email="e@f.com", region="us", tags=[]))
        order = await adb.get(Order, oid)
        seen["get"] = order
        seen["all"] = []
        async for oid, o in adb.all(Order):  # noqa: B007 - the example as written
            seen["all"].append(o)
        results = await adb.query(Order).filter(lambda o: o.region == "us").fetch()
        seen["q"] = results
        async with adb.transaction() as tx:        # commits on clean exit
            await tx.insert(Order(email="g@h.com", region="eu", tags=[]))
        seen["count"] = await adb.count(Order)
        await adb.close()

    asyncio.run(main())
    assert seen["get"] == Order(email="e@f.com", region="us", tags=[])
    assert seen["all"] == [seen["get"]]
    assert [o for _, o in seen["q"]] == [seen["get"]]
    assert seen["count"] == 2


def test_diagnostics(in_tmp):
    with obj.Db("app.obj") as db:
        db.insert(IOrder(email="a", region="us", tags=["x"]))
        stat = db.stat()
        lines = []
        for cs in stat.collections:
            lines.append((cs.name, cs.doc_count, cs.file_size_bytes))
            for idx in cs.indexes:                 # secondary-index descriptors
                lines.append((idx.name, idx.kind, idx.key_paths, idx.status))
        assert ("orders", 1) == lines[0][:2]
        assert ("email", "unique", ["email"], "ready") in lines
        assert ("tags", "multi", ["tags"], "ready") in lines
        assert ("by_region_status", "standard", ["region", "status"], "ready") in lines

        # low-level, type-erased dump of a collection's primary B-tree:
        recs = list(db.dump_raw("orders", max_records=1000))
        rec = recs[0]
        # bare attribute reads, as the example has them (hence the noqa: B018)
        rec.id              # document id  # noqa: B018
        rec.header          # DocumentHeader (collection_id, type_version, ...)  # noqa: B018
        rec.payload         # raw payload bytes  # noqa: B018
        assert rec.header.type_version == 1 and b"a" in rec.payload and rec.id >= 1


@obj.document(collection="notes", version=1)
@dataclass
class Note:
    text: str


def test_checkpointing(in_tmp):
    notes = [Note(text=f"n{i}") for i in range(5)]
    with obj.Db("app.obj") as db:
        for note in notes:
            db.insert(note)
        assert os.path.getsize("app.obj-wal") > 64
        r = db.checkpoint()   # fold the WAL into app.obj, reset app.obj-wal
        assert r.complete
        assert os.path.getsize("app.obj-wal") == 64  # "back to its 64-byte header"
        assert db.checkpoint().frames_backfilled == 0  # harmless no-op
        assert os.path.getsize("app.obj-wal") == 64
        db.insert(Note(text="after"))
        assert os.path.getsize("app.obj-wal") > 64
    with obj.Db("app.obj") as db:
        assert [n.text for _, n in db.all(Note)] == [n.text for n in notes] + ["after"]


def test_checkpoint_on_clean_close(in_tmp):
    note = Note(text="x")
    with obj.Db("app.obj") as db:
        db.insert(note)
    # block exited cleanly -> WAL folded into app.obj, app.obj-wal reset
    wal = "app.obj-wal"
    assert not os.path.exists(wal) or os.path.getsize(wal) <= 64
    with obj.Db("app.obj") as db:
        assert [n for _, n in db.all(Note)] == [note]


def test_exception_exit_propagates_unchanged(in_tmp):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with obj.Db("app.obj") as db:
            db.insert(Note(text="kept"))
            raise Boom()
    with obj.Db("app.obj") as db:
        assert db.count(Note) == 1     # committed data survives (it is in the WAL)


def test_checkpoint_on_read_only_raises(in_tmp):
    obj.Db("app.obj").close()
    with obj.Db("app.obj", read_only=True) as db:
        with pytest.raises(obj.ObjError):
            db.checkpoint()


def test_exception_hierarchy():
    for name in ["NotFoundError", "BusyError", "CorruptionError", "IntegrityError",
                 "InvalidArgumentError", "EncryptionError", "FeatureUnsupportedError"]:
        cls = getattr(obj, name)
        assert issubclass(cls, obj.ObjError)
    assert issubclass(obj.ObjError, Exception)
    assert issubclass(obj.ConstraintError, obj.InvalidArgumentError)


def test_schema_registry_is_process_global_across_open_dbs(tmp_path):
    """Two open Dbs may not use two shapes for one (collection, version);
    registrations end when the Dbs close; a new version= is a new key."""

    @obj.document(collection="reg_orders", version=1)
    @dataclass
    class A:
        n: int

    @obj.document(collection="reg_orders", version=1)
    @dataclass
    class B:
        name: str

    @obj.document(collection="reg_orders", version=2)
    @dataclass
    class C:
        name: str

    @obj.document(collection="reg_orders", version=1)
    @dataclass
    class ASameShape:
        n: int

    with obj.Db(str(tmp_path / "one.obj")) as one, obj.Db(str(tmp_path / "two.obj")) as two:
        one.insert(A(n=1))
        for use in (lambda: two.insert(B(name="x")), lambda: two.get(B, 1), lambda: list(two.all(B)),
                    lambda: one.query(B).fetch()):
            with pytest.raises(obj.InvalidArgumentError, match=r"another open Db|this Db"):
                use()
        assert two.count("reg_orders") == 0  # nothing was written
        two.insert(C(name="x"))  # another version: another shape is fine
        two.insert(ASameShape(n=2))  # the same shape under another class name is fine
    # The conflict names the class an open Db registered, not the first
    # class of a Db closed since.
    one, two = obj.Db(str(tmp_path / "one.obj")), obj.Db(str(tmp_path / "two.obj"))
    one.insert(A(n=3))
    two.insert(ASameShape(n=4))
    one.close()
    with pytest.raises(obj.InvalidArgumentError, match=r"registered by \S*ASameShape \(in this Db\)"):
        two.insert(B(name="z"))
    two.close()
    # Both closed: the next Db may use the other shape (sequential blocks, as in the reference).
    with obj.Db(str(tmp_path / "three.obj")) as three:
        three.insert(B(name="y"))
        assert [b.name for _, b in three.all(B)] == ["y"]

    # Thread-safe: racing first uses of two shapes register exactly one of them.
    dbs = [obj.Db(str(tmp_path / f"t{i}.obj")) for i in range(8)]
    errors: list = []

    def use(d, cls):
        try:
            d.get(cls, 1)
        except obj.InvalidArgumentError:
            errors.append(cls)

    import threading

    ts = [threading.Thread(target=use, args=(d, (A, B)[i % 2])) for i, d in enumerate(dbs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for d in dbs:
        d.close()
    assert len(errors) == 4 and len(set(errors)) == 1

    # A Db left open but unreachable (here in a reference cycle, so not yet
    # collected) does not keep its shape: the next use collects it.
    leaked = obj.Db(str(tmp_path / "leaked.obj"))
    leaked.insert(A(n=1))
    leaked.cycle = leaked
    del leaked
    with obj.Db(str(tmp_path / "after.obj")) as after:
        after.insert(B(name="z"))


def test_namespaced_reads_need_a_registered_class(tmp_path):
    arch = str(tmp_path / "vault.obj")
    with obj.Db(arch) as a:
        a.insert_many("items", [{"n": 1}, {"n": 2}])
        a.create_index("items", "n", "n", "unique")
        a.insert("blobs", b"\x00raw")
    with obj.Db(str(tmp_path / "app.obj")) as db:
        with pytest.raises(obj.NotFoundError, match="attach"):
            db.get("vault.items", 1)  # not attached: "namespace absent"
        with pytest.raises(obj.NotFoundError):
            list(db.all("vault.items"))
        db.attach(arch, "vault")
        for read in (lambda: db.get("vault.items", 1), lambda: list(db.all("vault.items")),
                     lambda: db.get_many("vault.items", [1]), lambda: db.query("vault.items").fetch(),
                     lambda: db.find_unique("vault.items", "n", 1), lambda: list(db.iter_all("vault.items"))):
            with pytest.raises(obj.InvalidArgumentError, match=r"collection='vault\.items'"):
                read()
        assert db.get("vault.blobs", 1) == b"\x00raw"  # raw bytes need no class
        assert list(db.all("vault.blobs")) == [(1, b"\x00raw")]

        @obj.document(collection="vault.items")
        @dataclass
        class Item:
            n: int

        assert db.get("vault.items", 1) == Item(1)
        assert list(db.all("vault.items")) == [(1, Item(1)), (2, Item(2))]
        assert db.get_many("vault.items", [2, 9]) == [Item(2), None]
        assert db.query("vault.items").filter(lambda o: o.n > 1).fetch() == [(2, Item(2))]
        assert db.find_unique("vault.items", "n", 2) == Item(2)
        with pytest.raises(obj.InvalidArgumentError, match="read-only"):
            db.insert("vault.items", {"n": 3})
        db.detach("vault")
        with pytest.raises(obj.NotFoundError):
            db.get(Item, 1)
        # A dotted name of this file's own collection is not a namespace.
        db.insert("local.events", {"k": 1})
        assert db.get("local.events", 1) == {"k": 1} and db.get("local.events", 2) is None
        # A namespace may not hide it (as the engine's own attach refuses).
        with pytest.raises(obj.InvalidArgumentError, match="would hide the local collection 'local.events'"):
            db.attach("vault.obj", "local")
        assert db.get("local.events", 1) == {"k": 1}


def test_index_range_equal_bounds_follow_the_engine_value_order(tmp_path):
    """Equal bounds mean equality under the engine's order, not Python's ==:
    True is not 1, 1 is 1.0, NaN is NaN; first() keeps limit(0)."""
    nan = float("nan")
    with obj.Db(str(tmp_path / "r.obj")) as db:
        db.insert_many("c", [{"a": True}, {"a": 0}, {"a": 0.5}, {"a": 1}, {"a": False}, {"a": nan}, {"a": 1.0}])
        db.create_index("c", "ia", "a")

        def r(lo, hi):
            return sorted(db.query("c").index_range("ia", lo, hi).ids())

        assert r(True, 1) == [1, 2, 3]  # half-open: true, 0, 0.5 (bools rank before numbers)
        assert r(1, True) == []
        assert r(False, 0) == [1, 5]
        assert r(1, 1.0) == [4, 7]  # one number: equality
        assert r(nan, nan) == db.query("c").filter(obj.field("a") == nan).ids() == [6]
        db.create_index("c", "iab", ["a", "b"])
        assert sorted(db.query("c").index_range("iab", (1, 2), (True, 2)).ids()) == []  # element by element
        assert db.query("c").limit(0).first() is None
        assert db.query("c").limit(0).filter(lambda d: True).first() is None
        assert db.query("c").first() == (1, {"a": True})

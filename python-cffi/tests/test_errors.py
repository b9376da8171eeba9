"""Each exception of the hierarchy, provoked for real."""

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj


@obj.document(collection="users")
@dataclass
class User:
    email: Annotated[str, obj.Unique]


def test_bad_arguments(db):
    with pytest.raises(obj.InvalidArgumentError):
        db.get("users", -1)
    with pytest.raises(obj.InvalidArgumentError):
        db.get("users", "1")
    with pytest.raises(obj.InvalidArgumentError):
        db.insert("users", 42)
    with pytest.raises(obj.InvalidArgumentError):
        db.query("users").filter(obj.field("a") > 1).limit(-1)
    with pytest.raises(obj.InvalidArgumentError):
        obj.Db(os.path.join(os.path.dirname(db.path), "x.obj"), sync="sometimes")
    with db.read_transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError):
            tx.kv("k").put(b"a", b"b")


def test_library_reports_invalid_argument_with_message(db):
    db.insert("raw", b"x")
    with pytest.raises(obj.InvalidArgumentError) as ei:
        db.query("raw").filter(obj.field("a") == 1).fetch()
    assert str(ei.value) and ei.value.status_name == "OBJ_INVALID_ARGUMENT"


def test_unique_violation_is_constraint_and_invalid_argument(db):
    db.insert(User(email="a"))
    with pytest.raises(obj.ConstraintError) as ei:
        db.insert(User(email="a"))
    assert isinstance(ei.value, obj.InvalidArgumentError)
    with db.transaction() as tx:  # the transaction stays usable after the violation
        with pytest.raises(obj.InvalidArgumentError):
            tx.insert(User(email="a"))
        tx.insert(User(email="b"))
    assert db.count(User) == 2


def test_closed_handle(path):
    db = obj.Db(path)
    db.close()
    db.close()  # idempotent
    with pytest.raises(obj.ClosedError, match="closed"):
        db.get("x", 1)
    with pytest.raises(obj.ObjError):
        db.transaction()


def test_finished_transaction(db):
    tx = db.transaction()
    tx.commit()
    with pytest.raises(obj.InvalidArgumentError, match="finished"):
        tx.insert("a", {"x": 1})


def test_not_found(db, tmp_path):
    with pytest.raises(obj.NotFoundError):
        db.update("users", 99, lambda d: d)
    with pytest.raises(obj.NotFoundError):
        obj.Db(str(tmp_path / "missing.obj"), create=False)
    with pytest.raises(obj.NotFoundError):
        db.detach("nope")


def test_update_raising_fn_rolls_back(db):
    oid = db.insert("c", {"n": 1})

    def bad(d):
        d["n"] = 2
        raise KeyError("nope")

    with pytest.raises(KeyError):
        db.update("c", oid, bad)
    assert db.get("c", oid) == {"n": 1}


def test_over_cap_sort(db):
    db.insert_many("c", [{"n": i} for i in range(20)])
    with pytest.raises(obj.InvalidArgumentError):
        db.query("c").sort_by("n").sort_buffer_limit(3).fetch()


def test_write_to_attached_namespace(db, tmp_path):
    other = str(tmp_path / "other.obj")
    with obj.Db(other) as o:
        o.insert("c", {"n": 1})
    db.attach(other, "arch")
    with pytest.raises(obj.InvalidArgumentError, match="read-only"):
        db.insert("arch.c", {"n": 2})
    with pytest.raises(obj.InvalidArgumentError):
        db.delete("arch.c", 1)


@obj.document(collection="s.notes", version=1)
@dataclass
class SecretNote:
    n: int


def test_export_never_overwrites_a_database_or_its_sidecar_files(db, tmp_path):
    db.insert("c", {"x": 1})
    with pytest.raises(obj.BusyError):
        db.export(db.path)
    for side in ("-wal", "-shm"):
        with pytest.raises(obj.InvalidArgumentError, match="belongs to the database"):
            db.export(db.path + side)
    assert [d for _, d in db.all("c")] == [{"x": 1}]


def test_export_an_attached_collection(db, tmp_path):
    other = str(tmp_path / "other.obj")
    with obj.Db(other) as o:
        o.insert_many("c", [{"n": i} for i in range(5)])
    db.attach(other, "arch")
    out = str(tmp_path / "arch.jsonl")
    assert db.export(out, "arch.c")["documents"] == 5
    with obj.Db(str(tmp_path / "copy.obj")) as copy:
        copy.import_(out)
        assert sorted(d["n"] for _, d in copy.all("c")) == list(range(5))


def test_attach_an_encrypted_file(db, tmp_path):
    secret = str(tmp_path / "secret.obj")
    with obj.Db(secret, passphrase="pw") as o:
        o.insert("notes", {"n": 1})
    with pytest.raises(obj.EncryptionError):
        db.attach(secret, "s")
    with pytest.raises(obj.EncryptionError):
        db.attach(secret, "s", passphrase="wrong")
    assert db.attached() == {}
    db.attach(secret, "s", passphrase="pw")
    assert [d for _, d in db.all(SecretNote)] == [SecretNote(n=1)]
    db.detach("s")


def test_corrupt_file(tmp_path):
    p = str(tmp_path / "c.obj")
    with obj.Db(p) as db:
        db.insert_many("c", [{"n": i, "pad": "x" * 200} for i in range(2000)])
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        for off in range(4096 * 2, size, 4096):
            f.seek(off + 100)
            f.write(b"\xde\xad\xbe\xef" * 16)
    with pytest.raises((obj.CorruptionError, obj.IntegrityError)):
        with obj.Db(p) as db:
            db.integrity_check()
            list(db.all("c"))


def test_not_an_obj_file(tmp_path):
    p = tmp_path / "junk.obj"
    p.write_bytes(b"this is not a database" * 500)
    with pytest.raises(obj.ObjError):
        obj.Db(str(p))


def test_second_process_holding_the_file_is_busy(path):
    obj.Db(path).close()
    code = textwrap.dedent(f"""
        import sys, time, obj
        db = obj.Db({path!r})
        tx = db.transaction()
        tx.insert("c", {{"n": 1}})
        print("ready", flush=True)
        sys.stdin.readline()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        with pytest.raises(obj.BusyError):
            db = obj.Db(path, busy_timeout_ms=200)
            try:
                with db.transaction() as tx:
                    tx.insert("c", {"n": 2})
            finally:
                db.close()
    finally:
        p.stdin.write("\n")
        p.stdin.flush()
        p.wait(timeout=30)


def test_exceptions_carry_status():
    e = obj.errors.error_for_status(4, "busy!")
    assert isinstance(e, obj.BusyError) and e.status == 4 and e.status_name == "OBJ_BUSY" and str(e) == "busy!"
    for st, cls in [(3, obj.CorruptionError), (5, obj.NotFoundError), (6, obj.IntegrityError),
                    (7, obj.FeatureUnsupportedError), (8, obj.EncryptionError), (9, obj.ClosedError)]:
        assert isinstance(obj.errors.error_for_status(st, "m"), cls)


def test_newer_format_is_feature_unsupported(path):
    import zlib
    with obj.Db(path) as db:
        db.insert("c", {"n": 1})
    with open(path, "r+b") as f:
        page = bytearray(f.read(4096))
    page[8:12] = (99).to_bytes(4, "little")  # the header's format version
    with open(path, "r+b") as f:
        f.write(page)
    # Page 0's checksum no longer matches: a damaged header, not a newer file.
    with pytest.raises(obj.CorruptionError, match="newer"):
        obj.Db(path)
    # A newer format keeps page 0's checksum trailer (CRC-32 of the page
    # number, then the page's content): sealed, the file reads as newer.
    page[-4:] = zlib.crc32(bytes(4) + bytes(page[:-4])).to_bytes(4, "little")
    with open(path, "r+b") as f:
        f.write(page)
    with pytest.raises(obj.FeatureUnsupportedError, match="newer"):
        obj.Db(path)


def test_writes_in_a_read_transaction_are_invalid_argument(db):
    oid = db.insert(User(email="a"))
    with db.read_transaction() as tx:
        for write in (lambda: tx.insert("c", {"a": 1}), lambda: tx.insert(User(email="b")),
                      lambda: tx.insert_many("c", [{"a": 1}]), lambda: tx.upsert("c", 1, {"a": 1}),
                      lambda: tx.replace(User, oid, User(email="c")), lambda: tx.update(User, oid, lambda u: None),
                      lambda: tx.delete(User, oid), lambda: tx.create_collection("c"),
                      lambda: tx.drop_collection("users"), lambda: tx.create_index("users", "i", "email"),
                      lambda: tx.drop_index("users", "email")):
            with pytest.raises(obj.InvalidArgumentError, match="read transaction is read-only"):
                write()
        assert tx.get(User, oid) == User(email="a")  # the snapshot is still usable
    assert db.count(User) == 1 and db.collections() == ["users"]


def test_none_and_wrong_type_arguments_are_invalid_argument(db, tmp_path):
    db.insert(User(email="a"))
    for call, name in [
        (lambda: db.backup(None), "backup path"), (lambda: db.export(None), "export path"),
        (lambda: db.import_(None), "import path"), (lambda: db.compact_to(None), "compact_to path"),
        (lambda: obj.Db.restore(None, str(tmp_path / "x.obj")), "backup path"),
        (lambda: obj.Db.restore(db.path, None), "target path"),
        (lambda: db.export(str(tmp_path / "e.jsonl"), 5), "collection name"),
        (lambda: db.get_many(User, None), "ids"), (lambda: db.get_many("users", 5), "ids"),
        (lambda: db.find_unique_many(User, "email", None), "keys"),
        (lambda: db.create_index("d", "x", None), "fields"),
        (lambda: obj.field("k").isin(None), "values"),
        (lambda: db.insert_many(5), "documents"), (lambda: db.insert_many("d", 5), "documents"),
    ]:
        with pytest.raises(obj.InvalidArgumentError, match=name):
            call()
    with db.transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError, match="documents"):
            tx.collection(User).insert_many(None)
        with pytest.raises(obj.InvalidArgumentError, match="query"):
            tx.explain(None)
    assert db.count(User) == 1 and db.collections() == ["users"]


def test_insert_many_names_the_bad_document_once(db):
    with pytest.raises(obj.InvalidArgumentError) as ei:
        db.insert_many("c", [{"a": 1}, 5, {"b": 2}])
    msg = str(ei.value)
    assert msg.startswith("document [1]: ") and "not int" in msg and "invalid argument" not in msg, msg
    assert db.count("c") == 0


def test_a_large_insert_many_is_all_or_nothing_too(db):
    # Past 1 MiB of JSON the engine stores documents while it still parses
    # the rest; a fault at the end must still leave none of them.
    docs = [{"email": f"u{i}@x", "note": "n" * 300} for i in range(6000)]
    with db.transaction() as tx:
        tx.create_index("big", "email", "email", kind="unique")
    for tail, error, words in [
        ([{"email": "u7@x"}], obj.ConstraintError, "unique"),
        ([5, {"email": "z@x"}], obj.InvalidArgumentError, "document [6000]: "),
    ]:
        with pytest.raises(error) as ei:
            db.insert_many("big", docs + tail)
        assert words in str(ei.value)
        assert db.count("big") == 0
    assert db.insert_many("big", docs) == list(range(1, 6001))
    assert db.get("big", 6000) == docs[-1]
    assert db.find_unique("big", "email", "u5999@x") == docs[-1]
    assert db.integrity_check() is not None


@pytest.mark.parametrize("n", [3, 6000])
def test_a_refused_insert_many_leaves_no_new_collection(db, n):
    # A batch into a collection that does not exist yet creates it as it
    # stores; when the batch is refused, the collection goes too, and the
    # transaction's other writes stay.
    docs = [{"email": f"u{i}@x", "note": "n" * 300} for i in range(n)]
    with db.transaction() as tx:
        tx.insert("other", {"kept": True})
        with pytest.raises(obj.InvalidArgumentError, match=rf"document \[{n}\]: "):
            tx.insert_many("fresh", docs + [5, {"email": "z@x"}])
        assert "fresh" not in tx.collections()
    assert db.collections() == ["other"] and db.count("other") == 1
    assert db.insert_many("fresh", docs) == list(range(1, n + 1))
    assert db.get("fresh", n) == docs[-1] and db.collections() == ["fresh", "other"]
    assert db.integrity_check() is not None


@obj.document(collection="blobs")
@dataclass
class Blob:
    data: bytes


def test_typed_read_of_a_raw_collection_gives_python_advice(db):
    db.insert("blobs", b"\x00raw")
    for call in (lambda: db.get(Blob, 1), lambda: db.get_many(Blob, [1]), lambda: db.find_unique(Blob, "data", b""),
                 lambda: db.update(Blob, 1, lambda b: None)):
        with pytest.raises(obj.InvalidArgumentError) as ei:
            call()
        msg = str(ei.value)
        assert "obj_raw" not in msg and "db.get(\"blobs\", id)" in msg and "raw bytes" in msg, msg
    assert db.get("blobs", 1) == b"\x00raw"  # what the message says works
    assert list(db.iter_all("blobs")) == [(1, b"\x00raw")]


@obj.document(collection="users_r5", version=1)
@dataclass
class UniqueUser:
    email: Annotated[str, obj.Unique]


def test_a_collection_dropped_by_another_handle_comes_back_with_its_indexes(tmp_path):
    path = str(tmp_path / "shared.obj")
    with obj.Db(path) as app, obj.Db(path) as admin:
        app.insert(UniqueUser("a@x"))
        assert admin.drop_collection("users_r5")
        app.insert(UniqueUser("a@x"))
        with pytest.raises(obj.InvalidArgumentError):
            app.insert(UniqueUser("a@x"))
        assert app.find_unique(UniqueUser, "email", "a@x") is not None
        assert app.count(UniqueUser) == 1


@pytest.mark.parametrize("option, value", [
    ("cache_size", 2**70), ("cache_size", 2**64), ("page_size", 2**32), ("busy_timeout_ms", 2**64),
    ("wal_autocheckpoint", 2**100), ("busy_timeout_ms", -1), ("cache_size", True),
])
def test_int_options_out_of_their_c_range(tmp_path, option, value):
    p = str(tmp_path / "x.obj")
    with pytest.raises(obj.InvalidArgumentError, match=option):
        obj.Db(p, **{option: value})
    assert not os.path.exists(p)


def test_import_batch_size_out_of_range(db, tmp_path):
    db.insert("c", {"n": 1})
    exp = str(tmp_path / "e.jsonl")
    db.export(exp)
    for bad in (2**64, 2**70, -1):
        with pytest.raises(obj.InvalidArgumentError, match="batch_size"):
            db.import_(exp, batch_size=bad)


@obj.document(collection="orders_bound", version=1)
@dataclass
class BoundOrder:
    sku: str


async def test_a_bound_collection_refuses_another_classs_documents(db, path):
    # tx.collection(Cls) is scoped to Cls: a User written through the
    # BoundOrder handle must not land in "users".
    with db.transaction() as tx:
        orders = tx.collection(BoundOrder)
        with pytest.raises(obj.InvalidArgumentError, match="bound to BoundOrder"):
            orders.insert(User(email="bob@x"))
        with pytest.raises(obj.InvalidArgumentError, match="bound to BoundOrder"):
            orders.insert_many([User(email="eve@x")])
        with pytest.raises(obj.InvalidArgumentError, match="insert takes a document instance"):
            orders.insert(BoundOrder)
        with pytest.raises(obj.InvalidArgumentError, match="bound to BoundOrder"):
            orders.insert({"sku": "c"})
        assert orders.insert(BoundOrder("a")) == 1
        assert orders.insert_many([BoundOrder("b")]) == [2]
    assert db.count(User) == 0 and db.count(BoundOrder) == 2
    db.close()
    async with obj.AsyncDb(path) as adb:
        async with adb.transaction() as tx:
            with pytest.raises(obj.InvalidArgumentError, match="bound to BoundOrder"):
                await tx.collection(BoundOrder).insert(User(email="cy@x"))
        assert await adb.count(User) == 0


@dataclass
class _Addr:
    city: str


def test_a_composite_index_naming_a_missing_field_is_refused(db):
    # A typo would give an index that stays empty and answers nothing.
    @obj.document(collection="typo", version=1, indexes=[obj.Composite(("regoin", "status"), name="rs")])
    @dataclass
    class Typo:
        region: str
        status: str

    @obj.document(collection="nested_typo", version=1, indexes=[obj.Composite(("addr.town", "status"))])
    @dataclass
    class NestedTypo:
        addr: _Addr
        status: str

    @obj.document(collection="open_ended", version=1,
                  indexes=[obj.Composite(("addr.city", "meta.any.key", "status"))])
    @dataclass
    class OpenEnded:
        addr: _Addr
        meta: dict
        status: str

    with pytest.raises(obj.InvalidArgumentError, match="has no field 'regoin'"):
        db.insert(Typo("us", "new"))
    with pytest.raises(obj.InvalidArgumentError, match="_Addr has no field 'town'"):
        db.insert(NestedTypo(_Addr("x"), "new"))
    # Below a dict field any key may follow.
    db.insert(OpenEnded(_Addr("x"), {"any": {"key": 1}}, "new"))
    assert [i for i, _ in db.index_range(OpenEnded, "addr.city_meta.any.key_status", ("x", 1, "new"),
                                         ("x", 1, "new"))] == [1]
    assert db.collections() == ["open_ended"]


def test_bad_composite_indexes_are_refused_where_they_can_be(db):
    # Not an obj.Composite, or one with no field: at declaration.
    with pytest.raises(obj.InvalidArgumentError, match="obj.Composite"):

        @obj.document(collection="bad_idx", indexes=[("a", "b")])
        @dataclass
        class A:
            a: int
            b: int

    with pytest.raises(obj.InvalidArgumentError, match="at least one field"):

        @obj.document(collection="bad_idx", indexes=[obj.Composite([])])
        @dataclass
        class B:
            a: int

    # A field the class lacks: at first use, once the field types resolve
    # (they may be forward references until then).
    @obj.document(collection="bad_idx", indexes=[obj.Composite(["a", "nope"])])
    @dataclass
    class C:
        a: int

    with pytest.raises(obj.InvalidArgumentError, match="no field 'nope'"):
        db.insert(C(1))
    assert "bad_idx" not in db.collections()

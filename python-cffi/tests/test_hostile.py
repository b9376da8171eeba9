"""Hostile input through the ``obj`` package: wrong types, lone surrogates,
oversized keys and documents, malformed filters, deeply nested values,
files that are not (or no longer) a database, a WAL of another database,
closed databases and finished transactions. Each case asserts the specific
exception class of the hierarchy and, afterwards, that the database still
holds its earlier data and passes ``integrity_check``."""

import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import obj

# The longest key for 4096-byte pages (engine/src/btree/tree.rs, max_key_len).
MAX_KEY = 1341
DEEP = 100_000


def _sample(path):
    with obj.Db(path) as db:
        db.create_index("users", "by_email", ["email"], kind="unique")
        db.insert_many("users", [{"email": f"u{i}@x", "n": i, "pad": "p" * 300} for i in range(30)])
        db.kv("meta").put(b"k", b"v")


def _assert_intact(path, extra_kv=0):
    with obj.Db(path) as db:
        db.integrity_check()
        assert db.count("users") == 30
        for i in range(0, 30, 7):
            expected = (i + 1, {"email": f"u{i}@x", "n": i, "pad": "p" * 300})
            assert db.find_unique_with_id("users", "by_email", f"u{i}@x") == expected
        ns = db.kv("meta")
        assert ns.get(b"k") == b"v"
        assert len(ns.keys()) == 1 + extra_kv


@pytest.fixture
def sample(path):
    _sample(path)
    yield path
    _assert_intact(path)


def _nested_list(depth):
    v = None
    for _ in range(depth):
        v = [v]
    return v


def _nested_dict(depth):
    v = 1
    for _ in range(depth):
        v = {"a": v}
    return v


def _drop_deep(v):
    """Frees a deep value without recursing once per level."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, list):
            stack.extend(x)
            x.clear()
        elif isinstance(x, dict):
            stack.extend(x.values())
            x.clear()


# --------------------------------------------------------------------------
# wrong types


@pytest.mark.parametrize("bad_id", ["1", 1.0, None, b"1", -1, 2**64, [1]])
def test_bad_document_ids(sample, bad_id):
    with obj.Db(sample) as db:
        for call in (lambda: db.get("users", bad_id), lambda: db.delete("users", bad_id),
                     lambda: db.upsert("users", bad_id, {"email": "z@x"})):
            with pytest.raises(obj.InvalidArgumentError):
                call()


@pytest.mark.parametrize("bad_name", [1, None, b"users", 3.5, ("users",), ""])
def test_bad_collection_names(sample, bad_name):
    with obj.Db(sample) as db:
        with pytest.raises(obj.InvalidArgumentError):
            db.insert(bad_name, {"a": 1})
        with pytest.raises(obj.InvalidArgumentError):
            db.get(bad_name, 1)
        with pytest.raises(obj.InvalidArgumentError):
            db.count(bad_name)


def test_bad_names_and_payloads(sample):
    with obj.Db(sample) as db:
        for name in ["a/b", "n" * 201, "nul\0inside"]:
            with pytest.raises(obj.InvalidArgumentError):
                db.insert(name, {"a": 1})
        for bad in [42, 4.5, None, "a document", [1, 2], object()]:
            with pytest.raises(obj.InvalidArgumentError):
                db.insert("users", bad)
        # Raw bytes into a document collection, a dict into a raw one.
        with pytest.raises(obj.InvalidArgumentError):
            db.insert("users", b"raw bytes")
        db.insert("blobs", b"x")
        with pytest.raises(obj.InvalidArgumentError):
            db.insert("blobs", {"a": 1})
        db.drop_collection("blobs")
        # Values the engine cannot store.
        for bad in [{"a": object()}, {"a": 2**64}, {"a": -(2**63) - 1}, {("t", 1): 1}, {"a": {1j}}]:
            with pytest.raises(obj.InvalidArgumentError):
                db.insert("users", bad)
        assert db.count("users") == 30


def test_bad_kv_arguments(sample):
    with obj.Db(sample) as db:
        for bad_ns in ["", 7, None]:
            with pytest.raises(obj.InvalidArgumentError):
                db.kv(bad_ns)
        ns = db.kv("meta")
        for bad in [1, None, 2.5, ["k"], object()]:
            with pytest.raises(obj.InvalidArgumentError):
                ns.put(bad, b"v")
            with pytest.raises(obj.InvalidArgumentError):
                ns.put(b"k2", bad)
            with pytest.raises(obj.InvalidArgumentError):
                ns.get(bad)


def test_bad_query_arguments(sample):
    with obj.Db(sample) as db:
        q = db.query("users")
        for bad in [None, "", "a..b", ".a", 7]:
            with pytest.raises(obj.InvalidArgumentError):
                obj.field(bad)
        for bad in [-1, 1.5, "3", True]:
            with pytest.raises(obj.InvalidArgumentError):
                q.limit(bad)
            with pytest.raises(obj.InvalidArgumentError):
                q.offset(bad)
        with pytest.raises(obj.InvalidArgumentError):
            q.filter(42)
        with pytest.raises(obj.InvalidArgumentError):
            q.sort_by(3.5)
        with pytest.raises(obj.InvalidArgumentError):
            obj.field("email").startswith(5)
        # An operand that cannot be encoded.
        with pytest.raises(obj.InvalidArgumentError):
            q.filter(obj.field("n") > object()).fetch()
        with pytest.raises(obj.InvalidArgumentError):
            q.filter(obj.field("n") == 2**70).fetch()
        # A missing index is NotFoundError, on a query and on a unique lookup.
        with pytest.raises(obj.NotFoundError):
            db.query("users").index_range("nope", 1, 2).fetch()
        with pytest.raises(obj.NotFoundError):
            db.find_unique("users", "nope", 1)
        with pytest.raises(obj.InvalidArgumentError):
            db.find_unique("users", "by_email", "a", "b")
        assert [i for i, _ in q.filter(obj.field("n") < 3).fetch()] == [1, 2, 3]


def test_bad_open_options(tmp_path):
    p = str(tmp_path / "o.obj")
    for kw in [{"sync": "sometimes"}, {"page_size": 5000}, {"page_size": -1}, {"cache_size": "big"},
               {"busy_timeout_ms": -5}, {"key": b"short"}, {"key": "a str key"}, {"key": b"k" * 32, "passphrase": "p"}]:
        with pytest.raises(obj.InvalidArgumentError):
            obj.Db(p, **kw)
    for bad_path in [None, 42, ["a.obj"], str(tmp_path / "bad-\udcff.obj")]:
        with pytest.raises(obj.InvalidArgumentError):
            obj.Db(bad_path)
    assert not os.path.exists(p) or os.path.getsize(p) == 0


# --------------------------------------------------------------------------
# lone surrogates (not encodable as UTF-8)


@pytest.mark.parametrize("backend_name", ["orjson", "stdlib"])
def test_lone_surrogates(sample, backend_name):
    from obj import _codec

    if backend_name == "orjson":
        pytest.importorskip("orjson")
    old = _codec.backend()
    _codec.use_backend(backend_name)
    try:
        with obj.Db(sample) as db:
            for bad in ["\ud800", "a\udfffb", "\udc80" * 3]:
                with pytest.raises(obj.InvalidArgumentError):
                    db.insert("users", {"email": bad})
                with pytest.raises(obj.InvalidArgumentError):
                    db.insert("users", {bad: 1})
                with pytest.raises(obj.InvalidArgumentError):
                    db.insert("users", {"deep": [{"x": [bad]}]})
                with pytest.raises(obj.InvalidArgumentError):
                    db.insert(bad, {"a": 1})
                with pytest.raises(obj.InvalidArgumentError):
                    db.get(bad, 1)
                with pytest.raises(obj.InvalidArgumentError):
                    db.kv(bad).put(b"k", b"v")
                with pytest.raises(obj.InvalidArgumentError):
                    db.kv("meta").put(bad, b"v")
                with pytest.raises(obj.InvalidArgumentError):
                    db.query("users").filter(obj.field("email") == bad).fetch()
                with pytest.raises(obj.InvalidArgumentError):
                    db.find_unique("users", "by_email", bad)
                with pytest.raises(obj.InvalidArgumentError):
                    db.create_index("users", bad, ["email"])
            # Inside one transaction: refused calls leave it usable.
            with db.transaction() as tx:
                with pytest.raises(obj.InvalidArgumentError):
                    tx.insert("users", {"email": "\ud800"})
                tx.kv("meta").put(b"after", b"ok")
            assert db.kv("meta").get(b"after") == b"ok"
            db.kv("meta").delete(b"after")
    finally:
        _codec.use_backend(old)


# --------------------------------------------------------------------------
# oversized keys and documents


def test_oversized_keys(sample):
    with obj.Db(sample) as db:
        ns = db.kv("big")
        ns.put(b"k" * MAX_KEY, b"edge")
        for n in (MAX_KEY + 1, 4096, 1 << 20):
            with pytest.raises(obj.InvalidArgumentError, match="longest key"):
                ns.put(b"k" * n, b"v")
        assert ns.get(b"k" * MAX_KEY) == b"edge"
        # A value too long for the unique index: refused, no trace.
        with pytest.raises(obj.InvalidArgumentError, match="too long for index"):
            db.insert("users", {"email": "e" * 200_000})
        with pytest.raises(obj.InvalidArgumentError, match="too long for index"):
            db.upsert("users", 5, {"email": "e" * 200_000})
        with pytest.raises(obj.InvalidArgumentError, match="too long for index"):
            db.insert_many("users", [{"email": "fine@x"}, {"email": "e" * 200_000}])
        assert db.count("users") == 30
        assert db.find_unique("users", "by_email", "fine@x") is None
        assert db.get("users", 5)["email"] == "u4@x"
        # Large documents and values (overflow pages) are fine.
        oid = db.insert("big_docs", {"notes": "n" * 5_000_000, "blob": b"\0" * 1_000_000})
        assert len(db.get("big_docs", oid)["notes"]) == 5_000_000
        ns.put(b"huge", b"\1" * 8_000_000)
        assert len(ns.get(b"huge")) == 8_000_000
        db.drop_collection("big_docs")
        with db.transaction() as tx:
            tx.kv("big").put(b"x", b"y")
        assert db.kv("big").get(b"x") == b"y"
        assert db.kv("big").drop()


# --------------------------------------------------------------------------
# deep nesting


def test_deeply_nested_values(sample):
    with obj.Db(sample) as db:
        for depth in (129, 1000, DEEP):
            for deep in (_nested_list(depth), _nested_dict(depth)):
                doc = {"deep": deep}
                with pytest.raises(obj.InvalidArgumentError, match="(deeper|nests) .*128"):
                    db.insert("users", doc)
                with pytest.raises(obj.InvalidArgumentError, match="(deeper|nests) .*128"):
                    db.upsert("users", 3, doc)
                with pytest.raises(obj.InvalidArgumentError, match="(deeper|nests) .*128"):
                    db.insert_many("users", [{"email": "ok@x"}, doc])
                with pytest.raises(obj.InvalidArgumentError, match="(deeper|nests) .*128"):
                    db.query("users").filter(obj.field("deep") == deep).fetch()
                with pytest.raises(obj.InvalidArgumentError, match="(deeper|nests) .*128"):
                    db.find_unique("users", "by_email", deep)
                _drop_deep(doc)
        # A self-referencing value.
        loop = []
        loop.append(loop)
        with pytest.raises(obj.InvalidArgumentError):
            db.insert("users", {"loop": loop})
        loop.clear()
        # The edge: the document map plus 127 levels is stored and read back.
        edge = {"a": _nested_list(127)}
        oid = db.insert("edge", edge)
        assert db.get("edge", oid) == edge
        db.drop_collection("edge")
        assert db.count("users") == 30
        assert db.find_unique("users", "by_email", "ok@x") is None


def test_deep_python_filters(sample):
    with obj.Db(sample) as db:
        # A long flat conjunction is fine (it is one level; `&` copies its
        # list, so building it is quadratic: 10,000 terms).
        expr = obj.field("n") > 0
        for _ in range(10_000):
            expr = expr & (obj.field("n") > 0)
        assert len(db.query("users").filter(expr).fetch()) == 29
        # Deep negations and alternations are refused, whether Python's
        # encoder or the engine's parser meets the depth first.
        for depth in (200, 5000, DEEP):
            neg = obj.field("n") > 0
            alt = obj.field("n") > 0
            for _ in range(depth):
                neg = ~neg
                alt = ~(alt | (obj.field("n") < 0))
            for flt in (neg, alt):
                with pytest.raises(obj.InvalidArgumentError, match="deeper than 128"):
                    db.query("users").filter(flt).fetch()
                with pytest.raises(obj.InvalidArgumentError, match="deeper than 128"):
                    db.query("users").filter(flt).count()


# --------------------------------------------------------------------------
# files that are not (or no longer) a database


@pytest.mark.parametrize("junk", [b"x" * 10_000, b"\0" * 8192, b"SQLite format 3\0" * 300, b"obj", b"\xff" * 4097])
def test_not_a_database(tmp_path, junk):
    p = tmp_path / "junk.obj"
    p.write_bytes(junk)
    with pytest.raises((obj.InvalidArgumentError, obj.CorruptionError)) as ei:
        obj.Db(str(p))
    # NotADatabaseError is both of them (review 16).
    assert type(ei.value) in (obj.InvalidArgumentError, obj.CorruptionError, obj.NotADatabaseError)
    assert p.read_bytes() == junk


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(min_size=1, max_size=20_000))
def test_random_bytes_are_not_a_database(tmp_path, junk):
    p = tmp_path / "random.obj"
    p.write_bytes(junk)
    try:
        with pytest.raises((obj.InvalidArgumentError, obj.CorruptionError, obj.FeatureUnsupportedError)):
            obj.Db(str(p))
        assert p.read_bytes() == junk
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(str(p) + suffix):
                os.remove(str(p) + suffix)


def test_truncated_file(sample, tmp_path):
    good = open(sample, "rb").read()
    assert len(good) >= 3 * 4096
    cut_path = str(tmp_path / "cut.obj")
    for n in (1, 100, 4095, 4096, 4097, len(good) // 2, len(good) - 4096, len(good) - 1):
        with open(cut_path, "wb") as f:
            f.write(good[:n])
        with pytest.raises((obj.CorruptionError, obj.InvalidArgumentError)):
            obj.Db(cut_path)
        assert open(cut_path, "rb").read() == good[:n]
        # Neither restore nor attach takes it.
        with pytest.raises((obj.CorruptionError, obj.InvalidArgumentError)):
            obj.Db.restore(cut_path, sample, overwrite=True)
        with obj.Db(sample) as db:
            with pytest.raises((obj.CorruptionError, obj.InvalidArgumentError)):
                db.attach(cut_path, "cut")
    assert open(sample, "rb").read() == good


def test_wal_of_another_database(sample, tmp_path):
    other = str(tmp_path / "other.obj")
    a = obj.Db(other, wal_autocheckpoint=0)
    a.insert("users", {"email": "intruder@x"})
    foreign = open(other + "-wal", "rb").read()
    a.close()
    main = open(sample, "rb").read()
    with open(sample + "-wal", "wb") as f:
        f.write(foreign)
    with pytest.raises(obj.CorruptionError, match="another database"):
        obj.Db(sample)
    assert open(sample, "rb").read() == main
    assert open(sample + "-wal", "rb").read() == foreign
    os.remove(sample + "-wal")


def test_truncated_wal_recovers_a_prefix(sample, tmp_path):
    # Ten commits left in the WAL by a process that died (copied while open).
    db = obj.Db(sample, wal_autocheckpoint=0)
    for i in range(10):
        db.kv("later").put(b"%02d" % i, b"v" * 3000)
    main = open(sample, "rb").read()
    wal = open(sample + "-wal", "rb").read()
    db.close()
    copy = str(tmp_path / "copy.obj")
    last = 0
    for n in list(range(0, len(wal), 4999)) + [len(wal)]:
        for suffix in ("-wal", "-shm"):
            if os.path.exists(copy + suffix):
                os.remove(copy + suffix)
        with open(copy, "wb") as f:
            f.write(main)
        with open(copy + "-wal", "wb") as f:
            f.write(wal[:n])
        with obj.Db(copy) as c:
            c.integrity_check()
            got = c.kv("later").keys()
            assert got == [b"%02d" % i for i in range(len(got))], f"WAL cut at {n}: not a prefix"
            assert len(got) >= last
            last = len(got)
            assert c.count("users") == 30
    assert last == 10
    with obj.Db(sample) as db:
        with db.transaction() as tx:
            for i in range(10):
                tx.kv("later").delete(b"%02d" % i)


# --------------------------------------------------------------------------
# closed databases and finished transactions


def test_closed_db(sample):
    db = obj.Db(sample)
    db.close()
    db.close()
    for call in (lambda: db.get("users", 1), lambda: db.insert("users", {"email": "z@x"}), lambda: db.count("users"),
                 db.transaction, db.read_transaction, db.checkpoint, db.stat, db.integrity_check,
                 lambda: db.kv("meta").get(b"k"), lambda: db.query("users").fetch(), db.collections,
                 lambda: db.backup(sample + ".bak"), db.compact):
        with pytest.raises(obj.ClosedError):
            call()
    assert not os.path.exists(sample + ".bak")


def test_transaction_begun_before_close_keeps_its_snapshot(sample):
    db = obj.Db(sample)
    tx = db.read_transaction()
    db.close()
    assert tx.count("users") == 30
    tx.close()


def test_finished_transactions(sample):
    with obj.Db(sample) as db:
        tx = db.transaction()
        tx.insert("users", {"email": "committed@x"})
        tx.commit()
        for call in (lambda: tx.insert("users", {"email": "late@x"}), lambda: tx.get("users", 1), tx.commit,
                     tx.rollback, lambda: tx.kv("meta").put(b"k", b"w"), lambda: tx.count("users"),
                     lambda: tx.query("users").fetch(), lambda: tx.delete("users", 1)):
            with pytest.raises(obj.InvalidArgumentError, match="finished"):
                call()
        tx.close()  # closing a finished transaction is harmless

        tx = db.transaction()
        tx.insert("users", {"email": "rolled-back@x"})
        tx.rollback()
        with pytest.raises(obj.InvalidArgumentError, match="finished"):
            tx.insert("users", {"email": "late@x"})

        # After its `with` block, committed or rolled back by an exception.
        with db.transaction() as tx:
            tx.kv("meta").put(b"in-block", b"1")
        with pytest.raises(obj.InvalidArgumentError, match="finished"):
            tx.kv("meta").put(b"k", b"w")
        with pytest.raises(KeyError):
            with db.transaction() as tx2:
                tx2.insert("users", {"email": "never@x"})
                raise KeyError("boom")
        with pytest.raises(obj.InvalidArgumentError, match="finished"):
            tx2.insert("users", {"email": "late@x"})
        with db.read_transaction() as r:
            assert r.count("users") == 31
        with pytest.raises(obj.InvalidArgumentError, match="finished"):
            r.get("users", 1)

        # A cursor (lazy iterator) outliving its transaction.
        r = db.read_transaction()
        it = iter(r.all("users"))
        next(it)
        r.close()
        with pytest.raises(obj.InvalidArgumentError):
            list(it)

        # A write through a read transaction.
        with db.read_transaction() as r:
            with pytest.raises(obj.InvalidArgumentError):
                r.kv("meta").put(b"k", b"w")

        assert db.find_unique("users", "by_email", "never@x") is None
        assert db.find_unique("users", "by_email", "rolled-back@x") is None
        with db.transaction() as tx:
            tx.delete("users", db.find_unique_with_id("users", "by_email", "committed@x")[0])
            tx.kv("meta").delete(b"in-block")


def test_no_recursion_error_escapes(sample):
    """A value nested deeper than Python's recursion limit gives the
    package's error, not RecursionError."""
    deep = _nested_list(sys.getrecursionlimit() * 3)
    with obj.Db(sample) as db:
        try:
            db.insert("users", {"deep": deep})
        except obj.InvalidArgumentError:
            pass
        except RecursionError:  # pragma: no cover - the failure this test looks for
            pytest.fail("RecursionError escaped from insert")
        else:  # pragma: no cover
            pytest.fail("a document nested deeper than 128 levels was stored")
    _drop_deep(deep)


def test_backup_of_sample_is_intact(sample, tmp_path):
    """The sample itself survives a copy: the baseline the other tests rely on."""
    copy = str(tmp_path / "copy.obj")
    shutil.copy(sample, copy)
    _assert_intact(copy)


def test_nested_write_on_the_same_thread_is_busy_at_once(path):
    @obj.document(collection="nested_docs")
    @dataclass
    class Doc:
        n: int

    with obj.Db(path, busy_timeout_ms=5000) as db:
        db.create_index("users", "by_email", ["email"], kind="unique")
        db.insert(Doc(0))
        db.insert("users", {"email": "first@x"})  # both collections known: one-call write paths
        with db.transaction() as tx:
            tx.insert("users", {"email": "outer@x"})
            for nested in (db.transaction, lambda: db.insert("users", {"email": "inner@x"}),
                           lambda: db.insert(Doc(1)), lambda: db.upsert("users", 999, {"email": "u@x"}),
                           lambda: db.update("users", 1, lambda d: d), lambda: db.kv("meta").put(b"k", b"v")):
                t0 = time.monotonic()
                with pytest.raises(obj.BusyError, match="already holds"):
                    nested()
                assert time.monotonic() - t0 < 1.0
            tx.insert("users", {"email": "outer2@x"})  # the outer transaction goes on
        assert db.find_unique("users", "by_email", "outer2@x") is not None
        assert db.find_unique("users", "by_email", "inner@x") is None
        db.insert("users", {"email": "after@x"})  # finished: writes work again
        # Another thread still waits for the writer (the busy timeout), then gets it.
        got = []
        with db.transaction() as tx:
            th = threading.Thread(target=lambda: got.append(db.insert("users", {"email": "t@x"})))
            th.start()
            time.sleep(0.2)
            assert not got
        th.join()
        assert got


def test_finished_transaction_cannot_be_entered_again(path):
    with obj.Db(path) as db:
        with db.transaction() as tx:
            tx.insert("users", {"email": "once@x"})
        with pytest.raises(obj.InvalidArgumentError, match="finished"):
            with tx:
                pass
        with db.read_transaction() as r:
            pass
        with pytest.raises(obj.InvalidArgumentError, match="finished"):
            with r:
                pass


def test_dump_raw_arguments(path):
    with obj.Db(path) as db:
        db.insert_many("c", [{"n": i} for i in range(3)])
        for bad in (123, None, b"c"):
            with pytest.raises(obj.InvalidArgumentError, match="collection name"):
                db.dump_raw(bad)  # at the call, not at the first next()
        for bad in (-1, True, 1.5, "2"):
            with pytest.raises(obj.InvalidArgumentError, match="max_records"):
                db.dump_raw("c", max_records=bad)
        assert [r.id for r in db.dump_raw("c", max_records=0)] == []
        assert [r.id for r in db.dump_raw("c", max_records=2)] == [1, 2]
        assert [r.id for r in db.dump_raw("c")] == [1, 2, 3]


def test_dump_raw_payload_follows_the_record_header(path):
    with obj.Db(path) as db:
        db.insert("blobs", b"\x01\x02")
        db.insert("blobs", b"")
        db.insert("docs", {"a": 1})
        assert [(r.payload, r.header.raw) for r in db.dump_raw("blobs")] == [(b"\x01\x02", True), (b"", True)]
        db.insert(Versioned300(a=1))
        (plain,) = db.dump_raw("docs")
        (versioned,) = db.dump_raw("versioned300")
        assert not plain.header.raw and plain.header.type_version == 0
        assert versioned.header.type_version == 300  # a two-byte varint in the header
        assert plain.payload == versioned.payload  # the same document, past headers of 3 and 4 bytes


@obj.document(collection="versioned300", version=300)
@dataclass
class Versioned300:
    a: int

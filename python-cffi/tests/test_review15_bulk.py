"""Review 15: ``insert_many`` of dicts whose JSON reaches 1 MiB goes to the
engine's two-thread path (documents encoded on a second thread while the
calling one stores them, commit ea26863). Results must match small batches
of the same documents, and every failure must leave nothing behind."""

import datetime as dt
import math
import threading

import pytest

import obj
from obj import _codec

BIG = 1 << 20  # the engine's PARALLEL_ENCODE_BYTES


def doc(i):
    """Nested dicts, unicode keys and strings, integers at the edges, floats;
    new keys keep coming, the indexed ``late.id`` only from document 5000."""
    d = {
        "email": f"e{i}",
        "n": [0, -1, -(2**63), 2**63 - 1, 2**63, 2**64 - 1, 1.5, -0.0, 1e300][i % 9],
        "s": f"caf\u00e9 \U0001f600 \"q\" \\ \n {i}",
        "ключ": {"é": [i, {"c": None, "t": True}]},
        "pad": "p" * (i % 200),
    }
    if i % 89 == 0:
        d[f"f{i}"] = {f"g{i}": i}
    if i >= 5000:
        d["late"] = {"id": f"L{i}", "x": i % 7}
    return d


def big_list(first, n):
    docs = [doc(i) for i in range(first, first + n)]
    assert len(_codec.dumps(docs)) >= BIG
    return docs


def indexed(db, *colls):
    with db.transaction() as tx:
        for c in colls:
            tx.create_index(c, "email", "email", kind="unique")
            tx.create_index(c, "late", "late.id", kind="unique")
            tx.create_index(c, "n", "n")


def insert_small(db, coll, docs):
    ids = []
    for k in range(0, len(docs), 500):
        part = docs[k:k + 500]
        assert len(_codec.dumps(part)) < BIG
        ids += db.insert_many(coll, part)
    return ids


def same(a, b):
    """Equal, with NaN equal to itself."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_a_large_insert_many_stores_what_small_ones_do(db):
    """Every document of one large batch reads back as written and as the
    same documents sent in small batches; the late unique index finds them."""
    docs = big_list(0, 6000)
    indexed(db, "small", "big")
    assert db.insert_many("big", docs) == list(range(1, 6001))
    assert insert_small(db, "small", docs) == list(range(1, 6001))
    ids = list(range(1, 6001))
    big, small = db.get_many("big", ids), db.get_many("small", ids)
    for i, (b, s) in enumerate(zip(big, small)):
        assert b == s == docs[i], i
    assert db.find_unique("big", "late", "L5999") == docs[5999]
    assert db.find_unique("big", "email", "e0") == docs[0]
    assert db.integrity_check() is not None


@pytest.mark.parametrize("late", [
    {"x": float("nan")},
    {"x": float("inf"), "y": float("-inf")},
    {"n": float("nan")},
])
def test_a_late_non_finite_float_is_handled_as_in_a_small_batch(db, late):
    """A NaN or infinity only in the last document (also in an indexed field):
    a large batch does exactly what a small one does with it."""
    indexed(db, "small", "big")
    docs = big_list(0, 6000) + [dict(late, email="last")]
    outcomes = []
    for coll, batch in [("small", docs[-300:]), ("big", docs)]:
        try:
            ids = db.insert_many(coll, batch)
            got = db.get(coll, ids[-1])
            assert same(got, batch[-1]), got
            outcomes.append(("ok", len(ids), db.count(coll)))
        except obj.Error as e:
            outcomes.append((type(e), 0, db.count(coll)))
    assert outcomes[0][0] == outcomes[1][0] and outcomes[0][2] in (0, 300) and outcomes[1][2] in (0, 6001)
    assert db.integrity_check() is not None


def test_late_bytes_and_datetimes_send_the_batch_down_the_general_path(db):
    """Bytes and datetimes only in the last document of a large batch: every
    document is stored and reads back as written."""
    indexed(db, "c")
    aware = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    last = {"email": "last", "b": b"\x00\xff$", "at": aware, "naive": dt.datetime(1999, 12, 31, 23, 59), "$k": 1}
    docs = big_list(0, 6000) + [last]
    assert db.insert_many("c", docs) == list(range(1, 6002))
    got = db.get_many("c", list(range(1, 6002)))
    assert got == docs
    assert db.get("c", 6001)["at"] == aware and db.get("c", 6001)["b"] == b"\x00\xff$"
    assert db.integrity_check() is not None


@pytest.mark.parametrize("where", [0, 3000, -1])
def test_a_unique_violation_anywhere_in_a_large_batch_leaves_nothing(db, where):
    """A document repeating the email of a stored one or of an earlier one in
    the batch, first, in the middle or last: ConstraintError, nothing of the
    batch stays, and the same transaction then takes the batch without it."""
    indexed(db, "c")
    db.insert_many("c", [doc(i) for i in range(100)])
    docs = big_list(100, 6000)
    bad = list(docs)
    dup = {"email": "e5"} if where == 0 else {"email": f"e{100 + (where % 6000) - 7}"}
    bad.insert(where if where >= 0 else len(bad), dup)
    with pytest.raises(obj.ConstraintError, match="unique"):
        db.insert_many("c", bad)
    assert db.count("c") == 100
    with db.transaction() as tx:
        with pytest.raises(obj.ConstraintError):
            tx.insert_many("c", bad)
        assert tx.count("c") == 100
        assert tx.insert_many("c", docs) == list(range(101, 6101))
    assert db.count("c") == 6100
    assert db.get("c", 6100) == docs[-1] and db.find_unique("c", "email", "e6099") == docs[-1]
    assert db.integrity_check() is not None


def test_a_bad_element_in_a_large_batch_leaves_nothing(db):
    """A non-dict in the middle of a large batch is named as in a small one;
    with an earlier document also repeating a stored email, the batch still
    fails whole (which error is reported is up to the order of discovery)."""
    indexed(db, "c")
    db.insert_many("c", [doc(i) for i in range(10)])
    docs = big_list(10, 6000)
    with pytest.raises(obj.InvalidArgumentError, match=r"^document \[4000\]: .*not int"):
        db.insert_many("c", docs[:4000] + [5] + docs[4000:])
    with pytest.raises((obj.InvalidArgumentError, obj.ConstraintError)):
        db.insert_many("c", [doc(3)] + docs[:4000] + [5] + docs[4000:])
    assert db.count("c") == 10
    assert db.insert_many("c", docs)[0] == 11
    assert db.integrity_check() is not None


def test_rollback_after_a_large_batch_leaves_nothing(db):
    """A transaction that stored a large batch and then rolls back leaves
    neither the documents nor a collection behind."""
    docs = big_list(0, 6000)
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            # (into an existing collection: a new one takes another path)
            tx.insert("c", {"first": 1})
            assert tx.insert_many("c", docs)[-1] == 6001
            raise RuntimeError("roll back")
    assert db.count("c") == 0 and "c" not in db.collections()
    assert db.insert_many("c", docs[:2]) == [1, 2]
    assert db.integrity_check() is not None


def test_out_cap_too_small_names_the_array_length(db):
    """Through the C ABI with out_cap too small, a large array is refused
    whole and the message gives its length, as it does for a small array.
    (Fails at ea26863: the large path reports the running count of the run
    that first exceeded out_cap, e.g. "1565 documents" for 6000.)"""
    db.insert("c", {"first": 1})  # (an existing collection: a new one takes another path)
    outcomes = []
    for n in (300, 6000):
        js = _codec.dumps(big_list(0, 6000)[:n])
        with db.transaction() as tx:
            with pytest.raises(obj.InvalidArgumentError) as ei:
                tx._c_doc_insert_many(b"c", js, 5, 0)
            assert tx.count("c") == 1
        outcomes.append(str(ei.value))
    assert "300 documents but out_cap is 5" in outcomes[0], outcomes[0]
    assert "6000 documents but out_cap is 5" in outcomes[1], outcomes[1]


def test_threads_insert_large_batches_into_separate_databases(tmp_path):
    """Two threads, each with its own database, insert large batches at the
    same time; each database holds exactly its documents."""
    errors = []

    def work(k):
        try:
            d = obj.Db(str(tmp_path / f"t{k}.obj"))
            indexed(d, "c")  # (an existing collection: a new one takes another path)
            docs = big_list(1000 * k, 5000)
            assert d.insert_many("c", docs) == list(range(1, 5001))
            assert d.get_many("c", list(range(1, 5001))) == docs
            assert d.integrity_check() is not None
            d.close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

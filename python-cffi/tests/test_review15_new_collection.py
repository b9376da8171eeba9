"""Review 15: ``obj_doc_insert_many`` into a collection that does not exist
yet (commit 29893d8) creates the collection, stores the batch through the
direct JSON path and drops the collection again when the batch is refused
or empty. Before, the array was parsed first, so that a refused batch never
wrote anything. These tests look for any difference a user could see: reads
in the same transaction, later batches, other kinds of the same name, open
cursors, typed classes, AsyncDb, attached files, reopening, and what the
file itself keeps after the commit."""

import json
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj

SIZES = [3, 6000]  # 6,000 dicts of ~300 bytes: over 1 MiB of JSON, the two-thread path


def docs(n, tag="u"):
    return [{"email": f"{tag}{i}@x", "note": "n" * 300} for i in range(n)]


def bad_batch(n):
    """``n`` good dicts, then a non-dict in the middle (Python checks only
    the first and last element itself, so the library refuses it)."""
    return docs(n) + [5, {"email": "z@x"}]


def refuse(tx, name, n, reason):
    """Sends a batch into ``name`` that the library refuses for ``reason``."""
    if reason == "not-a-dict":
        with pytest.raises(obj.InvalidArgumentError, match=rf"document \[{n}\]"):
            tx.insert_many(name, bad_batch(n))
    elif reason == "out_cap":
        with pytest.raises(obj.InvalidArgumentError, match=rf"{n} documents but out_cap is 2"):
            tx._c_doc_insert_many(name.encode(), json.dumps(docs(n)).encode(), 2, 0)
    else:  # malformed JSON: the closing bracket is missing
        with pytest.raises(obj.InvalidArgumentError, match="JSON"):
            tx._c_doc_insert_many(name.encode(), json.dumps(docs(n)).encode()[:-1], n, 0)


def footprint(db):
    """What the file holds besides the documents: pages, free pages, trees."""
    raw = db.stat().raw
    return raw["page_count"], raw["free_pages"], [t["name"] for t in raw["trees"]]


@obj.document(collection="members")
@dataclass
class Member:
    email: Annotated[str, obj.Unique]
    city: Annotated[str, obj.Index]
    note: str = ""


@pytest.mark.parametrize("n", SIZES)
def test_reads_in_the_same_transaction_see_no_new_collection_after_a_refusal(db, n):
    """Reads after a refused batch show no new collection, other writes stay, a good batch then starts at id 1."""
    db.insert("pre", {"a": 1})
    with db.transaction() as tx:
        tx.insert("other", {"kept": True})
        refuse(tx, "fresh", n, "not-a-dict")
        assert tx.collections() == ["other", "pre"]
        assert tx.count("fresh") == 0 and tx.get("fresh", 1) is None and tx.get("fresh", n) is None
        assert tx.query("fresh").fetch() == [] and tx.query("fresh").count() == 0
        assert list(tx.all("fresh")) == [] and tx.get_many("fresh", [1, 2]) == [None, None]
        assert tx.collection_info("fresh") is None
        assert tx.insert_many("fresh", docs(n)) == list(range(1, n + 1))
        assert tx.count("fresh") == n and tx.get("fresh", n) == docs(n)[-1]
        assert tx.query("fresh").filter(obj.field("email") == f"u{n - 1}@x").ids() == [n]
    assert db.collections() == ["fresh", "other", "pre"]
    assert db.count("fresh") == n and db.count("other") == 1
    assert db.integrity_check().trees == 7  # $collections and docs + names of three collections


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("reason", ["not-a-dict", "out_cap", "malformed"])
def test_refusals_of_every_kind_leave_no_collection_and_keep_their_errors(db, n, reason):
    """Non-dict, out_cap and malformed refusals keep their errors, leave no collection; a good batch follows."""
    with db.transaction() as tx:
        tx.insert("other", {"kept": True})
        refuse(tx, "fresh", n, reason)
        refuse(tx, "fresh", n, reason)  # twice in a row: the first left nothing in the way
        assert tx.collections() == ["other"]
        assert tx._c_doc_insert_many(b"fresh", json.dumps(docs(n)).encode(), n, 0) == list(range(1, n + 1))
    assert db.collections() == ["fresh", "other"] and db.count("fresh") == n
    assert db.integrity_check() is not None


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("reason", ["not-a-dict", "out_cap", "malformed"])
def test_a_refused_batch_into_a_new_collection_leaves_the_file_as_without_it(tmp_path, n, reason):
    """A committed refusal into a new name leaves the pages, free pages and trees as without it (as before)."""
    with obj.Db(str(tmp_path / "with.obj")) as a, obj.Db(str(tmp_path / "without.obj")) as b:
        for d in (a, b):
            d.insert("other", {"a": 0})
        with a.transaction() as tx:
            tx.insert("other", {"a": 1})
            refuse(tx, "fresh", n, reason)
        with b.transaction() as tx:
            tx.insert("other", {"a": 1})
        assert a.collections() == b.collections() == ["other"]
        assert footprint(a) == footprint(b)  # 29893d8 fails here: the created and dropped collection's pages stay, free


@pytest.mark.parametrize("n", SIZES)
def test_a_transaction_whose_only_write_was_refused_commits_nothing(db, n):
    """A transaction whose only write was refused commits no new state: counter, pages, trees (as before)."""
    before = db.stat().raw["commit_counter"], footprint(db)
    with db.transaction() as tx:
        refuse(tx, "fresh", n, "not-a-dict")
    assert db.collections() == []
    # 29893d8 fails here: the commit counter moves, "$collections" appears, the pages stay as free pages
    assert (db.stat().raw["commit_counter"], footprint(db)) == before


def test_an_empty_batch_into_a_new_collection_commits_nothing(db):
    """An empty array into a new name (the C call) gives no ids and commits no new state (as before)."""
    db.insert("other", {"a": 0})
    before = db.stat().raw["commit_counter"], footprint(db)
    with db.transaction() as tx:
        assert tx._c_doc_insert_many(b"fresh", b"[]", 0, 0) == []
        assert tx.insert_many("fresh", []) == []
        assert tx.collections() == ["other"]
    assert db.collections() == ["other"]
    assert (db.stat().raw["commit_counter"], footprint(db)) == before  # 29893d8: a create + drop committed


@pytest.mark.parametrize("n", SIZES)
def test_an_autocommit_refusal_rolls_everything_back(db, n):
    """db.insert_many refused into a new name leaves the file exactly as it was (rolled back)."""
    db.insert("other", {"a": 0})
    before = db.stat().raw["commit_counter"], footprint(db)
    with pytest.raises(obj.InvalidArgumentError, match=rf"document \[{n}\]"):
        db.insert_many("fresh", bad_batch(n))
    assert db.collections() == ["other"]
    assert (db.stat().raw["commit_counter"], footprint(db)) == before
    assert db.insert_many("fresh", docs(n))[-1] == n


@pytest.mark.parametrize("n", SIZES)
def test_a_refusal_with_an_open_cursor_keeps_the_cursor(db, n):
    """With a cursor open, a refused batch into a new name writes nothing; after a good one the
    iteration (in id order) goes on from where it was, reading the transaction as it is."""
    db.insert_many("other", [{"i": i} for i in range(1000)])
    with db.transaction() as tx:
        it = tx.query("other").iter()
        assert [i for i, _ in (next(it), next(it))] == [1, 2]
        refuse(tx, "fresh", n, "not-a-dict")
        with pytest.raises(obj.InvalidArgumentError, match=r"documents but out_cap is 2"):
            tx._c_doc_insert_many(b"fresh", json.dumps(docs(n)).encode(), 2, 0)
        assert sum(1 for _ in it) == 998
        assert tx.collections() == ["other"]
        it = tx.query("other").iter()
        next(it)
        assert len(tx.insert_many("fresh", docs(n))) == n
        assert [i for i, _ in it] == list(range(2, 1001))  # (the C cursor ended; the rest read anew)
    assert db.count("fresh") == n and db.integrity_check() is not None


@pytest.mark.parametrize("n", SIZES)
def test_a_typed_first_batch_with_a_unique_violation(db, n):
    """A typed first batch with a duplicate unique key: autocommit leaves nothing, a transaction keeps full indexes."""
    ms = [Member(f"m{i}@x", "paris", "n" * 300) for i in range(n)]
    with pytest.raises(obj.ConstraintError, match='unique index "email"'):
        db.insert_many(ms + [Member("m0@x", "oslo")])
    assert db.collections() == [] and db.integrity_check().trees == 0
    with db.transaction() as tx:
        tx.insert("other", {"a": 1})
        with pytest.raises(obj.ConstraintError):
            tx.insert_many(ms + [Member("m0@x", "oslo")])
        info = tx.collection_info("members")
        assert info["count"] == 0 and sorted(i["name"] for i in info["indexes"]) == ["city", "email"]
        assert tx.insert_many(ms) == list(range(1, n + 1))
    assert db.find_unique(Member, "email", f"m{n - 1}@x") == ms[-1]
    stats = {c.name: c for c in db.stat().collections}
    assert sorted((i.name, i.entries) for i in stats["members"].indexes) == [("city", n), ("email", n)]
    assert db.integrity_check() is not None


@pytest.mark.parametrize("n", SIZES)
def test_raw_and_key_value_names_keep_their_behaviour(db, n):
    """A raw collection keeps its old errors; a key-value namespace of the same name is untouched."""
    db.insert("rawc", b"xyz")
    db.kv("fresh").put(b"k", b"v")
    with db.transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError, match="'rawc' holds raw bytes"):
            tx.insert_many("rawc", docs(n))
        for js in (json.dumps(docs(n)).encode(), json.dumps(docs(n) + [5]).encode()):
            with pytest.raises(obj.InvalidArgumentError, match='collection "rawc" holds raw bytes'):
                tx._c_doc_insert_many(b"rawc", js, n + 1, 0)
        refuse(tx, "fresh", n, "not-a-dict")
        assert tx.kv("fresh").get(b"k") == b"v" and tx.collections() == ["rawc"]
        assert len(tx.insert_many("fresh", docs(n))) == n
    assert db.count("rawc") == 1 and db.get("rawc", 1) == b"xyz"
    assert db.kv_namespaces() == ["fresh"] and db.kv("fresh").get(b"k") == b"v"
    assert db.count("fresh") == n and db.integrity_check() is not None


@pytest.mark.parametrize("n", SIZES)
def test_a_dropped_collection_refused_again_stays_dropped(db, n):
    """Drop, then a refused batch into the same name: no collection; a good batch makes a new one, ids from 1."""
    db.insert_many("c", docs(5, "old"))
    db.create_index("c", "email", "email", "unique")
    with db.transaction() as tx:
        assert tx.drop_collection("c")
        refuse(tx, "c", n, "not-a-dict")
        assert tx.collections() == [] and tx.collection_info("c") is None
        assert tx.insert_many("c", docs(n) + docs(1)) == list(range(1, n + 2))  # a duplicate email is fine now
        assert tx.collection_info("c")["indexes"] == []
    db.close()
    with obj.Db(db.path) as again:
        assert again.collections() == ["c"] and again.count("c") == n + 1
        assert again.get("c", n + 1) == docs(1)[0]
        assert again.integrity_check() is not None


@pytest.mark.parametrize("n", SIZES)
def test_reopen_after_a_refusal_and_a_good_batch(path, n):
    """Refusals into two new names and a good batch into one: a reopened database holds just what was committed."""
    with obj.Db(path) as db, db.transaction() as tx:
        tx.insert("other", {"a": 1})
        refuse(tx, "fresh", n, "not-a-dict")
        refuse(tx, "never", n, "out_cap")
        tx.insert_many("fresh", docs(n, "v"))
    with obj.Db(path) as db:
        assert db.collections() == ["fresh", "other"]
        assert db.count("fresh") == n and db.get("fresh", 1) == docs(1, "v")[0]
        assert db.get("fresh", n + 1) is None and db.count("never") == 0
        assert db.integrity_check().trees == 5


@pytest.mark.parametrize("n", SIZES)
def test_attached_names_stay_read_only(tmp_path, n):
    """Batches into "ns.coll" and "ns.newc" of an attached file are refused and leave no local collection."""
    with obj.Db(str(tmp_path / "att.obj")) as other:
        other.insert("coll", {"x": 1})
    with obj.Db(str(tmp_path / "main.obj")) as db:
        db.attach(str(tmp_path / "att.obj"), "ns")
        for name in ("ns.coll", "ns.newc"):
            with pytest.raises(obj.InvalidArgumentError, match="attached namespace, which is read-only"):
                db.insert_many(name, docs(n))
            with pytest.raises(obj.InvalidArgumentError, match="read-only"), db.transaction() as tx:
                tx.insert_many(name, bad_batch(n))
        assert db.collections() == [] and db.count("ns.coll") == 1
        db.detach("ns")


@pytest.mark.parametrize("n", SIZES)
async def test_async_db_refused_then_good_batch(path, n):
    """AsyncDb: a refused batch into a new name leaves no collection; a good one in the same transaction commits."""
    adb = await obj.AsyncDb.open(path)
    await adb.insert("other", {"a": 1})
    with pytest.raises(obj.InvalidArgumentError, match=rf"document \[{n}\]"):
        await adb.insert_many("fresh", bad_batch(n))
    assert await adb.collections() == ["other"]
    async with adb.transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError, match=rf"document \[{n}\]"):
            await tx.insert_many("fresh", bad_batch(n))
        assert await tx.collections() == ["other"] and await tx.count("fresh") == 0
        assert await tx.insert_many("fresh", docs(n)) == list(range(1, n + 1))
    assert await adb.count("fresh") == n and await adb.collections() == ["fresh", "other"]
    await adb.close()


@pytest.mark.parametrize("n", SIZES)
def test_names_of_a_library_attached_file_are_refused_at_the_c_call(tmp_path, n):
    """With the library's own attach (obj_db_attach), every batch into "ns.*" is refused and nothing is written."""
    from obj._ffi import lib

    with obj.Db(str(tmp_path / "att.obj")) as other:
        other.insert("coll", {"x": 1})
    with obj.Db(str(tmp_path / "main.obj")) as db:
        assert lib.obj_db_attach(db._handle(), str(tmp_path / "att.obj").encode(), b"ns") == 0
        before = db.stat().raw["commit_counter"], footprint(db)
        good, bad = json.dumps(docs(n)).encode(), json.dumps(bad_batch(n)).encode()
        with db.transaction() as tx:
            for name in (b"ns.coll", b"ns.newc"):
                for js, cap in ((good, n), (bad, n + 2), (good, 1), (b"[]", 0)):
                    with pytest.raises(obj.InvalidArgumentError, match="which is read-only"):
                        tx._c_doc_insert_many(name, js, cap, 0)
            assert tx.collections() == []
        assert (db.stat().raw["commit_counter"], footprint(db)) == before

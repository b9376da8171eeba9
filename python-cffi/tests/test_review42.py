"""Review 42: a list field with two index markers (``obj.Each`` and
``obj.Unique``) said only "two indexes share a name" with a list of every
index; it now names the field and its markers and says that one marker
indexes every element. A Composite named as a marked field names the
clash."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import pytest

import obj


@obj.document(collection="tagged42")
@dataclass
class Tagged:
    key: Annotated[str, obj.Unique]
    codes: Annotated[list[str], obj.Each, obj.Unique] = field(default_factory=list)


@obj.document(collection="clash42", indexes=[obj.Composite(("key", "n"), name="key")])
@dataclass
class Clash:
    key: Annotated[str, obj.Index]
    n: int = 0


def test_two_markers_on_one_field_name_the_field_and_the_markers(tmp_path):
    with obj.Db(str(tmp_path / "t.obj")) as db:
        with pytest.raises(obj.InvalidArgumentError) as e:
            db.insert(Tagged("a", ["x"]))
    msg = str(e.value)
    assert "field 'codes' has more than one index marker (obj.Each, obj.Unique)" in msg, msg
    assert "obj.Unique alone makes the elements unique" in msg


def test_a_unique_list_field_makes_each_element_unique(tmp_path):
    @obj.document(collection="codes42")
    @dataclass
    class Codes:
        codes: Annotated[list[str], obj.Unique] = field(default_factory=list)

    with obj.Db(str(tmp_path / "u.obj")) as db:
        db.insert(Codes(["x", "y"]))
        with pytest.raises(obj.ConstraintError):
            db.insert(Codes(["z", "y"]))


def test_a_composite_named_as_a_marked_field_names_the_clash(tmp_path):
    with obj.Db(str(tmp_path / "c.obj")) as db:
        with pytest.raises(obj.InvalidArgumentError) as e:
            db.insert(Clash("a"))
    assert "two indexes share a name: key (an index is named after its marked field" in str(e.value), str(e.value)


@obj.document(collection="twice42")
@dataclass
class Twice:
    key: Annotated[str, obj.Index, obj.Unique]


def test_two_markers_on_a_plain_field_get_no_list_hint(tmp_path):
    with obj.Db(str(tmp_path / "w.obj")) as db:
        with pytest.raises(obj.InvalidArgumentError) as e:
            db.insert(Twice("a"))
    msg = str(e.value)
    assert msg.endswith("field 'key' has more than one index marker (obj.Index, obj.Unique): give it one"), msg


def test_an_iteration_opening_while_another_thread_writes_in_its_transaction_carries_on(tmp_path):
    # A write call counted itself before its C call ran; an iteration
    # opening its cursor in between took that count as seen, so the write
    # then ended its cursor and the next batch raised "transaction changed
    # under the cursor" (found by the threads review: 6 of 40 shared
    # transactions). The write now holds the transaction's lock from its
    # count to its call's end, and an iteration opens its cursor under it.
    import threading

    from obj import txn as txn_mod

    with obj.Db(str(tmp_path / "s.obj")) as db:
        db.insert_many("c", [{"t": i % 2} for i in range(200)])  # more than the first batch of 32
        in_call, opened = threading.Event(), threading.Event()
        real_insert = txn_mod.lib.obj_doc_insert

        def slow_insert(*args):
            in_call.set()
            opened.wait(0.5)  # (with the lock held, the iteration cannot open: the wait runs out)
            return real_insert(*args)

        with db.transaction() as tx:
            got: list = []

            def reader():
                in_call.wait(5)
                it = iter(tx.query("c").filter(obj.field("t") == 1))
                got.append(next(it))
                opened.set()
                got.extend(it)

            t = threading.Thread(target=reader)
            t.start()
            out = txn_mod._slots.u64
            assert tx._wcall(slow_insert, b"c", b'{"t": 1}', 8, 0, out) == 0
            t.join(10)
            assert not t.is_alive()
        # Every t == 1 document once, the new one too (an id-order read
        # goes on past a write), and no error.
        assert [d["t"] for _, d in got] == [1] * 101
        assert len({i for i, _ in got}) == 101


def test_a_finaliser_that_writes_in_the_transaction_neither_deadlocks_nor_ends_an_iteration(tmp_path):
    # Found by the review of the lock above: the garbage collector may run
    # a finaliser while this thread holds the transaction's lock (opening
    # a cursor, or in a write call); one that writes in the transaction
    # waited on a plain lock forever, and one run as the cursor opened
    # ended it before a row was given.
    import gc
    import threading

    with obj.Db(str(tmp_path / "g.obj"), sync="off") as db:
        db.insert_many("c", [{"i": i} for i in range(3)])
        tx = db.transaction()

        class Audit:
            def __del__(self):
                tx.insert("log", {"ev": "dropped"})

        done: list = []

        def work():
            old = gc.get_threshold()
            try:
                for threshold in range(1, 25):
                    gc.set_threshold(threshold)
                    for i in range(100):
                        a = Audit()
                        a.self = a  # a cycle: freed by the collector, at any allocation
                        del a
                        assert len(list(tx.query("c").iter())) >= 3
                        tx.insert("c", {"i": i})
            finally:
                gc.set_threshold(*old)
            gc.collect()
            done.append(len(list(tx.query("log").iter())))

        t = threading.Thread(target=work, daemon=True)
        t.start()
        t.join(30)
        assert not t.is_alive(), "deadlocked"
        assert done == [2400]
        tx.rollback()


def test_raw_insert_many_in_a_transaction_is_all_or_nothing(tmp_path):
    # Raw documents went in one call each: a failure part-way (here the id
    # space used up, or a payload of another type) left the first ones in
    # the transaction (found by the review of this session's fixes).
    with obj.Db(str(tmp_path / "r.obj")) as db:
        with db.transaction() as tx:
            tx.create_collection("blobs", raw=True)
            tx.upsert("blobs", 2**64 - 3, b"last")
        with db.transaction() as tx:
            with pytest.raises(obj.InvalidArgumentError, match="exhausted"):
                tx.insert_many("blobs", [b"a", b"b"])
            with pytest.raises(obj.InvalidArgumentError, match="raw payloads are bytes"):
                tx.insert_many("blobs", [b"a", "not bytes"])
            assert tx.count("blobs") == 1
        assert db.count("blobs") == 1


def test_load_with_ids_says_how_many_documents_replaced_one(tmp_path, capsys):
    # Two lines of one id loaded as "2 documents" with nothing to say that
    # the second replaced the first (session 41's list).
    from obj import cli

    src = tmp_path / "dup.jsonl"
    src.write_text('{"id":5,"doc":{"a":1}}\n{"id":5,"doc":{"a":2}}\n{"id":6,"doc":{"a":3}}\n')
    db = str(tmp_path / "d.obj")
    assert cli.main(["load", db, "c", "--ids", str(src)]) == cli.EXIT_OK
    assert "loaded 3 documents into c (1 of them replaced a document with the same id)" in capsys.readouterr().err
    assert cli.main(["load", db, "c", "--ids", str(src)]) == cli.EXIT_OK
    assert "loaded 3 documents into c (3 of them replaced a document with the same id)" in capsys.readouterr().err
    with obj.Db(db) as d:
        assert [doc for _, doc in d.all("c")] == [{"a": 2}, {"a": 3}]
    src.write_text('{"id":7,"doc":{"a":4}}\n')
    assert cli.main(["load", db, "c", "--ids", str(src)]) == cli.EXIT_OK
    assert capsys.readouterr().err.strip().endswith("loaded 1 document into c")

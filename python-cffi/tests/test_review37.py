"""Review 37: what a new user met operating a database from Python and the
command line."""

import pytest

import obj


def test_an_empty_file_is_not_an_obj_database_to_read_or_restore(tmp_path):
    # An empty file becomes a database only through a writable open; read
    # as one (read-only, restored from, attached) it is not an obj database,
    # the class a wrong path gets (it was a plain InvalidArgumentError).
    empty = tmp_path / "empty.obj"
    empty.write_bytes(b"")
    with pytest.raises(obj.NotADatabaseError, match=r"is empty \(0 bytes\): not an obj database yet"):
        obj.Db(empty, read_only=True)
    with pytest.raises(obj.NotADatabaseError, match=r"is empty \(0 bytes\): not an obj database to restore from"):
        obj.Db.restore(empty, tmp_path / "restored.obj")
    assert not (tmp_path / "restored.obj").exists()
    with obj.Db(tmp_path / "main.obj") as db:
        with pytest.raises(obj.NotADatabaseError, match="not an obj database yet"):
            db.attach(empty, "e")
    with obj.Db(empty) as db:  # a writable open makes it one
        db.insert("c", {"a": 1})
    with obj.Db(empty, read_only=True) as db:
        assert db.get("c", 1) == {"a": 1}


def test_a_dump_whose_reader_stops_early_ends_quietly(tmp_path):
    # As the README says (and as `| head` wants): exit 0, nothing on stderr.
    import os
    import subprocess
    import sys

    path = tmp_path / "big.obj"
    with obj.Db(path) as db:
        db.insert_many("c", [{"n": i, "pad": "x" * 200} for i in range(20000)])
    p = subprocess.Popen([sys.executable, "-m", "obj", "dump", str(path), "c"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=os.environ)
    assert p.stdout.read(100).startswith(b'{"obj_export":1')
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0 and err == b"", err


@pytest.mark.parametrize("end", ["rollback", "commit"])
def test_an_iteration_of_a_write_transaction_stops_when_it_ends(path, end):
    # It used to give the rest of the batch it had read ahead (255
    # documents), the documents of a rolled-back write among them, and
    # only then raise.
    with obj.Db(path) as db:
        tx = db.transaction()
        tx.insert_many("c", [{"i": i} for i in range(300)])
        it = iter(tx.all("c"))
        assert next(it)[1] == {"i": 0}
        tx.rollback() if end == "rollback" else tx.commit()
        with pytest.raises(obj.InvalidArgumentError, match="transaction already finished"):
            next(it)
        assert db.count("c") == (0 if end == "rollback" else 300)


def test_sort_by_a_decimal_is_refused_through_lists_dicts_and_tuples(db):
    # A Decimal is stored as text, so sorting by one would order "10"
    # before "9": refused, as for a Decimal field of a nested class. The
    # check followed nested classes only; through a list element or a dict
    # value the sort ran in text order.
    from dataclasses import dataclass
    from decimal import Decimal
    from typing import Optional

    @dataclass
    class Line:
        price: Decimal

    @obj.document(collection="inv37")
    @dataclass
    class Inv:
        lines: list[Line]
        by_cur: dict[str, Decimal]
        pair: tuple[int, Decimal]
        maybe: Optional[list[Optional[Line]]]
        n: int

    db.insert(Inv([Line(Decimal("10"))], {"eur": Decimal("10")}, (2, Decimal("10")), None, 2))
    db.insert(Inv([Line(Decimal("9"))], {"eur": Decimal("9")}, (1, Decimal("9")), None, 1))
    for path in ("lines.0.price", "lines.price", "by_cur.eur", "pair.1", "maybe.0.price", "-by_cur.eur"):
        with pytest.raises(obj.InvalidArgumentError, match="on a Decimal field"):
            db.query(Inv).sort_by(path)
    for path in ("n", "pair.0"):
        assert [o.n for _, o in db.query(Inv).sort_by(path).fetch()] == [1, 2]

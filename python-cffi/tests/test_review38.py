"""Review 38: what helpers and a re-read found in session 38."""

from dataclasses import dataclass

import pytest

import obj


@obj.document(collection="pts38")
@dataclass
class Pt:
    x: int


def _iterations(tx):
    """One open iteration of each shape a read transaction streams: dict
    pairs, typed rows, an engine-filtered query, a sorted query."""
    its = {
        "all": iter(tx.all("c")),
        "typed": iter(tx.query(Pt).iter()),
        "filtered": iter(tx.query("c").filter(obj.field("i") >= 0).iter()),
        "sorted": iter(tx.query("c").sort_by("-i").iter()),
    }
    for it in its.values():
        next(it)
    return its


def test_an_iteration_of_a_read_transaction_stops_when_it_ends(path):
    # It used to go on through the rest of the batch it had read ahead
    # (up to 255 documents) and only then raise, as a write transaction's
    # did before session 37.
    with obj.Db(path) as db:
        db.insert_many("c", [{"i": i} for i in range(300)])
        db.insert_many([Pt(i) for i in range(300)])
        with db.read_transaction() as tx:
            its = _iterations(tx)
        for it in its.values():
            with pytest.raises(obj.InvalidArgumentError, match="transaction already ended"):
                next(it)
        # The Db's own iterations (each on a snapshot of its own) go on.
        its = _iterations(db)
        assert sum(1 for _ in its["all"]) == 299


def test_an_iteration_of_a_db_stops_when_the_db_closes(path):
    # Its snapshot ends with the Db; the next step raised only after the
    # rest of the batch read ahead.
    db = obj.Db(path)
    db.insert_many("c", [{"i": i} for i in range(300)])
    db.insert_many([Pt(i) for i in range(300)])
    its = _iterations(db)
    db.close()
    for it in its.values():
        with pytest.raises(obj.ClosedError, match="was closed while this transaction was open"):
            next(it)

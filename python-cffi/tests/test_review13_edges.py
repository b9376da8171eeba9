"""Review 13: documents at the edges of the limits (nesting) through the
Python package, every JSON backend."""

import datetime

import pytest

import obj

LIMIT = 128  # documents nest at most 128 levels (docs/format.md, MAX_NESTING)


def _nested(depth, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


@pytest.mark.parametrize("leaf", [1, b"\x00\x01", float("nan"),
                                  datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc)],
                         ids=["int", "bytes", "nan", "datetime"])
def test_a_document_at_the_nesting_limit_goes_in_one_at_a_time_or_in_a_batch(db, backend, leaf, tmp_path):
    # {"v": [[...leaf...]]}: the map and LIMIT - 1 lists, LIMIT levels in all;
    # bytes, NaN and datetimes are scalars like ints.
    doc = {"v": _nested(LIMIT - 1, leaf)}
    ids = [db.insert("deep", doc)]
    ids += db.insert_many("deep", [doc])
    ids += db.insert_many("deep", [doc, doc])
    with db.transaction() as tx:
        ids += tx.insert_many("deep", [doc])
    assert len(ids) == 5
    for got in db.get_many("deep", ids):
        v = got["v"]
        for _ in range(LIMIT - 1):
            (v,) = v
        assert v == leaf or (leaf != leaf and v != v)
    # One level more is refused, one document or a batch.
    deeper = {"v": _nested(LIMIT, leaf)}
    with pytest.raises(obj.InvalidArgumentError, match="128 levels"):
        db.insert("deep", deeper)
    with pytest.raises(obj.InvalidArgumentError, match="128 levels"):
        db.insert_many("deep", [deeper])
    # And the export of what went in imports again.
    db.export(str(tmp_path / "deep.jsonl"))
    with obj.Db(str(tmp_path / "copy.obj")) as copy:
        assert copy.import_(str(tmp_path / "deep.jsonl"))["documents"] == 5

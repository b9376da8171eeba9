"""Review 44 (model-based helper): an index built over existing documents
left out the document at id 0 (which an upsert may store): a query the
index served missed it, a unique index was made over a duplicate of it,
and integrity_check failed."""

from __future__ import annotations

import pytest

import obj


def test_an_index_built_later_covers_document_0(tmp_path):
    with obj.Db(tmp_path / "z.obj") as db:
        db.upsert("ev", 0, {"k": 5, "u": 1})
        db.upsert("ev", 1, {"k": 6, "u": 1})
        db.create_index("ev", "by_k", "k")
        assert [i for i, _ in db.query("ev").index_range("by_k", 5, 5).iter()] == [0]
        assert [i for i, _ in db.query("ev").filter(obj.field("k") == 5).fetch()] == [0]
        with pytest.raises(obj.ConstraintError, match="documents 0 and 1 hold the same value"):
            db.create_index("ev", "by_u", "u", kind="unique")
        db.integrity_check()

"""Review 43 (the query builder against its documented semantics):

- A Python predicate with a field sort and a limit raised the sort buffer
  error when fewer than the limit of the best ``sort_buffer_limit``
  documents passed, even where an index delivers the sort (no buffer):
  the same query without the limit worked.
- A key sort (``sort_by(lambda ...)``) without a field sort kept equal keys
  in the plan's order, which an index serving the filter changes: ties
  now go by id, so creating an index does not change a page.
- Ordering by a Decimal inside a list operand compared the stored text
  ("10.00" < "9.5"); it is refused as a bare Decimal is.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

import obj
from obj import field as F


def test_a_limit_on_an_index_served_sort_with_a_python_filter_needs_no_buffer(tmp_path):
    with obj.Db(str(tmp_path / "t.obj")) as db:
        db.insert_many("c", [{"a": i} for i in range(10)])
        db.create_index("c", "ia", "a")
        q = db.query("c").filter(lambda d: d["a"] >= 8).sort_by("a").sort_buffer_limit(5)
        assert q.ids() == [9, 10]
        assert q.limit(1).ids() == [9]
        assert q.offset(1).limit(5).ids() == [10]
        assert q.first()[0] == 9
        # Without an index the sort needs the buffer, and the error stays.
        with db.transaction() as tx:
            tx.drop_index("c", "ia")
        with pytest.raises(obj.InvalidArgumentError, match="sort_buffer_limit"):
            q.limit(1).ids()


def test_ties_of_a_key_sort_go_by_id_with_or_without_an_index(tmp_path):
    with obj.Db(str(tmp_path / "t.obj")) as db:
        for c in ("plain", "idx"):
            db.insert_many(c, [{"k": 1, "s": "b"}, {"k": 1, "s": "a"}, {"k": 0, "s": "c"}])
        db.create_index("idx", "s", "s")
        for c in ("plain", "idx"):
            q = db.query(c).filter(F("s").startswith("")).sort_by(lambda d: d["k"])
            assert q.ids() == [3, 1, 2], c
            assert q.limit(2).ids() == [3, 1], c
            r = db.query(c).filter(F("s").startswith("")).sort_by(lambda d: d["k"], reverse=True)
            assert r.ids() == [1, 2, 3], c
            assert r.limit(1).ids() == [1], c


def test_ordering_by_a_decimal_inside_a_list_is_refused(tmp_path):
    with obj.Db(str(tmp_path / "t.obj")) as db:
        db.insert("c", {"p": [Decimal("10.00")]})
        with pytest.raises(obj.InvalidArgumentError):
            db.query("c").filter(F("p") < [Decimal("9.5")]).ids()
        # Equality compares the stored text, which works.
        assert db.query("c").filter(F("p") == [Decimal("10.00")]).ids() == [1]

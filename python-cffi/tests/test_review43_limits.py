"""Review 43 (limits): an index name or field path holding a lone
surrogate was refused as "unexpected end of hex escape" (the spec was
ASCII-escaped JSON, which C could not read); it is refused by name."""

from __future__ import annotations

import pytest

import obj


@pytest.mark.parametrize(("name", "path"), [("ix\udc80", "a"), ("ok", "a\udc80")])
def test_a_lone_surrogate_in_an_index_spec_is_refused_by_name(tmp_path, name, path):
    with obj.Db(str(tmp_path / "s.obj")) as db:
        db.insert("c", {"a": 1})
        with pytest.raises(obj.InvalidArgumentError, match="index spec .* is not valid UTF-8"):
            db.create_index("c", name, path)
        db.create_index("c", "é", "ü")  # non-ASCII names and paths are fine
        assert db.query("c").count() == 1

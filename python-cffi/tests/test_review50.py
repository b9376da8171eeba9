"""Session 50: what an outside user or a review found missing or wrong."""

import pytest

import obj


def test_an_attached_file_can_be_opened_for_writes(tmp_path):
    # It was refused BusyError ("already open read-only in this process")
    # while another process could write the file, and the other order of
    # the two opens worked.
    archive = str(tmp_path / "archive.obj")
    with obj.Db(archive) as a:
        a.insert("raw", b"old")
    with obj.Db(str(tmp_path / "app.obj")) as db:
        db.attach(archive, "archive")
        with obj.Db(archive) as w:
            w.insert("raw", b"new")
        # The attachment reads the file as of each transaction's start.
        assert [d for _, d in db.iter_all("archive.raw")] == [b"old", b"new"]
    ro = obj.Db(archive, read_only=True)
    try:
        with obj.Db(archive) as w:
            w.insert("raw", b"beside a read-only handle")
        assert ro.count("raw") == 3
    finally:
        ro.close()


def test_restore_onto_an_existing_file_names_the_keyword(tmp_path):
    src, dst = str(tmp_path / "b.obj"), str(tmp_path / "t.obj")
    with obj.Db(src) as d:
        d.insert("c", {"n": 1})
    with obj.Db(dst) as d:
        d.insert("c", {"n": 2})
    with pytest.raises(obj.InvalidArgumentError, match=r"pass overwrite=True") as e:
        obj.Db.restore(src, dst)
    assert e.value.status_name == "OBJ_INVALID_ARGUMENT" and "allow overwriting" not in str(e.value)
    obj.Db.restore_from(src, dst, overwrite=True)
    with obj.Db(dst) as d:
        assert [doc["n"] for _, doc in d.iter_all("c")] == [1]


def test_a_lookup_key_of_another_kind_than_its_field_is_refused(tmp_path):
    # find_unique(Order, "email", 5) answered None and an index range of
    # ints over a str field nothing, where bytes for an int field were
    # already refused: no document of the class can hold such a key.
    from dataclasses import dataclass
    from typing import Annotated, Optional

    @obj.document(collection="r50_orders", version=1)
    @dataclass
    class R50Order:
        email: Annotated[str, obj.Unique]
        qty: Annotated[int, obj.Index]
        price: Annotated[float, obj.Index]
        note: Annotated[Optional[str], obj.Index] = None

    with obj.Db(str(tmp_path / "k.obj")) as db:
        oid = db.insert(R50Order("a@x", 3, 2.5))
        with pytest.raises(obj.InvalidArgumentError, match=r"email.*declared str"):
            db.find_unique(R50Order, "email", 5)
        with pytest.raises(obj.InvalidArgumentError, match=r"qty.*declared int"):
            list(db.index_range(R50Order, "qty", "1", "9"))
        with pytest.raises(obj.InvalidArgumentError, match=r"declared float"):
            db.query(R50Order).index_range("price", "a", None).fetch()
        with db.transaction() as tx:
            with pytest.raises(obj.InvalidArgumentError, match=r"declared str"):
                tx.find_unique(R50Order, "email", 1.5)
        with pytest.raises(obj.InvalidArgumentError, match=r"declared str"):
            db.find_unique_many(R50Order, "email", ["a@x", 5])
        assert [o.qty for o in db.find_unique_many(R50Order, "email", ["a@x", "zz"]) if o] == [3]
        # What a field of the type can hold still finds it: an int for a
        # float field, None for an Optional one, bytes as a str's UTF-8.
        assert [i for i, _ in db.index_range(R50Order, "price", 2, 3)] == [oid]
        assert [i for i, _ in db.index_range(R50Order, "qty", 3, 4)] == [oid]
        assert db.find_unique(R50Order, "email", b"a@x").qty == 3
        assert [i for i, _ in db.index_range(R50Order, "note", None, None)] == [oid]


def test_a_command_with_words_left_over_shows_its_own_usage(tmp_path):
    # `obj stat app.obj extra` printed the top-level usage, which does not
    # say what `stat` takes.
    import subprocess
    import sys

    path = str(tmp_path / "u.obj")
    with obj.Db(path) as d:
        d.insert("c", {"n": 1})
    for args in (["stat", path, "extra"], ["load", path, "c", "in.jsonl", "extra"]):
        r = subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True)
        assert r.returncode == 2, r
        assert f"usage: obj {args[0]}" in r.stderr and "unrecognized arguments: extra" in r.stderr, r.stderr

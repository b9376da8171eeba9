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

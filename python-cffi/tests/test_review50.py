"""Session 50: what an outside user or a review found missing or wrong."""

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

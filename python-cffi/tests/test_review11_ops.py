"""Review 11: operating a database (backup, restore, compaction,
encryption, dump and load) from Python and from the command line, as an
operator meets them."""

import os
import subprocess
import sys

import pytest

import obj
from obj import cli


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True, input=stdin)


def _files(d):
    return sorted(os.listdir(d))


@pytest.fixture
def filled(tmp_path):
    """A database of 3000 documents (several progress calls' worth of pages)."""
    p = str(tmp_path / "src.obj")
    with obj.Db(p) as db:
        db.insert_many("orders", [{"n": i, "pad": "p" * 400} for i in range(3000)])
    return p


# -- a progress callback that raises ------------------------------------------------


@pytest.mark.parametrize("exc", [ValueError("stop here"), KeyboardInterrupt()])
def test_an_exception_in_the_backup_progress_callback_is_raised_and_leaves_no_copy(filled, tmp_path, exc):
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if done:
            raise exc

    with obj.Db(filled) as db:
        before = _files(tmp_path)
        with pytest.raises(type(exc)):
            db.backup(tmp_path / "copy.obj", progress)
        assert len(calls) == 2  # the copy stopped at the call that raised
        assert _files(tmp_path) == before  # no copy, no temporary file
        # the database is still usable, and the next backup works
        assert db.backup(tmp_path / "copy.obj")["pages"] > 0
    with obj.Db(tmp_path / "copy.obj", read_only=True) as copy:
        assert copy.count("orders") == 3000


def test_ctrl_c_during_a_cli_backup_is_exit_130_and_leaves_no_copy(filled, tmp_path, monkeypatch, capsys):
    def interrupted(self, done, count):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli._Progress, "show", interrupted)
    dest = tmp_path / "nightly.obj"
    assert cli.main(["backup", filled, str(dest)]) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err == "obj: backup: interrupted\n"  # not "backed up ..."
    assert not dest.exists()


# -- read-only handles leave no -shm behind ------------------------------------------


def test_a_read_only_block_that_raises_leaves_no_shm(filled, tmp_path):
    before = _files(tmp_path)
    with pytest.raises(LookupError):
        with obj.Db(filled, read_only=True) as db:
            raise LookupError(db.count("orders"))
    assert _files(tmp_path) == before


def test_attach_and_detach_leave_no_shm_beside_the_attached_file(filled, tmp_path):
    app = tmp_path / "app.obj"
    with obj.Db(app) as db:
        db.attach(filled, "archive")
        assert db.count("archive.orders") == 3000
        db.detach("archive")
        assert not os.path.exists(filled + "-shm")
        db.attach(filled, "archive")
    assert _files(tmp_path) == ["app.obj", "src.obj"]


def test_a_failed_cli_backup_leaves_no_shm_beside_the_database(filled, tmp_path):
    r = run("backup", filled, str(tmp_path / "missing" / "dir" / "b.obj"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert _files(tmp_path) == ["src.obj"]


# -- a file to be written in a missing directory -------------------------------------


def test_a_new_file_in_a_missing_directory_is_not_found_exit_3_naming_it(filled, tmp_path):
    missing = str(tmp_path / "no" / "such" / "x.obj")
    for args, what in [
        (("backup", filled, missing), "backup file"),
        (("restore", filled, missing), "target file"),
        (("compact", filled, "--to", missing), "compacted copy"),
        (("load", missing, "orders"), "database"),
    ]:
        r = run(*args, stdin='{"a": 1}\n')
        assert r.returncode == cli.EXIT_NOT_FOUND, (args, r.returncode, r.stderr)
        assert r.stderr == f"obj: {args[0]}: {what} {missing}: No such file or directory\n", r.stderr
    assert _files(tmp_path) == ["src.obj"]

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

"""The command line's standard output at its end: a reader gone (`| head`)
or a full disk, with Python's usual buffered output (PYTHONUNBUFFERED
unset: the test environment may set it, which hid these)."""

import os
import subprocess
import sys

import pytest

import obj


def _env():
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    return env


def _closed_reader(args):
    p = subprocess.Popen([sys.executable, "-m", "obj", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env())
    p.stdout.close()  # the reader is gone before anything is written
    err = p.stderr.read()
    return p.wait(timeout=60), err


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "big.obj"
    with obj.Db(path) as db:
        db.insert_many("c", [{"n": i, "pad": "x" * 200} for i in range(20000)])
    return str(path)


@pytest.mark.parametrize("args", [["stat", "{}"], ["stat", "--json", "{}"], ["check", "{}"], ["dump", "{}", "c"],
                                  ["dump", "{}"], ["--version"], ["--help"], ["load", "--help"]])
def test_a_reader_gone_is_exit_0_and_quiet(db_path, args):
    code, err = _closed_reader([a.format(db_path) for a in args])
    assert code == 0 and err in (b"", b"dumped 20000 documents\n"), (code, err)


def test_a_reader_gone_after_the_first_line_is_exit_0_and_quiet(db_path):
    p = subprocess.Popen([sys.executable, "-m", "obj", "dump", db_path, "c"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env())
    assert p.stdout.readline().startswith(b'{"obj_export":1')
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0 and err == b"", err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["stat", "{}"], ["dump", "{}", "c"], ["--version"], ["--help"]])
def test_a_full_disk_is_exit_5_with_one_line(db_path, args):
    with open("/dev/full", "wb") as full:
        p = subprocess.run([sys.executable, "-m", "obj", *[a.format(db_path) for a in args]], stdout=full,
                           stderr=subprocess.PIPE, env=_env(), timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 5 and "No space left on device" in err and "Exception" not in err, (p.returncode, err)
    assert "Traceback" not in err


@pytest.mark.parametrize("args,code", [(["stat", "{}"], 5), (["check", "{}"], 5), (["--version"], 5),
                                       (["dump", "{}", "c"], 5), (["load", "{}", "d", "-q", os.devnull], 0)])
def test_a_closed_stdout_is_exit_5_when_the_command_prints(db_path, args, code):
    # (Review 44: `obj stat app.obj >&-` exited 0 having printed nothing;
    # a command that prints nothing on stdout, as load, still succeeds.)
    p = subprocess.run([sys.executable, "-m", "obj", *[a.format(db_path) for a in args]], stdout=None,
                       stderr=subprocess.PIPE, env=_env(), timeout=60, close_fds=True,
                       preexec_fn=lambda: os.close(1))
    err = p.stderr.decode()
    assert p.returncode == code, (p.returncode, err)
    assert "Traceback" not in err and (code == 0 or "standard output is closed" in err), err

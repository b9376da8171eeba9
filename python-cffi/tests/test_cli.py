"""The obj command line."""

import json
import os
import subprocess
import sys

import obj
from obj import cli


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True, input=stdin)


def test_help_and_usage():
    r = run("--help")
    assert r.returncode == 0 and "exit codes" in r.stdout and "dump" in r.stdout
    assert run().returncode == cli.EXIT_USAGE
    assert run("frobnicate").returncode == cli.EXIT_USAGE


def test_stat_check_checkpoint_dump_load(path, tmp_path):
    with obj.Db(path) as db:
        db.insert_many("orders", [{"n": i, "b": b"\x01", "$k": 1.5} for i in range(20)])
        db.create_index("orders", "by_n", "n")
    r = run("stat", path)
    assert r.returncode == 0 and "orders" in r.stdout and "by_n" in r.stdout
    r = run("stat", "--json", path)
    assert json.loads(r.stdout)["collections"][0]["name"] == "orders"
    assert run("check", path).returncode == 0
    assert run("checkpoint", path).returncode == 0
    out = tmp_path / "o.jsonl"
    r = run("dump", path, "orders", "-o", str(out))
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 20
    copy = str(tmp_path / "copy.obj")
    r = run("load", copy, "orders", str(out))
    assert r.returncode == 0, r.stderr
    with obj.Db(copy) as db:
        got = [d for _, d in db.all("orders")]
    assert got == [{"n": i, "b": b"\x01", "$k": 1.5} for i in range(20)]
    r = run("load", copy, "more", stdin=lines[0] + "\n")
    assert r.returncode == 0
    # --ids round trip keeps ids
    r = run("dump", path, "orders", "--ids")
    copy2 = str(tmp_path / "copy2.obj")
    assert run("load", copy2, "orders", "--ids", stdin=r.stdout).returncode == 0
    with obj.Db(copy2) as db, obj.Db(path) as src:
        assert list(db.all("orders")) == list(src.all("orders"))


def test_exit_codes(tmp_path, path):
    assert run("stat", str(tmp_path / "none.obj")).returncode == cli.EXIT_NOT_FOUND
    obj.Db(path).close()
    assert run("dump", path, "nothing").returncode == cli.EXIT_NOT_FOUND
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert run("load", path, "c", str(bad)).returncode == cli.EXIT_ERROR
    assert run("load", path, "c", str(tmp_path / "absent.jsonl")).returncode == cli.EXIT_NOT_FOUND


def test_console_script_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "obj")
    if os.environ.get("OBJ_EXPECT_INSTALLED"):
        r = subprocess.run([exe, "--version"], capture_output=True, text=True)
        assert r.returncode == 0 and "obj-db" in r.stdout


def test_progress_bar_renders():
    import io
    p = cli._Progress(100, True)
    old = sys.stderr
    sys.stderr = io.StringIO()
    try:
        p.show(50, 10)
        p.end()
        text = sys.stderr.getvalue()
    finally:
        sys.stderr = old
    assert "50%" in text and "#" in text

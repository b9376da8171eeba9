"""The obj command line."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import pytest

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
    assert len(lines) == 21 and json.loads(lines[0])["obj_export"] == 1  # a header, then the documents
    copy = str(tmp_path / "copy.obj")
    r = run("load", copy, "orders", str(out))
    assert r.returncode == 0, r.stderr
    with obj.Db(copy) as db:
        got = [d for _, d in db.all("orders")]
    assert got == [{"n": i, "b": b"\x01", "$k": 1.5} for i in range(20)]
    r = run("load", copy, "more", stdin=json.dumps(json.loads(lines[1])["doc"]) + "\n")  # a plain document
    assert r.returncode == 0
    # --ids round trip keeps ids
    r = run("dump", path, "orders", "--ids")
    copy2 = str(tmp_path / "copy2.obj")
    assert run("load", copy2, "orders", "--ids", stdin=r.stdout).returncode == 0
    with obj.Db(copy2) as db, obj.Db(path) as src:
        assert list(db.all("orders")) == list(src.all("orders"))


@obj.document(collection="versioned", version=2)
@dataclass
class Versioned:
    email: Annotated[str, obj.Unique]
    n: Annotated[int, obj.Index]

    @classmethod
    def migrate(cls, doc, from_version):
        raise AssertionError(f"current data migrated from version {from_version}")


def test_dump_load_keeps_schema_versions_and_indexes(path, tmp_path):
    with obj.Db(path) as db:
        db.insert_many([Versioned(f"{i}@x", i) for i in range(10)])
        db.delete(Versioned, 4)
        db.insert_many("blobs", [b"\x00a", b"b"])
    for extra in ((), ("--ids",)):
        r = run("dump", path, "versioned")
        assert r.returncode == 0, r.stderr
        copy = str(tmp_path / f"copy{len(extra)}.obj")
        r = run("load", copy, "versioned", *extra, stdin=r.stdout)
        assert r.returncode == 0, r.stderr
        assert run("load", copy, "blobs", *extra, stdin=run("dump", path, "blobs").stdout).returncode == 0
        with obj.Db(copy) as db:
            assert {rec.header.type_version for rec in db.dump_raw("versioned")} == {2}
            assert [d.n for _, d in db.all(Versioned)] == [0, 1, 2, 4, 5, 6, 7, 8, 9]  # no migrate() call
            assert db.find_unique(Versioned, "email", "7@x").n == 7
            assert [d.n for _, d in db.index_range(Versioned, "n", 2, 6)] == [2, 4, 5]
            assert [i.name for i in db.stat().collections[1].indexes] == ["email", "n"]
            ids = [i for i, _ in db.all("versioned")]
            assert ids == ([1, 2, 3, 5, 6, 7, 8, 9, 10] if extra else list(range(1, 10)))
            assert [b for _, b in db.all("blobs")] == [b"\x00a", b"b"]
    # A truncated dump loads nothing.
    lines = run("dump", path, "versioned").stdout.splitlines()
    trunc = str(tmp_path / "trunc.obj")
    r = run("load", trunc, "versioned", stdin="\n".join(lines[:4]) + "\n")
    assert r.returncode == cli.EXIT_ERROR and "announced 9" in r.stderr
    with obj.Db(trunc) as db:
        assert db.count("versioned") == 0


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


def run_env(*args, env=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def test_backup_restore_compact(path, tmp_path):
    with obj.Db(path) as db:
        db.insert_many("orders", [{"n": i, "pad": "x" * 300} for i in range(3000)])
        with db.transaction() as tx:
            for i in range(1, 3001, 2):
                tx.delete("orders", i)
        want = list(db.all("orders"))
    for cmd in ("backup", "restore", "compact"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "--key-file" in r.stdout and "--passphrase-env" in r.stdout, cmd
    bak = str(tmp_path / "bak.obj")
    r = run("backup", path, bak)
    assert r.returncode == 0, r.stderr
    assert "backed up" in r.stderr and "[" not in r.stderr, "no progress bar when stderr is not a terminal"
    with obj.Db(bak) as db:
        assert list(db.all("orders")) == want
    # Restore: refuses an existing target without --overwrite, and one that is open.
    target = str(tmp_path / "target.obj")
    assert run("restore", bak, target).returncode == 0
    assert run("restore", bak, target).returncode == cli.EXIT_ERROR
    with obj.Db(target):
        assert run("restore", bak, target, "--overwrite").returncode == cli.EXIT_BUSY
    assert run("restore", bak, target, "--overwrite").returncode == 0
    assert run("restore", str(tmp_path / "none.obj"), target).returncode == cli.EXIT_NOT_FOUND
    with obj.Db(target) as db:
        assert list(db.all("orders")) == want
    # Compact: a dry run says what the real one then does.
    r = run("compact", "--dry-run", target)
    assert r.returncode == 0 and "would reclaim" in r.stdout, r.stderr
    reclaim = int(r.stdout.split("reclaim ")[1].split()[0])
    assert reclaim > 0
    size = os.path.getsize(target)
    copy = str(tmp_path / "compacted.obj")
    r = run("compact", target, "--to", copy)
    assert r.returncode == 0 and "into" in r.stdout, r.stderr
    assert os.path.getsize(copy) < size
    r = run("compact", target)
    assert r.returncode == 0 and "compacted" in r.stdout, r.stderr
    assert os.path.getsize(target) == size - reclaim
    assert "already compact" in run("compact", target).stdout
    for p in (target, copy):
        assert run("check", p).returncode == 0
        with obj.Db(p) as db:
            assert list(db.all("orders")) == want
    assert run("backup", str(tmp_path / "none.obj"), bak).returncode == cli.EXIT_NOT_FOUND
    assert run("compact", str(tmp_path / "none.obj")).returncode == cli.EXIT_NOT_FOUND


def test_encrypted_files(tmp_path):
    path = str(tmp_path / "secret.obj")
    with obj.Db(path, passphrase="pw one") as db:
        db.insert_many("notes", [{"text": f"SECRET-{i}"} for i in range(200)])
    env = {"OBJ_TEST_PW": "pw one"}
    assert run("stat", path).returncode == cli.EXIT_KEY
    assert run_env("stat", path, "--passphrase-env", "OBJ_TEST_PW", env={"OBJ_TEST_PW": "wrong"}).returncode \
        == cli.EXIT_KEY
    r = run_env("stat", path, "--passphrase-env", "OBJ_TEST_PW", env=env)
    assert r.returncode == 0 and "notes" in r.stdout, r.stderr
    assert run_env("stat", path, "--passphrase-env", "OBJ_TEST_UNSET").returncode == cli.EXIT_ERROR
    pwfile = tmp_path / "pw.txt"
    pwfile.write_text("pw one\n")
    assert run("check", path, "--passphrase-file", str(pwfile)).returncode == 0
    bak = str(tmp_path / "bak.obj")
    r = run_env("backup", path, bak, "--passphrase-env", "OBJ_TEST_PW", env=env)
    assert r.returncode == 0, r.stderr
    with open(bak, "rb") as f:
        assert b"SECRET-" not in f.read()
    with pytest.raises(obj.EncryptionError):
        obj.Db(bak)
    with obj.Db(bak, passphrase="pw one") as db:
        assert db.count("notes") == 200
    assert run("restore", bak, str(tmp_path / "r.obj")).returncode == cli.EXIT_KEY
    assert not os.path.exists(tmp_path / "r.obj")
    assert run("restore", bak, str(tmp_path / "r.obj"), "--passphrase-file", str(pwfile)).returncode == 0
    with obj.Db(str(tmp_path / "r.obj"), passphrase="pw one") as db:
        assert db.count("notes") == 200
    assert run("compact", path, "--to", str(tmp_path / "c.obj"), "--passphrase-file", str(pwfile)).returncode == 0
    with obj.Db(str(tmp_path / "c.obj"), passphrase="pw one") as db:
        assert db.count("notes") == 200
    # A raw key from a file of 64 hex digits; a malformed key file is bad input.
    key = bytes(range(32))
    raw = str(tmp_path / "raw.obj")
    with obj.Db(raw, key=key) as db:
        db.insert("notes", {"text": "x"})
    keyfile = tmp_path / "key.hex"
    keyfile.write_text(key.hex() + "\n")
    assert run("check", raw, "--key-file", str(keyfile)).returncode == 0
    keyfile.write_text("not a key")
    assert run("check", raw, "--key-file", str(keyfile)).returncode == cli.EXIT_ERROR
    assert run("check", raw, "--key-file", str(tmp_path / "nokey")).returncode == cli.EXIT_NOT_FOUND
    r = run("check", raw, "--key-file", str(keyfile), "--passphrase-file", str(pwfile))
    assert r.returncode == cli.EXIT_ERROR


def test_backup_progress_bar_on_a_terminal(path, tmp_path):
    import pty

    with obj.Db(path) as db:
        db.insert_many("orders", [{"n": i, "pad": "y" * 500} for i in range(4000)])
    master, slave = pty.openpty()
    try:
        # stderr is a terminal: read it while the command runs (a pty's buffer is small).
        p = subprocess.Popen([sys.executable, "-m", "obj", "backup", path, str(tmp_path / "b.obj")],
                             stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once the child has exited and closed the terminal
                break
            if not chunk:
                break
            out += chunk
        p.communicate(timeout=120)
    finally:
        os.close(master)
    assert p.returncode == 0
    text = out.decode("utf-8", "replace")
    assert "backup [" in text and "100%" in text and "pages" in text, text


def test_file_errors_are_one_line_with_their_exit_code(path, tmp_path):
    with obj.Db(path) as db:
        db.insert("orders", {"n": 1})
    missing_dir = str(tmp_path / "no" / "such")
    a_dir = str(tmp_path)
    for args, code, what in [
        (("dump", path, "orders", "-o", missing_dir + ".jsonl"), cli.EXIT_NOT_FOUND, "output file"),
        (("dump", path, "orders", "-o", a_dir), cli.EXIT_ERROR, "output file"),
        (("load", path, "orders", a_dir), cli.EXIT_ERROR, "input file"),
        (("stat", path, "--key-file", a_dir), cli.EXIT_ERROR, "key file"),
        (("stat", path, "--passphrase-file", a_dir), cli.EXIT_ERROR, "passphrase file"),
        (("stat", path, "--key-file", missing_dir), cli.EXIT_NOT_FOUND, "key file"),
        (("check", path, "--passphrase-file", missing_dir), cli.EXIT_NOT_FOUND, "passphrase file"),
    ]:
        r = run(*args)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert r.stderr.startswith(f"obj: {args[0]}: {what} "), (args, r.stderr)


def test_load_takes_its_input_after_the_options(path, tmp_path):
    with obj.Db(path) as db:
        db.insert_many("orders", [{"n": i} for i in range(3)])
    dump = tmp_path / "orders.jsonl"
    assert run("dump", path, "orders", "-o", str(dump)).returncode == 0
    for i, args in enumerate([("--ids", str(dump)), (str(dump), "--ids"), ("--ids", "--batch", "2", str(dump)),
                              ("-q", str(dump), "--batch", "2")]):
        copy = str(tmp_path / f"copy{i}.obj")
        r = run("load", copy, "orders", *args)
        assert r.returncode == 0, (args, r.stderr)
        with obj.Db(copy) as db, obj.Db(path) as src:
            assert list(db.all("orders")) == list(src.all("orders"))
    # still one input at most, and unknown options are usage errors
    r = run("load", str(tmp_path / "x.obj"), "orders", "--ids", str(dump), str(dump))
    assert r.returncode == cli.EXIT_USAGE and "unrecognized arguments" in r.stderr
    assert run("load", str(tmp_path / "x.obj"), "orders", "--bogus", str(dump)).returncode == cli.EXIT_USAGE

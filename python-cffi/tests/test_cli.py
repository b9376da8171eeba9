"""The obj command line."""

import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj
from obj import cli




def _assert_encrypted(path, passphrase, notes):
    """The file at ``path`` shows none of its plaintext, refuses an open
    without a key and holds ``notes`` notes under ``passphrase``."""
    with open(path, "rb") as f:
        assert b"SECRET-" not in f.read()
    with pytest.raises(obj.EncryptionError):
        obj.Db(path)
    with obj.Db(path, passphrase=passphrase) as db:
        assert db.count("notes") == notes

def _run_with_terminal_stderr(args, stdin=None):
    """Runs ``python -m obj *args`` with stderr on a pseudo-terminal (so
    that progress bars show); its exit code and what it wrote there."""
    import pty

    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "obj", *args], stdin=stdin, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        out = b""
        # Read while the command runs (a pty's buffer is small).
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
    return p.returncode, out.decode("utf-8", "replace")

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


def test_whole_database_dump_and_load_keep_empty_namespaces(path, tmp_path):
    with obj.Db(path) as db:
        db.insert("orders", {"n": 1})
        db.kv("settings").put(b"k", b"v")
        db.kv("empty").create()
    out = tmp_path / "all.jsonl"
    r = run("dump", path, "-o", str(out))
    assert r.returncode == 0, r.stderr
    copy = str(tmp_path / "copy.obj")
    r = run("load", copy, "--all", str(out))
    assert r.returncode == 0, r.stderr
    with obj.Db(copy) as db:
        assert db.kv_namespaces() == ["empty", "settings"]
        assert list(db.kv("settings").scan()) == [(b"k", b"v")] and list(db.kv("empty").scan()) == []
        assert [d for _, d in db.all("orders")] == [{"n": 1}]


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
    # (a failed load closes the file as a success does: no -wal or -shm is left, review 45)
    assert not os.path.exists(path + "-wal") and not os.path.exists(path + "-shm")
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
    assert run_env("stat", path, "--passphrase-env", "OBJ_TEST_UNSET").returncode == cli.EXIT_KEY  # a key missing
    pwfile = tmp_path / "pw.txt"
    pwfile.write_text("pw one\n")
    assert run("check", path, "--passphrase-file", str(pwfile)).returncode == 0
    bak = str(tmp_path / "bak.obj")
    r = run_env("backup", path, bak, "--passphrase-env", "OBJ_TEST_PW", env=env)
    assert r.returncode == 0, r.stderr
    _assert_encrypted(bak, "pw one", 200)
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
    # A key file that holds no key: exit 6, as for the other keys that cannot serve.
    for bad in (b"not a key", b"k" * 32 + b"\n", b"ab" * 31, b""):
        keyfile.write_bytes(bad)
        r = run("check", raw, "--key-file", str(keyfile))
        assert r.returncode == cli.EXIT_KEY and f"not {len(bad)} bytes" in r.stderr, r.stderr
    assert run("check", raw, "--key-file", str(tmp_path / "nokey")).returncode == cli.EXIT_NOT_FOUND
    r = run("check", raw, "--key-file", str(keyfile), "--passphrase-file", str(pwfile))
    assert r.returncode == cli.EXIT_USAGE


def test_backup_progress_bar_on_a_terminal(path, tmp_path):

    with obj.Db(path) as db:
        db.insert_many("orders", [{"n": i, "pad": "y" * 500} for i in range(4000)])
    rc, text = _run_with_terminal_stderr(["backup", path, str(tmp_path / "b.obj")])
    assert rc == 0
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


def test_failed_dump_leaves_the_output_file_alone(path, tmp_path):
    with obj.Db(path) as db:
        db.insert_many("orders", [{"n": i} for i in range(5)])
    secret = str(tmp_path / "secret.obj")
    with obj.Db(secret, passphrase="right") as db:
        db.insert("orders", {"n": 1})
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    os.chmod(out, 0o640)
    for args, code in [
        ((str(tmp_path / "none.obj"), "orders"), cli.EXIT_NOT_FOUND),
        ((path, "nothing"), cli.EXIT_NOT_FOUND),
        ((secret, "orders"), cli.EXIT_KEY),
        ((secret, "orders", "--passphrase-env", "OBJ_TEST_PW"), cli.EXIT_KEY),
    ]:
        r = run_env("dump", *args, "-o", str(out), env={"OBJ_TEST_PW": "wrong"})
        assert r.returncode == code, (args, r.stderr)
        assert out.read_text() == "precious\n", args
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")], "no temporary file left"
    # A database file is never overwritten with JSON lines.
    r = run("dump", path, "orders", "-o", secret)
    assert r.returncode == cli.EXIT_ERROR and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "obj database" in r.stderr
    with obj.Db(secret, passphrase="right") as db:
        assert db.count("orders") == 1
    # Nor its -wal or -shm, which hold its last commits and its locks.
    for side in ("-wal", "-shm"):
        r = run("dump", path, "orders", "-o", secret + side)
        assert r.returncode == cli.EXIT_ERROR and "belongs to the database" in r.stderr, r.stderr
        assert not os.path.exists(secret + side)
    # A complete dump replaces the file, keeping its permissions.
    assert run("dump", path, "orders", "-o", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 6 and os.stat(out).st_mode & 0o777 == 0o640
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="Linux only")
def test_the_next_dump_removes_what_a_killed_one_left(path, tmp_path):
    with obj.Db(path) as db:
        db.insert_many("orders", [{"n": i, "pad": "x" * 1000} for i in range(30_000)])
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    p = subprocess.Popen([sys.executable, "-m", "obj", "dump", path, "orders", "-o", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Killed as soon as it writes its temporary output file.
        deadline = time.monotonic() + 30
        writing = False
        while not writing and p.poll() is None and time.monotonic() < deadline:
            try:
                links = [os.readlink(f"/proc/{p.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{p.pid}/fd")]
            except OSError:
                links = []
            writing = any(x.startswith(str(tmp_path / ".out.jsonl.")) for x in links)
        assert writing, "the dump never opened its output"
        p.kill()
    finally:
        p.kill()
        p.wait()
    assert out.read_text() == "precious\n"
    left = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert len(left) == 1, os.listdir(tmp_path)
    # A living dump's temporary file is left alone; an abandoned one goes.
    other = tmp_path / ".out.jsonl.0123abcd.tmp"
    with open(other, "wb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        r = run("dump", path, "orders", "-o", str(out), "--limit", "3")
        assert r.returncode == 0, r.stderr
        assert len(out.read_text().splitlines()) == 4  # a header line and 3 documents
        assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".tmp")) == [other.name]


def test_dump_to_stdout_writes_utf8_whatever_the_locale(path):
    with obj.Db(path) as db:
        db.insert("notes", {"text": "caf\u00e9 \u20ac \U0001f600"})
    r = subprocess.run([sys.executable, "-m", "obj", "dump", path, "notes"], capture_output=True,
                       env=dict(os.environ, PYTHONIOENCODING="ascii"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode("utf-8").splitlines()
    assert json.loads(lines[1])["doc"] == {"text": "caf\u00e9 \u20ac \U0001f600"}


def _header(**fields):
    """A collection section's header with every field, ``fields`` over the defaults."""
    h = {"obj_export": 1, "collection": "c", "kind": "documents", "next_id": 1, "count": 0, "indexes": []}
    return json.dumps({**h, **fields}, separators=(",", ":"))


@pytest.mark.parametrize("text", [
    _header(indexes=[{}]),
    _header(indexes=5),
    _header(indexes={"by_n": "n"}),
    _header(indexes=[{"name": "i", "kind": "standard", "fields": "n"}]),
    _header(indexes=[{"name": 1, "kind": "standard", "fields": ["n"]}]),
    _header(kind=["raw"]),
    _header(count=2) + '\n{"id":1,"doc":{}}\n{"id":2,"v":99999999999,"doc":{}}',
    _header(count=1) + '\n{"id":1,"v":-1,"doc":{}}',
    _header(count=1) + '\n{"id":1,"v":"1","doc":{}}',
    '{"obj_export":1',
    '{"id":1,"doc":{}}\n{"id":-1,"doc":{}}',
    '{"id":18446744073709551615,"doc":{}}',
    '{"id":36893488147419103232,"doc":{}}',
    '{"id":1,"doc":{}}\n{"id":' + "9" * 5000 + ',"doc":{}}',
    '{"id":-1,"doc":{}}',
    '[1, 2]',
])
def test_load_bad_input_is_one_line_and_writes_nothing(path, text):
    with obj.Db(path) as db:
        db.insert("c", {"n": 0})
    r = run("load", path, "c", "--ids", stdin=text + "\n")
    assert r.returncode == cli.EXIT_ERROR, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("obj: load: ") and "line " in r.stderr, r.stderr
    with obj.Db(path) as db:
        assert list(db.all("c")) == [(1, {"n": 0})]
        assert [i.name for i in db.stat().collections[0].indexes] == []


def test_load_without_ids_ignores_their_range(path):
    r = run("load", path, "c", stdin=_header(count=1) + '\n{"id":-1,"v":4294967295,"doc":{"n":1}}\n')
    assert r.returncode == 0, r.stderr
    with obj.Db(path) as db:
        assert [(rec.id, rec.header.type_version) for rec in db.dump_raw("c")] == [(1, 4294967295)]


def test_rekey_encrypts_changes_the_key_and_decrypts(path, tmp_path):
    with obj.Db(path) as db:
        db.insert_many("notes", [{"text": f"SECRET-{i}"} for i in range(50)])
    keyfile = tmp_path / "key.bin"
    keyfile.write_bytes(bytes(range(32)))
    pwfile = tmp_path / "pw.txt"
    pwfile.write_text("pw two\n")
    env = {"OBJ_TEST_PW": "pw one"}
    assert "rekey" in run("--help").stdout
    r = run("rekey", "--help")
    assert r.returncode == 0 and "--new-passphrase-env" in r.stdout and "--decrypt" in r.stdout
    # Encrypt a plain file.
    r = run_env("rekey", path, "--new-passphrase-env", "OBJ_TEST_PW", env=env)
    assert r.returncode == 0, r.stderr
    _assert_encrypted(path, "pw one", 50)
    # Change the passphrase; then to a raw key.
    r = run_env("rekey", path, "--passphrase-env", "OBJ_TEST_PW", "--new-passphrase-file", str(pwfile), env=env)
    assert r.returncode == 0, r.stderr
    with pytest.raises(obj.EncryptionError):
        obj.Db(path, passphrase="pw one")
    with obj.Db(path, passphrase="pw two") as db:
        assert db.count("notes") == 50
    r = run("rekey", path, "--passphrase-file", str(pwfile), "--new-key-file", str(keyfile))
    assert r.returncode == 0, r.stderr
    with obj.Db(path, key=bytes(range(32))) as db:
        assert db.count("notes") == 50
    # A wrong current key; a file held open elsewhere.
    r = run("rekey", path, "--passphrase-file", str(pwfile), "--decrypt")
    assert r.returncode == cli.EXIT_KEY and len(r.stderr.strip().splitlines()) == 1, r.stderr
    with obj.Db(path, key=bytes(range(32))):
        assert run("rekey", path, "--key-file", str(keyfile), "--decrypt").returncode == cli.EXIT_BUSY
    # Decrypt.
    r = run("rekey", path, "--key-file", str(keyfile), "--decrypt")
    assert r.returncode == 0, r.stderr
    with obj.Db(path) as db:
        assert db.count("notes") == 50
    # Exactly one of the new-key options.
    for args in ((), ("--decrypt", "--new-key-file", str(keyfile)),
                 ("--new-passphrase-file", str(pwfile), "--new-key-file", str(keyfile))):
        r = run("rekey", path, *args)
        assert r.returncode == cli.EXIT_USAGE, (args, r.stderr)
    assert run("rekey", str(tmp_path / "none.obj"), "--decrypt").returncode == cli.EXIT_NOT_FOUND
    with obj.Db(path) as db:
        assert db.count("notes") == 50


def test_two_key_options_are_bad_usage(path, tmp_path):
    obj.Db(path).close()
    keyfile = tmp_path / "key.bin"
    keyfile.write_bytes(bytes(32))
    for cmd in (("stat", path), ("dump", path, "c"), ("load", path, "c"), ("backup", path, str(tmp_path / "b.obj")),
                ("restore", path, str(tmp_path / "r.obj")), ("compact", path), ("rekey", path, "--decrypt")):
        r = run_env(*cmd, "--key-file", str(keyfile), "--passphrase-env", "OBJ_TEST_PW", env={"OBJ_TEST_PW": "x"})
        assert r.returncode == cli.EXIT_USAGE, (cmd, r.stderr)
    a = cli.build_parser().parse_args(["stat", path])
    a.key_file, a.passphrase_env = str(keyfile), "OBJ_TEST_PW"  # set past parsing: the same exit code
    with pytest.raises(cli.UsageError):
        cli._key(a)


def test_load_progress_bar_when_stdin_is_a_file(path, tmp_path):

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(2000)))
    with open(src, "rb") as stdin:
        rc, text = _run_with_terminal_stderr(["load", path, "c", "--batch", "100"], stdin=stdin)
    assert rc == 0
    assert "loading [" in text and "100%" in text and "2000 docs" in text, text
    with obj.Db(path) as db:
        assert db.count("c") == 2000


def test_load_refuses_a_bad_collection_name_before_reading(tmp_path):
    dump = tmp_path / "all.jsonl"
    dump.write_text('{"obj_export": 1, "collection": "c", "count": 0}\n')
    target = str(tmp_path / "new.obj")
    # a dump given where the collection goes: refused at once, with a hint,
    # and no database created (stdin is never read); bad usage (exit 2),
    # whatever the path's characters (session 41's review)
    r = run("load", target, str(dump), stdin="")
    assert r.returncode == cli.EXIT_USAGE and "--all" in r.stderr, r.stderr
    for bad in ("", "x" * 201, "a/b"):
        r = run("load", target, bad, stdin='{"n": 1}\n')
        assert r.returncode == cli.EXIT_ERROR and "1 to 200 bytes" in r.stderr and "--all" not in r.stderr, r.stderr
    assert not os.path.exists(target)
    assert run("load", target, "x" * 200, stdin='{"n": 1}\n').returncode == 0


def test_maintenance_commands_leave_an_empty_file_alone(tmp_path):
    empty = tmp_path / "empty.obj"
    empty.write_bytes(b"")
    for cmd in (["stat"], ["check"], ["checkpoint"], ["compact"], ["compact", "--dry-run"]):
        r = run(*cmd, str(empty))
        assert r.returncode == cli.EXIT_PROBLEMS, (cmd, r.stderr)
        assert "empty (0 bytes): not an obj database yet" in r.stderr, (cmd, r.stderr)
        assert empty.stat().st_size == 0 and not os.path.exists(str(empty) + "-wal")
    # whatever sits beside it: a WAL that is no log...
    (tmp_path / "empty.obj-wal").write_bytes(os.urandom(5000))
    for cmd in ("checkpoint", "compact"):
        assert run(cmd, str(empty)).returncode == cli.EXIT_PROBLEMS and empty.stat().st_size == 0
    # ...or the log of a database whose main file was lost: every command
    # says so (a corruption), never "not an obj database yet"
    lost = tmp_path / "lost.obj"
    code = f"import obj, os; db = obj.Db({str(lost)!r}); db.kv('k').put(b'a', b'b'); os._exit(0)"
    assert subprocess.run([sys.executable, "-c", code], env=os.environ).returncode == 0
    os.replace(str(lost) + "-wal", str(empty) + "-wal")
    for cmd in ("stat", "check", "checkpoint", "compact"):
        r = run(cmd, str(empty))
        assert r.returncode == cli.EXIT_PROBLEMS and "holds a database's log" in r.stderr, (cmd, r.stderr)
        assert empty.stat().st_size == 0
    os.remove(str(empty) + "-wal")
    # load is how an empty file becomes a database
    assert run("load", str(empty), "c", stdin='{"n": 1}\n').returncode == 0
    assert run("checkpoint", str(empty)).returncode == 0


def test_commands_refuse_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo.obj"
    os.mkfifo(fifo)
    for target in (str(fifo), "/dev/null", str(tmp_path)):
        for cmd in ("stat", "check", "checkpoint"):
            r = subprocess.run([sys.executable, "-m", "obj", cmd, target], capture_output=True, text=True,
                               timeout=60, env=os.environ)
            why = "is a directory" if target == str(tmp_path) else "is not a regular file"
            # as for any file that is not an obj database
            assert r.returncode == cli.EXIT_PROBLEMS and why in r.stderr, (cmd, target, r.stderr)
    # the caller's mistake, not an I/O failure
    for target, why in ((fifo, "is not a regular file"), (tmp_path, "is a directory")):
        with pytest.raises(obj.NotADatabaseError, match=why):
            obj.Db(str(target))
        with pytest.raises(obj.NotADatabaseError, match=why):
            obj.Db(str(target), read_only=True)


def test_a_progress_bar_ends_its_line_before_an_error(tmp_path):
    # (session 30: the error came on the bar's line)
    path = str(tmp_path / "d.obj")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"a": {i}}}\n' for i in range(2000)) + "not json\n")
    rc, text = _run_with_terminal_stderr(["load", path, "c", str(src), "--batch", "100"])
    assert rc == 5
    bar, sep, error = text.rpartition("obj: load: line 2001:")
    assert sep and "loading [" in bar, text
    assert bar.endswith("\n") or bar.endswith("\r\n"), repr(text[-300:])


def test_dump_and_export_to_dev_stdout_append_to_a_redirected_log(tmp_path):
    """``obj dump DB -o /dev/stdout >> log`` and ``db.export("/dev/stdout")``
    with stdout redirected to a log: the log keeps its lines (a file
    renamed over it dropped them)."""
    path = str(tmp_path / "d.obj")
    with obj.Db(path) as db:
        db.insert_many("c", [{"n": i} for i in range(5)])
    log = tmp_path / "log"
    log.write_text("PRECIOUS\n")
    code = ("import obj, sys; db = obj.Db(sys.argv[1]); "
            "print(db.export('/dev/stdout', 'c')['documents'], file=sys.stderr)")
    for argv in ([sys.executable, "-m", "obj", "dump", path, "c", "-o", "/dev/stdout"],
                 [sys.executable, "-c", code, path]):
        with open(log, "ab") as out:
            r = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "PRECIOUS" and len(lines) == 1 + 2 * 6
    assert [json.loads(x)["doc"]["n"] for x in lines[2:7]] == list(range(5))

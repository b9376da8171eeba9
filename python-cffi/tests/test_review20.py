"""Session 20's encryption review: a passphrase is never echoed in an error
and may be any bytes but NUL (the command line reads it from a file or the
environment, which need not hold UTF-8); a rekey keeps the catalog version,
so another handle's later catalog changes cannot bring it back to a value
this handle's caches were learnt at."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj


def test_a_passphrase_that_is_not_utf8_is_never_echoed(tmp_path):
    secret = "MySecretPass\ud800"  # a lone surrogate: no bytes can hold it
    with pytest.raises(obj.InvalidArgumentError) as e:
        obj.Db(str(tmp_path / "a.obj"), passphrase=secret)
    assert "MySecret" not in str(e.value)


def test_a_passphrase_of_any_bytes_opens_its_file(tmp_path):
    path = str(tmp_path / "b.obj")
    latin1 = "clé secrète".encode("latin-1")  # not valid UTF-8
    with obj.Db(path, passphrase=latin1) as db:
        db.insert("c", {"a": 1})
    with obj.Db(path, passphrase=latin1) as db:
        assert db.get("c", 1) == {"a": 1}
    with pytest.raises(obj.EncryptionError):
        obj.Db(path, passphrase="clé secrète")  # the UTF-8 spelling is another key
    # A str decoded from those bytes with surrogateescape (as os.environ
    # and sys.argv give them) is the same passphrase.
    with obj.Db(path, passphrase=latin1.decode("utf-8", "surrogateescape")) as db:
        assert db.get("c", 1) == {"a": 1}


def test_the_cli_takes_a_passphrase_that_is_not_utf8(tmp_path):
    path = str(tmp_path / "c.obj")
    latin1 = "clé".encode("latin-1")
    with obj.Db(path, passphrase=latin1) as db:
        db.insert("c", {"a": 1})
    env = {k.encode(): v.encode() for k, v in os.environ.items()} | {b"OBJ_PW": latin1}
    r = subprocess.run([sys.executable, "-m", "obj", "check", path, "--passphrase-env", "OBJ_PW"],
                       capture_output=True, env=env)
    assert r.returncode == 0, r.stderr
    pw_file = tmp_path / "pw"
    pw_file.write_bytes(latin1 + b"\n")
    r = subprocess.run([sys.executable, "-m", "obj", "check", path, "--passphrase-file", str(pw_file)],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    env[b"OBJ_PW"] = b"Zq9secret\xff"
    r = subprocess.run([sys.executable, "-m", "obj", "check", path, "--passphrase-env", "OBJ_PW"],
                       capture_output=True, env=env)
    assert r.returncode == 6, r.stderr
    assert b"Zq9" not in r.stderr


@obj.document(collection="users")
@dataclass
class User:
    email: Annotated[str, obj.Unique]


def _version(db):
    with db.read_transaction() as tx:
        return tx._c_catalog_version()


def test_a_rekey_keeps_the_catalog_version(tmp_path):
    path = str(tmp_path / "r.obj")
    a = obj.Db(path)
    for i in range(8):
        with a.transaction() as tx:
            tx.create_collection(f"t{i}")
        a.drop_collection(f"t{i}")
    a.insert(User("a@x"))
    before = _version(a)
    a.rekey(key=bytes(32))
    assert _version(a) == before
    # Another handle recreates the collection without its index and moves
    # the version on; this handle must see the change, not its old cache.
    b = obj.Db(path, key=bytes(32))
    with b.transaction() as tx:
        rows = [d for _, d in tx.iter_all("users")]
        tx.drop_collection("users")
        for d in rows:
            tx.insert("users", d)
    assert _version(b) > before
    b.close()
    with pytest.raises(obj.ConstraintError):
        a.insert(User("a@x"))
    a.close()

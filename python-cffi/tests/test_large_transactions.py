"""A write transaction larger than ``max_dirty_bytes`` writes its oldest
changed pages to the WAL before its commit and still commits, or rolls
back, as a whole; readers never see those pages early."""

from __future__ import annotations

import os

import pytest

import obj

LIMIT = 64 * 4096  # 64 pages


def doc(i: int, round_: int = 0) -> dict:
    return {"email": f"u{i}@x", "n": i % 37, "round": round_, "note": "z" * (80 + i % 50)}


def test_a_transaction_past_the_limit_commits_everything(tmp_path):
    path = str(tmp_path / "big.obj")
    with obj.Db(path, max_dirty_bytes=LIMIT, cache_size=LIMIT) as db:
        with db.transaction() as tx:
            tx.create_index("docs", "email", "email", kind="unique")
        reader = db.read_transaction()
        reader.__enter__()
        with db.transaction() as tx:
            ids = [tx.insert("docs", doc(i)) for i in range(6000)]
            for i in range(0, 6000, 3):
                tx.update("docs", ids[i], lambda d: {**d, "round": 1})
            # The transaction reads its own writes, spilled or not.
            assert tx.get("docs", ids[4998])["email"] == "u4998@x"
            assert tx.find_unique("docs", "email", "u17@x")["round"] == 0
            # Pages went to the WAL ahead of the commit ...
            assert os.path.getsize(path + "-wal") > 200 * 4096
            # ... and no reader sees them.
            assert reader.count("docs") == 0
            assert db.count("docs") == 0
        assert reader.count("docs") == 0  # its snapshot predates the commit
        reader.__exit__(None, None, None)
        assert db.count("docs") == 6000
        assert sum(d["round"] for _, d in db.all("docs")) == 2000
        db.integrity_check()
    with obj.Db(path) as db:
        assert db.count("docs") == 6000
        assert db.find_unique("docs", "email", "u5999@x")["n"] == 5999 % 37


def test_a_failed_large_transaction_leaves_no_trace(tmp_path):
    path = str(tmp_path / "rollback.obj")
    with obj.Db(path, max_dirty_bytes=LIMIT) as db:
        db.insert("docs", doc(-1))
        with pytest.raises(RuntimeError):
            with db.transaction() as tx:
                for i in range(6000):
                    tx.insert("docs", doc(i))
                raise RuntimeError("give up")
        assert db.count("docs") == 1
        db.insert("docs", doc(-2))
        assert db.count("docs") == 2
        db.integrity_check()
    with obj.Db(path) as db:
        assert sorted(d["email"] for _, d in db.all("docs")) == ["u-1@x", "u-2@x"]


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, "64", True])
def test_max_dirty_bytes_must_be_a_size(tmp_path, bad):
    with pytest.raises(obj.InvalidArgumentError, match="max_dirty_bytes"):
        obj.Db(str(tmp_path / "x.obj"), max_dirty_bytes=bad)


_FULL_DISK = r"""
import os, resource, signal, sys
import obj
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, as a full disk gives ENOSPC
path = sys.argv[1]
db = obj.Db(path, max_dirty_bytes=8 * 4096)
with db.transaction() as tx:
    tx.create_index("c", "n", "n")
db.insert("c", {"n": -1})
db.checkpoint()
resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, resource.RLIM_INFINITY))
tx = db.transaction()
n = 0
try:
    while True:
        tx.insert("c", {"n": n, "pad": "b" * 200})
        n += 1
except obj.ObjError as e:
    assert type(e) is obj.ObjError or "I/O" in str(e), repr(e)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
# The insert stopped halfway (index entry written, document not): the
# transaction refuses everything but a rollback.
for attempt in (lambda: tx.insert("c", {"n": 0}), tx.commit):
    try:
        attempt()
        raise SystemExit("a broken transaction accepted a change or its commit")
    except obj.InvalidArgumentError as e:
        assert "failed midway" in str(e), e
# (The refused commit ended the transaction: rolled back.)
assert db.count("c") == 1
db.insert("c", {"n": -2})
db.integrity_check()
db.close()
print("ok", n)
"""


def test_a_full_disk_during_a_spill_breaks_only_that_transaction(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path / "full.obj")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr
    assert int(r.stdout.split()[1]) > 100  # it did spill before the disk filled
    with obj.Db(str(tmp_path / "full.obj")) as db:
        assert sorted(d["n"] for _, d in db.all("c")) == [-2, -1]
        db.integrity_check()

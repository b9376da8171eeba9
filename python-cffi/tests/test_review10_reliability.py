"""Reliability fixes from review 10, as a Python user meets them: a WAL
from an earlier state of the same database is a CorruptionError (it was
replayed, silently undoing the commits made since), a bit flip in the
file's magic is a CorruptionError (it was "not an obj database"), and a
child killed with SIGKILL in the middle of committing loses nothing it
acknowledged (``OBJ_PY_KILL_CYCLES`` cycles, default 3)."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import obj


def _wal(path):
    return path + "-wal"


def test_a_stale_wal_is_a_corruption_error_not_a_silent_rollback(path, tmp_path):
    with obj.Db(path) as db:
        db.insert_many("c", [{"i": i} for i in range(30)])
    db = obj.Db(path)
    db.kv("k").put(b"a", b"1")
    try:
        with db:
            raise RuntimeError("leave without the checkpoint: the -wal stays")
    except RuntimeError:
        pass
    saved = str(tmp_path / "saved-wal")
    shutil.copy(_wal(path), saved)
    with obj.Db(path) as db:
        assert db.kv("k").get(b"a") == b"1"
        db.kv("k").delete(b"a")
        db.insert("c", {"i": 30})
    assert not os.path.exists(_wal(path))
    before = open(path, "rb").read()

    shutil.copy(saved, _wal(path))
    with pytest.raises(obj.CorruptionError, match="stale WAL") as err:
        obj.Db(path)
    assert err.value.status_name == "OBJ_CORRUPTION"
    assert open(path, "rb").read() == before
    os.remove(_wal(path))
    with obj.Db(path) as db:
        assert db.count("c") == 31
        assert db.kv("k").get(b"a") is None
        db.integrity_check()


def test_a_flipped_bit_in_the_magic_is_a_corruption_error(path):
    with obj.Db(path) as db:
        db.insert("c", {"a": 1})
    good = open(path, "rb").read()
    for at in range(8):
        bad = bytearray(good)
        bad[at] ^= 0x04
        open(path, "wb").write(bad)
        with pytest.raises(obj.CorruptionError, match="magic"):
            obj.Db(path)
    open(path, "wb").write(b"plain text, not a database\n" * 400)
    with pytest.raises(obj.InvalidArgumentError, match="not an obj database"):
        obj.Db(path)


_CHILD = r"""
import sys
import obj
db = obj.Db(sys.argv[1])
i = int(sys.argv[2])
while True:
    with db.transaction() as tx:
        for j in range(3):
            tx.insert("c", {"u": f"{i}-{j}", "t": i, "pad": "x" * (i * 131 % 5000)})
        tx.kv("k").put(b"t%08d" % i, b"3")
    print(i, flush=True)
    i += 1
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_while_committing_loses_nothing_acknowledged(path, tmp_path):
    cycles = int(os.environ.get("OBJ_PY_KILL_CYCLES", "3"))
    with obj.Db(path) as db:
        db.create_index("c", "u", ["u"], kind="unique")
    child = tmp_path / "child.py"
    child.write_text(_CHILD)
    acked: set[int] = set()
    start = 0
    for cycle in range(cycles):
        p = subprocess.Popen([sys.executable, str(child), path, str(start)], stdout=subprocess.PIPE)
        first = p.stdout.readline()  # one commit acknowledged, then kill at once or a little later
        time.sleep((cycle % 4) * 0.02)
        p.send_signal(signal.SIGKILL)
        rest = p.stdout.read()
        p.wait()
        acked.update(int(x) for x in (first + rest).split())
        with obj.Db(path) as db:
            by_t: dict[int, list[str]] = {}
            for _, d in db.all("c"):
                by_t.setdefault(d["t"], []).append(d["u"])
            kv = dict(db.kv("k").scan())
            for t in acked:
                assert sorted(by_t.get(t, [])) == [f"{t}-{j}" for j in range(3)], (cycle, t)
            # At most one commit beyond the acknowledged ones, and whole.
            extra = set(by_t) - acked
            assert len(extra) <= 1, extra
            for t, us in by_t.items():
                assert len(us) == 3 and kv[b"t%08d" % t] == b"3"
                for u in us:
                    assert db.find_unique("c", "u", u) is not None
            db.integrity_check()
            acked |= extra
            start = max(acked) + 1 if acked else 0

"""--busy-timeout MS on the commands that open a database: how long to wait
for another process's lock before exit code 4 (the library's 5 s before)."""

from __future__ import annotations

import subprocess
import sys
import time

import obj

LINES = "".join(f'{{"i": {i}}}\n' for i in range(10))


def load(path, *options):
    return subprocess.Popen([sys.executable, "-m", "obj", "load", str(path), "d", "-q", *options],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_busy_timeout_sets_the_wait_for_another_process(tmp_path):
    path = tmp_path / "b.obj"
    with obj.Db(path) as db:
        db.insert("d", {"i": -1})
        tx = db.transaction()
        tx.insert("d", {"i": -2})  # holds the write lock
        t0 = time.monotonic()
        p = load(path, "--busy-timeout", "200")
        _, err = p.communicate(LINES, timeout=60)
        waited = time.monotonic() - t0
        assert p.returncode == 4, err
        assert waited < 4, waited  # not the default 5 s
        # A longer wait outlasts the holder.
        p = load(path, "--busy-timeout", "30000")
        p.stdin.write(LINES)
        p.stdin.close()
        time.sleep(1.0)
        assert p.poll() is None, p.stderr.read()  # still waiting
        tx.commit()
        assert p.wait(timeout=60) == 0, p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        assert db.count("d") == 12
    r = subprocess.run([sys.executable, "-m", "obj", "stat", str(path), "--busy-timeout", "-1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "must be at least 0" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "obj", "check", str(path), "--busy-timeout", "100"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

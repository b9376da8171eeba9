"""Review 43 (disk-full review): a load with --commit-every that failed
said only why it failed, not that what it had committed stays."""

from __future__ import annotations

import subprocess
import sys

import obj


def test_a_failed_load_with_commit_every_says_what_it_kept(tmp_path):
    path = tmp_path / "c.obj"
    lines = "".join(f'{{"i": {i}}}\n' for i in range(2600)).replace('{"i": 2500}', '{"i": ')
    r = subprocess.run([sys.executable, "-m", "obj", "load", str(path), "d", "-q", "--batch", "500",
                        "--commit-every", "1000"], input=lines, capture_output=True, text=True)
    assert r.returncode == 5 and "line 2501" in r.stderr, r.stderr
    assert f"2000 documents and entries committed before the error (--commit-every) stay in {path}" in r.stderr
    with obj.Db(path) as db:
        assert db.count("d") == 2000
    # Without --commit-every nothing is kept, and nothing is said of it.
    r = subprocess.run([sys.executable, "-m", "obj", "load", str(path), "e", "-q"], input=lines,
                       capture_output=True, text=True)
    assert r.returncode == 5 and "committed before the error" not in r.stderr, r.stderr

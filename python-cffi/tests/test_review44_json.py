"""Review 44 (JSON fidelity helper): an integer literal beyond the 64-bit
ranges in JSON from other tools was stored as the nearest float, losing
digits without a word; it is refused now, on every JSON entry point."""

from __future__ import annotations

import subprocess
import sys

import obj


def test_load_refuses_an_integer_beyond_64_bits_instead_of_rounding_it(tmp_path):
    path = tmp_path / "b.obj"
    lines = '{"a": 1}\n{"a": 123456789012345678901234567890}\n{"a": 1e30}\n'
    r = subprocess.run([sys.executable, "-m", "obj", "load", str(path), "d", "-q"], input=lines,
                       capture_output=True, text=True)
    assert r.returncode == 5, r.stderr
    assert "line 2" in r.stderr and "the integer 123456789012345678901234567890 is beyond the 64-bit range" in r.stderr
    with obj.Db(path) as db:
        assert db.count("d") == 0
        # A float written with an exponent is a float, however large.
        r = subprocess.run([sys.executable, "-m", "obj", "load", str(path), "d", "-q"], input='{"a": 1e30}\n',
                           capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with obj.Db(path) as db:
        assert [d for _, d in db.all("d")] == [{"a": 1e30}]


def test_malformed_json_with_a_large_float_reports_its_own_error(tmp_path):
    # Python's json.dumps writes -Infinity; beside a float beyond 2^64 that
    # was "the integer - is beyond the 64-bit range".
    path = tmp_path / "m.obj"
    r = subprocess.run([sys.executable, "-m", "obj", "load", str(path), "d", "-q"],
                       input='{"a": 1e20, "b": -Infinity}\n', capture_output=True, text=True)
    assert r.returncode == 5, r.stderr
    assert "64-bit range" not in r.stderr and "line 1" in r.stderr, r.stderr

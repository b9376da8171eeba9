"""Child-process bodies for test_review10_mp.py (importable by spawned
children through sys.path)."""

from __future__ import annotations

import random
import time

import obj


def short_reader(path: str, stop, started) -> None:
    """Overlapping short read transactions (0-20 ms each), as a web worker
    serving requests would run them, until `stop` is set."""
    db = obj.Db(path)
    started.release()
    rnd = random.Random()
    while not stop.is_set():
        with db.read_transaction() as tx:
            tx.count("h")
            time.sleep(rnd.random() * 0.02)
    db.close()

"""The body of each process in ``test_multiprocess.py`` (a module of its
own so that ``multiprocessing``'s spawn start method can import it in the
child; pytest's importlib mode does not make test modules importable)."""

from __future__ import annotations

import random
import time
import traceback
from typing import Any

COLL = "mp"


def key(proc: int, seq: int) -> str:
    """The unique key of document ``seq`` written by process ``proc``."""
    return f"{proc}:{seq}"


def run(path: str, proc: int, nprocs: int, writes: int, committed: Any, start: Any, results: Any) -> None:
    """Writes ``writes`` documents (one or two per transaction, publishing
    each committed sequence number in ``committed[proc]``) and, between
    writes, checks in a read transaction that every document any process
    had published before the transaction began is visible, and that the
    counts stay put inside the transaction and never shrink across them."""
    import obj
    from obj import field as F

    try:
        rng = random.Random(proc)
        checks = 0
        last_total = 0
        with obj.Db(path, busy_timeout_ms=20_000) as db:
            start.wait()
            seq = 0
            while seq < writes:
                n = min(rng.choice((1, 2)), writes - seq)
                with db.transaction() as tx:
                    for i in range(seq + 1, seq + n + 1):
                        tx.insert(COLL, {"proc": proc, "seq": i, "key": key(proc, i), "pad": "x" * rng.randrange(300)})
                seq += n
                committed[proc] = seq  # published only after the commit returned

                seen = list(committed[:])  # what was committed before the snapshot began
                with db.read_transaction() as rt:
                    total = rt.count(COLL)
                    assert total >= sum(seen), (total, seen)
                    assert total >= last_total, f"count went backwards across transactions: {last_total} -> {total}"
                    last_total = total
                    for j in range(nprocs):
                        if seen[j]:
                            d = rt.find_unique(COLL, "key", key(j, seen[j]))
                            assert d is not None and d["proc"] == j and d["seq"] == seen[j], (j, seen[j], d)
                            assert rt.query(COLL).filter(F("proc") == j).count() >= seen[j]
                    time.sleep(0.002)  # let the others commit meanwhile
                    again = rt.count(COLL)
                    assert again == total, f"count changed inside one read transaction: {total} -> {again}"
                    if seq % 20 == 0:  # now and then, every document of the snapshot
                        got: dict[int, set] = {}
                        for _id, d in rt.all(COLL):
                            got.setdefault(d["proc"], set()).add(d["seq"])
                        for j in range(nprocs):
                            assert got.get(j, set()) >= set(range(1, seen[j] + 1)), j
                        assert sum(len(s) for s in got.values()) == total
                    checks += 1
        results.put((proc, "ok", checks))
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put((proc, "error", traceback.format_exc()))
        raise

"""Step 6 of ../shared/bench/peers.py (single-document durable commits, one
transaction each) for obj and its peers, interleaved: a quicker and fairer
comparison of commit rates than one peers.py run, which times each engine
a minute or more apart on a disk whose fsync latency moves by several
times within minutes.

    python python-cffi/bench/commits.py [--engines obj,sqlite-json] \
        [--n 100000] [--rounds 20] [--commits 100] [--dir /tmp/x]

Each engine is loaded with the peers' N documents (step 1), then every
round runs `--commits` commits of fresh documents on each engine and
`--commits` x [append 4 KiB + fsync] (peers.py's floor), in an order
shuffled each round. Prints each engine's median rate over the rounds,
its median CPU time a commit (this process's user and system time, so
the kernel's share of each write and fdatasync counts), and the median
over the rounds of obj's rate divided by each peer's in the same round.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("OBJ_PEERS_DIR", os.path.join(HERE, "..", "..", "..", "shared", "bench")))
sys.path.insert(0, HERE)

import peers  # type: ignore[import-not-found]  # noqa: E402

import obj_adapter  # noqa: E402,F401  (registers the obj adapter)

FLOOR = "fsync floor"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engines", default="obj,sqlite-json")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--commits", type=int, default=100)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    names = a.engines.split(",")
    unknown = [x for x in names if x not in peers.ENGINES]
    if unknown:
        ap.error(f"unknown engines {unknown}; known: {sorted(peers.ENGINES)}")
    root = a.dir or tempfile.mkdtemp(prefix="obj-commits-")
    adapters = {x: peers.ENGINES[x](os.path.join(root, x)) for x in names}
    docs = peers.make_docs(a.n)
    fresh = peers.make_docs(a.rounds * a.commits, first_id=a.n + 1, seed=4242)
    rates: dict[str, list[float]] = {x: [] for x in [*names, FLOOR]}
    cpu_us: dict[str, list[float]] = {x: [] for x in names}
    try:
        for ad in adapters.values():
            ad.create()
            ad.bulk_insert(docs)
        rng = random.Random(7)
        for r in range(a.rounds):
            batch = fresh[r * a.commits:(r + 1) * a.commits]
            order = [*names, FLOOR]
            rng.shuffle(order)
            for name in order:
                gc.collect()
                if name == FLOOR:
                    us = peers.fsync_floor(a.commits, root)["median_us"]
                    rates[FLOOR].append(1e6 / us)
                    continue
                c0 = time.process_time()
                t0 = time.perf_counter()
                adapters[name].commit_loop(batch)
                rates[name].append(a.commits / (time.perf_counter() - t0))
                cpu_us[name].append((time.process_time() - c0) / a.commits * 1e6)
        for name, ad in adapters.items():
            last = [d["customer_id"] for d in fresh[-3:]]
            if ad.get_loop(last) != sum(last):
                raise AssertionError(f"{name}: the committed documents are not readable")
    finally:
        for ad in adapters.values():
            try:
                ad.close()
            except Exception:
                pass
        if a.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{a.rounds} rounds of {a.commits} commits per engine, N={a.n:,}, order shuffled each round")
    for name, rs in rates.items():
        cpu = f", CPU {statistics.median(cpu_us[name]):,.1f} µs a commit" if name in cpu_us else ""
        print(f"{name:14} median {statistics.median(rs):8,.0f} commits/s  "
              f"(rounds from {min(rs):,.0f} to {max(rs):,.0f}){cpu}")
    if "obj" in names:
        for peer in [x for x in names if x != "obj"] + [FLOOR]:
            ratios = [o / p for o, p in zip(rates["obj"], rates[peer])]
            wins = sum(x >= 1 for x in ratios)
            print(f"obj / {peer:14} median of the rounds' ratios {statistics.median(ratios):.2f}x "
                  f"(obj at least as fast in {wins} of {len(ratios)} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

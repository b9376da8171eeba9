"""Times the read steps and the bulk load of ../shared/bench/peers.py for
one engine, in this process, with the peers' data and checks: a quicker
loop than the full benchmark for comparing two builds of the package.

    python python-cffi/bench/steps.py --engine obj --n 100000 --reps 5 \
        [--steps bulk,get,email,range,region] [--dir /tmp/x]

Run it once per build (PYTHONPATH picks the package) and alternate the
builds to spread the machine's noise over both. Prints one line per step:
the median and the best of the repetitions (wall clock), and the median
CPU time of this process (the best: steadier than the wall clock on a busy machine).
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="obj")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", default="bulk,get,email,range,region")
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    if a.engine == "obj":
        import obj_adapter  # noqa: F401  (registers the adapter)
    steps = a.steps.split(",")
    n = a.n
    docs = peers.make_docs(n)
    rng = random.Random(1234)
    ids = [rng.randint(1, n) for _ in range(100_000)]
    rng = random.Random(5678)
    eids = [rng.randint(1, n) for _ in range(100_000)]
    emails = [f"user{i}@example.com" for i in eids]
    rng = random.Random(9012)
    starts = [rng.randint(1, max(1, n - peers.RANGE_WIDTH)) for _ in range(10_000)]
    exp_range = (sum(min(a + peers.RANGE_WIDTH, n) - a + 1 for a in starts),
                 sum(sum(range(a, min(a + peers.RANGE_WIDTH, n) + 1)) for a in starts))
    regions = [peers.REGIONS[j % len(peers.REGIONS)] for j in range(8)]
    exp_region = sum(sum(1 for d in docs if d["region"] == r) for r in regions)
    root = a.dir or tempfile.mkdtemp(prefix="obj-steps-")
    ad = peers.ENGINES[a.engine](os.path.join(root, a.engine))

    def run(name, fn, check, per, unit):
        ts, cs = [], []
        for _ in range(a.reps):
            gc.collect()
            c0 = time.process_time()
            t0 = time.perf_counter()
            r = fn()
            ts.append(time.perf_counter() - t0)
            cs.append(time.process_time() - c0)
            if check is not None and r != check:
                raise AssertionError(f"{name}: {r!r} != {check!r}")
        med, best = statistics.median(ts), min(ts)
        print(f"{a.engine:14} {name:7} median {per(med):10,.1f} best {per(best):10,.1f} "
              f"cpu best {per(min(cs)):10,.1f} {unit}", flush=True)

    try:
        if "bulk" in steps:
            ts, cs = [], []
            for _ in range(a.reps):
                ad.create()
                gc.collect()
                c0 = time.process_time()
                t0 = time.perf_counter()
                ad.bulk_insert(docs)
                ts.append(time.perf_counter() - t0)
                cs.append(time.process_time() - c0)
                ad.close()
            print(f"{a.engine:14} bulk    median {n / statistics.median(ts):10,.0f} best "
                  f"{n / min(ts):10,.0f} cpu best {n / min(cs):10,.0f} docs/s", flush=True)
        else:
            ad.create()
            ad.bulk_insert(docs)
            ad.close()
        ad.open()
        if "get" in steps:
            run("get", lambda: ad.get_loop(ids), sum(ids), lambda t: t / len(ids) * 1e9, "ns/op")
        if "email" in steps:
            run("email", lambda: ad.email_loop(emails), sum(eids), lambda t: t / len(emails) * 1e9, "ns/op")
        if "range" in steps:
            run("range", lambda: ad.range_loop(starts, peers.RANGE_WIDTH), exp_range,
                lambda t: t / len(starts) * 1e6, "us/query")
        if "region" in steps:
            run("region", lambda: ad.region_loop(regions), exp_region, lambda t: t / exp_region * 1e9, "ns/doc")
        if "scan" in steps:
            run("scan", ad.scan_filter, None, lambda t: t / n * 1e9, "ns/doc")
        ad.close()
    finally:
        if a.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A multiprocessing pool forked while the database is open (the default
start method on Linux): its workers open the database themselves, and
while they live on, the parent can close its handle and open the file
again. A forked child never keeps the parent's locks."""

import multiprocessing
import time

import obj


def _write_one(args):
    path, n = args
    with obj.Db(path) as db:
        return db.insert("c", {"n": n})


def test_parent_reopens_beside_a_live_forked_pool(tmp_path):
    path = str(tmp_path / "pool.obj")
    db = obj.Db(path)
    db.insert("c", {"n": 0})
    with multiprocessing.get_context("fork").Pool(2) as pool:
        ids = pool.map(_write_one, [(path, n) for n in range(1, 5)])
        assert sorted(ids) == [2, 3, 4, 5]
        db.close()  # the last handle on the file: -wal and -shm go
        t = time.monotonic()
        with obj.Db(path) as again:  # the first opener again, the workers alive
            assert again.insert("c", {"n": 99}) == 6
            assert again.count("c") == 6
        assert time.monotonic() - t < 2, "the reopen waited for a lock"
        assert sorted(pool.map(_write_one, [(path, n) for n in range(5, 7)])) == [7, 8]
    with obj.Db(path) as db:
        assert sorted(d["n"] for _, d in db.all("c")) == [0, 1, 2, 3, 4, 5, 6, 99]

"""obj adapter for ../shared/bench/peers.py (`--adapter python-cffi/bench/obj_adapter.py`).

The fastest path a user of the obj package would write: dict documents,
declared indexes, batch calls (`insert_many`, `get_many`), one read
transaction per step, engine-side filters (`obj.field(...)`).
"""

from __future__ import annotations

import os

from peers import Adapter, register  # type: ignore[import-not-found]

import obj
from obj import field as F


@register
class ObjAdapter(Adapter):
    name = "obj"
    FILE = "db.obj"
    CACHE = 64 << 20
    GET_SLICE = 1024  # the same page cache as the sqlite peers get (cache_size=-65536)
    NOTES = ["obj: dict documents in collection 'docs' with id = customer_id (upsert at a chosen id in "
             "the bulk load: insert_many assigns ids 1..N in order, which equal customer_id here); unique "
             "index on email, standard index on region; page cache 64 MiB (as sqlite's); sync=full (every "
             "commit durable); reads of one "
             "step in one read transaction; get = get_many; scan_pushdown = engine filter."]

    def _file(self):
        return os.path.join(self.path, self.FILE)

    def create(self):
        self.destroy()
        os.makedirs(self.path, exist_ok=True)
        self.db = obj.Db(self._file(), cache_size=self.CACHE)
        with self.db.transaction() as tx:
            tx.create_collection("docs")
            tx.create_index("docs", "email", "email", kind="unique")
            tx.create_index("docs", "region", "region")

    def open(self):
        self.db = obj.Db(self._file(), cache_size=self.CACHE)

    def close(self):
        self.db.close()
        self.db = None

    def size_bytes(self):
        p = self._file()
        total = os.path.getsize(p)
        if os.path.exists(p + "-wal"):
            total += os.path.getsize(p + "-wal")
        return total

    def bulk_insert(self, docs):
        ids = self.db.insert_many("docs", docs)
        assert ids[0] == docs[0]["customer_id"] and ids[-1] == docs[-1]["customer_id"]

    def get_loop(self, ids):
        # get_many in slices of 1024 ids: one C call and one JSON parse per
        # slice, and the documents are dropped as the loop goes (as a
        # get-per-id loop drops them) instead of 100k dicts kept alive.
        s = 0
        with self.db.read_transaction() as tx:
            gm = tx.get_many
            for k in range(0, len(ids), self.GET_SLICE):
                for d in gm("docs", ids[k:k + self.GET_SLICE]):
                    s += d["customer_id"]
        return s

    def email_loop(self, emails):
        # find_unique_many in slices, like get_many in get_loop.
        s = 0
        with self.db.read_transaction() as tx:
            fm = tx.find_unique_many
            for k in range(0, len(emails), self.GET_SLICE):
                for d in fm("docs", "email", emails[k:k + self.GET_SLICE]):
                    s += d["customer_id"]
        return s

    def range_loop(self, starts, width):
        n = s = 0
        with self.db.read_transaction() as tx:
            gm = tx.get_many
            for a in starts:
                for d in gm("docs", range(a, a + width + 1)):
                    if d is not None:
                        n += 1
                        s += d["customer_id"]
        return n, s

    def region_loop(self, regions):
        n = 0
        with self.db.read_transaction() as tx:
            for r in regions:
                for _id, d in tx.query("docs").index_range("region", r, r).iter():
                    if d["region"] != r:
                        raise AssertionError("wrong region")
                    n += 1
        return n

    def scan_filter(self):
        m = 0
        for _id, d in self.db.all("docs"):
            if d["status"] == "shipped" and d["total"] > 500:
                m += 1
        return m

    def scan_pushdown(self):
        q = self.db.query("docs").filter((F("status") == "shipped") & (F("total") > 500))
        return len(q.fetch())

    def commit_loop(self, docs):
        db = self.db
        for d in docs:
            db.upsert("docs", d["customer_id"], d)

    @classmethod
    def version(cls):
        return f"obj-db {obj.__version__} (libobj {obj.library_version()}, json {obj._codec.backend()})"

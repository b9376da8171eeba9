"""End-to-end tour of the obj Python package (run by `make demo`).

Typed documents with indexes, an engine-side query, a rolled-back
transaction, a reopen, and the integrity check.

    python examples/demo.py [directory]
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Annotated

import obj


@obj.document(collection="orders", version=1,
              indexes=[obj.Composite(("region", "status"), name="by_region_status")])
@dataclass
class Order:
    email: Annotated[str, obj.Unique]
    region: Annotated[str, obj.Index]
    total: float
    tags: Annotated[list[str], obj.Each] = field(default_factory=list)
    status: str = "new"


def main(workdir: str) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    path = os.path.join(workdir, "shop.obj")
    regions = ["eu", "us", "apac"]

    with obj.Db(path) as db:
        with db.transaction() as tx:  # one commit for the whole batch
            tx.insert_many([Order(email=f"user{i}@example.com", region=regions[i % 3], total=float(i % 500),
                                  tags=["vip"] if i % 50 == 0 else [], status="shipped" if i % 4 == 0 else "new")
                            for i in range(10_000)])
        print(f"inserted {db.count(Order)} orders")

        big = db.query(Order).filter((obj.field("status") == "shipped") & (obj.field("total") > 400)).count()
        print(f"shipped orders above 400, counted in the engine: {big}")
        top = db.query(Order).filter(obj.field("region") == "eu").sort_by("-total").limit(3).fetch()
        print("top eu orders:", [(oid, o.total) for oid, o in top])
        ada = db.find_unique(Order, "email", "user42@example.com")
        print("unique lookup:", ada)
        print("vip orders via the multi-value index:", sum(1 for _ in db.index_range(Order, "tags", "vip", "vip")))

        try:
            with db.transaction() as tx:
                tx.insert(Order(email="temp@example.com", region="eu", total=1.0))
                raise RuntimeError("changed my mind")
        except RuntimeError:
            pass
        assert db.find_unique(Order, "email", "temp@example.com") is None
        print("rolled-back insert left no trace")

        try:
            db.insert(Order(email="user1@example.com", region="us", total=2.0))
        except obj.InvalidArgumentError as e:
            print("duplicate email refused:", type(e).__name__)

        oid = db.find_unique_with_id(Order, "email", "user7@example.com")[0]
        db.update(Order, oid, lambda o: setattr(o, "status", "shipped"))
        db.insert("events", {"event": "demo", "orders": 10_000})
    # clean exit: the WAL is folded into shop.obj

    with obj.Db(path) as db:
        assert db.count(Order) == 10_000
        assert db.get(Order, oid).status == "shipped"
        print("reopened: 10000 orders, update kept;", db.integrity_check().pages, "pages checked")
        for cs in db.stat().collections:
            print(f"  {cs.name}: {cs.doc_count} docs, indexes {[i.name for i in cs.indexes]}")
    print("python demo ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "target/demo-py"))

"""File size of obj against SQLite (JSON text) for documents of several sizes.

The document shape of ../shared/bench/peers.py (customer_id, unique email,
indexed region, total, status, tags) with a note of 200 to 3,000
characters; both databases hold the same documents with the same two
indexes and are closed before they are measured:

    PYTHONPATH=python-cffi OBJ_LIB_PATH=target/release/libobj.so \\
        .venv/bin/python python-cffi/bench/doc_sizes.py [N]

Prints, for each note length, the JSON bytes a document and each file's
size and ratio to those bytes.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "bench"))
import peers  # type: ignore[import-not-found]  # noqa: E402

import obj  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    for note_len in (200, 700, 1000, 1200, 1800, 3000):
        rng = random.Random(7)
        docs = []
        for i in range(1, n + 1):
            d = peers.make_doc(rng, i)
            d["note"] = "".join(rng.choices(peers.NOTE_ALPHABET, k=note_len))
            docs.append(d)
        raw = sum(len(json.dumps(d, separators=(",", ":"))) for d in docs)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "db.obj")
            with obj.Db(path) as db:
                with db.transaction() as tx:
                    tx.create_collection("docs")
                    tx.create_index("docs", "email", "email", kind="unique")
                    tx.create_index("docs", "region", "region")
                db.insert_many("docs", docs)
            size_obj = os.path.getsize(path)
            spath = os.path.join(tmp, "db.sqlite")
            conn = sqlite3.connect(spath)
            conn.execute("CREATE TABLE docs(id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
            conn.execute("CREATE UNIQUE INDEX docs_email ON docs(json_extract(doc, '$.email'))")
            conn.execute("CREATE INDEX docs_region ON docs(json_extract(doc, '$.region'))")
            with conn:
                conn.executemany("INSERT INTO docs VALUES (?, ?)", [(d["customer_id"], json.dumps(d)) for d in docs])
            conn.close()
            size_sqlite = os.path.getsize(spath)
        print(
            f"{raw / n:6.0f} JSON bytes a document: obj {size_obj / 2**20:6.1f} MiB ({size_obj / raw:.2f}x), "
            f"sqlite-json {size_sqlite / 2**20:6.1f} MiB ({size_sqlite / raw:.2f}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()

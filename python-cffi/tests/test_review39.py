"""Review 39: what helpers and a re-read found in session 39."""

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj
from obj import cli


async def test_a_timed_out_schema_or_namespace_call_of_an_async_db_is_not_applied_later(path):
    # create_index, drop_collection and a namespace's create and drop ran
    # on a writer thread that went on waiting for the write lock after the
    # caller's wait_for had raised TimeoutError, and then wrote anyway: a
    # collection the caller was told was not dropped lost its documents.
    adb = await obj.AsyncDb.open(path, busy_timeout_ms=3000)
    try:
        await adb.insert_many("c", [{"i": i} for i in range(10)])
        await adb.insert("keep", {"x": 1})
        await adb.kv("ns_keep").put(b"a", b"b")
        held = asyncio.Event()

        async def holder():
            async with adb.transaction() as tx:
                await tx.insert("c", {"holder": 1})
                held.set()
                await asyncio.sleep(0.5)

        h = asyncio.create_task(holder())
        await held.wait()
        calls = [
            adb.create_index("c", "ix", ["i"]),
            adb.drop_collection("keep"),
            adb.kv("ns_new").create(),
            adb.kv("ns_keep").drop(),
        ]
        for call in calls:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(call, 0.02)
        await h
        await asyncio.sleep(0.3)  # (time for a late write to land, had one been queued)
        st = await adb.stat()
        colls = {c.name: [i.name for i in c.indexes] for c in st.collections}
        assert "ix" not in colls["c"]
        assert await adb.get("keep", 1) == {"x": 1}
        assert await adb.kv_namespaces() == ["ns_keep"]
        assert await adb.kv("ns_keep").get(b"a") == b"b"
        # Not held up, the same calls write and answer as the blocking Db's do.
        await adb.create_index("c", "ix", ["i"])
        assert await adb.drop_collection("keep") is True
        assert await adb.kv("ns_new").create() is True
        assert await adb.kv("ns_keep").drop() is True
        assert await adb.kv_namespaces() == ["ns_new"]
        assert [i.name for c in (await adb.stat()).collections if c.name == "c" for i in c.indexes] == ["ix"]
    finally:
        await adb.close()


@obj.document(collection="bounds39", version=1)
@dataclass
class Named:
    s: Annotated[str, obj.Index]


def test_bytes_bounds_of_a_class_index_range_read_as_utf8_as_find_unique_keys_do(path):
    # What the README's "Pre-encoded unique keys" now says of index_range.
    with obj.Db(path) as db:
        db.insert(Named("a"))
        db.insert("D", {"s": "a"})
        db.create_index("D", "s", ["s"])
        assert db.query(Named).index_range("s", b"a", b"a").ids() == [1]
        assert [i for i, _ in db.index_range(Named, "s", b"a", b"b")] == [1]
        assert db.query("D").index_range("s", b"a", b"a").ids() == []
        assert db.query(Named).filter(obj.field("s") == b"a").ids() == []
        with pytest.raises(obj.InvalidArgumentError):
            db.query(Named).index_range("s", b"\xff", None).ids()


def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "obj", *args], capture_output=True, text=True, input=stdin)


_H = '{"obj_export":1,"collection":"c","kind":"documents","next_id":9,"count":1,"indexes":[]}'


@pytest.mark.parametrize("what,text", [
    ("a repeated key", _H + '\n{"doc": {"a": 1, "a": 2}, "id": 1}'),
    ("a repeated key in a raw section",
     _H.replace('"documents"', '"raw"') + '\n{"doc": {"$bytes": "AA==", "$bytes": "AQ=="}, "id": 1}'),
    ("non-zero unused bits of base64",
     '{"obj_export":1,"kv":"k","count":1}\n{"key":{"$bytes":"AGs="},"value":{"$bytes":"/3T="}}'),
    ("base64 padding past the last block",
     '{"obj_export":1,"kv":"k","count":1}\n{"key":{"$bytes":"AGs"},"value":{"$bytes":"QUJD="}}'),
    ("a byte order mark inside a line",
     _H.replace('"documents"', '"raw"') + '\n{"id":1,"doc":\ufeff{"$bytes":"AA=="}}'),
    ("obj_export true", _H.replace('"obj_export":1', '"obj_export":true') + '\n{"id":1,"doc":{"a":1}}'),
    ("obj_export 1.0", _H.replace('"obj_export":1', '"obj_export":1.0') + '\n{"id":1,"doc":{"a":1}}'),
    ("a header without a count", '{"obj_export":1,"collection":"c","kind":"documents","next_id":9,"indexes":[]}'
     '\n{"id":1,"doc":{"a":1}}'),
    ("a header without indexes", '{"obj_export":1,"collection":"c","kind":"documents","next_id":9,"count":1}'
     '\n{"id":1,"doc":{"a":1}}'),
    ("an id with a leading zero", _H + '\n{"id":007,"doc":{"a":1}}'),
    ("a NaN literal", _H + '\n{"doc": {"a": NaN}, "id": 1}'),
])
def test_obj_load_refuses_what_db_import_refuses(tmp_path, what, text):
    # obj load read its input with Python's json and its own checks, which
    # took lines the engine's import refuses: a repeated key kept its last
    # value, base64 with non-zero unused bits loaded as other bytes, a
    # header without a count let a cut input load, True counted as 1.
    src = tmp_path / "in.jsonl"
    src.write_text(text + "\n", encoding="utf-8")
    with obj.Db(str(tmp_path / "a.obj")) as db, pytest.raises(obj.ObjError):
        db.import_(str(src))
    target = str(tmp_path / "b.obj")
    r = _cli("load", target, "--all", str(src), "-q")
    assert r.returncode == cli.EXIT_ERROR, (what, r.returncode, r.stderr)
    assert r.stderr.startswith("obj: load: line 2:") or "line 1:" in r.stderr, r.stderr
    assert not os.path.exists(target), what


def test_obj_load_reads_minus_zero_as_the_engine_does_in_every_layout(tmp_path):
    for layout in ('{"id":1,"doc":{"x":-0}}', '{"doc": {"x": -0}, "id": 1}'):
        src = tmp_path / "in.jsonl"
        src.write_text(_H + "\n" + layout + "\n")
        target = tmp_path / "m.obj"
        r = _cli("load", str(target), "--all", str(src), "-q")
        assert r.returncode == 0, r.stderr
        with obj.Db(str(target)) as db:
            x = db.get("c", 1)["x"]
        assert type(x) is float and str(x) == "-0.0", (layout, x)
        target.unlink()


def test_obj_load_refuses_document_lines_before_a_header(tmp_path):
    # With --ids they were loaded, then silently replaced by the section's
    # document of the same id.
    text = '{"id":1,"doc":{"pre":true}}\n' + _H + '\n{"id":1,"doc":{"a":1}}\n'
    target = str(tmp_path / "p.obj")
    r = _cli("load", target, "c", "--ids", "-q", stdin=text)
    assert r.returncode == cli.EXIT_ERROR and "header comes first" in r.stderr, r.stderr
    assert not os.path.exists(target)


def test_obj_load_writes_a_batch_once_it_holds_its_bytes(tmp_path, monkeypatch):
    # --batch counts documents: 5,000 documents of 80 KB each made a load
    # hold 1.2 GB. A batch is now written at a byte budget too.
    writes = []
    monkeypatch.setattr(cli, "_BATCH_BYTES", 10_000)
    real = cli._Loader.flush
    monkeypatch.setattr(cli._Loader, "flush", lambda self: (writes.append(len(self.batch)), real(self))[1])
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"i": i, "pad": "x" * 1000}) + "\n" for i in range(40)))
    target = str(tmp_path / "l.obj")
    assert cli.main(["load", target, "c", str(src), "-q"]) == cli.EXIT_OK
    assert max(writes) <= 10 and sum(writes) == 40, writes
    with obj.Db(target) as db:
        assert db.count("c") == 40


def test_an_iteration_reads_ahead_by_bytes_as_well_as_by_documents(path, monkeypatch):
    # It read ahead up to 4,096 documents whatever their size: 8,000
    # documents of 50 KB took 664 MB to iterate with a 1 MB cache.
    from obj import txn

    sizes = []
    real = txn._next_batch_columns
    monkeypatch.setattr(txn, "_next_batch_columns", lambda cur, n, v, buf: (sizes.append(n), real(cur, n, v, buf))[1])
    with obj.Db(path) as db:
        db.insert_many("big", [{"i": i, "pad": "x" * 20_000} for i in range(200)])
        db.insert_many("small", [{"i": i} for i in range(10_000)])
        monkeypatch.setattr(txn, "BATCH_BYTES", 100_000)
        assert sum(1 for _ in db.all("big")) == 200
        assert sizes[0] == txn.FIRST_BATCH and max(sizes[1:]) <= 5, sizes
        sizes.clear()
        assert [d["i"] for _, d in db.query("small").iter()] == list(range(10_000))
        assert sizes[:5] == [32, 128, 512, 2048, 4096], sizes

"""Static types of the typed-document calls: a program in the README's style
checked with ``mypy --strict`` (skipped where mypy is not installed, as in
``make test``'s venv). ``reveal_type`` gives the document class for typed
calls and ``Any`` for a collection name; misuse is an error. Also: the
generic classes stay what they were at run time."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

import obj

PROGRAM = '''
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict

import obj


class Event(TypedDict):
    event: str
    user_id: int


@obj.document(collection="orders", version=1)
@dataclass
class Order:
    email: Annotated[str, obj.Unique]
    region: Annotated[str, obj.Index]
    total: float
    status: str = "new"


@obj.document(collection="other", version=1)
@dataclass
class Other:
    n: int


def ship(o: Order) -> None:
    o.status = "shipped"


def typed(db: obj.Db) -> None:
    oid = db.insert(Order(email="a@b.com", region="eu", total=120.0))
    db.insert("events", {"event": "click"})
    ev: Event = {"event": "click", "user_id": 1}  # a TypedDict is a dict document too
    db.insert("events", ev)
    db.insert_many("events", [ev, ev])
    db.upsert("events", 9, ev)
    db.insert("audit", b"raw")
    reveal_type(db.get(Order, oid))  # R: Order | None
    reveal_type(db.get("events", oid))  # R: Any
    reveal_type(db.get_many(Order, [oid]))  # R: list[Order | None]
    reveal_type(db.find_unique(Order, "email", "a@b.com"))  # R: Order | None
    reveal_type(db.find_unique_many(Order, "email", ["a@b.com"]))  # R: list[Order | None]
    reveal_type(db.find_unique_with_id(Order, "email", "a@b.com"))  # R: tuple[int, Order] | None
    reveal_type(db.update(Order, oid, ship))  # R: Order
    reveal_type(db.all(Order))  # R: Iterator[tuple[int, Order]]
    reveal_type(db.index_range(Order, "region", "eu", "eu"))  # R: Iterator[tuple[int, Order]]
    q = db.query(Order).filter(lambda o: o.total > 100).sort_by("-total").limit(3)
    reveal_type(q)  # R: obj.query.Query[Order]
    reveal_type(q.fetch())  # R: list[tuple[int, Order]]
    reveal_type(q.first())  # R: tuple[int, Order] | None
    reveal_type(db.query("events").fetch())  # R: list[tuple[int, Any]]
    with db.transaction() as tx:
        reveal_type(tx.get(Order, oid))  # R: Order | None
        orders = tx.collection(Order)
        reveal_type(orders)  # R: obj.txn.Collection[Order]
        reveal_type(orders.get(oid))  # R: Order | None
        reveal_type(orders.query().fetch())  # R: list[tuple[int, Order]]
    with db.read_transaction() as rtx:
        reveal_type(rtx.all(Order))  # R: Iterator[tuple[int, Order]]


async def typed_async(adb: obj.AsyncDb) -> None:
    reveal_type(await adb.get(Order, 1))  # R: Order | None
    reveal_type(await adb.query(Order).fetch())  # R: list[tuple[int, Order]]
    reveal_type(await adb.all(Order))  # R: list[tuple[int, Order]]
    async with adb.transaction() as tx:
        reveal_type(await tx.get(Order, 1))  # R: Order | None
        reveal_type(await tx.collection(Order).get(1))  # R: Order | None
        reveal_type(await tx.query(Order).first())  # R: tuple[int, Order] | None
        reveal_type(await tx.kv("s").get(b"k"))  # R: bytes | None
    ns = adb.kv("s")
    reveal_type(await ns.get(b"k"))  # R: bytes | None
    reveal_type(await ns.get(b"k", b""))  # R: bytes
    reveal_type(await ns.count())  # R: int
    reveal_type(await ns.keys())  # R: list[bytes]
    async for k, v in ns.scan(prefix=b"a"):
        reveal_type(v)  # R: bytes


def misuse(db: obj.Db) -> None:
    x: str = db.get(Order, 1)  # E: assignment
    db.get(Order, 1).nosuchfield  # E: union-attr
    db.query(Order).filter(lambda o: o.totl > 1)  # E: attr-defined
    db.update(Order, 1, lambda o: 5)  # E: return-value
    db.insert("events", 42)  # E: call-overload
    with db.transaction() as tx:
        tx.collection(Order).insert(Other(n=1))  # E: arg-type
'''


def _mypy_env(tmp_path):
    """The environment and extra options for mypy to find ``obj``: as
    installed (a wheel), or from the source tree (silently: the package's
    own code is not what is checked here)."""
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(obj.__file__)))
    if os.path.basename(parent) in ("site-packages", "dist-packages"):
        return env, []
    env["MYPYPATH"] = parent
    return env, ["--follow-imports=silent"]


def test_typed_calls_pass_mypy_strict_and_misuse_is_caught(tmp_path):
    pytest.importorskip("mypy.api")
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(PROGRAM))
    env, extra = _mypy_env(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", "--show-error-codes", *extra, str(prog)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    src = textwrap.dedent(PROGRAM).splitlines()
    want_r = {i + 1: m.group(1).strip() for i, ln in enumerate(src) if (m := re.search(r"# R: (.*)$", ln))}
    want_e = {i + 1: m.group(1) for i, ln in enumerate(src) if (m := re.search(r"# E: ([a-z-]+)$", ln))}
    got_r, got_e = {}, {}
    for ln in r.stdout.splitlines():
        m = re.match(r".*prog\.py:(\d+): note: Revealed type is \"(.*)\"$", ln)
        if m:
            t = m.group(2).replace("?", "")
            for mod in ("builtins.", "typing.", "prog.", "collections.abc."):
                t = t.replace(mod, "")
            got_r[int(m.group(1))] = t
            continue
        m = re.match(r".*prog\.py:(\d+): error: .*\[([a-z-]+)\]$", ln)
        if m:
            got_e.setdefault(int(m.group(1)), set()).add(m.group(2))
    assert got_r == want_r, r.stdout + r.stderr
    assert set(got_e) == set(want_e), r.stdout + r.stderr
    for line, code in want_e.items():
        assert code in got_e[line], (line, got_e[line], r.stdout)


def test_generic_classes_are_unchanged_at_run_time(db):
    @obj.document(collection="typing_rt", version=1)
    class Doc:
        n: int

    q = db.query(Doc)
    assert type(q) is obj.Query and type(q.limit(1)) is obj.Query and type(db.query("x")) is obj.Query
    assert obj.Query[Doc] is not None  # subscriptable (typing.Generic), for annotations
    # The declarations of AsyncDb's and AsyncTxn's awaitable calls exist for
    # type checkers only: the classes have no base but object.
    assert obj.AsyncDb.__bases__ == (object,) and obj.AsyncTxn.__bases__ == (object,)
    for name in ("get", "insert", "update", "find_unique"):
        assert name not in vars(obj.AsyncDb) and name not in vars(obj.AsyncTxn)

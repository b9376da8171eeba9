"""Review 10 (second pass): asyncio cancellation of one-call writes,
migrations with a renamed and indexed field, Ctrl-C on the command line."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj


# -- asyncio: a one-call write that times out is not applied later ------------

@obj.document(collection="r10_items")
@dataclass
class R10Item:
    n: int


async def test_timed_out_one_call_writes_are_rolled_back_not_applied_later(path):
    # One writer thread: the check below runs after the timed-out calls.
    adb = obj.AsyncDb(obj.Db(path), max_workers=1)
    await adb.insert(R10Item(0))
    await adb.kv("k").put(b"x", b"0")
    tx = adb.db.transaction()  # another writer holds the write lock
    try:
        calls = [adb.insert(R10Item(1)), adb.insert("r10_dicts", {"a": 1}), adb.kv("k").put(b"x", b"1"),
                 adb.update(R10Item, 1, lambda it: setattr(it, "n", 99)), adb.delete(R10Item, 1),
                 adb.insert_many([R10Item(2), R10Item(3)]), adb.upsert(R10Item, 50, R10Item(50))]
        for c in calls:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c, 0.05)
    finally:
        tx.rollback()
    # Queued behind the cancelled calls on the one writer thread.
    await adb.insert(R10Item(7))
    assert [it.n for _, it in adb.db.all(R10Item)] == [0, 7]
    assert adb.db.get("r10_dicts", 1) is None
    assert await adb.kv("k").get(b"x") == b"0"
    # a later transaction works
    async with adb.transaction() as atx:
        await atx.insert(R10Item(8))
    assert await adb.query(R10Item).count() == 3
    await adb.close()


# -- migrations: a field renamed in the new version and indexed there ----------

@dataclass
class R10UserV1:
    mail: str
    name: str


@dataclass
class R10UserV2:
    email: str
    name: str


def _write_v1(path):
    @obj.document(collection="r10_users", version=1)
    @dataclass
    class User:
        mail: Annotated[str, obj.Index]
        name: str

    with obj.Db(path) as db:
        db.insert_many([User(f"u{i}@x", f"First{i} Last{i}") for i in range(5)])


@obj.document(collection="r10_users", version=3, history=[R10UserV1, R10UserV2])
@dataclass
class R10User:
    email: Annotated[str, obj.Unique]
    first: str
    last: str

    @classmethod
    def migrate(cls, old, from_version):
        if from_version == 1:
            old = R10UserV2(email=old.mail, name=old.name)
        first, _, last = old.name.partition(" ")
        return cls(email=old.email, first=first, last=last)


async def test_an_index_on_a_renamed_field_covers_the_migrated_documents(path):
    _write_v1(path)
    with obj.Db(path) as db:
        assert db.get(R10User, 2) == R10User("u1@x", "First1", "Last1")
        db.insert(R10User("new@x", "N", "M"))  # the first write builds the new unique index
        # every document as the class reads it is in the index, not only those written since
        assert db.find_unique(R10User, "email", "u3@x") == R10User("u3@x", "First3", "Last3")
        assert [o.email for _, o in db.index_range(R10User, "email", "u0@x", "u9@x")] == [f"u{i}@x" for i in range(5)]
        u2 = R10User("u2@x", "First2", "Last2")
        assert db.query(R10User).index_range("email", "u2@x", "u2@x").fetch() == [(3, u2)]
        assert [i for i, _ in db.query(R10User).filter(obj.field("email") == "u4@x").fetch()] == [5]
        # its uniqueness holds against them too
        with pytest.raises(obj.InvalidArgumentError):
            db.insert(R10User("u0@x", "dup", "dup"))
        assert [r.header.type_version for r in db.dump_raw("r10_users")] == [3] * 6
        adb = obj.AsyncDb(db)
        assert (await adb.find_unique(R10User, "email", "u1@x")).first == "First1"
        async with adb.transaction() as tx:
            assert (await tx.collection(R10User).find_unique("email", "u2@x")).last == "Last2"


# -- command line: Ctrl-C ---------------------------------------------------------

def test_ctrl_c_during_load_is_one_line_exit_130_and_undone(tmp_path):
    target = tmp_path / "new.obj"
    # Ctrl-C as a terminal delivers it: a suite run in the background of a
    # shell without job control inherits SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored, so the child starts with the default.
    p = subprocess.Popen([sys.executable, "-m", "obj", "load", str(target), "c"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        p.stdin.write(b'{"a": 1}\n')
        p.stdin.flush()
        deadline = time.monotonic() + 20
        while not target.exists() and time.monotonic() < deadline:  # the load has begun
            time.sleep(0.02)
        assert target.exists()
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = err.decode()
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "obj: load: interrupted"
    assert not os.path.exists(target)  # a load that did not finish leaves no database behind

"""What a Db remembers of a collection (its kind, the indexes its class
declares) holds for one catalog version of the file; another process that
drops a collection, or makes it again as the other kind, moves the version
on, and the Db learns the collection again instead of writing or reading
blind.

Before, a Db that had set up a typed class wrote its next documents
through the one-call path after another process dropped the collection:
the collection came back without its unique index, and duplicates went
in. A Db that knew a collection as documents refused to read it after
another process made it again as raw bytes (and the other way round)
until it was reopened.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import pytest

import obj


@obj.document(collection="users", version=1)
@dataclass
class User:
    email: Annotated[str, obj.Unique]
    name: str = ""


def other_process(path, code: str) -> None:
    """Runs ``code`` with ``d``, a Db on ``path``, in another process."""
    script = f"import obj\nwith obj.Db({str(path)!r}) as d:\n" + "".join(
        f"    {line}\n" for line in code.strip().splitlines())
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("write", ["insert", "upsert"])
def test_a_unique_index_comes_back_after_another_process_drops_the_collection(tmp_path, write):
    path = tmp_path / "u.obj"
    with obj.Db(path) as db:
        db.insert(User(email="a@x"))
        with pytest.raises(obj.ConstraintError):
            db.insert(User(email="a@x"))
        other_process(path, 'd.drop_collection("users")')

        def put(doc_id, u):
            return db.insert(u) if write == "insert" else db.upsert(User, doc_id, u)

        put(10, User(email="b@x", name="one"))
        with pytest.raises(obj.ConstraintError):
            put(11, User(email="b@x", name="two"))
        assert [u.name for _, u in db.all(User)] == ["one"]
        assert db.find_unique(User, "email", "b@x").name == "one"
        # Dropped and made again as a plain collection (no index) by the
        # other process: the class's index is built again too.
        other_process(path, 'd.drop_collection("users")\nd.insert("users", {"email": "c@x"})')
        with pytest.raises(obj.ConstraintError):  # the index is built over the document there
            put(20, User(email="c@x"))
        put(21, User(email="d@x"))
    with obj.Db(path) as db:
        assert sorted(u["email"] for _, u in db.all("users")) == ["c@x", "d@x"]


def test_another_process_changing_a_collections_kind_is_seen(tmp_path):
    path = tmp_path / "k.obj"
    with obj.Db(path) as db:
        db.insert("a", {"x": 1})
        db.insert("b", b"raw")
        assert db.get("a", 1) == {"x": 1} and db.get("b", 1) == b"raw"
        other_process(path, """
d.drop_collection("a")
d.insert("a", b"now raw")
d.drop_collection("b")
d.insert("b", {"y": 2})
""")
        assert db.get("a", 1) == b"now raw"
        assert db.get("b", 1) == {"y": 2}
        with db.read_transaction() as tx:
            assert tx.get("a", 1) == b"now raw"
            assert list(tx.iter_all("b")) == [(1, {"y": 2})]
        # Writes of the new kinds go in; the old kinds are refused.
        assert db.insert("a", b"more") == 2
        assert db.insert("b", {"y": 3}) == 2
        with pytest.raises(obj.InvalidArgumentError):
            db.insert("a", {"x": 2})
        with pytest.raises(obj.InvalidArgumentError):
            db.insert("b", b"bytes")


def test_an_older_snapshot_keeps_its_view_and_does_not_teach_the_db_an_old_kind(tmp_path):
    path = tmp_path / "s.obj"
    with obj.Db(path) as db:
        db.insert("a", {"x": 1})
        old = db.read_transaction()
        other_process(path, 'd.drop_collection("a")\nd.insert("a", b"r")')
        assert db.get("a", 1) == b"r"
        assert old.get("a", 1) == {"x": 1}  # the snapshot from before the change
        assert db.get("a", 1) == b"r"
        old.close()
        assert db.insert("a", b"s") == 2


def test_a_typed_read_after_another_process_made_the_collection_raw_says_so(tmp_path):
    path = tmp_path / "t.obj"
    with obj.Db(path) as db:
        db.insert(User(email="a@x"))
        other_process(path, 'd.drop_collection("users")\nd.insert("users", b"x")')
        with pytest.raises(obj.InvalidArgumentError, match="raw"):
            db.get(User, 1)
        assert db.get("users", 1) == b"x"


# Review 18 (a multi-process review of the catalog version, and one of the
# reference): what a Db learnt of a class stayed past its own creates and
# drops, or was trusted before any transaction had read the version.


def test_a_declared_unique_index_the_db_itself_drops_comes_back_at_its_next_write(tmp_path):
    with obj.Db(tmp_path / "d.obj") as db:
        db.insert(User(email="a@x"))
        db.insert(User(email="b@x"))  # the one-call path, set up already
        with db.transaction() as tx:
            tx.drop_index("users", "email")
        db.insert(User(email="c@x"))
        with pytest.raises(obj.ConstraintError):
            db.insert(User(email="c@x"))
        assert db.find_unique(User, "email", "b@x").email == "b@x"


def test_a_lookup_from_a_snapshot_before_the_dbs_own_drop_is_not_trusted_after_it(tmp_path):
    with obj.Db(tmp_path / "s.obj") as db:
        db.insert(User(email="a@x"))
        w = db.transaction()
        w.drop_collection("users")
        assert db.find_unique(User, "email", "a@x").email == "a@x"  # the snapshot from before
        w.insert("users", {"email": "b@x", "name": ""})  # again, without the index
        w.commit()
        for _ in range(2):
            assert db.find_unique(User, "email", "b@x").email == "b@x"  # built again, then read


def test_the_first_lookup_after_another_process_drops_a_declared_index_builds_it(tmp_path):
    path = tmp_path / "f.obj"
    with obj.Db(path) as db:
        db.insert(User(email="a@x"))
        assert db.find_unique(User, "email", "a@x").email == "a@x"
        other_process(path, 'd.drop_collection("users")\nd.insert("users", {"email": "b@x", "name": ""})')
        assert db.find_unique(User, "email", "b@x").email == "b@x"
        other_process(path, """
with d.transaction() as tx:
    tx.drop_index("users", "email")
""")
        assert db.find_unique_many(User, "email", ["b@x", "zz"])[0].email == "b@x"
        other_process(path, """
with d.transaction() as tx:
    tx.drop_index("users", "email")
""")
        assert [u.email for _, u in db.index_range(User, "email", "b@x", "b@x")] == ["b@x"]


def test_a_declared_unique_index_that_cannot_be_built_says_so(tmp_path):
    path = tmp_path / "u.obj"
    with obj.Db(path) as db:
        for i in range(4):
            db.insert("users", {"email": str(i % 2), "name": ""})
    with obj.Db(path) as db:
        for call in (lambda: db.find_unique(User, "email", "0"), lambda: db.query(User).count(),
                     lambda: db.insert(User(email="new"))):
            with pytest.raises(obj.ConstraintError, match=r"cannot build unique index \"email\".*documents 1 and 3"):
                call()
        assert db.count("users") == 4


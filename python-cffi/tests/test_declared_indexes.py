"""An index added to a document class after its documents were written can
be read through before the class's first write: a Db-level lookup on a
writable handle builds it (and migrates older documents into it), a
read-only handle leaves the file alone."""

from dataclasses import dataclass
from typing import Annotated

import pytest

import obj


def _write_plain(path):
    @obj.document(collection="users")
    @dataclass
    class User:
        email: str
        city: str

    with obj.Db(path) as db:
        db.insert_many([User(f"u{i}@x", "paris" if i % 2 else "oslo") for i in range(6)])


@obj.document(collection="users")
@dataclass
class User:
    email: Annotated[str, obj.Unique]
    city: Annotated[str, obj.Index]


def test_lookups_through_a_newly_declared_index_work_before_any_write(path):
    _write_plain(path)
    with obj.Db(path) as db:
        assert db.find_unique(User, "email", "u3@x") == User("u3@x", "paris")
        assert db.find_unique_with_id(User, "email", "u4@x") == (5, User("u4@x", "oslo"))
        assert db.find_unique_many(User, "email", ["u0@x", "nobody", "u5@x"]) == [
            User("u0@x", "oslo"), None, User("u5@x", "paris")]
        assert [i for i, _ in db.index_range(User, "city", "paris", "paris")] == [2, 4, 6]
        assert [i for i, _ in db.query(User).index_range("city", "oslo", "oslo").fetch()] == [1, 3, 5]
        assert {i.name: i.status for i in db.stat().collections[0].indexes} == {"email": "ready", "city": "ready"}
        db.integrity_check()  # raises if an entry is missing or stray
    with obj.Db(path) as db:  # built once, kept in the file
        assert db.find_unique(User, "email", "u1@x") == User("u1@x", "paris")


def test_a_read_only_handle_builds_nothing(path):
    _write_plain(path)
    with obj.Db(path, read_only=True) as db:
        with pytest.raises(obj.NotFoundError, match="email"):
            db.find_unique(User, "email", "u3@x")
        assert [u.email for _, u in db.all(User)][:2] == ["u0@x", "u1@x"]
    with obj.Db(path) as db:
        assert [i.name for i in db.stat().collections[0].indexes] == []


def test_a_lookup_from_the_thread_holding_the_write_lock_does_not_wait_for_itself(path):
    _write_plain(path)
    db = obj.Db(path)
    with db.transaction() as tx:
        tx.insert("other", {"a": 1})
        with pytest.raises(obj.NotFoundError):
            db.find_unique(User, "email", "u3@x")  # its own read: the index is not built yet
    assert db.find_unique(User, "email", "u3@x") == User("u3@x", "paris")
    db.close()


@obj.document(collection="renamed", version=2, history=[])
@dataclass
class Renamed:
    email: Annotated[str, obj.Unique]

    @classmethod
    def migrate(cls, old, from_version):
        return cls(email=old["mail"] if isinstance(old, dict) else old.mail)


def test_documents_of_an_older_version_are_migrated_into_the_new_index(path):
    @obj.document(collection="renamed", version=1)
    @dataclass
    class Old:
        mail: str

    with obj.Db(path) as db:
        db.insert_many([Old(f"m{i}@x") for i in range(3)])
    with obj.Db(path) as db:
        assert db.find_unique(Renamed, "email", "m2@x") == Renamed("m2@x")
        assert [r.header.type_version for r in db.dump_raw("renamed")] == [2, 2, 2]


async def test_an_async_query_builds_them_when_it_runs_not_when_it_is_built(path):
    _write_plain(path)
    adb = obj.AsyncDb(path)
    q = adb.query(User).index_range("email", "u3@x", "u3@x")  # on the event loop: writes nothing yet
    assert [i.name for i in (await adb.stat()).collections[0].indexes] == []
    assert [u for _, u in await q.fetch()] == [User("u3@x", "paris")]  # built on a worker, then read
    assert {i.name for i in (await adb.stat()).collections[0].indexes} == {"email", "city"}
    await adb.close()

"""Fixes from review 10: index markers on the fields of nested dataclasses
(and under Optional[...]), a closed Db used again (detach, ``with``), and
wrongly typed namespaces given to detach."""

from dataclasses import dataclass, field
from typing import Annotated, Optional

import pytest

import obj

# -- 1. index markers inside nested dataclasses and Optional[...] --------------------


@dataclass
class R10Item:
    sku: Annotated[str, obj.Unique]
    qty: int = 1


@dataclass
class R10Addr:
    city: Annotated[str, obj.Index]
    tags: Annotated[list[str], obj.Each] = field(default_factory=list)
    next: Optional["R10Addr"] = None


@obj.document(collection="r10_customers")
@dataclass
class R10Customer:
    addr: R10Addr
    nick: Optional[Annotated[str, obj.Unique]] = None
    items: list[R10Item] = field(default_factory=list)


def test_index_markers_of_nested_dataclasses_make_indexes(db):
    """A marker on a nested dataclass's field was silently ignored: no
    index, and index_range on it raised NotFoundError. It indexes the dotted
    path, named after it."""
    a = db.insert(R10Customer(R10Addr("paris", ["vip"]), "ann", [R10Item("s1"), R10Item("s2")]))
    b = db.insert(R10Customer(R10Addr("rome", ["new"], next=R10Addr("oslo")), "bob"))
    names = {i.name: (i.kind, i.key_paths) for c in db.stat().collections for i in c.indexes}
    assert names == {
        "addr.city": ("standard", ["addr.city"]),
        "addr.tags": ("multi", ["addr.tags"]),
        "nick": ("unique", ["nick"]),
        "items.sku": ("unique", ["items.sku"]),
    }
    assert [i for i, _ in db.index_range(R10Customer, "addr.city", "rome", "rome")] == [b]
    assert [i for i, _ in db.index_range(R10Customer, "addr.tags", "vip", "vip")] == [a]
    assert db.find_unique(R10Customer, "items.sku", "s2").nick == "ann"
    assert db.find_unique(R10Customer, "nick", "bob").addr.city == "rome"
    assert db.find_unique(R10Customer, "nick", b"bob").addr.city == "rome"  # a str key as UTF-8 bytes
    with pytest.raises(obj.InvalidArgumentError):
        db.insert(R10Customer(R10Addr("x"), "cy", [R10Item("s1")]))
    with pytest.raises(obj.InvalidArgumentError):
        db.insert(R10Customer(R10Addr("x"), "ann"))
    assert db.count(R10Customer) == 2
    db.update(R10Customer, b, lambda c: setattr(c.addr, "city", "lima"))
    assert [i for i, _ in db.index_range(R10Customer, "addr.city", "rome", "rome")] == []
    assert [i for i, _ in db.index_range(R10Customer, "addr.city", "lima", "lima")] == [b]


# -- 2. a closed Db used again; detach's argument -----------------------------------


def test_closed_db_detach_and_with_raise_closed_error(path, tmp_path):
    other = str(tmp_path / "other.obj")
    obj.Db(other).close()
    d = obj.Db(path)
    d.attach(other, "arch")
    d.close()
    with pytest.raises(obj.ClosedError):
        d.detach("arch")
    with pytest.raises(obj.ClosedError):
        d.detach("never")
    with pytest.raises(obj.ClosedError):
        with d:
            pass


def test_detach_takes_a_str(db):
    for bad in (None, 5, b"ns"):
        with pytest.raises(obj.InvalidArgumentError):
            db.detach(bad)
    with pytest.raises(obj.NotFoundError):
        db.detach("ns")


# -- 3. a passphrase that is not a str or bytes ---------------------------------------


@pytest.mark.parametrize("bad", [[1, 2], (3,), 5])
def test_passphrase_must_be_str_or_bytes(tmp_path, bad):
    """bytes(bad) made [1, 2] the passphrase b"\\x01\\x02", and 5 five NUL
    bytes (refused with a message about NUL bytes)."""
    p = str(tmp_path / "enc.obj")
    with pytest.raises(obj.InvalidArgumentError, match="str or bytes"):
        obj.Db(p, passphrase=bad)
    with obj.Db(p) as d:
        with pytest.raises(obj.InvalidArgumentError, match="str or bytes"):
            d.rekey(passphrase=bad)
    with pytest.raises(obj.InvalidArgumentError, match="str or bytes"):
        obj.Db.restore(p, str(tmp_path / "copy.obj"), passphrase=bad)


# -- 4. insert_many with a collection name and no documents ----------------------------


def test_insert_many_with_a_name_needs_the_documents(db):
    """insert_many("events") (the documents forgotten) returned [] and wrote
    nothing, silently."""
    for call in (lambda: db.insert_many("events"), lambda: db.insert_many("events", None)):
        with pytest.raises(obj.InvalidArgumentError, match="insert_many"):
            call()
    with db.transaction() as tx:
        with pytest.raises(obj.InvalidArgumentError):
            tx.insert_many("events")
    assert db.insert_many("events", []) == []
    assert db.insert_many("events", [{"a": 1}]) == [1]

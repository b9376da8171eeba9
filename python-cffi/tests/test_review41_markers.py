"""Index markers written where no index path reaches them (on a list's
elements, in a dict's values, in an arm of a Union) made no index, so a
unique one accepted duplicates: they now raise InvalidArgumentError at the
class's first use, naming the field. A marked dataclass held in such a
place keeps its markers for where they are honoured (another field, or its
own collection) and is not refused (found by the review). Markers in a generic dataclass's
arguments (``page: Page[Item]``) are honoured, as for the same class
written out. On a read-only handle, a query's index range by a declared
index the file lacks says how it gets built, as db.index_range does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Generic, Optional, TypeVar, Union

import pytest

import obj

T = TypeVar("T")


@dataclass
class A:
    k: Annotated[str, obj.Unique]


@dataclass
class B:
    j: int


@dataclass
class Item:
    sku: Annotated[str, obj.Index]


@dataclass
class UItem:
    sku: Annotated[str, obj.Unique]


@dataclass
class Page(Generic[T]):
    items: list[T]
    total: int = 0


@dataclass
class Box(Generic[T]):
    v: T


@dataclass
class Plain:
    n: int


@dataclass
class Node:
    name: str
    kids: dict[str, Node] = field(default_factory=dict)


@dataclass
class MarkedNode:
    name: Annotated[str, obj.Index]
    kids: dict[str, MarkedNode] = field(default_factory=dict)


@dataclass
class Tree(Generic[T]):
    v: T
    kids: list[Tree[T]] = field(default_factory=list)


def _doc(collection, annotation, value):
    """A document class with one field ``f`` of type ``annotation``."""
    cls = type("Doc", (), {"__annotations__": {"f": annotation}})
    cls = obj.document(collection=collection)(dataclass(cls))
    return cls, cls(value)


STRAY = [
    ("list_unique", list[Annotated[str, obj.Unique]], ["c1"], "elements of a list"),
    ("list_index", list[Annotated[str, obj.Index]], ["c1"], "elements of a list"),
    ("list_each", list[Annotated[str, obj.Each]], ["c1"], "elements of a list"),
    ("opt_list", Optional[list[Annotated[int, obj.Unique]]], [1], "elements of a list"),
    ("tuple_pos", tuple[Annotated[int, obj.Unique], str], (1, "x"), "elements of a list"),
    ("tuple_var", tuple[Annotated[int, obj.Index], ...], (1,), "elements of a list"),
    ("set_elem", set[Annotated[str, obj.Unique]], {"x"}, "elements of a list"),
    ("list_dc_marked", list[Annotated[B, obj.Index]], [B(1)], "elements of a list"),
    ("dict_value", dict[str, Annotated[int, obj.Unique]], {"x": 1}, "inside a dict"),
    ("union_scalar", Union[Annotated[str, obj.Unique], int], "x", "Union of several types"),
    ("page_elem", Page[Annotated[str, obj.Unique]], Page(["x"]), "elements of a list"),
]
HELD = [
    ("dict_value_dc", dict[str, A], {"x": A("k")}),
    ("union", Union[A, B], A("k")),  # noqa: UP007
    ("union_none", Union[A, B, None], A("k")),  # noqa: UP007
    ("list_of_lists", list[list[A]], [[A("k")]]),
    ("list_of_dicts", list[dict[str, A]], [{"x": A("k")}]),
    ("list_of_unions", list[Union[A, B]], [A("k")]),  # noqa: UP007
]


@pytest.mark.parametrize("name,annotation,value,where", STRAY, ids=[s[0] for s in STRAY])
def test_a_marker_no_index_reaches_is_refused_at_first_use(db, name, annotation, value, where):
    cls, doc = _doc(f"stray_{name}", annotation, value)
    for _ in range(2):  # (each use says it again)
        with pytest.raises(obj.InvalidArgumentError, match=where) as e:
            db.insert(doc)
        assert str(e.value).startswith("Doc.f.items: " if name == "page_elem" else "Doc.f: ")
        assert "markers are honoured on a field's own type" in str(e.value)
    with pytest.raises(obj.InvalidArgumentError, match=where):
        db.query(cls).fetch()
    assert f"stray_{name}" not in db.collections()


def test_the_testers_class_is_refused_rather_than_taking_duplicates(db):
    @obj.document(collection="cust", version=1)
    @dataclass
    class Customer:
        codes: list[Annotated[str, obj.Unique]] = field(default_factory=list)

    with pytest.raises(obj.InvalidArgumentError, match=r"Customer\.codes: .*Annotated\[list\[str\], obj\.Each\]"):
        db.insert(Customer(codes=["c1"]))
    assert "cust" not in db.collections()


def test_a_marked_dataclass_held_where_no_path_reaches_is_not_refused(db):
    for name, annotation, value in HELD:
        cls, doc = _doc(f"held_{name}", annotation, value)
        db.insert(doc)
        db.insert(doc)  # (no index there: no unique key either)
        assert db.count(cls) == 2
        assert [i.name for c in db.stat().collections if c.name == f"held_{name}" for i in c.indexes] == []


def test_a_shared_marked_dataclass_keeps_its_index_where_it_is_honoured(db):
    @obj.document(collection="customers41")
    @dataclass
    class Customer:
        billing: Item
        by_label: dict[str, Item] = field(default_factory=dict)

    db.insert(Customer(Item("s1"), {"home": Item("s2")}))
    assert [i for i, _ in db.index_range(Customer, "billing.sku", "s1", "s1")] == [1]

    @obj.document(collection="products41")
    @dataclass
    class Product:
        sku: Annotated[str, obj.Unique]

    @obj.document(collection="carts41")
    @dataclass
    class Cart:
        lines: dict[str, Product]

    db.insert(Product("p1"))
    db.insert(Cart({"a": Product("p1")}))
    db.insert(Cart({"a": Product("p1")}))
    assert db.count(Cart) == 2


def test_a_stray_marker_deeper_down_names_its_path(db):
    @dataclass
    class Mid:
        h: dict[str, Annotated[int, obj.Unique]]

    @obj.document(collection="deep")
    @dataclass
    class Deep:
        mids: list[Mid]

    with pytest.raises(obj.InvalidArgumentError, match=r"^Deep\.mids\.h: index marker obj\.Unique inside a dict"):
        db.insert(Deep([Mid({"a": 1})]))


def test_a_self_holding_dataclass_in_a_dict(db):
    @obj.document(collection="nodes")
    @dataclass
    class Ok:
        root: dict[str, Node]

    db.insert(Ok({"a": Node("a", {"b": Node("b")})}))  # no marker: fine, and no endless walk

    # A class that holds itself is walked once (as through a list): its
    # marker is honoured where it is first met, and the copies it holds
    # in a dict are not looked into again.
    @obj.document(collection="mnodes2")
    @dataclass
    class Good:
        root: MarkedNode

    db.insert(Good(MarkedNode("a", {"b": MarkedNode("b")})))
    assert [i.name for c in db.stat().collections if c.name == "mnodes2" for i in c.indexes] == ["root.name"]


def test_unmarked_shapes_are_untouched(db):
    @obj.document(collection="fine")
    @dataclass
    class Fine:
        tags: Annotated[list[str], obj.Each]
        by: dict[str, B]
        one: Union[B, Plain, None] = None  # noqa: UP007 - evaluated on Python 3.9 too
        many: list[list[B]] = field(default_factory=list)

    oid = db.insert(Fine(["x", "y"], {"a": B(1)}, Plain(2), [[B(3)]]))
    assert db.get(Fine, oid) == Fine(["x", "y"], {"a": B(1)}, Plain(2), [[B(3)]])
    assert [i.name for c in db.stat().collections for i in c.indexes] == ["tags"]


def test_optional_dataclass_markers_still_work(db):
    @obj.document(collection="opt")
    @dataclass
    class Opt:
        one: Optional[A] = None  # noqa: UP045 - evaluated on Python 3.9 too
        two: Union[None, A] = None  # noqa: UP007

    db.insert(Opt(A("u1"), A("v1")))
    with pytest.raises(obj.ConstraintError):
        db.insert(Opt(A("u1")))
    with pytest.raises(obj.ConstraintError):
        db.insert(Opt(None, A("v1")))
    assert sorted(i.name for c in db.stat().collections for i in c.indexes) == ["one.k", "two.k"]


def test_markers_in_a_generic_dataclass_argument_are_honoured(db):
    @obj.document(collection="pages")
    @dataclass
    class Doc:
        page: Page[Item]
        nums: Page[int]
        u: Optional[Page[UItem]] = None  # noqa: UP045
        box: Box[Annotated[str, obj.Unique]] = field(default_factory=lambda: Box(""))

    db.insert(Doc(Page([Item("a"), Item("b")]), Page([1]), Page([UItem("x")]), Box("b1")))
    db.insert(Doc(Page([Item("b")]), Page([2]), Page([UItem("y")]), Box("b2")))
    idx = {i.name: i.kind for c in db.stat().collections for i in c.indexes}
    assert idx == {"page.items.sku": "standard", "u.items.sku": "unique", "box.v": "unique"}
    assert [i for i, _ in db.index_range(Doc, "page.items.sku", "b", "b")] == [1, 2]
    assert db.find_unique(Doc, "u.items.sku", "y").nums == Page([2])
    with pytest.raises(obj.ConstraintError):
        db.insert(Doc(Page([]), Page([]), Page([UItem("x")]), Box("b3")))
    with pytest.raises(obj.ConstraintError):
        db.insert(Doc(Page([]), Page([]), None, Box("b1")))
    assert db.count(Doc) == 2


def test_a_composite_index_through_a_generic_argument_is_checked(db):
    @obj.document(collection="gcomp", indexes=[obj.Composite(["page.items.nope"])])
    @dataclass
    class Doc:
        page: Page[B]

    with pytest.raises(obj.InvalidArgumentError, match="B has no field 'nope'"):
        db.insert(Doc(Page([B(1)])))

    @obj.document(collection="gcomp2", indexes=[obj.Composite(["page.items.j", "page.total"])])
    @dataclass
    class Doc2:
        page: Page[B]

    db.insert(Doc2(Page([B(1)], 5)))
    assert [i for i, _ in db.index_range(Doc2, "page.items.j_page.total", None, None)] == [1]


def test_a_generic_that_holds_itself(db):
    @obj.document(collection="trees")
    @dataclass
    class Forest:
        t: Tree[Annotated[int, obj.Index]]

    db.insert(Forest(Tree(1, [Tree(2)])))
    assert [i.name for c in db.stat().collections for i in c.indexes] == ["t.v"]
    assert [i for i, _ in db.index_range(Forest, "t.v", 1, 1)] == [1]


# -- 2. a read-only handle's query index range says how a declared index gets built --


def test_a_read_only_query_index_range_gives_the_declared_index_hint(path):
    @obj.document(collection="u")
    @dataclass
    class U0:
        a: int

    with obj.Db(path) as db:
        db.insert_many([U0(i) for i in range(5)])

    @obj.document(collection="u")
    @dataclass
    class U:
        a: Annotated[int, obj.Index]

    hint = "U declares it, but this file does not have it yet"
    with obj.Db(path, read_only=True) as db:
        q = db.query(U).index_range("a", 1, 3)
        for run in (q.fetch, q.ids, q.count, q.first, lambda: list(q.iter())):
            with pytest.raises(obj.NotFoundError, match=hint):
                run()
        with pytest.raises(obj.NotFoundError, match=hint):
            list(db.index_range(U, "a", 1, 3))
        with db.read_transaction() as tx:
            with pytest.raises(obj.NotFoundError, match=hint):
                tx.query(U).index_range("a", 1, 3).fetch()
        # an index the class does not declare: the engine's message only
        with pytest.raises(obj.NotFoundError) as e:
            db.query(U).index_range("b", 1, 3).fetch()
        assert "declares" not in str(e.value)


def test_an_attached_files_missing_declared_index_is_named_with_its_namespace(path, tmp_path):
    # (review 45: the error named the file's collection alone and said nothing
    # of the class declaring the index, as it does on the host file)
    other = str(tmp_path / "archive.obj")

    @obj.document(collection="u")
    @dataclass
    class U0:
        a: int

    with obj.Db(other) as db:
        db.insert_many([U0(i) for i in range(5)])

    @obj.document(collection="ar.u")
    @dataclass
    class AU:
        a: Annotated[int, obj.Unique]

    hint = "AU declares it, but the file attached as 'ar' does not have it yet"
    with obj.Db(path) as db:
        db.attach(other, "ar")
        with pytest.raises(obj.NotFoundError, match=hint):
            db.find_unique(AU, "a", 3)
        with pytest.raises(obj.NotFoundError, match=hint):
            list(db.index_range(AU, "a", 1, 3))
        with pytest.raises(obj.NotFoundError, match=hint):
            db.query(AU).index_range("a", 1, 3).fetch()

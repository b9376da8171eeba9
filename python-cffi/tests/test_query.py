"""Queries: engine-side field expressions against a Python evaluation of
their documented meaning (docs/query-json.md), sorts, limits, explain."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Optional

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import obj
from obj import field as F

MISSING = object()


def klass(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return "map"


def cmp1(x, op, v):
    if x is MISSING:
        return False
    if isinstance(x, list) and not isinstance(v, list):
        return any(cmp1(e, op, v) for e in x)
    if klass(x) != klass(v):
        return False
    if op == "eq":
        return x == v
    if x is None:  # null equals null; nothing is less
        return op in ("le", "ge")
    if op == "lt":
        return x < v
    if op == "le":
        return x <= v
    if op == "gt":
        return x > v
    if op == "ge":
        return x >= v
    raise AssertionError(op)


def evaluate(f, doc):
    (op, arg), = f.items()
    if op == "and":
        return all(evaluate(g, doc) for g in arg)
    if op == "or":
        return any(evaluate(g, doc) for g in arg)
    if op == "not":
        return not evaluate(arg, doc)
    if op == "exists":
        if isinstance(arg, list):
            return (doc.get(arg[0], MISSING) is not MISSING) == arg[1]
        return doc.get(arg, MISSING) is not MISSING
    path, v = arg
    x = doc.get(path, MISSING)
    if op == "ne":
        return not cmp1(x, "eq", v)
    if op == "in":
        return any(cmp1(x, "eq", e) for e in v)
    if op == "prefix":
        if isinstance(x, list):
            return any(isinstance(e, str) and e.startswith(v) for e in x)
        return isinstance(x, str) and x.startswith(v)
    return cmp1(x, op, v)


scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False),
                   st.sampled_from(["", "a", "ab", "b", "ba"]))
docs_st = st.lists(st.fixed_dictionaries({}, optional={
    "a": scalar, "b": scalar, "tags": st.lists(st.sampled_from(["x", "y", "z", 1, 2]), max_size=3)}), max_size=25)
paths = st.sampled_from(["a", "b", "tags"])
leaf = st.one_of(
    st.builds(lambda p, op, v: getattr(F(p), op)(v), paths,
              st.sampled_from(["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"]), scalar),
    st.builds(lambda p, vs: F(p).isin(vs), paths, st.lists(scalar, max_size=3)),
    st.builds(lambda p, s: F(p).startswith(s), paths, st.sampled_from(["", "a", "b"])),
    st.builds(lambda p, e: F(p).exists(e), paths, st.booleans()),
)
exprs = st.recursive(leaf, lambda c: st.one_of(
    st.builds(lambda a, b: a & b, c, c), st.builds(lambda a, b: a | b, c, c), st.builds(lambda a: ~a, c)), max_leaves=6)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=docs_st, e=exprs)
def test_engine_filter_matches_python_evaluation(tmp_path_factory, docs, e):
    path = str(tmp_path_factory.mktemp("q") / "q.obj")
    with obj.Db(path) as db:
        ids = db.insert_many("c", docs) if docs else []
        want = sorted(i for i, d in zip(ids, docs) if evaluate(e.to_json(), d))
        got = [i for i, _ in db.query("c").filter(e).fetch()]
        assert got == want, e
        assert db.query("c").filter(e).count() == len(want)
        # Python lambda filters compose with engine filters (AND)
        lam = [i for i, _ in db.query("c").filter(e, lambda d: "a" in d).fetch()]
        assert lam == [i for i in want if "a" in docs[ids.index(i)]]


@obj.document(collection="orders", version=1, indexes=[obj.Composite(("status", "total"), name="by_status_total")])
@dataclass
class Order:
    email: Annotated[str, obj.Unique]
    status: Annotated[str, obj.Index]
    total: int
    tags: Annotated[list[str], obj.Each]


@pytest.fixture
def orders(db):
    with db.transaction() as tx:
        for i in range(100):
            tx.insert(Order(email=f"u{i}", status=["new", "paid", "shipped"][i % 3], total=(i * 37) % 101,
                            tags=["even" if i % 2 == 0 else "odd"] + (["ten"] if i % 10 == 0 else [])))
    return db


def test_expressions_sort_limit_offset(orders):
    db = orders
    allo = [(i, o) for i, o in db.all(Order)]
    shipped_big = [(i, o) for i, o in allo if o.status == "shipped" and o.total > 50]
    q = db.query(Order).filter((F("status") == "shipped") & (F("total") > 50))
    # without sort_by the order is the plan's (here the composite index's)
    assert sorted(q.fetch(), key=lambda t: t[0]) == shipped_big
    assert q.count() == len(shipped_big)
    by_total = sorted(shipped_big, key=lambda t: (-t[1].total, t[0]))
    assert q.sort_by("-total").fetch() == by_total
    assert q.sort_by(F("total").desc()).limit(3).offset(2).fetch() == by_total[2:5]
    assert q.sort_by(lambda o: -o.total).limit(3).fetch() == by_total[:3]
    assert db.query(Order).filter(status="new").count() == 34
    assert db.query(Order).filter(F("tags") == "ten").count() == 10
    assert db.query(Order).filter(~(F("status") == "new") | (F("total") < 0)).count() == 66
    assert db.query(Order).filter(F("email").startswith("u9")).count() == 11
    assert db.query(Order).filter(F("status").isin(["new", "paid"])).count() == 67
    assert db.query(Order).first()[0] == allo[0][0]


def test_a_second_sort_key_in_the_reverse_place_is_refused(orders):
    q = orders.query(Order)
    for second in ["-total", F("total"), F("total").desc(), lambda o: o.total]:
        with pytest.raises(obj.InvalidArgumentError, match="call sort_by again"):
            q.sort_by("status", second)
    # The flag itself, and the chained form the message points to, work.
    by_two = sorted(orders.all(Order), key=lambda t: (t[1].status, -t[1].total, t[0]))
    assert q.sort_by("status").sort_by("-total").fetch() == by_two
    assert q.sort_by("status", True).fetch()[0][1].status == "shipped"
    assert q.sort_by("status", 0).fetch()[0][1].status == "new"


def test_index_range_composite_and_explain(orders):
    db = orders
    rows = db.query(Order).index_range("by_status_total", ("paid", 10), ("paid", 50)).fetch()
    want = sorted(((o.total, i) for i, o in db.all(Order) if o.status == "paid" and 10 <= o.total < 50))
    assert [(o.total, i) for i, o in rows] == want
    plan = db.query(Order).filter(F("email") == "u5").explain()
    assert isinstance(plan, str) and plan
    plan2 = db.query(Order).index_range("status", "new", "new").filter(lambda o: True).explain()
    assert "Python predicate" in plan2
    assert db.query(Order).index_range("status", "new", "new").count() == 34


def test_query_immutability_and_repr(orders):
    q = orders.query(Order)
    q1 = q.filter(F("total") > 5)
    q2 = q1.limit(2)
    assert "limit" not in q1.to_json() and '"limit":2' in q2.to_json()
    assert q.count() == 100


def test_field_expression_misuse():
    with pytest.raises(obj.InvalidArgumentError):
        bool(F("a") > 1)
    with pytest.raises(obj.InvalidArgumentError):
        F("a..b")


def test_sort_over_cap_in_engine_and_python(orders):
    with pytest.raises(obj.InvalidArgumentError):
        orders.query(Order).sort_by("total").sort_buffer_limit(10).fetch()
    with pytest.raises(obj.InvalidArgumentError):
        orders.query(Order).sort_by(lambda o: o.total).sort_buffer_limit(10).fetch()
    # with a limit below the cap the buffer stays bounded: fine
    assert len(orders.query(Order).sort_by(lambda o: o.total).limit(5).sort_buffer_limit(10).fetch()) == 5


def test_missing_collection_reads_empty(db):
    assert db.query("nothing").fetch() == [] and db.query("nothing").count() == 0
    assert db.get("nothing", 1) is None and list(db.all("nothing")) == []


@dataclass
class Money:
    amount: Decimal


@obj.document(collection="priced", version=1)
@dataclass
class Priced:
    price: Annotated[Decimal, obj.Index]
    name: str = ""
    discount: Optional[Decimal] = None
    fee: Optional[Money] = None


def test_decimal_ordering_is_refused_equality_is_text(db):
    # Decimals are stored as their text; the engine would order them as text
    # ("10.00" < "100" < "2" < "9.50"): an ordering on one is an error.
    for s in ["9.50", "10.00", "100", "2"]:
        db.insert(Priced(Decimal(s), name=s))
    ten = Decimal("10")
    for build in (lambda: F("price") > ten, lambda: F("price") >= ten, lambda: F("price") < ten,
                  lambda: F("price") <= ten, lambda: ten < F("price"),
                  lambda: db.query(Priced).index_range("price", Decimal("2"), ten),
                  lambda: db.query(Priced).index_range("price", Decimal("2")),
                  lambda: db.query(Priced).index_range("price", None, ten),
                  lambda: db.index_range(Priced, "price", Decimal("2"), ten),
                  lambda: db.query("priced").index_range("price", (Decimal("2"),), (ten,)),
                  lambda: db.query(Priced).sort_by("price"), lambda: db.query(Priced).sort_by("-discount"),
                  lambda: db.query(Priced).sort_by(F("fee.amount").desc())):
        with pytest.raises(obj.InvalidArgumentError, match="Decimal values are stored as text"):
            build()
    # what the message suggests works
    assert sorted(o.name for _, o in db.query(Priced).filter(lambda o: o.price >= ten).fetch()) == ["10.00", "100"]
    assert [o.name for _, o in db.query(Priced).sort_by(lambda o: o.price).fetch()] == ["2", "9.50", "10.00", "100"]
    # equality compares the stored text, which round-trips exactly
    assert db.query(Priced).filter(F("price") == Decimal("10.00")).count() == 1
    assert db.query(Priced).filter(F("price") == Decimal("10")).count() == 0  # "10" is not "10.00"
    assert db.query(Priced).filter(F("price") != Decimal("2")).count() == 3
    assert db.query(Priced).filter(F("price").isin([Decimal("2"), Decimal("100")])).count() == 2
    assert [o.name for _, o in db.index_range(Priced, "price", Decimal("9.50"), Decimal("9.50"))] == ["9.50"]
    assert db.get(Priced, 2).price == Decimal("10.00") and str(db.get(Priced, 2).price) == "10.00"
    # sorting by a field that is not a Decimal is unaffected
    assert [o.name for _, o in db.query(Priced).sort_by("name").fetch()] == ["10.00", "100", "2", "9.50"]


def test_filter_operands_with_dollar_keys(db):
    # a map whose keys start with "$" is compared as the map stored
    db.insert("c", {"m": {"$x": 1}, "n": {"x": 1}, "b": {"$bytes": 2, "k": [{"$$y": None}]}})
    assert db.query("c").filter(obj.field("n") == {"x": 1}).count() == 1
    assert db.query("c").filter(obj.field("m") == {"$x": 1}).count() == 1
    assert db.query("c").filter(obj.field("m") == {"$x": 2}).count() == 0
    assert db.query("c").filter(obj.field("b") == {"$bytes": 2, "k": [{"$$y": None}]}).count() == 1
    assert db.query("c").filter(obj.field("m").isin([{"$x": 1}, {"a": 1}])).count() == 1

"""Queries: the immutable :class:`Query` builder behind ``db.query(...)``
and the engine-side field expressions (``obj.field("total") > 100``).

A query has two halves. What the engine can do (field expressions, sorts
by field, index ranges, limit/offset) is sent as the engine's query JSON
(docs/query-json.md), so documents that do not match are never decoded in
Python. Python predicates (``filter(lambda o: ...)``) and key functions
(``sort_by(lambda o: ...)``) run on the decoded documents afterwards. The
builder never touches the C library itself; it asks a transaction for rows.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import heapq
import itertools
import json
import sys
import types
import typing
import uuid
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from . import _codec
from .document import _schema_or_plain, _strip, never_holds, schema_of
from .errors import InvalidArgumentError, NotFoundError, _plain_function

if TYPE_CHECKING:
    from .db import Db
    from .txn import ReadTxn

__all__ = ["Query", "Expr", "Field", "field", "MAX_SORT_BUFFER"]

T = TypeVar("T")
"""The document type of a query (``Query[Order]`` from ``db.query(Order)``;
``Any``, dicts or bytes, for a collection name). It shapes the static types
only: a Query is the same at run time whatever it reads."""

MAX_SORT_BUFFER = 100_000
"""Most documents a query holds in memory to sort them (the engine's
default too); override per query with ``.sort_buffer_limit(n)``."""


def _jv(v: Any) -> Any:
    """``v`` as an operand of the query JSON (docs/query-json.md)."""
    if isinstance(v, (Field, Expr, SortKey)):
        raise InvalidArgumentError(
            f"a field expression compares a field with a value, not with {v!r:.60}: to compare two fields "
            f"of a document, filter with a Python function (.filter(lambda d: ...))")
    return _operand(_codec.to_jsonable(v))


def _operand(j: Any) -> Any:
    """Document JSON (where a user key ``"$x"`` travels as ``"$$x"``) as
    query JSON, whose maps are literal unless their first key names a
    special object: keys unescaped, and a map with a ``$`` key wrapped in
    ``{"$map": ...}``. The special objects themselves (``$bytes``, ``$ts``,
    ``$f64``: single-``$`` keys) pass as they are."""
    if type(j) is list:
        return [_operand(x) for x in j]
    if type(j) is not dict or not j:
        return j
    if all(k[:1] == "$" and k[:2] != "$$" for k in j):
        return j
    m = {(k[1:] if k[:2] == "$$" else k): _operand(x) for k, x in j.items()}
    return {"$map": m} if any(k[:1] == "$" for k in m) else m


_DECIMAL_AS_TEXT = (
    "Decimal values are stored as text, and the engine compares text, not numbers ('10.00' < '9.5'); "
    "filter or sort with a Python function instead (.filter(lambda o: o.price > Decimal('10')), "
    ".sort_by(lambda o: o.price)), or store the field as a float or an int"
)


_AWARE_TIME_AS_TEXT = (
    "a time with a UTC offset is stored as its text ('12:00:00+01:00'), and the engine compares text, "
    "not instants (12:00+01:00 is before 11:30+00:00); filter or sort with a Python function instead, "
    "or store a datetime (compared by instant) or a naive time"
)


def _text_ordered(v: Any) -> str | None:
    """Why ``v`` cannot be ordered by the engine, if it cannot: a Decimal
    or a time with a UTC offset, or a list, tuple, set or dict holding one
    (a list operand is compared element by element, so its elements are
    ordered as text too). Both are stored as text, whose order is not
    theirs."""
    if isinstance(v, Decimal):
        return _DECIMAL_AS_TEXT
    if isinstance(v, _dt.time) and v.utcoffset() is not None:
        return _AWARE_TIME_AS_TEXT
    if type(v) in (tuple, list, set, frozenset):
        return next(filter(None, map(_text_ordered, v)), None)
    if type(v) is dict:
        return next(filter(None, map(_text_ordered, v.values())), None)
    return None


def _no_text_order(v: Any, what: str, *args: Any) -> None:
    """InvalidArgumentError when ``v`` (or an element of a composite bound)
    is a Decimal or an aware time used for ordering: equality of the stored
    text works, order does not. The message starts with
    ``what.format(*args)``."""
    why = _text_ordered(v)
    if why is not None:
        raise InvalidArgumentError(f"{what.format(*args)}: {why}")


def _unwrap(tp: Any) -> Any:
    """``tp`` without Annotated[...], NewType (document._strip) and Optional[...]."""
    while True:
        tp = _strip(tp)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if (origin is typing.Union or (_UnionType is not None and origin is _UnionType)) \
                and len(args) == 2 and type(None) in args:  # Optional[X] / X | None
            tp = args[0] if args[1] is type(None) else args[1]
            continue
        return tp


_UnionType = getattr(types, "UnionType", None)  # X | Y (Python 3.10+)


def _is_decimal_field(s: Any, path: str) -> bool:
    """Whether dotted ``path`` of the document class of schema ``s`` is
    annotated Decimal: through nested dataclasses, the values of dicts and
    the elements of lists, tuples and sets (a numeric segment picks one,
    any other reaches into each, as the engine's paths do)."""
    tp: Any = s.cls
    for seg in path.split("."):
        tp = _unwrap(tp)
        picked = False
        while not picked and typing.get_origin(tp) in (list, tuple, set, frozenset):
            tp, picked = _element_type(tp, seg), seg.isdigit()
        if picked:
            continue
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            tp = _schema_or_plain(tp).hints().get(seg)
        elif typing.get_origin(tp) is dict and len(typing.get_args(tp)) == 2:
            tp = typing.get_args(tp)[1]
        else:
            return False
    return _unwrap(tp) is Decimal


def _filter_paths(j: Any) -> Iterator[str]:
    """The field paths filter JSON ``j`` names."""
    if type(j) is not dict or len(j) != 1:
        return
    (op, arg), = j.items()
    if op in ("and", "or") and type(arg) is list:
        for x in arg:
            yield from _filter_paths(x)
    elif op == "not":
        yield from _filter_paths(arg)
    elif type(arg) is str:
        yield arg  # {"exists": path}
    elif type(arg) is list and arg and type(arg[0]) is str:
        yield arg[0]


def _on_decimal_fields(s: Any, j: Any) -> Any:
    """Filter JSON ``j`` of a query of schema ``s``'s class, with each
    operand of an equality on a field the class declares ``Decimal`` (or a
    list of them) as a write stores it there: an ``int`` as its Decimal
    text (``3`` as ``"3"``), which otherwise, a number beside text, matched
    nothing. An order comparison on such a field, whatever its operand,
    and a ``float`` operand (which no write stores there) are an
    InvalidArgumentError."""
    if type(j) is not dict or len(j) != 1:
        return j
    (op, arg), = j.items()
    if op in ("and", "or") and type(arg) is list:
        return {op: [_on_decimal_fields(s, x) for x in arg]}
    if op == "not":
        return {op: _on_decimal_fields(s, arg)}
    if op not in ("eq", "ne", "in", "lt", "le", "gt", "ge") or type(arg) is not list or len(arg) != 2 \
            or type(arg[0]) is not str or not (_is_decimal_field(s, arg[0]) or _is_decimal_field(s, arg[0] + ".0")):
        return j  # (".0": a list of Decimals, whose elements the engine's comparisons reach)
    path, v = arg
    if op not in ("eq", "ne", "in"):
        raise InvalidArgumentError(f"obj.field({path!r}) compared by order on a Decimal field: {_DECIMAL_AS_TEXT}")

    def stored(x: Any) -> Any:
        if type(x) is int:
            return str(Decimal(x))
        if type(x) is float or (type(x) is dict and "$f64" in x):
            raise InvalidArgumentError(
                f"obj.field({path!r}) compared with the float {x!r:.40}: the field is declared Decimal, and a "
                f"float is never stored there; compare with a Decimal")
        if type(x) is list:
            return [stored(y) for y in x]
        return x

    return {op: [path, [stored(x) for x in v] if op == "in" else stored(v)]}


# Field types whose values are never stored as lists.
_NOT_LISTS = (str, int, float, bytes, Decimal, uuid.UUID, _dt.date, _dt.time, dict)


def _holds_no_lists(tp: Any) -> bool:
    """Whether a field declared ``tp`` (Optional and Annotated taken
    off) never holds a list as stored: a scalar type, a dict, a dataclass
    (a map), or an Enum none of whose values is a list or tuple. Anything
    else (a sequence or set, a union, Any, object, an unknown type) may."""
    if typing.get_origin(tp) is dict or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return True
    return never_holds(tp, _NOT_LISTS, (list, tuple))


def _stored_bound(s: Any, index: str, b: Any) -> Any:
    """Bound ``b`` of an index range on ``s``'s index ``index`` with its
    values as a write stores them (see ``txn._lookup_keys``)."""
    if b is None:
        return b
    from .txn import _lookup_keys  # (txn imports this module)

    if type(b) is tuple:
        return tuple(_lookup_keys(s, index, list(b)))
    return _lookup_keys(s, index, [b])[0]


def _element_type(tp: Any, seg: str) -> Any:
    """The element type of sequence type ``tp`` that path segment ``seg``
    reaches: the one at its position in a ``tuple[A, B]``, else the one."""
    args = typing.get_args(tp)
    fixed = typing.get_origin(tp) is tuple and args and args[-1] is not Ellipsis
    if fixed and seg.isdigit():
        return _unwrap(args[int(seg)]) if int(seg) < len(args) else None
    return _unwrap(args[0]) if args else None


class Expr:
    """A filter the engine evaluates. Combine with ``&`` (and), ``|`` (or)
    and ``~`` (not). Build them with :func:`obj.field`."""

    __slots__ = ("_j",)

    def __init__(self, j: Any) -> None:
        self._j = j

    def to_json(self) -> Any:
        """The filter in the engine's JSON form (a JSON-ready value)."""
        return self._j

    def __and__(self, other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        a = self._j["and"] if isinstance(self._j, dict) and "and" in self._j else [self._j]
        b = other._j["and"] if isinstance(other._j, dict) and "and" in other._j else [other._j]
        return Expr({"and": a + b})

    def __or__(self, other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        a = self._j["or"] if isinstance(self._j, dict) and "or" in self._j else [self._j]
        b = other._j["or"] if isinstance(other._j, dict) and "or" in other._j else [other._j]
        return Expr({"or": a + b})

    def __invert__(self) -> Expr:
        return Expr({"not": self._j})

    def __bool__(self) -> bool:
        raise InvalidArgumentError(
            "an obj field expression has no truth value: combine with & | ~ (not and/or/not), "
            "and write a < x < b as (field > a) & (field < b)"
        )

    def __repr__(self) -> str:
        return f"obj.Expr({json.dumps(self._j)})"


class Field:
    """A document field by dotted path (``"address.city"``, ``"items.0"``),
    for engine-side filters and sorts. Comparisons give :class:`Expr`;
    ``asc()`` / ``desc()`` give sort keys."""

    __slots__ = ("path",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, path: str) -> None:
        if not isinstance(path, str) or not path or any(not s for s in path.split(".")):
            raise InvalidArgumentError(f"bad field path {path!r}: dotted, non-empty segments")
        self.path = path

    def _cmp(self, op: str, v: Any) -> Expr:
        return Expr({op: [self.path, _jv(v)]})

    def __eq__(self, v: Any) -> Expr:  # type: ignore[override]
        return self._cmp("eq", v)

    def __ne__(self, v: Any) -> Expr:  # type: ignore[override]
        return self._cmp("ne", v)

    def __lt__(self, v: Any) -> Expr:
        _no_text_order(v, "obj.field({!r}) < {!r:.40}", self.path, v)
        return self._cmp("lt", v)

    def __le__(self, v: Any) -> Expr:
        _no_text_order(v, "obj.field({!r}) <= {!r:.40}", self.path, v)
        return self._cmp("le", v)

    def __gt__(self, v: Any) -> Expr:
        _no_text_order(v, "obj.field({!r}) > {!r:.40}", self.path, v)
        return self._cmp("gt", v)

    def __ge__(self, v: Any) -> Expr:
        _no_text_order(v, "obj.field({!r}) >= {!r:.40}", self.path, v)
        return self._cmp("ge", v)

    def isin(self, values: Sequence[Any]) -> Expr:
        """Equal to one of ``values``."""
        return Expr({"in": [self.path, [_jv(v) for v in _codec.listed(values, "isin's values")]]})

    def startswith(self, prefix: str) -> Expr:
        """A string starting with ``prefix``."""
        if not isinstance(prefix, str):
            raise InvalidArgumentError("startswith takes a str")
        return Expr({"prefix": [self.path, prefix]})

    def exists(self, present: bool = True) -> Expr:
        """The field is present (null counts), or absent with ``False``."""
        return Expr({"exists": self.path} if present else {"exists": [self.path, False]})

    def asc(self) -> SortKey:
        """Ascending sort key."""
        return SortKey(self.path, False)

    def desc(self) -> SortKey:
        """Descending sort key."""
        return SortKey(self.path, True)

    def __repr__(self) -> str:
        return f"obj.field({self.path!r})"


class SortKey:
    """An engine sort key: a field path and a direction."""

    __slots__ = ("path", "descending")

    def __init__(self, path: str, descending: bool) -> None:
        self.path = path
        self.descending = descending

    def to_json(self) -> Any:
        """The engine's JSON form."""
        return {"field": self.path, "order": "desc" if self.descending else "asc"}

    def __repr__(self) -> str:
        return f"obj.field({self.path!r}).{'desc' if self.descending else 'asc'}()"


def field(path: str) -> Field:
    """A document field for engine-side filters: ``obj.field("total") > 100``,
    ``(obj.field("status") == "shipped") & obj.field("tags").isin(["vip"])``."""
    return Field(path)


def _bound(v: Any) -> list:
    return [_jv(x) for x in v] if isinstance(v, tuple) else [_jv(v)]


def _ordered_parts(lo: Any, hi: Any) -> tuple[Any, Any]:
    """What a range between index_range bounds ``lo`` and ``hi`` orders:
    the whole of each, but for two tuples only what follows their equal
    prefix (``(t, 1)`` to ``(t, 5)`` orders the second field only; a bound
    that is no tuple is the key of one field, ``t`` as ``(t,)``)."""
    if lo is not None and hi is not None and (isinstance(lo, tuple) or isinstance(hi, tuple)):
        lo = lo if isinstance(lo, tuple) else (lo,)
        hi = hi if isinstance(hi, tuple) else (hi,)
        k = 0
        while k < min(len(lo), len(hi)) and _same_key(lo[k], hi[k]):
            k += 1
        return lo[k:], hi[k:]
    return lo, hi


def _same_key(a: Any, b: Any) -> bool:
    """Whether two index_range bounds are one key under the engine's value
    order, not Python's ``==``: the bounds as the engine receives them
    (:func:`_jv`) compared as it compares values. ``True`` is no ``1``
    (bools rank before numbers), ``1`` and ``1.0`` are one number, NaN
    equals NaN, a timestamp is its instant whatever its offset, bytes and
    bytearray are one type, ``[True]`` is no ``[1]``, maps compare their
    pairs in order, and a Decimal is its text. A bound that is no tuple
    is the key of one field, as :func:`_bound` sends it: ``1`` and ``(1,)``
    are one bound."""
    ka = a if isinstance(a, tuple) else (a,)
    kb = b if isinstance(b, tuple) else (b,)
    return len(ka) == len(kb) and all(_engine_form(_jv(x)) == _engine_form(_jv(y)) for x, y in zip(ka, kb))


def _engine_form(j: Any) -> Any:
    """A query-JSON operand as a Python value whose ``==`` is the engine's
    value equality (docs/format.md, "Value order")."""
    t = type(j)
    if j is None:
        return ("null",)
    if t is bool:
        return ("bool", j)
    if t is int or t is float:
        if j != j:
            return ("num", "nan")
        return ("num", j if j in (float("inf"), float("-inf")) else Fraction(j))
    if t is str:
        return ("str", j)
    if t is list:
        return ("list", tuple(_engine_form(x) for x in j))
    if t is dict:
        if "$ts" in j:
            return ("ts", j["$ts"])
        if "$bytes" in j:
            return ("bytes", j["$bytes"])
        if "$f64" in j:
            return ("num", {"nan": "nan", "inf": float("inf"), "-inf": float("-inf")}.get(j["$f64"], j["$f64"]))
        if len(j) == 1 and "$map" in j:
            j = j["$map"]
        return ("map", tuple((k, _engine_form(x)) for k, x in j.items()))
    return ("other", repr(j))


class Query(Generic[T]):
    """A lazy, immutable query; every builder call returns a new Query.
    Run it with :meth:`fetch`, :meth:`count`, :meth:`first`, or by
    iterating. Results are ``(id, doc)`` pairs: instances for a document
    class, dicts (or bytes) for a collection name."""

    def _snapshot(self) -> Any:
        """A read transaction of its own, for a query of the Db (not of a
        transaction), once the indexes its class declares and the file
        lacks are built (``Db._declared_snapshot``): built where the
        query runs, on the thread that runs it (an AsyncDb's worker, never
        its event loop)."""
        if self._schema is not None:
            return self._db._declared_snapshot(self._schema.cls)
        return self._db.read_transaction()

    def _in_txn(self, run: Callable[[ReadTxn], Any]) -> Any:
        """``run(tx)`` in the query's transaction, or in a snapshot of its
        own (:meth:`_snapshot`) for a query of the Db."""
        try:
            if self._txn is not None:
                return run(self._txn)
            with self._snapshot() as tx:
                return run(tx)
        except NotFoundError as e:
            raise self._hinted(e) from None

    def _hinted(self, e: NotFoundError) -> NotFoundError:
        """``e`` with, for an index range by an index the class declares
        and the file lacks, how that index gets built (as db.index_range
        says it)."""
        if self._index is None:
            return e
        from .txn import _declared_hint

        ns = self._name.partition(".")[0] if "." in self._name else None
        attached = ns is not None and ns in (self._db if self._txn is None else self._txn)._attached
        return _declared_hint(e, self._schema, self._index["name"], attached)

    def __init__(self, db: Db, what: Any, txn: ReadTxn | None = None) -> None:
        if type(what) is str:
            self._schema = None
            self._name = what
        else:
            s = schema_of(what)
            if s is None:
                from .txn import _not_document

                raise _not_document(what)
            db._check_shape(s)
            self._schema = s
            self._name = s.collection
        self._db = db
        self._txn = txn
        self._filter: Any = None
        self._preds: tuple = ()
        self._sort: tuple = ()
        self._key: Callable | None = None
        self._reverse = False
        self._limit: int | None = None
        self._offset = 0
        self._index: dict | None = None
        self._cap: int | None = None
        self._after: int | None = None

    def _copy(self, **kw: Any) -> Query[T]:
        q = object.__new__(Query)
        q.__dict__.update(self.__dict__)
        q.__dict__.update(kw)
        return q

    def _bind(self, txn: ReadTxn) -> Query[T]:
        return self._copy(_txn=txn)

    # -- builder -----------------------------------------------------------
    def filter(self, *preds: Expr | Callable[[T], object], **equals: Any) -> Query[T]:
        """Narrows the results. Each argument is either an engine expression
        (``obj.field("total") > 100``) or a Python predicate on the decoded
        document (``lambda o: o.status == "new"``); keyword arguments mean
        field equality (``status="new"``). Everything given, here and in
        earlier calls, is AND-combined."""
        flt = self._filter
        fns = list(self._preds)
        exprs = [p for p in preds if isinstance(p, Expr)]
        exprs += [Field(k.replace("__", ".")) == v for k, v in equals.items()]
        for p in preds:
            if isinstance(p, Expr):
                continue
            if not callable(p):
                raise InvalidArgumentError(f"filter takes obj.field(...) expressions or callables, not {p!r:.60}")
            _plain_function(p, "a filter predicate")
            fns.append(p)
        for e in exprs:
            if self._schema is not None:
                for path in _filter_paths(e._j):
                    self._schema.check_path(path, f"the filter names field {path!r}")
                e = Expr(_on_decimal_fields(self._schema, e._j))
            flt = e if flt is None else flt & e
        return self._copy(_filter=flt, _preds=tuple(fns))

    def where(self, expr: Expr) -> Query[T]:
        """Same as ``filter(expr)`` for an engine expression."""
        return self.filter(expr)

    def sort_by(self, key: str | Field | SortKey | Callable[[T], Any], reverse: bool = False) -> Query[T]:
        """Orders the results. ``key`` is a field path (``"total"``, or
        ``"-total"`` for descending; ``obj.field("-x")`` names a field whose
        name starts with "-"), ``obj.field("total").desc()``, or a
        Python function of the decoded document (sorted in memory, bounded by
        the sort buffer limit). Calls with field keys add less significant
        keys; a function replaces any earlier function."""
        if isinstance(reverse, (str, Field, SortKey)) or callable(reverse):
            # `sort_by("k", "-j")` reads as two keys but would only reverse `k`.
            raise InvalidArgumentError(
                f"sort_by takes one key and a reverse flag, not {reverse!r:.60} as the flag; "
                "for a second key, call sort_by again"
            )
        if callable(key) and not isinstance(key, (Field, SortKey)):
            _plain_function(key, "a sort_by key")
            return self._copy(_key=key, _reverse=bool(reverse))
        if isinstance(key, str):
            # One leading "-" means descending: "--x" is field "-x" descending.
            desc = key.startswith("-")
            sk = SortKey(Field(key[1:] if desc else key).path, desc != bool(reverse))
        elif isinstance(key, Field):
            sk = SortKey(key.path, bool(reverse))
        elif isinstance(key, SortKey):
            sk = SortKey(key.path, key.descending != bool(reverse))
        else:
            raise InvalidArgumentError(f"sort_by takes a field path, obj.field(...) or a function, not {key!r:.60}")
        if self._schema is not None:
            self._schema.check_path(sk.path, f"sort_by names field {sk.path!r}")
        if self._schema is not None and _is_decimal_field(self._schema, sk.path):
            raise InvalidArgumentError(f"sort_by({sk.path!r}) on a Decimal field: {_DECIMAL_AS_TEXT}")
        return self._copy(_sort=self._sort + (sk,))

    def limit(self, n: int | None) -> Query[T]:
        """At most ``n`` results."""
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise InvalidArgumentError("limit takes a non-negative int or None")
        # No collection holds more than sys.maxsize documents: a larger
        # limit means the same, in a size the engine and islice take.
        return self._copy(_limit=None if n is None else min(n, sys.maxsize))

    def offset(self, n: int) -> Query[T]:
        """Skip the first ``n`` results."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InvalidArgumentError("offset takes a non-negative int")
        return self._copy(_offset=min(n, sys.maxsize))

    def index_range(self, index: str, lo: Any = None, hi: Any = None, *, reverse: bool = False) -> Query[T]:
        """Reads through secondary index ``index``, keys in ``[lo, hi)``
        (half-open; ``None`` = unbounded), in key order. Equal bounds mean
        equality (``"us", "us"`` = the documents whose key is ``"us"``). For a
        composite index pass tuples (a prefix of the key works)."""
        if not isinstance(index, str):
            raise InvalidArgumentError("index_range takes the index name (str)")
        self._no_list_for_a_composite(index, lo, hi)
        if self._schema is not None:
            lo, hi = (_stored_bound(self._schema, index, b) for b in (lo, hi))
        spec: dict = {"name": index}
        if lo is not None and hi is not None and _same_key(lo, hi):
            spec["ge"] = spec["le"] = _bound(lo)
        else:
            # A range orders its bounds; equal bounds (above) are equality,
            # which the stored text of a Decimal or an aware time supports,
            # and so is an equal prefix of two tuple bounds.
            for part in _ordered_parts(lo, hi):
                _no_text_order(part, "index_range({!r}, {!r:.40}, {!r:.40})", index, lo, hi)
            if lo is not None:
                spec["ge"] = _bound(lo)
            if hi is not None:
                spec["lt"] = _bound(hi)
        if reverse:
            spec["reverse"] = True
        return self._copy(_index=spec)

    def _no_list_for_a_composite(self, index: str, lo: Any, hi: Any) -> None:
        """InvalidArgumentError for a list bound of a composite index the
        class declares, whose first field holds no lists: a list is one
        value of the first field, so ``["us", "new"]`` would find nothing
        where ``("us", "new")`` was meant."""
        s = self._schema
        if s is None or not (type(lo) is list or type(hi) is list):
            return
        slots = s.key_slot_types(index)
        if len(slots) < 2:
            return
        if not _holds_no_lists(slots[0][1]):
            return
        raise InvalidArgumentError(
            f"index_range({index!r}, {lo!r:.40}, {hi!r:.40}): a bound of composite index {index!r} is a tuple "
            f"of its fields' values (a list is one value of field {slots[0][0]!r}, which holds no lists)")

    def after_id(self, doc_id: int | None) -> Query[T]:
        """Only documents whose id is greater than ``doc_id``, read in id
        order from there (no index; not with :meth:`index_range`): pages
        through a collection by id, the last id of one page starting the
        next (``None``: from the start)."""
        if doc_id is not None:
            from .txn import _id  # (txn imports this module)

            try:
                doc_id = _id(doc_id)
            except InvalidArgumentError as e:
                raise InvalidArgumentError(f"after_id takes an id (an int from 0 to 2**64-1) or None: {e}") from None
        return self._copy(_after=doc_id)

    def sort_buffer_limit(self, n: int) -> Query[T]:
        """Most documents held in memory to sort (default
        ``obj.MAX_SORT_BUFFER``); past it the query raises
        :class:`obj.InvalidArgumentError`."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidArgumentError("sort_buffer_limit takes a positive int")
        return self._copy(_cap=n)

    # -- the engine half ---------------------------------------------------------
    def _spec(self, name: str, count_only: bool = False) -> bytes:
        q: dict = {"collection": name}
        if self._filter is not None:
            q["filter"] = self._filter.to_json()
        if self._sort:
            q["sort"] = [k.to_json() for k in self._sort]
        if self._index is not None:
            q["index"] = self._index
        if self._cap is not None:
            q["sort_buffer_limit"] = self._cap
        if self._after is not None:
            q["after_id"] = self._after
        if not self._preds and self._key is None:
            if self._limit is not None:
                q["limit"] = self._limit
            if self._offset:
                q["offset"] = self._offset
        if count_only:
            q["count_only"] = True
        try:
            return json.dumps(q, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError as e:
            # (a lone surrogate, which UTF-8 cannot hold: as a write says it)
            raise InvalidArgumentError(
                f"a string of the query is not valid UTF-8 (a lone surrogate): {e.object[e.start:e.end]!r}"
            ) from None
        except RecursionError:
            # A filter nested deeper than Python can encode is far past the
            # engine's limit: the same error class the engine would give.
            raise InvalidArgumentError("query filter nested deeper than 128 levels") from None

    def to_json(self) -> str:
        """The engine half of the query as query JSON (for inspection)."""
        return self._spec(self._name).decode()

    # -- running -------------------------------------------------------------
    def _rows(self, tx: ReadTxn) -> Iterator[tuple[int, Any]]:
        # An iterator, not a generator: dict results come straight from
        # the C-level chain of _c_pairs, with no Python frame per document.
        # (Callers run this lazily: iter() is a generator, fetch() eager.)
        at = self._located(tx)
        if at is None:
            return iter(())
        core, cname, kind = at
        spec = self._spec(cname.decode())
        lim = None if (self._preds or self._key) else self._limit
        s = self._schema
        if s is None and core is not tx:  # an attached namespace: decoded with its registered class
            s = tx._ns_schema(self._name, kind)
        if s is None:
            return core._c_pairs(spec, lim)
        return self._typed_rows(core._c_rows(spec, lim), s)

    @staticmethod
    def _typed_rows(rows: Iterator[list], s: Any) -> Iterator[tuple[int, Any]]:
        dd = s.decode_doc
        for r in rows:
            yield r[0], dd(r[0], r[1], r[2])

    def _passing(self, rows: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        """The ``(id, doc)`` rows whose document every Python predicate accepts."""
        preds = self._preds
        if len(preds) == 1:
            p0 = preds[0]
            return (r for r in rows if p0(r[1]))
        return (r for r in rows if all(p(r[1]) for p in preds))

    def _best_passing(self, tx: ReadTxn, keep: int) -> Iterator[tuple[int, Any]]:
        """The first ``keep`` results of a field sort that Python
        predicates then filter, in bounded memory: the engine keeps the best
        k documents of its sort (ties by id, so a larger k extends the same
        order), the predicates run on them, and k grows until enough pass or
        the collection ends. Past the sort buffer limit it is the same error
        as an unbounded sort."""
        cap = self._cap or MAX_SORT_BUFFER
        k = min(max(4 * keep, 256), cap)
        while True:
            rows = list(self._copy(_preds=(), _limit=k, _offset=0)._rows(tx))
            passed = list(self._passing(rows))
            if len(passed) >= keep or len(rows) < k:
                return iter(passed[self._offset:keep])
            if k == cap and self._copy(_preds=(), _sort=(), _limit=None, _offset=0)._engine_count(tx) <= cap:
                return iter(passed[self._offset:keep])  # the best `cap` were all the documents
            if k == cap:
                raise InvalidArgumentError(
                    f"the sort needs more than {cap} documents in memory (sort_buffer_limit): only "
                    f"{len(passed)} of the best {cap} pass the Python filter and the limit asks for {keep}; "
                    f"filter in the engine (obj.field) or raise sort_buffer_limit"
                )
            k = min(4 * k, cap)

    def _plan(self, tx: ReadTxn) -> dict:
        """The engine's plan for the engine half of the query, in ``tx``."""
        core, cname = tx._route(self._name)
        return core._c_explain(self._spec(cname.decode()))

    def _run(self, tx: ReadTxn) -> Iterator[tuple[int, Any]]:
        preds = self._preds
        if preds and self._sort and self._key is None and self._limit is not None \
                and self._plan(tx).get("sort_in_memory", True):
            # (an index that delivers the sort needs no buffer: the rows
            # stream through the predicates below)
            return self._best_passing(tx, self._offset + self._limit)
        it = self._rows(tx)
        if preds:
            it = self._passing(it)
        if self._key is not None:
            key = self._key
            cap = self._cap or MAX_SORT_BUFFER
            keep = None if self._limit is None else self._offset + self._limit
            if keep is not None and keep <= cap:
                # bounded by the limit: a heap of `keep` documents
                nsel = heapq.nlargest if self._reverse else heapq.nsmallest
                # Equal keys keep arrival order either way; without a field
                # sort that order is the plan's (an index's key order once
                # an index serves the filter), so ties go by id instead.
                cnt = itertools.count() if self._sort else None
                tie = (lambda t: (t[0], -t[1])) if self._reverse else (lambda t: (t[0], t[1]))
                best = nsel(keep, ((key(d), i if cnt is None else next(cnt), i, d) for i, d in it), key=tie)
                return iter([(t[2], t[3]) for t in best][self._offset:])
            buf = []
            for r in it:
                buf.append(r)
                if len(buf) > cap:
                    raise InvalidArgumentError(
                        f"the sort needs more than {cap} documents in memory (sort_buffer_limit); "
                        f"add a limit, narrow the filter or raise sort_buffer_limit"
                    )
            if not self._sort:
                buf.sort(key=lambda r: r[0])  # ties by id, whatever the plan's order (see above)
            buf.sort(key=lambda r: key(r[1]), reverse=self._reverse)
            it = iter(buf)
        elif not preds:
            return it  # limit/offset already applied by the engine
        if self._offset or self._limit is not None:
            end = None if self._limit is None else min(self._offset + self._limit, sys.maxsize)
            it = itertools.islice(it, self._offset, end)
        return it

    def iter(self) -> Iterator[tuple[int, T]]:
        """Streams the results (holding a read snapshot until exhausted or
        closed)."""
        # A closed Db or finished transaction raises here, at the call.
        (self._db if self._txn is None else self._txn)._handle()
        return self._iter()

    def _iter(self) -> Iterator[tuple[int, T]]:
        try:
            if self._txn is not None:
                yield from self._run(self._txn)
                return
            with self._db._own(self._snapshot()) as tx:
                yield from self._run(tx)
        except NotFoundError as e:
            raise self._hinted(e) from None

    __iter__ = iter

    def fetch(self) -> list[tuple[int, T]]:
        """All results as a list of ``(id, doc)``."""
        return self._in_txn(lambda tx: list(self._run(tx)))

    def first(self) -> tuple[int, T] | None:
        """The first result or None."""
        # (limit(0) stays 0: no first result)
        for r in self.limit(1 if self._limit is None else min(self._limit, 1)).iter():
            return r
        return None

    def ids(self) -> list[int]:
        """The ids of the results. Without Python predicates or a Python
        sort key the documents are not decoded."""
        if self._preds or self._key is not None:
            return [i for i, _ in self.fetch()]
        return self._in_txn(self._engine_ids)

    def _engine_ids(self, tx: ReadTxn) -> list[int]:
        """The ids of the engine's results in ``tx``, from the raw rows."""
        at = self._located(tx)
        if at is None:
            return []
        core, cname, _ = at
        return [r[0] for r in core._c_rows(self._spec(cname.decode()), self._limit)]

    def count(self) -> int:
        """Number of results. Without Python predicates the engine counts
        without decoding documents, and without any filter or index range
        it takes the collection's stored count (no scan)."""
        if self._key is not None or (self._sort and self._preds):
            # The order does not change the count (nor which many a limit
            # keeps): no sort, so no sort buffer limit, as the engine counts.
            return self._copy(_key=None, _reverse=False, _sort=()).count()
        if self._preds:
            n = 0
            for _ in self.iter():
                n += 1
            return n

        return self._in_txn(self._engine_count)

    def _engine_count(self, tx: ReadTxn) -> int:
        """The engine's count of this query (its Python predicates left
        out) in ``tx``."""
        at = self._located(tx)
        if at is None:
            return 0
        core, cname, _ = at
        return core._c_count(self._spec(cname.decode(), count_only=True))

    def _located(self, tx: ReadTxn) -> tuple[Any, bytes, str] | None:
        """``(transaction, C name, kind)`` of the query's collection in
        ``tx`` (an attached file's own transaction for a namespaced name);
        None when the file has no such collection (after the check of
        :meth:`_no_collection`)."""
        core, cname = tx._route(self._name)
        kind = tx._kind(core, cname)
        if kind is None:
            self._no_collection()
            # The engine still reads the query, and refuses what never
            # combines (it counts 0 for a missing collection otherwise).
            core._c_count(self._spec(cname.decode(), count_only=True))
            return None
        return core, cname, kind

    def _no_collection(self) -> None:
        """Checks a query of a collection the file does not have: only an
        index range by an index the class does not declare is an error."""
        if self._index is not None:
            from .txn import _undeclared_index

            _undeclared_index(self._schema, self._index["name"], self._name)

    def explain(self) -> str:
        """The engine's plan for the engine half of the query as one line
        for people (which index, which filter), with the Python predicates
        and in-memory sort noted; :meth:`explain_json` has the details."""

        def run(tx: ReadTxn) -> str:
            info = self._plan(tx)
            text = str(info.get("plan", info))
            if self._preds:
                text += f"\nthen {len(self._preds)} Python predicate(s) on decoded documents"
            if self._key is not None:
                text += f"\nthen an in-memory sort by a Python key (at most {self._cap or MAX_SORT_BUFFER} documents)"
            return text

        return self._in_txn(run)

    def explain_json(self) -> dict:
        """The engine's plan as a dict (collection, access "scan" / "index",
        index, ranges, reverse, sort_in_memory, plan)."""

        return self._in_txn(self._plan)

    def __repr__(self) -> str:
        return f"<obj.Query {self.to_json()} +{len(self._preds)} predicate(s)>"

"""Typed documents: the ``@obj.document`` decorator, the index markers
(``obj.Index``, ``obj.Unique``, ``obj.Each``, ``obj.Composite``) and the
per-class schema that turns dataclass instances into stored documents and
back (with lazy migration of documents written by older versions).

A document is stored by field name (the engine's documents are
self-describing), so a class may gain fields with defaults or drop fields
without a migration; ``version=`` and ``history=`` are for changes of
meaning. This module never calls the C library.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import inspect
import itertools
import json
import sys
import threading
import typing
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, MutableSequence, MutableSet, Sequence
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Any, Callable, TypeVar

from . import _codec
from .errors import InvalidArgumentError

__all__ = ["document", "Index", "Unique", "Each", "Composite", "IndexMarker", "Schema", "schema_of", "is_document"]

T = TypeVar("T")


class IndexMarker:
    """A field marker for ``typing.Annotated``: ``Annotated[str, obj.Index]``
    declares a secondary index named after the field. ``kind`` is
    ``"standard"``, ``"unique"`` or ``"multi"`` (one entry per element of a
    list field)."""

    __slots__ = ("kind", "label")

    def __init__(self, kind: str, label: str) -> None:
        self.kind = kind
        self.label = label

    def __repr__(self) -> str:
        return f"obj.{self.label}"

    def __or__(self, other: Any) -> Any:  # `obj.Index | obj.Unique` in docs reads as "one of"
        return other if isinstance(other, IndexMarker) else NotImplemented


Index = IndexMarker("standard", "Index")
"""Standard (non-unique) index on the annotated field."""
Unique = IndexMarker("unique", "Unique")
"""Unique index on the annotated field: a duplicate raises
:class:`obj.InvalidArgumentError` (:class:`obj.ConstraintError`) and the
write is not applied."""
Each = IndexMarker("multi", "Each")
"""Multi-value index on a list field: one entry per element."""


@dataclasses.dataclass(frozen=True)
class Composite:
    """A composite index over several fields (most significant first), for
    ``@obj.document(indexes=[...])``. Field names may be dotted paths into
    nested documents. ``name`` defaults to the fields joined by ``_``."""

    fields: Sequence[str]
    name: str | None = None
    unique: bool = False

    def spec(self) -> dict:
        """The engine's index spec (JSON-ready)."""
        fields = [self.fields] if isinstance(self.fields, str) else list(self.fields)
        if not fields:
            raise InvalidArgumentError("Composite index needs at least one field")
        kind = "unique" if self.unique else "standard"
        return {"name": self.name or "_".join(fields), "kind": kind, "fields": fields}


_NoneType = type(None)
_UnionType = getattr(__import__("types"), "UnionType", None)  # X | Y (Python 3.10+)
_UNIONS = (typing.Union,) if _UnionType is None else (typing.Union, _UnionType)
_EMPTY: frozenset = frozenset()


def _identity(v: Any) -> Any:
    return v


# -- reading stored values back -----------------------------------------------------
# A reader turns a stored value (decoded JSON) into a value of the field's
# type, and raises (TypeError, ValueError...) for a value the type cannot
# take: a document another tool wrote reads as an error, not as a str in an
# int field. A dict that migrate() returned holds values of the field types
# already (an Addr, a date, a tuple): they pass as they are.

# Types stored as themselves: a stored value of one reads back unchanged.
_AS_IS = (int, str, bool, bytes, _NoneType, _dt.datetime)
_SCALARS = _AS_IS + (float,)
# The collection a collections.abc (or typing) annotation reads back as.
_KINDS: dict = {list: list, tuple: tuple, set: set, frozenset: frozenset, dict: dict, Sequence: list,
                MutableSequence: list, AbstractSet: set, MutableSet: set, Mapping: dict, MutableMapping: dict}
_COLLS = (list, tuple, set, frozenset)


def _kind(tp: Any) -> Any:
    """The collection class a (stripped) annotation reads back as (list
    for ``Sequence[int]`` or a bare ``typing.List``), else None."""
    o = typing.get_origin(tp)
    try:
        return _KINDS.get(tp if o is None else o)
    except TypeError:  # an unhashable annotation: no collection
        return None


def _exact(tp: Any) -> frozenset:
    """The types of the stored values a field of type ``tp`` reads as they
    are (the compiled decoder checks these inline, without calling the
    reader); empty when every value goes through the reader."""
    tp = _strip(tp)
    if tp is None:
        return frozenset((_NoneType,))
    if tp in _SCALARS:
        return frozenset((tp,))
    if typing.get_origin(tp) in _UNIONS:
        arms = [_strip(a) for a in typing.get_args(tp)]
        if all(a in _SCALARS for a in arms):  # (an int reads as the int arm, not widened into a float one)
            return frozenset(arms)
    return _EMPTY


def _not(what: str, v: Any) -> TypeError:
    return TypeError(f"{type(v).__name__}, not {what}")


def _read_as_is(t: type) -> Callable[[Any], Any]:
    def read(v: Any) -> Any:
        if type(v) is t or (isinstance(v, t) and not (t is int and isinstance(v, bool))):
            return v
        raise _not(t.__name__, v)

    return read


_READ_AS_IS = {t: _read_as_is(t) for t in _AS_IS}


def _read_float(v: Any) -> float:
    if type(v) is float:
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, float):
        return v
    raise _not("float", v)


def _read_text(cls: type, parse: Callable[[str], Any], refuse: tuple = ()) -> Callable[[Any], Any]:
    """The reader of a type stored as its text (date, time, UUID)."""

    def read(v: Any) -> Any:
        if type(v) is str:
            return parse(v)
        if isinstance(v, cls) and not isinstance(v, refuse):
            return v
        raise _not(cls.__name__, v)

    return read


def _read_decimal(v: Any) -> Decimal:
    t = type(v)
    if t is str:
        return Decimal(v)
    if t is float:
        return Decimal(repr(v))
    if isinstance(v, Decimal):
        return v
    if isinstance(v, int) and t is not bool:
        return Decimal(v)
    raise _not("Decimal", v)


def _read_bytearray(v: Any) -> bytearray:
    if isinstance(v, (bytes, bytearray)):
        return bytearray(v)
    raise _not("bytes", v)


def _read_each(kind: type, tp: Any) -> Callable[[Any], Any]:
    """The reader of a list, tuple or set (``kind``) of ``tp`` (anything
    when ``tp`` is Any): a stored list of exact types is kept as it is."""
    ex, c = _exact(tp), _converter(tp)

    def each(v: Any) -> Any:
        if type(v) is not list and not isinstance(v, _COLLS):
            raise _not(kind.__name__, v)
        if c is None or (ex and ex.issuperset(map(type, v))):  # C speed when every element is of an exact type
            return v if type(v) is kind else kind(v)
        return kind(map(c, v))

    return each


def _read_map(args: tuple) -> Callable[[Any], Any]:
    """The reader of a ``dict[K, V]`` (``args``, empty for a bare dict)."""
    codec = _key_codec(args[0]) if args else None
    kc: Callable[[Any], Any] | None = None
    if codec is not None:
        kdec = codec[1]
        kc = lambda k: kdec(k) if type(k) is str else k  # noqa: E731 - a key no str is decoded already (migrate())
    elif args and _strip(args[0]) is not str:  # (a stored key is a str)
        kc = _converter(args[0])
    vex, vc = (_exact(args[1]), _converter(args[1])) if len(args) > 1 else (_EMPTY, None)

    def amap(v: Any) -> Any:
        if type(v) is not dict:
            if not isinstance(v, Mapping):
                raise _not("dict", v)
            v = dict(v)
        if kc is None and (vc is None or (vex and vex.issuperset(map(type, v.values())))):
            return v
        k1, v1 = kc or _identity, vc or _identity
        return {k1(k): v1(x) for k, x in v.items()}

    return amap


def never_holds(tp: Any, types: tuple, values: tuple) -> bool:
    """Whether a field declared ``tp`` can never hold a value of one of
    the Python types ``values``: ``tp`` is (a subclass of) one of
    ``types``, or an Enum none of whose members' values is one. Any other
    declaration (Any, object, a union, a generic) may."""
    if not isinstance(tp, type):
        return False
    if issubclass(tp, enum.Enum):
        return not any(isinstance(m.value, values) for m in tp)
    return issubclass(tp, types)


def _empty_tuple(tp: Any, args: tuple) -> bool:
    """Whether ``tp`` (with type arguments ``args``) is ``tuple[()]``: an
    empty tuple. Python before 3.11 gives its arguments as ``((),)``;
    3.11 gives ``()``, as for a bare ``tuple``, which has no origin."""
    return args == ((),) or (not args and typing.get_origin(tp) is tuple and tp is not typing.Tuple)  # noqa: UP006


def _fixed_tuple(tp: Any, args: tuple) -> bool:
    """Whether ``tp`` is a tuple of fixed length (``tuple[int, str]``,
    ``tuple[()]``), not ``tuple[int, ...]`` or a bare ``tuple``."""
    return _empty_tuple(tp, args) or bool(args) and not (len(args) == 2 and args[1] is Ellipsis)


def _converter(tp: Any) -> Callable[[Any], Any] | None:
    """The reader of a field annotated ``tp`` (see above); None when any
    value passes as it is (Any, or a class obj does not know)."""
    tp = _strip(tp)
    args = typing.get_args(tp)
    if _untyped(tp):
        return None
    if tp is None:
        return _READ_AS_IS[_NoneType]
    if tp in _AS_IS:
        return _READ_AS_IS[tp]
    if tp is float:
        return _read_float
    if tp is bytearray:
        return _read_bytearray
    if tp is _dt.date:  # (a datetime would be a timestamp)
        return _read_text(_dt.date, _dt.date.fromisoformat, (_dt.datetime,))
    if tp is _dt.time:
        return _read_text(_dt.time, _dt.time.fromisoformat)
    if tp is uuid.UUID:
        return _read_text(uuid.UUID, uuid.UUID)
    if tp is Decimal:
        return _read_decimal
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_info(tp).decode
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) or _generic_dataclass(tp):
        # Looked up at each call, not compiled here: a class that holds
        # itself (a linked list, a tree) or a class it holds (mutual
        # recursion) would otherwise compile its decoder forever. A generic
        # one (Box[int]) has a schema of its own, its T fields as int.
        s = _schema_or_plain(tp)

        def nested(v: Any) -> Any:
            d = s._decode
            if d is None:
                d = s.decode
            return d(v)

        return nested
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        if len(args) == 2 and _NoneType in args:
            inner = _converter(args[0] if args[1] is _NoneType else args[1])
            if inner is None:
                return None
            return lambda v: None if v is None else inner(v)
        pick, readers = _union_reader(tp)

        def union(v: Any) -> Any:
            c = readers[pick(v)]
            return v if c is None else c(v)

        return union
    if origin is typing.Literal:
        return _literal_forms(args)[0]
    kind = _kind(tp)
    if kind is tuple and _fixed_tuple(tp, args):
        slots = [] if _empty_tuple(tp, args) else [_converter(a) or _identity for a in args]

        def fixed(v: Any) -> Any:
            if not isinstance(v, _SEQ):
                raise _not("list", v)
            if len(v) != len(slots):
                raise ValueError(f"{len(v)} items, not {len(slots)}")
            return tuple(c(x) for c, x in zip(slots, v))

        return fixed
    if kind is dict:
        return _read_map(args)
    if kind is not None:
        return _read_each(kind, args[0] if args else Any)
    return None  # a class obj does not know: stored by the codec, read back as is


def _union_reader(tp: Any) -> tuple[Callable[[Any], int], list]:
    """``(pick, readers)`` of Union ``tp``: ``pick(v)`` is the position,
    among the union's arguments, of the arm that reads stored value ``v``
    (ValueError when none does), ``readers`` the arms' readers."""
    args = typing.get_args(tp)
    readers = [_converter(a) for a in args]
    none_at = args.index(_NoneType) if _NoneType in args else -1
    # Several arms may take one stored value (a Dog's map has a Cat's
    # name too; 2 is a valid float): the value goes to the arm that fits
    # it best (see _fitter), the first declared on a tie; a value no arm
    # fits is an error, not a guess.
    fits = [_fitter(a) for a in args]
    uname = _tname(tp)

    def pick(v: Any) -> int:
        if v is None and none_at >= 0:
            return none_at
        best, at = 0, -1
        for i, f in enumerate(fits):
            score = f(v)
            if score > best:
                best, at = score, i
        if at < 0:
            raise ValueError(f"no type of {uname} fits the stored {type(v).__name__}")
        return at

    return pick, readers


# -- which arm of a union a stored value belongs to ---------------------------------
# A stored value is JSON-shaped: the arms of a union are told apart by how
# well the value fits each, on a scale: _SPECIFIC for a value that only a
# narrow type writes in that form (an Enum member's value, a Literal, a
# date's or a UUID's canonical text, a map whose keys are exactly a
# dataclass's fields); _EXACT for the JSON type a type is written as (int
# for int, float for float, str for str...); _PARTIAL for a dataclass map
# that lacks fields with defaults; _WIDENED for a value that converts
# without loss (an int read as a float or a Decimal); below _STALE for a
# dataclass map with keys the class no longer has (a field dropped since
# it was written: read as a lone dataclass field would be, dropping them,
# only when no arm takes the whole value; fewer unknown keys fit better);
# _LOOSE for Any; 0 when it does not fit. A container fits as its worst
# element does.

_SPECIFIC, _EXACT, _PARTIAL, _WIDENED, _STALE, _LOOSE = 95, 90, 70, 50, 40, 1


def _fit_loose(v: Any) -> int:
    return _LOOSE


def _fit_type(*types: type, score: int = _EXACT) -> Callable[[Any], int]:
    def fit(v: Any) -> int:
        return score if type(v) in types else 0

    return fit


def _fit_text(cls: type, parse: Callable[[str], Any]) -> Callable[[Any], int]:
    """A type stored as its canonical text (date, time, UUID, Decimal)."""

    def fit(v: Any) -> int:
        if type(v) is str:
            try:
                return _SPECIFIC if str(parse(v)) == v else 0
            except (ValueError, ArithmeticError):
                return 0
        return _SPECIFIC if isinstance(v, cls) else 0

    return fit


def _fit_iso(cls: Any) -> Callable[[Any], int]:
    def fit(v: Any) -> int:
        if type(v) is str:
            try:
                return _SPECIFIC if cls.fromisoformat(v).isoformat() == v else 0
            except ValueError:
                return 0
        return _SPECIFIC if type(v) is cls else 0

    return fit


def _fit_decimal(v: Any) -> int:
    if type(v) is int or type(v) is float:
        return _WIDENED
    if isinstance(v, Decimal):
        return _SPECIFIC
    if type(v) is str:
        try:
            return _SPECIFIC if str(Decimal(v)) == v else 0
        except ArithmeticError:
            return 0
    return 0


def _fit_all(fits: Iterable[int]) -> int:
    """The fit of a container: its worst element's (_EXACT when empty)."""
    worst = _EXACT
    for f in fits:
        if f < worst:
            if not f:
                return 0
            worst = f
    return worst


def _fitter(tp: Any) -> Callable[[Any], int]:
    """How well a stored (decoded JSON) value fits annotation ``tp``: a
    score on the scale above, 0 when it does not fit."""
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _untyped(tp):
        return _fit_loose
    if _generic_dataclass(tp):  # Box[int]: Box, its T fields as int
        return _fit_dataclass(tp)
    if isinstance(tp, type) and typing.is_typeddict(tp):  # a dict, of values that read back as themselves
        tp, origin, args = dict, None, ()
    if tp is None or tp is _NoneType:
        return _fit_type(_NoneType)
    if tp is bool:
        return _fit_type(bool)
    if tp is int:
        return _fit_type(int)
    if tp is float:
        def fit_float(v: Any) -> int:
            t = type(v)
            return _EXACT if t is float else _WIDENED if t is int else 0

        return fit_float
    if tp is str:
        return _fit_type(str)
    if tp is bytes or tp is bytearray:
        return _fit_type(bytes, bytearray)
    if tp is _dt.datetime:
        return lambda v: _EXACT if isinstance(v, _dt.datetime) else 0
    if tp is _dt.date or tp is _dt.time:
        return _fit_iso(tp)
    if tp is uuid.UUID:
        return _fit_text(uuid.UUID, uuid.UUID)
    if tp is Decimal:
        return _fit_decimal
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        info = _enum_info(tp)

        def fit_enum(v: Any) -> int:
            if isinstance(v, tp):
                return _SPECIFIC
            try:
                info.decode(v)
            except (ValueError, TypeError, KeyError):
                return 0
            return _SPECIFIC

        return fit_enum
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _fit_dataclass(tp)
    if origin in _UNIONS:
        fits = [_fitter(a) for a in args]
        return lambda v: max(f(v) for f in fits)
    if origin is typing.Literal:
        read = _literal_forms(args)[0]

        def fit_literal(v: Any) -> int:
            try:
                read(v)
            except ValueError:
                return 0
            return _SPECIFIC

        return fit_literal
    kind = _kind(tp)
    if kind in _COLLS:
        # A stored collection is a list; one of the annotated kind itself
        # is in a dict that migrate() returned.
        typed = (tuple,) if kind is tuple else _SETS if kind in _SETS else ()
        if kind is tuple and _fixed_tuple(tp, args):
            slots = [] if _empty_tuple(tp, args) else [_fitter(a) for a in args]

            def fit_fixed(v: Any) -> int:
                if (type(v) is not list and type(v) is not tuple) or len(v) != len(slots):
                    return 0
                return _fit_all(f(x) for f, x in zip(slots, v))

            return fit_fixed
        each = _fitter(args[0]) if args else _fit_loose

        def fit_seq(v: Any) -> int:
            if type(v) is not list and type(v) not in typed:
                return 0
            return _fit_all(map(each, v)) if args else _EXACT

        return fit_seq
    if kind is dict:
        codec = _key_codec(args[0]) if args else None
        kdec = codec[1] if codec is not None else None
        vfit = _fitter(args[1]) if len(args) > 1 else None

        def fit_keys(v: dict) -> int:
            try:
                for k in v:
                    if type(k) is str:  # (a key no str is decoded already: migrate())
                        kdec(k)  # type: ignore[misc]
            except (ValueError, TypeError, KeyError):
                return 0
            return _EXACT

        def fit_map(v: Any) -> int:
            if type(v) is not dict:
                return 0
            worst = fit_keys(v) if kdec is not None else _EXACT
            if worst and vfit is not None:
                worst = min(worst, _fit_all(map(vfit, v.values())))
            return worst

        return fit_map
    if isinstance(tp, type):  # a class obj does not know: stored by the codec, read back as is
        return lambda v: _EXACT if isinstance(v, tp) else _LOOSE
    return _fit_loose


def _fit_dataclass(cls: Any) -> Callable[[Any], int]:
    """The fit of a stored map to dataclass ``cls``: its keys must hold
    every field without a default (_SPECIFIC when they are exactly the
    fields, _PARTIAL when some with defaults are missing, below _STALE when
    some are no field), and each value must fit its field. Field types are
    resolved at the first call (a class may refer to itself)."""
    s = _schema_or_plain(cls)
    if s._fit is None:
        s._fit = _make_fit_dataclass(cls)
    return s._fit


def _make_fit_dataclass(key: Any) -> Callable[[Any], int]:
    cls = typing.get_origin(key) or key  # (Box for Box[int])
    plan: list = []

    def fit_dc(v: Any) -> int:
        if isinstance(v, cls):
            return _SPECIFIC
        if type(v) is not dict:
            return 0
        if not plan:
            hints = _schema_or_plain(key).hints()
            fields = dataclasses.fields(cls)
            required = frozenset(
                f.name for f in fields
                if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
            plan[:] = [{f.name: _fitter(hints.get(f.name, Any)) for f in fields}, required]
        fits, required = plan
        if not required.issubset(v.keys()):
            return 0
        unknown = len(v.keys() - fits.keys())
        if unknown:
            score = max(_STALE - unknown, _LOOSE + 1)
        else:
            score = _SPECIFIC if len(v) == len(fits) else _PARTIAL
        for k, x in v.items():
            fk = fits.get(k)
            if fk is None:
                continue
            f = fk(x)
            if f < score and f < _EXACT:  # (a field that fits its JSON type fully does not lower the map's fit)
                if not f:
                    return 0
                score = f
        return score

    return fit_dc


class _Bad(Exception):
    """A value that does not fit its annotation (internal: Schema.validate
    turns it into InvalidArgumentError with the field path)."""

    def __init__(self, expected: str, value: Any, specific: bool = False) -> None:
        self.expected = expected
        self.value = value
        self.path: list[str] = []
        # The value is of the right type but that type cannot store it
        # (a union reports this error, not its own).
        self.specific = specific


def _tname(tp: Any) -> str:
    """A type annotation as people write it."""
    if isinstance(tp, type):
        return tp.__qualname__ if tp.__module__ not in ("builtins",) else tp.__name__
    return repr(tp).replace("typing.", "")


_SEQ = (list, tuple)
_SETS = (set, frozenset)


def _scalar(ok: tuple, name: str, widen: Callable[[Any], Any] | None = None,
            refuse: tuple = ()) -> tuple[frozenset, Callable[[Any], Any]]:
    """A checker for an atomic type: instances of ``ok`` (not of ``refuse``)
    pass; ``widen`` takes the rest or raises _Bad."""

    def chk(v: Any) -> Any:
        if isinstance(v, ok) and not isinstance(v, refuse):
            return v
        if widen is not None:
            try:
                return widen(v)
            except _Bad:
                pass
        raise _Bad(name, v)

    return frozenset(ok[:1]), chk


def _int_to_float(v: Any) -> float:
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            pass
    raise _Bad("float", v)


def _int_to_decimal(v: Any) -> Decimal:
    if isinstance(v, int) and not isinstance(v, bool):
        return Decimal(v)
    raise _Bad("Decimal", v)


def _elements(v: Any, exact: frozenset, chk: Callable[[Any], Any]) -> list | None:
    """The checked elements of a sequence (None when none changed)."""
    if exact and exact.issuperset(map(type, v)):  # C speed when every element is of an exact type
        return None
    return _check_items(v, itertools.repeat((exact, chk)))


def _check_items(v: Any, checks: Iterable[tuple[frozenset, Callable[[Any], Any] | None]]) -> list | None:
    """Element ``i`` of ``v`` checked by ``checks[i]`` (``(exact types,
    check)``, check None: anything goes); a list of the results when one was
    widened, else None. A failure's path gets the element's position."""
    out = None
    for i, ((ex, c), x) in enumerate(zip(checks, v)):
        if c is None or type(x) in ex:
            continue
        try:
            n = c(x)
        except _Bad as e:
            e.path.insert(0, f"[{i}]")
            raise
        if n is not x:
            if out is None:
                out = list(v)
            out[i] = n
    return out


def _each(kinds: tuple, name: str, args: tuple) -> tuple[frozenset, Callable[[Any], Any]]:
    """The checker of a list, tuple or set annotation of ``kinds`` whose
    elements are all of type ``args[0]`` (``Any`` without ``args``)."""
    ex, c = _checker(args[0] if args else Any)

    def each(v: Any) -> Any:
        if not isinstance(v, kinds):
            raise _Bad(name, v)
        out = _elements(v, ex, c)
        return v if out is None else out

    return _EMPTY, each


def _same_fields(a: type, b: type) -> bool:
    """Whether two dataclasses have the same fields."""
    return [f.name for f in dataclasses.fields(a)] == [f.name for f in dataclasses.fields(b)]


def _init_takes(cls: type, fields: tuple) -> tuple[frozenset | None, bool]:
    """The fields ``cls(**fields)`` can pass (None: any, ``__init__`` takes
    ``**kwargs``), and whether ``__init__`` takes anything else (an
    ``InitVar``); InvalidArgumentError when it requires what no stored field
    gives (an ``InitVar`` without a default, a custom ``__init__``'s own
    argument), since no document could be read back."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):  # no signature to read: pass the fields, as a dataclass takes them
        return None, False
    names = {f.name for f in fields}
    P = inspect.Parameter
    for p in params:
        if p.default is P.empty and p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD) and (
                p.name not in names or p.kind is P.POSITIONAL_ONLY):
            raise InvalidArgumentError(
                f"{cls.__qualname__}: a stored document is read back by calling {cls.__qualname__}(**fields), "
                f"and its __init__ also requires {p.name!r}, which no stored field gives: give it a default")
    extra = any(p.name not in names for p in params if p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD))
    if any(p.kind is P.VAR_KEYWORD for p in params):
        return None, extra
    return frozenset(p.name for p in params if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)), extra


def _untyped(tp: Any) -> bool:
    """Whether a (stripped) annotation says nothing of its values' type."""
    return tp is Any or tp is object or isinstance(tp, TypeVar)


def _bind(tp: Any, typevars: dict) -> Any:
    """Annotation ``tp`` with ``typevars`` put for its type variables
    (``list[T]`` with ``{T: int}``: ``list[int]``)."""
    if isinstance(tp, TypeVar):
        return typevars.get(tp, tp)
    params = getattr(tp, "__parameters__", ())
    if params and all(p in typevars for p in params):
        try:
            return tp[tuple(typevars[p] for p in params)]
        except TypeError:  # an annotation that takes no arguments this way: as it is
            return tp
    return tp


def _generic_dataclass(tp: Any) -> bool:
    """Whether ``tp`` is a generic dataclass with its parameters (``Box[int]``)."""
    origin = typing.get_origin(tp)
    return isinstance(origin, type) and dataclasses.is_dataclass(origin)


# What a field that says nothing of its type (Any, object, a bare list or
# dict, a TypedDict) reads back as itself: these, in lists and in dicts
# with str keys. A tuple would read back as a list, a UUID, date or Enum
# as its text, a dataclass as a dict.
_MAX_DEPTH = 128  # a document's nesting limit (the engine's)
_PLAIN_TYPES = frozenset((_NoneType, bool, int, float, str, bytes, _dt.datetime, _codec.RawTimestamp))
_PLAIN_WHAT = ("a value that reads back as itself without a declared type (None, bool, int, float, str, bytes, "
               "datetime, and lists and str-keyed dicts of them; declare the field's type for others)")


def _equal_when_read(v: Any) -> bool:
    """Whether ``v`` is of a subclass of int, float or str (numpy's
    float64, an IntEnum member), which reads back as an equal value of the
    base type."""
    return isinstance(v, (int, float, str))


class _TooDeep(Exception):
    """A value nested deeper than a document may be (internal to _plain)."""


def _plain(v: Any) -> Any:
    """The check of a value whose annotation says nothing of its type: ``v``
    when it reads back as itself, else _Bad. A value nested deeper than a
    document may be (or one that holds itself) is left to the codec, which
    refuses it."""
    t = type(v)
    if t in _PLAIN_TYPES or _equal_when_read(v):
        return v
    if t is not dict and t is not list:
        raise _Bad(_PLAIN_WHAT, v, True)
    try:
        _plain_items(v, 0)
    except _TooDeep:
        pass
    return v


def _plain_items(x: Any, depth: int) -> None:
    """_plain of a list's or dict's items: at C speed when they are all of
    the plain scalar types, else one call a nested list or dict (a key that
    is not a str is the codec's error, which says why)."""
    if depth > _MAX_DEPTH:
        raise _TooDeep
    items = x.values() if type(x) is dict else x
    if _PLAIN_TYPES.issuperset(map(type, items)):
        return
    for y in items:
        t = type(y)
        if t is dict or t is list:
            _plain_items(y, depth + 1)
        elif t not in _PLAIN_TYPES and not _equal_when_read(y):
            raise _Bad(_PLAIN_WHAT, y, True)


def _checker(tp: Any) -> tuple[frozenset, Callable[[Any], Any]]:
    """``(exact types, check)`` for a field annotated ``tp``: a value whose
    type is in ``exact`` passes as it is; else ``check(v)`` returns the value
    to store (``v``, or ``v`` widened) or raises _Bad. An annotation that
    says nothing of its values (``Any``, or one obj does not know) checks
    that they read back as themselves (:func:`_plain`)."""
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    name = _tname(tp)
    if _untyped(tp):
        return _PLAIN_TYPES, _plain
    if tp is None or tp is _NoneType:
        return _scalar((_NoneType,), "None")
    if tp is bool:
        return _scalar((bool,), "bool")
    if tp is int:  # bool is not an int here (as for document ids): it is stored, and read back, as a bool
        return _scalar((int,), "int", refuse=(bool,))
    if tp is float:
        return _scalar((float,), "float", _int_to_float)
    if tp is str:
        return _scalar((str,), "str")
    if tp is bytes or tp is bytearray:
        return _scalar((tp, bytes, bytearray, memoryview), name)
    if tp is _dt.datetime:
        return _scalar((_dt.datetime,), "datetime")
    if tp is _dt.date:  # a datetime would be stored as a timestamp, not a date
        return _scalar((_dt.date,), "date", refuse=(_dt.datetime,))
    if tp is _dt.time:
        return _scalar((_dt.time,), "time")
    if tp is uuid.UUID:
        return _scalar((uuid.UUID,), "UUID")
    if tp is Decimal:
        return _scalar((Decimal,), "Decimal", _int_to_decimal)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        info = _enum_info(tp)
        if not info.bad:
            return _scalar((tp,), f"a member of {name}")
        bad = info.bad

        def member(v: Any) -> Any:
            if not isinstance(v, tp):
                raise _Bad(f"a member of {name}", v)
            if v in bad:
                raise _Bad(f"a member of {name} that can be stored ({bad[v]})", v, True)
            return v

        return _EMPTY, member
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) or _generic_dataclass(tp):
        cls = origin or tp  # (Box for Box[int], whose schema reads its T fields as int)

        def nested(v: Any) -> Any:
            # A subclass reads back as this class: one with fields of its
            # own would have them stored, then dropped.
            if type(v) is not cls and not (isinstance(v, cls) and _same_fields(type(v), cls)):
                raise _Bad(name, v)
            return _schema_or_plain(tp)._checked(v)

        return _EMPTY, nested
    if isinstance(tp, type) and typing.is_typeddict(tp):
        # A TypedDict is a dict: its values must read back as themselves
        # from a dict, as those of a field typed dict must.
        return _PLAIN_TYPES, _plain
    if origin in _UNIONS:
        arms = [_checker(a) for a in args]
        exact = frozenset().union(*(e for e, _ in arms))
        deep_at = -1
        if len(args) == 2 and _NoneType in args:  # Optional[X]: X's error, when it is about X's inside
            deep_at = 0 if args[1] is _NoneType else 1
        # A value goes to an arm of its own type first: a tuple to
        # tuple[int, ...] rather than to list[int] (that takes tuples too).
        natural: dict = {}
        for i, a in enumerate(args):
            t = _natural(a)
            if t is not None:
                natural.setdefault(t, []).append(i)

        def find(v: Any) -> tuple[int, Any]:
            """The arm that takes ``v`` and what it stores."""
            if deep_at >= 0 and v is not None:
                try:
                    return deep_at, arms[deep_at][1](v)  # type: ignore[misc]
                except _Bad as e:
                    if e.path or e.specific:
                        raise
                    raise _Bad(name, v) from None
            for i in natural.get(type(v), ()):
                try:
                    return i, arms[i][1](v)  # type: ignore[misc]
                except _Bad:
                    pass
            for i, (_, c) in enumerate(arms):
                try:
                    return i, c(v)  # type: ignore[misc]
                except _Bad:
                    continue
            raise _Bad(name, v)

        verify = _union_verifier(tp, name)
        if verify is None:
            def union(v: Any) -> Any:
                if type(v) in exact:
                    return v
                return find(v)[1]

            return exact, union

        def verified(v: Any) -> Any:
            i, n = find(v)
            verify(v, i, n)
            return n

        return _EMPTY, verified
    if origin is typing.Literal:
        bad = _literal_forms(args)[1]

        def literal(v: Any) -> Any:
            for i, a in enumerate(args):
                if v == a and type(v) is type(a):
                    if i in bad:
                        raise _Bad(f"a value of {name} that can be read back ({bad[i]})", v, True)
                    return v
            raise _Bad(name, v)

        return _EMPTY, literal
    kind = _kind(tp)
    if kind is list or kind is tuple:
        kinds = (tuple, list) if kind is tuple else _SEQ
        if kind is tuple and _fixed_tuple(tp, args):
            slots = [] if _empty_tuple(tp, args) else [_checker(a) for a in args]

            def fixed(v: Any) -> Any:
                if not isinstance(v, kinds) or len(v) != len(slots):
                    raise _Bad(name, v)
                out = _check_items(v, slots)
                return v if out is None else out

            return _EMPTY, fixed
        return _each(kinds, name, args)
    if kind is set or kind is frozenset:
        return _each(_SETS, name, args)
    if kind is dict:
        kex, kc = _checker(args[0]) if args else (_EMPTY, None)
        vex, vc = _checker(args[1] if len(args) > 1 else Any)
        codec = _key_codec(args[0]) if args else None
        if codec is not None:
            # Keys of a type JSON maps cannot hold are stored as their text
            # (checked and encoded here), read back by the key type.
            kex, kc = frozenset(), codec[0]
        kinds2 = dict if (origin or tp) is dict else Mapping
        if kc is None and vc is _plain:
            # A dict (or dict[str, Any]) of plain values: one walk, at C
            # speed over the values of each level.
            def plain_map(v: Any) -> Any:
                if not isinstance(v, kinds2):
                    raise _Bad(name, v)
                _plain(v if type(v) is dict else dict(v))
                return v

            return _EMPTY, plain_map

        def amap(v: Any) -> Any:
            if not isinstance(v, kinds2):
                raise _Bad(name, v)
            out = None
            for k, x in v.items():
                nk, nx = k, x
                try:
                    if kc is not None and type(k) not in kex:
                        nk = kc(k)
                    if vc is not None and type(x) not in vex:
                        nx = vc(x)
                except _Bad as e:
                    e.path.insert(0, f"[{k!r:.40}]")
                    raise
                if nk is not k or nx is not x:
                    if out is None:
                        out = dict(v)
                    if nk is not k:
                        del out[k]
                    out[nk] = nx
            return v if out is None else out

        if codec is not None:
            def tmap(v: Any) -> Any:
                if not isinstance(v, kinds2):
                    raise _Bad(name, v)
                out = {}
                for k, x in v.items():
                    try:
                        nk = kc(k)
                        if vc is not None and type(x) not in vex:
                            x = vc(x)
                    except _Bad as e:
                        e.path.insert(0, f"[{k!r:.40}]")
                        raise
                    out[nk] = x
                return out

            return _EMPTY, tmap
        return _EMPTY, amap

    # An annotation obj does not know (Iterable[int], Hashable, a
    # NamedTuple, pathlib.Path): its values are read back as stored, so it
    # takes those that read back as themselves without a declared type.
    def unknown(v: Any) -> Any:
        try:
            return _plain(v)
        except _Bad:
            raise _Bad(f"a value that reads back as itself ({name} is not a type obj stores: see Types in the "
                       f"README)", v, True) from None

    return _PLAIN_TYPES, unknown


def _natural(tp: Any) -> Any:
    """The type of the values that belong to union arm ``tp`` before any
    other arm that takes them (list for ``list[int]``), or None."""
    tp = _strip(tp)
    kind = _kind(tp)
    if kind is not None:
        return kind
    return tp if isinstance(tp, type) else None


def _union_verifier(tp: Any, name: str) -> Callable[[Any, int, Any], None] | None:
    """For Union ``tp``: ``verify(v, i, n)`` raises _Bad when value ``v``,
    taken by arm ``i`` and stored as ``n``, would read back as another
    arm's value (a str with a date's text reads back as a date, a Cat as a
    Dog with the same fields, a tuple as a list): the README's rule, a value
    that could not be told apart from another once stored is refused when
    written. None when every value reads back as itself: arms stored as
    themselves (``Union[int, str]``), or ``Optional[X]`` where no X is
    stored as null."""
    args = typing.get_args(tp)
    others = [a for a in args if a is not _NoneType]
    if all(_strip(a) in _SCALARS for a in args) or (len(others) == 1 and not _fitter(others[0])(None)):
        return None
    pick, readers = _union_reader(tp)

    def verify(v: Any, i: int, n: Any) -> None:
        stored = _stored_form(n)
        if stored is _UNSTORABLE:  # (the encoder says why)
            return
        try:
            j = pick(stored)
            if j == i:
                return
            c = readers[j]
            back = stored if c is None else c(stored)
        except Exception:  # noqa: BLE001 - no arm reads it back
            raise _Bad(f"a value of {name} that reads back (stored as {stored!r:.40}, no arm reads it)", v,
                       True) from None
        if _same(back, v):  # (another arm, the same value: Literal["a"] and str)
            return
        raise _Bad(f"a value of {name} that reads back as itself (stored as {stored!r:.40}, it reads back as "
                   f"{back!r:.60}: the two could not be told apart)", v, True)

    return verify


# -- map keys of other types than str -----------------------------------------
# A JSON map's keys are strings. A typed ``dict[K, V]`` field whose key
# type is not str stores each key as a text that its type reads back
# exactly: the check of a write encodes the keys (refusing what the type
# cannot take), the decoder turns the texts back into keys of type K.

_NULL_KEY = "null"
_BOOL_KEYS = {"true": True, "false": False}


def _strip(tp: Any) -> Any:
    """``tp`` without Annotated[...], Final[...] and NewType."""
    while True:
        if typing.get_origin(tp) in (typing.Annotated, typing.Final):
            tp = typing.get_args(tp)[0]
            continue
        sup = getattr(tp, "__supertype__", None)
        if sup is not None:
            tp = sup
            continue
        return tp


def _key_codec(tp: Any) -> tuple[Callable[[Any], str], Callable[[str], Any]] | None:
    """``(encode, decode)`` of the keys of a ``dict[tp, ...]`` field:
    ``encode(key)`` is the stored text (or raises _Bad), ``decode(text)``
    the key again. None when the keys are stored as they are (str, Any, or
    a key type obj keeps as before)."""
    tp = _strip(tp)
    name = _tname(tp)
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        args = typing.get_args(tp)
        if len(args) != 2 or _NoneType not in args:
            return None
        inner_tp = _strip(args[0] if args[1] is _NoneType else args[1])
        inner = _key_codec(inner_tp)
        if inner is None:
            if inner_tp is not str:
                return None

            def enc_s(k: Any) -> str:
                if not isinstance(k, str):
                    raise _Bad("str", k)
                return k

            inner = (enc_s, str)
        ienc, idec = inner

        def enc_opt(k: Any) -> str:
            if k is None:
                return _NULL_KEY
            t = ienc(k)
            if t == _NULL_KEY:
                raise _Bad(f"a key of {name} other than one stored as 'null' (the text of None)", k, True)
            return t

        def dec_opt(t: str) -> Any:
            return None if t == _NULL_KEY else idec(t)

        return enc_opt, dec_opt
    if origin is typing.Literal:
        # Literal int keys are stored as their text and read back as ints
        # (Literal str keys are stored as they are; other mixes are not
        # keys JSON maps can hold).
        allowed = typing.get_args(tp)
        if not allowed or any(type(a) is not int for a in allowed):
            return None

        def enc_literal(k: Any) -> str:
            if type(k) is not int or k not in allowed:
                raise _Bad(name, k)
            return str(k)

        return enc_literal, int
    if tp is bool:
        def enc_bool(k: Any) -> str:
            if type(k) is not bool:
                raise _Bad("bool", k)
            return "true" if k else "false"

        def dec_bool(t: str) -> bool:
            try:
                return _BOOL_KEYS[t.lower()]
            except KeyError:
                raise ValueError(f"{t!r} is no bool") from None

        return enc_bool, dec_bool
    if tp is int:
        def enc_int(k: Any) -> str:
            if not isinstance(k, int) or isinstance(k, bool):
                raise _Bad("int", k)
            return str(int(k))

        return enc_int, int
    if tp is float:
        def enc_float(k: Any) -> str:
            if isinstance(k, float) or (isinstance(k, int) and not isinstance(k, bool)):
                try:
                    return repr(float(k))
                except OverflowError:
                    pass
            raise _Bad("float", k)

        return enc_float, float
    if tp is Decimal:
        def enc_dec(k: Any) -> str:
            if isinstance(k, Decimal):
                return str(k)
            if isinstance(k, int) and not isinstance(k, bool):
                return str(Decimal(k))
            raise _Bad("Decimal", k)

        return enc_dec, Decimal
    if tp is uuid.UUID:
        def enc_uuid(k: Any) -> str:
            if not isinstance(k, uuid.UUID):
                raise _Bad("UUID", k)
            return str(k)

        return enc_uuid, uuid.UUID
    if tp is _dt.datetime:
        def enc_dt(k: Any) -> str:
            if not isinstance(k, _dt.datetime):
                raise _Bad("datetime", k)
            return k.isoformat()

        return enc_dt, _dt.datetime.fromisoformat
    if tp is _dt.date:
        def enc_date(k: Any) -> str:
            if not isinstance(k, _dt.date) or isinstance(k, _dt.datetime):
                raise _Bad("date", k)
            return k.isoformat()

        return enc_date, _dt.date.fromisoformat
    if tp is _dt.time:
        def enc_time(k: Any) -> str:
            if not isinstance(k, _dt.time):
                raise _Bad("time", k)
            return k.isoformat()

        return enc_time, _dt.time.fromisoformat
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        info = _enum_info(tp)
        bad = info.bad_key

        def enc_enum(k: Any) -> str:
            if not isinstance(k, tp):
                raise _Bad(f"a member of {name}", k)
            if k in bad:
                raise _Bad(f"a member of {name} that can be a map key ({bad[k]})", k, True)
            return info.key_text(k)

        return enc_enum, info.from_key
    return None


# -- enums ------------------------------------------------------------------------
# A member is stored as its value, in the value's stored form (a tuple as
# a list, a Decimal or a date as text...). Reading looks the stored form up
# among the members' stored forms, so every member whose stored form is
# its own reads back as itself; members whose stored forms coincide (or
# whose value cannot be stored) are refused when written.

_UNSTORABLE = object()


def _same(a: Any, b: Any) -> bool:
    """Whether two values are one: equal, and of the same types all the
    way down (``1`` is not ``True``, a tuple is not a list, NaN is NaN)."""
    t = type(a)
    if t is not type(b):
        return False
    if t is list or t is tuple:
        return len(a) == len(b) and all(map(_same, a, b))
    if t is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if t is float and a != a:
        return b != b
    if dataclasses.is_dataclass(t):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return bool(a == b)


def _stored_form(m: Any) -> Any:
    """What reading back a stored value gives (before decoding), or
    _UNSTORABLE."""
    try:
        return _codec.loads(_codec.dumps([m]))[0]
    except Exception:  # noqa: BLE001 - a value the codec refuses
        return _UNSTORABLE


def _hkey(v: Any) -> Any:
    """A dict key for a decoded scalar that tells types apart (and takes NaN)."""
    if type(v) is float and v != v:
        return (float, "nan")
    return (type(v), v)


_MISSING = object()


def _by_form(values: Sequence) -> tuple[dict, list, dict, list]:
    """Values (an Enum's members, a Literal's values) by their stored forms,
    to read them back: ``(by, slow, clash, forms)``, scalar forms in ``by``
    by a typed key, list and map forms (rare) in ``slow`` as ``(form,
    value)``, compared pairwise; ``clash`` maps the position of each value
    that cannot be read back to ``(_UNSTORABLE, None)``, or to ``(form,
    position of another value stored so)``; ``forms`` the stored forms."""
    forms = [_stored_form(m) for m in values]
    groups: dict = {}
    lists: list = []
    clash: dict = {}
    for i, f in enumerate(forms):
        if f is _UNSTORABLE:
            clash[i] = (f, None)
        elif type(f) is list or type(f) is dict:
            for g in lists:
                if _same(g[0], f):
                    g[1].append(i)
                    break
            else:
                lists.append((f, [i]))
        else:
            groups.setdefault(_hkey(f), (f, []))[1].append(i)
    by = {k: values[ix[0]] for k, (_f, ix) in groups.items() if len(ix) == 1}
    slow = [(f, values[ix[0]]) for f, ix in lists if len(ix) == 1]
    for f, ix in list(groups.values()) + lists:
        if len(ix) > 1:
            for i in ix:
                clash[i] = (f, next(j for j in ix if j != i))
    return by, slow, clash, forms


def _find_form(by: dict, slow: list, v: Any) -> Any:
    """The value stored as ``v`` (see _by_form), or _MISSING."""
    if type(v) is list or type(v) is dict:
        for f, m in slow:
            if _same(f, v):
                return m
        return _MISSING
    try:
        return by.get(_hkey(v), _MISSING)
    except TypeError:  # unhashable
        return _MISSING


def _literal_forms(args: tuple) -> tuple[Callable[[Any], Any], dict]:
    """``(read, bad)`` of ``Literal[*args]``, whose values are stored as
    they are, an Enum member as its value: ``read(v)`` is the value stored
    as ``v`` (ValueError if none); ``bad`` maps the position of each value
    that could not be read back (stored as another one is, or not at all)
    to why: it is refused when written."""
    by, slow, clash, _forms = _by_form(args)
    bad = {i: f"{args[i]!r:.40} cannot be stored" if f is _UNSTORABLE else
           f"{args[i]!r:.40} is stored as {f!r:.40}, as {args[j]!r:.40} is" for i, (f, j) in clash.items()}

    def read(v: Any) -> Any:
        m = _find_form(by, slow, v)
        if m is not _MISSING:
            return m
        for a in args:
            if v is a and isinstance(a, enum.Enum):  # a member itself (in a dict that migrate() returned)
                return a
        raise ValueError(f"{v!r:.40} is none of {args!r:.80}")

    return read, bad


class _EnumInfo:
    """How one Enum class's members are stored and read back."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        members = list(cls)
        self._by, self._slow, clash, forms = _by_form(members)
        self.bad: dict = {}
        for i, (f, j) in clash.items():
            m = members[i]
            if f is _UNSTORABLE:
                self.bad[m] = f"its value {m.value!r:.60} cannot be stored"
            else:
                self.bad[m] = (f"its value {m.value!r:.40} is stored as {f!r:.40}, as "
                               f"{cls.__name__}.{members[j].name}'s is, and could not be told apart when read")
        self._text: dict = {}
        self._by_text: dict = {}
        self.bad_key: dict = dict(self.bad)
        texts: dict = {}
        for m, f in zip(members, forms):
            if m in self.bad:
                continue
            t = self._text[m] = _key_of(f)
            texts.setdefault(t, []).append(m)
        for t, ms in texts.items():
            if len(ms) > 1:
                for m in ms:
                    self.bad_key[m] = f"its value {m.value!r:.40} gives the map key {t!r:.40}, as another member's does"
            else:
                self._by_text[t] = ms[0]

    def decode(self, v: Any) -> Any:
        """The member a stored value reads back as (ValueError if none)."""
        if isinstance(v, self.cls):
            return v
        m = _find_form(self._by, self._slow, v)
        if m is not _MISSING:
            return m
        return self.cls(v)  # a value stored otherwise (a Flag's combination...): the class decides

    def key_text(self, m: Any) -> str:
        """The map key a member is stored as."""
        t = self._text.get(m)
        if t is None:
            f = _stored_form(m)
            if f is _UNSTORABLE:
                raise _Bad(f"a member of {self.cls.__name__} that can be stored", m, True)
            t = _key_of(f)
        return t

    def from_key(self, t: str) -> Any:
        """The member a stored map key reads back as (ValueError if none)."""
        m = self._by_text.get(t)
        if m is not None:
            return m
        try:
            return self.cls(t)
        except (ValueError, TypeError):
            pass
        try:
            v = _codec.loads(t.encode("utf-8"))
        except Exception:  # noqa: BLE001 - not JSON: no member
            raise ValueError(f"{t!r} is not a key of {self.cls.__name__}") from None
        return self.decode(v)


def _key_of(f: Any) -> str:
    """The map key text of a member's stored form: a str as it is, anything
    else as compact JSON."""
    if type(f) is str:
        return f
    return json.dumps(_codec.to_jsonable(f), separators=(",", ":"), ensure_ascii=False)


_ENUMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _enum_info(cls: type) -> _EnumInfo:
    info = _ENUMS.get(cls)
    if info is None:
        info = _ENUMS[cls] = _EnumInfo(cls)
    return info


_PLAIN: dict[Any, Schema] = {}


def _scope_names(frame: Any) -> dict | None:
    """The type-like names (classes, generic aliases, type variables,
    NewTypes) of the function or class body running in ``frame``, or None
    at module level. A class defined in a function, under ``from __future__ import
    annotations``, has annotations naming that function's local classes,
    which its module cannot resolve later. A snapshot: names bound after
    the class is decorated are not in it."""
    if frame is None or frame.f_locals is frame.f_globals:
        return None
    names = {k: v for k, v in frame.f_locals.items()
             if isinstance(v, (type, typing.TypeVar)) or typing.get_origin(v) is not None
             or hasattr(v, "__supertype__")}
    return names or None


def _share_scope(cls: Any, localns: dict | None) -> None:
    """Lends ``localns`` to plain (undecorated) dataclass ``cls`` that has
    none of its own."""
    if localns and isinstance(cls, type) and dataclasses.is_dataclass(cls) and "__obj_schema__" not in cls.__dict__:
        s = _schema_or_plain(cls)
        if s._localns is None:
            s._localns = localns


def _dataclasses_in(tp: Any) -> Iterator[type]:
    """Every dataclass named in type ``tp`` (itself, or in its arguments
    at any depth: ``dict[str, list[Optional[Inner]]]``)."""
    tp = _strip(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        yield tp
    for a in typing.get_args(tp):  # (() for anything but a typing construct)
        yield from _dataclasses_in(a)


def _schema_or_plain(cls: Any) -> Schema:
    """The schema of a document class, or of a plain dataclass it holds; a
    generic one with its arguments (``Box[int]``) has a schema of its own,
    which reads its ``T`` fields as ``int``."""
    origin = typing.get_origin(cls)
    if origin is None:
        s = cls.__dict__.get("__obj_schema__")
        if s is not None:
            return s
    s = _PLAIN.get(cls)
    if s is None:
        s = Schema(origin or cls, collection="", version=0, indexes=(), history=())
        if origin is not None:
            s._typevars = dict(zip(getattr(origin, "__parameters__", ()), typing.get_args(cls)))
            s._localns = _schema_or_plain(origin)._localns
        _PLAIN[cls] = s
    return s


def _field_markers(cls: Any, prefix: str, outer: tuple) -> Iterator[tuple[str, IndexMarker]]:
    """``(dotted path, marker)`` for every index marker of dataclass ``cls``
    and of the dataclasses it holds (``addr: Address`` whose ``city`` is
    ``Annotated[str, obj.Index]`` gives ``"addr.city"``; through
    ``Optional[...]``, a generic's arguments (``page: Page[Item]``) and
    list elements too, which the engine's index paths fan out over).
    ``outer`` holds the classes being walked (a dataclass that holds itself
    is walked once). A marker written anywhere else (on a list's
    elements, in a dict, in a Union of several types) would make no index:
    it raises InvalidArgumentError (_stray_marker)."""
    hints = _schema_or_plain(cls).hints()
    for f in dataclasses.fields(_dataclass_of(cls)):
        path = prefix + f.name
        tp = hints.get(f.name)
        marks: list = []
        inner = _unmarked(tp, marks)
        for m in marks:
            yield path, m
        for sub in _held_dataclasses(inner):
            if sub != cls and sub not in outer:
                yield from _field_markers(sub, path + ".", outer + (cls,))
        stray = _stray_marker(inner)
        if stray is not None:
            root = _dataclass_of(outer[0] if outer else cls)
            raise InvalidArgumentError(
                f"{root.__name__}.{path}: index marker {stray[0]!r} {stray[1]} makes no index; markers are "
                f"honoured on a field's own type (also in Optional) and on the fields of a dataclass that a "
                f"field holds itself, in Optional, as a generic's argument (Page[Item]) or as the elements of "
                f"a list, tuple or set{stray[2]}")


_WHERE_DICT = ("inside a dict (an index path cannot reach every value of a dict)", "; hold them in a list of "
               "dataclasses (items: list[Item], indexed as items.sku)")
_WHERE_UNION = ("inside a Union of several types (an index path cannot tell them apart)", "; use one type, "
                "or Optional[...] of it")


def _stray_marker(tp: Any) -> tuple[IndexMarker, str, str] | None:
    """For a field of type ``tp`` (unwrapped): ``(marker, where, hint)`` of
    an index marker written into it where no index path reaches (on a
    list's elements, in a dict, in an arm of a Union), else None. The
    markers of a dataclass it holds there are its own: that class may be
    indexed where another field holds it, or be a document of its own."""
    if _dataclass_of(tp) is not None:
        return None  # its fields are walked (_field_markers)
    if _kind(tp) in _COLLS:
        for a in typing.get_args(tp):
            marks: list = []
            inner = _unmarked(a, marks)
            if marks:
                return (marks[0], "on the elements of a list, tuple or set",
                        "; to index each element, mark the field itself: Annotated[list[str], obj.Each] (its "
                        "index has an entry for the whole list too, so obj.Unique there also makes two equal "
                        "lists, two empty ones included, collide)")
            m = _find_marker(inner)
            if m is not None:
                return m, f"inside {inner!r} in a list, tuple or set", ""
        return None
    m = _find_marker(tp)
    if m is None:
        return None
    if _kind(tp) is dict:
        return (m, *_WHERE_DICT)
    if typing.get_origin(tp) in _UNIONS:
        return (m, *_WHERE_UNION)
    return m, f"inside {tp!r}", ""


def _find_marker(tp: Any) -> IndexMarker | None:
    """The first index marker written in type ``tp`` or its arguments at
    any depth, not looking into the dataclasses it names, else None."""
    if typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        found = next((m for m in args[1:] if isinstance(m, IndexMarker)), None)
        return found if found is not None else _find_marker(args[0])
    sup = getattr(tp, "__supertype__", None)  # typing.NewType
    if sup is not None:
        return _find_marker(sup)
    if _dataclass_of(tp) is not None:
        return None
    for a in typing.get_args(tp):
        found = _find_marker(a)
        if found is not None:
            return found
    return None


def _dataclass_of(tp: Any) -> Any:
    """The dataclass ``tp`` names: itself, or the class of a generic one
    given its arguments (``Page[Item]``: ``Page``); else None."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    return typing.get_origin(tp) if _generic_dataclass(tp) else None


def _unmarked(tp: Any, marks: list) -> Any:
    """``tp`` without ``Annotated[...]``, ``Optional[...]`` and NewType
    wrappers, collecting the index markers of every ``Annotated`` layer
    (``Optional[Annotated[str, obj.Unique]]`` too) into ``marks``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            marks += [m for m in typing.get_args(tp)[1:] if isinstance(m, IndexMarker)]
            tp = typing.get_args(tp)[0]
            continue
        sup = getattr(tp, "__supertype__", None)  # typing.NewType
        if sup is not None:
            tp = sup
            continue
        if origin in _UNIONS:
            args = [a for a in typing.get_args(tp) if a is not _NoneType]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _held_dataclasses(tp: Any) -> list:
    """The dataclasses a field of type ``tp`` (unwrapped) holds directly or
    as the elements of a list, tuple or set (a generic one with its
    arguments as it is: ``Page[Item]``, whose hints bind ``T``)."""
    if _dataclass_of(tp) is not None:
        return [tp]
    if _kind(tp) in _COLLS:
        out = []
        for a in typing.get_args(tp):
            if a is not Ellipsis:
                inner = _unmarked(a, [])
                if _dataclass_of(inner) is not None:
                    out.append(inner)
        return out
    return []


class Schema:
    """What obj knows about a document class: collection, version, index
    specs, and its (lazily compiled) decoder. Reached with
    ``obj.schema_of(cls)``."""

    def __init__(self, cls: type, collection: str, version: int, indexes: Iterable[Composite], history: Iterable[type]):
        self.cls = cls
        self.collection = collection
        self.version = version
        # What needs no field types is checked now; the fields the indexes
        # name, once the types resolve (forward references), at first use.
        indexes = list(indexes)
        for c in indexes:
            if not isinstance(c, Composite):
                raise InvalidArgumentError(f"indexes=[...] takes obj.Composite values, not {c!r}")
        self._composite_specs = [c.spec() for c in indexes]
        self.history = list(history)
        self._decode: Callable[[dict], Any] | None = None
        self._index_specs: list[dict] | None = None
        self._shape: tuple | None = None
        self._hints: dict | None = None
        self._check: Callable[[Any], Any] | None = None
        self._key_slots: dict[str, tuple] = {}  # key_slot_types, by index
        self._fit: Callable[[Any], int] | None = None  # (_fit_dataclass)
        # Type-like names of the function the class was defined in (see
        # _scope_names), for annotations that are text (postponed).
        self._localns: dict | None = None
        # A generic dataclass's type variables, bound (Box[int]: {T: int}).
        self._typevars: dict = {}

    # -- type information (resolved on first use: forward references) ------
    def hints(self) -> dict:
        if self._hints is None:
            mod = sys.modules.get(self.cls.__module__)
            # (the class by its own name too: a class that refers to itself,
            # defined inside a function, resolves)
            localns = {**(self._localns or {}), self.cls.__name__: self.cls}
            try:
                hints = typing.get_type_hints(self.cls, globalns=vars(mod) if mod else None,
                                              localns=localns, include_extras=True)
            except Exception as e:  # noqa: BLE001 - unresolvable annotations
                raise InvalidArgumentError(f"{self.cls.__name__}: cannot resolve field types: {e}") from None
            if self._typevars:
                hints = {k: _bind(v, self._typevars) for k, v in hints.items()}
            if self._localns:
                # The plain dataclasses it holds were defined in the same
                # function as a rule: they resolve their text in its names.
                for tp in hints.values():
                    for sub in _dataclasses_in(tp):
                        _share_scope(sub, self._localns)
            self._hints = hints
        return self._hints

    def index_specs(self) -> list[dict]:
        """The engine index specs declared by the class."""
        if self._index_specs is None:
            marked = list(_field_markers(self.cls, "", ()))
            for path in dict.fromkeys(p for p, _ in marked):  # (in field order: the first such field is named)
                markers = [m for p, m in marked if p == path]
                if len(markers) > 1:
                    on_list = Each in markers
                    raise InvalidArgumentError(
                        f"{self.cls.__name__}: field {path!r} has more than one index marker "
                        f"({', '.join(map(repr, markers))}): give it one"
                        + (" (on a list field each marker indexes every element, so obj.Unique alone makes "
                           "the elements unique)" if on_list else ""))
            specs = [{"name": path, "kind": m.kind, "fields": [path]} for path, m in marked]
            for spec in self._composite_specs:
                for path in spec["fields"]:
                    self.check_path(path, f"index {spec['name']!r} names field {path!r}")
                specs.append(spec)
            names = [s["name"] for s in specs]
            if len(set(names)) != len(names):
                twice = sorted({n for n in names if names.count(n) > 1})
                raise InvalidArgumentError(f"{self.cls.__name__}: two indexes share a name: {', '.join(twice)} "
                                           f"(an index is named after its marked field, a Composite by its "
                                           f"name= or its fields joined by '_': give each its own)")
            self._index_specs = specs
        return self._index_specs

    def check_path(self, path: str, what: str) -> None:
        """Refuses a dotted path naming a field the class (or a dataclass it
        holds on the way) does not have: an index on it (``what`` says
        which) would stay empty, a query filter or sort on it would match
        nothing or sort nothing, without a word. Below a field that is not
        a dataclass (a dict, ``Any``) any key may follow, and so after a
        numeric segment (one element of a list)."""
        checked = list(itertools.takewhile(lambda seg: not seg.isdigit(), path.split("."))) \
            if isinstance(path, str) else []
        if not checked:
            return
        for cls, seg, _ in self._path_steps(".".join(checked)):
            dc = _dataclass_of(cls)  # (Page for Page[Item])
            names = [f.name for f in dataclasses.fields(dc)]
            if seg not in names:
                raise InvalidArgumentError(
                    f"{self.cls.__name__}: {what}, but "
                    f"{dc.__name__} has no field {seg!r} (its fields: {', '.join(names)})"
                )

    def _path_steps(self, path: str) -> Iterator[tuple[type, str, Any]]:
        """``(dataclass, segment, annotation)`` for each segment of dotted
        ``path`` while a single dataclass holds it (through nested
        dataclasses, Optional and list elements); stops below a field that
        holds none or several."""
        cls: Any = self.cls
        for seg in path.split("."):
            if cls is None:
                return
            tp = _schema_or_plain(cls).hints().get(seg)
            yield cls, seg, tp
            held = _held_dataclasses(_unmarked(tp, []))
            cls = held[0] if len(held) == 1 else None

    def key_slot_types(self, index: str) -> tuple:
        """``(field, declared type)`` for each position of a key of the
        declared index ``index`` (``Optional`` and ``Annotated`` taken
        off; None where the type is not known): what a unique lookup given
        bytes for a value checks them against. Empty for an index the
        class does not declare."""
        slots = self._key_slots.get(index)
        if slots is None:
            fields = next((sp["fields"] for sp in self.index_specs() if sp["name"] == index), ())
            slots = tuple((f, _unmarked(self.path_type(f), [])) for f in fields)
            self._key_slots[index] = slots
        return slots

    def path_type(self, path: str) -> Any:
        """The annotation of dotted field ``path`` (through nested
        dataclasses, Optional and list elements), or None."""
        steps = list(self._path_steps(path))
        return steps[-1][2] if len(steps) == path.count(".") + 1 else None

    def shape(self) -> tuple:
        """Field names and types, to catch two classes claiming one
        (collection, version) with different shapes."""
        if self._shape is None:
            hints = self.hints()
            self._shape = tuple((f.name, repr(hints.get(f.name))) for f in dataclasses.fields(self.cls))
        return self._shape

    # -- checking writes ------------------------------------------------------
    def validate(self, o: Any) -> Any:
        """Checks every field of ``o`` against its annotation and returns
        what to encode: ``o`` itself, or a dict of its fields when a value
        had to be widened (an int in a float field is stored as a float).
        InvalidArgumentError names the class, field, expected and actual
        type."""
        try:
            return self._checked(o)
        except _Bad as e:
            v = e.value
            raise InvalidArgumentError(
                f"{self.cls.__qualname__}{''.join(e.path)}: expected {e.expected}, got "
                f"{type(v).__name__} ({v!r:.80})"
            ) from None
        except AttributeError as e:  # a field never set (init=False without a default)
            raise InvalidArgumentError(f"{self.cls.__qualname__}: {e}") from None
        except RecursionError:
            raise InvalidArgumentError(f"{self.cls.__qualname__}: value nests too deeply to store") from None

    def _field_checks(self) -> list[tuple[str, frozenset, Callable[[Any], Any]]]:
        hints = self.hints()
        return [(f.name, *_checker(hints.get(f.name, Any))) for f in dataclasses.fields(self.cls)]

    def _compile_check(self) -> Callable[[Any], Any]:
        """A function of one instance, straight-line over the fields: a
        value of an exact expected type costs one set lookup."""
        names = [f.name for f in dataclasses.fields(self.cls)]

        def rebuild(o: Any, changed: dict) -> dict:
            return {n: changed[n] if n in changed else getattr(o, n) for n in names}

        ns: dict = {"rebuild": rebuild}
        lines = ["def check(o):", "    ch = None"]
        for i, (name, exact, chk) in enumerate(self._field_checks()):
            ns[f"t{i}"], ns[f"c{i}"] = exact, chk
            lines += [
                f"    v = o.{name}",
                f"    if type(v) not in t{i}:",
                f"        n = c{i}(v)",
                "        if n is not v:",
                "            ch = {} if ch is None else ch",
                f"            ch[{name!r}] = n",
            ]
        lines.append("    return o if ch is None else rebuild(o, ch)")
        exec(compile("\n".join(lines) + "\n", f"<obj checker for {self.cls.__qualname__}>", "exec"), ns)
        return ns["check"]

    def _checked(self, o: Any) -> Any:
        """The compiled check of ``o`` (compiled on first use); a failure
        is re-found field by field so that the _Bad raised carries the
        field's path."""
        chk = self._check
        if chk is None:
            self.decode  # noqa: B018 - a class no stored document could be read back as fails at its first write
            chk = self._check = self._compile_check()
        try:
            return chk(o)
        except _Bad:
            self._find_bad(o)
            raise

    def _find_bad(self, o: Any) -> None:
        """Re-checks ``o`` field by field and raises the first _Bad with
        its path (the error path only)."""
        for name, _exact, chk in self._field_checks():
            try:
                chk(getattr(o, name))
            except _Bad as e:
                e.path.insert(0, "." + name)
                raise

    # -- decoding -------------------------------------------------------------
    @property
    def decode(self) -> Callable[[dict], Any]:
        """dict (as stored) -> instance of the class."""
        if self._decode is None:
            self._decode = self._compile()
        return self._decode

    def _compile(self) -> Callable[[dict], Any]:
        cls = self.cls
        hints = self.hints()
        fields = dataclasses.fields(cls)
        convs = {f.name: _converter(hints.get(f.name, Any)) for f in fields}
        has_dict = "__dict__" in dir(cls) and not getattr(cls, "__slots__", None)
        post_init = hasattr(cls, "__post_init__")
        takes, extra = _init_takes(cls, fields) if post_init or not has_dict else (None, False)
        # Stored values go back over what __post_init__ made of them only
        # when __init__ takes more than the fields (an InitVar, here at its
        # default): otherwise __post_init__ saw exactly what was stored, and
        # what it makes of it (a normalised email) is the class's own.
        restore = post_init and extra
        inits = {f.name: f.init for f in fields}

        def slow(d: dict) -> Any:
            if type(d) is not dict:
                if isinstance(d, cls):  # in a dict that migrate() returned
                    return d
                raise InvalidArgumentError(f"{cls.__name__}: stored document is {type(d).__name__}, not a map")
            kw = {}
            for f in fields:
                if f.name in d:
                    c = convs[f.name]
                    try:
                        kw[f.name] = c(d[f.name]) if c else d[f.name]
                    except Exception as e:  # noqa: BLE001 - a stored value the field's type cannot take
                        raise InvalidArgumentError(
                            f"{cls.__name__}.{f.name}: the stored value {d[f.name]!r:.80} is not a valid "
                            f"{_tname(hints.get(f.name, Any))} ({type(e).__name__}: {e})"
                        ) from None
            init_kw = {k: v for k, v in kw.items() if inits[k] and (takes is None or k in takes)}
            try:
                o = cls(**init_kw)
            except TypeError as e:
                raise InvalidArgumentError(
                    f"{cls.__name__}: stored document does not fit the class ({e}); give the new field a default "
                    f"or bump version= and add a migrate() classmethod"
                ) from None
            except Exception as e:  # noqa: BLE001 - e.g. __post_init__ refusing the stored values
                raise InvalidArgumentError(
                    f"{cls.__name__}: stored document does not fit the class ({type(e).__name__}: {e})"
                ) from None
            for k, v in kw.items():
                # Every field as stored: __post_init__ may have derived one
                # (b = a * scale, scale an InitVar at its default here),
                # and what was stored overrules it.
                if restore or k not in init_kw:
                    object.__setattr__(o, k, v)
            return o

        if not has_dict or post_init:
            return slow
        # Fast path: build the instance dict directly (no __init__ call).
        ns: dict = {"new": object.__new__, "cls": cls, "slow": slow}
        parts = []
        for i, f in enumerate(fields):
            key = repr(f.name)
            c = convs[f.name]
            if c is None:
                parts.append(f"{key}: d[{key}]")
                continue
            ns[f"c{i}"] = c
            # A value of an exact type is checked inline (an int field: one
            # type() and one `is`), the reader runs for the others.
            ex = _exact(hints.get(f.name, Any))
            if not ex:
                parts.append(f"{key}: c{i}(d[{key}])")
            elif len(ex) == 1:
                ns[f"t{i}"] = next(iter(ex))
                parts.append(f"{key}: v{i} if type(v{i} := d[{key}]) is t{i} else c{i}(v{i})")
            elif len(ex) == 2 and _NoneType in ex:  # Optional[int]
                ns[f"t{i}"] = next(t for t in ex if t is not _NoneType)
                parts.append(f"{key}: v{i} if (v{i} := d[{key}]) is None or type(v{i}) is t{i} else c{i}(v{i})")
            else:
                ns[f"t{i}"] = ex
                parts.append(f"{key}: v{i} if type(v{i} := d[{key}]) in t{i} else c{i}(v{i})")
        src = (
            "def decode(d):\n"
            "    try:\n"
            "        o = new(cls)\n"
            f"        o.__dict__.update({{{', '.join(parts)}}})\n"
            "        return o\n"
            "    except Exception:\n"  # a missing field, or a value a converter refuses: slow says which
            "        return slow(d)\n"
        )
        exec(compile(src, f"<obj decoder for {cls.__qualname__}>", "exec"), ns)
        return ns["decode"]

    def decode_doc(self, doc_id: int, version: int, d: Any) -> Any:
        """Decodes document ``doc_id`` stored with ``version``; a stored
        document the class cannot take is an InvalidArgumentError naming the
        document and the field."""
        try:
            if version == self.version:
                return (self._decode or self.decode)(d)  # (the attribute: one lookup fewer per document)
            return self.decode_versioned(version, d)
        except InvalidArgumentError as e:
            raise type(e)(f"document {doc_id} of {self.collection or self.cls.__name__!r}: {e}") from None

    def decode_versioned(self, version: int, d: Any) -> Any:
        """Decodes a document stored with schema ``version``, migrating it
        when it is older than the class. A document newer than the class
        (written by a later version of the application) is refused: read
        as this class it would lose the fields the class lacks, for good
        once written back."""
        if version == self.version or not self.collection:
            return self.decode(d)
        if version > self.version:
            raise InvalidArgumentError(
                f"a document of collection {self.collection!r} has schema version {version}, newer than "
                f"{self.cls.__name__}'s version {self.version}: it was written by a newer version of the "
                f"class; read it with that class (or as a dict, through the collection name)"
            )
        old: Any = d
        for position, h in enumerate(self.history):
            if _history_version(h, position) == version:
                old = _schema_or_plain(h).decode(d)
                break
        migrate = getattr(self.cls, "migrate", None)
        if migrate is None:
            return self.decode(d if old is d else dataclasses.asdict(old))
        new = migrate(old, version)
        if isinstance(new, self.cls):
            return new
        if isinstance(new, dict):
            return self.decode(new)
        raise InvalidArgumentError(
            f"{self.cls.__name__}.migrate(doc, {version}) returned {type(new).__name__}; "
            f"it must return a {self.cls.__name__} (or a dict of its fields)"
        )


def _history_version(h: type, position: int) -> int:
    """The schema version whose documents `history=` entry `h`, at
    `position` in the list, decodes: its own ``version=`` when it is a
    document class, else its place in the list (1, 2, ...)."""
    version = getattr(h, "__obj_version__", None)
    return position + 1 if version is None else version


def document(
    collection: str,
    version: int = 1,
    indexes: Iterable[Composite] = (),
    history: Iterable[type] = (),
) -> Callable[[type[T]], type[T]]:
    """Class decorator: stores instances of a dataclass in ``collection``.

    ``version`` is written into every document's header. ``indexes`` adds
    composite indexes (``obj.Composite``); single-field indexes come from
    ``Annotated[..., obj.Index | obj.Unique | obj.Each]`` field markers and
    are named after the field. ``history`` lists the older shapes of the
    class (dataclasses, version 1, 2, ... in order, or classes decorated with
    their own ``version=``): a document stored with an older version is
    decoded with that shape and handed to ``cls.migrate(old_doc,
    from_version)``, which returns the current class (or a dict of its
    fields, whose values may be of the field types or in their stored
    forms). Without ``migrate``, old documents are read by field name.

    A class that is not yet a dataclass is made one.
    """
    if not isinstance(collection, str) or not collection:
        raise InvalidArgumentError("@obj.document needs collection= (a non-empty str)")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**32:
        raise InvalidArgumentError("@obj.document version= must be an int in 0 .. 2**32-1")
    indexes = list(indexes)
    history = list(history)

    def wrap(cls: type[T]) -> type[T]:
        done = cls.__dict__.get("__obj_schema__") if isinstance(cls, type) else None
        if done is not None and done.collection == collection:
            raise InvalidArgumentError(
                f"{cls.__name__} is already the document class of collection {collection!r} (version "
                f"{done.version}): declare it once, with the version, indexes and history it has now")
        if done is not None:
            # Declaring it again would move the class itself (every write of
            # its instances) to the new collection.
            raise InvalidArgumentError(
                f"{cls.__name__} is already the document class of collection {done.collection!r}: to keep the "
                f"same shape in {collection!r} too, declare a subclass (@obj.document(collection={collection!r}) "
                f"class Other({cls.__name__}): pass)")
        if not dataclasses.is_dataclass(cls):
            cls = dataclasses.dataclass(cls)
        # An entry at or past the class's own version would never be used:
        # documents of that version would be read by field name, silently
        # without the fields the class lacks.
        seen: dict[int, type] = {}
        for position, h in enumerate(history):
            if not isinstance(h, type):
                raise InvalidArgumentError(
                    f"history= of {cls.__name__} lists {h!r:.60}: history lists classes (the older shapes)")
            hv = _history_version(h, position)
            if hv >= version:
                raise InvalidArgumentError(
                    f"history= of {cls.__name__} (version {version}) lists {h.__name__!r} as "
                    f"version {hv}: history lists the older versions, each below the class's own")
            if hv in seen:
                raise InvalidArgumentError(
                    f"history= of {cls.__name__} lists two shapes of version {hv}: "
                    f"{seen[hv].__name__} and {h.__name__}")
            seen[hv] = h
        schema = Schema(cls, collection, version, indexes, history)
        schema._localns = _scope_names(sys._getframe(1))  # the scope that applies the decorator
        for h in history:
            _share_scope(h, schema._localns)
        cls.__obj_schema__ = schema  # type: ignore[attr-defined]
        cls.__obj_collection__ = collection  # type: ignore[attr-defined]
        cls.__obj_version__ = version  # type: ignore[attr-defined]
        _declare(schema)
        return cls

    return wrap


# Every @obj.document class of the process by collection name (weakly: a
# class defined in a function may go away), for reads addressed by name
# that need a class to decode (attached namespaces).
_declared_lock = threading.Lock()
_declared: dict[str, list] = {}


def _declare(s: Schema) -> None:
    with _declared_lock:
        refs = [r for r in _declared.get(s.collection, ()) if r() is not None]
        refs.append(weakref.ref(s))
        _declared[s.collection] = refs


def declared(collection: str) -> list[Schema]:
    """The live schemas declared for ``collection``, oldest first."""
    with _declared_lock:
        refs = _declared.get(collection, ())
        return [s for s in (r() for r in refs) if s is not None]


def _declared_schema(x: Any) -> tuple[type, Schema | None]:
    """The class of ``x`` (a class or an instance) and the schema its
    ``@obj.document`` left on it, if any."""
    cls = x if isinstance(x, type) else type(x)
    return cls, cls.__dict__.get("__obj_schema__")


def schema_of(x: Any) -> Schema | None:
    """The schema of a ``@obj.document`` class or instance, else None."""
    cls, s = _declared_schema(x)
    if s is not None and s.cls is not cls:
        # A decorator above @obj.document made a new class and copied the
        # old one's attributes (@dataclass(slots=True) does): documents
        # would be read back as the old class.
        raise InvalidArgumentError(
            f"{cls.__qualname__}: a decorator above @obj.document replaced the class (as @dataclass(slots=True) "
            f"does); put @obj.document above the other decorators")
    return s


def is_document(x: Any) -> bool:
    """Whether ``x`` is a ``@obj.document`` class or instance (one a
    decorator replaced too: using it raises, see schema_of)."""
    return _declared_schema(x)[1] is not None

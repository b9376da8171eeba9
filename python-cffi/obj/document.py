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
import sys
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Callable, TypeVar

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


def _identity(v: Any) -> Any:
    return v


def _to_float(v: Any) -> Any:
    return float(v) if type(v) is int else v


def _converter(tp: Any, owner: type) -> Callable[[Any], Any] | None:
    """A function turning a decoded JSON value into a value of type ``tp``;
    None when the value needs no change."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _converter(args[0], owner)
    if tp is Any or tp is object or tp in (int, str, bool, _NoneType, None, _dt.datetime):
        return None
    if tp is float:
        return _to_float
    if tp is bytes:
        return None
    if tp is bytearray:
        return bytearray
    if tp is _dt.date:
        return lambda v: _dt.date.fromisoformat(v) if type(v) is str else v
    if tp is _dt.time:
        return lambda v: _dt.time.fromisoformat(v) if type(v) is str else v
    if tp is uuid.UUID:
        return lambda v: uuid.UUID(v) if type(v) is str else v
    if tp is Decimal:
        return lambda v: Decimal(v) if type(v) is str else Decimal(repr(v)) if type(v) is float else Decimal(v)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _schema_or_plain(tp).decode
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        non_none = [a for a in args if a is not _NoneType]
        if len(non_none) == 1:
            inner = _converter(non_none[0], owner)
            if inner is None:
                return None
            return lambda v: None if v is None else inner(v)
        convs = [(a, _converter(a, owner)) for a in non_none]
        if all(c is None for _, c in convs):
            return None

        def union(v: Any) -> Any:
            if v is None:
                return None
            for a, c in convs:
                if c is None:
                    if isinstance(a, type) and isinstance(v, a):
                        return v
                    continue
                try:
                    return c(v)
                except (TypeError, ValueError, KeyError):
                    continue
            return v

        return union
    # typing.get_origin maps the typing aliases (List[int], typing.Sequence[int], ...)
    # to the builtin or collections.abc class, so only those need matching.
    if origin in (list, Sequence):
        inner = _converter(args[0], owner) if args else None
        if inner is None:
            return None
        return lambda v: [inner(x) for x in v]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            inner = _converter(args[0], owner)
            if inner is None:
                return tuple
            return lambda v: tuple(inner(x) for x in v)
        convs2 = [_converter(a, owner) or _identity for a in args]
        return lambda v: tuple(c(x) for c, x in zip(convs2, v))
    if origin in (set, frozenset):
        inner = _converter(args[0], owner) if args else None
        mk = frozenset if origin is frozenset else set
        if inner is None:
            return mk
        return lambda v: mk(inner(x) for x in v)
    if origin in (dict, Mapping):
        kc = _converter(args[0], owner) if args else None
        if args and args[0] is int:
            kc = int
        elif args and args[0] is float:
            kc = float
        vc = _converter(args[1], owner) if len(args) > 1 else None
        if kc is None and vc is None:
            return None
        kc = kc or _identity
        vc = vc or _identity
        return lambda v: {kc(k): vc(x) for k, x in v.items()}
    if origin is typing.Literal:
        return None
    return None


_PLAIN: dict[type, Schema] = {}


def _schema_or_plain(cls: type) -> Schema:
    s = cls.__dict__.get("__obj_schema__")
    if s is not None:
        return s
    s = _PLAIN.get(cls)
    if s is None:
        s = _PLAIN[cls] = Schema(cls, collection="", version=0, indexes=(), history=())
    return s


class Schema:
    """What obj knows about a document class: collection, version, index
    specs, and its (lazily compiled) decoder. Reached with
    ``obj.schema_of(cls)``."""

    def __init__(self, cls: type, collection: str, version: int, indexes: Iterable[Composite], history: Iterable[type]):
        self.cls = cls
        self.collection = collection
        self.version = version
        self._extra_indexes = list(indexes)
        self.history = list(history)
        self._decode: Callable[[dict], Any] | None = None
        self._index_specs: list[dict] | None = None
        self._shape: tuple | None = None
        self._hints: dict | None = None

    # -- type information (resolved on first use: forward references) ------
    def hints(self) -> dict:
        if self._hints is None:
            mod = sys.modules.get(self.cls.__module__)
            try:
                self._hints = typing.get_type_hints(self.cls, globalns=vars(mod) if mod else None, include_extras=True)
            except Exception as e:  # noqa: BLE001 - unresolvable annotations
                raise InvalidArgumentError(f"{self.cls.__name__}: cannot resolve field types: {e}") from None
        return self._hints

    def index_specs(self) -> list[dict]:
        """The engine index specs declared by the class."""
        if self._index_specs is None:
            specs = []
            hints = self.hints()
            for f in dataclasses.fields(self.cls):
                tp = hints.get(f.name)
                if typing.get_origin(tp) is typing.Annotated:
                    for m in typing.get_args(tp)[1:]:
                        if isinstance(m, IndexMarker):
                            specs.append({"name": f.name, "kind": m.kind, "fields": [f.name]})
            for c in self._extra_indexes:
                if not isinstance(c, Composite):
                    raise InvalidArgumentError(f"indexes=[...] takes obj.Composite values, not {c!r}")
                specs.append(c.spec())
            names = [s["name"] for s in specs]
            if len(set(names)) != len(names):
                raise InvalidArgumentError(f"{self.cls.__name__}: two indexes share a name: {names}")
            self._index_specs = specs
        return self._index_specs

    def shape(self) -> tuple:
        """Field names and types, to catch two classes claiming one
        (collection, version) with different shapes."""
        if self._shape is None:
            hints = self.hints()
            self._shape = tuple((f.name, repr(hints.get(f.name))) for f in dataclasses.fields(self.cls))
        return self._shape

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
        convs = {f.name: _converter(hints.get(f.name, Any), cls) for f in fields}
        has_dict = "__dict__" in dir(cls) and not getattr(cls, "__slots__", None)
        post_init = hasattr(cls, "__post_init__")

        def slow(d: dict) -> Any:
            if type(d) is not dict:
                raise InvalidArgumentError(f"{cls.__name__}: stored document is {type(d).__name__}, not a map")
            kw = {}
            for f in fields:
                if f.name in d:
                    c = convs[f.name]
                    kw[f.name] = c(d[f.name]) if c else d[f.name]
            init_kw = {k: v for k, v in kw.items() if next(ff for ff in fields if ff.name == k).init}
            try:
                o = cls(**init_kw)
            except TypeError as e:
                raise InvalidArgumentError(
                    f"{cls.__name__}: stored document does not fit the class ({e}); give the new field a default "
                    f"or bump version= and add a migrate() classmethod"
                ) from None
            for k, v in kw.items():
                if k not in init_kw:
                    object.__setattr__(o, k, v)
            return o

        if not has_dict or post_init:
            return slow
        # Fast path: build the instance dict directly (no __init__ call).
        ns: dict = {"new": object.__new__, "cls": cls, "slow": slow}
        parts = []
        for i, f in enumerate(fields):
            key = repr(f.name)
            if convs[f.name] is None:
                parts.append(f"{key}: d[{key}]")
            else:
                ns[f"c{i}"] = convs[f.name]
                parts.append(f"{key}: c{i}(d[{key}])")
        src = (
            "def decode(d):\n"
            "    try:\n"
            "        o = new(cls)\n"
            f"        o.__dict__.update({{{', '.join(parts)}}})\n"
            "        return o\n"
            "    except (KeyError, TypeError):\n"
            "        return slow(d)\n"
        )
        exec(compile(src, f"<obj decoder for {cls.__qualname__}>", "exec"), ns)
        return ns["decode"]

    def decode_versioned(self, version: int, d: Any) -> Any:
        """Decodes a document stored with schema ``version``, migrating it
        when it is older than the class."""
        if version == self.version or version > self.version or not self.collection:
            return self.decode(d)
        old: Any = d
        for h in self.history:
            hs = _schema_or_plain(h)
            hv = getattr(h, "__obj_version__", None)
            if hv is None:
                hv = self.history.index(h) + 1
            if hv == version:
                old = hs.decode(d)
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
    fields). Without ``migrate``, old documents are read by field name.

    A class that is not yet a dataclass is made one.
    """
    if not isinstance(collection, str) or not collection:
        raise InvalidArgumentError("@obj.document needs collection= (a non-empty str)")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**32:
        raise InvalidArgumentError("@obj.document version= must be an int in 0 .. 2**32-1")
    indexes = list(indexes)
    history = list(history)

    def wrap(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            cls = dataclasses.dataclass(cls)
        schema = Schema(cls, collection, version, indexes, history)
        cls.__obj_schema__ = schema  # type: ignore[attr-defined]
        cls.__obj_collection__ = collection  # type: ignore[attr-defined]
        cls.__obj_version__ = version  # type: ignore[attr-defined]
        return cls

    return wrap


def schema_of(x: Any) -> Schema | None:
    """The schema of a ``@obj.document`` class or instance, else None."""
    cls = x if isinstance(x, type) else type(x)
    return cls.__dict__.get("__obj_schema__")


def is_document(x: Any) -> bool:
    """Whether ``x`` is a ``@obj.document`` class or instance."""
    return schema_of(x) is not None

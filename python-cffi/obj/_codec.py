"""Python values <-> the engine's JSON text form of documents.

The engine takes and returns documents as JSON text with a few special
objects (see ``engine/src/doc/json.rs``): ``{"$bytes": b64}``,
``{"$ts": micros}`` / ``{"$ts": micros, "$tz": offset_s}``,
``{"$f64": "nan"|"inf"|"-inf"}``, and map keys starting with ``$`` escaped
with one more ``$``. Integers cover the i64 and u64 ranges exactly.

This module owns that mapping and nothing else (no schemas, no C calls).
Speed matters more here than anywhere else in the package: encoding and
decoding run once per document. So both directions take a fast path that
hands the whole value to a C-implemented JSON codec (orjson when it is
installed, else the standard library's ``json``) and check the result for
the rare cases the fast path cannot express (a ``$`` key, a non-finite
float, an out-of-range integer); only then does a Python walker redo the
value. The two backends produce the same documents; ``OBJ_JSON=stdlib``
forces the standard library.

Mapping (Python -> engine -> Python):
  None, bool, int (-2**63 .. 2**64-1), float (NaN/inf too), str: exact.
  bytes / bytearray / memoryview -> Bytes -> bytes.
  datetime: aware -> Timestamp with offset -> aware datetime (fixed offset);
            naive -> Timestamp without offset -> naive datetime.
  list, tuple, set, frozenset -> List -> list.     dict -> Map -> dict.
  date -> "YYYY-MM-DD", time -> "HH:MM:SS[.ffffff]", UUID -> str,
  Decimal -> str, Enum -> its value, dataclass -> Map of its fields.
  (Typed documents turn those strings back into their declared types.)
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import gc
import json
import keyword
import os
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Callable

from ._ffi import ffi as _ffi
from ._ffi import lib as _lib
from .errors import InvalidArgumentError

try:  # optional, faster
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["dumps", "loads", "revive", "to_jsonable", "backend", "use_backend", "I64_MIN", "U64_MAX"]

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
_US = _dt.timedelta(microseconds=1)
_EPOCH_NAIVE = _dt.datetime(1970, 1, 1)
_EPOCH_UTC = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_F64 = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
_BIG_DIGITS = re.compile(r"\d{19}")
_b64encode = base64.b64encode
_b64decode = base64.b64decode


def _ts(d: _dt.datetime) -> dict:
    off = d.utcoffset()
    if off is None:
        return {"$ts": (d - _EPOCH_NAIVE) // _US}
    secs, rest = divmod(off, _dt.timedelta(seconds=1))
    if rest:
        raise InvalidArgumentError(f"datetime {d!r}: a UTC offset with fractions of a second cannot be stored")
    return {"$ts": (d - _EPOCH_UTC) // _US, "$tz": secs}


class RawTimestamp:
    """A stored timestamp that no ``datetime`` can hold: one written
    through C, JSON or Rust with a local time outside years 1..9999 or a
    UTC offset of a day or more. ``micros`` counts microseconds from
    1970-01-01T00:00:00Z; ``offset`` is the writer's UTC offset in seconds
    (None for a naive time). Written back (in a document, an ``update``, a
    filter value) it is the same timestamp again, never a map."""

    __slots__ = ("micros", "offset")

    def __init__(self, micros: int, offset: int | None = None) -> None:
        if not isinstance(micros, int) or isinstance(micros, bool) or not I64_MIN <= micros <= I64_MAX:
            raise InvalidArgumentError(f"RawTimestamp micros must be an int in the i64 range, not {micros!r:.40}")
        if offset is not None and (not isinstance(offset, int) or isinstance(offset, bool)
                                   or not -2**31 <= offset < 2**31):
            raise InvalidArgumentError(f"RawTimestamp offset must be None or an i32 of seconds, not {offset!r:.40}")
        self.micros = micros
        self.offset = offset

    def _json(self) -> dict:
        return {"$ts": self.micros} if self.offset is None else {"$ts": self.micros, "$tz": self.offset}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawTimestamp):
            return NotImplemented
        return (self.micros, self.offset) == (other.micros, other.offset)

    def __hash__(self) -> int:
        return hash(("obj.RawTimestamp", self.micros, self.offset))

    def __repr__(self) -> str:
        return f"obj.RawTimestamp({self.micros}, {self.offset})"


def _from_ts(o: dict) -> Any:
    try:
        us = o["$ts"]
        tz = o.get("$tz")
        if tz is None:
            return _EPOCH_NAIVE + _dt.timedelta(microseconds=us)
        # The local wall time straight from the UTC instant plus the offset:
        # the UTC instant itself may lie outside years 1..9999 when the local
        # time does not (datetime(1, 1, 1, tzinfo=+05:00) is 0000-12-31 19:00
        # UTC), so it is never built as a datetime.
        return (_EPOCH_NAIVE + _dt.timedelta(microseconds=us, seconds=tz)).replace(
            tzinfo=_dt.timezone(_dt.timedelta(seconds=tz))
        )
    except (OverflowError, ValueError, TypeError):
        # Outside what datetime holds: a value that writes back as itself.
        us, tz = o.get("$ts"), o.get("$tz")
        if type(us) is int and (tz is None or type(tz) is int) and len(o) == 1 + ("$tz" in o):
            return RawTimestamp(us, tz)
        return o  # not the engine's form: left as it is


def _dataclass_getter(t: type) -> Callable[[Any], dict] | None:
    """For a dataclass ``t``: a function of an instance giving the map of
    all its fields (``_private`` ones too), compiled once per class; None
    when ``t`` is no dataclass."""
    get = _DC_GET.get(t)
    if get is None:
        if not (isinstance(t, type) and dataclasses.is_dataclass(t)):
            return None
        names = [f.name for f in dataclasses.fields(t)]
        if all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
            src = "def get(o):\n    return {" + ", ".join(f"{n!r}: o.{n}" for n in names) + "}\n"
            ns: dict = {}
            exec(compile(src, f"<obj fields of {t.__qualname__}>", "exec"), ns)
            get = ns["get"]
        else:  # pragma: no cover - dataclasses refuse such names, a hand-made class may not
            def get(o: Any, _names: tuple = tuple(names)) -> dict:
                return {n: getattr(o, n) for n in _names}
        if len(_DC_GET) >= _DC_GET_MAX:
            _DC_GET.clear()
        _DC_GET[t] = get
    return get


# A plain dict (a weak one costs every encode of a dataclass), kept from
# holding every class a long-running process ever defined (a dataclass
# made per call would be held for good): a class dropped from it is
# compiled again when next met.
_DC_GET: dict[type, Callable[[Any], dict]] = {}
_DC_GET_MAX = 1024


def _default(o: Any) -> Any:
    """Fast-path hook: values the C JSON encoders do not know. A dataclass
    instance becomes the map of all its fields, ``_private`` ones too
    (orjson's own dataclass support, which skips those, is never used)."""
    t = type(o)
    get = _DC_GET.get(t)
    if get is not None:
        return get(o)
    if t is bytes or t is bytearray or t is memoryview:
        return {"$bytes": _b64encode(o).decode("ascii")}
    if isinstance(o, _dt.datetime):
        return _ts(o)
    if t is RawTimestamp:
        return o._json()
    if isinstance(o, _dt.date):
        return o.isoformat()
    if isinstance(o, _dt.time):
        return o.isoformat()
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, (uuid.UUID, Decimal)):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return set_items(o)
    get = _dataclass_getter(t)
    if get is not None:
        return get(o)
    if isinstance(o, (bytes, bytearray)):
        return {"$bytes": _b64encode(o).decode("ascii")}
    raise TypeError(f"cannot store a value of type {type(o).__name__}: {o!r:.80}")


def _order_key(v: Any) -> tuple:
    """A sort key for the elements of a set: kinds first (None, bool,
    number, str, bytes, then the rest), then values; nested sets sorted
    too. Equal elements give equal keys, so equal sets list equally."""
    if v is None:
        return (0,)
    if isinstance(v, bool):
        return (1, v)
    if isinstance(v, enum.Enum):
        return _order_key(v.value)
    if isinstance(v, (int, float)):
        return (2, 1, 0) if v != v else (2, 0, v)  # NaN last among numbers
    if isinstance(v, str):
        return (3, v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return (4, bytes(v))
    if isinstance(v, (tuple, list)):
        return (5, tuple(_order_key(x) for x in v))
    if isinstance(v, (set, frozenset)):
        return (5, tuple(sorted(_order_key(x) for x in v)))
    if isinstance(v, Decimal):
        return (6, "Decimal", str(v))  # as stored (a NaN does not compare)
    if isinstance(v, (_dt.datetime, RawTimestamp)):
        # As stored: naive and aware ones, and raw ones, order together.
        d = v._json() if type(v) is RawTimestamp else _ts(v)
        return (6, "datetime", d["$ts"], d.get("$tz", -(2**40)))
    return (6, type(v).__qualname__, v)


def set_items(s: set | frozenset) -> list:
    """The elements of ``s`` in an order that depends on its elements
    alone, not on hashing (which for str changes with each process): a set
    is stored as a list, and an equality filter on an equal set must find
    it. Elements the key cannot order (instances of a frozen dataclass,
    naive and aware times together) are ordered by their stored JSON text."""
    try:
        return sorted(s, key=_order_key)
    except (TypeError, ArithmeticError):  # unorderable; a Decimal NaN raises InvalidOperation
        pass
    try:
        return sorted(s, key=_stored_text)
    except Exception:  # noqa: BLE001 - not storable: the encoder says so, with its own message
        return list(s)


def _stored_text(v: Any) -> str:
    """``v`` as JSON text, the same whichever JSON backend is in use."""
    return json.dumps(to_jsonable(v), separators=(",", ":"), ensure_ascii=False)


def _non_str_key_message(k: Any) -> str:
    return (
        f"map keys must be str, not {type(k).__name__} ({k!r:.40}): a dict document, or a field typed dict "
        f"or Any, keeps its keys as text, so the key would read back as a str; use str keys, or declare "
        f"the field's key type (dict[int, ...], dict[UUID, ...]) in a typed document"
    )


def _find_non_str_key(o: Any) -> Any:
    """A map key in ``o`` that is not a ``str`` (``_NONE`` if none): what
    the stdlib encoder would turn into text without a word. Each container
    is looked at once, so a value that holds itself ends the walk (the
    encoder then says it is circular)."""
    stack = [o]
    seen: set[int] = set()
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        t = type(v)
        if t is dict or isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    return k
                if type(x) not in _ATOMS:
                    stack.append(x)
        elif t is list or t is tuple or isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(x for x in v if type(x) not in _ATOMS)
        else:
            get = _DC_GET.get(t) or _dataclass_getter(t)
            if get is not None:
                stack.append(get(v))
    return _NONE


_ATOMS = frozenset((str, int, float, bool, type(None), bytes))
_NONE = object()


def to_jsonable(o: Any, _depth: int = 0) -> Any:
    """The slow, exact walker: turns ``o`` into plain JSON values with the
    engine's special objects. Raises InvalidArgumentError for what cannot be
    stored."""
    if _depth > 128:
        raise InvalidArgumentError("value nests deeper than 128 levels")
    t = type(o)
    if o is None or t is str or t is bool:
        return o
    if t is float or isinstance(o, float):
        if o != o:
            return {"$f64": "nan"}
        if o in (float("inf"), float("-inf")):
            return {"$f64": "inf" if o > 0 else "-inf"}
        return float(o)
    if isinstance(o, bool):
        return bool(o)
    if isinstance(o, enum.Enum):
        return to_jsonable(o.value, _depth + 1)
    if isinstance(o, int):
        if not I64_MIN <= o <= U64_MAX:
            raise InvalidArgumentError(
                f"integer {o} is outside the storable range -2**63 .. 2**64-1 (store it as a str or Decimal)"
            )
        return int(o)
    if isinstance(o, str):
        return str(o)
    if isinstance(o, dict):
        out = {}
        for k, v in o.items():
            if not isinstance(k, str):
                raise InvalidArgumentError(_non_str_key_message(k))
            if k[:1] == "$":
                k = "$" + k
            out[k] = to_jsonable(v, _depth + 1)
        return out
    if isinstance(o, (list, tuple)):
        return [to_jsonable(x, _depth + 1) for x in o]
    if isinstance(o, (set, frozenset)):
        return [to_jsonable(x, _depth + 1) for x in set_items(o)]
    get = _dataclass_getter(t)
    if get is not None:
        return {k: to_jsonable(v, _depth + 1) for k, v in get(o).items()}
    try:
        d = _default(o)
    except TypeError as e:
        raise InvalidArgumentError(str(e)) from None
    return to_jsonable(d, _depth + 1) if type(d) is not dict else d


def revive(o: Any) -> Any:
    """Turns the engine's special objects back into Python values and
    unescapes ``$$`` keys (used only when the text contains ``"$``)."""
    t = type(o)
    if t is dict:
        if o:
            k0 = next(iter(o))
            if k0[:1] == "$" and k0[:2] != "$$":
                if k0 == "$bytes":
                    return _b64decode(o[k0])
                if k0 == "$ts":
                    return _from_ts(o)
                if k0 == "$f64":
                    return _F64[o[k0]]
                if k0 == "$map":
                    return {k: revive(v) for k, v in o[k0].items()}
        return {(k[1:] if k[:2] == "$$" else k): revive(v) for k, v in o.items()}
    if t is list:
        return [revive(x) for x in o]
    return o


# --------------------------------------------------------------------------
# backends

# A key that starts with "$": an opening quote (never preceded by a
# backslash: inside a string a quote is escaped, and an opening quote follows
# one of "{[,:") then "$", the string, and ":" after its closing quote (a
# string value's closing quote is never followed by ":").
_DOLLAR_KEY = re.compile(rb'(?<!\\)"\$(?:[^"\\]|\\.)*":')
_DOLLAR_KEY_STR = re.compile(_DOLLAR_KEY.pattern.decode("ascii"))


def _orjson_dumps(o: Any) -> bytes:
    """Encodes with orjson and checks the text for what orjson writes
    differently from the engine's form; a list (a batch of documents) that
    fails the check is redone per element, so one odd document does not
    slow its neighbours."""
    specials = [0]

    def default(v: Any) -> Any:
        get = _DC_GET.get(type(v))
        if get is not None:  # a dataclass (field names never start with "$")
            return get(v)
        r = _default(v)
        if type(r) is dict and r and next(iter(r))[:1] == "$":
            specials[0] += len(r)  # the keys of {"$bytes": ...}, {"$ts": ..., "$tz": ...}
        return r

    try:
        s = _orjson.dumps(o, default=default, option=_OR_OPTS)
    except (TypeError, _orjson.JSONEncodeError):
        return _orjson_redo(o)
    if _orjson_exact(s, o, specials[0]):
        return s
    return _orjson_redo(o)


def _orjson_exact(s: bytes, o: Any, specials: int) -> bool:
    """Whether orjson's text ``s`` for ``o`` is already the engine's form.
    Two things can differ, both rare:

    * a user's map key starting with ``$`` must be escaped as ``$$``: every
      ``"$...":`` key in ``s`` must then be one of the ``specials`` keys that
      ``_default`` wrote for bytes and datetimes (a ``$`` inside a string
      value, or a value that starts with ``$``, is not a key);
    * orjson writes NaN and +-inf as ``null``, like None. Without a ``null``
      token (the word inside a string does not count) there is neither.
      With one, decoding ``s`` must give ``o`` back, which fails wherever a
      non-finite float became None (C speed, no walk); where that
      comparison cannot vouch (bytes, datetimes, tuples... differ from their
      JSON form), the standard library's C encoder, which refuses
      non-finite floats, checks ``o``."""
    # (find, not ``in``: ``bytes in bytes`` first tries its operand as an
    # int, and the TypeError it clears costs more than the search.)
    if s.find(b"$") >= 0 and s.find(b'"$') >= 0 and len(_DOLLAR_KEY.findall(s)) != specials:
        return False
    if _has_null_token(s):  # (its first find is the whole test when there is no "null")
        gc_was_on = gc.isenabled()
        gc.disable()  # decoding a whole batch allocates many containers at once, all kept
        try:
            if _orjson.loads(s) == o:
                return True
        except Exception:  # noqa: BLE001 - an odd __eq__: the next check decides
            pass
        finally:
            if gc_was_on:
                gc.enable()
        if type(o) is list and len(o) > 1:
            return False  # redone per element: each decides alone
        try:
            _finite_check(o)
        except Exception:  # noqa: BLE001 - ValueError for NaN/inf; anything else: the exact path
            return False
    return True


def _has_null_token(s: bytes) -> bool:
    """Whether orjson's compact text holds ``null`` as a value (None, or a
    NaN/inf written as null), not only inside strings: a value ``null``
    always sits between one of ``:[,`` (or the start) and one of ``,]}``
    (or the end). A long text goes to the library's scan of the same rule,
    a SIMD search (``bytes.find`` of a word runs at about 1.5 GB/s: 27 ms
    of a 34 MB batch, where the library takes 4)."""
    if len(s) >= _LONG_TEXT:
        # Its own out-slot, not the thread's shared one: the call lets go
        # of the GIL, and a signal handler that uses the database could
        # overwrite a shared slot before the answer is read.
        found = _ffi.new("bool *")
        if _may_hold_null(s, len(s), found):
            raise InvalidArgumentError("cannot scan the JSON text for null")  # (bytes never fail)
        return bool(found[0])
    find = s.find
    i = find(b"null")
    while i >= 0:
        if (i == 0 or s[i - 1] in _BEFORE_VALUE) and (i + 4 == len(s) or s[i + 4] in _AFTER_VALUE):
            return True
        i = find(b"null", i + 4)
    return False


# Bytes of text from which the library scans for null (below, a call
# costs more than the search it saves).
_LONG_TEXT = 4096
_may_hold_null = _lib.obj_json_may_hold_null

_BEFORE_VALUE = frozenset(b":[,")
_AFTER_VALUE = frozenset(b",]}")


def _orjson_redo(o: Any) -> bytes:
    """The exact encoding: a list element by element (a batch of documents:
    each may nest as deep as one alone) through the fast path, anything
    else through the Python walker."""
    if type(o) is list and len(o) > 1:
        return b"[" + b",".join([_orjson_dumps(x) for x in o]) + b"]"
    if type(o) is list and o:
        return b"[" + _orjson_walk(o[0]) + b"]"
    return _orjson_walk(o)


def _orjson_walk(o: Any) -> bytes:
    try:
        return _orjson.dumps(to_jsonable(o), option=_OR_OPTS)
    except _orjson.JSONEncodeError as e:  # what the walker lets through: a lone surrogate
        raise InvalidArgumentError(f"cannot store the value: {e}") from None


_finite_check = json.JSONEncoder(default=_default, allow_nan=False, check_circular=False).encode
_std_enc = json.JSONEncoder(default=_default, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
_std_plain = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def _std_walk(o: Any) -> str:
    """The exact encoding through the Python walker; a list element by
    element (a batch of documents: each may nest as deep as one alone)."""
    if type(o) is list:
        return "[" + ",".join([_std_plain.encode(to_jsonable(x)) for x in o]) + "]"
    return _std_plain.encode(to_jsonable(o))


def _std_dumps(o: Any) -> bytes:
    k = _find_non_str_key(o)
    if k is not _NONE:
        raise InvalidArgumentError(_non_str_key_message(k))
    try:
        s = _std_enc.encode(o)
    except (TypeError, ValueError, RecursionError):
        s = _std_walk(o)
    else:
        if ("$" in s and '"$' in s and _DOLLAR_KEY_STR.search(s)) or _BIG_DIGITS.search(s):
            s = _std_walk(o)
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgumentError(f"string is not valid UTF-8 (lone surrogate?): {e}") from None


# Checks for a "$" key run on every document read and written, so each
# starts with `b"$" in text`: a one-byte search is a memchr (a few GB/s),
# where the two-byte `b'"$' in text` walks the text byte by byte because
# quotes are everywhere in JSON (ten times slower on documents; measured
# in python-cffi/bench/steps.py). Text without "$" has no "$" key.
def _orjson_loads(b: Any) -> Any:
    v = _orjson.loads(b)
    if b"$" in b and b'"$' in b and _DOLLAR_KEY.search(b):  # special objects and $$ keys are all "$" keys
        return revive(v)
    return v


def _std_loads(b: Any) -> Any:
    v = json.loads(b)
    if b"$" in b and b'"$' in b and _DOLLAR_KEY.search(b):
        return revive(v)
    return v


def _orjson_loads_plain(b: Any) -> Any:
    return _orjson.loads(b)


dumps: Callable[[Any], bytes]
loads: Callable[[Any], Any]
loads_plain: Callable[[Any], Any]
_backend = ""
if _orjson is not None:
    # PASSTHROUGH_DATACLASS: orjson's own dataclass encoding drops fields
    # whose names start with "_"; with it every dataclass goes to _default.
    # No OPT_NON_STR_KEYS: a map key that is not a str fails the fast path,
    # and the walker refuses it (typed dict[int, ...] fields arrive with
    # their keys already turned into text by their schema).
    _OR_OPTS = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS


def use_backend(name: str) -> None:
    """Selects the JSON backend: ``"orjson"`` or ``"stdlib"``."""
    global dumps, loads, loads_plain, _backend
    if name == "orjson":
        if _orjson is None:
            raise InvalidArgumentError("orjson is not installed")
        dumps, loads, loads_plain = _orjson_dumps, _orjson_loads, _orjson_loads_plain
    elif name == "stdlib":
        dumps, loads, loads_plain = _std_dumps, _std_loads, json.loads
    else:
        raise InvalidArgumentError(f"unknown JSON backend {name!r} (orjson or stdlib)")
    _backend = name


def loads_batch(b: Any) -> Any:
    """:func:`loads` for a batch of documents (a query batch, get_many),
    with Python's cyclic GC paused during the decode: it allocates many
    containers at once, all kept, and every collection that triggers would
    walk every live object for nothing. Re-enabled afterwards (only if it
    was on), even when decoding raises."""
    if not gc.isenabled():
        return loads(b)
    gc.disable()
    try:
        return loads(b)
    finally:
        gc.enable()


def backend() -> str:
    """The JSON backend in use."""
    return _backend


use_backend(os.environ.get("OBJ_JSON") or ("orjson" if _orjson is not None else "stdlib"))


# Argument checks shared by the modules that call the C library: each turns
# a wrong argument into an InvalidArgumentError naming it (never the
# TypeError or AttributeError Python would raise further in).


def utf8(s: str, what: str) -> bytes:
    """``s`` as UTF-8 for a C argument; anything but a ``str``, or a lone
    surrogate (which UTF-8 cannot hold), is an InvalidArgumentError naming
    ``what``."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgumentError(f"{what} {s!r:.80} is not valid UTF-8 (lone surrogate?): {e.reason}") from None
    except AttributeError:
        if isinstance(s, str):  # pragma: no cover - a str always has encode
            raise
        raise InvalidArgumentError(f"{what} must be a str, not {type(s).__name__}") from None


def cstr(s: str, what: str) -> bytes:
    """:func:`utf8` for a NUL-terminated C string: a NUL inside ``s``
    would end it early (the call would name another file or collection),
    so it is an InvalidArgumentError naming ``what``."""
    b = utf8(s, what)
    if b"\0" in b:
        raise InvalidArgumentError(f"{what} {s!r:.80} contains a NUL character")
    return b


def path_arg(p: Any, what: str = "path") -> str:
    """A file path argument (``str``, ``bytes`` or ``os.PathLike``) as a
    ``str``; anything else (None...), or a path with a NUL character (no
    file has one), is an InvalidArgumentError naming ``what``."""
    try:
        f = os.fspath(p)
    except TypeError:
        raise InvalidArgumentError(
            f"{what} must be a str or os.PathLike, not {type(p).__name__}"
        ) from None
    f = os.fsdecode(f) if isinstance(f, bytes) else f
    if "\0" in f:
        raise InvalidArgumentError(f"{what} {f!r:.80} contains a NUL character")
    return f


def cpath(p: Any, what: str = "path") -> bytes:
    """:func:`path_arg` as UTF-8 for a C argument."""
    return cstr(path_arg(p, what), what)


def listed(v: Any, what: str) -> list:
    """The items of an iterable argument as a list (``v`` itself when it
    is one); None or a non-iterable is an InvalidArgumentError naming
    ``what``, and so are a str, bytes or a mapping, whose items (letters,
    small ints, keys) are never what was meant. (An error raised while
    iterating is left as it is.)"""
    if type(v) is list:
        return v
    if isinstance(v, (str, bytes, bytearray, memoryview, Mapping)):
        raise InvalidArgumentError(
            f"{what} must be a list or another collection, not a {type(v).__name__} (for one value, pass [value])")
    try:
        it = iter(v)
    except TypeError:
        raise InvalidArgumentError(f"{what} must be an iterable (a list), not {type(v).__name__}") from None
    return list(it)


def dumps_value(o: Any) -> str:
    """A single value (query operand, index key) as JSON text."""
    return dumps(o).decode("utf-8")


def dumps_one_str(v: str) -> bytes:
    """``[v]`` as JSON text for one ``str`` (a unique key looked up): a
    string needs none of the checks of :func:`dumps`."""
    if _backend == "orjson":
        try:
            return _orjson.dumps([v])
        except _orjson.JSONEncodeError:  # a lone surrogate: dumps says why
            pass
    return dumps([v])

"""The exception hierarchy of the obj package and the mapping from the C
status codes (``obj_status`` in ``include/obj.h``) to it.

Every error raised by the package is an :class:`ObjError`. The classes named
in the obj-db 1.1.0 description keep their names and meaning; a few narrower
subclasses (:class:`ConstraintError`, :class:`ClosedError`, ...) sit under
them so ``except obj.InvalidArgumentError`` still catches a duplicate
unique key, as that description promises.
"""

from __future__ import annotations

import re

__all__ = [
    "ObjError",
    "NotFoundError",
    "KeyNotFoundError",
    "BusyError",
    "CorruptionError",
    "IntegrityError",
    "InvalidArgumentError",
    "ConstraintError",
    "NotADatabaseError",
    "EncryptionError",
    "FeatureUnsupportedError",
    "ClosedError",
    "IoError",
    "InternalError",
]


class ObjError(Exception):
    """Base class of every error raised by obj.

    ``status`` is the C status code (an ``int``, 0 when the error was
    raised by the Python layer itself) and ``status_name`` its name, e.g.
    ``"OBJ_BUSY"``.
    """

    status: int = 0
    status_name: str = ""

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
            self.status_name = _STATUS_NAMES.get(status, f"OBJ_STATUS_{status}")


class NotFoundError(ObjError):
    """A document, collection, index, namespace or file does not exist."""


class KeyNotFoundError(NotFoundError, KeyError):
    """A key-value key that is not there, asked for by ``ns[key]``, ``del
    ns[key]`` or ``ns.pop(key)`` without a default: a :class:`NotFoundError`
    and a ``KeyError`` both, so mapping code and ``except obj.ObjError``
    both catch it. ``key`` is the key as given (and ``args[0]``, as in a
    ``dict``'s ``KeyError``), ``namespace`` the namespace's name."""

    def __init__(self, key: object, namespace: str) -> None:
        super().__init__(f"key {key!r} is not in the key-value namespace {namespace!r}")
        self.args = (key,)
        self.key = key
        self.namespace = namespace

    def __reduce__(self) -> tuple[object, ...]:
        # pickle and copy call the class with ``args`` (the key alone) by
        # default, which this __init__ does not take: a worker process's
        # error would not reach its parent.
        return (type(self), (self.key, self.namespace), self.__dict__)

    def __str__(self) -> str:
        # (KeyError's own would show the key's repr alone.)
        return f"key {self.key!r} is not in the key-value namespace {self.namespace!r}"


class BusyError(ObjError):
    """A lock could not be taken in time: another writer, or another process
    holding the file."""


class CorruptionError(ObjError):
    """The file is damaged: a checksum mismatch, broken structure or
    truncation."""


class IntegrityError(ObjError):
    """:meth:`obj.Db.integrity_check` found at least one problem (listed in
    the message)."""


class InvalidArgumentError(ObjError):
    """A caller-side problem: a bad argument, a value that cannot be
    encoded, a write in a read-only place, a malformed query, a schema
    conflict, an over-cap sort."""


def _plain_function(fn: object, what: str) -> None:
    """Refuses an async function (or an object whose ``__call__`` is one)
    given as ``what``, a function the package calls and uses the result of
    at once: its call would return a coroutine, which is truthy (a filter
    would match everything) and never run. Checked once, where the function
    is given."""
    import inspect

    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):  # noqa: B004
        raise InvalidArgumentError(f"{what} must be a plain (non-async) function, not the async {fn!r:.80}")


def _no_coroutine(value: object, what: str) -> None:
    """Refuses a coroutine returned by ``what`` (a plain function that
    called an async one), closing it first so that Python does not warn
    that it was never awaited."""
    import inspect

    if inspect.iscoroutine(value):
        value.close()
        raise InvalidArgumentError(f"{what} must be a plain (non-async) function: it returned a coroutine")


class ConstraintError(InvalidArgumentError):
    """A write would break a constraint (a duplicate key in a unique index).
    Nothing of that write was applied. A subclass of
    :class:`InvalidArgumentError`, as obj-db 1.1.0 documents."""


class NotADatabaseError(InvalidArgumentError, CorruptionError):
    """The file is not an obj database (another kind of file, or one
    damaged past recognising): a wrong path given, and a file whose format
    is not obj's, so both ``except obj.InvalidArgumentError`` and ``except
    obj.CorruptionError`` catch it. (A damaged obj file is a plain
    :class:`CorruptionError`.)"""


class EncryptionError(ObjError):
    """A missing, wrong or mismatched encryption key."""


class FeatureUnsupportedError(ObjError):
    """The file uses a feature this library lacks (e.g. a newer format)."""


class ClosedError(ObjError):
    """The database (or transaction) was already closed; open it again."""


class IoError(ObjError):
    """The operating system reported an I/O error."""


class InternalError(ObjError):
    """A bug in obj (an internal panic in the library); please report it."""


# obj_status values, as in include/obj.h (stable across versions).
OK = 0
_BY_STATUS: dict[int, type[ObjError]] = {
    1: InvalidArgumentError,
    2: IoError,
    3: CorruptionError,
    4: BusyError,
    5: NotFoundError,
    6: IntegrityError,
    7: FeatureUnsupportedError,
    8: EncryptionError,
    9: ClosedError,
    10: InternalError,
    11: ConstraintError,
}
_STATUS_NAMES = {
    0: "OBJ_OK",
    1: "OBJ_INVALID_ARGUMENT",
    2: "OBJ_IO",
    3: "OBJ_CORRUPTION",
    4: "OBJ_BUSY",
    5: "OBJ_NOT_FOUND",
    6: "OBJ_INTEGRITY",
    7: "OBJ_UNSUPPORTED",
    8: "OBJ_ENCRYPTION",
    9: "OBJ_CLOSED",
    10: "OBJ_INTERNAL",
    11: "OBJ_CONSTRAINT",
}


# The library writes its messages for C callers: where one gives C advice,
# Python users get the Python way instead.
_C_ADVICE = (
    (re.compile(r'(".*?") holds raw bytes: use (?:the obj_raw_\* functions|obj_raw_\w+)'),
     r"\1 holds raw bytes, not documents: read it as bytes by name (db.get(\1, id), db.iter_all(\1)), "
     r"write bytes (db.insert(\1, b'...'))"),
    (re.compile(r'(".*?") holds structured documents: use (?:the obj_doc_\* functions|obj_doc_\w+)'),
     r"\1 holds documents, not raw bytes: write dicts or @obj.document instances"),
)


def python_message(message: str) -> str:
    """The library's ``message`` as Python users read it: no advice to call
    C functions."""
    if "obj_" in message:
        for pattern, python in _C_ADVICE:
            message = pattern.sub(python, message)
    return message


def error_for_status(status: int, message: str) -> ObjError:
    """The exception for a failed C call (``status`` != 0) with the
    library's message."""
    cls = _BY_STATUS.get(status, ObjError)
    if status == 1 and "not an obj database" in message:
        cls = NotADatabaseError
    if not message:
        message = _STATUS_NAMES.get(status, f"status {status}")
    else:
        message = python_message(message)
    return cls(message, status=status)

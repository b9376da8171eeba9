"""Loading ``libobj`` through cffi in ABI mode, and the small helpers every
other module uses to call it.

This module owns the only ``FFI`` instance and the loaded library. It
derives the cdef from the C header at import time (``_obj.h`` bundled in the
wheel, or ``include/obj.h`` of the source tree), so the declarations can
never drift from the library they were built with. Nothing else in the
package parses the header or calls ``dlopen``.

Library lookup order: the copy bundled inside the installed package, then
``OBJ_LIB_PATH`` (a file, or a directory holding the library), then the
system library path. A library that loads but lacks a function the header
declares (an older build) is passed over like one that does not load. If
none is taken, importing :mod:`obj` raises an ``ImportError`` that lists
every place tried and why it failed.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any, Callable

from cffi import FFI

from .errors import error_for_status

__all__ = [
    "ffi", "lib", "check", "take_bytes", "header_path", "library_path", "cdef_from_header", "header_functions",
    "missing_functions", "slots",
]

_HERE = os.path.dirname(os.path.abspath(__file__))

if sys.platform == "darwin":
    LIB_FILE = "libobj.dylib"
elif sys.platform == "win32":
    LIB_FILE = "obj.dll"
else:
    LIB_FILE = "libobj.so"


def header_path() -> str:
    """The header the cdef comes from: the copy bundled with the package, or
    ``include/obj.h`` when running from the source tree."""
    candidates = [
        os.path.join(_HERE, "_obj.h"),
        os.path.normpath(os.path.join(_HERE, "..", "..", "include", "obj.h")),
    ]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise ImportError("obj: C header not found; looked at " + ", ".join(candidates))


def cdef_from_header(text: str) -> str:
    """Turns ``obj.h`` into something ``FFI.cdef`` accepts: comments,
    preprocessor lines and the ``__cplusplus`` blocks go; integer
    ``#define``s stay (cffi supports them)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out = []
    skipping = 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            directive = s[1:].strip()
            if skipping:
                if directive.startswith(("if", "ifdef", "ifndef")):
                    skipping += 1
                elif directive.startswith("endif"):
                    skipping -= 1
                continue
            if directive.startswith("ifdef __cplusplus") or directive.startswith("if defined(__cplusplus)"):
                skipping = 1
                continue
            m = re.match(r"define\s+(\w+)\s+(-?\d+)\s*$", directive)
            if m:
                out.append(f"#define {m.group(1)} {m.group(2)}")
            continue
        if skipping:
            continue
        out.append(line)
    return "\n".join(out)


def header_functions(cdef: str) -> list[str]:
    """The C functions a cdef declares (a function-pointer type's name is
    followed by ``)``, so it is not among them)."""
    return sorted(set(re.findall(r"\b(obj_\w+)\s*\(", cdef)))


ffi = FFI()
with open(header_path(), encoding="utf-8") as _f:
    _CDEF = cdef_from_header(_f.read())
ffi.cdef(_CDEF)
_FUNCTIONS = header_functions(_CDEF)


def missing_functions(library: Any) -> list[str]:
    """The functions of the header that ``library`` does not export."""
    missing = []
    for name in _FUNCTIONS:
        try:
            getattr(library, name)
        except (AttributeError, NotImplementedError):
            missing.append(name)
    return missing


def _candidates() -> Iterator[tuple[str, str]]:
    """(where, what to dlopen) in lookup order."""
    yield "bundled in the package", os.path.join(_HERE, LIB_FILE)
    env = os.environ.get("OBJ_LIB_PATH")
    if env:
        path = os.path.join(env, LIB_FILE) if os.path.isdir(env) else env
        yield "OBJ_LIB_PATH", path
    else:
        yield "OBJ_LIB_PATH", ""
    found = ctypes.util.find_library("obj")
    yield "system library path", found or LIB_FILE


def _load() -> tuple[Any, str]:
    tried = []
    for where, path in _candidates():
        if not path:
            tried.append(f"  - {where}: not set")
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append(f"  - {where}: {path}: no such file")
            continue
        try:
            library = ffi.dlopen(path)
        except OSError as e:
            # The loader's own words can say "no such file" for a file that
            # is there (one built for another machine, say).
            there = " (the file exists but does not load here)" if os.path.isfile(path) else ""
            tried.append(f"  - {where}: {path}{there}: {e}")
            continue
        missing = missing_functions(library)
        if not missing:
            return library, path
        ffi.dlclose(library)
        tried.append(
            f"  - {where}: {path}: not the obj library this package needs (an older one?): it lacks "
            f"{len(missing)} of the {len(_FUNCTIONS)} functions of the package's obj.h "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        )
    raise ImportError(
        "obj: cannot load the obj C library (" + LIB_FILE + "). Tried, in order:\n"
        + "\n".join(tried)
        + "\nInstall a wheel that bundles it, or set OBJ_LIB_PATH to the library file or its directory."
    )


lib, _lib_path = _load()


def library_path() -> str:
    """The path (or name) the C library was loaded from."""
    return _lib_path


def last_error() -> str:
    """The calling thread's last C error message."""
    return ffi.string(lib.obj_last_error()).decode("utf-8", "replace")


def check(status: int) -> None:
    """Raises the mapped :class:`obj.ObjError` when ``status`` is not OK."""
    if status:
        raise error_for_status(status, last_error())


def fail(status: int) -> Exception:
    """The exception for a failed call (for ``raise fail(st)``)."""
    return error_for_status(status, last_error())


def take_bytes(buf: Any) -> bytes:
    """Copies an ``obj_bytes`` out and frees it."""
    try:
        if buf.len == 0:
            return b""
        return ffi.buffer(buf.data, buf.len)[:]
    finally:
        lib.obj_bytes_free(buf)


class OutHandle:
    """The out-parameter of a C call that makes a handle (a database, a
    transaction, a cursor), owning what the call puts there until
    :meth:`take`. A signal handler's exception (Ctrl-C's
    KeyboardInterrupt) can surface between two Python steps, so also
    between the call's return and the line that would take the handle: a
    write transaction lost there would hold the file's write lock until
    the process ends. Whoever raises past an untaken slot calls
    :meth:`release` (and, failing that, collecting the slot frees it).
    Exactly one of the two frees the handle: the ``taken`` flag, set in
    one step, says which."""

    __slots__ = ("p", "free", "taken")

    def __init__(self, ctype: str, free: Any) -> None:
        self.p = ffi.new(ctype)
        self.free = free
        self.taken = False

    @classmethod
    def make(cls, ctype: str, free: Any, call: Callable[[Any], None]) -> Any:
        """The handle that ``call(slot)`` (a C call and its status check)
        makes, taken; released again if anything raises on the way."""
        out = cls(ctype, free)
        try:
            call(out.p)
            return out.take()
        except BaseException:
            out.release()
            raise

    def take(self) -> Any:
        """The handle, freed when its last reference goes (ffi.gc) once
        taken. An exception surfacing before ``taken`` is set leaves it to
        :meth:`release`; one surfacing after drops the result, which frees
        it."""
        h = ffi.gc(self.p[0], self._drop)
        self.taken = True
        return h

    def _drop(self, h: Any) -> None:
        if self.taken:
            self.free(h)

    def release(self) -> None:
        """Frees a handle the call made that nobody took."""
        h = self.p[0]
        if not self.taken and h != ffi.NULL:
            self.p[0] = ffi.NULL
            self.free(h)

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 (at interpreter exit the module may be gone; the process frees all)
            pass


# Bumped in a child process after fork(): what a handle recorded of its
# process (the thread holding its write transaction, the worker threads of
# an AsyncDb) is the parent's, and does not hold in the child.
fork_generation = [0]


def _forked_child() -> None:
    fork_generation[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked_child)


class _Slots(threading.local):
    """The output slots of the one-shot C calls (``obj_bytes *`` buf, ``bool
    *`` found and done, ``uint32_t *`` ver, ``uint64_t *`` u64), one set per thread:
    a call writes them with the GIL released and its caller copies the
    result out before doing anything else, so two threads never share one
    (even when they misuse one transaction from both at once, or share a
    Db). Cursors have their own."""

    def __init__(self) -> None:
        self.buf = ffi.new("obj_bytes *")
        self.found = ffi.new("bool *")
        self.done = ffi.new("bool *")
        self.ver = ffi.new("uint32_t *")
        self.u64 = ffi.new("uint64_t *")


slots = _Slots()

"""Build hooks for the obj-db wheel: bundle libobj and its header.

The package is pure Python, but the wheel carries the C library it loads
(so it is tagged py3-none-<platform>). The library comes from
``OBJ_PREBUILT_LIB`` when set (``make wheel`` builds it once with cargo and
passes it in), else from ``cargo build --release -p obj-capi`` in the
repository this directory sits in. The header is ``include/obj.h`` of the
same repository (``OBJ_HEADER`` overrides); ``obj._ffi`` derives its cdef
from this bundled copy, so declarations and library always match.
"""

import os
import re
import shutil
import subprocess
import sys

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py as _build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # older setuptools
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LIB = {"darwin": "libobj.dylib", "win32": "obj.dll"}.get(sys.platform, "libobj.so")


def _library() -> str:
    pre = os.environ.get("OBJ_PREBUILT_LIB")
    if pre:
        if not os.path.isfile(pre):
            sys.exit(f"OBJ_PREBUILT_LIB={pre}: no such file")
        return pre
    if not os.path.isfile(os.path.join(REPO, "Cargo.toml")):
        # (an sdist holds only the Python package: the wheel is built from
        # the repository, `make wheel` or `pip wheel ./python-cffi`)
        sys.exit("obj-db: no OBJ_PREBUILT_LIB and no obj repository around python-cffi/ to build libobj from; "
                 "build the wheel from the repository (make wheel, or pip wheel ./python-cffi), or set "
                 "OBJ_PREBUILT_LIB and OBJ_HEADER (libobj.so and its obj.h), or install a prebuilt wheel")
    cargo = os.environ.get("CARGO", "cargo")
    try:
        subprocess.check_call([cargo, "build", "--release", "-p", "obj-capi"], cwd=REPO)
    except FileNotFoundError:
        sys.exit(f"obj-db: building libobj needs {cargo!r} (a Rust toolchain, https://rustup.rs) on PATH; or set "
                 "OBJ_PREBUILT_LIB to a built libobj.so, or install a prebuilt wheel")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "release", LIB)


class build_py(_build_py):
    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "obj")
        os.makedirs(dest, exist_ok=True)
        lib = os.path.join(dest, LIB)
        shutil.copy2(_library(), lib)
        if sys.platform.startswith("linux") and shutil.which("strip") and not os.environ.get("OBJ_NO_STRIP"):
            subprocess.call(["strip", "--strip-debug", lib])  # debug info is most of the size
        header = os.environ.get("OBJ_HEADER") or os.path.join(REPO, "include", "obj.h")
        if not os.path.isfile(header):
            sys.exit(f"obj-db: the C header {header} is missing: set OBJ_HEADER to the obj.h of the library")
        shutil.copy2(header, os.path.join(dest, "_obj.h"))


class BinaryDistribution(Distribution):
    """Carries a platform library, so the wheel is platform-specific."""

    def has_ext_modules(self):
        return True


def _glibc_minor(lib: str):
    """The minor number of the newest glibc symbol version (2.N) ``lib``
    asks for, or None. The version names sit in its dynamic string table
    as text (``GLIBC_2.34``); any other such text in the file could only
    raise the answer, which keeps the tag safe."""
    with open(lib, "rb") as f:
        found = re.findall(rb"GLIBC_2\.(\d+)", f.read())
    return max(int(m) for m in found) if found else None


class bdist_wheel(_bdist_wheel):
    def get_tag(self):
        _, _, plat = super().get_tag()
        # A Linux wheel names the oldest glibc it runs on (PEP 600), so that
        # pip does not install it where the library cannot load and an index
        # accepts it: manylinux_2_<minor>_<arch> from the glibc versions the
        # bundled library needs.
        lib = os.path.join(self.bdist_dir or "", "obj", LIB)
        if plat.startswith("linux_") and os.path.isfile(lib):
            minor = _glibc_minor(lib)
            if minor is not None:
                plat = f"manylinux_2_{minor}_{plat[len('linux_'):]}"
        return "py3", "none", plat  # any Python 3: the library is loaded with cffi, not imported


setup(distclass=BinaryDistribution, cmdclass={"build_py": build_py, "bdist_wheel": bdist_wheel})

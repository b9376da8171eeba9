"""The package as installed: where it loads from, its cdef against the
header, the library lookup error, the console script."""

import os
import re
import subprocess
import sys

import pytest

import obj
from obj import _ffi

REPO = os.environ.get("OBJ_REPO_ROOT")


@pytest.mark.skipif(not os.environ.get("OBJ_EXPECT_INSTALLED"), reason="only under make test-python")
def test_runs_against_the_installed_wheel():
    pkg = os.path.dirname(obj.__file__)
    assert "site-packages" in pkg, pkg
    assert os.path.isfile(os.path.join(pkg, _ffi.LIB_FILE)), "wheel must bundle the library"
    assert _ffi.library_path() == os.path.join(pkg, _ffi.LIB_FILE)
    assert os.path.isfile(os.path.join(pkg, "py.typed"))
    if REPO:
        assert not pkg.startswith(os.path.join(REPO, "python-cffi"))


@pytest.mark.skipif(not os.environ.get("OBJ_EXPECT_INSTALLED"), reason="only under make test-python")
def test_the_wheel_names_the_glibc_it_needs_and_carries_its_licences():
    from importlib import metadata

    dist = metadata.distribution("obj-db")
    tags = [line.split(": ", 1)[1] for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag: ")]
    assert len(tags) == 1 and tags[0].startswith("py3-none-manylinux_2_"), tags
    minor = int(tags[0].split("_")[2])
    with open(_ffi.library_path(), "rb") as f:
        needed = max(int(m) for m in re.findall(rb"GLIBC_2\.(\d+)", f.read()))
    assert minor == needed, (tags, needed)
    files = {str(p) for p in dist.files or []}
    for name in ("LICENSE-MIT", "LICENSE-APACHE"):
        assert any(f.endswith("licenses/" + name) for f in files), files


@pytest.mark.skipif(not REPO, reason="needs OBJ_REPO_ROOT")
def test_bundled_header_matches_the_repository_header():
    with open(_ffi.header_path(), encoding="utf-8") as f:
        bundled = f.read()
    with open(os.path.join(REPO, "include", "obj.h"), encoding="utf-8") as f:
        repo = f.read()
    assert bundled == repo, "the installed package's cdef header drifted from include/obj.h: rebuild the wheel"


def test_every_header_function_is_declared_and_exported():
    with open(_ffi.header_path(), encoding="utf-8") as f:
        names = _ffi.header_functions(_ffi.cdef_from_header(f.read()))
    assert "obj_db_open" in names and "obj_last_error" in names and "obj_progress_fn" not in names
    assert len(names) > 50
    assert _ffi.missing_functions(_ffi.lib) == []


def test_library_version_matches_header():
    lib = _ffi.lib
    assert obj.library_version() == f"{lib.OBJ_VERSION_MAJOR}.{lib.OBJ_VERSION_MINOR}.{lib.OBJ_VERSION_PATCH}"


def test_cdef_strips_preprocessor_and_comments():
    text = _ffi.cdef_from_header(
        '/* c */\n#ifndef X\n#define X\n#define N 3\n#ifdef __cplusplus\nextern "C" {\n#endif\n'
        "int f(void); // x\n#ifdef __cplusplus\n}\n#endif\n#endif\n"
    )
    assert "extern" not in text and "//" not in text and "/*" not in text
    assert "#define N 3" in text and "int f(void);" in text


def test_import_error_lists_every_place_tried(tmp_path):
    # A copy of the package without its library, with a bad OBJ_LIB_PATH.
    import shutil

    src = os.path.dirname(obj.__file__)
    dst = tmp_path / "obj"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.so", "*.dylib", "*.dll", "__pycache__"))
    if not (dst / "_obj.h").exists():
        shutil.copy(_ffi.header_path(), dst / "_obj.h")
    env = dict(os.environ, OBJ_LIB_PATH=str(tmp_path / "nowhere"), PYTHONPATH=str(tmp_path), LD_LIBRARY_PATH="")
    r = subprocess.run([sys.executable, "-c", "import obj"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0
    assert "ImportError" in r.stderr
    assert "bundled in the package" in r.stderr
    assert "OBJ_LIB_PATH" in r.stderr and "nowhere" in r.stderr
    assert "system library path" in r.stderr


def _package_copy(dst, header_extra=""):
    """A copy of the installed package at ``dst`` without its library."""
    import shutil

    shutil.copytree(os.path.dirname(obj.__file__), dst,
                    ignore=shutil.ignore_patterns("*.so", "*.dylib", "*.dll", "__pycache__"))
    with open(_ffi.header_path(), encoding="utf-8") as f:
        header = f.read()
    (dst / "_obj.h").write_text(header + header_extra, encoding="utf-8")


def test_a_library_lacking_header_functions_is_passed_over(tmp_path):
    import shutil

    import _cffi_backend

    lib = _ffi.library_path()
    # A bundled library that loads but is not (this version of) libobj:
    # passed over for OBJ_LIB_PATH's, never an AttributeError at import.
    _package_copy(tmp_path / "a" / "obj")
    shutil.copy(_cffi_backend.__file__, tmp_path / "a" / "obj" / _ffi.LIB_FILE)
    env = dict(os.environ, OBJ_LIB_PATH=lib, PYTHONPATH=str(tmp_path / "a"))
    r = subprocess.run([sys.executable, "-c", "import obj; print(obj.library_path())"], env=env,
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == lib
    # A header newer than every library found: each is named as older,
    # with what it lacks, in the ImportError.
    _package_copy(tmp_path / "b" / "obj", "\nobj_status obj_from_a_later_version(void);\n")
    env = dict(os.environ, OBJ_LIB_PATH=lib, PYTHONPATH=str(tmp_path / "b"), LD_LIBRARY_PATH="")
    r = subprocess.run([sys.executable, "-c", "import obj"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "AttributeError" not in r.stderr, r.stderr
    assert f"OBJ_LIB_PATH: {lib}: not the obj library this package needs (an older one?): it lacks 1 of the" \
        in r.stderr, r.stderr
    assert "obj_from_a_later_version" in r.stderr


def test_obj_lib_path_accepts_a_file_and_a_directory(tmp_path):
    import shutil

    src = os.path.dirname(obj.__file__)
    dst = tmp_path / "pkg" / "obj"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.so", "*.dylib", "*.dll", "__pycache__"))
    if not (dst / "_obj.h").exists():
        shutil.copy(_ffi.header_path(), dst / "_obj.h")
    lib = _ffi.library_path()
    for value in (lib, os.path.dirname(lib)):
        env = dict(os.environ, OBJ_LIB_PATH=value, PYTHONPATH=str(tmp_path / "pkg"))
        r = subprocess.run([sys.executable, "-c", "import obj; print(obj.library_path())"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == lib


def test_public_names_have_docstrings():
    for name in obj.__all__:
        if name.startswith("__"):
            continue
        v = getattr(obj, name)
        if isinstance(v, (int, str)):
            continue
        assert getattr(v, "__doc__", None), f"obj.{name} has no docstring"
        if isinstance(v, type):
            for attr, member in vars(v).items():
                if attr.startswith("_") or not callable(member):
                    continue
                assert member.__doc__, f"obj.{name}.{attr} has no docstring"


def test_distribution_version_succeeds_obj_db_1_1():
    """A compatible successor of obj-db 1.1.0: pins such as obj-db>=1.1,<2
    must take it. The module, pyproject.toml and the CLI agree."""
    parts = tuple(int(p) for p in obj.__version__.split("."))
    assert (1, 2, 0) <= parts < (2,), obj.__version__
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pyproject = os.path.join(here, "pyproject.toml")
    if os.path.isfile(pyproject):
        with open(pyproject, encoding="utf-8") as f:
            assert re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1) == obj.__version__
    r = subprocess.run([sys.executable, "-m", "obj", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(f"obj-db {obj.__version__} "), r.stdout
    if os.environ.get("OBJ_EXPECT_INSTALLED"):
        from importlib.metadata import version

        assert version("obj-db") == obj.__version__

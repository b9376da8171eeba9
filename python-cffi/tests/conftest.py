"""Shared fixtures. The tests run against whatever `import obj` finds: in
`make test-python` that is the wheel installed in a fresh venv."""


import time

import pytest

import obj


@pytest.fixture
def path(tmp_path):
    """A fresh database path."""
    return str(tmp_path / "test.obj")


@pytest.fixture
def db(path):
    d = obj.Db(path)
    yield d
    d.close()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Runs the test in an empty directory (the reference examples use
    relative paths such as "app.obj")."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(params=["orjson", "stdlib"])
def backend(request):
    """Runs a test once per JSON backend (orjson only when installed)."""
    from obj import _codec

    if request.param == "orjson":
        pytest.importorskip("orjson")
    old = _codec.backend()
    _codec.use_backend(request.param)
    yield request.param
    _codec.use_backend(old)


@pytest.fixture
def slow_commits(monkeypatch):
    """``slow_commits(seconds)``: commits that take ``seconds`` (a slow
    disk's fsync), the window in which a cancellation meets a commit that
    has begun. Returns the list each commit appends to as it begins."""
    from obj import txn as _txn

    def make(seconds: float) -> list:
        commit = _txn.WriteTxn.commit
        begun: list = []

        def slow(self):
            begun.append(time.monotonic())
            time.sleep(seconds)
            return commit(self)

        monkeypatch.setattr(_txn.WriteTxn, "commit", slow)
        return begun

    return make

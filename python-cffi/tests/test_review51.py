"""Review 51: what users found.

- A key-value key that is not there raised a plain ``KeyError``, which
  ``except obj.ObjError`` does not catch; it is now ``KeyNotFoundError``,
  both a ``NotFoundError`` and a ``KeyError``.
- A query with both ``after_id`` and an index range was accepted while its
  collection was missing, and refused once it existed.
"""

from __future__ import annotations

import pytest

import obj


def test_a_missing_kv_key_is_both_not_found_and_key_error(tmp_path):
    with obj.Db(str(tmp_path / "a.obj")) as db:
        ns = db.kv("settings")
        ns[b"there"] = b"1"
        for attempt in (lambda: ns[b"zz"], lambda: ns.__delitem__(b"zz"), lambda: ns.pop(b"zz")):
            with pytest.raises(obj.KeyNotFoundError) as e:
                attempt()
            assert isinstance(e.value, obj.NotFoundError) and isinstance(e.value, KeyError)
            assert e.value.key == b"zz" and e.value.args == (b"zz",)
            assert str(e.value) == "key b'zz' is not in the key-value namespace 'settings'"
        with pytest.raises(KeyError):
            ns[b"zz"]
        with pytest.raises(obj.ObjError):
            ns[b"zz"]
        assert ns.pop(b"zz", None) is None and ns[b"there"] == b"1"
        with db.transaction() as tx:
            with pytest.raises(obj.KeyNotFoundError):
                tx.kv("settings")[b"zz"]


def test_after_id_with_an_index_is_refused_whether_or_not_the_collection_exists(tmp_path):
    """The combination was refused only once the collection existed (a
    missing one is never planned): a program tried on an empty database
    broke on a full one."""
    with obj.Db(str(tmp_path / "a.obj")) as db:
        for _ in range(2):
            q = db.query("orders").index_range("by_region", "eu", "eu").after_id(3)
            for run in (q.fetch, q.count):
                with pytest.raises(obj.InvalidArgumentError, match="does not combine with index"):
                    run()
            db.create_index("orders", "by_region", ["region"])
            db.insert("orders", {"region": "eu"})


def test_a_missing_kv_key_error_pickles_and_copies(tmp_path):
    import copy
    import pickle

    with obj.Db(str(tmp_path / "a.obj")) as db:
        with pytest.raises(obj.KeyNotFoundError) as e:
            db.kv("settings")[b"zz"]
    for back in (pickle.loads(pickle.dumps(e.value)), copy.copy(e.value), copy.deepcopy(e.value)):
        assert type(back) is obj.KeyNotFoundError
        assert (back.key, back.namespace, str(back)) == (b"zz", "settings", str(e.value))

"""A long-running process that defines a document class per call (a class
made in a function) must not hold every such class for good: the Db's
"set up" caches and the codec's dataclass getters were keyed by the class
itself and grew by one class (about 16 KB with its schema) per call."""

import gc
import weakref
from dataclasses import dataclass
from typing import Annotated

import obj


def _make():
    @obj.document(collection="users", version=1)
    @dataclass
    class U:
        email: Annotated[str, obj.Unique]
        age: int

    return U


def test_classes_made_per_call_are_not_kept(tmp_path):
    with obj.Db(tmp_path / "a.obj", sync="off") as db:
        db.insert(_make()(email="e0", age=0))  # (the registry keeps the first class of a shape)
        second = _make()
        db.insert(second(email="e1", age=1))
        gone = weakref.ref(second)
        del second
        for i in range(2, 1300):
            db.insert(_make()(email=f"e{i}", age=i))
        gc.collect()
        assert gone() is None, "a class of an early call is still held"
        live = sum(1 for o in gc.get_objects() if isinstance(o, type) and o.__qualname__.endswith("_make.<locals>.U"))
        assert live < 1100
        # The caches still work after they start over: the index is there,
        # and a new class of the same shape is set up again.
        assert db.find_unique(_make(), "email", "e1299").age == 1299
        assert db.count("users") == 1300
        db.integrity_check()  # (raises on a problem)

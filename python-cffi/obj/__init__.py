"""obj — the embedded single-file document database, from Python.

    from dataclasses import dataclass

    import obj

    @obj.document(collection="orders", version=1)
    @dataclass
    class Order:
        customer_id: int
        total: float
        status: str

    with obj.Db("app.obj") as db:
        oid = db.insert(Order(customer_id=1, total=99.5, status="pending"))
        order = db.get(Order, oid)

Three surfaces share one file: typed documents (``@obj.document``
dataclasses), dict documents (a collection name and a dict) and raw bytes
(a collection name and bytes). Queries run in the engine where they can
(``obj.field("total") > 100``) and in Python where you ask
(``filter(lambda o: ...)``). ``obj.AsyncDb`` serves asyncio; ``db.kv(name)``
is an ordered key-value store beside the documents.

The package is pure Python and loads ``libobj`` through cffi (ABI mode).
"""

from __future__ import annotations

from ._ffi import ffi as _ffi_mod_ffi, lib as _lib, library_path
from .errors import (
    BusyError,
    ClosedError,
    ConstraintError,
    CorruptionError,
    EncryptionError,
    FeatureUnsupportedError,
    IntegrityError,
    InternalError,
    InvalidArgumentError,
    IoError,
    KeyNotFoundError,
    NotADatabaseError,
    NotFoundError,
    ObjError,
)
from .document import Composite, Each, Index, IndexMarker, Unique, document, is_document, schema_of
from .query import MAX_SORT_BUFFER, Expr, Field, Query, SortKey, field
from .txn import Collection, ReadTxn, WriteTxn
from .kv import KvNamespace
from ._codec import RawTimestamp
from .db import (
    CheckpointResult,
    CollectionStat,
    Db,
    DocumentHeader,
    IndexStat,
    IntegrityReport,
    RawRecord,
    Stat,
)
from .aio import AsyncCollection, AsyncDb, AsyncKv, AsyncQuery, AsyncTxn

__version__ = "1.2.0"


def library_version() -> str:
    """The version of the loaded C library (``obj_version()``)."""
    return _ffi_mod_ffi.string(_lib.obj_version()).decode()


__all__ = [
    "Db", "ReadTxn", "WriteTxn", "Collection", "Query", "Expr", "Field", "SortKey", "field",
    "MAX_SORT_BUFFER", "document", "Index", "Unique", "Each", "Composite", "IndexMarker",
    "is_document", "schema_of", "KvNamespace", "AsyncDb", "AsyncQuery", "AsyncTxn", "AsyncCollection", "AsyncKv",
    "Stat", "CollectionStat", "IndexStat", "RawRecord", "DocumentHeader", "CheckpointResult",
    "IntegrityReport", "ObjError", "NotFoundError", "KeyNotFoundError", "BusyError", "CorruptionError",
    "IntegrityError", "InvalidArgumentError", "ConstraintError", "NotADatabaseError", "EncryptionError",
    "FeatureUnsupportedError", "ClosedError", "IoError", "InternalError", "RawTimestamp", "library_path",
    "library_version", "__version__",
]

"""Weft for Python: local-first SQLite replicas that keep working offline and sync through a
weft server (``weft serve``).

::

    import weft

    with weft.open("laptop.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS todo(id TEXT PRIMARY KEY NOT NULL, title TEXT)")
        db.enable_crr("todo")
        db.execute("INSERT INTO todo(id, title) VALUES (?, ?)", ["a1", "milk"])
        print(db.query("SELECT id, title FROM todo"))        # [('a1', 'milk')]
        db.sync_once("ws://127.0.0.1:7400/v1/sync/todos", token=TOKEN)

Calls block the calling thread and release the GIL while the library works. Callbacks
(``on_status``, ``credentials``, ``watch``, ``on_change``) run on Weft's own threads; an
exception raised in one is logged on the ``weft`` logger and otherwise ignored.
"""

from __future__ import annotations

from ._blobs import BlobEntry, Blobs
from ._database import Credentials, Database, Transaction, open
from ._errors import (
    AuthError,
    ClosedError,
    InternalError,
    InvalidArgumentError,
    IoError,
    NetworkError,
    NotFoundError,
    NotReplicableError,
    SqlError,
    SyncRefusedError,
    WeftError,
)
from ._kv import Kv
from . import _repr  # noqa: F401 - readable reprs of the generated types
from ._native import weft_ffi as _ffi
from ._subscription import Subscription
from ._sync import LiveSync, RefusedWrite, SyncStatus
from ._values import Params, Rows, Value

#: A committed transaction, as :meth:`Database.on_change` callbacks receive it.
ChangeEvent = _ffi.ChangeEvent
#: What :meth:`Database.info` returns.
DatabaseInfo = _ffi.DatabaseInfo
#: One replicated table in :class:`DatabaseInfo`.
TableInfo = _ffi.TableInfo
#: What :meth:`Database.sync_once` returns.
SyncReport = _ffi.SyncReport

#: The native library's version.
__version__: str = _ffi.version()

__all__ = [
    "AuthError",
    "BlobEntry",
    "Blobs",
    "ChangeEvent",
    "ClosedError",
    "Credentials",
    "Database",
    "DatabaseInfo",
    "InternalError",
    "InvalidArgumentError",
    "IoError",
    "Kv",
    "LiveSync",
    "NetworkError",
    "NotFoundError",
    "NotReplicableError",
    "Params",
    "RefusedWrite",
    "Rows",
    "SqlError",
    "Subscription",
    "SyncRefusedError",
    "SyncReport",
    "SyncStatus",
    "TableInfo",
    "Transaction",
    "Value",
    "WeftError",
    "open",
]

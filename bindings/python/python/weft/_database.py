"""``Database``: a replica file opened from Python, with its statements, queries, write
transactions, replicated tables, sync and listeners. Every call into the library releases
the GIL while it runs (the generated module calls it through ``ctypes.CDLL``)."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Any, Callable, Iterable, List, Optional, Union

from ._blobs import Blobs
from ._callbacks import ChangeAdapter, CredentialsAdapter, RowsAdapter, StatusAdapter
from ._kv import Kv
from ._native import weft_ffi as _ffi
from ._subscription import Subscription, latest_slot
from ._sync import LiveSync, StatusWatcher
from ._values import Params, Rows, to_params, to_rows

#: A token source for :meth:`Database.start_sync`: a function asked before every connection,
#: a fixed token, or ``None`` for a server without auth.
Credentials = Union[Callable[[], Optional[str]], str, None]

# Databases still open, closed at interpreter exit so no Weft thread calls into a Python that
# is shutting down.
_open_databases: "weakref.WeakSet[Database]" = weakref.WeakSet()
_open_databases_lock = threading.Lock()


@atexit.register
def _close_all_at_exit() -> None:
    with _open_databases_lock:
        databases = list(_open_databases)
    for database in databases:
        database.close()


def open(path: Union[str, "os.PathLike[str]"]) -> "Database":  # noqa: A001 - weft.open
    """Opens the replica file at ``path``, creating it (and its blob store beside it) if
    missing. Use it as a context manager to close it on exit."""
    return Database(path)


class Database:
    """A replica file: a SQLite database whose replicated tables merge with other replicas'
    through a weft server.

    Writes go through the engine's recorded-write path, each :meth:`execute` in a transaction
    of its own unless inside :meth:`transaction`. Queries read committed data on a connection
    of their own and never wait for a write or a sync. Safe to share between threads.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self._native = _ffi.Database.open(os.fspath(path))
        self._subscriptions: "weakref.WeakSet[Subscription[Any]]" = weakref.WeakSet()
        #: The replicated key-value table: ``db.kv.get/put/delete/scan``.
        self.kv = Kv(self._native)
        #: Blob buckets: ``db.blobs.put/get/list/remove/set_lazy``.
        self.blobs = Blobs(self._native)
        with _open_databases_lock:
            _open_databases.add(self)

    # -- the file ---------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The database file's path."""
        return self._native.path()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.is_closed()

    def close(self) -> None:
        """Stops this database's live syncs and listeners (waiting for them to end), then
        closes the file. Later calls raise ``weft.WeftError.Closed``. Closing twice is fine."""
        self._native.close()
        for subscription in list(self._subscriptions):
            subscription._ended()
        with _open_databases_lock:
            _open_databases.discard(self)

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<weft.Database {self.path!r} {state}>"

    # -- statements -------------------------------------------------------------------------

    def execute(self, sql: str, params: Params = None) -> int:
        """Runs one statement with ``params`` bound to its ``?`` placeholders (None, int,
        float, str, bytes or bool) in a write transaction of its own; returns the rows it
        changed. ``weft.WeftError.Sql`` if SQLite refuses it (nothing is changed)."""
        return self._native.execute(sql, to_params(params))

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """Runs one statement once per parameter row, all in one write transaction (all rows or
        none) and one call into Weft; returns the rows changed in all."""
        return self._native.execute_many(sql, [to_params(p) for p in seq_of_params])

    def execute_batch(self, sql: str) -> None:
        """Runs several ``;``-separated statements without parameters (a schema) in one write
        transaction: all of them or none."""
        self._native.execute_batch(sql)

    def query(self, sql: str, params: Params = None) -> Rows:
        """Runs a query and returns its rows as a list of tuples (``.columns`` names the
        columns). It sees what is committed, and never waits for a write or a sync."""
        return to_rows(self._native.query(sql, to_params(params)))

    def transaction(self) -> "Transaction":
        """Begins a write transaction, to use as ``with db.transaction() as tx:``: it commits
        when the block ends normally and rolls back if it raises. Waits (up to 10 s) while
        another write transaction of this database is open."""
        return Transaction(self._native.begin_transaction())

    # -- replication ------------------------------------------------------------------------

    def enable_crr(self, table: str) -> None:
        """Makes ``table`` replicated (its rows merge with other replicas' from now on). It
        needs a primary key of NOT NULL columns, else ``weft.WeftError.NotReplicable``."""
        self._native.enable_crr(table)

    def replicated_tables(self) -> List[str]:
        """The replicated tables."""
        return self._native.replicated_tables()

    def digest(self) -> str:
        """The state digest, 64 hex characters: equal on two replicas exactly when they hold
        the same replicated state (what ``weft digest FILE`` prints)."""
        return self._native.digest()

    def info(self) -> "_ffi.DatabaseInfo":
        """Identity and contents at a glance (what ``weft info`` shows): ``path``,
        ``site_id``, ``db_version`` and ``tables`` (each with ``name`` and ``rows``)."""
        return self._native.info()

    # -- sync -------------------------------------------------------------------------------

    def sync_once(self, url: str, token: Optional[str] = None) -> "_ffi.SyncReport":
        """Syncs once with the server database at ``url`` (``ws://HOST:PORT/v1/sync/NAME`` or
        ``wss://``) and returns what moved (``in_sync``, ``received``, ``sent``,
        ``rejected``...). Blocks until both sides are caught up, with the GIL released."""
        return self._native.sync_once(url, token)

    def start_sync(
        self,
        url: str,
        credentials: Credentials = None,
        on_status: Optional[Callable[["_ffi.SyncStatus"], Any]] = None,
    ) -> LiveSync:
        """Starts syncing with ``url`` in the background and returns its :class:`LiveSync`.

        ``credentials`` gives the token: a function called (on a Weft thread) before every
        connection, and again after the server refused a token, so it can return a fresh one;
        or a fixed token; or ``None``. ``on_status``, if given, is called (on a Weft thread)
        with every new :class:`weft.SyncStatus`. Closing the database stops the sync."""
        watcher = StatusWatcher(on_status)
        native = self._native.start_sync(
            url, CredentialsAdapter(_credentials(credentials)), StatusAdapter(watcher.on_status)
        )
        return LiveSync(native, watcher)

    # -- listeners --------------------------------------------------------------------------

    def on_change(self, callback: Callable[["_ffi.ChangeEvent"], Any]) -> Subscription[Any]:
        """Calls ``callback(event)`` on a Weft thread after every committed transaction from
        now on, local or merged by sync (``event.tables``, ``event.rows``, ``event.local``,
        ``event.db_version``). Returns the subscription to cancel."""
        if not callable(callback):
            raise TypeError("on_change needs a callable")
        return self._keep(Subscription(self._native.on_change(ChangeAdapter(callback))))

    def watch(
        self,
        sql: str,
        params: Params = None,
        callback: Optional[Callable[[Rows], Any]] = None,
    ) -> Subscription[Rows]:
        """Runs the query and delivers its rows at once, then again whenever a transaction
        (local or merged) changes a table it reads and the rows differ.

        With ``callback``, it is called with the rows on a Weft thread. Without, iterate the
        returned subscription (``for rows in db.watch(sql): ...``) or call ``next(timeout)``.
        """
        if callback is None:
            latest, callback = latest_slot()
        else:
            if not callable(callback):
                raise TypeError("watch's callback must be callable")
            latest = None
        native = self._native.watch(sql, to_params(params), RowsAdapter(callback, to_rows))
        return self._keep(Subscription(native, latest))

    def _keep(self, subscription: Subscription[Any]) -> Subscription[Any]:
        self._subscriptions.add(subscription)
        return subscription


def _credentials(credentials: Credentials) -> Callable[[], Optional[str]]:
    if credentials is None or isinstance(credentials, str):
        token = credentials
        return lambda: token
    if callable(credentials):
        return credentials
    raise TypeError("credentials must be a function returning a token, a token, or None")


class Transaction:
    """An open write transaction (:meth:`Database.transaction`). Statements run in order and
    see each other's writes; nothing is visible elsewhere until it commits. A failing
    statement raises and leaves the transaction usable. As a context manager it commits on a
    normal exit and rolls back when the block raises (the exception goes on)."""

    def __init__(self, native: "_ffi.Transaction") -> None:
        self._native = native

    def execute(self, sql: str, params: Params = None) -> int:
        """Runs one statement in the transaction; returns the rows it changed."""
        return self._native.execute(sql, to_params(params))

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """Runs one statement once per parameter row in the transaction, in one call into
        Weft; returns the rows changed in all. A failing row raises; the rows before it stay
        in the transaction."""
        return self._native.execute_many(sql, [to_params(p) for p in seq_of_params])

    def query(self, sql: str, params: Params = None) -> Rows:
        """Runs a query in the transaction: it sees the transaction's own writes."""
        return to_rows(self._native.query(sql, to_params(params)))

    def commit(self) -> None:
        """Commits: every write becomes visible at once, or, if the commit fails, none."""
        self._native.commit()

    def rollback(self) -> None:
        """Rolls back: nothing of the transaction is kept. A finished one is left as it is."""
        self._native.rollback()

    @property
    def finished(self) -> bool:
        """Whether it was committed or rolled back."""
        return self._native.is_finished()

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if self.finished:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

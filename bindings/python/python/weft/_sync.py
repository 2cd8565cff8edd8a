"""Live sync from Python: a handle over the native ``LiveSync`` with its status, the writes the
server refused, a way to wait for a status, and ``stop``."""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Type, Union

from ._callbacks import call_guarded
from ._native import weft_ffi as _ffi

SyncStatus = _ffi.SyncStatus
RefusedWrite = _ffi.RefusedWrite

#: A status kind (``weft.SyncStatus.LIVE``) or a test of a status.
StatusMatch = Union[Type[Any], Callable[["_ffi.SyncStatus"], bool]]


class StatusWatcher:
    """Follows a live sync's statuses (as its listener) and wakes threads waiting for one;
    then hands each status to the app's ``on_status``, if any."""

    def __init__(self, on_status: Optional[Callable[["_ffi.SyncStatus"], Any]]) -> None:
        self._on_status = on_status
        self._changed = threading.Condition()
        self._status: "_ffi.SyncStatus" = SyncStatus.CONNECTING()

    def on_status(self, status: "_ffi.SyncStatus") -> None:
        """Called by the native sync on its status thread."""
        with self._changed:
            self._status = status
            self._changed.notify_all()
        if self._on_status is not None:
            call_guarded("on_status", self._on_status, status)

    def wait_for(
        self, match: Callable[["_ffi.SyncStatus"], bool], timeout: float
    ) -> Optional["_ffi.SyncStatus"]:
        """The first status (the current one included) that ``match`` accepts, or ``None``
        after ``timeout`` seconds."""
        with self._changed:
            if self._changed.wait_for(lambda: match(self._status), timeout):
                return self._status
            return None


class LiveSync:
    """A live sync started by :meth:`Database.start_sync`: it connects, catches up, then sends
    and receives changes as they are made, reconnecting with back-off, until :meth:`stop` or
    until its database closes. Use it as a context manager to stop it on exit."""

    def __init__(self, native: "_ffi.LiveSync", watcher: StatusWatcher) -> None:
        self._native = native
        self._watcher = watcher

    @property
    def status(self) -> "_ffi.SyncStatus":
        """Where it stands now: ``SyncStatus.CONNECTING()``, ``CATCHING_UP(received, sent)``,
        ``LIVE()``, ``OFFLINE(error, retry_at_ms)``, ``ERROR(message)`` or ``STOPPED()``."""
        return self._native.status()

    def refused_writes(self) -> List["_ffi.RefusedWrite"]:
        """The writes the server refused since the start (the latest 100), oldest first: they
        stay in the local database and do not reach the others."""
        return self._native.refused_writes()

    def stop(self) -> None:
        """Stops it and waits until its connection is closed and its threads are gone (the
        GIL is released meanwhile). Stopping twice is fine."""
        self._native.stop()

    @property
    def stopped(self) -> bool:
        """Whether it was stopped (by :meth:`stop` or by closing its database)."""
        return self._native.is_stopped()

    def wait_for(self, *kinds: StatusMatch, timeout: float = 10.0) -> "_ffi.SyncStatus":
        """Waits until the status is one of ``kinds`` (status classes such as
        ``weft.SyncStatus.LIVE``, or functions of a status returning ``bool``) and returns
        it; ``TimeoutError`` after ``timeout`` seconds."""
        if not kinds:
            raise TypeError("wait_for needs at least one status kind")
        tests = tuple(_as_test(kind) for kind in kinds)
        status = self._watcher.wait_for(lambda s: any(t(s) for t in tests), timeout)
        if status is None:
            raise TimeoutError(
                f"the sync status stayed {self.status} for {timeout} s "
                f"(waited for {', '.join(map(_name, kinds))})"
            )
        return status

    def __enter__(self) -> "LiveSync":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<weft.LiveSync {self.status}>"


def _as_test(kind: StatusMatch) -> Callable[["_ffi.SyncStatus"], bool]:
    if isinstance(kind, type):
        return lambda status: isinstance(status, kind)
    if callable(kind):
        return kind
    raise TypeError(f"not a status kind or a test: {kind!r}")


def _name(kind: StatusMatch) -> str:
    return getattr(kind, "__name__", repr(kind))

"""Running listeners: a change listener or a reactive query, cancelled by the app or ended when
its database closes. A query watched without a callback is iterated instead."""

from __future__ import annotations

import threading
from typing import Any, Callable, Generic, Iterator, Optional, TypeVar

from ._native import weft_ffi as _ffi

T = TypeVar("T")


class _Latest(Generic[T]):
    """The latest value delivered and not yet taken: a reactive query's consumer wants the
    rows now, not every intermediate result, so a slow reader skips results (bounded)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._value: Optional[T] = None
        self._fresh = False
        self._ended = False

    def put(self, value: T) -> None:
        with self._changed:
            self._value = value
            self._fresh = True
            self._changed.notify_all()

    def end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def take(self, timeout: Optional[float]) -> T:
        with self._changed:
            if not self._changed.wait_for(lambda: self._fresh or self._ended, timeout):
                raise TimeoutError(f"no new rows within {timeout} s")
            if not self._fresh:
                raise StopIteration
            self._fresh = False
            return self._value  # type: ignore[return-value]


class Subscription(Generic[T]):
    """A running change listener (:meth:`Database.on_change`) or reactive query
    (:meth:`Database.watch`). :meth:`cancel` ends it, as does closing its database; use it
    as a context manager to cancel on exit.

    A query watched without a callback is iterable: ``for rows in db.watch(sql):`` yields its
    rows at once and again each time they change (the latest only, if the loop falls behind),
    until it is cancelled.
    """

    def __init__(self, native: "_ffi.Subscription", latest: Optional[_Latest[T]] = None):
        self._native = native
        self._latest = latest

    def cancel(self) -> None:
        """Stops it, once a callback that is running returns. Cancelling twice is fine.
        Do not call it from the subscription's own callback (it waits for that callback)."""
        self._native.cancel()
        self._ended()

    @property
    def cancelled(self) -> bool:
        """Whether it was cancelled (or its database closed)."""
        return self._native.is_cancelled()

    def next(self, timeout: Optional[float] = None) -> T:
        """The next rows of a query watched without a callback, waiting up to ``timeout``
        seconds (``None``: no limit); ``TimeoutError`` if none came, ``StopIteration`` once
        cancelled."""
        if self._latest is None:
            raise TypeError("this subscription has a callback; only a watch without one is read")
        return self._latest.take(timeout)

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                yield self.next()
            except StopIteration:
                return

    def __enter__(self) -> "Subscription[T]":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.cancel()

    def _ended(self) -> None:
        """Its database closed: wakes an iterating reader."""
        if self._latest is not None:
            self._latest.end()


def latest_slot() -> "tuple[_Latest[Any], Callable[[Any], None]]":
    """A slot for a watch without a callback, and the callback that fills it."""
    latest: _Latest[Any] = _Latest()
    return latest, latest.put

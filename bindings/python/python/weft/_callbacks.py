"""The app's callables, as the native library calls them: on Weft's threads, guarded so that
an exception raised by the app is logged (logger ``weft``) and never crosses into Rust."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from ._errors import WeftError
from ._native import weft_ffi as _ffi

logger = logging.getLogger("weft")


def call_guarded(what: str, function: Callable[..., Any], *args: Any) -> None:
    """Calls ``function(*args)``; logs what it raises (anything, even ``SystemExit``)."""
    try:
        function(*args)
    except BaseException:  # noqa: BLE001 - nothing may unwind into the native caller
        logger.exception("weft: the %s callback %r raised; ignored", what, function)


class StatusAdapter:
    """Calls ``on_status(status)`` for every status of a live sync."""

    def __init__(self, on_status: Callable[["_ffi.SyncStatus"], Any]) -> None:
        self._on_status = on_status

    def on_status(self, status: "_ffi.SyncStatus") -> None:
        call_guarded("on_status", self._on_status, status)


class CredentialsAdapter:
    """Asks ``credentials()`` for the next connection's token.

    A failing callable (or one returning something else than ``str`` or ``None``) is logged
    and reported to the sync as ``WeftError.Auth``: the sync shows it in its status and tries
    again after its back-off.
    """

    def __init__(self, credentials: Callable[[], Optional[str]]) -> None:
        self._credentials = credentials

    def token(self) -> Optional[str]:
        try:
            token = self._credentials()
        except BaseException as error:  # noqa: BLE001 - see call_guarded
            logger.exception("weft: the credentials callback %r raised", self._credentials)
            raise WeftError.Auth(f"the credentials callback raised {error!r}") from None
        if token is not None and not isinstance(token, str):
            logger.error(
                "weft: the credentials callback %r returned %s, not a str or None",
                self._credentials,
                type(token).__name__,
            )
            raise WeftError.Auth(
                f"the credentials callback returned {type(token).__name__}, not a str or None"
            )
        return token


class ChangeAdapter:
    """Calls ``callback(event)`` for every committed transaction."""

    def __init__(self, callback: Callable[["_ffi.ChangeEvent"], Any]) -> None:
        self._callback = callback

    def on_change(self, event: "_ffi.ChangeEvent") -> None:
        call_guarded("on_change", self._callback, event)


class RowsAdapter:
    """Calls ``callback(rows)`` with a reactive query's rows, converted to Python values."""

    def __init__(self, callback: Callable[[Any], Any], convert: Callable[[Any], Any]) -> None:
        self._callback = callback
        self._convert = convert

    def on_rows(self, result: "_ffi.QueryResult") -> None:
        try:
            rows = self._convert(result)
        except BaseException:  # noqa: BLE001 - see call_guarded
            logger.exception("weft: could not convert a watched query's rows")
            return
        call_guarded("watch", self._callback, rows)

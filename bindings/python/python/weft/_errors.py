"""Weft's typed exceptions: the generated ``WeftError`` and one subclass per kind.

``weft.WeftError`` is the base; ``weft.WeftError.Sql`` (also ``weft.SqlError``) and the others
are what a call raises, each with the engine's message in ``.message`` and ``str(error)``.
"""

from __future__ import annotations

from ._native import weft_ffi as _ffi

WeftError = _ffi.WeftError


def _message(error: BaseException) -> str:
    return str(getattr(error, "message", "") or "")


# The generated exceptions show "message='...'"; the message alone reads better in a
# traceback, and they print as weft.WeftError.Sql rather than by the generated module's path.
WeftError.__str__ = _message  # type: ignore[assignment, method-assign]
WeftError.__module__ = "weft"
for _name in (
    "Sql",
    "NotReplicable",
    "SyncRefused",
    "Auth",
    "Network",
    "Io",
    "NotFound",
    "InvalidArgument",
    "Closed",
    "Internal",
):
    getattr(WeftError, _name).__module__ = "weft"

#: SQLite refused a statement (syntax, constraint, type); the database stays usable.
SqlError = WeftError.Sql
#: A table cannot be made replicated (no primary key, nullable key column, ...).
NotReplicableError = WeftError.NotReplicable
#: The server refused the sync (unknown database, protocol error, read-only token writing).
SyncRefusedError = WeftError.SyncRefused
#: The server refused the token (expired, wrong secret, no access to the database).
AuthError = WeftError.Auth
#: The server could not be reached or the connection broke; trying later may work.
NetworkError = WeftError.Network
#: A file could not be read or written.
IoError = WeftError.Io
#: No such blob entry, or its bytes are not on this device yet.
NotFoundError = WeftError.NotFound
#: An argument breaks a rule (a bucket name, a URL, a limit).
InvalidArgumentError = WeftError.InvalidArgument
#: The database (or transaction) was closed.
ClosedError = WeftError.Closed
#: Anything else the engine reports (a damaged file, an app callback that failed).
InternalError = WeftError.Internal

__all__ = [
    "WeftError",
    "SqlError",
    "NotReplicableError",
    "SyncRefusedError",
    "AuthError",
    "NetworkError",
    "IoError",
    "NotFoundError",
    "InvalidArgumentError",
    "ClosedError",
    "InternalError",
]

"""Readable reprs for the generated records and enum variants: uniffi makes them dataclasses
without fields, whose repr shows nothing (``TableInfo()``); their ``str`` shows the values."""

from __future__ import annotations

from ._native import weft_ffi as _ffi


def _use_str_as_repr(*classes: type) -> None:
    for cls in classes:
        cls.__repr__ = cls.__str__  # type: ignore[method-assign]


_use_str_as_repr(
    _ffi.BlobEntry,
    _ffi.ChangeEvent,
    _ffi.DatabaseInfo,
    _ffi.KvEntry,
    _ffi.QueryResult,
    _ffi.RefusedWrite,
    _ffi.SyncReport,
    _ffi.TableInfo,
    _ffi.SyncStatus.CONNECTING,
    _ffi.SyncStatus.CATCHING_UP,
    _ffi.SyncStatus.LIVE,
    _ffi.SyncStatus.OFFLINE,
    _ffi.SyncStatus.ERROR,
    _ffi.SyncStatus.STOPPED,
)

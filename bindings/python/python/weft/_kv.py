"""The replicated key-value table (``weft_kv``): ``db.kv``."""

from __future__ import annotations

from typing import List, Tuple

from ._native import weft_ffi as _ffi
from ._values import Value, from_sql, to_sql


class Kv:
    """Keys and values that replicate like rows: ``db.kv.put("theme", "dark")``."""

    def __init__(self, native: "_ffi.Database") -> None:
        self._native = native

    def get(self, key: str, default: Value = None) -> Value:
        """The value stored under ``key``, or ``default`` if there is none."""
        value = self._native.kv_get(key)
        return default if value is None else from_sql(value)

    def put(self, key: str, value: Value) -> None:
        """Stores ``value`` (None, int, float, str, bytes or bool) under ``key``, replacing
        what was there."""
        self._native.kv_put(key, to_sql(value))

    def delete(self, key: str) -> bool:
        """Removes ``key``; returns whether it was there."""
        return self._native.kv_delete(key)

    def scan(self, prefix: str = "") -> List[Tuple[str, Value]]:
        """The ``(key, value)`` pairs whose key starts with ``prefix``, in key order (at most
        100,000)."""
        return [(entry.key, from_sql(entry.value)) for entry in self._native.kv_scan(prefix)]

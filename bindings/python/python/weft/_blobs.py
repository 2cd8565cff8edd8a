"""Blob buckets (files and images synced with the database): ``db.blobs``."""

from __future__ import annotations

import os
from typing import List, Optional, Union

from ._native import weft_ffi as _ffi

BlobEntry = _ffi.BlobEntry

#: A file path.
Path = Union[str, "os.PathLike[str]"]


class Blobs:
    """The database's blob buckets: bytes stored by hash beside the file, listed like rows,
    and synced with it."""

    def __init__(self, native: "_ffi.Database") -> None:
        self._native = native

    def put(
        self,
        bucket: str,
        name: str,
        data: Union[bytes, bytearray, memoryview, Path],
        mime: Optional[str] = None,
    ) -> "_ffi.BlobEntry":
        """Stores ``data`` as ``bucket/name`` (replacing what the name held) and returns the
        entry. ``data`` is the bytes themselves, or a path (``str`` or ``pathlib.Path``) to a
        file, which is streamed (any size)."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            return self._native.blob_put(bucket, name, bytes(data), mime)
        if isinstance(data, (str, os.PathLike)):
            return self._native.blob_put_file(bucket, name, os.fspath(data), mime)
        raise TypeError(f"blob data must be bytes or a file path, not {type(data).__name__}")

    def get(self, bucket: str, name: str) -> bytes:
        """The bytes of ``bucket/name``, whole in memory (:meth:`get_to_file` for large
        ones). ``weft.WeftError.NotFound`` if there is no such entry or its bytes have not
        reached this device yet."""
        return self._native.blob_get(bucket, name)

    def get_to_file(self, bucket: str, name: str, path: Path) -> "_ffi.BlobEntry":
        """Writes the bytes of ``bucket/name`` to the file at ``path`` (replaced whole, only
        once every byte is written); returns the entry."""
        return self._native.blob_get_to_file(bucket, name, os.fspath(path))

    def list(
        self, bucket: str, prefix: str = "", after: Optional[str] = None, limit: int = 0
    ) -> List["_ffi.BlobEntry"]:
        """The entries of ``bucket`` whose names start with ``prefix``, in name order, after
        the name ``after`` (for paging), at most ``limit`` (10,000 when 0 or more)."""
        return self._native.blob_list(bucket, prefix, after, limit)

    def remove(self, bucket: str, name: str) -> bool:
        """Removes ``bucket/name``; returns whether it was there."""
        return self._native.blob_remove(bucket, name)

    def set_lazy(self, bucket: str, lazy: bool = True) -> None:
        """Marks ``bucket`` lazy (its bytes are fetched on first read, not by every sync) or,
        with ``lazy=False``, eager again."""
        self._native.blob_set_lazy(bucket, lazy)

"""Blob buckets: bytes and files round-trip, listed, removed, lazily synced, and across a real
server to another database."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import weft
from support import Opener, Server


def test_bytes_round_trip(databases: Opener) -> None:
    db = databases.open("bytes")
    data = bytes(range(256)) * 40
    entry = db.blobs.put("photos", "cat.jpg", data, mime="image/jpeg")
    assert (entry.bucket, entry.name, entry.size, entry.mime) == (
        "photos",
        "cat.jpg",
        len(data),
        "image/jpeg",
    )
    assert len(entry.hash) == 64
    assert db.blobs.get("photos", "cat.jpg") == data


def test_file_round_trip(databases: Opener, tmp_path: Path) -> None:
    db = databases.open("files")
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(300_000))
    entry = db.blobs.put("docs", "big.bin", source)
    assert entry.size == 300_000 and entry.mime == "application/octet-stream"
    copy = tmp_path / "copy.bin"
    db.blobs.get_to_file("docs", "big.bin", copy)
    assert copy.read_bytes() == source.read_bytes()
    db.blobs.put("docs", "small.txt", str(source))  # a str is a path too
    assert db.blobs.get("docs", "small.txt") == source.read_bytes()


def test_list_remove_lazy_and_missing(databases: Opener) -> None:
    db = databases.open("list")
    for name in ["b", "a", "c", "x/1"]:
        db.blobs.put("bucket", name, name.encode())
    assert [e.name for e in db.blobs.list("bucket")] == ["a", "b", "c", "x/1"]
    assert [e.name for e in db.blobs.list("bucket", prefix="x/")] == ["x/1"]
    assert [e.name for e in db.blobs.list("bucket", after="a", limit=2)] == ["b", "c"]
    assert db.blobs.remove("bucket", "a") is True
    assert db.blobs.remove("bucket", "a") is False
    with pytest.raises(weft.WeftError.NotFound):
        db.blobs.get("bucket", "a")
    db.blobs.set_lazy("bucket")
    db.blobs.set_lazy("bucket", False)
    with pytest.raises(TypeError):
        db.blobs.put("bucket", "n", 42)  # type: ignore[arg-type]


def test_blobs_travel_through_the_server(
    databases: Opener, server: Server, db_name: str, tmp_path: Path
) -> None:
    laptop, phone = databases.open("laptop"), databases.open("phone")
    url, token = server.url(db_name), server.token(db_name)
    data = os.urandom(100_000)
    laptop.blobs.put("photos", "p.bin", data)
    assert laptop.sync_once(url, token=token).blobs_sent == 1
    report = phone.sync_once(url, token=token)
    assert report.in_sync and report.blobs_received == 1
    assert hashlib.sha256(phone.blobs.get("photos", "p.bin")).digest() == (
        hashlib.sha256(data).digest()
    )

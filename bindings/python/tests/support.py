"""What the tests share: a real `weft serve` process on 127.0.0.1 (a free port) with tokens
for it, the `weft` binary, database files, and bounded waits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, List

import pytest

import weft

REPO = Path(__file__).resolve().parents[3]

#: How long the server may take to say it is listening.
SERVER_START_SECONDS_MAX = 30


def weft_binary() -> Path:
    """The `weft` binary the tests run: $WEFT_BIN, else the workspace's debug build."""
    path = Path(os.environ.get("WEFT_BIN", REPO / "target" / "debug" / "weft"))
    if not path.is_file():
        pytest.fail(f"no weft binary at {path}: build it with `cargo build -p weft-cli`")
    return path


class Server:
    """A running `weft serve` with auth on, its secret known to the tests."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.secret = secrets.token_hex(32)
        self.log_path = data.with_suffix(".log")
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                str(weft_binary()),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data",
                str(data),
                "--auth-secret",
                self.secret,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "RUST_LOG": "info"},
        )
        self.address = self._listening_address()

    def _listening_address(self) -> str:
        line: List[bytes] = []
        reader = threading.Thread(
            target=lambda: line.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(SERVER_START_SECONDS_MAX)
        text = line[0].decode() if line else ""
        if not text.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"weft serve printed {text!r}; its log:\n{self.log()}")
        return text.removeprefix("listening on ").strip()

    def url(self, database: str) -> str:
        """The sync URL of `database`."""
        return f"ws://{self.address}/v1/sync/{database}"

    def token(self, database: str, ttl: str = "1h", read_only: bool = False) -> str:
        """A token for `database`, minted by `weft token`."""
        out = subprocess.run(
            [
                str(weft_binary()),
                "token",
                "--secret",
                self.secret,
                "--db",
                database,
                "--ttl",
                ttl,
                *(["--read-only"] if read_only else []),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout.strip()

    def expired_token(self, database: str) -> str:
        """A token for `database` signed with the server's secret that expired an hour ago
        (`weft token` mints only live ones)."""
        now = int(time.time())
        claims = {
            "sub": "python-test",
            "dbs": [database],
            "write": True,
            "role": "client",
            "iat": now - 7200,
            "exp": now - 3600,
        }
        return hs256_jwt(self.secret.encode(), claims)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def hs256_jwt(key: bytes, claims: dict) -> str:
    """A JWT signed with HMAC-SHA256, as the server's tokens are."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = part(json.dumps(claims).encode())
    signed = f"{header}.{payload}".encode()
    signature = part(hmac.new(key, signed, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def weft_threads() -> List[str]:
    """The names of this process's threads that Weft starts per database or listener (its
    shared sync runtime's workers, `weft-sync`, live as long as the process, by design)."""
    names = []
    for comm in Path("/proc/self/task").glob("*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue  # the thread ended meanwhile
        if name.startswith(("weft-sync-statu", "weft-listener", "weft-query", "weft-transact")):
            names.append(name)
    return sorted(names)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.01
) -> None:
    """Polls `condition` until it holds; fails after `timeout` seconds saying `what`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def rows_of(db: weft.Database, table: str, order: str = "id") -> list:
    """Every row of `table`, ordered."""
    return db.query(f"SELECT * FROM {table} ORDER BY {order}")


class Opener:
    """Opens `NAME.db` files in a folder and remembers them to close."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.opened: List[weft.Database] = []

    def open(self, name: str) -> weft.Database:
        db = weft.open(self.folder / f"{name}.db")
        self.opened.append(db)
        return db

    def close_all(self) -> None:
        for db in self.opened:
            db.close()

"""Fixtures: a real `weft serve` on 127.0.0.1 (a free port), fresh database files closed at
teardown, and a watchdog that bounds every test."""

from __future__ import annotations

import faulthandler
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from support import Opener, Server

#: The longest any one test may run before the watchdog dumps every thread's stack and
#: ends the run (a hang must fail, not stall the suite).
TEST_SECONDS_MAX = 120


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `weft serve` for the session; each test syncs databases of its own names."""
    running = Server(tmp_path_factory.mktemp("server") / "data")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def db_name() -> str:
    """A server database name no other test uses."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def databases(tmp_path: Path) -> Iterator["Opener"]:
    """Opens database files in the test's folder, and closes them all at teardown."""
    opener = Opener(tmp_path)
    try:
        yield opener
    finally:
        opener.close_all()


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Ends the run with every thread's stack if a test outlives TEST_SECONDS_MAX."""
    faulthandler.dump_traceback_later(TEST_SECONDS_MAX, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()

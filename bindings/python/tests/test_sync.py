"""Sync through a real `weft serve`: convergence after offline writes, live delivery to a
reactive query, the credentials callback after a refused token, and a clean close."""

from __future__ import annotations

import threading
import time
from typing import List

import pytest

import weft
from support import Opener, Server, wait_until, weft_threads

TODO = (
    "CREATE TABLE IF NOT EXISTS todo("
    "id TEXT PRIMARY KEY NOT NULL, title TEXT, done INTEGER NOT NULL DEFAULT 0)"
)

#: How long a live sync may take to connect and catch up here (the machine may be busy).
LIVE_SECONDS_MAX = 30


def make_todo(db: weft.Database) -> None:
    db.execute(TODO)
    db.enable_crr("todo")


def test_two_databases_converge_after_offline_writes(
    databases: Opener, server: Server, db_name: str
) -> None:
    laptop, phone = databases.open("laptop"), databases.open("phone")
    for db in (laptop, phone):
        make_todo(db)
    # Offline: both write, one of them the same row.
    laptop.execute("INSERT INTO todo(id, title) VALUES ('l1', 'milk'), ('same', 'laptop')")
    with phone.transaction() as tx:
        tx.execute("INSERT INTO todo(id, title) VALUES (?, ?)", ["p1", "eggs"])
        tx.execute("INSERT INTO todo(id, title, done) VALUES (?, ?, ?)", ["same", "phone", True])
    assert laptop.digest() != phone.digest()

    url, token = server.url(db_name), server.token(db_name)
    first = laptop.sync_once(url, token=token)
    assert first.sent > 0 and first.in_sync
    phone.sync_once(url, token=token)
    last = laptop.sync_once(url, token=token)
    assert last.in_sync and last.received > 0

    assert laptop.digest() == phone.digest() == last.digest
    everything = "SELECT id, title, done FROM todo ORDER BY id"
    assert laptop.query(everything) == phone.query(everything)
    assert {row[0] for row in laptop.query(everything)} == {"l1", "p1", "same"}


def test_a_bad_token_raises_auth_error(databases: Opener, server: Server, db_name: str) -> None:
    db = databases.open("refused")
    make_todo(db)
    with pytest.raises(weft.WeftError.Auth):
        db.sync_once(server.url(db_name), token=server.expired_token(db_name))
    with pytest.raises(weft.AuthError):
        db.sync_once(server.url(db_name), token=None)
    db.execute("INSERT INTO todo(id) VALUES ('still usable')")


def test_live_sync_delivers_a_remote_write_to_watch_within_a_second(
    databases: Opener, server: Server, db_name: str
) -> None:
    laptop, phone = databases.open("laptop"), databases.open("phone")
    for db in (laptop, phone):
        make_todo(db)
    url, token = server.url(db_name), server.token(db_name)
    statuses: List[weft.SyncStatus] = []
    live = laptop.start_sync(url, credentials=lambda: token, on_status=statuses.append)
    live.wait_for(weft.SyncStatus.LIVE, timeout=LIVE_SECONDS_MAX)
    assert isinstance(statuses[0], weft.SyncStatus.CONNECTING)
    assert any(isinstance(s, weft.SyncStatus.CATCHING_UP) for s in statuses)

    arrived = threading.Event()
    handle = laptop.watch(
        "SELECT title FROM todo WHERE id = ?",
        ["remote"],
        lambda rows: arrived.set() if rows == [("from the phone",)] else None,
    )
    phone.execute("INSERT INTO todo(id, title) VALUES ('remote', 'from the phone')")
    phone.sync_once(url, token=token)  # on the server now
    pushed_at = time.monotonic()
    assert arrived.wait(1.0), "the remote write did not reach the watch within a second"
    delay = time.monotonic() - pushed_at
    assert delay < 1.0
    handle.cancel()
    assert live.refused_writes() == []
    live.stop()
    assert isinstance(live.status, weft.SyncStatus.STOPPED)


def test_credentials_are_asked_again_after_the_server_refuses_an_expired_token(
    databases: Opener, server: Server, db_name: str
) -> None:
    db = databases.open("refresh")
    make_todo(db)
    db.execute("INSERT INTO todo(id, title) VALUES ('x', 'pushed after the refresh')")
    tokens = [server.expired_token(db_name), server.token(db_name)]
    asked: List[str] = []

    def credentials() -> str:
        token = tokens[min(len(asked), 1)]
        asked.append(token)
        return token

    statuses: List[weft.SyncStatus] = []
    with db.start_sync(server.url(db_name), credentials, statuses.append) as live:
        live.wait_for(weft.SyncStatus.LIVE, timeout=LIVE_SECONDS_MAX)
        assert asked[0] == tokens[0] and tokens[1] in asked[1:]
        refusals = [s for s in statuses if isinstance(s, weft.SyncStatus.OFFLINE)]
        assert refusals and "expired" in refusals[0].error
    assert live.stopped and isinstance(live.status, weft.SyncStatus.STOPPED)
    # The write made before the refresh reached the server.
    other = databases.open("other")
    make_todo(other)
    other.sync_once(server.url(db_name), token=server.token(db_name))
    assert other.query("SELECT title FROM todo") == [("pushed after the refresh",)]


def test_a_credentials_callback_that_raises_is_logged_and_retried(
    databases: Opener, server: Server, db_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = databases.open("raising")
    good = server.token(db_name)
    calls: List[int] = []

    def credentials() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the sign-in server is down")
        return good

    with caplog.at_level("ERROR", logger="weft"):
        with db.start_sync(server.url(db_name), credentials) as live:
            live.wait_for(weft.SyncStatus.LIVE, timeout=LIVE_SECONDS_MAX)
    assert len(calls) >= 2
    assert "the sign-in server is down" in caplog.text


def test_writes_the_server_refuses_are_reported(
    databases: Opener, server: Server, db_name: str
) -> None:
    db = databases.open("readonly")
    make_todo(db)
    db.execute("INSERT INTO todo(id) VALUES ('first')")
    read_only = server.token(db_name, read_only=True)
    report = db.sync_once(server.url(db_name), token=read_only)
    assert report.rejected > 0 and report.reject_reasons == ["token is read-only"]
    with db.start_sync(server.url(db_name), credentials=read_only) as live:
        live.wait_for(weft.SyncStatus.LIVE, timeout=LIVE_SECONDS_MAX)
        db.execute("INSERT INTO todo(id) VALUES ('second')")
        wait_until(lambda: live.refused_writes() != [], LIVE_SECONDS_MAX, "a refused write")
        refused = live.refused_writes()[0]
        assert refused.count > 0 and refused.reason == "token is read-only"
    # Refused writes stay here.
    assert db.query("SELECT id FROM todo ORDER BY id") == [("first",), ("second",)]


def test_closing_a_database_while_its_live_sync_runs_is_clean(
    databases: Opener, server: Server, db_name: str
) -> None:
    threads_before = weft_threads()
    db = databases.open("closing")
    make_todo(db)
    token = server.token(db_name)
    live = db.start_sync(server.url(db_name), credentials=lambda: token, on_status=print)
    live.wait_for(weft.SyncStatus.LIVE, timeout=LIVE_SECONDS_MAX)
    watching = db.watch("SELECT count(*) FROM todo")
    changes = db.on_change(lambda event: None)
    db.execute("INSERT INTO todo(id) VALUES ('a')")
    assert weft_threads() != threads_before

    db.close()

    assert isinstance(live.status, weft.SyncStatus.STOPPED) and live.stopped
    assert watching.cancelled and changes.cancelled
    assert list(watching) in ([], [[(0,)]], [[(1,)]])  # ends: no reader left blocked
    live.stop()  # stopping after the close is fine
    non_daemon = [t for t in threading.enumerate() if not t.daemon]
    assert non_daemon == [threading.main_thread()], non_daemon
    wait_until(
        lambda: weft_threads() == threads_before,
        timeout=10,
        what=f"Weft's threads to end (left: {weft_threads()})",
    )
    with pytest.raises(weft.WeftError.Closed):
        db.execute("INSERT INTO todo(id) VALUES ('b')")

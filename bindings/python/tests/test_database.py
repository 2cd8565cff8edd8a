"""A database on its own: statements, values, transactions, typed errors, KV, listeners."""

from __future__ import annotations

import logging
import subprocess
import threading
import time

import pytest

import weft
from support import Opener, weft_binary

TODO = (
    "CREATE TABLE todo(id TEXT PRIMARY KEY NOT NULL, title TEXT, done INTEGER NOT NULL DEFAULT 0)"
)


def test_the_issue_example_without_a_server(databases: Opener) -> None:
    db = databases.open("laptop")
    db.execute(TODO)
    db.enable_crr("todo")
    assert db.execute("INSERT INTO todo(id, title) VALUES (?, ?)", ["a1", "milk"]) == 1
    rows = db.query("SELECT id, title, done FROM todo ORDER BY id")
    assert rows == [("a1", "milk", 0)]
    assert rows.columns == ("id", "title", "done")
    with db.transaction() as tx:
        tx.execute("UPDATE todo SET done = 1 WHERE id = ?", ["a1"])
    assert db.query("SELECT done FROM todo") == [(1,)]
    digest = db.digest()
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert "todo" in db.replicated_tables()


def test_values_round_trip_as_python_values(databases: Opener) -> None:
    db = databases.open("values")
    db.execute("CREATE TABLE v(id INTEGER PRIMARY KEY NOT NULL, x)")
    values = [None, 0, -(2**63), 2**63 - 1, 1.5, "", "héllo ✓", b"", b"\x00\xff", True, False]
    for i, value in enumerate(values):
        db.execute("INSERT INTO v(id, x) VALUES (?, ?)", (i, value))
    stored = [x for (x,) in db.query("SELECT x FROM v ORDER BY id")]
    assert stored == [None, 0, -(2**63), 2**63 - 1, 1.5, "", "héllo ✓", b"", b"\x00\xff", 1, 0]
    assert [type(x) for x in stored[7:9]] == [bytes, bytes]
    assert db.query("SELECT ?, ?", [bytearray(b"ab"), memoryview(b"cd")]) == [(b"ab", b"cd")]
    assert db.query("SELECT 1") == [(1,)]


def test_parameters_of_other_types_raise_type_error(databases: Opener) -> None:
    db = databases.open("types")
    with pytest.raises(TypeError, match="cannot bind a value of type dict"):
        db.query("SELECT ?", [{}])
    with pytest.raises(TypeError, match="params must be a list or tuple"):
        db.query("SELECT ?", "a")
    with pytest.raises(OverflowError):
        db.query("SELECT ?", [2**63])
    assert db.query("SELECT 2") == [(2,)]


def test_a_bad_statement_raises_sql_error_and_the_database_stays_usable(
    databases: Opener,
) -> None:
    db = databases.open("bad")
    db.execute(TODO)
    db.enable_crr("todo")
    with pytest.raises(weft.WeftError.Sql) as raised:
        db.execute("INSERT INTO nope VALUES (1)")
    assert "no such table: nope" in str(raised.value)
    assert isinstance(raised.value, weft.WeftError)
    assert weft.SqlError is weft.WeftError.Sql
    with pytest.raises(weft.SqlError):
        db.query("SELEC 1")
    with pytest.raises(weft.WeftError.Sql):
        db.execute("INSERT INTO todo(id) VALUES (?)", [None])  # NOT NULL key
    db.execute("INSERT INTO todo(id, title) VALUES ('a', 'after the errors')")
    assert db.query("SELECT title FROM todo") == [("after the errors",)]


def test_a_bad_statement_inside_a_transaction_leaves_it_usable(databases: Opener) -> None:
    db = databases.open("badtx")
    db.execute(TODO)
    db.enable_crr("todo")
    with db.transaction() as tx:
        tx.execute("INSERT INTO todo(id, title) VALUES ('a', 'one')")
        with pytest.raises(weft.WeftError.Sql):
            tx.execute("INSERT INTO todo(id, title) VALUES ('a', 'duplicate key')")
        tx.execute("INSERT INTO todo(id, title) VALUES ('b', 'two')")
        assert tx.query("SELECT count(*) FROM todo") == [(2,)]
    assert db.query("SELECT id, title FROM todo ORDER BY id") == [("a", "one"), ("b", "two")]


def test_executemany_writes_all_rows_or_none(databases: Opener) -> None:
    db = databases.open("many")
    db.execute(TODO)
    db.enable_crr("todo")
    insert = "INSERT INTO todo(id, title) VALUES (?, ?)"
    assert db.executemany(insert, [("a", "one"), ("b", "two")]) == 2
    with pytest.raises(weft.WeftError.Sql):
        db.executemany(insert, [("c", "three"), ("a", "duplicate")])
    assert db.query("SELECT id FROM todo ORDER BY id") == [("a",), ("b",)]
    with db.transaction() as tx:
        assert tx.executemany(insert, (("d", str(i)) if i == 0 else (f"e{i}", "x") for i in range(3))) == 3
    assert db.query("SELECT count(*) FROM todo") == [(5,)]


def test_a_transaction_rolls_back_when_its_block_raises(databases: Opener) -> None:
    db = databases.open("rollback")
    db.execute(TODO)
    db.enable_crr("todo")
    with pytest.raises(ValueError, match="app failure"):
        with db.transaction() as tx:
            tx.execute("INSERT INTO todo(id, title) VALUES ('a', 'never kept')")
            raise ValueError("app failure")
    assert tx.finished
    assert db.query("SELECT count(*) FROM todo") == [(0,)]
    # The writer is free again, and an explicit commit inside the block is fine.
    with db.transaction() as tx:
        tx.execute("INSERT INTO todo(id, title) VALUES ('b', 'kept')")
        tx.commit()
    assert db.query("SELECT id FROM todo") == [("b",)]
    with pytest.raises(weft.WeftError.Closed):
        tx.execute("SELECT 1")


def test_reads_do_not_wait_for_an_open_transaction(databases: Opener) -> None:
    db = databases.open("reads")
    db.execute(TODO)
    tx = db.transaction()
    tx.execute("INSERT INTO todo(id) VALUES ('uncommitted')")
    assert db.query("SELECT count(*) FROM todo") == [(0,)]
    tx.rollback()


def test_errors_are_typed(databases: Opener) -> None:
    db = databases.open("errors")
    db.execute("CREATE TABLE nokey(x TEXT)")
    with pytest.raises(weft.WeftError.NotReplicable):
        db.enable_crr("nokey")
    with pytest.raises(weft.WeftError.InvalidArgument):
        db.start_sync("not a url", credentials=None)
    db.close()
    with pytest.raises(weft.ClosedError):
        db.query("SELECT 1")
    db.close()  # twice is fine
    assert db.closed


def test_with_closes_the_database(tmp_path) -> None:
    with weft.open(tmp_path / "ctx.db") as db:
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL)")
    assert db.closed


def test_info_and_digest_match_the_cli(databases: Opener) -> None:
    db = databases.open("info")
    db.execute_batch(TODO + "; CREATE TABLE other(id INTEGER PRIMARY KEY NOT NULL)")
    db.enable_crr("todo")
    db.execute("INSERT INTO todo(id, title) VALUES ('a', 'x'), ('b', 'y')")
    info = db.info()
    assert info.path == db.path
    assert len(info.site_id) == 32
    assert [(t.name, t.rows) for t in info.tables if t.name == "todo"] == [("todo", 2)]
    printed = subprocess.run(
        [str(weft_binary()), "digest", db.path],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert db.digest() == printed


def test_kv(databases: Opener) -> None:
    db = databases.open("kv")
    db.kv.put("app/theme", "dark")
    db.kv.put("app/size", 12)
    db.kv.put("other", b"\x01")
    assert db.kv.get("app/theme") == "dark"
    assert db.kv.get("missing") is None
    assert db.kv.get("missing", "fallback") == "fallback"
    assert db.kv.scan("app/") == [("app/size", 12), ("app/theme", "dark")]
    assert db.kv.delete("app/size") is True
    assert db.kv.delete("app/size") is False
    assert db.kv.scan("app/") == [("app/theme", "dark")]


def test_on_change_hears_local_commits(databases: Opener) -> None:
    db = databases.open("changes")
    db.execute(TODO)
    db.enable_crr("todo")
    heard = []
    got = threading.Event()

    def listener(event: weft.ChangeEvent) -> None:
        heard.append(event)
        got.set()

    with db.on_change(listener):
        db.execute("INSERT INTO todo(id) VALUES ('a'), ('b')")
        assert got.wait(10), "no change event within 10 s"
    assert heard[0].tables == ["todo"] and heard[0].rows == 2 and heard[0].local


def test_watch_delivers_rows_to_a_callback_and_to_an_iterator(databases: Opener) -> None:
    db = databases.open("watch")
    db.execute(TODO)
    db.enable_crr("todo")
    seen = []
    two = threading.Event()

    def on_rows(rows: weft.Rows) -> None:
        seen.append(list(rows))
        if rows == [(2,)]:
            two.set()

    handle = db.watch("SELECT count(*) FROM todo", [], on_rows)
    rows_iter = db.watch("SELECT id FROM todo WHERE done = ? ORDER BY id", [0])
    assert rows_iter.next(timeout=10) == []
    db.execute("INSERT INTO todo(id) VALUES ('a'), ('b')")
    assert two.wait(10), f"the watch saw only {seen}"
    assert seen[0] == [(0,)]
    assert rows_iter.next(timeout=10) == [("a",), ("b",)]
    handle.cancel()
    assert handle.cancelled
    rows_iter.cancel()
    assert list(rows_iter) == []


def test_an_exception_in_a_callback_is_logged_and_listening_goes_on(
    databases: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    db = databases.open("raising")
    db.execute(TODO)
    db.enable_crr("todo")
    calls = []
    second = threading.Event()

    def failing(rows: weft.Rows) -> None:
        calls.append(rows)
        if len(calls) == 2:
            second.set()
        raise RuntimeError("the app's bug")

    with caplog.at_level(logging.ERROR, logger="weft"):
        with db.watch("SELECT count(*) FROM todo", None, failing):
            db.execute("INSERT INTO todo(id) VALUES ('a')")
            assert second.wait(10), "the watch stopped after the callback raised"
    assert "the app's bug" in caplog.text
    assert db.query("SELECT count(*) FROM todo") == [(1,)]


def test_a_long_native_call_releases_the_gil(databases: Opener) -> None:
    db = databases.open("gil")
    long_query = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
        "SELECT count(*) FROM c"
    )
    result = []
    took = []

    def work() -> None:
        started = time.perf_counter()
        result.append(db.query(long_query))
        took.append(time.perf_counter() - started)

    worker = threading.Thread(target=work)
    longest_stall = 0.0
    worker.start()
    last = time.perf_counter()
    while worker.is_alive():  # pure Python: stalls whenever another thread holds the GIL
        now = time.perf_counter()
        longest_stall = max(longest_stall, now - last)
        last = now
    worker.join(60)
    assert result == [[(3_000_000,)]]
    assert took[0] > 0.2, "the query is too quick to show anything"
    # Had the call held the GIL, this loop would have stalled for all of it.
    assert longest_stall < took[0] / 2, (longest_stall, took[0])

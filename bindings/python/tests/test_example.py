"""Smoke test of examples/python-todo: two devices run the app as a person would, syncing
through the real server."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

from support import REPO, Server

TODO_APP = REPO / "examples" / "python-todo" / "todo.py"

#: How long one command of the app may take.
COMMAND_SECONDS_MAX = 60


def todo(db: Path, env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(TODO_APP), "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS_MAX,
        env=env,
    )
    assert done.returncode == 0, f"todo {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def test_the_todo_example_syncs_two_devices(server: Server, db_name: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WEFT_URL": server.url(db_name),
        "WEFT_TOKEN": server.token(db_name),
    }
    laptop, phone = tmp_path / "laptop.db", tmp_path / "phone.db"

    added = todo(laptop, env, "add", "buy", "milk")
    milk = added.split()[1]
    todo(phone, env, "add", "eggs")
    listed = todo(laptop, env, "list")
    assert "[ ] " + milk + "  buy milk" in listed and "eggs" in listed
    assert listed.strip().endswith("2 items")

    todo(phone, env, "done", milk[:4])
    assert f"[x] {milk}  buy milk" in todo(laptop, env, "list")

    offline = {key: value for key, value in env.items() if key != "WEFT_URL"}
    todo(laptop, offline, "add", "written offline")
    assert "written offline" not in todo(phone, env, "list")
    todo(laptop, env, "list")  # online again: sends it
    assert "written offline" in todo(phone, env, "list")


def test_the_todo_example_watches_live(server: Server, db_name: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WEFT_URL": server.url(db_name),
        "WEFT_TOKEN": server.token(db_name),
    }
    watcher = subprocess.Popen(
        [sys.executable, str(TODO_APP), "--db", str(tmp_path / "screen.db"), "watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in watcher.stdout],  # type: ignore[union-attr]
        daemon=True,
    ).start()
    try:
        wait_for_line(lines, "0 items")
        todo(tmp_path / "keyboard.db", env, "add", "seen live")
        wait_for_line(lines, "seen live")
    finally:
        watcher.send_signal(signal.SIGTERM)
        try:
            code = watcher.wait(timeout=COMMAND_SECONDS_MAX)
        except subprocess.TimeoutExpired:
            watcher.kill()
            raise
    assert code == 0, watcher.stderr.read()  # type: ignore[union-attr]


def wait_for_line(lines: "queue.Queue[str]", text: str) -> None:
    seen: List[str] = []
    deadline = time.monotonic() + COMMAND_SECONDS_MAX
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"the app never printed {text!r}; it printed {seen}")

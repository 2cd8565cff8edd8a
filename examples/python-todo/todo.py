#!/usr/bin/env python3
"""A todo list that works offline and syncs through a weft server.

    todo.py add "buy milk"      # adds an item, then syncs
    todo.py list                # syncs, then lists the items
    todo.py done ID             # marks an item done (an ID prefix is enough), then syncs
    todo.py watch               # syncs live and prints the list whenever it changes

The list lives in a local SQLite replica (--db, or $WEFT_TODO_DB, default ./todo.db). With a
server URL (--url or $WEFT_URL, like ws://127.0.0.1:7400/v1/sync/todos) and a token (--token
or $WEFT_TOKEN, from `weft token`), every command syncs; without one it works offline and the
next command given a URL sends what was done meanwhile.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import uuid
from typing import List, Optional, Sequence

import weft

SCHEMA = """
CREATE TABLE IF NOT EXISTS todo(
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0
)
"""

LIST = "SELECT id, title, done FROM todo ORDER BY done, title, id"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(argv)
    with weft.open(args.db) as db:
        db.execute(SCHEMA)
        if "todo" not in db.replicated_tables():
            db.enable_crr("todo")
        try:
            return run(db, args)
        except weft.WeftError as error:
            print(f"todo: {type(error).__name__}: {error}", file=sys.stderr)
            return 1


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A todo list that syncs through weft.")
    parser.add_argument("--db", default=os.environ.get("WEFT_TODO_DB", "todo.db"))
    parser.add_argument("--url", default=os.environ.get("WEFT_URL"))
    parser.add_argument("--token", default=os.environ.get("WEFT_TOKEN"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("add", help="add an item").add_argument("title", nargs="+")
    commands.add_parser("list", help="list the items")
    commands.add_parser("done", help="mark an item done").add_argument("id")
    commands.add_parser("watch", help="sync live and print the list when it changes")
    return parser.parse_args(argv)


def run(db: weft.Database, args: argparse.Namespace) -> int:
    if args.command == "add":
        item = uuid.uuid4().hex[:8]
        db.execute("INSERT INTO todo(id, title) VALUES (?, ?)", [item, " ".join(args.title)])
        print(f"added {item}")
        sync(db, args)
    elif args.command == "done":
        changed = db.execute(
            "UPDATE todo SET done = 1 WHERE id LIKE ? || '%' AND done = 0", [args.id]
        )
        if changed == 0:
            print(f"todo: no open item {args.id}", file=sys.stderr)
            return 1
        print(f"done {args.id}")
        sync(db, args)
    elif args.command == "list":
        sync(db, args)
        show(db.query(LIST))
    else:
        return watch(db, args)
    return 0


def sync(db: weft.Database, args: argparse.Namespace) -> None:
    """Syncs once with the server, if one is given."""
    if not args.url:
        return
    report = db.sync_once(args.url, token=args.token)
    print(f"synced: sent {report.sent}, received {report.received}", file=sys.stderr)


def show(rows: List[tuple]) -> None:
    for item, title, done in rows:
        print(f"[{'x' if done else ' '}] {item}  {title}")
    print(f"{len(rows)} items", flush=True)


def watch(db: weft.Database, args: argparse.Namespace) -> int:
    """Syncs live and prints the list at once and whenever it changes, until interrupted."""
    if not args.url:
        print("todo: watch needs --url", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    token = args.token
    with db.start_sync(args.url, credentials=lambda: token, on_status=status_line):
        with db.watch(LIST, [], show):
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    return 0


def status_line(status: weft.SyncStatus) -> None:
    print(f"sync: {status}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

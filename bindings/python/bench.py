#!/usr/bin/env python3
"""The binding overhead benchmark (issue 20's protocol, shared with Rust and Kotlin), through
the idiomatic `weft` API. Prints one line per measure:

    bench lang=python measure=<name> value=<number> unit=<us|ms>

It first builds the package in release mode (`maturin build --release`) and loads that build
from a folder of its own, so the venv's (dev) install is left as it is. Run it with the venv
that has maturin:

    .venv-test/bin/python bindings/python/bench.py            # build, then measure
    .venv-test/bin/python bindings/python/bench.py --no-build # measure the installed weft
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

HERE = Path(__file__).resolve().parent

ROWS = 10_000
POINT_QUERY_WARMUP_CALLS = 2_000
POINT_QUERY_CALLS_PER_ROUND = 20_000
ROUNDS = 5

CREATE = (
    "CREATE TABLE item(id INTEGER PRIMARY KEY NOT NULL, name TEXT, qty INTEGER NOT NULL DEFAULT 0)"
)
INSERT = "INSERT INTO item(id, name, qty) VALUES (?, ?, ?)"
POINT_QUERY = "SELECT name, qty FROM item WHERE id = ?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-build", action="store_true", help="measure the weft already importable"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weft-bench-") as scratch:
        if not args.no_build:
            load_release_build(Path(scratch) / "site")
        import weft

        print(f"# weft {weft.__version__} from {Path(weft.__file__).parent}", file=sys.stderr)
        folder = Path(scratch) / "dbs"
        folder.mkdir()
        report("point_query", point_query_us(weft, folder), "us")
        report("insert_10k", insert_10k_ms(weft, folder), "ms")
        report("insert_10k_many", insert_10k_many_ms(weft, folder), "ms")
    return 0


def load_release_build(site: Path) -> None:
    """Builds the wheel with `maturin build --release`, unpacks it into `site` and puts that
    first on the import path."""
    maturin = shutil.which("maturin", path=str(Path(sys.executable).parent)) or "maturin"
    wheels = site.parent / "wheels"
    subprocess.run(
        [maturin, "build", "--release", "--quiet", "--out", str(wheels)],
        cwd=HERE,
        check=True,
        stdout=sys.stderr,
    )
    (wheel,) = wheels.glob("weft-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        stdout=sys.stderr,
    )
    sys.path.insert(0, str(site))


def fresh_database(weft, folder: Path):  # type: ignore[no-untyped-def]
    """A new database file with the table made and replicated."""
    path = Path(tempfile.mkstemp(suffix=".db", dir=folder)[1])
    path.unlink()
    db = weft.open(path)
    db.execute(CREATE)
    db.enable_crr("item")
    return db


def insert_rows(db) -> None:  # type: ignore[no-untyped-def]
    """The 10,000 rows, in one transaction through the idiomatic API."""
    with db.transaction() as tx:
        for i in range(ROWS):
            tx.execute(INSERT, [i, f"item {i}", i % 100])


def point_query_us(weft, folder: Path) -> float:  # type: ignore[no-untyped-def]
    """The median round's mean microseconds per point query."""
    with fresh_database(weft, folder) as db:
        insert_rows(db)
        query = db.query
        for i in range(POINT_QUERY_WARMUP_CALLS):
            query(POINT_QUERY, [i % ROWS])
        assert query(POINT_QUERY, [7]) == [("item 7", 7)]

        def one_round() -> float:
            started = time.perf_counter()
            for i in range(POINT_QUERY_CALLS_PER_ROUND):
                query(POINT_QUERY, [i % ROWS])
            return (time.perf_counter() - started) / POINT_QUERY_CALLS_PER_ROUND * 1e6

        return median_of(one_round)


def insert_10k_ms(weft, folder: Path) -> float:  # type: ignore[no-untyped-def]
    """The median round's milliseconds for 10,000 inserts in one transaction."""

    def one_round() -> float:
        with fresh_database(weft, folder) as db:
            started = time.perf_counter()
            insert_rows(db)
            elapsed = time.perf_counter() - started
            assert db.query("SELECT count(*) FROM item") == [(ROWS,)]
            return elapsed * 1e3

    return median_of(one_round)


def insert_10k_many_ms(weft, folder: Path) -> float:  # type: ignore[no-untyped-def]
    """As insert_10k, with the 10,000 rows handed over in one ``executemany`` call."""

    def one_round() -> float:
        with fresh_database(weft, folder) as db:
            started = time.perf_counter()
            with db.transaction() as tx:
                tx.executemany(
                    "INSERT INTO item(id, name, qty) VALUES (?, ?, ?)",
                    [(i, f"item {i}", i % 100) for i in range(ROWS)],
                )
            elapsed = time.perf_counter() - started
            assert db.query("SELECT count(*) FROM item") == [(ROWS,)]
            return elapsed * 1e3

    return median_of(one_round)


def median_of(one_round: Callable[[], float]) -> float:
    rounds: List[float] = [one_round() for _ in range(ROUNDS)]
    return statistics.median(rounds)


def report(measure: str, value: float, unit: str) -> None:
    print(f"bench lang=python measure={measure} value={value:.3f} unit={unit}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())

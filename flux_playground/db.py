"""One SQLite file for everything the app keeps (history, statistics, the spend ledger), opened one way.

WAL lets readers run while one writer commits, and the busy timeout makes a second writer (another
thread's connection, another worker process) wait instead of failing with "database is locked".
`synchronous=NORMAL` in WAL mode can lose the last commits on power loss but never corrupts the
file; callers that also write files make that safe by writing files first and rows last.

Schema versions are kept per component in a small table rather than in `PRAGMA user_version`:
that pragma is one integer per file, and history and the ledger must migrate independently.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["BUSY_TIMEOUT_MS", "apply_steps", "migrate", "open_db", "snapshot", "transaction"]

BUSY_TIMEOUT_MS = 5000


def open_db(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode; group writes with `transaction()`.

    `check_same_thread=False` because callers hand the connection to worker threads; they must
    still serialise its use themselves (one connection is not safe for simultaneous use).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (once per file: the mode is kept in it), waiting for other connections.

    Changing the journal mode needs the file to itself and SQLite answers SQLITE_BUSY at once,
    without its busy handler: two connections opening a new file together (the history and the
    ledger, two workers) failed with "database is locked" in about one opening of six here. So the
    wait is ours, bounded by the same busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error.

    IMMEDIATE takes the write lock up front, so a busy database is waited for (busy timeout) at
    BEGIN instead of failing halfway through with a lock upgrade that cannot be retried.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: several SELECTs see one state of the file, whatever other writers commit.

    In WAL mode this takes no lock that blocks writers; it only pins the snapshot read first.
    """
    conn.execute("BEGIN DEFERRED")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, component: str, steps: Sequence[Sequence[str]]) -> None:
    """Run the steps of `component` not yet applied, each a list of SQL statements, atomically.

    Steps are append-only: never edit a released step, add a new one. A database written by a newer
    version (more steps than we know) is refused rather than silently misread.
    """
    with transaction(conn):
        apply_steps(conn.execute, component, steps)


def apply_steps(execute: Callable[..., Any], component: str, steps: Sequence[Sequence[str]]) -> None:
    """migrate()'s work inside the caller's transaction, for any database: `execute(sql, args)` takes
    SQL with `?` placeholders (ledger_pg.py runs it on PostgreSQL)."""
    execute(
        "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    row = execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
    current = int(row[0]) if row else 0
    if current > len(steps):
        raise RuntimeError(
            f"the {component} tables are at version {current}, newer than this app knows"
            f" ({len(steps)}); upgrade flux-playground"
        )
    for step in steps[current:]:
        for statement in step:
            execute(statement)
    execute(
        "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
        " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        (component, len(steps)),
    )

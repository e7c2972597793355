"""database.py's Database on PostgreSQL, shared by every replica: psycopg 3 with a connection pool.

Synchronous, like the SQLite side: callers already run their database work in worker threads, so one
shape serves both back ends and nothing blocks the event loop. Every wait is bounded: connecting,
getting a pooled connection, a lock, a statement (_SESSION).

SQL arrives written for SQLite's placeholders and is rewritten once per statement text: `?` becomes
`%s`, `:name` becomes `%(name)s`. A literal `%` is doubled (psycopg reads it as a placeholder).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import SecretStr

from .database import Cursor, Dialect, Params, Statements, Step
from .db import apply_steps
from .errors import PlaygroundError

__all__ = [
    "DatabaseUnavailable",
    "PgStatements",
    "PostgresDatabase",
    "advisory_key",
    "configure",
    "migrate",
    "open_pool",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
#: A caller waits at most this long for a free pooled connection.
POOL_WAIT_S = 10.0
_SESSION = (
    b"SET lock_timeout = '10s'; SET statement_timeout = '15s';"
    b" SET idle_in_transaction_session_timeout = '30s'"
)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class DatabaseUnavailable(PlaygroundError):
    """The shared database cannot be reached (down, overloaded, or a statement waited too long)."""

    def __init__(self) -> None:
        super().__init__(
            "This app cannot reach its database right now, so your history cannot be read or saved. "
            "Try again in a minute; if it keeps happening, tell the app's owner."
        )


def advisory_key(name: str) -> str:
    # Namespaced so the app's advisory locks cannot meet another application's on a shared server.
    return f"flux-playground:{name}"


def configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(_SESSION)  # per session (autocommit): every wait bounded, even a forgotten transaction


def migrate(conn: psycopg.Connection[Any], component: str, steps: Sequence[Sequence[str]]) -> None:
    """db.migrate for PostgreSQL: the steps not yet applied, atomically, one replica at a time."""
    with conn.transaction():
        # Two replicas starting together: the second waits here, then finds the tables made.
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (advisory_key("migrate"),))

        apply_steps(PgStatements(conn).execute, component, steps)


def open_pool(url: str, *, name: str, max_size: int) -> ConnectionPool:
    """A pool of autocommit connections, every wait bounded, opened in the background."""
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        timeout=POOL_WAIT_S,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        configure=configure,
        # A connection the server dropped (restart, failover, an admin) is replaced before use:
        # one round trip per checkout, none while a lock is held.
        check=ConnectionPool.check_connection,
        open=False,
        name=f"flux-playground-{name}",
    )
    pool.open(wait=False)
    return pool


@functools.lru_cache(maxsize=512)
def _rewrite(sql: str, named: bool) -> str:
    sql = sql.replace("%", "%%")
    return _NAMED.sub(r"%(\1)s", sql) if named else sql.replace("?", "%s")


class PgStatements:
    """sqlite3.Connection's execute/executemany over one psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Params = (), /) -> Cursor:
        cursor: Cursor = self._conn.execute(_rewrite(sql, isinstance(parameters, Mapping)), parameters)
        return cursor

    def executemany(self, sql: str, seq_of_parameters: Iterable[Params], /) -> None:
        rows = list(seq_of_parameters)
        if rows:
            with self._conn.cursor() as cursor:
                cursor.executemany(_rewrite(sql, isinstance(rows[0], Mapping)), rows)


class PostgresDatabase:
    dialect: Dialect = "postgres"

    def __init__(self, url: SecretStr, *, name: str, max_size: int = 8, label: str | None = None) -> None:
        self._url, self._name, self._max_size = url, name, max_size
        #: In its log lines: "The <label> database failed: …".
        self.label = label or name
        self._lock = threading.Lock()  # guards opening the pool only; the pool serves threads itself
        self._pool: ConnectionPool | None = None

    def _open(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                url = self._url.get_secret_value()
                # One plain connection first: a server that is down fails now, not after the pool's
                # retries in the background.
                psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S).close()
                self._pool = open_pool(url, name=self._name, max_size=self._max_size)
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; an unreachable server becomes a sentence, never a traceback or URL."""
        try:
            with self._open().connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            # Only the kind of failure is logged: a driver's message may quote the connection string.
            sqlstate = getattr(exc, "sqlstate", None) or "-"
            log.warning("The %s database failed: %s (SQLSTATE %s)", self.label, type(exc).__name__, sqlstate)
            raise DatabaseUnavailable() from None

    def migrate(self, component: str, steps: Sequence[Step]) -> None:
        with self.connection() as conn:
            migrate(conn, component, [step.postgres for step in steps])

    @contextmanager
    def writing(self) -> Iterator[Statements]:
        with self.connection() as conn, conn.transaction():
            yield PgStatements(conn)

    @contextmanager
    def reading(self) -> Iterator[Statements]:
        with self.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PgStatements(conn)

    def fetch(self, sql: str, parameters: Params = ()) -> list[tuple[Any, ...]]:
        with self.connection() as conn:
            return [tuple(row) for row in PgStatements(conn).execute(sql, parameters).fetchall()]

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

"""Where history and the provider statistics keep their rows: a SQLite file in the data directory (one
process), or the PostgreSQL database every replica shares (FLUX_PLAYGROUND_DATABASE_URL).

    db = open_database(data_dir / "history.sqlite3", settings.database_url, name="history")
    db.migrate("history", STEPS)               # each Step in both dialects, one numbered history
    with db.writing() as sql:                  # one write transaction, committed at the end
        sql.execute("UPDATE … WHERE owner = ?", (key,))
    with db.reading() as sql:                  # several SELECTs that see one state of the data
        sql.execute("SELECT …").fetchall()

Callers write their SQL once, with `?` placeholders (`:name` with a dict, for executemany), in the
part of SQL both back ends speak alike; `dialect` says which runs, where they differ (schema steps,
full-text search). The PostgreSQL side is database_pg.py, imported only when a URL is set.

Every call blocks: callers run them in worker threads (asyncio.to_thread), as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import SecretStr

from .db import migrate, open_db, snapshot, transaction
from .errors import ConfigurationError

__all__ = ["Database", "Dialect", "SqliteDatabase", "Statements", "Step", "open_database"]

Dialect = Literal["sqlite", "postgres"]
Params = Sequence[object] | Mapping[str, object]


@dataclass(frozen=True)
class Step:
    """One numbered schema step, in each back end's dialect (append-only, like db.migrate's).

    Step N leaves the same tables in either database. A back end that began later than a step (no
    PostgreSQL database was ever at history's step 1) has an empty tuple there.
    """

    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Statements(Protocol):
    """What a transaction offers: sqlite3.Connection has exactly these; database_pg adapts psycopg."""

    def execute(self, sql: str, parameters: Params = ..., /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Params], /) -> Any: ...


class Database(Protocol):
    dialect: Dialect

    def migrate(self, component: str, steps: Sequence[Step]) -> None:
        """Apply the steps of `component` this database has not had yet, atomically."""
        ...

    def writing(self) -> AbstractContextManager[Statements]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        ...

    def reading(self) -> AbstractContextManager[Statements]:
        """One read-only snapshot: every statement in the block sees the same committed state."""
        ...

    def fetch(self, sql: str, parameters: Params = ()) -> list[tuple[Any, ...]]:
        """One SELECT's rows: one statement is consistent on its own, so no transaction around it
        (on PostgreSQL, one round trip instead of four)."""
        ...

    def close(self) -> None: ...


class SqliteDatabase:
    """One SQLite connection behind a `threading.Lock`.

    SQLite admits one writer at a time anyway and the statements callers send are indexed lookups of
    well under a millisecond, so serialising them costs nothing. Other processes on the same file
    are handled by WAL and the busy timeout (db.py).
    """

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, *, functions: Mapping[str, Callable[[str], str]] | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = open_db(path)
        for name, function in (functions or {}).items():  # used by migrations and triggers
            self._conn.create_function(name, 1, function, deterministic=True)

    def migrate(self, component: str, steps: Sequence[Step]) -> None:
        with self._lock:
            migrate(self._conn, component, [step.sqlite for step in steps])

    @contextmanager
    def writing(self) -> Iterator[Statements]:
        with self._lock, transaction(self._conn) as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Statements]:
        with self._lock, snapshot(self._conn) as conn:
            yield conn

    def fetch(self, sql: str, parameters: Params = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, parameters).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_database(
    path: Path,
    url: SecretStr | str | None,
    *,
    name: str,
    functions: Mapping[str, Callable[[str], str]] | None = None,
    pool_size: int = 8,
) -> Database:
    """PostgreSQL at `url` when it is set, else the SQLite file at `path`. `name` labels the
    connection pool (and its log lines), at most `pool_size` connections; `functions` are SQLite-only
    helpers for its migrations."""
    if url is None:
        return SqliteDatabase(path, functions=functions)
    try:
        from .database_pg import PostgresDatabase  # psycopg is imported only by those who use it
    except ImportError:
        raise ConfigurationError(
            "FLUX_PLAYGROUND_DATABASE_URL is set, but psycopg (PostgreSQL's driver) is not installed: "
            "run pip install -r requirements.txt, or unset the variable."
        ) from None
    return PostgresDatabase(
        url if isinstance(url, SecretStr) else SecretStr(url), name=name, max_size=pool_size
    )

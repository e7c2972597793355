"""Where the spend guard keeps its counts (limits.py): a SQLite file, or a PostgreSQL database shared
by several replicas of the app. Chosen by `FLUX_PLAYGROUND_DATABASE_URL` (`open_ledger`).

    ledger = open_ledger(settings)
    with ledger.writing() as tx:           # one transaction; no other writer (replica) interleaves
        tx.lock(everyone=False, who=who)   # before anything of theirs is read: their caps
        tx.spent(day, who) ...
        tx.lock(everyone=True, who=None)   # the global cap last, held as briefly as possible
        tx.spent(day) ...; tx.reserve(...)
    ledger.settle(reservation, micro_usd=None)

The policy (which cap, what message, how much) lives in limits.py; a ledger only stores and locks.
SQLite serialises every write transaction (BEGIN IMMEDIATE), so its `lock` has nothing to add; on
PostgreSQL `lock` takes transaction-scoped advisory locks keyed by the cap, so two replicas cannot
both reserve the last of a budget. Every call blocks: callers run them in a worker thread.

Both back ends migrate from one schema history (`LEDGER_STEPS`): step N means the same tables in
either, written in each one's dialect, recorded in a `schema_versions` table in each database.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from .database import SqliteDatabase, Step
from .errors import ConfigurationError, LimitExceeded
from .settings import Settings

__all__ = [
    "LEDGER_STEPS",
    "Ledger",
    "LedgerUnavailable",
    "LedgerWrite",
    "SqliteLedger",
    "Step",
    "open_ledger",
]


class LedgerUnavailable(LimitExceeded):
    """The shared ledger's database cannot be reached: no run may pass a cap nobody can check."""

    def __init__(self) -> None:
        super().__init__(
            "This app cannot reach its spend ledger right now, so it cannot check its spend caps. "
            "Try again in a minute; if it keeps happening, tell the Space's owner."
        )


LEDGER_STEPS: tuple[Step, ...] = (
    Step(
        sqlite=(
            "CREATE TABLE spend (id TEXT PRIMARY KEY, day TEXT NOT NULL, person TEXT NOT NULL,"
            " provider TEXT NOT NULL, micro_usd INTEGER NOT NULL, settled INTEGER NOT NULL DEFAULT 0,"
            " created_at REAL NOT NULL)",
            "CREATE INDEX spend_day_person ON spend (day, person)",
        ),
        postgres=(
            "CREATE TABLE spend (id TEXT PRIMARY KEY, day TEXT NOT NULL, person TEXT NOT NULL,"
            " provider TEXT NOT NULL, micro_usd BIGINT NOT NULL, settled INTEGER NOT NULL DEFAULT 0,"
            " created_at DOUBLE PRECISION NOT NULL)",
            "CREATE INDEX spend_day_person ON spend (day, person)",
        ),
    ),
    Step(
        # One row per admitted run and person, kept for the rate window (pruned as runs come in).
        sqlite=(
            "CREATE TABLE rate_events (person TEXT NOT NULL, at REAL NOT NULL)",
            "CREATE INDEX rate_events_person_at ON rate_events (person, at)",
        ),
        postgres=(
            "CREATE TABLE rate_events (person TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)",
            "CREATE INDEX rate_events_person_at ON rate_events (person, at)",
        ),
    ),
    Step(
        # Runs in progress, for the duplicate-click guard across replicas. A SQLite file serves one
        # process, whose in-memory set already is that guard: nothing to add there.
        sqlite=(),
        postgres=(
            "CREATE TABLE running (fingerprint TEXT PRIMARY KEY, holder TEXT NOT NULL,"
            " expires_at DOUBLE PRECISION NOT NULL)",
        ),
    ),
)


class _Rows(Protocol):
    def fetchone(self) -> Any: ...


class LedgerWrite:
    """The statements of one write transaction, over a connection whose `execute` takes `?`
    placeholders (sqlite3's; database_pg.PgStatements on PostgreSQL)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def _execute(self, sql: str, args: Sequence[object] = ()) -> _Rows:
        rows: _Rows = self._conn.execute(sql, tuple(args))
        return rows

    def lock(self, *, everyone: bool, who: str | None) -> None:
        """Hold, until the transaction ends, one person's limits and/or the global cap (`everyone`).
        Always in that order, within a call and across calls: the person's, then the global one."""

    def recent_requests(self, who: str, since: float) -> tuple[int, float | None]:
        """How many runs `who` was admitted for after `since`, and when the oldest of them was."""
        count, oldest = self._execute(
            "SELECT COUNT(*), MIN(at) FROM rate_events WHERE person = ? AND at > ?", (who, since)
        ).fetchone()
        return int(count), oldest

    def record_request(self, who: str, at: float) -> None:
        self._execute("INSERT INTO rate_events (person, at) VALUES (?, ?)", (who, at))

    def forget_requests(self, before: float) -> None:
        self._execute("DELETE FROM rate_events WHERE at <= ?", (before,))

    def spent(self, day: str, who: str | None = None) -> int:
        """Micro-dollars reserved or spent on `day`, by everyone or by `who`."""
        return _spent(self._execute, day, who)

    def reserve(self, day: str, who: str, provider: str, micro_usd: int, at: float) -> str:
        """Count `micro_usd` against `who` until settled; returns the reservation's id."""
        reservation = secrets.token_hex(8)
        self._execute(
            "INSERT INTO spend (id, day, person, provider, micro_usd, settled, created_at)"
            " VALUES (?, ?, ?, ?, ?, 0, ?)",
            (reservation, day, who, provider, micro_usd, at),
        )
        return reservation


class Ledger(Protocol):
    #: Whether other processes share it (then the duplicate-click guard goes through it too).
    shared: bool

    def writing(self) -> AbstractContextManager[LedgerWrite]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        ...

    def spent(self, day: str, who: str | None = None) -> int: ...

    def settle(self, reservation: str, micro_usd: int | None) -> None:
        """Replace a reservation by the real cost (None: keep the estimate, mark it settled)."""
        ...

    def claim_run(self, fingerprint: str, now: float, lease_s: float) -> str | None:
        """Mark a run in progress for every replica: a token to release it with, or None when
        another one holds it. Expires after `lease_s`, so a crashed replica's claim is not forever."""
        ...

    def release_run(self, fingerprint: str, token: str) -> None: ...

    def close(self) -> None: ...


def _spent(execute: Any, day: str, who: str | None) -> int:
    if who is None:
        row = execute("SELECT SUM(micro_usd) FROM spend WHERE day = ?", (day,)).fetchone()
    else:
        row = execute("SELECT SUM(micro_usd) FROM spend WHERE day = ? AND person = ?", (day, who)).fetchone()
    return int(row[0] or 0)


def _settle_sql(micro_usd: int | None, reservation: str) -> tuple[str, tuple[object, ...]]:
    if micro_usd is None:
        return "UPDATE spend SET settled = 1 WHERE id = ?", (reservation,)
    return "UPDATE spend SET micro_usd = ?, settled = 1 WHERE id = ?", (micro_usd, reservation)


class SqliteLedger:
    """The ledger in the data directory's SQLite file (the same file as history), as before.

    A `SqliteDatabase` of its own (one connection, one lock), opened on first use only, so a CLI run
    without caps leaves nothing behind.
    """

    shared = False

    def __init__(self, path: Path) -> None:
        self._path = path
        self._opening = threading.Lock()
        self._db: SqliteDatabase | None = None

    @property
    def _database(self) -> SqliteDatabase:
        with self._opening:
            if self._db is None:
                db = SqliteDatabase(self._path)
                db.migrate("spend", LEDGER_STEPS)
                self._db = db
            return self._db

    @contextmanager
    def writing(self) -> Iterator[LedgerWrite]:
        with self._database.writing() as sql:
            yield LedgerWrite(sql)  # BEGIN IMMEDIATE already excludes every other writer

    def spent(self, day: str, who: str | None = None) -> int:
        with self._database.reading() as sql:
            return _spent(sql.execute, day, who)

    def settle(self, reservation: str, micro_usd: int | None) -> None:
        with self._database.writing() as sql:
            sql.execute(*_settle_sql(micro_usd, reservation))

    def claim_run(self, fingerprint: str, now: float, lease_s: float) -> str | None:
        return ""  # one process per file: the guard's in-memory set is the whole duplicate guard

    def release_run(self, fingerprint: str, token: str) -> None:
        pass

    def close(self) -> None:
        with self._opening:
            if self._db is not None:
                self._db.close()
                self._db = None


def open_ledger(settings: Settings) -> Ledger:
    """PostgreSQL when FLUX_PLAYGROUND_DATABASE_URL is set, else the SQLite file in the data directory."""
    if settings.database_url is not None:
        try:
            from .ledger_pg import PostgresLedger  # psycopg is imported only by those who use it
        except ImportError:
            raise ConfigurationError(
                "FLUX_PLAYGROUND_DATABASE_URL is set, but psycopg (PostgreSQL's driver) is not "
                "installed: run pip install -r requirements.txt, or unset the variable."
            ) from None
        return PostgresLedger(settings.database_url)
    return SqliteLedger(settings.data_dir / "history.sqlite3")

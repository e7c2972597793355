"""The spend ledger on PostgreSQL, shared by every replica of the app (ledger.py has the interface).

A cap holds across replicas because the check and the reservation happen in one transaction that
first takes `pg_advisory_xact_lock` on the cap's key (one person's budget and rate, the global
budget): a second replica's transaction for the same cap waits at that lock until the first commits,
then reads its reservation. Locks are always taken the person's first, then the global one, so two
transactions cannot wait on each other; the global lock, which every paid run queues for, is taken
last and held for one read and the reservations only. READ COMMITTED is enough: each statement
after the lock sees everything committed before it.

psycopg 3, synchronous, with a connection pool: the guard already calls its ledger from worker
threads (asyncio.to_thread) and settles from them, so the same shape serves both back ends and
nothing blocks the event loop. Every wait is bounded: getting a connection, a lock, a statement.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pydantic import SecretStr

from .database_pg import DatabaseUnavailable, PgStatements, PostgresDatabase, advisory_key
from .ledger import LEDGER_STEPS, LedgerUnavailable, LedgerWrite, _settle_sql, _spent

__all__ = ["PostgresLedger"]

log = logging.getLogger(__name__)

#: More than the worker threads that call it at once (asyncio's default pool on a small machine).
POOL_MAX = 16
_PRUNE_EVERY_S = 60.0


class _PostgresWrite(LedgerWrite):
    def lock(self, *, everyone: bool, who: str | None) -> None:
        # The person first, then the global budget: one order everywhere (limits.py takes the
        # global lock last, after the person's), so no two transactions wait on each other.
        for name in ([f"person:{who}"] if who else []) + (["spend:everyone"] if everyone else []):
            self._execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (advisory_key(name),))


class PostgresLedger:
    shared = True

    def __init__(self, url: SecretStr) -> None:
        self._db = PostgresDatabase(url, name="ledger", max_size=POOL_MAX, label="spend ledger")
        self._lock = threading.Lock()  # guards the first migration only
        self._migrated = False
        self._pruned_at = 0.0

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, the ledger's tables made on first use. Any database failure is
        LedgerUnavailable: a cap nobody can check counts as reached."""
        try:
            with self._lock:
                if not self._migrated:
                    self._db.migrate("spend", LEDGER_STEPS)
                    self._migrated = True
            with self._db.connection() as conn:
                yield conn
        except DatabaseUnavailable:  # already logged, in one line
            raise LedgerUnavailable() from None
        except psycopg.Error as exc:
            sqlstate = getattr(exc, "sqlstate", None) or "-"
            log.warning("The spend ledger database failed: %s (SQLSTATE %s)", type(exc).__name__, sqlstate)
            raise LedgerUnavailable() from None

    @contextmanager
    def writing(self) -> Iterator[LedgerWrite]:
        with self._connection() as conn, conn.transaction():
            yield _PostgresWrite(PgStatements(conn))

    def spent(self, day: str, who: str | None = None) -> int:
        with self._connection() as conn:
            return _spent(PgStatements(conn).execute, day, who)

    def settle(self, reservation: str, micro_usd: int | None) -> None:
        sql, args = _settle_sql(micro_usd, reservation)
        with self._connection() as conn:
            PgStatements(conn).execute(sql, args)

    def claim_run(self, fingerprint: str, now: float, lease_s: float) -> str | None:
        token = secrets.token_hex(8)
        with self._connection() as conn:
            if now - self._pruned_at >= _PRUNE_EVERY_S:  # claims left by replicas that died mid-run
                self._pruned_at = now
                conn.execute("DELETE FROM running WHERE expires_at < %s", (now,))
            # Inserted, or taken over from a claim whose lease ran out (its replica died mid-run).
            row = conn.execute(
                "INSERT INTO running (fingerprint, holder, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (fingerprint) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at WHERE running.expires_at < %s RETURNING holder",
                (fingerprint, token, now + lease_s, now),
            ).fetchone()
        return token if row is not None else None

    def release_run(self, fingerprint: str, token: str) -> None:
        with self._connection() as conn:
            conn.execute("DELETE FROM running WHERE fingerprint = %s AND holder = %s", (fingerprint, token))

    def close(self) -> None:
        self._db.close()

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
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import SecretStr

from .database_pg import advisory_key, configure, migrate
from .ledger import LEDGER_STEPS, LedgerUnavailable, LedgerWrite, _settle_sql, _spent

__all__ = ["PostgresLedger"]

log = logging.getLogger(__name__)

#: More than the worker threads that call it at once (asyncio's default pool on a small machine).
POOL_MAX = 16
CONNECT_TIMEOUT_S = 5
#: A transaction waits at most this long for another replica's lock or for a free connection.
WAIT_S = 10.0
_PRUNE_EVERY_S = 60.0


class _PostgresWrite(LedgerWrite):
    param = "%s"

    def lock(self, *, everyone: bool, who: str | None) -> None:
        # The person first, then the global budget: one order everywhere (limits.py takes the
        # global lock last, after the person's), so no two transactions wait on each other.
        for name in ([f"person:{who}"] if who else []) + (["spend:everyone"] if everyone else []):
            self._execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (advisory_key(name),))


class PostgresLedger:
    shared = True

    def __init__(self, url: SecretStr) -> None:
        self._url = url
        self._lock = threading.Lock()  # guards opening the pool only; the pool serves threads itself
        self._pool: ConnectionPool | None = None
        self._pruned_at = 0.0

    def _open(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                url = self._url.get_secret_value()
                # One plain connection first: a server that is down fails now, not after the pool's
                # retries, and the schema is ready before any pooled connection is used.
                with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                    configure(conn)
                    migrate(conn, "spend", [step.postgres for step in LEDGER_STEPS])
                self._pool = ConnectionPool(
                    url,
                    min_size=1,
                    max_size=POOL_MAX,
                    timeout=WAIT_S,
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                    configure=configure,
                    # A connection the server dropped (restart, failover, an admin) is replaced
                    # before use: one round trip per checkout, none while a lock is held.
                    check=ConnectionPool.check_connection,
                    open=False,
                    name="flux-playground-ledger",
                )
                self._pool.open(wait=False)
            return self._pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; an unreachable server becomes a sentence, never a traceback or URL."""
        try:
            with self._open().connection() as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            # Only the kind of failure is logged: a driver's message may quote the connection string.
            sqlstate = getattr(exc, "sqlstate", None) or "-"
            log.warning("The spend ledger's database failed: %s (SQLSTATE %s)", type(exc).__name__, sqlstate)
            raise LedgerUnavailable() from None

    @contextmanager
    def writing(self) -> Iterator[LedgerWrite]:
        with self._connection() as conn, conn.transaction():
            yield _PostgresWrite(conn)

    def spent(self, day: str, who: str | None = None) -> int:
        with self._connection() as conn:
            return _spent(_PostgresWrite(conn)._execute, day, who)

    def settle(self, reservation: str, micro_usd: int | None) -> None:
        sql, args = _settle_sql(micro_usd, reservation)
        with self._connection() as conn:
            conn.execute(sql.replace("?", "%s"), args)

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
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

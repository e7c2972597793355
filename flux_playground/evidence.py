"""Every provider outcome of a run, kept as evidence of how fast and how reliably each provider answers.

    evidence = Evidence(settings.data_dir)
    evidence.submit(row)                  # from the event loop: written by a background thread
    evidence.recent(demo=False)           # the rows the statistics rest on (stats.py)

One row per provider outcome of `runs.run` (a result or a failure), in `evidence.sqlite3` in the data
directory, or, with FLUX_PLAYGROUND_DATABASE_URL, in PostgreSQL, where every replica's runs count
together (database.py). The SQLite file is its own, not history's, so that writing a row never waits
for (or holds up) the history and spend-ledger writes people are waiting on, and so the file can be
deleted or shared on its own. A row holds nothing that points to a person: no prompt, no owner, no
address, no seed, no request id, and the time only to the minute. Demo-mode rows are flagged and
never mixed with real ones.

Bounded: a row older than the window, or beyond the newest `MAX_RUNS` of its provider, size class and
mode, is never read again and is deleted as rows come in, so the file holds at most MAX_RUNS rows per
provider, size class and mode (about 11 000 rows, 1.1 MB) however busy the app is. Rows are
written on one background thread, so the event loop never waits for SQLite; if that thread falls
behind by `MAX_PENDING` rows, new ones are dropped (the figures are a sample). A row that cannot be
written is logged in one line and forgotten: statistics never fail a run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from .database import Database, Step, open_database

__all__ = ["EVIDENCE_FILE", "MAX_RUNS", "WINDOW_S", "Evidence", "RunRow"]

log = logging.getLogger(__name__)

EVIDENCE_FILE = "evidence.sqlite3"
#: The statistics look back this far, and at most this many runs per provider, size class and mode.
WINDOW_S = 7 * 24 * 3600.0
MAX_RUNS = 200
#: Rows waiting for the writer thread beyond which new rows are dropped.
MAX_PENDING = 1000
_INDEXES = (
    "CREATE INDEX runs_group ON runs (demo, provider, size_class, id)",
    "CREATE INDEX runs_at ON runs (at)",
)
_STEPS = [
    Step(
        sqlite=(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, provider TEXT NOT NULL, size_class TEXT NOT NULL,"
            " demo INTEGER NOT NULL, ok INTEGER NOT NULL, latency_s REAL, job_s REAL, failure TEXT,"
            " at REAL NOT NULL)",
            *_INDEXES,
        ),
        postgres=(
            "CREATE TABLE runs (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " provider TEXT NOT NULL, size_class TEXT NOT NULL, demo INTEGER NOT NULL,"
            " ok INTEGER NOT NULL, latency_s DOUBLE PRECISION, job_s DOUBLE PRECISION, failure TEXT,"
            " at DOUBLE PRECISION NOT NULL)",
            *_INDEXES,
        ),
    ),
]
_COLUMNS = "provider, size_class, demo, ok, latency_s, job_s, failure, at"
#: One writer thread for every Evidence in the process: rows are small and writes are quick.
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence")


@dataclass(frozen=True)
class RunRow:
    """One provider outcome. `latency_s` (click to saved image) and `job_s` (an asynchronous job's
    time at the provider) for results; `failure`, the error's class name, for failures."""

    provider: str
    size_class: str
    demo: bool
    ok: bool
    latency_s: float | None = None
    job_s: float | None = None
    failure: str | None = None
    #: Unix time, to the minute.
    at: float = 0.0


def to_the_minute(seconds: float) -> float:
    return float(int(seconds // 60) * 60)


class Evidence:
    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: SecretStr | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = data_dir / EVIDENCE_FILE
        self._url, self._clock = database_url, clock
        self._lock = threading.Lock()  # guards opening only; the database serves threads itself
        self._db: Database | None = None
        self._pending: set[Future[None]] = set()
        #: Called (on the writer thread) after each row is written, e.g. to drop cached figures.
        self.on_write: Callable[[], None] | None = None

    # --- writing -----------------------------------------------------------------------------------

    def submit(self, row: RunRow) -> None:
        """Queue `row` for the writer thread and return at once (never raises)."""
        try:
            if len(self._pending) >= MAX_PENDING:
                log.warning("Statistics: %d rows still waiting to be written; a %s run is not recorded",
                            len(self._pending), row.provider)  # fmt: skip
                return
            future = _WRITER.submit(self._write_logged, row)
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
        except Exception as exc:  # e.g. the interpreter is shutting down
            log.warning("Could not record a %s run for the statistics: %s", row.provider, exc)

    def _write_logged(self, row: RunRow) -> None:
        try:
            self.record(row)
            if self.on_write is not None:
                self.on_write()
        except Exception as exc:
            log.warning("Could not record a %s run for the statistics: %s", row.provider, exc)

    def record(self, row: RunRow) -> None:
        """Write one row and drop what its group no longer needs (blocking: a worker thread's job)."""
        db = self._database(create=True)
        assert db is not None
        with db.writing() as conn:
            conn.execute(
                f"INSERT INTO runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row.provider, row.size_class, int(row.demo), int(row.ok), row.latency_s, row.job_s,
                 row.failure, to_the_minute(row.at or self._clock())),
            )  # fmt: skip
            conn.execute(
                "DELETE FROM runs WHERE demo = ? AND provider = ? AND size_class = ? AND id <= ("
                "SELECT id FROM runs WHERE demo = ? AND provider = ? AND size_class = ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (*(int(row.demo), row.provider, row.size_class) * 2, MAX_RUNS),
            )
            conn.execute("DELETE FROM runs WHERE at < ?", (self._clock() - WINDOW_S,))

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (without blocking the loop) until the rows submitted so far are written."""
        pending = [asyncio.wrap_future(future) for future in list(self._pending)]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    # --- reading -----------------------------------------------------------------------------------

    def recent(self, *, demo: bool) -> list[RunRow]:
        """The rows inside the window, newest first, at most MAX_RUNS per provider and size class
        (blocking). Nothing recorded yet: no rows, and no file is made."""
        db = self._database(create=False)
        if db is None:
            return []
        found = db.fetch(
            f"SELECT {_COLUMNS} FROM runs WHERE demo = ? AND at >= ? ORDER BY id DESC",
            (int(demo), self._clock() - WINDOW_S),
        )
        rows: list[RunRow] = []
        kept: dict[tuple[str, str], int] = {}
        for provider, size, is_demo, ok, latency, job, failure, at in found:
            group = (provider, size)
            kept[group] = kept.get(group, 0) + 1
            if kept[group] <= MAX_RUNS:
                rows.append(RunRow(provider, size, bool(is_demo), bool(ok), latency, job, failure, at))
        return rows

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _database(self, *, create: bool) -> Database | None:
        with self._lock:
            if self._db is None:
                if self._url is None and not create and not self.path.exists():
                    return None  # nothing recorded yet, and reading makes no file
                db = open_database(self.path, self._url, name="statistics", pool_size=2)
                try:
                    db.migrate("evidence", _STEPS)
                except BaseException:
                    db.close()
                    raise
                self._db = db
            return self._db

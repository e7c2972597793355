"""The spend ledger's back ends (flux_playground/ledger.py, ledger_pg.py): the choice by setting, the
caps held by two guards at once (two replicas), the duplicate-click guard across replicas, the
schema history, and a database that cannot be reached.

The rules themselves (caps, rate, messages) run on both back ends in tests/test_limits.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr, ValidationError
from ui.appclient import free_port

from flux_playground.errors import LimitExceeded
from flux_playground.ledger import LEDGER_STEPS, LedgerUnavailable, SqliteLedger
from flux_playground.ledger_pg import PostgresLedger
from flux_playground.limits import Guard
from flux_playground.models import GenerationRequest
from flux_playground.settings import Settings

REQUEST = GenerationRequest(prompt="a red fox")
NOON = 1_763_726_400.0  # 2025-11-21 12:00:00 UTC


@pytest.fixture
def guards(tmp_path: Path) -> Iterator[Any]:
    made: list[Guard] = []

    def make(now: list[float] | None = None, **values: Any) -> Guard:
        clock = now if now is not None else [NOON]
        made.append(Guard(Settings(_env_file=None, data_dir=tmp_path, **values), clock=lambda: clock[0]))
        return made[-1]

    yield make
    for guard in made:
        guard.close()


async def paid_run(guard: Guard, person: str, seed: int, cost: str = "0.003") -> None:
    charges: dict[str, Decimal | None] = {"atlascloud": Decimal(cost)}
    request = REQUEST.model_copy(update={"seed": seed})
    async with guard.admit(person, request, ["atlascloud"], charges) as admission:
        await asyncio.sleep(0.01)  # the run: others' admissions interleave here
        admission.settle("atlascloud", cost=Decimal(cost), billed=True)


def test_the_setting_chooses_the_back_end(tmp_path: Path) -> None:
    sqlite = Guard(Settings(_env_file=None, data_dir=tmp_path, database_url=None))
    postgres = Guard(
        Settings(_env_file=None, data_dir=tmp_path, database_url="postgresql://u:p@127.0.0.1/db")
    )
    assert (type(sqlite._ledger), type(postgres._ledger)) == (SqliteLedger, PostgresLedger)
    assert (sqlite._ledger.shared, postgres._ledger.shared) == (False, True)
    assert list(tmp_path.iterdir()) == []  # neither opened anything yet
    sqlite.close()
    postgres.close()


def test_a_database_url_that_is_not_postgresql_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, database_url="mysql://owner:hunter2@db.example/ledger")
    message = str(info.value)
    assert "FLUX_PLAYGROUND_DATABASE_URL must be a PostgreSQL URL" in message
    assert "hunter2" not in message and "db.example" not in message
    assert Settings(_env_file=None, database_url="").database_url is None  # empty: unset
    assert "hunter2" not in repr(Settings(_env_file=None, database_url="postgresql://o:hunter2@h/db"))


async def test_two_guards_on_one_ledger_hold_both_caps_together(
    guards: Any, ledger_backend: dict[str, Any]
) -> None:
    """Two replicas' guards on one database: 40 runs by two people at once, through both. Alice's
    cap ($0.015) lets 5 of hers through, the global cap ($0.024) 3 more of Bob's: exactly."""
    limits = {"daily_budget_usd": Decimal("0.024"), "per_user_daily_budget_usd": Decimal("0.015")}
    first, second = guards(**ledger_backend, **limits), guards(**ledger_backend, **limits)
    runs = [paid_run((first, second)[i % 2], ("anon:alice", "anon:bob")[i // 20], seed=i) for i in range(40)]
    outcomes = await asyncio.gather(*runs, return_exceptions=True)
    assert all(o is None or isinstance(o, LimitExceeded) for o in outcomes), outcomes
    assert sum(o is None for o in outcomes) == 8
    assert first.spent_today("anon:alice") == Decimal("0.015")
    assert second.spent_today("anon:bob") == Decimal("0.009")
    assert first.spent_today() == second.spent_today() == Decimal("0.024")


async def test_a_double_click_reaching_two_replicas_starts_one_run(guards: Any, postgres_url: str) -> None:
    first, second = guards(database_url=postgres_url), guards(database_url=postgres_url)
    started, release = asyncio.Event(), asyncio.Event()
    charges: dict[str, Decimal | None] = {"segmind": Decimal("0.008")}

    async def hold() -> None:
        async with first.admit("anon:a", REQUEST, ["segmind"], charges):
            started.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await started.wait()
    with pytest.raises(LimitExceeded, match=r"already running \(a double click\?\)"):
        async with second.admit("anon:a", REQUEST, ["segmind"], charges):
            pass
    async with second.admit("anon:b", REQUEST, ["segmind"], charges):  # someone else: fine
        pass
    release.set()
    await task
    async with second.admit("anon:a", REQUEST, ["segmind"], charges):  # finished: may run again
        pass


def test_a_crashed_replicas_claim_expires_with_its_lease(postgres_url: str) -> None:
    ledger, other = PostgresLedger(SecretStr(postgres_url)), PostgresLedger(SecretStr(postgres_url))
    try:
        stale = ledger.claim_run("left by a dead replica", now=NOON - 1000, lease_s=300)
        assert stale is not None
        token = ledger.claim_run("fingerprint", now=NOON, lease_s=300)
        assert token is not None
        assert other.claim_run("fingerprint", now=NOON + 299, lease_s=300) is None
        taken_over = other.claim_run("fingerprint", now=NOON + 301, lease_s=300)
        assert taken_over is not None
        ledger.release_run("fingerprint", token)  # the late release leaves the new holder's claim
        assert ledger.claim_run("fingerprint", now=NOON + 302, lease_s=300) is None
        other.release_run("fingerprint", taken_over)
        assert ledger.claim_run("fingerprint", now=NOON + 303, lease_s=300) is not None
        with psycopg.connect(postgres_url) as conn:  # expired claims are pruned, live ones kept
            assert conn.execute("SELECT fingerprint FROM running").fetchall() == [("fingerprint",)]
    finally:
        ledger.close()
        other.close()


def test_both_back_ends_share_one_schema_history(tmp_path: Path, postgres_url: str) -> None:
    sqlite, postgres = SqliteLedger(tmp_path / "ledger.sqlite3"), PostgresLedger(SecretStr(postgres_url))
    try:
        assert sqlite.spent("2025-11-21") == postgres.spent("2025-11-21") == 0
        version = "SELECT version FROM schema_versions WHERE component = 'spend'"
        assert sqlite._database.fetch(version) == [(len(LEDGER_STEPS),)]
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute(version).fetchone() == (len(LEDGER_STEPS),)
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                " ORDER BY table_name"
            ).fetchall()
            assert tables == [("rate_events",), ("running",), ("schema_versions",), ("spend",)]
            conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'spend'")
        # Written by a newer app: refused rather than misread; another replica opens it the same way.
        newer = PostgresLedger(SecretStr(postgres_url))
        with pytest.raises(RuntimeError, match="at version 99, newer than this app knows"):
            newer.spent("2025-11-21")
        newer.close()
    finally:
        sqlite.close()
        postgres.close()


async def test_an_unreachable_database_refuses_runs_in_words_without_the_url(
    guards: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://owner:hunter2@127.0.0.1:{free_port()}/ledger"  # nothing listens there
    guard = guards(database_url=url, daily_budget_usd=Decimal("1"))
    with pytest.raises(LedgerUnavailable) as info:
        await paid_run(guard, "anon:a", seed=1)
    assert str(info.value) == (
        "This app cannot reach its spend ledger right now, so it cannot check its spend caps. "
        "Try again in a minute; if it keeps happening, tell the Space's owner."
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "ConnectionTimeout" in caplog.text or "OperationalError" in caplog.text
    assert "hunter2" not in caplog.text and "owner:" not in caplog.text

"""Two replicas of the app behind one proxy, on one PostgreSQL spend ledger (docs/deploying.md).

Two `python app.py` processes share FLUX_PLAYGROUND_DATABASE_URL; two people click Generate in a
burst that goes to both, together asking for three times what the caps allow. The caps hold exactly
(nothing over, nothing that fitted refused), and every run is either charged, generated and saved, or
refused before any provider was called: never half.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from ui.appclient import PageRun, event_data, page_fn_index, run_page_event, running_app

from flux_playground.emulator.server import EmulatorServer
from flux_playground.history import History
from flux_playground.limits import Guard
from flux_playground.providers import variables
from flux_playground.settings import Settings

pytestmark = pytest.mark.slow  # starts two apps

PEOPLE = {"alice": "203.0.113.1", "bob": "203.0.113.2"}  # as the proxy in front reports them
RUN_USD = Decimal("0.003")  # Atlas Cloud at 512×512, one image
DAILY, PER_PERSON = Decimal("0.024"), Decimal("0.015")  # 8 runs in all, 5 for any one person
RUNS = 24  # 12 each, alternating replicas


def replica_environment(emulator: EmulatorServer, database_url: str) -> dict[str, str]:
    atlas = variables()["atlascloud"]
    return {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_DAILY_BUDGET_USD": str(DAILY),
        "FLUX_PLAYGROUND_PER_USER_DAILY_BUDGET_USD": str(PER_PERSON),
        "FLUX_PLAYGROUND_TRUSTED_PROXIES": "127.0.0.1",  # the "proxy": X-Forwarded-For names the person
        "FLUX_PLAYGROUND_REQUEST_TIMEOUT": "30",
        "FLUX_PLAYGROUND_JOB_TIMEOUT": "30",
        atlas.key[0]: "test-key",
        atlas.base_url: emulator.base_urls["atlascloud"],
    }


def saved_items(data_dir: Path) -> int:
    if not (data_dir / "history.sqlite3").exists():
        return 0
    with sqlite3.connect(data_dir / "history.sqlite3") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM history_items").fetchone()[0])


def test_two_replicas_on_one_database_hold_the_caps_exactly(
    emulator: EmulatorServer, postgres_url: str, tmp_path: Path
) -> None:
    emulator.reset()
    environment = replica_environment(emulator, postgres_url)
    workdirs = [tmp_path / "replica-a", tmp_path / "replica-b"]
    for workdir in workdirs:
        workdir.mkdir()
    browsers = {name: secrets.token_urlsafe(24) for name in PEOPLE}
    with (
        running_app(workdirs[0], **environment) as (_, first),
        running_app(workdirs[1], **environment) as (_, second),
    ):
        generate = page_fn_index(first, "generate")  # one page, so one index on both
        assert page_fn_index(second, "generate") == generate

        def click(n: int) -> tuple[str, PageRun]:
            name, url = list(PEOPLE)[n % 2], (first, second)[(n // 2) % 2]
            values = {
                "prompt": f"fox number {n} [latency:0.5]",  # in flight together: reservations overlap
                "providers": ["atlascloud"],
                "width": 512,
                "height": 512,
                "browser_id": browsers[name],
            }
            data = event_data(url, generate, values)
            return name, run_page_event(url, generate, data, headers={"x-forwarded-for": PEOPLE[name]})

        with ThreadPoolExecutor(RUNS) as pool:
            outcomes = list(pool.map(click, range(RUNS)))

    accepted = [name for name, run in outcomes if run.success]
    refused = [run.error for _, run in outcomes if not run.success]
    # The caps hold exactly: 8 runs' worth in all (the global cap reached, not passed), at most 5 each.
    assert len(accepted) * RUN_USD == DAILY
    assert all(accepted.count(name) * RUN_USD <= PER_PERSON for name in PEOPLE)
    assert len(refused) == RUNS - len(accepted)
    assert all(
        error.startswith(
            ("This app's daily budget ($0.024) would be passed", "Your daily budget on this app")
        )
        for error in refused
    ), refused

    # Never half: each accepted run reached the provider once, was charged once and saved; no refused
    # run reached the provider or left a charge.
    assert emulator.stats()["requests"]["atlascloud"]["submit"] == len(accepted)
    with psycopg.connect(postgres_url) as conn:
        rows, settled = conn.execute("SELECT COUNT(*), SUM(settled) FROM spend").fetchone()
        claims = conn.execute("SELECT COUNT(*) FROM running").fetchone()[0]
    assert (rows, settled, claims) == (len(accepted), len(accepted), 0)
    guard = Guard(Settings(_env_file=None, database_url=postgres_url, data_dir=tmp_path))
    try:
        assert guard.spent_today() == DAILY
        for name, address in PEOPLE.items():
            assert guard.spent_today(f"ip:{address}") == accepted.count(name) * RUN_USD
    finally:
        guard.close()
    data_dirs = [workdir / "data" for workdir in workdirs]
    assert sum(saved_items(data_dir) for data_dir in data_dirs) == len(accepted)
    for name in PEOPLE:
        owner = f"anon:{browsers[name]}"
        listed = 0
        for data_dir in data_dirs:  # history is still per replica (docs/deploying.md)
            history = History(data_dir)
            try:
                listed += len(asyncio.run(history.list(owner)))
            finally:
                history.close()
        assert listed == accepted.count(name)

"""Two replicas of the app behind one proxy, on one PostgreSQL database and one shared data
directory (docs/deploying.md).

Two `python app.py` processes share FLUX_PLAYGROUND_DATABASE_URL and FLUX_PLAYGROUND_DATA_DIR; two
people click Generate in a burst that goes to both, together asking for three times what the caps
allow. The caps hold exactly (nothing over, nothing that fitted refused), every run is either charged,
generated and saved, or refused before any provider was called (never half), and each person sees
their whole history from either replica. Killing one replica mid-burst leaves no row without its
files, no provider call without its charge, and the caps held.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image
from ui.appclient import (
    REPO,
    PageRun,
    event_data,
    free_port,
    page_fn_index,
    run_page,
    run_page_event,
    running_app,
)

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


def replica_environment(emulator: EmulatorServer, database_url: str, data_dir: Path) -> dict[str, str]:
    atlas = variables()["atlascloud"]
    return {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_DATA_DIR": str(data_dir),  # the volume every replica mounts
        "FLUX_PLAYGROUND_DAILY_BUDGET_USD": str(DAILY),
        "FLUX_PLAYGROUND_PER_USER_DAILY_BUDGET_USD": str(PER_PERSON),
        "FLUX_PLAYGROUND_TRUSTED_PROXIES": "127.0.0.1",  # the "proxy": X-Forwarded-For names the person
        "FLUX_PLAYGROUND_REQUEST_TIMEOUT": "30",
        "FLUX_PLAYGROUND_JOB_TIMEOUT": "30",
        atlas.key[0]: "test-key",
        atlas.base_url: emulator.base_urls["atlascloud"],
    }


class Burst:
    """People clicking Generate on the replicas, each click a distinct prompt (in flight together)."""

    def __init__(self, urls: list[str], latency: float) -> None:
        self.urls, self.latency = urls, latency
        self.browsers = {name: secrets.token_urlsafe(24) for name in PEOPLE}
        self.generate = page_fn_index(urls[0], "generate")  # one page, so one index on every replica
        assert all(page_fn_index(url, "generate") == self.generate for url in urls)

    def click(self, n: int) -> tuple[str, PageRun | None]:
        """Person n % 2 on replica (n // 2) % 2; None when the replica died under the click."""
        name, url = list(PEOPLE)[n % 2], self.urls[(n // 2) % len(self.urls)]
        values = {
            "prompt": f"fox number {n} [latency:{self.latency}]",
            "providers": ["atlascloud"],
            "width": 512,
            "height": 512,
            "browser_id": self.browsers[name],
        }
        try:
            data = event_data(url, self.generate, values)
            return name, run_page_event(url, self.generate, data, headers={"x-forwarded-for": PEOPLE[name]})
        except (httpx.HTTPError, OSError):
            return name, None

    def seen_from(self, url: str, name: str) -> int:
        """How many images the person's history shows on this replica's page (its count line)."""
        values = {"search": "", "browser_id": self.browsers[name]}
        run = run_page(
            url, "history-search", values, event="change", headers={"x-forwarded-for": PEOPLE[name]}
        )
        assert run.success, run.error
        found = re.search(r"(\d+) images? · private", run.text)
        assert found or "No images yet" in run.text, run.text[:500]
        return int(found.group(1)) if found else 0


def ledger(database_url: str) -> tuple[int, int, int]:
    """Charges in the ledger, how many settled, and runs still marked in progress."""
    with psycopg.connect(database_url) as conn:
        rows, settled = conn.execute("SELECT COUNT(*), COALESCE(SUM(settled), 0) FROM spend").fetchone()
        claims = conn.execute("SELECT COUNT(*) FROM running").fetchone()[0]
    return int(rows), int(settled), int(claims)


def owned_items(database_url: str, data_dir: Path, browsers: dict[str, str]) -> dict[str, list[Any]]:
    store = History(data_dir, database_url=database_url)
    try:
        return {
            name: asyncio.run(store.list(f"anon:{browser}", limit=1000)) for name, browser in browsers.items()
        }
    finally:
        store.close()


def assert_whole(items: list[Any]) -> None:
    for item in items:
        for path in (item.image_path, item.thumb_path):
            with Image.open(path) as image:
                image.load()


def replicas(
    emulator: EmulatorServer, database_url: str, root: Path, *names: str
) -> tuple[Path, dict[str, str], list[Path]]:
    """The shared data directory, the environment every replica gets, a working directory each."""
    emulator.reset()
    shared = root / "shared-data"
    workdirs = [root / name for name in names]
    for workdir in workdirs:
        workdir.mkdir()
    return shared, replica_environment(emulator, database_url, shared), workdirs


def test_two_replicas_on_one_database_hold_the_caps_exactly(
    emulator: EmulatorServer, postgres_url: str, tmp_path: Path
) -> None:
    shared, environment, workdirs = replicas(emulator, postgres_url, tmp_path, "replica-a", "replica-b")
    with (
        running_app(workdirs[0], **environment) as (_, first),
        running_app(workdirs[1], **environment) as (_, second),
    ):
        burst = Burst([first, second], latency=0.5)  # in flight together: reservations overlap
        with ThreadPoolExecutor(RUNS) as pool:
            outcomes = list(pool.map(burst.click, range(RUNS)))
        assert all(run is not None for _, run in outcomes)
        accepted = [name for name, run in outcomes if run is not None and run.success]
        refused = [run.error for _, run in outcomes if run is not None and not run.success]
        # Each person sees their whole history, whichever replica serves the page.
        for name in PEOPLE:
            assert [burst.seen_from(url, name) for url in (first, second)] == [accepted.count(name)] * 2

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
    assert ledger(postgres_url) == (len(accepted), len(accepted), 0)
    guard = Guard(Settings(_env_file=None, database_url=postgres_url, data_dir=tmp_path))
    try:
        assert guard.spent_today() == DAILY
        for name, address in PEOPLE.items():
            assert guard.spent_today(f"ip:{address}") == accepted.count(name) * RUN_USD
    finally:
        guard.close()
    items = owned_items(postgres_url, shared, burst.browsers)
    for name in PEOPLE:
        assert len(items[name]) == accepted.count(name)
        assert_whole(items[name])
    assert not list(workdirs[0].glob("data")) and not list(workdirs[1].glob("data"))  # all on the volume


def test_a_replica_killed_mid_burst_leaves_nothing_half_written(
    emulator: EmulatorServer, postgres_url: str, tmp_path: Path
) -> None:
    names = ("replica-a", "replica-b", "replica-b-again")
    shared, environment, workdirs = replicas(emulator, postgres_url, tmp_path, *names)
    with (
        running_app(workdirs[0], **environment) as (_, first),
        running_app(workdirs[1], **environment) as (doomed, second),
    ):
        burst = Burst([first, second], latency=1.0)
        with ThreadPoolExecutor(RUNS) as pool:
            clicks = [pool.submit(burst.click, n) for n in range(RUNS)]
            time.sleep(0.8)  # runs admitted, provider calls in flight, some images being saved
            doomed.kill()
            outcomes = [click.result(timeout=120) for click in clicks]

    survived = [name for n, (name, run) in enumerate(outcomes) if run is not None and run.success]
    lost = [n for n, (_, run) in enumerate(outcomes) if run is None]
    assert lost and all((n // 2) % 2 == 1 for n in lost)  # only the killed replica's clicks
    rows, settled, _ = ledger(postgres_url)
    submits = emulator.stats()["requests"]["atlascloud"]["submit"]
    # Every provider call has its charge (a killed run's stays reserved: spent, as far as the caps
    # know), the caps held through the kill, and every finished run was settled.
    assert rows >= submits >= len(survived) and rows * RUN_USD <= DAILY and settled >= len(survived)

    # The replica comes back on the same volume and database; nobody's history lost an image, and
    # every image listed is whole, from either replica.
    with (
        running_app(workdirs[0], **environment) as (_, first),
        running_app(workdirs[2], **environment) as (_, second),
    ):
        items = owned_items(postgres_url, shared, burst.browsers)
        for name in PEOPLE:
            assert len(items[name]) >= survived.count(name)
            assert_whole(items[name])
            assert [burst.seen_from(url, name) for url in (first, second)] == [len(items[name])] * 2
    assert sum(len(listed) for listed in items.values()) <= submits


def start_refused(workdir: Path, environment: dict[str, str]) -> str:
    """`python app.py` that must not start: what it printed, once it exited with status 1."""
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_SERVER_PORT": str(free_port()), **environment}
    done = subprocess.run(
        [sys.executable, str(REPO / "app.py")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done.stderr


def test_a_replica_off_the_shared_volume_or_its_database_is_refused_at_start(
    emulator: EmulatorServer, postgres_url: str, tmp_path: Path
) -> None:
    shared, environment, (first,) = replicas(emulator, postgres_url, tmp_path, "replica-a")
    with running_app(first, **environment):  # the first replica makes the images folder on the volume
        pass
    own_disk = {**environment, "FLUX_PLAYGROUND_DATA_DIR": str(tmp_path / "not-the-volume")}
    said = start_refused(tmp_path / "replica-b", own_disk)
    assert "every replica must mount the same data directory" in said
    # Nothing was written where it would have been invisible to the other replicas.
    assert not list((tmp_path / "not-the-volume").rglob("*.png"))

    nowhere = f"postgresql://owner:hunter2@127.0.0.1:{free_port()}/flux"
    said = start_refused(tmp_path / "replica-c", {**environment, "FLUX_PLAYGROUND_DATABASE_URL": nowhere})
    assert "error: This app cannot reach its database right now" in said and "hunter2" not in said

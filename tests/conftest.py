"""Shared fixtures. No test reaches the internet: providers are the loopback emulator or MockTransport."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A developer's real keys, .env or settings must never leak into a test (or be billed by one):
    every variable any registered provider reads is cleared, and everything of ours."""
    from flux_playground.providers import all_variables

    cleared = {
        *all_variables(), "OAUTH_CLIENT_ID", "OAUTH_SCOPES", "SPACE_ID", "SYSTEM", "HF_TOKEN",
        "HF_TOKEN_PATH", "HF_HOME", "HF_ROUTER_BASE_URL",
    }  # fmt: skip
    for name in list(os.environ):
        if name in cleared or name.startswith("FLUX_PLAYGROUND_"):
            monkeypatch.delenv(name, raising=False)
    # pydantic-settings reads .env from the working directory: run from an empty one.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def emulator() -> Iterator[object]:
    """One loopback emulator for the session (fast: 50 ms provider latency). Reset per use if needed."""
    from flux_playground.emulator.server import EmulatorServer

    with EmulatorServer(latency=0.05) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A PostgreSQL server of our own for the session (tests/pgserver.py). Without PostgreSQL's
    binaries the tests that need it skip, except in CI (REQUIRE_POSTGRES=1), where they fail."""
    from pgserver import PostgresServer, find_binaries, postgres_required

    bin_dir = find_binaries()
    if bin_dir is None:
        reason = "PostgreSQL's initdb was not found (apt-get install -y postgresql)"
        if postgres_required():
            pytest.fail(f"REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    with PostgresServer.start(bin_dir) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A fresh, empty database on the session's server."""
    return str(postgres_server.new_database())


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for each spend ledger: the SQLite file in the data directory, or PostgreSQL."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests skip without Chromium on a laptop, but CI sets REQUIRE_BROWSER=1 so they must run."""
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if shutil.which(chromium) or os.path.exists(chromium):
        return
    if os.environ.get("REQUIRE_BROWSER"):
        raise pytest.UsageError(f"REQUIRE_BROWSER is set but Chromium was not found at {chromium}")
    skip = pytest.mark.skip(reason=f"Chromium not found at {chromium} (apt-get install -y chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)

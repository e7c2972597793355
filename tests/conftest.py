"""Shared fixtures. No test reaches the internet: providers are the loopback emulator or MockTransport."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="where the app keeps its state in every test that does not choose for itself: postgres "
        "sets FLUX_PLAYGROUND_DATABASE_URL to a fresh database of the suite's own server for each test "
        "and each module (docs/deploying.md, 'Testing with PostgreSQL locally')",
    )


@pytest.fixture(autouse=True, scope="module")
def _module_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """With --database=postgres, what a module sets up once (an app it serves to all its tests)
    keeps its state in a fresh PostgreSQL database of its own."""
    if request.config.getoption("--database") != "postgres":
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "FLUX_PLAYGROUND_DATABASE_URL", request.getfixturevalue("postgres_server").new_database()
        )
        yield


@pytest.fixture(autouse=True)
def _suite_database(request: pytest.FixtureRequest, _isolated_environment: None) -> Iterator[None]:
    """With --database=postgres, every Settings the test (or an app it starts) reads from the
    environment keeps history, statistics and the ledger in a fresh PostgreSQL database (a CREATE
    DATABASE, ~65 ms). Tests about SQLite itself are marked `sqlite_only` and skip in that pass."""
    if request.config.getoption("--database") != "postgres":
        yield
        return
    marker = request.node.get_closest_marker("sqlite_only")
    if marker is not None:
        pytest.skip(f"about SQLite: {marker.args[0]}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLUX_PLAYGROUND_DATABASE_URL", request.getfixturevalue("postgres_url"))
        yield


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


@pytest.fixture(params=["sqlite", "postgres"])
def database_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the requesting module's tests on each back end: for "postgres", the module's `History`,
    `Evidence` and `Settings` (those it imports by name) are bound to one fresh PostgreSQL database,
    so every store the test opens, and reopens, is that database. Use with
    `pytestmark = pytest.mark.usefixtures("database_backend")`. Its own MonkeyPatch, so a test's
    `monkeypatch.undo()` does not undo it."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "postgres":
            single = request.node.get_closest_marker("single_pass")
            if single is not None:
                pytest.skip(f"runs in the SQLite pass only: {single.args[0]}")
            _bind_to_postgres(request, patch, request.getfixturevalue("postgres_url"))
        else:  # SQLite, whatever --database says for the rest of the suite
            patch.delenv("FLUX_PLAYGROUND_DATABASE_URL", raising=False)
        yield str(request.param)


def _bind_to_postgres(request: pytest.FixtureRequest, patch: pytest.MonkeyPatch, url: str) -> None:
    from flux_playground.evidence import Evidence
    from flux_playground.history import History
    from flux_playground.settings import Settings

    class HistoryOnPostgres(History):
        def __init__(self, data_dir: Path, **options: Any) -> None:
            super().__init__(data_dir, database_url=url, **options)

    class EvidenceOnPostgres(Evidence):
        def __init__(self, data_dir: Path, **options: Any) -> None:
            super().__init__(data_dir, database_url=url, **options)

    bound: dict[str, tuple[object, object]] = {
        "History": (History, HistoryOnPostgres),
        "Evidence": (Evidence, EvidenceOnPostgres),
        "Settings": (Settings, functools.partial(Settings, database_url=url)),
    }
    patched = [
        name for name, (original, _) in bound.items() if getattr(request.module, name, None) is original
    ]
    assert set(patched) - {"Settings"}, "the module must import History or Evidence by name"
    for name in patched:
        patch.setattr(request.module, name, bound[name][1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _postgres_twins_are_slow(items)
    _browser_tests_need_chromium(items)


def _postgres_twins_are_slow(items: list[pytest.Item]) -> None:
    """A test that needs the suite's PostgreSQL server (directly, or as the "postgres" case of a test
    run on both back ends) is in the full suite, not the fast tier: starting the server and a
    database per test doubled the inner loop. Its SQLite twin stays fast."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        fixtures = getattr(item, "fixturenames", ())
        if "postgres_server" in fixtures or "postgres" in params.values():
            item.add_marker(pytest.mark.slow)


def _browser_tests_need_chromium(items: list[pytest.Item]) -> None:
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

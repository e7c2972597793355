"""The shared PostgreSQL database out of reach while the page runs: every page event that needs it
says so in a sentence (never a traceback, never the URL), and the page keeps working once it is back.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
from ui.appclient import run_page, serve

from flux_playground.database_pg import DatabaseUnavailable
from flux_playground.emulator.server import EmulatorServer
from flux_playground.ledger import LedgerUnavailable
from flux_playground.settings import Settings

pytestmark = pytest.mark.slow  # waits out the pool's 10 s for a connection, twice


def test_the_page_says_when_its_database_is_out_of_reach(
    postgres_server: Any, emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.new_database()
    name = url.rsplit("/", 1)[1]
    atlas = {"api_key": "test-key", "base_url": emulator.base_urls["atlascloud"]}
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=url, providers={"atlascloud": atlas})
    browser = secrets.token_urlsafe(24)
    values = {
        "prompt": "a red fox",
        "browser_id": browser,
        "providers": ["atlascloud"],
        "width": 512,
        "height": 512,
    }
    listing = {"search": "", "browser_id": browser}
    with caplog.at_level(logging.INFO), serve(settings) as served:
        assert run_page(served.url, "generate", values).success
        shown = run_page(served.url, "history-search", listing, event="change")
        assert shown.success and "1 image · private" in shown.text

        with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:  # the server goes away
            admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false".encode())
            admin.execute(
                b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
        searched = run_page(served.url, "history-search", listing, event="change")
        assert not searched.success and searched.error == DatabaseUnavailable().message
        refused = run_page(served.url, "generate", {**values, "prompt": "a blue fox"})
        assert not refused.success and refused.error == LedgerUnavailable().message

        with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:  # and comes back
            admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true".encode())
        assert run_page(served.url, "generate", {**values, "prompt": "a green fox"}).success
        again = run_page(served.url, "history-search", listing, event="change")
        assert again.success and "2 images · private" in again.text

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Traceback" not in logged and url not in logged and "127.0.0.1:" + url.split(":")[-1] not in logged
    # One line each, the kind of failure only (a driver's message may quote the connection string).
    assert "The history database failed: " in logged and "The spend ledger database failed: " in logged

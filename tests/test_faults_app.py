"""Every provider × every injected fault, through the launched app rather than the backend.

tests/test_e2e_emulator.py proves the backend maps each fault to the right exception. This proves what
a person sees: the page's own generate event (through the queue, saving to history) and the public
`/generate` API, while another person's request runs at the same time. For each case:

- the page run completes (no crash) and shows the provider's error text;
- the API's JSON summary carries the same error for that provider, and the other provider's image;
- the emulator received exactly one billable POST per run (never a retry of a POST);
- history has no row and no file for the failed run, and no temp file left behind;
- another person's concurrent page run succeeds and is saved completely (row, PNG, thumbnail), and
  the next run at the faulty provider works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from faultmatrix import TIMEOUTS, App, cases, check_app
from ui.appclient import serve
from ui.conftest import emulator_settings

from flux_playground.history import History

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    data_dir = tmp_path_factory.mktemp("faults-data")
    settings = emulator_settings(emulator, data_dir, **TIMEOUTS)
    history = History(data_dir)
    try:
        with serve(settings, history=history) as app:
            yield App(app.url, history, data_dir, emulator)
    finally:
        history.close()


@pytest.mark.parametrize(("provider", "fault"), cases())
def test_fault_through_the_app(app: App, provider: str, fault: str) -> None:
    check_app(app, provider, fault)

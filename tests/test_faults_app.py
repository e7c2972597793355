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

import asyncio
import hashlib
import io
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_e2e_emulator import ATLAS_ONLY, FAULTS
from ui.appclient import call_api, event_data, page_fn_index, run_page_event, serve
from ui.conftest import emulator_settings

from flux_playground.history import History
from flux_playground.providers import PROVIDERS

#: 404_fresh is tolerated: the poll retries until the job shows up, and the run succeeds.
SUCCEEDS = {"404_fresh"}
CASES = [(p, f) for p in PROVIDERS for f in FAULTS] + [("atlascloud", f) for f in [*ATLAS_ONLY, *SUCCEEDS]]
WORDS = {**{f: words for f, (_, words) in FAULTS.items()}, **{f: w for f, (_, w) in ATLAS_ONLY.items()}}
# Timeouts of the app below: long enough that the healthy calls running beside a fault finish on a
# busy 2-core machine (the emulator shares this process), short enough for the timeout faults.
TIMEOUTS = {"request_timeout": 2, "job_timeout": 2.5, "download_timeout": 2}
WORDS |= {
    "hang": "no answer within 2 s",
    "never_completes": "did not finish within 2.5 s",
    "slow_download": "download took longer than 2 s",
}


class App:
    def __init__(self, url: str, history: History, data_dir: Path, emulator: Any) -> None:
        self.url, self.history, self.data_dir, self.emulator = url, history, data_dir, emulator
        self.page_generate = page_fn_index(url, "generate")

    def submits(self, provider: str) -> int:
        return int(self.emulator.stats()["requests"].get(provider, {}).get("submit", 0))

    def page_run(self, browser_id: str, prompt: str, providers: list[str]) -> Any:
        values = {
            "prompt": prompt,
            "providers": providers,
            "width": 512,
            "height": 512,
            "browser_id": browser_id,
        }
        return run_page_event(self.url, self.page_generate, event_data(self.url, self.page_generate, values),
                              timeout=30)  # fmt: skip

    def api_run(self, prompt: str, providers: list[str]) -> Any:
        return call_api(self.url, "generate", [prompt, providers, 512, 512, 4, -1, 1, "", ""], timeout=30)

    def saved(self, browser_id: str) -> list[Any]:
        return asyncio.run(self.history.list(f"anon:{browser_id}"))

    def files(self, browser_id: str) -> list[Path]:
        folder = self.data_dir / "images" / hashlib.sha256(f"anon:{browser_id}".encode()).hexdigest()[:32]
        return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture(scope="module")
def app(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    data_dir = tmp_path_factory.mktemp("faults-data")
    settings = emulator_settings(
        emulator,
        data_dir,
        **TIMEOUTS,
        max_download_bytes=1_048_576,
    )
    history = History(data_dir)
    try:
        with serve(settings, history=history) as app:
            yield App(app.url, history, data_dir, emulator)
    finally:
        history.close()


def other(provider: str) -> str:
    return next(name for name in PROVIDERS if name != provider)


@pytest.mark.parametrize(("provider", "fault"), CASES)
def test_fault_through_the_app(app: App, provider: str, fault: str) -> None:
    emulator, label, healthy = app.emulator, PROVIDERS[provider].label, other(provider)
    emulator.clear_faults()  # in case an earlier test left one queued
    alice, bob = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tag = secrets.token_hex(3)

    # The page (saving to history) and the public API hit the fault at the same moment, while
    # another person generates on the page at another provider.
    emulator.inject(provider, fault, count=2)
    before = app.submits(provider)
    with ThreadPoolExecutor(3) as pool:
        page = pool.submit(app.page_run, alice, f"a red fox {tag}", [provider])
        api = pool.submit(app.api_run, f"a red fox again {tag}", [provider, healthy])
        bystander = pool.submit(app.page_run, bob, f"a calm lake {tag}", [healthy])
        page_run, answer, bystander_answer = page.result(), api.result(), bystander.result()
    # Both runs met the fault (so each POSTed at least once) and two POSTs arrived: never a retry.
    assert app.submits(provider) - before == 2, "a billable POST was sent twice"
    assert bystander_answer.success
    assert_saved_completely(app, bob, 1, bystander_answer.text[-600:])

    # The page: the run completes and shows the provider's own error; nothing was saved.
    assert page_run.success, page_run.text[-500:]
    assert "Traceback" not in page_run.text
    if fault in SUCCEEDS:
        assert_saved_completely(app, alice, 1)
    else:
        assert label in page_run.text and WORDS[fault] in page_run.text, page_run.text[-800:]
        assert app.saved(alice) == [] and app.files(alice) == [], "a failed run left history behind"

    # The API: the summary names the error per provider, the other provider still delivers.
    assert answer.event == "complete", answer.text[-500:]
    summary = answer.data[1]["providers"]
    assert summary[healthy]["ok"] is True
    if fault in SUCCEEDS:
        assert summary[provider]["ok"] is True
    else:
        error = summary[provider]["error"]
        assert summary[provider]["ok"] is False and error.startswith(f"{label}: ") and WORDS[fault] in error
        assert "Traceback" not in error and "test-key-" not in error

    # The provider works again at once.
    assert app.api_run(f"a quiet harbour {tag}", [provider]).event == "complete"


def assert_saved_completely(app: App, browser_id: str, count: int, shown: str = "") -> None:
    """`count` rows, each with a readable PNG and a thumbnail, and no other file (no temp leftovers)."""
    saved = app.saved(browser_id)
    assert len(saved) == count, shown
    for item in saved:
        assert Image.open(io.BytesIO(item.image_path.read_bytes())).format == "PNG"
        assert item.thumb_path.stat().st_size > 0
    names = {path.name for path in app.files(browser_id)}
    assert names == {f"{item.id}{ext}" for item in saved for ext in (".png", ".webp")}

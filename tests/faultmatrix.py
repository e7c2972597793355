"""The fault matrices, shared: every registered provider × every fault its emulator can inject.

Cases come from the registries (the product's and the emulator's), never from a list kept here, so a
new provider is covered the moment it is registered (tests/test_registry.py proves that with a
provider written inside a test). Two checks per case:

- `check_backend`: Playground.generate meets the fault: the right error type and the provider's own
  words, exactly one billable POST, and the provider answers again right after.
- `check_app`: through the launched app, the page's generate event (saving to history) and the
  public API meet the fault at the same moment while another person generates elsewhere: the page
  shows the error, the API summary names it, one POST per run, nothing half-saved, the bystander's
  image saved whole, and the provider works again right after.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from ui.appclient import call_api, event_data, page_fn_index, run_page_event

from flux_playground.emulator.faults import fault_stages
from flux_playground.emulator.registry import EMULATED
from flux_playground.errors import (
    AuthenticationFailed,
    InsufficientCredits,
    MalformedResponse,
    PlaygroundError,
    ProviderFailed,
    ProviderTimeout,
    RateLimited,
)
from flux_playground.history import History
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS
from flux_playground.service import Playground
from flux_playground.settings import Settings

#: Short enough for the timeout faults, long enough that healthy calls beside a fault finish on a
#: busy 2-core machine (the emulator shares the process).
TIMEOUTS: dict[str, Any] = {
    "request_timeout": 2,
    "job_timeout": 2.5,
    "download_timeout": 2,
    "max_download_bytes": 1_048_576,
}
#: What each fault must become: the error type and words of its message (None: the run succeeds).
EXPECTED: dict[str, tuple[type[PlaygroundError], str] | None] = {
    "401": (AuthenticationFailed, "API key was refused"),
    "credits": (InsufficientCredits, "out of credits"),
    "429": (RateLimited, "Try again in 1 s"),
    "429_no_retry_after": (RateLimited, "rate limited"),
    "500": (ProviderFailed, "HTTP 500"),
    "502": (ProviderFailed, "HTTP 502"),
    "reset": (ProviderFailed, "connection failed"),
    "hang": (ProviderTimeout, "no answer within 2 s"),
    "malformed": (MalformedResponse, "not valid JSON"),
    "missing_fields": (MalformedResponse, "unexpected answer"),
    "not_image": (MalformedResponse, "not an image"),
    "truncated": (MalformedResponse, "damaged or truncated"),
    "failed_job": (ProviderFailed, "failed"),
    "never_completes": (ProviderTimeout, "did not finish within 2.5 s"),
    "slow_download": (ProviderTimeout, "download took longer than 2 s"),
    "huge_download": (ProviderFailed, "larger than 1 MB"),
    "404_fresh": None,  # tolerated: polling waits until the job shows up
}


#: The fast tier's share of the matrix: one fault of each kind the clients must tell apart (a refused
#: key, no credit, a rate limit, a broken answer, a broken image). The rest, and the faults that
#: wait for a timeout, run in the slow tier (CI runs both).
FAST = frozenset({"401", "credits", "429", "malformed", "not_image"})


def cases(names: list[str] | None = None) -> list[tuple[str, str]]:
    """(provider, fault) for every registered provider the emulator serves, every fault it applies."""
    chosen = names if names is not None else [name for name in PROVIDERS if name in EMULATED]
    return [(name, fault) for name in chosen for fault in EXPECTED if fault_stages(EMULATED[name], fault)]


def tiered_cases() -> list[Any]:
    """`cases()` as pytest parameters, all but the FAST ones marked `slow`."""
    return [
        (name, fault) if fault in FAST else pytest.param(name, fault, marks=pytest.mark.slow)
        for name, fault in cases()
    ]


def submits(emulator: Any, provider: str) -> int:
    return int(emulator.stats()["requests"].get(provider, {}).get("submit", 0))


async def check_backend(emulator: Any, settings: Settings, provider: str, fault: str, data_dir: Path) -> None:
    label, expected = PROVIDERS[provider].label, EXPECTED[fault]
    request = GenerationRequest(prompt="a red fox", width=512, height=512, seed=42)
    history = History(data_dir)
    emulator.clear_faults()
    emulator.inject(provider, fault)
    before = submits(emulator, provider)
    try:
        async with Playground(settings) as playground:
            if expected is None:
                assert (await playground.generate(request, provider)).images
            else:
                kind, words = expected
                try:
                    await playground.generate(request, provider)
                except kind as error:
                    message = str(error)
                else:
                    raise AssertionError(f"{provider} {fault}: no {kind.__name__}")
                assert message.startswith(label + ": ") and words in message, message
                assert "Traceback" not in message and "test-key" not in message
            assert submits(emulator, provider) - before == 1, "a billable POST was sent twice"
            assert await history.list("anon:someone") == []
            calm = GenerationRequest(prompt="a calm lake", width=512, height=512)
            assert len((await playground.generate(calm, provider)).images) == 1
    finally:
        history.close()


class App:
    """A launched app (tests/ui/appclient.serve) seen from outside, with its history and emulator."""

    def __init__(self, url: str, history: History, data_dir: Path, emulator: Any) -> None:
        self.url, self.history, self.data_dir, self.emulator = url, history, data_dir, emulator
        self.page_generate = page_fn_index(url, "generate")

    def page_run(self, browser_id: str, prompt: str, providers: list[str]) -> Any:
        values = {
            "prompt": prompt,
            "providers": providers,
            "width": 512,
            "height": 512,
            "browser_id": browser_id,
        }
        data = event_data(self.url, self.page_generate, values)
        return run_page_event(self.url, self.page_generate, data, timeout=30)

    def api_run(self, prompt: str, providers: list[str]) -> Any:
        return call_api(self.url, "generate", [prompt, providers, 512, 512, 4, -1, 1, "", ""], timeout=30)

    def saved(self, browser_id: str) -> list[Any]:
        return asyncio.run(self.history.list(f"anon:{browser_id}"))

    def files(self, browser_id: str) -> list[Path]:
        folder = self.data_dir / "images" / hashlib.sha256(f"anon:{browser_id}".encode()).hexdigest()[:32]
        return sorted(folder.iterdir()) if folder.is_dir() else []


def check_app(app: App, provider: str, fault: str) -> None:
    emulator, label, expected = app.emulator, PROVIDERS[provider].label, EXPECTED[fault]
    healthy = next(name for name in PROVIDERS if name != provider and name in EMULATED)
    emulator.clear_faults()  # in case an earlier test left one queued
    alice, bob, tag = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_hex(3)
    emulator.inject(provider, fault, count=2)
    before = submits(emulator, provider)
    with ThreadPoolExecutor(3) as pool:
        page = pool.submit(app.page_run, alice, f"a red fox {tag}", [provider])
        api = pool.submit(app.api_run, f"a red fox again {tag}", [provider, healthy])
        bystander = pool.submit(app.page_run, bob, f"a calm lake {tag}", [healthy])
        page_run, answer, bystander_run = page.result(), api.result(), bystander.result()
    # Both runs met the fault (so each POSTed at least once) and two POSTs arrived: never a retry.
    assert submits(emulator, provider) - before == 2, "a billable POST was sent twice"
    assert bystander_run.success
    _saved_whole(app, bob, 1, bystander_run.text[-600:])

    # The page: the run completes and shows the provider's own error; nothing was saved.
    assert page_run.success and "Traceback" not in page_run.text, page_run.text[-500:]
    summary = answer.data[1]["providers"] if answer.event == "complete" else {}
    assert answer.event == "complete" and summary[healthy]["ok"] is True, answer.text[-500:]
    if expected is None:
        _saved_whole(app, alice, 1)
        assert summary[provider]["ok"] is True
    else:
        words = expected[1]
        assert label in page_run.text and words in page_run.text, page_run.text[-800:]
        assert app.saved(alice) == [] and app.files(alice) == [], "a failed run left history behind"
        error = summary[provider]["error"]
        assert summary[provider]["ok"] is False and error.startswith(f"{label}: ") and words in error
        assert "Traceback" not in error and "test-key" not in error
    # The provider works again at once.
    assert app.api_run(f"a quiet harbour {tag}", [provider]).event == "complete"


def _saved_whole(app: App, browser_id: str, count: int, shown: str = "") -> None:
    """`count` rows, each with a readable PNG and a thumbnail, and no other file (no temp leftovers)."""
    saved = app.saved(browser_id)
    assert len(saved) == count, shown
    for item in saved:
        assert Image.open(io.BytesIO(item.image_path.read_bytes())).format == "PNG"
        assert item.thumb_path.stat().st_size > 0
    names = {path.name for path in app.files(browser_id)}
    assert names == {f"{item.id}{ext}" for item in saved for ext in (".png", ".webp")}

"""The one run path (runs.py): fan-out, ticks, isolation of failures; the same for every caller."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ui.conftest import emulator_settings, make_result

from flux_playground.emulator.server import EmulatorServer
from flux_playground.errors import InsufficientCredits, PlaygroundError
from flux_playground.limits import Guard
from flux_playground.models import GenerationRequest
from flux_playground.runs import GENERIC_ERROR, ProgressEvent, run
from flux_playground.settings import Settings


class FakePlayground:
    """A Playground whose providers fail in the ways a run must survive."""

    def __init__(self, settings: Settings, behaviour: dict[str, Any]) -> None:
        self.settings = settings
        self.guard = Guard(settings)
        self.behaviour = behaviour

    async def call(self, request: GenerationRequest, provider: str, **kw: Any) -> Any:
        what = self.behaviour[provider]
        kw["on_progress"](ProgressEvent(provider, "generating"))
        if isinstance(what, float):
            await asyncio.sleep(what)
            return make_result(provider, seed=request.seed)
        raise what


@pytest.fixture
def settings(emulator: EmulatorServer, tmp_path: Path) -> Settings:
    return emulator_settings(emulator, tmp_path / "data")


async def test_unexpected_errors_are_generic_and_isolated(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakePlayground(
        settings,
        {
            "atlascloud": RuntimeError("bug with secret body"),
            "deepinfra": InsufficientCredits("DeepInfra", "top up"),
            "segmind": 0.01,
        },
    )
    snaps = [s async for s in run(fake, GenerationRequest(prompt="x"), list(fake.behaviour), person="p")]  # type: ignore[arg-type]
    slots = snaps[-1].slots
    assert slots["atlascloud"].error == GENERIC_ERROR
    assert slots["deepinfra"].error == "DeepInfra: top up" and isinstance(
        slots["deepinfra"].failure, PlaygroundError
    )
    assert slots["segmind"].result is not None
    assert "Unexpected failure while generating with atlascloud" in caplog.text
    assert "secret body" not in slots["atlascloud"].error


@pytest.mark.slow  # a process of its own, or real seconds of waiting
async def test_progress_ticks_while_waiting(settings: Settings) -> None:
    fake = FakePlayground(settings, {"segmind": 1.3})
    request = GenerationRequest(prompt="x")
    snaps = [s async for s in run(fake, request, ["segmind"], person="p", tick=0.25)]  # type: ignore[arg-type]
    waiting = [s for s in snaps if not s.finished]
    assert len(waiting) >= 4  # at least every 0.25 s for 1.3 s
    assert snaps[1].slots["segmind"].stage == "generating"
    assert snaps[-1].request.seed is not None  # resolved once, before any provider is called


async def test_without_ticks_a_snapshot_comes_only_when_something_happens(settings: Settings) -> None:
    fake = FakePlayground(settings, {"segmind": 0.6})
    request = GenerationRequest(prompt="x")
    snaps = [s async for s in run(fake, request, ["segmind"], person="p", tick=None)]  # type: ignore[arg-type]
    assert len(snaps) <= 3 and snaps[-1].finished

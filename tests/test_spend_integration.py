"""The owner's wallet, through the app: spend caps, rates, sizes and duplicate clicks, as wired into the
one generation path (ui/runner.py run_generation) behind the page and the public API.

limits.py's own rules are unit-tested in tests/test_limits.py; this proves the app calls them before
any provider is called, charges the right people the right amounts, and says why it refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from ui.appclient import call_api, serve
from ui.conftest import emulator_settings

from flux_playground.emulator.server import EmulatorServer
from flux_playground.history import History
from flux_playground.limits import Guard
from flux_playground.service import Playground
from flux_playground.ui.form import Form
from flux_playground.ui.handlers import Handlers
from flux_playground.ui.scratch import Scratch

#: Every test here runs on SQLite and on PostgreSQL (conftest.database_backend).
pytestmark = pytest.mark.usefixtures("database_backend")

ALICE_BROWSER = "A" * 32


def visitor(host: str) -> gr.Request:
    return gr.Request(session_hash="s", headers={}, client={"host": host})


def signed_in(username: str) -> gr.OAuthProfile:
    return gr.OAuthProfile({"name": username, "preferred_username": username, "profile": "", "picture": ""})


class Rig:
    """One app's handlers over a data directory; `restart()` builds fresh ones on the same files."""

    def __init__(self, emulator: EmulatorServer, data_dir: Path, **overrides: Any) -> None:
        self.emulator, self.data_dir, self.overrides = emulator, data_dir, overrides
        self.settings = emulator_settings(emulator, data_dir, **overrides)
        self._open()

    def _open(self) -> None:
        self.history = History(self.data_dir)
        self.guard = Guard(self.settings)
        playground = Playground(self.settings, guard=self.guard)
        self.handlers = Handlers.create(playground, self.history, Scratch(self.data_dir / "scratch"))

    def restart(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        self.history.close()
        self.guard.close()

    def submits(self, provider: str) -> int:
        return int(self.emulator.stats()["requests"].get(provider, {}).get("submit", 0))

    async def api(
        self,
        provider: str,
        *,
        host: str = "10.0.0.1",
        profile: gr.OAuthProfile | None = None,
        prompt: str = "a red fox",
        **fields: Any,
    ) -> dict[str, Any]:
        values = {"width": 512, "height": 512, "steps": 4, "seed": -1, "num_images": 1, **fields}
        _, summary = await self.handlers.api.generate(
            prompt, [provider], values["width"], values["height"], values["steps"], values["seed"],
            values["num_images"], "", "", profile, visitor(host),
        )  # fmt: skip
        return summary

    async def page(
        self,
        provider: str,
        *,
        host: str = "10.0.0.1",
        prompt: str = "a red fox",
        keys: dict[str, str] | None = None,
        **fields: Any,
    ) -> list[tuple[Any, ...]]:
        values = {"width": 512, "height": 512, "steps": 4, "num_images": 1, **fields}
        form = Form(prompt=prompt, providers=[provider], browser_id=ALICE_BROWSER, keys=keys or {}, **values)
        return [update async for update in self.handlers.generation.generate(form, None, visitor(host))]


@pytest.fixture
def rig_factory(emulator: EmulatorServer, tmp_path: Path, ledger_backend: dict[str, Any]) -> Iterator[Any]:
    """Apps on each spend ledger (SQLite, PostgreSQL): every test here runs on both."""
    emulator.reset()
    rigs: list[Rig] = []

    def make(**overrides: Any) -> Rig:
        rig = Rig(emulator, tmp_path / f"data{len(rigs)}", **ledger_backend, **overrides)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()
    emulator.reset()


# --- spend caps ------------------------------------------------------------------------------------


async def test_the_daily_cap_refuses_before_any_call_says_why_and_survives_a_restart(
    rig_factory: Any,
) -> None:
    rig = rig_factory(daily_budget_usd=Decimal("0.005"))  # Atlas costs $0.003 a run
    await rig.api("atlascloud", host="10.0.0.1")
    assert rig.guard.spent_today() == Decimal("0.003")

    with pytest.raises(gr.Error) as refused:
        await rig.api("atlascloud", host="10.0.0.2")  # someone else: the cap is global
    message = refused.value.message
    assert message.startswith("This app's daily budget ($0.005) would be passed")
    assert "resets at 00:00 UTC (in " in message and "own API key" in message
    assert rig.submits("atlascloud") == 1, "the refused run reached the provider"

    rig.restart()  # a new process: the ledger is in the database, not in memory
    with pytest.raises(gr.Error, match="This app's daily budget"):
        await rig.page("atlascloud", host="10.0.0.3")
    assert rig.submits("atlascloud") == 1
    # What still fits is let through: DeepInfra at 512², 4 steps is $0.0005.
    summary = await rig.api("deepinfra", host="10.0.0.3")
    assert summary["providers"]["deepinfra"]["ok"] is True


async def test_the_per_person_cap_counts_each_person_and_not_their_own_keys(rig_factory: Any) -> None:
    rig = rig_factory(per_user_daily_budget_usd=Decimal("0.003"))
    await rig.api("atlascloud", host="10.0.0.1")
    with pytest.raises(gr.Error, match=r"Your daily budget on this app \(\$0.003\) would be passed"):
        await rig.api("atlascloud", host="10.0.0.1", prompt="another fox")
    with pytest.raises(gr.Error, match="Your daily budget"):  # the page counts the same person
        await rig.page("atlascloud", host="10.0.0.1", prompt="a third fox")
    await rig.api("atlascloud", host="10.0.0.2")  # another person has their own budget
    # A signed-in person is counted by account, wherever they connect from.
    await rig.api("atlascloud", host="10.0.0.1", profile=signed_in("ada"), prompt="ada's fox")
    with pytest.raises(gr.Error, match="Your daily budget"):
        await rig.api("atlascloud", host="10.0.0.9", profile=signed_in("ada"), prompt="ada again")
    assert rig.submits("atlascloud") == 3
    assert rig.guard.spent_today() == Decimal("0.009")

    # With their own key pasted, a person over their cap still runs, and the owner is not charged.
    await rig.page(
        "atlascloud", host="10.0.0.1", prompt="my own key", keys={"atlascloud": "my-own-atlas-key"}
    )
    assert rig.submits("atlascloud") == 4
    assert rig.guard.spent_today() == Decimal("0.009")


async def test_reported_costs_correct_estimates_and_unbilled_failures_are_free(rig_factory: Any) -> None:
    # The owner's price for DeepInfra is far above what DeepInfra reports it charged.
    rig = rig_factory(
        daily_budget_usd=Decimal("1"), prices={"deepinfra": {"basis": "per_image", "usd": "0.05"}}
    )
    summary = await rig.api("deepinfra")
    entry = summary["providers"]["deepinfra"]
    assert (entry["estimated_cost_usd"], entry["reported_cost_usd"]) == ("0.05", "0.0005")
    assert rig.guard.spent_today() == Decimal("0.0005")

    # Refused before the provider accepted the job: not billed, not counted.
    for fault in ("401", "credits", "429", "500", "502"):
        rig.emulator.inject("segmind", fault)
        with pytest.raises(gr.Error, match="No provider produced an image"):
            await rig.api("segmind", prompt=f"fox {fault}")
    assert rig.guard.spent_today() == Decimal("0.0005")

    # Accepted, then failed (a failed job, an unreadable image): may be billed, so the estimate counts.
    for fault in ("failed_job", "not_image"):
        rig.emulator.inject("atlascloud", fault)
        with pytest.raises(gr.Error, match="No provider produced an image"):
            await rig.api("atlascloud", prompt=f"fox {fault}")
    assert rig.guard.spent_today() == Decimal("0.0065")


async def test_a_cancelled_run_keeps_its_estimate(rig_factory: Any) -> None:
    """A Stop or a closed tab may come after the provider started: the estimate stays counted."""
    rig = rig_factory(daily_budget_usd=Decimal("1"))
    fields = {"providers": ["atlascloud"], "width": 512, "height": 512, "browser_id": ALICE_BROWSER}
    form = Form(prompt="a slow fox [latency:2]", **fields)
    updates = rig.handlers.generation.generate(form, None, visitor("10.0.0.1"))
    await anext(updates)
    await asyncio.sleep(0.3)
    await updates.aclose()
    assert rig.guard.spent_today() == Decimal("0.003")
    # Stop: the run ends itself (ui/stops.py), its estimate counted all the same.
    again = dataclasses.replace(form, prompt="a slow fox, stopped [latency:2]")
    updates = rig.handlers.generation.generate(again, None, visitor("10.0.0.1"))
    await anext(updates)
    await asyncio.sleep(0.3)
    assert rig.handlers.generation.stop(visitor("10.0.0.1")) is None
    rest = [chunk async for chunk in updates]
    assert len(rest) == 1 and rig.guard.spent_today() == Decimal("0.006")


# --- rate, size, duplicates ------------------------------------------------------------------------


async def test_rate_limit_per_person(rig_factory: Any) -> None:
    rig = rig_factory(per_user_requests_per_minute=2)
    await rig.api("deepinfra", host="10.0.0.1", prompt="one")
    await rig.page("deepinfra", host="10.0.0.1", prompt="two")
    with pytest.raises(
        gr.Error, match=r"Too many requests: at most 2 per minute per person. Try again in \d+ s"
    ):
        await rig.api("deepinfra", host="10.0.0.1", prompt="three")
    await rig.api("deepinfra", host="10.0.0.2", prompt="three")  # someone else is not slowed down
    assert rig.submits("deepinfra") == 3


async def test_size_limits(rig_factory: Any) -> None:
    rig = rig_factory(max_images_per_request=2, max_pixels=512 * 512)
    with pytest.raises(gr.Error, match=r"at most 2 image\(s\) per run"):
        await rig.api("deepinfra", num_images=3)
    with pytest.raises(gr.Error, match="at most 262,144 pixels per image"):
        await rig.page("deepinfra", width=1024, height=512)
    assert rig.submits("deepinfra") == 0
    summary = await rig.api("deepinfra", num_images=2)
    assert summary["providers"]["deepinfra"]["images"] == 2


async def test_a_double_click_starts_one_paid_run(rig_factory: Any) -> None:
    rig = rig_factory(daily_budget_usd=Decimal("1"))
    prompt = "a fox [latency:0.5]"  # random seed both times: still the same request
    first, second = await asyncio.gather(
        rig.page("atlascloud", prompt=prompt), rig.page("atlascloud", prompt=prompt), return_exceptions=True
    )
    outcomes = sorted([first, second], key=lambda o: isinstance(o, BaseException))
    assert isinstance(outcomes[0], list) and isinstance(outcomes[1], gr.Error)
    assert "already running" in outcomes[1].message
    assert rig.submits("atlascloud") == 1 and rig.guard.spent_today() == Decimal("0.003")
    # Once it finished, the same request may run again (the lock is released).
    await rig.page("atlascloud", prompt=prompt)
    assert rig.submits("atlascloud") == 2
    # Two different people clicking the same thing at once are two runs.
    await asyncio.gather(rig.page("deepinfra", host="10.0.0.1"), rig.page("deepinfra", host="10.0.0.2"))
    assert rig.submits("deepinfra") == 2


async def test_demo_mode_charges_nothing_but_still_limits(rig_factory: Any) -> None:
    rig = rig_factory(demo=True, daily_budget_usd=Decimal("0"), per_user_requests_per_minute=1)
    summary = await rig.api("segmind", host="10.0.0.1")
    assert summary["providers"]["segmind"]["ok"] is True  # a $0 cap does not stop the emulator
    assert rig.guard.spent_today() == 0
    with pytest.raises(gr.Error, match="Too many requests"):
        await rig.api("segmind", host="10.0.0.1", prompt="again")


def test_refusals_reach_api_callers_as_readable_errors(
    emulator: EmulatorServer, tmp_path: Path, ledger_backend: dict[str, Any]
) -> None:
    """Over HTTP: the person is the client address, and the refusal is an error event with words."""
    emulator.reset()
    settings = emulator_settings(emulator, tmp_path, daily_budget_usd=Decimal("0.004"), **ledger_backend)
    guard = Guard(settings)
    with serve(settings, guard=guard) as app:
        url = app.url
        data = ["a red fox", ["atlascloud"], 512, 512, 4, -1, 1, "", ""]
        assert call_api(url, "generate", data).event == "complete"
        assert guard.spent_today("ip:127.0.0.1") == Decimal("0.003")
        refused = call_api(url, "generate", ["a blue fox", *data[1:]])
        assert refused.event == "error"
        assert refused.data["error"].startswith("This app's daily budget ($0.004) would be passed")
        assert "Traceback" not in refused.text
        assert emulator.stats()["requests"]["atlascloud"]["submit"] == 1
        guard.close()
        emulator.reset()

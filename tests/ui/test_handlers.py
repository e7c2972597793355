"""The page's handlers called directly: no server, no browser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from flux_playground.emulator.server import EmulatorServer
from flux_playground.errors import InsufficientCredits, PlaygroundError
from flux_playground.history import History
from flux_playground.models import GenerationRequest
from flux_playground.service import Outcome, Playground, ProgressEvent
from flux_playground.ui.handlers import (
    DETAIL_OUTPUTS,
    GENERATE_OUTPUTS,
    HISTORY_OUTPUTS,
    REUSE_OUTPUTS,
    Handlers,
)
from flux_playground.ui.identity import ANON_ID, resolve_identity
from flux_playground.ui.prices import PriceRow, generate_label, price_rows, pricing_request
from flux_playground.ui.render import prices_html
from flux_playground.ui.runner import GENERIC_ERROR, request_for, run_generation

from .conftest import emulator_settings, make_result

ALICE = "A" * 32
BOB = "B" * 32


def as_dict(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    """Handler output by name, without the outputs it left unchanged."""
    skip = gr.skip()
    return {name: value for name, value in zip(names, values, strict=True) if value != skip}


@pytest.fixture
def settings(emulator: EmulatorServer, tmp_path: Path) -> Any:
    return emulator_settings(emulator, tmp_path / "data")


@pytest.fixture
def handlers(settings: Any, tmp_path: Path) -> Iterator[Handlers]:
    history = History(settings.data_dir)
    yield Handlers(settings, Playground(settings), history, tmp_path / "scratch")
    history.close()


# --- prices ------------------------------------------------------------------------------------


def row(rows: list[PriceRow], name: str) -> PriceRow:
    return next(r for r in rows if r.name == name)


def test_prices_highlight_the_cheapest_ready_provider(settings: Any) -> None:
    rows = price_rows(settings, pricing_request(1024, 1024, 4, 1), ["deepinfra", "segmind"], {})
    assert [r.name for r in rows if r.cheapest] == ["deepinfra"]  # $0.002 < Atlas $0.003 < Segmind
    assert row(rows, "deepinfra").cost_text == "$0.002"
    assert row(rows, "segmind").cost_text == "≈ $0.008"  # approximate: converted from GPU time
    assert {r.readiness for r in rows} == {"server key"}
    html = prices_html(rows)
    assert 'class="chosen cheapest" data-provider="deepinfra"' in html
    assert "cheapest</span>" in html and "per megapixel-step" in html
    assert generate_label(rows) == "Generate · ≈ $0.01"


def test_prices_say_why_a_provider_cannot_take_the_size(settings: Any) -> None:
    rows = price_rows(settings, pricing_request(2048, 1024, 4, 1), [], {})
    atlas = row(rows, "atlascloud")
    assert atlas.nearest_size == (1536, 1024)
    assert atlas.problems[0] == "size must be 256–1536 in multiples of 16; nearest: 1536 × 1024"
    assert not atlas.cheapest  # cheaper than Segmind, but it cannot take these settings
    assert "Cannot take these settings: size must be 256–1536" in prices_html(rows)
    assert "does not take steps" in atlas.notes
    # Segmind starts at 512 and takes at most 8 steps.
    segmind = row(price_rows(settings, pricing_request(256, 256, 12, 1), [], {}), "segmind")
    assert segmind.problems == (
        "size must be 512–2048 in multiples of 8; nearest: 512 × 512",
        "steps must be 1–8",
    )


def test_prices_readiness_and_unknown_prices(emulator: EmulatorServer, tmp_path: Path) -> None:
    settings = emulator_settings(emulator, tmp_path, deepinfra_api_key=None)
    rows = price_rows(settings, pricing_request(1024, 1024, 4, 1), [], {"segmind": " my-key "})
    assert row(rows, "deepinfra").readiness == "no key"
    assert row(rows, "segmind").readiness == "your key"
    assert [r.name for r in rows if r.cheapest] == ["atlascloud"]  # DeepInfra is cheaper but has no key
    demo_rows = price_rows(settings.model_copy(update={"demo": True}), None, [], {})
    assert {r.readiness for r in demo_rows} == {"demo"}
    unknown = PriceRow("x", "X", None, "no price known", False, "server key", chosen=True)
    assert unknown.cost_text == "unknown" and generate_label([unknown]) == "Generate · price unknown"
    assert "$0" not in prices_html([unknown])
    priced = PriceRow("y", "Y", row(rows, "atlascloud").cost, "", False, "server key", chosen=True)
    assert generate_label([unknown, priced]) == "Generate · ≈ $0.003 + unknown"


def test_controls_name_the_providers_that_honour_them(handlers: Handlers) -> None:
    from flux_playground.ui.handlers import CONTROL_OUTPUTS

    out = as_dict(CONTROL_OUTPUTS, handlers.update_controls(["atlascloud", "deepinfra"], 1024, 1024, 4, 1))
    assert out["steps"]["label"] == "Steps — Atlas Cloud does not take steps"
    assert out["sampler"]["label"] == "Sampler — Segmind only"
    assert out["sampler"]["interactive"] is False
    assert out["generate"]["value"] == "Generate · ≈ $0.005"
    both = as_dict(CONTROL_OUTPUTS, handlers.update_controls(["deepinfra", "segmind"], 1024, 1024, 4, 1))
    assert both["sampler"]["interactive"] is True
    assert both["sampler"]["info"] == "Sent to Segmind only; not to DeepInfra."
    assert both["steps"]["label"] == "Steps"


def test_sampler_is_only_sent_to_providers_that_have_one(settings: Any) -> None:
    request = GenerationRequest(prompt="x", sampler="euler", scheduler="karras")
    assert request_for("segmind", request, settings) == request
    stripped = request_for("deepinfra", request, settings)
    assert (stripped.sampler, stripped.scheduler) == (None, None)


# --- identity ----------------------------------------------------------------------------------


def test_owner_comes_from_the_profile_then_the_browser() -> None:
    profile = gr.OAuthProfile(
        {"name": "Ada", "preferred_username": "ada", "profile": "https://hf.co/ada", "picture": ""}
    )
    signed_in = resolve_identity(profile, ALICE)
    assert (signed_in.owner, signed_in.browser_id, signed_in.display) == ("hf:ada", ALICE, "@ada")
    anonymous = resolve_identity(None, ALICE)
    assert (anonymous.owner, anonymous.browser_id) == (f"anon:{ALICE}", ALICE)


@pytest.mark.parametrize("stored", [None, "", "short", "../../etc/passwd" + "x" * 20, "A" * 33, 42, ["x"]])
def test_an_invalid_browser_id_is_replaced(stored: object) -> None:
    identity = resolve_identity(None, stored)
    assert ANON_ID.fullmatch(identity.browser_id)
    assert identity.owner == f"anon:{identity.browser_id}" and identity.browser_id != stored


# --- history: isolation, reuse, delete -----------------------------------------------------------


async def test_history_handlers_refuse_another_owners_item(handlers: Handlers) -> None:
    (item,) = await handlers.history.add(f"anon:{ALICE}", make_result())
    select = gr.SelectData(None, {"index": 0, "value": None, "selected": True})
    mine = as_dict(DETAIL_OUTPUTS, await handlers.select_item(None, ALICE, [item.id], select))
    assert mine["selected"] == item.id and mine["details"]["visible"] is True
    assert "a lighthouse at dusk" in mine["details_html"]

    # Bob's page state naming Alice's id is only a hint: every handler checks the owner.
    theirs = as_dict(DETAIL_OUTPUTS, await handlers.select_item(None, BOB, [item.id], select))
    assert theirs == {"details": theirs["details"], "selected": None}
    assert theirs["details"]["visible"] is False
    with pytest.raises(gr.Error, match="no longer in your history"):
        await handlers.reuse(None, BOB, item.id)
    with pytest.raises(gr.Error, match="no longer in your history"):
        await handlers.delete(None, BOB, item.id, "", "")
    bob_page = as_dict(["browser_id", *HISTORY_OUTPUTS], await handlers.load_history(None, BOB, "", ""))
    assert bob_page["history_ids"] == [] and "No images yet" in bob_page["history_count"]
    assert await handlers.history.get(f"anon:{ALICE}", item.id) is not None

    # A signed-in person is someone else again, even in the same browser.
    ada = gr.OAuthProfile({"name": "Ada", "preferred_username": "ada", "profile": "", "picture": ""})
    with pytest.raises(gr.Error):
        await handlers.reuse(ada, ALICE, item.id)


async def test_reuse_fills_every_control(handlers: Handlers) -> None:
    (item,) = await handlers.history.add(f"anon:{ALICE}", make_result())
    out = as_dict(REUSE_OUTPUTS, await handlers.reuse(None, ALICE, item.id))
    assert out == {
        "prompt": "a lighthouse at dusk",
        "providers": ["segmind"],
        "preset": "2:3",
        "width": 832,
        "height": 1216,
        "steps": 3,
        "seed": 1234,
        "random_seed": False,
        "num_images": 1,
        "sampler": "euler",
        "scheduler": "karras",
    }


async def test_delete_and_paging(handlers: Handlers) -> None:
    owner = f"anon:{ALICE}"
    items = [(await handlers.history.add(owner, make_result(prompt=f"cat {i}")))[0] for i in range(50)]
    page = as_dict(["browser_id", *HISTORY_OUTPUTS], await handlers.load_history(None, ALICE, "", ""))
    assert len(page["history_ids"]) == 48 and page["more"]["visible"] is True
    assert page["history_ids"][0] == items[-1].id  # newest first
    more = as_dict(HISTORY_OUTPUTS, await handlers.load_more(None, ALICE, "", "", page["history_ids"]))
    assert len(more["history_ids"]) == 50 and more["more"]["visible"] is False
    found = as_dict(["browser_id", *HISTORY_OUTPUTS], await handlers.load_history(None, ALICE, "CAT 7", ""))
    assert len(found["history_ids"]) == 1
    none = as_dict(
        ["browser_id", *HISTORY_OUTPUTS], await handlers.load_history(None, ALICE, "", "deepinfra")
    )
    assert none["history_ids"] == [] and none["history_empty"]["visible"] is True

    out = await handlers.delete(None, ALICE, items[0].id, "", "")
    values = as_dict([*HISTORY_OUTPUTS, *DETAIL_OUTPUTS], out)
    assert len(values["history_ids"]) == 48 and items[0].id not in values["history_ids"]
    assert values["details"]["visible"] is False and await handlers.history.count(owner) == 49


# --- generation ----------------------------------------------------------------------------------


async def collect(handlers: Handlers, prompt: str, providers: list[str], **kw: Any) -> list[dict[str, Any]]:
    args = dict(
        width=1024,
        height=1024,
        steps=4,
        seed=7,
        random_seed=False,
        num_images=1,
        sampler="",
        scheduler="",
        browser_id=ALICE,
        query="",
        provider_filter="",
    )
    args.update(kw)
    keys = args.pop("keys", ())
    updates = []
    async for values in handlers.generate_page(
        args.pop("profile", None),
        args.pop("request", None),
        prompt,
        providers,
        args["width"],
        args["height"],
        args["steps"],
        args["seed"],
        args["random_seed"],
        args["num_images"],
        args["sampler"],
        args["scheduler"],
        args["browser_id"],
        args["query"],
        args["provider_filter"],
        *keys,
    ):
        updates.append(as_dict(GENERATE_OUTPUTS, values))
    return updates


async def test_generate_page_saves_then_shows_each_provider(handlers: Handlers) -> None:
    updates = await collect(handlers, "a red fox", ["deepinfra", "segmind"])
    first, last = updates[0], updates[-1]
    assert first["seed"] == 7 and first["column:deepinfra"]["visible"] is True
    assert first["column:atlascloud"]["visible"] is False and first["empty"]["visible"] is False
    shown = [u for u in updates if "gallery:segmind" in u and u["gallery:segmind"].get("visible")]
    ((path, caption),) = shown[0]["gallery:segmind"]["value"]
    saved = await handlers.history.list(f"anon:{ALICE}")
    assert path in {str(item.image_path) for item in saved} and path.endswith(".png")
    assert len(saved) == 2 and {item.seed for item in saved} == {7}
    assert any("seed 7 · " in u.get("caption:deepinfra", "") for u in updates)
    assert last["stop"]["visible"] is False and last["run"] == {"pending": []}


async def test_one_provider_failing_does_not_hide_the_other(
    handlers: Handlers, emulator: EmulatorServer
) -> None:
    emulator.clear_faults()
    emulator.inject("segmind", "credits")
    try:
        updates = await collect(handlers, "a red fox", ["deepinfra", "segmind"])
    finally:
        emulator.clear_faults()
    statuses = "".join(u.get("status:segmind", "") for u in updates)
    assert "No image from Segmind" in statuses and "out of credits" in statuses
    assert any(u.get("gallery:deepinfra", {}).get("visible") for u in updates)


async def test_errors_become_readable_messages(handlers: Handlers) -> None:
    with pytest.raises(gr.Error, match="prompt: empty; describe the image you want"):
        await collect(handlers, "   ", ["deepinfra"])
    with pytest.raises(gr.Error, match="Choose at least one provider"):
        await collect(handlers, "a fox", [])
    with pytest.raises(gr.Error, match="Please fix: width"):
        await collect(handlers, "a fox", ["deepinfra"], width=4096)
    # A missing key names the variable to set, in that provider's slot.
    settings = handlers.settings.model_copy(update={"atlascloud_api_key": None})
    no_key = Handlers(settings, Playground(settings), handlers.history, handlers.scratch)
    updates = await collect(no_key, "a fox", ["atlascloud"])
    assert "set ATLASCLOUD_API_KEY" in updates[-1]["status:atlascloud"]


class FakePlayground:
    """generate_many that fails in the ways the page must survive."""

    def __init__(self, settings: Any, behaviour: dict[str, Any]) -> None:
        self.settings = settings
        self.behaviour = behaviour

    async def generate_many(
        self, request: GenerationRequest, providers: list[str], **kw: Any
    ) -> AsyncIterator[Outcome]:
        (name,) = providers
        what = self.behaviour[name]
        kw["on_progress"](ProgressEvent(name, "generating"))
        if isinstance(what, float):
            await asyncio.sleep(what)
            yield Outcome(name, result=make_result(name, seed=request.seed))
        elif isinstance(what, PlaygroundError):
            yield Outcome(name, error=what)
        else:
            raise what


async def test_unexpected_errors_are_generic_and_isolated(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakePlayground(
        settings,
        {
            "atlascloud": RuntimeError("bug with secret body"),
            "deepinfra": InsufficientCredits("DeepInfra", "top up"),
            "segmind": 0.01,
        },
    )
    snaps = [snap async for snap in run_generation(fake, GenerationRequest(prompt="x"), list(fake.behaviour))]  # type: ignore[arg-type]
    slots = snaps[-1].slots
    assert slots["atlascloud"].error == GENERIC_ERROR
    assert slots["deepinfra"].error == "DeepInfra: top up"
    assert slots["segmind"].result is not None
    assert "Unexpected failure while generating with atlascloud" in caplog.text


async def test_progress_ticks_while_waiting(settings: Any) -> None:
    fake = FakePlayground(settings, {"segmind": 1.3})
    snaps = [
        snap async for snap in run_generation(fake, GenerationRequest(prompt="x"), ["segmind"], tick=0.25)
    ]  # type: ignore[arg-type]
    waiting = [s for s in snaps if not s.finished]
    assert len(waiting) >= 4  # at least every 0.25 s for 1.3 s
    assert snaps[1].slots["segmind"].stage == "generating"
    assert snaps[-1].request.seed is not None  # resolved once, before any provider is called


def test_stop_marks_only_the_providers_still_waited_for() -> None:
    out = as_dict(GENERATE_OUTPUTS, Handlers.stop({"pending": ["segmind"]}))
    assert set(out) == {"stop", "run", "status:segmind"}
    assert "Stopped" in out["status:segmind"] and "may still finish" in out["status:segmind"]


async def test_a_pasted_key_is_used_for_that_provider_only(emulator: EmulatorServer, tmp_path: Path) -> None:
    settings = emulator_settings(emulator, tmp_path / "data", segmind_api_key=None)
    history = History(settings.data_dir)
    handlers = Handlers(settings, Playground(settings), history, tmp_path / "scratch")
    try:
        # keys are in registry order: atlascloud, deepinfra, segmind
        updates = await collect(
            handlers, "a fox", ["deepinfra", "segmind"], keys=("", "invalid-pasted", "my-own-segmind-key")
        )
        statuses = "".join(u.get("status:deepinfra", "") for u in updates)
        assert "the API key was refused" in statuses and "the key you pasted" in statuses
        assert "invalid-pasted" not in statuses
        assert any(u.get("gallery:segmind", {}).get("visible") for u in updates)  # no server key needed
        # Nothing of the key is kept: not in history, not in the saved PNG.
        (item,) = await history.list(f"anon:{ALICE}")
        assert b"my-own-segmind-key" not in item.image_path.read_bytes()
        assert not list(settings.data_dir.rglob("*.json"))
    finally:
        history.close()


async def test_history_survives_a_server_restart(settings: Any, tmp_path: Path) -> None:
    first = History(settings.data_dir)
    (item,) = await first.add(f"anon:{ALICE}", make_result())
    first.close()
    second = History(settings.data_dir)
    try:
        handlers = Handlers(settings, Playground(settings), second, tmp_path / "scratch")
        page = as_dict(["browser_id", *HISTORY_OUTPUTS], await handlers.load_history(None, ALICE, "", ""))
        assert page["browser_id"] == ALICE and page["history_ids"] == [item.id]
    finally:
        second.close()


def test_login_button_only_with_oauth(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flux_playground.ui import create_demo, oauth_enabled

    demo = create_demo(settings)
    assert not any(isinstance(block, gr.LoginButton) for block in demo.blocks.values())
    assert oauth_enabled() is False
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")  # what a Space with hf_oauth: true sets
    assert oauth_enabled() is True


def test_allowed_paths_never_include_the_database(settings: Any, tmp_path: Path) -> None:
    from flux_playground.ui import allowed_paths

    assert allowed_paths(settings) == []  # under the temp directory already
    elsewhere = settings.model_copy(update={"data_dir": Path("/srv/flux-data")})
    assert allowed_paths(elsewhere) == ["/srv/flux-data/images"]

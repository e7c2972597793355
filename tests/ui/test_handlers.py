"""The page's handlers called directly: no server, no browser."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.state_holder as state_holder
import pytest

from flux_playground.emulator.server import EmulatorServer
from flux_playground.history import History
from flux_playground.service import Playground
from flux_playground.ui.controls import CONTROL_OUTPUTS
from flux_playground.ui.form import Form
from flux_playground.ui.generation import generate_outputs
from flux_playground.ui.handlers import Handlers
from flux_playground.ui.history_view import DELETE_OUTPUTS, DETAIL_OUTPUTS, HISTORY_OUTPUTS, REUSE_OUTPUTS
from flux_playground.ui.identity import ANON_ID, resolve_identity
from flux_playground.ui.layout import build_blocks
from flux_playground.ui.scratch import Scratch

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
    yield Handlers.create(Playground(settings), history, Scratch(tmp_path / "scratch"))
    history.close()


def at(browser: str, **state: Any) -> Form:
    """The page's form in `browser`, with its server-side state (history ids, the selected item)."""
    search = state.pop("search", "")
    provider_filter = state.pop("provider_filter", "")
    return Form(browser_id=browser, search=search, provider_filter=provider_filter, state=state)


# --- controls ------------------------------------------------------------------------------------


async def test_controls_name_the_providers_that_honour_them(handlers: Handlers) -> None:
    out = as_dict(
        CONTROL_OUTPUTS, await handlers.controls.update(Form(providers=["atlascloud", "deepinfra"]))
    )
    assert out["steps"]["label"] == "Steps — Atlas Cloud does not take steps"
    assert out["sampler"]["label"] == "Sampler — Segmind only"
    assert out["sampler"]["interactive"] is False
    assert out["generate"]["value"] == "Generate · ≈ $0.005"
    both = as_dict(CONTROL_OUTPUTS, await handlers.controls.update(Form(providers=["deepinfra", "segmind"])))
    assert both["sampler"]["interactive"] is True
    assert both["sampler"]["info"] == "Sent to Segmind only; not to DeepInfra."
    assert both["steps"]["label"] == "Steps"


async def test_controls_take_any_value_a_caller_sends(handlers: Handlers) -> None:
    for junk in ("abc", None, float("nan"), [3], {"x": 1}, 10**40):
        out = as_dict(
            CONTROL_OUTPUTS, await handlers.controls.update(Form(providers=junk, width=junk, steps=junk))
        )
        rows = out["providers"]["rows"]
        assert [row["id"] for row in rows] and all(row["cost"] for row in rows)


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
    (item,) = await handlers.store.add(f"anon:{ALICE}", make_result())
    select = gr.SelectData(None, {"index": 0, "value": None, "selected": True})
    mine = as_dict(DETAIL_OUTPUTS, await handlers.history.select(at(ALICE, history_ids=[item.id]), select))
    assert mine["selected"] == item.id and mine["details"]["visible"] is True
    assert "a lighthouse at dusk" in mine["details_html"]

    # Bob's page state naming Alice's id is only a hint: every handler checks the owner.
    theirs = as_dict(DETAIL_OUTPUTS, await handlers.history.select(at(BOB, history_ids=[item.id]), select))
    assert theirs == {"details": theirs["details"], "selected": None, "run_zip": theirs["run_zip"]}
    assert theirs["details"]["visible"] is False and theirs["run_zip"]["visible"] is False
    with pytest.raises(gr.Error, match="no longer in your history"):
        await handlers.history.reuse(at(BOB, selected=item.id))
    with pytest.raises(gr.Error, match="no longer in your history"):
        await handlers.history.zip_run(at(BOB, selected=item.id))
    # Paging from Alice's id in Bob's state shows nothing of hers.
    stepped = as_dict(
        DETAIL_OUTPUTS, await handlers.history.next(at(BOB, history_ids=[item.id], selected=item.id))
    )
    assert stepped["selected"] is None and stepped["details"]["visible"] is False
    with pytest.raises(gr.Error, match="no longer in your history"):
        await handlers.history.delete(at(BOB, selected=item.id))
    bob_page = as_dict(["browser_id", *HISTORY_OUTPUTS], await handlers.history.load(at(BOB)))
    assert bob_page["history_ids"] == [] and "No images yet" in bob_page["history_count"]
    assert await handlers.store.get(f"anon:{ALICE}", item.id) is not None

    # A signed-in person is someone else again, even in the same browser.
    ada = gr.OAuthProfile({"name": "Ada", "preferred_username": "ada", "profile": "", "picture": ""})
    with pytest.raises(gr.Error):
        await handlers.history.reuse(at(ALICE, selected=item.id), ada)


async def test_reuse_fills_every_control(handlers: Handlers) -> None:
    (item,) = await handlers.store.add(f"anon:{ALICE}", make_result())
    out = as_dict(REUSE_OUTPUTS, await handlers.history.reuse(at(ALICE, selected=item.id)))
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
    items = [(await handlers.store.add(owner, make_result(prompt=f"cat {i}")))[0] for i in range(50)]
    page = as_dict(["browser_id", *HISTORY_OUTPUTS], await handlers.history.load(at(ALICE)))
    assert len(page["history_ids"]) == 48 and page["more"]["visible"] is True
    assert page["history_ids"][0] == items[-1].id  # newest first
    more = as_dict(
        HISTORY_OUTPUTS, await handlers.history.load_more(at(ALICE, history_ids=page["history_ids"]))
    )
    assert len(more["history_ids"]) == 50 and more["more"]["visible"] is False
    found = as_dict(["browser_id", *HISTORY_OUTPUTS], await handlers.history.load(at(ALICE, search="CAT 7")))
    assert len(found["history_ids"]) == 1
    none = as_dict(
        ["browser_id", *HISTORY_OUTPUTS], await handlers.history.load(at(ALICE, provider_filter="deepinfra"))
    )
    assert none["history_ids"] == [] and none["history_empty"]["visible"] is True

    out = await handlers.history.delete(at(ALICE, selected=items[0].id))
    values = as_dict(DELETE_OUTPUTS, out)
    assert len(values["history_ids"]) == 48 and items[0].id not in values["history_ids"]
    assert values["details"]["visible"] is False and await handlers.store.count(owner) == 49
    assert values["undo"]["visible"] is True and values["deleted"] == items[0].id
    # Undo brings it back, details open; a second undo has nothing left to bring back.
    undone = as_dict(DELETE_OUTPUTS, await handlers.history.undo(at(ALICE, deleted=items[0].id)))
    assert await handlers.store.count(owner) == 50 and undone["selected"] == items[0].id
    assert undone["undo"]["visible"] is False and undone["deleted"] is None
    alices = await handlers.history.delete(at(ALICE, selected=items[1].id))  # Bob cannot undo it
    with pytest.raises(gr.Error, match="Too late to undo"):
        await handlers.history.undo(at(BOB, deleted=as_dict(DELETE_OUTPUTS, alices)["deleted"]))


# --- generation ----------------------------------------------------------------------------------


async def collect(
    handlers: Handlers, prompt: str, providers: list[str], **fields: Any
) -> list[dict[str, Any]]:
    values: dict[str, Any] = {"seed": 7, "random_seed": False, "browser_id": ALICE, **fields}
    profile, request = values.pop("profile", None), values.pop("request", None)
    form = Form(prompt=prompt, providers=providers, **values)
    return [
        as_dict(generate_outputs(), v) async for v in handlers.generation.generate(form, profile, request)
    ]


async def test_generate_page_saves_then_shows_each_provider(handlers: Handlers) -> None:
    updates = await collect(handlers, "a red fox", ["deepinfra", "segmind"])
    first, last = updates[0], updates[-1]
    assert first["seed"] == 7 and first["column:deepinfra"]["visible"] is True
    assert first["column:atlascloud"]["visible"] is False and first["empty"]["visible"] is False
    shown = [u for u in updates if "gallery:segmind" in u and u["gallery:segmind"].get("visible")]
    ((path, caption),) = shown[0]["gallery:segmind"]["value"]
    saved = await handlers.store.list(f"anon:{ALICE}")
    assert path in {str(item.image_path) for item in saved} and path.endswith(".png")
    assert len(saved) == 2 and {item.seed for item in saved} == {7}
    assert any("seed 7 · " in u.get("caption:deepinfra", "") for u in updates)
    assert last["stop"]["visible"] is False
    # What "Again" runs: the request as sent, its seed resolved, and the providers it went to.
    run = next(u["run"] for u in updates if "run" in u)
    assert (run["request"]["seed"], run["names"]) == (7, ["deepinfra", "segmind"])
    assert any(u.get("again:deepinfra", {}).get("visible") for u in updates)


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
    with pytest.raises(gr.Error, match="Write a prompt: describe the image you want"):
        await collect(handlers, "   ", ["deepinfra"])
    with pytest.raises(gr.Error, match="Choose at least one provider"):
        await collect(handlers, "a fox", [])
    with pytest.raises(gr.Error, match="Width must be less than or equal to 2048"):
        await collect(handlers, "a fox", ["deepinfra"], width=4096)
    # A missing key names the variable to set, in that provider's slot.
    settings = handlers.playground.settings.with_provider("atlascloud", api_key=None)
    no_key = Handlers.create(Playground(settings), handlers.store, handlers.scratch)
    updates = await collect(no_key, "a fox", ["atlascloud"])
    assert "set ATLASCLOUD_API_KEY" in updates[-1]["status:atlascloud"]


async def sent(demo: gr.Blocks, event: str, chunks: list[tuple[Any, ...]]) -> list[list[Any]]:
    """A generator event's chunks as the server sends them: postprocessed (one session), then, from
    the second chunk on, each output as a diff against its previous chunk."""
    block_fn = next(fn for fn in demo.fns.values() if fn.name == event)
    session = state_holder.SessionState(demo)
    wire = []
    for chunk in chunks:
        data = await demo.postprocess_data(block_fn, list(chunk), session)
        wire.append(demo.handle_streaming_diffs(block_fn, data, session_hash="s", run="r", final=False))
    return list(json.loads(json.dumps(wire)))


def page_after(wire: list[list[Any]], *, late: bool) -> dict[int, dict[str, Any]]:
    """What the page shows after a streamed event, by output index, as Gradio 6.31's client builds
    it: it applies each diff in place to the objects it handed the page for the earlier chunks.
    `late`: the page reads every chunk only after the last has arrived (a busy browser), else each
    chunk at once."""
    held = copy.deepcopy(wire[0])
    handed = [held[:] if late else copy.deepcopy(held)]
    for diffs in wire[1:]:
        held = [_applied(value, edits) for value, edits in zip(held, diffs, strict=True)]
        handed.append(held[:] if late else copy.deepcopy(held))
    page: dict[int, dict[str, Any]] = {}
    for values in handed:
        for i, value in enumerate(values):
            if isinstance(value, dict) and value.get("__type__") == "update":
                page.setdefault(i, {}).update({k: v for k, v in value.items() if k != "__type__"})
            elif value is not None:  # None: a gr.State's value, kept on the server
                page.setdefault(i, {})["value"] = value
    return page


def _applied(target: Any, edits: list[list[Any]]) -> Any:
    """The client's `apply_diff` (Gradio 6.31's @gradio/client): in place below the top level."""
    for action, path, value in edits:
        if not path:
            target = value if action == "replace" else target + value
            continue
        parent, key = target, path[-1]
        for step in path[:-1]:
            parent = parent[step]
        if action == "add" and isinstance(parent, list):
            parent.insert(key, value)
        elif action in ("replace", "add"):
            parent[key] = value
        elif action == "append":
            parent[key] += value
        else:  # delete
            del parent[key]
    return target


async def test_a_run_read_late_by_a_busy_page_shows_the_same(
    handlers: Handlers, emulator: EmulatorServer, settings: Any
) -> None:
    """Found in a browser test under load: a failed card without its "Again" button, erased by the
    next chunk's diff before the page read it (compat/gradio.py, item 5)."""
    emulator.clear_faults()
    emulator.inject("segmind", "500")  # fails at once; DeepInfra's image arrives in a later chunk
    emulator.configure(latency={"deepinfra": 0.3})
    try:
        form = Form(prompt="a red fox", providers=["deepinfra", "segmind"], seed=7, random_seed=False,
                    browser_id=ALICE)  # fmt: skip
        chunks = [chunk async for chunk in handlers.generation.generate(form)]
    finally:
        emulator.clear_faults()
        emulator.configure(latency={"deepinfra": None})
    assert len(chunks) >= 3
    wire = await sent(build_blocks(settings, handlers, oauth=False), "page_generation_generate", chunks)
    at_once, outputs = page_after(wire, late=False), generate_outputs()
    assert at_once[outputs.index("again:segmind")]["visible"] is True
    gallery = at_once[outputs.index("gallery:deepinfra")]
    assert gallery["visible"] is True and gallery["value"][0]["image"]["path"].endswith(".png")
    assert page_after(wire, late=True) == at_once


async def test_stop_ends_the_run_which_marks_what_it_still_waited_for(
    handlers: Handlers, emulator: EmulatorServer
) -> None:
    """Stop signals the page's runs; each ends itself, its last chunk marking the providers it still
    waited for as stopped (ui/stops.py). A result that had arrived stays, and other pages' runs go on."""
    emulator.configure(latency={"segmind": 30})
    page, other = (gr.Request(session_hash=s, headers={}, client={"host": "127.0.0.1"}) for s in "ab")
    form = Form(prompt="a red fox", providers=["deepinfra", "segmind"], seed=7, random_seed=False,
                browser_id=ALICE)  # fmt: skip
    chunks: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(20):
            async for chunk in handlers.generation.generate(form, None, page):
                chunks.append(as_dict(generate_outputs(), chunk))
                if any(c.get("gallery:deepinfra", {}).get("visible") for c in chunks):
                    handlers.generation.stop(other)  # another page: nothing of this one stops
                    handlers.generation.stop(page)
    finally:
        emulator.configure(latency={"segmind": None})
    last = chunks[-1]
    assert "You stopped waiting" in last["status:segmind"] and "status:deepinfra" not in last
    assert last["stop"]["visible"] is False
    assert last["gallery:deepinfra"]["visible"] is True  # what arrived stays on the page
    assert len(await handlers.store.list(f"anon:{ALICE}")) == 1
    assert handlers.generation.stops.stop(page) == 0  # the run is gone from the signals


async def test_a_pasted_key_is_used_for_that_provider_only(emulator: EmulatorServer, tmp_path: Path) -> None:
    settings = emulator_settings(emulator, tmp_path / "data").with_provider("segmind", api_key=None)
    history = History(settings.data_dir)
    handlers = Handlers.create(Playground(settings), history, Scratch(tmp_path / "scratch"))
    try:
        keys = {"deepinfra": "invalid-pasted", "segmind": "my-own-segmind-key"}
        updates = await collect(handlers, "a fox", ["deepinfra", "segmind"], keys=keys)
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
        handlers = Handlers.create(Playground(settings), second, Scratch(tmp_path / "scratch"))
        page = as_dict(["browser_id", *HISTORY_OUTPUTS], await handlers.history.load(at(ALICE)))
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

"""Two people never see, reuse, download or delete each other's images: not through the page's handlers,
not by guessing ids, not through file routes, and not by calling the page's private events by name.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from history_helpers import stored_bytes
from ui.appclient import call_api, event_data, page_fn_index, run_page, run_page_event, serve
from ui.conftest import emulator_settings

from flux_playground.emulator.server import EmulatorServer
from flux_playground.history import History
from flux_playground.service import Playground
from flux_playground.ui.form import Form
from flux_playground.ui.handlers import Handlers
from flux_playground.ui.history_view import DETAIL_OUTPUTS, HISTORY_OUTPUTS
from flux_playground.ui.scratch import Scratch

#: Every test here runs on SQLite and on PostgreSQL (conftest.database_backend).
pytestmark = pytest.mark.usefixtures("database_backend")

BROWSER_A, BROWSER_B = "A" * 32, "B" * 32


def profile(username: str) -> gr.OAuthProfile:
    return gr.OAuthProfile({"name": username, "preferred_username": username, "profile": "", "picture": ""})


#: Two anonymous browsers and two signed-in people, who use those same two browsers.
PEOPLE: dict[str, tuple[gr.OAuthProfile | None, str]] = {
    "anon-a": (None, BROWSER_A),
    "anon-b": (None, BROWSER_B),
    "hf-ada": (profile("ada"), BROWSER_A),
    "hf-bob": (profile("bob"), BROWSER_B),
}


def named(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(names, values, strict=True))


def select(index: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": None, "selected": True})


@pytest.fixture
def handlers(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Handlers]:
    settings = emulator_settings(emulator, tmp_path / "data")
    history = History(settings.data_dir)
    yield Handlers.create(Playground(settings), history, Scratch(tmp_path / "scratch"))
    history.close()


async def generate(handlers: Handlers, who: str, prompt: str) -> None:
    person, browser = PEOPLE[who]
    form = Form(prompt=prompt, providers=["deepinfra"], width=512, height=512, browser_id=browser)
    async for _ in handlers.generation.generate(form, person, None):
        pass


async def test_no_one_reaches_anyone_elses_items_through_the_handlers(handlers: Handlers) -> None:
    for who in PEOPLE:
        await generate(handlers, who, f"the secret picture of {who}")
    items: dict[str, Any] = {}
    for who, (person, browser) in PEOPLE.items():
        page = named(
            ["browser_id", *HISTORY_OUTPUTS],
            await handlers.history.load(Form(browser_id=browser, search=""), person),
        )
        assert len(page["history_ids"]) == 1, who  # only their own, though browsers are shared
        owner = f"hf:{person.username}" if person else f"anon:{browser}"
        items[who] = await handlers.store.get(owner, page["history_ids"][0])
        assert items[who] is not None and items[who].prompt == f"the secret picture of {who}"

    for owner, item in items.items():
        for who, (person, browser) in PEOPLE.items():
            if who == owner:
                continue
            # Listing and searching, even for the other person's exact words.
            for query in ("", "secret picture", owner):
                page = named(
                    ["browser_id", *HISTORY_OUTPUTS],
                    await handlers.history.load(Form(browser_id=browser, search=query), person),
                )
                assert item.id not in page["history_ids"]
            more = named(
                HISTORY_OUTPUTS,
                await handlers.history.load_more(
                    Form(browser_id=browser, state={"history_ids": [item.id] * 60}), person
                ),
            )
            assert item.id not in more["history_ids"]
            # Opening (the page state is only a hint: a forged id list changes nothing), downloading.
            details = named(
                DETAIL_OUTPUTS,
                await handlers.history.select(
                    Form(browser_id=browser, state={"history_ids": [item.id]}), select(0), person
                ),
            )
            assert details["selected"] is None and details["details"]["visible"] is False
            assert "details_image" not in details or details["details_image"] != str(item.image_path)
            # Reusing and deleting.
            with pytest.raises(gr.Error, match="no longer in your history"):
                await handlers.history.reuse(Form(browser_id=browser, state={"selected": item.id}), person)
            with pytest.raises(gr.Error, match="no longer in your history"):
                await handlers.history.delete(Form(browser_id=browser, state={"selected": item.id}), person)
    for item in items.values():  # all still there, files included
        assert item.image_path.exists() and item.thumb_path.exists()


GUESSES = [
    "",
    " ",
    "%",
    "_",
    "*",
    "' OR '1'='1",
    "1; DROP TABLE history_items",
    "../" * 5 + "history.sqlite3",
    "/etc/passwd",
    "\x00",
    "a" * 10_000,
]


async def test_guessed_and_forged_ids_open_nothing(handlers: Handlers) -> None:
    await generate(handlers, "anon-a", "mine")
    (item,) = await handlers.store.list(f"anon:{BROWSER_A}")
    for guess in [
        *GUESSES,
        item.id.upper(),
        item.id[:-1],
        item.id + "x",
        f"{item.id}%",
        secrets.token_urlsafe(16),
    ]:
        for person, browser in PEOPLE.values():
            if (person, browser) == (None, BROWSER_A):
                continue
            assert await handlers.store.get(f"anon:{browser}", guess) is None
            details = named(
                DETAIL_OUTPUTS,
                await handlers.history.select(
                    Form(browser_id=browser, state={"history_ids": [guess, item.id]}), select(0), person
                ),
            )
            assert details["selected"] is None
            with pytest.raises(gr.Error):
                await handlers.history.delete(Form(browser_id=browser, state={"selected": guess}), person)
    # A tampered browser id is never used as an owner: it is replaced by a fresh one.
    for stored in ("../" * 8, BROWSER_A + "x", BROWSER_A[:-1], f"{BROWSER_A[:-1]}%", None, 42):
        page = named(["browser_id", *HISTORY_OUTPUTS], await handlers.history.load(Form(browser_id=stored)))
        assert page["history_ids"] == [] and page["browser_id"] != stored
    assert await handlers.store.count(f"anon:{BROWSER_A}") == 1


async def test_the_store_never_holds_the_owner_string(handlers: Handlers, tmp_path: Path) -> None:
    """An anonymous owner is a bearer secret: neither the database nor the folder names contain it."""
    await generate(handlers, "anon-a", "mine")
    await generate(handlers, "hf-ada", "ada's")
    raw = stored_bytes(handlers.store)
    assert b"mine" in raw  # the dump can see the rows
    folders = [p.name for p in (tmp_path / "data" / "images").rglob("*") if p.is_dir()]
    for owner in (f"anon:{BROWSER_A}", "hf:ada"):
        assert owner.encode() not in raw and BROWSER_A.encode() not in raw
        assert hashlib.sha256(owner.encode()).hexdigest()[:32] in folders
    assert not any(BROWSER_A in name for name in folders)


# --- over HTTP --------------------------------------------------------------------------------------------


class Site:
    def __init__(self, url: str, data_dir: Path, history: History, emulator: EmulatorServer) -> None:
        self.url, self.data_dir, self.history, self.emulator = url, data_dir, history, emulator

    def get_file(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}gradio_api/file={path}", timeout=10)


@pytest.fixture(scope="module")
def site(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("isolation-data")
    settings = emulator_settings(emulator, data_dir)
    history = History(data_dir, database_url=settings.database_url)  # PostgreSQL with --database=postgres
    try:
        with serve(settings, history=history) as app:
            yield Site(app.url, data_dir, history, emulator)
    finally:
        history.close()


@pytest.fixture(scope="module")
def alices_image(site: Site) -> tuple[Any, str]:
    """Alice generates on the page; returns her history item and the URL path the page showed her."""
    browser = secrets.token_urlsafe(24)
    values = {"prompt": "alice's private picture", "providers": ["deepinfra"], "width": 512, "height": 512,
              "browser_id": browser}  # fmt: skip
    run = run_page(site.url, "generate", values)
    assert run.success
    (item,) = asyncio.run(site.history.list(f"anon:{browser}"))
    shown = re.findall(r'"path": ?"([^"]+\.png)"', run.text)
    assert shown and all(Path(p).name == item.image_path.name for p in shown)
    return item, shown[0]


@pytest.mark.single_pass("its app is one per module, on the back end --database names")
def test_files_are_served_only_as_copies_handed_to_their_owner(
    site: Site, alices_image: tuple[Any, str]
) -> None:
    item, shown = alices_image
    assert site.get_file(shown).status_code == 200  # what the page gave Alice (a copy in Gradio's cache)
    assert Path(shown).resolve() != item.image_path.resolve()

    data = site.data_dir.resolve()
    cache = Path(shown).parents[1]
    refused = [
        data / "history.sqlite3",
        data / "history.sqlite3-wal",
        item.image_path,  # the stored original, by its exact path
        item.thumb_path,
        item.image_path.with_name(f"{secrets.token_urlsafe(16)}.png"),  # a guessed id in her folder
        Path(f"{cache}/../{data.relative_to('/')}/history.sqlite3"),
        Path("/etc/passwd"),
    ]
    for path in refused:
        response = site.get_file(str(path))
        assert response.status_code in (403, 404), (path, response.status_code)
        assert b"SQLite format" not in response.content and b"\x89PNG" not in response.content
    for raw in (f"..%2F..%2F{data}/history.sqlite3", f"{cache}/%2e%2e/%2e%2e/{data}/history.sqlite3"):
        response = httpx.get(f"{site.url}gradio_api/file={raw}", timeout=10)
        assert response.status_code in (400, 403, 404) and b"SQLite format" not in response.content


PRIVATE_EVENTS = [
    "generate_page",
    "load_history",
    "load_history_1",
    "load_more",
    "select_item",
    "reuse",
    "delete",
    "stop",
    "update_controls",
    "apply_preset",
    "unnamed",
]


@pytest.mark.single_pass("its app is one per module, on the back end --database names")
def test_private_events_cannot_be_called_by_name(site: Site, alices_image: tuple[Any, str]) -> None:
    item, _ = alices_image
    before = site.emulator.stats()["requests"].get("deepinfra", {}).get("submit", 0)
    payloads = {
        "generate_page": ["x", ["deepinfra"], 512, 512, 4, -1, True, 1, "", "", "C" * 32, "", "", "", "", ""],
        "delete": ["C" * 32, item.id, "", ""],
    }
    for name in PRIVATE_EVENTS:
        for route in ("call", "call/v2", "run", "api"):
            response = httpx.post(
                f"{site.url}gradio_api/{route}/{name}", json={"data": payloads.get(name, [])}, timeout=10
            )
            assert response.status_code != 200, (route, name, response.text[:200])
            assert "Traceback" not in response.text
    info = httpx.get(f"{site.url}gradio_api/info").json()
    assert sorted(info["named_endpoints"]) == ["/generate", "/stats"] and not info["unnamed_endpoints"]
    assert site.emulator.stats()["requests"].get("deepinfra", {}).get("submit", 0) == before
    assert item.image_path.exists()
    # The public API is the stateless one: it never returns anything from a history.
    answer = call_api(
        site.url, "generate", ["alice's private picture", ["deepinfra"], 512, 512, 4, -1, 1, "", ""]
    )
    assert answer.event == "complete" and item.id not in answer.text


@pytest.mark.single_pass("its app is one per module, on the back end --database names")
def test_the_page_events_only_act_for_the_browser_that_calls_them(
    site: Site, alices_image: tuple[Any, str]
) -> None:
    """Calling the page's own events through the queue, as the page does, with any browser id but Alice's."""
    item, _ = alices_image
    load = page_fn_index(site.url, "history-search", "change")
    delete = page_fn_index(site.url, "delete")
    for browser in ("C" * 32, secrets.token_urlsafe(24), "../" * 11, item.id, None):
        listed = run_page_event(site.url, load, event_data(site.url, load, {"browser_id": browser}))
        assert listed.success and item.id not in listed.text and "alice&#x27;s" not in listed.text
        assert "alice's private picture" not in listed.text
        # delete's other inputs (the selected item) live in server-side state: a caller cannot set them.
        deleted = run_page_event(site.url, delete, event_data(site.url, delete, {"browser_id": browser}))
        assert not deleted.success
    assert item.image_path.exists() and item.thumb_path.exists()

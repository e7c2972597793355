"""Signed-in visitors pay with their own Hugging Face credits, through the launched app (issue 12).

The page runs as on a Space with `hf_oauth: true` and `hf_oauth_scopes: [inference-api]`: Gradio's
real sign-in routes and session middleware, a visitor signed in by the session cookie Gradio itself
would have set after the OAuth callback. The providers Hugging Face routes have no server key here,
so a signed-in visitor's runs go through the emulated router with their token; the owner's daily
budget is $0, so anything billed to the owner is refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import gradio.oauth
import httpx
import pytest
from gradio_client import Client
from itsdangerous import TimestampSigner
from ui.appclient import call_api, event_data, free_port, page_fn_index, run_page_event

from flux_playground.demo import point_at
from flux_playground.emulator.hf_router import NAME as ROUTER
from flux_playground.emulator.server import EmulatorServer
from flux_playground.history import History
from flux_playground.images import read_png_text
from flux_playground.limits import Guard
from flux_playground.providers import hf_routed
from flux_playground.settings import Settings
from flux_playground.ui import launch_page

SECRET = "oauth-client-secret-for-tests"
SCOPES = "openid profile inference-api"
ROUTED = hf_routed()
LABELS = {
    "fal": "fal.ai via Hugging Face",
    "replicate": "Replicate via Hugging Face",
    "together": "Together AI via Hugging Face",
}


def session_cookie(username: str, token: str, *, scope: str = SCOPES) -> dict[str, str]:
    """The cookie Gradio's OAuth callback leaves in a browser (gradio/oauth.py: `oauth_info` in
    Starlette's signed session, keyed by a hash of the OAuth client secret)."""
    info = {
        "access_token": token, "token_type": "bearer", "scope": scope, "expires_at": int(time.time()) + 3600,
        "userinfo": {"name": username, "preferred_username": username, "profile": "", "picture": ""},
    }  # fmt: skip
    signer = TimestampSigner(hashlib.sha256(f"{SECRET}-v4".encode()).hexdigest())
    return {"session": signer.sign(base64.b64encode(json.dumps({"oauth_info": info}).encode())).decode()}


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Space:
    url: str
    data_dir: Path
    emulator: EmulatorServer
    history: History
    guard: Guard

    def page(self, prompt: str, providers: list[str], cookies: dict[str, str] | None) -> Any:
        generate = page_fn_index(self.url, "generate")
        values = {
            "prompt": prompt,
            "providers": providers,
            "width": 512,
            "height": 512,
            "browser_id": "B" * 32,
        }
        data = event_data(self.url, generate, values)
        return run_page_event(self.url, generate, data, timeout=60, cookies=cookies)

    def router_calls(self, prompts: set[str]) -> list[dict[str, Any]]:
        calls = self.emulator.stats()["providers"][ROUTER]["calls"]
        return [call for call in calls if call["prompt"] in prompts]


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Space]:
    data_dir = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch, EmulatorServer(latency=0.05) as emulator:
        # What a Space with `hf_oauth: true` gives the process (gradio reads these at import), and
        # Gradio's Space check for its sign-in routes only (elsewhere it would start a Spaces reloader).
        patch.setattr(gradio.oauth, "get_space", lambda: "someone/flux-playground")
        oauth = {"OAUTH_CLIENT_ID": "client", "OAUTH_CLIENT_SECRET": SECRET, "OAUTH_SCOPES": SCOPES}
        for name, value in {**oauth, "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}.items():
            patch.setattr(gradio.oauth, name, value)
        base = Settings(_env_file=None, data_dir=data_dir, oauth_scopes=SCOPES, daily_budget_usd=Decimal(0))
        settings = point_at(base, emulator.base_urls, "server-key")
        # The owner set keys for the others, none for the providers Hugging Face routes.
        owned = {name: value for name, value in settings.providers.items() if name not in ROUTED}
        settings = settings.model_copy(update={"providers": owned})
        assert not settings.demo_mode and settings.hf_router_base_url == emulator.base_urls[ROUTER]
        history, guard = History(data_dir), Guard(settings)
        page = launch_page(
            settings, server_port=free_port(), quiet=True, oauth=True, history=history, guard=guard
        )
        try:
            yield Space(page.url, data_dir, emulator, history, guard)
        finally:
            page.close()
            history.close()
            guard.close()


def test_two_signed_in_visitors_tokens_never_cross(space: Space) -> None:
    tokens = {user: f"hf_oauth_{user}_{secrets.token_hex(8)}" for user in ("ada", "bob")}
    tag = secrets.token_hex(3)
    runs = [(user, f"{user}'s fox {n} {tag}") for n in range(3) for user in tokens]

    def run(user: str, prompt: str) -> Any:
        return space.page(prompt, ROUTED, session_cookie(user, tokens[user]))

    with ThreadPoolExecutor(len(runs)) as pool:
        results = list(pool.map(lambda job: run(*job), runs))
    for result in results:
        assert result.success and all(label in result.text for label in LABELS.values()), result.text[-600:]
    # Every routed POST of a visitor's prompt carried that visitor's token, at every provider: 18 calls.
    calls = [c for c in space.router_calls({prompt for _, prompt in runs}) if c["method"] == "POST"]
    assert sorted((c["prompt"], c["route"], c["token_sha256"]) for c in calls) == sorted(
        (prompt, route, fingerprint(tokens[user]))
        for user, prompt in runs
        for route in ("fal-ai", "replicate", "together")
    )
    # Saved in each visitor's own history, labelled as run; nothing billed to the owner.
    for user in tokens:
        items = asyncio.run(space.history.list(f"hf:{user}", limit=100))
        mine = [item for item in items if item.prompt.endswith(tag)]
        assert Counter(item.provider_label for item in mine) == Counter(
            {label: 3 for label in LABELS.values()}
        )
        assert all(item.prompt.startswith(f"{user}'s fox") for item in mine)
    assert space.guard.spent_today() == Decimal(0)


def test_the_owners_caps_ignore_routed_runs(space: Space) -> None:
    ada = session_cookie("ada", "hf_oauth_ada_caps")
    refused = space.page("a fox on the owner's key", ["segmind"], ada)  # a server key: the $0 budget refuses
    assert "daily budget ($0) would be passed" in refused.text
    routed = space.page("a fox on ada's credits", ["together"], ada)
    assert routed.success and "Together AI via Hugging Face" in routed.text and refused.error
    assert space.guard.spent_today() == Decimal(0)


def test_signed_out_the_page_says_what_signing_in_gives(space: Space) -> None:
    controls = page_fn_index(space.url, "providers", "change")
    body = {"data": event_data(space.url, controls, {"providers": ["fal"]}), "fn_index": controls}

    def update(cookies: dict[str, str] | None) -> str:
        answer = httpx.post(
            f"{space.url}gradio_api/run/predict", json={**body, "session_hash": secrets.token_hex(6)},
            cookies=cookies, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 200
        return answer.text

    signed_out, signed_in = update(None), update(session_cookie("ada", "hf_oauth_ada_note"))
    assert (
        "Sign in with Hugging Face</b> to run fal.ai, Replicate and Together AI on your own Hugging Face "
        "credits: no key needed, billed to your Hugging Face account, not to this Space."
    ) in signed_out
    assert (
        "Signed in with Hugging Face: fal.ai, Replicate and Together AI run through Hugging Face" in signed_in
    )
    assert signed_in.count("your HF account") == len(ROUTED) and "your HF account" not in signed_out
    # A session without the Inference Providers permission is not offered the route.
    narrow = update(session_cookie("cy", "hf_oauth_cy", scope="openid profile"))
    assert "your HF account" not in narrow and "Sign in with Hugging Face</b>" in narrow
    config = httpx.get(space.url + "config").json()
    assert [
        c["props"]["elem_id"] for c in config["components"] if c["props"].get("elem_id") == "hf-note"
    ] == ["hf-note"]


def test_a_refused_or_expired_token_and_no_credits_get_words(space: Space) -> None:
    expired = space.page("an expired fox", ["fal"], session_cookie("ada", "hf_expired_token"))
    assert expired.success
    refused = "Hugging Face refused the token (Invalid credentials in Authorization header)"
    assert f"fal.ai via Hugging Face: {refused}" in expired.text
    assert "Sign in with Hugging Face again (tokens expire)" in expired.text
    broke = space.page("a broke fox", ["replicate"], session_cookie("bob", "hf_nocredit_bob"))
    assert broke.success and "your Hugging Face account is out of Inference Providers credits" in broke.text
    assert "Top up at https://huggingface.co/settings/billing" in broke.text
    assert "Traceback" not in expired.text + broke.text


def test_api_callers_bring_their_own_token(space: Space) -> None:
    info = httpx.get(f"{space.url}gradio_api/info").json()["named_endpoints"]["/generate"]
    assert info["oauth_token"] == "optional"  # gradio_client sends `oauth_token=` to this endpoint only
    token = f"hf_api_{secrets.token_hex(6)}"
    client = Client(space.url, oauth_token=token, verbose=False)
    gallery, summary = client.predict(
        "an api fox", ["together", "fal"], 512, 512, 4, 5, 1, "", "", api_name="/generate"
    )
    assert summary["providers"]["together"] | {"files": [], "latency_s": 0} == {
        "label": "Together AI via Hugging Face", "via": "hf", "ok": True, "seed": 5, "images": 1, "files": [],
        "latency_s": 0, "estimated_cost_usd": "0.0027", "reported_cost_usd": None, "error": None,
        "shortfall": None,
    }  # fmt: skip
    assert (summary["providers"]["fal"]["via"], summary["providers"]["fal"]["ok"]) == ("hf", True)
    assert sorted(c["token_sha256"] for c in space.router_calls({"an api fox"})) == [fingerprint(token)] * 2
    assert sorted(entry["caption"].split(" · ")[0] for entry in gallery) == sorted(
        [LABELS["fal"], LABELS["together"]]
    )
    # Without a token: words, including how to bring one.
    anonymous = call_api(space.url, "generate", ["a fox", ["fal"], 512, 512, 4, -1, 1, "", ""])
    assert anonymous.event == "error"
    assert (
        "No API key for fal.ai" in anonymous.data["error"]
        and "send your hf_ token" in anonymous.data["error"]
    )


def test_mcp_callers_send_their_token_as_a_header(space: Space) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    token = f"hf_mcp_{secrets.token_hex(6)}"

    async def generate() -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            async with streamable_http_client(f"{space.url}gradio_api/mcp/", http_client=http) as (
                read,
                write,
                _,
            ):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    arguments = {"prompt": "an mcp fox", "providers": ["fal"], "width": 512, "height": 512}
                    return await session.call_tool("generate", arguments)

    result = asyncio.run(generate())
    summary = json.loads(result.content[0].text)
    assert (summary["providers"]["fal"]["via"], summary["providers"]["fal"]["ok"]) == ("hf", True)
    assert [c["token_sha256"] for c in space.router_calls({"an mcp fox"})] == [fingerprint(token)]


def test_no_hugging_face_token_reaches_any_surface(space: Space, caplog: pytest.LogCaptureFixture) -> None:
    """docs/reliability.md "Secrets", for the visitors' Hugging Face tokens (tests/test_security.py's
    approach): the page, the API and MCP, successes and failures, every logger at DEBUG; then every
    place a token could end up is searched."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "gradio", "uvicorn", "flux_playground"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    tag = secrets.token_hex(6)
    good, expired, broke = f"hf_oauth_GOOD{tag}", f"hf_expired_EXPIRED{tag}", f"hf_nocredit_BROKE{tag}"
    api_token, mcp_token = f"hf_API{tag}", f"hf_MCP{tag}"
    tokens = [good, expired, broke, api_token, mcp_token]

    def leaks(text: str | bytes) -> list[str]:
        data = text.encode() if isinstance(text, str) else text
        return [token for token in tokens if token.encode() in data]

    signed_in = session_cookie("dee", good)
    seen: list[str] = []
    with httpx.Client(timeout=30, cookies=signed_in) as http:
        for path in ("", "config", "gradio_api/info", "gradio_api/openapi.json"):
            response = http.get(space.url + path)
            assert response.status_code == 200, path
            seen.append(response.text)
    seen.append(asyncio.run(mcp_tool_list(space.url)))
    ran = space.page(f"a secret fox {tag}", ROUTED, signed_in)
    assert ran.success and "Together AI via Hugging Face" in ran.text
    seen.append(ran.text)
    for token in (expired, broke):
        failed = space.page(f"a failing fox {tag}", ["fal", "replicate"], session_cookie("dee", token))
        assert failed.success and "via Hugging Face" in failed.text
        seen.append(failed.text)
    controls = page_fn_index(space.url, "providers", "change")
    body = {"data": event_data(space.url, controls, {"providers": ROUTED}), "fn_index": controls}
    answer = httpx.post(
        f"{space.url}gradio_api/run/predict", json={**body, "session_hash": "hf-keys"}, cookies=signed_in,
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200 and "your HF account" in answer.text
    seen.append(answer.text)
    args = [f"an api secret fox {tag}", ROUTED, 512, 512, 4, 9, 1, "", ""]
    api = call_api(space.url, "generate", args, extra={"oauth_token": api_token})
    assert api.event == "complete" and '"via": "hf"' in api.text
    refused = call_api(space.url, "generate", args, extra={"oauth_token": f"hf_expired_{api_token}"})
    tokens.append(f"hf_expired_{api_token}")
    seen += [api.text, refused.text]
    seen.append(asyncio.run(mcp_generate(space.url, mcp_token, f"an mcp secret fox {tag}")))
    # Every byte the app wrote, read while it still runs (the WAL is checkpointed at close).
    written = {path: path.read_bytes() for path in space.data_dir.rglob("*") if path.is_file()}

    # Each token did reach the router (so the search below looks for tokens that were really used).
    sent = {c["token_sha256"] for c in space.emulator.stats()["providers"][ROUTER]["calls"]}
    assert {fingerprint(t) for t in (good, api_token, mcp_token)} <= sent
    for text in seen:
        assert leaks(text) == [], "a token reached a page, a schema or a response"
    ours = [r for r in caplog.records if not r.name.startswith("flux_playground.emulator")]
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in ours)
    assert len(ours) > 50 and "httpcore" in logged  # DEBUG capture really was on
    assert leaks(logged) == [], "a token was logged"
    pngs = [path for path in written if path.suffix == ".png"]
    assert any(p.name == "history.sqlite3-wal" for p in written) and pngs
    for path, data in written.items():
        assert leaks(data) == [], f"a token is in {path.name}"
    for path in pngs:  # text chunks may be compressed: read them decoded as well
        assert leaks(json.dumps(read_png_text(written[path]))) == []


async def mcp_tool_list(url: str) -> str:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return (await session.list_tools()).model_dump_json()


async def mcp_generate(url: str, token: str, prompt: str) -> str:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        async with streamable_http_client(f"{url}gradio_api/mcp/", http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                arguments = {"prompt": prompt, "providers": ["together"], "width": 512, "height": 512}
                return (await session.call_tool("generate", arguments)).model_dump_json()


@pytest.mark.browser
def test_the_signed_in_picker_in_a_browser(space: Space) -> None:
    """What a visitor sees signed out (what signing in gives) and signed in (fal.ai, Replicate and
    Together ready on their account). Screenshots to $UI_SCREENSHOTS (docs/screenshots/)."""
    from playwright.sync_api import expect, sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-quic"]
    folder = os.environ.get("UI_SCREENSHOTS")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), headless=True, args=args
        )
        try:
            signed_out = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            signed_out.goto(space.url)
            expect(signed_out.locator("#hf-note-text")).to_contain_text("Sign in with Hugging Face")
            expect(signed_out.locator("#providers .fp-row[data-provider=fal] .fp-ready")).to_have_text(
                "needs a key"
            )
            host = space.url.split("//")[1].split(":")[0]
            cookie = session_cookie("ada", f"hf_shot_{secrets.token_hex(6)}")["session"]
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.add_cookies([{"name": "session", "value": cookie, "domain": host, "path": "/"}])
            page = context.new_page()
            page.goto(space.url)
            expect(page.locator("#hf-note-text")).to_contain_text("Signed in with Hugging Face")
            for name in ROUTED:
                expect(page.locator(f"#providers .fp-row[data-provider={name}] .fp-ready")).to_have_text(
                    "your HF account"
                )
            if folder:
                page.wait_for_timeout(500)
                page.locator("#controls").screenshot(path=str(Path(folder) / "picker-signed-in-1440.png"))
        finally:
            browser.close()

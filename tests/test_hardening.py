"""One hostile visitor against a public Space: every finding of the attack on the running app, each
with its test (docs/reliability.md, "What an anonymous visitor can and cannot do").

The app runs as a Space owner sets it up: server keys, a global cap, a per-person cap and a request
rate. Memory figures are measured on `python app.py` in its own process (tier `slow`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio.utils import get_upload_folder
from ui.appclient import Served, call_api, event_data, page_fn_index, run_page, running_app, serve
from ui.conftest import emulator_settings

from flux_playground.emulator.server import EmulatorServer
from flux_playground.http import TooLarge, download, file_cap
from flux_playground.limits import Guard
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS
from flux_playground.settings import Settings
from flux_playground.ui.form import key_field
from flux_playground.ui.gate import client_address

KEY = "sk-pasted-HARDENING-4f1e9a"


@dataclass
class Space:
    url: str
    served: Served
    emulator: EmulatorServer

    def submits(self) -> int:
        stats = self.emulator.stats()["requests"]
        return sum(int(counts.get("submit", 0)) for counts in stats.values())


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Space]:
    """The app as a Space owner runs it (caps $0.05 / $0.02 per person, 5 runs a minute). Tests that
    count runs against the rate each come from an address of their own (`from_address`)."""
    with EmulatorServer(latency=0.05) as emulator:
        settings = emulator_settings(
            emulator,
            tmp_path_factory.mktemp("hardening") / "data",
            daily_budget_usd=Decimal("0.05"),
            per_user_daily_budget_usd=Decimal("0.02"),
            per_user_requests_per_minute=5,
            request_read_timeout=1.0,
            max_connections_per_address=32,
        )
        with serve(settings) as served:
            yield Space(served.url, served, emulator)


def from_address(address: str) -> httpx.Client:
    """A client whose connections come from another loopback address: another person to the app."""
    return httpx.Client(timeout=30, transport=httpx.HTTPTransport(local_address=address))


def controls_call(space: Space, session: str, keys: dict[str, Any], width: Any = 1024) -> httpx.Response:
    """The page's price/controls update, called directly as the page does (an unqueued event)."""
    index = page_fn_index(space.url, "providers", "change")
    values = {
        "providers": ["deepinfra"],
        "width": width,
        **{key_field(name): key for name, key in keys.items()},
    }
    return httpx.post(
        f"{space.url}gradio_api/run/predict",
        content=json.dumps(
            {"data": event_data(space.url, index, values), "fn_index": index, "session_hash": session}
        ),
        headers={"content-type": "application/json"},
        timeout=30,
    )


def page_generate(space: Space, prompt: str, keys: dict[str, str]) -> Any:
    """The page's generate event at DeepInfra, with pasted keys by provider."""
    values = {"prompt": prompt, "providers": ["deepinfra"], "width": 512, "height": 512}
    return run_page(space.url, "generate", {**values, **{key_field(name): key for name, key in keys.items()}})


# --- 1. memory: bodies are bounded, sessions keep no values, idle ones go --------------------------


def test_a_body_over_the_limit_is_refused_before_it_is_read(space: Space) -> None:
    sessions = len(space.served.demo.state_holder.session_data)
    huge = "k" * (5 * 1024 * 1024)
    try:
        answer = controls_call(space, "attacker1", dict.fromkeys(PROVIDERS, huge)).status_code
    except httpx.TransportError:  # the server may close while the body is still being sent
        answer = 413
    assert answer == 413
    assert len(space.served.demo.state_holder.session_data) == sessions


@pytest.mark.slow
def test_sessions_keep_none_of_the_values_they_were_sent(space: Space) -> None:
    """Gradio kept every input of every event per session (deep links read them back); now nothing."""
    pasted = f"{KEY}-{'x' * 300}"
    for n in range(20):
        assert controls_call(space, f"visitor{n}", dict.fromkeys(PROVIDERS, pasted)).status_code == 200
    page_generate(space, "a fox", {"deepinfra": pasted})  # a queued event with the same pasted key
    holder = space.served.demo.state_holder
    assert len(holder.session_data) >= 20
    for session in holder.session_data.values():
        assert len(session.config_values) == 0
        assert KEY not in repr(session.state_data)
        assert not any(
            KEY in str(getattr(block, "value", "")) for block in session.blocks_config.blocks.values()
        )


def test_idle_sessions_are_dropped_but_open_pages_keep_theirs(space: Space) -> None:
    from flux_playground.compat.gradio import drop_idle_sessions

    for n in range(5):
        controls_call(space, f"idle{n}", {})
    demo = space.served.demo
    dropped = drop_idle_sessions(demo, idle_s=0, keep={"idle0"})
    assert dropped >= 4 and set(demo.state_holder.session_data) == {"idle0"}


@pytest.mark.slow
def test_memory_stays_flat_under_the_session_attack(tmp_path: Path) -> None:
    """The attack as found: fresh sessions with big values on the price controls (unqueued) and on
    the generate event (queued, refused by the rate limit). Found: +897 MB and +1.4 GB, never released.

    Now a session keeps no values and at most SESSION_CAPACITY sessions are kept, each about 40 KB of
    heap once the controls' update has run with nine providers (compat/gradio.py), and the controls
    run on the event loop (controls.py): the first wave fills the sessions up to the cap, a second
    wave as large adds nothing. The first wave measured 99–105 MB here and 123 MB once in CI
    (2026-12-02, after the page gained the viewer, the automatic card and a button per card):
    150 MB bounds it; the second wave, the cap at work, stays under 15 MB.
    """
    with running_app(tmp_path, FLUX_PLAYGROUND_PER_USER_REQUESTS_PER_MINUTE="1") as (server, url):
        controls = page_fn_index(url, "providers", "change")
        generate = page_fn_index(url, "generate")
        filler = "v" * 20_000  # three of them: just under the body limit
        big = {key_field(name): filler for name in list(PROVIDERS)[:3]}
        quiet = event_data(url, controls, {})
        loud = event_data(url, controls, big)
        run = event_data(url, generate, {"prompt": "x", **big})
        with httpx.Client(timeout=30) as http:

            def call(path: str, index: int, session: str, values: list[Any]) -> int:
                body = {"data": values, "fn_index": index, "session_hash": session, "event_data": None}
                return http.post(f"{url}gradio_api/{path}", json=body).status_code

            def wave(name: str) -> float:
                for n in range(1500):
                    assert call("run/predict", controls, f"{name}{n}", loud) == 200
                for n in range(300):
                    assert call("queue/join", generate, f"{name}g{n}", run) == 200
                time.sleep(2)
                return _rss_mb(server.pid)

            for n in range(50):  # warm up: what any visitor does
                call("run/predict", controls, f"warm{n}", quiet)
            start = _rss_mb(server.pid)
            first = wave("a")
            second = wave("b")
    assert first - start < 150, f"RSS grew {first - start:.0f} MB with the sessions filled to the cap"
    assert second - first < 15, f"RSS grew {second - first:.0f} MB more once the cap was reached"


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# --- 2. disk: no uploads -----------------------------------------------------------------------------


def test_uploads_are_closed_and_nothing_is_stored(space: Space) -> None:
    folder = Path(get_upload_folder())
    marker = f"upload-{os.getpid()}-{time.monotonic_ns()}"
    files = [("files", (f"{marker}-{n}.bin", os.urandom(64 * 1024))) for n in range(50)]
    try:
        status = httpx.post(f"{space.url}gradio_api/upload", files=files, timeout=30).status_code
    except httpx.TransportError:
        status = 404
    assert status == 404
    assert not list(folder.rglob(f"{marker}-*")) if folder.exists() else True


# --- 3. who a person is --------------------------------------------------------------------------------


def test_mcp_callers_are_counted_by_their_own_address(space: Space) -> None:
    """Each call claims another address in X-Forwarded-For; the rate (5 a minute) still counts one
    person. Found: 6 of 6 admitted, charged to the addresses the caller wrote."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def call(n: int) -> Any:
        headers = {"X-Forwarded-For": f"198.51.100.{n}", "X-Real-IP": f"198.51.100.{n}"}
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.41")
        async with httpx.AsyncClient(headers=headers, timeout=30, transport=transport) as http:
            async with streamable_http_client(f"{space.url}gradio_api/mcp/", http_client=http) as (r, w, _):
                async with ClientSession(r, w) as session:
                    await session.initialize()
                    arguments = {
                        "prompt": f"fox {n}",
                        "providers": ["deepinfra"],
                        "width": 256,
                        "height": 256,
                    }
                    return await session.call_tool("generate", arguments)

    before = space.submits()
    results = [asyncio.run(call(n)) for n in range(6)]
    assert [r.isError for r in results] == [False] * 5 + [True]
    assert "Too many requests" in results[5].content[0].text
    assert space.submits() - before == 5


def test_api_callers_cannot_choose_who_they_are(space: Space) -> None:
    answers = []
    with from_address("127.0.0.42") as http:
        for n in range(6):
            http.headers["X-Forwarded-For"] = f"203.0.113.{n}"
            data = [f"fox {n}", ["deepinfra"], 256, 256, 1, -1, 1, "", ""]
            answers.append(call_api(space.url, "generate", data, client=http))
    assert [a.event for a in answers] == ["complete"] * 5 + ["error"]
    assert "Too many requests" in answers[5].data["error"]


def test_the_client_address_is_read_from_trusted_proxies_only() -> None:
    from ipaddress import ip_network

    trusted = (ip_network("10.0.0.0/8"),)

    def scope(peer: str, forwarded: str | None) -> dict[str, Any]:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (peer, 5000), "headers": headers}

    assert client_address(scope("198.51.100.7", "1.2.3.4"), trusted) == "198.51.100.7"  # not a proxy
    assert client_address(scope("10.0.0.2", "1.2.3.4, 5.6.7.8"), trusted) == "5.6.7.8"  # appended
    assert client_address(scope("10.0.0.2", "1.2.3.4, 5.6.7.8, 10.1.1.1"), trusted) == "5.6.7.8"
    assert client_address(scope("10.0.0.2", None), trusted) == "10.0.0.2"
    assert client_address(scope("127.0.0.1", "1.2.3.4"), ()) == "127.0.0.1"  # loopback is no proxy


# --- 4. keys cannot be pulled back out; unused routes are closed -----------------------------------------

CLOSED_ROUTES = [
    ("GET", "gradio_api/deep_link?session_hash=x"), ("POST", "gradio_api/upload"),
    ("GET", "gradio_api/upload_progress"), ("POST", "gradio_api/run/generate"),
    ("POST", "gradio_api/api/generate"), ("POST", "gradio_api/call/v2/generate"), ("GET", "monitoring"),
    ("POST", "gradio_api/process_recording"), ("POST", "gradio_api/component_server"),
    ("GET", "gradio_api/runs"), ("POST", "gradio_api/run-history/connect"), ("POST", "gradio_api/vibe-edit"),
    ("GET", "gradio_api/stream/x/y/1/playlist.m3u8"), ("GET", "gradio_api/mcp/schema"),
    ("PUT", "gradio_api/queue/join"), ("GET", "gradio_api/user"), ("POST", "gradio_api/call/load_example"),
]  # fmt: skip


def test_routes_the_page_does_not_use_are_closed(space: Space) -> None:
    for method, path in CLOSED_ROUTES:
        response = httpx.request(method, space.url + path, json={"data": []}, timeout=10)
        assert response.status_code == 404, (method, path, response.status_code)


# --- 5. nothing that bills runs outside the path that saves its result -------------------------------


def test_private_events_cannot_run_outside_the_queue(space: Space) -> None:
    generate = page_fn_index(space.url, "generate")
    boxes = space.served.keeper.events[generate].inputs - 13
    data = [
        "a fox",
        ["atlascloud", "deepinfra"],
        512,
        512,
        4,
        -1,
        True,
        1,
        "",
        "",
        None,
        "",
        "",
        *[""] * boxes,
    ]
    before = space.submits()
    response = httpx.post(
        f"{space.url}gradio_api/run/predict", json={"data": data, "fn_index": generate, "session_hash": "s1"}
    )
    assert response.status_code == 422 and "through the queue" in response.json()["error"]
    assert space.submits() == before


# --- 6. the rate survives a restart --------------------------------------------------------------------


async def test_the_rate_limit_survives_a_restart(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, per_user_requests_per_minute=5, demo=True)
    request = GenerationRequest(prompt="a fox", width=512, height=512)
    first = Guard(settings)
    for n in range(5):
        async with first.admit("ip:198.51.100.1", request.model_copy(update={"seed": n}), ["deepinfra"], {}):
            pass
    first.close()
    restarted = Guard(settings)
    with pytest.raises(Exception, match="Too many requests: at most 5 per minute"):
        async with restarted.admit("ip:198.51.100.1", request, ["deepinfra"], {}):
            pass
    async with restarted.admit("ip:198.51.100.2", request, ["deepinfra"], {}):  # someone else
        pass


# --- 7. an expected refusal is one line in the log, never a traceback ----------------------------------


def test_refusals_log_one_line_each(
    space: Space, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    with from_address("127.0.0.43") as http:
        for n in range(8):  # 5 admitted, then refusals by the rate limit
            call_api(
                space.url, "generate", [f"fox {n}", ["deepinfra"], 256, 256, 1, -1, 1, "", ""], client=http
            )
        for n in range(10):  # streams for sessions with nothing queued
            with http.stream(
                "GET", f"{space.url}gradio_api/queue/data", params={"session_hash": f"no{n}"}
            ) as r:
                assert "Session not found" in r.read().decode()
        for _ in range(5):  # a prompt that is not text
            call_api(space.url, "generate", ["", ["deepinfra"], 256, 256, 1, -1, 1, "", ""], client=http)
    time.sleep(0.5)
    text = caplog.text + capfd.readouterr().err
    assert "Traceback" not in text and "Exception in ASGI application" not in text
    refusals = [r for r in caplog.records if r.getMessage().startswith("Refused:")]
    assert len(refusals) == 8 and all(r.exc_info is None for r in refusals)


# --- 8. slow and greedy clients --------------------------------------------------------------------------


def _sockets(url: str, count: int, payload: bytes, source: str = "127.0.0.1") -> list[socket.socket]:
    port = httpx.URL(url).port
    opened = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        if payload:
            sock.sendall(payload)
        opened.append(sock)
    return opened


def _closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_half_sent_and_silent_connections_are_closed(space: Space) -> None:
    """Found: 1 500 half-sent requests still open after 25 s. Here every request must arrive whole
    within 1 s; the app keeps answering everyone else meanwhile."""
    # From several addresses, each below its own bound of 32 connections.
    half = [
        s
        for n in range(3)
        for s in _sockets(space.url, 20, b"GET / HTTP/1.1\r\nX-Slow: ", f"127.0.0.{10 + n}")
    ]
    silent = [s for n in range(3) for s in _sockets(space.url, 20, b"", f"127.0.0.{20 + n}")]
    assert httpx.get(f"{space.url}config", timeout=5).status_code == 200
    time.sleep(1.5)
    assert all(_closed_by_server(sock, 1.0) for sock in half + silent)
    for sock in half + silent:
        sock.close()


@pytest.mark.slow
def test_one_address_cannot_take_every_connection(space: Space) -> None:
    """32 connections per address here: the 33rd from that address is closed at once; another
    address is served."""
    started = time.monotonic()
    mine = _sockets(space.url, 40, b"", source="127.0.0.2")
    time.sleep(0.2)
    # Counted well before the 1 s read deadline would close the silent ones anyway.
    closed = sum(_closed_by_server(sock, 0.001) for sock in mine)
    assert time.monotonic() - started < 0.8
    assert closed >= 8
    assert httpx.get(f"{space.url}config", timeout=5).status_code == 200
    for sock in mine:
        sock.close()


# --- 9. provider downloads are held in bounded buffers ---------------------------------------------------


async def test_an_oversized_download_stops_at_the_size_of_its_image() -> None:
    """Found: every oversized download held up to 40 MB. Now reading stops at 4 bytes a pixel."""
    served = 0

    async def endless() -> Any:  # 64 MB, far past any image: without the cap it is read whole
        nonlocal served
        for _ in range(1024):
            served += 65536
            yield b"\0" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    cap = file_cap(1024 * 1024, 20 * 1024 * 1024)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(TooLarge, match=r"larger than 4\.2 MB"):
            await download(client, "https://cdn.test/x.png", trusted_origin="https://cdn.test", max_bytes=cap,
                           timeout=10)  # fmt: skip
    assert served <= cap + 2 * 65536


# --- 10. words for every odd input ----------------------------------------------------------------------


def test_odd_values_on_page_events_get_words_not_errors(space: Space) -> None:
    for width in ("abc", None, 10**40, -5, [1]):
        response = controls_call(space, "odd", {}, width=width)
        assert response.status_code == 200 and '"cost"' in response.text, (width, response.text[:200])
    nan = controls_call(space, "odd", {}).request.content.replace(b"1024,", b"NaN,", 1)
    response = httpx.post(
        f"{space.url}gradio_api/run/predict", content=nan, headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 422) and "Traceback" not in response.text
    short = httpx.post(
        f"{space.url}gradio_api/run/predict",
        json={
            "data": [["deepinfra"]],
            "fn_index": page_fn_index(space.url, "providers", "change"),
            "session_hash": "s",
        },
    )
    assert short.status_code == 422 and "takes" in short.json()["error"]


def test_a_lone_surrogate_in_the_search_box_is_just_text(space: Space) -> None:
    run = run_page(space.url, "history-search", {"search": "\ud800fox"}, event="change")
    assert run.success and "Something went wrong" not in run.text


def test_a_pasted_key_that_is_not_text_is_refused_with_words(
    space: Space, capfd: pytest.CaptureFixture[str]
) -> None:
    before = space.submits()
    run = page_generate(space, "a fox", {"deepinfra": "clé-ünïcode"})
    assert run.success and "key you pasted is not valid" in run.text
    assert "Traceback" not in capfd.readouterr().err
    assert space.submits() == before

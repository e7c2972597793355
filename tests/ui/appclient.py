"""Plain-HTTP helpers for driving a launched app the way a browser or an API caller does.

    call_api(url, "generate", [...])          POST /gradio_api/call/generate, then read its SSE answer
    run_page_event(url, fn_index, [...])      POST /gradio_api/queue/join as the page does, then read
                                              /gradio_api/queue/data until the event completes
    page_fn_index(url, "generate")            the page's event bound to the element with that elem_id

No gradio_client: these are the raw routes, so a test sees exactly what any caller would.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import httpx

from flux_playground.settings import Settings
from flux_playground.ui import launch_page
from flux_playground.ui.gate import Gatekeeper
from flux_playground.ui.layout import field_name

REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "ApiAnswer",
    "PageRun",
    "call_api",
    "event_data",
    "free_port",
    "page_fn_index",
    "run_page",
    "run_page_event",
    "running_app",
    "Served",
    "serve",
]


@contextmanager
def running_app(workdir: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python app.py` in its own process, as a person starts it (demo mode unless `env` says
    otherwise), in `workdir` with its data there; yields the process and its URL once it answers."""
    port = free_port()
    environment = {
        **os.environ, "PYTHONPATH": str(REPO), "FLUX_PLAYGROUND_DATA_DIR": str(workdir / "data"),
        "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", **env,
    }  # fmt: skip
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, str(REPO / "app.py")], cwd=workdir, env=environment, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, "the app did not start"
            try:
                if httpx.get(url + "config", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield server, url
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


async def mcp_session(url: str, use: Any) -> Any:
    """One MCP session with the app (the `mcp` SDK over streamable HTTP, as agents connect)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await use(session)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Served:
    url: str
    demo: gr.Blocks
    keeper: Gatekeeper


@contextmanager
def serve(settings: Settings, **parts: Any) -> Iterator[Served]:
    """The real page on a free port, launched exactly as app.py launches it (gate, MCP, patches).

    `parts` go to build_page (history=, guard=, playground=); OAuth is off, as outside a Space.
    """
    page = launch_page(settings, server_port=free_port(), quiet=True, oauth=False, **parts)
    try:
        yield Served(page.url, page.demo, page.keeper)
    finally:
        page.close()


@dataclass
class ApiAnswer:
    status: int  # of the POST
    event: str | None  # "complete", "error", or None when the POST itself was refused
    data: Any
    text: str  # everything the server sent, for leak and traceback checks


def call_api(
    url: str,
    api_name: str,
    data: list[Any],
    *,
    timeout: float = 60.0,
    client: httpx.Client | None = None,
    extra: dict[str, Any] | None = None,
) -> ApiAnswer:
    """One call of a public endpoint through /gradio_api/call/<name> and its SSE stream; `extra` adds
    fields to the body beside `data` (gradio_client's `oauth_token`)."""
    http = client or httpx.Client(timeout=timeout)
    try:
        # json.dumps, not httpx's encoder: NaN and Infinity are sent as a raw caller could send them.
        posted = http.post(
            f"{url.rstrip('/')}/gradio_api/call/{api_name}",
            content=json.dumps({"data": data, **(extra or {})}),
            headers={"content-type": "application/json"},
        )
        if posted.status_code != 200:
            return ApiAnswer(posted.status_code, None, None, posted.text)
        event_id = posted.json()["event_id"]
        event, payload, text = None, None, ""
        with http.stream("GET", f"{url.rstrip('/')}/gradio_api/call/{api_name}/{event_id}") as stream:
            current = None
            for line in stream.iter_lines():
                text += line + "\n"
                if line.startswith("event:"):
                    current = line.partition(":")[2].strip()
                elif line.startswith("data:") and current in ("complete", "error"):
                    event, payload = current, json.loads(line.partition(":")[2])
                    break
        return ApiAnswer(200, event, payload, text)
    finally:
        if client is None:
            http.close()


@dataclass
class PageRun:
    success: bool
    messages: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""

    @property
    def error(self) -> Any:
        done = self.messages[-1] if self.messages else {}
        return (done.get("output") or {}).get("error")


def run_page_event(
    url: str,
    fn_index: int,
    data: list[Any],
    *,
    timeout: float = 60.0,
    session_hash: str | None = None,
    sink: list[str] | None = None,
    cookies: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> PageRun:
    """Start one of the page's (private) events through the queue, exactly as the page does.

    `sink` receives every streamed message as it arrives (to see what a client got before a crash);
    `cookies` are the browser's (a signed-in session); `headers` go with every request
    (X-Forwarded-For, as a proxy in front of the app adds it).
    """
    session = session_hash or secrets.token_hex(8)
    base = url.rstrip("/")
    with httpx.Client(timeout=timeout, cookies=cookies, headers=headers) as http:
        # json.dumps, not httpx's encoder: escaped as any browser sends it (NaN and lone surrogates too).
        joined = http.post(
            f"{base}/gradio_api/queue/join",
            content=json.dumps(
                {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None}
            ),
            headers={"content-type": "application/json"},
        )
        joined.raise_for_status()
        run = PageRun(False)
        with http.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                run.text += line + "\n"
                if sink is not None:
                    sink.append(line)
                message = json.loads(line[5:])
                run.messages.append(message)
                if message.get("msg") in ("process_completed", "unexpected_error"):
                    run.success = bool(message.get("success"))
                    break
        return run


def event_data(url: str, fn_index: int, values: dict[str, Any]) -> list[Any]:
    """The `data` of one of the page's events, built by form field name (layout.field_name): named
    values where given, else each component's value on a fresh page. The browser id (a BrowserState,
    which has no elem_id) is the field "browser_id"."""
    config = httpx.get(f"{url.rstrip('/')}/config", timeout=30).json()
    components = {c["id"]: c for c in config["components"]}
    dependency = next(d for i, d in enumerate(config["dependencies"]) if d.get("id", i) == fn_index)
    data = []
    for component_id in dependency["inputs"]:
        component = components[component_id]
        element = component.get("props", {}).get("elem_id")
        unnamed = "browser_id" if component["type"] == "browserstate" else ""
        name = field_name(element) if element else unnamed
        data.append(values[name] if name in values else component.get("props", {}).get("value"))
    return data


def run_page(
    url: str, elem_id: str, values: dict[str, Any], *, event: str = "click", **options: Any
) -> PageRun:
    """The page's event fired by `event` on #elem_id, with its inputs named (`event_data`), run
    exactly as the page runs it (`run_page_event`)."""
    fn_index = page_fn_index(url, elem_id, event)
    return run_page_event(url, fn_index, event_data(url, fn_index, values), **options)


def page_fn_index(url: str, elem_id: str, event: str = "click") -> int:
    """The index of the page's event fired by `event` on the component with this elem_id."""
    config = httpx.get(f"{url.rstrip('/')}/config", timeout=30).json()
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    for index, dependency in enumerate(config["dependencies"]):
        if any(target[0] in ids and target[1] == event for target in dependency["targets"]):
            return int(dependency.get("id", index))
    raise LookupError(f"no {event} event on #{elem_id}")

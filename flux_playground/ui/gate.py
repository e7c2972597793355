"""The gate: the only way into the page's server. An ASGI middleware inside Gradio's app.

Gradio serves about sixty routes; the page uses a dozen. A public Space must not offer the others
(an attack used `/gradio_api/upload` to fill the disk, `/gradio_api/deep_link` to read pasted keys
back, and `/gradio_api/run/predict` to start billable events outside the path that saves their
result; docs/reliability.md). So every request is checked here before Gradio sees it:

- **Routes**: only those the page, the public API, MCP and sign-in use (ROUTES); anything else is
  404, whatever Gradio would have done with it.
- **Bodies**: at most `body_limit` bytes, read whole before Gradio sees them (413 otherwise).
- **Events**: a queued call names an existing event with exactly as many values as it has inputs; a
  direct (unqueued) call only names an unqueued event, i.e. a price or control update, never a
  generation; `/gradio_api/call/<name>` only names a public API. Refusals are 422 with words.
- **Who is calling**: the client's address is decided here (`client_address`) and written into the
  request, so the handlers' limits see the real person (see docs/reliability.md "Who a person is").
- **Streams**: `/gradio_api/queue/data` for a session with nothing queued answers Gradio's own "session
  not found" message at once (Gradio itself raises after starting the response: one ASGI traceback
  in the log per such request). Open heartbeats are counted: those pages' sessions are kept.

MCP requests go to the MCP app (flux_playground/mcp.py), not to Gradio's MCP server (off).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..compat.gradio import EventInfo
from ..compat.uvicorn import Network, in_networks

__all__ = ["BODY_LIMIT", "Gate", "Gatekeeper", "client_address"]

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Far above any honest request (a 4 000-character prompt, nine keys) and far below harm.
BODY_LIMIT = 64 * 1024
_API = "/gradio_api"
_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")

_PAGE_GETS = frozenset({
    "/", "/config", "/config/", "/theme.css", "/favicon.ico", "/manifest.json", "/robots.txt",
    f"{_API}/info", f"{_API}/info/", f"{_API}/openapi.json", f"{_API}/startup-events",
    "/login/huggingface", "/login/callback", "/logout",
})  # fmt: skip
_PAGE_GET_PREFIXES = ("/assets/", "/static/", "/pwa_icon", "/svelte/", f"{_API}/file=")
_MCP = f"{_API}/mcp"


@dataclass
class Gatekeeper:
    """What the gate needs to know of the page, and what it counts (shared with the session sweep)."""

    events: Mapping[int, EventInfo]
    trusted_proxies: tuple[Network, ...] = ()
    has_pending_session: Callable[[str], bool] = lambda session: True
    mcp: ASGIApp | None = None
    body_limit: int = BODY_LIMIT
    #: Sessions with a page open right now (a heartbeat stream), by how many streams.
    open_pages: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def public_api(self) -> frozenset[str]:
        return frozenset(e.api_name for e in self.events.values() if e.public and e.api_name)


def client_address(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The address of the person behind a request.

    The peer itself, unless it is a trusted proxy: then the right-most address of X-Forwarded-For
    that is not a trusted proxy (each proxy appends the address it saw, so the left part is written
    by the client and proves nothing). All trusted: the left-most one.
    """
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not in_networks(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            hops += [hop.strip() for hop in value.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not in_networks(hop, trusted):
            return hop
    return hops[0] if hops else peer


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Gate:
    def __init__(self, app: ASGIApp, keeper: Gatekeeper) -> None:
        self.app, self.keeper = app, keeper

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await _answer(send, 404, {"detail": "Not Found"})
            return
        address = client_address(scope, self.keeper.trusted_proxies)
        scope["client"] = (address, 0)
        method, path = scope["method"], scope["path"]
        try:
            if path in (_MCP, _MCP + "/"):
                await self._mcp(scope, receive, send)
            elif method in ("GET", "HEAD"):
                await self._get(scope, receive, send, path)
            elif method == "POST":
                await self._post(scope, receive, send, path)
            else:
                raise _Refused(404, "Not Found")
        except _Refused as refused:
            self.keeper.refused[f"{refused.status} {method} {path[:40]}"] += 1
            await _answer(send, refused.status, {"detail": refused.message, "error": refused.message})

    # --- routes --------------------------------------------------------------------------------

    async def _get(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if path in _PAGE_GETS or path.startswith(_PAGE_GET_PREFIXES):
            await self.app(scope, receive, send)
        elif path.startswith(f"{_API}/heartbeat/"):
            await self._heartbeat(scope, receive, send, path.rsplit("/", 1)[-1])
        elif path == f"{_API}/queue/data":
            session = _query(scope, "session_hash")
            if not _SESSION.fullmatch(session) or not self.keeper.has_pending_session(session):
                await _session_not_found(send)
            else:
                await self.app(scope, receive, send)
        elif path.startswith(f"{_API}/call/"):
            name = path.removeprefix(f"{_API}/call/").split("/")[0]
            self._public(name)
            await self.app(scope, receive, send)
        else:
            raise _Refused(404, "Not Found")

    async def _post(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if path == f"{_API}/queue/join":
            body = await self._body(receive)
            self._event(body, queued=True)
        elif path == f"{_API}/run/predict":
            body = await self._body(receive)
            self._event(body, queued=False)
        elif path in (f"{_API}/cancel", f"{_API}/reset"):
            body = await self._body(receive)
        elif path.startswith(f"{_API}/call/") and path.count("/") == 3:
            name = path.removeprefix(f"{_API}/call/")
            info = self._public(name)
            body = await self._body(receive)
            self._values(_json_object(body), info, name)
        else:
            raise _Refused(404, "Not Found")
        await self.app(scope, _replay(body), send)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.keeper.mcp is None:
            raise _Refused(404, "Not Found")
        if scope["method"] == "POST":
            body = await self._body(receive)
            receive = _replay(body)
        await self.keeper.mcp(scope, receive, send)

    async def _heartbeat(self, scope: Scope, receive: Receive, send: Send, session: str) -> None:
        if not _SESSION.fullmatch(session):
            raise _Refused(404, "Not Found")
        self.keeper.open_pages[session] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.keeper.open_pages[session] -= 1
            if self.keeper.open_pages[session] <= 0:
                del self.keeper.open_pages[session]

    # --- checks --------------------------------------------------------------------------------

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "The request was not sent whole.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.keeper.body_limit:
                raise _Refused(413, f"Request too large: at most {self.keeper.body_limit // 1024} KB.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _public(self, name: str) -> EventInfo:
        for info in self.keeper.events.values():
            if info.public and info.api_name == name:
                return info
        known = ", ".join(sorted(self.keeper.public_api))
        raise _Refused(404, f"No API named {name[:40]!r}. This app's API: {known}.")

    def _event(self, body: bytes, *, queued: bool) -> None:
        call = _json_object(body)
        index = call.get("fn_index")
        info = self.keeper.events.get(index) if isinstance(index, int) else None
        if info is None:
            raise _Refused(422, "Unknown event.")
        if info.queued and not queued:
            # A direct call of a queued event would run it outside the path that saves its result.
            raise _Refused(422, "This event runs through the queue only.")
        if queued and not info.queued:
            raise _Refused(422, "Unknown event.")
        session = call.get("session_hash")
        if not isinstance(session, str) or not _SESSION.fullmatch(session):
            raise _Refused(422, "A session id (letters, digits, - or _, at most 64) is required.")
        self._values(call, info, info.api_name or "this event")

    @staticmethod
    def _values(call: Mapping[str, Any], info: EventInfo, name: str) -> None:
        data = call.get("data")
        if not isinstance(data, list) or len(data) != info.inputs:
            got = f"got {len(data)}" if isinstance(data, list) else "got no list"
            raise _Refused(422, f"{name} takes {info.inputs} values in `data`; {got}.")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Refused(422, "The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise _Refused(422, "The body must be a JSON object.")
    return value


def _query(scope: Scope, name: str) -> str:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else ""


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _answer(send: Send, status: int, payload: Mapping[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _session_not_found(send: Send) -> None:
    # The message Gradio's own stream sends for an unknown session (gradio/routes.py, queue_data).
    message = {
        "msg": "unexpected_error", "event_id": None, "message": "Session not found.",
        "session_not_found": True, "success": False,
    }  # fmt: skip
    body = f"data: {json.dumps(message)}\n\n".encode()
    headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

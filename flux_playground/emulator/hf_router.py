"""Hugging Face's router (Inference Providers), emulated under ``/hf_router``.

Written from docs/providers/hf-router.md (anchors below are its sections), not from the client. The
router is not a model host: ``/hf_router/<prefix>/<the provider's own path>`` is answered by that
provider's own emulated routes, as the real router forwards a request (#endpoint-and-auth):

- ``Authorization: Bearer hf_…`` is checked here: no Bearer token, a token that is not ``hf_…``, or
  an ``hf_invalid…`` / ``hf_expired…`` one is 401 in the Hub's words (#errors [S]);
- an ``hf_nocredit…`` token, or the ``credits`` fault, is 402 out of credits (#errors);
- the request then reaches the provider with the router's own key, in the provider's own scheme
  (fal's ``Key``), and everything the provider answers is passed through (#errors: other statuses are
  the provider's); its URLs point back at the router (an assumption: the docs do not say where a
  routed Replicate prediction's ``urls.get`` points).

What a provider serves as a file (its ``/files/…``, the stand-in for its CDN) needs no token, as a
CDN on another origin would not. Each call the router forwarded is recorded with a fingerprint of its
token (sha256, never the token) and its prompt, so a test can tell whose token reached which request.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Message, Receive, Scope, Send

from .common import bearer_token
from .emulated import EmulatedProvider, ProviderState
from .faults import Dialect
from .state import EmulatorState

__all__ = ["DIALECT", "NAME", "OUT_OF_CREDITS", "PROVIDER", "ROUTED", "UNAUTHORIZED", "RouterState", "routes"]

NAME = "hf_router"
# #endpoint-and-auth: the router's prefix for each provider -> the emulated provider behind it, and the
# scheme that provider's own key travels in (docs/providers/fal.md: `Key`; the others Bearer).
ROUTED: dict[str, tuple[str, str]] = {
    "fal-ai": ("fal", "Key"),
    "replicate": ("replicate", "Bearer"),
    "together": ("together", "Bearer"),
}
#: The router's own account at each provider (any key works at the emulated providers).
ROUTER_KEY = "emulator-router-key"
# #errors: the Hub's 401 as public reports quote it [S]; the router's own wording is unconfirmed.
UNAUTHORIZED = "Invalid credentials in Authorization header"
# #errors: the 402 text quoted in public logs [S]; the body's shape is unconfirmed, so JSON {"error"}.
OUT_OF_CREDITS = (
    "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get "
    "20x more monthly included credits."
)
_REFUSED_TOKENS = ("hf_invalid", "hf_expired")
_BROKE_TOKENS = ("hf_nocredit",)
_FILES = "/files/"
_RECENT = 500


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


DIALECT = Dialect(
    provider=NAME,
    error=_error,
    unauthorized_message=UNAUTHORIZED,
    credits_status=402,
    credits_message=OUT_OF_CREDITS,
    rate_limit_message="Rate limit reached. You reached free usage limit (reset hourly).",  # assumption
)


@dataclass
class RouterState(ProviderState):
    """The calls the router forwarded, newest last: route, method, path, token fingerprint, prompt."""

    calls: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=_RECENT))

    def reset(self) -> None:
        self.calls.clear()

    def stats(self) -> dict[str, object]:
        return {"calls": list(self.calls)}


def fingerprint(token: str) -> str:
    """What the emulator keeps of a token: its sha256 (a test computes the same from its own token)."""
    return hashlib.sha256(token.encode()).hexdigest()


ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Hop:
    """One routed provider: check the Hugging Face token, then hand the request to the provider."""

    def __init__(self, state: EmulatorState, prefix: str, scheme: str, provider: ASGI) -> None:
        self.state, self.prefix, self.scheme, self.provider = state, prefix, scheme, provider
        self.own = state.provider_state(NAME, RouterState)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        inner = scope["path"].removeprefix(scope.get("root_path", ""))
        if inner.startswith(_FILES):
            self.state.hit(request, NAME, "download", f"/{self.prefix}/files/{{file}}")
            await self.provider(scope, receive, send)
            return
        stage = "submit" if request.method == "POST" else "poll"
        self.state.hit(request, NAME, stage, f"/{self.prefix}/{{path}}")
        refused = await self.state.queued_fault(NAME, stage, request, DIALECT) or self._refused(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        body = await request.body()
        self.state.log_request(request, NAME, stage, _json(body))
        self.own.calls.append({
            "route": self.prefix, "method": request.method, "path": inner,
            "token_sha256": fingerprint(bearer_token(request) or ""), "prompt": _prompt(_json(body)),
        })  # fmt: skip
        await self.provider(self._with_router_key(scope), _replay(body, receive), send)

    @staticmethod
    def _refused(request: Request) -> Response | None:
        token = bearer_token(request)
        if token is None or not token.startswith("hf_") or token.startswith(_REFUSED_TOKENS):
            return _error(401, UNAUTHORIZED)
        if token.startswith(_BROKE_TOKENS):
            return _error(402, OUT_OF_CREDITS)
        return None

    def _with_router_key(self, scope: Scope) -> Scope:
        # The router calls the provider on its own account: the person's token goes no further.
        headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
        headers.append((b"authorization", f"{self.scheme} {ROUTER_KEY}".encode()))
        return {**scope, "headers": headers}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # a disconnect, for a provider that waits for one (the hang fault)

    return replayed


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _prompt(body: Any) -> str | None:
    """The prompt of a provider's body: top level (fal, Together) or under `input` (Replicate)."""
    if isinstance(body, dict):
        nested = body.get("input")
        prompt = body.get("prompt") or (nested.get("prompt") if isinstance(nested, dict) else None)
        return prompt[:200] if isinstance(prompt, str) else None
    return None


def routes(state: EmulatorState) -> list[BaseRoute]:
    mounted: list[BaseRoute] = []
    for prefix, (provider, scheme) in ROUTED.items():
        behind = state.providers.get(provider)
        if behind is None:  # a server without that provider routes nothing to it
            continue
        app = Router(routes=behind.routes(state))
        mounted.append(Mount(f"/{prefix}", app=_Hop(state, prefix, scheme, app)))

    async def unknown(request: Request) -> Response:
        state.hit(request, NAME, "unmatched", "/{path}")
        return _error(404, f"Not Found: {request.method} {request.url.path}")

    return [*mounted, Route("/{path:path}", unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    # The forwarded POST (the billable call) and GETs (polls); files are the provider's own.
    stages=("submit", "poll"),
    make_state=RouterState,
)

"""Assembly: one Starlette app, one mount per provider, the control API beside them.

The client's base URL for a provider is ``http://127.0.0.1:PORT/<provider>``; it
appends the provider's documented paths (PROVIDERS.md 1.1, 2.1, 3.1, 3.2).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from . import atlascloud, control, deepinfra, segmind
from .faults import PROVIDERS, RAW_SEND_KEY, RESET_KEY
from .state import EmulatorState

__all__ = ["EmulatorApp", "create_app"]


class EmulatorApp:
    """ASGI entry point wrapping the Starlette app.

    It stores the server's own ``send`` in the scope before Starlette wraps it (the
    ``reset`` fault needs it to reach the socket), and counts response statuses per
    provider, including requests that get no response at all.
    """

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.starlette = Starlette(routes=[
            Mount("/atlascloud", routes=atlascloud.routes(state)),
            Mount("/deepinfra", routes=deepinfra.routes(state)),
            Mount("/segmind", routes=segmind.routes(state)),
            Mount("/_emulator", routes=control.routes(state)),
            Route("/", _index, methods=["GET"]),
        ])  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)
            return
        scope[RAW_SEND_KEY] = send
        provider = scope["path"].split("/", 2)[1]
        if provider not in PROVIDERS:
            await self.starlette(scope, receive, send)
            return
        status = "no_response"

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.starlette(scope, receive, counting_send)
        finally:
            self.state.statuses[provider]["no_response" if scope.get(RESET_KEY) else status] += 1


async def _index(request: Request) -> Response:
    return JSONResponse({
        "emulator": "flux-playground provider emulator (placeholder images, not FLUX)",
        "base_urls": {p: f"{request.base_url}{p}" for p in PROVIDERS},
        "control": f"{request.base_url}_emulator/",
    })  # fmt: skip


def create_app(latency: float = 0.3, state: EmulatorState | None = None) -> EmulatorApp:
    """The ASGI app; pass ``state`` to keep a handle on it (EmulatorServer does)."""
    return EmulatorApp(state or EmulatorState(base_latency=latency, latency=latency))

"""Assembly: one Starlette app, one mount per registered provider, the control API beside them.

The client's base URL for a provider is ``http://127.0.0.1:PORT/<provider>``; it
appends the provider's documented paths (docs/providers/<name>.md#endpoint-and-auth). The
mounts come from the registry as it is when the app is created (see registry.py).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from . import control
from .drift import DriftingSend
from .faults import RAW_SEND_KEY, RESET_KEY
from .registry import snapshot
from .state import EmulatorState

__all__ = ["EmulatorApp", "create_app"]


class EmulatorApp:
    """ASGI entry point wrapping the Starlette app.

    It stores the server's own ``send`` in the scope before Starlette wraps it (the
    ``reset`` fault needs it to reach the socket), counts response statuses per
    provider, including requests that get no response at all, and makes the answers
    of a provider set to drift do so (drift.py).
    """

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.starlette = Starlette(routes=[
            *(Mount(f"/{name}", routes=p.routes(state)) for name, p in state.providers.items()),
            Mount("/_emulator", routes=control.routes(state)),
            Route("/", self._index, methods=["GET"]),
        ])  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)
            return
        scope[RAW_SEND_KEY] = send
        provider = scope["path"].split("/", 2)[1]
        if provider not in self.state.providers:
            await self.starlette(scope, receive, send)
            return
        status = "no_response"

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        drift = self.state.drift.get(provider)
        answer: Send = counting_send if drift is None else DriftingSend(counting_send, drift, scope["method"])
        try:
            await self.starlette(scope, receive, answer)
        finally:
            self.state.statuses[provider]["no_response" if scope.get(RESET_KEY) else status] += 1

    async def _index(self, request: Request) -> Response:
        return JSONResponse({
            "emulator": "flux-playground provider emulator (placeholder images, not FLUX)",
            "base_urls": {p: f"{request.base_url}{p}" for p in self.state.providers},
            "control": f"{request.base_url}_emulator/",
        })  # fmt: skip


def create_app(latency: float = 0.3, state: EmulatorState | None = None) -> EmulatorApp:
    """The ASGI app, serving the providers registered now (or those of ``state``)."""
    return EmulatorApp(state or EmulatorState(snapshot(), base_latency=latency, latency=latency))

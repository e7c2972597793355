"""Launching the page: the one way app.py, the tests and the benchmarks start it.

    page = launch_page(settings, server_name="127.0.0.1", server_port=7860)
    page.url, page.demo, page.keeper        # the address, the Blocks, what the gate counts
    page.block()                            # serve until Ctrl+C;  page.close() to stop

Everything a public Space needs around Gradio is put in place here: the patches of compat/gradio.py
(installed by `prepare_process`, once per process), the gate in front of every route (ui/gate.py),
the MCP server behind it (flux_playground/mcp_tools.py), the queue without direct REST calls, and a
sweep that drops idle sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import resource
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from ..compat import gradio as gradio_compat
from ..compat.uvicorn import ConnectionLimits, Network
from ..models import GenerationResult
from ..settings import Settings
from .gate import Gate, Gatekeeper
from .theme import LAUNCH_KWARGS

__all__ = ["QUEUE_SIZE", "RunningPage", "connection_limits", "launch_page", "prepare_process"]

log = logging.getLogger(__name__)

#: People waiting beyond this get "Queue is full" at once rather than a very long wait.
QUEUE_SIZE = 256
#: Sessions with no open page are dropped after this long unused (Gradio keeps them until 10 000
#: newer ones exist); an open page keeps its session through its heartbeat.
SESSION_IDLE_S = 10 * 60.0
_SWEEP_EVERY_S = 60.0


@dataclass
class RunningPage:
    url: str
    demo: gr.Blocks
    keeper: Gatekeeper

    def block(self) -> None:
        self.demo.block_thread()

    def close(self) -> None:
        self.demo.close()


def connection_limits(settings: Settings) -> ConnectionLimits:
    networks: list[Network] = [ipaddress.ip_network(net, strict=False) for net in settings.proxy_networks()]
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Leave files for the database, images and outbound provider connections.
    room = settings.max_connections if soft == resource.RLIM_INFINITY else max(64, soft - 512)
    return ConnectionLimits(
        read_timeout_s=settings.request_read_timeout,
        max_connections=min(settings.max_connections, room),
        max_per_address=settings.max_connections_per_address,
        trusted_proxies=tuple(networks),
    )


def prepare_process(settings: Settings) -> None:
    """Before a page is served: room for connections, then Gradio's patches with the limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < hard:
        # Every connection is a file; a low soft limit (1 024 is common) lets one client starve the
        # server of them. The guarded protocol bounds connections below what is left.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gradio_compat.install(connection_limits(settings))


def launch_page(
    settings: Settings,
    *,
    server_name: str | None = None,
    server_port: int | None = None,
    quiet: bool = False,
    oauth: bool | None = None,
    **parts: Any,
) -> RunningPage:
    """Build the page on `settings` and serve it; `parts` go to build_page (playground=, history=,
    guard=) so tests can hand in their own."""
    from ..mcp_tools import create_mcp
    from . import allowed_paths, build_page  # the page module imports this one

    prepare_process(settings)
    page = build_page(settings, oauth=oauth, **parts)
    demo, backend = page.demo, page.backend
    host = server_name or os.getenv("GRADIO_SERVER_NAME", "127.0.0.1")

    async def publish(result: GenerationResult) -> list[str]:
        paths = await asyncio.to_thread(backend.scratch.write, result)
        return [f"/gradio_api/file={path}" for path in paths]

    mcp = create_mcp(backend.playground, publish, loopback_only=host in ("127.0.0.1", "localhost", "::1"))
    keeper = Gatekeeper(
        events=gradio_compat.events(demo),
        trusted_proxies=connection_limits(settings).trusted_proxies,
        has_pending_session=lambda session: gradio_compat.has_pending_session(demo, session),
        mcp=mcp.asgi,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        sweep = asyncio.create_task(_sweep_sessions(demo, keeper))
        try:
            async with mcp.running():
                yield
        finally:
            sweep.cancel()

    # api_open=False: the REST routes never run a queued event directly (the gate refuses that too).
    demo.queue(max_size=QUEUE_SIZE, api_open=False)
    _, url, _ = demo.launch(
        server_name=host,
        server_port=server_port,
        allowed_paths=allowed_paths(settings),
        prevent_thread_lock=True,
        quiet=quiet,
        mcp_server=False,  # flux_playground/mcp_tools.py serves MCP, behind the gate
        app_kwargs={"middleware": [Middleware(Gate, keeper=keeper)], "lifespan": lifespan},
        **gradio_compat.launch_kwargs(),
        **LAUNCH_KWARGS,
    )
    return RunningPage(str(url), demo, keeper)


async def _sweep_sessions(demo: gr.Blocks, keeper: Gatekeeper) -> None:
    while True:
        await asyncio.sleep(_SWEEP_EVERY_S)
        dropped = gradio_compat.drop_idle_sessions(demo, idle_s=SESSION_IDLE_S, keep=set(keeper.open_pages))
        if dropped:
            log.info("Dropped %d idle sessions", dropped)

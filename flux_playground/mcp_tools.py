"""The playground as MCP tools, over streamable HTTP at /gradio_api/mcp/ (the mcp SDK, no Gradio).

    generate    run a prompt at one or more providers, or "auto": the images (as image content) and a
                summary (for auto: which provider served it, what was tried and why)
    prices      what one run would cost at every provider, and whether each can run it now
    providers   what each provider honours (sizes, steps, seed) and whether it is ready
    stats       how fast and how reliably each provider answered this app's recent runs

Served by the page's server behind its gate (ui/gate.py), which decides who the caller is: the tools
run in the request of the MCP client itself, so the spend limits count the real client, never an
address a caller wrote into a header. Tools call the same backend as the page, the API and the CLI.

A Hugging Face token comes as the MCP client's own `Authorization: Bearer hf_…` header (as Hugging
Face's MCP clients send it), never as a tool argument, which an agent would write into its transcript:
`generate` then runs the providers Hugging Face routes through its router, on that account.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ImageContent, TextContent
from pydantic import Field, SecretStr

from .errors import PlaygroundError
from .images import make_thumbnail
from .models import GenerationRequest, GenerationResult
from .providers import PROVIDERS
from .quotes import describe_providers, price_rows
from .route_models import AUTO, AutoRoute, Preference, parse_ceiling
from .runs import build_request, check_providers, summarize
from .service import Playground

__all__ = ["McpApp", "create_mcp"]

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
#: Written PNGs of a result -> the URL paths they are served at (the page's file route).
Publish = Callable[[GenerationResult], Awaitable[list[str]]]
#: The preview sent as image content: big enough to judge, small enough for an agent's context.
_PREVIEW_SIZE, _PREVIEW_QUALITY = 768, 82


@dataclass
class McpApp:
    server: FastMCP
    asgi: ASGIApp

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the MCP session manager for as long as the page's server runs."""
        async with self.server.session_manager.run():
            yield


def create_mcp(playground: Playground, publish: Publish, *, loopback_only: bool) -> McpApp:
    # DNS-rebinding protection for a server on loopback (a web page must not drive it); a public
    # server has no fixed host name to check against.
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=loopback_only,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    server = FastMCP(
        "flux-playground",
        instructions="Generate FLUX.1 [schnell] images at hosted providers, with prices before you pay.",
        stateless_http=True,
        json_response=True,
        transport_security=security,
    )
    _tools(server, playground, publish)
    server.streamable_http_app()  # creates the session manager
    manager = server.session_manager

    async def asgi(scope: Scope, receive: Any, send: Any) -> None:
        await manager.handle_request(scope, receive, send)

    return McpApp(server, asgi)


def _field(name: str) -> Any:
    """The request model's own description of a field, so the tool and the API say the same."""
    return Field(description=GenerationRequest.model_fields[name].description)


def _person(ctx: Context[Any, Any, Any]) -> str:
    request = ctx.request_context.request
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return f"ip:{host}" if isinstance(host, str) and host else "ip:unknown"


def _hf_token(ctx: Context[Any, Any, Any]) -> SecretStr | None:
    """The caller's Hugging Face token, from its own Authorization header (for this call only).

    Only an hf_ token: a Bearer header meant for something else (a gateway in front of the server)
    is never handed to Hugging Face."""
    headers = getattr(ctx.request_context.request, "headers", None)
    value = headers.get("authorization", "") if headers is not None else ""
    scheme, _, token = value.partition(" ")
    token = token.strip()
    return SecretStr(token) if scheme.lower() == "bearer" and token.startswith("hf_") else None


def _root(ctx: Context[Any, Any, Any]) -> str:
    request = ctx.request_context.request
    base = getattr(request, "base_url", None)
    return str(base).rstrip("/") if base is not None else ""


def _name_the_providers(schema: dict[str, Any]) -> None:
    """Called when the tool's schema is built (create_mcp), so every provider registered by then is
    named in it."""
    names = json.dumps(list(PROVIDERS))
    schema["description"] = (
        f'Provider ids to run at, all at once: one or more of {names}, or "auto": the best ready provider '
        "(see prefer and max_cost_usd), and if it refuses the job before accepting it, the next one."
    )


_PROVIDERS_FIELD = Field(
    description="Provider ids to run at, all at once.", json_schema_extra=_name_the_providers
)
_VIA_FIELD = Field(
    description='"hf": through Hugging Face\'s router, billed to the Hugging Face account whose token this '
    "MCP client sends in its Authorization header (Bearer hf_…); only providers with a hugging_face_route "
    "(see `providers`). \"direct\": the providers' own APIs on this server's keys. Empty: Hugging Face "
    "only for the routed providers this server has no key for, when a token was sent."
)


def _tools(server: FastMCP, playground: Playground, publish: Publish) -> None:
    @server.tool(structured_output=False)
    async def generate(
        prompt: Annotated[str, _field("prompt")],
        providers: Annotated[list[str], _PROVIDERS_FIELD],
        ctx: Context[Any, Any, Any],
        width: Annotated[int, _field("width")] = 1024,
        height: Annotated[int, _field("height")] = 1024,
        steps: Annotated[int, _field("steps")] = 4,
        seed: Annotated[int | None, _field("seed")] = None,
        num_images: Annotated[int, _field("num_images")] = 1,
        via: Annotated[Literal["direct", "hf"] | None, _VIA_FIELD] = None,
        prefer: Annotated[Preference, _PREFER_FIELD] = "cheapest",
        max_cost_usd: Annotated[float | None, _CEILING_FIELD] = None,
    ) -> list[TextContent | ImageContent]:
        """Generate images with FLUX.1 [schnell] at one or more hosted providers at once, or at the
        best ready one ("auto": the cheapest, or the fastest by this app's recent runs, under an
        optional price ceiling).

        Every provider gets the same prompt and seed. Returns a JSON summary (per provider: seed,
        latency, estimated and reported cost, whether it ran through Hugging Face, the URLs of the full
        PNGs, or the error; for "auto" also the provider that served it and the route: what was tried
        and why) and each image as image content (a WebP preview; the PNG at its URL carries the
        parameters).
        """
        try:
            names = check_providers(_with_route(providers, prefer, max_cost_usd))
            request = build_request(prompt, width, height, steps, seed, num_images, None, None)
            last = None
            runs = playground.run(
                request, names, person=_person(ctx), hf_token=_hf_token(ctx), via=via, tick=None
            )
            async for snapshot in runs:
                last = snapshot
        except PlaygroundError as exc:
            raise ToolError(exc.message) from None
        assert last is not None
        root = _root(ctx)
        content: list[TextContent | ImageContent] = []
        files: dict[str, list[str]] = {}
        for name, slot in last.slots.items():
            if slot.result is None:
                continue
            files[name] = [root + path for path in await publish(slot.result)]
            for image in slot.result.images:
                preview = await asyncio.to_thread(
                    make_thumbnail, image.png, size=_PREVIEW_SIZE, quality=_PREVIEW_QUALITY
                )
                content.append(_image(preview))
        summary = summarize(last, files)
        content.insert(0, TextContent(type="text", text=json.dumps(summary, indent=1)))
        return content

    @server.tool(structured_output=False)
    async def prices(
        width: Annotated[int, _field("width")] = 1024,
        height: Annotated[int, _field("height")] = 1024,
        steps: Annotated[int, _field("steps")] = 4,
        num_images: Annotated[int, _field("num_images")] = 1,
    ) -> list[TextContent]:
        """What one run of these settings would cost at every provider, before paying: the estimate
        in USD and its basis, whether the provider is ready on this server, whether it can take these
        settings (and why not), the size it will actually make, whether it honours the seed and the
        steps, and which ready provider is cheapest. Nothing is generated or billed."""
        try:
            request = build_request("price check", width, height, steps, None, num_images, None, None)
        except PlaygroundError as exc:
            raise ToolError(exc.message) from None
        rows = price_rows(playground.quote(request))
        return [TextContent(type="text", text=json.dumps({"prices": rows}, indent=1))]

    @server.tool(structured_output=False)
    async def stats() -> list[TextContent]:
        """How fast and how reliably each provider answered this app's own recent runs (the last 7
        days, at most 200 runs each), per size class (≤ 0.3 MP, ≤ 1.1 MP, larger): p50 and p95
        seconds from the call to the saved image, the share of runs that gave an image, the latest
        failure's kind and time, how many runs the figures rest on, and a one-line summary. Below 5
        runs a provider has "not enough runs yet". Nothing is generated or billed."""
        figures = await playground.stats()
        return [TextContent(type="text", text=figures.model_dump_json(indent=1))]

    @server.tool(structured_output=False)
    async def providers() -> list[TextContent]:
        """Every provider this server offers: its id (for `generate`), label, readiness, price basis
        and what it accepts (sizes, steps, images per run, seed)."""
        table = describe_providers(playground.settings)
        shown = {
            name: {k: v for k, v in row.items() if k not in _SERVER_SETUP} for name, row in table.items()
        }
        return [TextContent(type="text", text=json.dumps(shown, indent=1))]


_PREFER_FIELD = Field(
    description='With "auto": "cheapest" (by the estimate) or "fastest" (by the p50 of this app\'s recent '
    "runs at this size; by price where there are too few)."
)
_CEILING_FIELD = Field(description='With "auto": the most one run may cost, in USD, e.g. 0.004.')


def _with_route(providers: object, prefer: Preference, max_cost_usd: float | None) -> object:
    """A bare "auto" among the providers, with the tool's preference and ceiling put in it."""
    if not isinstance(providers, list) or AUTO not in providers:
        return providers
    ceiling = None if max_cost_usd is None else parse_ceiling(max_cost_usd)
    token = AutoRoute(prefer=prefer, max_cost_usd=ceiling).token
    return [token if name == AUTO else name for name in providers]


#: How the owner configures a provider: not an agent's business.
_SERVER_SETUP = frozenset({"set", "key_env", "base_url_env", "options"})


def _image(webp: bytes) -> ImageContent:
    import base64

    return ImageContent(type="image", data=base64.b64encode(webp).decode(), mimeType="image/webp")

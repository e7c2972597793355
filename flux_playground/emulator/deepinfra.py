"""DeepInfra: OpenAI-compatible and native inference endpoints, under ``/deepinfra``.

PROVIDERS.md 3.1 (OpenAI-compatible), 3.2 (native), 3.3 (errors and limits),
3.4 (price formula), checklist 6. Both endpoints are synchronous.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import (
    ValidationError,
    bearer_token,
    get_int,
    get_prompt,
    key_is_valid,
    new_id,
    read_json_object,
)
from .directives import DirectiveError, Directives, parse_directives
from .faults import Dialect, FaultError, check_directive_faults, respond_with_fault
from .images import ImageFormat, ImageSpec, corrupt
from .state import EmulatorState

__all__ = ["MODEL_ID", "NAME", "NATIVE_DIALECT", "OPENAI_DIALECT", "routes"]

NAME = "deepinfra"
MODEL_ID = "black-forest-labs/FLUX-1-schnell"  # 3.1: hyphen in FLUX-1, unlike FLUX.1
OPENAI_ROUTE = "/v1/openai/images/generations"
NATIVE_ROUTE = "/v1/inference/{model:path}"
# Assumption: the native range is not documented (3.2); FLUX works on 16-px multiples.
SIZE_MIN, SIZE_MAX, SIZE_STEP = 128, 2048, 16
PRICE_PER_STEP_MP = 0.0005  # 3.4: $0.0005 x (w/1024) x (h/1024) x iters
_SIZE = re.compile(r"^(\d+)x(\d+)$")  # 3.1: "1024x1024"
_INT_FORM_FIELDS = ("num_images", "num_inference_steps", "width", "height", "seed")

Handler = Callable[[Request, str | None], Awaitable[Response]]


def _native_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": {"error": message}}, status_code=status)  # 3.3


def _openai_error(status: int, message: str) -> JSONResponse:
    # 3.3: the OpenAI-style shape, assumed for /images/generations too.
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _dialect(
    error: Callable[[int, str], Response], missing_fields: Callable[[], dict[str, object]]
) -> Dialect:
    return Dialect(
        provider=NAME,
        error=error,
        unauthorized_message="Unauthorized: invalid or missing bearer token",
        credits_status=402,  # assumption: the out-of-balance status is not documented
        credits_message="Not enough balance",
        rate_limit_message="Rate limited",  # 3.3
        missing_fields=missing_fields,
    )


NATIVE_DIALECT = _dialect(
    _native_error, lambda: {"request_id": None, "inference_status": {"status": "succeeded"}}
)
OPENAI_DIALECT = _dialect(_openai_error, lambda: {"created": int(time.time())})


def _dimension(body: dict[str, Any], name: str) -> int:
    return int(get_int(body, name, 1024, SIZE_MIN, SIZE_MAX, multiple_of=SIZE_STEP) or 0)


def _openai_size(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("size") or "1024x1024"
    match = _SIZE.match(size) if isinstance(size, str) else None
    if match is None:
        raise ValidationError(f'size must look like "1024x1024", got {size!r}')
    dims = {"width": int(match.group(1)), "height": int(match.group(2))}
    return _dimension(dims, "width"), _dimension(dims, "height")


class DeepInfra:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def openai(self, request: Request) -> Response:
        return await self._guarded(request, OPENAI_ROUTE, OPENAI_DIALECT, self._openai)

    async def native(self, request: Request) -> Response:
        return await self._guarded(request, NATIVE_ROUTE, NATIVE_DIALECT, self._native)

    async def _guarded(self, request: Request, route: str, dialect: Dialect, handler: Handler) -> Response:
        """Counting, queued faults, auth and the concurrency limit, shared by both endpoints."""
        self.state.hit(request, NAME, "submit", route)
        content_fault = None
        if (queued := self.state.take_fault(NAME, "submit")) is not None:
            if queued not in ("not_image", "truncated"):
                return await respond_with_fault(queued, request, dialect, self.state.is_closing)
            content_fault = queued
        if not key_is_valid(bearer_token(request)):
            return dialect.error(401, dialect.unauthorized_message)
        if self.state.deepinfra_inflight >= self.state.deepinfra_max_concurrency:
            return dialect.error(429, "Rate limited")  # 3.3: 200 concurrent requests per model
        self.state.deepinfra_inflight += 1
        try:
            return await handler(request, content_fault)
        except ValidationError as exc:
            return dialect.error(exc.status, str(exc))
        except (DirectiveError, FaultError) as exc:
            return dialect.error(400, f"emulator: {exc}")
        finally:
            self.state.deepinfra_inflight -= 1

    async def _directives(
        self, request: Request, prompt: str, dialect: Dialect, content_fault: str | None
    ) -> tuple[Directives, str | None, Response | None]:
        directives = parse_directives(prompt)
        for fault, _ in check_directive_faults(NAME, directives.faults, ("submit",)):
            self.state.fired(NAME, fault)
            if fault in ("not_image", "truncated"):
                content_fault = fault
            else:
                return (
                    directives,
                    None,
                    await respond_with_fault(fault, request, dialect, self.state.is_closing),
                )
        return directives, content_fault, None

    async def _images(
        self, directives: Directives, seeds: list[int], size: tuple[int, int], fmt: ImageFormat
    ) -> list[bytes]:
        specs = [ImageSpec(directives.prompt, seed, *size, NAME, fmt) for seed in seeds]
        latency = self.state.latency_for(NAME, directives.latency)
        renders = asyncio.gather(*(self.state.images.get(s) for s in specs))
        images, _ = await asyncio.gather(renders, asyncio.sleep(latency))  # concurrently
        return list(images)

    async def _openai(self, request: Request, content_fault: str | None) -> Response:
        body = await read_json_object(request)
        self.state.log_request(request, NAME, "submit", body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ValidationError("model is required")
        if model != MODEL_ID:
            raise ValidationError(f"Model not found: {model}", status=404)
        prompt = get_prompt(body)
        n = int(get_int(body, "n", 1, 1, 4) or 1)
        if body.get("response_format") not in (None, "b64_json"):
            raise ValidationError("Currently only b64_json is supported")  # 3.1
        size = _openai_size(body)
        directives, content_fault, early = await self._directives(
            request, prompt, OPENAI_DIALECT, content_fault
        )
        if early is not None:
            return early
        # No seed here (3.1: unconfirmed), so every image gets a fresh random one.
        # JPEG, as the documented example's "/9j/" prefix suggests (format unconfirmed).
        seeds = [random.randrange(2**32) for _ in range(n)]
        images = await self._images(directives, seeds, size, "jpeg")
        data = [
            {"b64_json": base64.b64encode(corrupt(image, content_fault)).decode(), "revised_prompt": prompt}
            for image in images
        ]
        return JSONResponse({"created": int(time.time()), "data": data})

    async def _native_body(self, request: Request) -> dict[str, Any]:
        """3.2: a JSON body, or a form (``curl -F prompt=...``) whose values are strings."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            return await read_json_object(request)
        async with request.form() as form:
            body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        for name in _INT_FORM_FIELDS:
            if isinstance(body.get(name), str) and body[name].lstrip("-").isdigit():
                body[name] = int(body[name])
        return body

    async def _native(self, request: Request, content_fault: str | None) -> Response:
        started = time.monotonic()
        model = request.path_params["model"]
        if model != MODEL_ID:
            raise ValidationError(f"Model not found: {model}", status=404)
        body = await self._native_body(request)
        self.state.log_request(request, NAME, "submit", body)
        prompt = get_prompt(body)
        num_images = int(get_int(body, "num_images", 1, 1, 4) or 1)
        steps = int(get_int(body, "num_inference_steps", 1, 1, 50) or 1)  # 3.2: default 1
        size = _dimension(body, "width"), _dimension(body, "height")
        seed = get_int(body, "seed", None, 0, 2**64 - 1)  # assumption: negative refused
        if seed is None:
            seed = random.randrange(2**32)  # reported back in "seed"
        directives, content_fault, early = await self._directives(
            request, prompt, NATIVE_DIALECT, content_fault
        )
        if early is not None:
            return early
        images = await self._images(directives, [seed + i for i in range(num_images)], size, "png")
        cost = PRICE_PER_STEP_MP * size[0] / 1024 * size[1] / 1024 * steps * num_images
        return JSONResponse({
            "images": [
                "data:image/png;base64," + base64.b64encode(corrupt(image, content_fault)).decode()
                for image in images
            ],
            "nsfw_content_detected": [False] * num_images,
            "seed": seed,
            "request_id": new_id(),
            "inference_status": {
                "status": "succeeded",
                "runtime_ms": int((time.monotonic() - started) * 1000),
                "cost": round(cost, 10),
                "tokens_generated": 0,
                "tokens_input": 0,
            },
        })  # fmt: skip

    async def not_found(self, request: Request) -> Response:
        self.state.hit(request, NAME, "unmatched", "/{path}")
        return _native_error(404, f"Not found: {request.method} {request.url.path}")


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = DeepInfra(state)
    return [
        Route(OPENAI_ROUTE, api.openai, methods=["POST"]),
        Route(NATIVE_ROUTE, api.native, methods=["POST"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]

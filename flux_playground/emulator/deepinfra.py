"""DeepInfra: OpenAI-compatible and native inference endpoints, under ``/deepinfra``.

docs/providers/deepinfra.md: #request (both endpoints), #errors (shapes and limits), #price
(anchors below are its sections; audit findings D3/D4 are listed there too) (error shapes: 422 FastAPI
list, DeepError 404, the OpenAI shape as a variant). Both endpoints are synchronous.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

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
from .directives import DirectiveError, Directives, VariantGroups, parse_directives, resolve_variants
from .emulated import ConfigKeys, EmulatedProvider, ProviderState, config_count
from .faults import Dialect, FaultError, check_directive_faults, respond_with_fault
from .images import ImageFormat, ImageSpec, corrupt
from .state import EmulatorState

__all__ = [
    "MODEL_ID", "NAME", "NATIVE_DIALECT", "OPENAI_DIALECT", "PROVIDER", "VARIANT_GROUPS",
    "DeepInfraState", "routes",
]  # fmt: skip

NAME = "deepinfra"
MODEL_ID = "black-forest-labs/FLUX-1-schnell"  # #request: hyphen in FLUX-1, unlike FLUX.1
OPENAI_ROUTE = "/v1/openai/images/generations"
NATIVE_ROUTE = "/v1/inference/{model:path}"
# Assumption: the native range is not documented (#request); FLUX works on 16-px multiples.
SIZE_MIN, SIZE_MAX, SIZE_STEP = 128, 2048, 16
PRICE_PER_STEP_MP = 0.0005  # #price: $0.0005 x (w/1024) x (h/1024) x iters
MAX_CONCURRENCY = 200  # #errors: "200 concurrent requests" per model, then 429
MODEL_NOT_FOUND = "Model not found"  # #errors: the OpenAPI's DeepError example
_SIZE = re.compile(r"^(\d+)x(\d+)$")  # #request: "1024x1024"
_INT_FORM_FIELDS = ("num_images", "num_inference_steps", "width", "height", "seed")

# Error wording varies between DeepInfra's sources; the first value is the default.
VARIANT_GROUPS: VariantGroups = {
    # #errors (audit D4): a 404 (unknown model) is DeepError {"error": ...} in
    # DeepInfra's OpenAPI, and {"detail": {"error": ...}} as the Vercel SDK parses it.
    "not_found": ("deep_error", "detail_error"),
    # #errors: the OpenAPI shows only FastAPI's 422 for the OpenAI path; an
    # OpenAI-style {"error": {"message", "type"}} (#errors: assumed from /images/edits) is a variant.
    "openai_path": ("native_errors", "openai_errors"),
}

Handler = Callable[[Request, "_Call", str | None], Awaitable[Response]]


def _detail_error(status: int, message: str) -> JSONResponse:
    # #errors: {"detail": {"error": ...}}, the shape the Vercel SDK parses.
    return JSONResponse({"detail": {"error": message}}, status_code=status)


def _deep_error(status: int, message: str) -> JSONResponse:
    # #errors: DeepError, documented for 403/404/423 on /v1/inference/{model}.
    return JSONResponse({"error": message}, status_code=status)


def _openai_error(status: int, message: str) -> JSONResponse:
    # Variant only (#errors): OpenAI's shape, which #errors assumes from /images/edits.
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _unprocessable(exc: ValidationError) -> JSONResponse:
    # #errors (audit D3): 422 HTTPValidationError {"detail": [{loc, msg, type}]} on both
    # endpoints. The "type" names (pydantic v2 style) are an assumption.
    loc = ["body", exc.field] if exc.field else ["body"]
    return JSONResponse({"detail": [{"loc": loc, "msg": str(exc), "type": exc.kind}]}, status_code=422)


def _dialect(
    error: Callable[[int, str], Response], missing_fields: Callable[[], dict[str, object]]
) -> Dialect:
    return Dialect(
        provider=NAME,
        error=error,
        unauthorized_message="Unauthorized: invalid or missing bearer token",
        credits_status=402,  # assumption: the out-of-balance status is not documented (D6)
        credits_message="Not enough balance",
        rate_limit_message="Rate limited",  # 3.3
        missing_fields=missing_fields,
    )


def _openai_missing_fields() -> dict[str, object]:
    return {"created": int(time.time())}


NATIVE_DIALECT = _dialect(
    _detail_error, lambda: {"request_id": None, "inference_status": {"status": "succeeded"}}
)
OPENAI_DIALECT = _dialect(_detail_error, _openai_missing_fields)
_OPENAI_STYLE_DIALECT = _dialect(_openai_error, _openai_missing_fields)  # variant openai_errors


class _Call:
    """One request: its endpoint and variants decide how its errors are worded."""

    def __init__(self, openai: bool, names: tuple[str, ...]) -> None:
        self.openai = openai
        self.names = names
        self.variants = resolve_variants(VARIANT_GROUPS, names)

    def add_variants(self, names: tuple[str, ...]) -> None:
        """Prompt directives: they apply to what is answered after the prompt is read."""
        if names:
            self.names += names
            self.variants = resolve_variants(VARIANT_GROUPS, self.names)

    @property
    def openai_style(self) -> bool:
        return self.openai and self.variants["openai_path"] == "openai_errors"

    @property
    def dialect(self) -> Dialect:
        if not self.openai:
            return NATIVE_DIALECT
        return _OPENAI_STYLE_DIALECT if self.openai_style else OPENAI_DIALECT

    def refuse(self, exc: ValidationError) -> Response:
        """An unknown model (404) or an invalid request (422)."""
        if self.openai_style:  # as OpenAI itself answers: 400 (or 404) with its own body
            return _openai_error(exc.status, str(exc))
        if exc.status == 404:
            error = _deep_error if self.variants["not_found"] == "deep_error" else _detail_error
            return error(404, str(exc))
        return _unprocessable(exc)


@dataclass
class DeepInfraState(ProviderState):
    """Requests in flight against the per-model limit (#errors); config key ``max_concurrency``."""

    config_keys: ClassVar[ConfigKeys] = {"max_concurrency": config_count}
    max_concurrency: int = MAX_CONCURRENCY
    inflight: int = 0  # not reset: requests still running decrement it when they end

    def reset(self) -> None:
        self.max_concurrency = MAX_CONCURRENCY

    def stats(self) -> dict[str, object]:
        return {"inflight": self.inflight, "max_concurrency": self.max_concurrency}


def _dimension(body: dict[str, Any], name: str) -> int:
    return int(get_int(body, name, 1024, SIZE_MIN, SIZE_MAX, multiple_of=SIZE_STEP) or 0)


def _openai_size(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("size") or "1024x1024"
    match = _SIZE.match(size) if isinstance(size, str) else None
    if match is None:
        raise ValidationError(f'size must look like "1024x1024", got {size!r}', field="size")
    dims = {"width": int(match.group(1)), "height": int(match.group(2))}
    try:
        return _dimension(dims, "width"), _dimension(dims, "height")
    except ValidationError as exc:
        raise ValidationError(f"size {size!r}: {exc}", field="size") from exc


def _model_not_found() -> ValidationError:
    return ValidationError(MODEL_NOT_FOUND, status=404, field="model")


class DeepInfra:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.own = state.provider_state(NAME, DeepInfraState)

    async def openai(self, request: Request) -> Response:
        return await self._guarded(request, OPENAI_ROUTE, True, self._openai)

    async def native(self, request: Request) -> Response:
        return await self._guarded(request, NATIVE_ROUTE, False, self._native)

    async def _guarded(self, request: Request, route: str, openai: bool, handler: Handler) -> Response:
        """Counting, queued faults, auth and the concurrency limit, shared by both endpoints."""
        self.state.hit(request, NAME, "submit", route)
        # Error wording variants are taken first: a queued fault is worded by them too.
        call = _Call(openai, self.state.take_variants(NAME))
        content_fault = None
        if (queued := self.state.take_fault(NAME, "submit")) is not None:
            if queued not in ("not_image", "truncated"):
                return await respond_with_fault(queued, request, call.dialect, self.state.is_closing)
            content_fault = queued
        if not key_is_valid(bearer_token(request)):
            return call.dialect.error(401, call.dialect.unauthorized_message)
        if self.own.inflight >= self.own.max_concurrency:
            return call.dialect.error(429, "Rate limited")  # #errors: 200 concurrent requests per model
        self.own.inflight += 1
        try:
            return await handler(request, call, content_fault)
        except ValidationError as exc:
            return call.refuse(exc)
        except (DirectiveError, FaultError) as exc:
            return call.dialect.error(400, f"emulator: {exc}")
        finally:
            self.own.inflight -= 1

    async def _fire_directive_faults(
        self, request: Request, call: _Call, directives: Directives, content_fault: str | None
    ) -> tuple[str | None, Response | None]:
        """Prompt faults: a content fault to apply to the images, or a response right away."""
        for fault, _ in check_directive_faults(PROVIDER, directives.faults, ("submit",)):
            self.state.fired(NAME, fault)
            if fault in ("not_image", "truncated"):
                content_fault = fault
            else:
                return None, await respond_with_fault(fault, request, call.dialect, self.state.is_closing)
        return content_fault, None

    async def _images(
        self, directives: Directives, seeds: list[int], size: tuple[int, int], fmt: ImageFormat
    ) -> list[bytes]:
        specs = [ImageSpec(directives.prompt, seed, *size, NAME, fmt) for seed in seeds]
        latency = self.state.latency_for(NAME, directives.latency)
        renders = asyncio.gather(*(self.state.images.get(s) for s in specs))
        images, _ = await asyncio.gather(renders, asyncio.sleep(latency))  # concurrently
        return list(images)

    async def _openai(self, request: Request, call: _Call, content_fault: str | None) -> Response:
        body = await read_json_object(request)
        self.state.log_request(request, NAME, "submit", body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ValidationError("model is required", field="model", kind="missing")
        if model != MODEL_ID:
            raise _model_not_found()
        prompt = get_prompt(body)
        directives = parse_directives(prompt)
        call.add_variants(directives.variants)
        n = int(get_int(body, "n", 1, 1, 4) or 1)
        if body.get("response_format") not in (None, "b64_json"):
            message = "Currently only b64_json is supported"  # 3.1
            raise ValidationError(message, field="response_format", kind="enum")
        size = _openai_size(body)
        content_fault, early = await self._fire_directive_faults(request, call, directives, content_fault)
        if early is not None:
            return early
        # No seed here (#request: unconfirmed), so every image gets a fresh random one.
        # JPEG, as the documented example's "/9j/" prefix suggests (format unconfirmed).
        seeds = [random.randrange(2**32) for _ in range(n)]
        images = await self._images(directives, seeds, size, "jpeg")
        data = [
            {"b64_json": base64.b64encode(corrupt(image, content_fault)).decode(), "revised_prompt": prompt}
            for image in images
        ]
        return JSONResponse({"created": int(time.time()), "data": data})

    async def _native_body(self, request: Request) -> dict[str, Any]:
        """#request: a JSON body, or a form (``curl -F prompt=...``) whose values are strings."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            return await read_json_object(request)
        async with request.form() as form:
            body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        for name in _INT_FORM_FIELDS:
            if isinstance(body.get(name), str) and body[name].lstrip("-").isdigit():
                body[name] = int(body[name])
        return body

    async def _native(self, request: Request, call: _Call, content_fault: str | None) -> Response:
        started = time.monotonic()
        if request.path_params["model"] != MODEL_ID:
            raise _model_not_found()  # answered before the body is read
        body = await self._native_body(request)
        self.state.log_request(request, NAME, "submit", body)
        prompt = get_prompt(body)
        directives = parse_directives(prompt)
        call.add_variants(directives.variants)
        num_images = int(get_int(body, "num_images", 1, 1, 4) or 1)
        steps = int(get_int(body, "num_inference_steps", 1, 1, 50) or 1)  # #request: default 1
        size = _dimension(body, "width"), _dimension(body, "height")
        seed = get_int(body, "seed", None, 0, 2**64 - 1)  # assumption: negative refused
        if seed is None:
            seed = random.randrange(2**32)  # reported back in "seed"
        content_fault, early = await self._fire_directive_faults(request, call, directives, content_fault)
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
        return _detail_error(404, f"Not found: {request.method} {request.url.path}")


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = DeepInfra(state)
    return [
        Route(OPENAI_ROUTE, api.openai, methods=["POST"]),
        Route(NATIVE_ROUTE, api.native, methods=["POST"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit",),  # both endpoints are one synchronous call
    # A failed inference is a 500; bad bytes come inside the 200 itself.
    faults={fault: ("submit",) for fault in ("failed_job", "not_image", "truncated")},
    variants=VARIANT_GROUPS,
    make_state=DeepInfraState,
)

"""Together AI: one synchronous POST answering base64 images or URLs, under ``/together``.

Written from docs/providers/together.md (anchors below are its sections), not from the client:
``POST /v1/images/generations`` with a Bearer key and the OpenAPI's ``ImageRequest``, answered with
``{"id", "model", "object": "list", "data": [{"index", "type", "b64_json" | "url"}]}``; errors are
``ErrorData``. URL outputs are served by this emulator under ``/files/`` as a stand-in for Together's
image CDN, which refuses a blank User-Agent.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..sizes import nearest_ratio, size_for_ratio
from .common import (
    ValidationError,
    bearer_token,
    get_choice,
    get_int,
    get_prompt,
    key_is_valid,
    new_id,
    prefix_url,
    read_json_object,
)
from .directives import DirectiveError, Directives, VariantGroups, parse_directives, resolve_variants
from .emulated import EmulatedProvider, ProviderState
from .faults import Dialect, FaultError, check_directive_faults, respond_with_fault
from .images import ImageFormat, ImageSpec, corrupt
from .state import EmulatorState

__all__ = ["DIALECT", "MODELS", "NAME", "PROVIDER", "VARIANT_GROUPS", "TogetherState", "error", "routes"]

NAME = "together"
ROUTE = "/v1/images/generations"
FILE_ROUTE = "/files/{image_id}.{ext}"
# #request: the OpenAPI's enum lists both schnell models (the -Free one's status is unconfirmed).
MODELS = ("black-forest-labs/FLUX.1-schnell", "black-forest-labs/FLUX.1-schnell-Free")
# #sizes: "Keep dimensions to multiples of 8", default 1024; the range is our assumption.
SIZE_MIN, SIZE_MAX, SIZE_STEP = 64, 2048, 8
STEPS_DEFAULT = 20  # #request: the OpenAPI's default (the docs say schnell's is 4); range assumed 1-50
MAX_N = 4  # #request: "n" 1-4
RESPONSE_FORMATS = ("url", "base64")  # #request: not b64_json; no default in the OpenAPI, url assumed
OUTPUT_FORMATS: tuple[ImageFormat, ...] = ("jpeg", "png")  # #request: default jpeg
# Variant "aspect_ratio" (#request, the conflict): schnell makes the preset nearest to W:H at about
# one megapixel instead of W×H. The presets are our assumption.
ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21")
VARIANT_GROUPS: VariantGroups = {"size": ("exact", "aspect_ratio")}
_MAX_FILES = 256  # URL outputs kept for download (the CDN's own retention is not documented)
_CONTENT_FAULTS = ("not_image", "truncated")
# ErrorData's "type" and "code" by status: only the shape is documented (#errors), the words are ours.
_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("credit_limit", None),
    404: ("invalid_request_error", None),
    429: ("rate_limit", None),
}


def error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    """#errors: ErrorData, {"error": {"message", "type", "param", "code"}}."""
    kind, usual_code = _KINDS.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": kind, "param": param, "code": code or usual_code}}
    return JSONResponse(body, status_code=status)


DIALECT = Dialect(
    provider=NAME,
    error=error,
    unauthorized_message="Invalid API key provided.",
    # #errors: 402, "reached its maximum allowed monthly spending limit" (Together's error-codes page).
    credits_status=402,
    credits_message="The account associated with the API key has reached its maximum allowed monthly "
    "spending limit.",
    rate_limit_message="Rate limit exceeded: reduce your request rate.",  # #errors
    missing_fields=lambda: {"id": "emulator-missing", "model": MODELS[0], "object": "list"},  # no data
)


@dataclass
class TogetherState(ProviderState):
    """URL outputs kept for download: file id -> (image, content fault)."""

    files: OrderedDict[str, tuple[ImageSpec, str | None]] = field(default_factory=OrderedDict)

    def reset(self) -> None:
        self.files.clear()

    def stats(self) -> dict[str, object]:
        return {"files": len(self.files)}


@dataclass(frozen=True)
class _Generation:
    """A valid request, as the emulator will answer it."""

    model: str
    directives: Directives
    width: int
    height: int
    seed: int
    n: int
    response_format: str
    output_format: ImageFormat


def _validate(body: dict[str, Any]) -> tuple[str, str]:
    """#request: `model` and `prompt` are required; an unknown model is a 404 (#errors)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationError("model is required", field="model")
    if model not in MODELS:
        raise ValidationError(f"Unable to access model {model}.", status=404, field="model")
    return model, get_prompt(body)


def _generation(body: dict[str, Any], queued_variants: tuple[str, ...]) -> _Generation:
    model, prompt = _validate(body)
    directives = parse_directives(prompt)
    sizes = resolve_variants(VARIANT_GROUPS, queued_variants + directives.variants)["size"]
    width = int(get_int(body, "width", 1024, SIZE_MIN, SIZE_MAX, SIZE_STEP) or 0)
    height = int(get_int(body, "height", 1024, SIZE_MIN, SIZE_MAX, SIZE_STEP) or 0)
    if sizes == "aspect_ratio":
        width, height = size_for_ratio(nearest_ratio(width, height, ASPECT_RATIOS), 1024 * 1024)
    get_int(body, "steps", STEPS_DEFAULT, 1, 50)
    seed = get_int(body, "seed", None, 0, 2**63 - 1)  # assumption: a negative seed is refused
    output_format = get_choice(body, "output_format", "jpeg", OUTPUT_FORMATS)
    return _Generation(
        model=model,
        directives=directives,
        width=width,
        height=height,
        seed=random.randrange(2**31) if seed is None else seed,  # #request: "random" when absent
        n=int(get_int(body, "n", 1, 1, MAX_N) or 1),
        response_format=get_choice(body, "response_format", "url", RESPONSE_FORMATS),
        output_format="png" if output_format == "png" else "jpeg",
    )


class Together:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.own = state.provider_state(NAME, TogetherState)

    async def _fault(self, fault: str, request: Request) -> Response:
        return await respond_with_fault(fault, request, DIALECT, self.state.is_closing)

    def _unauthorized(self, request: Request) -> Response | None:
        # #endpoint-and-auth: `Authorization: Bearer <key>`; another scheme or header is no key at all.
        key = bearer_token(request)
        if key is None:
            return error(401, "Missing API key: send Authorization: Bearer <TOGETHER_API_KEY>.")
        return None if key_is_valid(key) else error(401, DIALECT.unauthorized_message)

    async def generate(self, request: Request) -> Response:
        self.state.hit(request, NAME, "submit", ROUTE)
        content_fault = None
        if (queued := self.state.take_fault(NAME, "submit")) is not None:
            if queued not in _CONTENT_FAULTS:
                return await self._fault(queued, request)
            content_fault = queued
        if (denied := self._unauthorized(request)) is not None:
            return denied
        try:
            body = await read_json_object(request)
            self.state.log_request(request, NAME, "submit", body)
            job = _generation(body, self.state.take_variants(NAME))
            faults = check_directive_faults(PROVIDER, job.directives.faults, ("submit",))
        except ValidationError as exc:
            return error(
                exc.status, str(exc), exc.field, "model_not_available" if exc.status == 404 else None
            )
        except (DirectiveError, FaultError) as exc:
            return error(400, f"emulator: {exc}")
        for fault, _ in faults:
            self.state.fired(NAME, fault)
            if fault not in _CONTENT_FAULTS:
                return await self._fault(fault, request)
            content_fault = fault
        return await self._answer(request, job, content_fault)

    async def _answer(self, request: Request, job: _Generation, content_fault: str | None) -> Response:
        specs = [
            ImageSpec(job.directives.prompt, job.seed + i, job.width, job.height, NAME, job.output_format)
            for i in range(job.n)
        ]
        latency = self.state.latency_for(NAME, job.directives.latency)
        renders = asyncio.gather(*(self.state.images.get(spec) for spec in specs))
        images, _ = await asyncio.gather(renders, asyncio.sleep(latency))
        if job.response_format == "base64":
            # #response: the item key is b64_json although the request said "base64".
            data = [
                {
                    "index": i,
                    "type": "b64_json",
                    "b64_json": base64.b64encode(corrupt(image, content_fault)).decode(),
                }
                for i, image in enumerate(images)
            ]
        else:
            data = [
                {"index": i, "type": "url", "url": self._file_url(request, spec, content_fault)}
                for i, spec in enumerate(specs)
            ]
        headers = {"x-emulator-fault": content_fault} if content_fault else None
        return JSONResponse(
            {"id": new_id(), "model": job.model, "object": "list", "data": data}, headers=headers
        )

    def _file_url(self, request: Request, spec: ImageSpec, content_fault: str | None) -> str:
        file_id = new_id()
        self.own.files[file_id] = (spec, content_fault)
        while len(self.own.files) > _MAX_FILES:
            self.own.files.popitem(last=False)
        return prefix_url(request, f"/files/{file_id}.{spec.fmt}")

    async def download(self, request: Request) -> Response:
        # Stand-in for Together's image CDN: no key needed, but a blank User-Agent gets 403 (#response).
        self.state.hit(request, NAME, "download", FILE_ROUTE)
        if (faulted := await self.state.queued_fault(NAME, "download", request, DIALECT)) is not None:
            return faulted
        if not request.headers.get("user-agent", "").strip():
            return Response("Forbidden", 403, media_type="text/plain")
        stored = self.own.files.get(request.path_params["image_id"])
        if stored is None:
            return Response("Not Found", 404, media_type="text/plain")
        spec, content_fault = stored
        data = corrupt(await self.state.images.get(spec), content_fault)
        return Response(data, media_type=f"image/{spec.fmt}")

    async def not_found(self, request: Request) -> Response:
        # #errors: "404 - Not Found: Invalid Endpoint URL or model name".
        self.state.hit(request, NAME, "unmatched", "/{path}")
        return error(404, f"Not found: {request.method} {request.url.path}")


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = Together(state)
    return [
        Route(ROUTE, api.generate, methods=["POST"]),
        Route(FILE_ROUTE, api.download, methods=["GET"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit", "download"),
    # One sync call: a failed inference is a 500, bad image bytes come in the 200 itself (inline, or in
    # the file a URL points to).
    faults={fault: ("submit",) for fault in ("failed_job", *_CONTENT_FAULTS)},
    binary_stages=frozenset({"download"}),  # image files, not JSON
    variants=VARIANT_GROUPS,
    make_state=TogetherState,
)

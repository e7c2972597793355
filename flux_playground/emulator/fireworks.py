"""Fireworks AI: the FLUX.1 [schnell] FP8 workflow, one synchronous POST, under ``/fireworks``.

Written from docs/providers/fireworks.md (anchors below are its sections), not from the client:
#endpoint-and-auth (route, Bearer, the Accept header choosing bytes or JSON), #request (the ratio
enum, seed 0 = random), #sizes, #response (JSON fields; Seed and Finish-Reason headers on bytes),
#errors (the ``{"error": {...}, "request_id"}`` body, 402 out of credits).

Assumptions where the page is silent (#unconfirmed): a missing ``aspect_ratio`` is ``1:1``;
steps 1-50; seeds 0..2^32-1 (negative refused); each ratio makes about 1024² pixels with sides
rounded to 16; no ``Accept`` (or ``*/*``, ``image/*``) answers PNG bytes, as the docs' default
and the Vercel SDK (which sends none) expect, and any other type is refused with 406;
``Jpeg-Quality`` is ignored; fields the docs do not list are ignored.
"""

from __future__ import annotations

import asyncio
import base64
import random
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..sizes import size_for_ratio
from .common import (
    ValidationError,
    bearer_token,
    get_bool,
    get_choice,
    get_int,
    get_number,
    get_prompt,
    key_is_valid,
    new_id,
    read_json_object,
)
from .directives import DirectiveError, Directives, VariantGroups, parse_directives, resolve_variants
from .emulated import EmulatedProvider
from .faults import Dialect, FaultError, check_directive_faults, respond_with_fault
from .images import ImageFormat, ImageSpec, corrupt
from .state import EmulatorState

__all__ = ["DIALECT", "NAME", "PROVIDER", "RATIOS", "ROUTE", "VARIANT_GROUPS", "answer_format", "routes"]

NAME = "fireworks"
MODEL = "accounts/fireworks/models/flux-1-schnell-fp8"
ROUTE = f"/inference/v1/workflows/{MODEL}/text_to_image"  # #endpoint-and-auth: the single model path
RATIOS = ("1:1", "21:9", "16:9", "3:2", "5:4", "4:5", "2:3", "9:16", "9:21", "4:3", "3:4")  # #request
PIXELS = 1024 * 1024  # #sizes: "about 1 MP per ratio is assumed"
MAX_STEPS = 50  # #unconfirmed: the maximum is not documented
MAX_SEED = 2**32 - 1  # assumption: the range is not documented
CONTENT_FAULTS = ("not_image", "truncated")
# #response: items as data URIs (the API reference's example) or bare base64 (another example);
# `base64` as a list (the examples) or one string (the reference's field list); finishReason.
VARIANT_GROUPS: VariantGroups = {
    "items": ("datauri", "bare"),
    "base64": ("list", "string"),
    "finish": ("success", "content_filtered"),
}
_MEDIA: dict[str, str] = {"application/json": "json", "image/png": "png", "image/jpeg": "jpeg"}
_DEFAULT_MEDIA = ("*/*", "image/*")  # assumption: answered like image/png, the docs' default


def _error(status: int, message: str) -> JSONResponse:
    # #errors: {"error": {"message", "param", "code", "type"}, "request_id"}; 412's code is
    # PRECONDITION_FAILED, i.e. the status's name (the rule we assume for every status).
    try:
        code = HTTPStatus(status).name
    except ValueError:
        code = "UNKNOWN"
    error = {"message": message, "param": None, "code": code, "type": "error"}
    return JSONResponse({"error": error, "request_id": new_id()}, status_code=status)


DIALECT = Dialect(
    provider=NAME,
    error=_error,
    unauthorized_message="The API key you provided is invalid.",  # #errors: 401 invalid key
    credits_status=402,  # #errors
    credits_message="Account is not on a paid plan or has exceeded usage limits",
    rate_limit_message="Request rate limit exceeded, please try again later",
    missing_fields=lambda: {"id": new_id(), "finishReason": "SUCCESS", "seed": 1},  # no "base64"
)


def answer_format(accept: str | None) -> str | None:
    """The answer form for an Accept header, "json", "png" or "jpeg" (the first type served wins); None:
    a type not served."""
    if not accept or not accept.strip():
        return "png"
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in _MEDIA:
            return _MEDIA[media]
        if media in _DEFAULT_MEDIA:
            return "png"
    return None


def _validate(body: dict[str, Any]) -> tuple[str, str, int]:
    """#request: the prompt, the ratio and the seed (the other documented fields are only checked)."""
    prompt = get_prompt(body)
    ratio = get_choice(body, "aspect_ratio", "1:1", RATIOS)
    get_number(body, "guidance_scale", 3.5, 0.0, 100.0)
    get_int(body, "num_inference_steps", 4, 1, MAX_STEPS)
    seed = int(get_int(body, "seed", 0, 0, MAX_SEED) or 0)
    get_bool(body, "safety_check", False)
    return prompt, ratio, seed


class _Answer:
    """What one successful request is answered with, in the form its Accept header chose."""

    def __init__(self, fmt: str, json_image: str | None, variants: dict[str, str]) -> None:
        self.fmt = fmt
        # #endpoint-and-auth: Json-Return-Image-Accept picks the image type inside JSON (PNG by default).
        self.image_fmt: ImageFormat = "jpeg" if fmt == "jpeg" or json_image == "image/jpeg" else "png"
        self.variants = variants

    @property
    def finish_reason(self) -> str:
        return "CONTENT_FILTERED" if self.variants["finish"] == "content_filtered" else "SUCCESS"

    def respond(self, image: bytes, seed: int) -> Response:
        if self.fmt != "json":
            # #response: the body is the image; Seed and Finish-Reason go in headers.
            headers = {"Seed": str(seed), "Finish-Reason": self.finish_reason}
            return Response(image, media_type=f"image/{self.image_fmt}", headers=headers)
        data = base64.b64encode(image).decode()
        if self.variants["items"] == "datauri":
            data = f"data:image/{self.image_fmt};base64,{data}"
        items: str | list[str] = data if self.variants["base64"] == "string" else [data]
        body = {"id": new_id(), "base64": items, "finishReason": self.finish_reason, "seed": seed}
        return JSONResponse(body)


@dataclass(frozen=True)
class _Call:
    """A request that passed validation: what to draw and how to answer."""

    directives: Directives
    ratio: str
    seed: int
    answer: _Answer
    faults: list[tuple[str, str]]


class Fireworks:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def _fault(self, fault: str, request: Request) -> Response:
        return await respond_with_fault(fault, request, DIALECT, self.state.is_closing)

    async def text_to_image(self, request: Request) -> Response:
        self.state.hit(request, NAME, "submit", ROUTE)
        content_fault = None
        if (queued := self.state.take_fault(NAME, "submit")) is not None:
            if queued not in CONTENT_FAULTS:
                return await self._fault(queued, request)
            content_fault = queued
        # #endpoint-and-auth: Authorization: Bearer; any other scheme is no key at all.
        if not key_is_valid(bearer_token(request)):
            return _error(401, DIALECT.unauthorized_message)
        fmt = answer_format(request.headers.get("accept"))
        if fmt is None:
            message = "Accept must be application/json, image/png or image/jpeg"
            return _error(406, message)  # assumption (#unconfirmed): the docs list only these three
        try:
            call = await self._read(request, fmt)
        except ValidationError as exc:
            return _error(400, str(exc))  # #errors: 400 invalid input
        except (DirectiveError, FaultError) as exc:
            return _error(400, f"emulator: {exc}")
        for fault, _ in call.faults:
            self.state.fired(NAME, fault)
            if fault not in CONTENT_FAULTS:
                return await self._fault(fault, request)
            content_fault = fault
        return await self._generate(call, content_fault)

    async def _read(self, request: Request, fmt: str) -> _Call:
        body = await read_json_object(request)
        self.state.log_request(request, NAME, "submit", body)
        prompt, ratio, seed = _validate(body)
        directives = parse_directives(prompt)
        variants = resolve_variants(VARIANT_GROUPS, self.state.take_variants(NAME) + directives.variants)
        answer = _Answer(fmt, request.headers.get("json-return-image-accept"), variants)
        faults = check_directive_faults(PROVIDER, directives.faults, ("submit",))
        return _Call(directives, ratio, seed, answer, faults)

    async def _generate(self, call: _Call, content_fault: str | None) -> Response:
        seed = call.seed or random.randint(1, MAX_SEED)  # #request: "If 0, we will use a totally random seed"
        image = await self._image(call.directives, call.ratio, seed, call.answer.image_fmt)
        response = call.answer.respond(corrupt(image, content_fault), seed)
        if content_fault:
            response.headers["x-emulator-fault"] = content_fault
        return response

    async def _image(self, directives: Directives, ratio: str, seed: int, fmt: ImageFormat) -> bytes:
        spec = ImageSpec(directives.prompt, seed, *size_for_ratio(ratio, PIXELS), NAME, fmt)
        latency = self.state.latency_for(NAME, directives.latency)
        image, _ = await asyncio.gather(self.state.images.get(spec), asyncio.sleep(latency))
        return image

    async def not_found(self, request: Request) -> Response:
        # #errors: 404 "path or model not found, not deployed, or no access".
        self.state.hit(request, NAME, "unmatched", "/{path}")
        return _error(404, f"Model or path not found: {request.method} {request.url.path}")


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = Fireworks(state)
    return [
        Route(ROUTE, api.text_to_image, methods=["POST"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit",),  # one synchronous call
    # A failed inference is a 500; bad bytes come in the 200 itself, as bytes or as base64.
    faults={fault: ("submit",) for fault in ("failed_job", *CONTENT_FAULTS)},
    variants=VARIANT_GROUPS,
)

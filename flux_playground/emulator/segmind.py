"""Segmind v1: one blocking POST that answers with JPEG bytes, under ``/segmind``.

docs/providers/segmind.md: #request, #response and #errors (anchors below are its sections).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import (
    ValidationError,
    get_bool,
    get_choice,
    get_int,
    get_number,
    get_prompt,
    key_is_valid,
    read_json_object,
)
from .directives import DirectiveError, VariantGroups, parse_directives, resolve_variants
from .emulated import ConfigKeys, EmulatedProvider, ProviderState, config_number
from .faults import Dialect, FaultError, check_directive_faults, respond_with_fault
from .images import ImageSpec, corrupt
from .state import EmulatorState

__all__ = [
    "DIALECT", "NAME", "PROVIDER", "SAMPLERS", "SCHEDULERS", "VARIANT_GROUPS", "SegmindState", "routes",
]  # fmt: skip

NAME = "segmind"
GENERATE_ROUTE = "/v1/flux-schnell"
CREDITS_ROUTE = "/v1/get-user-credits"
# #request: 27 samplers; the last 17 are inferred from ComfyUI's list (unconfirmed).
SAMPLERS = (
    "euler", "euler_pp", "euler_ancestral", "euler_ancestral_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast",
    "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
    "ipndm", "ipndm_v", "deis", "ddim", "uni_pc", "uni_pc_bh2",
)  # fmt: skip
SCHEDULERS = ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform")
MAX_SAMPLES = 4  # assumption: the range of samples is not documented (#request)
COST_PER_IMAGE = 0.008  # #price: "~$0.008" per run on the model page
START_CREDITS = 100.0  # assumption: x-remaining-credits starts here after each reset
# The third-party variant: "base64": true answers {"image": "<base64>"} (#request [S]).
VARIANT_GROUPS: VariantGroups = {"body": ("jpeg", "json")}
_PROXY_405 = b"<html><head><title>405 Not Allowed</title></head><body>405 Not Allowed</body></html>"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)  # #errors: {"error": "<message>"}


DIALECT = Dialect(
    provider=NAME,
    error=_error,
    unauthorized_message="Unauthorized. API key is invalid or may have expired...",
    credits_status=406,  # #errors: "406 - Not Acceptable: Not enough credits"
    credits_message="Not enough credits",
    rate_limit_message="rate_limit_exceeded",
    missing_fields=lambda: {"status": "success"},  # JSON, but no "image"
    reset_at_header=True,  # #errors: 429 has x-rate-limit-reset-at-utc and no Retry-After
)


@dataclass
class SegmindState(ProviderState):
    """The account balance behind x-remaining-credits (#errors); config key ``credits``."""

    config_keys: ClassVar[ConfigKeys] = {"credits": config_number}
    credits: float = START_CREDITS

    def reset(self) -> None:
        self.credits = START_CREDITS

    def stats(self) -> dict[str, object]:
        return {"credits": self.credits}


def _validate(body: dict[str, Any]) -> tuple[str, int, int, int, int]:
    prompt = get_prompt(body)
    get_int(body, "steps", 4, 1, 8)
    seed = get_int(body, "seed", 123456789, 0, 2**64 - 1)  # negative: assumption, refused
    get_choice(body, "sampler_name", "euler", SAMPLERS)
    get_choice(body, "scheduler", "normal", SCHEDULERS)
    samples = get_int(body, "samples", 1, 1, MAX_SAMPLES)
    width = get_int(body, "width", 1024, 512, 2048, multiple_of=8)
    height = get_int(body, "height", 1024, 512, 2048, multiple_of=8)
    get_number(body, "denoise", 1.0, 0.0, 1.0)
    get_bool(body, "base64", False)
    return prompt, int(seed or 0), int(samples or 1), int(width or 0), int(height or 0)


class Segmind:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.own = state.provider_state(NAME, SegmindState)

    def _unauthorized(self, request: Request) -> Response | None:
        # #errors: the key goes in x-api-key; a Bearer token is not accepted.
        key = request.headers.get("x-api-key")
        if key is None and "authorization" not in request.headers:
            return _error(401, "Missing Authorization or x-api-key in header")
        return None if key_is_valid(key) else _error(401, DIALECT.unauthorized_message)

    async def _fault(self, fault: str, request: Request) -> Response:
        return await respond_with_fault(fault, request, DIALECT, self.state.is_closing)

    def _credits_headers(self) -> dict[str, str]:
        return {"x-remaining-credits": f"{max(self.own.credits, 0.0):.6f}"}

    async def generate(self, request: Request) -> Response:
        self.state.hit(request, NAME, "submit", GENERATE_ROUTE)
        content_fault = None
        if (queued := self.state.take_fault(NAME, "submit")) is not None:
            if queued not in ("not_image", "truncated"):
                return await self._fault(queued, request)
            content_fault = queued
        if (denied := self._unauthorized(request)) is not None:
            return denied
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(406, "Invalid content type")  # #errors [S]
        try:
            body = await read_json_object(request)
            self.state.log_request(request, NAME, "submit", body)
            prompt, seed, samples, width, height = _validate(body)
            directives = parse_directives(prompt)
            names = self.state.take_variants(NAME) + directives.variants
            if body.get("base64") is True:
                names += ("json",)
            variants = resolve_variants(VARIANT_GROUPS, names)
            faults = check_directive_faults(PROVIDER, directives.faults, ("submit",))
        except ValidationError as exc:
            return _error(exc.status, str(exc))
        except (DirectiveError, FaultError) as exc:
            return _error(400, f"emulator: {exc}")
        for fault, _ in faults:
            self.state.fired(NAME, fault)
            if fault in ("not_image", "truncated"):
                content_fault = fault
            else:
                return await self._fault(fault, request)
        cost = COST_PER_IMAGE * samples
        if self.own.credits < cost:
            return _error(406, "Not enough credits")
        # Only the first sample fits in one image/jpeg body; all are billed.
        spec = ImageSpec(directives.prompt, seed, width, height, NAME, "jpeg")
        latency = self.state.latency_for(NAME, directives.latency)
        data, _ = await asyncio.gather(self.state.images.get(spec), asyncio.sleep(latency))
        data = corrupt(data, content_fault)
        self.own.credits -= cost  # #errors: not billed on non-200
        headers = self._credits_headers()
        if content_fault:
            headers["x-emulator-fault"] = content_fault
        if variants["body"] == "json":
            return JSONResponse({"image": base64.b64encode(data).decode()}, headers=headers)
        return Response(data, media_type="image/jpeg", headers=headers)

    async def credits(self, request: Request) -> Response:
        # #errors: GET /v1/get-user-credits -> {"credits": ..., "free-credits": ...}
        self.state.hit(request, NAME, "credits", CREDITS_ROUTE)
        if (faulted := await self.state.queued_fault(NAME, "credits", request, DIALECT)) is not None:
            return faulted
        if (denied := self._unauthorized(request)) is not None:
            return denied
        balance = round(max(self.own.credits, 0.0), 6)
        return JSONResponse({"credits": balance, "free-credits": 0.0}, headers=self._credits_headers())

    async def not_found(self, request: Request) -> Response:
        self.state.hit(request, NAME, "unmatched", "/{path}")
        if request.url.path.removeprefix(request.scope.get("root_path", "")) in (
            GENERATE_ROUTE, CREDITS_ROUTE,
        ):  # fmt: skip
            return Response(_PROXY_405, 405, media_type="text/html")  # #errors: 405 is HTML
        return _error(404, "The requested URL does not exist")


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = Segmind(state)
    return [
        Route(GENERATE_ROUTE, api.generate, methods=["POST"]),
        Route(CREDITS_ROUTE, api.credits, methods=["GET"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit", "credits"),
    # One sync call: a failed inference is a 500 (#errors), bad bytes come in the 200 itself.
    faults={fault: ("submit",) for fault in ("failed_job", "not_image", "truncated")},
    variants=VARIANT_GROUPS,
    make_state=SegmindState,
)

"""fal.ai: the synchronous ``POST /fal-ai/flux/schnell`` of fal.run, under ``/fal``.

Written from docs/providers/fal.md, not from the client; anchors below (#request, #response, ...) are
its sections. The answer is the result JSON; its ``images[].url`` are data URIs with ``sync_mode``,
else URLs of files this emulator serves itself under ``/files/`` (a stand-in for fal's CDN: no auth).
The queue (``queue.fal.run``, another origin) is not emulated.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

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
    new_id,
    prefix_url,
    read_json_object,
)
from .directives import DirectiveError, Directives, VariantGroups, parse_directives, resolve_variants
from .emulated import EmulatedProvider, ProviderState
from .faults import Dialect, FaultError, check_directive_faults, respond_with_fault
from .images import ImageFormat, ImageSpec, corrupt
from .state import EmulatorState

__all__ = ["DIALECT", "NAME", "PRESETS", "PROVIDER", "VARIANT_GROUPS", "FalState", "routes"]

NAME = "fal"
# #endpoint-and-auth: the endpoint id, and the same model listed as fal-ai/flux-1/schnell.
MODEL_ROUTES = ("/fal-ai/flux/schnell", "/fal-ai/flux-1/schnell")
FILE_ROUTE = "/files/{request_id}/{index:int}.{ext}"
# #sizes: the presets [S]; the default is landscape_4_3 (#request).
PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
DEFAULT_SIZE = "landscape_4_3"
# Assumption: the custom {width, height} range is unconfirmed (#sizes); any side in 64-4096 is made
# as asked, and images[].width/height say what was made.
SIZE_MIN, SIZE_MAX = 64, 4096
_FORMATS: dict[str, ImageFormat] = {"jpeg": "jpeg", "png": "png"}  # #request: output_format
_CONTENT_FAULTS = ("not_image", "truncated")
_MAX_STORED = 256  # results whose CDN files are served; the oldest are dropped
_LOCKED = "User is locked. Reason: "

# The first value of each group is the default.
VARIANT_GROUPS: VariantGroups = {
    # #response: "auto" answers data URIs with sync_mode and CDN URLs without; the others force one
    # form, so a client's handling of both can be exercised whatever it sends.
    "delivery": ("auto", "url", "data_uri"),
    # #errors: the wordings of the out-of-credit lock seen in user reports.
    "lock": ("exhausted_balance", "top_up", "admin_lock"),
}
_LOCK_MESSAGES = {
    "exhausted_balance": _LOCKED + "Exhausted balance. Top up your balance at fal.ai/dashboard/billing.",
    "top_up": _LOCKED + "TOP_UP.",
    "admin_lock": _LOCKED + "Admin lock. Please contact support@fal.ai",
}


def _error(status: int, message: str) -> JSONResponse:
    # #errors: request errors are {"detail": "<text>"}.
    return JSONResponse({"detail": message}, status_code=status)


def _unprocessable(exc: ValidationError) -> JSONResponse:
    # #errors: a model error is 422 {"detail": [{loc, msg, type, url, ...}]}, X-Fal-Retryable optional.
    # The "type" names are ours (common.ValidationError kinds).
    loc = ["body", exc.field] if exc.field else ["body"]
    entry = {"loc": loc, "msg": str(exc), "type": exc.kind, "url": f"https://docs.fal.ai/errors#{exc.kind}"}
    return JSONResponse({"detail": [entry]}, status_code=422, headers={"x-fal-retryable": "false"})


DIALECT = Dialect(
    provider=NAME,
    error=_error,
    unauthorized_message="No user found for Key ID and Secret",  # #errors: 401 [S]
    credits_status=403,  # #errors: out of credits is a 403 "User is locked"
    credits_message=_LOCK_MESSAGES["exhausted_balance"],
    rate_limit_message="Too many concurrent requests",  # assumption: the 429 body is not documented
    missing_fields=lambda: {"timings": {"inference": 0.0}, "has_nsfw_concepts": []},  # no "images"
)


def _dialect(variants: dict[str, str]) -> Dialect:
    return dataclasses.replace(DIALECT, credits_message=_LOCK_MESSAGES[variants["lock"]])


@dataclass(frozen=True)
class _Stored:
    """One answered request's images, as its CDN URLs serve them."""

    specs: tuple[ImageSpec, ...]
    content_fault: str | None


@dataclass
class FalState(ProviderState):
    """The files behind the CDN URLs of recent answers (#response: the URLs expire)."""

    results: OrderedDict[str, _Stored] = field(default_factory=OrderedDict)

    def reset(self) -> None:
        self.results.clear()

    def stats(self) -> dict[str, object]:
        return {"stored_results": len(self.results)}

    def keep(self, request_id: str, stored: _Stored) -> None:
        self.results[request_id] = stored
        while len(self.results) > _MAX_STORED:
            self.results.popitem(last=False)


@dataclass(frozen=True)
class _Input:
    """A validated body (#request)."""

    directives: Directives
    width: int
    height: int
    seed: int
    num_images: int
    fmt: ImageFormat
    sync_mode: bool


def _image_size(body: dict[str, Any]) -> tuple[int, int]:
    """#request: a preset name or {width, height}; the default is landscape_4_3."""
    size = DEFAULT_SIZE if body.get("image_size") is None else body["image_size"]
    if isinstance(size, str):
        if size not in PRESETS:
            choices = ", ".join(PRESETS)
            raise ValidationError(
                f"image_size must be one of: {choices}, or {{width, height}}", field="image_size"
            )
        return PRESETS[size]
    if not isinstance(size, dict):
        raise ValidationError("image_size must be a preset name or {width, height}", field="image_size")
    width = get_int(size, "width", None, SIZE_MIN, SIZE_MAX)
    height = get_int(size, "height", None, SIZE_MIN, SIZE_MAX)
    if width is None or height is None:
        raise ValidationError("image_size needs both width and height", field="image_size", kind="missing")
    return width, height


def _read_input(body: dict[str, Any]) -> _Input:
    prompt = get_prompt(body)
    width, height = _image_size(body)
    get_int(body, "num_inference_steps", 4, 1, 12)  # #request: 1-12, default 4
    seed = get_int(body, "seed", None, 0, 2**64 - 1)  # assumption: a negative seed is refused
    num_images = int(get_int(body, "num_images", 1, 1, 4) or 1)
    get_number(body, "guidance_scale", 3.5, 1.0, 20.0)
    get_bool(body, "enable_safety_checker", True)
    get_choice(body, "acceleration", "none", ("none", "regular", "high"))
    fmt = _FORMATS[get_choice(body, "output_format", "jpeg", tuple(_FORMATS))]  # #request: jpeg default
    return _Input(
        directives=parse_directives(prompt),
        width=width,
        height=height,
        seed=random.randrange(2**31) if seed is None else seed,  # #response: the seed used comes back
        num_images=num_images,
        fmt=fmt,
        sync_mode=get_bool(body, "sync_mode", False),
    )


def _key_error(request: Request) -> Response | None:
    """#endpoint-and-auth: ``Authorization: Key <FAL_KEY>``; no header or another scheme (Bearer) is a
    401 (that wording is ours), and so is an unknown key (#errors)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "key":
        return _error(401, "Missing or invalid Authorization header: send 'Authorization: Key <FAL_KEY>'")
    return None if key_is_valid(key.strip()) else _error(401, DIALECT.unauthorized_message)


class Fal:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.own = state.provider_state(NAME, FalState)

    async def generate(self, request: Request) -> Response:
        route = request.url.path.removeprefix(request.scope.get("root_path", ""))
        self.state.hit(request, NAME, "submit", route)
        # Variants are taken first: a queued fault is worded by them too.
        names = self.state.take_variants(NAME)
        dialect = _dialect(resolve_variants(VARIANT_GROUPS, names))
        content_fault = None
        if (queued := self.state.take_fault(NAME, "submit")) is not None:
            if queued not in _CONTENT_FAULTS:
                return await respond_with_fault(queued, request, dialect, self.state.is_closing)
            content_fault = queued
        if (denied := _key_error(request)) is not None:
            return denied
        try:
            body = await read_json_object(request)
            self.state.log_request(request, NAME, "submit", body)
            asked = _read_input(body)
            variants = resolve_variants(VARIANT_GROUPS, names + asked.directives.variants)
            faults = check_directive_faults(PROVIDER, asked.directives.faults, ("submit",))
        except ValidationError as exc:
            return _unprocessable(exc)
        except (DirectiveError, FaultError) as exc:
            return _error(400, f"emulator: {exc}")
        for fault, _ in faults:
            self.state.fired(NAME, fault)
            if fault not in _CONTENT_FAULTS:
                return await respond_with_fault(fault, request, _dialect(variants), self.state.is_closing)
            content_fault = fault
        return await self._answer(request, asked, variants, content_fault)

    async def _answer(
        self, request: Request, asked: _Input, variants: dict[str, str], content_fault: str | None
    ) -> Response:
        """#response: {images: [{url, width, height, content_type}], timings, seed, has_nsfw_concepts,
        prompt}, and the request id in x-fal-request-id."""
        specs = tuple(
            ImageSpec(asked.directives.prompt, asked.seed + n, asked.width, asked.height, NAME, asked.fmt)
            for n in range(asked.num_images)
        )
        latency = self.state.latency_for(NAME, asked.directives.latency)
        images, _ = await asyncio.gather(
            asyncio.gather(*(self.state.images.get(spec) for spec in specs)), asyncio.sleep(latency)
        )
        request_id = new_id()
        inline = variants["delivery"] == "data_uri" or (variants["delivery"] == "auto" and asked.sync_mode)
        if inline:  # #request sync_mode: not kept, so nothing is stored
            urls = [_data_uri(corrupt(data, content_fault), asked.fmt) for data in images]
        else:
            self.own.keep(request_id, _Stored(specs, content_fault))
            urls = [prefix_url(request, _file_path(request_id, n, asked.fmt)) for n in range(len(specs))]
        headers = {"x-fal-request-id": request_id}
        if content_fault:
            headers["x-emulator-fault"] = content_fault
        return JSONResponse(
            {
                "images": [
                    {
                        "url": url,
                        "width": asked.width,
                        "height": asked.height,
                        "content_type": f"image/{asked.fmt}",
                    }
                    for url in urls
                ],
                "timings": {"inference": round(latency, 3)},
                "seed": asked.seed,
                "has_nsfw_concepts": [False] * len(urls),
                "prompt": asked.directives.prompt,
            },
            headers=headers,
        )

    async def download(self, request: Request) -> Response:
        """The CDN file behind an answer's URL (stand-in for fal's CDN: no auth)."""
        self.state.hit(request, NAME, "download", FILE_ROUTE)
        if (faulted := await self.state.queued_fault(NAME, "download", request, DIALECT)) is not None:
            return faulted
        stored = self.own.results.get(request.path_params["request_id"])
        index: int = request.path_params["index"]
        if (
            stored is None
            or index >= len(stored.specs)
            or request.path_params["ext"] != stored.specs[index].fmt
        ):
            return Response("Not Found", 404, media_type="text/plain")
        spec = stored.specs[index]
        data = corrupt(await self.state.images.get(spec), stored.content_fault)
        return Response(data, media_type=f"image/{spec.fmt}")

    async def not_found(self, request: Request) -> Response:
        self.state.hit(request, NAME, "unmatched", "/{path}")
        return _error(404, "Not Found")


def _file_path(request_id: str, index: int, fmt: ImageFormat) -> str:
    return f"/files/{request_id}/{index}.{fmt}"


def _data_uri(data: bytes, fmt: ImageFormat) -> str:
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = Fal(state)
    return [
        *(Route(path, api.generate, methods=["POST"]) for path in MODEL_ROUTES),
        Route(FILE_ROUTE, api.download, methods=["GET"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit", "download"),
    # One sync call: a failed inference is a 500 (#errors); bad image bytes come with the answer,
    # inline or in the files its URLs serve.
    faults={fault: ("submit",) for fault in ("failed_job", *_CONTENT_FAULTS)},
    binary_stages=frozenset({"download"}),  # CDN files are images, not JSON
    variants=VARIANT_GROUPS,
    make_state=FalState,
)

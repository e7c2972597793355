"""Replicate: predictions held with ``Prefer: wait``, then polled, served under ``/replicate``.

Written from docs/providers/replicate.md; anchors below (#request, #response, ...) are its sections.

Create ``POST /v1/models/black-forest-labs/flux-schnell/predictions`` with ``{"input": {...}}``:
answered 201 with the prediction, finished if the job completes within the ``Prefer: wait``
window, else ``starting`` (no header) or ``processing`` (the window ran out). Poll
``GET /v1/predictions/{id}`` (its ``urls.get``); output files are served under ``/files/`` as a
stand-in for Replicate's file CDN (no auth) and vanish after the retention window.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import (
    ValidationError,
    bearer_token,
    get_bool,
    get_choice,
    get_int,
    get_prompt,
    iso,
    key_is_valid,
    new_id,
    prefix_url,
    read_json_object,
    sleep_until,
)
from .directives import DirectiveError, VariantGroups, parse_directives, resolve_variants
from .emulated import EmulatedProvider
from .faults import Dialect, FaultError, respond_with_fault
from .files import serve_output
from .images import ImageSpec, corrupt
from .jobs import CONTENT_FAULTS, JOB_FAULTS, Job, assign_faults
from .state import EmulatorState

__all__ = ["DIALECT", "NAME", "PROVIDER", "SIZES", "VARIANT_GROUPS", "routes"]

T = TypeVar("T")

NAME = "replicate"
MODEL = "black-forest-labs/flux-schnell"  # #endpoint-and-auth: an official model, no version
VERSION = "c846a699"  # #request: the schema's version, abbreviated as the docs page gives it
CREATE_ROUTE = f"/v1/models/{MODEL}/predictions"
POLL_ROUTE = "/v1/predictions/{prediction_id}"
FILE_ROUTE = "/files/{prediction_id}/out-{index:int}.png"

# #sizes: pixels per aspect_ratio at megapixels "1" (cog-flux's ASPECT_RATIOS); "0.25" halves each side.
SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832),
    "2:3": (832, 1216), "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152),
    "4:3": (1152, 896), "9:16": (768, 1344), "9:21": (640, 1536),
}  # fmt: skip
MEGAPIXELS = ("1", "0.25")  # #request: a string enum
OUTPUT_FORMATS = ("webp", "jpg", "png")
MAX_WAIT_S = 60  # #endpoint-and-auth: Prefer: wait holds up to 60 s; wait=N is clamped to 1-60 [S]
OUTPUT_RETENTION_S = 3600.0  # #response: outputs are "automatically removed after an hour"
_PREFER_WAIT = re.compile(r"^\s*wait\s*(?:=\s*(\d+)\s*)?$", re.IGNORECASE)
NSFW_ERROR = (  # #response: cog-flux's words when every image was flagged
    "All generated images contained NSFW content. Try running it again with a different prompt."
)
FAILED_ERROR = "Prediction failed (emulated failed_job fault)"

# Response variants; the first value is the default.
VARIANT_GROUPS: VariantGroups = {
    # #response: sync runs once answered data URIs instead of URLs (replicate-python #377).
    "output": ("urls", "datauri"),
    # #response: images flagged NSFW are dropped from `output`; all flagged fails the run.
    "nsfw": ("clean", "nsfw_first", "nsfw_all"),
}

# #errors: problem-details titles. The 401 wording is our assumption (its body is unconfirmed); the
# documented 429 body has a `detail` only.
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    402: "Insufficient credit",
    404: "Not found",
    422: "Input validation failed",
    500: "Internal server error",
    504: "Gateway timeout",
}


def _problem(status: int, detail: str, **extra: object) -> JSONResponse:
    """#errors: problem-details JSON ``{"title", "detail", "status"}``."""
    title = {"title": _TITLES[status]} if status in _TITLES else {}
    status_field = {"status": status} if status != 429 else {}
    return JSONResponse({**title, "detail": detail, **status_field, **extra}, status_code=status)


DIALECT = Dialect(
    provider=NAME,
    error=_problem,
    unauthorized_message="You did not pass a valid authentication token",
    credits_status=402,  # #errors: 402 "Insufficient credit"
    credits_message=(
        "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing "
        "to purchase credit. Once you purchase credit, please wait a few minutes before trying again."
    ),
    rate_limit_message="Request was throttled. Your rate limit resets in ~30s.",  # #errors [P]
    # A finished prediction without the `output` a client needs (and no id or urls).
    missing_fields=lambda: {"status": "succeeded", "error": None},
)


class InvalidInput(ValueError):
    """#errors: 422 "Input validation failed", each problem in `detail` and `invalid_fields`."""

    def __init__(self, problems: list[ValidationError]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems

    def response(self) -> JSONResponse:
        fields = [f"input.{p.field}" if p.field else "input" for p in self.problems]
        detail = "".join(f"- {field}: {p}\n" for field, p in zip(fields, self.problems, strict=True))
        invalid = [
            {"type": p.kind, "field": field, "description": str(p)}  # the type names are ours
            for field, p in zip(fields, self.problems, strict=True)
        ]
        return _problem(422, detail, invalid_fields=invalid)


class _Input:
    """Reads `input` field by field, collecting every problem (Replicate lists them all)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.problems: list[ValidationError] = []

    def read(self, getter: Callable[[dict[str, Any]], T], fallback: T) -> T:
        try:
            return getter(self.fields)
        except ValidationError as exc:
            self.problems.append(exc)
            return fallback


def _input(body: dict[str, Any]) -> dict[str, Any]:
    fields = body.get("input")
    if not isinstance(fields, dict):
        problem = ValidationError("input is required and must be an object", field=None, kind="required")
        raise InvalidInput([problem])
    return fields


def _prefer_wait(request: Request) -> float | None:
    """#endpoint-and-auth: ``Prefer: wait`` holds up to 60 s, ``wait=N`` N s (1-60); else async."""
    found = _PREFER_WAIT.match(request.headers.get("prefer", ""))
    if found is None:
        return None
    return float(min(max(int(found.group(1) or MAX_WAIT_S), 1), MAX_WAIT_S))


def _is_request_fault(fault: str) -> bool:
    return fault not in JOB_FAULTS


class Replicate:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def _unauthorized(self, request: Request) -> Response | None:
        # #endpoint-and-auth: `Authorization: Bearer <token>`; any other scheme is no token at all.
        token = bearer_token(request)
        return None if key_is_valid(token) else _problem(401, DIALECT.unauthorized_message)

    async def _fault(self, fault: str, request: Request) -> Response:
        return await respond_with_fault(fault, request, DIALECT, self.state.is_closing)

    async def _admitted(
        self, request: Request, stage: str, route: str, fault_here: Callable[[str], bool] | None = None
    ) -> Response | None:
        """Count the request; None if it goes on, else the answer to a queued fault or a bad token."""
        self.state.hit(request, NAME, stage, route)
        if (fault := self.state.take_fault(NAME, stage, fault_here)) is not None:
            return await self._fault(fault, request)
        return self._unauthorized(request)

    # -- create ------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        # A queued job fault is left for the job this request creates (see _new_job).
        if (refused := await self._admitted(request, "submit", CREATE_ROUTE, _is_request_fault)) is not None:
            return refused
        try:
            body = await read_json_object(request)
            self.state.log_request(request, NAME, "submit", body)
            wait = _prefer_wait(request)
            job, now_faults = self._new_job(_input(body), held=wait is not None)
        except InvalidInput as exc:
            return exc.response()
        except ValidationError as exc:  # not JSON, or not an object
            return _problem(400, str(exc))
        except (DirectiveError, FaultError) as exc:
            return _problem(400, f"emulator: {exc}")
        if now_faults:
            self.state.fired(NAME, now_faults[0])
            return await self._fault(now_faults[0], request)
        self.state.jobs.add(job)
        if wait is None:  # #endpoint-and-auth: without Prefer: wait the answer is immediate
            return await self._prediction(request, job, job.created, status=201, unfinished="starting")
        # #response: held until done or the window ends, then answered as it is (maybe unfinished).
        deadline = job.created + wait
        await sleep_until(deadline if job.ready is None else min(job.ready, deadline), self.state.is_closing)
        return await self._prediction(request, job, time.monotonic(), status=201)

    def _new_job(self, fields: dict[str, Any], *, held: bool) -> tuple[Job, list[str]]:
        """#request: the documented input schema, every problem reported at once (#errors: 422)."""
        given = _Input(fields)
        prompt = given.read(get_prompt, "")
        ratio = given.read(lambda f: get_choice(f, "aspect_ratio", "1:1", tuple(SIZES)), "1:1")
        megapixels = given.read(lambda f: get_choice(f, "megapixels", "1", MEGAPIXELS), "1")
        num_outputs = given.read(lambda f: get_int(f, "num_outputs", 1, 1, 4), None)
        given.read(lambda f: get_int(f, "num_inference_steps", 4, 1, 4), None)
        seed = given.read(lambda f: get_int(f, "seed", None, -(2**63), 2**63 - 1), None)  # range: ours
        given.read(lambda f: get_choice(f, "output_format", "webp", OUTPUT_FORMATS), "webp")
        given.read(lambda f: get_int(f, "output_quality", 80, 0, 100), None)
        given.read(lambda f: get_bool(f, "disable_safety_checker", False), False)
        given.read(lambda f: get_bool(f, "go_fast", True), True)
        if given.problems:
            raise InvalidInput(given.problems)
        directives = parse_directives(prompt)
        width, height = SIZES[ratio]
        if megapixels == "0.25":
            width, height = width // 2, height // 2
        now = time.monotonic()
        variants = resolve_variants(VARIANT_GROUPS, self.state.take_variants(NAME) + directives.variants)
        job = Job(
            id=new_id(),
            model=MODEL,
            prompt=directives.prompt,
            seed=random.randrange(2**31) if seed is None else seed,  # #request: random when unset
            width=width,
            height=height,
            num_images=num_outputs or 1,
            variants={**variants, "done": "succeeded"},  # Job.status: processing/failed/succeeded
            base64_output=variants["output"] == "datauri",
            sync=held,
            created_wall=time.time(),
            created=now,
            ready=now + self.state.latency_for(NAME, directives.latency),
            # Assumption (the docs are silent): unknown inputs are ignored; listed so tests can see them.
            ignored_fields=sorted(set(fields) - _FIELDS),
        )
        if variants["nsfw"] == "nsfw_all" or (variants["nsfw"] == "nsfw_first" and job.num_images == 1):
            job.failed = True  # #response: the run fails only if every image was flagged
        return job, assign_faults(self.state, PROVIDER, job, directives.faults)

    # -- poll --------------------------------------------------------------------

    async def poll(self, request: Request) -> Response:
        if (refused := await self._admitted(request, "poll", POLL_ROUTE)) is not None:
            return refused
        self.state.log_request(request, NAME, "poll", None)
        job = self.state.jobs.get(request.path_params["prediction_id"])
        if job is None:
            return _problem(404, "Not found.")
        now = time.monotonic()
        job.polls += 1
        if (pending := job.pending.pop("poll", None)) is not None:
            self.state.fired(NAME, pending)
            return await self._fault(pending, request)
        if job.done(now) and job.first_done_poll is None:
            job.first_done_poll = now
        return await self._prediction(request, job, now, status=200)

    # -- the prediction object ---------------------------------------------------

    async def _prediction(
        self, request: Request, job: Job, now: float, *, status: int, unfinished: str = "processing"
    ) -> JSONResponse:
        """#response: the prediction object; `output` null until it succeeded."""
        state = job.status(now)
        done = state != "processing"
        get_url = prefix_url(request, f"/v1/predictions/{job.id}")
        took = round((job.ready or now) - job.created, 3)
        expired = _expired(job)
        output = await self._outputs(request, job) if state == "succeeded" and not expired else None
        return JSONResponse(
            {
                "id": job.id,
                "model": job.model,
                "version": VERSION,
                "input": {"prompt": job.prompt, "seed": job.seed, "num_outputs": job.num_images},
                "logs": f"Using seed: {job.seed}\n",
                "output": output,
                "data_removed": expired,
                "error": _error_text(job) if state == "failed" else None,
                "status": state if done else unfinished,
                "created_at": iso(job.created_wall),
                "started_at": iso(job.created_wall),
                "completed_at": iso(job.created_wall + took) if done else None,
                "metrics": {"predict_time": took, "total_time": took} if done else {},
                "urls": {"get": get_url, "cancel": f"{get_url}/cancel"},
            },
            status_code=status,
        )

    async def _outputs(self, request: Request, job: Job) -> list[str]:
        if job.variants["output"] == "urls":
            return [prefix_url(request, f"/files/{job.id}/out-{i}.png") for i in _kept(job)]
        images = await asyncio.gather(*(self._image(i)(job) for i in _kept(job)))
        return [_data_uri(corrupt(data, _inline_fault(job))) for data in images]

    # -- output files (stand-in for Replicate's file CDN: no auth) -------------------

    async def download(self, request: Request) -> Response:
        self.state.hit(request, NAME, "download", FILE_ROUTE)
        index: int = request.path_params["index"]

        def available(job: Job) -> bool:
            finished = job.done(time.monotonic()) and not job.failed
            return finished and index in _kept(job) and not _expired(job)

        job = self.state.jobs.get(request.path_params["prediction_id"])
        return await serve_output(request, self.state, DIALECT, job, available, self._image(index), {})

    def _image(self, index: int) -> Callable[[Job], Awaitable[bytes]]:
        async def render(job: Job) -> bytes:
            spec = ImageSpec(job.prompt, job.seed + index, job.width, job.height, NAME, "png")
            return await self.state.images.get(spec)

        return render

    async def not_found(self, request: Request) -> Response:
        self.state.hit(request, NAME, "unmatched", "/{path}")
        return _problem(404, f"Not found: {request.method} {request.url.path}")


# #request: the documented input fields; anything else is ignored.
_FIELDS = frozenset({
    "prompt", "aspect_ratio", "megapixels", "num_outputs", "num_inference_steps", "seed",
    "output_format", "output_quality", "disable_safety_checker", "go_fast",
})  # fmt: skip


def _kept(job: Job) -> list[int]:
    """#response: the outputs not dropped as NSFW (variant nsfw_first drops the first)."""
    dropped = {0} if job.variants["nsfw"] == "nsfw_first" else set()
    return [i for i in range(job.num_images) if i not in dropped]


def _expired(job: Job) -> bool:
    return time.time() - job.created_wall > OUTPUT_RETENTION_S


def _error_text(job: Job) -> str:
    return FAILED_ERROR if "failed_job" in job.faults else NSFW_ERROR


def _inline_fault(job: Job) -> str | None:
    return job.content_fault if job.content_fault in ("not_image", "truncated") else None


def _data_uri(data: bytes) -> str:
    # #response: the form replicate-python #377 reported.
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = Replicate(state)
    return [
        Route(CREATE_ROUTE, api.create, methods=["POST"]),
        Route(POLL_ROUTE, api.poll, methods=["GET"]),
        Route(FILE_ROUTE, api.download, methods=["GET"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit", "poll", "download"),
    faults={
        # #response: a prediction may fail or stay unfinished; both show when it is read (inline
        # within the wait, or at a poll) but belong to the job, so the next create takes a queued one.
        "failed_job": ("poll",),
        "never_completes": ("poll",),
        # #response: output files are downloaded from Replicate's file CDN.
        **{fault: ("download",) for fault in CONTENT_FAULTS},
    },
    job_faults=frozenset({"failed_job", "never_completes"}),
    binary_stages=frozenset({"download"}),  # output files are PNG, not JSON
    variants=VARIANT_GROUPS,
)

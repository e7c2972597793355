"""Atlas Cloud: async submit + poll, served under ``/atlascloud``.

Written from docs/providers/atlascloud.md; anchors below (#request, #response, ...) are its sections.

Submit ``POST /api/v1/model/generateImage`` with a flat body, poll
``GET /api/v1/model/prediction/{id}`` (or the legacy ``getResult``), then download
the output URL, which this emulator serves itself under ``/files/`` as a stand-in
for Atlas's storage CDN.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import (
    ValidationError,
    bearer_token,
    get_bool,
    get_int,
    get_number,
    get_prompt,
    iso,
    key_is_valid,
    new_id,
    prefix_url,
    read_json_object,
    sleep_until,
)
from .directives import DirectiveError, VariantGroups, parse_directives, resolve_variants
from .emulated import EmulatedProvider, ProviderState
from .faults import (
    Dialect,
    FaultError,
    respond_with_fault,
)
from .files import serve_output
from .images import ImageSpec, corrupt
from .jobs import CONTENT_FAULTS, JOB_FAULTS, LIFECYCLE_FAULTS, Job, assign_faults
from .state import EmulatorState

__all__ = ["DIALECT", "MODELS", "NAME", "PROVIDER", "VARIANT_GROUPS", "AtlasState", "routes"]

NAME = "atlascloud"
# #endpoint-and-auth: the flux-schnell listing and its WaveSpeed twin with an identical schema.
MODELS = ("black-forest-labs/flux-schnell", "wavespeed-ai/flux-schnell")
# #request: the documented schema. Anything else (e.g. the generic page's width/height/
# steps) is ignored, as Atlas says undocumented parameters "don't exist", and listed
# in the job record so tests can see a client sent them.
_FIELDS = frozenset({
    "model", "prompt", "size", "seed", "num_images", "image", "mask_image", "strength",
    "enable_sync_mode", "enable_base64_output", "enable_safety_checker",
})  # fmt: skip
_SIZE = re.compile(r"^(\d+)\*(\d+)$")  # #request: "W*H" -- the separator is '*', not 'x'
# Atlas does not document the range (#request); the upstream WaveSpeed schema of the same
# model says "Each dimension 256-1536" (#sizes, audit A3).
SIZE_MIN, SIZE_MAX = 256, 1536
SYNC_MODE_MAX_WAIT = 60.0  # assumption: sync mode gives up and answers "processing"
_MAX_UPLOAD = 32 * 1024 * 1024
_MAX_STORED_UPLOADS = 32

# Response variants (#response "Inconsistencies to tolerate"); the first value is the default.
# outputs "auto" means: base64 when enable_base64_output is set, URLs otherwise.
VARIANT_GROUPS: VariantGroups = {
    "envelope": ("data", "flat"),
    "start": ("starting", "created", "processing"),
    "done": ("completed", "succeeded"),
    "outputs": ("auto", "url", "base64", "datauri"),
    "items": ("strings", "url_objects"),
}

SUBMIT_ROUTE = "/api/v1/model/generateImage"
POLL_ROUTE = "/api/v1/model/prediction/{prediction_id}"
LEGACY_ROUTE = "/api/v1/model/getResult"
FILE_ROUTE = "/files/{prediction_id}/{index:int}.png"


def _error(status: int, message: str) -> JSONResponse:
    # #errors: the exact JSON is unconfirmed; clients read msg || message || error.
    return JSONResponse({"code": status, "msg": message}, status_code=status)


DIALECT = Dialect(
    provider=NAME,
    error=_error,
    unauthorized_message="Unauthorized: invalid or expired API key",
    credits_status=402,  # #errors: 402 = insufficient balance
    credits_message="Insufficient balance",
    rate_limit_message="Too many requests",
    # A done status with no outputs (at poll) and no id (at submit).
    missing_fields=lambda: {"code": 200, "data": {"status": "completed"}},
)


def _is_request_fault(fault: str) -> bool:
    return fault not in JOB_FAULTS


@dataclass
class AtlasState(ProviderState):
    """uploadMedia files, kept so their download_url works (#endpoint-and-auth: "cleaned up periodically")."""

    uploads: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)

    def reset(self) -> None:
        self.uploads.clear()

    def stats(self) -> dict[str, object]:
        return {"uploads": len(self.uploads)}


def _parse_size(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("size", "1024*1024")
    match = _SIZE.match(size) if isinstance(size, str) else None
    if match is None:
        raise ValidationError(f'size must be a string "W*H" such as "1024*1024", got {size!r}')
    width, height = int(match.group(1)), int(match.group(2))
    if not (SIZE_MIN <= width <= SIZE_MAX and SIZE_MIN <= height <= SIZE_MAX):
        raise ValidationError(f"size sides must be between {SIZE_MIN} and {SIZE_MAX}, got {size!r}")
    return width, height


class AtlasCloud:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.own = state.provider_state(NAME, AtlasState)

    def _closing(self) -> bool:
        return self.state.closing

    def _unauthorized(self, request: Request) -> Response | None:
        token = bearer_token(request)
        if token is None:
            return _error(401, "Unauthorized: missing Authorization: Bearer <key> header")
        return None if key_is_valid(token) else _error(401, DIALECT.unauthorized_message)

    async def _fault(self, fault: str, request: Request) -> Response:
        return await respond_with_fault(fault, request, DIALECT, self._closing)

    # -- submit ------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        self.state.hit(request, NAME, "submit", SUBMIT_ROUTE)
        if (queued := self.state.take_fault(NAME, "submit", _is_request_fault)) is not None:
            return await self._fault(queued, request)
        if (denied := self._unauthorized(request)) is not None:
            return denied
        try:
            body = await read_json_object(request)
            self.state.log_request(request, NAME, "submit", body)
            job, now_faults = self._new_job(body)
        except ValidationError as exc:
            return _error(exc.status, str(exc))
        except (DirectiveError, FaultError) as exc:
            return _error(400, f"emulator: {exc}")
        if now_faults:
            self.state.fired(NAME, now_faults[0])
            return await self._fault(now_faults[0], request)
        self.state.jobs.add(job)
        if job.sync:  # #request enable_sync_mode: wait, then answer with the finished data
            deadline = job.ready if job.ready is not None else job.created + SYNC_MODE_MAX_WAIT
            await sleep_until(min(deadline, job.created + SYNC_MODE_MAX_WAIT), self._closing)
            return await self._prediction(request, job, time.monotonic())
        return await self._prediction(request, job, job.created, submitted=True)

    def _new_job(self, body: dict[str, Any]) -> tuple[Job, list[str]]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ValidationError("model is required")
        if model not in MODELS:
            raise ValidationError(f"model not found: {model}", status=404)
        prompt = get_prompt(body)  # a body wrapped in "input" (old doc example) fails here
        width, height = _parse_size(body)
        seed = get_int(body, "seed", -1, -1, 2**63 - 1)
        num_images = get_int(body, "num_images", 1, 1, 4)
        get_number(body, "strength", 0.8, 0.0, 1.0)
        get_bool(body, "enable_safety_checker", True)
        directives = parse_directives(prompt)
        names = self.state.take_variants(NAME) + directives.variants
        now = time.monotonic()
        latency = self.state.latency_for(NAME, directives.latency)
        job = Job(
            id=new_id(),
            model=model,
            prompt=directives.prompt,
            seed=random.randrange(2**31) if seed in (None, -1) else int(seed),  # #request: -1 = random
            width=width,
            height=height,
            num_images=num_images or 1,
            variants=resolve_variants(VARIANT_GROUPS, names),
            base64_output=get_bool(body, "enable_base64_output", False),
            sync=get_bool(body, "enable_sync_mode", False),
            created_wall=time.time(),
            created=now,
            ready=now + latency,
            ignored_fields=sorted(set(body) - _FIELDS),
        )
        now_faults = assign_faults(self.state, PROVIDER, job, directives.faults)
        return job, now_faults

    # -- poll --------------------------------------------------------------------

    async def poll(self, request: Request) -> Response:
        self.state.hit(request, NAME, "poll", POLL_ROUTE)
        return await self._poll(request, request.path_params["prediction_id"], legacy=False)

    async def get_result(self, request: Request) -> Response:
        # #response: older docs poll GET /model/getResult?predictionId=... and read flat fields.
        self.state.hit(request, NAME, "poll", LEGACY_ROUTE)
        return await self._poll(request, request.query_params.get("predictionId", ""), legacy=True)

    async def _poll(self, request: Request, job_id: str, legacy: bool) -> Response:
        if (faulted := await self.state.queued_fault(NAME, "poll", request, DIALECT)) is not None:
            return faulted
        if (denied := self._unauthorized(request)) is not None:
            return denied
        self.state.log_request(request, NAME, "poll", None)
        if not job_id:
            return _error(400, "predictionId is required")
        job = self.state.jobs.get(job_id)
        if job is None:
            return _error(404, f"prediction not found: {job_id}")
        now = time.monotonic()
        job.polls += 1
        if (pending := job.pending.pop("poll", None)) is not None:
            self.state.fired(NAME, pending)
            return await self._fault(pending, request)
        if job.fresh_404_until is not None and now < job.fresh_404_until:
            job.polls_404 += 1  # #response: a just-created job may briefly be "not found"
            return _error(404, f"prediction not found: {job_id}")
        if job.done(now) and job.first_done_poll is None:
            job.first_done_poll = now
        return await self._prediction(request, job, now, flat=legacy)

    async def _prediction(
        self, request: Request, job: Job, now: float, submitted: bool = False, flat: bool = False
    ) -> JSONResponse:
        status = job.variants["start"] if submitted else job.status(now)
        outputs: list[object] = []
        if status == job.variants["done"]:
            outputs = await self._outputs(request, job)
        done = status in ("failed", job.variants["done"])
        ready = job.ready if job.ready is not None else now
        get_url = prefix_url(request, f"/api/v1/model/prediction/{job.id}")
        fields: dict[str, object] = {
            "id": job.id,
            "model": job.model,
            "status": status,
            "urls": {"get": get_url},
            "has_nsfw_contents": [False] * len(outputs),
            "created_at": iso(job.created_wall),
            "completed_at": iso(job.created_wall + ready - job.created) if done else None,
            "metrics": {"predict_time": round(ready - job.created, 3)} if done else {},
            "error": "Inference failed (emulated failed_job fault)" if status == "failed" else "",
        }
        if flat or job.variants["envelope"] == "flat":
            # #response: the per-model reference shows a Replicate-style flat object.
            fields["urls"] = {"get": get_url, "cancel": f"{get_url}/cancel"}
            return JSONResponse({**fields, "output": outputs, "input": {"prompt": job.prompt}})
        return JSONResponse({"code": 200, "data": {**fields, "outputs": outputs}})

    async def _outputs(self, request: Request, job: Job) -> list[object]:
        mode = job.variants["outputs"]
        if mode == "auto":
            mode = "base64" if job.base64_output else "url"
        items: list[str]
        if mode == "url":
            items = [prefix_url(request, f"/files/{job.id}/{i}.png") for i in range(job.num_images)]
        else:  # #request enable_base64_output; bare base64 vs data URI is unconfirmed (#response)
            images = await asyncio.gather(*(self._image(job, i) for i in range(job.num_images)))
            fault = job.content_fault if job.content_fault in ("not_image", "truncated") else None
            items = [base64.b64encode(corrupt(data, fault)).decode() for data in images]
            if mode == "datauri":
                items = [f"data:image/png;base64,{item}" for item in items]
        if job.variants["items"] == "url_objects":
            return [{"url": item} for item in items]
        return list(items)

    async def _image(self, job: Job, index: int) -> bytes:
        spec = ImageSpec(job.prompt, job.seed + index, job.width, job.height, NAME, "png")
        return await self.state.images.get(spec)

    # -- output files (stand-in for Atlas's storage CDN: no auth) -----------------

    async def download(self, request: Request) -> Response:
        self.state.hit(request, NAME, "download", FILE_ROUTE)
        index: int = request.path_params["index"]

        def available(job: Job) -> bool:
            return index < job.num_images and job.done(time.monotonic()) and not job.failed

        headers = {"cache-control": "public, max-age=1209600"}  # #price: kept 14 days by default
        job = self.state.jobs.get(request.path_params["prediction_id"])
        return await serve_output(
            request, self.state, DIALECT, job, available, lambda job: self._image(job, index), headers
        )

    # -- uploads and catalogue ----------------------------------------------------

    async def upload(self, request: Request) -> Response:
        self.state.hit(request, NAME, "upload", "/api/v1/model/uploadMedia")
        if (faulted := await self.state.queued_fault(NAME, "upload", request, DIALECT)) is not None:
            return faulted
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return _error(400, "uploadMedia expects multipart/form-data with a 'file' field")
        async with request.form(max_files=1) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return _error(400, "missing multipart field 'file'")
            data = await upload.read(_MAX_UPLOAD + 1)
            if len(data) > _MAX_UPLOAD:
                return _error(413, f"file larger than {_MAX_UPLOAD} bytes")
            filename = upload.filename or "upload.bin"
            content_type = upload.content_type or "application/octet-stream"
        self.state.log_request(request, NAME, "upload", {"filename": filename, "size": len(data)})
        upload_id = new_id()
        uploads = self.own.uploads
        uploads[upload_id] = (filename, content_type, data)
        while len(uploads) > _MAX_STORED_UPLOADS:
            del uploads[next(iter(uploads))]
        # #endpoint-and-auth: response shape per SKILL.md / mcp-server UploadResponse.
        return JSONResponse({"code": 200, "message": "success", "data": {
            "type": content_type,
            "download_url": prefix_url(request, f"/uploads/{upload_id}/{filename}"),
            "filename": filename,
            "size": len(data),
        }})  # fmt: skip

    async def uploaded_file(self, request: Request) -> Response:
        self.state.hit(request, NAME, "download", "/uploads/{upload_id}/{filename}")
        stored = self.own.uploads.get(request.path_params["upload_id"])
        if stored is None:
            return Response("Not Found", 404, media_type="text/plain")
        return Response(stored[2], media_type=stored[1])

    async def models(self, request: Request) -> Response:
        # #endpoint-and-auth: the catalogue needs no auth; #price: price read from price.actual.base_price.
        self.state.hit(request, NAME, "models", "/api/v1/models")
        if (faulted := await self.state.queued_fault(NAME, "models", request, DIALECT)) is not None:
            return faulted
        return JSONResponse({"code": 200, "data": [{
            "model": model,
            "type": "Image",
            "displayName": "FLUX.1 [schnell]",
            "schema": prefix_url(request, "/schemas/flux-schnell.json"),
            "price": {"actual": {"base_price": 0.003}},
        } for model in MODELS]})  # fmt: skip

    async def schema(self, request: Request) -> Response:
        # #request: an OpenAPI document; clients read components.schemas.Input.properties.
        self.state.hit(request, NAME, "models", "/schemas/flux-schnell.json")
        return JSONResponse({"openapi": "3.0.0", "components": {"schemas": {"Input": {
            "type": "object",
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string"},
                "size": {"type": "string", "default": "1024*1024"},
                "seed": {"type": "integer", "default": -1},
                "num_images": {"type": "integer", "default": 1, "minimum": 1, "maximum": 4},
                "strength": {"type": "number", "default": 0.8, "minimum": 0, "maximum": 1},
                "enable_sync_mode": {"type": "boolean", "default": False},
                "enable_base64_output": {"type": "boolean", "default": False},
                "enable_safety_checker": {"type": "boolean", "default": True},
            },
        }}}})  # fmt: skip

    async def not_found(self, request: Request) -> Response:
        self.state.hit(request, NAME, "unmatched", "/{path}")
        return _error(404, f"not found: {request.method} {request.url.path}")


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = AtlasCloud(state)
    return [
        Route(SUBMIT_ROUTE, api.submit, methods=["POST"]),
        Route(POLL_ROUTE, api.poll, methods=["GET"]),
        Route(LEGACY_ROUTE, api.get_result, methods=["GET"]),
        Route("/api/v1/model/uploadMedia", api.upload, methods=["POST"]),
        Route("/api/v1/models", api.models, methods=["GET"]),
        Route("/schemas/flux-schnell.json", api.schema, methods=["GET"]),
        Route(FILE_ROUTE, api.download, methods=["GET"]),
        Route("/uploads/{upload_id}/{filename}", api.uploaded_file, methods=["GET"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit", "poll", "download", "upload", "models"),
    faults={
        # #response: a job may fail, stay "processing", or be briefly unknown to the poll; these
        # show at the poll but belong to the job, so the next submit takes a queued one.
        **{fault: ("poll",) for fault in LIFECYCLE_FAULTS},
        # Bad output files: served by the download (inline base64 outputs carry them too).
        **{fault: ("download",) for fault in CONTENT_FAULTS},
    },
    job_faults=frozenset(LIFECYCLE_FAULTS),
    binary_stages=frozenset({"download"}),  # output files are PNG, not JSON
    variants=VARIANT_GROUPS,
    make_state=AtlasState,
)

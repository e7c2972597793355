"""Runware: one synchronous POST of a JSON array of tasks, served under ``/runware``.

Written from docs/providers/runware.md (not from the client); anchors below (#request, #errors, ...)
are its sections. ``POST /v1`` takes ``[task, ...]``, an ``authentication`` task possibly first, and
answers ``{"data": [...]}``: one item per image, in the ``outputType`` its task asked for. URL outputs
are served by this emulator under the path of the documented im.runware.ai URLs, as a stand-in for
that host.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import ValidationError, bearer_token, get_bool, get_choice, get_int, key_is_valid, prefix_url
from .directives import DirectiveError, Directives, VariantGroups, parse_directives, resolve_variants
from .emulated import EmulatedProvider, ProviderState
from .faults import Dialect, FaultError, check_directive_faults, respond_with_fault
from .images import ImageFormat, ImageSpec, corrupt
from .state import EmulatorState

__all__ = ["MODEL_ID", "NAME", "PROVIDER", "VARIANT_GROUPS", "RunwareState", "routes"]

NAME = "runware"
ROUTE = "/v1"
FILE_ROUTE = "/image/ws/0.5/ii/{file}"  # #response: the path of the documented imageURL example
MODEL_ID = "runware:100@1"
TASK_TYPE = "imageInference"
# #sizes and #request: the image-inference reference (the schnell page itself gives no range).
SIZE_MIN, SIZE_MAX, SIZE_STEP = 128, 2048, 64
STEPS_MIN, STEPS_MAX = 1, 100
SEED_MIN, SEED_MAX = 1, 2**63 - 1
PROMPT_MIN, PROMPT_MAX = 2, 3000
MAX_RESULTS = 20
DEFAULT_STEPS = 4  # assumption: the schnell default is not documented (the reference's 20 is generic)
OUTPUT_TYPES = ("URL", "base64Data", "dataURI")  # #request; URL is the default
# #request: JPG (default), PNG, WEBP; the reference's own examples write "jpg". WEBP is not emulated.
OUTPUT_FORMATS: dict[str, ImageFormat] = {"JPG": "jpeg", "PNG": "png"}
_EXTENSIONS: dict[ImageFormat, str] = {"jpeg": "jpg", "png": "png"}
# #price: the published table at its two sizes (4 steps), "~$0.0018 per megapixel" elsewhere; scaling
# by steps is our assumption (the basis is unconfirmed).
_TABLE_USD = {(512, 512): 0.0006, (1024, 1024): 0.0013}
USD_PER_MEGAPIXEL = 0.0018
INVALID_KEY = "Invalid API key. Get one at https://my.runware.ai/signup"  # #errors: the documented example
# #errors documents `invalidApiKey` and `timeoutProvider`; the other codes are our assumption.
_CODES = {
    400: "invalidRequest",
    401: "invalidApiKey",
    402: "insufficientCredits",
    403: "forbidden",
    404: "notFound",
    429: "tooManyRequests",
    503: "serviceUnavailable",
    504: "timeoutProvider",
}
_CONTENT_FAULTS = ("not_image", "truncated")
_MAX_FILES = 256

# How errors are worded (#errors); the first value is the default.
VARIANT_GROUPS: VariantGroups = {
    # `errors[]` (the errors page), or the single `error` message of the older how-to-connect page.
    "errors": ("errors_array", "error_property"),
    # The real HTTP status (documented for REST), or HTTP 200 as reported elsewhere (unconfirmed).
    "status": ("error_status", "status_200"),
}


@dataclass
class RunwareState(ProviderState):
    """URL outputs, kept so that their imageURL can be fetched (#response: their lifetime is unconfirmed)."""

    files: OrderedDict[str, tuple[ImageSpec, str | None]] = field(default_factory=OrderedDict)

    def keep(self, name: str, spec: ImageSpec, content_fault: str | None) -> None:
        self.files[name] = (spec, content_fault)
        while len(self.files) > _MAX_FILES:
            self.files.popitem(last=False)

    def reset(self) -> None:
        self.files.clear()

    def stats(self) -> dict[str, object]:
        return {"files": len(self.files)}


class TaskRefused(ValidationError):
    """A task the provider would refuse, with its taskUUID for the error object (#errors)."""

    def __init__(self, exc: ValidationError, task_uuid: object) -> None:
        super().__init__(str(exc), exc.status, field=exc.field, kind=exc.kind)
        self.task_uuid = task_uuid if isinstance(task_uuid, str) else None


@dataclass(frozen=True)
class _Task:
    uuid: str
    directives: Directives
    width: int
    height: int
    steps: int
    seed: int
    count: int
    output_type: str
    fmt: ImageFormat
    include_cost: bool


class _Answer:
    """How one request words its errors: the variants it selected (#errors)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.variants = resolve_variants(VARIANT_GROUPS, names)

    def error(self, status: int, message: str, **fields: str) -> JSONResponse:
        problem = {"code": _CODES.get(status, "internalError"), "message": message, **fields}
        if self.variants["errors"] == "error_property":
            body: dict[str, object] = {"error": message}
        else:
            body = {"errors": [problem]}
        return JSONResponse(body, status_code=200 if self.variants["status"] == "status_200" else status)

    def refuse(self, exc: ValidationError) -> JSONResponse:
        prefix = "missing" if exc.kind == "missing" else "invalid"
        fields = {"code": prefix + (exc.field[:1].upper() + exc.field[1:] if exc.field else "Request")}
        if exc.field:
            fields["parameter"] = exc.field
        if isinstance(exc, TaskRefused) and exc.task_uuid:
            fields |= {"taskType": TASK_TYPE, "taskUUID": exc.task_uuid}
        return self.error(exc.status, str(exc), **fields)

    @property
    def dialect(self) -> Dialect:
        return Dialect(
            provider=NAME,
            error=self.error,
            unauthorized_message=INVALID_KEY,
            credits_status=402,  # #errors: "402 Payment Required - Your account balance is insufficient"
            credits_message="Your account balance is insufficient",
            # #errors: under load, 429 when the queue is full; no Retry-After is documented.
            rate_limit_message="Too many requests: the queue is full. Retry with backoff.",
            missing_fields=lambda: {"data": [{"taskType": TASK_TYPE}]},  # an item with no image
        )


_NOT_JSON = object()


def _parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


def _payload_key(body: object) -> str | None:
    """#endpoint-and-auth: an `authentication` task as the first array element carries the key."""
    first = body[0] if isinstance(body, list) and body else None
    if isinstance(first, dict) and first.get("taskType") == "authentication":
        key = first.get("apiKey")
        return key if isinstance(key, str) else None
    return None


def _redacted(body: object) -> object:
    if _payload_key(body) is None or not isinstance(body, list):
        return body
    return [{**body[0], "apiKey": "[redacted]"}, *body[1:]]


def _image_tasks(body: object) -> list[_Task]:
    """#endpoint-and-auth: a JSON array of task objects, even for one task."""
    if body is _NOT_JSON:
        raise ValidationError("request body is not valid JSON")
    if not isinstance(body, list) or not all(isinstance(task, dict) for task in body):
        raise ValidationError("request body must be a JSON array of task objects")
    tasks = body[1:] if _payload_key(body) is not None else body
    if not tasks:
        raise ValidationError("the array holds no task to perform")
    checked = []
    for task in tasks:
        try:
            checked.append(_task(task))
        except ValidationError as exc:
            raise TaskRefused(exc, task.get("taskUUID")) from exc
    if len({task.uuid for task in checked}) < len(checked):
        raise ValidationError("taskUUID must be unique for each task", field="taskUUID")
    return checked


def _task(task: dict[str, Any]) -> _Task:
    """#request: the fields and ranges the docs give; undocumented fields are ignored."""
    if task.get("taskType") != TASK_TYPE:
        raise ValidationError(
            f"taskType must be {TASK_TYPE!r} here, got {task.get('taskType')!r}", field="taskType"
        )
    task_uuid = _task_uuid(task)
    _model(task)
    width, height = _size(task)
    fmt = _format(task)
    get_int(task, "outputQuality", 95, 20, 99)
    if get_choice(task, "deliveryMethod", "sync", ("sync", "async")) == "async":
        raise ValidationError("emulator: deliveryMethod async is not emulated", field="deliveryMethod")
    seed = get_int(task, "seed", None, SEED_MIN, SEED_MAX)
    return _Task(
        uuid=task_uuid,
        directives=parse_directives(_prompt(task)),
        width=width,
        height=height,
        steps=int(get_int(task, "steps", DEFAULT_STEPS, STEPS_MIN, STEPS_MAX) or DEFAULT_STEPS),
        # "Random seeds are generated as 32-bit values" (#request).
        seed=seed if seed is not None else random.randrange(SEED_MIN, 2**32),
        count=int(get_int(task, "numberResults", 1, 1, MAX_RESULTS) or 1),
        output_type=get_choice(task, "outputType", "URL", OUTPUT_TYPES),
        fmt=fmt,
        include_cost=get_bool(task, "includeCost", False),
    )


def _task_uuid(task: dict[str, Any]) -> str:
    value = task.get("taskUUID")
    if value is None:
        raise ValidationError("taskUUID is required", field="taskUUID", kind="missing")
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4:
        raise ValidationError(f"taskUUID must be a UUID v4 string, got {value!r}", field="taskUUID")
    return str(value)


def _model(task: dict[str, Any]) -> None:
    model = task.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationError("model is required", field="model", kind="missing")
    if model != MODEL_ID:  # the status of an unknown model is not documented: 400 is our assumption
        raise ValidationError(f"model {model!r} is not available here (only {MODEL_ID})", field="model")


def _prompt(task: dict[str, Any]) -> str:
    prompt = task.get("positivePrompt")
    if prompt is None:
        raise ValidationError("positivePrompt is required", field="positivePrompt", kind="missing")
    if not isinstance(prompt, str) or not PROMPT_MIN <= len(prompt) <= PROMPT_MAX:
        message = f"positivePrompt must be between {PROMPT_MIN} and {PROMPT_MAX} characters"
        raise ValidationError(message, field="positivePrompt")
    return prompt


def _format(task: dict[str, Any]) -> ImageFormat:
    value = task.get("outputFormat") or "JPG"
    name = value.upper() if isinstance(value, str) else ""
    if name not in ("JPG", "PNG", "WEBP"):
        raise ValidationError(
            f"outputFormat must be one of: JPG, PNG, WEBP; got {value!r}", field="outputFormat"
        )
    if name not in OUTPUT_FORMATS:
        raise ValidationError(
            f"emulator: outputFormat {name} is not emulated (JPG, PNG)", field="outputFormat"
        )
    return OUTPUT_FORMATS[name]


def _size(task: dict[str, Any]) -> tuple[int, int]:
    given = [name for name in ("width", "height") if task.get(name) is not None]
    if len(given) == 1:  # the schnell page: "width and height must be used together"
        missing = "height" if given == ["width"] else "width"
        raise ValidationError("width and height must be used together", field=missing, kind="missing")
    if not given:
        raise ValidationError("width and height are required", field="width", kind="missing")
    width = get_int(task, "width", None, SIZE_MIN, SIZE_MAX, multiple_of=SIZE_STEP)
    height = get_int(task, "height", None, SIZE_MIN, SIZE_MAX, multiple_of=SIZE_STEP)
    return int(width or 0), int(height or 0)


def _cost(width: int, height: int, steps: int) -> float:
    per_image = _TABLE_USD.get((width, height), USD_PER_MEGAPIXEL * width * height / 1_000_000)
    return round(per_image * steps / 4, 10)


class Runware:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.own = state.provider_state(NAME, RunwareState)

    async def _fault(self, fault: str, request: Request, answer: _Answer) -> Response:
        return await respond_with_fault(fault, request, answer.dialect, self.state.is_closing)

    async def generate(self, request: Request) -> Response:
        self.state.hit(request, NAME, "submit", ROUTE)
        # Variants are taken first, so a queued fault is worded by them too.
        answer = _Answer(self.state.take_variants(NAME))
        content_fault = None
        if (queued := self.state.take_fault(NAME, "submit")) is not None:
            if queued not in _CONTENT_FAULTS:
                return await self._fault(queued, request, answer)
            content_fault = queued
        body = _parse_json(await request.body())
        # #endpoint-and-auth: `Authorization: Bearer <key>` or an authentication task; any other
        # scheme carries no key.
        if not key_is_valid(bearer_token(request) or _payload_key(body)):
            return answer.error(
                401, INVALID_KEY, code="invalidApiKey", parameter="apiKey", taskType="authentication"
            )
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            # #endpoint-and-auth: "must be set to application/json"; the status is our assumption.
            return answer.error(400, "the Content-Type header must be application/json")
        self.state.log_request(request, NAME, "submit", _redacted(body))
        try:
            tasks = _image_tasks(body)
            # Prompt variants reach what is answered after the prompts are read.
            answer = _Answer(answer.names + tuple(v for task in tasks for v in task.directives.variants))
            wanted = [fault for task in tasks for fault in task.directives.faults]
            faults = check_directive_faults(PROVIDER, wanted, ("submit",))
        except ValidationError as exc:
            return answer.refuse(exc)
        except (DirectiveError, FaultError) as exc:
            return answer.error(400, f"emulator: {exc}")
        for fault, _ in faults:
            self.state.fired(NAME, fault)
            if fault not in _CONTENT_FAULTS:
                return await self._fault(fault, request, answer)
            content_fault = fault
        data = await self._results(request, tasks, content_fault)
        return JSONResponse(
            {"data": data}, headers={"x-emulator-fault": content_fault} if content_fault else None
        )

    async def _results(
        self, request: Request, tasks: list[_Task], content_fault: str | None
    ) -> list[dict[str, object]]:
        """#response: one item per image; `numberResults` images of one task get different seeds."""
        specs = [
            (task, ImageSpec(task.directives.prompt, task.seed + n, task.width, task.height, NAME, task.fmt))
            for task in tasks
            for n in range(task.count)
        ]
        given = [task.directives.latency for task in tasks if task.directives.latency is not None]
        latency = self.state.latency_for(NAME, max(given, default=None))
        renders = asyncio.gather(*(self.state.images.get(spec) for _, spec in specs))
        images, _ = await asyncio.gather(renders, asyncio.sleep(latency))
        return [
            self._result(request, task, spec, corrupt(image, content_fault), content_fault)
            for (task, spec), image in zip(specs, images, strict=True)
        ]

    def _result(
        self, request: Request, task: _Task, spec: ImageSpec, image: bytes, content_fault: str | None
    ) -> dict[str, object]:
        image_uuid = str(uuid.uuid4())
        result: dict[str, object] = {"taskType": TASK_TYPE, "taskUUID": task.uuid, "imageUUID": image_uuid}
        encoded = base64.b64encode(image).decode()
        if task.output_type == "URL":
            name = f"{image_uuid}.{_EXTENSIONS[spec.fmt]}"
            self.own.keep(name, spec, content_fault)
            result["imageURL"] = prefix_url(request, FILE_ROUTE.format(file=name))
        elif task.output_type == "base64Data":
            result["imageBase64Data"] = encoded
        else:
            result["imageDataURI"] = f"data:image/{spec.fmt};base64,{encoded}"
        result["seed"] = spec.seed
        if task.include_cost:  # #request: includeCost → each result carries its cost in USD
            result["cost"] = _cost(spec.width, spec.height, task.steps)
        return result

    async def download(self, request: Request) -> Response:
        # Stand-in for im.runware.ai: no auth (#response).
        self.state.hit(request, NAME, "download", FILE_ROUTE)
        fault = self.state.take_fault(NAME, "download")
        if fault is not None and fault not in _CONTENT_FAULTS:
            return await self._fault(fault, request, _Answer(()))
        stored = self.own.files.get(request.path_params["file"])
        if stored is None:
            return Response("Not Found", 404, media_type="text/plain")
        spec, kept_fault = stored
        image = corrupt(await self.state.images.get(spec), fault or kept_fault)
        return Response(image, media_type=f"image/{spec.fmt}")

    async def not_found(self, request: Request) -> Response:
        self.state.hit(request, NAME, "unmatched", "/{path}")
        return _Answer(()).error(404, f"not found: {request.method} {request.url.path}")


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = Runware(state)
    return [
        Route(ROUTE, api.generate, methods=["POST"]),
        Route(FILE_ROUTE, api.download, methods=["GET"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit", "download"),
    # One synchronous call: a failed inference is an error answer (#errors); bad image bytes come in
    # the answer itself, or from the URL of a URL output.
    faults={
        "failed_job": ("submit",),
        **{fault: ("submit", "download") for fault in _CONTENT_FAULTS},
    },
    binary_stages=frozenset({"download"}),  # output files are images, not JSON
    variants=VARIANT_GROUPS,
    make_state=RunwareState,
)

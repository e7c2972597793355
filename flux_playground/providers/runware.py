"""Runware: one synchronous POST of a JSON array of tasks, answered with `data[]` (docs/providers/runware.md).

API reference: https://runware.ai/docs/models/bfl-flux-1-schnell
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import ClassVar

import httpx

from ..errors import ProviderError, ProviderFailed
from ..models import Capabilities, GenerationRequest
from ..pricing import PriceRule
from ..settings import Settings
from ._base import CallContext, Provider, ProviderCall, ProviderOutput, error_text, reported_cost
from ._contract import AnswerContract, Read

# DeepInfra's reading of a reported charge: exact digits, and a zero or garbage is unknown, never $0.

__all__ = ["Runware"]

# The answer carries the image in the field named after the `outputType` asked for
# (docs/providers/runware.md#response). We ask for base64Data but read all three.
_IMAGE_FIELDS = ("imageBase64Data", "imageDataURI", "imageURL")
# A 200 that carries errors has no status to go by, so its code and message say what kind of error it is
# (docs/providers/runware.md#errors: codes such as `invalidApiKey`; "still being standardized").
_KINDS_BY_WORDS = (
    (402, ("insufficient", "balance", "credit")),
    (401, ("apikey", "api key", "unauthorized", "authenticat")),
    (429, ("ratelimit", "rate limit", "too many", "queue")),
)
_INPUT_CODE_PREFIXES = ("invalid", "missing", "unsupported")


class Runware(Provider):
    name = "runware"
    label = "Runware"
    key_env = ("RUNWARE_API_KEY",)
    model_id = "runware:100@1"
    docs_url = "https://runware.ai/docs/models/bfl-flux-1-schnell"
    default_base_url = "https://api.runware.ai"
    # The schnell page gives no range; Runware's image-inference reference says width and height
    # 128–2048 "divisible by 64", steps 1–100, numberResults 1–20 (docs/providers/runware.md#sizes).
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=128,
        max_size=2048,
        size_multiple=64,
        min_steps=1,
        max_steps=100,
        max_images=4,
    )
    # The published table, at 4 steps; the basis between and beyond its points is unconfirmed, and each
    # answer reports the real charge (docs/providers/runware.md#price).
    price = PriceRule(
        basis="table",
        table=((Decimal("0.25"), Decimal("0.0006")), (Decimal("1"), Decimal("0.0013"))),
        table_steps=4,
        approximate=True,
        source="https://runware.ai/docs/models/bfl-flux-1-schnell",
        checked=date(2026, 12, 1),
        note="Published table: 512×512 · 4 steps $0.0006, 1024×1024 · 4 steps $0.0013; linear between "
        "them and scaled by steps. Each answer reports the real charge (includeCost).",
    )
    credit_statuses = frozenset({402})  # "402 Payment Required" (docs/providers/runware.md#errors)
    # What `_read` reads of `data[]`, and the rest of an item (docs/providers/runware.md#response).
    contract = AnswerContract(
        result=(
            Read("data", "list"),
            Read("data[].imageBase64Data", "text", alternatives=("data[].imageDataURI", "data[].imageURL")),
            Read("data[].taskUUID", "text"),
            Read("data[].seed", "integer", required=False),
            Read("data[].cost", "number"),
        ),
        known=("data[].taskType", "data[].imageUUID", "data[].NSFWContent"),
    )

    def route(self, settings: Settings) -> str:
        return "/v1"

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        # One imageInference task per request, so an error or a timing belongs to one run
        # (docs/providers/runware.md#errors), with a fresh UUID v4 (docs/providers/runware.md#request).
        # base64Data: the image comes in the answer itself, so nothing depends on how long an
        # im.runware.ai URL lives (docs/providers/runware.md#response, unconfirmed) and no second
        # request can fail after the charge. PNG, not the JPG default: lossless, and what we store.
        task: dict[str, object] = {
            "taskType": "imageInference",
            "taskUUID": str(uuid.uuid4()),
            "model": self.model_id,
            "positivePrompt": request.prompt,
            "width": request.width,  # "must be used together" (docs/providers/runware.md#request)
            "height": request.height,
            "steps": request.steps,
            "numberResults": request.num_images,
            "outputType": "base64Data",
            "outputFormat": "PNG",
            "includeCost": True,  # each result carries its `cost` in USD (docs/providers/runware.md#price)
        }
        if request.seed is not None:
            task["seed"] = request.seed
        return task

    def request_body(self, payload: dict[str, object]) -> object:
        # A JSON array of task objects, even for one task (docs/providers/runware.md#endpoint-and-auth).
        return [payload]

    async def run(self, ctx: CallContext, call: ProviderCall) -> ProviderOutput:
        ctx.progress("generating", None)
        response = await self.send_once(ctx, call, timeout=ctx.settings.request_timeout)
        task_uuid = call.json.get("taskUUID")
        return self._read(response, key=ctx.key, task_uuid=task_uuid if isinstance(task_uuid, str) else None)

    def parse(self, response: httpx.Response) -> ProviderOutput:
        return self._read(response)

    def _read(
        self, response: httpx.Response, *, key: str = "", task_uuid: str | None = None
    ) -> ProviderOutput:
        body = self.read_json(response)
        results = _results(body, task_uuid)
        if not results:
            if body.get("errors") or body.get("error"):
                # A 200 that carries errors and no image is an error (docs/providers/runware.md#errors).
                raise self.error_for(response, key=key)
            raise self.malformed("no image in `data`")
        seed = results[0].get("seed")
        answered_uuid = results[0].get("taskUUID")
        return ProviderOutput(
            items=[_image(result) for result in results],
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            reported_cost_usd=_total_cost(results),
            request_id=task_uuid or (answered_uuid if isinstance(answered_uuid, str) else None),
        )

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        problems = _problems(response)
        if not problems:
            return super().error_for(response, key=key)
        # Runware's own words are in errors[].message (docs/providers/runware.md#errors); the template
        # reads a top-level `message`, so the answer is restated in that shape.
        status = response.status_code if response.is_error else _status_for(problems)
        retry_after = response.headers.get("retry-after")
        restated = httpx.Response(
            status or 200,
            json={"message": "; ".join(_words(problem) for problem in problems)},
            headers={"retry-after": retry_after} if retry_after else None,
        )
        if restated.is_error:
            return super().error_for(restated, key=key)
        said = error_text(restated, key=key)
        return ProviderFailed(
            self.label, f"the task failed ({said}). Try again in a minute or pick another provider."
        )


def _results(body: dict[str, object], task_uuid: str | None) -> list[dict[str, object]]:
    """The answers to our task that carry an image: `data[]` items are matched by `taskUUID`
    (docs/providers/runware.md#request); an acknowledgement without an image is not a result
    (docs/providers/runware.md#response)."""
    data = body.get("data")
    return [
        item
        for item in (data if isinstance(data, list) else [])
        if isinstance(item, dict)
        and (task_uuid is None or item.get("taskUUID") in (None, task_uuid))
        and _image(item)
    ]


def _image(result: dict[str, object]) -> str:
    found = (result.get(field) for field in _IMAGE_FIELDS)
    return next((value for value in found if isinstance(value, str) and value), "")


def _total_cost(results: Sequence[dict[str, object]]) -> Decimal | None:
    """The real charge: the sum of each image's `cost` (docs/providers/runware.md#price), to its exact
    digits. If one is missing, zero or not a number, the charge is unknown, never a partial sum or $0."""
    costs = [reported_cost(result.get("cost")) for result in results]
    if any(cost is None for cost in costs):
        return None
    return sum((cost for cost in costs if cost is not None), Decimal(0))


def _problems(response: httpx.Response) -> list[dict[str, object]]:
    """`errors[]`, or the single `error` of an older doc (docs/providers/runware.md#errors); each may be
    an object or a bare message."""
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    found = body.get("errors") or body.get("error")
    return [
        {"message": item} if isinstance(item, str) else item
        for item in (found if isinstance(found, list) else [found])
        if isinstance(item, dict) or (isinstance(item, str) and item.strip())
    ]


def _words(problem: dict[str, object]) -> str:
    message, code = problem.get("message"), problem.get("code")
    return str(message if isinstance(message, str) and message.strip() else code or "no reason given")


def _status_for(problems: list[dict[str, object]]) -> int | None:
    """The HTTP status a 200 carrying these errors stands for; None: a failure of the task itself."""
    text = " ".join(f"{problem.get('code') or ''} {problem.get('message') or ''}" for problem in problems)
    for status, words in _KINDS_BY_WORDS:
        if any(word in text.lower() for word in words):
            return status
    for problem in problems:
        if problem.get("parameter") or str(problem.get("code") or "").startswith(_INPUT_CODE_PREFIXES):
            return 400
    return None

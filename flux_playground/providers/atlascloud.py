"""Atlas Cloud: submit a job, then poll the prediction until it is done (docs/providers/atlascloud.md).

API reference: https://www.atlascloud.ai/docs/more-models/black-forest-labs/flux-schnell/generateImage
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar

import httpx

from ..errors import InsufficientCredits, ProviderError
from ..models import Capabilities, GenerationRequest
from ..pricing import PriceRule
from ..settings import Settings
from ._base import CallContext, OutputItem, Provider, ProviderCall, ProviderOutput, error_text
from ._contract import AnswerContract, Read
from ._polling import JobStatus, poll_job

__all__ = ["AtlasCloud"]

# Docs list "completed"; the skills and MCP server also use "succeeded"; WaveSpeed's SDK (the same
# model upstream) also ends on "timeout" (docs/providers/atlascloud.md#response).
_DONE = frozenset({"completed", "succeeded"})
_FAILED = frozenset({"failed", "canceled", "cancelled", "error", "timeout"})
# Pending until done or failed; these are the documented ones (docs/providers/atlascloud.md#response).
_PENDING = ("created", "starting", "processing")
# Atlas's ComfyUI client treats 400/404 on a fresh prediction as "not created yet" for 30 s
# (docs/providers/atlascloud.md#response).
_NOT_YET_STATUSES = frozenset({400, 404})
_NOT_YET_GRACE_S = 30.0


class AtlasCloud(Provider):
    name = "atlascloud"
    label = "Atlas Cloud"
    key_env = ("ATLASCLOUD_API_KEY",)
    model_id = "black-forest-labs/flux-schnell"
    docs_url = "https://www.atlascloud.ai/models/black-forest-labs/flux-schnell"
    default_base_url = "https://api.atlascloud.ai"
    # The API reference has no steps, sampler or scheduler, and "if a parameter isn't in the schema, it
    # doesn't exist on that model" (docs/providers/atlascloud.md#request). The size range is not
    # documented: 256–1536 in multiples of 16 is our assumption from WaveSpeed, which serves the same
    # model (docs/providers/atlascloud.md#sizes).
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=256,
        max_size=1536,
        size_multiple=16,
        min_steps=1,
        max_steps=50,
        steps=False,
        max_images=4,
    )
    price = PriceRule(
        basis="per_image",
        usd=Decimal("0.003"),
        source="https://www.atlascloud.ai/models/black-forest-labs/flux-schnell/llms.txt",
        checked=date(2026, 12, 1),
        note='"$0.003 per image" (the model page says "per run"); docs/providers/atlascloud.md#price.',
    )
    credit_statuses = frozenset({402})  # "402 = insufficient balance" (docs/providers/atlascloud.md#errors)
    # What `run`, `_poll` and `_finished` read: the `data` envelope of newer docs and every official
    # client (the flat reference template is tolerated, not the contract), `code`, the documented
    # statuses, and the outputs (docs/providers/atlascloud.md#response).
    contract = AnswerContract(
        every=(
            Read("code", ("integer", "text"), required=False),
            Read("data", "object"),
            Read("data.id", "text"),
            Read("data.status", "text", values=(*_PENDING, *sorted(_DONE), *sorted(_FAILED))),
            Read("data.error", ("text", "null"), required=False),
        ),
        result=(
            Read("data.outputs", "list", alternatives=("data.output",)),
            Read("data.outputs[]", ("text", "object")),
        ),
        known=(
            "message", "data.model", "data.urls", "data.has_nsfw_contents", "data.created_at",
            "data.completed_at", "data.metrics", "data.executionTime", "data.timings",
        ),
    )  # fmt: skip

    def route(self, settings: Settings) -> str:
        return "/api/v1/model/generateImage"

    def build_call(self, request: GenerationRequest, key: str, settings: Settings) -> ProviderCall:
        call = super().build_call(request, key, settings)
        # We copy outputs at once, so ask Atlas to keep them only 1 hour instead of 14 days
        # (X-AtlasCloud-Object-Expiration-Hours, 1–336; docs/providers/atlascloud.md#request).
        call.headers["X-AtlasCloud-Object-Expiration-Hours"] = "1"
        return call

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        # A flat body with `size` as "W*H" (note the asterisk); the seed page's width/height/steps
        # example contradicts the API reference, which is canonical (docs/providers/atlascloud.md#request).
        # Model id last.
        return {
            "prompt": request.prompt,
            "size": f"{request.width}*{request.height}",
            "seed": request.seed if request.seed is not None else -1,
            "num_images": request.num_images,
            "model": self.model_id,
        }

    async def run(self, ctx: CallContext, call: ProviderCall) -> ProviderOutput:
        response = await self.send_once(ctx, call, timeout=ctx.settings.request_timeout)
        submitted = self.read_json(response)
        self._check_code(submitted, key=ctx.key)
        data = _envelope(submitted)
        # Finished inline (enable_sync_mode, or a fast job): no polling needed.
        if str(data.get("status", "")).lower() in _DONE and _outputs(data):
            return self._finished(data, None)
        prediction_id = data.get("id") or submitted.get("predictionId") or data.get("predictionId")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise self.malformed("the submit answer has no prediction id")
        return await self._poll(ctx, prediction_id)

    async def _poll(self, ctx: CallContext, prediction_id: str) -> ProviderOutput:
        url = f"{self.base_url(ctx.settings)}/api/v1/model/prediction/{prediction_id}"

        def read(response: httpx.Response) -> JobStatus:
            body = self.read_json(response)
            self._check_code(body, key=ctx.key)
            data = _envelope(body)
            status = str(data.get("status", "")).lower()
            if status in _DONE:
                return JobStatus(output=self._finished(data, prediction_id))
            if status in _FAILED:
                return JobStatus(failure=str(data.get("error") or "no reason given"))
            return JobStatus()

        return await poll_job(
            self, ctx, url, prediction_id, read, not_yet=_NOT_YET_STATUSES, not_yet_grace_s=_NOT_YET_GRACE_S
        )

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        # Atlas's own MCP server reads any error about "insufficient" funds or the "balance" as out of
        # credit, not only a 402 (docs/providers/atlascloud.md#errors).
        said = error_text(response, key=key)
        if response.status_code >= 400 and any(word in said.lower() for word in ("insufficient", "balance")):
            return InsufficientCredits(
                self.label, f"the account is out of credits ({said}). Top up at the provider, then retry."
            )
        return super().error_for(response, key=key)

    def _check_code(self, body: dict[str, object], *, key: str) -> None:
        # saas-starter treats a `code` other than 200 as an error even on HTTP 200
        # (docs/providers/atlascloud.md#response).
        code = body.get("code")
        if code is not None and str(code) != "200":
            fake = httpx.Response(int(str(code)) if str(code).isdigit() else 500, json=body)
            raise self.error_for(fake, key=key)

    def _finished(self, data: dict[str, object], prediction_id: str | None) -> ProviderOutput:
        items = _outputs(data)
        if not items:
            raise self.malformed("the finished job has no outputs")
        return ProviderOutput(items=items, request_id=prediction_id or _str_or_none(data.get("id")))

    def parse(self, response: httpx.Response) -> ProviderOutput:
        data = _envelope(self.read_json(response))
        return self._finished(data, None)


def _envelope(body: dict[str, object]) -> dict[str, object]:
    """Newer docs and every official client wrap the prediction in `data`; the per-model reference
    shows it flat (docs/providers/atlascloud.md#response). Accept both."""
    data = body.get("data")
    return data if isinstance(data, dict) else body


def _outputs(data: dict[str, object]) -> list[OutputItem]:
    # Clients read `outputs || output`; items are strings, or {url|image|output} objects (ComfyUI node).
    raw = data.get("outputs") or data.get("output") or []
    if isinstance(raw, str):
        raw = [raw]
    items: list[OutputItem] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict):
            item = item.get("url") or item.get("image") or item.get("output")
        if isinstance(item, str) and item:
            items.append(item)
    return items


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None

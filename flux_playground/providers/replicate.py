"""Replicate: create a prediction (held up to N s with `Prefer: wait`), poll `urls.get` if it is not
finished by then (docs/providers/replicate.md).

API reference: https://replicate.com/black-forest-labs/flux-schnell/api
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import ClassVar

import httpx

from ..errors import InputRejected, ProviderError, ProviderFailed
from ..models import Capabilities, GenerationRequest
from ..pricing import PriceRule
from ..settings import Settings
from ..sizes import nearest_ratio
from ._base import CallContext, OutputItem, Provider, ProviderCall, ProviderOutput, error_text
from ._contract import AnswerContract, Read
from ._polling import JobStatus, poll_job

__all__ = ["ASPECT_RATIO_SIZES", "Replicate", "prefer_wait_s"]

# The pixels each listed `aspect_ratio` makes at `megapixels: "1"`, from Replicate's own cog-flux
# predictor (its ASPECT_RATIOS table, 3:4 and 4:3 included); at "0.25" each side is halved
# (`size_from_aspect_megapixels`). That the hosted model runs this table is unconfirmed: the size
# actually returned is read from the image (docs/providers/replicate.md#sizes).
ASPECT_RATIO_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
_RATIOS = tuple(ASPECT_RATIO_SIZES)  # in the schema's order: a tie goes to the one listed first
# `megapixels` is "1" or "0.25" (docs/providers/replicate.md#request). A request is nearer 0.25 MP on
# a log scale below the geometric mean of the two, 0.5 MP: 512² → "0.25", 768² → "1".
_QUARTER_MEGAPIXEL_BELOW = 1024 * 1024 // 2

# `Prefer: wait=N` holds the create call up to N s, 60 at most
# (docs/providers/replicate.md#endpoint-and-auth).
_MAX_WAIT_S = 60
# Statuses of a prediction (docs/providers/replicate.md#response).
_RUNNING = frozenset({"starting", "processing"})
_FAILED = frozenset({"failed", "canceled"})
_STATUSES = ("starting", "processing", "succeeded", "failed", "canceled")  # in the order they come
# 429 bodies say "Your rate limit resets in ~30s." (docs/providers/replicate.md#errors).
_RESETS_IN = re.compile(r"resets in ~?\s*(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)


class Replicate(Provider):
    name = "replicate"
    label = "Replicate"
    key_env = ("REPLICATE_API_TOKEN",)
    # The official model: no version id needed (docs/providers/replicate.md#endpoint-and-auth).
    model_id = "black-forest-labs/flux-schnell"
    docs_url = "https://replicate.com/black-forest-labs/flux-schnell/api"
    default_base_url = "https://api.replicate.com"
    # No width/height: any requested size becomes the nearest listed aspect ratio at about 1 or 0.25 MP
    # (sizes="mapped"; the sides below describe what it makes, 320–1536 in multiples of 32). Steps
    # 1–4, 1–4 outputs (docs/providers/replicate.md#request).
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=320, max_size=1536, size_multiple=32, min_steps=1, max_steps=4, max_images=4, sizes="mapped"
    )
    price = PriceRule(
        basis="per_image",
        usd=Decimal("0.003"),
        source="https://replicate.com/black-forest-labs/flux-schnell",
        checked=date(2026, 12, 1),
        note='"$3.00 / thousand output images": num_outputs multiplies it; size (1 or 0.25 MP) and '
        "steps do not change it (docs/providers/replicate.md#price).",
    )
    credit_statuses = frozenset({402})  # 402 "Insufficient credit" (docs/providers/replicate.md#errors)
    # A prediction object: what `run`, `_poll` and `_job_status` read, and the rest of it
    # (docs/providers/replicate.md#response).
    contract = AnswerContract(
        every=(
            Read("id", "text"),
            Read("status", "text", values=_STATUSES),
            Read("urls.get", "text", required=False),
            Read("error", ("text", "null"), required=False),
        ),
        result=(Read("output", "list"), Read("output[]", "text")),
        known=(
            "model", "version", "input", "logs", "data_removed", "created_at", "started_at", "completed_at",
            "metrics", "urls.cancel", "urls.stream", "urls.web",
        ),
    )  # fmt: skip
    # Hugging Face routes Replicate: `POST /replicate/v1/models/<owner>/<name>/predictions` on its
    # router, the same body and `Prefer: wait` (docs/providers/hf-router.md#endpoint-and-auth).
    hf_route = "/replicate"

    # --- building the request ------------------------------------------------------------------

    def route(self, settings: Settings) -> str:
        return f"/v1/models/{self.model_id}/predictions"

    def build_call(self, request: GenerationRequest, key: str, settings: Settings) -> ProviderCall:
        call = super().build_call(request, key, settings)
        wait = prefer_wait_s(settings.request_timeout)
        if wait is not None:
            call.headers["Prefer"] = f"wait={wait}"
        return call

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        # `{"input": {...}}` with no width/height (docs/providers/replicate.md#request).
        ratio, megapixels = self._size_choice(request)
        fields: dict[str, object] = {
            "prompt": request.prompt,
            "aspect_ratio": ratio,
            "megapixels": megapixels,  # a string enum, not a number
            "num_outputs": request.num_images,
            "num_inference_steps": request.steps,
            "seed": request.seed,
            "output_format": "png",  # the default is webp
            # go_fast defaults to true: fp8, "not deterministic ... even if you set a seed". Off, so the
            # seed we send and record reproduces the image (docs/providers/replicate.md#fair-comparison).
            "go_fast": False,
        }
        return {"input": {name: value for name, value in fields.items() if value is not None}}

    def output_size(self, request: GenerationRequest, settings: Settings) -> tuple[int, int]:
        ratio, megapixels = self._size_choice(request)
        width, height = ASPECT_RATIO_SIZES[ratio]
        return (width // 2, height // 2) if megapixels == "0.25" else (width, height)

    @staticmethod
    def _size_choice(request: GenerationRequest) -> tuple[str, str]:
        """The `aspect_ratio` and `megapixels` nearest to the requested width × height."""
        ratio = nearest_ratio(request.width, request.height, _RATIOS)
        megapixels = "0.25" if request.width * request.height < _QUARTER_MEGAPIXEL_BELOW else "1"
        return ratio, megapixels

    # --- sending and reading -------------------------------------------------------------------

    async def run(self, ctx: CallContext, call: ProviderCall) -> ProviderOutput:
        ctx.progress("generating", None)  # with Prefer: wait, the image is made during this call
        response = await self.send_once(ctx, call, timeout=ctx.settings.request_timeout)
        prediction = self.read_json(response)
        if prediction.get("status") in _RUNNING:
            return await self._poll(ctx, prediction)
        return self._settled(prediction)

    async def _poll(self, ctx: CallContext, prediction: dict[str, object]) -> ProviderOutput:
        # Still starting/processing when the wait ran out: poll `urls.get`, which poll_job sends the
        # key to only on the configured origin (docs/providers/replicate.md#response).
        urls = prediction.get("urls")
        poll_url = _text(urls.get("get")) if isinstance(urls, dict) else None
        if poll_url is None:
            raise self.malformed("the unfinished prediction has no urls.get to poll")

        def read(answer: httpx.Response) -> JobStatus:
            return self._job_status(self.read_json(answer))

        return await poll_job(self, ctx, poll_url, _text(prediction.get("id")) or "(no id)", read)

    def parse(self, response: httpx.Response) -> ProviderOutput:
        return self._settled(self.read_json(response))

    def _settled(self, prediction: dict[str, object]) -> ProviderOutput:
        """The outputs of a finished prediction; a failed or canceled one raises ProviderFailed."""
        status = self._job_status(prediction)
        if status.failure is not None:
            raise ProviderFailed(self.label, f"the job failed ({status.failure[:200]}). Try again.")
        if status.output is None:
            raise self.malformed("the prediction is not finished")
        return status.output

    def _job_status(self, prediction: dict[str, object]) -> JobStatus:
        """A prediction object: succeeded (its outputs), failed or canceled (Replicate's `error`), or
        still running. A failed prediction is an HTTP 200 (docs/providers/replicate.md#errors)."""
        status = prediction.get("status")
        if status == "succeeded":
            return JobStatus(output=self._finished(prediction))
        if status in _FAILED:
            return JobStatus(failure=_text(prediction.get("error")) or f"the prediction was {status}")
        if status in _RUNNING:
            return JobStatus()
        raise self.malformed(f"a prediction with status {status!r}")

    def _finished(self, prediction: dict[str, object]) -> ProviderOutput:
        output = prediction.get("output")
        if output == []:
            # Images flagged NSFW are dropped from `output`, so it may be shorter than num_outputs;
            # an empty list means every one was (docs/providers/replicate.md#response).
            raise ProviderFailed(
                self.label,
                "no image came back: Replicate withholds the images its safety checker flags as NSFW, "
                "and it flagged all of them. Try another prompt.",
            )
        # An array of URI strings; sync runs once returned data URIs instead: both are passed on
        # (docs/providers/replicate.md#response).
        if not isinstance(output, list) or not all(isinstance(item, str) and item for item in output):
            raise self.malformed("the finished prediction has no output list")
        items: list[OutputItem] = list(output)
        return ProviderOutput(items=items, request_id=_text(prediction.get("id")))

    # --- errors --------------------------------------------------------------------------------

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        # Problem JSON {"title", "detail", "status"}; a 422 also lists `invalid_fields`, which name
        # the field more plainly than `detail` (docs/providers/replicate.md#errors).
        invalid = _invalid_fields(_json_object(response))
        if response.status_code == 422 and invalid:
            said = error_text(httpx.Response(422, json={"detail": invalid}), key=key)
            return InputRejected(self.label, f"the provider rejected these settings ({said}).")
        return super().error_for(response, key=key)

    def retry_after(self, response: httpx.Response) -> float | None:
        # Retry-After, else the body's `retry_after`, else "resets in ~30s" in `detail`
        # (docs/providers/replicate.md#errors).
        header = super().retry_after(response)
        if header is not None:
            return header
        body = _json_object(response)
        seconds = body.get("retry_after")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            return float(seconds)
        found = _RESETS_IN.search(_text(body.get("detail")) or "")
        return float(found.group(1)) if found else None


def prefer_wait_s(request_timeout: float) -> int | None:
    """Seconds for `Prefer: wait=N`: half our request timeout, at most 60, so Replicate answers with
    the unfinished prediction (which we then poll) well before we stop waiting for the billed call.
    Under 2 s of timeout there is no room to hold: the header is left out and the call is async."""
    wait = min(_MAX_WAIT_S, int(request_timeout // 2))
    return wait if wait >= 1 else None


def _invalid_fields(body: dict[str, object]) -> str:
    """ "Input validation failed: input.seed: ...; input.x: ..." from a 422's `invalid_fields`."""
    fields = body.get("invalid_fields")
    named = [
        f"{entry.get('field')}: {entry.get('description')}"
        for entry in (fields if isinstance(fields, list) else [])
        if isinstance(entry, dict) and entry.get("field")
    ]
    if not named:
        return ""
    title = _text(body.get("title"))
    return (f"{title}: " if title else "") + "; ".join(named)


def _json_object(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

"""Fireworks AI: one synchronous call to its FP8 build of FLUX.1 [schnell] (docs/providers/fireworks.md).

API reference: https://docs.fireworks.ai/api-reference/generate-a-new-image-from-a-text-prompt
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar

import httpx

from ..errors import InputRejected, InsufficientCredits, ProviderError
from ..models import MAX_SEED, Capabilities, GenerationRequest
from ..pricing import PriceRule
from ..settings import Settings
from ..sizes import nearest_ratio, size_for_ratio
from ._base import OutputItem, Provider, ProviderCall, ProviderOutput, error_text
from ._contract import AnswerContract, Read

__all__ = [
    "ASPECT_RATIOS", "PIXELS_PER_IMAGE", "ZERO_SEED_SENT_AS", "Fireworks", "aspect_ratio_for", "sent_seed",
]  # fmt: skip

# The documented enum, in the docs' order (docs/providers/fireworks.md#request).
ASPECT_RATIOS = ("1:1", "21:9", "16:9", "3:2", "5:4", "4:5", "2:3", "9:16", "9:21", "4:3", "3:4")
# No pixel size per ratio is documented: we assume about 1024² pixels, sides rounded to 16
# (unconfirmed, docs/providers/fireworks.md#sizes).
PIXELS_PER_IMAGE = 1024 * 1024
# "If 0, we will use a totally random seed" (docs/providers/fireworks.md#request): a requested 0 is
# sent as this seed instead, so the image is still reproducible and its metadata says what was used.
ZERO_SEED_SENT_AS = MAX_SEED
# JSON, not image bytes: it carries the seed used and finishReason in the body
# (docs/providers/fireworks.md#response).
_ACCEPT = "application/json"
_SUCCESS = "SUCCESS"
_FILTERED = "CONTENT_FILTERED"


class Fireworks(Provider):
    name = "fireworks"
    # An FP8 build ("reduced precision numerics"): said in the label, so every comparison shows it
    # (docs/providers/fireworks.md#fair-comparison).
    label = "Fireworks AI (FP8)"
    key_env = ("FIREWORKS_API_KEY",)
    model_id = "accounts/fireworks/models/flux-1-schnell-fp8"
    docs_url = "https://docs.fireworks.ai/api-reference/generate-a-new-image-from-a-text-prompt"
    default_base_url = "https://api.fireworks.ai"
    # Only an aspect ratio is taken, so any width × height is accepted and mapped; the size limits below
    # are the request model's own. Steps: default 4, maximum undocumented, so we allow what the request
    # model allows (1–50) and let Fireworks refuse more. No field asks for several images and the
    # binary answer holds one: one per run (docs/providers/fireworks.md#request).
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=256, max_size=2048, size_multiple=16, min_steps=1, max_steps=50, max_images=1, sizes="mapped"
    )
    # $0.00035 per inference step per image, quoted from fireworks.ai/pricing by a secondary source; the
    # model page says "pay per image step" (docs/providers/fireworks.md#price).
    price = PriceRule(
        basis="per_step",
        usd=Decimal("0.00035"),
        source="https://fireworks.ai/pricing",
        checked=date(2026, 12, 1),
        note="$0.00035 per inference step per image ($0.0014 at the default 4 steps), whatever the aspect "
        "ratio; an FP8 build of FLUX.1 [schnell]. The rate is quoted from fireworks.ai/pricing by a "
        "secondary source.",
    )
    # 402 "not on a paid plan or has exceeded usage limits"; 412 a suspended account (spending limit,
    # unpaid invoices): both billing (docs/providers/fireworks.md#errors).
    credit_statuses = frozenset({402, 412})
    # The JSON answer we ask for, whose `id`, `finishReason` and `seed` the reference marks required
    # (the client tolerates their absence, the check names it); the image body with its headers is
    # a documented answer too (docs/providers/fireworks.md#response).
    contract = AnswerContract(
        result=(
            Read("base64", ("list", "text")),
            Read("finishReason", "text", values=(_SUCCESS, _FILTERED)),
            Read("seed", "integer"),
            Read("id", "text"),
        ),
        image_body=True,
    )

    def route(self, settings: Settings) -> str:
        # The single model path, as the docs' example and the Vercel SDK use it
        # (docs/providers/fireworks.md#endpoint-and-auth).
        return f"/inference/v1/workflows/{self.model_id}/text_to_image"

    def build_call(self, request: GenerationRequest, key: str, settings: Settings) -> ProviderCall:
        call = super().build_call(request, key, settings)
        # The Accept header chooses the answer's form (docs/providers/fireworks.md#endpoint-and-auth).
        call.headers["Accept"] = _ACCEPT
        return call

    def shape(self, request: GenerationRequest, settings: Settings) -> GenerationRequest:
        # Seed 0 means "random" here, so the request carries the seed actually sent
        # (docs/providers/fireworks.md#request).
        shaped = super().shape(request, settings)
        seed = sent_seed(shaped.seed)
        return shaped if seed == shaped.seed else shaped.model_copy(update={"seed": seed})

    def output_size(self, request: GenerationRequest, settings: Settings) -> tuple[int, int]:
        return size_for_ratio(aspect_ratio_for(request), PIXELS_PER_IMAGE)

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        # Width and height are not taken; the nearest documented ratio is. guidance_scale and
        # safety_check keep Fireworks' defaults (docs/providers/fireworks.md#request).
        body: dict[str, object] = {
            "prompt": request.prompt,
            "aspect_ratio": aspect_ratio_for(request),
            "num_inference_steps": request.steps,
            "seed": sent_seed(request.seed),
        }
        return {name: value for name, value in body.items() if value is not None}

    def parse(self, response: httpx.Response) -> ProviderOutput:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        # We ask for JSON, but an image body is a documented answer too: read both
        # (docs/providers/fireworks.md#response).
        if content_type.startswith("image/"):
            return self._image_answer(response)
        return self._json_answer(self.read_json(response))

    def _image_answer(self, response: httpx.Response) -> ProviderOutput:
        # A binary answer carries the seed and the outcome in the Seed and Finish-Reason headers
        # (docs/providers/fireworks.md#response).
        self._check_finished(response.headers.get("finish-reason"))
        return ProviderOutput(items=[response.content], seed=_seed(response.headers.get("seed")))

    def _json_answer(self, body: dict[str, object]) -> ProviderOutput:
        self._check_finished(body.get("finishReason"))
        request_id = body.get("id")
        return ProviderOutput(
            items=self._images(body.get("base64")),
            seed=_seed(body.get("seed")),
            request_id=request_id if isinstance(request_id, str) and request_id else None,
        )

    def _check_finished(self, reason: object) -> None:
        # CONTENT_FILTERED comes with HTTP 200 and is an error, never an image to show; the field is
        # documented as required, but its absence with images is tolerated
        # (docs/providers/fireworks.md#response).
        if reason is None or reason == _SUCCESS:
            return
        if reason == _FILTERED:
            raise InputRejected(
                self.label,
                "the safety filter withheld the image (finishReason CONTENT_FILTERED). "
                "Change the prompt and try again.",
            )
        raise self.malformed(f"finishReason {str(reason)[:40]!r}")

    def _images(self, raw: object) -> list[OutputItem]:
        # The examples show a list; the field list types `base64` as one string. Items are bare
        # base64 or data URIs: accept all of these (docs/providers/fireworks.md#response).
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(item, str) and item for item in items):
            raise self.malformed("no base64 images in the answer")
        return [str(item) for item in items]

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        # 412 is a suspended account, e.g. at its spending limit or with unpaid invoices, not an empty
        # balance: say so (docs/providers/fireworks.md#errors).
        if response.status_code == 412:
            said = error_text(response, key=key)
            detail = f" ({said})" if said else ""
            return InsufficientCredits(
                self.label,
                f"the account is suspended or over its spending limit{detail}. Top up or settle the "
                "billing at Fireworks, then retry.",
            )
        return super().error_for(response, key=key)


def aspect_ratio_for(request: GenerationRequest) -> str:
    """The documented ratio nearest to the requested width × height (1024 × 1024 → "1:1")."""
    return nearest_ratio(request.width, request.height, ASPECT_RATIOS)


def sent_seed(seed: int | None) -> int | None:
    """The seed sent for a requested one: never 0, which Fireworks reads as "random"."""
    return ZERO_SEED_SENT_AS if seed == 0 else seed


def _seed(value: object) -> int | None:
    """The seed Fireworks reports (a JSON number, or a header's digits); None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None

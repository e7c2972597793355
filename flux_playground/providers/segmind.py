"""Segmind: the synchronous v1 endpoint answers with the image itself (docs/providers/segmind.md).

API reference: https://segmind.com/models/flux-schnell/api
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import ClassVar

import httpx

from ..errors import ProviderError, ProviderFailed
from ..http import parse_retry_after
from ..models import Capabilities, GenerationRequest
from ..pricing import PriceRule
from ..settings import Settings
from ._base import OutputItem, Provider, ProviderOutput, error_text
from ._contract import AnswerContract, Read

__all__ = ["SAMPLERS", "SCHEDULERS", "Segmind"]

# The page shows 10 of "27 total" sampler names; the other 17 are ComfyUI's KSAMPLER_NAMES in the same
# order, inferred, not read (docs/providers/segmind.md#request).
SAMPLERS = (
    "euler",
    "euler_pp",
    "euler_ancestral",
    "euler_ancestral_pp",
    "heun",
    "heunpp2",
    "dpm_2",
    "dpm_2_ancestral",
    "lms",
    "dpm_fast",
    "dpm_adaptive",
    "dpmpp_2s_ancestral",
    "dpmpp_sde",
    "dpmpp_sde_gpu",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu",
    "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu",
    "ddpm",
    "lcm",
    "ipndm",
    "ipndm_v",
    "deis",
    "ddim",
    "uni_pc",
    "uni_pc_bh2",
)
SCHEDULERS = ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform")


class Segmind(Provider):
    name = "segmind"
    label = "Segmind"
    key_env = ("SEGMIND_API_KEY",)
    model_id = "flux-schnell"
    docs_url = "https://segmind.com/models/flux-schnell/api"
    default_base_url = "https://api.segmind.com"
    # "between 512 and 2048 in multiples of 8", steps 1–8 (docs/providers/segmind.md#request). The v1
    # answer is one raw image/jpeg body, so asking for `samples` > 1 would bill several images and
    # return one: one per run.
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=512,
        max_size=2048,
        size_multiple=8,
        min_steps=1,
        max_steps=8,
        max_images=1,
        samplers=SAMPLERS,
        schedulers=SCHEDULERS,
    )
    # The page shows ~$0.008 at 1024², 4 steps and bills by GPU time (basis unpublished): scaled by
    # size and steps as an approximation (docs/providers/segmind.md#price).
    price = PriceRule(
        basis="per_megapixel_step",
        usd=Decimal("0.002"),
        approximate=True,
        source="https://segmind.com/models/flux-schnell",
        checked=date(2026, 12, 1),
        note="The page shows ~$0.008 at 1024×1024, 4 steps; billing follows GPU time, "
        "so we scale it by size and steps.",
    )
    # "406 Not Acceptable = Not enough credits" (docs/providers/segmind.md#errors).
    credit_statuses = frozenset({402, 406})
    # The image itself (the spec), or JSON with it in `image` (or `images`/`output`), as `parse` reads
    # (docs/providers/segmind.md#response).
    contract = AnswerContract(
        result=(Read("image", ("text", "list"), alternatives=("images", "output")),),
        known=("status", "metrics"),
        image_body=True,
    )

    def route(self, settings: Settings) -> str:
        return f"/v1/{self.model_id}"

    def auth_headers(self, key: str) -> dict[str, str]:
        # The key goes in x-api-key; a Bearer token is refused with 401 (docs/providers/segmind.md).
        return {"x-api-key": key}

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        body: dict[str, object] = {
            "prompt": request.prompt,
            "steps": request.steps,
            "seed": request.seed,
            "sampler_name": request.sampler,
            "scheduler": request.scheduler,
            "samples": request.num_images,
            "width": request.width,
            "height": request.height,
        }
        # Unset optional fields are left out so Segmind's documented defaults apply.
        return {name: value for name, value in body.items() if value is not None}

    def parse(self, response: httpx.Response) -> ProviderOutput:
        credits = response.headers.get("x-remaining-credits")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        # The spec says raw image/jpeg, the page's sample calls .json(): decide by Content-Type
        # (docs/providers/segmind.md#response).
        if content_type.startswith("image/"):
            return ProviderOutput(items=[response.content], remaining_credits=credits)
        body = self.read_json(response)
        return ProviderOutput(items=_json_images(body, self), remaining_credits=credits)

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        # 406 also answers a wrong Content-Type and team spend limits, not only "Not enough credits"
        # (docs/providers/segmind.md#errors): only "out of credits" when the body does not say otherwise.
        said = error_text(response, key=key).lower()
        if response.status_code == 406 and "content type" in said:
            return ProviderFailed(self.label, f"refused the request format ({said}). Please report this bug.")
        return super().error_for(response, key=key)

    def retry_after(self, response: httpx.Response) -> float | None:
        # Segmind's 429 carries x-rate-limit-reset-at-utc and no Retry-After (docs/providers/segmind.md).
        header = parse_retry_after(response.headers.get("retry-after"))
        if header is not None:
            return header
        reset = response.headers.get("x-rate-limit-reset-at-utc")
        if not reset:
            return None
        try:
            when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, round((when - datetime.now(UTC)).total_seconds(), 1))


def _json_images(body: dict[str, object], provider: Provider) -> list[OutputItem]:
    # Third-party code reads `image` (base64); some Segmind models answer `images` or `output`.
    raw = body.get("image") or body.get("images") or body.get("output")
    items = raw if isinstance(raw, list) else [raw]
    found = [item for item in items if isinstance(item, str) and item]
    if not found:
        raise provider.malformed("the JSON answer has no image")
    for item in found:
        if not item.startswith(("http://", "https://", "data:")):
            try:
                base64.b64decode(item[:64] + "=" * (-len(item[:64]) % 4), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise provider.malformed("the image field is neither base64 nor a URL") from exc
    return list(found)

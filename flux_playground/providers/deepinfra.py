"""DeepInfra: the native inference endpoint, or the OpenAI-compatible one (docs/providers/deepinfra.md).

API reference: https://deepinfra.com/black-forest-labs/FLUX-1-schnell/api
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar

import httpx

from ..models import Capabilities, GenerationRequest
from ..pricing import PriceRule
from ..settings import Settings
from ._base import Option, Provider, ProviderOutput, reported_cost
from ._contract import AnswerContract, Read
from .openai_images import IMAGES_CONTRACT, ImagesStyle, read_images

__all__ = ["DeepInfra"]

_NATIVE_PRICE = PriceRule(
    basis="per_megapixel_step",
    usd=Decimal("0.0005"),
    source="https://deepinfra.com/black-forest-labs/FLUX-1-schnell",
    checked=date(2026, 12, 1),
    note="$0.0005 × (width/1024) × (height/1024) × steps; the answer reports the real charge.",
)
# The OpenAI-compatible endpoint takes no steps and reports no cost: it runs the model's own default,
# which DeepInfra does not document (docs/providers/deepinfra.md#price). Priced at 4 steps, the count
# FLUX.1 [schnell] is made for, and marked approximate.
_OPENAI_PRICE = _NATIVE_PRICE.model_copy(
    update={
        "fixed_steps": 4,
        "approximate": True,
        "note": "The OpenAI-compatible endpoint takes no steps; priced at 4 (its default is not "
        "documented) and it reports no charge.",
    }
)

# What `DeepInfra.parse` reads of a native answer; `inference_status.status` values are the page example's
# and the one that makes a zero cost a charge (docs/providers/deepinfra.md#response).
_NATIVE_CONTRACT = AnswerContract(
    result=(
        Read("images", "list"),
        Read("images[]", "text"),
        Read("seed", "integer"),
        Read("request_id", ("text", "null"), required=False),
        Read("inference_status", "object"),
        Read("inference_status.status", "text", values=("unknown", "succeeded")),
        Read("inference_status.cost", "number"),
    ),
    known=(
        "nsfw_content_detected", "inference_status.runtime_ms", "inference_status.tokens_generated",
        "inference_status.tokens_input",
    ),
)  # fmt: skip


# The OpenAI-compatible endpoint: `size` "WxH", no steps and no seed in its schema, and "Currently only
# b64_json is supported" (docs/providers/deepinfra.md#request).
OPENAI_STYLE = ImagesStyle(route="/v1/openai/images/generations")


class DeepInfra(Provider):
    name = "deepinfra"
    label = "DeepInfra"
    key_env = ("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN")
    # Note the hyphen in FLUX-1, unlike FLUX.1 elsewhere (docs/providers/deepinfra.md#request).
    model_id = "black-forest-labs/FLUX-1-schnell"
    docs_url = "https://deepinfra.com/black-forest-labs/FLUX-1-schnell/api"
    default_base_url = "https://api.deepinfra.com"
    options = (
        Option(
            "endpoint",
            ("DEEPINFRA_ENDPOINT", "FLUX_PLAYGROUND_DEEPINFRA_ENDPOINT"),
            '"native" honours steps and seed and reports the charge; "openai" is the OpenAI-compatible one',
            default="native",
            choices=("native", "openai"),
        ),
    )
    # Native: num_inference_steps 1–50, num_images 1–4; the width/height range is not documented, so
    # 256–2048 in multiples of 16 (what FLUX's latent grid needs) is our assumption
    # (docs/providers/deepinfra.md#sizes).
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=256,
        max_size=2048,
        size_multiple=16,
        min_steps=1,
        max_steps=50,
        max_images=4,
    )
    # The OpenAI-compatible endpoint takes prompt, n and size only: no steps and no seed in its
    # schema, so we do not claim it honours them (docs/providers/deepinfra.md#request).
    openai_capabilities: ClassVar[Capabilities] = OPENAI_STYLE.capabilities(capabilities)
    price = _NATIVE_PRICE
    contract = _NATIVE_CONTRACT

    def _openai(self, settings: Settings) -> bool:
        return self.option(settings, "endpoint") == "openai"

    def get_capabilities(self, settings: Settings) -> Capabilities:
        return self.openai_capabilities if self._openai(settings) else self.capabilities

    def answer_contract(self, settings: Settings) -> AnswerContract:
        return IMAGES_CONTRACT if self._openai(settings) else _NATIVE_CONTRACT

    def price_rule(self, settings: Settings) -> PriceRule | None:
        if self._openai(settings) and self.name not in settings.prices:
            return _OPENAI_PRICE
        return super().price_rule(settings)

    def route(self, settings: Settings) -> str:
        if self._openai(settings):
            return OPENAI_STYLE.route
        return f"/v1/inference/{self.model_id}"

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        if self._openai(settings):
            return OPENAI_STYLE.payload(request, self.model_id)
        body: dict[str, object] = {
            "prompt": request.prompt,
            "num_images": request.num_images,
            # The native default is 1 step; always send ours (docs/providers/deepinfra.md#request).
            "num_inference_steps": request.steps,
            "width": request.width,
            "height": request.height,
            "seed": request.seed,
        }
        return {name: value for name, value in body.items() if value is not None}

    def parse(self, response: httpx.Response) -> ProviderOutput:
        body = self.read_json(response)
        if "data" in body:  # OpenAI-compatible: {"created", "data": [{"b64_json" | "url", ...}]}
            # Both item fields are nullable in DeepInfra's OpenAPI (docs/providers/deepinfra.md#response).
            return read_images(self, body)
        images = body.get("images")
        if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images) or not images:
            raise self.malformed("no images in the answer")
        status = body.get("inference_status")
        seed = body.get("seed")
        return ProviderOutput(
            items=list(images),
            seed=seed if isinstance(seed, int) else None,
            reported_cost_usd=_cost(status if isinstance(status, dict) else {}),
            request_id=request_id if isinstance(request_id := body.get("request_id"), str) else None,
        )


def _cost(status: dict[str, object]) -> Decimal | None:
    """inference_status.cost is the real charge in USD (docs/providers/deepinfra.md#price), kept
    with its exact digits. The documented example says `"status": "unknown", "cost": 0.0`: a zero is
    a charge only once the status says "succeeded"."""
    return reported_cost(status.get("cost"), zero_is_a_charge=status.get("status") == "succeeded")

"""Together AI: one synchronous OpenAI-style call answers with base64 images (docs/providers/together.md).

API reference: https://docs.together.ai/reference/post-images-generations
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar

from ..models import Capabilities
from ..pricing import PriceRule
from .openai_images import ImagesStyle, OpenAIImages, images_contract

__all__ = ["Together"]

STYLE = ImagesStyle(
    # `width` and `height`, not OpenAI's `size` (docs/providers/together.md#request).
    size_style="width_height",
    # Always sent: the OpenAPI's default is 20 steps, 5× what schnell is made for
    # (docs/providers/together.md#request).
    steps_field="steps",
    seed_field="seed",
    # Together's value is "base64", not "b64_json", though the items come back as `b64_json`; base64
    # also spares a download from its CDN, which refuses a blank User-Agent
    # (docs/providers/together.md#request, #response).
    response_format="base64",
)


class Together(OpenAIImages):
    name = "together"
    label = "Together AI"
    model_id = "black-forest-labs/FLUX.1-schnell"
    docs_url = "https://docs.together.ai/reference/post-images-generations"
    key_env = ("TOGETHER_API_KEY",)
    # The OpenAPI's server is now api.together.ai; api.together.xyz, which the docs' curl and Hugging
    # Face still use, answers the same API (docs/providers/together.md#endpoint-and-auth).
    default_base_url = "https://api.together.xyz"
    style = STYLE
    # OpenAI's answer plus `model`, `object` and each item's `type` (docs/providers/together.md#response).
    contract = images_contract("model", "object", "data[].type")
    # "Keep dimensions to multiples of 8"; no documented range, so none beyond the page's own 256–2048:
    # Together refuses what it cannot make with a 400 before billing. The steps range is not documented
    # either; n is 1–4 (docs/providers/together.md#sizes, #request). Whether schnell honours W×H or an
    # `aspect_ratio` is unconfirmed: the size of the image that comes back is what is recorded.
    capabilities: ClassVar[Capabilities] = STYLE.capabilities(
        Capabilities(min_size=256, max_size=2048, size_multiple=8, min_steps=1, max_steps=50, max_images=4)
    )
    # No primary price for schnell: $0.0027 per image is a secondary source's reading of
    # together.ai/pricing. Together bills serverless images by the megapixel at an unconfirmed rate,
    # so per image is our basis until that is confirmed (docs/providers/together.md#price).
    price = PriceRule(
        basis="per_image",
        usd=Decimal("0.0027"),
        source="https://workflowlab.dev/cost/flux-schnell-together",
        checked=date(2026, 12, 1),
        note="$0.0027 per image at 1024×1024, 4 steps, from a secondary source citing together.ai/pricing "
        "(no primary figure for schnell); Together bills images by the megapixel, at a rate not published "
        "for schnell, so other sizes may cost more or less.",
    )
    # "402 - Payment Required: the account ... has reached its maximum allowed monthly spending limit"
    # (Together's error-codes page; docs/providers/together.md#errors).
    credit_statuses = frozenset({402})
    # Hugging Face routes Together: `POST /together/v1/images/generations` on its router, the same body
    # (docs/providers/hf-router.md#endpoint-and-auth).
    hf_route = "/together"

"""fal.ai: one synchronous call to fal.run answers with the result JSON (docs/providers/fal.md).

API reference: https://fal.ai/docs/model-api-reference/image-generation-api/flux-schnell
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import ClassVar

import httpx

from ..errors import InputRejected, InsufficientCredits, ProviderError
from ..models import Capabilities, GenerationRequest
from ..pricing import MEBI_PIXELS, PriceRule
from ..settings import Settings
from ._base import OutputItem, Provider, ProviderOutput, error_text
from ._contract import AnswerContract, Read

__all__ = ["Fal"]

# An exhausted balance is a 403 "User is locked. Reason: Exhausted balance. Top up …", also worded
# "Reason: TOP_UP." or, after a top-up, "Reason: Admin lock": a billing lock, not a bad key. Only user
# reports show it, so any status a key error could have is read by its words
# (docs/providers/fal.md#errors).
_LOCKED_WORDS = ("user is locked", "exhausted balance", "top_up", "top up", "admin lock")
_LOCK_STATUSES = frozenset({401, 402, 403})
# The result items: a CDN URL, or a data URI with sync_mode (docs/providers/fal.md#response).
_ITEM_PREFIXES = ("https://", "http://", "data:")


class Fal(Provider):
    name = "fal"
    label = "fal.ai"
    key_env = ("FAL_KEY",)
    model_id = "fal-ai/flux/schnell"
    docs_url = "https://fal.ai/docs/model-api-reference/image-generation-api/flux-schnell"
    default_base_url = "https://fal.run"
    # Steps 1–12 and num_images 1–4 are documented; the range and multiple of a custom
    # {width, height} are not, so 256–2048 in multiples of 16 (FLUX's latent grid, so fal has
    # nothing to round) is our assumption (docs/providers/fal.md#sizes). Seed: "same seed and same
    # prompt … same image" (docs/providers/fal.md#fair-comparison).
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=256,
        max_size=2048,
        size_multiple=16,
        min_steps=1,
        max_steps=12,
        max_images=4,
    )
    # Billed MP = ceil(W·H / 1024²) per image: 1024² and 512² cost one, 1536×1024 two; steps do not
    # count (docs/providers/fal.md#price, the project's decision on which megapixel).
    price = PriceRule(
        basis="per_megapixel",
        usd=Decimal("0.003"),
        megapixel=MEBI_PIXELS,
        round_up=True,
        source="https://fal.ai/docs/model-api-reference/image-generation-api/flux-schnell",
        checked=date(2026, 12, 1),
        note="$0.003 per megapixel of 1024×1024 px, each image rounded up to whole megapixels "
        "(512×512 costs as much as 1024×1024); steps do not change the price.",
    )
    # No out-of-credit status is documented; 402 is kept as the plausible one, and the documented
    # 403 "User is locked" is read by its words in `error_for` (docs/providers/fal.md#errors).
    credit_statuses = frozenset({402})
    # The result `parse` reads, and the rest of it (docs/providers/fal.md#response).
    contract = AnswerContract(
        result=(Read("images", "list"), Read("images[].url", "text"), Read("seed", "integer")),
        known=(
            "images[].width",
            "images[].height",
            "images[].content_type",
            "timings",
            "has_nsfw_concepts",
            "prompt",
        ),
    )
    # Hugging Face routes fal.ai as "fal-ai": `POST /fal-ai/fal-ai/flux/schnell` on its router, the same
    # body, a Bearer hf_ token instead of `Key` (docs/providers/hf-router.md#endpoint-and-auth).
    hf_route = "/fal-ai"

    def route(self, settings: Settings) -> str:
        return f"/{self.model_id}"

    def auth_headers(self, key: str) -> dict[str, str]:
        # "Authorization: Key <FAL_KEY>", not Bearer (docs/providers/fal.md#endpoint-and-auth).
        return {"Authorization": f"Key {key}"}

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        body: dict[str, object] = {
            "prompt": request.prompt,
            # The default is landscape_4_3 (1024×768), not square: always send the size
            # (docs/providers/fal.md#request).
            "image_size": {"width": request.width, "height": request.height},
            "num_inference_steps": request.steps,
            "seed": request.seed,
            "num_images": request.num_images,
            # "none" is fal's documented default but a reseller says "regular"; faster modes may
            # change the image, so pin it for a fair, reproducible comparison
            # (docs/providers/fal.md#fair-comparison).
            "acceleration": "none",
            # Images come back inside the answer as data URIs and are "not kept in request history":
            # people's images do not stay on fal's CDN for days, and there is no second download
            # (base64 makes the answer a third larger; the answer cap allows for it)
            # (docs/providers/fal.md#request).
            "sync_mode": True,
            # PNG, which we store: JPEG (the current default; an older schema said png) would bake
            # compression artefacts into a lossless file (docs/providers/fal.md#request).
            "output_format": "png",
            # The documented default, sent so that a change of default cannot switch it off on a
            # public page (docs/providers/fal.md#request).
            "enable_safety_checker": True,
        }
        return {name: value for name, value in body.items() if value is not None}

    def parse(self, response: httpx.Response) -> ProviderOutput:
        # No reported cost: x-fal-billable-units would give the real charge, but only secondary
        # sources show it, on the queue's result fetch rather than this answer, so the estimate stands
        # (docs/providers/fal.md#unconfirmed).
        body = self.read_json(response)
        seed = body.get("seed")
        return ProviderOutput(
            items=self._images(body.get("images")),
            # The seed actually used: the one sent, or the random one fal drew
            # (docs/providers/fal.md#response).
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            request_id=response.headers.get("x-fal-request-id") or None,  # docs/providers/fal.md#response
        )

    def _images(self, images: object) -> list[OutputItem]:
        """`images[].url` of every image; an entry without one is not what the docs promise."""
        if not isinstance(images, list) or not images:
            raise self.malformed("no images in the answer")
        items: list[OutputItem] = []
        for entry in images:
            url = entry.get("url") if isinstance(entry, dict) else None
            if not isinstance(url, str) or not url.startswith(_ITEM_PREFIXES):
                raise self.malformed("an image without a URL or data URI")
            items.append(url)
        return items

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        said = error_text(response, key=key)
        if response.status_code in _LOCK_STATUSES and any(w in said.lower() for w in _LOCKED_WORDS):
            return InsufficientCredits(
                self.label,
                f"the account is out of credits or locked ({said}). Top up at fal.ai/dashboard/billing, "
                "then retry; if the balance is already positive, only fal can unlock it (support@fal.ai).",
            )
        if response.status_code == 422:
            return self._rejected(response, key=key)
        return super().error_for(response, key=key)

    def _rejected(self, response: httpx.Response, *, key: str) -> InputRejected:
        # A 422 is a model error, and fal charges for it (docs/providers/fal.md#errors).
        said = error_text(response, key=key)
        field = _invalid_field(response)
        if said and field:
            said = f"{field}: {said}"
        detail = f" ({said})" if said else ""
        rejected = InputRejected(self.label, f"the provider rejected these settings{detail}; fal bills this.")
        rejected.billed = True
        return rejected


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _invalid_field(response: httpx.Response) -> str | None:
    """The field a 422 names: the last `loc` of the first entry of FastAPI's
    `{"detail": [{loc, msg, type, …}]}` (docs/providers/fal.md#errors), e.g. "num_inference_steps"."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    first = detail[0] if isinstance(detail, list) and detail else None
    loc = first.get("loc") if isinstance(first, dict) else None
    name = loc[-1] if isinstance(loc, list) and loc else None
    if not isinstance(name, str) or name == "body" or not _FIELD_NAME.fullmatch(name):
        return None
    return name

"""DeepInfra: the native inference endpoint, or the OpenAI-compatible one (PROVIDERS.md section 3).

API reference: https://deepinfra.com/black-forest-labs/FLUX-1-schnell/api
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import ClassVar

import httpx

from ..models import Capabilities, GenerationRequest
from ..settings import Settings
from ._base import OutputItem, Provider, ProviderOutput

__all__ = ["DeepInfra"]


class DeepInfra(Provider):
    name = "deepinfra"
    label = "DeepInfra"
    key_env = ("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN")
    # Note the hyphen in FLUX-1, unlike FLUX.1 elsewhere (PROVIDERS.md 3.1).
    model_id = "black-forest-labs/FLUX-1-schnell"
    docs_url = "https://deepinfra.com/black-forest-labs/FLUX-1-schnell/api"
    # Native: num_inference_steps 1–50, num_images 1–4; the width/height range is not documented, so
    # 256–2048 in multiples of 16 (what FLUX's latent grid needs) is our assumption (PROVIDERS.md 3.2).
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=256,
        max_size=2048,
        size_multiple=16,
        min_steps=1,
        max_steps=50,
        max_images=4,
    )
    # The OpenAI-compatible endpoint takes prompt, n and size only; whether it honours steps or seed is
    # unconfirmed, so we do not claim it does (PROVIDERS.md 3.1).
    openai_capabilities: ClassVar[Capabilities] = capabilities.model_copy(
        update={"steps": False, "seed": False}
    )

    def get_capabilities(self, settings: Settings) -> Capabilities:
        return self.openai_capabilities if settings.deepinfra_endpoint == "openai" else self.capabilities

    def route(self, settings: Settings) -> str:
        if settings.deepinfra_endpoint == "openai":
            return "/v1/openai/images/generations"
        return f"/v1/inference/{self.model_id}"

    def auth_headers(self, key: str) -> dict[str, str]:
        # The docs show "bearer" for the native endpoint and "Bearer" for the OpenAI one; both work.
        return {"Authorization": f"Bearer {key}"}

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        if settings.deepinfra_endpoint == "openai":
            # "Currently only b64_json is supported" (PROVIDERS.md 3.1). Model id last.
            return {
                "prompt": request.prompt,
                "n": request.num_images,
                "size": f"{request.width}x{request.height}",
                "response_format": "b64_json",
                "model": self.model_id,
            }
        body: dict[str, object] = {
            "prompt": request.prompt,
            "num_images": request.num_images,
            # The native default is 1 step; always send ours (PROVIDERS.md 3.2).
            "num_inference_steps": request.steps,
            "width": request.width,
            "height": request.height,
            "seed": request.seed,
        }
        return {name: value for name, value in body.items() if value is not None}

    def parse(self, response: httpx.Response) -> ProviderOutput:
        body = self.read_json(response)
        if "data" in body:  # OpenAI-compatible: {"created", "data": [{"b64_json", "revised_prompt"}]}
            data = body["data"]
            items: list[OutputItem] = [
                entry["b64_json"]
                for entry in (data if isinstance(data, list) else [])
                if isinstance(entry, dict) and isinstance(entry.get("b64_json"), str)
            ]
            if not items:
                raise self.malformed("no b64_json image in `data`")
            return ProviderOutput(items=items)
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
    """inference_status.cost is the real charge in USD (PROVIDERS.md 3.2). Keep its exact digits.

    The documented example says `"status": "unknown", "cost": 0.0`: a zero we cannot trust is not
    reported as a charge of $0.
    """
    value = status.get("cost")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    if not cost.is_finite() or cost < 0 or (cost == 0 and status.get("status") != "succeeded"):
        return None
    return cost

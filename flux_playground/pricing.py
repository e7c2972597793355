"""Prices as data: one row per provider with its basis, source and the date it was checked.

`estimate(request)` prices one run at every provider before anything is paid. An unknown price is
None ("unknown"), never $0. The app's owner overrides rows with FLUX_PLAYGROUND_PRICES, e.g.
`{"segmind": {"basis": "per_image", "usd": "0.01"}}`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigurationError
from .models import GenerationRequest
from .providers import PROVIDERS
from .settings import Settings

__all__ = ["PRICES", "Basis", "PriceRule", "estimate", "estimate_one", "format_usd", "price_rules"]

Basis = Literal["per_image", "per_megapixel_step"]

#: 1024 × 1024 pixels: providers that price by size use this as their unit ("w/1024 × h/1024").
_UNIT_PIXELS = Decimal(1024 * 1024)
_MICRODOLLAR = Decimal("0.000001")


class PriceRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    basis: Basis
    #: USD per image, or per (1024×1024 pixels × step).
    usd: Decimal = Field(ge=0)
    #: True when the provider bills another way (e.g. GPU seconds) and this is our conversion.
    approximate: bool = False
    source: str = "set by the app's owner"
    checked: date | None = None
    note: str = ""

    def describe(self) -> str:
        prefix = "≈ " if self.approximate else ""
        if self.basis == "per_image":
            return f"{prefix}${self.usd} per image"
        return f"{prefix}${self.usd} per megapixel-step"

    def cost(self, request: GenerationRequest) -> Decimal:
        if self.basis == "per_image":
            cost = self.usd * request.num_images
        else:
            scale = Decimal(request.width * request.height) / _UNIT_PIXELS
            cost = self.usd * scale * request.steps * request.num_images
        return cost.quantize(_MICRODOLLAR).normalize()


PRICES: dict[str, PriceRule] = {
    "atlascloud": PriceRule(
        basis="per_image",
        usd=Decimal("0.003"),
        source="https://www.atlascloud.ai/models/black-forest-labs/flux-schnell",
        checked=date(2026, 11, 1),
        note="$0.003 per run. Whether several images per run multiply it is not documented; we assume so.",
    ),
    "deepinfra": PriceRule(
        basis="per_megapixel_step",
        usd=Decimal("0.0005"),
        source="https://deepinfra.com/black-forest-labs/FLUX-1-schnell",
        checked=date(2026, 11, 1),
        note="$0.0005 × (width/1024) × (height/1024) × steps; the answer reports the real charge.",
    ),
    "segmind": PriceRule(
        basis="per_megapixel_step",
        usd=Decimal("0.002"),
        approximate=True,
        source="https://segmind.com/models/flux-schnell",
        checked=date(2026, 11, 1),
        note="The page shows ~$0.008 at 1024×1024, 4 steps; billing follows GPU time, "
        "so we scale it by size and steps.",
    ),
}


def price_rules(settings: Settings) -> dict[str, PriceRule]:
    """The built-in table with the owner's overrides applied."""
    rules = dict(PRICES)
    for name, override in settings.prices.items():
        if name not in rules:
            raise ConfigurationError(
                f"FLUX_PLAYGROUND_PRICES names unknown provider {name!r}; use one of {', '.join(rules)}."
            )
        owned = {"source": "set by the app's owner", "checked": None, "approximate": False, "note": ""}
        try:
            rules[name] = PriceRule.model_validate({**rules[name].model_dump(), **owned, **override})
        except (ValidationError, InvalidOperation) as exc:
            raise ConfigurationError(
                f"FLUX_PLAYGROUND_PRICES[{name!r}] is not a valid price: give basis "
                '(per_image or per_megapixel_step) and usd, e.g. {"usd": "0.004"}.'
            ) from exc
    return rules


def estimate_one(rule: PriceRule | None, request: GenerationRequest) -> Decimal | None:
    return None if rule is None else rule.cost(request)


def estimate(request: GenerationRequest, settings: Settings) -> dict[str, Decimal | None]:
    """The estimated cost of this request at every provider, in USD (None: unknown)."""
    rules = price_rules(settings)
    return {name: estimate_one(rules.get(name), request) for name in PROVIDERS}


def format_usd(value: Decimal | None) -> str:
    """ "$0.002" for a price, "unknown" when there is none (never "$0")."""
    return "unknown" if value is None else f"${format(value.normalize(), 'f')}"

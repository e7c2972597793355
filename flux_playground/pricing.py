"""Prices as data: each provider declares its rule (basis, numbers, source, date) on its own class.

`PriceRule.cost(width, height, steps, images)` prices what the provider will actually produce (its
size and steps, which may differ from what was asked: quotes.py asks the provider). An unknown price
is None ("unknown"), never $0. The app's owner overrides any field of any provider's rule with
FLUX_PLAYGROUND_PRICES, e.g. `{"segmind": {"basis": "per_image", "usd": "0.01"}}` (`with_override`).

Bases, each as the provider publishes it (docs/providers/README.md):

    per_image            usd × images                                     Atlas, Replicate, Together
    per_megapixel        usd × megapixels (of `megapixel` pixels, maybe rounded up) × images   fal
    per_megapixel_step   usd × megapixels × steps × images                DeepInfra, Segmind (≈)
    per_step             usd × steps × images                             Fireworks
    per_tile_step        (usd × tiles + usd_per_step × steps) × images    Cloudflare
    table                usd read off a published table of (megapixels, usd) at `table_steps`
                         steps, linear between points, scaled by steps     Runware (≈)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigurationError

__all__ = ["MEBI_PIXELS", "Basis", "PriceRule", "format_usd", "with_override"]

Basis = Literal["per_image", "per_megapixel", "per_megapixel_step", "per_step", "per_tile_step", "table"]

#: 1024 × 1024: what "a megapixel" means for most FLUX prices ("w/1024 × h/1024"; fal's megapixel).
MEBI_PIXELS = 1024 * 1024
_MICRODOLLAR = Decimal("0.000001")
_UNITS: dict[str, str] = {
    "per_image": "per image",
    "per_megapixel": "per megapixel",
    "per_megapixel_step": "per megapixel-step",
    "per_step": "per step",
}


class PriceRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    basis: Basis
    #: USD per image, per megapixel, per megapixel-step, per step, per tile, or unused (table).
    usd: Decimal = Field(default=Decimal(0), ge=0)
    #: per_tile_step: USD per step, on top of the tiles.
    usd_per_step: Decimal | None = Field(default=None, ge=0)
    #: Pixels in a megapixel: 1024² (most FLUX prices) or 10⁶; and whether each image is rounded up.
    megapixel: int = Field(default=MEBI_PIXELS, gt=0)
    round_up: bool = False
    #: per_tile_step: square tiles of this side, counted per side rounded up.
    tile: int = Field(default=512, gt=0)
    #: table: (megapixels, USD per image) points at `table_steps` steps.
    table: tuple[tuple[Decimal, Decimal], ...] = ()
    table_steps: int = Field(default=4, gt=0)
    #: The provider runs this many steps whatever is asked (its API takes no steps): price those.
    fixed_steps: int | None = Field(default=None, gt=0)
    #: True when this is our conversion of how the provider bills (GPU time, an undocumented default).
    approximate: bool = False
    source: str = "set by the app's owner"
    checked: date | None = None
    note: str = ""

    @model_validator(mode="after")
    def _complete(self) -> PriceRule:
        if self.basis == "per_tile_step" and self.usd_per_step is None:
            raise ValueError("per_tile_step needs usd_per_step")
        if self.basis == "table" and len(self.table) < 2:
            raise ValueError("a table needs at least two (megapixels, usd) points")
        return self

    def describe(self) -> str:
        """E.g. "$0.003 per image", "≈ $0.002 per megapixel-step", "$0.000053 per 512² tile + ..."."""
        prefix = "≈ " if self.approximate else ""
        if self.basis == "per_tile_step":
            text = f"${self.usd} per {self.tile}² tile + ${self.usd_per_step} per step"
        elif self.basis == "table":
            first, last = self.table[0], self.table[-1]
            text = f"${first[1]} ({first[0]} MP) to ${last[1]} ({last[0]} MP) at {self.table_steps} steps"
        else:
            text = f"${self.usd} {_UNITS[self.basis]}"
            if self.basis in ("per_megapixel", "per_megapixel_step") and self.megapixel != MEBI_PIXELS:
                text += f" ({self.megapixel:,} px)"
        if self.fixed_steps is not None:
            text += f", at {self.fixed_steps} steps"
        return prefix + text

    def cost(self, *, width: int, height: int, steps: int, images: int) -> Decimal:
        """The price of `images` images of width × height at `steps` steps, to a microdollar."""
        steps = self.fixed_steps or steps
        megapixels = Decimal(width * height) / Decimal(self.megapixel)
        if self.round_up:
            megapixels = Decimal(math.ceil(megapixels))
        if self.basis == "per_image":
            each = self.usd
        elif self.basis == "per_megapixel":
            each = self.usd * megapixels
        elif self.basis == "per_megapixel_step":
            each = self.usd * megapixels * steps
        elif self.basis == "per_step":
            each = self.usd * steps
        elif self.basis == "per_tile_step":
            tiles = math.ceil(width / self.tile) * math.ceil(height / self.tile)
            each = self.usd * tiles + (self.usd_per_step or Decimal(0)) * steps
        else:
            each = self._from_table(megapixels) * steps / self.table_steps
        return (each * images).quantize(_MICRODOLLAR).normalize()

    def _from_table(self, megapixels: Decimal) -> Decimal:
        """Linear between the published points; the smallest point's price below it; the last
        segment's slope beyond the largest."""
        points = sorted(self.table)
        if megapixels <= points[0][0]:
            return points[0][1]
        segments = list(zip(points, points[1:], strict=False))
        (x0, y0), (x1, y1) = next(((a, b) for a, b in segments if megapixels <= b[0]), segments[-1])
        return y0 + (y1 - y0) * (megapixels - x0) / (x1 - x0)


def with_override(rule: PriceRule | None, provider: str, override: Mapping[str, object]) -> PriceRule:
    """`rule` with the owner's fields (FLUX_PLAYGROUND_PRICES[provider]) put in; any provider may be
    given a price this way, also one that has none."""
    owned: dict[str, object] = {"source": "set by the app's owner", "checked": None, "approximate": False}
    base = rule.model_dump() if rule is not None else {"basis": "per_image"}
    try:
        return PriceRule.model_validate({**base, **owned, "note": "", **override})
    except (ValidationError, InvalidOperation) as exc:
        raise ConfigurationError(
            f"FLUX_PLAYGROUND_PRICES[{provider!r}] is not a valid price: give a basis ("
            + ", ".join(_UNITS | {"per_tile_step": "", "table": ""})
            + ') and usd, e.g. {"usd": "0.004"}.'
        ) from exc


def format_usd(value: Decimal | None, *, significant: int | None = None) -> str:
    """ "$0.002" for a price, "unknown" when there is none (never "$0").

    `significant`: rounded for reading (2 → "$0.0077" for 0.007719, "$0.00065", "$1.25"), half up,
    and never below a cent's worth of digits for amounts of a dollar or more.
    """
    if value is None:
        return "unknown"
    if significant is not None and value:
        exponent = value.copy_abs().adjusted() - significant + 1
        value = value.quantize(Decimal(1).scaleb(min(exponent, -2)), rounding=ROUND_HALF_UP)
        if value.copy_abs() >= 1:
            return f"${value.quantize(Decimal('0.01'))}"
    return f"${format(value.normalize(), 'f')}"

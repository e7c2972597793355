"""What this run would cost at each provider, and whether each could take it: pure, no I/O.

Runs on every control change (a private, unqueued event), so it only reads Settings and the price
table in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from pydantic import ValidationError

from ..models import GenerationRequest
from ..pricing import PriceRule, estimate_one, format_usd, price_rules
from ..providers import PROVIDERS
from ..settings import Settings
from .runner import request_for

__all__ = ["PriceRow", "Readiness", "generate_label", "price_rows", "pricing_request"]

Readiness = Literal["server key", "your key", "demo", "no key"]


@dataclass(frozen=True)
class PriceRow:
    name: str
    label: str
    cost: Decimal | None
    basis: str
    approximate: bool
    readiness: Readiness
    #: Why this provider cannot take these settings (empty: it can).
    problems: tuple[str, ...] = ()
    nearest_size: tuple[int, int] | None = None
    #: Controls this provider does not take, e.g. "does not take steps".
    notes: tuple[str, ...] = ()
    chosen: bool = False
    cheapest: bool = False
    source: str = ""
    rule_note: str = field(default="", compare=False)

    @property
    def ready(self) -> bool:
        return self.readiness != "no key"

    @property
    def usable(self) -> bool:
        return self.ready and not self.problems

    @property
    def cost_text(self) -> str:
        if self.cost is None:
            return "unknown"
        return ("≈ " if self.approximate else "") + format_usd(self.cost)


def pricing_request(
    width: float, height: float, steps: float, num_images: float, sampler: str | None = None,
    scheduler: str | None = None,
) -> GenerationRequest | None:
    """A request for pricing only (the prompt does not change any price). None if out of range."""
    try:
        return GenerationRequest(
            prompt="price", width=int(width), height=int(height), steps=int(steps),
            num_images=int(num_images), sampler=sampler or None, scheduler=scheduler or None,
        )
    except (ValidationError, TypeError, ValueError):
        return None


def _readiness(name: str, settings: Settings, user_keys: Mapping[str, str | None]) -> Readiness:
    if (user_keys.get(name) or "").strip():
        return "your key"
    if settings.demo_mode:
        return "demo"
    return "server key" if PROVIDERS[name].server_key(settings) is not None else "no key"


def price_rows(
    settings: Settings,
    request: GenerationRequest | None,
    chosen: Sequence[str],
    user_keys: Mapping[str, str | None],
) -> list[PriceRow]:
    """One row per provider, in registry order; the cheapest usable one is marked."""
    rules: dict[str, PriceRule] = price_rules(settings)
    rows: list[PriceRow] = []
    for name, provider in PROVIDERS.items():
        rule = rules.get(name)
        caps = provider.get_capabilities(settings)
        problems: list[str] = []
        nearest = None
        notes: list[str] = []
        if not caps.steps:
            notes.append("does not take steps")
        if request is not None:
            # Judge the request as this provider would get it (no sampler where it has none).
            for problem in caps.problems(request_for(name, request, settings)):
                problems.append(problem.message)
                if problem.field in ("width", "height"):
                    nearest = caps.nearest_size(request.width, request.height)
            if nearest is not None:
                problems = [p for p in problems if not p.startswith(("width", "height"))]
                problems.insert(
                    0, f"size must be {caps.min_size}–{caps.max_size} in multiples of "
                    f"{caps.size_multiple}; nearest: {nearest[0]} × {nearest[1]}"
                )
        rows.append(
            PriceRow(
                name=name,
                label=provider.label,
                cost=estimate_one(rule, request) if request is not None else None,
                basis=rule.describe() if rule is not None else "no price known",
                approximate=rule.approximate if rule is not None else False,
                readiness=_readiness(name, settings, user_keys),
                problems=tuple(problems),
                nearest_size=nearest,
                notes=tuple(notes),
                chosen=name in chosen,
                source=rule.source if rule is not None else "",
                rule_note=rule.note if rule is not None else "",
            )
        )
    priced = [row for row in rows if row.usable and row.cost is not None]
    if priced:
        best = min(row.cost for row in priced if row.cost is not None)
        rows = [
            replace(row, cheapest=True) if row in priced and row.cost == best else row
            for row in rows
        ]
    return rows


def generate_label(rows: Sequence[PriceRow]) -> str:
    """'Generate · ≈ $0.005' for the chosen providers; every run is an estimate until it is billed."""
    chosen = [row for row in rows if row.chosen]
    if not chosen:
        return "Generate"
    known = [row.cost for row in chosen if row.cost is not None]
    if not known:
        return "Generate · price unknown"
    total = format_usd(sum(known, Decimal(0)))
    suffix = " + unknown" if len(known) < len(chosen) else ""
    return f"Generate · ≈ {total}{suffix}"

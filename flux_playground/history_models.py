"""What the history store hands out: an image, a run of images, a day's spend."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .models import GenerationRequest

__all__ = ["REQUEST_FIELDS", "HistoryItem", "HistoryRun", "RunSettings", "Spend"]

#: The settings a run is made of (the seed apart: an item's seed is the one its image was made with).
REQUEST_FIELDS = {"prompt", "width", "height", "steps", "sampler", "scheduler", "num_images"}


class RunSettings(BaseModel):
    """The settings of one Generate, as a history item or run keeps them."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    width: int
    height: int
    steps: int
    seed: int | None
    sampler: str | None
    scheduler: str | None
    num_images: int

    @property
    def request(self) -> GenerationRequest:
        """The settings to run again, seed included (a "reuse" button should not re-roll it)."""
        return GenerationRequest.model_validate(self.model_dump(include={*REQUEST_FIELDS, "seed"}))


class HistoryItem(RunSettings):
    """One saved image and the settings that made it (`seed`: the one its provider reported)."""

    id: str
    created_at: float
    provider: str
    provider_label: str
    index: int
    run_id: str
    estimated_cost_usd: Decimal | None
    reported_cost_usd: Decimal | None
    latency_s: float
    image_path: Path
    thumb_path: Path


class HistoryRun(RunSettings):
    """One Generate: its settings (`seed`: the one sent to every provider), every provider it was
    sent to, and the images still kept; `request` and `providers` run it again whole."""

    id: str
    created_at: float
    #: In the order the run showed them, failed ones included (when the caller named them, see add).
    providers: tuple[str, ...]
    #: The cards as shown: by the provider's place in `providers`, then by image index.
    items: tuple[HistoryItem, ...]


class Spend(BaseModel):
    """What a person's results cost in a period, as estimated before and as providers reported."""

    model_config = ConfigDict(frozen=True)

    estimated_usd: Decimal
    reported_usd: Decimal
    #: Provider results in the period, and how many of them had an estimate / a reported cost: most
    #: providers report none, so "$0 reported" alone would read as free.
    results: int
    estimated_results: int
    reported_results: int

    @classmethod
    def of(cls, rows: Iterable[tuple[Any, ...]]) -> Spend:
        """From (estimated, reported) cost rows stored as decimal TEXT (None: unknown)."""
        costs = [(_decimal(a), _decimal(b)) for a, b in rows]
        known_estimates = [a for a, _ in costs if a is not None]
        known_reports = [b for _, b in costs if b is not None]
        return cls(
            estimated_usd=sum(known_estimates, Decimal(0)),
            reported_usd=sum(known_reports, Decimal(0)),
            results=len(costs),
            estimated_results=len(known_estimates),
            reported_results=len(known_reports),
        )


def _decimal(text: object) -> Decimal | None:
    return None if text is None else Decimal(str(text))

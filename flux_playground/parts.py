"""More images than a provider makes in one call: as many calls as it takes, at once, one result.

Fireworks, Segmind and Cloudflare make one image per call (docs/providers/<id>.md): asked for three,
they get three calls, priced as three images (the price rules count images). Each call is its own
billable POST, sent once; none is a retry. Call i gets the run's seed plus the images before it, so
the images differ and each keeps the seed that made it.

If some calls fail and others bring images, the images are kept and the result says what is missing
(`GenerationResult.shortfall`); a failed call that may have been billed still counts in the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from .errors import PlaygroundError
from .models import MAX_SEED, GenerationRequest, GenerationResult

__all__ = ["calls_for", "combine", "part_requests"]


def calls_for(num_images: int, max_images: int) -> list[int]:
    """Images per call: `[1, 1, 1]` for 3 at a provider that makes 1; `[3]` where 4 fit in one."""
    full, rest = divmod(num_images, max(1, max_images))
    return [max_images] * full + ([rest] if rest else [])


def part_requests(request: GenerationRequest, max_images: int) -> list[GenerationRequest]:
    """One request per call, each with its own share of the images and its own seed."""
    counts = calls_for(request.num_images, max_images)
    if len(counts) == 1:
        return [request]
    parts, before = [], 0
    for count in counts:
        seed = None if request.seed is None else (request.seed + before) % (MAX_SEED + 1)
        parts.append(request.model_copy(update={"num_images": count, "seed": seed}))
        before += count
    return parts


def combine(
    request: GenerationRequest,
    outcomes: Sequence[GenerationResult | PlaygroundError],
    billed_estimates: Sequence[Decimal | None],
) -> GenerationResult:
    """The calls' images as one result for `request`; raises the first error when none brought any.

    `billed_estimates[i]`: what call i was estimated to cost, counted when it failed after the
    provider accepted it (it may have been billed).
    """
    results = [o for o in outcomes if isinstance(o, GenerationResult)]
    errors = [o for o in outcomes if isinstance(o, PlaygroundError)]
    if not results:
        first = errors[0]
        first.billed = any(e.billed for e in errors)
        raise first
    head = results[0]
    estimates = [r.estimated_cost_usd for r in results] + [
        cost for error, cost in zip(outcomes, billed_estimates, strict=True)
        if isinstance(error, PlaygroundError) and error.billed
    ]  # fmt: skip
    reported = [r.reported_cost_usd for r in results]
    known_estimates = [cost for cost in estimates if cost is not None]
    known_reports = [cost for cost in reported if cost is not None]
    shortfall = None
    if errors:
        shortfall = (
            f"{len(errors)} of {len(outcomes)} calls failed, so {sum(len(r.images) for r in results)} of "
            f"{request.num_images} images came back: {errors[0].message}"
        )
    return head.model_copy(
        update={
            "request": request,
            "images": [image for r in results for image in r.images],
            "estimated_cost_usd": sum(known_estimates, Decimal(0))
            if len(known_estimates) == len(estimates)
            else None,
            # A sum of what was reported only when every call reported (a failed one may have billed too).
            "reported_cost_usd": (
                sum(known_reports, Decimal(0)) if not errors and len(known_reports) == len(reported) else None
            ),
            "latency_s": max(r.latency_s for r in results),
            "shortfall": shortfall,
        }
    )

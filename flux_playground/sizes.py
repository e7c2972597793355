"""Sizes for providers that take an aspect ratio (or make one fixed size) instead of width × height.

A person asks for W × H; such a provider makes the listed ratio nearest to W:H at about the pixel
count it is asked for (Replicate, Fireworks: docs/providers/replicate.md#sizes,
docs/providers/fireworks.md#sizes). `nearest_ratio` picks the ratio, `size_for_ratio` predicts the
pixels, so the page can say what will come back before the run; the size actually returned is read
from the image afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["nearest_ratio", "ratio_value", "size_for_ratio"]


def ratio_value(ratio: str) -> float:
    """ "16:9" -> 1.777…"""
    width, _, height = ratio.partition(":")
    return int(width) / int(height)


def nearest_ratio(width: int, height: int, ratios: Sequence[str]) -> str:
    """The listed ratio closest to width:height, compared on a log scale (so 2:1 and 1:2 are as far
    from 1:1); on a tie, the one listed first."""
    target = math.log(width / height)
    return min(ratios, key=lambda ratio: abs(math.log(ratio_value(ratio)) - target))


def size_for_ratio(ratio: str, pixels: int, multiple: int = 16) -> tuple[int, int]:
    """About `pixels` pixels in the shape of `ratio`, each side rounded to `multiple`."""
    value = ratio_value(ratio)
    width = math.sqrt(pixels * value)
    height = width / value
    return _round_to(width, multiple), _round_to(height, multiple)


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)

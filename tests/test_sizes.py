"""Aspect-ratio providers: which ratio a requested size becomes, and about how many pixels."""

from __future__ import annotations

import pytest

from flux_playground.models import Capabilities, GenerationRequest
from flux_playground.sizes import nearest_ratio, size_for_ratio

RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
MEGAPIXEL = 1024 * 1024


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [
        (1024, 1024, "1:1"),
        (512, 512, "1:1"),
        (1344, 768, "16:9"),
        (768, 1344, "9:16"),
        (1536, 640, "21:9"),
        (1216, 832, "3:2"),
        (1152, 864, "4:3"),
        (1152, 896, "5:4"),  # 1.286: nearer 5:4 (1.25) than 4:3 (1.333)
        (1088, 896, "5:4"),
        (2048, 256, "21:9"),  # wider than any listed ratio: the widest
        (1000, 1100, "1:1"),  # log-distance: 1:1 (0.095) beats 4:5 (0.128)
    ],
)
def test_nearest_ratio(width: int, height: int, ratio: str) -> None:
    assert nearest_ratio(width, height, RATIOS) == ratio


def test_a_tie_goes_to_the_ratio_listed_first() -> None:
    assert nearest_ratio(1000, 1000, ("4:5", "5:4")) == "4:5"


@pytest.mark.parametrize(
    ("ratio", "size"),
    [("1:1", (1024, 1024)), ("16:9", (1360, 768)), ("9:16", (768, 1360)), ("21:9", (1568, 672))],
)
def test_size_for_ratio_keeps_about_the_pixels(ratio: str, size: tuple[int, int]) -> None:
    assert size_for_ratio(ratio, MEGAPIXEL) == size
    width, height = size
    assert abs(width * height - MEGAPIXEL) / MEGAPIXEL < 0.03


def test_mapped_sizes_are_never_refused() -> None:
    caps = Capabilities(
        min_size=256, max_size=1440, size_multiple=16, min_steps=1, max_steps=4, max_images=4, sizes="mapped"
    )
    assert caps.problems(GenerationRequest(prompt="a fox", width=2000, height=1000, steps=4)) == []
    exact = caps.model_copy(update={"sizes": "exact"})
    assert [p.field for p in exact.problems(GenerationRequest(prompt="a fox", width=2000, height=1008))] == [
        "width"
    ]

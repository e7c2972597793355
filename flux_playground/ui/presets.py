"""Size presets and the fixed ranges of the page's controls.

The ranges come from the request model's Field limits, so the page can never offer a value the
backend refuses for every provider; per-provider limits are shown by the price table instead.
"""

from __future__ import annotations

from math import gcd

from ..models import MAX_SEED, GenerationRequest

__all__ = [
    "CUSTOM",
    "DEFAULT_STEPS",
    "IMAGE_LIMITS",
    "MAX_SEED",
    "PRESETS",
    "SIZE_LIMITS",
    "SIZE_STEP",
    "STEP_LIMITS",
    "describe_size",
    "preset_for",
    "swapped_preset",
]

#: Sliders move in steps of 16: FLUX's latent grid wants it and every provider accepts it.
SIZE_STEP = 16
CUSTOM = "Custom"

#: Ratio -> (width, height). About one megapixel each, all multiples of 16 (SDXL/FLUX buckets).
PRESETS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "4:3": (1152, 864),
    "3:4": (864, 1152),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "21:9": (1536, 640),
}


def _limits(field: str) -> tuple[int, int]:
    """(ge, le) of a GenerationRequest field, read from its pydantic metadata."""
    low = high = None
    for rule in GenerationRequest.model_fields[field].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    assert low is not None and high is not None, field
    return int(low), int(high)


SIZE_LIMITS = _limits("width")
DEFAULT_STEPS = int(GenerationRequest.model_fields["steps"].default)
STEP_LIMITS = _limits("steps")
IMAGE_LIMITS = _limits("num_images")


def preset_for(width: int, height: int) -> str:
    """The preset name for an exact size, else "Custom"."""
    for name, size in PRESETS.items():
        if size == (width, height):
            return name
    return CUSTOM


def swapped_preset(name: str) -> str:
    """4:3 -> 3:4; 1:1 and Custom stay as they are."""
    if name not in PRESETS or name == "1:1":
        return name
    left, right = name.split(":")
    flipped = f"{right}:{left}"
    return flipped if flipped in PRESETS else CUSTOM


def describe_size(width: int, height: int) -> str:
    """'1216 × 832 · 1.01 MP · 3:2' — the ratio is reduced, or given as a decimal when awkward."""
    divisor = gcd(width, height) or 1
    rw, rh = width // divisor, height // divisor
    ratio = f"{rw}:{rh}" if max(rw, rh) <= 32 else f"{width / height:.2f}:1"
    preset = preset_for(width, height)
    if preset != CUSTOM:
        ratio = preset  # 1216×832 is "3:2" by convention, though it is exactly 19:13
    return f"{width} × {height} · {width * height / 1_000_000:.2f} MP · {ratio}"

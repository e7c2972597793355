"""Raw values from the page's events, made safe to use: every page event takes its values as the
browser (or anyone imitating it) sent them, so a field may hold any JSON at all.

These only coerce what has one sensible reading and drop the rest; anything that must be refused
with words (a prompt, a size for a run) goes through models.parse_request instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["number", "text", "texts"]


def text(value: object, *, limit: int = 4000) -> str:
    """A string, or "" for anything else; lone surrogates (not text, and SQLite and HTTP refuse
    them) become U+FFFD; at most `limit` characters."""
    if not isinstance(value, str):
        return ""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def texts(value: object, *, limit: int = 64) -> list[str]:
    """A list of strings from a list (other items dropped); a lone string counts as a list of one."""
    items: Iterable[object] = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [text(item, limit=limit) for item in items if isinstance(item, str)]


def number(value: object, default: int) -> int:
    """A finite number as an int, else `default` (for display only: prices, labels, size readouts)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return int(value)

"""Handler answers in output order: every handler fills a dict by name; `ordered` lines it up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gradio as gr

__all__ = ["ordered"]


def ordered(names: Sequence[str], values: Mapping[str, Any]) -> tuple[Any, ...]:
    """Values in output order; an output not given is left as it is on the page."""
    return tuple(values[name] if name in values else gr.skip() for name in names)

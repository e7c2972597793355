"""Prompt directives: per-request fault, latency and variant selection.

A prompt may carry ``[fault:NAME]``, ``[fault:NAME@STAGE]``, ``[latency:SECONDS]``
and ``[variant:NAME,NAME...]``. They exist so that an end-to-end test (or a person
clicking in the UI) can steer one request without the control API. They are
stripped before the prompt is drawn into the placeholder image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_LATENCY",
    "DirectiveError",
    "Directives",
    "VariantGroups",
    "parse_directives",
    "resolve_variants",
]

# Same bound as the ``hang`` fault: nothing in the emulator waits longer than this.
MAX_LATENCY = 600.0

_DIRECTIVE = re.compile(r"\[\s*(fault|latency|variant)\s*:\s*([^\]]*)\]", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


class DirectiveError(ValueError):
    """A directive that cannot be parsed; the emulator answers 400 so typos are loud."""


@dataclass(frozen=True)
class Directives:
    prompt: str  # the prompt with every directive removed
    faults: tuple[tuple[str, str | None], ...] = ()  # (fault name, stage or None)
    latency: float | None = None
    variants: tuple[str, ...] = ()


def parse_directives(prompt: str) -> Directives:
    faults: list[tuple[str, str | None]] = []
    variants: list[str] = []
    latency: float | None = None
    for match in _DIRECTIVE.finditer(prompt):
        kind, value = match.group(1).lower(), match.group(2).strip()
        if kind == "fault":
            name, _, stage = value.partition("@")
            faults.append((name.strip(), stage.strip().lower() or None))
        elif kind == "latency":
            try:
                latency = float(value)
            except ValueError as exc:
                raise DirectiveError(f"[latency:{value}] is not a number of seconds") from exc
            if not 0.0 <= latency <= MAX_LATENCY:
                raise DirectiveError(f"[latency:{value}] must be between 0 and {MAX_LATENCY:g}")
        else:
            variants.extend(v.strip().lower() for v in value.split(",") if v.strip())
    clean = _SPACES.sub(" ", _DIRECTIVE.sub(" ", prompt)).strip()
    return Directives(clean, tuple(faults), latency, tuple(variants))


VariantGroups = dict[str, tuple[str, ...]]  # group -> allowed values, first = default


def resolve_variants(groups: VariantGroups, names: tuple[str, ...]) -> dict[str, str]:
    """Turn ``("flat", "base64")`` into ``{"envelope": "flat", "outputs": "base64", ...}``.

    Later names win within a group, so a directive can override a configured default.
    """
    chosen = {group: values[0] for group, values in groups.items()}
    for name in names:
        for group, values in groups.items():
            if name in values:
                chosen[group] = name
                break
        else:
            valid = sorted(v for values in groups.values() for v in values)
            raise DirectiveError(f"unknown variant {name!r}; valid: {', '.join(valid) or 'none'}")
    return chosen

"""README.md's provider table says what the registry declares: the variables each provider reads
and its default origin. A provider registered without its row (or a renamed variable) fails here."""

from __future__ import annotations

import re
from pathlib import Path

from flux_playground.providers import PROVIDERS, variables

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- provider-variables"


def provider_rows() -> dict[str, str]:
    lines = README.read_text(encoding="utf-8").split(MARKER, 1)[1].splitlines()[1:]
    table = [line for line in lines[: next(n for n, line in enumerate(lines) if not line.startswith("|"))]]
    rows = {}
    for line in table[2:]:
        name = re.match(r"\| `([a-z0-9_-]+)` \|", line)
        assert name, f"not a provider row: {line}"
        rows[name.group(1)] = line
    return rows


def test_every_registered_provider_has_a_row_and_nothing_else_does() -> None:
    assert sorted(provider_rows()) == sorted(PROVIDERS)


def test_each_row_names_the_variables_and_origin_the_provider_reads() -> None:
    rows = provider_rows()
    for name, declared in variables().items():
        row = rows[name]
        named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", row))
        assert named == set(declared.all()), (name, named ^ set(declared.all()))
        assert f"`{PROVIDERS[name].default_base_url}`" in row

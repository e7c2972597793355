"""quote(): every provider's price for a request, whether it can take it, and whether it is ready."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ui.conftest import emulator_settings

from flux_playground.emulator.server import EmulatorServer
from flux_playground.errors import ConfigurationError
from flux_playground.models import GenerationRequest
from flux_playground.quotes import Quote, quote
from flux_playground.settings import Settings
from flux_playground.ui.controls import generate_label, pricing_request
from flux_playground.ui.picker import picker_rows


@pytest.fixture
def settings(emulator: EmulatorServer, tmp_path: Path) -> Settings:
    return emulator_settings(emulator, tmp_path / "data")


def by_name(quotes: list[Quote]) -> dict[str, Quote]:
    return {q.provider: q for q in quotes}


def test_the_cheapest_usable_provider_is_marked(settings: Settings) -> None:
    quotes = by_name(quote(pricing_request(1024, 1024, 4, 1), settings))
    cheapest = [name for name, q in quotes.items() if q.cheapest]
    assert len(cheapest) == 1
    best = quotes[cheapest[0]]
    assert all(
        q.cost is None or best.cost is not None and best.cost <= q.cost for q in quotes.values() if q.usable
    )
    assert quotes["deepinfra"].cost_text == "$0.002"
    assert quotes["segmind"].cost_text == "≈ $0.008"  # approximate: converted from GPU time
    assert {q.readiness for q in quotes.values()} == {"server key"}
    rows = picker_rows(list(quotes.values()))
    assert rows[0]["id"] == cheapest[0] and rows[0]["badge"] and "cheapest" in rows[0]["classes"]
    assert {r["id"]: r["basis"] for r in rows}["deepinfra"] == "$0.0005 per megapixel-step"
    assert generate_label(list(quotes.values()), ["deepinfra", "segmind"]) == "Generate · ≈ $0.01"


def test_a_provider_that_cannot_take_the_size_says_why_and_is_never_cheapest(settings: Settings) -> None:
    atlas = by_name(quote(pricing_request(2048, 1024, 4, 1), settings))["atlascloud"]
    assert atlas.nearest_size == (1536, 1024)
    assert atlas.problems[0] == "size must be 256–1536 in multiples of 16; nearest: 1536 × 1024"
    assert not atlas.cheapest and "does not take steps" in atlas.notes
    segmind = by_name(quote(pricing_request(256, 256, 12, 1), settings))["segmind"]
    assert segmind.problems == (
        "size must be 512–2048 in multiples of 8; nearest: 512 × 512",
        "steps must be 1–8",
    )


def test_readiness_and_unknown_prices(emulator: EmulatorServer, tmp_path: Path) -> None:
    settings = emulator_settings(emulator, tmp_path).with_provider("deepinfra", api_key=None)
    quotes = by_name(quote(pricing_request(1024, 1024, 4, 1), settings, own_keys={"segmind"}))
    assert quotes["deepinfra"].readiness == "not configured"
    assert quotes["deepinfra"].missing == ("DEEPINFRA_API_KEY or DEEPINFRA_TOKEN",)
    assert quotes["segmind"].readiness == "your key"
    assert not quotes["deepinfra"].cheapest  # cheaper, but the server cannot run it
    demo = quote(None, settings.model_copy(update={"demo": True}))
    assert {q.readiness for q in demo} == {"demo"}
    unknown = Quote("x", "X", None, None, "server key")
    assert unknown.cost_text == "unknown" and generate_label([unknown], ["x"]) == "Generate · price unknown"
    (row,) = picker_rows([unknown])
    assert row["cost"] == "unknown" and row["basis"] == "no price known"
    priced = Quote("y", "Y", Decimal("0.003"), None, "server key")
    assert generate_label([unknown, priced], ["x", "y"]) == "Generate · ≈ $0.003 + unknown"


def test_a_sampler_goes_only_to_providers_that_take_one(settings: Settings) -> None:
    from flux_playground.providers import PROVIDERS

    request = GenerationRequest(prompt="x", sampler="euler", scheduler="karras")
    assert PROVIDERS["segmind"].shape(request, settings) == request
    stripped = PROVIDERS["deepinfra"].shape(request, settings)
    assert (stripped.sampler, stripped.scheduler) == (None, None)
    # So a quote (and a run) with a sampler is not refused by providers that have none.
    assert all(not q.problems for q in quote(request, settings))


def test_an_unknown_provider_in_the_owners_prices_is_refused(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, prices={"nosuch": {"usd": "0.01"}})
    with pytest.raises(ConfigurationError, match="FLUX_PLAYGROUND_PRICES names unknown provider 'nosuch'"):
        quote(None, settings)


def test_quotes_cover_every_registered_provider(settings: Settings) -> None:
    from flux_playground.providers import PROVIDERS

    assert [q.provider for q in quote(None, settings)] == list(PROVIDERS)
    assert all(isinstance(q, Quote) for q in quote(pricing_request(512, 512, 4, 1), settings))


def test_the_price_of_what_a_provider_makes(settings: Any) -> None:
    """A quote prices the size and steps the provider will produce, not only what was asked."""
    quotes = by_name(quote(pricing_request(1024, 768, 2, 3), settings))
    assert quotes["deepinfra"].output_size == (1024, 768)
    assert quotes["deepinfra"].cost == Decimal("0.0005") * Decimal("0.75") * 2 * 3

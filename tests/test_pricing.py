"""Prices as data: exact Decimal arithmetic per basis, owner overrides, bad overrides refused."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from flux_playground.errors import ConfigurationError
from flux_playground.models import GenerationRequest
from flux_playground.pricing import PRICES, PriceRule, estimate, estimate_one, format_usd, price_rules
from flux_playground.settings import Settings

DEFAULT = Settings(_env_file=None)


def request(**fields: object) -> GenerationRequest:
    return GenerationRequest(prompt="a red fox", **fields)  # type: ignore[arg-type]


class TestBuiltInTable:
    def test_deepinfra_1024_square_4_steps_is_exactly_two_tenths_of_a_cent(self) -> None:
        cost = estimate(request(width=1024, height=1024, steps=4), DEFAULT)["deepinfra"]
        assert cost == Decimal("0.002")
        assert str(cost) == "0.002"

    def test_estimate_covers_every_provider(self) -> None:
        assert estimate(request(), DEFAULT) == {
            "atlascloud": Decimal("0.003"),
            "deepinfra": Decimal("0.002"),
            "segmind": Decimal("0.008"),
        }

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"steps": 1}, "0.0005"),
            ({"steps": 8}, "0.004"),
            ({"width": 512, "height": 512, "steps": 4}, "0.0005"),
            ({"width": 2048, "height": 1024, "steps": 4}, "0.004"),
            ({"num_images": 4}, "0.008"),
            ({"width": 512, "height": 1024, "steps": 2, "num_images": 3}, "0.0015"),
            ({"width": 768, "height": 768, "steps": 4}, "0.001125"),
        ],
    )
    def test_deepinfra_scales_with_size_steps_and_images(self, fields: dict[str, int], expected: str) -> None:
        assert estimate_one(PRICES["deepinfra"], request(**fields)) == Decimal(expected)

    def test_rounding_to_a_microdollar(self) -> None:
        # 0.0005 × (256/1024)² × 1 = 0.00003125 → $0.000031
        assert estimate_one(PRICES["deepinfra"], request(width=256, height=256, steps=1)) == Decimal(
            "0.000031"
        )

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({}, "0.003"),
            ({"num_images": 2}, "0.006"),
            ({"num_images": 4, "width": 512, "steps": 50}, "0.012"),
        ],
    )
    def test_atlas_is_per_image(self, fields: dict[str, int], expected: str) -> None:
        assert estimate_one(PRICES["atlascloud"], request(**fields)) == Decimal(expected)

    def test_segmind_is_approximate_and_scales(self) -> None:
        rule = PRICES["segmind"]
        assert rule.approximate is True
        assert rule.describe() == "≈ $0.002 per megapixel-step"
        assert estimate_one(rule, request()) == Decimal("0.008")
        assert estimate_one(rule, request(steps=8)) == Decimal("0.016")

    def test_every_row_has_a_source_and_date(self) -> None:
        for rule in PRICES.values():
            assert rule.source.startswith("https://")
            assert isinstance(rule.checked, date)
            assert rule.usd > 0

    def test_describe(self) -> None:
        assert PRICES["atlascloud"].describe() == "$0.003 per image"
        assert PRICES["deepinfra"].describe() == "$0.0005 per megapixel-step"


class TestOverrides:
    def test_owner_override_replaces_the_row(self) -> None:
        settings = Settings(_env_file=None, prices={"segmind": {"basis": "per_image", "usd": "0.01"}})
        rule = price_rules(settings)["segmind"]
        assert rule == PriceRule(
            basis="per_image",
            usd=Decimal("0.01"),
            approximate=False,
            source="set by the app's owner",
            checked=None,
            note="",
        )
        assert estimate(request(num_images=2, steps=8), settings)["segmind"] == Decimal("0.02")
        assert PRICES["segmind"].basis == "per_megapixel_step"  # the built-in table is untouched

    def test_partial_override_keeps_the_basis(self) -> None:
        settings = Settings(_env_file=None, prices={"deepinfra": {"usd": "0.001"}})
        assert estimate(request(), settings)["deepinfra"] == Decimal("0.004")
        assert estimate(request(), settings)["atlascloud"] == Decimal("0.003")

    def test_override_from_environment_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FLUX_PLAYGROUND_PRICES", '{"atlascloud": {"usd": "0.0027"}}')
        assert estimate(request(), Settings(_env_file=None))["atlascloud"] == Decimal("0.0027")

    @pytest.mark.parametrize(
        "override",
        [
            {"usd": "cheap"},
            {"usd": "NaN"},
            {"usd": "Infinity"},
            {"basis": "per_second", "usd": "0.01"},
            {"usd": "0.01", "currency": "EUR"},
        ],
    )
    def test_bad_override(self, override: dict[str, str]) -> None:
        with pytest.raises(ConfigurationError) as info:
            price_rules(Settings(_env_file=None, prices={"segmind": override}))
        assert "FLUX_PLAYGROUND_PRICES['segmind']" in str(info.value)
        assert "per_image or per_megapixel_step" in str(info.value)

    def test_negative_override_is_refused(self) -> None:
        with pytest.raises(ConfigurationError):
            price_rules(Settings(_env_file=None, prices={"segmind": {"usd": "-0.01"}}))

    def test_unknown_provider_in_overrides(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            estimate(request(), Settings(_env_file=None, prices={"replicate": {"usd": "0.003"}}))
        assert str(info.value) == (
            "FLUX_PLAYGROUND_PRICES names unknown provider 'replicate'; "
            "use one of atlascloud, deepinfra, segmind."
        )


class TestFormat:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (None, "unknown"),
            (Decimal("0.002"), "$0.002"),
            (Decimal("0.002000"), "$0.002"),
            (Decimal("10"), "$10"),
            (Decimal("0.000031"), "$0.000031"),
        ],
    )
    def test_format_usd(self, value: Decimal | None, text: str) -> None:
        assert format_usd(value) == text

    def test_unknown_price_is_none_not_zero(self) -> None:
        assert estimate_one(None, request()) is None
        assert format_usd(estimate_one(None, request())) == "unknown"

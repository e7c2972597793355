"""Prices as data: exact Decimal arithmetic per basis, every declared rule, owner overrides."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from flux_playground.errors import ConfigurationError
from flux_playground.models import GenerationRequest
from flux_playground.pricing import PriceRule, format_usd
from flux_playground.providers import PROVIDERS
from flux_playground.settings import Settings

DEFAULT = Settings(_env_file=None)


def request(**fields: object) -> GenerationRequest:
    return GenerationRequest(prompt="a red fox", **fields)  # type: ignore[arg-type]


def cost(rule: PriceRule, width: int = 1024, height: int = 1024, steps: int = 4, images: int = 1) -> Decimal:
    return rule.cost(width=width, height=height, steps=steps, images=images)


class TestBases:
    def test_per_image(self) -> None:
        rule = PriceRule(basis="per_image", usd=Decimal("0.003"))
        assert cost(rule) == Decimal("0.003") and cost(rule, 512, 2048, 50, 4) == Decimal("0.012")
        assert rule.describe() == "$0.003 per image"

    @pytest.mark.parametrize(
        ("size", "steps", "images", "expected"),
        [
            ((1024, 1024), 1, 1, "0.0005"),
            ((1024, 1024), 8, 1, "0.004"),
            ((512, 512), 4, 1, "0.0005"),
            ((2048, 1024), 4, 1, "0.004"),
            ((1024, 1024), 4, 4, "0.008"),
            ((512, 1024), 2, 3, "0.0015"),
            ((768, 768), 4, 1, "0.001125"),
            ((256, 256), 1, 1, "0.000031"),  # 0.00003125, to a microdollar
        ],
    )
    def test_per_megapixel_step(self, size: tuple[int, int], steps: int, images: int, expected: str) -> None:
        rule = PriceRule(basis="per_megapixel_step", usd=Decimal("0.0005"))
        assert cost(rule, *size, steps, images) == Decimal(expected)
        assert rule.describe() == "$0.0005 per megapixel-step"

    def test_per_megapixel_with_its_unit_and_rounding(self) -> None:
        mebi = PriceRule(basis="per_megapixel", usd=Decimal("0.003"), round_up=True)
        assert cost(mebi) == Decimal("0.003")  # 1024² is exactly one (2^20-pixel) megapixel
        assert cost(mebi, 1024, 1032) == Decimal("0.006")  # a little more rounds up to two
        assert cost(mebi, 512, 512) == Decimal("0.003")  # a small image still costs one
        decimal_mp = PriceRule(basis="per_megapixel", usd=Decimal("0.003"), megapixel=1_000_000)
        assert cost(decimal_mp) == Decimal("0.003146")  # 1.048576 MP
        assert decimal_mp.describe() == "$0.003 per megapixel (1,000,000 px)"

    def test_per_step(self) -> None:
        rule = PriceRule(basis="per_step", usd=Decimal("0.00035"))
        assert cost(rule) == Decimal("0.0014") and cost(rule, 512, 512, 1) == Decimal("0.00035")

    def test_per_tile_step(self) -> None:
        rule = PriceRule(basis="per_tile_step", usd=Decimal("0.000053"), usd_per_step=Decimal("0.00011"))
        assert cost(rule) == Decimal("0.000652")  # 4 tiles + 4 steps
        assert cost(rule, 1000, 600) == Decimal("0.000652")  # tiles are counted per side, rounded up
        assert rule.describe() == "$0.000053 per 512² tile + $0.00011 per step"
        with pytest.raises(ValueError, match="usd_per_step"):
            PriceRule(basis="per_tile_step", usd=Decimal("0.000053"))

    def test_table(self) -> None:
        rule = PriceRule(
            basis="table", table=((Decimal("0.25"), Decimal("0.0006")), (Decimal("1"), Decimal("0.0013")))
        )
        assert cost(rule, 512, 512) == Decimal("0.0006")  # a published point
        assert cost(rule) == Decimal("0.0013")  # a published point
        assert cost(rule, 256, 256) == Decimal("0.0006")  # below the table: its smallest price
        assert Decimal("0.0006") < cost(rule, 768, 768) < Decimal("0.0013")  # between: linear
        assert cost(rule, 1024, 1024, 8) == Decimal("0.0026")  # scaled by steps
        assert cost(rule, 2048, 1024) > Decimal("0.0013")  # beyond: the last slope goes on

    def test_fixed_steps(self) -> None:
        rule = PriceRule(basis="per_megapixel_step", usd=Decimal("0.0005"), fixed_steps=4, approximate=True)
        assert cost(rule, steps=1) == cost(rule, steps=8) == Decimal("0.002")
        assert rule.describe() == "≈ $0.0005 per megapixel-step, at 4 steps"


class TestDeclaredPrices:
    def test_every_provider_declares_a_sourced_dated_price(self) -> None:
        for name, provider in PROVIDERS.items():
            rule = provider.price
            assert rule is not None, name
            assert rule.source.startswith("https://") and isinstance(rule.checked, date), name

    def test_the_reference_request(self) -> None:
        """1024², 4 steps, 1 image: the figures docs/providers/README.md gives."""
        figures = {name: p.estimate(request(), DEFAULT) for name, p in PROVIDERS.items()}
        assert figures["atlascloud"] == Decimal("0.003")
        assert figures["deepinfra"] == Decimal("0.002")
        assert figures["segmind"] == Decimal("0.008")

    def test_deepinfras_openai_endpoint_is_priced_at_its_own_steps(self) -> None:
        """It takes no steps (docs/providers/deepinfra.md#price): asking for 1 or 8 costs the same."""
        openai = DEFAULT.with_provider("deepinfra", options={"endpoint": "openai"})
        deepinfra = PROVIDERS["deepinfra"]
        assert deepinfra.estimate(request(steps=1), openai) == deepinfra.estimate(request(steps=8), openai)
        assert deepinfra.price_rule(openai).approximate  # type: ignore[union-attr]
        assert deepinfra.estimate(request(steps=1), DEFAULT) == Decimal("0.0005")  # native: steps count


class TestOverrides:
    def test_owner_override_replaces_the_rule(self) -> None:
        settings = Settings(_env_file=None, prices={"segmind": {"basis": "per_image", "usd": "0.01"}})
        rule = PROVIDERS["segmind"].price_rule(settings)
        assert rule is not None and rule.basis == "per_image" and rule.usd == Decimal("0.01")
        assert (rule.approximate, rule.source, rule.checked, rule.note) == (
            False,
            "set by the app's owner",
            None,
            "",
        )
        assert PROVIDERS["segmind"].estimate(request(num_images=2, steps=8), settings) == Decimal("0.02")
        assert (
            PROVIDERS["segmind"].price is not None
            and PROVIDERS["segmind"].price.basis == "per_megapixel_step"
        )

    def test_partial_override_keeps_the_basis(self) -> None:
        settings = Settings(_env_file=None, prices={"deepinfra": {"usd": "0.001"}})
        assert PROVIDERS["deepinfra"].estimate(request(), settings) == Decimal("0.004")
        assert PROVIDERS["atlascloud"].estimate(request(), settings) == Decimal("0.003")

    def test_override_from_environment_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FLUX_PLAYGROUND_PRICES", '{"atlascloud": {"usd": "0.0027"}}')
        assert PROVIDERS["atlascloud"].estimate(request(), Settings(_env_file=None)) == Decimal("0.0027")

    @pytest.mark.parametrize(
        "override",
        [
            {"usd": "cheap"},
            {"usd": "NaN"},
            {"usd": "Infinity"},
            {"usd": "-0.01"},
            {"basis": "per_second", "usd": "0.01"},
            {"usd": "0.01", "currency": "EUR"},
        ],
    )
    def test_bad_override(self, override: dict[str, str]) -> None:
        with pytest.raises(ConfigurationError) as info:
            PROVIDERS["segmind"].price_rule(Settings(_env_file=None, prices={"segmind": override}))
        assert "FLUX_PLAYGROUND_PRICES['segmind']" in str(info.value)
        assert "per_image" in str(info.value) and "per_megapixel_step" in str(info.value)


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

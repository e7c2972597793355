"""More images than a provider makes per call: several calls at once, one result (parts.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ui.conftest import make_result

from flux_playground import GenerationRequest, Playground, Settings
from flux_playground.demo import point_at
from flux_playground.errors import InsufficientCredits, ProviderFailed
from flux_playground.models import MAX_SEED
from flux_playground.parts import calls_for, combine, part_requests
from flux_playground.providers import PROVIDERS
from flux_playground.quotes import quote_one

ONE_PER_CALL = [
    name for name, p in PROVIDERS.items() if p.get_capabilities(Settings(_env_file=None)).max_images == 1
]


def test_calls_for_splits_by_what_one_call_makes() -> None:
    assert calls_for(3, 1) == [1, 1, 1]
    assert calls_for(3, 4) == [3]
    assert calls_for(4, 3) == [3, 1]
    assert calls_for(4, 2) == [2, 2]


def test_each_call_gets_its_share_and_the_seeds_follow_on() -> None:
    request = GenerationRequest(prompt="p", num_images=3, seed=MAX_SEED - 1)
    parts = part_requests(request, 1)
    assert [(p.num_images, p.seed) for p in parts] == [(1, MAX_SEED - 1), (1, MAX_SEED), (1, 0)]
    assert part_requests(request, 4) == [request]


def test_combine_keeps_what_came_and_says_what_is_missing() -> None:
    request = GenerationRequest(prompt="p", num_images=3, seed=7)
    ok = make_result("segmind", num_images=1, seed=7)
    refused = InsufficientCredits("Segmind", "out of credits. Top up.")
    lost = ProviderFailed("Segmind", "the job failed. Try again.")
    lost.billed = True
    result = combine(request, [ok, refused, lost], [Decimal("0.008")] * 3)
    assert result.images == ok.images and result.request == request
    # The one that failed after acceptance may have been billed: it counts; the refused one does not.
    assert result.estimated_cost_usd == Decimal("0.016")
    assert result.reported_cost_usd is None
    assert result.shortfall == (
        "2 of 3 calls failed, so 1 of 3 images came back: Segmind: out of credits. Top up."
    )


def test_combine_raises_when_no_call_brought_an_image() -> None:
    request = GenerationRequest(prompt="p", num_images=2, seed=7)
    first, second = InsufficientCredits("X", "no credits"), ProviderFailed("X", "failed")
    second.billed = True
    with pytest.raises(InsufficientCredits) as caught:
        combine(request, [first, second], [Decimal("0.01")] * 2)
    assert caught.value.billed is True  # one of them may have cost money


@pytest.mark.parametrize("provider", ONE_PER_CALL)
def test_a_one_image_provider_is_usable_and_priced_for_every_image(provider: str) -> None:
    settings = Settings(_env_file=None)
    one, three = (
        quote_one(PROVIDERS[provider], GenerationRequest(prompt="p", num_images=n), settings) for n in (1, 3)
    )
    assert three.problems == () and "3 calls of 1 image" in three.notes
    assert one.cost is not None and three.cost == one.cost * 3


@pytest.fixture
def server(emulator: Any) -> Any:
    emulator.reset()
    emulator.clear_faults()
    yield emulator
    emulator.clear_faults()


def _settings(server: Any, tmp_path: Path) -> Settings:
    fields: dict[str, Any] = {"data_dir": tmp_path, "request_timeout": 5, "job_timeout": 5}
    return point_at(Settings(_env_file=None, **fields), server.base_urls, "sk-parts")


def _posts(server: Any, provider: str) -> int:
    return int(server.stats()["requests"].get(provider, {}).get("submit", 0))


@pytest.mark.parametrize("provider", ONE_PER_CALL)
async def test_three_images_are_three_calls_over_http(server: Any, tmp_path: Path, provider: str) -> None:
    request = GenerationRequest(prompt="a red fox", width=512, height=512, seed=42, num_images=3)
    async with Playground(_settings(server, tmp_path)) as playground:
        result = await playground.generate(request, provider)
    assert _posts(server, provider) == 3
    assert len(result.images) == 3 and result.shortfall is None
    honours_seed = PROVIDERS[provider].get_capabilities(playground.settings).seed
    assert [i.seed for i in result.images] == ([42, 43, 44] if honours_seed else [None] * 3)
    assert len({i.png for i in result.images}) == 3  # three different images
    assert result.estimated_cost_usd == 3 * PROVIDERS[provider].estimate(
        request.model_copy(update={"num_images": 1}), playground.settings
    )  # type: ignore[operator]


async def test_one_failed_call_of_three_keeps_the_other_images(server: Any, tmp_path: Path) -> None:
    server.inject("segmind", "credits", count=1)
    request = GenerationRequest(prompt="a red fox", width=512, height=512, seed=42, num_images=3)
    async with Playground(_settings(server, tmp_path)) as playground:
        result = await playground.generate(request, "segmind")
    assert _posts(server, "segmind") == 3  # never a retry
    assert len(result.images) == 2
    assert result.shortfall is not None and result.shortfall.startswith("1 of 3 calls failed, so 2 of 3")

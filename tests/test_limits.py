"""Spend caps, rate limits, size limits and duplicate clicks (flux_playground/limits.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest

from flux_playground.errors import InvalidRequest, LimitExceeded
from flux_playground.limits import Guard
from flux_playground.models import GenerationRequest
from flux_playground.settings import Settings

REQUEST = GenerationRequest(prompt="a red fox")
NOON = 1_763_726_400.0  # 2025-11-21 12:00:00 UTC


class MakeGuard(Protocol):
    def __call__(self, now: list[float] | None = None, **limits: Any) -> Guard: ...


@pytest.fixture
def make_guard(tmp_path: Path, ledger_backend: dict[str, Any]) -> Iterator[MakeGuard]:
    """Guards on one ledger, for each back end (SQLite, PostgreSQL): every test runs on both."""
    guards: list[Guard] = []

    def make(now: list[float] | None = None, **limits: Any) -> Guard:
        clock = now if now is not None else [NOON]
        settings = Settings(_env_file=None, data_dir=tmp_path, **ledger_backend, **limits)
        guards.append(Guard(settings, clock=lambda: clock[0]))
        return guards[-1]

    yield make
    for guard in guards:
        guard.close()


async def run(
    guard: Guard,
    person: str,
    charges: dict[str, Decimal | None],
    *,
    billed: bool = True,
    cost: Decimal | None = None,
    request: GenerationRequest = REQUEST,
) -> None:
    async with guard.admit(person, request, list(charges), charges) as admission:
        for name, estimate in charges.items():
            admission.settle(name, cost=cost if cost is not None else estimate, billed=billed)


class TestSpendCaps:
    async def test_global_cap_refuses_before_any_call_and_says_which_cap_and_when(
        self, make_guard: MakeGuard
    ) -> None:
        guard = make_guard(daily_budget_usd=Decimal("0.010"))
        await run(guard, "anon:a", {"segmind": Decimal("0.008")})
        with pytest.raises(LimitExceeded) as info:
            await run(guard, "anon:b", {"atlascloud": Decimal("0.003")})
        message = str(info.value)
        assert "This app's daily budget ($0.01)" in message
        assert "$0.008 is spent today" in message and "resets at 00:00 UTC (in 12 h 0 min)" in message
        assert guard.spent_today() == Decimal("0.008")

    async def test_caps_survive_a_restart(self, make_guard: MakeGuard) -> None:
        await run(
            make_guard(daily_budget_usd=Decimal("0.005")),
            "anon:a",
            {"atlascloud": Decimal("0.003")},
        )
        restarted = make_guard(daily_budget_usd=Decimal("0.005"))
        assert restarted.spent_today() == Decimal("0.003")
        with pytest.raises(LimitExceeded):
            await run(restarted, "anon:a", {"atlascloud": Decimal("0.003")})

    async def test_per_person_cap_only_stops_that_person(self, make_guard: MakeGuard) -> None:
        guard = make_guard(per_user_daily_budget_usd=Decimal("0.004"))
        await run(guard, "anon:a", {"atlascloud": Decimal("0.003")})
        with pytest.raises(LimitExceeded, match="Your daily budget on this app"):
            await run(
                guard,
                "anon:a",
                {"atlascloud": Decimal("0.003")},
                request=REQUEST.model_copy(update={"seed": 1}),
            )
        await run(guard, "anon:b", {"atlascloud": Decimal("0.003")})
        assert guard.spent_today("anon:a") == Decimal("0.003")
        assert guard.spent_today() == Decimal("0.006")

    async def test_a_new_day_resets_the_cap(self, make_guard: MakeGuard) -> None:
        now = [NOON]
        guard = make_guard(now, daily_budget_usd=Decimal("0.003"))
        await run(guard, "anon:a", {"atlascloud": Decimal("0.003")})
        now[0] += 12 * 3600 + 1
        await run(guard, "anon:a", {"atlascloud": Decimal("0.003")})

    async def test_concurrent_runs_cannot_pass_the_cap_together(self, make_guard: MakeGuard) -> None:
        guard = make_guard(daily_budget_usd=Decimal("0.030"))
        requests = [REQUEST.model_copy(update={"seed": i}) for i in range(25)]
        outcomes = await asyncio.gather(
            *(
                run(guard, f"anon:{i}", {"atlascloud": Decimal("0.003")}, request=r)
                for i, r in enumerate(requests)
            ),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 10
        assert all(isinstance(o, LimitExceeded) for o in outcomes if o is not None)
        assert guard.spent_today() == Decimal("0.030")

    async def test_unbilled_failures_cost_nothing_and_reported_costs_replace_estimates(
        self, make_guard: MakeGuard
    ) -> None:
        guard = make_guard(daily_budget_usd=Decimal("1"))
        await run(guard, "anon:a", {"segmind": Decimal("0.008")}, billed=False)
        assert guard.spent_today() == 0
        await run(guard, "anon:a", {"deepinfra": Decimal("0.002")}, cost=Decimal("0.0015"))
        assert guard.spent_today() == Decimal("0.0015")

    async def test_a_run_that_never_settles_keeps_its_estimate(self, make_guard: MakeGuard) -> None:
        guard = make_guard(daily_budget_usd=Decimal("1"))
        async with guard.admit("anon:a", REQUEST, ["segmind"], {"segmind": Decimal("0.008")}):
            pass  # cancelled or crashed before an outcome: it may have been billed
        assert guard.spent_today() == Decimal("0.008")

    async def test_unknown_price_cannot_be_checked_against_a_cap(self, make_guard: MakeGuard) -> None:
        guard = make_guard(daily_budget_usd=Decimal("1"))
        with pytest.raises(LimitExceeded, match="price of segmind is unknown"):
            await run(guard, "anon:a", {"segmind": None})

    async def test_no_charges_means_nothing_reserved(self, make_guard: MakeGuard) -> None:
        guard = make_guard(daily_budget_usd=Decimal("0"))
        await run(guard, "anon:a", {})  # the person's own keys: not the owner's money
        assert guard.spent_today() == 0


class TestRateAndDuplicates:
    async def test_rate_limit_per_person_with_a_wait_time(self, make_guard: MakeGuard) -> None:
        now = [NOON]
        guard = make_guard(now, per_user_requests_per_minute=2)
        for seed in (1, 2):
            await run(guard, "anon:a", {}, request=REQUEST.model_copy(update={"seed": seed}))
        with pytest.raises(LimitExceeded, match=r"at most 2 per minute per person. Try again in 60 s"):
            await run(guard, "anon:a", {}, request=REQUEST.model_copy(update={"seed": 3}))
        await run(guard, "anon:b", {})
        now[0] += 61
        await run(guard, "anon:a", {}, request=REQUEST.model_copy(update={"seed": 4}))

    async def test_a_double_click_does_not_start_a_second_paid_run(self, make_guard: MakeGuard) -> None:
        guard = make_guard()
        started = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with guard.admit("anon:a", REQUEST, ["segmind"], {"segmind": Decimal("0.008")}):
                started.set()
                await release.wait()

        task = asyncio.create_task(first())
        await started.wait()
        with pytest.raises(LimitExceeded, match="already running"):
            await run(guard, "anon:a", {"segmind": Decimal("0.008")})
        await run(guard, "anon:b", {"segmind": Decimal("0.008")})  # someone else: fine
        release.set()
        await task
        await run(guard, "anon:a", {"segmind": Decimal("0.008")})  # finished: may run again


class TestSizeLimits:
    @pytest.mark.parametrize(
        ("limits", "request_fields", "field"),
        [
            ({"max_images_per_request": 2}, {"num_images": 3}, "num_images"),
            ({"max_pixels": 1024 * 1024}, {"width": 1280, "height": 1024}, "width"),
        ],
    )
    async def test_too_big_is_refused(
        self, make_guard: MakeGuard, limits: dict[str, int], request_fields: dict[str, int], field: str
    ) -> None:
        guard = make_guard(**limits)
        with pytest.raises(InvalidRequest) as info:
            await run(guard, "anon:a", {}, request=REQUEST.model_copy(update=request_fields))
        assert info.value.field == field
        assert "This app allows at most" in str(info.value)

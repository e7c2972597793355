"""The automatic route (route.py, runs.run): which provider it chooses, and how it falls back over the
emulator's faults: only after a refusal that billed nothing, at most twice, one billable POST per
provider tried, and the spend guard reserving and settling exactly what was tried."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ui.conftest import emulator_settings

from flux_playground.demo import point_at
from flux_playground.emulator.server import EmulatorServer
from flux_playground.errors import InvalidRequest, LimitExceeded, RouteFailed
from flux_playground.evidence import RunRow
from flux_playground.limits import Guard
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS
from flux_playground.quotes import quote
from flux_playground.route import choose
from flux_playground.route_models import AutoRoute, RouteAttempt
from flux_playground.runs import check_providers, summarize
from flux_playground.service import Playground
from flux_playground.settings import Settings
from flux_playground.stats import compute

NOW = 1_800_000_000.0
REQUEST = GenerationRequest(prompt="a red fox", width=1024, height=1024)
CHEAPEST_AT_1024 = ["cloudflare", "runware", "fireworks", "deepinfra", "together", "atlascloud", "replicate",
                    "fal", "segmind"]  # fmt: skip


def ready(tmp_path: Path, **overrides: Any) -> Settings:
    """Every provider configured (nothing is called: these tests only choose)."""
    urls = {name: f"http://127.0.0.1:9/{name}" for name in PROVIDERS}
    return point_at(Settings(_env_file=None, data_dir=tmp_path, **overrides), urls, "k")


def plan(route: AutoRoute, request: GenerationRequest, settings: Settings, **kw: Any) -> Any:
    return choose(route, request, quote(request, settings), kw.pop("figures", None), **kw)


# --- the choice -------------------------------------------------------------------------------------


def test_tokens_and_their_words() -> None:
    assert AutoRoute.parse("auto") == AutoRoute(prefer="cheapest")
    assert AutoRoute.parse("auto:fastest:0.004") == AutoRoute(prefer="fastest", max_cost_usd=Decimal("0.004"))
    assert AutoRoute(prefer="cheapest", max_cost_usd=Decimal("0.0040")).token == "auto:cheapest:0.004"
    assert check_providers(["auto:fastest", "segmind"]) == ["auto:fastest", "segmind"]
    for token, words in [
        ("auto:quickest", '\'auto:quickest\' is not an automatic route; write "auto", "auto:fastest"'),
        (
            "auto:cheapest:-1",
            "The price ceiling must be a number of US dollars above 0, e.g. 0.004 (got '-1').",
        ),
        (
            "auto:cheapest:lots",
            "The price ceiling must be a number of US dollars above 0, e.g. 0.004 (got 'lots').",
        ),
    ]:
        with pytest.raises(InvalidRequest) as info:
            check_providers([token])
        assert info.value.message.startswith(words)
    with pytest.raises(InvalidRequest) as info:  # hostile length: refused unread, quoted 40 characters long
        check_providers(["auto:cheapest:0." + "1" * 100_000])
    assert info.value.message == (
        f'{"auto:cheapest:0." + "1" * 24!r} is not an automatic route; write "auto", "auto:fastest" or '
        '"auto:cheapest:0.004" (a price ceiling in USD).'
    )
    with pytest.raises(InvalidRequest, match="Ask for one automatic route per run"):
        check_providers(["auto", "auto:fastest"])


def test_cheapest_first_with_the_reason(tmp_path: Path) -> None:
    chosen = plan(AutoRoute(), REQUEST, ready(tmp_path))
    assert chosen.report.candidates == CHEAPEST_AT_1024
    assert chosen.candidates == ("cloudflare", "runware", "fireworks")  # the first and two more
    assert chosen.report.chosen_because == (
        "Cloudflare Workers AI is the cheapest ready provider that can honour this request "
        "(≈ $0.00065 a run)."
    )


def test_only_providers_that_honour_the_request(tmp_path: Path) -> None:
    """A seed asked for: not Cloudflare (no seed). Steps other than 4: not Atlas (no steps). A size a
    provider would change: not it. Named in the same run: not again. A ceiling: nothing above it."""
    seeded = REQUEST.model_copy(update={"seed": 7, "steps": 2})
    chosen = plan(AutoRoute(), seeded, ready(tmp_path), exclude=["fireworks"])
    assert chosen.report.candidates == ["runware", "deepinfra", "together", "replicate", "fal", "segmind"]
    # 1200 × 800: Cloudflare, Fireworks and Replicate would make another size, Runware cannot take it.
    wide = REQUEST.model_copy(update={"width": 1200, "height": 800})
    assert plan(AutoRoute(), wide, ready(tmp_path)).report.candidates == [
        "deepinfra", "together", "atlascloud", "fal", "segmind",
    ]  # fmt: skip
    capped = plan(AutoRoute(max_cost_usd=Decimal("0.0014")), REQUEST, ready(tmp_path))
    assert capped.report.candidates == ["cloudflare", "runware", "fireworks"]


def test_nothing_usable_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as info:
        plan(AutoRoute(max_cost_usd=Decimal("0.0001")), REQUEST, ready(tmp_path))
    assert info.value.message == (
        "Auto (cheapest, ≤ $0.0001) found no provider that can honour this request: Atlas Cloud costs "
        "$0.003, over $0.0001; Cloudflare Workers AI costs ≈ $0.00065, over $0.0001; DeepInfra costs "
        "$0.002, over $0.0001; fal.ai costs $0.003, over $0.0001; and 5 more. Raise the price ceiling, or "
        "name a provider."
    )
    with pytest.raises(InvalidRequest) as info:
        plan(AutoRoute(), REQUEST, Settings(_env_file=None, data_dir=tmp_path, demo=False))
    assert info.value.message.endswith(
        "Set up a provider (python -m flux_playground providers says how), or paste your own key."
    )


def test_fastest_by_recent_runs_then_by_price(tmp_path: Path) -> None:
    rows = [RunRow("together", "medium", False, True, latency_s=0.8, at=NOW) for _ in range(5)]
    rows += [RunRow("segmind", "medium", False, True, latency_s=0.5, at=NOW) for _ in range(6)]
    rows += [RunRow("fal", "medium", False, True, latency_s=0.1, at=NOW) for _ in range(4)]  # too few
    rows += [RunRow("runware", "small", False, True, latency_s=0.1, at=NOW) for _ in range(9)]  # other size
    figures = compute(rows, demo=False, now=NOW)
    chosen = plan(AutoRoute(prefer="fastest"), REQUEST, ready(tmp_path), figures=figures)
    assert chosen.report.candidates == ["segmind", "together", *[n for n in CHEAPEST_AT_1024 if n not in
                                                                  ("segmind", "together")]]  # fmt: skip
    assert chosen.report.chosen_because == (
        "Segmind is the fastest by this app's recent runs at ≤ 1.1 MP: p50 0.5 s over 6 runs."
    )
    unknown = plan(
        AutoRoute(prefer="fastest"), REQUEST, ready(tmp_path), figures=compute([], demo=False, now=NOW)
    )
    assert unknown.candidates[0] == "cloudflare" and unknown.report.chosen_because == (
        "No provider has 5 recent runs at ≤ 1.1 MP yet to compare speed, so the cheapest: "
        "Cloudflare Workers AI (≈ $0.00065 a run)."
    )


# --- the fallback, over the emulator -----------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator_for_routes() -> Iterator[EmulatorServer]:
    with EmulatorServer(latency=0.02) as server:  # its own: the faults queued here stay here
        yield server


@pytest.fixture
def server(emulator_for_routes: EmulatorServer) -> EmulatorServer:
    emulator_for_routes.reset()
    return emulator_for_routes


def posts(server: EmulatorServer) -> dict[str, int]:
    """Billable POSTs per provider (only those that received any)."""
    counts = {name: int(c.get("submit", 0)) for name, c in server.stats()["requests"].items()}
    return {name: count for name, count in counts.items() if count}


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("401", "AuthenticationFailed"), ("credits", "InsufficientCredits"), ("429", "RateLimited"),
     ("500", "ProviderFailed")],
)  # fmt: skip
async def test_a_refusal_before_acceptance_goes_to_the_next(
    server: EmulatorServer, tmp_path: Path, fault: str, kind: str
) -> None:
    server.inject("cloudflare", fault)
    async with Playground(emulator_settings(server, tmp_path)) as playground:
        result = await playground.generate(REQUEST, "auto")
    assert result.provider == "runware" and len(result.images) == 1
    assert posts(server) == {"cloudflare": 1, "runware": 1}  # one billable POST per provider tried
    route = result.route
    assert route is not None and route.served_by == "runware"
    first, second = route.tried
    assert (first.provider, first.outcome, first.billed, first.failure) == (
        "cloudflare",
        "failed",
        False,
        kind,
    )
    assert (
        first.reason == "refused before accepting the job: nothing billed, so the next provider may be tried"
    )
    assert second == RouteAttempt(
        provider="runware", label="Runware", outcome="served", estimated_cost_usd=Decimal("0.0013"),
        billed=True, reason="The next in line after a refusal.",
    )  # fmt: skip


@pytest.mark.parametrize(("provider", "fault"), [("atlascloud", "failed_job"), ("cloudflare", "not_image")])
async def test_a_failure_after_acceptance_is_never_tried_elsewhere(
    server: EmulatorServer, tmp_path: Path, provider: str, fault: str
) -> None:
    """Atlas accepted the job and it failed; Cloudflare answered 200 with no image: either may have
    billed, so the same request is not sent (and billed) anywhere else."""
    cheap = {provider: {"basis": "per_image", "usd": "0.0001"}}  # the first choice
    server.inject(provider, fault)
    async with Playground(emulator_settings(server, tmp_path, prices=cheap)) as playground:
        with pytest.raises(RouteFailed) as info:
            await playground.generate(REQUEST, "auto")
    assert posts(server) == {provider: 1}
    assert info.value.billed and info.value.message.endswith(
        "The job was accepted, so it may have been billed: no other provider was tried."
    )
    assert info.value.message.startswith(f"Auto (cheapest): no image. {PROVIDERS[provider].label}: ")


async def test_at_most_three_providers_are_tried(server: EmulatorServer, tmp_path: Path) -> None:
    for name in ("cloudflare", "runware", "fireworks"):
        server.inject(name, "429")
    settings = emulator_settings(server, tmp_path)
    async with Playground(settings) as playground:
        last = None
        async for last in playground.run(REQUEST, ["auto"], tick=None):  # noqa: B007
            pass
    assert last is not None
    assert posts(server) == {"cloudflare": 1, "runware": 1, "fireworks": 1}
    entry = summarize(last, {})["providers"]["auto"]
    assert entry["ok"] is False and entry["provider"] is None
    assert [(t["provider"], t["failure"]) for t in entry["route"]["tried"]] == [
        ("cloudflare", "RateLimited"), ("runware", "RateLimited"), ("fireworks", "RateLimited"),
    ]  # fmt: skip
    assert entry["error"].endswith("3 providers refused it; try again in a little while, or name a provider.")


async def test_auto_beside_named_providers(server: EmulatorServer, tmp_path: Path) -> None:
    async with Playground(emulator_settings(server, tmp_path)) as playground:
        outcomes = {o.provider: o async for o in playground.generate_many(REQUEST, ["cloudflare", "auto"])}
    auto = outcomes["auto"]
    assert auto.result is not None and auto.result.provider == "runware"  # cloudflare is named already
    assert auto.route is not None and auto.route.served_by == "runware"
    assert posts(server) == {"cloudflare": 1, "runware": 1}


# --- the spend guard -------------------------------------------------------------------------------------


async def test_the_guard_charges_only_what_was_served(
    server: EmulatorServer, tmp_path: Path, ledger_backend: dict[str, Any]
) -> None:
    settings = emulator_settings(server, tmp_path, daily_budget_usd=Decimal("1"), **ledger_backend)
    guard = Guard(settings)
    server.inject("cloudflare", "429")
    async with Playground(settings, guard=guard) as playground:
        result = await playground.generate(REQUEST, "auto", person="ip:1.2.3.4")
    assert result.provider == "runware"
    assert guard.spent_today() == Decimal("0.0013")  # Cloudflare's reservation settled at 0, once


async def test_a_fallback_that_would_pass_a_cap_is_not_tried(
    server: EmulatorServer, tmp_path: Path, ledger_backend: dict[str, Any]
) -> None:
    """$0.001 a day fits Cloudflare ($0.00065) but not Runware ($0.0013): after Cloudflare's refusal
    the route stops, in the cap's own words, and nothing is spent (on either spend ledger)."""
    settings = emulator_settings(server, tmp_path, daily_budget_usd=Decimal("0.001"), **ledger_backend)
    guard = Guard(settings)
    server.inject("cloudflare", "429")
    async with Playground(settings, guard=guard) as playground:
        with pytest.raises(RouteFailed) as info:
            await playground.generate(REQUEST, "auto", person="ip:1.2.3.4")
    assert posts(server) == {"cloudflare": 1}
    stopped = "Runware was next, but the spend limits stop it there: This app's daily budget ($0.001) would"
    assert stopped + " be passed" in info.value.message
    assert guard.spent_today() == Decimal(0)


async def test_a_route_counts_once_against_the_request_rate(server: EmulatorServer, tmp_path: Path) -> None:
    settings = emulator_settings(server, tmp_path, per_user_requests_per_minute=1)
    server.inject("cloudflare", "500")
    async with Playground(settings) as playground:
        result = await playground.generate(REQUEST, "auto", person="ip:5.6.7.8")  # two providers tried
        assert result.provider == "runware"
        with pytest.raises(LimitExceeded, match="at most 1 per minute"):
            await playground.generate(REQUEST, "auto", person="ip:5.6.7.8")

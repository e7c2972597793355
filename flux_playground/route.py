"""The automatic route: "the cheapest (or fastest) ready provider that works" instead of a name.

    plan = await plan_route(playground, request, AutoRoute(prefer="fastest"), exclude=(), own_keys=())
    plan.candidates        # up to three providers, best first; runs.run tries them in turn
    plan.report            # what was asked and why the first came first (runs.run adds each attempt)

A candidate is a ready provider that can honour the request as asked (quotes.py: usable, and it makes
the size asked, takes the seed if one was given and the steps if they are not the default) at no more
than the price ceiling. "cheapest" orders them by the quote's cost; "fastest" by the p50 latency of
this app's recent runs at that size class (stats.py), providers without enough runs after those with,
by price. runs.run sends the request to the first; if it fails *before accepting the job* (nothing
billed: a refused key, no credit, 429, a 5xx on the submit, a refused connection) it goes on to the
next, at most twice. A failure after acceptance may have been billed: it ends the route.

"fastest" ranks by the p50 of successful runs only (a provider that often fails is still ranked by how
fast it answers when it does; the fallback covers its refusals), and a provider with fewer than
MIN_RUNS recent runs ranks after every measured one: runs people name, and "cheapest", fill its figures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from .errors import InvalidRequest, PlaygroundError, RouteFailed
from .models import GenerationRequest, GenerationResult
from .pricing import format_usd
from .quotes import Quote
from .route_models import AUTO, AutoRoute, RouteAttempt, RouteReport
from .stats import MIN_RUNS, SIZE_CLASSES, Stats, size_class

if TYPE_CHECKING:
    from .service import Playground

__all__ = [
    "CHOICES", "MAX_TRIED", "Plan", "attempt_failed", "attempt_not_tried", "choose", "follow", "plan_route",
    "preview", "route_failure",
]  # fmt: skip

#: The first choice and at most two more.
MAX_TRIED = 3
_DEFAULT_STEPS = GenerationRequest.model_fields["steps"].default
_REASONS_SHOWN = 4


@dataclass(frozen=True)
class Plan:
    route: AutoRoute
    #: The providers to try, best first (at most MAX_TRIED).
    candidates: tuple[str, ...]
    labels: dict[str, str]
    #: Each candidate's estimate for the request (None: unknown).
    costs: dict[str, Decimal | None]
    report: RouteReport


#: The automatic choices a page offers beside the providers.
CHOICES = (AutoRoute(prefer="cheapest"), AutoRoute(prefer="fastest"))


def preview(
    request: GenerationRequest,
    quotes: Sequence[Quote],
    figures: Stats | None,
    *,
    exclude: Collection[str] = (),
) -> list[Quote]:
    """Each of CHOICES as a quote a picker can show beside the providers': its token as `provider`,
    the provider it would pick now (label, price, what it honours), or, when none qualifies, why."""
    previews = []
    for route in CHOICES:
        token = route.token if route.prefer != "cheapest" else AUTO
        try:
            plan = choose(route, request, quotes, figures, exclude=exclude)
        except InvalidRequest as exc:
            blocked = replace(quotes[0], problems=(exc.message,), cheapest=False, notes=())
            previews.append(replace(blocked, provider=token, label=route.label))
            continue
        first = next(q for q in quotes if q.provider == plan.candidates[0])
        label = f"{route.label}: now {first.label}"
        previews.append(replace(first, provider=token, label=label, cheapest=False))
    return previews


async def plan_route(
    playground: Playground,
    request: GenerationRequest,
    route: AutoRoute,
    *,
    exclude: Collection[str],
    own_keys: Collection[str],
) -> Plan:
    """The plan for `request`, or InvalidRequest saying why no provider qualifies and what to do."""
    quotes = playground.quote(request, own_keys=own_keys)
    figures = await playground.stats() if route.prefer == "fastest" else None
    return choose(route, request, quotes, figures, exclude=exclude)


def choose(
    route: AutoRoute,
    request: GenerationRequest,
    quotes: Sequence[Quote],
    figures: Stats | None,
    *,
    exclude: Collection[str] = (),
) -> Plan:
    """Pure: the candidates among `quotes`, best first, and the sentence saying why the first leads."""
    eligible: list[Quote] = []
    refused: list[tuple[Quote, str]] = []
    for q in quotes:
        if q.provider in exclude:
            continue  # named in the same run: it runs anyway
        reason = _why_not(q, route, request)
        if reason is None:
            eligible.append(q)
        else:
            refused.append((q, reason))
    if not eligible:
        raise InvalidRequest(_nothing_usable(route, refused), field="providers")

    def p50(q: Quote) -> float | None:
        found = figures.get(q.provider, size_class(*q.output_size)) if figures is not None else None
        return found.p50_s if found is not None and found.enough else None

    def by_price(q: Quote) -> tuple[bool, Decimal, str]:
        return q.cost is None, q.cost or Decimal(0), q.label

    if route.prefer == "fastest":
        eligible.sort(key=lambda q: (p50(q) is None, p50(q) or 0.0, *by_price(q)))
    else:
        eligible.sort(key=by_price)
    first = eligible[0]
    report = RouteReport(
        prefer=route.prefer,
        max_cost_usd=route.max_cost_usd,
        candidates=[q.provider for q in eligible],
        chosen_because=_because(route, first, p50(first), figures),
    )
    chosen = eligible[:MAX_TRIED]
    return Plan(
        route,
        tuple(q.provider for q in chosen),
        {q.provider: q.label for q in chosen},
        {q.provider: q.cost for q in chosen},
        report,
    )


def _why_not(q: Quote, route: AutoRoute, request: GenerationRequest) -> str | None:
    if not q.ready:
        return "is not set up on this server"
    if q.problems:
        return f"cannot take these settings ({q.problems[0]})"
    if q.resized:
        return f"makes {q.output_size[0]} × {q.output_size[1]}, not the size asked"
    if request.seed is not None and not q.seed:
        return "does not take a seed"
    if request.steps != _DEFAULT_STEPS and not q.steps:
        return "does not take steps"
    ceiling = route.max_cost_usd
    if ceiling is not None and q.cost is None:
        return "has no known price"
    if ceiling is not None and q.cost is not None and q.cost > ceiling:
        return f"costs {q.cost_text}, over {format_usd(ceiling)}"
    return None


def _because(route: AutoRoute, first: Quote, p50: float | None, figures: Stats | None) -> str:
    price = f"{first.cost_text} a run" if first.cost is not None else "price unknown"
    if route.prefer == "cheapest":
        return f"{first.label} is the cheapest ready provider that can honour this request ({price})."
    size = SIZE_CLASSES[size_class(*first.output_size)][1]
    if p50 is not None and figures is not None:
        found = figures.get(first.provider, size_class(*first.output_size))
        runs = found.runs if found is not None else 0
        return (
            f"{first.label} is the fastest by this app's recent runs at {size}: "
            f"p50 {p50:.1f} s over {runs} runs."
        )
    return (
        f"No provider has {MIN_RUNS} recent runs at {size} yet to compare speed, so the cheapest: "
        f"{first.label} ({price})."
    )


def _nothing_usable(route: AutoRoute, refused: Sequence[tuple[Quote, str]]) -> str:
    shown = "; ".join(f"{q.label} {reason}" for q, reason in refused[:_REASONS_SHOWN])
    more = len(refused) - _REASONS_SHOWN
    shown += f"; and {more} more" if more > 0 else ""
    if route.max_cost_usd is not None and any(" over " in r or "no known price" in r for _, r in refused):
        advice = "Raise the price ceiling, or name a provider."
    elif refused and all("not set up" in reason for _, reason in refused):
        advice = "Set up a provider (python -m flux_playground providers says how), or paste your own key."
    else:
        advice = "Change the settings, or name a provider."
    found = f": {shown}" if shown else ""
    return f"{route.label} found no provider that can honour this request{found}. {advice}"


# --- following the plan ---------------------------------------------------------------------------


class Answer(Protocol):
    """What one provider's attempt came to (runs.Outcome)."""

    @property
    def result(self) -> GenerationResult | None: ...
    @property
    def error(self) -> PlaygroundError | None: ...


async def follow(
    plan: Plan,
    attempt: Callable[[str, str], Awaitable[Answer]],
    reserve: Callable[[str], Awaitable[str | None]],
    announce: Callable[[str], None],
) -> tuple[GenerationResult | None, PlaygroundError | None, RouteReport]:
    """Try the plan's providers in turn: the next only after a failure that billed nothing.

    `attempt(name, label)` calls one provider (settled and recorded by runs.run); `reserve(name)`
    reserves the next one's spend, answering why it may not be tried (a cap) or None; `announce`
    says in the slot which provider is tried now. Returns the result (with the report on it) or the
    failure in words, and the report."""
    report, errors = plan.report, []
    for index, name in enumerate(plan.candidates):
        label, cost = plan.labels[name], plan.costs[name]
        if index:
            why = await reserve(name)
            if why is not None:
                report = report.with_attempt(attempt_not_tried(name, label, cost, why))
                break
            announce(f"{label}, after {plan.labels[plan.candidates[index - 1]]} refused")
        answer = await attempt(name, label)
        if answer.result is not None:
            reason = plan.report.chosen_because if not index else "The next in line after a refusal."
            report = report.with_attempt(
                RouteAttempt(
                    provider=name,
                    label=label,
                    outcome="served",
                    estimated_cost_usd=cost,
                    billed=True,
                    reason=reason,
                )  # fmt: skip
            )
            return answer.result.model_copy(update={"route": report}), None, report
        error = answer.error or PlaygroundError("The provider gave neither an image nor an error.")
        errors.append(error)
        report = report.with_attempt(attempt_failed(name, label, error, cost))
        if error.billed:
            break  # it may have billed: never run (and bill) the same request elsewhere
    failure = RouteFailed(route_failure(plan.route, report, errors))
    failure.billed = any(error.billed for error in errors)
    return None, failure, report


# --- what happened, in words ------------------------------------------------------------------------


def attempt_failed(provider: str, label: str, error: PlaygroundError, cost: Decimal | None) -> RouteAttempt:
    if error.billed:
        reason = "failed after accepting the job: it may have billed, so no other provider is tried"
    else:
        reason = "refused before accepting the job: nothing billed, so the next provider may be tried"
    return RouteAttempt(
        provider=provider, label=label, outcome="failed", estimated_cost_usd=cost, billed=error.billed,
        failure=type(error).__name__, error=error.message, reason=reason,
    )  # fmt: skip


def attempt_not_tried(provider: str, label: str, cost: Decimal | None, why: str) -> RouteAttempt:
    return RouteAttempt(
        provider=provider, label=label, outcome="not tried", estimated_cost_usd=cost, reason=why
    )


def route_failure(route: AutoRoute, report: RouteReport, errors: Sequence[PlaygroundError]) -> str:
    """The sentence a person reads when the route produced no image: each provider's own words, then
    why the route stopped there."""
    said = " ".join(error.message for error in errors)
    stopped = next((a for a in report.tried if a.outcome == "not tried"), None)
    if errors and errors[-1].billed:
        tail = "The job was accepted, so it may have been billed: no other provider was tried."
    elif stopped is not None:
        tail = f"{stopped.label} was next, but {stopped.reason}"
    elif len(errors) >= MAX_TRIED:
        tail = f"{len(errors)} providers refused it; try again in a little while, or name a provider."
    else:
        tail = "No other ready provider can honour it; try again in a little while, or name a provider."
    return f"{route.label}: no image. {said} {tail}"

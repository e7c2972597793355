"""The live contract check: does each configured provider still speak the API its client was written
for? For owners with real keys (no machine of ours reaches the providers); `python -m flux_playground
check --live` (cli.py) prints the cost first, asks, then runs this.

    planned = plan(settings, ["atlascloud"], runs=1)        # what will run, and what it costs (quotes)
    report = await check(settings, planned, same_seed=False)
    report.ok, report.providers[0].shape.drift              # "answer field `data.outputs` missing …"

One image per provider, the smallest it takes at its fewest steps, through the normal path
(`Playground.generate`: the spend guard, shaping, validation, the same parsing). Only a tap is added
(`CallContext.tap`): it records each successful answer as received, and the provider's declared
`answer_contract` (providers/_contract.py) says which fields its client reads, so a drift is named
("answer field `data.outputs` missing (renamed?); new field `data.results`"), not guessed from an
error message. Nothing here holds a key; `redact` blanks them from what is printed or written anyway.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from PIL import Image
from pydantic import BaseModel, Field, computed_field

from . import __version__
from .errors import MalformedResponse, PlaygroundError, ProviderTimeout
from .models import GenerationRequest, GenerationResult
from .providers import PROVIDERS, AnswerLog, Provider
from .quotes import Quote, quote
from .service import Playground
from .settings import Settings

__all__ = [
    "CHECK_PERSON", "PROMPT", "SEED", "CheckReport", "Plan", "Planned", "ProviderReport", "check", "plan",
    "redact", "server_secrets", "smallest_request",
]  # fmt: skip

#: Something every provider draws without a safety filter's second thought.
PROMPT = "A lighthouse on a rocky coast at dusk, oil painting"
#: One fixed seed, so a second run (--same-seed) can be compared with the first.
SEED = 424242
#: Who the spend guard counts the check against (the CLI's own person).
CHECK_PERSON = "cli"
#: Keys shorter than this are not blanked from the text (it would mangle ordinary words).
_SHORTEST_KEY = 8


@dataclass(frozen=True)
class Planned:
    """One provider's run: the request it gets and what it costs (None: price unknown)."""

    provider: str
    label: str
    request: GenerationRequest
    quote: Quote


@dataclass(frozen=True)
class Plan:
    runs: tuple[Planned, ...]
    #: Providers left out because they are not configured: provider -> the variables to set.
    skipped: dict[str, tuple[str, ...]]
    #: Runs per provider (2 with --same-seed).
    attempts: int
    demo: bool

    @property
    def total(self) -> Decimal:
        """The known estimates, all runs (unknown prices are left out: see `unpriced`)."""
        known = [run.quote.cost for run in self.runs if run.quote.cost is not None]
        return sum(known, Decimal(0)) * self.attempts

    @property
    def unpriced(self) -> list[str]:
        return [run.provider for run in self.runs if run.quote.cost is None]


def smallest_request(provider: Provider, settings: Settings) -> GenerationRequest:
    """The smallest size this provider accepts (and the request model allows), its fewest steps,
    one image, the fixed seed."""
    caps = provider.get_capabilities(settings)
    lowest = int(next(m.ge for m in GenerationRequest.model_fields["width"].metadata if hasattr(m, "ge")))
    side = caps.nearest_dimension(max(caps.min_size, lowest))
    return GenerationRequest(prompt=PROMPT, width=side, height=side, steps=caps.min_steps, seed=SEED)


def plan(settings: Settings, providers: Sequence[str] | None = None, *, attempts: int = 1) -> Plan:
    """What the check will run, priced by `quotes.quote`; unconfigured providers are skipped."""
    runs: list[Planned] = []
    skipped: dict[str, tuple[str, ...]] = {}
    for name in dict.fromkeys(providers or PROVIDERS):  # a provider named twice runs once
        provider = PROVIDERS[name]
        request = smallest_request(provider, settings)
        priced = next(q for q in quote(request, settings) if q.provider == name)
        if not priced.ready:
            skipped[name] = priced.missing
            continue
        runs.append(Planned(name, provider.label, request, priced))
    return Plan(tuple(runs), skipped, attempts, settings.demo_mode)


# --- the report ------------------------------------------------------------------------------------


class ShapeCheck(BaseModel):
    """The answers against the provider's declared contract."""

    #: False: nothing to compare (no answer came, the run failed for another reason, or no contract).
    checked: bool
    drift: list[str] = Field(default_factory=list)
    #: Fields the client neither reads nor knows: worth a look, not a failure.
    new_fields: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool | None:
        return not self.drift if self.checked else None


class SeedCheck(BaseModel):
    sent: int
    #: Whether the provider takes a seed at all (Capabilities.seed).
    offered: bool
    #: The seed the provider says it used, where it says one (else the one sent, where it takes one).
    used: int | None = None
    #: With --same-seed: whether the second run's image has the same pixels (None: not compared).
    same_image: bool | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool | None:
        if not self.offered:
            return None
        if self.used is not None and self.used != self.sent:
            return False
        return self.same_image


class ProviderReport(BaseModel):
    provider: str
    label: str
    request: dict[str, int]
    reached: bool
    error: str | None = None
    shape: ShapeCheck
    expected_size: tuple[int, int]
    size: tuple[int, int] | None = None
    seed: SeedCheck
    estimated_cost_usd: float | None = None
    reported_cost_usd: float | None = None
    latency_s: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def size_ok(self) -> bool | None:
        return None if self.size is None else self.size == self.expected_size

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        checks = (self.shape.ok, self.size_ok, self.seed.ok)
        return self.reached and all(check is not False for check in checks)


class CheckReport(BaseModel):
    checked_at: str
    version: str
    demo: bool
    same_seed: bool
    ok: bool
    providers: list[ProviderReport]
    #: Not configured: provider -> the variables to set.
    skipped: dict[str, list[str]]


# --- running it ------------------------------------------------------------------------------------


async def check(settings: Settings, planned: Plan, *, same_seed: bool = False) -> CheckReport:
    """Run every planned provider at once through the normal path, then (with `same_seed`) once more
    with the same seed, and compare what came back with what each provider's client expects."""
    first, second = AnswerLog(), AnswerLog()
    logs = [first]
    async with Playground(settings, answer_tap=lambda answer: logs[-1].record(answer)) as playground:
        runs = await asyncio.gather(*(_attempt(playground, run) for run in planned.runs))
        again: list[tuple[GenerationResult | None, PlaygroundError | None]] = []
        if same_seed:
            logs.append(second)
            again = await asyncio.gather(*(_attempt(playground, run) for run in planned.runs))
    reports = []
    for index, run in enumerate(planned.runs):
        result, error = runs[index]
        repeat = again[index][0] if again else None
        reports.append(await _report(settings, run, result, error, first, repeat, same_seed=same_seed))
    return CheckReport(
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        version=__version__,
        demo=planned.demo,
        same_seed=same_seed,
        ok=all(report.ok for report in reports),
        providers=reports,
        skipped={name: list(missing) for name, missing in planned.skipped.items()},
    )


async def _attempt(
    playground: Playground, run: Planned
) -> tuple[GenerationResult | None, PlaygroundError | None]:
    try:
        return await playground.generate(run.request, run.provider, person=CHECK_PERSON), None
    except PlaygroundError as exc:
        return None, exc


async def _report(
    settings: Settings,
    run: Planned,
    result: GenerationResult | None,
    error: PlaygroundError | None,
    answers: AnswerLog,
    repeat: GenerationResult | None,
    *,
    same_seed: bool,
) -> ProviderReport:
    provider = PROVIDERS[run.provider]
    request = run.request
    seed = SeedCheck(sent=SEED, offered=provider.get_capabilities(settings).seed)
    report = ProviderReport(
        provider=run.provider,
        label=run.label,
        request={"width": request.width, "height": request.height, "steps": request.steps, "seed": SEED},
        reached=result is not None,
        error=None if error is None else error.message,
        shape=_shape(provider, settings, answers, drift_possible=result is not None or _drift_symptom(error)),
        expected_size=run.quote.output_size,
        seed=seed,
        estimated_cost_usd=_usd(run.quote.cost),
    )
    if result is None or not result.images:
        return report
    image = result.images[0]
    if seed.offered:
        seed.used = image.seed
        if same_seed and repeat is not None and repeat.images:
            seed.same_image = await asyncio.to_thread(_same_pixels, image.png, repeat.images[0].png)
    report.size = (image.width, image.height)
    report.estimated_cost_usd = _usd(result.estimated_cost_usd)
    report.reported_cost_usd = _usd(result.reported_cost_usd)
    report.latency_s = round(result.latency_s, 3)
    return report


def _drift_symptom(error: PlaygroundError | None) -> bool:
    """A failure a drifted answer causes: unreadable (a renamed field), or a job that never ends (a
    status the client does not know). Refusals (a key, credits, a rate limit) say nothing of shape."""
    return isinstance(error, MalformedResponse | ProviderTimeout)


def _shape(provider: Provider, settings: Settings, answers: AnswerLog, *, drift_possible: bool) -> ShapeCheck:
    contract = provider.answer_contract(settings)
    seen = answers.of(provider.name)
    if contract is None or not seen or not drift_possible:
        return ShapeCheck(checked=False)
    findings = contract.compare(seen)
    return ShapeCheck(checked=True, drift=findings.drift, new_fields=findings.new_fields)


def _same_pixels(first: bytes, second: bytes) -> bool:
    """The same picture: the same size and pixels (the PNGs differ in their metadata: latency…)."""
    with Image.open(io.BytesIO(first)) as one, Image.open(io.BytesIO(second)) as two:
        return one.size == two.size and one.convert("RGBA").tobytes() == two.convert("RGBA").tobytes()


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every key blanked: belt and braces, as nothing here holds one."""
    for secret in secrets:
        if len(secret) >= _SHORTEST_KEY:
            text = text.replace(secret, "[redacted]")
    return text


def server_secrets(settings: Settings) -> list[str]:
    """The server's keys, to blank from what the check prints or writes."""
    keys = (PROVIDERS[name].server_key(settings) for name in PROVIDERS)
    return [key.get_secret_value().strip() for key in keys if key is not None]

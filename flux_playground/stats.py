"""Provider statistics from this app's own runs: how fast and how reliably each provider answered.

    report = stats(settings)                   # or: await playground.stats()
    figures = report.get("runware", size_class(1024, 1024))
    figures.p50_s, figures.success_rate, figures.last_failure, figures.runs
    figures.summary                            # "p50 2.1 s · 98 % ok · 53 runs"
    summaries(report, request, settings)       # {"runware": "p50 2.1 s · 98 % ok · 53 runs", ...}

Per provider and size class (what the provider makes: ≤ 0.3 MP, ≤ 1.1 MP, larger), over the rows
evidence.py keeps: the last 7 days, at most the last 200 runs. Latency is the result's `latency_s`,
from the call to the saved image. Demo-mode runs have their own figures (`stats` reads the ones of
the mode the settings are in). Below `MIN_RUNS` runs a provider has "not enough runs yet": no
percentiles are claimed from two or three runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .errors import (
    AuthenticationFailed,
    ConfigurationError,
    InsufficientCredits,
    InvalidRequest,
    PlaygroundError,
)
from .evidence import MAX_RUNS, WINDOW_S, Evidence, RunRow
from .models import GenerationRequest, GenerationResult
from .providers import PROVIDERS, Provider
from .settings import Settings

__all__ = [
    "MIN_RUNS", "SIZE_CLASSES", "LastFailure", "ProviderStats", "SizeClass", "Stats", "compute",
    "job_times", "outcome_row", "percent", "percentile", "size_class", "size_class_for", "smooth", "stats",
    "summaries",
]  # fmt: skip

SizeClass = Literal["small", "medium", "large"]
#: Each class: the most pixels an image of it has (None: no limit), and how it is shown.
SIZE_CLASSES: dict[SizeClass, tuple[int | None, str]] = {
    "small": (300_000, "≤ 0.3 MP"),  # 512 × 512 and the like
    "medium": (1_100_000, "≤ 1.1 MP"),  # 1024 × 1024 and the like
    "large": (None, "> 1.1 MP"),
}
#: Fewer runs than this: "not enough runs yet", and no percentiles.
MIN_RUNS = 5
#: How many recent job times seed a provider's expected job time (service.py's polling).
_JOB_TIMES_SEEDED = 20


def size_class(width: int, height: int) -> SizeClass:
    pixels = width * height
    for name, (most, _) in SIZE_CLASSES.items():
        if most is None or pixels <= most:
            return name
    return "large"


def size_class_for(provider: Provider, request: GenerationRequest, settings: Settings) -> SizeClass:
    """The class of the image `provider` makes for `request` (an aspect-ratio provider may make more)."""
    return size_class(*provider.output_size(provider.shape(request, settings), settings))


class LastFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: The error's kind, e.g. "RateLimited", "ProviderTimeout".
    kind: str
    at: datetime


class ProviderStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    label: str
    size_class: SizeClass
    size: str
    #: How many runs the figures rest on, and how many of them gave images.
    runs: int
    ok: int
    #: 0 to 1; None without runs.
    success_rate: float | None
    #: Seconds from the call to the saved image, over the runs that gave images; None below MIN_RUNS.
    p50_s: float | None
    p95_s: float | None
    enough: bool
    last_failure: LastFailure | None
    #: One line for a picker: "p50 2.1 s · 98 % ok · 53 runs", or "not enough runs yet (2 of 5)".
    summary: str


class Stats(BaseModel):
    model_config = ConfigDict(frozen=True)

    demo: bool
    as_of: datetime
    window_days: float
    max_runs: int
    min_runs: int
    #: Every registered provider × size class, in registry order.
    providers: list[ProviderStats]

    def get(self, provider: str, size: SizeClass) -> ProviderStats | None:
        return next((s for s in self.providers if s.provider == provider and s.size_class == size), None)


def summaries(report: Stats, request: GenerationRequest, settings: Settings) -> dict[str, str]:
    """Per registered provider, the one line a picker shows beside it for `request`: the figures of
    the size class that provider would make ("p50 2.1 s · 98 % ok · 53 runs", "not enough runs yet
    (2 of 5)", "no runs yet"). Pure and quick: call it again whenever the size changes."""
    lines: dict[str, str] = {}
    for name, provider in PROVIDERS.items():
        found = report.get(name, size_class_for(provider, request, settings))
        lines[name] = found.summary if found is not None else "no runs yet"
    return lines


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, interpolated linearly between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def compute(
    rows: Iterable[RunRow], *, demo: bool, now: float, labels: Mapping[str, str] | None = None
) -> Stats:
    """The figures of `rows` (newest first, already inside the window) for every provider in
    `labels` (default: the registry) and every size class. Pure."""
    labels = labels if labels is not None else {name: p.label for name, p in PROVIDERS.items()}
    groups: dict[tuple[str, str], list[RunRow]] = {}
    for row in rows:
        if row.demo == demo:
            groups.setdefault((row.provider, row.size_class), []).append(row)
    figures = [
        _figures(name, label, size, groups.get((name, size), []))
        for name, label in labels.items()
        for size in SIZE_CLASSES
    ]
    return Stats(
        demo=demo,
        as_of=datetime.fromtimestamp(now, UTC),
        window_days=WINDOW_S / 86400,
        max_runs=MAX_RUNS,
        min_runs=MIN_RUNS,
        providers=figures,
    )


def _figures(provider: str, label: str, size: SizeClass, rows: list[RunRow]) -> ProviderStats:
    rows = rows[:MAX_RUNS]
    latencies = [row.latency_s for row in rows if row.ok and row.latency_s is not None]
    failed = next((row for row in rows if not row.ok), None)
    enough = len(rows) >= MIN_RUNS
    rate = len(latencies) / len(rows) if rows else None
    p50 = round(percentile(latencies, 50), 3) if enough and latencies else None
    p95 = round(percentile(latencies, 95), 3) if enough and latencies else None
    if not rows:
        summary = "no runs yet"
    elif not enough:
        summary = f"not enough runs yet ({len(rows)} of {MIN_RUNS})"
    else:
        speed = f"p50 {_seconds(p50)} · " if p50 is not None else ""
        summary = f"{speed}{percent(rate or 0.0)} ok · {len(rows)} runs"
    return ProviderStats(
        provider=provider,
        label=label,
        size_class=size,
        size=SIZE_CLASSES[size][1],
        runs=len(rows),
        ok=len(latencies),
        success_rate=None if rate is None else round(rate, 4),
        p50_s=p50,
        p95_s=p95,
        enough=enough,
        last_failure=None
        if failed is None or failed.failure is None
        else LastFailure(kind=failed.failure, at=datetime.fromtimestamp(failed.at, UTC)),
        summary=summary,
    )


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def percent(rate: float) -> str:
    # Never "100 %" unless every run gave an image: 199 of 200 is 99 %.
    return "100 %" if rate >= 1 else f"{math.floor(rate * 100)} %"


def smooth(previous: float | None, seconds: float) -> float:
    """A provider's expected job time after one more job took `seconds` (a smoothed average)."""
    return seconds if previous is None else 0.7 * previous + 0.3 * seconds


def job_times(rows: Iterable[RunRow]) -> dict[str, float]:
    """Per provider, the expected job time its recent jobs give (newest-first rows), as a process
    that had seen them would have learned it: the polling of a fresh process starts informed."""
    recent: dict[str, list[float]] = {}
    for row in rows:
        if row.ok and row.job_s is not None:
            times = recent.setdefault(row.provider, [])
            if len(times) < _JOB_TIMES_SEEDED:
                times.append(row.job_s)
    expected: dict[str, float] = {}
    for provider, times in recent.items():
        for seconds in reversed(times):  # oldest first, as they happened
            expected[provider] = smooth(expected.get(provider), seconds)
    return expected


#: Failures that say nothing about the provider: refused by us before any call (settings it cannot
#: take, a missing key), or about a key a person pasted (refused, out of credit). A visitor pasting
#: a bad key must not make a provider look unreliable to everyone else.
_NOT_THE_PROVIDERS = (InvalidRequest, ConfigurationError)
_THE_KEYS = (AuthenticationFailed, InsufficientCredits)


def outcome_row(
    provider: Provider,
    request: GenerationRequest,
    settings: Settings,
    *,
    result: GenerationResult | None,
    error: PlaygroundError | None,
    own_key: bool,
    now: float | None = None,
) -> RunRow | None:
    """What one provider outcome of a run tells about the provider, as a row (None: nothing)."""
    if error is not None and (
        isinstance(error, _NOT_THE_PROVIDERS) or (own_key and isinstance(error, _THE_KEYS))
    ):
        return None
    failure = None
    if error is not None:
        # Our own bug (the generic error) is named as such, not as the provider's fault.
        failure = "InternalError" if type(error) is PlaygroundError else type(error).__name__
    return RunRow(
        provider=provider.name,
        size_class=size_class_for(provider, request, settings),
        demo=settings.demo_mode,
        ok=result is not None,
        latency_s=None if result is None else round(result.latency_s, 3),
        job_s=None if result is None else result.timings.get("job_s"),
        failure=failure,
        at=time.time() if now is None else now,
    )


def stats(settings: Settings, *, clock: Callable[[], float] = time.time) -> Stats:
    """The statistics of the runs recorded in `settings.data_dir`, for the mode the settings are in
    (demo or real). Blocking: reads SQLite (Playground.stats runs it off the event loop)."""
    evidence = Evidence(settings.data_dir, database_url=settings.database_url, clock=clock)
    try:
        demo = settings.demo_mode
        rows = evidence.recent(demo=demo)
    finally:
        evidence.close()
    return compute(rows, demo=demo, now=clock())

"""Provider statistics from the app's own runs (evidence.py, stats.py): the figures from known recorded
runs, what a row holds (nothing personal), recording that never fails a run, and the expected job time
a fresh process starts from."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ui.conftest import emulator_settings

from flux_playground.emulator.server import EmulatorServer
from flux_playground.evidence import EVIDENCE_FILE, MAX_RUNS, Evidence, RunRow
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS
from flux_playground.service import Playground
from flux_playground.settings import Settings
from flux_playground.stats import (
    LastFailure,
    ProviderStats,
    job_times,
    percentile,
    size_class,
    stats,
    summaries,
)

#: Every test here runs on SQLite and on PostgreSQL (conftest.database_backend).
pytestmark = pytest.mark.usefixtures("database_backend")

NOW = 1_800_000_000.0  # a fixed clock: 2027-01-15 08:00 UTC
DAY = 86400.0


@pytest.fixture
def server(emulator: EmulatorServer) -> EmulatorServer:
    emulator.reset()
    return emulator


def record(data_dir: Path, rows: list[RunRow], now: float = NOW) -> None:
    evidence = Evidence(data_dir, clock=lambda: now)
    try:
        for row in rows:
            evidence.record(row)
    finally:
        evidence.close()


def ok(provider: str, latency: float, at: float, size: str = "medium", demo: bool = False) -> RunRow:
    return RunRow(provider, size, demo, True, latency_s=latency, at=at)


def failed(provider: str, kind: str, at: float, size: str = "medium", demo: bool = False) -> RunRow:
    return RunRow(provider, size, demo, False, failure=kind, at=at)


def real(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, demo=False)


def test_size_classes_and_percentiles() -> None:
    assert [size_class(512, 512), size_class(768, 384), size_class(1024, 1024), size_class(1536, 1024)] == [
        "small", "small", "medium", "large",
    ]  # fmt: skip
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    assert percentile([float(n) for n in range(1, 11)], 95) == pytest.approx(9.55)
    assert percentile([7.0], 95) == 7.0


def test_figures_from_known_runs(tmp_path: Path) -> None:
    """p50/p95 over the successes, the success rate, the latest failure and when, how many runs; per
    size class; runs older than the window left out."""
    rows = [ok("runware", float(n), NOW - 3600 + n * 60) for n in range(1, 11)]  # 1 … 10 s
    rows += [failed("runware", "ProviderTimeout", NOW - 7200), failed("runware", "RateLimited", NOW - 600)]
    rows += [ok("runware", 0.5, NOW - 60, size="small")] * 2  # another size class: its own figures
    rows += [ok("runware", 99.0, NOW - 8 * DAY)]  # outside the 7-day window
    record(tmp_path, rows)
    report = stats(real(tmp_path), clock=lambda: NOW)
    assert report.demo is False and report.window_days == 7 and report.min_runs == 5
    assert report.get("runware", "medium") == ProviderStats(
        provider="runware",
        label="Runware",
        size_class="medium",
        size="≤ 1.1 MP",
        runs=12,
        ok=10,
        success_rate=0.8333,
        p50_s=5.5,
        p95_s=9.55,
        enough=True,
        last_failure=LastFailure(kind="RateLimited", at=datetime.fromtimestamp(NOW - 600, UTC)),
        summary="p50 5.5 s · 83 % ok · 12 runs",
    )
    small = report.get("runware", "small")
    assert small is not None
    assert (small.runs, small.p50_s, small.enough, small.summary) == (
        2,
        None,
        False,
        "not enough runs yet (2 of 5)",
    )
    untouched = report.get("segmind", "large")
    assert untouched is not None and (untouched.runs, untouched.summary) == (0, "no runs yet")
    assert [(s.provider, s.size_class) for s in report.providers][:3] == [
        ("atlascloud", "small"), ("atlascloud", "medium"), ("atlascloud", "large"),
    ]  # fmt: skip
    assert len(report.providers) == 3 * len(PROVIDERS)


def test_only_the_newest_runs_count_and_older_ones_are_deleted(tmp_path: Path) -> None:
    slow = [ok("deepinfra", 50.0, NOW - 3600) for _ in range(10)]
    fast = [ok("deepinfra", 1.0, NOW - 60) for _ in range(MAX_RUNS)]
    record(tmp_path, [*slow, *fast])
    figures = stats(real(tmp_path), clock=lambda: NOW).get("deepinfra", "medium")
    assert figures is not None and (figures.runs, figures.p95_s) == (MAX_RUNS, 1.0)
    assert stored_rows(tmp_path) == MAX_RUNS
    # A day later than a week on, the next row prunes everything outside the window.
    record(tmp_path, [ok("deepinfra", 2.0, NOW + 8 * DAY)], now=NOW + 8 * DAY)
    assert stored_rows(tmp_path) == 1


def stored_rows(data_dir: Path) -> int:
    """How many rows the evidence table holds, read back from the store's own database."""
    evidence = Evidence(data_dir)
    try:
        db = evidence._database(create=False)
        assert db is not None
        with db.reading() as sql:
            return int(sql.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    finally:
        evidence.close()


def test_demo_runs_are_kept_apart(tmp_path: Path) -> None:
    record(tmp_path, [ok("fal", 1.0, NOW - 60, demo=True) for _ in range(6)])
    record(tmp_path, [ok("fal", 4.0, NOW - 60) for _ in range(5)] + [failed("fal", "ProviderFailed", NOW)])
    demo = stats(Settings(_env_file=None, data_dir=tmp_path, demo=True), clock=lambda: NOW)
    live = stats(real(tmp_path), clock=lambda: NOW)
    assert demo.demo and (demo.get("fal", "medium") or _missing()).summary == "p50 1.0 s · 100 % ok · 6 runs"
    assert (live.get("fal", "medium") or _missing()).summary == "p50 4.0 s · 83 % ok · 6 runs"


def test_without_a_file_nothing_is_made(tmp_path: Path) -> None:
    report = stats(real(tmp_path / "none"), clock=lambda: NOW)
    assert all(s.runs == 0 for s in report.providers) and not (tmp_path / "none").exists()


async def test_one_line_per_provider_for_a_picker(tmp_path: Path) -> None:
    """The line beside each provider is for the size class it would make for the request asked."""
    now = time.time()  # Playground.stats reads with the real clock
    rows = [ok("together", 2.14, now - 60) for _ in range(52)] + [failed("together", "RateLimited", now)]
    record(tmp_path, [*rows, *(ok("fal", 0.4, now - 60, size="small") for _ in range(2))], now=now)
    report = stats(real(tmp_path), clock=lambda: now)
    large = GenerationRequest(prompt="a fox", width=1024, height=1024)
    small = GenerationRequest(prompt="a fox", width=512, height=512)
    assert summaries(report, large, real(tmp_path)) == {
        name: "p50 2.1 s · 98 % ok · 53 runs" if name == "together" else "no runs yet" for name in PROVIDERS
    }
    assert summaries(report, small, real(tmp_path))["fal"] == "not enough runs yet (2 of 5)"
    async with Playground(real(tmp_path)) as playground:  # the same, read from the data directory
        lines = await playground.stats_summaries(large)
    assert lines == summaries(report, large, real(tmp_path))


def _missing() -> Any:
    raise AssertionError("no figures")


# --- recorded from real runs ---------------------------------------------------------------------------


@pytest.mark.single_pass("reads the bytes of SQLite's file")
async def test_every_outcome_is_one_row_with_nothing_personal(server: EmulatorServer, tmp_path: Path) -> None:
    settings = emulator_settings(server, tmp_path)
    prompt = "a lighthouse PERSONAL-7Q at dusk"
    async with Playground(settings) as playground:
        request = GenerationRequest(prompt=prompt, width=512, height=512, seed=424242)
        await playground.generate(request, "deepinfra", person="hf:ada-lovelace")
        failing = request.model_copy(update={"prompt": prompt + " [fault:429]"})
        async for _ in playground.generate_many(failing, ["segmind"], person="hf:ada-lovelace"):
            pass
        await playground.generate(request.model_copy(update={"width": 1024, "height": 1024}), "atlascloud")
    with sqlite3.connect(tmp_path / EVIDENCE_FILE) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
        rows = conn.execute(
            "SELECT provider, size_class, demo, ok, latency_s > 0, job_s > 0, failure, CAST(at AS INT) % 60"
            " FROM runs ORDER BY id"
        ).fetchall()
    assert columns == ["id", "provider", "size_class", "demo", "ok", "latency_s", "job_s", "failure", "at"]
    assert rows == [
        ("deepinfra", "small", 0, 1, 1, None, None, 0),
        ("segmind", "small", 0, 0, None, None, "RateLimited", 0),
        ("atlascloud", "medium", 0, 1, 1, 1, None, 0),  # a polled job: its job time too
    ]
    stored = b"".join(path.read_bytes() for path in tmp_path.glob(EVIDENCE_FILE + "*"))
    for personal in (b"PERSONAL-7Q", b"ada", b"424242", b"test-key"):
        assert personal not in stored


async def test_a_pasted_key_that_is_refused_says_nothing_about_the_provider(
    server: EmulatorServer, tmp_path: Path
) -> None:
    from pydantic import SecretStr

    async with Playground(emulator_settings(server, tmp_path)) as playground:
        request = GenerationRequest(prompt="a fox", width=512, height=512)
        async for _ in playground.generate_many(
            request, ["segmind"], api_keys={"segmind": SecretStr("invalid-x")}
        ):
            pass
        await playground.evidence.drain()
        figures = await playground.stats()
    assert (figures.get("segmind", "small") or _missing()).runs == 0


@pytest.mark.single_pass("breaks SQLite's file")
async def test_recording_failures_never_fail_a_run(
    server: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / EVIDENCE_FILE).mkdir()  # SQLite cannot open a directory
    request = GenerationRequest(prompt="a fox", width=512, height=512)
    with caplog.at_level(logging.WARNING):
        async with Playground(emulator_settings(server, tmp_path)) as playground:
            result = await playground.generate(request, "deepinfra")
            await playground.evidence.drain()  # its one line is logged before the next run's

            def broken(row: RunRow) -> None:
                raise RuntimeError("disk on fire")

            playground.evidence.submit = broken  # type: ignore[method-assign]
            again = await playground.generate(request, "deepinfra")
    assert len(result.images) == 1 and len(again.images) == 1
    lines = [r.getMessage() for r in caplog.records if "statistics" in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == [
        "Could not record a deepinfra run for the statistics"
    ] * 2
    assert lines[1].endswith("disk on fire") and not any(r.exc_info for r in caplog.records)


# --- the expected job time a fresh process starts from ---------------------------------------------


def test_job_times_replay_what_a_process_would_have_learned() -> None:
    # As read, newest first: the jobs took 3.0 s, then 2.0 s, then 1.0 s (the newest), then one failed.
    rows = [RunRow("atlascloud", "small", False, False, failure="ProviderFailed", at=NOW)]
    rows += [
        RunRow("atlascloud", "medium", False, True, latency_s=4.0, job_s=s, at=NOW) for s in (1.0, 2.0, 3.0)
    ]
    assert job_times(rows) == {"atlascloud": pytest.approx(0.7 * (0.7 * 3.0 + 0.3 * 2.0) + 0.3 * 1.0)}


@pytest.fixture
def seen_expectations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float | None]]:
    """The expected job time each Atlas call was given (what its polling schedule starts from)."""
    seen: list[float | None] = []
    atlas = PROVIDERS["atlascloud"]
    original = atlas.run

    async def spy(ctx: Any, call: Any) -> Any:
        seen.append(ctx.expected_job_s)
        return await original(ctx, call)

    monkeypatch.setattr(atlas, "run", spy)
    yield seen


@pytest.mark.slow  # a process of its own, or real seconds of waiting
async def test_a_fresh_process_polls_with_the_recorded_job_time(
    server: EmulatorServer, tmp_path: Path, seen_expectations: list[float | None]
) -> None:
    settings = emulator_settings(server, tmp_path)
    request = GenerationRequest(prompt="a harbour [latency:0.3]", width=512, height=512)
    async with Playground(settings) as first:
        for _ in range(3):
            await first.generate(request, "atlascloud")
        learned = first._job_seconds["atlascloud"]
    async with Playground(settings) as fresh:  # a restart, or the next CLI call
        await fresh.generate(request, "atlascloud")
    assert seen_expectations[0] is None  # the very first job: nothing known
    assert seen_expectations[3] == pytest.approx(learned, abs=0.002)  # job times are kept to the ms
    # Demo runs never inform real ones.
    async with Playground(settings.model_copy(update={"demo": True})) as demo:
        await demo.generate(request, "atlascloud")
    assert seen_expectations[4] is None

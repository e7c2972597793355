"""The command line's `stats` and `generate --provider auto`, in-process against the emulator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from flux_playground import cli
from flux_playground.emulator.server import EmulatorServer
from flux_playground.evidence import Evidence, RunRow
from flux_playground.providers import PROVIDERS
from flux_playground.settings import Settings


@pytest.fixture
def environment(emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every provider at the session's emulator through its variables, as a person would set them."""
    emulator.reset()
    for name, provider in PROVIDERS.items():
        monkeypatch.setenv(provider.base_url_env(), emulator.base_urls[name])
        monkeypatch.setenv(provider.key_env[0], "cli-key")
        for option in provider.options:
            if option.required:
                monkeypatch.setenv(option.env[0], f"demo-{option.name}")
    data = tmp_path / "data"
    monkeypatch.setenv("FLUX_PLAYGROUND_DATA_DIR", str(data))
    return data


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> tuple[str, str]:
    assert cli.main(list(argv)) == code
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_stats_before_any_run(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "stats")
    assert out == (
        "Provider statistics from this app's own real runs (the last 7 days, at most 200 runs per provider "
        "and size):\n\n"
        f"No runs recorded yet in {'the database' if Settings().database_url else environment.resolve()}: "
        "every run this app makes (page, API, MCP, CLI) adds one.\n"
    )


def test_stats_as_a_table_and_as_json(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    evidence = Evidence(environment, database_url=Settings().database_url)  # where the CLI reads
    for latency in (1.0, 2.0, 3.0, 4.0, 5.0):
        evidence.record(RunRow("deepinfra", "medium", False, True, latency_s=latency, at=now))
    evidence.record(RunRow("deepinfra", "medium", False, False, failure="RateLimited", at=now))
    evidence.record(RunRow("segmind", "small", False, True, latency_s=0.7, at=now))
    evidence.close()
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(now // 60 * 60))
    out, _ = run(capsys, "stats")
    assert out.splitlines()[2:] == [
        "  Provider   Size       Runs      p50      p95      OK  Last failure",
        f"  DeepInfra  ≤ 1.1 MP      6    3.0 s    4.8 s    83 %  RateLimited, {when} UTC",
        "  Segmind    ≤ 0.3 MP      1        –        –       –  –",
        "",
        "Figures need 5 runs; below that they show as –.",
        "No runs yet: Atlas Cloud, Cloudflare Workers AI, fal.ai, Fireworks AI (FP8), Replicate, Runware, "
        "Together AI.",
    ]
    out, _ = run(capsys, "stats", "--json")
    figures = {(s["provider"], s["size_class"]): s for s in json.loads(out)["providers"]}
    assert figures[("deepinfra", "medium")]["summary"] == "p50 3.0 s · 83 % ok · 6 runs"
    assert figures[("deepinfra", "medium")]["last_failure"]["kind"] == "RateLimited"


def test_generate_auto_falls_back_and_says_so(
    environment: Path, emulator: EmulatorServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    emulator.inject("cloudflare", "429")
    out, err = run(capsys, "generate", "a red fox", "--provider", "auto", "--out", str(tmp_path / "png"))
    printed = json.loads(out)
    assert printed["provider"] == "runware" and Path(printed["files"][0]).name.startswith("flux-runware-")
    route = printed["route"]
    assert route["served_by"] == "runware" and route["prefer"] == "cheapest"
    assert [(t["provider"], t["outcome"], t["failure"]) for t in route["tried"]] == [
        ("cloudflare", "failed", "RateLimited"), ("runware", "served", None),
    ]  # fmt: skip
    assert "cli-key" not in out + err
    # The runs were recorded before the command returned: the next `stats` sees both.
    out, _ = run(capsys, "stats", "--json")
    ran = {s["provider"]: s["runs"] for s in json.loads(out)["providers"] if s["runs"]}
    assert ran == {"cloudflare": 1, "runware": 1}


def test_generate_auto_refusals_are_one_line(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, err = run(capsys, "generate", "a fox", "--provider", "segmind", "--prefer", "fastest", code=2)
    assert err == "error: --prefer and --max-cost go with --provider auto.\n"
    _, err = run(capsys, "generate", "a fox", "--provider", "auto", "--max-cost", "0.0001", code=2)
    assert err.startswith(
        "error: Auto (cheapest, ≤ $0.0001) found no provider that can honour this request: "
    )
    assert err.endswith("Raise the price ceiling, or name a provider.\n") and err.count("\n") == 1
    _, err = run(capsys, "generate", "a fox", "--provider", "auto", "--max-cost", "cheap", code=2)
    assert (
        err == "error: The price ceiling must be a number of US dollars above 0, e.g. 0.004 (got 'cheap').\n"
    )

"""The benchmark suite runs (`python -m bench.run_all --quick`) and reports every figure it promises.

Never a timing assertion: benchmarks are scripts (docs/benchmarks.md), this only keeps them working.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

EXPECTED: dict[str, set[str]] = {
    "added_latency": {
        "cells",
        "loop_stall_max_ms",
        "loop_stall_own_max_ms",
        "added_1024_p50_ms",
        "added_1024_p95_ms",
        "profile_1024",
    },
    "polling": {"ours", "sample_code", "cold_start"},
    "side_by_side": {
        "generate_many_p50_s",
        "alone_p50_s",
        "ratio_to_slowest_latency",
        "ratio_to_slowest_alone",
        "ratio_to_sum",
    },
    "history_scale": {
        "items",
        "other_owners_rows",
        "first_page",
        "search",
        "runs_page",
        "search_p95_ms",
        "thumb_max_kb",
        "thumb_noise_kb",
        "page_bytes_mb",
        "open_with_items_ms",
    },
    "startup": {
        "app_to_first_page_s",
        "import_flux_playground_ms",
        "import_flux_playground_service_ms",
    },
    "concurrency": {"tuned", "naive", "floor"},
    "browser": {"click_to_image_p50_s", "click_to_image_max_s"},
}
CELL = {"added", "emulator_floor_p50_ms", "loop_stall_own_max_ms", "breakdown_p50_ms"}


def test_update_reads_the_written_figures_back() -> None:
    """`--only NAME --update` keeps the other figures of docs/benchmarks.md by reading them back."""
    from bench.run_all import read_back, render

    results, meta = read_back((REPO / "docs" / "benchmarks.md").read_text())
    assert set(results) == set(EXPECTED) and meta["command"].startswith("python -m bench.run_all")
    assert read_back(render(results, meta)) == (results, meta)
    assert read_back(render(results, {**meta, "note": "x re-run"}))[1]["note"] == "x re-run"


@pytest.mark.browser  # the browser benchmark drives Chromium, like the page's browser tests
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    out, raw = tmp_path / "benchmarks.md", tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--quick", "--out", str(out), "--json", str(raw)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(raw.read_text())["results"]
    for name, keys in EXPECTED.items():
        assert "error" not in results[name], results[name]
        assert keys <= set(results[name]), (name, keys - set(results[name]))
    for mode in ("fts", "like"):
        assert set(results["history_scale"]["search"][mode]) == {
            "one_word", "two_words", "prefix", "rare_word", "no_match", "runs_two_words"
        }  # fmt: skip
    for cell in results["added_latency"]["cells"].values():
        assert CELL <= set(cell)
    for side in ("ours", "sample_code"):
        assert set(results["polling"][side]) == {"short", "long"}
    for mode in ("tuned", "naive", "floor"):
        assert {"n1", "startup_s"} <= set(results["concurrency"][mode])
    text = out.read_text()
    for heading in ("# Benchmarks", "## Targets", "cores", "python", "python -m bench.run_all --quick"):
        assert heading in text


LAYOUT = {
    "completed", "errors", "error_samples", "added", "wall_s", "db_ms_per_generation",
    "db_calls_per_generation", "db_statements_ms_per_generation", "db_lock_ms_per_generation",
    "db_lock_max_ms", "app_cpu_ms_per_generation", "postgres_cpu_ms_per_generation",
}  # fmt: skip


@pytest.mark.slow  # two app processes, the emulator and a PostgreSQL server: ~25 s
def test_replicas_quick_run_reports_every_figure(postgres_server: Any, tmp_path: Path) -> None:
    """`python -m bench.replicas --quick`: both layouts, every figure (pg_stat_statements loaded)."""
    del postgres_server  # for its skip (in CI: failure) without PostgreSQL; the run starts its own
    raw = tmp_path / "replicas.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.replicas", "--quick", "--json", str(raw)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(raw.read_text())
    assert set(report["layouts"]) == {"1_replica", "2_replicas"}
    for figures in report["layouts"].values():
        assert LAYOUT <= set(figures), LAYOUT - set(figures)
        assert figures["errors"] == 0 and figures["completed"] == report["people"]
        assert set(figures["added"]) == {"p50_ms", "p95_ms", "max_ms", "n"}
    for one_round in report["rounds"]:
        assert one_round["db"]["calls"] > 0, "pg_stat_statements saw none of the app's statements"
    assert "| 2 replicas |" in done.stdout

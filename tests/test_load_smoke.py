"""`bench/load.py --quick` as a CI smoke test: the real app under a few simultaneous people, no errors.

The full figures (N = 10, 50, 200) are in docs/reliability.md, from `python bench/load.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the app and a load generator as processes

REPO = Path(__file__).resolve().parents[1]


def test_load_quick_has_no_errors_and_flat_memory(tmp_path: Path) -> None:
    report_path = tmp_path / "load.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load.py"), "--quick", "--json", str(report_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["errors"] == 0
    assert [r["completed"] for r in report["runs"]] == [5, 5]
    for r in report["runs"]:
        assert r["over_latency_ms"]["p95"] < 5000, r
    first, second = (r["rss_mb_after"] for r in report["runs"])
    assert second - first < 50, "memory grew from one identical round to the next"

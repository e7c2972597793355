"""Benchmark 6: start-up. `python app.py` in demo mode to the first page that answers 200, and the
backend's import time (`python -X importtime`).

`app.py` runs in an empty temporary working directory (no `.env`), with FLUX_PLAYGROUND_DATA_DIR in
a temporary directory and GRADIO_SERVER_PORT on a free port; no provider key, so demo mode.

    python -m bench.startup [--quick]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from .common import REPO, bench_env, free_port, main, temp_dir, wait_http_ok

__all__ = ["import_time_ms", "run"]


def import_time_ms(module: str) -> float:
    """Cumulative import time of `module` as `-X importtime` reports it (a fresh interpreter)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=REPO,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for line in reversed(done.stderr.splitlines()):
        # "import time:      self [us] |      cumulative | imported package"
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    raise RuntimeError(f"no importtime line for {module}")


def _app_start() -> float:
    port = free_port()
    with temp_dir("bench-start-data-") as data, temp_dir("bench-start-cwd-") as cwd:
        env = bench_env(FLUX_PLAYGROUND_DATA_DIR=str(data), GRADIO_SERVER_PORT=str(port))
        with tempfile.TemporaryFile() as log:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "app.py")], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                wait_http_ok(f"http://127.0.0.1:{port}/", timeout=120.0, proc=proc)
                return time.perf_counter() - started
            except BaseException:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace")[-4000:])
                raise
            finally:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 1 if quick else 3
    import_time_ms("flux_playground")  # warm the .pyc files and the page cache once, untimed
    package = [import_time_ms("flux_playground") for _ in range(repeats + 2)]
    service = [import_time_ms("flux_playground.service") for _ in range(repeats + 2)]
    ui = [import_time_ms("flux_playground.ui") for _ in range(repeats)]
    starts = [_app_start() for _ in range(repeats)]
    return {
        "app_to_first_page_s": round(statistics.median(starts), 2),
        "app_to_first_page_max_s": round(max(starts), 2),
        "import_flux_playground_ms": round(statistics.median(package), 1),
        "import_flux_playground_service_ms": round(statistics.median(service), 1),
        "import_flux_playground_ui_ms": round(statistics.median(ui), 1),
        "repeats": repeats,
    }


if __name__ == "__main__":
    main(run)

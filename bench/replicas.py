"""Two replicas of the app on one PostgreSQL database, beside one replica (docs/deploying.md).

    python -m bench.replicas                 # N = 200 people at once; layouts 1, 2, 1, 2
    python -m bench.replicas --quick         # N = 10; layouts 1, 2 (the smoke test runs this)
    python -m bench.replicas --api           # through the public API instead of the page
    python -m bench.replicas --json out.json

One run starts a throwaway PostgreSQL server (tests/pgserver.py) with pg_stat_statements loaded, the
emulator in its own process (every generation takes 1 s), and for each round a fresh database and
fresh `python app.py` processes on it (FLUX_PLAYGROUND_DATABASE_URL, and one data directory they
all share, as the volume they would mount; DeepInfra's key and base URL pointing at the emulator, so
runs go through the spend ledger; caps and a rate limit set, too generous to refuse anything). N
people then each click Generate at once: the page's own event (`/gradio_api/queue/join`, then its
`/gradio_api/queue/data` stream read to `process_completed`), each with their own browser id, so
each image is saved to that person's history in PostgreSQL and on the shared volume (`--api`: one
`POST /gradio_api/call/generate` each instead, which keeps no history). Person i is X-Forwarded-For
198.18.x.y and always goes to replica i % R, as a sticky load balancer in front would send them.
After each page round the history holds exactly one image per completed generation (checked).
Rounds alternate the layouts so both sides of the comparison share the machine's conditions.

Per round: completed, errors, latency beyond the provider's 1 s (p50, p95, max), wall time; the
database's share: pg_stat_statements' execution + planning time and calls for the app's database
(reset after the warm-up), per generation, beside the added latency; CPU seconds of the app
processes and of the whole PostgreSQL server (its processes, exited backends included), per
generation. The database figures are server-side only: round trips and waiting for a pooled
connection are not in them (they are in the added latency). Everything the app keeps in the database
for these calls is in them: the spend ledger, the provider statistics and (page path) the history.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import psycopg

from flux_playground.providers import variables

from .common import REPO, EmulatorProcess, machine_info, round_ms, summary_ms, temp_dir
from .concurrency import call_generate, page_event
from .load import Server, cpu_s, failed_providers

sys.path.insert(0, str(REPO / "tests"))  # the tests' throwaway PostgreSQL server
from pgserver import PostgresServer, find_binaries  # noqa: E402
from ui.appclient import event_data, page_fn_index  # noqa: E402

LATENCY_S = 1.0
PROVIDER = "deepinfra"  # one synchronous POST: no polling schedule in the added latency
CALL_TIMEOUT_S = 120.0
FIRST_PERSON = int(ipaddress.IPv4Address("198.18.0.1"))  # the benchmarking range, RFC 2544
Outcome = tuple[float | None, str | None]  # (seconds from POST to `complete`, None) or (None, error)
STATS_SQL = """
    SELECT query, calls, total_exec_time, total_plan_time, max_exec_time FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s) ORDER BY total_exec_time DESC
"""


def _app_env(emulator: EmulatorProcess, database_url: str) -> dict[str, str]:
    deepinfra = variables()[PROVIDER]
    return {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_TRUSTED_PROXIES": "127.0.0.1",  # X-Forwarded-For names the person
        # Set, so every run is checked and recorded in the database; never reached by this load.
        "FLUX_PLAYGROUND_DAILY_BUDGET_USD": "1000",
        "FLUX_PLAYGROUND_PER_USER_DAILY_BUDGET_USD": "100",
        "FLUX_PLAYGROUND_PER_USER_REQUESTS_PER_MINUTE": "600",
        deepinfra.key[0]: "bench-key",
        deepinfra.base_url: emulator.base_urls[PROVIDER],
    }


def _prompt(tag: str, i: int) -> str:
    # Distinct per person (the app refuses an identical request in flight as a double click), but
    # only in a latency directive the emulator strips before drawing: it renders one image and
    # serves it from its cache, so its CPU stays off the 2 cores the replicas share.
    return f"a lighthouse at dusk, {tag} [latency:{LATENCY_S + (i + 1) * 1e-9:.9f}]"


class Page:
    """The page's Generate event, its inputs laid out once from /config as a fresh page sends them:
    each person then changes only the prompt and their browser id (so each has their own history)."""

    def __init__(self, url: str) -> None:
        self.fn_index = page_fn_index(url, "generate")
        values = {"prompt": "\0prompt", "browser_id": "\0browser", "providers": [PROVIDER]}
        self.data = event_data(url, self.fn_index, {**values, "width": 512, "height": 512})
        self.slots = (self.data.index("\0prompt"), self.data.index("\0browser"))

    def inputs(self, prompt: str, browser: str) -> list[Any]:
        data = list(self.data)
        data[self.slots[0]], data[self.slots[1]] = prompt, browser
        return data


async def _generate(url: str, page: Page | None, tag: str, i: int, headers: dict[str, str]) -> str | None:
    """One generation, through the page (`page`) or the public API: None, or what went wrong."""
    if page is not None:
        browser = f"bench-{i:05d}-{tag.replace(' ', '-')}".ljust(32, "x")[:32]  # a valid id: 32 URL-safe
        ok, data = await page_event(url, page.fn_index, page.inputs(_prompt(tag, i), browser), headers)
        return None if ok else f"page event failed: {data[:200]}"
    payload = {"data": [_prompt(tag, i), [PROVIDER], 512, 512, 4, 1234, 1, None, None]}
    event, data = await call_generate(url, payload, headers)
    if event != "complete":
        return f"{event or 'no event'}: {data[:200]}"
    if failed := failed_providers(data):
        return f"provider failed: {failed}: {data[:200]}"
    return None


async def _person(url: str, page: Page | None, tag: str, i: int) -> Outcome:
    headers = {"X-Forwarded-For": str(ipaddress.IPv4Address(FIRST_PERSON + i))}
    started = time.perf_counter()
    try:
        error = await asyncio.wait_for(_generate(url, page, tag, i, headers), CALL_TIMEOUT_S)
    except TimeoutError:
        return None, f"no answer within {CALL_TIMEOUT_S:g} s"
    except Exception as exc:  # refused, reset, cut short, a non-200: one person's error is a figure
        return None, f"{type(exc).__name__}: {exc}"[:200]
    return (None, error) if error else (time.perf_counter() - started, None)


async def _burst(urls: list[str], page: Page | None, tag: str, people: int) -> tuple[list[Outcome], float]:
    """Everyone at once, person i on replica i % len(urls) (sticky); the outcomes and the wall time."""
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(_person(urls[i % len(urls)], page, tag, i) for i in range(people)))
    return list(outcomes), time.perf_counter() - started


def _saved_images(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM history_items").fetchone()
    assert row is not None
    return int(row[0])


def _postgres_cpu_s(postmaster: int) -> float:
    """CPU seconds of the whole server: its live processes (single-threaded, so schedstat's
    nanoseconds are exact where /proc/<pid>/stat rounds each backend down to 10 ms) and the exited
    ones the postmaster reaped (cutime + cstime), so a backend that closed mid-round still counts."""
    fields = Path(f"/proc/{postmaster}/stat").read_text().rpartition(")")[2].split()
    total = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            pid = int(stat.parent.name)
            if pid == postmaster or int(stat.read_text().rpartition(")")[2].split()[1]) == postmaster:
                total += int((stat.parent / "schedstat").read_text().split()[0]) / 1e9
    return total


def _db_figures(admin: psycopg.Connection[Any], database: str, generations: int) -> dict[str, Any]:
    rows = admin.execute(STATS_SQL, (database,)).fetchall()
    exec_ms = sum(row[2] for row in rows)
    plan_ms = sum(row[3] for row in rows)
    calls = sum(row[1] for row in rows)
    lock = [row for row in rows if "pg_advisory_xact_lock" in row[0]]
    per = max(generations, 1)
    return {
        "exec_ms": round(exec_ms, 1),
        "plan_ms": round(plan_ms, 1),
        "calls": calls,
        "ms_per_generation": round((exec_ms + plan_ms) / per, 2),
        "calls_per_generation": round(calls / per, 1),
        # Execution time of the advisory-lock statements is mostly waiting for another transaction
        # (another replica's, or this one's other threads) to commit: the caps' serialisation.
        "lock_ms_per_generation": round(sum(row[2] for row in lock) / per, 2),
        "lock_max_ms": round(max((row[4] for row in lock), default=0.0), 1),
        "top": [
            {"query": " ".join(q.split())[:100], "calls": c, "total_ms": round(t, 1), "max_ms": round(m, 1)}
            for q, c, t, _, m in rows[:6]
        ],
    }


def _ready(app: Server, began: float) -> float:
    """Seconds from the replicas' spawn until this one answers (they start together)."""
    app.wait_ready(timeout=120.0)
    return time.monotonic() - began


def _round(
    server: PostgresServer, admin: psycopg.Connection[Any], emulator: EmulatorProcess, replicas: int,
    people: int, index: int, api: bool,
) -> dict[str, Any]:  # fmt: skip
    url = server.new_database()  # a fresh database each round: every round starts from empty tables
    database = url.rsplit("/", 1)[1]
    with temp_dir("bench-replicas-") as root, contextlib.ExitStack() as stack:
        apps, began = [], time.monotonic()
        environment = {**_app_env(emulator, url), "FLUX_PLAYGROUND_DATA_DIR": str(root / "shared")}
        for n in range(replicas):  # each its own working directory; one data directory, the volume
            (root / f"r{n}").mkdir()
            apps.append(Server(root / f"r{n}", environment))
            stack.callback(apps[-1].stop)
        startup = [_ready(app, began) for app in apps]
        urls = [app.url for app in apps]
        page = None if api else Page(urls[0])  # one page: the same event and inputs on every replica
        warm, _ = asyncio.run(_burst(urls, page, f"warm-up {index}", 3 * replicas))  # imports, pools
        if errors := [e for _, e in warm if e]:
            raise RuntimeError(f"warm-up failed: {errors[:3]}")
        time.sleep(1.0)  # the warm-up's settles and claim releases finish before the reset
        postmaster = int((server.root / "data" / "postmaster.pid").read_text().split()[0])
        admin.execute("SELECT pg_stat_statements_reset()")
        app_cpu, pg_cpu = sum(cpu_s(a.proc.pid) for a in apps), _postgres_cpu_s(postmaster)
        outcomes, wall = asyncio.run(_burst(urls, page, f"round {index}", people))
        app_cpu = sum(cpu_s(a.proc.pid) for a in apps) - app_cpu
        pg_cpu = _postgres_cpu_s(postmaster) - pg_cpu
    added = [t - LATENCY_S for t, _ in outcomes if t is not None]
    errors = [e for _, e in outcomes if e is not None]
    if page is not None and _saved_images(url) != len(warm) + len(added):  # one image per generation
        errors.append(f"history holds {_saved_images(url)} images for {len(warm) + len(added)} generations")
    return {
        "replicas": replicas,
        "round": index,
        "people": people,
        "completed": len(added),
        "errors": len(errors),
        "error_samples": list(dict.fromkeys(errors))[:3],
        "added": summary_ms(added),
        "added_s": [round(a, 4) for a in added],  # for the layout's pooled percentiles; not printed
        "wall_s": round(wall, 2),
        "startup_s": [round(s, 1) for s in startup],
        "db": _db_figures(admin, database, len(added)),
        "app_cpu_ms_per_generation": round_ms(app_cpu / max(len(added), 1)),
        "postgres_cpu_ms_per_generation": round_ms(pg_cpu / max(len(added), 1)),
    }


def _layout(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One layout's rounds together: latencies pooled, database time and CPU summed per generation."""
    done: int = sum(r["completed"] for r in rounds)

    def per(key: str) -> float:
        total: float = sum(r[key] * r["completed"] for r in rounds)
        return round(total / max(done, 1), 1)

    db_ms = sum(r["db"]["exec_ms"] + r["db"]["plan_ms"] for r in rounds)
    lock_ms = sum(r["db"]["lock_ms_per_generation"] * r["completed"] for r in rounds)
    return {
        "rounds": len(rounds),
        "completed": done,
        "errors": sum(r["errors"] for r in rounds),
        "error_samples": [e for r in rounds for e in r["error_samples"]][:3],
        "added": summary_ms([a for r in rounds for a in r["added_s"]]),
        "wall_s": [r["wall_s"] for r in rounds],
        "db_ms_per_generation": round(db_ms / max(done, 1), 2),
        "db_statements_ms_per_generation": round((db_ms - lock_ms) / max(done, 1), 2),
        "db_calls_per_generation": round(sum(r["db"]["calls"] for r in rounds) / max(done, 1), 1),
        "db_lock_ms_per_generation": round(lock_ms / max(done, 1), 2),
        "db_lock_max_ms": max(r["db"]["lock_max_ms"] for r in rounds),
        "app_cpu_ms_per_generation": per("app_cpu_ms_per_generation"),
        "postgres_cpu_ms_per_generation": per("postgres_cpu_ms_per_generation"),
    }


def run(quick: bool = False, people: int | None = None, api: bool = False) -> dict[str, Any]:
    people = people or (10 if quick else 200)
    order = (1, 2) if quick else (1, 2, 1, 2)  # alternating: both layouts see the same machine
    bin_dir = find_binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL's initdb was not found (apt-get install -y postgresql)")
    preload = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track_planning": "on"}
    rounds: list[dict[str, Any]] = []
    with (
        PostgresServer.start(bin_dir, preload) as server,
        psycopg.connect(server.admin_url, autocommit=True) as admin,
        EmulatorProcess(LATENCY_S) as emulator,
    ):
        # In the admin database only: the view reads the server-wide statistics, filtered by the
        # app's database, so the app's own databases stay exactly as the app makes them.
        admin.execute("CREATE EXTENSION pg_stat_statements")
        for index, replicas in enumerate(order, 1):
            rounds.append(_round(server, admin, emulator, replicas, people, index, api))
            print(_line(rounds[-1]), file=sys.stderr, flush=True)
    layouts = {f"{n}_replica{'s' if n > 1 else ''}": _layout([r for r in rounds if r["replicas"] == n])
               for n in sorted(set(order))}  # fmt: skip
    for r in rounds:
        del r["added_s"]
    return {
        "people": people, "path": "api" if api else "page", "provider": PROVIDER, "latency_s": LATENCY_S,
        "order": list(order),
        "database": "a fresh database per round, new app processes on it, warm-up before the stats reset",
        "layouts": layouts, "rounds": rounds, "machine": machine_info(),
    }  # fmt: skip


def _line(r: dict[str, Any]) -> str:
    a, db = r["added"], r["db"]
    return (
        f"{r['replicas']} replica(s), round {r['round']}: {r['completed']}/{r['people']} ok,"
        f" {r['errors']} errors;"
        f" added p50 {a['p50_ms']} / p95 {a['p95_ms']} / max {a['max_ms']} ms; wall {r['wall_s']} s;"
        f" DB {db['ms_per_generation']} ms ({db['calls_per_generation']} statements, lock"
        f" {db['lock_ms_per_generation']} ms) per generation; CPU app {r['app_cpu_ms_per_generation']} ms,"
        f" PostgreSQL {r['postgres_cpu_ms_per_generation']} ms per generation"
        + (f"; e.g. {r['error_samples'][0]}" if r["errors"] else "")
    )


def table(report: dict[str, Any]) -> str:
    """The layouts as a Markdown table, as docs/benchmarks.md and docs/deploying.md show them."""
    lines = [
        "| layout | completed | errors | added p50 / p95 / max (ms) | wall (s) | DB per generation:"
        " statements + lock wait (max) | app CPU | PostgreSQL CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in report["layouts"].items():
        a = f["added"]
        lines.append(
            f"| {name.replace('_', ' ')} | {f['completed']} | {f['errors']} |"
            f" {a['p50_ms']} / {a['p95_ms']} / {a['max_ms']} | {' / '.join(map(str, f['wall_s']))} |"
            f" {f['db_calls_per_generation']} statements, {f['db_statements_ms_per_generation']} ms"
            f" + {f['db_lock_ms_per_generation']} ms ({f['db_lock_max_ms']}) |"
            f" {f['app_cpu_ms_per_generation']} ms |"
            f" {f['postgres_cpu_ms_per_generation']} ms |"
        )
    return "\n".join(lines)


def _stop(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: every process and the server stopped


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 10, one round per layout")
    parser.add_argument("--people", type=int, help="people at once per round (default 200; 10 with --quick)")
    parser.add_argument("--api", action="store_true", help="through the public API (keeps no history)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    report = run(args.quick, args.people, args.api)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(table(report))
    sys.exit(1 if any(f["errors"] for f in report["layouts"].values()) else 0)


if __name__ == "__main__":
    main()

"""Command line: `python -m flux_playground generate|prices|providers|check|stats`.

Providers, their choices and their variables come from the registry (providers/__init__.py).

Every command goes through the same backend as the page. Success prints JSON (or a table) on stdout;
a failure prints one line on stderr and exits non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from .errors import ConfigurationError, InvalidRequest, PlaygroundError
from .hf_router import TOKEN_ENV, local_token
from .live_check import check, plan, redact, server_secrets
from .live_check_text import plan_text, report_text
from .models import GenerationRequest, parse_request
from .providers import PROVIDERS, check_configuration
from .quotes import describe_providers, price_rows, quote
from .route_models import AUTO, AutoRoute, parse_ceiling
from .service import Playground
from .settings import Settings
from .stats import Stats, percent, stats

__all__ = ["main"]

EXIT_INVALID = 2
EXIT_FAILED = 1
_FIELDS = GenerationRequest.model_fields


def _help(name: str) -> str:
    """Help text from the model's own field description and limits, so they never drift apart."""
    field = _FIELDS[name]
    low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    limits = f" ({low}–{high})" if low is not None and high is not None else ""
    default = "" if field.default is None else f" Default: {field.default}."
    return f"{field.description}{limits}{default}"


def _add_request_options(parser: argparse.ArgumentParser, *, full: bool) -> None:
    # No argparse defaults: an option not given is left out, so the model's own default applies.
    parser.add_argument("--width", type=int, help=_help("width"))
    parser.add_argument("--height", type=int, help=_help("height"))
    parser.add_argument("--steps", type=int, help=_help("steps"))
    parser.add_argument("--num-images", type=int, dest="num_images", help=_help("num_images"))
    if full:
        parser.add_argument("--seed", type=int, help=_help("seed"))
        parser.add_argument("--sampler", help=_help("sampler"))
        parser.add_argument("--scheduler", help=_help("scheduler"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flux_playground",
        description="FLUX.1 [schnell] at hosted providers, with every provider's price up front.",
    )
    parser.add_argument(
        "--demo", action="store_true", help="Use the built-in emulator (placeholder images, no key, no cost)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="Generate images and save them as PNGs.")
    generate.add_argument("prompt", help=_help("prompt"))
    generate.add_argument(
        "--provider",
        required=True,
        choices=[*PROVIDERS, AUTO],
        help="A provider, or auto: the best ready one (see --prefer, --max-cost); if it refuses the job "
        "before accepting it (nothing billed), the next one, at most twice.",
    )
    generate.add_argument(
        "--prefer",
        choices=["cheapest", "fastest"],
        help="With --provider auto: the cheapest (default), or the fastest by this app's recent runs.",
    )
    generate.add_argument(
        "--max-cost", dest="max_cost", help="With --provider auto: at most this many USD a run."
    )
    generate.add_argument(
        "--via",
        choices=["direct", "hf"],
        default="direct",
        help="direct: the provider's own API and key (default). hf: through Hugging Face's router "
        f"(providers with a hugging_face_route in `providers`), billed to your Hugging Face account; "
        f"the token comes from {TOKEN_ENV}, else from `hf auth login` (~/.cache/huggingface/token).",
    )
    _add_request_options(generate, full=True)
    generate.add_argument("--out", type=Path, default=Path("."), help="Folder for the PNGs. Default: .")

    prices = commands.add_parser("prices", help="What one run costs at every provider.")
    _add_request_options(prices, full=False)
    prices.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    commands.add_parser("providers", help="What each provider supports.")

    live = commands.add_parser(
        "check",
        help="Check that each configured provider still answers as its client expects "
        "(one small paid image each, with --live).",
    )
    live.add_argument(
        "--live", action="store_true", help="Send the requests; without it, only show the cost."
    )
    live.add_argument(
        "--provider",
        dest="providers",
        action="extend",
        nargs="+",
        choices=list(PROVIDERS),
        metavar="ID",
        help=f"Only these providers ({', '.join(PROVIDERS)}). Default: every configured one.",
    )
    live.add_argument(
        "--yes", action="store_true", help="Do not ask before spending (needed without a terminal)."
    )
    live.add_argument(
        "--json", dest="json_file", type=Path, metavar="FILE", help="Also write the report to FILE."
    )
    live.add_argument(
        "--same-seed",
        action="store_true",
        help="Run each provider twice with the same seed and compare the images (twice the cost).",
    )
    figures = commands.add_parser(
        "stats", help="How fast and how reliably each provider answered this app's recent runs."
    )
    figures.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    return parser


def _request_fields(args: argparse.Namespace, prompt: str) -> dict[str, object]:
    names = ("width", "height", "steps", "num_images", "seed", "sampler", "scheduler")
    fields = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return {"prompt": prompt, **fields}


def _provider(args: argparse.Namespace) -> str:
    """The provider asked for, or the automatic route's token with its preference and ceiling."""
    if args.provider != AUTO:
        if args.prefer is not None or args.max_cost is not None:
            raise InvalidRequest("--prefer and --max-cost go with --provider auto.")
        return str(args.provider)
    ceiling = None if args.max_cost is None else parse_ceiling(args.max_cost)
    return AutoRoute(prefer=args.prefer or "cheapest", max_cost_usd=ceiling).token


async def _generate(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    request = parse_request(_request_fields(args, args.prompt))
    provider = _provider(args)
    # Read only when asked for: a Hugging Face login on this machine is never used unasked.
    token = local_token() if args.via == "hf" else None
    async with Playground(settings) as playground:
        result = await playground.generate(request, provider, person="cli", via=args.via, hf_token=token)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    files = []
    for index, image in enumerate(result.images):
        # The seed in the name only where the provider honours one (the image's own seed).
        seed = image.seed if image.seed is not None else "noseed"
        path = args.out / f"flux-{result.provider}-{seed}-{stamp}-{index}.png"
        path.write_bytes(image.png)
        files.append(str(path))
    return {
        "provider": result.provider,
        # "Together AI via Hugging Face" when it ran through Hugging Face's router (--via hf).
        "label": result.provider_label,
        "files": files,
        # None when the provider does not honour a seed (no claim the image can be made again).
        "seed": result.images[0].seed if result.images else None,
        # The size made, which an aspect-ratio or fixed-size provider may choose itself.
        "width": result.images[0].width if result.images else result.request.width,
        "height": result.images[0].height if result.images else result.request.height,
        "requested_size": [result.request.width, result.request.height],
        "steps": result.request.steps,
        "estimated_cost_usd": _number(result.estimated_cost_usd),
        "reported_cost_usd": _number(result.reported_cost_usd),
        "latency_s": round(result.latency_s, 3),
        "shortfall": result.shortfall,
        # --provider auto: which provider served it, what was tried on the way, and why.
        **({"route": result.route.model_dump(mode="json")} if result.route is not None else {}),
    }


def _prices(args: argparse.Namespace, settings: Settings) -> str:
    request = parse_request(_request_fields(args, "price check"))
    quotes = quote(request, settings)
    if args.json:
        rows = price_rows(quotes)
        fields = request.model_dump(exclude={"prompt", "seed", "sampler", "scheduler"})
        return json.dumps({"request": fields, "prices": rows}, indent=2)
    size = f"{request.width}×{request.height}, {request.steps} steps, {request.num_images} image(s)"
    lines = [f"One run at {size}:", ""]
    width = max(len(q.label) for q in quotes) + 2
    for q in sorted(quotes, key=lambda q: (q.cost is None, q.cost or 0)):
        note = "   (cannot take this: " + "; ".join(q.problems) + ")" if q.problems else ""
        basis = q.rule.describe() if q.rule is not None else "no price known"
        mark = "  ← cheapest" if q.cheapest else ""
        lines.append(f"  {q.label:<{width}} {q.cost_text:>11}   {basis}{note}{mark}")
    return "\n".join(lines)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    """The live contract check (live_check.py): the cost first, a yes on the terminal, then the runs."""
    planned = plan(settings, args.providers, attempts=2 if args.same_seed else 1)
    secrets = server_secrets(settings)
    if not planned.runs:
        needed = "; ".join(f"{name}: {', '.join(missing)}" for name, missing in planned.skipped.items())
        raise ConfigurationError(f"No chosen provider is configured. Set {needed}; then run the check again.")
    print(redact(plan_text(planned), secrets))
    if args.json_file is not None and not args.json_file.parent.is_dir():
        # Found out before anything is spent, not after the runs.
        raise InvalidRequest(
            f"There is no folder {args.json_file.parent} for the JSON report: "
            "create it or pick another --json path."
        )
    if not args.live:
        print("Nothing was sent: add --live to run it.")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidRequest(
                "The live check spends money and there is no terminal to ask on: add --yes to run it anyway."
            )
        print("Run it? [y/N] ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("Cancelled: nothing was sent.", file=sys.stderr)
            return EXIT_FAILED
    print("\nRunning…", flush=True)
    report = asyncio.run(check(settings, planned, same_seed=args.same_seed))
    print(redact(report_text(report), secrets))
    if args.json_file is not None:
        args.json_file.write_text(redact(report.model_dump_json(indent=2), secrets) + "\n", encoding="utf-8")
        print(f"Report written to {args.json_file}.")
    return 0 if report.ok else EXIT_FAILED


def _providers(settings: Settings) -> str:
    return json.dumps(describe_providers(settings), indent=2)


def _stats(args: argparse.Namespace, settings: Settings) -> str:
    report = stats(settings)
    return report.model_dump_json(indent=2) if args.json else stats_table(report, settings)


def stats_table(report: Stats, settings: Settings) -> str:
    """The statistics as a table: a row per provider and size class with runs; "–" below MIN_RUNS."""
    kind = "demo" if report.demo else "real"
    head = (
        f"Provider statistics from this app's own {kind} runs (the last {report.window_days:g} days, "
        f"at most {report.max_runs} runs per provider and size):"
    )
    measured = [s for s in report.providers if s.runs]
    if not measured:
        place = "the database" if settings.database_url else str(settings.data_dir.resolve())
        where = f"No runs recorded yet in {place}"
        return f"{head}\n\n{where}: every run this app makes (page, API, MCP, CLI) adds one."
    width = max(len(s.label) for s in measured) + 2
    columns = (
        f"  {'Provider':<{width}}{'Size':<10}{'Runs':>5}  {'p50':>7}  {'p95':>7}  {'OK':>6}  Last failure"
    )
    lines = [head, "", columns]
    for s in measured:
        p50 = "–" if s.p50_s is None else f"{s.p50_s:.1f} s"
        p95 = "–" if s.p95_s is None else f"{s.p95_s:.1f} s"
        ok = percent(s.success_rate) if s.enough and s.success_rate is not None else "–"
        failure = (
            "–"
            if s.last_failure is None
            else f"{s.last_failure.kind}, {s.last_failure.at:%Y-%m-%d %H:%M} UTC"
        )
        lines.append(f"  {s.label:<{width}}{s.size:<10}{s.runs:>5}  {p50:>7}  {p95:>7}  {ok:>6}  {failure}")
    lines += ["", f"Figures need {report.min_runs} runs; below that they show as –."]
    idle = [p.label for name, p in PROVIDERS.items() if not any(s.provider == name for s in measured)]
    if idle:
        lines.append(f"No runs yet: {', '.join(idle)}.")
    return "\n".join(lines)


def _number(value: object) -> float | None:
    return None if value is None else float(str(value))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        check_configuration()  # before the parser, whose provider choices come from the registry
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    args = build_parser().parse_args(argv)
    with ExitStack() as stack:
        try:
            # The CLI is in demo mode only when asked (--demo); the page falls back to it on its own.
            settings = Settings().model_copy(update={"demo": False})
            if args.demo:
                from .demo import start_demo

                settings = stack.enter_context(start_demo(settings))
            if args.command == "generate":
                print(json.dumps(asyncio.run(_generate(args, settings))))
            elif args.command == "prices":
                print(_prices(args, settings))
            elif args.command == "check":
                return _check(args, settings)
            elif args.command == "stats":
                print(_stats(args, settings))
            else:
                print(_providers(settings))
        except (InvalidRequest, ConfigurationError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        except PlaygroundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except OSError as exc:
            print(f"error: {exc.strerror or exc} ({getattr(exc, 'filename', '') or 'file'})", file=sys.stderr)
            return EXIT_FAILED
    return 0

"""The live check on a terminal: the cost before it runs, the table and one line per finding after.

Every line is made printable (a provider's words reach it, and a terminal obeys escape codes).
"""

from __future__ import annotations

from collections.abc import Sequence

from .live_check import CheckReport, Plan, ProviderReport
from .pricing import format_usd

__all__ = ["findings", "plan_text", "report_text"]

#: A reported charge within this factor of the estimate is no news.
_PRICE_SLACK = 1.25


def plan_text(plan: Plan) -> str:
    where = "the built-in emulator (demo mode: nothing is billed)" if plan.demo else "its real API"
    lines = [
        f"The live check sends one request per provider to {where}:",
        "the smallest image it takes, at its fewest steps, through the spend guard like any run.",
    ]
    rows: list[tuple[str, ...]] = [("provider", "size", "steps", "estimated cost")]
    for run in plan.runs:
        request = run.request
        rows.append(
            (run.provider, f"{request.width}×{request.height}", str(request.steps), run.quote.cost_text)
        )
    lines += ["  " + line for line in _columns(rows)]
    times = " (each provider runs twice: --same-seed)" if plan.attempts > 1 else ""
    total = f"About {format_usd(plan.total, significant=2)} in all{times}"
    if plan.unpriced:
        total += f", plus {', '.join(plan.unpriced)} (price unknown)"
    lines.append(total + ".")
    if plan.skipped:
        skipped = "; ".join(f"{name} (set {', '.join(missing)})" for name, missing in plan.skipped.items())
        lines.append(f"Skipped, not configured: {skipped}.")
    return _printable("\n".join(lines))


def report_text(report: CheckReport) -> str:
    """The table, then one line per provider that needs a word, then the verdict."""
    rows: list[tuple[str, ...]] = [
        ("provider", "reached", "answer shape", "size", "seed", "estimated", "reported", "latency")
    ]
    rows += [_row(provider) for provider in report.providers]
    lines = _columns(rows)
    notes = findings(report.providers)
    if notes:
        lines += ["", *notes]
    failed = sum(not provider.ok for provider in report.providers)
    count = len(report.providers)
    lines += ["", f"{failed} of {count} providers failed the check." if failed else f"All {count} passed."]
    return _printable("\n".join(lines))


def findings(providers: Sequence[ProviderReport]) -> list[str]:
    """One line per drift (its missing, mistyped and new fields together), per error, per size or
    seed that is not what the client expects, and per answer with fields worth a look."""
    lines: list[str] = []
    for report in providers:
        name, shape = report.provider, report.shape
        new = [entry if entry.startswith("(+") else f"new field `{entry}`" for entry in shape.new_fields]
        if shape.drift:
            lines.append(f"{name}: " + "; ".join([*shape.drift, *new]))
        elif new:
            lines.append(f"{name}: " + "; ".join(new) + " (not read by the client; worth a look)")
        if report.error is not None:
            lines.append(f"{name}: {report.error}")
        if report.size_ok is False and report.size is not None:
            made, expected = _size(report.size), _size(report.expected_size)
            lines.append(f"{name}: made {made}, not the {expected} the client expects (output_size)")
        if report.seed.used is not None and report.seed.used != report.seed.sent:
            lines.append(f"{name}: used seed {report.seed.used}, not the {report.seed.sent} sent")
        if report.seed.same_image is False:
            lines.append(f"{name}: the same seed made a different image (the seed is not honoured)")
        if (charged := _off_price(report)) is not None:
            lines.append(charged)
    return lines


def _off_price(report: ProviderReport) -> str | None:
    """A reported charge far from the estimate: the price we show may be out of date (not a failure)."""
    charged, estimated = report.reported_cost_usd, report.estimated_cost_usd
    if not charged or not estimated or 1 / _PRICE_SLACK <= charged / estimated <= _PRICE_SLACK:
        return None
    return (
        f"{report.provider}: charged {_usd(charged, '')}, {charged / estimated:.2g}× the estimate of "
        f"{_usd(estimated, '')} (is its price out of date? FLUX_PLAYGROUND_PRICES overrides it)"
    )


def _row(report: ProviderReport) -> tuple[str, ...]:
    shape = {None: "not checked", True: "as expected", False: "DRIFT"}[report.shape.ok]
    if report.size is None:
        size = "—"
    else:
        size = _size(report.size) + (" ok" if report.size_ok else f" ≠ {_size(report.expected_size)}")
    return (
        report.provider,
        "yes" if report.reached else "no",
        shape,
        size,
        _seed(report),
        _usd(report.estimated_cost_usd, "unknown"),
        _usd(report.reported_cost_usd, "—"),
        "—" if report.latency_s is None else f"{report.latency_s:.2f} s",
    )


def _seed(report: ProviderReport) -> str:
    seed = report.seed
    if not seed.offered:
        return "not taken"
    if not report.reached:
        return "—"
    if seed.used is not None and seed.used != seed.sent:
        return f"used {seed.used}"
    return {None: "not compared", True: "same image", False: "DIFFERENT"}[seed.same_image]


def _usd(value: float | None, missing: str) -> str:
    return missing if value is None else f"${value:.6f}".rstrip("0").rstrip(".")


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() or c == "\n" else "?" for c in text)

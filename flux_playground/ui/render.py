"""HTML for the page's read-only parts. Pure functions of plain values; everything shown is escaped
(prompts and provider messages are untrusted text)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from ..history_models import Spend
from ..models import GenerationRequest, GenerationResult
from ..pricing import format_usd
from ..route_models import RouteReport
from ..runs import Slot

__all__ = [
    "KEYS_NOTE",
    "PRICES_NOTE",
    "caption_html",
    "demo_banner_html",
    "details_html",
    "empty_history_html",
    "empty_results_html",
    "header_html",
    "hf_note_html",
    "keys_note_html",
    "history_count_html",
    "image_caption",
    "reopened_caption_html",
    "reopened_status_html",
    "result_caption",
    "route_html",
    "size_html",
    "slot_html",
    "spent_today_html",
    "stopped_html",
    "usd",
    "viewer_position_html",
]

KEYS_NOTE = (
    "Kept in this tab's memory only and sent with your requests; never stored "
    "(not on disk, not in logs, not in your history)."
)


def keys_note_html(demo: bool, providers: Sequence[tuple[str, str]]) -> str:
    """Above the key boxes: what happens to a pasted key, and where each provider hands one out."""
    if demo:
        use = (
            "This app is in demo mode: the built-in emulator answers every request, so a pasted key "
            "is not used (nor billed)."
        )
    else:
        use = "Leave a box empty to use the server's key; a pasted key is billed to you, not to the server."
    links = " · ".join(
        f'<a href="{escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{escape(label)}</a>'
        for label, url in providers
    )
    return f'<p class="fp-fine">{KEYS_NOTE} {use}</p><p class="fp-fine">Where to get a key: {links}</p>'


def header_html() -> str:
    return (
        '<header class="fp-header"><div class="fp-logo" aria-hidden="true">⚡</div><div>'
        "<h1>FLUX.1 [schnell] playground</h1>"
        "<p>One prompt, several hosted providers, side by side: the price before you pay, "
        "the seed, time and cost of every image, and a private history to come back to.</p>"
        "</div></header>"
    )


def demo_banner_html() -> str:
    return (
        '<div class="fp-banner" role="status"><strong>Demo mode.</strong> <span class="fp-long">No '
        "provider key is configured, so a built-in emulator answers every request and the images are "
        "<b>placeholders</b>, not FLUX output. Prices shown are what the real providers would charge; "
        'nothing is billed.</span><span class="fp-short">Placeholder images from a built-in emulator; '
        "real prices, nothing billed.</span></div>"
    )


def size_html(width: int, height: int, description: str) -> str:
    # A tiny frame with the chosen aspect ratio next to the numbers.
    scale = 28 / max(width, height)
    w, h = max(6, round(width * scale)), max(6, round(height * scale))
    return (
        f'<div class="fp-size"><span class="fp-size-box" style="width:{w}px;height:{h}px"></span>'
        f"<span>{escape(description)}</span></div>"
    )


def usd(value: Decimal | None) -> str:
    """For reading: two significant digits ("$0.0077"); the details panel shows the exact figures."""
    return format_usd(value, significant=2)


PRICES_NOTE = (
    "Estimated before you pay, at these settings (≈: our reading of the provider's published figures). "
    "Each image shows the real charge when the provider reports it. Hover a price for its source."
)


def hf_note_html(signed_in: bool, labels: Sequence[str]) -> str:
    """Near the picker, on a Space that asks for the Inference Providers permission: what signing in
    with Hugging Face gives (signed out), or what it does now (signed in). Empty when it gives nothing."""
    if not labels:
        return ""
    names = escape(", ".join(labels[:-1]) + (" and " if len(labels) > 1 else "") + labels[-1])
    if signed_in:
        text = (
            f"Signed in with Hugging Face: {names} run through Hugging Face on your own Hugging Face "
            'credits (<a href="https://huggingface.co/settings/billing" target="_blank" '
            'rel="noopener noreferrer">top up</a>); your token is used for your runs only, never kept.'
        )
    else:
        text = (
            f"<b>Sign in with Hugging Face</b> to run {names} on your own Hugging Face credits: no key "
            "needed, billed to your Hugging Face account, not to this Space."
        )
    return f'<p class="fp-fine" id="hf-note-text">{text}</p>'


def _usd(value: Decimal | None) -> str:
    return format_usd(value)


def result_caption(
    result: GenerationResult, seed: int | None, *, approximate: bool = False, demo: bool = False
) -> str:
    """'seed 42 · 1.23 s · est. $0.003 · billed $0.0021' (billed only when the provider says; in demo
    mode nothing is billed, and the caption says what the run would cost for real)."""
    parts = [f"seed {seed}" if seed is not None else "no seed", f"{result.latency_s:.2f}\u00a0s"]
    estimate = ("≈\u00a0" if approximate else "") + usd(result.estimated_cost_usd)
    if demo:
        parts.append(f"demo, nothing billed (real: {estimate})")
        return " · ".join(parts)
    parts.append(f"est. {estimate}")
    if result.reported_cost_usd is not None:
        parts.append(f"billed {usd(result.reported_cost_usd)}")
    return " · ".join(parts)


def image_caption(
    result: GenerationResult, seed: int | None, *, approximate: bool = False, demo: bool = False
) -> str:
    return f"{result.provider_label} · {result_caption(result, seed, approximate=approximate, demo=demo)}"


def _slot_head(slot: Slot, state: str) -> str:
    return (
        f'<div class="fp-slot-head"><span class="fp-slot-name">{escape(slot.label)}</span>'
        f'<span class="fp-stage {state}">{escape(state)}</span></div>'
    )


def slot_html(slot: Slot, now: float, request: GenerationRequest) -> str:
    """A provider's column header: progress while waiting, then "done" or the error."""
    if slot.error is not None:
        return (
            f'<div class="fp-slot failed">{_slot_head(slot, f"failed after {slot.elapsed(now):.1f} s")}'
            f'<div class="fp-error" role="alert"><strong>No image from {escape(slot.label)}</strong>'
            f"<p>{escape(slot.error)}</p></div></div>"
        )
    if slot.result is not None:
        return f'<div class="fp-slot done">{_slot_head(slot, f"done in {slot.elapsed(now):.1f} s")}</div>'
    ratio = f"{request.width} / {request.height}"
    return (
        f'<div class="fp-slot running">{_slot_head(slot, f"{slot.elapsed(now):.1f} s")}'
        f'<div class="fp-skeleton" style="aspect-ratio:{ratio}"><span class="fp-spinner"></span>'
        f"<span>{escape(slot.status(now))}</span></div></div>"
    )


def caption_html(
    result: GenerationResult, note: str = "", *, approximate: bool = False, demo: bool = False
) -> str:
    """Under the images: seed, latency and cost (estimated, and billed when the provider says), and
    the size the provider actually made (which may differ from the size asked for)."""
    # The image's own seed: None where the provider does not honour one (never the seed we sent).
    seed = result.images[0].seed if result.images else None
    count = len(result.images)
    made = (result.images[0].width, result.images[0].height) if result.images else None
    size = f"{made[0]}\u00a0×\u00a0{made[1]}" if made else ""
    asked = (result.request.width, result.request.height)
    if made and made != asked:
        size += f" (asked {asked[0]}\u00a0×\u00a0{asked[1]})"
    caption = result_caption(result, seed, approximate=approximate, demo=demo)
    warnings = [text for text in (result.shortfall, note) if text]
    extra = "".join(f'<p class="fp-warn">{escape(text)}</p>' for text in warnings)
    return (
        f'<div class="fp-slot-caption"><p class="fp-caption">{escape(caption)}</p>'
        f'<p class="fp-sub">{count} image{"s" if count != 1 else ""} · {size}</p>{extra}</div>'
    )


def route_html(report: RouteReport) -> str:
    """Under the automatic card's images: which provider it chose and why, and what it tried first."""
    served = next((a for a in report.tried if a.outcome == "served"), None)
    lines = [report.chosen_because]
    for attempt in report.tried:
        if attempt.outcome == "failed":
            billed = "may have been billed" if attempt.billed else "nothing billed"
            lines.append(f"Tried {attempt.label} first: {attempt.failure or 'failed'} ({billed}).")
    head = f"Served by {served.label}. " if served is not None else ""
    return f'<p class="fp-route">{escape(head + " ".join(lines))}</p>'


def reopened_status_html(label: str, created_at: float, kept: bool) -> str:
    """A card reopened from the history: whose it is and when it was made (or that none was kept)."""
    when = datetime.fromtimestamp(created_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    state = f"from your history · {when}" if kept else "no image kept (it failed or was deleted)"
    return (
        f'<div class="fp-slot {"done" if kept else "failed"}"><div class="fp-slot-head">'
        f'<span class="fp-slot-name">{escape(label)}</span><span class="fp-stage">{escape(state)}</span>'
        "</div></div>"
    )


def reopened_caption_html(
    seed: int | None, latency_s: float, estimated: Decimal | None, reported: Decimal | None, size: str
) -> str:
    parts = [
        f"seed {seed}" if seed is not None else "no seed",
        f"{latency_s:.2f}\u00a0s",
        f"est. {usd(estimated)}",
    ]
    if reported is not None:
        parts.append(f"billed {usd(reported)}")
    return (
        f'<div class="fp-slot-caption"><p class="fp-caption">{escape(" · ".join(parts))}</p>'
        f'<p class="fp-sub">{escape(size)}</p></div>'
    )


def stopped_html(label: str) -> str:
    return (
        f'<div class="fp-slot failed"><div class="fp-slot-head"><span class="fp-slot-name">'
        f'{escape(label)}</span><span class="fp-stage">stopped</span></div>'
        '<div class="fp-error"><strong>Stopped</strong><p>You stopped waiting. The provider may still '
        "finish this run and bill it; its image will not be shown or saved.</p></div></div>"
    )


# Inline SVG: emoji fonts are not everywhere (and no icon font is fetched).
_IMAGE_ICON = (
    '<svg width="40" height="40" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.5" '
    'stroke-linecap="round" stroke-linejoin="round"><rect x="3" y="3" width="18" height="18" rx="3"/>'
    '<circle cx="8.5" cy="8.5" r="1.5"/><path d="m21 15-5-5L5 21"/></svg>'
)


def empty_results_html() -> str:
    return (
        f'<div class="fp-empty"><div class="fp-empty-icon" aria-hidden="true">{_IMAGE_ICON}</div>'
        "<h3>Your images will appear here</h3><p>Write a prompt, pick one or more providers and press "
        "<b>Generate</b> (or Ctrl/⌘ + Enter). Each provider gets its own column, side by side.</p></div>"
    )


def empty_history_html(filtered: bool, *, query: str = "") -> str:
    if filtered:
        words = f" for “{escape(query)}”" if query else ""
        return (
            f'<div class="fp-empty small"><p>No image matches{words}. Every word must start a word of '
            "the prompt, in any order: try fewer or shorter words.</p></div>"
        )
    return (
        '<div class="fp-empty small"><p>Your images will appear here, newest first. They are saved '
        "as soon as they arrive and only you can see them.</p></div>"
    )


def history_count_html(
    shown: int, total: int, who: str, *, everything: int | None = None, query: str = ""
) -> str:
    """'Showing 48 of 120 images', '3 of 30 images match', 'No match in your 30 images'."""
    everything = total if everything is None else everything
    plural = "s" if everything != 1 else ""
    if everything == 0:
        text = "No images yet"
    elif total != everything:
        text = (
            f"{total} of {everything} image{plural} match"
            if total
            else f"No match in your {everything} image{plural}"
        )
    elif shown < total:
        text = f"Showing {shown} of {total} images"
    else:
        text = f"{total} image{plural}"
    if 0 < shown < total != everything:
        text += f" (showing {shown})"
    return f'<p class="fp-count">{escape(text)} · private to {escape(who)}</p>'


def spent_today_html(spend: Spend, *, demo: bool) -> str:
    """'Today: ≈ $0.024 for 8 results · $0.0031 billed, as 2 providers reported it' (UTC day)."""
    if not spend.results:
        return ""
    plural = "s" if spend.results != 1 else ""
    if demo:
        return (
            f'<p class="fp-count fp-today">Today: {spend.results} result{plural}, nothing billed '
            f"(demo mode; ≈ {usd(spend.estimated_usd)} for real)</p>"
        )
    text = f"Today: ≈ {usd(spend.estimated_usd)} for {spend.results} result{plural}"
    if spend.reported_results:
        text += f" · {usd(spend.reported_usd)} billed, as reported for {spend.reported_results} of them"
    return f'<p class="fp-count fp-today" title="Since 00:00 UTC, deleted images included">{escape(text)}</p>'


def viewer_position_html(position: int, shown: int) -> str:
    """Where the viewer is among the thumbnails shown: "3 of 30"."""
    return f'<span class="fp-position">{position + 1} of {shown}</span>'


def details_html(
    *,
    prompt: str,
    provider_label: str,
    width: int,
    height: int,
    steps: int,
    seed: int | None,
    sampler: str | None,
    scheduler: str | None,
    num_images: int,
    index: int,
    estimated: Decimal | None,
    reported: Decimal | None,
    latency_s: float,
    created_at: float,
) -> str:
    created = datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("Provider", provider_label),
        ("Size", f"{width} × {height}"),
        ("Steps", str(steps)),
        ("Seed", "unknown" if seed is None else str(seed)),
        ("Sampler", sampler or "provider default"),
        ("Scheduler", scheduler or "provider default"),
        ("Image", f"{index + 1} of {num_images}"),
        ("Cost (estimated)", _usd(estimated)),
        ("Cost (billed)", _usd(reported) if reported is not None else "not reported"),
        ("Latency", f"{latency_s:.2f} s"),
        ("Created", created),
    ]
    cells = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    # data-seed: what "Copy seed" copies (page.js); none when the provider did not report one.
    seed_attr = f' data-seed="{seed}"' if seed is not None else ""
    return (
        f'<div class="fp-details"{seed_attr}><p class="fp-prompt">{escape(prompt)}</p>'
        f'<dl class="fp-params">{cells}</dl></div>'
    )

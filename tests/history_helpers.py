"""Small results and a settable clock for the history tests (no provider, no network)."""

from __future__ import annotations

import io
from decimal import Decimal

from PIL import Image

from flux_playground.history import History
from flux_playground.models import GeneratedImage, GenerationRequest, GenerationResult

#: 2026-03-14 12:00 UTC: noon, so "today" has room on both sides.
NOON = 1_773_489_600.0


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tiny_png(shade: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (shade % 256, 90, 140)).save(out, format="PNG")
    return out.getvalue()


def result(
    prompt: str = "a red fox",
    provider: str = "segmind",
    *,
    n: int = 1,
    seed: int = 7,
    estimated: str | None = "0.002",
    reported: str | None = None,
    **request: object,
) -> GenerationResult:
    req = GenerationRequest.model_validate({"prompt": prompt, "seed": seed, "num_images": n, **request})
    return GenerationResult(
        provider=provider,
        provider_label=provider.title(),
        request=req,
        images=[GeneratedImage(png=tiny_png(i), width=32, height=32, seed=seed) for i in range(n)],
        payload={},
        estimated_cost_usd=None if estimated is None else Decimal(estimated),
        reported_cost_usd=None if reported is None else Decimal(reported),
        latency_s=1.0,
    )


def stored_bytes(store: History) -> bytes:
    """Everything the store's database holds: the SQLite files' bytes, or every row of every
    PostgreSQL table as text (what a database dump would show)."""
    db = store._db
    if db.dialect == "sqlite":
        path = db.path  # type: ignore[attr-defined]
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    with db.reading() as sql:
        tables = [
            row[0] for row in sql.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        return "\n".join(
            str(row[0]) for table in tables for row in sql.execute(f"SELECT t::text FROM {table} AS t")
        ).encode()


def stored_tables(store: History) -> set[str]:
    with store._db.reading() as sql:
        if store._db.dialect == "sqlite":
            found = sql.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            found = sql.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {str(row[0]) for row in found}

"""Fixtures for the page: settings pointed at the loopback emulator, and a launched app."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from PIL import Image

from flux_playground.demo import point_at
from flux_playground.emulator.server import EmulatorServer
from flux_playground.models import GeneratedImage, GenerationRequest, GenerationResult
from flux_playground.providers import PROVIDERS
from flux_playground.settings import Settings

from .appclient import serve


def emulator_settings(
    server: EmulatorServer, data_dir: Path, key: str = "test-key", **overrides: Any
) -> Settings:
    """Every provider at the emulator with a server key (any key works there)."""
    values: dict[str, Any] = {"data_dir": data_dir, "request_timeout": 10.0, "job_timeout": 10.0}
    return point_at(Settings(_env_file=None, **{**values, **overrides}), server.base_urls, key)


def png_bytes(color: tuple[int, int, int] = (30, 90, 200), size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def make_result(provider: str = "segmind", **request: Any) -> GenerationResult:
    fields = {
        "prompt": "a lighthouse at dusk",
        "width": 832,
        "height": 1216,
        "steps": 3,
        "seed": 1234,
        "num_images": 1,
        "sampler": "euler",
        "scheduler": "karras",
        **request,
    }
    req = GenerationRequest(**fields)
    return GenerationResult(
        provider=provider,
        provider_label=PROVIDERS[provider].label,
        request=req,
        images=[GeneratedImage(png=png_bytes(), width=64, height=48, seed=req.seed)],
        payload={"prompt": req.prompt},
        estimated_cost_usd=Decimal("0.008"),
        reported_cost_usd=None,
        latency_s=1.25,
    )


@dataclass
class Launched:
    url: str
    demo: gr.Blocks
    settings: Settings


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Launched, EmulatorServer]]:
    """The real page on a free port, providers at a private emulator (faults injected here stay here)."""
    with EmulatorServer(latency=0.05) as server:
        settings = emulator_settings(server, tmp_path_factory.mktemp("data"))
        with serve(settings) as app:
            yield Launched(app.url, app.demo, settings), server

"""End to end over real HTTP: our client against the emulator, which was written from the providers'
docs (not from our client). Every provider, every documented variant, every injected fault."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from faultmatrix import TIMEOUTS, check_backend, tiered_cases
from PIL import Image
from pydantic import SecretStr

from flux_playground import GenerationRequest, Playground, Settings
from flux_playground.demo import point_at
from flux_playground.errors import (
    AuthenticationFailed,
)
from flux_playground.images import read_png_text
from flux_playground.providers import PROVIDERS

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-e2e-DISTINCTIVE-7f3a9c"


@pytest.fixture
def server(emulator: Any) -> Any:
    emulator.reset()
    return emulator


def settings_for(server: Any, tmp_path: Path, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "data_dir": tmp_path,
        "request_timeout": 5,
        "job_timeout": 5,
        "download_timeout": 5,
    }
    return point_at(Settings(_env_file=None, **{**fields, **overrides}), server.base_urls, KEY)


def posts(server: Any, provider: str) -> int:
    return int(server.stats()["requests"].get(provider, {}).get("submit", 0))


async def generate(settings: Settings, provider: str, prompt: str = "a red fox", **fields: Any) -> Any:
    request = GenerationRequest(prompt=prompt, width=512, height=512, seed=42, **fields)
    async with Playground(settings) as playground:
        return await playground.generate(request, provider)


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_every_provider_returns_a_png_that_describes_itself(
    server: Any, tmp_path: Path, provider: str
) -> None:
    """Truthful metadata: the size actually made (which the quote predicted), the seed and steps only
    where the provider honours them, what it was sent, never the key."""
    settings = settings_for(server, tmp_path)
    result = await generate(settings, provider)

    assert result.provider == provider and result.request.seed == 42
    (image,) = result.images
    assert Image.open(io.BytesIO(image.png)).format == "PNG"
    chosen = PROVIDERS[provider]
    caps = chosen.get_capabilities(settings)
    predicted = chosen.output_size(result.request, settings)
    assert (image.width, image.height) == predicted
    text = read_png_text(image.png)
    assert text["parameters"].startswith("a red fox\n")
    assert f"Provider: {chosen.label}" in text["parameters"]
    assert f"Size: {image.width}x{image.height}" in text["parameters"]
    assert ("Steps: 4" in text["parameters"]) == caps.steps
    assert ("Seed: " in text["parameters"]) == (caps.seed or image.seed is not None)
    provenance = json.loads(text["flux_playground"])
    assert provenance["payload"] == result.payload and provenance["request"]["seed"] == 42
    assert provenance["honoured"] == {
        "seed": caps.seed or image.seed is not None,
        "steps": caps.steps,
        "size": predicted == (512, 512),
    }
    assert KEY not in text["parameters"] + text["flux_playground"]
    assert result.estimated_cost_usd is not None and result.estimated_cost_usd > 0
    assert posts(server, provider) == 1


async def test_deepinfra_reports_the_real_charge_and_segmind_the_credits(server: Any, tmp_path: Path) -> None:
    settings = settings_for(server, tmp_path)
    deepinfra = await generate(settings, "deepinfra", steps=4)
    # 0.0005 × (512/1024)² × 4 steps, as the model page's formula says.
    assert deepinfra.reported_cost_usd == Decimal("0.0005")
    assert deepinfra.estimated_cost_usd == Decimal("0.0005")
    segmind = await generate(settings, "segmind")
    assert segmind.remaining_credits is not None and float(segmind.remaining_credits) > 0


async def test_deepinfra_openai_compatible_endpoint(server: Any, tmp_path: Path) -> None:
    openai = settings_for(server, tmp_path).with_provider("deepinfra", options={"endpoint": "openai"})
    result = await generate(openai, "deepinfra")
    assert result.payload == {
        "prompt": "a red fox",
        "n": 1,
        "size": "512x512",
        "response_format": "b64_json",
        "model": "black-forest-labs/FLUX-1-schnell",
    }
    assert result.images[0].seed is None  # the OpenAI endpoint is not sent a seed, so none is claimed
    assert server.stats()["requests"]["deepinfra"]["POST /v1/openai/images/generations"] == 1


@pytest.mark.parametrize(
    "variant", ["flat", "succeeded", "base64", "datauri", "url_objects", "flat,succeeded,base64"]
)
async def test_atlas_response_variants_are_all_understood(server: Any, tmp_path: Path, variant: str) -> None:
    result = await generate(settings_for(server, tmp_path), "atlascloud", prompt=f"a fox [variant:{variant}]")
    assert len(result.images) == 1 and posts(server, "atlascloud") == 1


@pytest.mark.slow
async def test_atlas_tolerates_404_on_a_fresh_prediction(server: Any, tmp_path: Path) -> None:
    result = await generate(settings_for(server, tmp_path), "atlascloud", prompt="a fox [fault:404_fresh]")
    assert len(result.images) == 1
    assert posts(server, "atlascloud") == 1


@pytest.mark.slow
async def test_atlas_notices_completion_quickly(server: Any, tmp_path: Path) -> None:
    settings = settings_for(server, tmp_path)
    async with Playground(settings) as playground:
        for _ in range(3):
            await playground.generate(GenerationRequest(prompt="a fox [latency:0.6]"), "atlascloud")
    delays = [job["notice_delay"] for job in server.jobs()]
    assert len(delays) == 3 and max(delays[1:]) < 0.25, delays  # once it has seen one job


async def test_several_images_per_run(server: Any, tmp_path: Path) -> None:
    settings = settings_for(server, tmp_path)
    for provider in ("atlascloud", "deepinfra"):
        result = await generate(settings, provider, num_images=3)
        assert len(result.images) == 3


async def test_a_key_the_provider_refuses_names_the_variable_and_is_not_echoed(
    server: Any, tmp_path: Path
) -> None:
    bad = "invalid-" + KEY
    settings = settings_for(server, tmp_path).with_provider("segmind", api_key=bad)
    with pytest.raises(AuthenticationFailed) as info:
        await generate(settings, "segmind")
    assert "SEGMIND_API_KEY" in str(info.value) and bad not in str(info.value)


async def test_a_persons_own_key_is_used_instead_of_the_servers(server: Any, tmp_path: Path) -> None:
    settings = settings_for(server, tmp_path).with_provider("deepinfra", api_key="invalid-server-key")
    async with Playground(settings) as playground:
        result = await playground.generate(
            GenerationRequest(prompt="a fox", width=512, height=512),
            "deepinfra",
            api_key=SecretStr("person-key"),
        )
    assert result.images


# --- the fault matrix (tests/faultmatrix.py) ----------------------------------------------------------


@pytest.mark.parametrize(("provider", "fault"), tiered_cases())
async def test_fault_gives_the_right_error_and_never_a_second_post(
    server: Any, tmp_path: Path, provider: str, fault: str
) -> None:
    await check_backend(server, settings_for(server, tmp_path, **TIMEOUTS), provider, fault, tmp_path)


@pytest.mark.slow
def test_cli_generates_from_the_emulator_and_prices_match_the_docs(server: Any, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name, chosen in PROVIDERS.items():
        env[f"{name.upper()}_BASE_URL"] = server.base_urls[name]
        env[chosen.key_env[0]] = KEY
        # A required option (an account id) gets the placeholder demo mode gives it.
        env.update({option.env[0]: f"demo-{option.name}" for option in chosen.options if option.required})
    for provider in PROVIDERS:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "flux_playground",
                "generate",
                "a red fox",
                "--provider",
                provider,
                "--width",
                "512",
                "--height",
                "512",
                "--seed",
                "7",
                "--out",
                str(tmp_path / provider),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=True,
        )
        printed = json.loads(out.stdout)
        assert set(printed) == {
            "provider",
            "label",
            "files",
            "seed",
            "width",
            "height",
            "requested_size",
            "steps",
            "estimated_cost_usd",
            "reported_cost_usd",
            "latency_s",
            "shortfall",
        }
        honours_seed = PROVIDERS[provider].capabilities.seed  # the seed is claimed only where honoured
        assert (printed["provider"], printed["label"]) == (provider, PROVIDERS[provider].label)
        assert printed["seed"] == (7 if honours_seed else None)
        (file,) = printed["files"]
        assert ("Seed: 7" in read_png_text(Path(file).read_bytes())["parameters"]) == honours_seed
        assert KEY not in out.stdout + out.stderr
    prices = subprocess.run(
        [sys.executable, "-m", "flux_playground", "prices", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    rows = {row["provider"]: row for row in json.loads(prices.stdout)["prices"]}
    assert rows["deepinfra"]["estimated_cost_usd"] == 0.002
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "flux_playground",
            "generate",
            "x [fault:credits]",
            "--provider",
            "segmind",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert failed.returncode == 1 and failed.stdout == ""
    assert (
        failed.stderr.startswith("error: Segmind: the account is out of credits")
        and "Traceback" not in failed.stderr
    )

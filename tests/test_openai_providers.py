"""An OpenAI-compatible endpoint added by the app's owner with configuration alone, end to end.

FLUX_PLAYGROUND_OPENAI_PROVIDERS names "selfhosted", pointed at the emulator's Together route (an
OpenAI-style endpoint with width/height, steps, seed and "base64"). The CLI, started fresh so it reads
the variable at import like the app does, lists it, prices it and generates with it (no --demo); the
library does too; its key goes to its origin and nowhere else; a mistake in the variable stops the CLI
and the app with one sentence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flux_playground import GenerationRequest, Playground, Settings, providers
from flux_playground.cli import main as cli_main
from flux_playground.emulator.server import EmulatorServer
from flux_playground.errors import AuthenticationFailed
from flux_playground.images import read_png_text
from flux_playground.providers.openai_images import owner_providers

REPO = Path(__file__).resolve().parents[1]
KEY = "selfhosted-DISTINCTIVE-key-5e1f"
VARIABLE = "FLUX_PLAYGROUND_OPENAI_PROVIDERS"


@pytest.fixture
def server(emulator: EmulatorServer) -> EmulatorServer:
    emulator.reset()  # the session's emulator (tests/conftest.py), as a new one
    return emulator


def entry(server: EmulatorServer, **fields: Any) -> dict[str, Any]:
    return {
        "id": "selfhosted",
        "label": "Self-hosted FLUX",
        "base_url": server.base_urls["together"],
        "model": "black-forest-labs/FLUX.1-schnell",
        "key_env": "SELFHOSTED_API_KEY",
        "size_style": "width_height",
        "steps_field": "steps",
        "seed_field": "seed",
        "response_format": "base64",
        "max_images": 2,
        "price": {"basis": "per_image", "usd": "0.001"},
        **fields,
    }


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flux_playground", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        timeout=120,
    )


def only_calls_went_to_its_origin(server: EmulatorServer, count: int) -> None:
    """Every request the emulator saw was a POST to the configured route, with a Bearer key."""
    totals = {name: counts.get("total", 0) for name, counts in server.stats()["requests"].items()}
    assert totals == {name: count if name == "together" else 0 for name in totals}
    seen = server.requests()
    assert [(r["method"], r["path"]) for r in seen] == [("POST", "/together/v1/images/generations")] * count
    assert {r["headers"]["authorization"] for r in seen} == {"Bearer [redacted]"}


@pytest.mark.slow  # a process of its own, or real seconds of waiting
def test_the_cli_reads_it_at_start_and_generates_with_it(server: EmulatorServer, tmp_path: Path) -> None:
    env = {VARIABLE: json.dumps([entry(server)]), "SELFHOSTED_API_KEY": KEY}
    args = (
        "generate",
        "a red fox",
        "--provider",
        "selfhosted",
        "--seed",
        "7",
        "--width",
        "512",
        "--height",
        "512",
    )
    generated = cli(env, tmp_path, *args, "--out", str(tmp_path / "out"))
    assert generated.returncode == 0, generated.stderr
    printed = json.loads(generated.stdout)
    assert (printed["provider"], printed["seed"], printed["estimated_cost_usd"]) == ("selfhosted", 7, 0.001)
    (png,) = printed["files"]
    parameters = read_png_text(Path(png).read_bytes())["parameters"]
    assert "Provider: Self-hosted FLUX" in parameters and "Seed: 7" in parameters and "Steps: 4" in parameters
    assert KEY not in generated.stdout + generated.stderr + Path(png).read_bytes().decode("latin-1")
    only_calls_went_to_its_origin(server, 1)
    assert server.requests()[0]["body"] == {
        "prompt": "a red fox",
        "n": 1,
        "width": 512,
        "height": 512,
        "steps": 4,
        "seed": 7,
        "response_format": "base64",
        "model": "black-forest-labs/FLUX.1-schnell",
    }


def test_a_mistake_stops_the_cli_with_one_sentence(server: EmulatorServer, tmp_path: Path) -> None:
    # Before the argument parser, which would otherwise call "selfhosted" an invalid choice.
    failed = cli(
        {VARIABLE: json.dumps([entry(server, id="together")])},
        tmp_path,
        "generate",
        "x",
        "--provider",
        "selfhosted",
    )
    assert (failed.returncode, failed.stdout) == (2, "")
    assert failed.stderr == (
        f'error: {VARIABLE}, entry 1: id "together" is already a provider: choose another id; '
        "fix it in the environment or the .env file.\n"
    )


@pytest.mark.slow  # imports Gradio
def test_a_mistake_stops_the_app_with_one_sentence(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"{VARIABLE}=[{{\n")  # read from .env, like every setting
    failed = subprocess.run(
        [sys.executable, str(REPO / "app.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        timeout=120,
    )
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith(f"error: {VARIABLE}: is not valid JSON")


@pytest.fixture
def selfhosted(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What the registry does at import, with the variable set now (the registry was imported before)."""
    monkeypatch.setenv(VARIABLE, json.dumps([entry(server)]))
    for provider in owner_providers(providers.PROVIDERS):
        providers.register(provider)
    try:
        yield
    finally:
        providers.unregister("selfhosted")


def test_the_cli_lists_it_and_prices_it(
    selfhosted: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SELFHOSTED_API_KEY", KEY)
    assert cli_main(["providers"]) == 0
    listed = json.loads(capsys.readouterr().out)["selfhosted"]
    assert (listed["label"], listed["ready"], listed["price"]) == (
        "Self-hosted FLUX",
        "server key",
        "$0.001 per image",
    )
    assert (listed["key_env"], listed["base_url_env"]) == (["SELFHOSTED_API_KEY"], "SELFHOSTED_BASE_URL")
    assert (listed["steps"], listed["seed"], listed["max_images"]) == (True, True, 2)
    assert cli_main(["prices", "--json", "--num-images", "2"]) == 0
    row = next(
        row for row in json.loads(capsys.readouterr().out)["prices"] if row["provider"] == "selfhosted"
    )
    assert (row["estimated_cost_usd"], row["basis"], row["source"]) == (
        0.002,
        "$0.001 per image",
        "set by the app's owner",
    )


async def test_the_library_generates_with_it(
    selfhosted: None, server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELFHOSTED_API_KEY", KEY)
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert providers.PROVIDERS["selfhosted"].configured(settings) and not settings.demo_mode
    request = GenerationRequest(prompt="a blue fox", width=512, height=768, seed=3, num_images=2)
    async with Playground(settings) as playground:
        result = await playground.generate(request, "selfhosted")
    assert [(image.width, image.height, image.seed) for image in result.images] == [(512, 768, 3)] * 2
    assert result.estimated_cost_usd is not None and str(result.estimated_cost_usd) == "0.002"
    assert KEY not in json.dumps(result.payload) + repr(result)
    only_calls_went_to_its_origin(server, 1)


async def test_the_key_it_sends_is_its_own(
    selfhosted: None, server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELFHOSTED_API_KEY", "invalid-" + KEY)  # the emulator refuses keys like this
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)  # a good key, but another provider's
    settings = Settings(_env_file=None, data_dir=tmp_path)
    with pytest.raises(AuthenticationFailed) as info:
        async with Playground(settings) as playground:
            await playground.generate(GenerationRequest(prompt="x", width=512, height=512), "selfhosted")
    assert str(info.value).startswith("Self-hosted FLUX: the API key was refused")
    assert "SELFHOSTED_API_KEY" in str(info.value) and KEY not in str(info.value)

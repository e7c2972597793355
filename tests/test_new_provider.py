"""A provider written in this file, registered at runtime, shows up everywhere with no other file
changed: the CLI (`providers`, `prices --json`, `generate` against the emulator), the page (choices,
price table, key box, result column), the public API, and both fault matrices.

docs/adding-a-provider.md is written from this test: the two classes below are what a newcomer writes
(plus the docs page), and `register(...)` stands for the one line in each registry.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from faultmatrix import TIMEOUTS, App, cases, check_app, check_backend
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from ui.appclient import call_api, event_data, mcp_session, page_fn_index, serve
from ui.conftest import emulator_settings

from flux_playground import cli, providers
from flux_playground import emulator as emulation
from flux_playground.emulator.common import bearer_token, get_int, get_prompt, key_is_valid, read_json_object
from flux_playground.emulator.emulated import EmulatedProvider
from flux_playground.emulator.faults import Dialect
from flux_playground.emulator.images import ImageSpec
from flux_playground.emulator.server import EmulatorServer
from flux_playground.emulator.state import EmulatorState
from flux_playground.history import History
from flux_playground.images import read_png_text
from flux_playground.models import Capabilities, GenerationRequest
from flux_playground.pricing import PriceRule
from flux_playground.providers import AnswerContract, Provider, ProviderOutput, Read
from flux_playground.settings import Settings
from flux_playground.ui.form import key_field

# --- the provider module: flux_playground/providers/acme.py ------------------------------------------


class Acme(Provider):
    name = "acme"
    label = "Acme Images"
    model_id = "acme/flux-1-schnell"
    docs_url = "https://acme.test/docs/flux-schnell"
    key_env = ("ACME_API_KEY",)
    default_base_url = "https://api.acme.test"
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=256, max_size=1024, size_multiple=64, min_steps=1, max_steps=4, max_images=2
    )
    price = PriceRule(
        basis="per_image",
        usd=Decimal("0.0011"),
        source="https://acme.test/pricing",
        checked=date(2026, 12, 1),
    )

    def route(self, settings: Settings) -> str:
        return "/v1/images"

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        return {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "seed": request.seed,
            "n": request.num_images,
            "model": self.model_id,  # last, so nothing overrides it
        }

    contract = AnswerContract(result=(Read("images", "list"), Read("images[]", "text")))

    def parse(self, response: httpx.Response) -> ProviderOutput:
        images = self.read_json(response).get("images")
        if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
            raise self.malformed("no images in the answer")
        return ProviderOutput(items=list(images))


# --- its emulator module: flux_playground/emulator/acme.py ------------------------------------------


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


ACME_DIALECT = Dialect("acme", _error)


def acme_routes(state: EmulatorState) -> list[BaseRoute]:
    async def images(request: Request) -> Response:
        state.hit(request, "acme", "submit", "/v1/images")
        if (faulted := await state.queued_fault("acme", "submit", request, ACME_DIALECT)) is not None:
            return faulted
        if not key_is_valid(bearer_token(request)):
            return _error(401, "invalid key")
        body = await read_json_object(request)
        size = (
            get_int(body, "width", 1024, 256, 1024, 64) or 0,
            get_int(body, "height", 1024, 256, 1024, 64) or 0,
        )
        seed = get_int(body, "seed", 1, 0, 2**31 - 1) or 0
        count = get_int(body, "n", 1, 1, 2) or 1
        specs = [ImageSpec(get_prompt(body), seed + i, *size, "acme") for i in range(count)]
        await asyncio.sleep(state.latency_for("acme"))
        data = [base64.b64encode(await state.images.get(spec)).decode() for spec in specs]
        return JSONResponse({"images": data})

    return [Route("/v1/images", images, methods=["POST"])]


ACME_EMULATED = EmulatedProvider(name="acme", routes=acme_routes)

# --- the tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acme() -> Iterator[None]:
    providers.register(Acme())
    emulation.register(ACME_EMULATED)
    try:
        yield
    finally:
        providers.unregister("acme")
        emulation.unregister("acme")


@pytest.fixture(scope="module")
def server(acme: None) -> Iterator[EmulatorServer]:
    with EmulatorServer(latency=0.05) as emulator:  # made after the registration: it serves Acme
        yield emulator


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.mark.slow  # a process of its own, or real seconds of waiting
def test_the_cli_lists_prices_and_generates_with_it(
    acme: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    listed = json.loads(run_cli(capsys, "providers"))["acme"]
    assert listed["label"] == "Acme Images" and listed["key_env"] == ["ACME_API_KEY"]
    assert listed["base_url_env"] == "ACME_BASE_URL" and listed["ready"] == "not configured"
    prices = json.loads(run_cli(capsys, "prices", "--json"))["prices"]
    row = next(p for p in prices if p["provider"] == "acme")
    assert row["estimated_cost_usd"] == 0.0011 and row["basis"] == "$0.0011 per image"
    out = json.loads(
        run_cli(capsys, "--demo", "generate", "a red fox", "--provider", "acme", "--out", str(tmp_path))
    )
    (png,) = out["files"]
    assert "Provider: Acme Images" in read_png_text(Path(png).read_bytes())["parameters"]


def test_the_environment_configures_it(acme: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", "from-the-environment")
    monkeypatch.setenv("ACME_BASE_URL", "http://127.0.0.1:9/acme")
    settings = Settings(_env_file=None)
    assert providers.PROVIDERS["acme"].configured(settings)
    assert providers.PROVIDERS["acme"].base_url(settings) == "http://127.0.0.1:9/acme"
    assert "ACME_API_KEY" in providers.all_variables()  # so tests clear it (tests/conftest.py)


@pytest.fixture(scope="module")
def app(server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    data_dir = tmp_path_factory.mktemp("acme-data")
    history = History(data_dir)
    try:
        with serve(emulator_settings(server, data_dir, **TIMEOUTS), history=history) as served:
            yield App(served.url, history, data_dir, server)
    finally:
        history.close()


def test_the_page_offers_prices_and_takes_a_key_for_it(app: App) -> None:
    config = httpx.get(f"{app.url}config").json()
    components = {c["props"].get("elem_id"): c for c in config["components"]}
    rows = {row["id"]: row for row in components["providers"]["props"]["props"]["rows"]}
    assert rows["acme"]["label"] == "Acme Images"
    assert components["key-acme"]["props"]["type"] == "password"
    assert "result-acme" in components
    controls = page_fn_index(app.url, "providers", "change")
    data = event_data(app.url, controls, {"providers": ["acme"], key_field("acme"): "my-acme-key"})
    answer = httpx.post(
        f"{app.url}gradio_api/run/predict", json={"data": data, "fn_index": controls, "session_hash": "a"}
    )
    (row,) = [row for row in answer.json()["data"][0]["props"]["rows"] if row["id"] == "acme"]
    assert row["cost"] == "$0.0011" and row["ready"] == "your key" and row["usable"]


def test_the_public_api_and_the_page_generate_with_it(app: App) -> None:
    answer = call_api(app.url, "generate", ["a red fox", ["acme"], 512, 512, 4, 7, 2, "", ""])
    assert answer.event == "complete", answer.text[-300:]
    summary = answer.data[1]["providers"]["acme"]
    assert summary["ok"] and summary["images"] == 2 and summary["estimated_cost_usd"] == "0.0022"
    page = app.page_run("A" * 32, "a blue fox", ["acme"])
    assert page.success and len(app.saved("A" * 32)) == 1


def test_agents_see_it_in_the_mcp_tool_and_generate_with_it(app: App) -> None:
    async def use(session: Any) -> tuple[Any, Any]:
        tools = await session.list_tools()
        arguments = {"prompt": "a red fox", "providers": ["acme"], "width": 512, "height": 512}
        return tools, await session.call_tool("generate", arguments)

    tools, result = asyncio.run(mcp_session(app.url, use))
    (generate,) = [tool for tool in tools.tools if tool.name == "generate"]
    assert '"acme"' in generate.inputSchema["properties"]["providers"]["description"]
    assert not result.isError and json.loads(result.content[0].text)["providers"]["acme"]["ok"]


@pytest.mark.slow
async def test_its_backend_fault_matrix(server: EmulatorServer, tmp_path: Path) -> None:
    settings = emulator_settings(server, tmp_path, **TIMEOUTS)
    for provider, fault in cases(["acme"]):
        await check_backend(server, settings, provider, fault, tmp_path)


@pytest.mark.slow
def test_its_app_fault_matrix(app: App) -> None:
    acme_cases = cases(["acme"])
    assert {fault for _, fault in acme_cases} >= {
        "401",
        "credits",
        "429",
        "500",
        "502",
        "reset",
        "hang",
        "malformed",
    }
    for provider, fault in acme_cases:
        check_app(app, provider, fault)


def test_unregistered_it_is_gone(acme: None) -> None:
    assert "acme" in providers.PROVIDERS
    request = GenerationRequest(prompt="x")
    assert providers.PROVIDERS["acme"].estimate(request, Settings(_env_file=None)) == Decimal("0.0011")
    with pytest.raises(ValueError, match="already registered"):
        providers.register(Acme())


def test_every_case_is_derived_from_the_registries(acme: None) -> None:
    assert {p for p, _ in cases()} == set(providers.PROVIDERS) & set(emulation.EMULATED)

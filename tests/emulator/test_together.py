"""Together AI's emulator, exercised with raw httpx (never the project's own client), against
docs/providers/together.md: its validation, auth, answer shapes and variants, the CDN stand-in."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from flux_playground.emulator import EmulatorServer

MODEL = "black-forest-labs/FLUX.1-schnell"
AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
def emu(emulator: EmulatorServer) -> EmulatorServer:
    emulator.reset()  # the session's emulator (tests/conftest.py), as a new one
    return emulator


def generate(
    client: httpx.Client, emu: EmulatorServer, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body = {"model": MODEL, "prompt": "a red fox", "width": 512, "height": 384, "steps": 4, **fields}
    url = emu.base_urls["together"] + "/v1/images/generations"
    return client.post(url, json=body, headers=AUTH if headers is None else headers)


def image(data: bytes) -> Image.Image:
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    return decoded


def error_data(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def test_base64_answer_as_documented(client: httpx.Client, emu: EmulatorServer) -> None:
    answer = generate(client, emu, n=2, seed=5, response_format="base64")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"id", "model", "object", "data"} and (body["model"], body["object"]) == (
        MODEL,
        "list",
    )
    assert [(item["index"], item["type"]) for item in body["data"]] == [(0, "b64_json"), (1, "b64_json")]
    first, second = (image(base64.b64decode(item["b64_json"])) for item in body["data"])
    assert (first.format, first.size) == ("JPEG", (512, 384))  # output_format's default is jpeg
    assert first.tobytes() != second.tobytes()  # seeds 5 and 6


def test_url_answer_is_the_default_and_the_cdn_wants_a_user_agent(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    answer = generate(client, emu, output_format="png")
    (item,) = answer.json()["data"]
    assert (item["index"], item["type"]) == (0, "url") and item["url"].endswith(".png")
    assert client.get(item["url"], headers={"User-Agent": ""}).status_code == 403
    downloaded = client.get(item["url"])  # no key needed, any User-Agent but a blank one
    assert downloaded.status_code == 200 and downloaded.headers["content-type"] == "image/png"
    assert image(downloaded.content).size == (512, 384)
    assert client.get(emu.base_urls["together"] + "/files/unknown.png").status_code == 404
    assert emu.stats()["requests"]["together"]["download"] == 3


def test_a_request_without_steps_or_size_is_taken_and_logged(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    body = {"model": MODEL, "prompt": "no steps", "response_format": "base64"}
    assert client.post(
        emu.base_urls["together"] + "/v1/images/generations", json=body, headers=AUTH
    ).is_success
    assert emu.requests("together")[-1]["body"] == body  # what a client sent, for tests to read


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "b64_json"}, "response_format"),  # Together's value is "base64"
        ({"width": 1001}, "width"),
        ({"height": 4096}, "height"),
        ({"n": 5}, "n"),
        ({"steps": 0}, "steps"),
        ({"seed": -1}, "seed"),
        ({"output_format": "webp"}, "output_format"),
        ({"prompt": ""}, "prompt"),
        ({"model": None}, "model"),
    ],
)
def test_invalid_requests_get_a_400_in_error_data(
    client: httpx.Client, emu: EmulatorServer, fields: dict[str, Any], param: str
) -> None:
    answer = generate(client, emu, **fields)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, None)
    assert error["message"]


def test_an_unknown_model_is_a_404(client: httpx.Client, emu: EmulatorServer) -> None:
    answer = generate(client, emu, model="black-forest-labs/FLUX.1-dev")
    assert answer.status_code == 404
    assert answer.json() == error_data(
        "Unable to access model black-forest-labs/FLUX.1-dev.",
        "invalid_request_error",
        "model",
        "model_not_available",
    )
    assert generate(client, emu, model=f"{MODEL}-Free").status_code == 200  # in the OpenAPI's enum


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic test-key"},
        {"x-api-key": "test-key"},
        {"Authorization": "Bearer invalid-key"},
    ],
)
def test_only_a_valid_bearer_key_is_let_in(
    client: httpx.Client, emu: EmulatorServer, headers: dict[str, str]
) -> None:
    answer = generate(client, emu, headers=headers)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")


@pytest.mark.parametrize(
    ("fault", "status", "kind", "message"),
    [
        ("401", 401, "invalid_request_error", "Invalid API key provided."),
        (
            "credits",
            402,
            "credit_limit",
            "The account associated with the API key has reached its maximum allowed monthly spending limit.",
        ),
        ("429", 429, "rate_limit", "Rate limit exceeded: reduce your request rate."),
        ("500", 500, "server_error", "Internal server error"),
        ("failed_job", 500, "server_error", "Inference failed (emulated failed_job fault)"),
    ],
)
def test_faults_speak_error_data(
    client: httpx.Client, emu: EmulatorServer, fault: str, status: int, kind: str, message: str
) -> None:
    emu.inject("together", fault)
    answer = generate(client, emu)
    assert answer.status_code == status and answer.json()["error"]["message"] == message
    assert answer.json()["error"]["type"] == kind
    assert ("retry-after" in answer.headers) == (fault == "429")


def test_missing_fields_is_a_list_without_data(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("together", "missing_fields")
    body = generate(client, emu).json()
    assert body["object"] == "list" and "data" not in body


@pytest.mark.parametrize("response_format", ["base64", "url"])
def test_content_faults_spoil_the_image_wherever_it_is(
    client: httpx.Client, emu: EmulatorServer, response_format: str
) -> None:
    answer = generate(client, emu, prompt="x [fault:not_image]", response_format=response_format)
    (item,) = answer.json()["data"]
    data = base64.b64decode(item["b64_json"]) if "b64_json" in item else client.get(item["url"]).content
    with pytest.raises(OSError):
        image(data)
    assert emu.stats()["faults_fired"]["together"] == {"not_image": 1}


def test_a_fault_can_hit_the_cdn(client: httpx.Client, emu: EmulatorServer) -> None:
    (item,) = generate(client, emu).json()["data"]
    emu.inject("together", "502", stage="download")
    assert client.get(item["url"]).status_code == 502
    assert client.get(item["url"]).status_code == 200
    with pytest.raises(ValueError, match="applies at"):
        emu.inject("together", "malformed", stage="download")  # image files are not JSON


def test_aspect_ratio_variant_makes_the_nearest_preset(client: httpx.Client, emu: EmulatorServer) -> None:
    # docs/providers/together.md#request (the conflict): schnell may take an aspect ratio instead of W×H.
    answer = generate(client, emu, prompt="wide [variant:aspect_ratio]", width=1344, height=768)
    (item,) = answer.json()["data"]
    assert image(client.get(item["url"]).content).size == (1360, 768)  # 16:9 at about 1 MP
    emu.queue_variants("together", "aspect_ratio")
    (item,) = generate(client, emu, response_format="base64", width=512, height=512).json()["data"]
    assert image(base64.b64decode(item["b64_json"])).size == (1024, 1024)
    (item,) = generate(client, emu, response_format="base64", width=512, height=512).json()["data"]
    assert image(base64.b64decode(item["b64_json"])).size == (512, 512)  # the variant was for one request


def test_unknown_routes_are_404_in_error_data(client: httpx.Client, emu: EmulatorServer) -> None:
    answer = client.post(emu.base_urls["together"] + "/v1/images/generate", json={}, headers=AUTH)
    assert answer.status_code == 404
    assert answer.json() == error_data(
        "Not found: POST /together/v1/images/generate", "invalid_request_error"
    )

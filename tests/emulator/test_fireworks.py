"""The Fireworks emulator, exercised with raw httpx (never the project's client): the Accept header
choosing bytes or JSON, the seed, validation, Bearer auth, response variants and content faults."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from flux_playground.emulator.fireworks import answer_format
from flux_playground.emulator.server import EmulatorServer

ROUTE = "/inference/v1/workflows/accounts/fireworks/models/flux-1-schnell-fp8/text_to_image"
AUTH = {"Authorization": "Bearer test-key"}
JSON = {**AUTH, "Accept": "application/json"}


def post(emu: EmulatorServer, headers: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
    body = {"prompt": "a red fox", "aspect_ratio": "1:1", "num_inference_steps": 4, "seed": 7, **fields}
    return httpx.post(
        emu.base_urls["fireworks"] + ROUTE, json=body, headers=JSON if headers is None else headers
    )


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def only_item(response: httpx.Response) -> bytes:
    (item,) = response.json()["base64"]
    return base64.b64decode(
        item.removeprefix("data:image/png;base64,").removeprefix("data:image/jpeg;base64,")
    )


def test_json_answer(emu: EmulatorServer) -> None:
    response = post(emu, aspect_ratio="16:9")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"id", "base64", "finishReason", "seed"}
    assert body["finishReason"] == "SUCCESS" and body["seed"] == 7
    assert body["base64"][0].startswith("data:image/png;base64,")  # the API reference's example
    image = decode(only_item(response))
    assert (image.format, image.size) == ("PNG", (1360, 768))  # about 1024² pixels at 16:9


@pytest.mark.parametrize(("accept", "fmt"), [("image/png", "PNG"), ("image/jpeg", "JPEG")])
def test_image_bytes_with_seed_and_finish_reason_headers(emu: EmulatorServer, accept: str, fmt: str) -> None:
    response = post(emu, {**AUTH, "Accept": accept}, aspect_ratio="9:21")
    assert response.status_code == 200 and response.headers["content-type"] == accept
    assert response.headers["seed"] == "7" and response.headers["finish-reason"] == "SUCCESS"
    image = decode(response.content)
    assert (image.format, image.size) == (fmt, (672, 1568))


def test_image_type_inside_json(emu: EmulatorServer) -> None:
    response = post(emu, {**JSON, "Json-Return-Image-Accept": "image/jpeg"})
    assert response.json()["base64"][0].startswith("data:image/jpeg;base64,")
    assert decode(only_item(response)).format == "JPEG"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "png"),
        ("*/*", "png"),
        ("image/*", "png"),
        ("application/json", "json"),
        ("text/html, application/json;q=0.9", "json"),
        ("Image/JPEG", "jpeg"),
        ("text/html", None),
        ("image/webp", None),
    ],
)
def test_answer_format(accept: str | None, expected: str | None) -> None:
    assert answer_format(accept) == expected


def test_an_accept_it_does_not_serve_is_refused(emu: EmulatorServer) -> None:
    response = post(emu, {**AUTH, "Accept": "text/html"})
    assert response.status_code == 406
    assert response.json()["error"]["message"] == "Accept must be application/json, image/png or image/jpeg"
    assert post(emu, {**AUTH, "Accept": "*/*"}).headers["content-type"] == "image/png"


def test_seed_zero_means_a_random_seed(emu: EmulatorServer) -> None:
    seeds = {post(emu, seed=0).json()["seed"] for _ in range(3)}
    assert 0 not in seeds and len(seeds) > 1
    assert post(emu, seed=None).json()["seed"] != 0  # no seed: the documented 0, random


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Accept": "application/json"}, 401),
        ({"Authorization": "test-key", "Accept": "application/json"}, 401),
        ({"Authorization": "Basic test-key", "Accept": "application/json"}, 401),
        ({"x-api-key": "test-key", "Accept": "application/json"}, 401),
        ({"Authorization": "Bearer invalid-key", "Accept": "application/json"}, 401),
        ({"Authorization": "bearer test-key", "Accept": "application/json"}, 200),
    ],
)
def test_bearer_auth(emu: EmulatorServer, headers: dict[str, str], status: int) -> None:
    response = post(emu, headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"] == {
            "message": "The API key you provided is invalid.",
            "param": None,
            "code": "UNAUTHORIZED",
            "type": "error",
        }


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": ""},
        {"prompt": None},
        {"aspect_ratio": "7:5"},
        {"aspect_ratio": "1024x1024"},
        {"num_inference_steps": 0},
        {"num_inference_steps": 51},
        {"num_inference_steps": "4"},
        {"seed": -1},
        {"seed": 2**32},
        {"guidance_scale": "high"},
        {"safety_check": "yes"},
    ],
)
def test_validation(emu: EmulatorServer, fields: dict[str, Any]) -> None:
    response = post(emu, **fields)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST" and error["type"] == "error" and error["message"]
    assert response.json()["request_id"]


def test_documented_fields_and_unlisted_ones(emu: EmulatorServer) -> None:
    response = post(emu, guidance_scale=0.0, safety_check=True, num_inference_steps=50, width=512, height=512)
    assert response.status_code == 200
    assert decode(only_item(response)).size == (1024, 1024)  # width and height are not taken


def test_missing_ratio_is_square(emu: EmulatorServer) -> None:
    assert decode(only_item(post(emu, aspect_ratio=None))).size == (1024, 1024)


def test_variants(emu: EmulatorServer) -> None:
    bare = post(emu, prompt="x [variant:bare]").json()["base64"]
    assert isinstance(bare, list) and bare[0].startswith("iVBOR")
    one_string = post(emu, prompt="x [variant:string]").json()["base64"]
    assert isinstance(one_string, str) and one_string.startswith("data:image/png;base64,")
    emu.configure(variants={"fireworks": ["content_filtered"]})
    assert post(emu).json()["finishReason"] == "CONTENT_FILTERED"
    assert post(emu, {**AUTH, "Accept": "image/png"}).headers["finish-reason"] == "CONTENT_FILTERED"


@pytest.mark.parametrize("fault", ["not_image", "truncated"])
@pytest.mark.parametrize("accept", ["application/json", "image/png"])
def test_bad_image_content(emu: EmulatorServer, fault: str, accept: str) -> None:
    emu.inject("fireworks", fault)
    response = post(emu, {**AUTH, "Accept": accept})
    assert response.status_code == 200 and response.headers["x-emulator-fault"] == fault
    data = only_item(response) if accept == "application/json" else response.content
    with pytest.raises(OSError):
        decode(data)
    directive = post(emu, {**AUTH, "Accept": accept}, prompt=f"x [fault:{fault}]")
    with pytest.raises(OSError):
        decode(only_item(directive) if accept == "application/json" else directive.content)


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [("credits", 402, "PAYMENT_REQUIRED"), ("429", 429, "TOO_MANY_REQUESTS"), ("failed_job", 500, None)],
)
def test_error_faults_in_the_documented_shape(
    emu: EmulatorServer, fault: str, status: int, code: str
) -> None:
    emu.inject("fireworks", fault)
    response = post(emu)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == (code or "INTERNAL_SERVER_ERROR") and error["message"]
    if fault == "credits":
        assert error["message"] == "Account is not on a paid plan or has exceeded usage limits"
    assert post(emu).status_code == 200  # one-shot


def test_missing_fields_has_no_images(emu: EmulatorServer) -> None:
    emu.inject("fireworks", "missing_fields")
    body = post(emu).json()
    assert body["finishReason"] == "SUCCESS" and "base64" not in body


def test_unknown_paths_and_models(emu: EmulatorServer) -> None:
    other_model = ROUTE.replace("flux-1-schnell-fp8", "flux-1-dev-fp8")
    response = httpx.post(emu.base_urls["fireworks"] + other_model, json={"prompt": "x"}, headers=JSON)
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    assert httpx.get(emu.base_urls["fireworks"] + ROUTE, headers=JSON).status_code == 404
    stats = emu.stats()["requests"]["fireworks"]
    assert stats["unmatched"] == 2 and stats.get("submit", 0) == 0


def test_directive_typos_are_loud(emu: EmulatorServer) -> None:
    response = post(emu, prompt="x [fault:explode]")
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("emulator:")
    assert post(emu, prompt="x [variant:sepia]").status_code == 400

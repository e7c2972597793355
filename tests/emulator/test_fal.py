"""The fal.ai emulator, exercised with raw httpx (never the project's own client): what it does beyond
the shared code (auth scheme, validation as 422 lists, presets, data URIs or CDN files, variants)."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from flux_playground.emulator import EmulatorServer
from flux_playground.emulator.fal import PRESETS

AUTH = {"Authorization": "Key emu-id:emu-secret"}


def fal(
    client: httpx.Client,
    emu: EmulatorServer,
    headers: dict[str, str] | None = None,
    path: str = "/fal-ai/flux/schnell",
    **fields: Any,
) -> httpx.Response:
    body = {"prompt": "a red fox", "image_size": {"width": 512, "height": 384}, "seed": 7, **fields}
    return client.post(emu.base_urls["fal"] + path, json=body, headers=AUTH if headers is None else headers)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def from_data_uri(uri: str) -> Image.Image:
    header, _, data = uri.partition(",")
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return decode(base64.b64decode(data))


def test_sync_mode_answers_data_uris_in_the_documented_result(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    response = fal(client, emu, sync_mode=True, output_format="png", num_images=2, num_inference_steps=12)
    assert response.status_code == 200 and response.headers["x-fal-request-id"]
    body = response.json()
    assert set(body) == {"images", "timings", "seed", "has_nsfw_concepts", "prompt"}
    assert body["seed"] == 7 and body["prompt"] == "a red fox" and body["has_nsfw_concepts"] == [False, False]
    assert [{k: v for k, v in i.items() if k != "url"} for i in body["images"]] == [
        {"width": 512, "height": 384, "content_type": "image/png"}
    ] * 2
    images = [from_data_uri(i["url"]) for i in body["images"]]
    assert [(i.format, i.size) for i in images] == [("PNG", (512, 384))] * 2
    assert body["images"][0]["url"] != body["images"][1]["url"]  # each image has its own seed
    assert emu.stats()["providers"]["fal"] == {"stored_results": 0}  # sync_mode: nothing kept


def test_without_sync_mode_the_urls_are_files_on_the_cdn(client: httpx.Client, emu: EmulatorServer) -> None:
    body = fal(client, emu).json()
    (image,) = body["images"]
    assert image["url"].startswith(emu.base_urls["fal"] + "/files/") and image["url"].endswith(".jpeg")
    file = client.get(image["url"])  # no key: a CDN
    assert file.status_code == 200 and file.headers["content-type"] == "image/jpeg"
    assert decode(file.content).format == "JPEG" and decode(file.content).size == (512, 384)
    assert client.get(image["url"].replace(".jpeg", ".png")).status_code == 404
    assert client.get(emu.base_urls["fal"] + "/files/nosuch/0.jpeg").status_code == 404
    assert emu.stats()["requests"]["fal"]["download"] == 3


def test_the_default_size_is_landscape_4_3_and_presets_are_taken(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    default = fal(client, emu, image_size=None, sync_mode=True).json()["images"][0]
    assert (default["width"], default["height"]) == (1024, 768)
    for preset, size in PRESETS.items():
        image = fal(client, emu, image_size=preset, sync_mode=True).json()["images"][0]
        assert from_data_uri(image["url"]).size == size == (image["width"], image["height"])


def test_a_random_seed_is_drawn_and_reported(client: httpx.Client, emu: EmulatorServer) -> None:
    seed = fal(client, emu, seed=None, sync_mode=True).json()["seed"]
    assert isinstance(seed, int) and seed >= 0


def test_the_other_listing_of_the_model(client: httpx.Client, emu: EmulatorServer) -> None:
    assert fal(client, emu, path="/fal-ai/flux-1/schnell").status_code == 200
    unknown = fal(client, emu, path="/fal-ai/flux/dev")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Missing or invalid Authorization header: send 'Authorization: Key <FAL_KEY>'"),
        ({"Authorization": "Bearer emu-id:emu-secret"}, "Missing or invalid Authorization header"),
        ({"Authorization": "Key invalid-key"}, "No user found for Key ID and Secret"),
    ],
)
def test_only_the_key_scheme_with_a_valid_key(
    client: httpx.Client, emu: EmulatorServer, headers: dict[str, str], detail: str
) -> None:
    refused = fal(client, emu, headers=headers)
    assert refused.status_code == 401 and refused.json()["detail"].startswith(detail)
    assert fal(client, emu, headers={"Authorization": "key emu-id:emu-secret"}).status_code == 200


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"num_inference_steps": 13}, "num_inference_steps"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_images": 5}, "num_images"),
        ({"image_size": "square_xl"}, "image_size"),
        ({"image_size": [512, 512]}, "image_size"),
        ({"image_size": {"width": 512}}, "image_size"),
        ({"image_size": {"width": 8, "height": 512}}, "width"),
        ({"output_format": "webp"}, "output_format"),
        ({"acceleration": "turbo"}, "acceleration"),
        ({"guidance_scale": 25}, "guidance_scale"),
        ({"sync_mode": "yes"}, "sync_mode"),
        ({"seed": -1}, "seed"),
        ({"prompt": ""}, "prompt"),
    ],
)
def test_invalid_input_is_a_422_list(
    client: httpx.Client, emu: EmulatorServer, fields: dict[str, Any], field: str
) -> None:
    response = fal(client, emu, **fields)
    assert response.status_code == 422 and response.headers["x-fal-retryable"] == "false"
    (entry,) = response.json()["detail"]
    assert entry["loc"] == ["body", field] and entry["msg"]
    assert entry["url"] == f"https://docs.fal.ai/errors#{entry['type']}"


def test_a_body_that_is_not_json_is_a_422(client: httpx.Client, emu: EmulatorServer) -> None:
    response = client.post(emu.base_urls["fal"] + "/fal-ai/flux/schnell", content=b"{", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0] == {
        "loc": ["body"],
        "msg": "request body is not valid JSON",
        "type": "json_invalid",
        "url": "https://docs.fal.ai/errors#json_invalid",
    }


def test_delivery_variants_override_sync_mode(client: httpx.Client, emu: EmulatorServer) -> None:
    url = fal(client, emu, prompt="x [variant:url]", sync_mode=True).json()["images"][0]["url"]
    assert url.startswith("http") and client.get(url).status_code == 200
    inline = fal(client, emu, prompt="x [variant:data_uri]").json()["images"][0]["url"]
    assert from_data_uri(inline).format == "JPEG"


@pytest.mark.parametrize(
    ("variant", "detail"),
    [
        (None, "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."),
        ("top_up", "User is locked. Reason: TOP_UP."),
        ("admin_lock", "User is locked. Reason: Admin lock. Please contact support@fal.ai"),
    ],
)
def test_out_of_credits_is_a_locked_user(
    client: httpx.Client, emu: EmulatorServer, variant: str | None, detail: str
) -> None:
    if variant:
        emu.queue_variants("fal", [variant])
    emu.inject("fal", "credits")
    response = fal(client, emu)
    assert response.status_code == 403 and response.json() == {"detail": detail}
    assert fal(client, emu).status_code == 200  # one-shot


@pytest.mark.parametrize(
    ("fault", "status", "detail"),
    [
        ("401", 401, "No user found for Key ID and Secret"),
        ("429", 429, "Too many concurrent requests"),
        ("500", 500, "Internal server error"),
        ("failed_job", 500, "Inference failed (emulated failed_job fault)"),
    ],
)
def test_error_faults_in_fals_shape(
    client: httpx.Client, emu: EmulatorServer, fault: str, status: int, detail: str
) -> None:
    response = fal(client, emu, prompt=f"x [fault:{fault}]")
    assert response.status_code == status and response.json() == {"detail": detail}
    assert response.headers.get("retry-after") == ("1" if fault == "429" else None)


@pytest.mark.parametrize("fault", ["not_image", "truncated"])
def test_bad_image_bytes_inline_and_on_the_cdn(client: httpx.Client, emu: EmulatorServer, fault: str) -> None:
    inline = fal(client, emu, prompt=f"x [fault:{fault}]", sync_mode=True).json()["images"][0]["url"]
    with pytest.raises(OSError):
        from_data_uri(inline)
    emu.inject("fal", fault)  # queued: the next answer's files are bad
    url = fal(client, emu).json()["images"][0]["url"]
    bad = client.get(url)
    assert bad.status_code == 200 and bad.headers["content-type"] == "image/jpeg"
    with pytest.raises(OSError):
        decode(bad.content)


def test_a_download_stage_fault(client: httpx.Client, emu: EmulatorServer) -> None:
    url = fal(client, emu).json()["images"][0]["url"]
    emu.inject("fal", "500", stage="download")
    assert [client.get(url).status_code for _ in range(2)] == [500, 200]
    with pytest.raises(ValueError, match="applies at"):
        emu.inject("fal", "not_image", stage="download")
    with pytest.raises(ValueError, match="does not apply"):
        emu.inject("fal", "never_completes")


def test_the_request_log_redacts_the_key(client: httpx.Client, emu: EmulatorServer) -> None:
    fal(client, emu)
    logged = emu.requests("fal")[-1]
    assert logged["headers"]["authorization"] == "Key [redacted]" and logged["body"]["seed"] == 7

"""The provider emulator, exercised with raw httpx (never the project's own client)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from flux_playground.emulator import EMULATED, FAULTS, EmulatorServer

ATLAS_MODEL = "black-forest-labs/flux-schnell"
DI_MODEL = "black-forest-labs/FLUX-1-schnell"
ATLAS_AUTH = {"Authorization": "Bearer test-key"}
SEG_AUTH = {"x-api-key": "test-key"}
DI_AUTH = {"Authorization": "bearer test-key"}  # lower-case scheme on purpose


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(latency=0.05) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(emu: EmulatorServer) -> None:
    emu.reset()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# -- Atlas Cloud helpers ----------------------------------------------------------


def atlas(emu: EmulatorServer, path: str) -> str:
    return emu.base_urls["atlascloud"] + path


def atlas_submit(
    client: httpx.Client, emu: EmulatorServer, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body = {"model": ATLAS_MODEL, "prompt": "a lighthouse", "size": "512*768", "seed": 7, **fields}
    return client.post(
        atlas(emu, "/api/v1/model/generateImage"),
        json=body,
        headers=ATLAS_AUTH if headers is None else headers,
    )


def atlas_poll(client: httpx.Client, emu: EmulatorServer, pid: str) -> httpx.Response:
    return client.get(atlas(emu, f"/api/v1/model/prediction/{pid}"), headers=ATLAS_AUTH)


def atlas_wait(client: httpx.Client, emu: EmulatorServer, pid: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = atlas_poll(client, emu, pid)
        if response.status_code == 200:
            body = response.json()
            data = body.get("data", body)
            if data["status"] not in ("starting", "created", "processing"):
                return dict(body)
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def atlas_job(client: httpx.Client, emu: EmulatorServer, **fields: Any) -> str:
    response = atlas_submit(client, emu, **fields)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


# -- Atlas Cloud --------------------------------------------------------------------


def test_atlas_submit_poll_download(client: httpx.Client, emu: EmulatorServer) -> None:
    submitted = atlas_submit(client, emu, num_images=2)
    assert submitted.status_code == 200
    body = submitted.json()
    assert body["code"] == 200 and body["data"]["status"] == "starting"
    pid = body["data"]["id"]
    assert atlas_poll(client, emu, pid).json()["data"]["status"] == "processing"

    done = atlas_wait(client, emu, pid)
    data = done["data"]
    assert done["code"] == 200 and data["status"] == "completed" and data["id"] == pid
    assert {"metrics", "created_at", "completed_at"} <= set(data)
    assert len(data["outputs"]) == 2 and all(isinstance(u, str) for u in data["outputs"])
    files = [client.get(url) for url in data["outputs"]]
    assert all(f.status_code == 200 and f.headers["content-type"] == "image/png" for f in files)
    images = [decode(f.content) for f in files]
    assert [img.size for img in images] == [(512, 768), (512, 768)]
    assert files[0].content != files[1].content  # each image has its own seed

    record = next(j for j in emu.jobs() if j["id"] == pid)
    assert record["ready"] is not None and record["first_done_poll"] >= record["ready"]
    assert record["polls"] >= 2 and record["downloads"] == 2


def test_atlas_sync_mode_and_base64(client: httpx.Client, emu: EmulatorServer) -> None:
    sync = atlas_submit(client, emu, enable_sync_mode=True).json()["data"]
    assert sync["status"] == "completed" and sync["outputs"][0].startswith("http")

    inline = atlas_submit(client, emu, enable_sync_mode=True, enable_base64_output=True).json()["data"]
    assert decode(base64.b64decode(inline["outputs"][0])).size == (512, 768)  # bare base64


@pytest.mark.parametrize(
    ("directive", "check"),
    [
        ("[variant:datauri]", lambda out: out.startswith("data:image/png;base64,")),
        ("[variant:base64]", lambda out: base64.b64decode(out)[:4] == b"\x89PNG"),
        ("[variant:url_objects]", lambda out: out["url"].startswith("http")),
    ],
)
def test_atlas_output_variants(client: httpx.Client, emu: EmulatorServer, directive: str, check: Any) -> None:
    response = atlas_submit(client, emu, prompt=f"fox {directive}", enable_sync_mode=True)
    assert check(response.json()["data"]["outputs"][0])


def test_atlas_flat_and_succeeded_variants(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.queue_variants("atlascloud", ["flat", "succeeded"])
    submitted = atlas_submit(client, emu).json()
    assert "code" not in submitted and submitted["status"] == "starting"
    done = atlas_wait(client, emu, submitted["id"])
    assert done["status"] == "succeeded" and done["output"][0].startswith("http")
    # the queue entry is used up: the next job has the default shape again
    assert atlas_submit(client, emu).json()["code"] == 200


def test_atlas_legacy_get_result(client: httpx.Client, emu: EmulatorServer) -> None:
    pid = atlas_job(client, emu)
    time.sleep(0.1)
    legacy = client.get(
        atlas(emu, "/api/v1/model/getResult"), params={"predictionId": pid}, headers=ATLAS_AUTH
    )
    assert legacy.json()["status"] == "completed" and len(legacy.json()["output"]) == 1


def test_atlas_auth(client: httpx.Client, emu: EmulatorServer) -> None:
    missing = atlas_submit(client, emu, headers={})
    assert missing.status_code == 401 and missing.json()["code"] == 401 and missing.json()["msg"]
    assert atlas_submit(client, emu, headers={"Authorization": "Bearer invalid-key"}).status_code == 401
    assert atlas_submit(client, emu, headers={"Authorization": "test-key"}).status_code == 401
    catalogue = client.get(atlas(emu, "/api/v1/models"))  # the catalogue needs no key
    assert catalogue.status_code == 200 and ATLAS_MODEL in [m["model"] for m in catalogue.json()["data"]]


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"size": "1024x1024"}, 400),
        ({"size": "100*100"}, 400),
        ({"size": "1537*1024"}, 400),  # docs/providers/atlascloud.md#sizes: each side 256-1536
        ({"size": "1024*1537"}, 400),
        ({"size": 1024}, 400),
        ({"num_images": 5}, 400),
        ({"num_images": 0}, 400),
        ({"model": "black-forest-labs/FLUX.1-schnell"}, 404),
        ({"prompt": None, "input": {"prompt": "old wrapped body"}}, 400),
        ({"enable_sync_mode": "yes"}, 400),
    ],
)
def test_atlas_validation(
    client: httpx.Client, emu: EmulatorServer, fields: dict[str, Any], status: int
) -> None:
    response = atlas_submit(client, emu, **fields)
    assert response.status_code == status
    assert response.json()["code"] == status and response.json()["msg"]


def test_atlas_size_limits(client: httpx.Client, emu: EmulatorServer) -> None:
    for size in ("1536*1536", "256*1536"):
        done = atlas_submit(client, emu, size=size, enable_sync_mode=True).json()["data"]
        width, height = (int(side) for side in size.split("*"))
        assert decode(client.get(done["outputs"][0]).content).size == (width, height)
    refused = atlas_submit(client, emu, size="1537*1537")
    assert refused.status_code == 400 and "1536" in refused.json()["msg"]


def test_atlas_undocumented_fields_are_ignored(client: httpx.Client, emu: EmulatorServer) -> None:
    body = {"model": ATLAS_MODEL, "prompt": "p", "width": 512, "height": 512, "enable_sync_mode": True}
    done = client.post(atlas(emu, "/api/v1/model/generateImage"), json=body, headers=ATLAS_AUTH).json()
    assert decode(client.get(done["data"]["outputs"][0]).content).size == (1024, 1024)
    assert emu.jobs()[-1]["ignored_fields"] == ["height", "width"]


def test_atlas_failed_and_never_completing_jobs(client: httpx.Client, emu: EmulatorServer) -> None:
    failed = atlas_wait(client, emu, atlas_job(client, emu, prompt="x [fault:failed_job]"))
    assert failed["data"]["status"] == "failed" and failed["data"]["error"]

    emu.inject("atlascloud", "never_completes")
    pid = atlas_job(client, emu)
    time.sleep(0.3)
    assert atlas_poll(client, emu, pid).json()["data"]["status"] == "processing"
    assert next(j for j in emu.jobs() if j["id"] == pid)["ready"] is None


@pytest.mark.slow
def test_atlas_404_fresh(client: httpx.Client, emu: EmulatorServer) -> None:
    pid = atlas_job(client, emu, prompt="x [fault:404_fresh]")
    first = atlas_poll(client, emu, pid)
    assert first.status_code == 404 and first.json()["code"] == 404
    assert atlas_wait(client, emu, pid, timeout=4.0)["data"]["status"] == "completed"
    record = next(j for j in emu.jobs() if j["id"] == pid)
    assert record["polls_404"] >= 1


ATLAS_FAULTS: dict[str, tuple[int, str | None]] = {
    "401": (401, "msg"),
    "credits": (402, "msg"),
    "429": (429, "msg"),
    "429_no_retry_after": (429, "msg"),
    "500": (500, "msg"),
    "502": (502, None),
}


@pytest.mark.parametrize("fault", sorted(ATLAS_FAULTS))
def test_atlas_request_faults(client: httpx.Client, emu: EmulatorServer, fault: str) -> None:
    status, key = ATLAS_FAULTS[fault]
    emu.inject("atlascloud", fault)
    response = atlas_submit(client, emu)
    assert response.status_code == status
    if key is None:
        assert response.headers["content-type"].startswith("text/html")
    else:
        assert response.json()["code"] == status and response.json()[key]
    assert response.headers.get("retry-after") == ("1" if fault == "429" else None)
    assert atlas_submit(client, emu).status_code == 200  # one-shot
    if fault == "credits":
        assert response.json()["msg"] == "Insufficient balance"


def test_atlas_malformed_and_missing_fields(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("atlascloud", "malformed")
    malformed = atlas_submit(client, emu)
    assert malformed.status_code == 200 and malformed.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    pid = atlas_job(client, emu, prompt="x [fault:missing_fields@poll]")
    assert "outputs" not in atlas_poll(client, emu, pid).json()["data"]
    assert atlas_wait(client, emu, pid)["data"]["outputs"]  # fired once only


def test_atlas_poll_stage_fault(client: httpx.Client, emu: EmulatorServer) -> None:
    pid = atlas_job(client, emu)
    emu.inject("atlascloud", "500", stage="poll", count=2)
    assert [atlas_poll(client, emu, pid).status_code for _ in range(3)] == [500, 500, 200]


def test_atlas_reset_and_hang(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("atlascloud", "reset")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        atlas_submit(client, emu)
    pid = atlas_job(client, emu, prompt="x [fault:hang@poll]")
    with pytest.raises(httpx.ReadTimeout):
        client.get(atlas(emu, f"/api/v1/model/prediction/{pid}"), headers=ATLAS_AUTH, timeout=0.3)
    assert atlas_wait(client, emu, pid)["data"]["status"] == "completed"
    assert emu.stats()["statuses"]["atlascloud"]["no_response"] == 1


@pytest.mark.parametrize("fault", ["not_image", "truncated"])
def test_atlas_bad_image_bytes(client: httpx.Client, emu: EmulatorServer, fault: str) -> None:
    url = atlas_wait(client, emu, atlas_job(client, emu))["data"]["outputs"][0]
    emu.inject("atlascloud", fault)
    bad = client.get(url)
    assert bad.status_code == 200 and bad.headers["content-type"] == "image/png"
    with pytest.raises(OSError):
        decode(bad.content)
    inline = atlas_submit(
        client, emu, prompt=f"x [fault:{fault}]", enable_sync_mode=True, enable_base64_output=True
    )
    with pytest.raises(OSError):
        decode(base64.b64decode(inline.json()["data"]["outputs"][0]))


@pytest.mark.slow
def test_atlas_slow_and_huge_downloads(client: httpx.Client, emu: EmulatorServer) -> None:
    url = atlas_wait(client, emu, atlas_job(client, emu))["data"]["outputs"][0]
    emu.inject("atlascloud", "slow_download")
    start = time.monotonic()
    received = 0
    with client.stream("GET", url) as slow:
        assert int(slow.headers["content-length"]) > 1000
        for chunk in slow.iter_bytes():
            received += len(chunk)
            if time.monotonic() - start > 0.8:
                break
    assert 0 < received < 100

    emu.inject("atlascloud", "huge_download")
    with client.stream("GET", url) as huge:
        assert "content-length" not in huge.headers
        received = 0
        for chunk in huge.iter_bytes():
            received += len(chunk)
            if received > 8 * 1024 * 1024:
                break
    assert received > 8 * 1024 * 1024


def test_atlas_upload_media(client: httpx.Client, emu: EmulatorServer) -> None:
    files = {"file": ("ref.png", b"\x89PNG fake", "image/png")}
    response = client.post(atlas(emu, "/api/v1/model/uploadMedia"), files=files, headers=ATLAS_AUTH)
    data = response.json()["data"]
    assert response.json()["code"] == 200 and data["filename"] == "ref.png" and data["size"] == 9
    assert client.get(data["download_url"]).content == b"\x89PNG fake"


# -- Segmind --------------------------------------------------------------------------


def segmind(
    client: httpx.Client, emu: EmulatorServer, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body = {"prompt": "a red fox", "width": 512, "height": 576, **fields}
    url = emu.base_urls["segmind"] + "/v1/flux-schnell"
    return client.post(url, json=body, headers=SEG_AUTH if headers is None else headers)


def test_segmind_jpeg_and_credits(client: httpx.Client, emu: EmulatorServer) -> None:
    first = segmind(client, emu)
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    img = decode(first.content)
    assert img.format == "JPEG" and img.size == (512, 576)
    second = segmind(client, emu, samples=2)
    spent = float(first.headers["x-remaining-credits"]) - float(second.headers["x-remaining-credits"])
    assert spent == pytest.approx(2 * 0.008)
    credits = client.get(emu.base_urls["segmind"] + "/v1/get-user-credits", headers=SEG_AUTH).json()
    assert credits["credits"] == pytest.approx(float(second.headers["x-remaining-credits"]))


def test_segmind_base64_json(client: httpx.Client, emu: EmulatorServer) -> None:
    for response in (segmind(client, emu, base64=True), segmind(client, emu, prompt="x [variant:json]")):
        assert response.headers["content-type"] == "application/json"
        assert decode(base64.b64decode(response.json()["image"])).size == (512, 576)


def test_segmind_auth_and_content_type(client: httpx.Client, emu: EmulatorServer) -> None:
    missing = segmind(client, emu, headers={})
    assert missing.status_code == 401
    assert missing.json() == {"error": "Missing Authorization or x-api-key in header"}
    bearer = segmind(client, emu, headers={"Authorization": "Bearer test-key"})
    assert bearer.status_code == 401 and bearer.json()["error"].startswith("Unauthorized. API key is invalid")
    assert segmind(client, emu, headers={"x-api-key": "invalid"}).status_code == 401
    raw = client.post(
        emu.base_urls["segmind"] + "/v1/flux-schnell",
        content=b'{"prompt": "x"}',
        headers={**SEG_AUTH, "content-type": "text/plain"},
    )
    assert raw.status_code == 406 and raw.json() == {"error": "Invalid content type"}


@pytest.mark.parametrize(
    "fields",
    [
        {"steps": 9},
        {"steps": 0},
        {"width": 504},
        {"width": 2056},
        {"height": 516},
        {"sampler_name": "euler_a"},
        {"scheduler": "beta"},
        {"samples": 0},
        {"samples": 5},
        {"denoise": 1.5},
        {"prompt": ""},
    ],
)
def test_segmind_validation(client: httpx.Client, emu: EmulatorServer, fields: dict[str, Any]) -> None:
    response = segmind(client, emu, **fields)
    assert response.status_code == 400 and set(response.json()) == {"error"}


def test_segmind_accepts_documented_enums(client: httpx.Client, emu: EmulatorServer) -> None:
    response = segmind(
        client, emu, sampler_name="uni_pc_bh2", scheduler="ddim_uniform", steps=8, width=2048, height=512
    )
    assert response.status_code == 200 and decode(response.content).size == (2048, 512)


SEGMIND_FAULTS: dict[str, tuple[int, str | None]] = {
    "401": (401, "Unauthorized. API key is invalid or may have expired..."),
    "credits": (406, "Not enough credits"),
    "429": (429, None),
    "429_no_retry_after": (429, None),
    "500": (500, None),
    "failed_job": (500, None),
}


@pytest.mark.parametrize("fault", sorted(SEGMIND_FAULTS))
def test_segmind_error_faults(client: httpx.Client, emu: EmulatorServer, fault: str) -> None:
    status, message = SEGMIND_FAULTS[fault]
    emu.inject("segmind", fault)
    before = client.get(emu.base_urls["segmind"] + "/v1/get-user-credits", headers=SEG_AUTH).json()["credits"]
    response = segmind(client, emu)
    assert response.status_code == status and isinstance(response.json()["error"], str)
    if message:
        assert response.json()["error"] == message
    if fault == "429":
        assert response.headers["retry-after"] == "1"
    if fault == "429_no_retry_after":
        assert "retry-after" not in response.headers and "x-rate-limit-reset-at-utc" in response.headers
    if fault == "failed_job":
        assert "failed" in response.json()["error"].lower()
    after = client.get(emu.base_urls["segmind"] + "/v1/get-user-credits", headers=SEG_AUTH).json()["credits"]
    assert after == before  # not billed on non-200


def test_segmind_broken_success_faults(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("segmind", "502")
    assert segmind(client, emu).headers["content-type"].startswith("text/html")
    emu.inject("segmind", "malformed")
    with pytest.raises(json.JSONDecodeError):
        segmind(client, emu).json()
    emu.inject("segmind", "missing_fields")
    assert "image" not in segmind(client, emu).json()
    for fault in ("not_image", "truncated"):
        response = segmind(client, emu, prompt=f"x [fault:{fault}]")
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        with pytest.raises(OSError):
            decode(response.content)


def test_segmind_runs_out_of_credits(client: httpx.Client, emu: EmulatorServer) -> None:
    config = emu.configure(providers={"segmind": {"credits": 0.01}})
    assert config["providers"]["segmind"] == {"credits": 0.01}
    assert segmind(client, emu).status_code == 200
    out = segmind(client, emu)
    assert out.status_code == 406 and out.json() == {"error": "Not enough credits"}


def test_segmind_reset_and_hang(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("segmind", "reset")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        segmind(client, emu)
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            emu.base_urls["segmind"] + "/v1/flux-schnell",
            json={"prompt": "x [fault:hang]"},
            headers=SEG_AUTH,
            timeout=0.3,
        )


# -- DeepInfra ------------------------------------------------------------------------


def di_native(
    client: httpx.Client, emu: EmulatorServer, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body = {"prompt": "a glass teapot", "width": 512, "height": 384, **fields}
    url = emu.base_urls["deepinfra"] + f"/v1/inference/{DI_MODEL}"
    return client.post(url, json=body, headers=DI_AUTH if headers is None else headers)


def di_openai(client: httpx.Client, emu: EmulatorServer, **fields: Any) -> httpx.Response:
    body = {"prompt": "a glass teapot", "model": DI_MODEL, "size": "512x384", **fields}
    return client.post(
        emu.base_urls["deepinfra"] + "/v1/openai/images/generations", json=body, headers=DI_AUTH
    )


def test_deepinfra_native_shape_and_cost(client: httpx.Client, emu: EmulatorServer) -> None:
    response = di_native(client, emu, num_images=2, num_inference_steps=4, seed=42)
    body = response.json()
    assert set(body) == {"images", "nsfw_content_detected", "seed", "request_id", "inference_status"}
    assert body["seed"] == 42 and body["nsfw_content_detected"] == [False, False]
    status = body["inference_status"]
    assert status["status"] == "succeeded" and status["runtime_ms"] >= 0
    assert status["cost"] == pytest.approx(0.0005 * 0.5 * 0.375 * 4 * 2)
    assert {status["tokens_generated"], status["tokens_input"]} == {0}
    for uri in body["images"]:
        prefix, _, data = uri.partition(",")
        assert prefix == "data:image/png;base64"
        assert decode(base64.b64decode(data)).size == (512, 384)
    defaults = di_native(client, emu, width=None, height=None).json()
    assert isinstance(defaults["seed"], int) and defaults["inference_status"]["cost"] == pytest.approx(0.0005)


def test_deepinfra_native_form_body(client: httpx.Client, emu: EmulatorServer) -> None:
    url = emu.base_urls["deepinfra"] + f"/v1/inference/{DI_MODEL}"
    form = {"prompt": "teapot", "width": "256", "height": "256", "seed": "3"}
    response = client.post(url, data=form, files={"unused": ("a.txt", b"x")}, headers=DI_AUTH)
    assert response.status_code == 200 and response.json()["seed"] == 3


def test_deepinfra_openai_shape(client: httpx.Client, emu: EmulatorServer) -> None:
    body = di_openai(client, emu, n=2).json()
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    for item in body["data"]:
        assert item["revised_prompt"] == "a glass teapot"
        assert decode(base64.b64decode(item["b64_json"])).size == (512, 384)


def assert_fastapi_422(response: httpx.Response, field: str) -> None:
    """docs/providers/deepinfra.md#errors (D3): HTTPValidationError {"detail": [{loc, msg, type}]}."""
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    assert item["loc"] == ["body", field]
    assert isinstance(item["msg"], str) and item["msg"] and isinstance(item["type"], str)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"response_format": "url"}, "response_format"),
        ({"n": 5}, "n"),
        ({"size": "512*384"}, "size"),
        ({"size": "4096x4096"}, "size"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_deepinfra_openai_validation(
    client: httpx.Client, emu: EmulatorServer, fields: dict[str, Any], field: str
) -> None:
    assert_fastapi_422(di_openai(client, emu, **fields), field)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"num_images": 5}, "num_images"),
        ({"num_inference_steps": 51}, "num_inference_steps"),
        ({"width": 1000}, "width"),
        ({"height": 64}, "height"),
        ({"seed": -1}, "seed"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_deepinfra_native_validation(
    client: httpx.Client, emu: EmulatorServer, fields: dict[str, Any], field: str
) -> None:
    assert_fastapi_422(di_native(client, emu, **fields), field)


def test_deepinfra_unknown_model_is_a_deep_error(client: httpx.Client, emu: EmulatorServer) -> None:
    native = client.post(emu.base_urls["deepinfra"] + "/v1/inference/other/model", json={}, headers=DI_AUTH)
    assert native.status_code == 404 and native.json() == {"error": "Model not found"}
    openai = di_openai(client, emu, model="black-forest-labs/FLUX.1-schnell")
    assert openai.status_code == 404 and openai.json() == {"error": "Model not found"}
    # The Vercel SDK's reading of the same answer, as a variant (docs/providers/deepinfra.md#errors, D4).
    emu.queue_variants("deepinfra", "detail_error")
    vercel = client.post(emu.base_urls["deepinfra"] + "/v1/inference/other/model", json={}, headers=DI_AUTH)
    assert vercel.status_code == 404 and vercel.json() == {"detail": {"error": "Model not found"}}


def test_deepinfra_openai_error_variant(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(variants={"deepinfra": ["openai_errors"]})
    invalid = di_openai(client, emu, n=5)
    assert invalid.status_code == 400
    assert invalid.json()["error"]["type"] == "invalid_request_error" and invalid.json()["error"]["message"]
    emu.inject("deepinfra", "500")
    failed = di_openai(client, emu)
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "server_error"
    wrong_model = di_openai(client, emu, model="other")
    assert wrong_model.status_code == 404 and wrong_model.json()["error"]["message"] == "Model not found"
    assert_fastapi_422(di_native(client, emu, num_images=5), "num_images")  # native path unaffected
    emu.reset()
    # A prompt directive reaches what is answered after the prompt is read.
    directed = di_openai(client, emu, prompt="x [variant:openai_errors]", n=5)
    assert directed.status_code == 400 and directed.json()["error"]["message"]


def test_deepinfra_auth(client: httpx.Client, emu: EmulatorServer) -> None:
    missing = di_native(client, emu, headers={})
    assert missing.status_code == 401 and missing.json()["detail"]["error"]
    assert di_native(client, emu, headers={"Authorization": "Bearer invalid-token"}).status_code == 401
    assert di_native(client, emu, headers={"x-api-key": "test-key"}).status_code == 401
    wrong_model = client.post(
        emu.base_urls["deepinfra"] + "/v1/inference/other/model", json={}, headers=DI_AUTH
    )
    assert wrong_model.status_code == 404


@pytest.mark.parametrize(
    ("fault", "status"), [("credits", 402), ("429", 429), ("500", 500), ("failed_job", 500), ("401", 401)]
)
def test_deepinfra_error_faults(client: httpx.Client, emu: EmulatorServer, fault: str, status: int) -> None:
    emu.inject("deepinfra", fault)
    native = di_native(client, emu)
    assert native.status_code == status and isinstance(native.json()["detail"]["error"], str)
    emu.inject("deepinfra", fault)
    openai = di_openai(client, emu)  # docs/providers/deepinfra.md#errors: not the OpenAI shape by default
    assert openai.status_code == status and isinstance(openai.json()["detail"]["error"], str)
    if fault == "credits":
        assert native.json() == {"detail": {"error": "Not enough balance"}}


def test_deepinfra_broken_success_faults(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("deepinfra", "malformed")
    with pytest.raises(json.JSONDecodeError):
        di_native(client, emu).json()
    emu.inject("deepinfra", "missing_fields")
    assert "images" not in di_native(client, emu).json()
    emu.inject("deepinfra", "429_no_retry_after")
    assert "retry-after" not in di_openai(client, emu).headers
    for fault in ("not_image", "truncated"):
        data = di_native(client, emu, prompt=f"x [fault:{fault}]").json()["images"][0].partition(",")[2]
        with pytest.raises(OSError):
            decode(base64.b64decode(data))
        emu.inject("deepinfra", fault)
        with pytest.raises(OSError):
            decode(base64.b64decode(di_openai(client, emu).json()["data"][0]["b64_json"]))
    emu.inject("deepinfra", "reset")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        di_openai(client, emu)


async def test_deepinfra_concurrency_limit(emu: EmulatorServer) -> None:
    emu.configure(providers={"deepinfra": {"max_concurrency": 1}}, latency={"deepinfra": 0.4})
    url = emu.base_urls["deepinfra"] + f"/v1/inference/{DI_MODEL}"
    async with httpx.AsyncClient(trust_env=False, timeout=10) as aclient:
        slow = asyncio.create_task(
            aclient.post(url, json={"prompt": "a", "width": 256, "height": 256}, headers=DI_AUTH)
        )
        await asyncio.sleep(0.15)
        limited = await aclient.post(url, json={"prompt": "b"}, headers=DI_AUTH)
        assert (await slow).status_code == 200
    assert limited.status_code == 429 and limited.json() == {"detail": {"error": "Rate limited"}}


# -- control API, stats, latency, CLI ------------------------------------------------


def test_stats_count_every_request(client: httpx.Client, emu: EmulatorServer) -> None:
    atlas_submit(client, emu, headers={})  # rejected
    emu.inject("atlascloud", "500")
    atlas_submit(client, emu)  # faulted
    pid = atlas_job(client, emu)
    atlas_poll(client, emu, pid)
    segmind(client, emu, steps=99)  # invalid
    client.get(emu.base_urls["segmind"] + "/v2/unknown")
    stats = emu.stats()
    atlas_counts = stats["requests"]["atlascloud"]
    assert atlas_counts["submit"] == 3 and atlas_counts["POST /api/v1/model/generateImage"] == 3
    assert atlas_counts["poll"] == 1
    assert stats["statuses"]["atlascloud"] == {"401": 1, "500": 1, "200": 2}
    assert stats["requests"]["segmind"]["submit"] == 1 and stats["requests"]["segmind"]["unmatched"] == 1
    assert stats["faults_fired"]["atlascloud"] == {"500": 1}
    assert stats["jobs"]["total"] == 1
    assert stats["user_agents"]["atlascloud"][f"python-httpx/{httpx.__version__}"] == 4
    # Each provider's own figures sit under its name (every registered provider has an entry).
    assert set(stats["providers"]) == set(EMULATED)
    assert {name: stats["providers"][name] for name in ("atlascloud", "deepinfra", "segmind")} == {
        "atlascloud": {"uploads": 0},
        "deepinfra": {"inflight": 0, "max_concurrency": 200},
        "segmind": {"credits": 100.0},
    }


def test_request_log_redacts_keys(client: httpx.Client, emu: EmulatorServer) -> None:
    segmind(client, emu)
    atlas_submit(client, emu)
    logged = emu.requests("segmind")[-1]
    assert logged["headers"]["x-api-key"] == "[redacted]" and logged["body"]["prompt"] == "a red fox"
    assert emu.requests("atlascloud")[-1]["headers"]["authorization"] == "Bearer [redacted]"


def test_control_api_validation(emu: EmulatorServer) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        emu.inject("atlascloud", "explode")
    with pytest.raises(ValueError, match="does not apply"):
        emu.inject("segmind", "never_completes")
    with pytest.raises(ValueError, match="applies at"):
        emu.inject("atlascloud", "slow_download", stage="submit")
    with pytest.raises(ValueError, match="provider"):
        emu.inject("nosuch", "500")
    with pytest.raises(ValueError, match="unknown variant"):
        emu.configure(variants={"segmind": ["png"]})
    queued = emu.inject("segmind", "500", count=3)
    assert queued == [{"provider": "segmind", "fault": "500", "stage": "submit", "remaining": 3}]
    emu.clear_faults()
    assert emu.stats()["queued_faults"] == []
    help_page = httpx.get(emu.url + "/_emulator/", trust_env=False).json()
    assert set(help_page["faults"]) == set(FAULTS)


def test_directive_errors(client: httpx.Client, emu: EmulatorServer) -> None:
    bad = segmind(client, emu, prompt="x [fault:explode]")
    assert bad.status_code == 400 and bad.json()["error"].startswith("emulator:")
    assert atlas_submit(client, emu, prompt="x [latency:soon]").status_code == 400
    assert di_native(client, emu, prompt="x [fault:500@poll]").status_code == 400


def test_latency_config_and_directive(client: httpx.Client, emu: EmulatorServer) -> None:
    config = emu.configure(latency={"segmind": 0.4})
    assert config["provider_latency"] == {"segmind": 0.4} and config["latency"] == 0.05
    start = time.monotonic()
    segmind(client, emu)
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    di_native(client, emu, prompt="x [latency:0.3]")
    assert time.monotonic() - start >= 0.3
    pid = atlas_job(client, emu, prompt="slow [latency:0.5]")
    record = next(j for j in emu.jobs() if j["id"] == pid)
    assert record["ready"] - record["created"] == pytest.approx(0.5)
    emu.reset()
    assert emu.configure()["provider_latency"] == {}


@pytest.mark.slow
async def test_many_concurrent_requests(emu: EmulatorServer) -> None:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as aclient:
        seg = emu.base_urls["segmind"] + "/v1/flux-schnell"
        di = emu.base_urls["deepinfra"] + f"/v1/inference/{DI_MODEL}"
        calls = [
            aclient.post(seg, json={"prompt": f"p{i % 10}", "width": 512, "height": 512}, headers=SEG_AUTH)
            for i in range(100)
        ] + [
            aclient.post(
                di, json={"prompt": "p", "width": 512, "height": 512, "seed": i % 10}, headers=DI_AUTH
            )
            for i in range(100)
        ]
        responses = await asyncio.gather(*calls)
    assert [r.status_code for r in responses] == [200] * 200


@pytest.mark.slow  # a process of its own, or real seconds of waiting
def test_cli_prints_exports() -> None:
    command = [sys.executable, "-m", "flux_playground.emulator", "--port", "0", "--latency", "0"]
    repo_root = Path(__file__).resolve().parents[2]  # so that -m finds flux_playground
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=repo_root) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline().strip() for _ in range(len(EMULATED) + 2)]
            exports = dict(
                line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export")
            )
            assert set(exports) == {f"{name.upper()}_BASE_URL" for name in EMULATED}
            assert "invalid" in " ".join(lines)
            deadline = time.monotonic() + 10
            while True:
                try:
                    models = httpx.get(exports["ATLASCLOUD_BASE_URL"] + "/api/v1/models", trust_env=False)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            assert models.status_code == 200
        finally:
            process.terminate()
            process.wait(10)

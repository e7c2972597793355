"""Drift (emulator/drift.py): answers that left the documented contract, for every provider, over raw
httpx (never the project's client)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from flux_playground.emulator import EmulatorServer
from flux_playground.emulator.drift import DRIFTS, drift_json

PNG_URL = "https://cdn.example/files/p1/0.png"
B64 = "iVBORw0KGgo" + "A" * 120


@pytest.fixture
def emu(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    """The session's emulator (tests/conftest.py), left with no drift for the tests after."""
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, trust_env=False) as session:
        yield session


def test_rename_moves_only_the_field_that_holds_the_images() -> None:
    atlas = {
        "code": 200,
        "data": {"id": "p1", "status": "completed", "outputs": [PNG_URL], "urls": {"get": "x"}},
    }
    assert drift_json(atlas, "rename") == {
        "code": 200, "data": {"id": "p1", "status": "completed", "results": [PNG_URL], "urls": {"get": "x"}},
    }  # fmt: skip
    fal = {"images": [{"url": "data:image/png;base64,AAAA", "width": 8}], "seed": 1}
    assert drift_json(fal, "rename") == {
        "images": [{"uri": "data:image/png;base64,AAAA", "width": 8}],
        "seed": 1,
    }
    together = {"id": "t", "data": [{"index": 0, "b64_json": B64}]}
    assert drift_json(together, "rename") == {"id": "t", "data": [{"index": 0, "b64_json_v2": B64}]}
    # An answer without images (a job just started, a poll URL, an empty list) is left as it is.
    started = {
        "id": "p1",
        "status": "starting",
        "output": None,
        "outputs": [],
        "urls": {"get": "https://a/v1/p1"},
    }
    assert drift_json(started, "rename") == started


def test_status_gets_a_value_the_client_does_not_know() -> None:
    body = {
        "status": "succeeded",
        "inference_status": {"status": "unknown"},
        "finishReason": "SUCCESS",
        "n": 1,
    }
    assert drift_json(body, "status") == {
        "status": "succeeded_v2", "inference_status": {"status": "unknown_v2"}, "finishReason": "SUCCESS_v2",
        "n": 1,
    }  # fmt: skip
    assert drift_json({"data": [{"b64_json": B64}]}, "status") == {"data": [{"b64_json": B64}]}


def test_a_drifting_provider_drifts_until_told_otherwise(client: httpx.Client, emu: EmulatorServer) -> None:
    url = emu.base_urls["fal"] + "/fal-ai/flux/schnell"
    body = {"prompt": "a red fox", "image_size": {"width": 256, "height": 256}, "sync_mode": True}
    headers = {"Authorization": "Key test-key"}
    emu.configure(drift={"fal": "rename"})
    assert emu.configure()["drift"] == {"fal": "rename"}
    drifted = client.post(url, json=body, headers=headers)
    assert drifted.status_code == 200 and drifted.headers["x-emulator-drift"] == "rename"
    assert list(drifted.json()["images"][0]) == ["uri", "width", "height", "content_type"]
    assert int(drifted.headers["content-length"]) == len(drifted.content)
    # Errors are not answers to drift: a refused key reads as documented.
    refused = client.post(url, json=body, headers={"Authorization": "Key invalid-key"})
    assert refused.status_code == 401 and "x-emulator-drift" not in refused.headers
    emu.configure(drift={"fal": None})
    assert list(client.post(url, json=body, headers=headers).json()["images"][0])[0] == "url"
    emu.configure(drift={"fal": "status"})
    emu.reset()
    assert emu.configure()["drift"] == {}


def test_an_image_answer_is_relabelled_but_downloads_are_not(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    emu.configure(drift={"segmind": "rename", "atlascloud": "rename"})
    segmind = client.post(
        emu.base_urls["segmind"] + "/v1/flux-schnell",
        json={"prompt": "a red fox", "width": 512, "height": 512},
        headers={"x-api-key": "test-key"},
    )
    assert segmind.status_code == 200 and segmind.headers["content-type"] == "application/octet-stream"
    assert segmind.content.startswith(b"\xff\xd8")  # the same JPEG, under another label
    atlas = emu.base_urls["atlascloud"]
    submitted = client.post(
        atlas + "/api/v1/model/generateImage",
        json={"model": "black-forest-labs/flux-schnell", "prompt": "a red fox", "size": "256*256",
              "enable_sync_mode": True},
        headers={"Authorization": "Bearer test-key"},
    )  # fmt: skip
    data = submitted.json()["data"]
    assert "outputs" not in data and len(data["results"]) == 1
    download = client.get(data["results"][0])
    assert download.headers["content-type"] == "image/png" and "x-emulator-drift" not in download.headers


def test_the_control_api_names_what_it_takes(emu: EmulatorServer) -> None:
    with pytest.raises(ValueError, match=r"drift must be one of: rename, status or null; got 'sideways'"):
        emu.configure(drift={"fal": "sideways"})
    with pytest.raises(ValueError, match="provider must be one of"):
        emu.configure(drift={"nosuch": "rename"})
    with pytest.raises(ValueError, match="drift must be"):
        emu.configure(drift=["fal"])
    index = httpx.get(emu.url + "/_emulator/", trust_env=False).json()
    assert index["drifts"] == DRIFTS

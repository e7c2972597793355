"""The Replicate emulator against docs/providers/replicate.md, with raw httpx (never our client):
Prefer: wait, the prediction's life, validation as problem JSON, auth, variants and job faults."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from flux_playground.emulator import EmulatorServer
from flux_playground.emulator import replicate as emulated

AUTH = {"Authorization": "Bearer r8_test"}
CREATE = "/v1/models/black-forest-labs/flux-schnell/predictions"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, trust_env=False) as session:
        yield session


def create(
    client: httpx.Client, emu: EmulatorServer, *, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body = {"input": {"prompt": "a red fox", "seed": 7, **fields}}
    return client.post(
        emu.base_urls["replicate"] + CREATE, json=body, headers=AUTH if headers is None else headers
    )


def waited(client: httpx.Client, emu: EmulatorServer, wait: str = "wait", **fields: Any) -> dict[str, Any]:
    response = create(client, emu, headers={**AUTH, "Prefer": wait}, **fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def size_of(client: httpx.Client, url: str) -> tuple[int, int]:
    answer = client.get(url)  # output files need no token, as on Replicate's CDN
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(answer.content)).size


def test_without_prefer_the_prediction_starts_and_is_polled_at_urls_get(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    started = create(client, emu, num_outputs=2)
    assert started.status_code == 201
    body = started.json()
    assert (body["status"], body["output"], body["error"]) == ("starting", None, None)
    assert body["urls"]["get"] == f"{emu.base_urls['replicate']}/v1/predictions/{body['id']}"
    time.sleep(0.1)
    done = client.get(body["urls"]["get"], headers=AUTH).json()
    assert done["status"] == "succeeded" and done["metrics"]["predict_time"] >= 0
    assert [url.rsplit("/", 1)[1] for url in done["output"]] == ["out-0.png", "out-1.png"]
    assert [size_of(client, url) for url in done["output"]] == [(1024, 1024)] * 2


def test_prefer_wait_answers_the_finished_prediction(client: httpx.Client, emu: EmulatorServer) -> None:
    body = waited(client, emu, aspect_ratio="16:9", megapixels="0.25")
    assert body["status"] == "succeeded" and body["completed_at"]
    assert size_of(client, body["output"][0]) == (672, 384)  # 1344 × 768 halved (#sizes)


@pytest.mark.slow  # a process of its own, or real seconds of waiting
def test_prefer_wait_n_gives_up_with_the_prediction_processing(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    started = time.monotonic()
    body = waited(client, emu, "wait=1", prompt="a red fox [latency:3]")
    assert 0.9 <= time.monotonic() - started < 2.5
    assert (body["status"], body["output"]) == ("processing", None)


@pytest.mark.parametrize(
    ("ratio", "megapixels", "size"),
    [("4:3", "1", (1152, 896)), ("9:21", "1", (640, 1536)), ("3:4", "0.25", (448, 576))],
)
def test_sizes_follow_the_documented_table(
    client: httpx.Client, emu: EmulatorServer, ratio: str, megapixels: str, size: tuple[int, int]
) -> None:
    body = waited(client, emu, aspect_ratio=ratio, megapixels=megapixels)
    assert size_of(client, body["output"][0]) == size


@pytest.mark.parametrize(
    ("fields", "field", "kind"),
    [
        ({"num_inference_steps": 8}, "input.num_inference_steps", "value_error"),
        ({"num_outputs": 5}, "input.num_outputs", "value_error"),
        ({"aspect_ratio": "7:5"}, "input.aspect_ratio", "enum"),
        ({"megapixels": 1}, "input.megapixels", "enum"),  # a string enum: 1 is not "1"
        ({"output_format": "gif"}, "input.output_format", "enum"),
        ({"output_quality": 101}, "input.output_quality", "value_error"),
        ({"go_fast": "no"}, "input.go_fast", "value_error"),
        ({"prompt": ""}, "input.prompt", "value_error"),
    ],
)
def test_invalid_input_is_a_422_problem_naming_the_field(
    client: httpx.Client, emu: EmulatorServer, fields: dict[str, Any], field: str, kind: str
) -> None:
    response = create(client, emu, **fields)
    assert response.status_code == 422
    body = response.json()
    assert (body["title"], body["status"]) == ("Input validation failed", 422)
    assert [(f["field"], f["type"]) for f in body["invalid_fields"]] == [(field, kind)]
    assert body["detail"].startswith(f"- {field}: ")


def test_every_problem_is_listed_and_a_missing_input_too(client: httpx.Client, emu: EmulatorServer) -> None:
    both = create(client, emu, num_inference_steps=0, output_format="bmp").json()
    assert [f["field"] for f in both["invalid_fields"]] == [
        "input.num_inference_steps",
        "input.output_format",
    ]
    assert both["detail"].count("\n") == 2
    bare = client.post(emu.base_urls["replicate"] + CREATE, json={"prompt": "x"}, headers=AUTH)
    assert bare.status_code == 422 and bare.json()["invalid_fields"][0]["field"] == "input"


def test_undocumented_inputs_are_ignored_and_recorded(client: httpx.Client, emu: EmulatorServer) -> None:
    body = waited(client, emu, width=512, height=512)
    assert size_of(client, body["output"][0]) == (1024, 1024)
    assert emu.jobs()[-1]["ignored_fields"] == ["height", "width"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Token r8_test"}, {"Authorization": "Bearer invalid-token"}],
)
def test_only_a_valid_bearer_token_is_let_in(
    client: httpx.Client, emu: EmulatorServer, headers: dict[str, str]
) -> None:
    refused = create(client, emu, headers=headers)
    assert refused.status_code == 401
    assert refused.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }
    prediction = create(client, emu).json()
    assert client.get(prediction["urls"]["get"], headers=headers).status_code == 401


def test_unknown_predictions_and_models_are_404_problems(client: httpx.Client, emu: EmulatorServer) -> None:
    base = emu.base_urls["replicate"]
    unknown = client.get(base + "/v1/predictions/nope", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["title"] == "Not found"
    other = client.post(base + "/v1/models/black-forest-labs/flux-dev/predictions", json={}, headers=AUTH)
    assert other.status_code == 404


def test_data_uri_variant(client: httpx.Client, emu: EmulatorServer) -> None:
    body = waited(client, emu, prompt="a red fox [variant:datauri]")
    header, _, data = body["output"][0].partition(",")
    assert header == "data:application/octet-stream;base64"
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (1024, 1024)


def test_an_image_flagged_nsfw_is_dropped(client: httpx.Client, emu: EmulatorServer) -> None:
    body = waited(client, emu, prompt="a red fox [variant:nsfw_first]", num_outputs=2)
    assert body["status"] == "succeeded" and [u.rsplit("/", 1)[1] for u in body["output"]] == ["out-1.png"]
    assert client.get(body["output"][0].replace("out-1", "out-0")).status_code == 404


@pytest.mark.parametrize(("variant", "outputs"), [("nsfw_all", 3), ("nsfw_first", 1)])
def test_all_images_flagged_fails_the_prediction(
    client: httpx.Client, emu: EmulatorServer, variant: str, outputs: int
) -> None:
    body = waited(client, emu, prompt=f"a red fox [variant:{variant}]", num_outputs=outputs)
    assert (body["status"], body["output"], body["error"]) == ("failed", None, emulated.NSFW_ERROR)


@pytest.mark.slow  # a process of its own, or real seconds of waiting
def test_failed_and_never_completing_jobs(client: httpx.Client, emu: EmulatorServer) -> None:
    failed = waited(client, emu, prompt="a red fox [fault:failed_job]")
    assert (failed["status"], failed["error"]) == ("failed", emulated.FAILED_ERROR)
    emu.inject("replicate", "never_completes")
    stuck = waited(client, emu, "wait=1")
    assert stuck["status"] == "processing"
    assert client.get(stuck["urls"]["get"], headers=AUTH).json()["status"] == "processing"


def test_fault_bodies_are_replicates_problems(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("replicate", "credits")
    credits = create(client, emu)
    assert credits.status_code == 402 and credits.json()["title"] == "Insufficient credit"
    assert credits.json()["detail"] == emulated.DIALECT.credits_message
    emu.inject("replicate", "429")
    throttled = create(client, emu)
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert throttled.json() == {"detail": "Request was throttled. Your rate limit resets in ~30s."}


def test_a_bad_output_file(client: httpx.Client, emu: EmulatorServer) -> None:
    body = waited(client, emu)
    emu.inject("replicate", "truncated")
    cut = client.get(body["output"][0])
    assert cut.status_code == 200 and cut.headers["content-type"] == "image/png"
    with pytest.raises(OSError):
        Image.open(io.BytesIO(cut.content)).load()
    assert size_of(client, body["output"][0]) == (1024, 1024)  # one-shot


def test_outputs_vanish_after_the_retention_window(
    client: httpx.Client, emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = waited(client, emu)
    monkeypatch.setattr(emulated, "OUTPUT_RETENTION_S", 0.0)
    time.sleep(0.01)
    assert client.get(body["output"][0]).status_code == 404
    again = client.get(body["urls"]["get"], headers=AUTH).json()
    assert (again["data_removed"], again["output"]) == (True, None)

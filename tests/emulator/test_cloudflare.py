"""The Cloudflare emulator (written from docs/providers/cloudflare.md), exercised with raw httpx: the
account route, auth schemes, validation in the v4 envelope, the response variants and its faults."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from flux_playground.emulator import EmulatorServer

ACCOUNT = "0123456789abcdef0123456789abcdef"
MODEL = "@cf/black-forest-labs/flux-1-schnell"
AUTH = {"Authorization": "Bearer test-key"}
FREE_ALLOCATION = (
    "You have used up your daily free allocation of 10,000 neurons. Please upgrade to Cloudflare's "
    "Workers Paid plan if you would like to continue usage."
)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, trust_env=False) as session:
        yield session


def url(emu: EmulatorServer, account: str = ACCOUNT, model: str = MODEL) -> str:
    return f"{emu.base_urls['cloudflare']}/client/v4/accounts/{account}/ai/run/{model}"


def run(
    client: httpx.Client,
    emu: EmulatorServer,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    account: str = ACCOUNT,
    model: str = MODEL,
) -> httpx.Response:
    payload = {"prompt": "a red fox", "steps": 4} if body is None else body
    return client.post(url(emu, account, model), json=payload, headers=AUTH if headers is None else headers)


def errors(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    return list(body["errors"])


def image_of(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_the_v4_envelope_with_a_1024_jpeg_whatever_was_asked(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    response = run(client, emu, {"prompt": "a red fox", "steps": 8, "width": 512, "height": 512})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"result", "success", "errors", "messages"}
    assert (body["success"], body["errors"], body["messages"]) == (True, [], [])
    image = image_of(body["result"]["image"])
    assert (image.format, image.size) == ("JPEG", (1024, 1024))
    assert emu.stats()["requests"]["cloudflare"]["submit"] == 1


def test_steps_default_to_4_and_seed_is_ignored(client: httpx.Client, emu: EmulatorServer) -> None:
    assert run(client, emu, {"prompt": "a red fox"}).status_code == 200
    assert run(client, emu, {"prompt": "a red fox", "seed": 7}).status_code == 200  # the open schema


def test_the_bare_variant(client: httpx.Client, emu: EmulatorServer) -> None:
    bare = run(client, emu, {"prompt": "a red fox [variant:bare]"})
    assert set(bare.json()) == {"image"} and image_of(bare.json()["image"]).size == (1024, 1024)
    emu.queue_variants("cloudflare", "bare")
    assert set(run(client, emu).json()) == {"image"}
    assert "result" in run(client, emu).json()  # the queued variant was used once


def test_the_closed_schema_variant_refuses_extra_fields(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.queue_variants("cloudflare", "closed", count=2)
    refused = run(client, emu, {"prompt": "a red fox", "steps": 4, "seed": 7})
    assert refused.status_code == 400
    assert errors(refused) == [
        {"message": "AiError: Bad input: Error: must NOT have additional properties (seed)"}
    ]
    assert run(client, emu, {"prompt": "a red fox", "steps": 4}).status_code == 200


@pytest.mark.parametrize("account", [ACCOUNT, ACCOUNT.upper(), "demo-account_id"])
def test_account_ids_of_the_documented_form_and_the_demo_placeholder(
    client: httpx.Client, emu: EmulatorServer, account: str
) -> None:
    assert run(client, emu, account=account).status_code == 200


@pytest.mark.parametrize(
    "account", ["not-an-account", ACCOUNT[:31], "cfut_abcdefghijklmnopqrstuvwxyz0123456789"]
)
def test_other_account_ids_cannot_be_routed(client: httpx.Client, emu: EmulatorServer, account: str) -> None:
    response = run(client, emu, account=account)
    assert response.status_code == 404
    path = f"/client/v4/accounts/{account}/ai/run/{MODEL}"
    assert errors(response) == [
        {"code": 7003, "message": f"Could not route to {path}, perhaps your object identifier is invalid?"},
        {"code": 7000, "message": "No route for that URI"},
    ]


def test_another_model(client: httpx.Client, emu: EmulatorServer) -> None:
    response = run(client, emu, model="@cf/black-forest-labs/flux-1-dev")
    assert response.status_code == 400
    assert errors(response) == [
        {"code": 5007, "message": "No such model @cf/black-forest-labs/flux-1-dev or task"}
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer test-key"},
        {"Authorization": "bearer test-key"},
        {"X-Auth-Email": "me@example.com", "X-Auth-Key": "test-key"},  # the legacy pair
    ],
)
def test_documented_auth(client: httpx.Client, emu: EmulatorServer, headers: dict[str, str]) -> None:
    assert run(client, emu, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer invalid-key"},
        {"X-Auth-Key": "test-key"},  # the legacy key needs its email
        {"X-Auth-Email": "me@example.com", "X-Auth-Key": "invalid-key"},
    ],
)
def test_missing_or_refused_token(client: httpx.Client, emu: EmulatorServer, headers: dict[str, str]) -> None:
    response = run(client, emu, headers=headers)
    assert response.status_code == 401
    assert errors(response) == [{"code": 10000, "message": "Authentication error"}]


@pytest.mark.parametrize("authorization", ["Token test-key", "test-key", "Bearer", "Basic dGVzdDprZXk="])
def test_another_scheme_is_a_malformed_header(
    client: httpx.Client, emu: EmulatorServer, authorization: str
) -> None:
    response = run(client, emu, headers={"Authorization": authorization})
    assert response.status_code == 400
    assert errors(response) == [
        {
            "code": 6003,
            "message": "Invalid request headers",
            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
        }
    ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"steps": 4}, "prompt is required"),
        ({"prompt": ""}, "prompt is required"),
        ({"prompt": "a" * 2049}, "prompt must NOT have more than 2048 characters"),
        ({"prompt": "x", "steps": 9}, "steps must be an integer between 1 and 8"),
        ({"prompt": "x", "steps": 0}, "steps must be an integer between 1 and 8"),
        ({"prompt": "x", "steps": "4"}, "steps must be an integer between 1 and 8"),
        (["a red fox"], "request body must be a JSON object"),
    ],
)
def test_validation_is_a_bad_input_envelope(
    client: httpx.Client, emu: EmulatorServer, body: Any, words: str
) -> None:
    response = run(client, emu, body)
    assert response.status_code == 400
    ((error,),) = (errors(response),)
    assert set(error) == {"message"} and error["message"].startswith("AiError: Bad input: Error: ")
    assert words in error["message"]


def test_the_longest_prompt_and_most_steps(client: httpx.Client, emu: EmulatorServer) -> None:
    assert run(client, emu, {"prompt": "a" * 2048, "steps": 8}).status_code == 200


def test_a_missing_body(client: httpx.Client, emu: EmulatorServer) -> None:
    response = client.post(url(emu), headers=AUTH)
    assert response.status_code == 400
    assert errors(response) == [{"code": 3003, "message": "Request is missing headers or body: body"}]


def test_the_credits_fault_is_the_daily_free_allocation(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("cloudflare", "credits")
    response = run(client, emu)
    assert response.status_code == 429 and "retry-after" not in response.headers
    assert errors(response) == [{"code": 3036, "message": FREE_ALLOCATION}]
    assert run(client, emu, {"prompt": "a red fox [fault:credits]"}).json()["errors"][0]["code"] == 3036


def test_the_429_fault_is_out_of_capacity_with_retry_after(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("cloudflare", "429")
    response = run(client, emu)
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert errors(response) == [{"code": 3040, "message": "No more data centers to forward the request to"}]


def test_the_401_fault_and_a_500_without_a_code(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("cloudflare", "401")
    assert errors(run(client, emu)) == [{"code": 10000, "message": "Authentication error"}]
    emu.inject("cloudflare", "500")
    response = run(client, emu)
    assert response.status_code == 500 and errors(response) == [{"message": "Internal server error"}]


def test_missing_fields_is_a_successful_envelope_without_an_image(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    emu.inject("cloudflare", "missing_fields")
    assert run(client, emu).json() == {"result": {}, "success": True, "errors": [], "messages": []}


def test_content_faults_damage_the_base64_image(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("cloudflare", "truncated")
    response = run(client, emu)
    assert response.status_code == 200 and response.headers["x-emulator-fault"] == "truncated"
    with pytest.raises(OSError):
        image_of(response.json()["result"]["image"])

"""Hugging Face's router, emulated, exercised with raw httpx (never the project's own client), against
docs/providers/hf-router.md: the Hugging Face token checked (401 in the Hub's words, 402 out of
credits), the request handed on to the provider behind it with the router's own key, the provider's
answers passed through, its files served without a token, and each forwarded call's token recorded
as a fingerprint only."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest

from flux_playground import hf_router as client_side
from flux_playground.emulator import EmulatorServer
from flux_playground.emulator.hf_router import NAME, OUT_OF_CREDITS, ROUTED, UNAUTHORIZED

TOKEN = "hf_emulatorTest1"
TOGETHER = {"model": "black-forest-labs/FLUX.1-schnell", "prompt": "a red fox", "width": 512, "height": 512}


def together(
    client: httpx.Client, emu: EmulatorServer, token: str | None = TOKEN, **fields: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = emu.base_urls[NAME] + "/together/v1/images/generations"
    return client.post(url, json={**TOGETHER, **fields}, headers=headers)


def test_the_mount_is_where_the_product_looks_for_it(emu: EmulatorServer) -> None:
    assert NAME == client_side.EMULATED_NAME
    assert emu.base_urls[NAME] == f"{emu.url}/hf_router"
    assert set(ROUTED) == {"fal-ai", "replicate", "together"}


@pytest.mark.parametrize("token", [None, "sk-a-provider-key", "hf_invalid-1", "hf_expired-2"])
def test_a_missing_or_refused_token_is_401(
    client: httpx.Client, emu: EmulatorServer, token: str | None
) -> None:
    answer = together(client, emu, token)
    assert (answer.status_code, answer.json()) == (401, {"error": UNAUTHORIZED})
    assert emu.stats()["requests"]["together"].get("submit", 0) == 0  # never reached the provider
    basic = client.post(
        emu.base_urls[NAME] + "/together/v1/images/generations",
        json=TOGETHER,
        headers={"Authorization": f"Basic {TOKEN}"},
    )
    assert basic.status_code == 401


def test_out_of_credits_is_402(client: httpx.Client, emu: EmulatorServer) -> None:
    answer = together(client, emu, "hf_nocredit-3")
    assert (answer.status_code, answer.json()) == (402, {"error": OUT_OF_CREDITS})
    emu.inject(NAME, "credits")
    injected = together(client, emu)
    assert (injected.status_code, injected.json()["error"]) == (402, OUT_OF_CREDITS)
    assert emu.stats()["faults_fired"][NAME] == {"credits": 1}


def test_a_good_token_reaches_the_provider_with_the_routers_key(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    answer = together(client, emu, response_format="base64", prompt="a fox for ada")
    assert answer.status_code == 200, answer.text
    assert [item["type"] for item in answer.json()["data"]] == ["b64_json"]
    stats = emu.stats()
    assert stats["requests"][NAME]["submit"] == 1 and stats["requests"]["together"]["submit"] == 1
    # What the provider saw: the router's own key (redacted in the log), never the person's token.
    (seen,) = emu.requests("together")
    assert (
        seen["headers"]["authorization"] == "Bearer [redacted]"
        and seen["path"] == "/hf_router/together/v1/images/generations"
    )
    assert stats["providers"][NAME]["calls"] == [
        {
            "route": "together", "method": "POST", "path": "/v1/images/generations",
            "token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(), "prompt": "a fox for ada",
        }
    ]  # fmt: skip
    assert TOKEN not in str(stats) + str(emu.requests())


def test_fal_behind_the_router_takes_its_own_scheme(client: httpx.Client, emu: EmulatorServer) -> None:
    body = {"prompt": "a fox", "image_size": {"width": 512, "height": 512}, "sync_mode": True}
    answer = client.post(
        emu.base_urls[NAME] + "/fal-ai/fal-ai/flux/schnell",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["images"][0]["url"].startswith("data:image/")


def test_replicate_polls_and_files_through_the_router(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(latency={"replicate": 0.3})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = client.post(
        emu.base_urls[NAME] + "/replicate/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "a fox", "output_format": "png"}},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    poll = created.json()["urls"]["get"]
    assert poll.startswith(emu.base_urls[NAME] + "/replicate/v1/predictions/")
    assert client.get(poll).status_code == 401  # a poll is an API call: the token is needed
    for _ in range(100):
        prediction = client.get(poll, headers=auth).json()
        if prediction["status"] == "succeeded":
            break
        time.sleep(0.05)
    (output,) = prediction["output"]
    assert output.startswith(emu.base_urls[NAME] + "/replicate/files/")
    image = client.get(output)  # the CDN stand-in: no token, as on another origin
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    requests = emu.stats()["requests"][NAME]
    assert requests["submit"] == 1 and requests["poll"] >= 2 and requests["download"] == 1


def test_provider_errors_pass_through(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.inject("together", "429")
    limited = together(client, emu)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["message"] == "Rate limit exceeded: reduce your request rate."
    invalid = together(client, emu, width=100)
    assert invalid.status_code == 400 and "width" in invalid.json()["error"]["message"]


def test_an_unknown_route(client: httpx.Client, emu: EmulatorServer) -> None:
    answer = client.post(
        emu.base_urls[NAME] + "/nscale/v1/images/generations",
        json={},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 404 and answer.json() == {
        "error": "Not Found: POST /hf_router/nscale/v1/images/generations"
    }

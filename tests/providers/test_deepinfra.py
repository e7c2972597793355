"""DeepInfra: native and OpenAI-compatible payloads, both answer shapes, cost reporting, errors."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from flux_playground.errors import (
    AuthenticationFailed,
    InputRejected,
    InsufficientCredits,
    InvalidRequest,
    MalformedResponse,
    ProviderFailed,
    RateLimited,
)
from flux_playground.models import GenerationRequest
from flux_playground.providers import CallContext, ProviderOutput
from flux_playground.providers.deepinfra import DeepInfra
from flux_playground.settings import Settings

KEY = "di-secret-token-789"
PROVIDER = DeepInfra()
NATIVE = Settings(
    _env_file=None, providers={"deepinfra": {"api_key": KEY, "base_url": "https://deepinfra.test"}}
)
OPENAI = NATIVE.with_provider("deepinfra", options={"endpoint": "openai"})
FULL = GenerationRequest(prompt="a lighthouse", width=768, height=1344, steps=6, seed=77, num_images=2)
DATA_URI = "data:image/png;base64,iVBORw0KGgo="

# The documented example answer of the native endpoint (docs/providers/deepinfra.md#response).
DOCUMENTED_NATIVE = {
    "images": [DATA_URI],
    "nsfw_content_detected": [False],
    "seed": 42,
    "request_id": None,
    "inference_status": {
        "status": "unknown",
        "runtime_ms": 0,
        "cost": 0.0,
        "tokens_generated": 0,
        "tokens_input": 0,
    },
}


class TestBuildCallNative:
    def test_default_request(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox"), KEY, NATIVE)
        assert call.method == "POST"
        assert call.url == "https://deepinfra.test/v1/inference/black-forest-labs/FLUX-1-schnell"
        assert call.headers == {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        assert call.json == {
            "prompt": "a red fox",
            "num_images": 1,
            "num_inference_steps": 4,
            "width": 1024,
            "height": 1024,
        }

    def test_every_field_set(self) -> None:
        call = PROVIDER.build_call(FULL, KEY, NATIVE)
        assert call.json == {
            "prompt": "a lighthouse",
            "num_images": 2,
            "num_inference_steps": 6,
            "width": 768,
            "height": 1344,
            "seed": 77,
        }

    def test_default_base_url(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, Settings(_env_file=None))
        assert call.url == "https://api.deepinfra.com/v1/inference/black-forest-labs/FLUX-1-schnell"


class TestBuildCallOpenAI:
    def test_default_request(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox"), KEY, OPENAI)
        assert call.url == "https://deepinfra.test/v1/openai/images/generations"
        assert call.headers == {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        assert call.json == {
            "prompt": "a red fox",
            "n": 1,
            "size": "1024x1024",
            "response_format": "b64_json",
            "model": "black-forest-labs/FLUX-1-schnell",
        }
        assert list(call.json)[-1] == "model"

    def test_every_field_set_sends_no_steps_or_seed(self) -> None:
        call = PROVIDER.build_call(FULL, KEY, OPENAI)
        assert call.json == {
            "prompt": "a lighthouse",
            "n": 2,
            "size": "768x1344",
            "response_format": "b64_json",
            "model": "black-forest-labs/FLUX-1-schnell",
        }


class TestParse:
    def parse(self, body: Any) -> ProviderOutput:
        return PROVIDER.parse(httpx.Response(200, json=body))

    def test_documented_native_example(self) -> None:
        # "status": "unknown", "cost": 0.0 is not a trustworthy charge of $0: reported cost is unknown.
        assert self.parse(DOCUMENTED_NATIVE) == ProviderOutput(
            items=[DATA_URI], seed=42, reported_cost_usd=None
        )

    def test_native_cost_is_an_exact_decimal(self) -> None:
        out = self.parse(
            {
                "images": [DATA_URI, DATA_URI],
                "seed": 7,
                "request_id": "req-1",
                "inference_status": {"status": "succeeded", "runtime_ms": 812, "cost": 0.0016},
            }
        )
        assert out == ProviderOutput(
            items=[DATA_URI, DATA_URI],
            seed=7,
            reported_cost_usd=Decimal("0.0016"),
            request_id="req-1",
        )
        assert str(out.reported_cost_usd) == "0.0016"

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ({"status": "succeeded", "cost": 0}, Decimal("0")),
            ({"status": "succeeded", "cost": "0.002"}, Decimal("0.002")),
            ({"status": "unknown", "cost": 0.002}, Decimal("0.002")),
            ({"status": "succeeded", "cost": -1}, None),
            ({"status": "succeeded", "cost": True}, None),
            ({"status": "succeeded", "cost": "NaN"}, None),
            ({"status": "succeeded", "cost": "cheap"}, None),
            ({"status": "succeeded"}, None),
            ("not a dict", None),
        ],
    )
    def test_cost_variants(self, status: Any, expected: Decimal | None) -> None:
        out = self.parse({"images": [DATA_URI], "inference_status": status})
        assert out.reported_cost_usd == expected

    def test_seed_must_be_an_int(self) -> None:
        assert self.parse({"images": [DATA_URI], "seed": "42"}).seed is None

    def test_openai_b64_json(self) -> None:
        out = self.parse(
            {
                "created": 1707000000,
                "data": [
                    {"revised_prompt": "x", "b64_json": "/9j/4AAQ"},
                    {"b64_json": "iVBORw0K"},
                ],
            }
        )
        assert out == ProviderOutput(items=["/9j/4AAQ", "iVBORw0K"])

    @pytest.mark.parametrize(
        "body",
        [
            {"images": []},
            {"images": [""]},
            {"images": [None]},
            {"images": "data:image/png;base64,AAAA"},
            {"data": []},
            {"data": [{"url": None, "b64_json": None}]},
            {"data": "nope"},
            {"inference_status": {"status": "failed"}},
            [],
        ],
    )
    def test_malformed(self, body: Any) -> None:
        with pytest.raises(MalformedResponse, match="DeepInfra"):
            self.parse(body)

    def test_openai_items_may_be_urls(self) -> None:
        # Both fields are nullable in DeepInfra's OpenAPI (docs/providers/deepinfra.md#response).
        out = self.parse({"data": [{"url": "https://cdn.test/a.png", "b64_json": None}]})
        assert out == ProviderOutput(items=["https://cdn.test/a.png"])

    def test_not_json(self) -> None:
        with pytest.raises(MalformedResponse, match="not valid JSON"):
            PROVIDER.parse(httpx.Response(200, content=b"\x89PNG..."))


class TestErrorFor:
    def error(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Exception:
        response = httpx.Response(status, json=body if body is not None else {}, headers=headers)
        return PROVIDER.error_for(response, key=KEY)

    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_names_env_var(self, status: int) -> None:
        exc = self.error(status, {"detail": {"error": "Invalid token"}})
        assert isinstance(exc, AuthenticationFailed)
        assert str(exc) == (
            "DeepInfra: the API key was refused (Invalid token). "
            "Check DEEPINFRA_API_KEY or the key you pasted."
        )

    def test_402_is_insufficient_credits(self) -> None:
        assert isinstance(self.error(402, {"detail": {"error": "payment required"}}), InsufficientCredits)

    def test_406_is_not_credits_here(self) -> None:
        assert type(self.error(406)) is ProviderFailed

    def test_429_rate_limited(self) -> None:
        exc = self.error(429, {"detail": {"error": "Rate limited"}}, {"Retry-After": "1.5"})
        assert isinstance(exc, RateLimited) and exc.retry_after == 1.5
        assert "(Rate limited)" in str(exc)

    @pytest.mark.parametrize("status", [400, 422])
    def test_input_rejected(self, status: int) -> None:
        exc = self.error(
            status, {"error": {"message": "size not supported", "type": "invalid_request_error"}}
        )
        assert isinstance(exc, InputRejected) and "(size not supported)" in str(exc)

    @pytest.mark.parametrize("status", [500, 502])
    def test_server_errors(self, status: int) -> None:
        assert type(self.error(status, {"detail": {"error": "model crashed"}})) is ProviderFailed

    def test_404_points_at_base_url(self) -> None:
        assert "DEEPINFRA_BASE_URL" in str(self.error(404, {"detail": "Not Found"}))

    def test_echoed_key_is_redacted(self) -> None:
        exc = self.error(401, {"detail": {"error": f"token {KEY} expired"}})
        assert KEY not in str(exc) and "token [redacted] expired" in str(exc)

    def test_long_error_is_cut(self) -> None:
        exc = self.error(500, {"detail": {"error": "x" * 1000}})
        assert "x" * 200 + "…" in str(exc) and "x" * 201 not in str(exc)


class TestRun:
    @pytest.mark.parametrize(
        ("settings", "path"),
        [
            (NATIVE, "/v1/inference/black-forest-labs/FLUX-1-schnell"),
            (OPENAI, "/v1/openai/images/generations"),
        ],
    )
    async def test_end_to_end_through_mock_transport(self, settings: Settings, path: str) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            if request.url.path.startswith("/v1/openai"):
                return httpx.Response(200, json={"created": 1, "data": [{"b64_json": "iVBORw0K"}]})
            return httpx.Response(200, json=DOCUMENTED_NATIVE)

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            ctx = CallContext(client=client, settings=settings, key=KEY)
            call = PROVIDER.build_call(FULL, KEY, settings)
            out = await PROVIDER.run(ctx, call)
        assert len(seen) == 1
        assert seen[0].method == "POST" and seen[0].url.path == path
        assert seen[0].headers["authorization"] == f"Bearer {KEY}"
        assert json.loads(seen[0].content) == call.json
        assert out.items

    async def test_503_is_not_retried(self) -> None:
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request.method)
            return httpx.Response(503, json={"detail": {"error": "busy"}}, headers={"Retry-After": "0"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            ctx = CallContext(client=client, settings=NATIVE, key=KEY)
            with pytest.raises(ProviderFailed, match="busy"):
                await PROVIDER.run(ctx, PROVIDER.build_call(FULL, KEY, NATIVE))
        assert seen == ["POST"]


class TestValidate:
    def test_openai_endpoint_refuses_sampler(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", sampler="euler"), OPENAI)
        assert (info.value.provider, info.value.field) == ("deepinfra", "sampler")
        assert str(info.value) == "DeepInfra cannot take these settings: sampler is not supported."

    def test_openai_capabilities_do_not_claim_steps_or_seed(self) -> None:
        caps = PROVIDER.get_capabilities(OPENAI)
        assert (caps.steps, caps.seed) == (False, False)
        assert (PROVIDER.get_capabilities(NATIVE).steps, PROVIDER.get_capabilities(NATIVE).seed) == (
            True,
            True,
        )

    @pytest.mark.parametrize("settings", [NATIVE, OPENAI])
    def test_size_not_multiple_of_16(self, settings: Settings) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", width=1000), settings)
        assert info.value.field == "width"
        assert "width must be 256–2048 in multiples of 16 (nearest: 992)" in str(info.value)

    def test_native_accepts_50_steps_and_4_images(self) -> None:
        PROVIDER.validate(GenerationRequest(prompt="x", steps=50, num_images=4, seed=1), NATIVE)

    def test_nearest_size(self) -> None:
        assert PROVIDER.capabilities.nearest_size(1001, 700) == (1008, 704)

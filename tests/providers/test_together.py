"""Together AI: the whole call, every documented answer, every documented error, sizes and the price."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from flux_playground.demo import point_at
from flux_playground.errors import (
    AuthenticationFailed,
    InputRejected,
    InsufficientCredits,
    InvalidRequest,
    MalformedResponse,
    ProviderFailed,
    RateLimited,
)
from flux_playground.images import read_png_text
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS, CallContext, ProviderOutput
from flux_playground.providers.together import Together
from flux_playground.service import Playground
from flux_playground.settings import Settings

KEY = "tgp_v1_secret-key-321"
PROVIDER = Together()
SETTINGS = Settings(
    _env_file=None,
    providers={"together": {"api_key": KEY, "base_url": "https://together.test/"}},
    request_timeout=5.0,
)
MODEL = "black-forest-labs/FLUX.1-schnell"
URL = "https://together.test/v1/images/generations"
FULL = GenerationRequest(prompt="a lighthouse", width=768, height=1344, steps=3, seed=77, num_images=2)


def error_data(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    """docs/providers/together.md#errors: ErrorData."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class TestBuildCall:
    def test_default_request(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox"), KEY, SETTINGS)
        assert call.method == "POST"
        assert call.url == URL
        assert call.headers == {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        # Steps always (the OpenAPI's default is 20), base64 as Together spells it; model last.
        assert call.json == {
            "prompt": "a red fox",
            "n": 1,
            "width": 1024,
            "height": 1024,
            "steps": 4,
            "response_format": "base64",
            "model": MODEL,
        }
        assert list(call.json)[-1] == "model"

    def test_every_field_set_sends_the_seed(self) -> None:
        call = PROVIDER.build_call(FULL, KEY, SETTINGS)
        assert call.json == {
            "prompt": "a lighthouse",
            "n": 2,
            "width": 768,
            "height": 1344,
            "steps": 3,
            "seed": 77,
            "response_format": "base64",
            "model": MODEL,
        }

    def test_default_and_overridden_origin(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, Settings(_env_file=None))
        assert call.url == "https://api.together.xyz/v1/images/generations"
        other = Settings(_env_file=None).with_provider("together", base_url="https://api.together.ai")
        assert PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, other).url == (
            "https://api.together.ai/v1/images/generations"
        )

    def test_it_is_registered_with_its_variables(self) -> None:
        assert type(PROVIDERS["together"]) is Together
        assert (Together.key_env, Together.base_url_env()) == (("TOGETHER_API_KEY",), "TOGETHER_BASE_URL")


class TestParse:
    def parse(self, body: Any) -> ProviderOutput:
        return PROVIDER.parse(httpx.Response(200, json=body))

    def test_documented_base64_answer(self) -> None:
        # docs/providers/together.md#response: the item key is b64_json although we asked for "base64".
        body = {
            "id": "img-123",
            "model": MODEL,
            "object": "list",
            "data": [{"index": 0, "type": "b64_json", "b64_json": "/9j/4AAQ"}],
        }
        assert self.parse(body) == ProviderOutput(items=["/9j/4AAQ"], request_id="img-123")

    def test_documented_url_answer(self) -> None:
        body = {
            "id": "img-9",
            "model": MODEL,
            "object": "list",
            "data": [{"index": 0, "type": "url", "url": "https://api.together.ai/imgproxy/a.jpeg"}],
        }
        assert self.parse(body).items == ["https://api.together.ai/imgproxy/a.jpeg"]

    def test_items_come_in_index_order(self) -> None:
        data = [
            {"index": 1, "type": "b64_json", "b64_json": "second"},
            {"index": 0, "type": "b64_json", "b64_json": "first"},
        ]
        assert self.parse({"id": "x", "object": "list", "data": data}).items == ["first", "second"]

    @pytest.mark.parametrize(
        "body",
        [
            {"id": "x", "model": MODEL, "object": "list"},
            {"id": "x", "object": "list", "data": []},
            {"id": "x", "object": "list", "data": "nope"},
            {"id": "x", "object": "list", "data": [{"index": 0, "type": "b64_json", "b64_json": ""}]},
            {"id": "x", "object": "list", "data": [{"index": 0, "type": "url", "url": None}]},
            error_data("Internal error"),
            [],
        ],
    )
    def test_malformed(self, body: Any) -> None:
        with pytest.raises(MalformedResponse, match="Together AI: unexpected answer"):
            self.parse(body)

    def test_not_json(self) -> None:
        with pytest.raises(MalformedResponse, match="not valid JSON"):
            PROVIDER.parse(httpx.Response(200, content=b"\xff\xd8\xff"))


class TestErrorFor:
    def error(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Exception:
        response = httpx.Response(status, json=body if body is not None else {}, headers=headers)
        return PROVIDER.error_for(response, key=KEY)

    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_names_the_variable(self, status: int) -> None:
        exc = self.error(status, error_data("Invalid API key provided.", code="invalid_api_key"))
        assert isinstance(exc, AuthenticationFailed)
        assert str(exc) == (
            "Together AI: the API key was refused (Invalid API key provided.). "
            "Check TOGETHER_API_KEY or the key you pasted."
        )

    def test_402_is_out_of_credits(self) -> None:
        words = (
            "The account associated with the API key has reached its maximum allowed monthly spending limit."
        )
        exc = self.error(402, error_data(words, "credit_limit"))
        assert isinstance(exc, InsufficientCredits)
        assert str(exc) == (
            f"Together AI: the account is out of credits ({words}). Top up at the provider, then retry."
        )

    def test_429_with_retry_after(self) -> None:
        exc = self.error(429, error_data("reduce your request rate", "rate_limit"), {"Retry-After": "7"})
        assert isinstance(exc, RateLimited) and exc.retry_after == 7.0
        assert str(exc) == "Together AI: rate limited (reduce your request rate). Try again in 7 s."

    def test_429_without_retry_after(self) -> None:
        exc = self.error(429, error_data("reduce your request rate", "rate_limit"))
        assert isinstance(exc, RateLimited) and exc.retry_after is None
        assert str(exc).endswith("Try again in a little while.")

    @pytest.mark.parametrize("status", [400, 422])
    def test_settings_refused(self, status: int) -> None:
        exc = self.error(status, error_data("width must be a multiple of 8"))
        assert isinstance(exc, InputRejected)
        assert (
            str(exc) == "Together AI: the provider rejected these settings (width must be a multiple of 8)."
        )

    def test_404_points_at_the_origin(self) -> None:
        exc = self.error(404, error_data("Unable to access model x.", code="model_not_available"))
        assert type(exc) is ProviderFailed and "TOGETHER_BASE_URL" in str(exc)

    @pytest.mark.parametrize("status", [500, 503])
    def test_server_errors(self, status: int) -> None:
        exc = self.error(status, error_data("Engine Overloaded", "server_error"))
        assert type(exc) is ProviderFailed
        assert str(exc) == (
            f"Together AI: the provider failed (HTTP {status}) (Engine Overloaded). "
            "Try again in a minute or pick another provider."
        )

    def test_echoed_key_is_redacted(self) -> None:
        exc = self.error(401, error_data(f"key {KEY} is not valid"))
        assert KEY not in str(exc) and "key [redacted] is not valid" in str(exc)


class TestSizesStepsSeed:
    def test_multiples_of_8_are_taken_as_asked(self) -> None:
        request = GenerationRequest(prompt="x", width=1000, height=504, steps=50, num_images=4, seed=1)
        PROVIDER.validate(request, SETTINGS)
        assert PROVIDER.output_size(request, SETTINGS) == (1000, 504)

    def test_other_sizes_are_refused_with_the_nearest(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", width=1001), SETTINGS)
        assert (info.value.provider, info.value.field) == ("together", "width")
        assert str(info.value) == (
            "Together AI cannot take these settings: "
            "width must be 256–2048 in multiples of 8 (nearest: 1000)."
        )

    def test_it_claims_steps_and_seed_because_it_sends_them(self) -> None:
        caps = PROVIDER.get_capabilities(SETTINGS)
        assert (caps.steps, caps.seed, caps.sizes, caps.max_images) == (True, True, "exact", 4)


class TestPrice:
    def test_reference_request(self) -> None:
        reference = GenerationRequest(prompt="x", width=1024, height=1024, steps=4, num_images=1)
        assert PROVIDER.estimate(reference, SETTINGS) == Decimal("0.0027")
        rule = PROVIDER.price_rule(SETTINGS)
        assert rule is not None and rule.describe() == "$0.0027 per image" and not rule.approximate
        assert rule.source.startswith("https://") and rule.checked is not None

    def test_per_image(self) -> None:
        four = GenerationRequest(prompt="x", width=512, height=768, steps=1, num_images=4)
        assert PROVIDER.estimate(four, SETTINGS) == Decimal("0.0108")

    def test_the_owner_can_override_it(self) -> None:
        owned = SETTINGS.model_copy(update={"prices": {"together": {"usd": "0.002"}}})
        assert PROVIDER.estimate(GenerationRequest(prompt="x"), owned) == Decimal("0.002")


async def run_together(handler: Any, seen: list[httpx.Request]) -> ProviderOutput:
    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
        ctx = CallContext(client=client, settings=SETTINGS, key=KEY)
        return await PROVIDER.run(ctx, PROVIDER.build_call(FULL, KEY, SETTINGS))


class TestRun:
    async def test_one_post_with_the_key_to_the_origin(self) -> None:
        seen: list[httpx.Request] = []
        answer = {"id": "r1", "model": MODEL, "object": "list", "data": [{"index": 0, "b64_json": "AAAA"}]}
        out = await run_together(lambda r: httpx.Response(200, json=answer), seen)
        assert out == ProviderOutput(items=["AAAA"], request_id="r1")
        (sent,) = seen
        assert (sent.method, str(sent.url)) == ("POST", URL)
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        assert json.loads(sent.content) == PROVIDER.payload(FULL, SETTINGS)

    @pytest.mark.parametrize(
        ("status", "kind"), [(503, ProviderFailed), (429, RateLimited), (402, InsufficientCredits)]
    )
    async def test_the_billable_post_is_never_retried(self, status: int, kind: type[Exception]) -> None:
        seen: list[httpx.Request] = []
        with pytest.raises(kind):
            await run_together(lambda r: httpx.Response(status, json=error_data("no")), seen)
        assert [r.method for r in seen] == ["POST"]


async def test_a_preset_size_instead_of_wxh_is_recorded_truthfully(emulator: Any, tmp_path: Path) -> None:
    """docs/providers/together.md#sizes: if schnell makes an aspect-ratio preset rather than W×H (the
    emulator's `aspect_ratio` variant), the image says the size it has and that the size asked was not
    honoured."""
    emulator.reset()
    settings = point_at(Settings(_env_file=None, data_dir=tmp_path), emulator.base_urls, KEY)
    request = GenerationRequest(prompt="a wide fox [variant:aspect_ratio]", width=1344, height=768, seed=1)
    async with Playground(settings) as playground:
        (image,) = (await playground.generate(request, "together")).images
    assert (image.width, image.height, image.seed) == (1360, 768, 1)
    text = read_png_text(image.png)
    assert "Size: 1360x768" in text["parameters"]
    assert json.loads(text["flux_playground"])["honoured"] == {"seed": True, "steps": True, "size": False}

"""Fireworks AI: payload (aspect ratio, seed 0), both answer forms, CONTENT_FILTERED, error mapping, price."""

from __future__ import annotations

import base64
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
from flux_playground.http import answer_cap
from flux_playground.models import MAX_SEED, GenerationRequest
from flux_playground.providers import PROVIDERS, CallContext, ProviderOutput
from flux_playground.providers.fireworks import Fireworks
from flux_playground.settings import Settings

KEY = "fw-secret-key-789"
PROVIDER = Fireworks()
SETTINGS = Settings(
    _env_file=None,
    providers={"fireworks": {"api_key": KEY, "base_url": "https://fireworks.test/"}},
    request_timeout=5.0,
)
URL = (
    "https://fireworks.test/inference/v1/workflows/accounts/fireworks/models/flux-1-schnell-fp8/text_to_image"
)
PNG = b"\x89PNG\r\n\x1a\nfake-png-bytes"
B64 = base64.b64encode(PNG).decode()
DATA_URI = f"data:image/png;base64,{B64}"


def test_registered_under_its_id() -> None:
    assert isinstance(PROVIDERS["fireworks"], Fireworks)
    assert PROVIDER.base_url_env() == "FIREWORKS_BASE_URL"
    assert "FP8" in PROVIDER.label  # the build is said where people compare providers


class TestBuildCall:
    def test_reference_request(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox", seed=42), KEY, SETTINGS)
        assert call.method == "POST"
        assert call.url == URL
        assert call.headers == {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {KEY}",
            "Accept": "application/json",
        }
        assert call.json == {
            "prompt": "a red fox",
            "aspect_ratio": "1:1",
            "num_inference_steps": 4,
            "seed": 42,
        }

    def test_a_wide_request_becomes_the_nearest_ratio(self) -> None:
        request = GenerationRequest(prompt="a lighthouse", width=1344, height=768, steps=2, seed=7)
        assert PROVIDER.build_call(request, KEY, SETTINGS).json == {
            "prompt": "a lighthouse",
            "aspect_ratio": "16:9",
            "num_inference_steps": 2,
            "seed": 7,
        }

    def test_seed_zero_is_never_sent(self) -> None:
        # 0 means "a totally random seed" at Fireworks.
        call = PROVIDER.build_call(GenerationRequest(prompt="x", seed=0), KEY, SETTINGS)
        assert call.json["seed"] == MAX_SEED

    def test_default_base_url(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x", seed=1), KEY, Settings(_env_file=None))
        assert call.url == (
            "https://api.fireworks.ai/inference/v1/workflows/accounts/fireworks/models/flux-1-schnell-fp8"
            "/text_to_image"
        )


class TestShape:
    def test_seed_zero_becomes_the_seed_sent(self) -> None:
        shaped = PROVIDER.shape(GenerationRequest(prompt="x", seed=0), SETTINGS)
        assert shaped.seed == MAX_SEED
        assert PROVIDER.payload(shaped, SETTINGS)["seed"] == MAX_SEED

    def test_other_seeds_are_kept(self) -> None:
        request = GenerationRequest(prompt="x", seed=5)
        assert PROVIDER.shape(request, SETTINGS) is request


class TestSizes:
    @pytest.mark.parametrize(
        ("width", "height", "ratio", "made"),
        [
            (1024, 1024, "1:1", (1024, 1024)),
            (512, 512, "1:1", (1024, 1024)),
            (1344, 768, "16:9", (1360, 768)),
            (768, 1344, "9:16", (768, 1360)),
            (2048, 256, "21:9", (1568, 672)),
            (256, 2048, "9:21", (672, 1568)),
            (1216, 832, "3:2", (1248, 832)),
            (1152, 864, "4:3", (1184, 880)),
            (1088, 896, "5:4", (1152, 912)),
        ],
    )
    def test_nearest_ratio_and_the_size_it_makes(
        self, width: int, height: int, ratio: str, made: tuple[int, int]
    ) -> None:
        request = GenerationRequest(prompt="x", width=width, height=height, seed=1)
        assert PROVIDER.build_call(request, KEY, SETTINGS).json["aspect_ratio"] == ratio
        assert PROVIDER.output_size(request, SETTINGS) == made

    def test_any_size_is_taken(self) -> None:
        PROVIDER.validate(GenerationRequest(prompt="x", width=2000, height=300, steps=50), SETTINGS)

    def test_one_image_per_run(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", num_images=2), SETTINGS)
        assert info.value.field == "num_images" and "at most 1 image(s) per run" in str(info.value)


class TestPrice:
    def test_reference_request(self) -> None:
        assert PROVIDER.estimate(GenerationRequest(prompt="x"), SETTINGS) == Decimal("0.0014")

    def test_per_step_whatever_the_size(self) -> None:
        request = GenerationRequest(prompt="x", width=1344, height=768, steps=8)
        assert PROVIDER.estimate(request, SETTINGS) == Decimal("0.0028")

    def test_rule(self) -> None:
        assert PROVIDER.price is not None
        assert PROVIDER.price.describe() == "$0.00035 per step"
        assert PROVIDER.price.source == "https://fireworks.ai/pricing"


def json_answer(body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


class TestParseJson:
    def test_data_uri_list(self) -> None:
        body = {"id": "1234567890", "base64": [DATA_URI], "finishReason": "SUCCESS", "seed": 1234567890}
        assert PROVIDER.parse(json_answer(body)) == ProviderOutput(
            items=[DATA_URI], seed=1234567890, request_id="1234567890"
        )

    def test_bare_base64_without_id(self) -> None:
        body = {"base64": [B64], "finishReason": "SUCCESS", "seed": 9}
        assert PROVIDER.parse(json_answer(body)) == ProviderOutput(items=[B64], seed=9)

    def test_base64_as_one_string(self) -> None:
        body = {"base64": B64, "finishReason": "SUCCESS", "seed": 9}
        assert PROVIDER.parse(json_answer(body)).items == [B64]

    def test_every_item_is_kept(self) -> None:
        body = {"base64": [DATA_URI, B64], "finishReason": "SUCCESS", "seed": 9}
        assert PROVIDER.parse(json_answer(body)).items == [DATA_URI, B64]

    def test_missing_finish_reason_and_seed_are_tolerated(self) -> None:
        assert PROVIDER.parse(json_answer({"base64": [B64]})) == ProviderOutput(items=[B64])

    def test_content_filtered_is_an_error_not_an_image(self) -> None:
        body = {"base64": [B64], "finishReason": "CONTENT_FILTERED", "seed": 9}
        with pytest.raises(InputRejected) as info:
            PROVIDER.parse(json_answer(body))
        assert str(info.value) == (
            "Fireworks AI (FP8): the safety filter withheld the image (finishReason CONTENT_FILTERED). "
            "Change the prompt and try again."
        )

    def test_unknown_finish_reason(self) -> None:
        with pytest.raises(MalformedResponse, match="finishReason 'ERROR'"):
            PROVIDER.parse(json_answer({"base64": [B64], "finishReason": "ERROR"}))

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"finishReason": "SUCCESS", "seed": 1},
            {"base64": []},
            {"base64": None},
            {"base64": ""},
            {"base64": [B64, ""]},
            {"base64": [{"url": "https://x.test/a.png"}]},
        ],
    )
    def test_no_images(self, body: dict[str, Any]) -> None:
        with pytest.raises(MalformedResponse, match="Fireworks AI \\(FP8\\): unexpected answer: no base64"):
            PROVIDER.parse(json_answer(body))

    @pytest.mark.parametrize("seed", ["12", " 12 "])
    def test_seed_as_digits(self, seed: str) -> None:
        assert PROVIDER.parse(json_answer({"base64": [B64], "seed": seed})).seed == 12

    @pytest.mark.parametrize("seed", [True, "twelve", 1.5, None])
    def test_unreadable_seed_is_not_claimed(self, seed: object) -> None:
        assert PROVIDER.parse(json_answer({"base64": [B64], "seed": seed})).seed is None

    def test_not_json(self) -> None:
        response = httpx.Response(
            200, content=b'{"base64": ["iVBO', headers={"content-type": "application/json"}
        )
        with pytest.raises(MalformedResponse, match="not valid JSON"):
            PROVIDER.parse(response)

    def test_not_an_object(self) -> None:
        with pytest.raises(MalformedResponse, match="not a JSON object"):
            PROVIDER.parse(json_answer([B64]))


class TestParseImage:
    def test_png_with_seed_and_finish_reason_headers(self) -> None:
        response = httpx.Response(
            200,
            content=PNG,
            headers={"content-type": "image/png", "Seed": "77", "Finish-Reason": "SUCCESS"},
        )
        assert PROVIDER.parse(response) == ProviderOutput(items=[PNG], seed=77)

    def test_jpeg_without_headers(self) -> None:
        jpeg = b"\xff\xd8\xff\xe0fake-jpeg"
        response = httpx.Response(200, content=jpeg, headers={"content-type": "image/jpeg"})
        assert PROVIDER.parse(response) == ProviderOutput(items=[jpeg])

    def test_filtered_image_bytes_are_an_error(self) -> None:
        response = httpx.Response(
            200, content=PNG, headers={"content-type": "image/png", "Finish-Reason": "CONTENT_FILTERED"}
        )
        with pytest.raises(InputRejected, match="safety filter"):
            PROVIDER.parse(response)


def error(status: int, message: str | None = None, headers: dict[str, str] | None = None) -> Exception:
    # The documented error body (docs/providers/fireworks.md#errors).
    body: dict[str, Any] = {
        "error": {"message": message, "param": None, "code": "X", "type": "error"},
        "request_id": "r1",
    }
    return PROVIDER.error_for(httpx.Response(status, json=body, headers=headers), key=KEY)


class TestErrorFor:
    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_names_the_variable(self, status: int) -> None:
        exc = error(status, "The API key you provided is invalid.")
        assert isinstance(exc, AuthenticationFailed)
        assert str(exc) == (
            "Fireworks AI (FP8): the API key was refused (The API key you provided is invalid.). "
            "Check FIREWORKS_API_KEY or the key you pasted."
        )

    def test_402_is_out_of_credits(self) -> None:
        exc = error(402, "Account is not on a paid plan or has exceeded usage limits")
        assert isinstance(exc, InsufficientCredits)
        assert str(exc) == (
            "Fireworks AI (FP8): the account is out of credits (Account is not on a paid plan or has "
            "exceeded usage limits). Top up at the provider, then retry."
        )

    def test_412_is_billing(self) -> None:
        said = "Account acme is suspended, possibly due to reaching the monthly spending limit"
        exc = error(412, said)
        assert isinstance(exc, InsufficientCredits)
        assert str(exc) == (
            f"Fireworks AI (FP8): the account is suspended or over its spending limit ({said}). "
            "Top up or settle the billing at Fireworks, then retry."
        )

    def test_412_without_a_body(self) -> None:
        exc = PROVIDER.error_for(httpx.Response(412), key=KEY)
        assert isinstance(exc, InsufficientCredits) and "spending limit. Top up" in str(exc)

    def test_429_with_retry_after(self) -> None:
        exc = error(429, "Request rate limit exceeded", {"Retry-After": "3"})
        assert isinstance(exc, RateLimited) and exc.retry_after == 3.0
        assert "Try again in 3 s" in str(exc)

    def test_429_without_retry_after(self) -> None:
        exc = error(429, "Request rate limit exceeded")
        assert isinstance(exc, RateLimited) and exc.retry_after is None
        assert "Try again in a little while" in str(exc)

    @pytest.mark.parametrize("status", [400, 422])
    def test_input_rejected(self, status: int) -> None:
        exc = error(status, "aspect_ratio must be one of: 1:1, 16:9")
        assert isinstance(exc, InputRejected) and "(aspect_ratio must be one of: 1:1, 16:9)" in str(exc)

    def test_404_names_the_origin_variable(self) -> None:
        exc = error(404, "Model not found")
        assert type(exc) is ProviderFailed and "Check FIREWORKS_BASE_URL" in str(exc)

    @pytest.mark.parametrize("status", [408, 500, 503])
    def test_others_fail(self, status: int) -> None:
        exc = error(status, "server error")
        assert type(exc) is ProviderFailed and f"HTTP {status}" in str(exc) and "(server error)" in str(exc)

    def test_echoed_key_is_redacted(self) -> None:
        exc = error(401, f"key {KEY} unknown")
        assert KEY not in str(exc) and "[redacted]" in str(exc)


async def run_fireworks(
    handler: Any, seen: list[httpx.Request], request: GenerationRequest, max_answer_bytes: int
) -> ProviderOutput:
    def recording(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        return handler(sent)

    async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
        ctx = CallContext(client=client, settings=SETTINGS, key=KEY, max_answer_bytes=max_answer_bytes)
        return await PROVIDER.run(ctx, PROVIDER.build_call(request, KEY, SETTINGS))


class TestRun:
    async def test_sends_once_and_reads_the_seed_back(self) -> None:
        seen: list[httpx.Request] = []
        body = {"id": "a1", "base64": [DATA_URI], "finishReason": "SUCCESS", "seed": 9}
        out = await run_fireworks(
            lambda r: json_answer(body), seen, GenerationRequest(prompt="fox", seed=9), 10**6
        )
        assert out == ProviderOutput(items=[DATA_URI], seed=9, request_id="a1")
        assert [(r.method, str(r.url)) for r in seen] == [("POST", URL)]
        assert seen[0].headers["accept"] == "application/json"
        assert seen[0].headers["authorization"] == f"Bearer {KEY}"
        assert json.loads(seen[0].content) == {
            "prompt": "fox",
            "aspect_ratio": "1:1",
            "num_inference_steps": 4,
            "seed": 9,
        }

    @pytest.mark.parametrize(
        ("status", "kind"), [(500, ProviderFailed), (429, RateLimited), (402, InsufficientCredits)]
    )
    async def test_billable_post_is_never_retried(self, status: int, kind: type[Exception]) -> None:
        seen: list[httpx.Request] = []
        with pytest.raises(kind):
            await run_fireworks(
                lambda r: httpx.Response(status, json={"error": {"message": "no"}}),
                seen,
                GenerationRequest(prompt="fox", seed=1),
                10**6,
            )
        assert [r.method for r in seen] == ["POST"]

    async def test_a_small_request_may_get_the_megapixel_image_it_makes(self) -> None:
        """The service bounds an answer by the size the provider makes, not the size asked for:
        Fireworks makes ~1 MP whatever is asked, so a 256² request must accept a 1 MP answer."""
        from flux_playground.service import Playground

        cap_for_the_request = answer_cap(1, 256 * 256, SETTINGS.max_download_bytes)
        image = "A" * (cap_for_the_request + 1000)  # larger than a 256² image could need
        body = {"base64": [image], "finishReason": "SUCCESS", "seed": 1}
        client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: json_answer(body)))
        async with Playground(SETTINGS, client=client) as playground:
            with pytest.raises(MalformedResponse) as caught:  # read whole, then not an image
                await playground.call(
                    GenerationRequest(prompt="fox", width=256, height=256, seed=1), "fireworks"
                )
        assert "larger than" not in str(caught.value)

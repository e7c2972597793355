"""Segmind v1: payload, image-bytes and JSON answers, error mapping (406, rate-limit reset header)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
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
    ProviderTimeout,
    RateLimited,
)
from flux_playground.models import GenerationRequest
from flux_playground.providers import CallContext, ProviderOutput
from flux_playground.providers.segmind import SAMPLERS, SCHEDULERS, Segmind
from flux_playground.settings import Settings

KEY = "sg-secret-key-456"
PROVIDER = Segmind()
SETTINGS = Settings(
    _env_file=None,
    providers={"segmind": {"api_key": KEY, "base_url": "https://segmind.test/"}},
    request_timeout=5.0,
)
JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes"


class TestBuildCall:
    def test_default_request_leaves_unset_fields_out(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox"), KEY, SETTINGS)
        assert call.method == "POST"
        assert call.url == "https://segmind.test/v1/flux-schnell"
        assert call.headers == {"Content-Type": "application/json", "x-api-key": KEY}
        assert call.json == {"prompt": "a red fox", "steps": 4, "samples": 1, "width": 1024, "height": 1024}

    def test_every_field_set(self) -> None:
        request = GenerationRequest(
            prompt="a lighthouse",
            width=768,
            height=1344,
            steps=8,
            seed=123,
            num_images=3,
            sampler="dpmpp_2m",
            scheduler="karras",
        )
        call = PROVIDER.build_call(request, KEY, SETTINGS)
        assert call.json == {
            "prompt": "a lighthouse",
            "steps": 8,
            "seed": 123,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "samples": 3,
            "width": 768,
            "height": 1344,
        }

    def test_default_base_url(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, Settings(_env_file=None))
        assert call.url == "https://api.segmind.com/v1/flux-schnell"


class TestParse:
    def test_jpeg_bytes_with_remaining_credits(self) -> None:
        response = httpx.Response(
            200, content=JPEG, headers={"content-type": "image/jpeg", "x-remaining-credits": "0.9843"}
        )
        assert PROVIDER.parse(response) == ProviderOutput(items=[JPEG], remaining_credits="0.9843")

    def test_content_type_with_parameters(self) -> None:
        response = httpx.Response(200, content=JPEG, headers={"content-type": "Image/JPEG; charset=binary"})
        assert PROVIDER.parse(response).items == [JPEG]

    def test_json_base64_image(self) -> None:
        b64 = base64.b64encode(JPEG).decode()
        response = httpx.Response(200, json={"image": b64}, headers={"x-remaining-credits": "12"})
        assert PROVIDER.parse(response) == ProviderOutput(items=[b64], remaining_credits="12")

    def test_json_images_list_and_url(self) -> None:
        response = httpx.Response(200, json={"images": ["https://cdn.segmind.test/a.jpg"]})
        assert PROVIDER.parse(response).items == ["https://cdn.segmind.test/a.jpg"]

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"image": ""},
            {"image": None},
            {"image": "not base64 at all!"},
            {"status": "ok"},
        ],
    )
    def test_malformed_json(self, body: dict[str, Any]) -> None:
        with pytest.raises(MalformedResponse, match="Segmind"):
            PROVIDER.parse(httpx.Response(200, json=body))

    def test_not_json_and_not_an_image(self) -> None:
        with pytest.raises(MalformedResponse):
            PROVIDER.parse(httpx.Response(200, text="hello", headers={"content-type": "text/plain"}))


class TestErrorFor:
    def error(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Exception:
        response = httpx.Response(status, json=body if body is not None else {}, headers=headers)
        return PROVIDER.error_for(response, key=KEY)

    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_names_env_var(self, status: int) -> None:
        exc = self.error(status, {"error": "Unauthorized. API key is invalid or may have expired"})
        assert isinstance(exc, AuthenticationFailed)
        assert "SEGMIND_API_KEY" in str(exc)
        assert "(Unauthorized. API key is invalid or may have expired)" in str(exc)

    @pytest.mark.parametrize("status", [406, 402])
    def test_credits(self, status: int) -> None:
        exc = self.error(status, {"error": "Not enough credits"})
        assert isinstance(exc, InsufficientCredits)
        assert "Not enough credits" in str(exc)

    def test_429_with_retry_after(self) -> None:
        exc = self.error(429, {"error": "rate_limit_exceeded"}, {"Retry-After": "3"})
        assert isinstance(exc, RateLimited) and exc.retry_after == 3.0

    def test_429_with_reset_at_header(self) -> None:
        reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
        exc = self.error(429, {"error": "rate_limit_exceeded"}, {"x-rate-limit-reset-at-utc": reset})
        assert isinstance(exc, RateLimited)
        assert exc.retry_after is not None and 28.0 <= exc.retry_after <= 30.0

    def test_reset_at_with_z_suffix_and_naive(self) -> None:
        when = datetime.now(UTC) + timedelta(seconds=60)
        for header in (when.strftime("%Y-%m-%dT%H:%M:%SZ"), when.replace(tzinfo=None).isoformat()):
            exc = self.error(429, {}, {"x-rate-limit-reset-at-utc": header})
            assert isinstance(exc, RateLimited)
            assert exc.retry_after is not None and 57.0 <= exc.retry_after <= 60.0

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            pytest.param((datetime.now(UTC) - timedelta(seconds=60)).isoformat(), 0.0, id="a-minute-ago"),
            pytest.param("whenever", None, id="garbage"),
        ],
    )
    def test_reset_at_past_or_garbage(self, header: str, expected: float | None) -> None:
        exc = self.error(429, {}, {"x-rate-limit-reset-at-utc": header})
        assert isinstance(exc, RateLimited) and exc.retry_after == expected

    @pytest.mark.parametrize("status", [400, 422])
    def test_input_rejected(self, status: int) -> None:
        assert isinstance(self.error(status, {"error": "steps must be <= 8"}), InputRejected)

    @pytest.mark.parametrize("status", [500, 502])
    def test_server_errors(self, status: int) -> None:
        exc = self.error(status, {"error": "inference failed"})
        assert type(exc) is ProviderFailed and "(inference failed)" in str(exc)

    def test_html_body_is_not_quoted(self) -> None:
        response = httpx.Response(
            405, text="<html><body>Method Not Allowed</body></html>", headers={"content-type": "text/html"}
        )
        exc = PROVIDER.error_for(response, key=KEY)
        assert type(exc) is ProviderFailed
        assert "<html" not in str(exc) and "HTTP 405" in str(exc)

    def test_plain_text_body_is_quoted_on_one_line(self) -> None:
        response = httpx.Response(500, text="upstream\n\tdown", headers={"content-type": "text/plain"})
        assert "(upstream down)" in str(PROVIDER.error_for(response))

    def test_echoed_key_is_redacted(self) -> None:
        exc = self.error(401, {"error": f"x-api-key {KEY} unknown"})
        assert KEY not in str(exc) and "[redacted]" in str(exc)


async def run_segmind(handler: Any, seen: list[httpx.Request]) -> ProviderOutput:
    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
        ctx = CallContext(client=client, settings=SETTINGS, key=KEY)
        call = PROVIDER.build_call(GenerationRequest(prompt="fox", seed=9), KEY, SETTINGS)
        return await PROVIDER.run(ctx, call)


class TestRun:
    async def test_sends_the_call_once_and_parses(self) -> None:
        seen: list[httpx.Request] = []
        out = await run_segmind(
            lambda r: httpx.Response(
                200, content=JPEG, headers={"content-type": "image/jpeg", "x-remaining-credits": "5"}
            ),
            seen,
        )
        assert out == ProviderOutput(items=[JPEG], remaining_credits="5")
        assert len(seen) == 1
        assert str(seen[0].url) == "https://segmind.test/v1/flux-schnell"
        assert seen[0].headers["x-api-key"] == KEY
        assert "authorization" not in seen[0].headers
        assert json.loads(seen[0].content) == {
            "prompt": "fox",
            "steps": 4,
            "seed": 9,
            "samples": 1,
            "width": 1024,
            "height": 1024,
        }

    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (500, ProviderFailed),
            (503, ProviderFailed),
            (429, RateLimited),
            (406, InsufficientCredits),
        ],
    )
    async def test_billable_post_is_never_retried(self, status: int, kind: type[Exception]) -> None:
        seen: list[httpx.Request] = []
        with pytest.raises(kind):
            await run_segmind(lambda r: httpx.Response(status, json={"error": "no"}), seen)
        assert [r.method for r in seen] == ["POST"]

    async def test_connection_error(self) -> None:
        def fail(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        seen: list[httpx.Request] = []
        with pytest.raises(ProviderFailed, match="ConnectError"):
            await run_segmind(fail, seen)
        assert len(seen) == 1

    async def test_read_timeout(self) -> None:
        def slow(request: httpx.Request) -> httpx.Response:
            raise httpx.ReadTimeout("slow", request=request)

        with pytest.raises(ProviderTimeout, match="no answer within 5 s"):
            await run_segmind(slow, [])


class TestValidate:
    def test_width_500(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", width=500), SETTINGS)
        assert (info.value.provider, info.value.field) == ("segmind", "width")
        assert str(info.value) == (
            "Segmind cannot take these settings: width must be 512–2048 in multiples of 8 (nearest: 512)."
        )

    def test_height_not_multiple_of_8(self) -> None:
        with pytest.raises(
            InvalidRequest, match=r"height must be 512–2048 in multiples of 8 \(nearest: 704\)"
        ):
            PROVIDER.validate(GenerationRequest(prompt="x", height=700), SETTINGS)

    def test_steps_9(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", steps=9), SETTINGS)
        assert info.value.field == "steps"
        assert str(info.value) == "Segmind cannot take these settings: steps must be 1–8."

    def test_unknown_sampler_lists_allowed(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", sampler="euler_a"), SETTINGS)
        assert info.value.field == "sampler"
        assert f"sampler must be one of: {', '.join(SAMPLERS)}" in str(info.value)

    def test_unknown_scheduler(self) -> None:
        with pytest.raises(InvalidRequest, match="scheduler must be one of: normal, karras"):
            PROVIDER.validate(GenerationRequest(prompt="x", scheduler="linear"), SETTINGS)

    def test_several_problems_in_one_message(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", width=500, steps=9), SETTINGS)
        assert info.value.field == "width"
        assert "width must be" in str(info.value) and "steps must be 1–8" in str(info.value)

    def test_valid_request_passes(self) -> None:
        PROVIDER.validate(
            GenerationRequest(
                prompt="x", width=512, height=2048, steps=8, num_images=1, sampler="euler", scheduler="simple"
            ),
            SETTINGS,
        )

    def test_documented_enums(self) -> None:
        assert len(SAMPLERS) == 27 == len(set(SAMPLERS))
        assert SAMPLERS[:10] == (
            "euler",
            "euler_pp",
            "euler_ancestral",
            "euler_ancestral_pp",
            "heun",
            "heunpp2",
            "dpm_2",
            "dpm_2_ancestral",
            "lms",
            "dpm_fast",
        )
        assert SCHEDULERS == ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform")

    def test_nearest_size(self) -> None:
        assert PROVIDER.capabilities.nearest_size(1000, 700) == (1000, 704)
        assert PROVIDER.capabilities.nearest_size(300, 4000) == (512, 2048)

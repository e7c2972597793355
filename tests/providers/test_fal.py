"""fal.ai: payload, data-URI and CDN-URL answers, error mapping (the locked-account 403, 422 lists,
429), size limits and the per-megapixel price rounded up per image."""

from __future__ import annotations

import base64
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
from flux_playground.models import GenerationRequest
from flux_playground.providers import CallContext, ProviderOutput
from flux_playground.providers.fal import Fal
from flux_playground.service import Playground
from flux_playground.settings import Settings

KEY = "fal-key-id:fal-secret-789"
PROVIDER = Fal()
SETTINGS = Settings(
    _env_file=None,
    providers={"fal": {"api_key": KEY, "base_url": "https://fal.test/"}},
    request_timeout=5.0,
)
PNG_URI = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
CDN_URL = "https://v3.fal.media/files/lion/abc123.png"


def answer(*urls: str, seed: object = 42, **extra: Any) -> dict[str, Any]:
    """A documented result: {images: [{url, width, height, content_type}], timings, seed, ...}."""
    images = [{"url": url, "width": 1024, "height": 1024, "content_type": "image/png"} for url in urls]
    body = {"images": images, "timings": {"inference": 0.41}, "has_nsfw_concepts": [False] * len(urls)}
    return {**body, "seed": seed, "prompt": "a red fox", **extra}


class TestBuildCall:
    def test_every_field(self) -> None:
        request = GenerationRequest(
            prompt="a lighthouse", width=768, height=1344, steps=12, seed=123, num_images=3
        )
        call = PROVIDER.build_call(request, KEY, SETTINGS)
        assert call.method == "POST"
        assert call.url == "https://fal.test/fal-ai/flux/schnell"
        assert call.headers == {"Content-Type": "application/json", "Authorization": f"Key {KEY}"}
        assert call.json == {
            "prompt": "a lighthouse",
            "image_size": {"width": 768, "height": 1344},
            "num_inference_steps": 12,
            "seed": 123,
            "num_images": 3,
            "acceleration": "none",
            "sync_mode": True,
            "output_format": "png",
            "enable_safety_checker": True,
        }

    def test_no_seed_is_left_out_and_the_size_is_still_sent(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox"), KEY, SETTINGS)
        assert call.json == {
            "prompt": "a red fox",
            "image_size": {"width": 1024, "height": 1024},
            "num_inference_steps": 4,
            "num_images": 1,
            "acceleration": "none",
            "sync_mode": True,
            "output_format": "png",
            "enable_safety_checker": True,
        }

    def test_default_origin(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, Settings(_env_file=None))
        assert call.url == "https://fal.run/fal-ai/flux/schnell"

    def test_the_key_never_reaches_the_body(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x", seed=1), KEY, SETTINGS)
        assert KEY not in json.dumps(call.json) and KEY not in repr(call)


class TestParse:
    def test_data_uri_with_seed_and_request_id(self) -> None:
        response = httpx.Response(200, json=answer(PNG_URI, seed=7), headers={"x-fal-request-id": "req-1"})
        assert PROVIDER.parse(response) == ProviderOutput(items=[PNG_URI], seed=7, request_id="req-1")

    def test_cdn_urls_of_several_images(self) -> None:
        other = "https://v3.fal.media/files/koala/def456.png"
        response = httpx.Response(200, json=answer(CDN_URL, other))
        assert PROVIDER.parse(response) == ProviderOutput(items=[CDN_URL, other], seed=42)

    @pytest.mark.parametrize("seed", [None, True, "42", 4.2])
    def test_a_seed_that_is_not_a_number_is_not_claimed(self, seed: object) -> None:
        assert PROVIDER.parse(httpx.Response(200, json=answer(PNG_URI, seed=seed))).seed is None

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"images": []},
            {"images": None},
            {"images": PNG_URI},
            {"images": [PNG_URI]},
            {"images": [{"width": 1024, "height": 1024}]},
            {"images": [{"url": ""}]},
            {"images": [{"url": "ftp://fal.media/a.png"}]},
            {"images": [{"url": CDN_URL}, {"url": None}]},
            {"detail": "Internal error"},
        ],
    )
    def test_not_what_the_docs_promise(self, body: dict[str, Any]) -> None:
        with pytest.raises(MalformedResponse, match=r"^fal\.ai: unexpected answer"):
            PROVIDER.parse(httpx.Response(200, json=body))

    @pytest.mark.parametrize("content", [b"<html>busy</html>", b"[1, 2]"])
    def test_not_a_json_object(self, content: bytes) -> None:
        with pytest.raises(MalformedResponse):
            PROVIDER.parse(httpx.Response(200, content=content))


def error(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Exception:
    response = httpx.Response(status, json=body if body is not None else {}, headers=headers)
    return PROVIDER.error_for(response, key=KEY)


class TestErrorFor:
    @pytest.mark.parametrize(
        ("status", "said"),
        [
            (401, "No user found for Key ID and Secret"),
            (401, "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."),
            (403, "Forbidden"),
        ],
    )
    def test_a_refused_key_names_the_variable(self, status: int, said: str) -> None:
        exc = error(status, {"detail": said})
        assert type(exc) is AuthenticationFailed
        assert str(exc) == f"fal.ai: the API key was refused ({said}). Check FAL_KEY or the key you pasted."

    @pytest.mark.parametrize(
        "said",
        [
            "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing.",
            "User is locked. Reason: TOP_UP.",
            "User is locked. Reason: Admin lock. Please contact support@fal.ai",
        ],
    )
    def test_a_locked_account_is_out_of_credits_not_a_bad_key(self, said: str) -> None:
        exc = error(403, {"detail": said})
        assert type(exc) is InsufficientCredits
        assert str(exc) == (
            f"fal.ai: the account is out of credits or locked ({said}). Top up at fal.ai/dashboard/billing, "
            "then retry; if the balance is already positive, only fal can unlock it (support@fal.ai)."
        )

    def test_402_is_out_of_credits_too(self) -> None:
        exc = error(402, {"detail": "Payment required"})
        assert type(exc) is InsufficientCredits and "out of credits" in str(exc)

    def test_429_with_retry_after(self) -> None:
        exc = error(429, {"detail": "Too many concurrent requests"}, {"Retry-After": "3"})
        assert isinstance(exc, RateLimited) and exc.retry_after == 3.0
        assert str(exc) == "fal.ai: rate limited (Too many concurrent requests). Try again in 3 s."

    def test_429_without_retry_after(self) -> None:
        exc = error(429, {"detail": "Too many concurrent requests"})
        assert isinstance(exc, RateLimited) and exc.retry_after is None
        assert str(exc).endswith("Try again in a little while.")

    def test_422_names_the_field_in_fals_words_and_is_billed(self) -> None:
        detail = [
            {
                "loc": ["body", "num_inference_steps"],
                "msg": "Input should be less than or equal to 12",
                "type": "less_than_equal",
                "url": "https://docs.fal.ai/errors#less_than_equal",
                "ctx": {"le": 12},
                "input": 13,
            }
        ]
        exc = error(422, {"detail": detail}, {"x-fal-retryable": "false"})
        assert type(exc) is InputRejected and exc.billed
        assert str(exc) == (
            "fal.ai: the provider rejected these settings "
            "(num_inference_steps: Input should be less than or equal to 12); fal bills this."
        )

    @pytest.mark.parametrize(
        ("body", "shown"),
        [
            (
                {"detail": [{"loc": ["body"], "msg": "Invalid JSON", "type": "json_invalid"}]},
                "(Invalid JSON)",
            ),
            ({"detail": [{"loc": ["body", "x; rm -rf"], "msg": "bad"}]}, "(bad)"),
            ({"detail": "prompt is required"}, "(prompt is required)"),
        ],
    )
    def test_422_in_other_shapes(self, body: dict[str, Any], shown: str) -> None:
        exc = error(422, body)
        assert type(exc) is InputRejected and shown in str(exc)

    def test_422_without_a_body(self) -> None:
        response = httpx.Response(422, content=b"")
        exc = PROVIDER.error_for(response, key=KEY)
        assert str(exc) == "fal.ai: the provider rejected these settings; fal bills this."

    def test_400_is_rejected_input(self) -> None:
        assert type(error(400, {"detail": "bad request"})) is InputRejected

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_request_errors_fail_without_billing(self, status: int) -> None:
        body = {"detail": "Request timed out", "error_type": "request_timeout"}
        exc = error(status, body, {"X-Fal-Error-Type": "request_timeout"})
        assert type(exc) is ProviderFailed and not exc.billed
        assert f"HTTP {status}" in str(exc) and "(Request timed out)" in str(exc)

    def test_an_echoed_key_is_redacted(self) -> None:
        for status in (401, 403, 422):
            exc = error(status, {"detail": f"key {KEY} is locked: user is locked"})
            assert KEY not in str(exc) and "[redacted]" in str(exc)
        listed = error(422, {"detail": [{"loc": ["body", "prompt"], "msg": f"echo {KEY}"}]})
        assert KEY not in str(listed)


async def run_fal(reply: httpx.Response, seen: list[httpx.Request]) -> ProviderOutput:
    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply

    async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
        ctx = CallContext(client=client, settings=SETTINGS, key=KEY)
        call = PROVIDER.build_call(GenerationRequest(prompt="fox", seed=9), KEY, SETTINGS)
        return await PROVIDER.run(ctx, call)


class TestRun:
    async def test_one_post_with_the_key_scheme_and_the_answer_read(self) -> None:
        seen: list[httpx.Request] = []
        out = await run_fal(httpx.Response(200, json=answer(PNG_URI, seed=9)), seen)
        assert out == ProviderOutput(items=[PNG_URI], seed=9)
        assert [(r.method, str(r.url)) for r in seen] == [("POST", "https://fal.test/fal-ai/flux/schnell")]
        assert seen[0].headers["authorization"] == f"Key {KEY}"

    @pytest.mark.parametrize(
        ("status", "kind"),
        [(500, ProviderFailed), (503, ProviderFailed), (429, RateLimited), (403, InsufficientCredits)],
    )
    async def test_the_billable_post_is_never_retried(self, status: int, kind: type[Exception]) -> None:
        seen: list[httpx.Request] = []
        with pytest.raises(kind):
            await run_fal(httpx.Response(status, json={"detail": "User is locked. Reason: TOP_UP."}), seen)
        assert [r.method for r in seen] == ["POST"]


class TestSizesAndPrice:
    @pytest.mark.parametrize(
        ("width", "height", "images", "usd"),
        [
            (1024, 1024, 1, "0.003"),  # the reference request: exactly one 1024² megapixel
            (512, 512, 1, "0.003"),  # rounded up to one megapixel
            (1024, 768, 1, "0.003"),
            (1536, 1024, 1, "0.006"),  # 1.5 MP → 2
            (1536, 1024, 2, "0.012"),  # per image
            (2048, 2048, 1, "0.012"),
        ],
    )
    def test_per_megapixel_rounded_up_per_image(self, width: int, height: int, images: int, usd: str) -> None:
        request = GenerationRequest(prompt="x", width=width, height=height, num_images=images)
        assert PROVIDER.estimate(request, SETTINGS) == Decimal(usd)

    def test_steps_do_not_change_the_price(self) -> None:
        prices = {PROVIDER.estimate(GenerationRequest(prompt="x", steps=s), SETTINGS) for s in (1, 4, 12)}
        assert prices == {Decimal("0.003")}

    def test_it_makes_the_size_asked(self) -> None:
        request = GenerationRequest(prompt="x", width=1536, height=640)
        assert PROVIDER.output_size(request, SETTINGS) == (1536, 640)
        PROVIDER.validate(request, SETTINGS)

    def test_sizes_on_flux_grid_only(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", width=1010), SETTINGS)
        assert (info.value.provider, info.value.field) == ("fal", "width")
        assert str(info.value) == (
            "fal.ai cannot take these settings: width must be 256–2048 in multiples of 16 (nearest: 1008)."
        )

    def test_steps_1_to_12(self) -> None:
        PROVIDER.validate(GenerationRequest(prompt="x", steps=12), SETTINGS)
        with pytest.raises(InvalidRequest, match="steps must be 1–12"):
            PROVIDER.validate(GenerationRequest(prompt="x", steps=13), SETTINGS)

    def test_honours_seed_and_steps(self) -> None:
        caps = PROVIDER.get_capabilities(SETTINGS)
        assert caps.seed and caps.steps and caps.sizes == "exact" and caps.max_images == 4


class TestAgainstTheEmulator:
    """Both documented output forms, and the lock wordings, through the whole backend."""

    @pytest.fixture
    def settings(self, emulator: Any, tmp_path: Path) -> Settings:
        emulator.reset()
        base = Settings(_env_file=None, data_dir=tmp_path, request_timeout=5, download_timeout=5)
        return point_at(base, emulator.base_urls, "emu-key")

    @pytest.mark.parametrize("delivery", ["data_uri", "url"])
    async def test_either_form_gives_the_png_asked(
        self, emulator: Any, settings: Settings, delivery: str
    ) -> None:
        request = GenerationRequest(prompt=f"a red fox [variant:{delivery}]", width=640, height=384, seed=5)
        async with Playground(settings) as playground:
            result = await playground.generate(request, "fal")
        (image,) = result.images
        assert (image.width, image.height, image.seed) == (640, 384, 5)
        assert result.provider_request_id and result.estimated_cost_usd == Decimal("0.003")
        requests = emulator.stats()["requests"]["fal"]
        assert requests["submit"] == 1 and requests.get("download", 0) == (delivery == "url")

    @pytest.mark.parametrize("lock", ["exhausted_balance", "top_up", "admin_lock"])
    async def test_every_lock_wording_is_out_of_credits(
        self, emulator: Any, settings: Settings, lock: str
    ) -> None:
        emulator.configure(variants={"fal": [lock]})
        emulator.inject("fal", "credits")
        async with Playground(settings) as playground:
            with pytest.raises(InsufficientCredits, match="out of credits or locked"):
                await playground.generate(GenerationRequest(prompt="a red fox"), "fal")
        assert emulator.stats()["requests"]["fal"]["submit"] == 1

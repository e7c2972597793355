"""Cloudflare Workers AI: the account id in the path, the v4 envelope (and its variants), error codes
inside the envelope (the daily free allocation is a 429), the fixed size and the per-tile price."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from flux_playground.demo import point_at
from flux_playground.errors import (
    AuthenticationFailed,
    ConfigurationError,
    InputRejected,
    InsufficientCredits,
    InvalidRequest,
    MalformedResponse,
    ProviderFailed,
    RateLimited,
)
from flux_playground.models import GenerationRequest
from flux_playground.providers import CallContext, ProviderOutput
from flux_playground.providers.cloudflare import Cloudflare
from flux_playground.quotes import quote_one
from flux_playground.settings import Settings

KEY = "cf-token-SECRET-3f9a1c"
ACCOUNT = "0123456789abcdef0123456789abcdef"
BASE = "https://cloudflare.test"
RUN_URL = f"{BASE}/client/v4/accounts/{ACCOUNT}/ai/run/@cf/black-forest-labs/flux-1-schnell"
PROVIDER = Cloudflare()
JPEG_B64 = base64.b64encode(b"\xff\xd8\xff\xe0fake-jpeg-bytes").decode()
FREE_ALLOCATION = (
    "You have used up your daily free allocation of 10,000 neurons. Please upgrade to Cloudflare's "
    "Workers Paid plan if you would like to continue usage."
)


def make_settings(account: str | None = ACCOUNT, base_url: str | None = BASE) -> Settings:
    entry: dict[str, Any] = {"api_key": KEY, "base_url": base_url}
    if account is not None:
        entry["options"] = {"account_id": account}
    return Settings(_env_file=None, providers={"cloudflare": entry}, request_timeout=5.0)


SETTINGS = make_settings()


def envelope_error(
    status: int, *errors: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"errors": list(errors), "messages": [], "result": None, "success": False}
    return httpx.Response(status, json=body, headers=headers)


class TestBuildCall:
    def test_the_whole_call(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox", seed=42), KEY, SETTINGS)
        assert call.method == "POST"
        assert call.url == RUN_URL
        assert call.headers == {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        # No seed (not in the schema, docs/providers/cloudflare.md#request), no size, no count.
        assert call.json == {"prompt": "a red fox", "steps": 4}

    def test_steps_are_sent_and_the_size_is_not(self) -> None:
        request = GenerationRequest(prompt="a lighthouse", width=768, height=1344, steps=8, seed=7)
        assert PROVIDER.build_call(request, KEY, SETTINGS).json == {"prompt": "a lighthouse", "steps": 8}

    def test_default_origin(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, make_settings(base_url=None))
        assert call.url == RUN_URL.replace(BASE, "https://api.cloudflare.com")

    def test_upper_case_hex_account_id(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, make_settings(ACCOUNT.upper()))
        assert call.url == RUN_URL.replace(ACCOUNT, ACCOUNT.upper())

    def test_the_emulators_placeholder_account_id(self) -> None:
        settings = point_at(Settings(_env_file=None), {"cloudflare": "http://127.0.0.1:9/cloudflare"})
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, settings)
        assert call.url == (
            "http://127.0.0.1:9/cloudflare/client/v4/accounts/demo-account_id/ai/run/"
            "@cf/black-forest-labs/flux-1-schnell"
        )


class TestAccountId:
    @pytest.mark.parametrize(
        "account",
        [
            f"{ACCOUNT}/../../zones",
            f"{ACCOUNT}?x=1",
            "..",
            f"{ACCOUNT[:31]}/",
            f"{ACCOUNT}#",
            f"{ACCOUNT[:30]}%2F",
            ACCOUNT[:31],
            ACCOUNT + "0",
            "cfut_lEnKhf2dKKb4x7saUeADGxcg2Ctl8vtp3BCo9sl4e0440766",  # an API token pasted there
            "my account",
        ],
    )
    def test_anything_but_an_account_id_is_refused_naming_the_variable(self, account: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, make_settings(account))
        message = str(info.value)
        assert "CLOUDFLARE_ACCOUNT_ID" in message and "32 hexadecimal characters" in message
        assert account not in message  # it may be a token

    def test_missing_account_id_names_the_variable(self) -> None:
        with pytest.raises(ConfigurationError, match="needs CLOUDFLARE_ACCOUNT_ID"):
            PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, make_settings(None))

    def test_the_account_id_as_the_token_is_refused(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            PROVIDER.build_call(GenerationRequest(prompt="x"), ACCOUNT, SETTINGS)
        assert "CLOUDFLARE_API_TOKEN holds the account id" in str(info.value)
        assert ACCOUNT not in str(info.value)

    def test_not_configured_without_both(self) -> None:
        assert PROVIDER.missing(Settings(_env_file=None)) == ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"]
        assert PROVIDER.missing(make_settings(None)) == ["CLOUDFLARE_ACCOUNT_ID"]
        assert PROVIDER.configured(SETTINGS)

    def test_the_server_key_needs_the_account_id_too(self) -> None:
        with pytest.raises(ConfigurationError, match="also needs CLOUDFLARE_ACCOUNT_ID"):
            PROVIDER.resolve_key(make_settings(None))


class TestParse:
    def test_the_v4_envelope(self) -> None:
        body = {"result": {"image": JPEG_B64}, "success": True, "errors": [], "messages": []}
        assert PROVIDER.parse(httpx.Response(200, json=body)) == ProviderOutput(items=[JPEG_B64])

    def test_the_bare_model_output(self) -> None:
        assert PROVIDER.parse(httpx.Response(200, json={"image": JPEG_B64})) == ProviderOutput(
            items=[JPEG_B64]
        )

    def test_a_data_uri_is_passed_on(self) -> None:
        uri = f"data:image/jpeg;base64,{JPEG_B64}"
        body = {"result": {"image": uri}, "success": True, "errors": [], "messages": []}
        assert PROVIDER.parse(httpx.Response(200, json=body)).items == [uri]

    def test_raw_image_bytes(self) -> None:
        response = httpx.Response(200, content=b"\x89PNG-bytes", headers={"content-type": "image/png"})
        assert PROVIDER.parse(response) == ProviderOutput(items=[b"\x89PNG-bytes"])

    @pytest.mark.parametrize(
        "body",
        [
            {"result": {}, "success": True, "errors": [], "messages": []},
            {"result": None, "success": True, "errors": [], "messages": []},
            {"result": {"image": ""}, "success": True},
            {"result": {"image": 42}, "success": True},
            {"result": "image", "success": True},
            {"success": True},
        ],
    )
    def test_no_image_is_malformed(self, body: dict[str, Any]) -> None:
        with pytest.raises(MalformedResponse, match=r"^Cloudflare Workers AI: unexpected answer: no image"):
            PROVIDER.parse(httpx.Response(200, json=body))

    def test_not_json(self) -> None:
        response = httpx.Response(
            200, content=b'{"result": {"ima', headers={"content-type": "application/json"}
        )
        with pytest.raises(MalformedResponse, match="not valid JSON"):
            PROVIDER.parse(response)

    def test_a_200_with_success_false_is_the_error_it_carries(self) -> None:
        with pytest.raises(InsufficientCredits, match="out of credits"):
            PROVIDER.parse(envelope_error(200, {"code": 3036, "message": FREE_ALLOCATION}))

    def test_a_200_with_errors_is_an_error_even_if_it_says_success(self) -> None:
        body = {
            "result": {"image": JPEG_B64},
            "success": True,
            "errors": [{"code": 3007, "message": "timeout"}],
        }
        with pytest.raises(ProviderFailed) as info:
            PROVIDER.parse(httpx.Response(200, json=body))
        assert str(info.value) == (
            "Cloudflare Workers AI: the run failed (3007: timeout). Try again or pick another provider."
        )

    def test_a_200_with_success_false_and_no_words(self) -> None:
        with pytest.raises(ProviderFailed, match=r"the run failed\. Try again"):
            PROVIDER.parse(httpx.Response(200, json={"success": False}))


class TestErrorFor:
    def error(self, response: httpx.Response) -> Exception:
        return PROVIDER.error_for(response, key=KEY)

    @pytest.mark.parametrize("status", [401, 403])
    def test_authentication_error(self, status: int) -> None:
        exc = self.error(envelope_error(status, {"code": 10000, "message": "Authentication error"}))
        assert type(exc) is AuthenticationFailed
        assert str(exc) == (
            "Cloudflare Workers AI: the API key was refused (10000: Authentication error). "
            "Check CLOUDFLARE_API_TOKEN or the key you pasted."
        )

    def test_a_malformed_authorization_header_is_a_refused_key_not_a_rejected_input(self) -> None:
        chain = [{"code": 6111, "message": "Invalid format for Authorization header"}]
        exc = self.error(
            envelope_error(400, {"code": 6003, "message": "Invalid request headers", "error_chain": chain})
        )
        assert type(exc) is AuthenticationFailed
        assert "(6003: Invalid request headers; 6111: Invalid format for Authorization header)" in str(exc)

    @pytest.mark.parametrize("code", [5018, 3041, 3023, "5016"])
    def test_an_account_that_may_not_run_the_model(self, code: int | str) -> None:
        exc = self.error(
            envelope_error(403, {"code": code, "message": "The account is not allowed to access this model"})
        )
        assert type(exc) is AuthenticationFailed
        assert "the account may not run this model" in str(exc) and "CLOUDFLARE_ACCOUNT_ID" in str(exc)

    @pytest.mark.parametrize(
        "error",
        [
            {"code": 3036, "message": FREE_ALLOCATION},
            {"code": "3036", "message": FREE_ALLOCATION},  # a string code, as in the API schema
            {"code": 4006, "message": "daily free allocation exceeded"},
            {"message": FREE_ALLOCATION},  # no code: the words decide
        ],
    )
    @pytest.mark.parametrize("headers", [{}, {"Retry-After": "30"}])
    def test_the_daily_free_allocation_is_out_of_credits_not_a_rate_limit(
        self, error: dict[str, Any], headers: dict[str, str]
    ) -> None:
        exc = self.error(envelope_error(429, error, headers=headers))
        assert type(exc) is InsufficientCredits
        assert str(exc).startswith(
            "Cloudflare Workers AI: the account is out of credits: the daily free allocation"
        )
        assert "Top up" in str(exc) and "00:00 UTC" in str(exc)

    def test_402_is_out_of_credits(self) -> None:
        assert type(self.error(envelope_error(402, {"message": "Payment required"}))) is InsufficientCredits

    def test_out_of_capacity_with_retry_after(self) -> None:
        capacity = {"code": 3040, "message": "No more data centers to forward the request to"}
        exc = self.error(envelope_error(429, capacity, headers={"Retry-After": "3"}))
        assert isinstance(exc, RateLimited) and exc.retry_after == 3.0
        assert str(exc) == (
            "Cloudflare Workers AI: rate limited (3040: No more data centers to forward the request to). "
            "Try again in 3 s."
        )

    def test_rate_limited_without_retry_after(self) -> None:
        exc = self.error(envelope_error(429, {"code": 3040, "message": "No more data centers"}))
        assert isinstance(exc, RateLimited) and exc.retry_after is None
        assert "Try again in a little while" in str(exc)

    @pytest.mark.parametrize(
        "error",
        [
            {"message": "AiError: Bad input: Error: oneOf at '/' not met"},
            {"code": 5007, "message": "No such model @cf/x or task"},
            {"code": 3003, "message": "Request is missing headers or body: body"},
        ],
    )
    def test_rejected_input_quotes_the_provider(self, error: dict[str, Any]) -> None:
        exc = self.error(envelope_error(400, error))
        assert type(exc) is InputRejected and error["message"] in str(exc)

    def test_an_unroutable_account_id(self) -> None:
        path = f"/client/v4/accounts/{ACCOUNT}/ai/run/@cf/black-forest-labs/flux-1-schnell"
        exc = self.error(
            envelope_error(
                404,
                {
                    "code": 7003,
                    "message": f"Could not route to {path}, perhaps your object identifier is invalid?",
                },
                {"code": 7000, "message": "No route for that URI"},
            )
        )
        assert type(exc) is ProviderFailed
        assert "could not be routed" in str(
            exc
        ) and "Check CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_BASE_URL" in str(exc)

    @pytest.mark.parametrize("status", [500, 503, 408])
    def test_server_errors(self, status: int) -> None:
        exc = self.error(envelope_error(status, {"message": "Internal server error"}))
        assert type(exc) is ProviderFailed
        assert f"(HTTP {status}) (Internal server error)" in str(exc)

    def test_an_html_proxy_page_is_not_quoted(self) -> None:
        response = httpx.Response(
            502, text="<html><body>502 Bad Gateway</body></html>", headers={"content-type": "text/html"}
        )
        exc = self.error(response)
        assert type(exc) is ProviderFailed and "<html" not in str(exc) and "HTTP 502" in str(exc)

    def test_an_echoed_key_is_redacted(self) -> None:
        exc = self.error(envelope_error(401, {"code": 10000, "message": f"token {KEY} is not valid"}))
        assert KEY not in str(exc) and "[redacted]" in str(exc)


class TestSizesAndPrice:
    @pytest.mark.parametrize(("width", "height"), [(1024, 1024), (512, 512), (768, 1344), (2048, 256)])
    def test_any_size_is_taken_and_1024_is_made(self, width: int, height: int) -> None:
        request = GenerationRequest(prompt="x", width=width, height=height)
        PROVIDER.validate(request, SETTINGS)
        assert PROVIDER.output_size(request, SETTINGS) == (1024, 1024)
        assert PROVIDER.estimate(request, SETTINGS) == Decimal("0.000652")

    def test_price_at_the_reference_request(self) -> None:
        # 4 tiles × $0.000053 + 4 steps × $0.00011 (docs/providers/cloudflare.md#price).
        assert PROVIDER.estimate(GenerationRequest(prompt="x"), SETTINGS) == Decimal("0.000652")
        assert PROVIDER.estimate(GenerationRequest(prompt="x", steps=8), SETTINGS) == Decimal("0.001092")
        assert PROVIDER.price is not None and PROVIDER.price.approximate

    def test_the_quote_says_what_comes_back(self) -> None:
        quote = quote_one(PROVIDER, GenerationRequest(prompt="x", width=768, height=1344), SETTINGS)
        assert quote.output_size == (1024, 1024) and quote.problems == ()
        assert quote.notes == ("makes 1024 × 1024", "no seed")
        assert quote.cost_text == "≈ $0.00065"


class TestValidate:
    def test_steps_above_8(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", steps=9), SETTINGS)
        assert info.value.field == "steps"
        assert str(info.value) == "Cloudflare Workers AI cannot take these settings: steps must be 1–8."

    def test_one_image_per_call(self) -> None:
        with pytest.raises(InvalidRequest, match=r"at most 1 image\(s\) per run"):
            PROVIDER.validate(GenerationRequest(prompt="x", num_images=2), SETTINGS)

    def test_a_prompt_over_2048_characters(self) -> None:
        PROVIDER.validate(GenerationRequest(prompt="a" * 2048), SETTINGS)
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="a" * 2049), SETTINGS)
        assert (info.value.field, info.value.provider) == ("prompt", "cloudflare")
        assert str(info.value) == (
            "Cloudflare Workers AI cannot take these settings: the prompt must be at most 2048 characters "
            "(this one has 2049)."
        )


class FakeCloudflare:
    """Answers every request with `reply` and keeps what it was sent."""

    def __init__(self, reply: httpx.Response) -> None:
        self.reply = reply
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.reply

    async def generate(self) -> ProviderOutput:
        request = GenerationRequest(prompt="fox", seed=9)
        async with httpx.AsyncClient(transport=httpx.MockTransport(self)) as client:
            ctx = CallContext(client=client, settings=SETTINGS, key=KEY)
            return await PROVIDER.run(ctx, PROVIDER.build_call(request, KEY, SETTINGS))


class TestRun:
    async def test_sends_the_call_once_and_reads_the_envelope(self) -> None:
        body = {"result": {"image": JPEG_B64}, "success": True, "errors": [], "messages": []}
        fake = FakeCloudflare(httpx.Response(200, json=body))
        assert await fake.generate() == ProviderOutput(items=[JPEG_B64])
        (sent,) = fake.seen
        assert (sent.method, str(sent.url)) == ("POST", RUN_URL)
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        assert json.loads(sent.content) == {"prompt": "fox", "steps": 4}

    @pytest.mark.parametrize(
        ("reply", "kind"),
        [
            (envelope_error(429, {"code": 3036, "message": FREE_ALLOCATION}), InsufficientCredits),
            (envelope_error(429, {"code": 3040, "message": "No more data centers"}), RateLimited),
            (envelope_error(500, {"message": "Internal server error"}), ProviderFailed),
        ],
    )
    async def test_billable_post_is_never_retried(self, reply: httpx.Response, kind: type[Exception]) -> None:
        fake = FakeCloudflare(reply)
        with pytest.raises(kind):
            await fake.generate()
        assert [r.method for r in fake.seen] == ["POST"]

    async def test_an_error_on_a_200_has_the_key_blanked(self) -> None:
        reply = envelope_error(200, {"code": 3007, "message": f"timeout for {KEY}"})
        with pytest.raises(ProviderFailed) as info:
            await FakeCloudflare(reply).generate()
        assert KEY not in str(info.value) and "[redacted]" in str(info.value)

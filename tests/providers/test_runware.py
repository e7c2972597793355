"""Runware: the task array, every documented answer (URL, base64, data URI, several images, the real
charge), errors as `errors[]` or the older `error`, also inside a 200, and the published price."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
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
    ProviderError,
    ProviderFailed,
    RateLimited,
)
from flux_playground.models import GenerationRequest
from flux_playground.providers import CallContext, ProviderCall, ProviderOutput
from flux_playground.providers.runware import Runware
from flux_playground.quotes import quote_one
from flux_playground.settings import Settings

KEY = "rw-secret-key-314"
PROVIDER = Runware()
SETTINGS = Settings(
    _env_file=None, providers={"runware": {"api_key": KEY, "base_url": "https://runware.test/"}}
)
FULL = GenerationRequest(prompt="a lighthouse", width=768, height=1344, steps=6, seed=77, num_images=2)
TASK = "a770f077-f413-47de-9dac-be0b26a35da6"
PNG_B64 = "iVBORw0KGgo="

# The documented answer (docs/providers/runware.md#response), with includeCost.
DOCUMENTED = {
    "data": [
        {
            "taskType": "imageInference",
            "taskUUID": TASK,
            "imageUUID": "77da2d99-a6d3-44d9-b8c0-ae9fb06b6200",
            "imageURL": f"https://im.runware.ai/image/ws/0.5/ii/{TASK}.jpg",
            "seed": 7532114250969985124,
            "cost": 0.0013,
        }
    ]
}
INVALID_KEY = {
    "errors": [
        {
            "code": "invalidApiKey",
            "message": "Invalid API key. Get one at https://my.runware.ai/signup",
            "parameter": "apiKey",
            "taskType": "authentication",
        }
    ]
}


def task_uuid(call: ProviderCall) -> str:
    """The call's taskUUID, checked to be a UUID v4 (docs/providers/runware.md#request)."""
    value = call.json["taskUUID"]
    assert isinstance(value, str) and uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value
    return value


def result(**fields: Any) -> dict[str, Any]:
    return {"taskType": "imageInference", "taskUUID": TASK, "imageUUID": str(uuid.uuid4()), **fields}


def expected_task(call: ProviderCall, **fields: Any) -> dict[str, Any]:
    """The whole task we send (docs/providers/runware.md#request): constant fields, then `fields`."""
    return {
        "taskType": "imageInference",
        "taskUUID": task_uuid(call),
        "model": "runware:100@1",
        **fields,
        "outputType": "base64Data",
        "outputFormat": "PNG",
        "includeCost": True,
    }


class TestBuildCall:
    def test_default_request(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox"), KEY, SETTINGS)
        assert call.method == "POST"
        assert call.url == "https://runware.test/v1"
        assert call.headers == {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        assert call.json == expected_task(
            call, positivePrompt="a red fox", width=1024, height=1024, steps=4, numberResults=1
        )

    def test_every_field_set(self) -> None:
        call = PROVIDER.build_call(FULL, KEY, SETTINGS)
        assert call.json == expected_task(
            call, positivePrompt="a lighthouse", width=768, height=1344, steps=6, seed=77, numberResults=2
        )

    def test_the_body_sent_is_an_array_of_that_one_task(self) -> None:
        call = PROVIDER.build_call(FULL, KEY, SETTINGS)
        assert PROVIDER.request_body(call.json) == [call.json]

    def test_every_call_gets_a_fresh_task_uuid(self) -> None:
        calls = [PROVIDER.build_call(FULL, KEY, SETTINGS) for _ in range(3)]
        assert len({task_uuid(call) for call in calls}) == 3

    def test_default_base_url(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, Settings(_env_file=None))
        assert call.url == "https://api.runware.ai/v1"


class TestParse:
    def parse(self, body: Any) -> ProviderOutput:
        return PROVIDER.parse(httpx.Response(200, json=body))

    def test_documented_url_answer(self) -> None:
        assert self.parse(DOCUMENTED) == ProviderOutput(
            items=[f"https://im.runware.ai/image/ws/0.5/ii/{TASK}.jpg"],
            seed=7532114250969985124,
            reported_cost_usd=Decimal("0.0013"),
            request_id=TASK,
        )

    @pytest.mark.parametrize(
        ("field", "value"),
        [("imageBase64Data", PNG_B64), ("imageDataURI", f"data:image/png;base64,{PNG_B64}")],
    )
    def test_inline_outputs(self, field: str, value: str) -> None:
        out = self.parse({"data": [result(**{field: value}, seed=42, cost=0.0006)]})
        assert out == ProviderOutput(
            items=[value], seed=42, reported_cost_usd=Decimal("0.0006"), request_id=TASK
        )

    def test_several_images_charge_the_sum_of_their_costs_exactly(self) -> None:
        out = self.parse(
            {
                "data": [
                    result(imageBase64Data="AAAA", seed=5, cost=0.0006),
                    result(imageBase64Data="BBBB", seed=6, cost="0.0007"),
                ]
            }
        )
        assert out.items == ["AAAA", "BBBB"] and out.seed == 5
        assert out.reported_cost_usd == Decimal("0.0013") and str(out.reported_cost_usd) == "0.0013"

    @pytest.mark.parametrize("cost", [None, 0, 0.0, -0.001, True, "NaN", "cheap", [0.001]])
    def test_a_cost_that_is_missing_zero_or_garbage_is_unknown(self, cost: Any) -> None:
        fields = {} if cost is None else {"cost": cost}
        out = self.parse({"data": [result(imageBase64Data="AAAA", **fields)]})
        assert out.reported_cost_usd is None

    def test_one_unknown_cost_makes_the_total_unknown(self) -> None:
        out = self.parse(
            {"data": [result(imageBase64Data="AAAA", cost=0.0006), result(imageBase64Data="BBBB")]}
        )
        assert out.reported_cost_usd is None

    @pytest.mark.parametrize("seed", ["42", True, None, 1.5])
    def test_seed_must_be_an_int(self, seed: Any) -> None:
        assert self.parse({"data": [result(imageBase64Data="AAAA", seed=seed)]}).seed is None

    def test_items_without_an_image_are_not_results(self) -> None:
        # The async acknowledgement is {"taskType", "taskUUID"} only (docs/providers/runware.md#response).
        out = self.parse({"data": [result(), result(imageBase64Data="AAAA")]})
        assert out.items == ["AAAA"]

    @pytest.mark.parametrize(
        "body",
        [
            {"data": []},
            {"data": [{"taskType": "imageInference", "taskUUID": TASK}]},
            {"data": [result(imageURL=""), result(imageBase64Data=None)]},
            {"data": "nope"},
            {"data": [["AAAA"]]},
            {},
            [],
        ],
    )
    def test_malformed(self, body: Any) -> None:
        with pytest.raises(MalformedResponse, match="Runware: unexpected answer"):
            self.parse(body)

    def test_not_json(self) -> None:
        with pytest.raises(MalformedResponse, match="not valid JSON"):
            PROVIDER.parse(httpx.Response(200, content=b"<html>"))

    def test_a_200_that_carries_errors_is_an_error(self) -> None:
        with pytest.raises(AuthenticationFailed, match="Invalid API key"):
            self.parse(INVALID_KEY)

    def test_a_200_with_the_older_single_error_is_an_error(self) -> None:
        with pytest.raises(InsufficientCredits, match="balance is insufficient"):
            self.parse({"error": "Your account balance is insufficient"})

    def test_usable_data_wins_over_errors(self) -> None:
        # One task per request: an image for it means the task succeeded.
        out = self.parse(
            {"data": [result(imageBase64Data="AAAA")], "errors": [{"code": "x", "message": "y"}]}
        )
        assert out.items == ["AAAA"]


class TestErrorFor:
    def error(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> ProviderError:
        response = httpx.Response(status, json=body if body is not None else {}, headers=headers)
        return PROVIDER.error_for(response, key=KEY)

    def test_invalid_key_in_runwares_words(self) -> None:
        exc = self.error(401, INVALID_KEY)
        assert type(exc) is AuthenticationFailed
        assert str(exc) == (
            "Runware: the API key was refused (Invalid API key. Get one at https://my.runware.ai/signup). "
            "Check RUNWARE_API_KEY or the key you pasted."
        )

    def test_403_key_without_permission(self) -> None:
        body = {"errors": [{"code": "forbidden", "message": "The API key lacks permission"}]}
        assert type(self.error(403, body)) is AuthenticationFailed

    def test_402_is_out_of_credits_and_never_retried(self) -> None:
        exc = self.error(402, {"errors": [{"code": "insufficientCredits", "message": "Balance too low"}]})
        assert type(exc) is InsufficientCredits
        assert str(exc) == (
            "Runware: the account is out of credits (Balance too low). Top up at the provider, then retry."
        )

    def test_400_rejects_the_settings_with_runwares_message(self) -> None:
        body = {
            "errors": [
                {
                    "code": "invalidWidth",
                    "message": "Invalid value for width parameter",
                    "parameter": "width",
                    "taskType": "imageInference",
                    "taskUUID": TASK,
                }
            ]
        }
        exc = self.error(400, body)
        assert type(exc) is InputRejected
        assert (
            str(exc) == "Runware: the provider rejected these settings (Invalid value for width parameter)."
        )

    def test_several_errors_are_all_said(self) -> None:
        body = {"errors": [{"code": "a", "message": "first"}, {"code": "missingSteps"}]}
        assert "(first; missingSteps)" in str(self.error(400, body))

    def test_429_honours_retry_after(self) -> None:
        exc = self.error(429, {"errors": [{"message": "queue full"}]}, {"Retry-After": "1.5"})
        assert type(exc) is RateLimited and exc.retry_after == 1.5
        assert str(exc) == "Runware: rate limited (queue full). Try again in 1.5 s."

    def test_429_without_retry_after(self) -> None:
        # Runware documents no Retry-After (docs/providers/runware.md#errors).
        exc = self.error(429, {"errors": [{"message": "queue full"}]})
        assert type(exc) is RateLimited and exc.retry_after is None
        assert "Try again in a little while" in str(exc)

    @pytest.mark.parametrize("status", [500, 503, 504])
    def test_server_and_capacity_errors(self, status: int) -> None:
        exc = self.error(status, {"errors": [{"code": "timeoutProvider", "message": "Provider timed out"}]})
        assert type(exc) is ProviderFailed
        assert f"(HTTP {status}) (Provider timed out)" in str(exc)

    def test_502_html_from_a_proxy(self) -> None:
        response = httpx.Response(502, html="<html><h1>502 Bad Gateway</h1></html>")
        exc = PROVIDER.error_for(response, key=KEY)
        assert type(exc) is ProviderFailed and "HTTP 502" in str(exc) and "<html>" not in str(exc)

    @pytest.mark.parametrize(
        "error", ["Invalid API key", {"code": "invalidApiKey", "message": "Invalid API key"}]
    )
    def test_older_single_error_property(self, error: Any) -> None:
        exc = self.error(401, {"error": error})
        assert type(exc) is AuthenticationFailed and "(Invalid API key)" in str(exc)

    def test_echoed_key_is_redacted(self) -> None:
        exc = self.error(401, {"errors": [{"message": f"key {KEY} is not valid"}]})
        assert KEY not in str(exc) and "key [redacted] is not valid" in str(exc)

    @pytest.mark.parametrize(
        ("problem", "kind", "words"),
        [
            (INVALID_KEY["errors"][0], AuthenticationFailed, "the API key was refused (Invalid API key."),
            ({"code": "insufficientCredits", "message": "No funds"}, InsufficientCredits, "out of credits"),
            ({"message": "Your account balance is insufficient"}, InsufficientCredits, "Top up"),
            ({"code": "tooManyRequests", "message": "Too many requests"}, RateLimited, "rate limited"),
            ({"code": "invalidSteps", "message": "steps out of range"}, InputRejected, "steps out of range"),
            ({"message": "bad value", "parameter": "seed"}, InputRejected, "rejected these settings"),
            ({"code": "timeoutProvider", "message": "Provider timed out"}, ProviderFailed, "the task failed"),
        ],
    )
    def test_a_200_that_carries_errors_is_mapped_by_its_code_and_message(
        self, problem: dict[str, str], kind: type[ProviderError], words: str
    ) -> None:
        exc = self.error(200, {"errors": [problem]})
        assert type(exc) is kind and words in str(exc)
        assert "HTTP 200" not in str(exc)

    def test_an_error_body_runware_does_not_use_falls_back_to_the_template(self) -> None:
        exc = self.error(400, {"detail": "bad request"})
        assert type(exc) is InputRejected and "(bad request)" in str(exc)


Handler = Callable[[httpx.Request], httpx.Response]


async def run(
    handler: Handler, seen: list[httpx.Request], request: GenerationRequest = FULL
) -> ProviderOutput:
    def recording(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        return handler(sent)

    async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
        ctx = CallContext(client=client, settings=SETTINGS, key=KEY)
        return await PROVIDER.run(ctx, PROVIDER.build_call(request, KEY, SETTINGS))


def answer_to_the_task(sent: httpx.Request, **fields: Any) -> httpx.Response:
    (task,) = json.loads(sent.content)
    return httpx.Response(200, json={"data": [{**result(**fields), "taskUUID": task["taskUUID"]}]})


class TestRun:
    async def test_posts_one_array_once_and_reads_the_answer_to_its_task(self) -> None:
        seen: list[httpx.Request] = []
        out = await run(
            lambda sent: answer_to_the_task(sent, imageBase64Data="AAAA", seed=77, cost=0.001), seen
        )
        (sent,) = seen
        assert sent.method == "POST" and str(sent.url) == "https://runware.test/v1"
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        (task,) = json.loads(sent.content)
        assert task["positivePrompt"] == "a lighthouse" and task["seed"] == 77
        assert out == ProviderOutput(
            items=["AAAA"], seed=77, reported_cost_usd=Decimal("0.001"), request_id=task["taskUUID"]
        )

    async def test_answers_to_another_task_are_not_ours(self) -> None:
        seen: list[httpx.Request] = []
        with pytest.raises(MalformedResponse, match="no image"):
            await run(lambda sent: httpx.Response(200, json={"data": [result(imageBase64Data="AAAA")]}), seen)
        assert len(seen) == 1

    async def test_a_200_carrying_errors_is_raised_without_the_key(self) -> None:
        seen: list[httpx.Request] = []
        body = {"errors": [{"code": "insufficientCredits", "message": f"balance of {KEY} is insufficient"}]}
        with pytest.raises(InsufficientCredits) as info:
            await run(lambda sent: httpx.Response(200, json=body), seen)
        assert KEY not in str(info.value) and len(seen) == 1

    async def test_503_is_not_retried(self) -> None:
        seen: list[httpx.Request] = []
        body = {"errors": [{"code": "serviceUnavailable", "message": "No capacity, retry later"}]}
        with pytest.raises(ProviderFailed, match="No capacity"):
            await run(lambda sent: httpx.Response(503, json=body, headers={"Retry-After": "0"}), seen)
        assert [sent.method for sent in seen] == ["POST"]


class TestSizesAndPrice:
    def test_sizes_are_multiples_of_64_from_128_to_2048(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", width=1000), SETTINGS)
        assert (info.value.provider, info.value.field) == ("runware", "width")
        assert "width must be 128–2048 in multiples of 64 (nearest: 1024)" in str(info.value)
        PROVIDER.validate(
            GenerationRequest(prompt="x", width=256, height=2048, steps=50, num_images=4), SETTINGS
        )

    def test_it_makes_the_size_asked_and_honours_seed_and_steps(self) -> None:
        request = GenerationRequest(prompt="x", width=768, height=1344)
        assert PROVIDER.output_size(request, SETTINGS) == (768, 1344)
        caps = PROVIDER.get_capabilities(SETTINGS)
        assert (caps.sizes, caps.seed, caps.steps) == ("exact", True, True)

    def test_price_at_the_reference_request(self) -> None:
        reference = GenerationRequest(prompt="x", width=1024, height=1024, steps=4, num_images=1)
        assert PROVIDER.estimate(reference, SETTINGS) == Decimal("0.0013")
        assert quote_one(PROVIDER, reference, SETTINGS).cost_text == "≈ $0.0013"

    @pytest.mark.parametrize(
        ("width", "height", "steps", "images", "usd"),
        [
            (512, 512, 4, 1, "0.0006"),  # the table's other point
            (1024, 1024, 8, 2, "0.0052"),  # scaled by steps and images
            (256, 256, 4, 1, "0.0006"),  # below the table: its smallest price
        ],
    )
    def test_price_off_the_published_table(
        self, width: int, height: int, steps: int, images: int, usd: str
    ) -> None:
        request = GenerationRequest(prompt="x", width=width, height=height, steps=steps, num_images=images)
        assert PROVIDER.estimate(request, SETTINGS) == Decimal(usd)

    def test_price_rule_is_dated_sourced_and_approximate(self) -> None:
        rule = PROVIDER.price
        assert rule is not None and rule.approximate and rule.source.startswith("https://runware.ai/docs/")
        assert str(rule.checked) == "2026-12-01" and "includeCost" in rule.note

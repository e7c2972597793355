"""Atlas Cloud: payload, parsing of every documented envelope, error mapping and the polling loop."""

from __future__ import annotations

import json
from collections.abc import Callable
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
from flux_playground.providers.atlascloud import AtlasCloud
from flux_playground.settings import Settings

KEY = "atlas-secret-key-123"
BASE = "https://atlas.test"
PROVIDER = AtlasCloud()
SUBMIT_URL = f"{BASE}/api/v1/model/generateImage"


def make_settings(base_url: str = BASE, **overrides: Any) -> Settings:
    atlas = {"api_key": KEY, "base_url": base_url}
    values: dict[str, Any] = {"providers": {"atlascloud": atlas}, "job_timeout": 5.0, "request_timeout": 5.0}
    return Settings(_env_file=None, **{**values, **overrides})


SETTINGS = make_settings()


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]


class AtlasServer:
    """Answers the submit POST with `submit`, then each GET with the next reply (the last one repeats)."""

    def __init__(self, submit: Reply, polls: list[Reply] | None = None) -> None:
        self.submit = submit
        self.polls = list(polls or [])
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST":
            reply = self.submit
        else:
            reply = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
        status, body, *rest = reply
        headers = rest[0] if rest else {}
        return httpx.Response(status, json=body, headers=headers)

    def count(self, method: str) -> int:
        return sum(1 for r in self.requests if r.method == method)


async def run_atlas(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    settings: Settings = SETTINGS,
    time: FakeTime | None = None,
    expected_job_s: float | None = None,
    request: GenerationRequest | None = None,
) -> ProviderOutput:
    time = time or FakeTime()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        ctx = CallContext(
            client=client,
            settings=settings,
            key=KEY,
            sleep=time.sleep,
            clock=time.clock,
            expected_job_s=expected_job_s,
        )
        call = PROVIDER.build_call(request or GenerationRequest(prompt="a red fox"), KEY, settings)
        return await PROVIDER.run(ctx, call)


def submitted(prediction_id: str = "pred_1") -> Reply:
    return (200, {"code": 200, "data": {"id": prediction_id, "status": "starting"}})


def poll(status: str, **extra: Any) -> Reply:
    return (200, {"code": 200, "data": {"id": "pred_1", "status": status, **extra}})


class TestBuildCall:
    def test_default_request(self) -> None:
        call = PROVIDER.build_call(
            GenerationRequest(prompt="a red fox"),
            KEY,
            make_settings(base_url="https://api.atlascloud.ai/"),
        )
        assert call.method == "POST"
        assert call.url == "https://api.atlascloud.ai/api/v1/model/generateImage"
        assert call.headers == {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {KEY}",
            "X-AtlasCloud-Object-Expiration-Hours": "1",
        }
        assert call.json == {
            "prompt": "a red fox",
            "size": "1024*1024",
            "seed": -1,
            "num_images": 1,
            "model": "black-forest-labs/flux-schnell",
        }
        assert list(call.json)[-1] == "model"

    def test_every_field_set(self) -> None:
        request = GenerationRequest(
            prompt="a lighthouse at dusk",
            width=768,
            height=512,
            steps=3,
            seed=42,
            num_images=2,
        )
        call = PROVIDER.build_call(request, KEY, SETTINGS)
        assert call.url == SUBMIT_URL
        # Steps are not in Atlas's schema: they are never sent.
        assert call.json == {
            "prompt": "a lighthouse at dusk",
            "size": "768*512",
            "seed": 42,
            "num_images": 2,
            "model": "black-forest-labs/flux-schnell",
        }
        assert list(call.json)[-1] == "model"

    def test_repr_hides_the_key(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, SETTINGS)
        assert KEY not in repr(call)


class TestParse:
    def parse(self, body: Any) -> ProviderOutput:
        return PROVIDER.parse(httpx.Response(200, json=body))

    def test_data_envelope_with_url_list(self) -> None:
        out = self.parse(
            {
                "code": 200,
                "data": {
                    "id": "pred_1",
                    "status": "completed",
                    "outputs": ["https://cdn.test/a.png", "https://cdn.test/b.png"],
                },
            }
        )
        assert out == ProviderOutput(
            items=["https://cdn.test/a.png", "https://cdn.test/b.png"], request_id="pred_1"
        )

    def test_flat_envelope_with_output_list(self) -> None:
        out = self.parse(
            {
                "id": "pred_2",
                "status": "succeeded",
                "output": ["https://cdn.test/a.png"],
                "urls": {"get": "https://x"},
                "has_nsfw_contents": [False],
            }
        )
        assert out == ProviderOutput(items=["https://cdn.test/a.png"], request_id="pred_2")

    def test_output_string(self) -> None:
        out = self.parse({"data": {"status": "completed", "output": "https://cdn.test/a.png"}})
        assert out.items == ["https://cdn.test/a.png"]

    def test_output_objects(self) -> None:
        out = self.parse(
            {
                "data": {
                    "status": "completed",
                    "outputs": [
                        {"url": "https://cdn.test/a.png"},
                        {"image": "https://cdn.test/b.png"},
                        {"output": "https://cdn.test/c.png"},
                    ],
                }
            }
        )
        assert out.items == ["https://cdn.test/a.png", "https://cdn.test/b.png", "https://cdn.test/c.png"]

    def test_base64_and_data_uri_are_passed_on(self) -> None:
        out = self.parse(
            {
                "data": {
                    "status": "completed",
                    "outputs": ["iVBORw0KGgo=", "data:image/png;base64,iVBORw0KGgo="],
                }
            }
        )
        assert out.items == ["iVBORw0KGgo=", "data:image/png;base64,iVBORw0KGgo="]

    @pytest.mark.parametrize(
        "body",
        [
            {"code": 200, "data": {"id": "p", "status": "completed", "outputs": []}},
            {"code": 200, "data": {"id": "p", "status": "completed"}},
            {"data": {"outputs": [None, 3, {"nothing": "here"}]}},
            [],
            "just a string",
        ],
    )
    def test_malformed_json(self, body: Any) -> None:
        with pytest.raises(MalformedResponse, match="Atlas Cloud"):
            self.parse(body)

    def test_not_json(self) -> None:
        with pytest.raises(MalformedResponse, match="not valid JSON"):
            PROVIDER.parse(httpx.Response(200, text="<html>oops</html>"))


class TestErrorFor:
    def error(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Exception:
        response = httpx.Response(status, json=body if body is not None else {}, headers=headers)
        return PROVIDER.error_for(response, key=KEY)

    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_names_env_var(self, status: int) -> None:
        exc = self.error(status, {"code": status, "msg": "invalid api key"})
        assert isinstance(exc, AuthenticationFailed)
        assert str(exc) == (
            "Atlas Cloud: the API key was refused (invalid api key). "
            "Check ATLASCLOUD_API_KEY or the key you pasted."
        )

    def test_402_is_insufficient_credits(self) -> None:
        exc = self.error(402, {"code": 402, "msg": "insufficient balance"})
        assert isinstance(exc, InsufficientCredits)
        assert "insufficient balance" in str(exc)

    def test_429_with_retry_after(self) -> None:
        exc = self.error(429, {"message": "slow down"}, {"Retry-After": "7"})
        assert isinstance(exc, RateLimited)
        assert exc.retry_after == 7.0
        assert str(exc) == "Atlas Cloud: rate limited (slow down). Try again in 7 s."

    def test_429_without_retry_after(self) -> None:
        exc = self.error(429)
        assert isinstance(exc, RateLimited)
        assert exc.retry_after is None

    @pytest.mark.parametrize("status", [400, 422])
    def test_input_rejected(self, status: int) -> None:
        assert isinstance(self.error(status, {"msg": "bad size"}), InputRejected)

    @pytest.mark.parametrize("status", [500, 502])
    def test_server_errors(self, status: int) -> None:
        exc = self.error(status, {"message": "boom"})
        assert type(exc) is ProviderFailed
        assert f"HTTP {status}" in str(exc) and "(boom)" in str(exc)

    @pytest.mark.parametrize(
        "body",
        [
            {"msg": "the reason"},
            {"message": "the reason"},
            {"error": "the reason"},
            {"detail": {"error": "the reason"}},
            {"error": {"message": "the reason"}},
        ],
    )
    def test_error_text_sources(self, body: dict[str, Any]) -> None:
        assert "(the reason)" in str(self.error(500, body))

    def test_echoed_key_is_redacted(self) -> None:
        exc = self.error(401, {"code": 401, "msg": f"key {KEY} is not valid"})
        assert KEY not in str(exc)
        assert "key [redacted] is not valid" in str(exc)


class TestPolling:
    async def test_processing_then_completed(self) -> None:
        server = AtlasServer(
            submitted(),
            [
                poll("processing"),
                poll("processing"),
                poll("completed", outputs=["https://cdn.test/a.png"]),
            ],
        )
        time = FakeTime()
        out = await run_atlas(server, time=time)
        assert out.items == ["https://cdn.test/a.png"]
        assert out.request_id == "pred_1"
        assert out.job_s is not None and 0 < out.job_s <= time.now
        assert (server.count("POST"), server.count("GET")) == (1, 3)
        get = server.requests[1]
        assert str(get.url) == f"{BASE}/api/v1/model/prediction/pred_1"
        assert get.headers["Authorization"] == f"Bearer {KEY}"

    async def test_submit_body_is_the_built_payload(self) -> None:
        server = AtlasServer(submitted(), [poll("completed", outputs=["https://cdn.test/a.png"])])
        await run_atlas(server, request=GenerationRequest(prompt="fox", seed=5))
        assert json.loads(server.requests[0].content) == {
            "prompt": "fox",
            "size": "1024*1024",
            "seed": 5,
            "num_images": 1,
            "model": "black-forest-labs/flux-schnell",
        }

    @pytest.mark.parametrize("status", ["completed", "succeeded", "COMPLETED"])
    async def test_done_statuses(self, status: str) -> None:
        server = AtlasServer(submitted(), [poll(status, outputs=["https://cdn.test/a.png"])])
        assert (await run_atlas(server)).items == ["https://cdn.test/a.png"]

    async def test_inline_completed_needs_no_poll(self) -> None:
        server = AtlasServer(poll("completed", outputs=["data:image/png;base64,AAAA"]))
        out = await run_atlas(server)
        assert out.items == ["data:image/png;base64,AAAA"]
        assert server.count("GET") == 0

    async def test_legacy_flat_prediction_id(self) -> None:
        server = AtlasServer(
            (200, {"predictionId": "old_9"}),
            [(200, {"id": "old_9", "status": "succeeded", "output": "https://cdn.test/a.png"})],
        )
        out = await run_atlas(server)
        assert out.items == ["https://cdn.test/a.png"]
        assert str(server.requests[1].url) == f"{BASE}/api/v1/model/prediction/old_9"

    async def test_submit_without_id_is_malformed(self) -> None:
        server = AtlasServer((200, {"code": 200, "data": {"status": "starting"}}))
        with pytest.raises(MalformedResponse, match="no prediction id"):
            await run_atlas(server)

    async def test_404_on_fresh_prediction_is_tolerated(self) -> None:
        server = AtlasServer(
            submitted(),
            [
                (404, {"msg": "prediction not found"}),
                (404, {"msg": "prediction not found"}),
                poll("completed", outputs=["https://cdn.test/a.png"]),
            ],
        )
        assert (await run_atlas(server)).items == ["https://cdn.test/a.png"]
        assert server.count("GET") == 3

    async def test_404_after_grace_period_is_an_error(self) -> None:
        server = AtlasServer(submitted(), [(404, {"msg": "prediction not found"})])
        time = FakeTime()
        with pytest.raises(ProviderFailed, match="prediction not found"):
            await run_atlas(server, settings=make_settings(job_timeout=120.0), time=time)
        assert 30.0 <= time.now < 32.0

    async def test_failed_job_reports_reason(self) -> None:
        server = AtlasServer(submitted(), [poll("processing"), poll("failed", error="NSFW content detected")])
        with pytest.raises(ProviderFailed) as info:
            await run_atlas(server)
        assert str(info.value) == "Atlas Cloud: the job failed (NSFW content detected). Try again."

    async def test_never_completes_times_out(self) -> None:
        server = AtlasServer(submitted(), [poll("processing")])
        time = FakeTime()
        with pytest.raises(ProviderTimeout) as info:
            await run_atlas(server, time=time)
        assert isinstance(info.value, TimeoutError)
        assert "pred_1" in str(info.value) and "within 5 s" in str(info.value)
        assert 5.0 <= time.now <= 5.0 + 1e-9
        assert server.count("POST") == 1

    async def test_submit_sent_once_while_polls_are_retried(self) -> None:
        server = AtlasServer(
            submitted(),
            [
                (500, {"msg": "upstream hiccup"}),
                (429, {"msg": "slow down"}, {"Retry-After": "2"}),
                (503, {"msg": "busy"}),
                poll("completed", outputs=["https://cdn.test/a.png"]),
            ],
        )
        time = FakeTime()
        out = await run_atlas(server, time=time)
        assert out.items == ["https://cdn.test/a.png"]
        assert (server.count("POST"), server.count("GET")) == (1, 4)
        # One poll-schedule sleep, then the GET's own backoff through the same injected sleep:
        # 0.25 s, the 2 s the 429 asked for, then 1 s (doubling from 0.25, not from Retry-After).
        assert time.sleeps[1:] == [0.25, 2.0, 1.0]

    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (500, ProviderFailed),
            (503, ProviderFailed),
            (429, RateLimited),
            (402, InsufficientCredits),
        ],
    )
    async def test_failed_submit_is_never_retried(self, status: int, kind: type[Exception]) -> None:
        server = AtlasServer((status, {"code": status, "msg": "no"}))
        with pytest.raises(kind):
            await run_atlas(server)
        assert server.count("POST") == 1
        assert server.count("GET") == 0

    async def test_code_in_200_body_on_submit(self) -> None:
        server = AtlasServer((200, {"code": 402, "msg": "insufficient balance"}))
        with pytest.raises(InsufficientCredits, match="insufficient balance"):
            await run_atlas(server)

    async def test_code_in_200_body_on_poll(self) -> None:
        server = AtlasServer(submitted(), [(200, {"code": 500, "msg": "internal error"})])
        with pytest.raises(ProviderFailed, match="internal error"):
            await run_atlas(server)

    async def test_code_in_200_body_redacts_key(self) -> None:
        server = AtlasServer((200, {"code": 401, "msg": f"api key {KEY} is invalid"}))
        with pytest.raises(AuthenticationFailed) as info:
            await run_atlas(server)
        assert KEY not in str(info.value)

    async def test_expected_duration_makes_polling_dense_near_the_end(self) -> None:
        finish_at = 10.0
        time = FakeTime()

        def handler(request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                return httpx.Response(200, json={"code": 200, "data": {"id": "p", "status": "starting"}})
            status = "completed" if time.now >= finish_at else "processing"
            return httpx.Response(
                200, json={"data": {"status": status, "outputs": ["https://cdn.test/a.png"]}}
            )

        seen: list[str] = []

        def counting(request: httpx.Request) -> httpx.Response:
            seen.append(request.method)
            return handler(request)

        out = await run_atlas(
            counting, settings=make_settings(job_timeout=60.0), time=time, expected_job_s=finish_at
        )
        assert time.now - finish_at <= 0.15
        assert seen.count("POST") == 1
        assert seen.count("GET") <= 20
        assert out.job_s is not None and abs(out.job_s - finish_at) <= 0.15


class TestValidate:
    def test_sampler_is_not_supported(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", sampler="euler"), SETTINGS)
        assert (info.value.provider, info.value.field) == ("atlascloud", "sampler")
        assert str(info.value) == "Atlas Cloud cannot take these settings: sampler is not supported."

    def test_size_above_range(self) -> None:
        with pytest.raises(InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", width=2048), SETTINGS)
        assert info.value.field == "width"
        assert str(info.value) == (
            "Atlas Cloud cannot take these settings: "
            "width must be 256–1536 in multiples of 16 (nearest: 1536)."
        )

    def test_steps_are_not_validated_because_not_sent(self) -> None:
        PROVIDER.validate(GenerationRequest(prompt="x", steps=50), SETTINGS)

    def test_nearest_size(self) -> None:
        assert PROVIDER.capabilities.nearest_size(1001, 700) == (1008, 704)
        assert PROVIDER.capabilities.nearest_size(100, 4000) == (256, 1536)


def test_an_error_about_the_balance_is_out_of_credits_whatever_its_status() -> None:
    """Atlas's MCP server reads "insufficient"/"balance" as out of credit (docs/providers/atlascloud.md)."""
    from flux_playground.errors import InsufficientCredits

    response = httpx.Response(400, json={"code": 400, "msg": "Insufficient balance, please recharge"})
    error = PROVIDER.error_for(response, key=KEY)
    assert isinstance(error, InsufficientCredits) and "Top up" in error.message

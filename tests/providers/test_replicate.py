"""Replicate: the prediction call (Prefer: wait, aspect ratio and megapixels), every documented
prediction answer, problem-JSON errors, polling `urls.get` on the configured origin only."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from flux_playground import Playground, errors
from flux_playground.demo import point_at
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS, CallContext, ProviderOutput
from flux_playground.providers.replicate import ASPECT_RATIO_SIZES, Replicate, prefer_wait_s
from flux_playground.settings import Settings

KEY = "r8_secret-token-789"
BASE = "https://replicate.test"
PROVIDER = Replicate()
CREATE_URL = f"{BASE}/v1/models/black-forest-labs/flux-schnell/predictions"
POLL_URL = f"{BASE}/v1/predictions/p1"
SETTINGS = Settings(
    _env_file=None,
    providers={"replicate": {"api_key": KEY, "base_url": BASE + "/"}},
    request_timeout=30.0,
    job_timeout=5.0,
)


def prediction(status: str, **fields: Any) -> dict[str, Any]:
    """A prediction object as documented (docs/providers/replicate.md#response)."""
    body: dict[str, Any] = {
        "id": "p1",
        "model": "black-forest-labs/flux-schnell",
        "version": "c846a699",
        "input": {"prompt": "a red fox"},
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": status,
        "created_at": "2026-12-01T00:00:00.000Z",
        "urls": {"get": POLL_URL, "cancel": POLL_URL + "/cancel"},
    }
    return {**body, **fields}


def succeeded(*urls: str) -> dict[str, Any]:
    return prediction("succeeded", output=list(urls), metrics={"predict_time": 0.6, "total_time": 0.7})


class TestBuildCall:
    def test_reference_request(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="a red fox", seed=42), KEY, SETTINGS)
        assert call.method == "POST"
        assert call.url == CREATE_URL
        assert call.headers == {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {KEY}",
            "Prefer": "wait=15",  # half the 30 s request timeout
        }
        assert call.json == {
            "input": {
                "prompt": "a red fox",
                "aspect_ratio": "1:1",
                "megapixels": "1",
                "num_outputs": 1,
                "num_inference_steps": 4,
                "seed": 42,
                "output_format": "png",
                "go_fast": False,
            }
        }

    def test_every_field_set(self) -> None:
        request = GenerationRequest(
            prompt="a lighthouse", width=512, height=896, steps=2, seed=7, num_images=3
        )
        call = PROVIDER.build_call(request, KEY, SETTINGS)
        assert call.json == {
            "input": {
                "prompt": "a lighthouse",
                "aspect_ratio": "9:16",
                "megapixels": "0.25",
                "num_outputs": 3,
                "num_inference_steps": 2,
                "seed": 7,
                "output_format": "png",
                "go_fast": False,
            }
        }

    def test_an_unresolved_seed_is_left_out(self) -> None:
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, SETTINGS)
        assert isinstance(call.json["input"], dict) and "seed" not in call.json["input"]

    def test_default_origin_and_sampler_dropped(self) -> None:
        settings = Settings(_env_file=None)
        request = PROVIDER.shape(GenerationRequest(prompt="x", sampler="euler"), settings)
        call = PROVIDER.build_call(request, KEY, settings)
        assert call.url == "https://api.replicate.com/v1/models/black-forest-labs/flux-schnell/predictions"
        assert call.headers["Prefer"] == "wait=60"  # 120 s default timeout: Replicate's own maximum
        assert request.sampler is None

    @pytest.mark.parametrize(
        ("timeout", "wait"), [(120.0, 60), (1000.0, 60), (30.0, 15), (5.0, 2), (2.0, 1), (1.9, None)]
    )
    def test_wait_is_half_the_request_timeout(self, timeout: float, wait: int | None) -> None:
        assert prefer_wait_s(timeout) == wait

    def test_no_room_to_wait_means_no_prefer_header(self) -> None:
        settings = SETTINGS.model_copy(update={"request_timeout": 1.5})
        call = PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, settings)
        assert call.headers == {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}

    def test_repr_hides_the_key(self) -> None:
        assert KEY not in repr(PROVIDER.build_call(GenerationRequest(prompt="x"), KEY, SETTINGS))


class TestSizes:
    @pytest.mark.parametrize(
        ("width", "height", "ratio", "megapixels", "made"),
        [
            (1024, 1024, "1:1", "1", (1024, 1024)),
            (512, 512, "1:1", "0.25", (512, 512)),
            (2048, 2048, "1:1", "1", (1024, 1024)),
            (1344, 768, "16:9", "1", (1344, 768)),
            (1920, 1080, "16:9", "1", (1344, 768)),
            (768, 1344, "9:16", "1", (768, 1344)),
            (1024, 768, "4:3", "1", (1152, 896)),
            (768, 1024, "3:4", "1", (896, 1152)),
            (1024, 256, "21:9", "0.25", (768, 320)),
            (2048, 256, "21:9", "1", (1536, 640)),  # 524,288 px: exactly 0.5 MP is "1"
            (256, 1024, "9:21", "0.25", (320, 768)),
            (1216, 832, "3:2", "1", (1216, 832)),
            (512, 640, "4:5", "0.25", (448, 544)),
            (724, 724, "1:1", "0.25", (512, 512)),  # 524,176 px: below 0.5 MP
            (725, 725, "1:1", "1", (1024, 1024)),  # 525,625 px: above
        ],
    )
    def test_requested_size_to_ratio_megapixels_and_pixels(
        self, width: int, height: int, ratio: str, megapixels: str, made: tuple[int, int]
    ) -> None:
        request = GenerationRequest(prompt="x", width=width, height=height)
        sent = PROVIDER.payload(request, SETTINGS)["input"]
        assert isinstance(sent, dict) and (sent["aspect_ratio"], sent["megapixels"]) == (ratio, megapixels)
        assert PROVIDER.output_size(request, SETTINGS) == made

    def test_every_listed_ratio_has_a_size(self) -> None:
        assert list(ASPECT_RATIO_SIZES) == [
            "1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21",
        ]  # fmt: skip

    def test_any_size_is_accepted_but_steps_stop_at_4(self) -> None:
        PROVIDER.validate(GenerationRequest(prompt="x", width=2000, height=300), SETTINGS)
        with pytest.raises(errors.InvalidRequest) as info:
            PROVIDER.validate(GenerationRequest(prompt="x", steps=8), SETTINGS)
        assert (info.value.provider, info.value.field) == ("replicate", "steps")
        assert str(info.value) == "Replicate cannot take these settings: steps must be 1–4."


class TestPrice:
    def test_reference_request_costs_three_tenths_of_a_cent(self) -> None:
        assert PROVIDER.estimate(GenerationRequest(prompt="x"), SETTINGS) == Decimal("0.003")

    def test_per_output_image_whatever_the_size_and_steps(self) -> None:
        request = GenerationRequest(prompt="x", width=512, height=512, steps=1, num_images=4)
        assert PROVIDER.estimate(request, SETTINGS) == Decimal("0.012")
        assert PROVIDER.price is not None and PROVIDER.price.describe() == "$0.003 per image"


class TestParse:
    def parse(self, body: Any, status: int = 201) -> ProviderOutput:
        return PROVIDER.parse(httpx.Response(status, json=body))

    def test_succeeded_with_urls(self) -> None:
        out = self.parse(
            succeeded("https://replicate.delivery/a/out-0.png", "https://replicate.delivery/a/out-1.png")
        )
        assert out == ProviderOutput(
            items=["https://replicate.delivery/a/out-0.png", "https://replicate.delivery/a/out-1.png"],
            request_id="p1",
        )

    def test_succeeded_with_data_uris(self) -> None:
        item = "data:application/octet-stream;base64,iVBORw0KGgo="
        assert self.parse(succeeded(item), 200) == ProviderOutput(items=[item], request_id="p1")

    def test_fewer_outputs_than_asked_are_passed_on(self) -> None:
        # An image flagged NSFW is dropped from `output` (docs/providers/replicate.md#response).
        body = succeeded("https://replicate.delivery/a/out-1.png")
        body["input"] = {"prompt": "x", "num_outputs": 2}
        assert self.parse(body).items == ["https://replicate.delivery/a/out-1.png"]

    def test_every_output_dropped_says_so(self) -> None:
        with pytest.raises(errors.ProviderFailed) as info:
            self.parse(succeeded())
        assert str(info.value) == (
            "Replicate: no image came back: Replicate withholds the images its safety checker flags as "
            "NSFW, and it flagged all of them. Try another prompt."
        )

    def test_failed_carries_replicates_words(self) -> None:
        body = prediction(
            "failed", error="All generated images contained NSFW content. Try running it again."
        )
        with pytest.raises(errors.ProviderFailed) as info:
            self.parse(body, 200)
        assert str(info.value) == (
            "Replicate: the job failed (All generated images contained NSFW content. Try running it again.). "
            "Try again."
        )

    def test_canceled_without_error_text(self) -> None:
        with pytest.raises(errors.ProviderFailed, match=r"the job failed \(the prediction was canceled\)"):
            self.parse(prediction("canceled"))

    @pytest.mark.parametrize("status", ["starting", "processing"])
    def test_unfinished_is_not_an_answer_to_parse(self, status: str) -> None:
        with pytest.raises(errors.MalformedResponse, match="not finished"):
            self.parse(prediction(status))

    @pytest.mark.parametrize(
        "body",
        [
            prediction("succeeded"),  # output null
            prediction("succeeded", output="https://replicate.delivery/a/out-0.png"),  # not a list
            prediction("succeeded", output=["https://replicate.delivery/a.png", None]),
            prediction("succeeded", output=[""]),
            prediction("queued"),
            {"detail": "no status"},
            [],
        ],
    )
    def test_malformed(self, body: Any) -> None:
        with pytest.raises(errors.MalformedResponse, match="^Replicate: unexpected answer"):
            self.parse(body)

    def test_not_json(self) -> None:
        with pytest.raises(errors.MalformedResponse, match="not valid JSON"):
            PROVIDER.parse(httpx.Response(201, text="<html>oops</html>"))


def refused(status: int, body: dict[str, Any], retry_after: str | None = None) -> Exception:
    """What the client makes of an error answer (problem JSON, docs/providers/replicate.md#errors)."""
    headers = {"Retry-After": retry_after} if retry_after else {}
    return PROVIDER.error_for(httpx.Response(status, json=body, headers=headers), key=KEY)


class TestErrorFor:
    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_names_the_variable(self, status: int) -> None:
        body = {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token"}
        exc = refused(status, {**body, "status": status})
        assert isinstance(exc, errors.AuthenticationFailed)
        assert str(exc) == (
            "Replicate: the API key was refused (You did not pass a valid authentication token). "
            "Check REPLICATE_API_TOKEN or the key you pasted."
        )

    def test_402_insufficient_credit(self) -> None:
        detail = (
            "You have insufficient credit to run this model. Go to https://replicate.com/account/billing"
            "#billing to purchase credit. Once you purchase credit, please wait a few minutes before "
            "trying again."
        )
        exc = refused(402, {"title": "Insufficient credit", "detail": detail, "status": 402})
        assert isinstance(exc, errors.InsufficientCredits)
        assert (
            str(exc)
            == f"Replicate: the account is out of credits ({detail}). Top up at the provider, then retry."
        )

    def test_422_names_the_invalid_field(self) -> None:
        body = {
            "detail": '- input.output_format: output_format must be one of the following: "webp", "jpg"\n',
            "status": 422,
            "title": "Input validation failed",
            "invalid_fields": [
                {
                    "type": "enum",
                    "field": "input.output_format",
                    "description": 'output_format must be one of the following: "webp", "jpg", "png"',
                }
            ],
        }
        exc = refused(422, body)
        assert isinstance(exc, errors.InputRejected)
        assert str(exc) == (
            "Replicate: the provider rejected these settings (Input validation failed: input.output_format: "
            'output_format must be one of the following: "webp", "jpg", "png").'
        )

    def test_422_lists_every_invalid_field(self) -> None:
        fields = [
            {"type": "number", "field": "input.num_inference_steps", "description": "Must be at most 4"},
            {"type": "enum", "field": "input.megapixels", "description": "Must be one of: 1, 0.25"},
        ]
        exc = refused(422, {"title": "Input validation failed", "invalid_fields": fields})
        assert str(exc) == (
            "Replicate: the provider rejected these settings (Input validation failed: "
            "input.num_inference_steps: Must be at most 4; input.megapixels: Must be one of: 1, 0.25)."
        )

    def test_422_without_invalid_fields_reads_detail(self) -> None:
        body = {"title": "Invalid version or not permitted", "detail": "The specified version does not exist"}
        exc = refused(422, {**body, "status": 422})
        assert isinstance(exc, errors.InputRejected)
        assert "(The specified version does not exist)" in str(exc)

    def test_429_with_retry_after(self) -> None:
        body = {"detail": "Request was throttled. Your rate limit resets in ~30s."}
        exc = refused(429, body, retry_after="7")
        assert isinstance(exc, errors.RateLimited) and exc.retry_after == 7.0
        assert str(exc) == (
            "Replicate: rate limited (Request was throttled. Your rate limit resets in ~30s.). "
            "Try again in 7 s."
        )

    def test_429_without_retry_after_reads_the_body(self) -> None:
        exc = refused(429, {"detail": "Request was throttled. Your rate limit resets in ~30s."})
        assert isinstance(exc, errors.RateLimited) and exc.retry_after == 30.0
        assert str(exc).endswith("Try again in 30 s.")
        numeric = refused(429, {"detail": "Request was throttled.", "retry_after": 4})
        assert isinstance(numeric, errors.RateLimited) and numeric.retry_after == 4.0

    def test_429_with_nothing_to_go_on(self) -> None:
        exc = refused(429, {"detail": "Request was throttled."})
        assert isinstance(exc, errors.RateLimited) and exc.retry_after is None
        assert str(exc).endswith("Try again in a little while.")

    @pytest.mark.parametrize("status", [500, 502])
    def test_server_errors(self, status: int) -> None:
        exc = refused(status, {"title": "Internal server error", "detail": "boom", "status": status})
        assert type(exc) is errors.ProviderFailed and f"HTTP {status}" in str(exc) and "(boom)" in str(exc)

    def test_echoed_key_is_redacted(self) -> None:
        fields = [{"type": "x", "field": "input.prompt", "description": f"token {KEY} leaked"}]
        for exc in (
            refused(401, {"detail": f"token {KEY} is not valid"}),
            refused(422, {"title": "Input validation failed", "invalid_fields": fields}),
        ):
            assert KEY not in str(exc) and "[redacted]" in str(exc)


async def no_sleep(seconds: float) -> None:
    return None


Reply = tuple[int, Any]


async def run_replicate(
    replies: list[Reply], *, settings: Settings = SETTINGS, request: GenerationRequest | None = None
) -> tuple[list[httpx.Request], ProviderOutput | Exception]:
    """Answer the POST with the first reply, each GET with the next (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        status, body = replies.pop(0) if len(replies) > 1 else replies[0]
        return httpx.Response(status, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        ctx = CallContext(client=client, settings=settings, key=KEY, sleep=no_sleep)
        call = PROVIDER.build_call(request or GenerationRequest(prompt="a red fox", seed=42), KEY, settings)
        try:
            return seen, await PROVIDER.run(ctx, call)
        except Exception as exc:  # the error is the result under test
            return seen, exc


class TestRun:
    async def test_finished_within_the_wait_needs_no_poll(self) -> None:
        seen, out = await run_replicate([(201, succeeded("https://replicate.delivery/a/out-0.png"))])
        assert out == ProviderOutput(items=["https://replicate.delivery/a/out-0.png"], request_id="p1")
        assert [(r.method, str(r.url)) for r in seen] == [("POST", CREATE_URL)]
        assert seen[0].headers["prefer"] == "wait=15" and seen[0].headers["authorization"] == f"Bearer {KEY}"
        assert json.loads(seen[0].content) == PROVIDER.payload(
            GenerationRequest(prompt="a red fox", seed=42), SETTINGS
        )

    async def test_unfinished_after_the_wait_is_polled_at_urls_get(self) -> None:
        replies = [
            (201, prediction("processing")),
            (200, prediction("processing")),
            (200, succeeded("https://replicate.delivery/a/out-0.png")),
        ]
        seen, out = await run_replicate(replies)
        assert isinstance(out, ProviderOutput) and out.items == ["https://replicate.delivery/a/out-0.png"]
        assert out.job_s is not None
        assert [(r.method, str(r.url)) for r in seen] == [
            ("POST", CREATE_URL),
            ("GET", POLL_URL),
            ("GET", POLL_URL),
        ]
        assert [r.headers["authorization"] for r in seen] == [f"Bearer {KEY}"] * 3

    async def test_async_answer_starting(self) -> None:
        settings = SETTINGS.model_copy(update={"request_timeout": 1.0})
        seen, out = await run_replicate(
            [(201, prediction("starting")), (200, succeeded("https://replicate.delivery/a/out-0.png"))],
            settings=settings,
        )
        assert isinstance(out, ProviderOutput) and "prefer" not in seen[0].headers
        assert [r.method for r in seen] == ["POST", "GET"]

    async def test_a_poll_url_on_another_origin_gets_no_request(self) -> None:
        elsewhere = prediction("processing", urls={"get": "https://evil.test/v1/predictions/p1"})
        seen, error = await run_replicate([(201, elsewhere)])
        assert isinstance(error, errors.MalformedResponse)
        assert "not on the provider's configured origin" in str(error)
        assert [str(r.url) for r in seen] == [CREATE_URL]

    async def test_an_unfinished_prediction_without_urls_get(self) -> None:
        seen, error = await run_replicate([(201, prediction("processing", urls={}))])
        assert isinstance(error, errors.MalformedResponse) and "no urls.get" in str(error)
        assert len(seen) == 1

    async def test_failed_inline(self) -> None:
        seen, error = await run_replicate([(201, prediction("failed", error="CUDA out of memory"))])
        assert isinstance(error, errors.ProviderFailed)
        assert str(error) == "Replicate: the job failed (CUDA out of memory). Try again."
        assert len(seen) == 1

    async def test_failed_while_polled(self) -> None:
        replies = [(201, prediction("starting")), (200, prediction("failed", error="NSFW content detected"))]
        seen, error = await run_replicate(replies)
        assert isinstance(error, errors.ProviderFailed) and "(NSFW content detected)" in str(error)
        assert [r.method for r in seen] == ["POST", "GET"]

    async def test_never_finishing_times_out_after_one_post(self) -> None:
        settings = SETTINGS.model_copy(update={"job_timeout": 0.05})
        seen, error = await run_replicate([(201, prediction("processing"))], settings=settings)
        assert isinstance(error, errors.ProviderTimeout) and "the job p1 did not finish within 0.05 s" in str(
            error
        )
        assert [r.method for r in seen].count("POST") == 1

    async def test_polls_are_retried_but_the_post_never(self) -> None:
        replies = [
            (201, prediction("processing")),
            (503, {"title": "Service unavailable", "detail": "busy"}),
            (200, succeeded("https://replicate.delivery/a/out-0.png")),
        ]
        seen, out = await run_replicate(replies)
        assert isinstance(out, ProviderOutput)
        assert [r.method for r in seen] == ["POST", "GET", "GET"]

    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (500, errors.ProviderFailed),
            (429, errors.RateLimited),
            (402, errors.InsufficientCredits),
            (401, errors.AuthenticationFailed),
        ],
    )
    async def test_a_refused_post_is_never_retried(self, status: int, kind: type[Exception]) -> None:
        seen, error = await run_replicate([(status, {"title": "no", "detail": "no", "status": status})])
        assert isinstance(error, kind) and [r.method for r in seen] == ["POST"]


def test_registered() -> None:
    assert isinstance(PROVIDERS["replicate"], Replicate)
    assert PROVIDERS["replicate"].base_url_env() == "REPLICATE_BASE_URL"


class TestAgainstTheEmulator:
    """Our client and the emulator written from the docs page agree on every documented variant."""

    async def generate(self, emulator: Any, prompt: str, **fields: Any) -> Any:
        emulator.reset()
        settings = point_at(
            Settings(_env_file=None, request_timeout=4, job_timeout=5), emulator.base_urls, KEY
        )
        async with Playground(settings) as playground:
            return await playground.generate(GenerationRequest(prompt=prompt, seed=3, **fields), "replicate")

    async def test_data_uri_outputs(self, emulator: Any) -> None:
        result = await self.generate(emulator, "a fox [variant:datauri]", width=512, height=512)
        assert [(image.width, image.height) for image in result.images] == [(512, 512)]
        assert emulator.stats()["requests"]["replicate"].get("download", 0) == 0

    @pytest.mark.slow  # a process of its own, or real seconds of waiting
    async def test_a_job_longer_than_the_wait_is_polled(self, emulator: Any) -> None:
        result = await self.generate(emulator, "a fox [latency:2.5]", width=1024, height=576)
        assert [(image.width, image.height) for image in result.images] == [(1344, 768)]
        counts = emulator.stats()["requests"]["replicate"]
        assert counts["submit"] == 1 and counts["poll"] >= 1

    async def test_an_image_dropped_as_nsfw(self, emulator: Any) -> None:
        result = await self.generate(emulator, "a fox [variant:nsfw_first]", num_images=3)
        assert len(result.images) == 2

    async def test_every_image_dropped_as_nsfw(self, emulator: Any) -> None:
        with pytest.raises(errors.ProviderFailed, match="All generated images contained NSFW content"):
            await self.generate(emulator, "a fox [variant:nsfw_all]", num_images=2)
        assert emulator.stats()["requests"]["replicate"]["submit"] == 1

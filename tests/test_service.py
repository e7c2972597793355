"""Playground end to end through one MockTransport that speaks all three providers' APIs."""

from __future__ import annotations

import base64
import io
import json
import os
from decimal import Decimal
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from flux_playground.errors import (
    AuthenticationFailed,
    InvalidRequest,
    MalformedResponse,
    MissingKey,
    ProviderFailed,
)
from flux_playground.images import read_png_text
from flux_playground.models import MAX_SEED, GenerationRequest
from flux_playground.providers import PROVIDERS
from flux_playground.runs import Outcome, ProgressEvent
from flux_playground.service import Playground
from flux_playground.settings import Settings

KEYS = {
    "atlascloud": "srv-atlas-key-AAA",
    "segmind": "srv-segmind-key-SSS",
    "deepinfra": "srv-deepinfra-key-DDD",
}
ALL = ["atlascloud", "deepinfra", "segmind"]


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, format=fmt)
    return out.getvalue()


PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")


HOSTS = {
    "atlascloud": "https://atlas.test",
    "segmind": "https://segmind.test",
    "deepinfra": "https://deepinfra.test",
}


def make_settings(keys: dict[str, str | None] | None = None, **overrides: Any) -> Settings:
    """Every provider at its fake host with KEYS; `keys` replaces some (None: no server key)."""
    chosen = {**KEYS, **(keys or {})}
    providers = {name: {"api_key": chosen[name], "base_url": url} for name, url in HOSTS.items()}
    values: dict[str, Any] = {"request_timeout": 5.0, "job_timeout": 5.0, "download_timeout": 5.0}
    return Settings(_env_file=None, providers=providers, **{**values, **overrides})


class FakeProviders:
    """Each provider's documented happy path, keyed by host. `override[provider]` replaces its answer."""

    HOSTS = {"atlas.test": "atlascloud", "segmind.test": "segmind", "deepinfra.test": "deepinfra"}

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.override: dict[str, httpx.Response] = {}
        self.atlas_output = "https://atlas.test/media/p1.png"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        provider = self.HOSTS.get(request.url.host)
        if provider is None:
            raise AssertionError(f"unexpected request to {request.url}")
        if provider in self.override and request.method == "POST":
            return self.override[provider]
        if provider == "segmind":
            return httpx.Response(
                200, content=JPEG, headers={"content-type": "image/jpeg", "x-remaining-credits": "9.5"}
            )
        if provider == "deepinfra":
            seed = json.loads(request.content)["seed"]
            data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
            return httpx.Response(
                200,
                json={
                    "images": [data_uri],
                    "seed": seed,
                    "request_id": "di-1",
                    "inference_status": {"status": "succeeded", "cost": 0.002},
                },
            )
        if request.method == "POST":
            return httpx.Response(200, json={"code": 200, "data": {"id": "p1", "status": "starting"}})
        if request.url.path == "/api/v1/model/prediction/p1":
            return httpx.Response(
                200,
                json={
                    "code": 200,
                    "data": {
                        "id": "p1",
                        "status": "completed",
                        "outputs": [self.atlas_output],
                    },
                },
            )
        if request.url.path == "/media/p1.png":
            return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
        return httpx.Response(404)

    def posts(self, provider: str | None = None) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == "POST" and (provider is None or self.HOSTS[r.url.host] == provider)
        ]

    def sent_payload(self, provider: str) -> dict[str, Any]:
        (post,) = self.posts(provider)
        return json.loads(post.content)  # type: ignore[no-any-return]


@pytest.fixture
def fake() -> FakeProviders:
    return FakeProviders()


@pytest.fixture
async def playground(fake: FakeProviders) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        yield Playground(make_settings(), client)


async def collect(
    playground: Playground, request: GenerationRequest, names: list[str], **kwargs: Any
) -> dict[str, Outcome]:
    return {outcome.provider: outcome async for outcome in playground.generate_many(request, names, **kwargs)}


class TestGenerate:
    async def test_segmind(self, playground: Playground, fake: FakeProviders) -> None:
        result = await playground.generate(GenerationRequest(prompt="a red fox"), "segmind")
        seed = result.request.seed
        assert isinstance(seed, int) and 0 <= seed <= MAX_SEED
        expected_payload = {
            "prompt": "a red fox",
            "steps": 4,
            "seed": seed,
            "samples": 1,
            "width": 1024,
            "height": 1024,
        }
        assert result.payload == expected_payload == fake.sent_payload("segmind")
        assert (result.provider, result.provider_label) == ("segmind", "Segmind")
        assert result.remaining_credits == "9.5"
        assert (result.estimated_cost_usd, result.reported_cost_usd) == (Decimal("0.008"), None)
        (image,) = result.images
        assert (image.width, image.height, image.seed) == (64, 48, seed)
        with Image.open(io.BytesIO(image.png)) as png:
            assert png.format == "PNG"

    async def test_deepinfra(self, playground: Playground, fake: FakeProviders) -> None:
        result = await playground.generate(GenerationRequest(prompt="a red fox", seed=1234), "deepinfra")
        assert fake.sent_payload("deepinfra") == {
            "prompt": "a red fox",
            "num_images": 1,
            "num_inference_steps": 4,
            "width": 1024,
            "height": 1024,
            "seed": 1234,
        }
        assert result.request.seed == 1234
        assert result.images[0].seed == 1234
        assert result.reported_cost_usd == Decimal("0.002")
        assert result.provider_request_id == "di-1"
        assert result.images[0].png.startswith(b"\x89PNG") and result.images[0].png != PNG

    async def test_atlascloud_polls_then_downloads_from_its_own_origin(
        self, playground: Playground, fake: FakeProviders
    ) -> None:
        result = await playground.generate(GenerationRequest(prompt="a red fox"), "atlascloud")
        assert [(r.method, r.url.path) for r in fake.requests] == [
            ("POST", "/api/v1/model/generateImage"),
            ("GET", "/api/v1/model/prediction/p1"),
            ("GET", "/media/p1.png"),
        ]
        assert fake.sent_payload("atlascloud") == {
            "prompt": "a red fox",
            "size": "1024*1024",
            "seed": result.request.seed,
            "num_images": 1,
            "model": "black-forest-labs/flux-schnell",
        }
        assert result.provider_request_id == "p1"
        assert result.estimated_cost_usd == Decimal("0.003")
        assert result.images[0].seed == result.request.seed

    async def test_atlas_output_on_a_private_address_is_not_fetched(
        self, playground: Playground, fake: FakeProviders
    ) -> None:
        fake.atlas_output = "http://169.254.169.254/latest/meta-data/"
        with pytest.raises(MalformedResponse, match="the image was not downloaded"):
            await playground.generate(GenerationRequest(prompt="x"), "atlascloud")
        assert all(r.url.host == "atlas.test" for r in fake.requests)

    async def test_output_that_is_not_an_image(self, playground: Playground, fake: FakeProviders) -> None:
        fake.override["segmind"] = httpx.Response(
            200, content=b"<html>oops</html>", headers={"content-type": "image/jpeg"}
        )
        with pytest.raises(
            MalformedResponse, match="Segmind: the provider sent something that is not an image"
        ):
            await playground.generate(GenerationRequest(prompt="x"), "segmind")

    async def test_progress_stages(self, playground: Playground) -> None:
        events: list[ProgressEvent] = []
        await playground.call(GenerationRequest(prompt="x"), "segmind", on_progress=events.append)
        assert [(e.provider, e.stage) for e in events] == [
            ("segmind", "submitting"),
            ("segmind", "generating"),
            ("segmind", "downloading"),
            ("segmind", "saving"),
            ("segmind", "done"),
        ]

    async def test_invalid_request_is_refused_before_any_call(
        self, playground: Playground, fake: FakeProviders
    ) -> None:
        with pytest.raises(InvalidRequest, match="Segmind cannot take these settings: steps must be 1–8"):
            await playground.generate(GenerationRequest(prompt="x", steps=9), "segmind")
        assert fake.requests == []

    async def test_unknown_provider(self, playground: Playground) -> None:
        with pytest.raises(
            InvalidRequest, match=f"Unknown provider 'nope'. Choose from: {', '.join(PROVIDERS)}"
        ):
            await playground.generate(GenerationRequest(prompt="x"), "nope")

    async def test_seed_not_sent_is_not_reported(self, fake: FakeProviders) -> None:
        fake.override["deepinfra"] = httpx.Response(
            200,
            json={
                "created": 1,
                "data": [{"b64_json": base64.b64encode(PNG).decode()}],
            },
        )
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
            playground = Playground(
                make_settings().with_provider("deepinfra", options={"endpoint": "openai"}), client
            )
            result = await playground.generate(GenerationRequest(prompt="x", seed=5), "deepinfra")
        assert "seed" not in fake.sent_payload("deepinfra")
        assert result.images[0].seed is None
        assert "Seed:" not in read_png_text(result.images[0].png)["parameters"]


class TestKeys:
    async def test_missing_server_key_names_the_env_var(self, fake: FakeProviders) -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
            playground = Playground(make_settings({"segmind": None, "deepinfra": "  "}), client)
            with pytest.raises(MissingKey, match="No API key for Segmind: set SEGMIND_API_KEY") as info:
                await playground.generate(GenerationRequest(prompt="x"), "segmind")
            assert info.value.env_vars == ("SEGMIND_API_KEY",)
            with pytest.raises(MissingKey, match="set DEEPINFRA_API_KEY or DEEPINFRA_TOKEN"):
                await playground.generate(GenerationRequest(prompt="x"), "deepinfra")
        assert fake.requests == []

    async def test_missing_key_does_not_block_other_providers(self, fake: FakeProviders) -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
            playground = Playground(make_settings({"segmind": None}), client)
            outcomes = await collect(playground, GenerationRequest(prompt="x"), ALL)
        assert isinstance(outcomes["segmind"].error, MissingKey)
        assert outcomes["atlascloud"].result is not None and outcomes["deepinfra"].result is not None

    async def test_user_key_overrides_server_key(self, playground: Playground, fake: FakeProviders) -> None:
        await playground.generate(
            GenerationRequest(prompt="x"), "segmind", api_key=SecretStr("  user-sg-key ")
        )
        await playground.generate(
            GenerationRequest(prompt="x"), "atlascloud", api_key=SecretStr("user-atlas-key")
        )
        assert fake.posts("segmind")[0].headers["x-api-key"] == "user-sg-key"
        atlas_api = [r for r in fake.requests if r.url.path.startswith("/api/")]
        assert [r.headers["authorization"] for r in atlas_api] == ["Bearer user-atlas-key"] * 2
        assert not any(
            KEYS["segmind"] in str(r.headers) or KEYS["atlascloud"] in str(r.headers) for r in fake.requests
        )

    async def test_user_key_without_server_key(self, fake: FakeProviders) -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
            playground = Playground(make_settings({"deepinfra": None}), client)
            await playground.generate(GenerationRequest(prompt="x"), "deepinfra", api_key=SecretStr("mine"))
        assert fake.posts("deepinfra")[0].headers["authorization"] == "Bearer mine"

    async def test_user_keys_in_generate_many(self, playground: Playground, fake: FakeProviders) -> None:
        await collect(
            playground,
            GenerationRequest(prompt="x"),
            ["segmind", "deepinfra"],
            api_keys={"segmind": SecretStr("user-sg"), "deepinfra": None},
        )
        assert fake.posts("segmind")[0].headers["x-api-key"] == "user-sg"
        assert fake.posts("deepinfra")[0].headers["authorization"] == f"Bearer {KEYS['deepinfra']}"

    async def test_echoed_user_key_is_not_in_the_error(
        self, playground: Playground, fake: FakeProviders
    ) -> None:
        fake.override["segmind"] = httpx.Response(401, json={"error": "key user-sg-key is invalid"})
        with pytest.raises(AuthenticationFailed) as info:
            await playground.generate(
                GenerationRequest(prompt="x"), "segmind", api_key=SecretStr("user-sg-key")
            )
        assert "user-sg-key" not in str(info.value)
        assert "SEGMIND_API_KEY" in str(info.value)


class TestGenerateMany:
    async def test_same_seed_to_every_provider(self, playground: Playground, fake: FakeProviders) -> None:
        outcomes = await collect(playground, GenerationRequest(prompt="a red fox"), ALL)
        assert set(outcomes) == set(ALL)
        seeds = {name: fake.sent_payload(name)["seed"] for name in ALL}
        (seed,) = set(seeds.values())
        assert isinstance(seed, int) and 0 <= seed <= MAX_SEED
        for outcome in outcomes.values():
            assert outcome.error is None and outcome.result is not None
            assert outcome.result.request.seed == seed
            assert [image.seed for image in outcome.result.images] == [seed]

    async def test_explicit_seed_is_kept(self, playground: Playground, fake: FakeProviders) -> None:
        await collect(playground, GenerationRequest(prompt="x", seed=7), ALL)
        assert {fake.sent_payload(name)["seed"] for name in ALL} == {7}

    async def test_duplicates_are_run_once(self, playground: Playground, fake: FakeProviders) -> None:
        outcomes = [o async for o in playground.generate_many(GenerationRequest(prompt="x"), ["segmind"] * 3)]
        assert len(outcomes) == 1 and len(fake.posts("segmind")) == 1

    async def test_one_failure_does_not_hide_the_others(
        self, playground: Playground, fake: FakeProviders
    ) -> None:
        fake.override["segmind"] = httpx.Response(500, json={"error": "GPU on fire"})
        snapshots = [snap async for snap in playground.run(GenerationRequest(prompt="x"), ALL)]
        failed = snapshots[-1].slots["segmind"]
        assert failed.result is None and isinstance(failed.failure, ProviderFailed)
        assert failed.stage == "failed" and "GPU on fire" in str(failed.error)
        assert all(snapshots[-1].slots[name].result is not None for name in ("atlascloud", "deepinfra"))
        assert len(fake.posts("segmind")) == 1

    async def test_invalid_for_one_provider_only(self, playground: Playground, fake: FakeProviders) -> None:
        outcomes = await collect(playground, GenerationRequest(prompt="x", steps=12), ALL)
        assert isinstance(outcomes["segmind"].error, InvalidRequest)
        assert outcomes["deepinfra"].result is not None and outcomes["atlascloud"].result is not None
        assert fake.posts("segmind") == []


class TestProvenance:
    @pytest.mark.parametrize("provider", ALL)
    async def test_png_metadata_has_prompt_and_provider_never_the_key(
        self, provider: str, playground: Playground
    ) -> None:
        prompt = "🦊 a fox, in the snow: 雪"
        user_key = "user-key-should-never-appear"
        result = await playground.generate(
            GenerationRequest(prompt=prompt), provider, api_key=SecretStr(user_key)
        )
        png = result.images[0].png
        text = read_png_text(png)
        assert set(text) == {"parameters", "flux_playground"}
        assert text["parameters"].startswith(prompt + "\n")
        assert f"Provider: {result.provider_label}" in text["parameters"]
        assert f"Seed: {result.images[0].seed}" in text["parameters"]
        provenance = json.loads(text["flux_playground"])
        assert provenance["provider"] == provider
        assert provenance["request"]["prompt"] == prompt
        assert provenance["payload"] == result.payload
        for secret in (user_key, *KEYS.values()):
            assert secret.encode() not in png
            assert secret not in json.dumps(text)
            assert secret not in repr(result) and secret not in str(result.model_dump(exclude={"images"}))

"""The generic OpenAI-style images client: its field styles, its parser, and the endpoints an app's
owner configures in FLUX_PLAYGROUND_OPENAI_PROVIDERS (checked, registered, sending the key nowhere else)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from flux_playground.errors import ConfigurationError, MalformedResponse
from flux_playground.models import Capabilities, GenerationRequest
from flux_playground.providers import PROVIDERS, CallContext, ProviderOutput
from flux_playground.providers.openai_images import ImagesStyle, OpenAIImages, owner_providers, read_images
from flux_playground.settings import Settings

REQUEST = GenerationRequest(prompt="a fox", width=768, height=512, steps=3, seed=9, num_images=2)
LIMITS = Capabilities(min_size=256, max_size=2048, size_multiple=8, min_steps=1, max_steps=50, max_images=4)
NSCALE = {
    "id": "nscale",
    "label": "Nscale",
    "base_url": "https://inference.api.nscale.com",
    "model": "black-forest-labs/FLUX.1-schnell",
    "key_env": "NSCALE_API_KEY",
}
MY_FLUX = {
    "id": "my-flux",
    "label": "My FLUX server",
    "base_url": "http://10.0.0.5:8000/flux/",
    "model": "flux-schnell",
    "key_env": ["MY_FLUX_API_KEY", "MY_FLUX_TOKEN"],
    "size_style": "width_height",
    "steps_field": "num_inference_steps",
    "seed_field": "seed",
    "response_format": "base64",
    "route": "/v1/images/generations",
    "extra": {"response_extension": "png"},
    "price": {"basis": "per_image", "usd": "0.0005"},
    "min_size": 512,
    "max_size": 1536,
    "size_multiple": 16,
    "max_images": 4,
    "docs_url": "https://flux.example/docs",
}

#: MY_FLUX's whole body for REQUEST: constant fields first, the model last.
MY_FLUX_BODY = {
    "response_extension": "png",
    "prompt": "a fox",
    "n": 2,
    "width": 768,
    "height": 512,
    "num_inference_steps": 3,
    "seed": 9,
    "response_format": "base64",
    "model": "flux-schnell",
}


def configured(*entries: Any) -> list[OpenAIImages]:
    return owner_providers(PROVIDERS, json.dumps(list(entries)))


class TestStyle:
    def test_openai_size_without_steps_or_seed(self) -> None:
        style = ImagesStyle()
        assert style.payload(REQUEST, "m") == {
            "prompt": "a fox",
            "n": 2,
            "size": "768x512",
            "response_format": "b64_json",
            "model": "m",
        }
        caps = style.capabilities(LIMITS)
        assert (caps.steps, caps.seed) == (False, False)
        assert caps.model_dump(exclude={"steps", "seed"}) == LIMITS.model_dump(exclude={"steps", "seed"})

    def test_width_height_steps_seed_and_constant_fields(self) -> None:
        style = ImagesStyle.model_validate({name: MY_FLUX[name] for name in ImagesStyle.model_fields})
        body = style.payload(REQUEST, "flux-schnell")
        assert body == MY_FLUX_BODY
        assert list(body)[-1] == "model"
        assert (style.capabilities(LIMITS).steps, style.capabilities(LIMITS).seed) == (True, True)

    def test_an_unresolved_seed_is_left_out(self) -> None:
        body = ImagesStyle(seed_field="seed").payload(GenerationRequest(prompt="x"), "m")
        assert "seed" not in body

    @pytest.mark.parametrize(
        "fields",
        [
            {"extra": {"model": "other"}},
            {"extra": {"steps": 50}, "steps_field": "steps"},
            {"steps_field": "steps; drop"},
            {"size_style": "wxh"},
            {"response_format": "url"},
            {"route": "v1/images"},
        ],
    )
    def test_a_style_cannot_be_nonsense(self, fields: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            ImagesStyle.model_validate(fields)


class TestReadImages:
    provider = PROVIDERS["together"]

    def test_b64_json_url_and_nulls(self) -> None:
        body = {
            "created": 1,
            "data": [{"b64_json": None, "url": "https://x.test/a.png"}, {"b64_json": "AAAA"}],
        }
        assert read_images(self.provider, body) == ProviderOutput(items=["https://x.test/a.png", "AAAA"])

    @pytest.mark.parametrize("body", [{}, {"data": None}, {"data": [1, "x"]}, {"data": [{"url": ""}]}])
    def test_no_image_is_malformed(self, body: dict[str, Any]) -> None:
        with pytest.raises(MalformedResponse, match="no b64_json or url image"):
            read_images(self.provider, body)


class TestOwnerEndpoints:
    def test_nothing_configured(self) -> None:
        assert owner_providers(PROVIDERS, "") == [] and owner_providers(PROVIDERS, "  ") == []

    def test_the_smallest_entry_is_an_openai_endpoint_with_an_unknown_price(self) -> None:
        (nscale,) = configured(NSCALE)
        assert (nscale.name, nscale.label, nscale.model_id) == ("nscale", "Nscale", NSCALE["model"])
        assert (nscale.key_env, nscale.base_url_env()) == (("NSCALE_API_KEY",), "NSCALE_BASE_URL")
        assert (nscale.docs_url, nscale.price) == ("https://inference.api.nscale.com", None)
        settings = Settings(_env_file=None)
        call = nscale.build_call(REQUEST, "ns-key", settings)
        assert call.url == "https://inference.api.nscale.com/v1/images/generations"
        assert call.headers == {"Content-Type": "application/json", "Authorization": "Bearer ns-key"}
        assert call.json == {
            "prompt": "a fox",
            "n": 2,
            "size": "768x512",
            "response_format": "b64_json",
            "model": "black-forest-labs/FLUX.1-schnell",
        }
        caps = nscale.get_capabilities(settings)
        assert (caps.steps, caps.seed, caps.max_images) == (False, False, 1)
        assert nscale.estimate(REQUEST, settings) is None  # unknown, never $0

    def test_every_field(self) -> None:
        (mine,) = configured(MY_FLUX)
        assert (
            mine.key_env == ("MY_FLUX_API_KEY", "MY_FLUX_TOKEN") and mine.base_url_env() == "MY_FLUX_BASE_URL"
        )
        settings = Settings(_env_file=None)
        call = mine.build_call(REQUEST, "k", settings)
        assert call.url == "http://10.0.0.5:8000/flux/v1/images/generations"
        assert call.json == MY_FLUX_BODY
        assert mine.get_capabilities(settings) == Capabilities(
            min_size=512, max_size=1536, size_multiple=16, min_steps=1, max_steps=50, max_images=4
        )
        assert mine.estimate(REQUEST, settings) == Decimal("0.001")
        rule = mine.price_rule(settings)
        assert rule is not None and rule.source == "set by the app's owner"
        assert mine.docs_url == "https://flux.example/docs"

    def test_its_origin_can_be_overridden_like_any_provider(self) -> None:
        (nscale,) = configured(NSCALE)
        settings = Settings(_env_file=None).with_provider(
            "nscale", base_url="https://router.huggingface.co/nscale"
        )
        assert nscale.build_call(REQUEST, "k", settings).url == (
            "https://router.huggingface.co/nscale/v1/images/generations"
        )

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("[{", "is not valid JSON (Expecting property name enclosed in double quotes at character 2)"),
            ('{"id": "nscale"}', 'must be a JSON list of endpoints, e.g. [{"id": "nscale", ...}]'),
            (json.dumps([{**NSCALE, "model": None}]), 'entry 1 ("nscale"): model must be a valid string'),
            (json.dumps([{k: v for k, v in NSCALE.items() if k != "model"}]), "model is missing"),
            (
                json.dumps([{**NSCALE, "id": "My Server"}]),
                "id must be lower-case letters, digits and hyphens",
            ),
            (json.dumps([{**NSCALE, "id": "together"}]), 'id "together" is already a provider'),
            (json.dumps([NSCALE, NSCALE]), 'entry 2: id "nscale" is already a provider'),
            (json.dumps([{**NSCALE, "base_url": "ftp://x.test"}]), "base_url must start with https://"),
            (json.dumps([{**NSCALE, "base_url": "https://u:p@x.test"}]), "without credentials"),
            (json.dumps([{**NSCALE, "key_env": "TOGETHER_API_KEY"}]), "key_env TOGETHER_API_KEY is read by"),
            (json.dumps([{**NSCALE, "key_env": "DEEPINFRA_BASE_URL"}]), "is read by DeepInfra"),
            (json.dumps([{**NSCALE, "key_env": "nscale key"}]), "key_env must be one or more variable names"),
            (
                json.dumps([{**NSCALE, "key_env": "FLUX_PLAYGROUND_PRICES"}]),
                "key_env must not be one of the app",
            ),
            (json.dumps([{**NSCALE, "id": "-x"}]), "id must be lower-case letters"),
            (json.dumps([{**NSCALE, "docs_url": "javascript:x"}]), "docs_url must start with https://"),
            (json.dumps([1]), "entry 1: must be a JSON object with id, label, base_url, model and key_env"),
            (json.dumps([{**NSCALE, "sizes": "any"}]), "sizes is not a known field (check the spelling)"),
            (json.dumps([{**NSCALE, "price": {"basis": "per_image"}}]), 'price needs "usd"'),
            (json.dumps([{**NSCALE, "price": {"basis": "per_pixel", "usd": "1"}}]), "price.basis must be"),
            (json.dumps([{**NSCALE, "response_format": "url"}]), "response_format must be 'b64_json' or"),
            (json.dumps([{**NSCALE, "extra": {"prompt": "x"}}]), "extra may not set prompt"),
        ],
    )
    def test_a_mistake_is_one_sentence_naming_the_variable(self, text: str, expected: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            owner_providers(PROVIDERS, text)
        message = str(info.value)
        assert message.startswith("FLUX_PLAYGROUND_OPENAI_PROVIDERS") and expected in message, message
        assert message.endswith("; fix it in the environment or the .env file.") and "\n" not in message

    def test_it_is_read_from_the_environment_before_the_env_file(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / ".env").write_text(f"FLUX_PLAYGROUND_OPENAI_PROVIDERS='{json.dumps([NSCALE])}'\n")
        assert [p.name for p in owner_providers(PROVIDERS)] == ["nscale"]
        monkeypatch.setenv("FLUX_PLAYGROUND_OPENAI_PROVIDERS", json.dumps([MY_FLUX]))
        assert [p.name for p in owner_providers(PROVIDERS)] == ["my-flux"]


async def test_the_key_goes_to_the_configured_origin_only() -> None:
    (mine,) = configured(MY_FLUX)
    settings = Settings(_env_file=None, providers={"my-flux": {"api_key": "mine-secret"}})
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"created": 1, "data": [{"b64_json": "AAAA"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        key = mine.resolve_key(settings)
        call = mine.build_call(REQUEST, key, settings)
        out = await mine.run(CallContext(client=client, settings=settings, key=key), call)
    assert out.items == ["AAAA"]
    (sent,) = seen
    assert str(sent.url) == "http://10.0.0.5:8000/flux/v1/images/generations"
    assert sent.headers["authorization"] == "Bearer mine-secret"
    assert "mine-secret" not in repr(call) + json.dumps(call.json)
    assert mine.own_url("http://10.0.0.5:8000/elsewhere", settings)
    assert not mine.own_url("https://cdn.example/a.png", settings)

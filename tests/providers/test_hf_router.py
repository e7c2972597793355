"""Hugging Face's router: the same provider call at the router with a Hugging Face token (whole calls
with ==), Hugging Face's own errors in words, the token only ever sent to the router's origin, the
choice of route, readiness, the owner's caps, and where the command line finds a token.

No network: MockTransport, or the emulator's router (tests/emulator/test_hf_router.py, and the
launched app in tests/test_hf_router_app.py).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from flux_playground.errors import (
    AuthenticationFailed,
    InputRejected,
    InsufficientCredits,
    InvalidRequest,
    LimitExceeded,
    MalformedResponse,
    MissingKey,
    ProviderFailed,
    RateLimited,
)
from flux_playground.hf_router import (
    account_providers,
    check_token,
    local_token,
    provider_for,
    routes_for,
    through_router,
)
from flux_playground.limits import Guard
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS, ProviderCall, hf_routed
from flux_playground.quotes import describe_providers, quote
from flux_playground.runs import charges_for
from flux_playground.service import Playground
from flux_playground.settings import Settings

TOKEN = "hf_secretToken123"
ROUTER = "https://router.test"
# Direct keys at origins of their own, so a request that reached a provider directly would show.
DIRECT = {
    "together": {"api_key": "tgp-direct-key", "base_url": "https://together.test"},
    "fal": {"api_key": "fal-direct-key", "base_url": "https://fal.test"},
    "replicate": {"api_key": "r8-direct-key", "base_url": "https://replicate.test"},
}


def make_settings(**values: Any) -> Settings:
    return Settings(_env_file=None, hf_router_base_url=ROUTER, request_timeout=5.0, job_timeout=5.0, **values)


SETTINGS = make_settings()
REQUEST = GenerationRequest(prompt="a lighthouse", width=1024, height=768, steps=3, seed=77)
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


def routed_call(name: str, settings: Settings = SETTINGS) -> ProviderCall:
    return through_router(PROVIDERS[name]).build_call(REQUEST, TOKEN, settings)


class TestTheRoutedCall:
    """docs/providers/hf-router.md#endpoint-and-auth: origin + prefix + the provider's own path, a
    Bearer hf_ token, the provider's own body (and its own headers, e.g. Replicate's Prefer)."""

    def test_together(self) -> None:
        direct = PROVIDERS["together"].build_call(REQUEST, "k", SETTINGS)
        assert routed_call("together") == ProviderCall(
            "POST",
            "https://router.test/together/v1/images/generations",
            {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            direct.json,
        )
        assert direct.json == {
            "prompt": "a lighthouse", "n": 1, "width": 1024, "height": 768, "steps": 3, "seed": 77,
            "response_format": "base64", "model": "black-forest-labs/FLUX.1-schnell",
        }  # fmt: skip

    def test_fal_gets_a_bearer_token_not_its_key_scheme(self) -> None:
        direct = PROVIDERS["fal"].build_call(REQUEST, "k", SETTINGS)
        assert direct.headers["Authorization"] == "Key k"
        assert routed_call("fal") == ProviderCall(
            "POST",
            "https://router.test/fal-ai/fal-ai/flux/schnell",
            {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            direct.json,
        )

    def test_replicate_keeps_prefer_wait(self) -> None:
        direct = PROVIDERS["replicate"].build_call(REQUEST, "k", SETTINGS)
        assert routed_call("replicate") == ProviderCall(
            "POST",
            "https://router.test/replicate/v1/models/black-forest-labs/flux-schnell/predictions",
            {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}", "Prefer": "wait=2"},
            direct.json,
        )

    def test_the_default_router_and_labels(self) -> None:
        call = through_router(PROVIDERS["together"]).build_call(REQUEST, TOKEN, Settings(_env_file=None))
        assert call.url == "https://router.huggingface.co/together/v1/images/generations"
        labels = {name: provider_for(name, "hf").label for name in hf_routed()}
        assert labels == {
            "fal": "fal.ai via Hugging Face",
            "replicate": "Replicate via Hugging Face",
            "together": "Together AI via Hugging Face",
        }
        assert provider_for("together", "direct") is PROVIDERS["together"]

    def test_price_and_capabilities_are_the_providers(self) -> None:
        for name in hf_routed():
            routed, own = through_router(PROVIDERS[name]), PROVIDERS[name]
            assert routed.name == name
            assert routed.estimate(REQUEST, SETTINGS) == own.estimate(REQUEST, SETTINGS) is not None
            assert routed.get_capabilities(SETTINGS) == own.get_capabilities(SETTINGS)

    def test_only_declared_providers_are_routed(self) -> None:
        assert hf_routed() == ["fal", "replicate", "together"]
        with pytest.raises(InvalidRequest) as info:
            through_router(PROVIDERS["segmind"])
        assert info.value.message == (
            "Hugging Face does not route Segmind: run it with its own key instead. "
            "Through Hugging Face: fal.ai, Replicate, Together AI."
        )

    def test_the_token_goes_to_the_routers_origin_only(self) -> None:
        routed = through_router(PROVIDERS["replicate"])
        assert routed.own_url("https://router.test/replicate/v1/predictions/p1", SETTINGS)
        assert not routed.own_url("https://api.replicate.com/v1/predictions/p1", SETTINGS)
        assert not routed.own_url("https://replicate.test/v1/predictions/p1", SETTINGS)


class Recorder:
    """A MockTransport that answers like each provider and records every request it gets."""

    def __init__(self, answer: httpx.Response | None = None, poll_url: str | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer, self.poll_url = answer, poll_url

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answer is not None:
            return self.answer
        url = str(request.url)
        if "together" in url:
            return httpx.Response(200, json={"data": [{"index": 0, "b64_json": PNG_B64}]})
        if "fal" in url:
            return httpx.Response(
                200, json={"images": [{"url": f"data:image/png;base64,{PNG_B64}"}], "seed": 77}
            )
        if request.method == "POST":
            urls = {"get": self.poll_url or "https://router.test/replicate/v1/predictions/p1"}
            return httpx.Response(201, json={"id": "p1", "status": "processing", "urls": urls})
        return httpx.Response(
            200, json={"id": "p1", "status": "succeeded", "output": [f"data:image/png;base64,{PNG_B64}"]}
        )

    def seen(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """Each request as (method, URL, the headers we chose, JSON body)."""
        ours = ("authorization", "content-type", "prefer")
        return [
            (
                r.method,
                str(r.url),
                {k: v for k, v in r.headers.items() if k in ours},
                json.loads(r.content or b"null"),
            )
            for r in self.requests
        ]


async def run_routed(recorder: Recorder, name: str, settings: Settings = SETTINGS, **options: Any) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        return await Playground(settings, client).generate(
            REQUEST, name, via="hf", hf_token=SecretStr(TOKEN), **options
        )


class TestThroughThePlayground:
    async def test_each_routed_provider_is_one_call_to_the_router_with_the_token_and_its_payload(
        self,
    ) -> None:
        settings = make_settings(providers=DIRECT)  # direct keys set, and never used
        for name in hf_routed():
            recorder = Recorder()
            result = await run_routed(recorder, name, settings)
            payload = PROVIDERS[name].build_call(REQUEST, "k", settings).json
            url = routed_call(name).url
            extra = {"prefer": "wait=2"} if name == "replicate" else {}
            headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}", **extra}
            poll = [
                (
                    "GET",
                    "https://router.test/replicate/v1/predictions/p1",
                    {"authorization": f"Bearer {TOKEN}"},
                    None,
                )
            ]
            assert recorder.seen() == [
                ("POST", url, headers, payload),
                *(poll if name == "replicate" else []),
            ]
            assert (result.provider, result.provider_label) == (
                name,
                PROVIDERS[name].label + " via Hugging Face",
            )
            assert result.payload == payload
            assert result.estimated_cost_usd == PROVIDERS[name].estimate(REQUEST, settings)

    async def test_a_poll_url_off_the_router_is_refused_and_never_gets_the_token(self) -> None:
        recorder = Recorder(poll_url="https://api.replicate.com/v1/predictions/p1")
        with pytest.raises(MalformedResponse) as info:
            await run_routed(recorder, "replicate")
        assert info.value.message == (
            "Replicate via Hugging Face: unexpected answer: the job's status URL is not on the provider's "
            "configured origin. Try again or pick another provider."
        )
        assert [str(r.url) for r in recorder.requests] == [routed_call("replicate").url]

    async def test_the_direct_route_is_unchanged(self) -> None:
        recorder = Recorder()
        settings = make_settings(providers=DIRECT)
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
            result = await Playground(settings, client).generate(
                REQUEST, "together", hf_token=SecretStr(TOKEN)
            )
        assert result.provider_label == "Together AI"
        assert [(r.url.host, r.headers["authorization"]) for r in recorder.requests] == [
            ("together.test", "Bearer tgp-direct-key")
        ]


def answer(status: int, body: Any) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers={"content-type": "text/plain"})
    return httpx.Response(status, json=body)


class TestHuggingFacesErrors:
    """docs/providers/hf-router.md#errors: 402 is out of credits; the rest is the provider's, passed
    through; a refused token, and a model Hugging Face no longer routes, say what to do."""

    @pytest.mark.parametrize("status", [401, 403])
    async def test_a_refused_or_expired_token(self, status: int) -> None:
        with pytest.raises(AuthenticationFailed) as info:
            await run_routed(
                Recorder(answer(status, {"error": "Invalid credentials in Authorization header"})), "fal"
            )
        assert info.value.message == (
            "fal.ai via Hugging Face: Hugging Face refused the token (Invalid credentials in Authorization "
            "header). Sign in with Hugging Face again (tokens expire), or check HF_TOKEN: it needs the "
            "permission 'Make calls to Inference Providers' (https://huggingface.co/settings/tokens)."
        )

    @pytest.mark.parametrize(
        "body",
        [
            {"error": "You have depleted your monthly included credits."},
            "You have depleted your monthly included credits.",  # the body's shape is unconfirmed
        ],
    )
    async def test_402_says_top_up_at_hugging_face(self, body: Any) -> None:
        with pytest.raises(InsufficientCredits) as info:
            await run_routed(Recorder(answer(402, body)), "together")
        assert info.value.message == (
            "Together AI via Hugging Face: your Hugging Face account is out of Inference Providers credits "
            "(You have depleted your monthly included credits.). Top up at "
            "https://huggingface.co/settings/billing (or wait for next month's included credits), then retry."
        )
        assert info.value.billed is False

    async def test_no_route_to_the_model_any_more(self) -> None:
        with pytest.raises(ProviderFailed) as info:
            await run_routed(Recorder(answer(404, {"error": "Model not supported by provider"})), "replicate")
        assert info.value.message == (
            "Replicate via Hugging Face: Hugging Face does not route this model to Replicate right now "
            "(HTTP 404) (Model not supported by provider). Run Replicate with its own key, or choose "
            "another provider."
        )

    async def test_other_statuses_are_the_providers_own(self) -> None:
        with pytest.raises(RateLimited) as limited:
            await run_routed(
                Recorder(httpx.Response(429, json={"detail": "slow down"}, headers={"retry-after": "3"})),
                "fal",
            )
        assert limited.value.message == "fal.ai via Hugging Face: rate limited (slow down). Try again in 3 s."
        invalid = {
            "detail": [{"loc": ["body", "num_inference_steps"], "msg": "too many", "type": "value_error"}]
        }
        with pytest.raises(InputRejected) as rejected:
            await run_routed(Recorder(answer(422, invalid)), "fal")
        assert rejected.value.message == (
            "fal.ai via Hugging Face: the provider rejected these settings (num_inference_steps: too many); "
            "fal bills this."
        )

    async def test_an_echoed_token_is_blanked(self) -> None:
        with pytest.raises(AuthenticationFailed) as info:
            await run_routed(Recorder(answer(401, {"error": f"bad token {TOKEN}"})), "together")
        assert TOKEN not in info.value.message and "bad token [redacted]" in info.value.message


class TestTheToken:
    @pytest.mark.parametrize("token", [None, "", "   "])
    def test_a_missing_token(self, token: str | None) -> None:
        with pytest.raises(InvalidRequest) as info:
            check_token(SecretStr(token) if token is not None else None)
        assert info.value.message == (
            "Running through Hugging Face needs your Hugging Face token: sign in with Hugging Face on the "
            "page, or set HF_TOKEN (or run `hf auth login`) for the command line."
        )

    @pytest.mark.parametrize("token", ["tgp-my-together-key", "hf_has space", "hf_", "hf_é"])
    async def test_only_an_hf_token_goes_to_the_router(self, token: str) -> None:
        recorder = Recorder()
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
            with pytest.raises(InvalidRequest) as info:
                await Playground(SETTINGS, client).generate(
                    REQUEST, "together", via="hf", hf_token=SecretStr(token)
                )
        assert info.value.message.startswith("That is not a Hugging Face token: one starts with hf_")
        assert recorder.requests == []  # refused before anything was sent

    def test_an_oauth_token_is_one(self) -> None:
        assert check_token(SecretStr(" hf_oauth_AbC-123_x ")) == "hf_oauth_AbC-123_x"


class TestChoosingTheRoute:
    def settings(self, **update: Any) -> Settings:
        return make_settings(**{"providers": {"segmind": {"api_key": "s"}}, **update})

    def test_automatic_routes_only_what_nothing_else_runs(self) -> None:
        settings = self.settings(providers={"segmind": {"api_key": "s"}, "together": {"api_key": "t"}})
        names = ["segmind", "together", "fal", "replicate"]
        keys = {"replicate": SecretStr("r8-pasted")}
        assert routes_for(settings, names, keys, SecretStr(TOKEN), None) == {
            "segmind": "direct",  # not routed
            "together": "direct",  # the owner's key
            "fal": "hf",  # nothing else runs it
            "replicate": "direct",  # the person's pasted key
        }
        assert routes_for(settings, names, keys, None, None) == dict.fromkeys(names, "direct")
        assert routes_for(settings, names, keys, SecretStr(TOKEN), "direct") == dict.fromkeys(names, "direct")

    def test_demo_mode_never_sends_a_token(self) -> None:
        demo = self.settings(demo=True)
        assert routes_for(demo, ["fal"], {}, SecretStr(TOKEN), None) == {"fal": "direct"}
        assert account_providers(demo) == []

    def test_all_through_hugging_face(self) -> None:
        settings = self.settings()
        assert routes_for(settings, ["fal", "together"], {}, SecretStr(TOKEN), "hf") == {
            "fal": "hf",
            "together": "hf",
        }
        with pytest.raises(InvalidRequest, match="^Hugging Face does not route Segmind"):
            routes_for(settings, ["fal", "segmind"], {}, SecretStr(TOKEN), "hf")
        with pytest.raises(
            InvalidRequest, match="^Running through Hugging Face needs your Hugging Face token"
        ):
            routes_for(settings, ["fal"], {}, None, "hf")

    def test_readiness_says_what_the_run_will_do(self) -> None:
        settings = self.settings(providers={"segmind": {"api_key": "s"}, "together": {"api_key": "t"}})
        signed_in = {
            q.provider: q.readiness for q in quote(REQUEST, settings, own_keys=["replicate"], hf_account=True)
        }
        signed_out = {q.provider: q.readiness for q in quote(REQUEST, settings)}
        assert {n: signed_in[n] for n in ("segmind", "together", "fal", "replicate", "runware")} == {
            "segmind": "server key",
            "together": "server key",
            "fal": "your Hugging Face account",
            "replicate": "your key",
            "runware": "not configured",
        }
        assert {n: signed_out[n] for n in ("fal", "replicate")} == {
            "fal": "not configured",
            "replicate": "not configured",
        }
        fal = next(q for q in quote(REQUEST, settings, hf_account=True) if q.provider == "fal")
        assert fal.usable and fal.missing == ()
        assert account_providers(settings) == ["fal", "replicate"]

    def test_providers_shows_the_route(self) -> None:
        table = describe_providers(SETTINGS)
        assert {
            name: row["hugging_face_route"] for name, row in table.items() if row["hugging_face_route"]
        } == {
            "fal": "https://router.test/fal-ai",
            "replicate": "https://router.test/replicate",
            "together": "https://router.test/together",
        }

    def test_the_missing_key_message_offers_the_account(self) -> None:
        with pytest.raises(MissingKey) as info:
            PROVIDERS["fal"].resolve_key(SETTINGS)
        assert info.value.message == (
            "No API key for fal.ai: set FAL_KEY in the environment, .env or the Space's secrets (on the page "
            "you can also paste your own key; or run it on your Hugging Face account: send your hf_ token "
            "(API: oauth_token; CLI: --via hf))."
        )
        with pytest.raises(MissingKey) as info:
            PROVIDERS["fal"].resolve_key(make_settings(oauth_scopes="openid profile inference-api"))
        assert "on your Hugging Face account: sign in with Hugging Face, or send your hf_ token" in (
            info.value.message
        )
        with pytest.raises(MissingKey) as info:
            PROVIDERS["segmind"].resolve_key(SETTINGS)
        assert info.value.message == (
            "No API key for Segmind: set SEGMIND_API_KEY in the environment, .env or the Space's secrets "
            "(on the page you can also paste your own key)."
        )


class TestTheOwnersCaps:
    async def test_routed_runs_are_not_charged_and_pass_an_exhausted_cap(self, tmp_path: Path) -> None:
        settings = make_settings(providers=DIRECT, data_dir=tmp_path, daily_budget_usd=Decimal("0"))
        playground = Playground(settings)
        assert charges_for(
            playground, REQUEST, ["together", "fal"], {}, {"together": "hf", "fal": "direct"}
        ) == {"fal": Decimal("0.003")}
        guard = Guard(settings)
        recorder = Recorder()
        try:
            async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
                routed = Playground(settings, client, guard)
                with pytest.raises(LimitExceeded):  # the owner's key: refused by the $0 cap
                    await routed.generate(REQUEST, "together")
                result = await routed.generate(REQUEST, "together", via="hf", hf_token=SecretStr(TOKEN))
            assert result.images and [r.url.host for r in recorder.requests] == ["router.test"]
            assert guard.spent_today() == Decimal(0)
        finally:
            guard.close()


class TestLocalToken:
    def test_hf_token_first(self, tmp_path: Path) -> None:
        (tmp_path / "token").write_text("hf_fromfile\n")
        token = local_token({"HF_TOKEN": " hf_fromenv ", "HF_HOME": str(tmp_path)})
        assert token is not None and token.get_secret_value() == "hf_fromenv"

    def test_then_the_login_file(self, tmp_path: Path) -> None:
        (tmp_path / "token").write_text("hf_fromfile\n")
        token = local_token({"HF_HOME": str(tmp_path)})
        assert token is not None and token.get_secret_value() == "hf_fromfile"
        (tmp_path / "elsewhere").write_text("hf_frompath")
        token = local_token({"HF_TOKEN_PATH": str(tmp_path / "elsewhere"), "HF_HOME": str(tmp_path)})
        assert token is not None and token.get_secret_value() == "hf_frompath"

    def test_the_default_file_under_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOME", str(tmp_path))
        assert local_token({}) is None
        (tmp_path / ".cache" / "huggingface").mkdir(parents=True)
        (tmp_path / ".cache" / "huggingface" / "token").write_text("hf_home")
        token = local_token({})
        assert token is not None and token.get_secret_value() == "hf_home"


def test_an_owner_endpoint_with_a_router_prefix_runs_through_the_router_too() -> None:
    """Nscale is reached through an owner-configured OpenAI-style endpoint (README); with `hf_route`
    Hugging Face's router takes the same body at /nscale/v1/images/generations with the hf_ token."""
    from flux_playground.providers.openai_images import OwnerEndpoint, owner_provider

    entry = {
        "id": "nscale", "label": "Nscale", "base_url": "https://inference.api.nscale.com",
        "model": "black-forest-labs/FLUX.1-schnell", "key_env": "NSCALE_API_KEY", "hf_route": "/nscale",
    }  # fmt: skip
    nscale = owner_provider(OwnerEndpoint.model_validate(entry))
    settings = make_settings()
    request = GenerationRequest(prompt="a red fox", width=512, height=512, seed=3)
    direct = nscale.build_call(request, "nscale-key", settings)
    routed = through_router(nscale)
    call = routed.build_call(request, check_token(SecretStr(TOKEN)), settings)
    assert call == ProviderCall(
        "POST",
        f"{ROUTER}/nscale/v1/images/generations",
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        direct.json,
    )
    assert routed.label == "Nscale via Hugging Face"
    with pytest.raises(ValueError, match="hf_route"):
        OwnerEndpoint.model_validate({**entry, "hf_route": "https://elsewhere.test"})

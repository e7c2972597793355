"""Bad input, generated: whatever arrives, the answer is a request or a clear validation message.

Never a 500, a traceback, or an error without words. Covers the request model (`parse_request`), the
form/API adapters (`build_request`, `check_providers`), and the public `generate` endpoint over raw
HTTP (`POST /gradio_api/call/generate`, then its SSE answer).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ui.appclient import call_api, serve
from ui.conftest import emulator_settings

from flux_playground.errors import InvalidRequest
from flux_playground.models import MAX_PROMPT_CHARS, MAX_SEED, GenerationRequest, parse_request
from flux_playground.providers import PROVIDERS
from flux_playground.runs import build_request, check_providers
from flux_playground.ui.gate import BODY_LIMIT

FIELDS = ["prompt", "width", "height", "steps", "seed", "num_images", "sampler", "scheduler"]

prompts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=50),  # any script, any control char
    st.sampled_from(["", "   ", "a red fox", "x" * 100_000, "\x00", "猫\u202e\u200b", "🦊" * 10, "a\nb\tc"]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 255, 256, 2048, 2049, MAX_SEED, MAX_SEED + 1, 1e308, -0.0, 512.5]),
)
anything = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
values = st.one_of(prompts, numbers, anything, st.sampled_from(["512", "abc", "NaN", "1e3", " 7 "]))
provider_lists = st.one_of(
    st.lists(st.sampled_from([*PROVIDERS, "openai", "", "DEEPINFRA", "../segmind"]), max_size=4),
    anything,
)


def assert_clear(message: str) -> None:
    assert message and message[0].isupper(), message
    assert (
        "Traceback" not in message
        and "pydantic" not in message.lower()
        and "errors.pydantic.dev" not in message
    )


def assert_valid(request: GenerationRequest) -> None:
    assert 1 <= len(request.prompt) <= MAX_PROMPT_CHARS and request.prompt == request.prompt.strip()
    assert 256 <= request.width <= 2048 and 256 <= request.height <= 2048
    assert 1 <= request.steps <= 50 and 1 <= request.num_images <= 4
    assert request.seed is None or 0 <= request.seed <= MAX_SEED


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), values, max_size=10))
def test_parse_request_returns_a_valid_request_or_one_clear_message(fields: dict[str, Any]) -> None:
    try:
        request = parse_request(fields)
    except InvalidRequest as exc:
        assert exc.message.endswith("."), exc.message
        assert_clear(exc.message)
        unknown = set(fields) - set(FIELDS)
        if unknown:
            assert "Unknown setting" in exc.message
        return
    assert set(fields) <= set(FIELDS)
    assert_valid(request)


@settings(max_examples=300, deadline=None, database=None)
@given(st.tuples(prompts, values, values, values, values, values, values, values))
def test_form_values_become_a_request_or_a_clear_message(args: tuple[Any, ...]) -> None:
    try:
        request = build_request(*args)
    except InvalidRequest as exc:
        assert_clear(exc.message)
        return
    assert_valid(request)
    seed = args[4]
    if isinstance(seed, int | float) and not isinstance(seed, bool) and not math.isnan(seed) and seed < 0:
        assert request.seed is None  # -1 means random


@settings(max_examples=200, deadline=None, database=None)
@given(provider_lists)
def test_provider_choice_is_checked(providers: Any) -> None:
    try:
        names = check_providers(providers)
    except InvalidRequest as exc:
        assert_clear(exc.message)
        assert len(exc.message) < 300  # a 100 000-character name is not echoed back whole
        return
    assert names and set(names) <= set(PROVIDERS) and len(names) == len(set(names))


# --- the public endpoint, over raw HTTP ---------------------------------------------------------------


@pytest.fixture(scope="module")
def app_url(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings_ = emulator_settings(emulator, tmp_path_factory.mktemp("props"), max_pixels=512 * 512)
    with serve(settings_) as app:
        yield app.url


api_data = st.one_of(
    # The right shape with any values, sometimes with extra trailing items.
    st.tuples(prompts, provider_lists, values, values, values, values, values, values, values).map(list),
    st.tuples(
        st.just("a red fox"),
        st.just(["deepinfra"]),
        values,
        values,
        values,
        values,
        values,
        values,
        values,
        st.lists(anything, max_size=2),
    ).map(lambda t: [*t[:9], *t[9]]),
)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(api_data)
@example(["a fox", ["deepinfra"], float("inf"), float("nan"), 4, -1, 1, "", ""])
@example(["a fox", "deepinfra", "abc", None, [], {}, True, 5, ["x"]])
@example([None, None, None, None, None, None, None, None, None])
@example(["x" * 100_000, ["deepinfra", "nope" * 1000], 512, 512, 4, 10**40, 1, "", ""])
@example(["\x00\x1b[31m", [{"provider": "deepinfra"}], 512, 512, 4, -1, 1, "", "", "extra", {"x": 1}])
def test_generate_endpoint_answers_bad_input_with_words(app_url: str, data: list[Any]) -> None:
    with httpx.Client(timeout=30) as client:
        answer = call_api(app_url, "generate", data, client=client)
    assert "Traceback" not in answer.text and "Internal Server Error" not in answer.text
    if len(json.dumps({"data": data})) > BODY_LIMIT:  # the gate reads at most this much
        assert answer.status == 413 and "Request too large" in answer.text, answer.text[:300]
        return
    if len(data) != 9:  # the gate counts the values before Gradio sees them
        assert answer.status == 422 and "generate takes 9 values" in answer.text, answer.text[:300]
        return
    assert answer.status == 200, answer.text[:300]
    assert answer.event in ("complete", "error"), answer.text[-300:]
    if answer.event == "error":
        message = (answer.data or {}).get("error")
        assert isinstance(message, str) and message, f"an error without words for {data!r}"
        assert_clear(message)


def test_generate_endpoint_malformed_bodies_are_client_errors(app_url: str) -> None:
    base = f"{app_url.rstrip('/')}/gradio_api/call/generate"
    for body in (b"not json", b"[]", b'{"data": 5}', b'{"data": {"prompt": "x"}}', b'{"dat": []}'):
        response = httpx.post(base, content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (body, response.status_code)
        assert "Traceback" not in response.text
    # Too few values: refused by the gate with words (Gradio itself would answer with no message).
    short = call_api(app_url, "generate", ["a red fox"])
    assert short.status == 422 and "generate takes 9 values in `data`; got 1." in short.text

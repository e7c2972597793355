"""The registry of emulated providers: a provider written here, in the test, is served by
EmulatorServer with no other file changed; unregistering it removes it from later servers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from flux_playground.emulator import (
    EMULATED,
    EmulatedProvider,
    EmulatorServer,
    ProviderState,
    register,
    unregister,
)
from flux_playground.emulator.common import get_prompt, read_json_object
from flux_playground.emulator.emulated import ConfigError, ConfigKeys
from flux_playground.emulator.faults import Dialect
from flux_playground.emulator.state import EmulatorState

# -- a throwaway provider module: one POST route, its own error dialect and state ------------

NAME = "echo-test"
ROUTE = "/v1/generate"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


DIALECT = Dialect(NAME, _error)


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


@dataclass
class EchoState(ProviderState):
    config_keys: ClassVar[ConfigKeys] = {"greeting": _text}
    greeting: str = "hello"

    def reset(self) -> None:
        self.greeting = "hello"


def echo_routes(state: EmulatorState) -> list[BaseRoute]:
    own = state.provider_state(NAME, EchoState)

    async def generate(request: Request) -> Response:
        state.hit(request, NAME, "submit", ROUTE)
        if (faulted := await state.queued_fault(NAME, "submit", request, DIALECT)) is not None:
            return faulted
        prompt = get_prompt(await read_json_object(request))
        return JSONResponse({"echo": f"{own.greeting}, {prompt}"})

    return [Route(ROUTE, generate, methods=["POST"])]


ECHO = EmulatedProvider(name=NAME, routes=echo_routes, make_state=EchoState)

# -- tests ---------------------------------------------------------------------------------------


@pytest.fixture
def registered() -> Iterator[EmulatedProvider]:
    register(ECHO)
    try:
        yield ECHO
    finally:
        EMULATED.pop(NAME, None)


def test_a_registered_provider_is_served(registered: EmulatedProvider) -> None:
    assert list(EMULATED) == sorted(EMULATED)  # stays alphabetical
    with (
        EmulatorServer(latency=0) as emu,
        httpx.Client(timeout=10, trust_env=False) as client,
    ):
        assert emu.base_urls[NAME] == f"{emu.url}/{NAME}"
        url = emu.base_urls[NAME] + ROUTE
        assert client.post(url, json={"prompt": "fox"}).json() == {"echo": "hello, fox"}

        emu.inject(NAME, "500")
        faulted = client.post(url, json={"prompt": "fox"})
        assert faulted.status_code == 500 and faulted.json() == {"error": "Internal server error"}
        assert client.post(url, json={"prompt": "x"}).status_code == 200  # one-shot

        config = emu.configure(providers={NAME: {"greeting": "hi"}}, latency={NAME: 0.01})
        assert config["providers"][NAME] == {"greeting": "hi"}
        assert config["provider_latency"] == {NAME: 0.01}
        assert client.post(url, json={"prompt": "fox"}).json() == {"echo": "hi, fox"}
        with pytest.raises(ValueError, match="unknown config key 'colour'; valid: greeting"):
            emu.configure(providers={NAME: {"colour": "red"}})
        with pytest.raises(ValueError, match="greeting must be a string"):
            emu.configure(providers={NAME: {"greeting": 1}})

        stats = emu.stats()
        assert stats["requests"][NAME]["submit"] == 4
        assert stats["requests"][NAME][f"POST {ROUTE}"] == 4
        assert stats["statuses"][NAME] == {"200": 3, "500": 1}
        assert stats["faults_fired"][NAME] == {"500": 1}
        assert stats["providers"][NAME] == {}
        index = client.get(emu.url + "/_emulator/").json()
        assert index["stages"][NAME] == ["submit"]
        assert index["fault_stages"][NAME]["500"] == ["submit"]
        assert "never_completes" not in index["fault_stages"][NAME]
        with pytest.raises(ValueError, match="does not apply"):
            emu.inject(NAME, "never_completes")

        emu.reset()
        assert emu.configure()["providers"][NAME] == {"greeting": "hello"}
        assert emu.stats()["requests"][NAME] == {}


def test_registration_reaches_only_servers_created_afterwards() -> None:
    with EmulatorServer(latency=0) as before:
        register(ECHO)
        try:
            with EmulatorServer(latency=0) as during:
                assert NAME in during.base_urls
        finally:
            assert unregister(NAME) is ECHO
        assert NAME not in before.base_urls
        with pytest.raises(ValueError, match="provider must be one of"):
            before.inject(NAME, "500")
    with (
        EmulatorServer(latency=0) as after,
        httpx.Client(timeout=10, trust_env=False) as client,
    ):
        assert NAME not in after.base_urls and NAME not in after.stats()["requests"]
        assert client.post(f"{after.url}/{NAME}{ROUTE}", json={"prompt": "x"}).status_code == 404
        with pytest.raises(ValueError, match="provider must be one of"):
            after.inject(NAME, "500")


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (EmulatedProvider(name="_emulator", routes=echo_routes), "must be named like"),
        (EmulatedProvider(name="Echo", routes=echo_routes), "must be named like"),
        (EmulatedProvider(name="echo", routes=echo_routes, faults={"explode": ("submit",)}), "unknown fault"),
        (EmulatedProvider(name="echo", routes=echo_routes, faults={"truncated": ("poll",)}), "not among"),
        (EmulatedProvider(name="echo", routes=echo_routes, job_faults=frozenset({"hang"})), "job faults"),
    ],
)
def test_register_refuses_bad_declarations(provider: EmulatedProvider, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        register(provider)
    assert provider.name not in EMULATED


def test_register_refuses_a_taken_name(registered: EmulatedProvider) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(registered)
    assert register(registered, replace=True) is registered
    with pytest.raises(KeyError):
        unregister("no-such-provider")

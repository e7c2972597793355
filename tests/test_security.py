"""Keys never leak, and provider output URLs cannot make the server fetch internal addresses.

Distinctive server keys and a key a person pastes go through the launched app (the page's event, the
public API, failures included) while every logger records at DEBUG; then every place a key could
end up is searched: the page, /config, the API and MCP schemas, the logs, the history database and
its WAL, every saved file and its PNG text chunks, the streamed page updates, error messages and
the CLI's output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from ui.appclient import call_api, event_data, page_fn_index, run_page_event, serve

from flux_playground.emulator.server import EmulatorServer
from flux_playground.errors import MalformedResponse, PlaygroundError
from flux_playground.history import History
from flux_playground.images import read_png_text
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS
from flux_playground.service import Playground
from flux_playground.settings import Settings
from flux_playground.ui import create_demo
from flux_playground.ui.form import key_field

REPO = Path(__file__).resolve().parents[1]
TOKEN = secrets.token_hex(6)
SERVER_KEYS = {name: f"sk-SERVER-{name}-{TOKEN}" for name in PROVIDERS}
PASTED_KEY = f"sk-PASTED-deepinfra-{TOKEN}"
BAD_PASTED_KEY = f"invalid-PASTED-segmind-{TOKEN}"  # the emulator answers 401 to keys starting "invalid"
ALL_KEYS = [*SERVER_KEYS.values(), PASTED_KEY, BAD_PASTED_KEY]


def leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        return [key for key in ALL_KEYS if key.encode() in text]
    return [key for key in ALL_KEYS if key in text]


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(latency=0.05) as emulator:
        yield emulator


async def mcp_tool_list(url: str) -> str:
    """What an MCP client is told about the tools, as JSON."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return (await session.list_tools()).model_dump_json()


def test_no_key_reaches_any_output_or_store(
    server: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's logs, httpx and httpcore included
    for name in ("httpx", "httpcore", "gradio", "uvicorn", "flux_playground"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    data_dir = tmp_path / "data"
    providers = {
        name: {
            "base_url": server.base_urls[name],
            "api_key": SERVER_KEYS[name],
            # What a provider also needs (an account id) gets the placeholder demo mode gives it.
            "options": {o.name: f"demo-{o.name}" for o in provider.options if o.required},
        }
        for name, provider in PROVIDERS.items()
    }
    settings = Settings(
        _env_file=None, data_dir=data_dir, request_timeout=2, job_timeout=3, providers=providers
    )
    history = History(data_dir)
    seen: list[str] = []
    try:
        with serve(settings, history=history) as app:
            url = app.url
            with httpx.Client(timeout=30) as http:
                for path in (
                    "",
                    "config",
                    "gradio_api/info",
                    "gradio_api/openapi.json",
                ):
                    response = http.get(url + path)
                    assert response.status_code == 200, path
                    seen.append(response.text)
            seen.append(asyncio.run(mcp_tool_list(url)))
            generate = page_fn_index(url, "generate")
            browser = secrets.token_urlsafe(24)

            def page(prompt: str, providers: list[str], keys: dict[str, str]) -> str:
                values = {
                    "prompt": prompt,
                    "providers": providers,
                    "width": 512,
                    "height": 512,
                    "browser_id": browser,
                    **{key_field(name): key for name, key in keys.items()},
                }
                run = run_page_event(url, generate, event_data(url, generate, values), timeout=30)
                assert run.success, run.text[-400:]
                return run.text

            # Server keys for Atlas and Segmind, a pasted key for DeepInfra; then a pasted key refused (401).
            seen.append(page("a red fox", list(PROVIDERS), {"deepinfra": PASTED_KEY}))
            refused = page("a blue fox", ["segmind"], {"segmind": BAD_PASTED_KEY})
            assert "the API key was refused" in refused
            seen.append(refused)
            # Server keys refused and failing, through the page and the API.
            for name in PROVIDERS:
                server.inject(name, "401")
                seen.append(page(f"a green fox {name}", [name], {}))
                server.inject(name, "500")
                seen.append(
                    call_api(
                        url, "generate", [f"a fox {name}", [name, "deepinfra"], 512, 512, 4, -1, 1, "", ""]
                    ).text
                )
            api = call_api(url, "generate", ["a grey fox", list(PROVIDERS), 512, 512, 4, 7, 1, "", ""])
            assert api.event == "complete"
            seen.append(api.text)
            # The controls' price check receives pasted keys too (on blur), as the page sends them.
            controls = page_fn_index(url, "providers", "change")
            pasted = {"providers": list(PROVIDERS), key_field("deepinfra"): PASTED_KEY}
            data = event_data(url, controls, pasted)
            body = {"data": data, "fn_index": controls, "session_hash": "keys"}
            answer = httpx.post(f"{url}gradio_api/run/predict", json=body, timeout=30)
            assert answer.status_code == 200 and '"rows"' in answer.text
            seen.append(answer.text)
            # Every byte the app wrote, read while it still runs (the WAL is checkpointed at close).
            written = {path: path.read_bytes() for path in data_dir.rglob("*") if path.is_file()}
    finally:
        history.close()

    for text in seen:
        assert leaks(text) == [], "a key reached a page, a schema or a response"
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert len(caplog.records) > 50 and "httpcore" in logged  # DEBUG capture really was on
    assert leaks(logged) == [], "a key was logged"

    assert any(p.name == "history.sqlite3-wal" for p in written)  # the WAL is checked too
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == len(PROVIDERS)  # the first page run, one per provider; failures saved nothing
    for path, data in written.items():
        assert leaks(data) == [], f"a key is in {path.name}"
    for path in pngs:  # text chunks may be compressed (zTXt/iTXt): read them decoded as well
        assert leaks(json.dumps(read_png_text(written[path]))) == []
    for entry in api.data[0]:  # the API's images, as written to its scratch folder
        image = entry["image"]
        local = Path(image["path"]) if isinstance(image, dict) else Path(image)
        if local.exists():
            assert (
                leaks(local.read_bytes()) == [] and leaks(json.dumps(read_png_text(local.read_bytes()))) == []
            )


# --- error messages: a provider that echoes the key ------------------------------------------------


ECHO_STATUSES = [400, 401, 402, 403, 406, 422, 429, 500, 502, 503]


def echoing_settings() -> Settings:
    providers = {
        name: {
            "base_url": f"https://{name}.test",
            "api_key": SERVER_KEYS[name],
            # A required option (an account id) gets the placeholder demo mode gives it.
            "options": {option.name: f"demo-{option.name}" for option in provider.options if option.required},
        }
        for name, provider in PROVIDERS.items()
    }
    return Settings(_env_file=None, providers=providers)


@pytest.mark.parametrize("status", ECHO_STATUSES)
@pytest.mark.parametrize("field", ["msg", "message", "error", "detail", "text"])
async def test_a_provider_echoing_the_key_never_gets_it_into_our_message(status: int, field: str) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        key = request.headers.get("authorization", "").removeprefix("Bearer ") or request.headers.get(
            "x-api-key", ""
        )
        text = f"invalid credentials: {key} (header {request.headers.get('authorization')})"
        if field == "text":
            return httpx.Response(status, text=text, headers={"content-type": "text/plain"})
        return httpx.Response(
            status, json={field: text} if field != "detail" else {"detail": {"error": text}}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as client:
        playground = Playground(echoing_settings(), client)
        for name in PROVIDERS:
            for pasted in (None, PASTED_KEY):
                with pytest.raises(PlaygroundError) as info:
                    await playground.generate(
                        GenerationRequest(prompt="x", width=512, height=512),
                        name,
                        api_key=SecretStr(pasted) if pasted else None,
                    )
                assert leaks(info.value.message) == [] and leaks(str(info.value)) == [], info.value.message
                assert "invalid credentials" in info.value.message  # the provider's words are kept


@pytest.mark.slow  # a process of its own, or real seconds of waiting
def test_cli_never_prints_a_key(server: EmulatorServer, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in PROVIDERS:
        env[f"{name.upper()}_BASE_URL"] = server.base_urls[name]
    env["SEGMIND_API_KEY"] = SERVER_KEYS["segmind"]
    env["DEEPINFRA_API_KEY"] = BAD_PASTED_KEY  # refused with 401
    outputs = []
    for provider in ("segmind", "deepinfra"):
        out = subprocess.run(
            [sys.executable, "-m", "flux_playground", "generate", "a red fox", "--provider", provider,
             "--width", "512", "--height", "512", "--out", str(tmp_path)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
        )  # fmt: skip
        outputs.append(out.stdout + out.stderr)
    assert '"provider": "segmind"' in outputs[0]
    assert "API key was refused" in outputs[1] and "Traceback" not in outputs[1]
    assert leaks("".join(outputs)) == []


@pytest.mark.slow  # a process of its own, or real seconds of waiting
def test_cli_runs_through_hugging_face_and_never_prints_the_token(
    server: EmulatorServer, tmp_path: Path
) -> None:
    """`generate --via hf`: the token from HF_TOKEN, else from `hf auth login`'s file; it reaches the
    router's origin only, never the output; a refused one gets words."""
    from flux_playground.emulator.hf_router import NAME, fingerprint

    home = tmp_path / "home"
    (home / ".cache" / "huggingface").mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOME": str(home),
        "HF_ROUTER_BASE_URL": server.base_urls[NAME],
    }
    env["TOGETHER_API_KEY"] = SERVER_KEYS["together"]  # a direct key, and --via hf does not use it
    from_env, from_file = f"hf_CLIenv{TOKEN}", f"hf_CLIfile{TOKEN}"
    (home / ".cache" / "huggingface" / "token").write_text(from_file + "\n")

    def generate(prompt: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flux_playground", "generate", prompt, "--provider", "together",
             "--via", "hf", "--width", "512", "--height", "512", "--out", str(tmp_path)],
            capture_output=True, text=True, env={**env, **extra}, cwd=tmp_path, timeout=60,
        )  # fmt: skip

    server.reset()
    by_env, by_file = generate("a fox by env", HF_TOKEN=from_env), generate("a fox by file")
    refused = generate("a refused fox", HF_TOKEN=f"hf_expired{TOKEN}")
    for out in (by_env, by_file):
        assert out.returncode == 0, out.stderr
        printed = json.loads(out.stdout)
        assert (printed["provider"], printed["label"]) == ("together", "Together AI via Hugging Face")
    assert refused.returncode == 1 and refused.stdout == "" and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: Together AI via Hugging Face: Hugging Face refused the token")
    calls = server.stats()["providers"][NAME]["calls"]
    assert [(c["prompt"], c["path"], c["token_sha256"]) for c in calls] == [
        ("a fox by env", "/v1/images/generations", fingerprint(from_env)),
        ("a fox by file", "/v1/images/generations", fingerprint(from_file)),
    ]  # the refused one never got past the router
    assert server.stats()["requests"]["together"].get("submit", 0) == 2  # both forwarded, none direct
    printed = "".join(o.stdout + o.stderr for o in (by_env, by_file, refused))
    assert from_env not in printed and from_file not in printed and f"hf_expired{TOKEN}" not in printed
    assert leaks(printed) == []
    providers = subprocess.run(
        [sys.executable, "-m", "flux_playground", "providers"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=True,
    )  # fmt: skip
    routes = {name: row["hugging_face_route"] for name, row in json.loads(providers.stdout).items()}
    base = server.base_urls[NAME]
    assert {name: route for name, route in routes.items() if route} == {
        "fal": f"{base}/fal-ai", "replicate": f"{base}/replicate", "together": f"{base}/together",
    }  # fmt: skip


# --- output URLs (SSRF) ---------------------------------------------------------------------------------


class AtlasWithOutputs:
    """An Atlas Cloud whose finished job points at `output`; records every request it receives."""

    def __init__(self, output: str, redirect: str | None = None) -> None:
        self.output, self.redirect = output, redirect
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host != "atlascloud.test":
            raise AssertionError(f"fetched {request.url}")  # never reached: the transport is the network
        if request.method == "POST":
            return httpx.Response(200, json={"code": 200, "data": {"id": "p1", "status": "starting"}})
        if request.url.path.endswith("/prediction/p1"):
            body = {"id": "p1", "status": "completed", "outputs": [self.output]}
            return httpx.Response(200, json={"code": 200, "data": body})
        if request.url.path == "/files/redirect.png" and self.redirect:
            return httpx.Response(302, headers={"location": self.redirect})
        return httpx.Response(404)


@pytest.mark.parametrize(
    ("output", "redirect", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", None, "plain-http"),
        ("https://169.254.169.254/latest/meta-data/iam/", None, "private or local address"),
        ("https://10.1.2.3/out.png", None, "private or local address"),
        ("https://[::1]/out.png", None, "private or local address"),
        ("https://[::ffff:127.0.0.1]/out.png", None, "private or local address"),
        # Not http(s): never treated as a URL at all, only as inline image data (and refused as such).
        ("file:///etc/passwd", None, "not valid base64"),
        ("ftp://files.example/out.png", None, "not valid base64"),
        ("https://user:pw@cdn.example/out.png", None, "credentials"),
        ("https://atlascloud.test/files/redirect.png", "http://127.0.0.1:1/", "plain-http"),
        (
            "https://atlascloud.test/files/redirect.png",
            "https://127.0.0.1:1/x.png",
            "private or local address",
        ),
        (
            "https://atlascloud.test/files/redirect.png",
            "https://169.254.169.254/x",
            "private or local address",
        ),
        ("https://atlascloud.test/files/redirect.png", "file:///etc/passwd", "scheme 'file'"),
    ],
)
async def test_unsafe_output_urls_are_refused_and_never_fetched(
    output: str, redirect: str | None, reason: str
) -> None:
    atlas = AtlasWithOutputs(output, redirect)
    settings = Settings(
        _env_file=None,
        providers={
            "atlascloud": {"base_url": "https://atlascloud.test", "api_key": SERVER_KEYS["atlascloud"]}
        },
        job_timeout=5,
        download_timeout=5,
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(atlas)) as client:
        with pytest.raises(MalformedResponse) as info:
            await Playground(settings, client).generate(
                GenerationRequest(prompt="x", width=512, height=512), "atlascloud"
            )
    message = info.value.message
    assert message.startswith("Atlas Cloud: ") and reason in message, message
    if "base64" not in reason:
        assert message.startswith("Atlas Cloud: refused ") and "the image was not downloaded" in message
    assert {r.url.host for r in atlas.requests} == {"atlascloud.test"}, "an unsafe host was contacted"
    assert info.value.billed is True  # the job ran: the spend ledger keeps its estimate


def test_the_page_takes_no_files_or_urls(tmp_path: Path) -> None:
    """No upload or URL-typed input anywhere: nothing a person sends is fetched or stored."""
    settings = Settings(_env_file=None, data_dir=tmp_path)
    demo = create_demo(settings, oauth=False)
    kinds = {type(block).__name__ for block in demo.blocks.values()}
    assert not kinds & {"File", "UploadButton", "FileExplorer", "Video", "Audio", "Model3D"}
    image_inputs = [b for b in demo.blocks.values() if type(b).__name__ == "Image" and b.interactive]
    assert image_inputs == []

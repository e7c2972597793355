"""Retries for GETs only, Retry-After, output-URL safety (SSRF) and capped downloads. No network, no DNS."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from flux_playground.http import (
    UnsafeURL,
    check_output_url,
    download,
    get_with_retries,
    make_client,
    parse_retry_after,
)
from flux_playground.settings import Settings

TRUSTED = "https://atlas.test"


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """get_with_retries and downloads back off with asyncio.sleep (no injected sleep): record, don't wait."""
    real_sleep = asyncio.sleep
    delays: list[float] = []

    async def fake_sleep(seconds: float, result: object = None) -> object:
        # Only flux_playground.http's own back-off: the event loop's other tasks sleep too.
        if sys._getframe(1).f_globals.get("__name__") == "flux_playground.http":
            delays.append(seconds)
            seconds = 0
        return await real_sleep(seconds, result)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return delays


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """Replace the running loop's getaddrinfo; hosts not in `table` do not resolve. Returns the lookups."""
    looked_up: list[str] = []

    async def getaddrinfo(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        looked_up.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in table[host]
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return looked_up


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("7", 7.0),
            ("0", 0.0),
            (" 2.5 ", 2.5),
            ("-3", 0.0),
            (None, None),
            ("", None),
            ("soon", None),
            ("Mon, 99 Foo 2026", None),
        ],
    )
    def test_values(self, value: str | None, expected: float | None) -> None:
        assert parse_retry_after(value) == expected

    def test_http_date(self) -> None:
        now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
        header = format_datetime(now + timedelta(seconds=30), usegmt=True)
        assert header == "Sat, 21 Nov 2026 12:00:30 GMT"
        assert parse_retry_after(header, now=now.timestamp()) == 30.0

    def test_http_date_in_the_past(self) -> None:
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


class Script:
    """A MockTransport handler answering from a list (the last answer repeats) and recording requests."""

    def __init__(self, *replies: httpx.Response | type[Exception]) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, type):
            raise reply("scripted failure", request=request)  # type: ignore[call-arg]
        return reply

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self), **kwargs)  # type: ignore[arg-type]


class TestGetWithRetries:
    async def test_retries_503_and_429_honouring_retry_after(self, slept: list[float]) -> None:
        script = Script(
            httpx.Response(503, headers={"Retry-After": "3"}),
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(200, json={"ok": True}),
        )
        async with script.client() as client:
            response = await get_with_retries(client, "https://atlas.test/poll", headers={"X-K": "v"})
        assert response.json() == {"ok": True}
        assert slept == [3.0, 1.0]
        assert [r.method for r in script.requests] == ["GET", "GET", "GET"]
        assert all(r.headers["X-K"] == "v" for r in script.requests)

    async def test_exponential_backoff_without_retry_after(self, slept: list[float]) -> None:
        script = Script(httpx.Response(500), httpx.Response(502), httpx.Response(504), httpx.Response(200))
        async with script.client() as client:
            assert (await get_with_retries(client, "https://x.test/")).status_code == 200
        assert slept == [0.25, 0.5, 1.0]

    async def test_retry_after_is_capped(self, slept: list[float]) -> None:
        script = Script(httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200))
        async with script.client() as client:
            await get_with_retries(client, "https://x.test/")
        assert slept == [10.0]

    async def test_gives_up_after_n_attempts_and_returns_the_last_answer(self, slept: list[float]) -> None:
        script = Script(httpx.Response(503))
        async with script.client() as client:
            response = await get_with_retries(client, "https://x.test/", attempts=3)
        assert response.status_code == 503
        assert len(script.requests) == 3
        assert len(slept) == 2

    @pytest.mark.parametrize("status", [200, 400, 401, 404, 422])
    async def test_final_statuses_are_not_retried(self, status: int, slept: list[float]) -> None:
        script = Script(httpx.Response(status))
        async with script.client() as client:
            assert (await get_with_retries(client, "https://x.test/")).status_code == status
        assert len(script.requests) == 1 and slept == []

    async def test_network_errors_are_retried_then_raised(self, slept: list[float]) -> None:
        script = Script(httpx.ConnectError)
        async with script.client() as client:
            with pytest.raises(httpx.ConnectError):
                await get_with_retries(client, "https://x.test/", attempts=2)
        assert len(script.requests) == 2

    async def test_network_error_then_success(self, slept: list[float]) -> None:
        script = Script(httpx.ReadTimeout, httpx.Response(200))
        async with script.client() as client:
            assert (await get_with_retries(client, "https://x.test/")).status_code == 200


class TestMakeClient:
    async def test_user_agent_timeouts_and_no_redirects(self) -> None:
        settings = Settings(_env_file=None, connect_timeout=3.0, request_timeout=45.0)
        client = make_client(settings)
        try:
            assert client.headers["User-Agent"] == settings.user_agent
            assert not client.headers["User-Agent"].startswith("python-httpx/")
            assert client.timeout == httpx.Timeout(connect=3.0, read=45.0, write=3.0, pool=45.0)
            assert client.follow_redirects is False
        finally:
            await client.aclose()


class TestCheckOutputURL:
    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("file:///etc/passwd", "scheme 'file'"),
            ("ftp://cdn.example.com/a.png", "scheme 'ftp'"),
            ("gopher://cdn.example.com/", "scheme 'gopher'"),
            ("//cdn.example.com/a.png", "scheme 'none'"),
            ("https://user:pass@cdn.example.com/a.png", "credentials"),
            ("https://user@atlas.test/a.png", "credentials"),
            ("https:///a.png", "without a host"),
            ("http://cdn.example.com/a.png", "plain-http"),
            ("http://atlas.test:8080/a.png", "plain-http"),
            ("https://127.0.0.1/a.png", "private or local"),
            ("https://10.1.2.3/a.png", "private or local"),
            ("https://192.168.0.10/a.png", "private or local"),
            ("https://172.16.5.5/a.png", "private or local"),
            ("https://169.254.169.254/latest/meta-data/", "private or local"),
            ("https://100.64.0.1/a.png", "private or local"),
            ("https://0.0.0.0/a.png", "private or local"),
            ("https://[::1]/a.png", "private or local"),
            ("https://[::ffff:127.0.0.1]/a.png", "private or local"),
            ("https://[::ffff:169.254.169.254]/a.png", "private or local"),
            ("https://[fd00::1]/a.png", "private or local"),
            ("https://[fe80::1]/a.png", "private or local"),
        ],
    )
    async def test_refused(self, url: str, reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
        lookups = fake_dns(monkeypatch, {})
        with pytest.raises(UnsafeURL, match=reason):
            await check_output_url(url, TRUSTED)
        assert lookups == []  # refused on the URL alone; literal addresses are never looked up

    async def test_public_literal_address_is_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        lookups = fake_dns(monkeypatch, {})
        await check_output_url("https://93.184.216.34/a.png", TRUSTED)
        await check_output_url("https://[2606:4700::1111]/a.png", TRUSTED)
        assert lookups == []

    async def test_hostname_with_public_addresses(self, monkeypatch: pytest.MonkeyPatch) -> None:
        lookups = fake_dns(monkeypatch, {"cdn.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
        await check_output_url("https://cdn.example.com/a.png", TRUSTED)
        assert lookups == ["cdn.example.com"]

    @pytest.mark.parametrize(
        "addresses",
        [
            ["127.0.0.1"],
            ["10.0.0.7"],
            ["169.254.169.254"],
            ["::1"],
            ["::ffff:127.0.0.1"],
            ["93.184.216.34", "10.0.0.7"],  # one private address among public ones is enough to refuse
        ],
    )
    async def test_hostname_resolving_to_private(
        self, addresses: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake_dns(monkeypatch, {"evil.example.com": addresses})
        with pytest.raises(UnsafeURL, match=r"private or local address \(evil.example.com\)"):
            await check_output_url("https://evil.example.com/a.png", TRUSTED)

    async def test_unresolvable_host(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {})
        with pytest.raises(UnsafeURL, match="could not resolve the output host 'nowhere.example'"):
            await check_output_url("https://nowhere.example/a.png", TRUSTED)

    @pytest.mark.parametrize(
        ("url", "origin"),
        [
            ("http://127.0.0.1:8123/outputs/a.png", "http://127.0.0.1:8123"),
            ("http://localhost:8123/a.png", "http://localhost:8123/"),
            ("https://atlas.test/media/a.png", "https://atlas.test"),
            ("https://ATLAS.test:443/media/a.png", "https://atlas.test"),
            ("http://[::1]:9000/a.png", "http://[::1]:9000"),
        ],
    )
    async def test_the_providers_own_origin_is_trusted(
        self, url: str, origin: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lookups = fake_dns(monkeypatch, {})
        await check_output_url(url, origin)
        assert lookups == []

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8124/a.png",  # another port
            "https://127.0.0.1:8123/a.png",  # another scheme
        ],
    )
    async def test_only_the_exact_origin_is_trusted(self, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {})
        with pytest.raises(UnsafeURL):
            await check_output_url(url, "http://127.0.0.1:8123")


async def chunks(*parts: bytes, pause: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        if pause:
            await asyncio.sleep(pause)
        yield part


class TestDownload:
    async def fetch(self, script: Script, url: str = "https://atlas.test/a.png", **kwargs: object) -> bytes:
        options: dict[str, object] = {"trusted_origin": TRUSTED, "max_bytes": 1000, "timeout": 5.0}
        options.update(kwargs)
        async with script.client() as client:
            return await download(client, url, **options)  # type: ignore[arg-type]

    async def test_ok(self) -> None:
        script = Script(httpx.Response(200, content=b"image-bytes"))
        assert await self.fetch(script) == b"image-bytes"
        assert [(r.method, str(r.url)) for r in script.requests] == [("GET", "https://atlas.test/a.png")]

    async def test_follows_a_safe_redirect(self) -> None:
        script = Script(
            httpx.Response(302, headers={"Location": "/b.png"}),
            httpx.Response(200, content=b"moved"),
        )
        assert await self.fetch(script) == b"moved"
        assert [str(r.url) for r in script.requests] == [
            "https://atlas.test/a.png",
            "https://atlas.test/b.png",
        ]

    @pytest.mark.parametrize(
        "location",
        [
            "http://10.0.0.1/latest",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/x",
            "file:///etc/passwd",
        ],
    )
    async def test_refuses_a_redirect_to_a_private_address(self, location: str) -> None:
        script = Script(httpx.Response(302, headers={"Location": location}))
        with pytest.raises(UnsafeURL):
            await self.fetch(script)
        assert len(script.requests) == 1  # the private address was never requested

    async def test_too_many_redirects(self) -> None:
        script = Script(httpx.Response(302, headers={"Location": "/again.png"}))
        with pytest.raises(UnsafeURL, match="too many redirects"):
            await self.fetch(script)
        assert len(script.requests) == 4

    async def test_redirect_checks_do_not_depend_on_the_clients_setting(self) -> None:
        script = Script(
            httpx.Response(302, headers={"Location": "http://169.254.169.254/latest"}),
            httpx.Response(200, content=b"cloud credentials"),
        )
        async with script.client(follow_redirects=True) as client:
            with pytest.raises(UnsafeURL):
                await download(
                    client, "https://atlas.test/a.png", trusted_origin=TRUSTED, max_bytes=1000, timeout=5.0
                )
        assert [r.url.host for r in script.requests] == ["atlas.test"]

    async def test_declared_size_over_the_cap(self) -> None:
        script = Script(httpx.Response(200, content=b"x" * 1001))
        assert script.replies[0].headers["content-length"] == "1001"
        with pytest.raises(ValueError, match="larger than"):
            await self.fetch(script)

    async def test_streamed_size_over_the_cap(self) -> None:
        script = Script(httpx.Response(200, content=chunks(b"x" * 600, b"x" * 600)))
        assert "content-length" not in script.replies[0].headers
        with pytest.raises(ValueError, match="larger than"):
            await self.fetch(script)

    async def test_lying_content_length_is_still_capped(self) -> None:
        script = Script(
            httpx.Response(200, content=chunks(b"x" * 600, b"x" * 600), headers={"Content-Length": "10"})
        )
        with pytest.raises(ValueError, match="larger than"):
            await self.fetch(script)

    async def test_exactly_at_the_cap(self) -> None:
        script = Script(httpx.Response(200, content=chunks(b"x" * 500, b"x" * 500)))
        assert await self.fetch(script) == b"x" * 1000

    async def test_slow_body_times_out(self) -> None:
        script = Script(httpx.Response(200, content=chunks(b"a", b"b", pause=5.0)))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await self.fetch(script, timeout=0.2)
        assert loop.time() - started < 2.0

    @pytest.mark.parametrize("status", [403, 404, 410])
    async def test_error_status(self, status: int) -> None:
        with pytest.raises(ValueError, match=f"HTTP {status}"):
            await self.fetch(Script(httpx.Response(status, text="gone")))

    async def test_transient_errors_are_retried(self, slept: list[float]) -> None:
        script = Script(
            httpx.Response(503, headers={"Retry-After": "1"}),
            httpx.ConnectError,
            httpx.Response(200, content=b"ok"),
        )
        assert await self.fetch(script) == b"ok"
        assert len(script.requests) == 3
        assert slept == [1.0, 2.0]

    async def test_unsafe_first_url_is_never_requested(self) -> None:
        script = Script(httpx.Response(200, content=b"secret"))
        with pytest.raises(UnsafeURL):
            await self.fetch(script, url="http://169.254.169.254/latest/meta-data/")
        assert script.requests == []

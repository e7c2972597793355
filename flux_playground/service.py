"""The backend: a Playground owns the shared HTTP client and the spend guard, and runs requests.

    playground = Playground(settings)
    playground.quote(request)                                    # every provider's price first
    async for snapshot in playground.run(request, ["atlascloud", "segmind"], person="ip:1.2.3.4"): ...
    result = await playground.generate(request, "segmind")       # one provider, same path
    async for outcome in playground.generate_many(request, ["atlascloud", "segmind"]): ...
    await playground.generate(request, "together", via="hf", hf_token=SecretStr("hf_…"))
                                                  # through Hugging Face's router, on that account

`run` (runs.py) is the one path the page, the API, MCP, the CLI and the library take: the guard,
shaping per provider, the fan-out, the spend settled. `call` is one provider's part of it:
validation and the seed before any money is spent, then provider output turned into checked PNGs
with metadata in a worker thread, so the event loop never stalls on image work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Self

import httpx
from pydantic import SecretStr

from . import __version__, runs
from .errors import MalformedResponse, PlaygroundError, ProviderFailed, ProviderTimeout
from .evidence import Evidence
from .hf_router import Via, through_router
from .http import UnsafeURL, answer_cap, download, file_cap, make_client
from .images import (
    BadImage,
    a1111_parameters,
    decode_output_string,
    keep_decoded,
    to_png_with_metadata,
    verify_image,
)
from .limits import Guard
from .models import GeneratedImage, GenerationRequest, GenerationResult, Stage
from .parts import combine, part_requests
from .providers import CallContext, OutputItem, Provider, ProviderOutput, get_provider
from .providers._contract import SeenAnswer
from .quotes import Quote, quote
from .runs import Outcome, ProgressEvent, RunSnapshot, resolve_seed, slot_name
from .settings import Settings
from .stats import Stats, job_times, smooth, stats, summaries

__all__ = ["LOCAL_PERSON", "Outcome", "Playground", "ProgressEvent", "resolve_seed"]

log = logging.getLogger(__name__)

MODEL_NAME = "FLUX.1-schnell"


ProgressCallback = Callable[[ProgressEvent], None]
#: Who a run is counted against when a library or CLI caller does not say (limits.py).
LOCAL_PERSON = "local"
#: How long statistics read from disk are reused: a page refreshing its picker, or a burst of
#: automatic runs, reads the file once (a new recorded run clears it at once).
_STATS_FRESH_S = 5.0


class Playground:
    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient | None = None,
        guard: Guard | None = None,
        *,
        answer_tap: Callable[[SeenAnswer], None] | None = None,
    ) -> None:
        self.settings = settings
        # Sees every provider answer as received: only the live check sets it (live_check.py).
        self._answer_tap = answer_tap
        self._client = client
        self._owns_client = client is None
        self._guard = guard
        # Per provider: how long recent asynchronous jobs took (a smoothed average), for polling;
        # seeded from the recorded runs before the first call (a fresh process polls informed).
        self._job_seconds: dict[str, float] = {}
        self._job_seconds_read: asyncio.Future[dict[str, float]] | None = None
        #: Every provider outcome of a run, for the statistics (evidence.py, stats.py).
        self.evidence = Evidence(settings.data_dir, database_url=settings.database_url)
        # The last statistics read (when, after how many rows written, what), reused briefly.
        self._stats: tuple[float, int, Stats] | None = None
        self._rows_written = 0
        self.evidence.on_write = self._count_row

    @property
    def guard(self) -> Guard:
        """Spend caps, rates, sizes and duplicate clicks (limits.py): every run passes it."""
        if self._guard is None:
            self._guard = Guard(self.settings)
        return self._guard

    async def stats(self, *, fresh: bool = True) -> Stats:
        """How fast and how reliably each provider answered this app's recent runs, per size class
        (stats.py); demo runs in demo mode, real runs otherwise. Runs that ended before the call
        are in it (their rows are written first, for at most a second). `fresh=False` (the page's
        picker, on every change of a control): whatever was read in the last 5 s, without waiting."""
        if fresh:
            await self.evidence.drain(timeout=1.0)
        cached, written = self._stats, self._rows_written
        recent = cached is not None and time.monotonic() - cached[0] < _STATS_FRESH_S
        if cached is not None and recent and (not fresh or cached[1] == written):
            return cached[2]
        read = await asyncio.to_thread(stats, self.settings)
        self._stats = (time.monotonic(), written, read)  # stale as soon as another row is written
        return read

    async def stats_summaries(self, request: GenerationRequest) -> dict[str, str]:
        """Per provider, one line of its statistics for images like `request`'s, for a picker:
        "p50 2.1 s · 98 % ok · 53 runs" (stats.summaries)."""
        return summaries(await self.stats(), request, self.settings)

    def _count_row(self) -> None:
        self._rows_written += 1  # only the one writer thread counts

    async def _expected_job_times(self) -> None:
        """Once: the expected job times the recorded runs give, under what this process learned."""
        if self._job_seconds_read is None:
            demo = self.settings.demo_mode
            self._job_seconds_read = asyncio.ensure_future(
                asyncio.to_thread(lambda: job_times(self.evidence.recent(demo=demo)))
            )
        if self._job_seconds_read.done():
            return
        try:
            read = await asyncio.shield(self._job_seconds_read)
        except Exception as exc:  # no statistics: polling starts uninformed, as before
            read = {}
            log.warning("Could not read the recorded job times: %s", exc)
        for provider, seconds in read.items():
            self._job_seconds.setdefault(provider, seconds)

    def quote(
        self, request: GenerationRequest | None, *, own_keys: Collection[str] = (), hf_account: bool = False
    ) -> list[Quote]:
        """What `request` would cost at every provider, and whether each can take it (quotes.py)."""
        return quote(request, self.settings, own_keys=own_keys, hf_account=hf_account)

    def run(
        self,
        request: GenerationRequest,
        providers: Sequence[str],
        *,
        person: str = LOCAL_PERSON,
        api_keys: Mapping[str, SecretStr | None] | None = None,
        hf_token: SecretStr | None = None,
        via: Via | None = None,
        tick: float | None = 0.5,
    ) -> AsyncGenerator[RunSnapshot, None]:
        """The one path: see runs.py."""
        return runs.run(
            self, request, providers, person=person, api_keys=api_keys, hf_token=hf_token, via=via, tick=tick
        )

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    async def aclose(self) -> None:
        await self.evidence.drain()  # the runs of a CLI call are recorded before it exits
        self.evidence.close()
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
        if self._guard is not None:
            self._guard.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- one provider, through the one path --------------------------------------------------------

    async def generate(
        self,
        request: GenerationRequest,
        provider: str,
        *,
        api_key: SecretStr | None = None,
        person: str = LOCAL_PERSON,
        via: Via | None = None,
        hf_token: SecretStr | None = None,
    ) -> GenerationResult:
        """Run `request` at one provider (via `run`), or at the one an automatic route ("auto",
        "auto:fastest:0.004") chooses: `result.provider` says which, `result.route` what was tried.
        Raises a PlaygroundError with words.

        `via="hf"` with `hf_token`: through Hugging Face's router, billed to that Hugging Face account.
        """
        last = None
        keys = {provider: api_key}
        async for last in self.run(  # noqa: B007
            request, [provider], person=person, api_keys=keys, hf_token=hf_token, via=via, tick=None
        ):
            pass
        assert last is not None
        slot = last.slots[slot_name(provider)]
        if slot.result is None:
            raise slot.failure or PlaygroundError(runs.GENERIC_ERROR)
        return slot.result

    async def generate_many(
        self,
        request: GenerationRequest,
        providers: Iterable[str],
        *,
        api_keys: Mapping[str, SecretStr | None] | None = None,
        person: str = LOCAL_PERSON,
        hf_token: SecretStr | None = None,
        via: Via | None = None,
    ) -> AsyncIterator[Outcome]:
        """The same request (same seed) at several providers; outcomes as they arrive (via `run`)."""
        snapshots = self.run(
            request, list(providers), person=person, api_keys=api_keys, hf_token=hf_token, via=via, tick=None
        )
        async for snapshot in snapshots:
            for name in snapshot.arrived:
                slot = snapshot.slots[name]
                yield Outcome(name, result=slot.result, error=slot.failure, route=slot.route)

    async def call(
        self,
        request: GenerationRequest,
        provider: str,
        *,
        api_key: SecretStr | None = None,
        on_progress: ProgressCallback | None = None,
        via: Via = "direct",
    ) -> GenerationResult:
        """One provider's part of a run (runs.py calls it; the guard has admitted the run): the
        request shaped for the provider, checked, sent, and its images made into PNGs. `via="hf"`:
        through Hugging Face's router, `api_key` being the person's Hugging Face token. More images
        than the provider makes per call take several calls at once (parts.py)."""
        chosen = get_provider(provider)
        if via == "hf":
            chosen = through_router(chosen)
        request = chosen.shape(resolve_seed(request), self.settings)
        parts = part_requests(request, chosen.get_capabilities(self.settings).max_images)
        if len(parts) == 1:
            return await self._call_once(chosen, request, api_key, on_progress)
        for part in parts:
            chosen.validate(part, self.settings)  # all of them before any is sent
        outcomes = await asyncio.gather(
            *(self._call_once(chosen, part, api_key, on_progress) for part in parts), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, PlaygroundError):
                raise outcome
        estimates = [chosen.estimate(part, self.settings) for part in parts]
        return combine(request, outcomes, estimates)  # type: ignore[arg-type]

    async def _call_once(
        self,
        chosen: Provider,
        request: GenerationRequest,
        api_key: SecretStr | None,
        on_progress: ProgressCallback | None,
    ) -> GenerationResult:
        chosen.validate(request, self.settings)
        key = chosen.resolve_key(self.settings, api_key)
        call = chosen.build_call(request, key, self.settings)
        await self._expected_job_times()

        def progress(stage: Stage, detail: str | None) -> None:
            if on_progress is not None:
                on_progress(ProgressEvent(chosen.name, stage, detail))

        # Read bounds from the size the provider makes (an aspect-ratio provider may make more pixels
        # than were asked for), or a whole answer could be refused after it was billed.
        made = chosen.output_size(request, self.settings)
        pixels = max(request.width * request.height, made[0] * made[1])
        ctx = CallContext(
            client=self.client,
            settings=self.settings,
            key=key,
            progress=progress,
            expected_job_s=self._job_seconds.get(chosen.name),
            max_answer_bytes=answer_cap(request.num_images, pixels, self.settings.max_download_bytes),
            tap=self._answer_tap,
        )
        started = time.perf_counter()
        progress("submitting", None)
        try:
            output = await chosen.run(ctx, call)
            answered = time.perf_counter()
            if output.job_s is not None:
                self._remember_job_time(chosen.name, output.job_s)
            progress("downloading", None)
            cap = file_cap(pixels, self.settings.max_download_bytes)
            raw = await asyncio.gather(*(self._fetch(chosen, item, cap) for item in output.items))
            downloaded = time.perf_counter()
            estimated = chosen.estimate(request, self.settings)
            progress("saving", None)
            result = await asyncio.to_thread(
                self._finish,
                chosen,
                request,
                call.json,
                output,
                raw,
                estimated,
                {"provider_s": answered - started, "download_s": downloaded - answered},
                started,
            )
        except PlaygroundError as exc:
            # Once the provider accepted the job, a later failure (polling, download, a bad image)
            # may still have been billed; spend accounting needs to know.
            exc.billed = exc.billed or ctx.accepted
            raise
        progress("done", None)
        if output.job_s is not None:  # recorded with the run: the next process's polling starts from it
            result = result.model_copy(
                update={"timings": {**result.timings, "job_s": round(output.job_s, 3)}}
            )
        return result

    async def _fetch(self, provider: Provider, item: OutputItem, max_bytes: int) -> bytes:
        """Any output form (bytes, URL, data URI, base64) to bytes; URLs are fetched safely."""
        if isinstance(item, bytes):
            return item
        if not item.startswith(("http://", "https://")):
            try:
                return decode_output_string(item)
            except BadImage as exc:
                raise MalformedResponse(provider.label, f"{exc}. Try again.") from exc
        try:
            return await download(
                self.client,
                item,
                trusted_origin=provider.base_url(self.settings),
                max_bytes=max_bytes,
                timeout=self.settings.download_timeout,
            )
        except UnsafeURL as exc:
            raise MalformedResponse(provider.label, f"{exc}; the image was not downloaded.") from exc
        except TimeoutError as exc:
            raise ProviderTimeout(
                provider.label,
                f"the image download took longer than {self.settings.download_timeout:g} s. Try again.",
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
            raise ProviderFailed(provider.label, f"the image could not be downloaded ({reason}).") from exc

    def _finish(
        self,
        provider: Provider,
        request: GenerationRequest,
        payload: dict[str, object],
        output: ProviderOutput,
        raw: list[bytes],
        estimated: Decimal | None,
        timings: dict[str, float],
        started: float,
    ) -> GenerationResult:
        """Runs in a worker thread: verify every image, then write PNGs that describe themselves."""
        checked = []
        for data in raw:
            try:
                checked.append(verify_image(data, max_pixels=self.settings.max_image_pixels))
            except BadImage as exc:
                raise MalformedResponse(provider.label, f"{exc}. Try again.") from exc
        latency = time.perf_counter() - started
        cost = output.reported_cost_usd
        cost_text = (
            f"${cost} (reported)"
            if cost is not None
            else (f"${estimated} (estimated)" if estimated is not None else "unknown")
        )
        caps = provider.get_capabilities(self.settings)
        seed = output.seed if output.seed is not None else (request.seed if caps.seed else None)
        images = []
        for image in checked:
            parameters = a1111_parameters(
                request.prompt,
                {
                    "Steps": request.steps if caps.steps else None,
                    "Sampler": request.sampler,
                    "Schedule type": request.scheduler,
                    "Seed": seed,
                    "Size": f"{image.width}x{image.height}",
                    "Model": MODEL_NAME,
                    "Provider": provider.label,
                    "Provider model": provider.model_id,
                    "Cost": cost_text,
                    "Latency": f"{latency:.2f}s",
                    "Version": f"flux-playground {__version__}",
                },
            )
            provenance = json.dumps(
                {
                    "app": f"flux-playground {__version__}",
                    "provider": provider.name,
                    "model": provider.model_id,
                    "request": request.model_dump(mode="json"),
                    # What the provider was able to honour of the request (docs/providers/).
                    "honoured": {
                        "seed": caps.seed or output.seed is not None,
                        "steps": caps.steps,
                        "size": [image.width, image.height] == [request.width, request.height],
                    },
                    "payload": payload,
                    "estimated_cost_usd": _decimal_text(estimated),
                    "reported_cost_usd": _decimal_text(cost),
                    "provider_request_id": output.request_id,
                    "timings": {k: round(v, 4) for k, v in timings.items()},
                },
                ensure_ascii=False,
            )
            png = to_png_with_metadata(image, {"parameters": parameters, "flux_playground": provenance})
            generated = GeneratedImage(png=png, width=image.width, height=image.height, seed=seed)
            if image.image is not None:
                # History.add makes its thumbnail from these pixels rather than decoding the PNG again.
                keep_decoded(generated, image.image)
                image.image = None
            images.append(generated)
        return GenerationResult(
            provider=provider.name,
            provider_label=provider.label,
            request=request,
            images=images,
            payload=payload,
            estimated_cost_usd=estimated,
            reported_cost_usd=cost,
            latency_s=time.perf_counter() - started,
            timings={**timings, "save_s": time.perf_counter() - started - sum(timings.values())},
            provider_request_id=output.request_id,
            remaining_credits=output.remaining_credits,
        )

    def _remember_job_time(self, provider: str, seconds: float) -> None:
        self._job_seconds[provider] = smooth(self._job_seconds.get(provider), seconds)


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")

"""The public, stateless API (gradio_client): `generate` (`/gradio_api/call/generate`), the same run as
the page, answered with the images and a JSON summary, nothing kept in a history; and `stats`, the
providers' measured speed and reliability."""

# No `from __future__ import annotations`: Gradio evaluates handler annotations (see controls.py).

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr
from pydantic import SecretStr

from ..errors import PlaygroundError
from ..quotes import approximate
from ..runs import build_request, check_providers, image_seed, summarize
from ..service import Playground
from . import render
from .identity import hf_token, spend_person
from .refusals import failed, refuse
from .scratch import Scratch

__all__ = ["Api"]

log = logging.getLogger(__name__)


class Api:
    def __init__(self, playground: Playground, scratch: Scratch) -> None:
        self.playground, self.scratch = playground, scratch
        #: Set by build_page: drops the server-side session Gradio made for one API call.
        self.forget_session: Callable[[str], None] | None = None

    async def stats(self) -> dict[str, Any]:
        """How fast and how reliably each provider answered this app's recent runs (no prompts, no
        people): per provider and size class, p50/p95 seconds from the call to the saved image, the
        share of runs that gave an image, the latest failure and when, and how many runs that rests on."""
        try:
            return (await self.playground.stats()).model_dump(mode="json")
        except Exception:
            log.exception("The statistics could not be read")
            raise failed() from None

    async def generate(
        self,
        prompt: str,
        providers: list[str],
        width: int = 1024,
        height: int = 1024,
        steps: int = 4,
        seed: int | None = None,
        num_images: int = 1,
        sampler: str | None = None,
        scheduler: str | None = None,
        profile: gr.OAuthProfile | None = None,
        request: gr.Request | None = None,
        oauth_token: gr.OAuthToken | None = None,
    ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """Generate images with FLUX.1 [schnell] at one or more hosted providers at once.

        Every provider gets the same prompt and seed; the result lists each provider's images with
        captions, and a summary with the seed, cost and latency per provider (or its error).

        With a Hugging Face token (gradio_client: `Client(url, oauth_token="hf_…")`, or a signed-in
        session), the providers Hugging Face routes that this server has no key for run through
        Hugging Face's router, billed to that Hugging Face account (summary: "via": "hf"). The token is
        used for this call only: never stored, logged or echoed.

        Args:
            prompt: What the image should show.
            providers: Provider names to run at, e.g. ["deepinfra", "segmind"]; all run concurrently.
                Or an automatic route: "auto" (the cheapest ready provider), "auto:fastest" (by this
                app's recent runs), "auto:cheapest:0.004" (at most $0.004 a run); if it refuses the
                job before accepting it (nothing billed), the next one is tried, at most twice.
            width: Image width in pixels (multiples of 16 work everywhere).
            height: Image height in pixels (multiples of 16 work everywhere).
            steps: Denoising steps, 1 to 4 suits FLUX.1 [schnell]; some providers take no steps.
            seed: Seed for reproducible images; None or -1 for a random one (the seed used is returned).
            num_images: Images per provider, 1 to 4.
            sampler: Sampler name, only for providers that take one; empty for the default.
            scheduler: Scheduler name, only for providers that take one; empty for the default.

        Returns:
            Every image captioned with provider, seed, latency and cost; a JSON summary per provider
            (for "auto": the provider that served it, and the route: what was tried and why).
        """
        try:
            fields = (prompt, providers, width, height, steps, seed, num_images, sampler, scheduler)
            person = spend_person(profile, request)
            return await self._generate(*fields, person=person, token=hf_token(oauth_token))
        finally:
            # Gradio 6.31 keeps a session for each /gradio_api/call request (up to 10 000); this
            # endpoint keeps nothing between calls, so its session goes once the call is answered.
            session = getattr(request, "session_hash", None)
            if self.forget_session is not None and isinstance(session, str):
                self.forget_session(session)

    async def _generate(
        self, *fields: object, person: str, token: SecretStr | None
    ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        prompt, providers, width, height, steps, seed, num_images, sampler, scheduler = fields
        try:
            names = check_providers(providers)
            wanted = build_request(prompt, width, height, steps, seed, num_images, sampler, scheduler)
            last = None
            runs = self.playground.run(wanted, names, person=person, hf_token=token, tick=None)
            async for last in runs:  # noqa: B007
                pass
            assert last is not None
            files: dict[str, list[str]] = {}
            gallery: list[tuple[str, str]] = []
            for name, slot in last.slots.items():
                if slot.result is not None:
                    paths = await asyncio.to_thread(self.scratch.write, slot.result)
                    files[name] = [str(path) for path in paths]
                    settings = self.playground.settings
                    caption = render.image_caption(
                        slot.result,
                        image_seed(slot.result),
                        approximate=approximate(slot.result.provider, settings),  # "auto": who served
                        demo=settings.demo_mode,
                    )
                    gallery += [(str(path), caption) for path in paths]
            summary = summarize(last, files)
        except PlaygroundError as exc:  # refused before any call: a limit, a cap, a size
            raise refuse(exc.message) from None
        except Exception:
            log.exception("The API's generation failed")
            raise failed() from None
        if not gallery:
            errors = "; ".join(str(e["error"]) for e in summary["providers"].values())
            raise refuse(f"No provider produced an image. {errors}")
        return gallery, summary

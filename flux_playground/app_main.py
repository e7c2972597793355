"""Serving the page: what `python app.py` (the Space's entry point) and `flux-playground` with no
arguments both run.

With no provider key configured it runs in demo mode against the built-in emulator. The address comes
from GRADIO_SERVER_NAME (loopback unless set, e.g. 0.0.0.0 in a container) and GRADIO_SERVER_PORT
(7860 unless set).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from types import FrameType

__all__ = ["main"]


def main() -> None:
    from .demo import start_demo
    from .errors import ConfigurationError, PlaygroundError
    from .settings import Settings
    from .ui import freeze_startup_heap, launch_page

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO; provider job URLs are nobody's business in the Space logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = Settings()
    except ConfigurationError as exc:  # e.g. FLUX_PLAYGROUND_OPENAI_PROVIDERS: one sentence, no traceback
        raise SystemExit(f"error: {exc}") from None
    if os.getenv("SPACE_ID") and not settings.demo_mode and settings.daily_budget_usd is None:
        logging.getLogger("flux_playground").warning(
            "This Space generates on its owner's keys with no daily spend cap: anyone can spend them. "
            "Set FLUX_PLAYGROUND_DAILY_BUDGET_USD (and FLUX_PLAYGROUND_PER_USER_DAILY_BUDGET_USD)."
        )
    with contextlib.ExitStack() as stack:
        if settings.demo_mode:
            settings = stack.enter_context(start_demo(settings))
        # On Spaces Gradio's address comes from GRADIO_SERVER_NAME; locally the page stays on loopback.
        try:
            page = launch_page(settings)
        except PlaygroundError as exc:  # its database out of reach, a replica off the shared volume
            raise SystemExit(f"error: {exc}") from None
        print(f"* Running on {page.url}  (MCP: {page.url}gradio_api/mcp/)", flush=True)
        freeze_startup_heap()
        _stop_on_sigterm()
        page.block()  # serves until Ctrl+C or SIGTERM (the Space or `docker stop`)


def _stop_on_sigterm() -> None:
    """`docker stop` and a Space's restart send SIGTERM. A container's PID 1 has no default action for
    it, so the process would ignore it and be killed 10 s later; anywhere else it would die without
    closing the server. As Ctrl+C, Gradio's block() closes the server and the process exits 0."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
        signal.signal(signal.SIGTERM, interrupt)

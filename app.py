"""FLUX.1 [schnell] playground: `python app.py`, or the Hugging Face Space's entry point.

With no provider key configured it runs in demo mode against the built-in emulator.
"""

from __future__ import annotations

import contextlib
import logging
import os


def main() -> None:
    from flux_playground.demo import start_demo
    from flux_playground.settings import Settings
    from flux_playground.ui import (
        LAUNCH_KWARGS,
        QUEUE_SIZE,
        allowed_paths,
        create_demo,
        freeze_startup_heap,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO; provider job URLs are nobody's business in the Space logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings()
    if os.getenv("SPACE_ID") and not settings.demo_mode and settings.daily_budget_usd is None:
        logging.getLogger("flux_playground").warning(
            "This Space generates on its owner's keys with no daily spend cap: anyone can spend them. "
            "Set FLUX_PLAYGROUND_DAILY_BUDGET_USD (and FLUX_PLAYGROUND_PER_USER_DAILY_BUDGET_USD)."
        )
    with contextlib.ExitStack() as stack:
        if settings.demo_mode:
            settings = stack.enter_context(start_demo(settings))
        demo = create_demo(settings)
        demo.queue(max_size=QUEUE_SIZE).launch(
            mcp_server=True,
            # On Spaces Gradio picks the address itself (GRADIO_SERVER_NAME); locally stay on loopback.
            server_name=os.getenv("GRADIO_SERVER_NAME", "127.0.0.1"),
            allowed_paths=allowed_paths(settings),
            prevent_thread_lock=True,
            **LAUNCH_KWARGS,
        )
        freeze_startup_heap()
        demo.block_thread()  # serves until Ctrl+C (or the Space stops it)


if __name__ == "__main__":
    main()

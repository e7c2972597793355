"""Serve the real page for the HTTP and browser benchmarks, in its own process.

    python -m bench._serve --port P --emulator http://127.0.0.1:E --data DIR --mode tuned|naive|floor

`tuned`: the app exactly as `app.py` launches it (`launch_page(settings)`: the gate, the patches, the
queue), with every provider pointed at the benchmark's emulator process.

`naive`: the same Blocks with Gradio's defaults put back: every event's `concurrency_limit` set to
"default" (so `queue(default_concurrency_limit=1)` applies: one generation at a time per event) and
`max_threads` left at Gradio's default of 40. Nothing else differs.

`floor`: not the app. A Blocks with one `async def` endpoint `/generate` that sleeps for the provider
latency and returns a short text, launched like `tuned`: what Gradio's queue costs on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from flux_playground.demo import point_at
from flux_playground.providers import PROVIDERS
from flux_playground.settings import Settings


def _settings(emulator: str, data: Path) -> Settings:
    urls = {name: f"{emulator}/{name}" for name in PROVIDERS}
    return point_at(Settings(_env_file=None, data_dir=data, demo=True), urls, "bench-key")


def _floor(latency: float) -> Any:
    import gradio as gr

    async def generate(prompt: str) -> str:
        await asyncio.sleep(latency)
        return f"done: {prompt[:20]}"

    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.Textbox()
        box.submit(generate, box, out, api_name="generate", concurrency_limit=None)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--emulator", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--mode", choices=("tuned", "naive", "floor"), default="tuned")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--ready", type=Path, help="a file to create once launch() has returned")
    args = parser.parse_args()
    os.chdir(args.data)

    from flux_playground.ui import (
        LAUNCH_KWARGS,
        QUEUE_SIZE,
        allowed_paths,
        create_demo,
        freeze_startup_heap,
        launch_page,
    )

    settings = _settings(args.emulator, args.data)
    if args.mode == "tuned":
        page = launch_page(settings, server_name="127.0.0.1", server_port=args.port, quiet=True, oauth=False)
        demo = page.demo
    else:
        kwargs = dict(LAUNCH_KWARGS)
        if args.mode == "floor":
            demo = _floor(args.latency)
            demo.queue(max_size=QUEUE_SIZE)
        else:  # naive: Gradio's defaults around the same page (no gate, default concurrency)
            demo = create_demo(settings, oauth=False)
            for fn in demo.fns.values():
                fn.concurrency_limit = "default"
            kwargs.pop("max_threads", None)
            demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
        demo.launch(
            server_name="127.0.0.1",
            server_port=args.port,
            allowed_paths=allowed_paths(settings),
            quiet=True,
            prevent_thread_lock=True,
            **kwargs,
        )
    freeze_startup_heap()  # as app.py does
    # launch() checks the server after it starts answering; load must wait until it has returned.
    if args.ready is not None:
        args.ready.write_text("ready")
    demo.block_thread()


if __name__ == "__main__":
    main()

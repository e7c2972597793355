"""``python -m flux_playground.emulator``: run the emulator in the foreground."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from .app import create_app
from .registry import EMULATED
from .server import bind_socket, make_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flux_playground.emulator",
        description=f"Loopback emulator of the FLUX.1 [schnell] APIs of {', '.join(EMULATED)}, "
        "with placeholder images and injectable faults.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 = any free one (default 8765)")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per generation (default 0.3)")
    args = parser.parse_args(argv)
    try:
        sock = bind_socket(args.host, args.port)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    host = f"[{args.host}]" if ":" in args.host else args.host
    origin = f"http://{host}:{sock.getsockname()[1]}"
    app = create_app(latency=args.latency)
    print(f"# flux-playground provider emulator on {origin} (placeholder images, not FLUX)")
    for provider in app.state.providers:  # the product reads <PROVIDER>_BASE_URL
        print(f"export {provider.upper()}_BASE_URL={origin}/{provider}")
    print("# Any API key works, except keys starting with 'invalid' (those get 401).")
    print(f"# Control API and fault list: {origin}/_emulator/  (Ctrl+C to stop)", flush=True)
    uvicorn.Server(make_config(app)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`flux-playground healthcheck`: does the page on this machine answer? Exit 0 if so, else 1 with one
sentence on stderr. The container image's HEALTHCHECK runs it every 30 s.

It asks for `/robots.txt`: Gradio answers it with a constant line, without building a session or the
page's config, and the gate lets it through without any per-person limit (it counts only open
connections per address, and a health check holds one for milliseconds). Gradio is never imported:
a check costs about 0.4 s of CPU (Python, and the package's pydantic and httpx), every 30 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

__all__ = ["ROUTE", "check", "default_url", "main"]

ROUTE = "robots.txt"
_TIMEOUT_S = 4.0
# A server bound to every address is asked on loopback; one bound to a given address, there.
_ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}


def default_url() -> str:
    """The page's own address from the variables it is started with (GRADIO_SERVER_NAME/_PORT)."""
    name = os.environ.get("GRADIO_SERVER_NAME", "").strip()
    host = _ANY_ADDRESS.get(name, f"[{name}]" if ":" in name else name)
    port = os.environ.get("GRADIO_SERVER_PORT", "").strip() or "7860"
    return f"http://{host}:{port}/"


def check(url: str, timeout_s: float = _TIMEOUT_S) -> str | None:
    """None if the page at `url` answers its robots.txt, else why not and what to look at, in words."""
    target = url.rstrip("/") + "/" + ROUTE
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as answer:
            body = answer.read(256)
    except urllib.error.HTTPError as exc:
        return f"{target} answered HTTP {exc.code}. Is another server on this port, or a proxy in between?"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{target} did not answer ({reason}). Is the app running, on this port? Its log says why not."
    if not body.startswith(b"User-agent:"):
        return f"{target} answered, but not as the playground does. Is another server on this port?"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flux-playground healthcheck",
        description="Exit 0 if the page answers, else 1 with the reason (for container health checks).",
    )
    parser.add_argument("--url", help="The page's address. Default: from GRADIO_SERVER_NAME/_PORT.")
    args = parser.parse_args(argv)
    url = args.url or default_url()
    if not url.startswith(("http://", "https://")):
        parser.error(f"--url must start with http:// or https://, not {url[:40]!r}")
    started = time.monotonic()
    problem = check(url)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    print(f"ok: {url} answered in {(time.monotonic() - started) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

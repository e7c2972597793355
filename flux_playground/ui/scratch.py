"""Where images that are not kept in a history go: the API's and MCP's, and a failed history write.

A folder inside Gradio's file cache, so Gradio serves these files as they are (`/gradio_api/file=`)
instead of hashing and copying each into the cache on the event loop. Files older than an hour are
removed every few minutes (listing the folder on every call made N simultaneous calls O(N²) stats).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from pathlib import Path

from gradio.utils import get_upload_folder

from ..models import GenerationResult
from ..runs import image_seed

__all__ = ["Scratch"]

MAX_AGE_S = 3600.0
PRUNE_EVERY_S = 300.0


class Scratch:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path(get_upload_folder()) / f"flux-playground-{secrets.token_hex(8)}"
        self._pruned_at = -PRUNE_EVERY_S

    def write(self, result: GenerationResult) -> list[Path]:
        """The result's PNGs (metadata intact) in the folder; blocking (call it in a thread)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._prune()
        seed = image_seed(result)
        paths = []
        for index, image in enumerate(result.images):
            path = self.folder / f"flux-{result.provider}-{seed}-{index + 1}-{secrets.token_hex(6)}.png"
            path.write_bytes(image.png)
            paths.append(path)
        return paths

    def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        cutoff = time.time() - MAX_AGE_S
        for old in self.folder.glob("*.png"):
            with contextlib.suppress(FileNotFoundError):
                if old.stat().st_mtime < cutoff:
                    old.unlink()

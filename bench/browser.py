"""Benchmark 7: in the browser, from the click on Generate to the image on screen.

Headless Debian Chromium through Playwright (never `playwright install`), the real page served by
`bench._serve` (as `app.py` launches it), DeepInfra in the emulator at 1 s. The clock runs in the page:
a capture-phase click listener on #generate stamps `performance.now()`, and a requestAnimationFrame
loop stamps the first frame in which a new `<img>` in `#result-deepinfra` is complete, decoded
(`naturalWidth > 0`) and laid out. Every run after a warm-up one, on the same page.

    python -m bench.browser [--quick]
"""

from __future__ import annotations

import os
import re
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from .common import EmulatorProcess, main, percentile, temp_dir
from .concurrency import AppProcess

__all__ = ["run"]

PROVIDER = "deepinfra"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
_ARM = """(provider) => {
    const selector = `#result-${provider} .fp-images img`;
    const seen = new Set([...document.querySelectorAll(selector)].map((img) => img.src));
    window.__benchClick = null;
    document.querySelector('#generate').addEventListener(
        'click', () => { window.__benchClick ??= performance.now(); }, {capture: true, once: true});
    window.__benchInserted = null;
    window.__benchShown = new Promise((resolve) => {
        const deadline = performance.now() + 30000;
        const check = () => {
            const img = [...document.querySelectorAll(selector)].find((i) => !seen.has(i.src));
            if (img) { window.__benchInserted ??= performance.now(); }
            if (img && img.complete && img.naturalWidth > 0 && img.getClientRects().length > 0) {
                resolve(performance.now());
            } else if (performance.now() > deadline) {
                resolve(null);
            } else {
                requestAnimationFrame(check);
            }
        };
        requestAnimationFrame(check);
    });
}"""


def _choose_only(page: Page, label: str) -> None:
    for box in page.locator("#providers label").all():
        wanted = label in box.inner_text()
        checkbox = box.locator("input")
        if checkbox.is_checked() != wanted:
            checkbox.click()


def _one(page: Page, n: int) -> tuple[float, float, float | None]:
    """(click to image shown, click to <img> in the DOM, the Playground's own latency from the caption)."""
    page.fill("#prompt textarea", f"a red fox in the snow, take {n}")
    page.evaluate(_ARM, PROVIDER)
    page.click("#generate")
    shown = page.evaluate("window.__benchShown")
    clicked = page.evaluate("window.__benchClick")
    inserted = page.evaluate("window.__benchInserted")
    if shown is None or clicked is None or inserted is None:
        raise RuntimeError("the image did not appear within 30 s")
    # Let the run finish (history refresh) before the next click.
    expect(page.locator(f"#result-{PROVIDER} .fp-slot.done")).to_be_visible(timeout=30_000)
    caption = page.locator(f"#result-{PROVIDER} .fp-caption").first.inner_text()
    found = re.search(r"([\d.]+) s", caption)
    page.wait_for_timeout(300)
    return (
        (float(shown) - float(clicked)) / 1000,
        (float(inserted) - float(clicked)) / 1000,
        float(found.group(1)) if found else None,
    )


def run(quick: bool = False) -> dict[str, Any]:
    latency = 0.2 if quick else 1.0
    runs = 1 if quick else 6
    with EmulatorProcess(latency) as emulator, temp_dir("bench-browser-") as data:
        with AppProcess(emulator, data, "tuned", latency) as app, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), headless=True, args=ARGS
            )
            try:
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                page.set_default_timeout(30_000)
                page.goto(app.url)
                expect(page.locator("#history-count")).to_contain_text("private to")
                _choose_only(page, "DeepInfra")
                _one(page, 0)  # warm-up
                samples = [_one(page, n) for n in range(1, runs + 1)]
            finally:
                browser.close()
    times = [shown for shown, _, _ in samples]
    inserted = [dom for _, dom, _ in samples]
    playground = [own for _, _, own in samples if own is not None]
    return {
        "latency_s": latency,
        "provider": PROVIDER,
        "runs": runs,
        "click_to_image_p50_s": round(percentile(times, 50), 3),
        "click_to_image_max_s": round(max(times), 3),
        "overhead_p50_ms": round((percentile(times, 50) - latency) * 1000, 1),
        "ratio_p50": round(percentile(times, 50) / latency, 3),
        # Where the time goes: the Playground's own submit-to-finished time (the caption's latency,
        # 2 decimals), then the page (history save, Gradio, SSE, DOM), then the image download.
        "playground_latency_p50_s": round(percentile(playground, 50), 3) if playground else None,
        "click_to_img_in_dom_p50_s": round(percentile(inserted, 50), 3),
    }


if __name__ == "__main__":
    main(run)

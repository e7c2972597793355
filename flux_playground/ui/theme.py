"""Look and keyboard: theme, CSS, the Ctrl/Cmd+Enter handler. Built offline (no hub theme, no web font)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

__all__ = ["CSS", "HEAD", "JS", "LAUNCH_KWARGS", "make_theme"]

_SYSTEM_FONTS = (
    "ui-sans-serif",
    "system-ui",
    "-apple-system",
    "Segoe UI",
    "Roboto",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
)
_MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")


def make_theme() -> gr.themes.Base:
    # Soft's look with system fonts: nothing is fetched, and text renders at once.
    return gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="violet",
        neutral_hue="slate",
        radius_size="md",
        font=_SYSTEM_FONTS,
        font_mono=_MONO_FONTS,
    ).set(
        body_background_fill="*neutral_50",
        body_background_fill_dark="*neutral_950",
        block_border_width="1px",
        block_shadow="0 1px 2px rgb(15 23 42 / 0.04)",
        button_primary_shadow="0 1px 2px rgb(67 56 202 / 0.35)",
    )


#: The page's keyboard and touch: Ctrl/Cmd+Enter runs, arrows and swipes page the viewer, copy buttons.
JS = (Path(__file__).with_name("page.js")).read_text(encoding="utf-8")

HEAD = (
    '<meta name="description" content="Run FLUX.1 [schnell] on several hosted providers side by side, '
    'with prices before you pay and a private history.">'
    '<meta name="theme-color" content="#4f46e5">'
    # Outside the app's root, which launch(css=...) rules cannot reach (Gradio scopes them under
    # .contain): on a phone, Gradio's 32 px side padding and its one-line footer (381 px wide)
    # would make the whole page scroll sideways.
    "<style>@media (max-width: 720px) { .gradio-container .main.fillable "
    "{ padding-left: 8px !important; padding-right: 8px !important; } "
    ".gradio-container footer { flex-wrap: wrap; justify-content: center; row-gap: 4px; } }</style>"
)

CSS = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")

#: Everything that shapes the page at launch; tests launch with the same dict.
LAUNCH_KWARGS: dict[str, Any] = {
    "theme": make_theme(),
    "css": CSS,
    "js": JS,
    "head": HEAD,
    "run_history": False,  # nothing of a run (prompt, pasted keys) is kept in the browser by Gradio
    "footer_links": ["api", "gradio", "settings"],
    "max_threads": 200,  # Gradio's queue runs at most this many events at once, async ones too
    "max_file_size": "1mb",  # the page uploads nothing; Gradio's upload route would take any size
}

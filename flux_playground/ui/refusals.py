"""How the page says no: an expected refusal is one line in the log and words on the page."""

from __future__ import annotations

import logging

import gradio as gr

from ..runs import GENERIC_ERROR

__all__ = ["failed", "refuse"]

log = logging.getLogger("flux_playground.ui")


def refuse(message: str, *, title: str | None = None) -> gr.Error:
    """An expected refusal (bad input, a limit, a cap): shown to the person, one line in the log.

    Gradio prints a whole traceback for every gr.Error unless told not to; a public Space refuses
    many calls, and one attacker made 295 refusals into 295 tracebacks (docs/reliability.md).
    """
    log.info("Refused: %s", message)
    return gr.Error(message, title=title or "Error", print_exception=False)


def failed() -> gr.Error:
    """Our own code failed: the caller's log.exception has the details, the person gets words."""
    return gr.Error(GENERIC_ERROR, print_exception=False)

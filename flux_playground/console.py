"""`flux-playground`, the command `pip install` puts on the PATH.

    flux-playground                          serve the page, exactly as `python app.py` does
    flux-playground generate|prices|providers …   the CLI (`python -m flux_playground`, cli.py)
    flux-playground emulator …               the provider emulator (`python -m flux_playground.emulator`)
    flux-playground healthcheck              exit 0 if the page on this machine answers (healthcheck.py)

Each word is handed to the module that owns it, imported only then: the health check, which a
container runs every 30 s, never loads Gradio.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = """\
usage: flux-playground                   serve the page (http://127.0.0.1:7860; demo mode without keys)
       flux-playground emulator …        the provider emulator (--help for its options)
       flux-playground healthcheck       exit 0 if the page on this machine answers
       flux-playground COMMAND …         the command line below
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        from .app_main import main as serve

        serve()
        return 0
    if args[0] == "emulator":
        from .emulator.__main__ import main as emulator

        return emulator(args[1:])
    if args[0] == "healthcheck":
        from .healthcheck import main as healthcheck

        return healthcheck(args[1:])
    from .cli import main as cli

    if args[0] in ("-h", "--help"):
        print(_USAGE)
    return cli(args)

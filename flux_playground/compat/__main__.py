"""`python -m flux_playground.compat`: each compatibility module's expectations, and what is installed.

Prints, per internal, the fingerprint written in the module and the one of the installed source, so
whoever upgrades a dependency sees at once what changed.
"""

from __future__ import annotations

import importlib
import sys

from . import Expectation, fingerprint, problems

MODULES = (
    "flux_playground.compat.gradio",
    "flux_playground.compat.httpcore",
    "flux_playground.compat.uvicorn",
)


def main() -> int:
    failed = False
    for name in MODULES:
        expectation: Expectation = importlib.import_module(name).EXPECTED
        print(f"{name}: {expectation.package} {expectation.version}")
        for target, written in expectation.sources.items():
            try:
                actual = fingerprint(target)
            except (AttributeError, ImportError, OSError, TypeError) as exc:
                actual = f"missing ({type(exc).__name__})"
            mark = "ok" if actual == written else "CHANGED"
            print(f"  {mark:7} {target}  written {written}  installed {actual}")
        failed = failed or bool(problems(expectation))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""FLUX.1 [schnell] playground: `python app.py`, or the Hugging Face Space's entry point.

The logic lives in the package (flux_playground/app_main.py), so the installed `flux-playground`
command serves exactly the same page; the Space keeps running this file.
"""

from __future__ import annotations

from flux_playground.app_main import main

if __name__ == "__main__":
    main()

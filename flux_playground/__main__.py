"""`python -m flux_playground ...`: see flux_playground/cli.py."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())

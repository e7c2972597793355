"""flux-playground: FLUX.1 [schnell] across hosted providers, with prices, history and an emulator.

from flux_playground import GenerationRequest, Playground, Settings

async with Playground(Settings()) as playground:
    result = await playground.generate(GenerationRequest(prompt="a red fox"), "deepinfra")
    result = await playground.generate(GenerationRequest(prompt="a red fox"), "auto:fastest")  # .route
    figures = await playground.stats()  # how fast and how reliably each provider answered our runs
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import PlaygroundError  # noqa: E402
from .models import GeneratedImage, GenerationRequest, GenerationResult  # noqa: E402
from .providers import PROVIDERS, get_provider  # noqa: E402
from .quotes import Quote, quote  # noqa: E402
from .route_models import AutoRoute, RouteReport  # noqa: E402
from .runs import Outcome  # noqa: E402
from .service import Playground  # noqa: E402
from .settings import Settings  # noqa: E402
from .stats import ProviderStats, Stats  # noqa: E402

__all__ = [
    "PROVIDERS",
    "AutoRoute",
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "Outcome",
    "Playground",
    "PlaygroundError",
    "ProviderStats",
    "Quote",
    "RouteReport",
    "Settings",
    "Stats",
    "__version__",
    "get_provider",
    "quote",
]

"""flux-playground: FLUX.1 [schnell] across hosted providers, with prices, history and an emulator.

from flux_playground import GenerationRequest, Playground, Settings

async with Playground(Settings()) as playground:
    result = await playground.generate(GenerationRequest(prompt="a red fox"), "deepinfra")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import PlaygroundError  # noqa: E402
from .models import GeneratedImage, GenerationRequest, GenerationResult  # noqa: E402
from .providers import PROVIDERS, get_provider  # noqa: E402
from .quotes import Quote, quote  # noqa: E402
from .runs import Outcome  # noqa: E402
from .service import Playground  # noqa: E402
from .settings import Settings  # noqa: E402

__all__ = [
    "PROVIDERS",
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "Outcome",
    "Playground",
    "PlaygroundError",
    "Quote",
    "Settings",
    "__version__",
    "get_provider",
    "quote",
]

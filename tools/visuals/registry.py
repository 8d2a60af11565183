"""Which visual source a job uses, and opening it from the settings.

`auto` (the default): `gpu` when STORYBOT_SDXL_MODEL is set, else `images` when
STORYBOT_IMAGE_MODEL is set, else `stock` when a Pexels or Pixabay key is set, else `cards`.
Asking for a source that is not configured is bad input, named with the variable it needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from tools.errors import BadInput
from tools.settings import Settings
from tools.visuals.base import CHOICES, Choice, ShotBrief, SourceName, VisualSource
from tools.visuals.cards import CardsSource
from tools.visuals.gpu import GpuSource
from tools.visuals.images import ImagesSource
from tools.visuals.pexels import Pexels
from tools.visuals.pixabay import Pixabay
from tools.visuals.stock import StockProvider, StockSource
from tools.visuals.user import UserSource

NEEDS = {"gpu": "STORYBOT_SDXL_MODEL", "images": "STORYBOT_IMAGE_MODEL", "stock": "PEXELS_API_KEY or PIXABAY_API_KEY"}


def parse_choice(value: str) -> Choice:
    value = value.strip().lower()
    for choice in CHOICES:
        if value == choice:
            return choice
    raise BadInput(f"unknown visuals {value!r}: choose one of {', '.join(CHOICES)}")


def _image_key(settings: Settings) -> str:
    key = settings.image_api_key or settings.openai_api_key
    return key.get_secret_value() if key else ""


def available(settings: Settings) -> dict[str, bool]:
    return {
        "gpu": bool(settings.sdxl_model),
        "images": bool(settings.image_model),
        "stock": bool(settings.pexels_api_key or settings.pixabay_api_key),
        "cards": True,
    }


def resolve(choice: Choice, settings: Settings) -> SourceName:
    """The source `choice` means with these settings; BadInput when it is not configured."""
    ready = available(settings)
    if choice == "auto":
        return next(name for name in ("gpu", "images", "stock", "cards") if ready[name])
    if not ready[choice]:
        raise BadInput(f"--visuals {choice} needs {NEEDS[choice]} to be set")
    if choice == "images" and not (settings.image_base_url or settings.openai_base_url or _image_key(settings)):
        raise BadInput("--visuals images needs STORYBOT_IMAGE_BASE_URL (or OPENAI_BASE_URL) or an API key")
    return choice


def cache_dir(settings: Settings) -> Path:
    return settings.data_dir / "cache" / "visuals"


def stock_providers(settings: Settings) -> list[tuple[StockProvider, dict[str, str], list[str]]]:
    found: list[tuple[StockProvider, dict[str, str], list[str]]] = []
    if settings.pexels_api_key:
        key = settings.pexels_api_key.get_secret_value()
        found.append((Pexels(settings.pexels_base_url), {"Authorization": key}, [key]))
    if settings.pixabay_api_key:
        key = settings.pixabay_api_key.get_secret_value()
        found.append((Pixabay(settings.pixabay_base_url, key), {}, [key]))
    return found


@asynccontextmanager
async def open_source(
    name: SourceName,
    settings: Settings,
    *,
    draw: Callable[[list[tuple[ShotBrief, Path]]], Awaitable[None]] | None = None,
    gpu_label: str = "sdxl",
    user_files: list[Path] | None = None,
    pinned: dict[int, Path] | None = None,
    rank: Callable[[Path, str], Awaitable[float | None]] | None = None,
) -> AsyncIterator[VisualSource]:
    """The source, with its HTTP client closed when the block ends."""
    if name == "cards":
        yield CardsSource()
    elif name == "user":
        yield UserSource(user_files or [], pinned)
    elif name == "gpu":
        if draw is None:
            raise BadInput("--visuals gpu needs a GPU worker (STORYBOT_SDXL_MODEL)")
        yield GpuSource(draw, gpu_label)
    elif name == "stock":
        stock, client = StockSource.open(
            stock_providers(settings), cache_dir(settings), settings.provider_retries, rank
        )
        async with client:
            yield stock
    else:
        base = settings.image_base_url or settings.openai_base_url or "https://api.openai.com/v1"
        images, client = ImagesSource.open(
            base, settings.image_model or "", _image_key(settings), cache_dir(settings), settings.provider_retries
        )
        async with client:
            yield images

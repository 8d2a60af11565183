"""Which visual source a job uses, and opening it: the registry of `SourceRow`s.

`auto` (the default): `gpu` when STORYBOT_SDXL_MODEL is set, else `images` when
STORYBOT_IMAGE_MODEL is set, else `stock` when a Pexels or Pixabay key is set, else `cards`.
Asking for a source that is not configured is bad input, named with the variable it needs.
Adding a source is one module with its `ROW` and one entry here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tools.errors import BadInput
from tools.settings import Settings
from tools.visuals import cards, gpu, images, pexels, pixabay, stock, user
from tools.visuals.base import CHOICES, Choice, Opening, SourceName, SourceRow, VisualSource

SOURCES: dict[SourceName, SourceRow] = {
    row.name: row for row in (gpu.ROW, images.ROW, stock.source_row([pexels.SITE, pixabay.SITE]), cards.ROW, user.ROW)
}
AUTO: tuple[SourceName, ...] = ("gpu", "images", "stock", "cards")  # what `auto` tries, in order


def parse_choice(value: str) -> Choice:
    value = value.strip().lower()
    for choice in CHOICES:
        if value == choice:
            return choice
    raise BadInput(f"unknown visuals {value!r}: choose one of {', '.join(CHOICES)}")


def available(settings: Settings) -> dict[str, bool]:
    return {name: SOURCES[name].available(settings) for name in AUTO}


def resolve(choice: Choice, settings: Settings) -> SourceName:
    """The source `choice` means with these settings; BadInput when it is not configured."""
    if choice == "auto":
        return next(name for name in AUTO if SOURCES[name].available(settings))
    row = SOURCES[choice]
    if not row.available(settings):
        raise BadInput(f"--visuals {choice} needs {row.needs} to be set")
    row.check(settings)
    return choice


def label(name: SourceName, settings: Settings, used: list[str]) -> str:
    """The provider a job records for the stage, e.g. "stock (pexels, pixabay)"."""
    return SOURCES[name].label(settings, used)


@asynccontextmanager
async def open_source(
    name: SourceName, settings: Settings, opening: Opening | None = None
) -> AsyncIterator[VisualSource]:
    """The source, with its clients closed when the block ends."""
    async with SOURCES[name].open(settings, opening or Opening()) as source:
        yield source

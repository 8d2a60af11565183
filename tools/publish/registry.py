"""The sites storybot publishes to, by name: the one place that lists them."""

from __future__ import annotations

from tools.errors import BadInput
from tools.publish import instagram, tiktok, youtube
from tools.publish.base import PlatformRow

PLATFORMS: dict[str, PlatformRow] = {row.name: row for row in (youtube.ROW, tiktok.ROW, instagram.ROW)}


def platform(name: str) -> PlatformRow:
    row = PLATFORMS.get(name.strip().lower())
    if row is None:
        raise BadInput(f"unknown platform {name!r} (use {', '.join(PLATFORMS)})")
    return row


def targets(spec: str) -> list[PlatformRow]:
    """`youtube,tiktok` → their rows, in order, each once."""
    names = [n for n in (part.strip().lower() for part in spec.split(",")) if n]
    if not names:
        raise BadInput(f"--to needs at least one platform ({', '.join(PLATFORMS)})")
    return [platform(n) for n in dict.fromkeys(names)]

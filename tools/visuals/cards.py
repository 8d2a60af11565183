"""Offline pictures: procedural art cards with no words on them (the video's title, at most, on
the first card), showing what each shot is about with icons matched to its search terms (Noto
Emoji, `icons.py`). Always available, so it is also where every other source falls back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from tools.media import keyframes
from tools.models import Shot
from tools.settings import Settings
from tools.visuals import icon_card, icons, painter
from tools.visuals.base import Job, Miss, Opening, ShotBrief, SourceRow, Visual
from tools.visuals.terms import search_terms


def draw_card(brief: ShotBrief, job: Job) -> Visual:
    """The landscape card, with icons of what the shot is about set into it when its terms (or,
    failing those, the video's) match any; the card alone when nothing matches."""
    shot = Shot(
        index=brief.index, start=0.0, end=brief.seconds, first_word=0, last_word=0, text=brief.text, key_phrase=""
    )
    title = brief.title if brief.index == 0 else None
    card = painter.draw_art_card(shot, job.aspect.size, brief.seed, title=title)
    words = [*brief.terms, *search_terms(brief.text, 8)]  # the stock terms first, then more of its words
    chosen = icons.match(words, brief.subject or search_terms(brief.title or "") or brief.broader, turn=brief.index)
    png = job.keyframe(brief)
    png.parent.mkdir(parents=True, exist_ok=True)
    if not chosen:
        return Visual(shot=brief.index, source="cards", keyframe=keyframes.save_png(card, png))
    sides = icon_card.sizes(job.aspect.size, len(chosen))
    drawn = [icons.render(i.name, px) for i, px in zip(chosen, sides, strict=True)]
    layer = icon_card.layer(card, drawn, brief.seed, brief.index)
    backdrop, layer_png = job.media(brief, ".card.png"), job.media(brief, ".icons.png")
    backdrop.parent.mkdir(parents=True, exist_ok=True)
    return Visual(
        shot=brief.index,
        source="cards",
        keyframe=keyframes.save_png(icon_card.flatten(card, layer), png),
        icons=[i.name for i in chosen],
        backdrop=keyframes.save_png(card, backdrop),
        layer=keyframes.save_png(layer, layer_png),
    )


class CardsSource:
    name: Literal["cards"] = "cards"

    async def make(self, briefs: list[ShotBrief], job: Job) -> list[Visual | Miss]:
        return [await asyncio.to_thread(draw_card, b, job) for b in briefs]


@asynccontextmanager
async def _open(settings: Settings, opening: Opening) -> AsyncIterator[CardsSource]:
    yield CardsSource()


ROW = SourceRow("cards", "", lambda settings: True, _open, lambda settings, used: "procedural art cards")

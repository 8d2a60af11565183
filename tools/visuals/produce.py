"""Making the pictures of a batch of shots with one source, and the records a job keeps of them.

A shot the source misses gets a card and a notice; the job goes on. `visuals.json` records each
shot's source, files and media ids (so re-rolls and other shots never reuse media), and
`credits.json` lists every stock author as `{shot, source, id, author, url}`.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from pydantic import BaseModel

from tools.files import write_json_atomic
from tools.media.motion import StillShot
from tools.models import Motion, Shot
from tools.visuals.base import Credit, Job, Miss, ShotBrief, Visual, VisualError, VisualSource
from tools.visuals.cards import CardsSource
from tools.visuals.terms import search_terms


class ShotRecord(BaseModel):
    """One line of `visuals.json`; paths relative to the job folder."""

    shot: int  # 1-based
    source: str
    keyframe: str
    clips: list[str] = []  # footage in play order, instead of the animated keyframe
    media_ids: list[str] = []
    credits: list[Credit] = []
    notice: str | None = None
    icons: list[str] = []  # a card's icons (Noto Emoji names), what the picture shows of the words
    backdrop: str | None = None  # the card without its icons, and the icons' layer: moved apart in the cut
    layer: str | None = None


def brief(
    shot: Shot,
    prompt: str,
    negative: str = "",
    terms: list[str] | None = None,
    seed: int = 0,
    title: str | None = None,
    seconds: float | None = None,
    topic: str | None = None,
) -> ShotBrief:
    """What a source needs to know of a planned shot; search terms from its own words when the
    planner gave none, the title's terms as the broader fallback, and the video's subject from its
    `topic` (the request's prompt) or title."""
    own = [t for t in (terms or []) if t.strip()][:4] or search_terms(shot.text)
    broader = [t for t in search_terms(title or "", 2) if t not in own]
    return ShotBrief(
        index=shot.index,
        text=shot.text,
        prompt=prompt,
        negative_prompt=negative,
        terms=own,
        broader=broader,
        seconds=max(seconds or shot.duration, 0.1),
        seed=seed,
        title=title,
        subject=search_terms(topic or title or ""),
    )


async def make_visuals(source: VisualSource, briefs: list[ShotBrief], job: Job) -> list[Visual]:
    """One Visual per brief, in order: the source's, or a card with a notice where it missed."""
    if not briefs:
        return []
    try:
        made = await source.make(briefs, job)
    except (VisualError, httpx.HTTPError) as exc:
        made = [Miss(shot=b.index, reason=str(exc) or type(exc).__name__) for b in briefs]
    out: list[Visual] = []
    cards = CardsSource()
    for b, result in zip(briefs, made, strict=True):
        if isinstance(result, Miss):
            card = (await cards.make([b], job))[0]
            assert isinstance(card, Visual)
            result = card.model_copy(update={"notice": f"shot {b.index + 1}: {result.reason}; a card stands in"})
        out.append(result)
    return out


def record(visual: Visual, folder: Path) -> ShotRecord:
    def rel(path: Path) -> str:
        return (
            str(path.resolve().relative_to(folder.resolve()))
            if path.resolve().is_relative_to(folder.resolve())
            else str(path.resolve())
        )

    return ShotRecord(
        shot=visual.shot + 1,
        source=visual.source,
        keyframe=rel(visual.keyframe),
        clips=[rel(c) for c in visual.clips],
        media_ids=visual.media_ids,
        credits=visual.credits,
        notice=visual.notice,
        icons=visual.icons,
        backdrop=rel(visual.backdrop) if visual.backdrop else None,
        layer=rel(visual.layer) if visual.layer else None,
    )


def read_records(folder: Path) -> dict[int, ShotRecord]:
    """`visuals.json` by 1-based shot number (empty before the first keyframes run)."""
    path = folder / "visuals.json"
    if not path.is_file():
        return {}
    return {r.shot: r for r in (ShotRecord.model_validate(x) for x in json.loads(path.read_text(encoding="utf-8")))}


def write_records(folder: Path, records: list[ShotRecord]) -> None:
    write_json_atomic(folder / "visuals.json", [r.model_dump(mode="json") for r in records])
    write_json_atomic(folder / "credits.json", [c.model_dump() for r in records for c in r.credits])


def clips_of(folder: Path, rec: ShotRecord | None) -> list[Path]:
    """The footage a shot plays instead of its animated keyframe (empty for a still)."""
    return [path if (path := Path(c)).is_absolute() else folder / path for c in (rec.clips if rec else [])]


def still_of(folder: Path, rec: ShotRecord | None, keyframe: str, move: Motion) -> StillShot:
    """How the final cut shows a still: a card with icons as its landscape and its icon layer (the
    layer drifts over the moving landscape), when that is what this keyframe is; else the keyframe."""
    backdrop, layer = (rec.backdrop, rec.layer) if rec and rec.keyframe == keyframe else (None, None)
    if backdrop and layer and (folder / backdrop).is_file() and (folder / layer).is_file():
        return StillShot(image=Path(backdrop), layer=Path(layer), motion=move)
    return StillShot(image=Path(keyframe), motion=move)

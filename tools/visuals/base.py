"""The seam for visual sources: what a shot asks for, and what a source hands back.

A source turns planned shots into pictures: a still (animated later with Ken Burns) or a clip
(fitted to the shot by the media engine). A shot a source cannot serve comes back as a `Miss`, and
the caller puts a card there with a notice, so one bad search or download never stops a job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from tools.models import Aspect
from tools.settings import Settings
from tools.storage import Storage, get_storage, is_remote

SourceName = Literal["cards", "stock", "images", "gpu", "user"]
Choice = Literal["auto", "cards", "stock", "images", "gpu"]
CHOICES: tuple[Choice, ...] = ("cards", "stock", "images", "gpu", "auto")


class ShotBrief(BaseModel):
    """One planned shot, as a source needs it."""

    index: int = Field(ge=0)  # 0-based
    text: str  # the words spoken over it
    prompt: str  # the picture prompt from the scene plan
    negative_prompt: str = ""
    terms: list[str] = []  # 2-4 concrete search terms, most specific first
    broader: list[str] = []  # fallback terms when those find nothing (the video's topic)
    seconds: float = Field(gt=0)  # how long the picture is on screen
    seed: int = 0  # bumped by a re-roll: a new picture from the same source
    title: str | None = None  # the video's title: the first card may show it
    subject: list[str] = []  # the video's subject (title's or prompt's terms): a card's icons when a shot has none


class Credit(BaseModel):
    """Who made a piece of stock media, as Pexels and Pixabay ask to be credited (`credits.json`)."""

    shot: int  # 1-based
    source: str  # "pexels", "pixabay"
    id: str
    author: str
    url: str


class Visual(BaseModel):
    """What a source made for a shot: a keyframe still, plus a clip when the source gives motion."""

    shot: int = Field(ge=0)  # 0-based
    source: str  # what made it, e.g. "cards", "pexels", "images:gpt-image-1", "sdxl:...", "user"
    keyframe: Path  # a PNG at exactly the output size
    clips: list[Path] = []  # footage played in order and fitted to the shot (in the final cut) instead
    media_ids: list[str] = []  # "provider:id" of every piece used, so no other shot reuses it
    credits: list[Credit] = []
    notice: str | None = None
    icons: list[str] = []  # icons set into a card (names in the shipped Noto Emoji set)
    backdrop: Path | None = None  # a card without its icons, and the icons alone (RGBA, same size):
    layer: Path | None = None  # the final cut moves them apart, the keyframe shows them together


class Miss(BaseModel):
    """A shot the source could not serve, and why (one line, no secrets)."""

    shot: int = Field(ge=0)
    reason: str


class Job(BaseModel):
    """Where and at what shape a batch of shots is made."""

    aspect: Aspect
    folder: Path  # the job's (or render's) folder; sources write under it
    shots: int  # how many shots the video has (the batch may be a re-roll of a few)
    exclude: set[str] = set()  # media ids already taken by shots that are not in this batch

    def keyframe(self, brief: ShotBrief) -> Path:
        return self.folder / "keyframes" / f"shot_{brief.index + 1:02d}.png"

    def media(self, brief: ShotBrief, suffix: str) -> Path:
        return self.folder / "media" / f"shot_{brief.index + 1:02d}{suffix}"


class VisualSource(Protocol):
    """A provider of pictures. `make` gets every shot that needs a picture at once (so a GPU can
    batch and stock search can keep media unique across shots) and answers each in order."""

    @property
    def name(self) -> SourceName: ...

    async def make(self, briefs: list[ShotBrief], job: Job) -> list[Visual | Miss]: ...


class VisualError(Exception):
    """A search, download or generation failed for one shot (the shot falls back to a card)."""


Draw = Callable[[list[tuple[ShotBrief, Path]]], Awaitable[None]]  # SDXL drawing, handed in by the graph
Rank = Callable[[Path, str], Awaitable[float | None]]  # a vision model's score of a frame against words


@dataclass(frozen=True)
class Opening:
    """What a source may need from its caller beyond the settings (each source takes what it uses)."""

    draw: Draw | None = None
    gpu_label: str = "sdxl"
    user_files: list[Path] = field(default_factory=list)
    pinned: dict[int, Path] = field(default_factory=dict)
    rank: Rank | None = None


@dataclass(frozen=True)
class SourceRow:
    """One row of the visual-source registry (`registry.SOURCES`): what it needs, whether it is
    configured, how to open it (an async context that closes its clients), and what a job records."""

    name: SourceName
    needs: str  # the setting that configures it, named when it is asked for but not configured
    available: Callable[[Settings], bool]
    open: Callable[[Settings, Opening], AbstractAsyncContextManager[VisualSource]]
    label: Callable[[Settings, list[str]], str]  # the stage's provider, from the sources the shots used
    check: Callable[[Settings], None] = lambda settings: None  # BadInput for what `available` cannot see


def cache_dir(settings: Settings) -> Path:
    """Downloads and generated pictures shared by every job (media are linked into job folders)."""
    return settings.data_dir / "cache" / "visuals"


def shared_cache(settings: Settings) -> Storage | None:
    """With remote object storage, the stock downloads every runner shares (`cache/visuals/`): a clip
    one machine fetched is not fetched from the provider again by another."""
    return get_storage(settings) if is_remote(settings) else None

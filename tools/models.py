"""Plain data shared by the media tools: words, shots and output presets.

Everything that crosses a module or process boundary is one of these pydantic models, so that
`words.json`, `shots.json` and graph state stay JSON and stay checked.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator


class Word(BaseModel):
    """One whitespace-separated token of the script, timed against the voice.

    `char_start`/`char_end` index the cleaned script text, so `script[char_start:char_end] == word`.
    """

    word: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    estimated: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Word:
        if self.end < self.start or self.char_end <= self.char_start:
            raise ValueError(f"word {self.word!r} has end before start")
        return self


class Aspect(StrEnum):
    portrait = "9:16"
    landscape = "16:9"
    square = "1:1"

    @property
    def size(self) -> tuple[int, int]:
        return {"9:16": (1080, 1920), "16:9": (1920, 1080), "1:1": (1080, 1080)}[self.value]

    @property
    def safe_area(self) -> SafeArea:
        """Margins (pixels at full size) that platform UI does not cover.

        9:16 follows the TikTok / Reels / Shorts overlays: caption and buttons cover the bottom
        fifth and the right edge; 16:9 uses the broadcast title-safe 90%; 1:1 sits between.
        """
        w, h = self.size
        if self is Aspect.portrait:
            return SafeArea(left=round(w * 0.09), right=round(w * 0.15), top=round(h * 0.12), bottom=round(h * 0.24))
        if self is Aspect.landscape:
            return SafeArea(left=round(w * 0.05), right=round(w * 0.05), top=round(h * 0.05), bottom=round(h * 0.08))
        return SafeArea(left=round(w * 0.07), right=round(w * 0.07), top=round(h * 0.07), bottom=round(h * 0.12))


class SafeArea(BaseModel):
    left: int
    right: int
    top: int
    bottom: int


class Motion(StrEnum):
    zoom_in = "zoom_in"
    zoom_out = "zoom_out"
    pan_left = "pan_left"
    pan_right = "pan_right"
    pan_up = "pan_up"
    pan_down = "pan_down"


class Shot(BaseModel):
    """One picture of the video: a span of the voice that ends at a sentence end."""

    index: int = Field(ge=0)
    start: float = Field(ge=0)
    end: float = Field(gt=0)
    first_word: int = Field(ge=0)
    last_word: int = Field(ge=0)
    text: str
    key_phrase: str
    prompt: str = ""
    motion: Motion = Motion.zoom_in

    @property
    def duration(self) -> float:
        return self.end - self.start

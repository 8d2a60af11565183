"""What writers take and return, checked at the boundary.

The public models (`IdeaSource`, `StoryIdea`, `PlatformMeta`) are what graph state and job files hold.
The `*Draft` models are what a language model is asked to fill: flat, every field required and
without constraints, so they work as OpenAI strict structured output and with Ollama or vLLM; the
writer then cleans a draft into a public model instead of failing on a tag that lacks its `#`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from tools.llm.hygiene import plain_text

PLATFORMS = ("youtube_shorts", "tiktok", "instagram_reels")
# The tag each platform's own feed looks for, then fallbacks that fit any short story.
PLATFORM_TAGS: dict[str, tuple[str, ...]] = {
    "youtube_shorts": ("#shorts", "#story", "#shortfilm"),
    "tiktok": ("#storytime", "#fyp", "#shortstory"),
    "instagram_reels": ("#reels", "#storytelling", "#shortstory"),
}
MIN_TAGS, MAX_TAGS = 3, 15
MAX_TAG_CHARS = 30
TITLE_CHARS = 100  # YouTube's limit; TikTok and Instagram allow more
DESCRIPTION_CHARS = 2000
_HASHTAG = re.compile(rf"#(?=\w*[^\W\d_])\w{{1,{MAX_TAG_CHARS - 1}}}")


class IdeaSource(BaseModel):
    """One thing to build a story from: the request, a line of the seeds file, a headline or post."""

    kind: Literal["request", "seed", "rss", "reddit"]
    text: str = Field(min_length=1, max_length=500)
    url: str | None = None
    inspiration: str = ""  # the item's own text (a post, a feed summary), kept with its link


SCORE_PARTS = ("hook", "originality", "emotion", "fit")  # each 0-25; the score is their sum
PART_MAX = 25


class StoryIdea(BaseModel):
    title: str = Field(min_length=1, max_length=TITLE_CHARS)
    logline: str = Field(min_length=1)
    hook: str = Field(min_length=1)
    score: float = Field(ge=0, le=100)
    tags: list[str] = Field(default_factory=list)
    angle: str = ""
    audience: str = ""
    emotional_core: str = ""
    score_parts: dict[str, int] = Field(default_factory=dict)  # SCORE_PARTS -> 0..PART_MAX


class Revision(BaseModel):
    """A revised script and the one line that tells the reviewer what changed."""

    text: str = Field(min_length=1)
    summary: str


class PlatformMeta(BaseModel):
    """Upload text for the three short-video platforms."""

    title: str = Field(min_length=1, max_length=TITLE_CHARS)
    description: str = Field(max_length=DESCRIPTION_CHARS)
    hashtags: dict[str, list[str]]

    @field_validator("hashtags")
    @classmethod
    def _platform_tags(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if sorted(value) != sorted(PLATFORMS):
            raise ValueError(f"hashtags must have exactly the keys {', '.join(PLATFORMS)}")
        for platform, tags in value.items():
            if not MIN_TAGS <= len(tags) <= MAX_TAGS:
                raise ValueError(f"{platform}: {len(tags)} hashtags (want {MIN_TAGS} to {MAX_TAGS})")
            bad = [tag for tag in tags if not _HASHTAG.fullmatch(tag)]
            if bad:
                raise ValueError(f"{platform}: not a hashtag: {bad[0]!r}")
            if PLATFORM_TAGS[platform][0] not in tags:
                raise ValueError(f"{platform}: missing {PLATFORM_TAGS[platform][0]}")
        return value

    @classmethod
    def build(cls, title: str, description: str, tags: dict[str, list[str]]) -> PlatformMeta:
        """Clean loose text and tag lists (any spelling, any count) into valid metadata."""
        return cls(
            title=plain_text(title, TITLE_CHARS) or "A short story",
            description=plain_text(description, DESCRIPTION_CHARS),
            hashtags={p: platform_hashtags(p, tags.get(p, [])) for p in PLATFORMS},
        )


def hashtag(word: str) -> str | None:
    """`"Lost whale!"` -> `"#lostwhale"`; None when nothing usable (no letter) is left."""
    body = "".join(ch for ch in plain_text(word) if ch.isalnum())[: MAX_TAG_CHARS - 1].lower()
    tag = f"#{body}"
    return tag if _HASHTAG.fullmatch(tag) else None


def platform_hashtags(platform: str, candidates: list[str]) -> list[str]:
    """The platform's own tag first, then the candidates, unique, padded to 3 and cut at 15."""
    required, *fallbacks = PLATFORM_TAGS[platform]
    tags = [required]
    for tag in (hashtag(c) for c in candidates):
        if tag and tag not in tags:
            tags.append(tag)
    tags.extend(t for t in fallbacks if t not in tags)
    return tags[:MAX_TAGS]


class ScorePartsDraft(BaseModel):
    hook: int = Field(description="0 to 25: how hard the first line stops the scroll")
    originality: int = Field(description="0 to 25: how fresh the angle is")
    emotion: int = Field(description="0 to 25: how strongly the emotional core lands")
    fit: int = Field(description="0 to 25: how well it answers the request and fits under a minute")


class IdeaDraft(BaseModel):
    title: str = Field(description="at most 100 characters, no hashtags or emoji")
    logline: str = Field(description="one sentence: who wants what, and what stands in the way")
    hook: str = Field(description="the first spoken line, written to stop the scroll")
    angle: str = Field(description="the take on the material, in a few words")
    audience: str = Field(description="who this is for, in a few words")
    emotional_core: str = Field(description="the feeling the story leaves, in a few words")
    score_parts: ScorePartsDraft
    tags: list[str] = Field(description="2 to 5 lower-case genre or topic words")


class IdeaDrafts(BaseModel):
    """Story ideas for a short narrated vertical video."""

    ideas: list[IdeaDraft]


class ScenePromptDrafts(BaseModel):
    """One image prompt per shot, in shot order."""

    prompts: list[str]


class MetaDraft(BaseModel):
    """Upload title, description and hashtags for each short-video platform."""

    title: str = Field(description="at most 100 characters")
    description: str = Field(description="2 to 4 sentences, at most 2000 characters, no hashtags")
    youtube_shorts: list[str] = Field(description="5 to 10 hashtags for YouTube Shorts, #shorts first")
    tiktok: list[str] = Field(description="5 to 10 hashtags for TikTok")
    instagram_reels: list[str] = Field(description="5 to 10 hashtags for Instagram Reels, #reels first")


class ScriptDraft(BaseModel):
    """The narration of a short video."""

    script: str = Field(description="the whole narration, plain spoken sentences, the hook first")


class RevisionDraft(ScriptDraft):
    """A revised narration and what changed."""

    summary: str = Field(description="one line, at most 20 words: what changed and why")


class ShotDraft(BaseModel):
    first_sentence: int = Field(description="number of the shot's first sentence")
    last_sentence: int = Field(description="number of the shot's last sentence")
    image_prompt: str = Field(description="15 to 40 words: subject, setting, action, light, mood")
    search_terms: list[str] = Field(description="2 to 4 stock-footage searches of 1 to 3 words each")
    negative_prompt: str = Field(description="what the picture must not show, comma-separated")
    camera: Literal["zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down"]
    mood: str = Field(description="one or two words")
    beat: Literal["hook", "build", "climax", "resolution"]


class ScenePlanDraft(BaseModel):
    """Shots of a short video; their sentence ranges cover the script in order, each sentence once."""

    shots: list[ShotDraft]


class PlannedShot(BaseModel):
    """One shot of a writer's scene plan: a run of the script's sentences (0-based, inclusive)."""

    first_sentence: int = Field(ge=0)
    last_sentence: int = Field(ge=0)
    prompt: str
    negative_prompt: str = ""
    search_terms: list[str] = []  # for stock footage: concrete things a camera could film
    motion: str
    mood: str = ""
    beat: Literal["hook", "build", "climax", "resolution"]


def check_coverage(shots: list[tuple[int, int]], sentences: int) -> None:
    """Raise ValueError unless the (first, last) ranges cover 0..sentences-1 in order, each once."""
    expected = 0
    for number, (first, last) in enumerate(shots, 1):
        if first != expected:
            raise ValueError(f"shot {number} starts at sentence {first + 1}, but must start at {expected + 1}")
        if last < first:
            raise ValueError(f"shot {number} ends (sentence {last + 1}) before it starts ({first + 1})")
        expected = last + 1
    if expected != sentences:
        raise ValueError(f"the shots end at sentence {expected}, but the script has {sentences} sentences")

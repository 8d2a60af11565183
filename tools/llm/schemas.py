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
    """One thing to build a story from: the request, a line of the seeds file, a feed headline."""

    kind: Literal["request", "seed", "rss"]
    text: str = Field(min_length=1, max_length=500)
    url: str | None = None


class StoryIdea(BaseModel):
    title: str = Field(min_length=1, max_length=TITLE_CHARS)
    logline: str = Field(min_length=1)
    hook: str = Field(min_length=1)
    score: float = Field(ge=0, le=10)
    tags: list[str] = Field(default_factory=list)


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


class IdeaDraft(BaseModel):
    title: str = Field(description="at most 100 characters, no hashtags or emoji")
    logline: str = Field(description="one sentence: who wants what, and what stands in the way")
    hook: str = Field(description="the first spoken line, written to stop the scroll")
    score: float = Field(description="0 to 10: how well this idea would work as a 9:16 short video")
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

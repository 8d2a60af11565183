"""The contract the graph nodes write against, whichever model (or none) is behind it."""

from __future__ import annotations

from typing import Protocol

from tools.errors import ProviderGaveUp, StorybotError
from tools.llm.schemas import IdeaSource, PlannedShot, PlatformMeta, Revision, StoryIdea

MIN_TARGET_WORDS = 12  # about five seconds of speech: less is not a story
MAX_TARGET_WORDS = 1000  # six minutes of speech: twice the longest short-video platform allows


class WriterError(StorybotError):
    """The language model failed or kept answering with something unusable."""


class WriterGaveUp(WriterError, ProviderGaveUp):
    """The LLM server refused, or failed through every retry of the client."""


class Writer(Protocol):
    provider: str  # "offline", "openai:<model>" or "<local server>:<model>", recorded with the job

    def notice(self, request: str) -> str | None:
        """One line for the user about who writes this request's drafts (shown at the script
        approval, in the CLI and in chat), or None when there is nothing to say."""
        ...

    async def ideas(self, request: str, sources: list[IdeaSource], count: int = 3) -> list[StoryIdea]: ...

    async def script(self, request: str, idea: StoryIdea, target_words: int) -> str: ...

    async def revise(self, script: str, note: str, target_words: int) -> str: ...

    async def revision(self, script: str, note: str, target_words: int) -> Revision:
        """The revised text and a one-line summary of the change, for the reviewer."""
        ...

    async def scene_prompts(self, title: str, shot_texts: list[str]) -> list[str]: ...

    async def scene_plan(self, title: str, sentence_texts: list[str], count: int) -> list[PlannedShot] | None:
        """About `count` shots over the sentences, covering them exactly; None: use the sentence planner."""
        ...

    async def platform_meta(self, title: str, script: str) -> PlatformMeta: ...


def target_words(duration_s: float, words_per_minute: float) -> int:
    """Words that fill `duration_s` when spoken at the voice's measured rate."""
    if duration_s <= 0 or words_per_minute <= 0:
        raise ValueError("duration and speaking rate must be positive")
    return max(MIN_TARGET_WORDS, round(duration_s * words_per_minute / 60))


def clamp_target(target_words: int) -> int:
    """The word target a writer aims at: out-of-range requests are brought inside, not refused."""
    return max(MIN_TARGET_WORDS, min(MAX_TARGET_WORDS, target_words))

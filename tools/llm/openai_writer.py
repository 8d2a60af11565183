"""The writer backed by any OpenAI-compatible chat model (OpenAI, Ollama, vLLM) via langchain-openai.

Structured answers (ideas, scene prompts, metadata) use JSON-schema structured output with flat
`*Draft` models, then get cleaned into the public models, so a tag without `#` or a 120-character
title is repaired rather than fatal. Scripts are plain text: cleaned of markdown and chat markup,
length-checked, and asked for once more when empty or far off the target.
"""

from __future__ import annotations

import logging
import math
import re
from typing import TypeVar

import openai
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr, ValidationError

from tools.llm import prompts
from tools.llm.base import WriterError, clamp_target
from tools.llm.hygiene import cap, plain_text, sentences, trim_to_words, word_count
from tools.llm.offline import visual_prompt
from tools.llm.revision import length_scale
from tools.llm.schemas import (
    TITLE_CHARS,
    IdeaDraft,
    IdeaDrafts,
    IdeaSource,
    MetaDraft,
    PlatformMeta,
    ScenePromptDrafts,
    StoryIdea,
)
from tools.settings import Settings

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

LOCAL_API_KEY = "not-needed"  # Ollama and vLLM ignore the key, but the client insists on one
SANE = (0.7, 1.3)  # a first draft outside these multiples of the target is asked for again
KEEP = (0.5, 1.15)  # after that: shorter than 0.5x fails, longer than 1.15x is cut at a sentence end
_HEADING = re.compile(r"^\s*(?:#.*|\W*title\W*[:\-—].*)$", re.IGNORECASE | re.MULTILINE)  # "# The Whale"
_LABEL = re.compile(r"^\W*(?:narration|narrator|script|voice ?over|hook)\W*[:\-—]\W*?(?=\w|[\"“‘'])",
                    re.IGNORECASE | re.MULTILINE)  # "**Narrator:** ..."
_CUE = re.compile(r"[\[(][^\[\]()]{0,60}[\])]")  # [Music], (pause), (Narrator, softly)
_QUOTES = "\"'“”‘’«»"


class OpenAIWriter:
    def __init__(self, settings: Settings, *, timeout: float = 60, max_retries: int = 3) -> None:
        """`max_retries` covers connection errors, 408/409/429 and 5xx, with backoff (`Retry-After` honoured)."""
        self.provider = f"openai:{settings.llm_model}"
        self._llm = ChatOpenAI(model=settings.llm_model, base_url=settings.openai_base_url,
                               api_key=settings.openai_api_key or SecretStr(LOCAL_API_KEY),
                               use_responses_api=False, max_retries=max_retries, timeout=timeout)

    async def ideas(self, request: str, sources: list[IdeaSource], count: int = 3) -> list[StoryIdea]:
        if count < 1:
            raise ValueError("count must be at least 1")
        listed = "\n".join(f"- ({s.kind}) {plain_text(s.text, 300)}" for s in sources if s.kind != "request")
        drafts = await self._structured(IdeaDrafts, prompts.story_ideas_prompt.format(
            request=plain_text(request, 1000), sources=listed or "(none)", count=count))
        ideas = [idea for idea in map(_idea, drafts.ideas) if idea]
        if not ideas:
            raise WriterError(f"{self.provider} proposed no usable story ideas")
        return sorted(ideas, key=lambda i: -i.score)[:count]

    async def script(self, request: str, idea: StoryIdea, target_words: int) -> str:
        target = clamp_target(target_words)
        return await self._narration(target, prompts.write_script_prompt.format(
            request=plain_text(request, 1000), title=plain_text(idea.title), logline=plain_text(idea.logline),
            hook=plain_text(idea.hook), **_length(target)))

    async def revise(self, script: str, note: str, target_words: int) -> str:
        target = clamp_target(round(target_words * length_scale(note)))
        return await self._narration(target, prompts.revise_script_prompt.format(
            script=plain_text(script, 20_000), note=plain_text(note, 1000), **_length(target)))

    async def scene_prompts(self, title: str, shot_texts: list[str]) -> list[str]:
        """One prompt per shot; a shot the model skipped gets the offline prompt from its own words."""
        if not shot_texts:
            return []
        shots = "\n".join(f"{i + 1}. {plain_text(text, 600)}" for i, text in enumerate(shot_texts))
        drafts = await self._structured(ScenePromptDrafts, prompts.scene_prompts_prompt.format(
            title=plain_text(title, TITLE_CHARS), shots=shots, count=len(shot_texts)))
        made = [plain_text(p, 600) for p in drafts.prompts]
        return [made[i] if i < len(made) and made[i] else visual_prompt(title, text, i)
                for i, text in enumerate(shot_texts)]

    async def platform_meta(self, title: str, script: str) -> PlatformMeta:
        draft = await self._structured(MetaDraft, prompts.platform_meta_prompt.format(
            title=plain_text(title, TITLE_CHARS), script=plain_text(script, 20_000)))
        return PlatformMeta.build(draft.title or title, draft.description, {
            "youtube_shorts": draft.youtube_shorts, "tiktok": draft.tiktok,
            "instagram_reels": draft.instagram_reels})

    async def _structured(self, schema: type[M], prompt: str) -> M:
        llm = self._llm.with_structured_output(schema, method="json_schema", strict=True)
        try:
            result = await llm.ainvoke([SystemMessage(prompts.writer_system_prompt), HumanMessage(prompt)])
        except (OutputParserException, ValidationError) as exc:
            raise WriterError(f"{self.provider} answered with invalid {schema.__name__}") from exc
        except openai.APIError as exc:
            raise WriterError(f"{self.provider} failed: {_describe(exc)}") from exc
        if not isinstance(result, schema):
            raise WriterError(f"{self.provider} answered with no {schema.__name__}")
        return result

    async def _text(self, messages: list[BaseMessage]) -> str:
        try:
            reply = await self._llm.ainvoke(messages)
        except openai.APIError as exc:
            raise WriterError(f"{self.provider} failed: {_describe(exc)}") from exc
        return reply.text

    async def _narration(self, target: int, prompt: str) -> str:
        """Ask, clean, and ask once more with the count when the length is far off."""
        messages: list[BaseMessage] = [SystemMessage(prompts.writer_system_prompt), HumanMessage(prompt)]
        raw = await self._text(messages)
        text = clean_narration(raw)
        n = word_count(text)
        if not SANE[0] * target <= n <= SANE[1] * target:
            log.info("%s wrote %d words for a target of %d; asking again", self.provider, n, target)
            messages += [AIMessage(raw), HumanMessage(prompts.fix_length_prompt.format(words=n, **_length(target)))]
            text = clean_narration(await self._text(messages))
            n = word_count(text)
        if n > KEEP[1] * target:
            text = trim_to_words(text, math.floor(KEEP[1] * target))
            n = word_count(text)
        if n < KEEP[0] * target:
            raise WriterError(f"{self.provider} wrote {n} words for a {target}-word script, twice")
        return text


def clean_narration(text: str) -> str:
    """What a voice should read: no labels, cues, markdown, mentions, wrapping quotes; ends a sentence."""
    text = _LABEL.sub("", _HEADING.sub("", text))
    text = _CUE.sub(" ", text)
    text = plain_text(text, 20_000).strip(_QUOTES + " ")
    text = " ".join(sentences(text))
    if text and text[-1] not in ".!?":
        text += "."
    return text


def _length(target: int) -> dict[str, int]:
    return {"target_words": target, "min_words": math.ceil(target * 0.9), "max_words": math.floor(target * 1.1)}


def _idea(draft: IdeaDraft) -> StoryIdea | None:
    """A draft cleaned into a valid idea, or None when it has no usable title."""
    title = plain_text(draft.title, TITLE_CHARS).strip(_QUOTES + " ")
    if not title:
        return None
    tags = [t for t in (plain_text(tag, 40).lower().lstrip("#") for tag in draft.tags) if t][:5]
    return StoryIdea(title=title, logline=cap(plain_text(draft.logline)) or title,
                     hook=cap(plain_text(draft.hook)) or title, score=min(10.0, max(0.0, draft.score)), tags=tags)


def _describe(exc: openai.APIError) -> str:
    """Status and error type only: error bodies can echo request details, never worth logging."""
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")

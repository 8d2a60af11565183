"""The writer backed by any OpenAI-compatible chat model (OpenAI, Ollama, vLLM) via langchain-openai.

Every answer (ideas, script, revision, scene plan, upload text) is a pydantic model from
`with_structured_output(include_raw=True)` with a flat `*Draft` schema: JSON-schema output first,
then tool calls, then plain JSON mode, for servers that refuse the former (the first method that
works is kept for the writer's life). A reply that does not parse or validate is asked for again
with the error fed back. Drafts are then cleaned into the public models, so a tag without `#` or a
120-character title is repaired rather than fatal. Scripts are cleaned of markdown, chat markup and
stage directions, length-checked, and asked for once more when far off.

Network faults (429 with Retry-After, 5xx, timeouts, dropped connections) are retried by the
openai SDK with exponential backoff and jitter, `STORYBOT_PROVIDER_RETRIES` times; then the stage
fails with a line naming the provider and the status, never the key. Tokens are counted per job.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx2
import openai
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_function
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from tools.llm import prompts
from tools.llm.base import WriterError, WriterGaveUp, clamp_target
from tools.llm.hygiene import cap, plain_text, sentences, trim_to_words, word_count
from tools.llm.local import Found
from tools.llm.offline import visual_prompt
from tools.llm.revision import length_scale
from tools.llm.schemas import (
    PART_MAX,
    SCORE_PARTS,
    TITLE_CHARS,
    IdeaDraft,
    IdeaDrafts,
    IdeaSource,
    MetaDraft,
    PlannedShot,
    PlatformMeta,
    Revision,
    RevisionDraft,
    ScenePlanDraft,
    ScenePromptDrafts,
    ScriptDraft,
    StoryIdea,
    check_coverage,
)
from tools.llm.usage import count
from tools.net.bounded import TooLarge, bounded_transport
from tools.net.redact import redact
from tools.settings import Settings

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
Method = Literal["json_schema", "function_calling", "json_mode"]

METHODS: tuple[Method, ...] = ("json_schema", "function_calling", "json_mode")
LOCAL_API_KEY = "not-needed"  # Ollama and vLLM ignore the key, but the client insists on one
PARSE_ATTEMPTS = 3  # a reply that does not validate is asked for again, with the error, this often
SANE = (0.7, 1.3)  # a first draft outside these multiples of the target is asked for again
KEEP = (0.5, 1.15)  # after that: shorter than 0.5x is kept (and shown as short), longer than 1.15x is cut
_HEADING = re.compile(r"^\s*(?:#.*|\W*title\W*[:\-—].*)$", re.IGNORECASE | re.MULTILINE)  # "# The Whale"
_LABEL = re.compile(
    r"^\W*(?:narration|narrator|script|voice ?over|hook)\W*[:\-—]\W*?(?=\w|[\"“‘'])", re.IGNORECASE | re.MULTILINE
)  # "**Narrator:** ..."
_CUE = re.compile(r"[\[(][^\[\]()]{0,60}[\])]")  # [Music], (pause), (Narrator, softly)
_QUOTES = "\"'“”‘’«»"
_MALFORMED = (json.JSONDecodeError, openai.APIResponseValidationError)
_MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down")


class OpenAIWriter:
    backoff = 0.5  # seconds before the first retry of a malformed reply, doubled each time (plus jitter)

    def __init__(
        self, settings: Settings, *, timeout: float = 60, max_retries: int | None = None, local: Found | None = None
    ) -> None:
        model, base_url = settings.llm_model, settings.openai_base_url
        if local is not None and local.model:  # found running, nothing configured
            model, base_url = local.model, local.base_url
        self.local = local
        self.provider = f"{local.endpoint.kind}:{model}" if local else f"openai:{model}"
        self._where = urlsplit(base_url or "https://api.openai.com").netloc.rsplit("@", 1)[-1]
        # local servers (llama.cpp grammars, Ollama, LM Studio) honour string lengths in a JSON schema;
        # OpenAI's strict mode refuses them, so there the check and the retry alone keep the length
        self._bound_length = local is not None
        self._key = settings.openai_api_key  # a SecretStr: it only leaves it to scrub server messages
        self._attempts = 1 + (settings.provider_retries if max_retries is None else max_retries)
        self._timeout = timeout
        self._method: Method = settings.llm_structured_method
        self._llm = ChatOpenAI(
            model=model,
            base_url=base_url,
            api_key=settings.openai_api_key or SecretStr(LOCAL_API_KEY),
            use_responses_api=False,
            max_retries=self._attempts - 1,
            timeout=timeout,
            # every reply read through the one bounded reader, counted after decompression (issue 23 #4)
            http_async_client=openai.DefaultAsyncHttpx2Client(transport=bounded_transport(httpx2)),
        )

    def __repr__(self) -> str:
        return f"OpenAIWriter({self.provider!r} at {self._where})"

    def notice(self, request: str) -> str | None:
        """Which model writes, when storybot found it rather than being told."""
        if self.local is None or not self.local.model:
            return None
        if self.local.endpoint.kind == "embedded":
            return (
                f"Writing with {self.local.model} on {self.local.label} (no key or local server found; "
                "OPENAI_BASE_URL and STORYBOT_LLM_MODEL choose another)."
            )
        return (
            f"Writing with {self.local.model} on {self.local.label} at {self.local.endpoint.where} (found running; "
            "OPENAI_BASE_URL and STORYBOT_LLM_MODEL choose another)."
        )

    async def ideas(self, request: str, sources: list[IdeaSource], count: int = 3) -> list[StoryIdea]:
        if count < 1:
            raise ValueError("count must be at least 1")
        listed = "\n".join(
            f"- ({s.kind}) {plain_text(s.text, 300)}"
            + (f" -- {plain_text(s.inspiration, 300)}" if s.inspiration else "")
            for s in sources
            if s.kind != "request"
        )
        drafts = await self._structured(
            IdeaDrafts,
            prompts.story_ideas_prompt.format(
                request=plain_text(request, 1000), sources=listed or "(none)", count=count
            ),
        )
        ideas = [idea for idea in map(_idea, drafts.ideas) if idea]
        if not ideas:
            raise WriterError(f"{self.provider} proposed no usable story ideas")
        return sorted(ideas, key=lambda i: -i.score)[:count]

    async def script(self, request: str, idea: StoryIdea, target_words: int) -> str:
        target = clamp_target(target_words)
        prompt = prompts.write_script_prompt.format(
            request=plain_text(request, 1000),
            title=plain_text(idea.title),
            logline=plain_text(idea.logline),
            hook=plain_text(idea.hook),
            **_length(target),
        )
        return (await self._narration(target, prompt, ScriptDraft)).text

    async def revise(self, script: str, note: str, target_words: int) -> str:
        return (await self.revision(script, note, target_words)).text

    async def revision(self, script: str, note: str, target_words: int) -> Revision:
        target = clamp_target(round(target_words * length_scale(note)))
        prompt = prompts.revise_script_prompt.format(
            script=plain_text(script, 20_000), note=plain_text(note, 1000), **_length(target)
        )
        return await self._narration(target, prompt, RevisionDraft)

    async def scene_prompts(self, title: str, shot_texts: list[str]) -> list[str]:
        """One prompt per shot; a shot the model skipped gets the offline prompt from its own words."""
        if not shot_texts:
            return []
        shots = "\n".join(f"{i + 1}. {plain_text(text, 600)}" for i, text in enumerate(shot_texts))
        drafts = await self._structured(
            ScenePromptDrafts,
            prompts.scene_prompts_prompt.format(
                title=plain_text(title, TITLE_CHARS), shots=shots, count=len(shot_texts)
            ),
        )
        made = [plain_text(p, 600) for p in drafts.prompts]
        return [
            made[i] if i < len(made) and made[i] else visual_prompt(title, text, i) for i, text in enumerate(shot_texts)
        ]

    async def scene_plan(self, title: str, sentence_texts: list[str], count: int) -> list[PlannedShot]:
        """Shots over the numbered sentences; a plan that does not cover them exactly is sent back."""
        if not sentence_texts:
            return []
        listed = "\n".join(f"{i + 1}. {plain_text(text, 600)}" for i, text in enumerate(sentence_texts))
        n = len(sentence_texts)

        def covers(plan: ScenePlanDraft) -> None:
            check_coverage([(s.first_sentence - 1, s.last_sentence - 1) for s in plan.shots], n)

        draft = await self._structured(
            ScenePlanDraft,
            prompts.scene_plan_prompt.format(
                title=plain_text(title, TITLE_CHARS), sentences=listed, count=min(count, n), last=n
            ),
            covers,
        )
        return [
            PlannedShot(
                first_sentence=s.first_sentence - 1,
                last_sentence=s.last_sentence - 1,
                prompt=plain_text(s.image_prompt, 600) or visual_prompt(title, sentence_texts[i], i),
                negative_prompt=plain_text(s.negative_prompt, 300),
                mood=plain_text(s.mood, 40),
                search_terms=[t for t in (plain_text(x, 40) for x in s.search_terms[:4]) if t],
                motion=s.camera if s.camera in _MOTIONS else _MOTIONS[i % len(_MOTIONS)],
                beat=s.beat,
            )
            for i, s in enumerate(draft.shots)
        ]

    async def platform_meta(self, title: str, script: str) -> PlatformMeta:
        draft = await self._structured(
            MetaDraft,
            prompts.platform_meta_prompt.format(
                title=plain_text(title, TITLE_CHARS), script=plain_text(script, 20_000)
            ),
        )
        return PlatformMeta.build(
            draft.title or title,
            draft.description,
            {"youtube_shorts": draft.youtube_shorts, "tiktok": draft.tiktok, "instagram_reels": draft.instagram_reels},
        )

    # structured output -------------------------------------------------------------------------

    async def _structured(self, schema: type[M], prompt: str, check: Callable[[M], None] | None = None) -> M:
        return await self._structured_chat(
            schema, [SystemMessage(prompts.writer_system_prompt), HumanMessage(prompt)], check
        )

    async def _structured_chat(
        self,
        schema: type[M],
        messages: list[BaseMessage],
        check: Callable[[M], None] | None = None,
        bounds: dict[str, tuple[int, int]] | None = None,
    ) -> M:
        """A validated `schema` instance; validation errors (and `check`'s) are fed back and retried.
        `bounds` are (min, max) characters per string field, put in the schema the server enforces."""
        messages = list(messages)
        error = ""
        for attempt in range(1, PARSE_ATTEMPTS + 1):
            raw, data = await self._ask_structured(schema, messages, bounds)
            try:
                result = schema.model_validate(data)
                if check is not None:
                    check(result)
                return result
            except ValueError as exc:  # pydantic's ValidationError is one
                error = _validation_error(exc)
            log.info(
                "%s: unusable %s (attempt %d of %d): %s", self.provider, schema.__name__, attempt, PARSE_ATTEMPTS, error
            )
            messages += [AIMessage(_raw_text(raw)), HumanMessage(prompts.fix_structured_prompt.format(error=error))]
        raise WriterError(
            f"LLM {self.provider} at {self._where} answered with an unusable {schema.__name__} "
            f"{PARSE_ATTEMPTS} times ({self._scrub(error)[:200]}); the job can be resumed"
        )

    async def _ask_structured(
        self, schema: type[BaseModel], messages: list[BaseMessage], bounds: dict[str, tuple[int, int]] | None = None
    ) -> tuple[Any, Any]:
        """(raw reply, parsed JSON or None) with the current method, falling back when the server refuses it."""
        function = convert_to_openai_function(schema, strict=True)
        for name, (low, high) in (bounds or {}).items():
            function["parameters"]["properties"][name].update(minLength=low, maxLength=high)
        while True:
            method = self._method
            asked = messages
            if method == "json_mode":
                asked = [
                    *messages,
                    SystemMessage(
                        prompts.json_mode_prompt.format(
                            name=function["name"], schema=json.dumps(function["parameters"])
                        )
                    ),
                ]
            runnable = self._llm.with_structured_output(
                function, method=method, include_raw=True, strict=True if method == "json_schema" else None
            )
            try:
                out = await self._call(runnable, asked)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                fallback = METHODS[METHODS.index(method) + 1 :]
                if not fallback:
                    raise self._failure(exc) from None
                log.warning(
                    "%s at %s refused %s structured output (HTTP %s); trying %s",
                    self.provider,
                    self._where,
                    method,
                    exc.status_code,
                    fallback[0],
                )
                self._method = fallback[0]
                continue
            except openai.APIError as exc:
                raise self._failure(exc) from None
            raw = out.get("raw")
            self._count(raw)
            return raw, (out.get("parsed") if out.get("parsing_error") is None else None)

    async def _call(self, runnable: Runnable[Any, Any], messages: list[BaseMessage]) -> Any:
        """One model call. The SDK retries HTTP faults; a reply that is not JSON at all (a proxy's
        error page, a cut-off body) is retried here the same way: exponential backoff with jitter."""
        wait = wait_exponential_jitter(multiplier=self.backoff, max=8, jitter=self.backoff)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_MALFORMED), stop=stop_after_attempt(self._attempts), wait=wait, reraise=True
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await runnable.ainvoke(messages)
        except TooLarge as exc:  # not retried: the same question would bring the same reply
            raise WriterGaveUp(f"LLM {self.provider} at {self._where} sent {exc}; the job can be resumed") from None
        except RecursionError:  # the SDK's json.loads of a body nested 100,000 deep
            raise WriterGaveUp(
                f"LLM {self.provider} at {self._where} sent a reply nested too deep to read; the job can be resumed"
            ) from None
        except _MALFORMED:
            raise WriterError(
                f"LLM {self.provider} at {self._where} sent a malformed reply (not the JSON of the "
                f"chat completions API) {self._attempts} times; the job can be resumed"
            ) from None
        raise AssertionError("unreachable")

    async def _narration(self, target: int, prompt: str, schema: type[ScriptDraft]) -> Revision:
        """Ask, clean, and ask once more with the count when the length is far off."""
        messages: list[BaseMessage] = [SystemMessage(prompts.writer_system_prompt), HumanMessage(prompt)]
        bounds = {"script": script_chars(target)} if self._bound_length else None
        draft = await self._structured_chat(schema, messages, bounds=bounds)
        text = clean_narration(draft.script)
        n = word_count(text)
        if not SANE[0] * target <= n <= SANE[1] * target:
            log.info("%s wrote %d words for a target of %d; asking again", self.provider, n, target)
            messages += [
                AIMessage(draft.model_dump_json()),
                HumanMessage(prompts.fix_length_prompt.format(words=n, **_length(target))),
            ]
            draft = await self._structured_chat(schema, messages, bounds=bounds)
            text = clean_narration(draft.script)
            n = word_count(text)
        if n > KEEP[1] * target:
            text = trim_to_words(text, math.floor(KEEP[1] * target))
            n = word_count(text)
        if n == 0:
            raise WriterError(f"{self.provider} wrote 0 words for a {target}-word script, twice")
        if n < KEEP[0] * target:  # kept: the approval shows its length, and the reviewer can ask for longer
            log.info("%s wrote %d words for a target of %d, twice; keeping the draft", self.provider, n, target)
        return Revision(text=text, summary=plain_text(getattr(draft, "summary", ""), 200))

    # bookkeeping -------------------------------------------------------------------------------

    def _count(self, reply: Any) -> None:
        usage = getattr(reply, "usage_metadata", None) or {}
        count(
            self.provider,
            prompt_tokens=usage.get("input_tokens", 0),
            completion_tokens=usage.get("output_tokens", 0),
            total_tokens=usage.get("total_tokens", 0),
        )

    def _scrub(self, text: str) -> str:
        return redact(text, extra=[self._key.get_secret_value()] if self._key else [])

    def _failure(self, exc: openai.APIError) -> WriterGaveUp:
        """One line naming the provider, the server and the status; the key and request body never."""
        status = getattr(exc, "status_code", None)
        retried = f" after {self._attempts} attempts" if self._attempts > 1 else ""
        if isinstance(exc, openai.APITimeoutError):
            what = f"did not answer within {self._timeout:g} s{retried}"
        elif isinstance(exc, openai.APIConnectionError):
            what = f"could not be reached{retried}"
        elif status == 401:
            what = "refused the API key (HTTP 401); check OPENAI_API_KEY"
        elif status == 404:
            what = "answered HTTP 404; check OPENAI_BASE_URL (it usually ends in /v1) and STORYBOT_LLM_MODEL"
        elif status == 429:
            what = f"is rate limiting (HTTP 429){retried}"
        elif status is not None and status >= 500:
            what = f"failed (HTTP {status}){retried}"
        else:
            what = f"refused the request (HTTP {status})"
        detail = _server_message(exc)
        line = f"LLM {self.provider} at {self._where} {what}" + (f": {detail}" if detail else "")
        return WriterGaveUp(self._scrub(line) + "; the job can be resumed")


def clean_narration(text: str) -> str:
    """What a voice should read: no labels, cues, markdown, mentions, wrapping quotes; ends a sentence."""
    text = _LABEL.sub("", _HEADING.sub("", text))
    text = _CUE.sub(" ", text)
    text = plain_text(text, 20_000).strip(_QUOTES + " ")
    text = " ".join(sentences(text))
    if text and text[-1] not in ".!?":
        text += "."
    return text


def script_chars(target: int) -> tuple[int, int]:
    """(min, max) characters a narration of `target` words may take, for the schema's string bounds:
    English runs 5-6 characters a word with its space; the bounds leave room, the word check decides."""
    return math.floor(target * SANE[0] * 4), math.ceil(target * SANE[1] * 7)


def _length(target: int) -> dict[str, int]:
    return {"target_words": target, "min_words": math.ceil(target * 0.9), "max_words": math.floor(target * 1.1)}


def _idea(draft: IdeaDraft) -> StoryIdea | None:
    """A draft cleaned into a valid idea, or None when it has no usable title."""
    title = plain_text(draft.title, TITLE_CHARS).strip(_QUOTES + " ")
    if not title:
        return None
    tags = [t for t in (plain_text(tag, 40).lower().lstrip("#") for tag in draft.tags) if t][:5]
    parts = {name: min(PART_MAX, max(0, int(getattr(draft.score_parts, name)))) for name in SCORE_PARTS}
    return StoryIdea(
        title=title,
        logline=cap(plain_text(draft.logline)) or title,
        hook=cap(plain_text(draft.hook)) or title,
        score=sum(parts.values()),
        tags=tags,
        angle=plain_text(draft.angle, 80),
        audience=plain_text(draft.audience, 80),
        emotional_core=plain_text(draft.emotional_core, 80),
        score_parts=parts,
    )


def _raw_text(raw: Any) -> str:
    """What the model said, to show it back: its text, or the arguments of its tool call."""
    calls = getattr(raw, "tool_calls", None) or []
    if calls:
        return json.dumps(calls[0].get("args", {}))[:4000]
    return str(getattr(raw, "text", "") or "")[:4000]


def _validation_error(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()[:5])
    return str(exc)


def _server_message(exc: openai.APIError) -> str:
    """The server's own short reason (`error.message`), one line; bodies can echo the request."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(message).split())[:160] if message else ""

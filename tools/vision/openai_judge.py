"""A vision judge on any OpenAI-compatible chat model that takes images (GPT-4o class, Ollama, vLLM).

The keyframe travels as a base64 data URL in an `image_url` part (scaled to at most ~1 MP, aspect
kept). The answer is asked for as JSON-schema structured output first, then JSON mode, then plain
text, for servers that refuse the former (the first that works is kept), and parsed with the
same schema as the GPU judge's; an answer that does not parse is an unparsed verdict, never
invented scores. Network faults are retried by the openai SDK; the key is never printed.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
import openai
from PIL import Image

from gpu_workers.protocol import Verdict
from tools.gpu.client import ProgressFn
from tools.gpu.errors import GpuError
from tools.net.bounded import TooLarge, bounded_transport
from tools.net.redact import redact
from tools.settings import Settings
from tools.vision.base import Question
from tools.vision.verdict import fit_pixels, parse_verdict, verdict_prompt

log = logging.getLogger(__name__)
LOCAL_API_KEY = "not-needed"  # Ollama and vLLM ignore the key, but the client insists on one
METHODS = ("json_schema", "json_object", "text")
VERDICT_SCHEMA: dict[str, Any] = {
    "name": "verdict",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["score", "missing", "unwanted", "consistent"],
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 10},
            "missing": {"type": "array", "items": {"type": "string"}},
            "unwanted": {"type": "array", "items": {"type": "string"}},
            "consistent": {"type": "boolean"},
        },
    },
}


def data_url(path: Path) -> str:
    """The picture as a PNG data URL, scaled down to about 1 MP with its aspect kept."""
    with Image.open(path) as img:
        picture = img.convert("RGB").resize(fit_pixels(img.size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class OpenAIJudge:
    provider = "openai"

    def __init__(self, settings: Settings) -> None:
        if not settings.vision_model:
            raise GpuError("the OpenAI-compatible vision judge needs STORYBOT_VISION_MODEL (e.g. gpt-4o-mini)", "load")
        key = settings.vision_api_key or settings.openai_api_key
        self.model, self.settings = settings.vision_model, settings
        self.client = openai.AsyncOpenAI(
            api_key=key.get_secret_value() if key else LOCAL_API_KEY,
            base_url=settings.vision_base_url or settings.openai_base_url or None,
            timeout=settings.vision_timeout,
            max_retries=settings.provider_retries,
            http_client=openai.DefaultAsyncHttpx2Client(transport=bounded_transport(httpx2)),  # replies capped
        )
        self.max_tokens = max(settings.vision_max_new_tokens, 200)
        self.methods = list(METHODS)

    def _messages(self, q: Question) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [
            {"type": "text", "text": verdict_prompt(q.prompt, previous=q.previous is not None)}
        ]
        for path in [q.image] + ([q.previous] if q.previous else []):
            parts.append({"type": "image_url", "image_url": {"url": data_url(path)}})
        return [{"role": "user", "content": parts}]

    async def judge(self, questions: Sequence[Question], progress: ProgressFn | None = None) -> list[Verdict]:
        """Up to `vision_batch` requests at once (a chat API answers one picture per request)."""
        gate, answered = asyncio.Semaphore(self.settings.vision_batch), 0
        if progress:
            progress(0, len(questions))

        async def one(q: Question) -> Verdict:
            nonlocal answered
            async with gate:
                verdict = await self._ask(q)
            answered += 1
            if progress:
                progress(answered, len(questions))
            return verdict

        asked = [asyncio.ensure_future(one(q)) for q in questions]
        try:
            return list(await asyncio.gather(*asked))
        except BaseException:
            for task in asked:  # one failure fails the call: nobody waits on the rest
                task.cancel()
            raise

    async def _ask(self, q: Question) -> Verdict:
        messages = await asyncio.to_thread(self._messages, q)
        formats: dict[str, Any] = {
            "json_schema": {"response_format": {"type": "json_schema", "json_schema": VERDICT_SCHEMA}},
            "json_object": {"response_format": {"type": "json_object"}},
            "text": {},
        }
        while True:
            method = self.methods[0]
            try:
                reply = await self.client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=self.max_tokens,
                    temperature=0,
                    **formats[method],
                )
                break
            except openai.BadRequestError as exc:
                if method != self.methods[0]:
                    continue  # a concurrent request already moved on to the next method
                if len(self.methods) == 1:
                    said = redact(exc.message, self.settings)  # a server may echo the key it was sent
                    raise GpuError(f"vision model {self.model} refused the request: {said}", "bad_request") from None
                log.info("vision server refused %s output; trying %s", method, self.methods[1])
                self.methods.pop(0)
            except openai.APIStatusError as exc:
                raise GpuError(f"vision model {self.model}: HTTP {exc.status_code}", "error") from None
            except openai.APIError as exc:
                raise GpuError(f"vision model {self.model}: {type(exc).__name__}", "error") from None
            except TooLarge as exc:
                raise GpuError(f"vision model {self.model} sent {exc}", "error") from None
            except RecursionError:
                raise GpuError(f"vision model {self.model} sent a reply nested too deep to read", "error") from None
        text = reply.choices[0].message.content or "" if reply.choices else ""
        return parse_verdict(text)

    async def close(self) -> None:
        await self.client.close()

"""Pictures from any OpenAI-compatible Images API: `POST {base}/images/generations` with `model`,
`prompt`, `size` and `n`, answered with `b64_json` or a `url`.

The model draws at the offered size nearest the output's shape; the picture is then cover-cropped
to the output size. Each picture is counted as usage (images, pixels, and tokens when the server
reports them), like LLM tokens. The API has no negative prompt, so it is said in the prompt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ValidationError

from tools.errors import BadInput
from tools.llm.usage import count
from tools.models import Aspect
from tools.net.guard import Guard
from tools.settings import Settings
from tools.visuals import footage
from tools.visuals.base import Job, Miss, Opening, ShotBrief, SourceRow, Visual, VisualError, cache_dir
from tools.visuals.fetch import Http, sniff

# sizes each model family offers (OpenAI's documented lists); unknown models get gpt-image-1's
SIZES = {
    "gpt-image": ((1024, 1024), (1024, 1536), (1536, 1024)),
    "dall-e-3": ((1024, 1024), (1024, 1792), (1792, 1024)),
    "dall-e-2": ((256, 256), (512, 512), (1024, 1024)),
}
GENERATION_TIMEOUT = httpx.Timeout(180.0, connect=10.0)  # one picture can take a minute or two
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def nearest_size(model: str, aspect: Aspect) -> tuple[int, int]:
    """The offered size whose shape is closest to the output's (then the largest of those)."""
    offered = next((s for prefix, s in SIZES.items() if model.startswith(prefix)), SIZES["gpt-image"])
    w, h = aspect.size
    return min(offered, key=lambda s: (abs(s[0] / s[1] - w / h), -s[0] * s[1]))


class _ApiDown(VisualError):
    """The Images API itself failed (after retries), not one picture."""


class _Item(BaseModel):
    b64_json: str | None = None
    url: str | None = None


class _Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class _Reply(BaseModel):
    data: list[_Item]
    usage: _Usage | None = None


def prompt_for(brief: ShotBrief) -> str:
    avoid = f" Avoid: {brief.negative_prompt}." if brief.negative_prompt else ""
    return f"{brief.prompt or brief.text}. No text, letters or captions in the picture.{avoid}"


class ImagesSource:
    name: Literal["images"] = "images"

    def __init__(self, http: Http, base_url: str, model: str, key: str, cache: Path) -> None:
        self.http, self.base, self.model, self.cache = http, base_url.rstrip("/"), model, cache
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}  # the API only, not picture URLs

    @classmethod
    def open(
        cls, base_url: str, model: str, key: str, cache: Path, retries: int
    ) -> tuple[ImagesSource, httpx.AsyncClient]:
        client = httpx.AsyncClient(timeout=GENERATION_TIMEOUT, follow_redirects=True)
        http = Http(client, "images", retries, [key], guard=Guard.for_bases(base_url))
        return cls(http, base_url, model, key, cache), client

    async def make(self, briefs: list[ShotBrief], job: Job) -> list[Visual | Miss]:
        out: list[Visual | Miss] = []
        down: str | None = None  # the API failed through its retries: the other shots are not tried
        for brief in briefs:
            if down is not None:
                out.append(Miss(shot=brief.index, reason=down))
                continue
            try:
                out.append(await self._one(brief, job))
            except _ApiDown as exc:
                down = str(exc)
                out.append(Miss(shot=brief.index, reason=down))
            except VisualError as exc:
                out.append(Miss(shot=brief.index, reason=str(exc)))
        return out

    async def _one(self, brief: ShotBrief, job: Job) -> Visual:
        w, h = nearest_size(self.model, job.aspect)
        body = {"model": self.model, "prompt": prompt_for(brief), "size": f"{w}x{h}", "n": 1}
        try:
            data = await self.http.json("POST", f"{self.base}/images/generations", body=body, headers=self._auth)
        except VisualError as exc:
            raise _ApiDown(str(exc)) from None
        try:
            reply = _Reply.model_validate(data)
        except ValidationError:
            raise VisualError("images: the reply has no `data` list") from None
        if not reply.data:
            raise VisualError("images: the reply held no picture")
        count(
            f"images:{self.model}",
            images=1,
            pixels=w * h,
            input_tokens=reply.usage.input_tokens if reply.usage else 0,
            output_tokens=reply.usage.output_tokens if reply.usage else 0,
        )
        item = reply.data[0]
        raw = job.media(brief, ".raw")
        raw.parent.mkdir(parents=True, exist_ok=True)
        if item.b64_json:
            try:
                picture = base64.b64decode(item.b64_json, validate=True)
                raw = raw.with_suffix(sniff(picture[:64], "image"))
            except (binascii.Error, ValueError) as exc:
                raise VisualError(f"images: the picture did not decode ({exc})") from None
            raw.write_bytes(picture)
        elif item.url:
            name = hashlib.sha256(f"{self.model}|{body['prompt']}|{brief.seed}|{w}x{h}".encode()).hexdigest()[:24]
            raw = await self.http.download(item.url, self.cache, name, "image")
        else:
            raise VisualError("images: the reply has neither b64_json nor url")
        try:
            png = footage.still_keyframe(raw, job.aspect, job.keyframe(brief))
        except Exception as exc:
            raise VisualError(f"images: {exc}") from None
        return Visual(shot=brief.index, source=f"images:{self.model}", keyframe=png)


# --- the registry row ------------------------------------------------------------------------------


def _key(settings: Settings) -> str:
    key = settings.image_api_key or settings.openai_api_key
    return key.get_secret_value() if key else ""


def _check(settings: Settings) -> None:
    if not (settings.image_base_url or settings.openai_base_url or _key(settings)):
        raise BadInput("--visuals images needs STORYBOT_IMAGE_BASE_URL (or OPENAI_BASE_URL) or an API key")


@asynccontextmanager
async def _open(settings: Settings, opening: Opening) -> AsyncIterator[ImagesSource]:
    base = settings.image_base_url or settings.openai_base_url or DEFAULT_BASE_URL
    images, client = ImagesSource.open(
        base, settings.image_model or "", _key(settings), cache_dir(settings), settings.provider_retries
    )
    async with client:
        yield images


ROW = SourceRow(
    "images",
    "STORYBOT_IMAGE_MODEL",
    lambda settings: bool(settings.image_model),
    _open,
    lambda settings, used: f"images ({settings.image_model})",
    check=_check,
)

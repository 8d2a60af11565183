"""Finding a language model already running on this machine, so a user with no key needs no setup.

With neither OPENAI_API_KEY nor OPENAI_BASE_URL set, `get_writer` asks the usual local servers what
they hold: Ollama (`GET /api/tags`, its own API, which says each model's family and size), LM Studio
and a llama.cpp server (`GET /v1/models`, the OpenAI listing). All are asked at once with short
timeouts: a port nobody listens on refuses in well under a millisecond, so a machine with no server
pays only for one small client (tens of milliseconds), and a listener that hangs costs at most
`PROBE_TIMEOUT`. The first server with a usable instruct model is used through its OpenAI-compatible
`/v1` endpoint; a server with none is remembered so the template writer can name the model to pull.

Addresses come from `STORYBOT_LOCAL_LLM_SERVERS` (`kind=URL,...`; empty turns detection off):
http(s) origins only, checked before use, and replies are read with a small byte ceiling.
"""

from __future__ import annotations

import asyncio
import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import httpx
from pydantic import BaseModel, ValidationError

from tools.net.bounded import TooLarge, read_bounded
from tools.net.guard import RefusedURL, parse
from tools.settings import Settings

Kind = Literal["ollama", "lmstudio", "llamacpp", "embedded"]
LABELS: dict[Kind, str] = {
    "ollama": "Ollama",
    "lmstudio": "LM Studio",
    "llamacpp": "llama.cpp server",
    "embedded": "the embedded writer (onnxruntime-genai, in this process)",
}
LISTING: dict[Kind, str] = {"ollama": "/api/tags", "lmstudio": "/v1/models", "llamacpp": "/v1/models", "embedded": ""}
DETECTED: tuple[Kind, ...] = ("ollama", "lmstudio", "llamacpp")  # what STORYBOT_LOCAL_LLM_SERVERS may name
PROBE_TIMEOUT = httpx.Timeout(1.5, connect=0.3)  # a local server answers its listing in milliseconds
MAX_LISTING = 1024 * 1024  # a listing of a hundred models is a few tens of kilobytes
# Apache-2.0 (the 3B size is not: it has its own research licence); fluent, and fits 8 GB of memory
SUGGESTED = "qwen2.5:7b-instruct"
PULL_HINTS: dict[Kind, str] = {
    "ollama": f"run `ollama pull {SUGGESTED}`",
    "lmstudio": "load an instruct model in LM Studio (for example Qwen2.5 7B Instruct) and start its server",
    "llamacpp": "start llama-server with an instruct GGUF model",
    "embedded": "run `storybot models pull writer`",
}
HOW_TO_GET_ONE = (
    f"install Ollama and run `ollama pull {SUGGESTED}` (storybot finds it by itself), "
    "or set OPENAI_API_KEY, or OPENAI_BASE_URL for another OpenAI-compatible server, "
    "or `pip install 'storybot[writer]'` and `storybot models pull writer` for a model run inside storybot"
)
_NOT_CHAT = re.compile(r"embed|rerank|whisper|tts|clip|(?:^|[-:_])(?:text|base)(?:$|[-:_])", re.IGNORECASE)
_CHAT = re.compile(r"instruct|chat|(?:^|[-_:.])it(?:$|[-_:.])", re.IGNORECASE)
_CHAT_FAMILIES = ("qwen2", "llama", "mistral", "gemma", "phi", "granite", "olmo", "smollm", "command-r", "aya")
_THINKERS = re.compile(r"deepseek-r1|qwq|(?:^|[-_:])r1(?:$|[-_:])|think|reason", re.IGNORECASE)


class Endpoint(BaseModel):
    kind: Kind
    origin: str  # http://127.0.0.1:11434

    @property
    def where(self) -> str:
        return httpx.URL(self.origin).netloc.decode("ascii")


class Found(BaseModel):
    """A local server that answered: the model to write with, or None and what to do about it."""

    endpoint: Endpoint
    model: str | None = None
    models: list[str] = []  # every model it listed

    @property
    def label(self) -> str:
        return LABELS[self.endpoint.kind]

    @property
    def base_url(self) -> str:
        return f"{self.endpoint.origin}/v1"

    def missing(self) -> str:
        """Why this server cannot write, and the exact step that fixes it."""
        return (
            f"{self.label} is running at {self.endpoint.where} but has no instruct model: "
            f"{PULL_HINTS[self.endpoint.kind]}"
        )


class _Details(BaseModel):
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""


class _OllamaModel(BaseModel):
    name: str
    details: _Details = _Details()


class _OllamaTags(BaseModel):
    models: list[_OllamaModel]


class _OpenAIModel(BaseModel):
    id: str


class _OpenAIModels(BaseModel):
    data: list[_OpenAIModel]


def endpoints(settings: Settings) -> list[Endpoint]:
    """The servers to ask, from STORYBOT_LOCAL_LLM_SERVERS; a malformed entry is skipped, never fetched."""
    found: list[Endpoint] = []
    for item in settings.local_llm_servers.split(","):
        kind, eq, url = item.strip().partition("=")
        if not eq or kind.strip() not in DETECTED:
            continue
        try:
            parsed = parse(url.strip())
        except RefusedURL:
            continue
        if parsed.scheme not in ("http", "https") or not parsed.host:
            continue
        origin = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
        found.append(Endpoint.model_validate({"kind": kind.strip(), "origin": origin}))
    return found


def _billions(size: str) -> float | None:
    """ "7.6B" -> 7.6, "494.03M" -> 0.494; None when it does not say."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([BM])\s*", size, re.IGNORECASE)
    if not match:
        return None
    try:
        value = float(match[1])
    except ValueError:
        return None
    return value / 1000 if match[2].upper() == "M" else value


def _size_from_name(name: str) -> float | None:
    match = re.search(r"(?:^|[-:_])([0-9.]+)b(?:$|[-:_])", name, re.IGNORECASE)
    return _billions(f"{match[1]}B") if match else None


def _rank(name: str, family: str, billions: float | None) -> tuple[int, int, float] | None:
    """Smaller is better; None for a model that cannot write (embeddings, base models, speech)."""
    if _NOT_CHAT.search(name) or family in ("bert", "nomic-bert", "clip"):
        return None
    chat = bool(_CHAT.search(name)) or any(f in f"{family} {name}".lower() for f in _CHAT_FAMILIES)
    size = billions if billions is not None else _size_from_name(name)
    if size is not None and size < 1.0:
        return None  # measured here: 0.5B and smaller models write nonsense
    fit = abs(math.log((size or 7.0) / 7.0))  # about 7B writes well and still fits a laptop
    return (0 if chat else 1, 1 if _THINKERS.search(name) else 0, fit)


def pick_ollama(tags: _OllamaTags) -> str | None:
    ranked = [
        (rank, m.name)
        for m in tags.models
        if (rank := _rank(m.name, m.details.family.lower(), _billions(m.details.parameter_size))) is not None
    ]
    return min(ranked)[1] if ranked else None


def pick_listed(models: _OpenAIModels) -> str | None:
    ranked = [(rank, m.id) for m in models.data if (rank := _rank(m.id, "", None)) is not None]
    return min(ranked)[1] if ranked else None


async def _ask(client: httpx.AsyncClient, endpoint: Endpoint) -> Found | None:
    """What one server holds, or None when nothing (or something else) answers there."""
    try:
        async with client.stream("GET", endpoint.origin + LISTING[endpoint.kind]) as response:
            if response.status_code != 200:
                return None
            body = await read_bounded(response, MAX_LISTING)
    except (httpx.HTTPError, TooLarge, OSError):
        return None
    try:
        if endpoint.kind == "ollama":
            tags = _OllamaTags.model_validate_json(body)
            return Found(endpoint=endpoint, model=pick_ollama(tags), models=[m.name for m in tags.models])
        listed = _OpenAIModels.model_validate_json(body)
        return Found(endpoint=endpoint, model=pick_listed(listed), models=[m.id for m in listed.data])
    except ValidationError:
        return None  # another program on that port


async def detect(settings: Settings) -> Found | None:
    """The first server (in configured order) with a usable model; else the first that answered."""
    wanted = endpoints(settings)
    if not wanted:
        return None
    # loading the CA store is most of a client's cost; plain-http origins (the usual ones) never use it
    secure = any(e.origin.startswith("https:") for e in wanted)
    async with httpx.AsyncClient(
        timeout=PROBE_TIMEOUT, follow_redirects=False, trust_env=False, verify=secure
    ) as client:
        answers = await asyncio.gather(*(_ask(client, e) for e in wanted))
    answered = [a for a in answers if a is not None]
    return next((a for a in answered if a.model), answered[0] if answered else None)


def detect_now(settings: Settings) -> Found | None:
    """`detect` from synchronous code, also inside a running event loop (on its own thread and loop)."""
    if not endpoints(settings):
        return None
    with ThreadPoolExecutor(1, thread_name_prefix="llm-detect") as pool:
        return pool.submit(asyncio.run, detect(settings)).result()

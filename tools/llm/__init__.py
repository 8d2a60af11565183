"""Story writing: ideas, scripts, revisions, scene prompts and upload text.

`get_writer` returns the OpenAI-compatible writer when a key or a base URL is configured, or when a
local server with an instruct model is running (`local.py`), or the embedded writer's model is here
(`embedded.py`, `writer_model.py`), else the offline template writer, so
every stage runs with no keys; the job records `writer.provider`. `WriterChoice` makes that choice
again later for a long-lived process (the bot), so a server started after it is used without a
restart. langchain-openai takes about 1.7 s to import, so it is loaded only when it is configured.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tools.llm import embedded
from tools.llm.base import Writer, WriterError, target_words
from tools.llm.local import Endpoint, Found, detect, detect_now
from tools.llm.offline import OfflineWriter
from tools.llm.schemas import IdeaSource, PlannedShot, PlatformMeta, Revision, StoryIdea
from tools.llm.writer_model import writer_folder
from tools.net.redact import one_line
from tools.settings import Settings

log = logging.getLogger("storybot.llm")
EMBEDDED_TIMEOUT = 900.0  # seconds per reply of the embedded writer (issue 22 measured 38-52 s a script)
# how long a job step waits for a re-check before going on with the writer it has: a running server
# answers its listing in milliseconds and a closed port refuses at once; a hung listener takes
# `local.PROBE_TIMEOUT` and is left to finish in the background, so a script is never held up for it
RECHECK_WAIT = 0.2


def get_writer(settings: Settings) -> Writer:
    """The configured server; else a local one found running (Ollama, LM Studio, llama.cpp); else
    the template writer, which says what it is and names the model to pull."""
    return writer_for(settings, None if configured(settings) else with_embedded(settings, detect_now(settings)))


def configured(settings: Settings) -> bool:
    """Whether the user named a server (OPENAI_API_KEY or OPENAI_BASE_URL): then nothing is searched for."""
    return settings.openai_api_key is not None or bool(settings.openai_base_url)


def with_embedded(settings: Settings, detected: Found | None) -> Found | None:
    """What was detected when it has a model; else the embedded writer when its model is here."""
    if detected is not None and detected.model is not None:
        return detected
    return embedded_writer(settings) or detected


def writer_for(settings: Settings, found: Found | None) -> Writer:
    """The writer for what the search found (None when a server is configured: nothing was searched)."""
    if not configured(settings) and (found is None or found.model is None):
        return OfflineWriter(found)
    from tools.llm.openai_writer import OpenAIWriter

    if found is not None and found.endpoint.kind == "embedded":  # a CPU writes a script in about a minute
        return OpenAIWriter(settings, local=found, timeout=EMBEDDED_TIMEOUT)
    return OpenAIWriter(settings, local=found)


def embedded_writer(settings: Settings) -> Found | None:
    """The pulled (or STORYBOT_WRITER_MODEL) model served in this process, when the `writer` extra is
    installed and the model is whole; else None."""
    folder = writer_folder(settings)
    if not embedded.is_model(folder) or not embedded.available():
        return None
    origin = embedded.serve(folder)
    endpoint = Endpoint(kind="embedded", origin=origin)
    return Found(endpoint=endpoint, model=folder.name, models=[folder.name])


class WriterChoice:
    """The writer for each job step of a long-lived process.

    Chosen once like `get_writer`; then, while it is the template writer or a server found running,
    a step starting at least STORYBOT_LOCAL_LLM_RECHECK seconds after the last search searches again,
    so `ollama serve` (or `storybot models pull writer`) after the bot started is used by the next job
    or revision, and a server that stopped or lost its model gives way to the template writer and its
    notice instead of failing the job. A configured server and the embedded writer stay as they are.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.found = None if configured(settings) else with_embedded(settings, detect_now(settings))
        self.writer = writer_for(settings, self.found)
        self._searched = time.monotonic()
        self._search: asyncio.Task[Found | None] | None = None
        self._switching = asyncio.Lock()

    async def current(self) -> Writer:
        """The writer for a step starting now, after a search when one is due (waited for at most
        `RECHECK_WAIT` seconds by the step that starts it; a slower one is taken by a later step)."""
        if self._search is None and self._due():
            self._searched = time.monotonic()
            self._search = asyncio.create_task(detect(self.settings))
            await asyncio.wait({self._search}, timeout=RECHECK_WAIT)
        search = self._search
        if search is None or not search.done():
            return self.writer
        async with self._switching:
            if self._search is search:
                self._search = None
                await self._switch(search)
        return self.writer

    async def close(self) -> None:
        """Stop a search still under way (a hung listener), so no task outlives the service."""
        if self._search is not None:
            self._search.cancel()
            await asyncio.wait({self._search})
            self._search = None

    def _due(self) -> bool:
        if configured(self.settings) or (self.found is not None and self.found.endpoint.kind == "embedded"):
            return False
        return time.monotonic() - self._searched >= self.settings.local_llm_recheck

    async def _switch(self, search: asyncio.Task[Found | None]) -> None:
        """Take the search's answer: a new writer when it found another server or model than before."""
        try:
            found = await asyncio.to_thread(with_embedded, self.settings, search.result())
            if _key(found) == _key(self.found):
                return
            writer = await asyncio.to_thread(writer_for, self.settings, found)  # may import langchain-openai
        except Exception as exc:  # a failed search keeps the writer in use; the next one may do better
            log.warning("could not look for a local language model again: %s", one_line(exc, self.settings, 300))
            return
        log.info("the writer is now %s (was %s)", writer.provider, self.writer.provider)
        self.found, self.writer = found, writer


def _key(found: Found | None) -> tuple[str, str | None] | None:
    """What makes two search results the same writer: the server and the model it writes with."""
    return None if found is None else (found.endpoint.origin, found.model)


__all__ = [
    "IdeaSource",
    "OfflineWriter",
    "PlannedShot",
    "PlatformMeta",
    "Revision",
    "StoryIdea",
    "Writer",
    "WriterChoice",
    "WriterError",
    "get_writer",
    "target_words",
]

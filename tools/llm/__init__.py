"""Story writing: ideas, scripts, revisions, scene prompts and upload text.

`get_writer` returns the OpenAI-compatible writer when a key or a base URL is configured, or when a
local server with an instruct model is running (`local.py`), or the embedded writer's model is here
(`embedded.py`, `writer_model.py`), else the offline template writer, so
every stage runs with no keys; the job records `writer.provider`. langchain-openai
takes about 1.7 s to import, so it is loaded only when it is configured.
"""

from tools.llm import embedded
from tools.llm.base import Writer, WriterError, target_words
from tools.llm.local import Endpoint, Found, detect_now
from tools.llm.offline import OfflineWriter
from tools.llm.schemas import IdeaSource, PlannedShot, PlatformMeta, Revision, StoryIdea
from tools.llm.writer_model import writer_folder
from tools.settings import Settings

EMBEDDED_TIMEOUT = 900.0  # seconds per reply of the embedded writer (issue 22 measured 38-52 s a script)


def get_writer(settings: Settings) -> Writer:
    """The configured server; else a local one found running (Ollama, LM Studio, llama.cpp); else
    the template writer, which says what it is and names the model to pull."""
    found = None
    if settings.openai_api_key is None and not settings.openai_base_url:
        found = detect_now(settings)
        if found is None or found.model is None:
            found = embedded_writer(settings) or found
        if found is None or found.model is None:
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


__all__ = [
    "IdeaSource",
    "OfflineWriter",
    "PlannedShot",
    "PlatformMeta",
    "Revision",
    "StoryIdea",
    "Writer",
    "WriterError",
    "get_writer",
    "target_words",
]

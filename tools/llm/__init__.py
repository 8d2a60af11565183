"""Story writing: ideas, scripts, revisions, scene prompts and upload text.

`get_writer` returns the OpenAI-compatible writer when a key or a base URL is configured, or when a
local server with an instruct model is running (`local.py`), else the offline template writer, so
every stage runs with no keys; the job records `writer.provider`. langchain-openai
takes about 1.7 s to import, so it is loaded only when it is configured.
"""

from tools.llm.base import Writer, WriterError, target_words
from tools.llm.local import detect_now
from tools.llm.offline import OfflineWriter
from tools.llm.schemas import IdeaSource, PlannedShot, PlatformMeta, Revision, StoryIdea
from tools.settings import Settings


def get_writer(settings: Settings) -> Writer:
    """The configured server; else a local one found running (Ollama, LM Studio, llama.cpp); else
    the template writer, which says what it is and names the model to pull."""
    found = None
    if settings.openai_api_key is None and not settings.openai_base_url:
        found = detect_now(settings)
        if found is None or found.model is None:
            return OfflineWriter(found)
    from tools.llm.openai_writer import OpenAIWriter

    return OpenAIWriter(settings, local=found)


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

"""Story writing: ideas, scripts, revisions, scene prompts and upload text.

`get_writer` returns the OpenAI-compatible writer when a key or a base URL is configured, else the
offline writer, so every stage runs with no keys; the job records `writer.provider`. langchain-openai
takes about 1.7 s to import, so it is loaded only when it is configured.
"""

from tools.llm.base import Writer, WriterError, target_words
from tools.llm.offline import OfflineWriter
from tools.llm.schemas import IdeaSource, PlannedShot, PlatformMeta, Revision, StoryIdea
from tools.settings import Settings


def get_writer(settings: Settings) -> Writer:
    if settings.openai_api_key is None and not settings.openai_base_url:
        return OfflineWriter()
    from tools.llm.openai_writer import OpenAIWriter

    return OpenAIWriter(settings)


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

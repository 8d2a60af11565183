"""Everything a front end needs from the production side, in one import.

The Discord bot imports this module only (DESIGN.md: `bot/` may import `graph.JobService`), so the
nodes and tools behind it can change shape without touching the bot.
"""

from graph.events import Event
from graph.service import END_EVENTS, JobService, JobStatus, NotAllowed, Requester, StaleAnswer, Subscription
from graph.state import APPROVALS, MAX_PROMPT_CHARS, STAGES, Answer, JobRequest
from tools.errors import BadInput, StorybotError
from tools.settings import Settings
from tools.store import JobRecord, StageRecord
from tools.tts import VoiceInfo
from tools.tts import catalogue as voice_catalogue
from tools.tts import resolve as resolve_voice

__all__ = [
    "APPROVALS", "END_EVENTS", "MAX_PROMPT_CHARS", "STAGES", "Answer", "BadInput", "Event", "JobRecord",
    "JobRequest", "JobService", "JobStatus", "NotAllowed", "Requester", "Settings", "StageRecord",
    "StaleAnswer", "StorybotError", "Subscription", "VoiceInfo", "resolve_voice", "voice_catalogue",
]

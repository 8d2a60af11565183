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
from tools.upload import DEFAULT_LIMIT, fit_for_upload

__all__ = [
    "APPROVALS", "DEFAULT_LIMIT", "END_EVENTS", "MAX_PROMPT_CHARS", "STAGES", "Answer", "BadInput", "Event",
    "JobRecord", "JobRequest", "JobService", "JobStatus", "NotAllowed", "Requester", "Settings", "StageRecord",
    "StaleAnswer", "StorybotError", "Subscription", "fit_for_upload",
]

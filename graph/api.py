"""Everything a front end needs from the production side, in one import.

The Discord bot imports this module only (DESIGN.md: `bot/` may import `graph.JobService`), so the
nodes and tools behind it can change shape without touching the bot.
"""

from graph.database import engine_for, is_postgres
from graph.events import Event
from graph.leases import HeldLock
from graph.publish import Linked, linked_platforms, may_publish, plan_job, publications, publish_job, publish_planned
from graph.service import (
    END_EVENTS,
    FINAL_EVENTS,
    Events,
    JobRecord,
    JobService,
    JobStatus,
    NotAllowed,
    Requester,
    StaleAnswer,
    Subscription,
    was_interrupted,
)
from graph.state import (
    APPROVALS,
    LONGER,
    MAX_PROMPT_CHARS,
    SHORTER,
    STAGES,
    Answer,
    Approval,
    IdeaApproval,
    JobRequest,
    JobResult,
    KeyframeApproval,
    ScriptApproval,
    ShotVerdict,
)
from graph.store import ACTIVE, JOB_ID_PATTERN, LimitReached, OverLimit, StageRecord, valid_job_id
from graph.stored import artifact_locations, local_copy
from graph.tables import (
    bot_posts,
    bot_prompts,
    service_tokens,
    webhook_attempts,
    webhook_deliveries,
    webhook_hooks,
)
from tools.errors import BadInput, StorybotError
from tools.links import ARTIFACTS, PAGE, Links, link_secret, links_storage
from tools.llm.schemas import PlatformMeta, StoryIdea
from tools.media.outputs import Artifacts
from tools.media.upload import DEFAULT_LIMIT, fit_for_upload
from tools.models import Aspect
from tools.net.redact import LINK_SECRET_FILE, redact, redact_logs
from tools.publish import Choice, Outcome, PlatformRefused, Privacy, Publication, Unreachable
from tools.publish import targets as publish_targets
from tools.settings import Settings
from tools.sql import sqlite_engine, upsert
from tools.storage import is_remote
from tools.tts import VoiceInfo
from tools.tts import catalogue as voice_catalogue
from tools.tts import resolve as resolve_voice
from tools.visuals import Credit
from tools.visuals import resolve as resolve_visuals
from tools.visuals.user import keep_uploads, media_kind

__all__ = [
    "ACTIVE",
    "APPROVALS",
    "ARTIFACTS",
    "DEFAULT_LIMIT",
    "END_EVENTS",
    "FINAL_EVENTS",
    "JOB_ID_PATTERN",
    "LINK_SECRET_FILE",
    "LONGER",
    "MAX_PROMPT_CHARS",
    "PAGE",
    "SHORTER",
    "STAGES",
    "Answer",
    "Approval",
    "Artifacts",
    "Aspect",
    "BadInput",
    "Choice",
    "Credit",
    "Event",
    "Events",
    "HeldLock",
    "IdeaApproval",
    "JobRecord",
    "JobRequest",
    "JobResult",
    "JobService",
    "JobStatus",
    "KeyframeApproval",
    "LimitReached",
    "Linked",
    "Links",
    "NotAllowed",
    "Outcome",
    "OverLimit",
    "PlatformMeta",
    "PlatformRefused",
    "Privacy",
    "Publication",
    "Requester",
    "ScriptApproval",
    "Settings",
    "ShotVerdict",
    "StageRecord",
    "StaleAnswer",
    "StoryIdea",
    "StorybotError",
    "Subscription",
    "Unreachable",
    "VoiceInfo",
    "artifact_locations",
    "bot_posts",
    "bot_prompts",
    "engine_for",
    "fit_for_upload",
    "is_postgres",
    "is_remote",
    "keep_uploads",
    "link_secret",
    "linked_platforms",
    "links_storage",
    "local_copy",
    "may_publish",
    "media_kind",
    "plan_job",
    "publications",
    "publish_job",
    "publish_planned",
    "publish_targets",
    "redact",
    "redact_logs",
    "resolve_visuals",
    "resolve_voice",
    "service_tokens",
    "sqlite_engine",
    "upsert",
    "valid_job_id",
    "voice_catalogue",
    "was_interrupted",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_hooks",
]

"""What crosses the service's wire: requests as the CLI names them, responses typed for OpenAPI.

Field names are the contract (DESIGN.md, issue 19): a job is asked for with the CLI's words
(`prompt`, `script`, `duration`, ...), answered with `{"action", "idea", "note", "text", "shots"}`.
Job files are named relative to the job folder (`final.mp4`, `keyframes/shot_01.png`) and reached
through URLs, never through paths on this machine.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from graph.api import MAX_PROMPT_CHARS, StageRecord, StoryIdea

Visuals = Literal["auto", "cards", "stock", "images", "gpu"]
MAX_SCRIPT_CHARS = 20_000


class JobCreate(BaseModel):
    """`POST /v1/jobs`: a prompt (or your own script) and the options of `storybot make`."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("", max_length=MAX_PROMPT_CHARS * 4, description="What the video should be about.")
    script: str | None = Field(None, max_length=MAX_SCRIPT_CHARS, description="Your own script (skips writing).")
    duration: float = Field(45.0, ge=5, le=180, description="Target length in seconds.")
    aspect: Literal["9:16", "16:9", "1:1"] = "9:16"
    voice: str | None = Field(None, max_length=200, description="A voice name from GET /v1/voices.")
    language: str | None = Field(None, max_length=35, description="The script's language (ISO 639-1).")
    visuals: Visuals = "auto"
    ideas: bool = Field(False, description="Collect and score ideas to pick from first.")
    auto_approve: bool = Field(False, description="Approve every approval automatically.")
    webhook_url: str | None = Field(
        None, max_length=2000, description="Called (signed, Standard Webhooks) when the job waits, ends or fails."
    )


class Answer(BaseModel):
    """`POST /v1/jobs/{id}/answer`: the same actions as `storybot answer`."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["pick", "approve", "revise", "replace", "regenerate", "reroll", "cancel"]
    idea: int | None = Field(None, ge=1, le=9999, description="pick: the idea's number, from 1.")
    note: str | None = Field(None, max_length=2000, description="revise: what to change.")
    text: str | None = Field(None, max_length=MAX_SCRIPT_CHARS, description="replace: your script.")
    shots: list[Annotated[int, Field(ge=1, le=9999)]] = Field([], max_length=200, description="reroll: shots.")


class JobLinks(BaseModel):
    self: str
    events: str
    answer: str
    page: str


class JobCreated(BaseModel):
    job_id: str
    status: str
    links: JobLinks
    webhook_secret: str | None = None  # repeated when the job has a webhook: it signs every call


class IdeasWaiting(BaseModel):
    approval: Literal["pick_idea"] = "pick_idea"
    question: str
    actions: list[str]
    ideas: list[StoryIdea]


class ScriptWaiting(BaseModel):
    approval: Literal["approve_script"] = "approve_script"
    question: str
    actions: list[str]
    version: int
    script: str
    words: int
    spoken_seconds: float | None
    target_seconds: float
    own_script: bool


class Keyframe(BaseModel):
    shot: int
    caption: str
    url: str
    score: float | None = None  # the vision model's 0-10, when it checked


class KeyframesWaiting(BaseModel):
    approval: Literal["approve_keyframes"] = "approve_keyframes"
    question: str
    actions: list[str]
    keyframes: list[Keyframe]


Waiting = Annotated[IdeasWaiting | ScriptWaiting | KeyframesWaiting, Field(discriminator="approval")]


class JobView(BaseModel):
    job_id: str
    status: str
    stage: str | None
    created: str
    updated: str
    prompt: str
    error: str | None
    waiting_for: str | None
    waiting: Waiting | None = None
    stages: list[StageRecord]
    artifacts: dict[str, str] = {}  # name -> URL, once done
    links: JobLinks
    page_url: str | None = None  # the signed job page; its holder may answer
    queue_position: int | None = None  # 1: the next job to run; None: not waiting for a runner or a slot


class JobSummary(BaseModel):
    job_id: str
    status: str
    stage: str | None
    created: str
    prompt: str


class JobPage(BaseModel):
    jobs: list[JobSummary]
    next_before: str | None = None  # pass as `before` for the next (older) page


class Problem(BaseModel):
    """Every error body: what went wrong in one line, and the field when one is to blame."""

    error: str
    field: str | None = None
    expected: list[str] | None = None  # 409: the answers the waiting approval takes

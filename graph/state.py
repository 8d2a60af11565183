"""Job state carried by the graph and checkpointed after every step.

Only plain data and file names relative to the job folder live here (never bytes): the
checkpoint file grows by the state size at every step.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, Field, field_validator

from tools.errors import BadInput
from tools.models import Aspect
from tools.text import clean_script

STAGES = [
    "collect_ideas", "story_ideas", "pick_idea", "write_script", "revise_script", "approve_script",
    "voice", "subtitles", "plan_scenes", "keyframes", "vision_guidance", "approve_keyframes",
    "animate", "post_produce", "deliver",
]
APPROVALS = ("pick_idea", "approve_script", "approve_keyframes")
IDEA_STAGES = ("collect_ideas", "story_ideas", "pick_idea")
MAX_PROMPT_CHARS = 1000
MIN_DURATION, MAX_DURATION = 5.0, 180.0


class JobRequest(BaseModel):
    """What a front end asks for; validated before any job or file exists."""

    prompt: str
    script_text: str | None = None
    duration: float = Field(45.0)
    aspect: Aspect = Aspect.portrait
    voice: str | None = None  # a catalogue name (provider:id) or bare id; None: chosen by language
    language: str | None = None  # the script's language (ISO 639-1); None: detected
    seed: int = 0

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if len(value) > MAX_PROMPT_CHARS * 4:
            raise BadInput(f"the prompt is too long: {len(value)} characters (at most {MAX_PROMPT_CHARS})")
        try:
            text = " ".join(clean_script(value).split())
        except BadInput:
            raise BadInput("the prompt is empty: say what the video should be about") from None
        if len(text) > MAX_PROMPT_CHARS:
            raise BadInput(f"the prompt is too long: {len(text)} characters (at most {MAX_PROMPT_CHARS})")
        return text

    @field_validator("script_text")
    @classmethod
    def _script(cls, value: str | None) -> str | None:
        return clean_script(value) if value is not None else None

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float) -> float:
        if not MIN_DURATION <= value <= MAX_DURATION:
            raise BadInput(f"duration must be {MIN_DURATION:.0f} to {MAX_DURATION:.0f} seconds, not {value:g}")
        return value


class Answer(BaseModel):
    """A reply to an approval, from a button, a modal, a chat reply or `storybot answer`."""

    action: Literal["approve", "pick", "revise", "replace", "regenerate", "reroll", "cancel"]
    index: int | None = None          # pick: which idea (0-based)
    note: str | None = None           # revise: what to change
    text: str | None = None           # replace: the new script
    shots: list[int] = []             # reroll: 1-based shot numbers


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


class JobState(TypedDict, total=False):
    job_id: str
    request: dict[str, Any]             # JobRequest, as JSON
    ideas: list[dict[str, Any]]
    idea: dict[str, Any]
    script_version: int
    script_file: str                    # the draft under review: script.vN.txt
    revision: dict[str, Any]            # the pending revise/replace/regenerate request
    voice: dict[str, Any]
    subtitles: dict[str, Any]
    shot_seeds: dict[str, int]          # per-shot picture seed, bumped by a re-roll
    reroll: list[int]                   # 0-based shots the next keyframes run must redraw
    keyframes: list[str]
    clips: list[str]
    outcome: Literal["done", "cancelled"]
    artifacts: dict[str, Any]
    providers: Annotated[dict[str, str], _merge]
    notices: Annotated[list[str], operator.add]

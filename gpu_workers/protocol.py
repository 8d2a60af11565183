"""The JSON messages between a GPU client and a worker (one JSON object per line).

Large data never travels inside a message: images, audio and video are file paths that both sides
can read (the same machine for `local`, a shared folder for `celery`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Family = Literal["sdxl", "ltx", "whisper", "vision"]
FAMILIES: tuple[Family, ...] = ("sdxl", "ltx", "whisper", "vision")
ErrorKind = Literal["oom", "cancelled", "load", "bad_request", "error"]


class Request(BaseModel):
    """Client → worker: run `params` (the family's own schema), or cancel the request `id`."""

    id: str
    op: Literal["run", "cancel"] = "run"
    params: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """Worker → client: `ready` once the model is loaded, then per request `progress`* and one
    `result` or `error`. A load failure is an `error` with kind `load` and no id."""

    kind: Literal["ready", "progress", "result", "error"]
    id: str | None = None
    step: int | None = None
    total: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    load_seconds: float | None = None
    run_seconds: float | None = None  # time inside the model, so a client can tell its own overhead


class SdxlParams(BaseModel):
    """A batch of keyframes: one prompt, seed and output path per shot; negatives per shot or one for all."""

    prompts: list[str]
    seeds: list[int]
    outputs: list[str]
    negative_prompt: str = ""
    negative_prompts: list[str] | None = None
    width: int = Field(832, ge=64)
    height: int = Field(1216, ge=64)
    steps: int = Field(30, ge=1)
    guidance: float = 6.0


class LtxParams(BaseModel):
    """One clip conditioned on an approved keyframe; width/height multiples of 32, frames 8k+1."""

    image: str
    prompt: str
    output: str
    negative_prompt: str = ""
    width: int = Field(704, ge=32, multiple_of=32)
    height: int = Field(1216, ge=32, multiple_of=32)
    num_frames: int = Field(121, ge=9)
    fps: int = Field(24, ge=1)
    steps: int = Field(30, ge=1)
    seed: int = 0


class WhisperParams(BaseModel):
    audio: str
    language: str | None = None
    beam_size: int = Field(5, ge=1)
    max_new_tokens: int | None = None


class VisionParams(BaseModel):
    """Judge one keyframe against its prompt (and the previous shot's keyframe, if any)."""

    image: str
    prompt: str
    previous: str | None = None
    max_new_tokens: int = Field(120, ge=8)


class Verdict(BaseModel):
    """The VLM's judgement; `parsed` is false when its output held no valid verdict (scores then None)."""

    parsed: bool
    adherence: float | None = Field(None, ge=0, le=10)
    quality: float | None = Field(None, ge=0, le=10)
    critique: str = ""
    consistent: bool | None = None
    raw: str = ""

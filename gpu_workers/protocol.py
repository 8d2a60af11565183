"""The JSON messages between a GPU client and a worker (one JSON object per line).

Large data never travels inside a message: images, audio and video are file paths that both sides
can read (the same machine for `local`), or with remote object storage, object keys that the Celery
client and worker exchange files under (tools/gpu/shipping.py). Each family has a params
model (client → worker) and a result model (worker → client); `GpuClient.run` takes and returns
those models, so nothing past the boundary reads untyped dicts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

Family = Literal["sdxl", "ltx", "whisper", "vision"]
FAMILIES: tuple[Family, ...] = ("sdxl", "ltx", "whisper", "vision")
# fatal: a CUDA error that is not OOM; the worker exits after reporting it and the client restarts it
ErrorKind = Literal["oom", "cancelled", "load", "bad_request", "error", "fatal"]
OFFLOAD_MODES = ("auto", "none", "model", "sequential")


class Request(BaseModel):
    """Client → worker: run `params` (the family's own schema), or cancel the request `id`."""

    id: str
    op: Literal["run", "cancel"] = "run"
    params: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """Worker → client: `ready` once the model is loaded (with `info`: device, dtype, offload, tiling),
    then per request `progress`* and one `result` or `error`. A load failure is an `error` with kind
    `load` and no id."""

    kind: Literal["ready", "progress", "result", "error"]
    id: str | None = None
    step: int | None = None
    total: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    load_seconds: float | None = None
    run_seconds: float | None = None  # time inside the model, so a client can tell its own overhead
    info: dict[str, Any] | None = None
    peak_bytes: int | None = None  # the worker's peak so far: CUDA memory allocated, or resident memory on CPU


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


class ImageResult(BaseModel):
    """SDXL's answer: the pictures written, and the batch size that fitted (halved after an OOM)."""

    outputs: list[str]
    seeds: list[int]
    width: int
    height: int
    batch: int = 0


class LtxParams(BaseModel):
    """One clip conditioned on an approved keyframe; width/height multiples of 32, frames 8k+1.

    `num_frames` covers the whole shot; one generation makes at most `max_frames` (LTX 2B degrades
    past ~161), and a longer shot is extended by generating again from the last frame, never looped."""

    image: str
    prompt: str
    output: str
    negative_prompt: str = ""
    width: int = Field(704, ge=32, multiple_of=32)
    height: int = Field(1216, ge=32, multiple_of=32)
    num_frames: int = Field(121, ge=9)
    max_frames: int = Field(121, ge=9)
    fps: int = Field(24, ge=1)
    steps: int = Field(30, ge=1)
    guidance: float = 3.0
    decode_timestep: float = 0.05
    decode_noise_scale: float = 0.025
    seed: int = 0


class ClipResult(BaseModel):
    output: str
    frames: int
    fps: int
    width: int
    height: int
    segments: int = 1


class WhisperParams(BaseModel):
    audio: str
    language: str | None = None  # the script's language: no detection per call
    beam_size: int = Field(5, ge=1)
    max_new_tokens: int | None = None


class RecognisedWord(BaseModel):
    word: str
    start: float
    end: float
    probability: float = 0.0


class Transcript(BaseModel):
    words: list[RecognisedWord]
    language: str
    duration: float


class Look(BaseModel):
    """One keyframe to judge: `image` (and `previous`, the shot before, for consistency) index
    `VisionParams.images`, so a picture shared by two looks travels once."""

    image: int = Field(ge=0)
    prompt: str
    previous: int | None = Field(None, ge=0)


class VisionParams(BaseModel):
    """Judge keyframes against their shots' prompts, up to `batch` in one generation (halved on
    out-of-memory): a stage's verdicts cost one request, not one per shot."""

    images: list[str] = Field(min_length=1)
    looks: list[Look] = Field(min_length=1)
    max_new_tokens: int = Field(120, ge=8)
    batch: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _indices(self) -> VisionParams:
        for look in self.looks:
            for index in (look.image, look.previous):
                if index is not None and index >= len(self.images):
                    raise ValueError(f"look names image {index}, but {len(self.images)} images were sent")
        return self


class Verdict(BaseModel):
    """A vision judge's verdict. `score` 0-10 (how well the picture shows the shot); `missing`: things
    the shot text names that are not in the picture; `unwanted`: things in it that should not be.
    `parsed` is false when the judge's output held no valid verdict (scores are then None)."""

    parsed: bool
    score: float | None = Field(None, ge=0, le=10)
    missing: list[str] = Field(default_factory=list)
    unwanted: list[str] = Field(default_factory=list)
    adherence: float | None = Field(None, ge=0, le=10)
    quality: float | None = Field(None, ge=0, le=10)
    critique: str = ""
    consistent: bool | None = None
    raw: str = ""

    @field_validator("missing", "unwanted", mode="before")
    @classmethod
    def _items(cls, value: Any) -> list[str]:
        """Short, non-empty phrases; a judge that answers one string gets it split on commas."""
        if value is None:
            return []
        items = value.split(",") if isinstance(value, str) else list(value)
        return [" ".join(str(i).split())[:60] for i in items if str(i).strip()][:8]

    @property
    def value(self) -> float | None:
        """The score to rank attempts by: `score`, else the weaker of adherence and quality."""
        if not self.parsed:
            return None
        if self.score is not None:
            return self.score
        parts = [v for v in (self.adherence, self.quality) if v is not None]
        return min(parts) if parts else None


class Verdicts(BaseModel):
    """The vision worker's answer: one verdict per look, in order, and the batch that fitted."""

    verdicts: list[Verdict]
    batch: int = 0


RESULTS: dict[Family, type[BaseModel]] = {
    "sdxl": ImageResult,
    "ltx": ClipResult,
    "whisper": Transcript,
    "vision": Verdicts,
}

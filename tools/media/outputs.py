"""What a finished render or job leaves behind, typed: the artifact paths (`--json`'s `artifacts`)
and `metadata.json`.

`render` and the graph's post-production both write `metadata.json` through `Metadata`, so the
file has the same keys whichever made it (DESIGN.md's `voice` and `visuals` included); a key one of
them cannot know (a job id for `render`, the platform texts without a writer) is null, not absent.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from tools.files import write_json_atomic
from tools.llm.schemas import PlatformMeta
from tools.media.loudness import Loudness
from tools.media.outdir import MARKER
from tools.media.probe import AudioInfo, VideoInfo
from tools.media.upload import FitReport
from tools.provenance.manifest import ProvenanceMeta
from tools.tts.base import Voice
from tools.tts.speech import Speech


class Artifacts(BaseModel):
    """Absolute paths, keyed as DESIGN.md's `--json` contract."""

    final_video: str
    discord_video: str | None
    subtitles_srt: str
    subtitles_vtt: str
    subtitles_ass: str
    thumbnail: str
    metadata: str
    shots: str
    script: str
    voice: str
    words: str
    keyframes: list[str]
    clips: list[str]
    credits: str | None = None  # credits.json, when stock media was used


def collect_artifacts(folder: Path) -> Artifacts:
    """The artifacts of a finished render or job folder, as absolute paths."""
    out = folder.resolve()
    discord = out / "final.discord.mp4"
    return Artifacts(
        final_video=str(out / "final.mp4"),
        discord_video=str(discord) if discord.exists() else None,
        subtitles_srt=str(out / "subtitles.srt"),
        subtitles_vtt=str(out / "subtitles.vtt"),
        subtitles_ass=str(out / "subtitles.ass"),
        thumbnail=str(out / "thumbnail.png"),
        metadata=str(out / "metadata.json"),
        shots=str(out / "shots.json"),
        script=str(out / "script.txt"),
        voice=str(out / "voice.wav"),
        words=str(out / "words.json"),
        keyframes=sorted(str(p) for p in (out / "keyframes").glob("shot_*.png")),
        clips=sorted(str(p) for p in (out / "clips").glob("shot_*.mp4")),
        credits=str(out / "credits.json") if _has_credits(out / "credits.json") else None,
    )


def _has_credits(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


# metadata.json -----------------------------------------------------------------------------------


class LoudnessMeta(Loudness):
    target_lufs: float
    ceiling_dbtp: float


class VideoEncoderMeta(BaseModel):
    codec: str = "libx264"
    profile: str = "high"
    preset: str
    crf: int
    pix_fmt: str = "yuv420p"
    fps: int
    faststart: bool = True


class AudioEncoderMeta(BaseModel):
    codec: str = "aac"
    bitrate: str
    sample_rate: int = 48000
    channels: int = 2


class EncoderMeta(BaseModel):
    video: VideoEncoderMeta
    audio: AudioEncoderMeta
    transition_seconds: float
    music: str  # "supplied" or "synth"


class MasterInfo(BaseModel):
    """The master as probed (MediaInfo without its path: the folder may move)."""

    duration: float
    size_bytes: int
    video: VideoInfo | None = None
    audio: AudioInfo | None = None


class CutMeta(BaseModel):
    """The video half: what post-production made, how it measures, how it was encoded."""

    video: MasterInfo
    loudness: LoudnessMeta
    encoder: EncoderMeta
    discord: FitReport | None  # the upload copy, when one was made
    predicted_master_bytes: int
    post_produce_seconds: dict[str, float]
    upload_limit_bytes: int


class VoiceMeta(BaseModel):
    """The narration: who spoke, how long, how fast, and whether its word timings were measured."""

    provider: str  # piper, edge, elevenlabs, espeak-ng or recording
    name: str
    language: str
    notice: str | None = None  # why another voice than the one asked for spoke
    duration: float
    words: int = 0
    words_per_minute: float
    # no timing source: words spread by length (subtitles less exact); `estimated` in older job states
    timings_estimated: bool = Field(validation_alias=AliasChoices("timings_estimated", "estimated"))

    @classmethod
    def of(cls, speech: Speech, voice: Voice, notice: str | None) -> VoiceMeta:
        return cls(
            provider=speech.provider,
            name=voice.name,
            language=voice.language,
            notice=notice,
            duration=speech.duration,
            words=len(speech.words),
            words_per_minute=speech.words_per_minute,
            timings_estimated=speech.estimated,
        )


class VisualMeta(BaseModel):
    shot: int
    source: str
    media_ids: list[str] = []
    notice: str | None = None
    icons: list[str] = []  # what a card shows of the words (Noto Emoji names)


class AsrMeta(BaseModel):
    """Whisper's check of the voice (or the timings it lent a recording)."""

    model: str
    recognised: int
    matched: int
    coverage: float
    applied: bool


class SubtitleMeta(BaseModel):
    cues: int
    font_size: int
    asr: AsrMeta | None = None


class StageMeta(BaseModel):
    runs: int
    seconds: float
    provider: str | None = None


class Metadata(CutMeta):
    """`metadata.json`, for `render` and `make` alike."""

    model_config = ConfigDict(extra="forbid")

    generator: str = MARKER  # how `--out` recognises a folder storybot wrote (tools.media.outdir)
    job_id: str | None = None
    prompt: str | None = None
    aspect: str
    shots: int
    voice: VoiceMeta
    visuals: list[VisualMeta]
    sources: list[str]  # per shot: "still" or "clip", as the final cut took it
    notices: list[str] = []
    provenance: ProvenanceMeta | None = None  # the C2PA manifest signed into the videos
    subtitles: SubtitleMeta
    script_version: int | None = None
    platforms: PlatformMeta | None = None  # titles, descriptions and hashtags per platform
    providers: dict[str, str] = {}  # stage -> what ran it
    usage: dict[str, dict[str, int]] = {}  # provider -> unit -> amount (tokens, characters, images)
    stages: dict[str, StageMeta] = {}
    stage_seconds: dict[str, float] = {}
    total_seconds: float | None = None

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.model_dump(mode="json"))


def read_metadata(path: Path) -> Metadata:
    return Metadata.model_validate_json(path.read_bytes())

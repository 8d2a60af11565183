"""What every voice provider returns, and the audio measurements they share.

Subtitles and shot cuts follow these word times, so both providers judge "audible" the same way
(10 ms frame levels against the loud part of the file) and write the same WAV format.
"""

from __future__ import annotations

import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, model_validator

from tools.files import atomic_path
from tools.media.ffmpeg import run_ffmpeg
from tools.models import Word
from tools.text import Span

OUT_RATE = 48_000
_FRAMES_PER_CHUNK = 4096  # analyse long narrations a few seconds at a time, not all at once in float64


class Speech(BaseModel):
    """A narration track (`voice.wav`) and one timed Word per whitespace token of its script."""

    wav: Path
    duration: float = Field(ge=0)
    words: list[Word]
    provider: str
    estimated: bool
    notice: str | None = None  # for the user: why the word times are estimated although the voice sent some

    @property
    def words_per_minute(self) -> float:
        return words_per_minute(self.words)

    @model_validator(mode="after")
    def _timeline(self) -> Speech:
        previous_end = 0.0
        for word in self.words:
            if word.start < previous_end or word.end > self.duration + 1e-6:
                raise ValueError(f"word {word.word!r} is out of order or past the end of the audio")
            previous_end = word.end
        return self


@dataclass(frozen=True)
class Levels:
    """Loudness of consecutive frames: `db[i]` covers [i * step, (i + 1) * step) seconds."""

    db: np.ndarray
    step: float

    def voiced(self) -> np.ndarray:
        """Frames that carry speech: within reach of the loud frames and above the noise floor.

        Relative thresholds make this work for quiet recordings and for espeak's digital silence alike.
        """
        if not len(self.db):
            return np.zeros(0, dtype=bool)
        loud = float(np.percentile(self.db, 95))
        floor = float(np.percentile(self.db, 10))
        threshold = min(max(floor + 10.0, loud - 40.0), loud - 20.0)
        return self.db > threshold


def frame_levels(samples: np.ndarray, rate: int) -> Levels:
    """dBFS of ~10 ms frames of mono int16 or float samples."""
    hop = max(1, rate // 100)
    scale = 32768.0 if samples.dtype == np.int16 else 1.0
    chunks = []
    for first in range(0, len(samples), hop * _FRAMES_PER_CHUNK):
        chunk = samples[first : first + hop * _FRAMES_PER_CHUNK].astype(np.float64) / scale
        chunk = np.pad(chunk, (0, -len(chunk) % hop))
        power = np.mean(chunk.reshape(-1, hop) ** 2, axis=1)
        chunks.append(10.0 * np.log10(power + 1e-12))
    db = np.concatenate(chunks) if chunks else np.zeros(0)
    return Levels(db=db, step=hop / rate)


def is_speakable(token: str) -> bool:
    """Tokens with a letter or digit are read aloud; a lone "—" or "..." is not."""
    return any(ch.isalnum() for ch in token)


def assemble(
    spans: Sequence[Span], timed: Mapping[int, tuple[float, float]], duration: float, *, estimated: bool
) -> list[Word]:
    """One Word per token: timed tokens as given, the others zero-length at their neighbour's time.

    Times are clamped into [0, duration] and made monotonic, so consumers can rely on both.
    """
    first = min(timed.items())[1][0] if timed else 0.0
    cursor = min(max(first, 0.0), duration)
    words = []
    for index, span in enumerate(spans):
        start, end = timed.get(index, (cursor, cursor))
        start = min(max(start, cursor), duration)
        end = min(max(end, start), duration)
        words.append(
            Word(word=span.text, start=start, end=end, char_start=span.start, char_end=span.end, estimated=estimated)
        )
        cursor = end
    return words


def words_per_minute(words: Sequence[Word]) -> float:
    """Tokens per minute from the first spoken word's start to the last one's end (pauses included)."""
    spoken = [w for w in words if w.end > w.start]
    if not spoken or spoken[-1].end <= spoken[0].start:
        return 0.0
    return len(words) / (spoken[-1].end - spoken[0].start) * 60.0


async def write_wav(out_wav: Path, input_args: Sequence[str | Path], *, stdin: bytes | None = None) -> float:
    """Encode the input to 48 kHz mono 16-bit WAV and return its duration in seconds.

    FFmpeg writes a temporary name that is renamed at the end, so a crash never leaves a
    half-written `voice.wav` that a re-run would take for finished work.
    """
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_wav) as partial:
        await run_ffmpeg(
            [
                "-v",
                "error",
                *input_args,
                "-vn",
                "-map_metadata",
                "-1",
                "-fflags",
                "+bitexact",
                "-ac",
                "1",
                "-ar",
                str(OUT_RATE),
                "-c:a",
                "pcm_s16le",
                "-f",
                "wav",
                partial,
            ],
            stdin=stdin,
        )
        with wave.open(str(partial), "rb") as wav:
            frames = wav.getnframes()
    return frames / OUT_RATE

"""The user's own narration: kept as recorded, with word times estimated from its pauses.

Without an aligner the best offline guess is to find where the speaker is talking and spread the
script over those stretches by character length. Words then never start inside a pause, and a
pause usually falls at the end of a sentence or clause, so cuts between stretches prefer those.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from tools.errors import BadInput, MediaError
from tools.media.ffmpeg import decode_audio
from tools.media.probe import probe
from tools.text import word_spans
from tools.tts.base import ESTIMATOR
from tools.tts.speech import Speech, assemble, frame_levels, write_wav
from tools.tts.timing import estimate_times, speech_segments

PROVIDER = "recording"
MAX_SECONDS = 600  # the longest narration a short video takes (make's longest is 3 min)
_ANALYSIS_RATE = 16_000  # enough for levels, and a long recording stays small in memory
_SILENT_DB = -60.0  # no frame louder than this: nothing was said
MAX_CHANNELS = 64  # the most FFmpeg's pan filter mixes


def _to_mono(channels: int) -> list[str]:
    """FFmpeg's `-ac 1` downmixes the layouts it knows (up to 7.1 and a few more) and refuses other
    counts in its own words ("Rematrix is needed between 64 channels and mono"); those are averaged."""
    if channels <= 8:
        return []
    return ["-af", "pan=mono|c0=" + "+".join(f"{1 / channels:.6g}*c{i}" for i in range(channels))]


async def from_recording(audio: Path, text: str, out_wav: Path) -> Speech:
    """Use a recorded narration of `text` (any common audio format) as the voice track."""
    info = await asyncio.to_thread(probe, audio)
    if info.audio is None:
        raise BadInput(f"{audio.name}: no audio stream to use as the voice")
    if info.duration > MAX_SECONDS:  # decided from the header: a 4 GB file is never decoded whole
        raise BadInput(
            f"{audio.name}: {info.duration / 60:.0f} min of audio; a narration is at most {MAX_SECONDS // 60} min"
        )
    channels = info.audio.channels
    if channels > MAX_CHANNELS:
        raise BadInput(f"{audio.name}: {channels} audio channels; a narration has at most {MAX_CHANNELS}")
    mix = _to_mono(channels)
    try:
        pcm = await decode_audio(audio, _ANALYSIS_RATE, mix)
    except MediaError as exc:  # readable header, broken data
        raise BadInput(f"{audio.name}: cannot decode the audio ({str(exc).rsplit(' | ', 1)[-1]})") from exc
    samples = np.frombuffer(pcm, dtype="<f4")
    levels = frame_levels(samples, _ANALYSIS_RATE)
    segments = speech_segments(levels) if len(samples) and levels.db.max() >= _SILENT_DB else []
    if not segments:
        raise BadInput(f"{audio.name}: the recording is silent, there is no speech to use")
    duration = await write_wav(out_wav, ["-i", audio, *mix])
    spans = word_spans(text)
    words = assemble(spans, estimate_times(spans, segments), duration, estimated=True)
    return Speech(
        wav=out_wav,
        duration=duration,
        words=words,
        provider=PROVIDER,
        estimated=True,
    )


class RecordingVoice:
    """The user's own narration file, behind the same seam as the synthesised voices."""

    provider = PROVIDER
    language = "und"

    def __init__(self, audio: Path) -> None:
        self.audio = audio
        self.name = f"recording:{audio.name}"
        self.rate_key = "recording"
        self.fingerprint: tuple[object, ...] = (self.name,)
        self.estimator = ESTIMATOR

    async def synthesize(self, text: str, wav: Path) -> Speech:
        return await from_recording(self.audio, text, wav)

    async def speaking_rate(self) -> None:
        return None

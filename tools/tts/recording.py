"""The user's own narration: kept as recorded, with word times estimated from its pauses.

Without an aligner the best offline guess is to find where the speaker is talking and spread the
script over those stretches by character length. Words then never start inside a pause, and a
pause usually falls at the end of a sentence or clause, so cuts between stretches prefer those.
"""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path

import numpy as np

from tools.errors import BadInput, MediaError
from tools.media.ffmpeg import decode_audio
from tools.media.probe import probe
from tools.text import Span, ends_clause, ends_sentence, word_spans
from tools.tts.base import ESTIMATOR
from tools.tts.speech import Levels, Speech, assemble, frame_levels, is_speakable, write_wav

PROVIDER = "recording"
_ANALYSIS_RATE = 16_000  # enough for levels, and a long recording stays small in memory
_SILENT_DB = -60.0  # no frame louder than this: nothing was said
_MIN_SILENCE = 0.25  # shorter gaps are breaths between words, not pauses between phrases
_MIN_SEGMENT = 0.06  # shorter sounds are clicks, not words
# Seconds of timing error worth accepting to cut a pause at a sentence or clause end.
_SENTENCE_BONUS = 1.0
_CLAUSE_BONUS = 0.5

Segment = tuple[float, float]


def speech_segments(levels: Levels) -> list[Segment]:
    """(start, end) seconds of stretches of speech separated by at least `_MIN_SILENCE` of quiet."""
    voiced = np.concatenate([[False], levels.voiced(), [False]])
    edges = np.flatnonzero(np.diff(voiced.astype(np.int8)))
    merged: list[list[int]] = []
    for start, end in edges.reshape(-1, 2).tolist():
        if merged and (start - merged[-1][1]) * levels.step < _MIN_SILENCE:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [
        (start * levels.step, end * levels.step) for start, end in merged if (end - start) * levels.step >= _MIN_SEGMENT
    ]


def _cuts(tokens: list[str], segments: list[Segment]) -> list[int]:
    """For each pause between segments, the index of the first token spoken after it.

    Greedy, pause by pause: the cut whose share of the script's characters best matches the share of
    speech time before the pause, helped toward sentence and clause ends, leaving at least one
    token for every segment.
    """
    lengths = np.array([len(t) for t in tokens], dtype=float)
    share = np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    durations = np.array([end - start for start, end in segments])
    total = durations.sum()
    bonus = np.array(
        [0.0] + [_SENTENCE_BONUS if ends_sentence(t) else _CLAUSE_BONUS if ends_clause(t) else 0.0 for t in tokens]
    )
    cuts: list[int] = []
    for pause, elapsed in enumerate(np.cumsum(durations)[:-1] / total):
        low = (cuts[-1] if cuts else 0) + 1
        high = len(tokens) - (len(segments) - 1 - pause)  # the last cut that leaves a token per segment
        candidates = np.arange(low, high + 1)
        cost = np.abs(share[candidates] - elapsed) * total - bonus[candidates]
        cuts.append(int(candidates[np.argmin(cost)]))
    return cuts


def estimate_times(spans: list[Span], segments: list[Segment]) -> dict[int, tuple[float, float]]:
    """Spread the spoken tokens over the speech segments, each in proportion to its length."""
    spoken = [i for i, span in enumerate(spans) if is_speakable(span.text)]
    if not spoken:
        return {}
    if len(segments) > len(spoken):  # more stretches than words: keep the longest ones, in order
        segments = sorted(sorted(segments, key=lambda s: s[0] - s[1])[: len(spoken)])
    tokens = [spans[i].text for i in spoken]
    bounds = [0, *_cuts(tokens, segments), len(spoken)]
    timed: dict[int, tuple[float, float]] = {}
    for (start, end), (first, last) in zip(segments, pairwise(bounds), strict=True):
        lengths = np.array([len(t) for t in tokens[first:last]], dtype=float)
        edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
        for k, index in enumerate(spoken[first:last]):
            timed[index] = (float(edges[k]), float(edges[k + 1]))
    return timed


async def from_recording(audio: Path, text: str, out_wav: Path) -> Speech:
    """Use a recorded narration of `text` (any common audio format) as the voice track."""
    if (await asyncio.to_thread(probe, audio)).audio is None:
        raise BadInput(f"{audio.name}: no audio stream to use as the voice")
    try:
        pcm = await decode_audio(audio, _ANALYSIS_RATE)
    except MediaError as exc:  # readable header, broken data
        raise BadInput(f"{audio.name}: cannot decode the audio ({str(exc).rsplit(' | ', 1)[-1]})") from exc
    samples = np.frombuffer(pcm, dtype="<f4")
    levels = frame_levels(samples, _ANALYSIS_RATE)
    segments = speech_segments(levels) if len(samples) and levels.db.max() >= _SILENT_DB else []
    if not segments:
        raise BadInput(f"{audio.name}: the recording is silent, there is no speech to use")
    duration = await write_wav(out_wav, ["-i", audio])
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

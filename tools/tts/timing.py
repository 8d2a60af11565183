"""Word times: judged, and estimated from the audio when there are none to trust.

A recording has no word times; a voice that reports them can report nonsense (a hostile or broken
server: times going backwards, a word ten hours in). Both end up here: the words are spread over
the stretches of speech heard in the audio, each in proportion to its length, helped toward
sentence and clause ends at pauses, and marked estimated.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Collection, Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np

from tools.text import Span, ends_clause, ends_sentence
from tools.tts.speech import Levels, Speech, assemble, frame_levels, is_speakable

_MIN_SILENCE = 0.25  # shorter gaps are breaths between words, not pauses between phrases
_MIN_SEGMENT = 0.06  # shorter sounds are clicks, not words
# Seconds of timing error worth accepting to cut a pause at a sentence or clause end.
_SENTENCE_BONUS = 1.0
_CLAUSE_BONUS = 0.5
LATE = 1.0  # seconds past the audio's end a reported word time may be (decoder padding)
EARLY = 0.05  # seconds a word may start before the previous one (rounding in 100 ns ticks)

Segment = tuple[float, float]


def measured_speech(
    wav: Path,
    duration: float,
    spans: Sequence[Span],
    timed: Mapping[int, tuple[float, float]],
    provider: str,
    *,
    interpolated: Collection[int] = (),
) -> Speech:
    """The Speech of a voice that reports its own word times; tokens in `interpolated` had their
    times guessed from their neighbours', so only those words are marked estimated. Times that
    cannot be true (going backwards, past the audio, not numbers) are not clamped into a pile of
    zero-length words at the end: the words are spread over the speech heard in the audio instead,
    marked estimated, with a notice saying why."""
    if (problem := implausible(spans, timed, duration)) is not None:
        return _estimated(wav, duration, list(spans), provider, problem)
    words = [
        word.model_copy(update={"estimated": True}) if index in interpolated else word
        for index, word in enumerate(assemble(spans, timed, duration, estimated=False))
    ]
    return Speech(wav=wav, duration=duration, words=words, provider=provider, estimated=False)


def implausible(spans: Sequence[Span], timed: Mapping[int, tuple[float, float]], duration: float) -> str | None:
    """Why these word times cannot be the narration's (None when they can)."""
    previous = 0.0
    for index in sorted(timed):
        start, end = timed[index]
        word = spans[index].text if index < len(spans) else f"#{index}"
        if not (math.isfinite(start) and math.isfinite(end)):
            return f"the time of {word!r} is not a number"
        if start > duration + LATE or end > duration + LATE:
            return f"{word!r} is timed at {start:.1f} s in a {duration:.1f} s narration"
        if start < previous - EARLY:
            return f"the word times go backwards at {word!r}"
        previous = max(previous, start)
    return None


def _estimated(wav: Path, duration: float, spans: list[Span], provider: str, problem: str) -> Speech:
    with wave.open(str(wav), "rb") as audio:
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
        rate = audio.getframerate()
    segments = speech_segments(frame_levels(samples, rate)) or [(0.0, duration)]
    words = assemble(spans, estimate_times(spans, segments), duration, estimated=True)
    notice = f"{provider} sent word timings that cannot be right ({problem}): subtitles follow estimated timings"
    return Speech(wav=wav, duration=duration, words=words, provider=provider, estimated=True, notice=notice)


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


def estimate_times(spans: Sequence[Span], segments: list[Segment]) -> dict[int, tuple[float, float]]:
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

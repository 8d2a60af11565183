"""Script ↔ recognised-word alignment on real speech (espeak-ng), and the real tiny Whisper model
end to end through its worker."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from tests.gpu_fixtures import models
from tools.gpu import WhisperParams
from tools.gpu.local import LocalBackend
from tools.media.align import Recognised, align, normalise
from tools.models import Word
from tools.tts import from_recording, synthesize

SCRIPT = (
    "The keeper climbed the tower at dusk. A lost whale sang below the rocks, "
    "and he answered with the lamp, three long flashes over the water."
)


def _recognised_from(truth: list[Word]) -> list[Recognised]:
    """What a recogniser would return: other case and punctuation, one word missed, one misheard,
    one filler word that is not in the script."""
    out = []
    for i, w in enumerate(truth):
        if w.word == "at":  # missed
            continue
        text = "wail" if w.word == "whale" else w.word.upper().strip(".,")
        out.append(Recognised(word=text, start=w.start, end=w.end))
        if i == 10:
            out.append(Recognised(word="um", start=w.end, end=w.end + 0.01))
    return out


async def test_alignment_gives_the_script_words_recognised_timings(tmp_path: Path) -> None:
    speech = await synthesize(SCRIPT, tmp_path / "voice.wav")  # espeak's own word events: the truth
    recorded = await from_recording(speech.wav, SCRIPT, tmp_path / "recorded.wav")  # timings only estimated
    assert recorded.estimated
    aligned = align(recorded.words, _recognised_from(speech.words), recorded.duration)
    words = aligned.words
    assert [w.word for w in words] == SCRIPT.split()  # always the script's own words, in order
    assert [(w.char_start, w.char_end) for w in words] == [(w.char_start, w.char_end) for w in recorded.words]
    assert aligned.matched == len(words) - 2  # all but the missed "at" and the misheard "whale"
    for got, truth in zip(words, speech.words, strict=True):
        if got.word not in ("at", "whale"):
            assert (got.start, got.end) == (truth.start, truth.end) and not got.estimated
    for k in (SCRIPT.split().index("at"), SCRIPT.split().index("whale")):  # interpolated between neighbours
        assert words[k].estimated and words[k - 1].end <= words[k].start <= words[k].end <= words[k + 1].start
    assert all(a.end <= b.start for a, b in pairwise(words))
    assert words[-1].end <= recorded.duration
    estimated_error = sum(abs(e.start - t.start) for e, t in zip(recorded.words, speech.words, strict=True))
    aligned_error = sum(abs(a.start - t.start) for a, t in zip(words, speech.words, strict=True))
    assert aligned_error < estimated_error


def test_alignment_edges() -> None:
    script = [
        Word(word=t, start=0, end=0.1, char_start=i * 10, char_end=i * 10 + len(t))
        for i, t in enumerate(["Hello,", "wide", "world!"])
    ]
    nothing = align(script, [], duration=3.0)
    assert nothing.matched == 0 and nothing.words[0].start == 0 and nothing.words[-1].end == 3.0
    assert all(w.estimated for w in nothing.words)
    tail = align(script, [Recognised(word="hello", start=0.5, end=0.9)], duration=2.0)
    assert tail.words[0].start == 0.5 and tail.words[1].start == 0.9 and tail.words[2].end == 2.0
    assert normalise("Café!") == normalise("cafe")


async def test_tiny_whisper_end_to_end(tiny_models: dict[str, str], tmp_path: Path) -> None:
    speech = await synthesize(SCRIPT, tmp_path / "voice.wav")
    backend = LocalBackend(models(tiny_models))
    try:
        result = await backend.run("whisper", WhisperParams(audio=str(speech.wav), beam_size=1, max_new_tokens=16))
    finally:
        await backend.close()
    assert abs(result.duration - speech.duration) < 0.1
    for w in result.words:  # random weights: gibberish words, but real word timestamps
        assert 0 <= w.start <= w.end
    aligned = align(speech.words, [Recognised.model_validate(w.model_dump()) for w in result.words], result.duration)
    assert [w.word for w in aligned.words] == SCRIPT.split()
    assert all(a.end <= b.start for a, b in pairwise(aligned.words))

"""Shot planning and cut arithmetic on real word lists."""

import itertools

import pytest

from tools.errors import BadInput
from tools.media.compose import TRANSITION_FRAMES, plan_cut
from tools.media.motion import FPS
from tools.media.shots import plan_shots
from tools.models import Word
from tools.text import word_spans

SCRIPT = (
    "The storm came at night. Waves broke on the rocks, and the lamp went dark. "
    "Mara climbed the stairs with a candle. She lit the lamp again! Ships turned home, "
    "one by one. By dawn the sea was calm."
)


def timed_words(text: str, per_word: float = 0.4, sentence_pause: float = 0.5) -> list[Word]:
    words, t = [], 0.0
    for span in word_spans(text):
        words.append(Word(word=span.text, start=t, end=t + per_word * 0.8, char_start=span.start, char_end=span.end))
        t += per_word + (sentence_pause if span.text[-1] in ".!?" else 0)
    return words


def test_shots_cover_the_voice_and_cut_at_sentence_ends() -> None:
    words = timed_words(SCRIPT)
    duration = words[-1].end + 0.3
    shots = plan_shots(SCRIPT, words, duration, count=4)
    assert len(shots) == 4
    assert shots[0].start == 0 and shots[-1].end == pytest.approx(duration)
    for a, b in itertools.pairwise(shots):
        assert a.end == b.start
        assert words[a.last_word].word[-1] in ".!?"
        # the cut falls in the pause, after the last word and before the next
        assert words[a.last_word].end <= a.end <= words[b.first_word].start
    assert " ".join(s.text for s in shots).split() == SCRIPT.split()
    assert sum(s.duration for s in shots) == pytest.approx(duration)
    assert all(a.motion != b.motion for a, b in itertools.pairwise(shots))
    assert all(s.key_phrase and len(s.key_phrase.split()) <= 4 for s in shots)


def test_more_shots_than_sentences_cut_at_clauses_then_words() -> None:
    text = "One long sentence, with a pause, and another pause, and then the end without stopping"
    words = timed_words(text)
    shots = plan_shots(text, words, words[-1].end, count=3)
    assert len(shots) == 3
    assert [words[s.last_word].word for s in shots[:-1]] == ["sentence,", "pause,"] or all(
        words[s.last_word].word.endswith(",") for s in shots[:-1]
    )


def test_default_count_follows_duration_and_too_many_shots_is_bad_input() -> None:
    words = timed_words(SCRIPT)
    assert len(plan_shots(SCRIPT, words, 30.0)) == 4
    with pytest.raises(BadInput):
        plan_shots(SCRIPT, words[:3], 2.0, count=5)


def test_cut_plan_centres_crossfades_on_boundaries_without_drift() -> None:
    words = timed_words(SCRIPT)
    duration = words[-1].end
    shots = plan_shots(SCRIPT, words, duration, count=3)
    cut = plan_cut(shots, tail=0.5)
    t = cut.transition_frames
    assert t == TRANSITION_FRAMES and 0.3 <= t / FPS <= 0.5
    # clips overlap by one transition at each boundary, and the cut is voice + tail long
    assert sum(cut.clip_frames) - t * (len(shots) - 1) == cut.total_frames == round((duration + 0.5) * FPS)
    # the midpoint of each cross-fade sits on the shot boundary, to the frame
    start = 0
    for shot, frames in zip(shots[1:], cut.clip_frames, strict=False):
        fade_mid = start + frames - t / 2
        assert abs(fade_mid - shot.start * FPS) <= 1
        start += frames - t

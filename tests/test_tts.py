"""Voice track: real espeak-ng synthesis and real recordings decoded by FFmpeg."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from tools.errors import BadInput
from tools.media.ffmpeg import run_ffmpeg
from tools.text import clean_script, word_spans
from tools.tts import Speech, espeak, from_recording, list_voices, speaking_rate, synthesize
from tools.tts.recording import estimate_times
from tools.tts.speech import frame_levels

TEXTS = {
    "plain": "The old lighthouse keeper climbed the stairs every night at nine.",
    "accented": "Crème brûlée à Zürich, señor Müller? Ça va très bien, naïve café.",
    "punctuation": "Wait... what?! No — really; (truly) [maybe] \"quoted\" 'single' - end.",
    "emoji": "We won 🎉 the cup 🏆🏆 today, and it’s 100% true.",
    "quoted": "“Run,” she said. ‘Now!’ He didn’t — couldn’t — move.",
    "markup": "Tom & Jerry <b>bold</b> 5 < 6 > 4 &amp; [[h@'loU]] done.",
    "numbers": "It cost $5.50 on 12/03/2024 at 10:30, i.e. 1,000,000 times e.g. U.S.A. well-known",
    "paragraphs": "First line here.\nSecond line there.\n\nA new paragraph starts.",
}


def read_wav(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return samples, wav.getframerate(), wav.getnchannels(), wav.getsampwidth()


def check_words(speech: Speech, text: str) -> None:
    spans = word_spans(text)
    assert [w.word for w in speech.words] == [s.text for s in spans]
    assert [(w.char_start, w.char_end) for w in speech.words] == [(s.start, s.end) for s in spans]
    assert all(text[w.char_start : w.char_end] == w.word for w in speech.words)
    previous_start = previous_end = 0.0
    for w in speech.words:
        assert 0 <= w.start <= w.end <= speech.duration
        assert w.start >= previous_start and w.end >= previous_end
        previous_start, previous_end = w.start, w.end


def level_at(samples: np.ndarray, t: float, width: float = 0.02) -> float:
    """dBFS of the audio around time t."""
    window = samples[int((t - width / 2) * 48000) : int((t + width / 2) * 48000)].astype(float) / 32768
    return float(10 * np.log10(np.mean(window**2) + 1e-12))


@pytest.mark.parametrize("name", list(TEXTS))
async def test_one_timed_word_per_token(name: str, tmp_path: Path) -> None:
    text = clean_script(TEXTS[name])
    speech = await synthesize(text, tmp_path / "voice.wav")
    check_words(speech, text)
    assert speech.provider == "espeak-ng" and not speech.estimated
    assert not any(w.estimated for w in speech.words)
    spoken = [w for w in speech.words if any(ch.isalnum() for ch in w.word)]
    assert all(w.end > w.start for w in spoken), "every word with letters has some sound"
    assert len({w.start for w in spoken}) == len(spoken), "no two spoken words share a start"


async def test_concurrent_synthesis_does_not_mix(tmp_path: Path) -> None:
    """The library is one global state: parallel calls must queue, not interleave."""
    names = ["plain", "accented", "quoted"]
    alone = [(await synthesize(TEXTS[n], tmp_path / f"{n}.alone.wav")).words for n in names]
    together = await asyncio.gather(*(synthesize(TEXTS[n], tmp_path / f"{n}.wav") for n in names))
    for name, words, speech in zip(names, alone, together, strict=True):
        check_words(speech, TEXTS[name])
        assert [w.start for w in speech.words] == pytest.approx([w.start for w in words], abs=0.05)


def test_event_positions_are_code_points() -> None:
    """text_position is 1-based and counts characters, not UTF-8 bytes, even past emoji."""
    text = "Crème brûlée à Zürich 🎉 is nice"
    rendering = espeak._render(text, "en-us", 175)
    found = [text[e.position : e.position + e.length] for e in rendering.events if e.length]
    for word in ["Crème", "brûlée", "à", "Zürich", "is", "nice"]:
        assert word in found


async def test_wav_is_48k_mono_16bit(tmp_path: Path) -> None:
    speech = await synthesize(TEXTS["plain"], tmp_path / "job" / "voice.wav")
    samples, rate, channels, width = read_wav(speech.wav)
    assert (rate, channels, width) == (48000, 1, 2)
    assert speech.duration == pytest.approx(len(samples) / 48000)
    assert 2.0 < speech.duration < 6.0
    assert [p.name for p in speech.wav.parent.iterdir()] == ["voice.wav"], "no temporary file left"


async def test_markup_is_read_not_obeyed(tmp_path: Path) -> None:
    """No SSML: a <break> tag would add three seconds of silence if it were parsed."""
    text = 'Wait <break time="3s"/> now.'
    speech = await synthesize(text, tmp_path / "voice.wav")
    check_words(speech, text)
    samples, *_ = read_wav(speech.wav)
    levels = frame_levels(samples, 48000)
    quiet = np.flatnonzero(np.diff(np.concatenate([[1], levels.voiced(), [1]]).astype(int)))
    longest_quiet = max(np.diff(quiet.reshape(-1, 2), axis=1).ravel(), default=0) * levels.step
    assert longest_quiet < 1.0


async def test_pauses_fall_between_words(tmp_path: Path) -> None:
    text = "One. Two. Three, four. Five."
    speech = await synthesize(text, tmp_path / "voice.wav")
    samples, *_ = read_wav(speech.wav)
    loud = float(np.percentile(frame_levels(samples, 48000).db, 95))
    for word in speech.words:
        assert level_at(samples, word.start + 0.015) > loud - 40, f"{word.word} starts on sound"
        assert level_at(samples, word.end - 0.015) > loud - 40, f"{word.word} ends on sound"
    for before, after in zip(speech.words, speech.words[1:], strict=False):
        if before.word.endswith("."):
            assert after.start - before.end > 0.15, f"the pause after {before.word} is not speech"
            assert level_at(samples, (before.end + after.start) / 2, 0.1) < loud - 40


async def test_words_per_minute_is_measured(tmp_path: Path) -> None:
    text = TEXTS["plain"]
    normal = await synthesize(text, tmp_path / "normal.wav")
    fast = await synthesize(text, tmp_path / "fast.wav", rate_wpm=300)
    assert 120 < normal.words_per_minute < 260
    assert fast.words_per_minute > normal.words_per_minute * 1.3
    assert fast.duration < normal.duration


async def test_speaking_rate_is_cached_and_plausible() -> None:
    espeak._calibrated_rate.cache_clear()
    first = await speaking_rate()
    assert await speaking_rate("en-us", 175) == first
    assert espeak._calibrated_rate.cache_info().hits == 1
    assert 120 < first < 260
    assert await speaking_rate(rate_wpm=260) > first


def test_list_voices() -> None:
    voices = list_voices()
    assert {"en-us", "en-gb", "fr-fr", "de"} <= set(voices)
    assert "fo" not in voices, "voices whose dictionary is missing are left out"


@pytest.mark.parametrize(("voice", "rate"), [("xx-nowhere", 175), ("en-us+nobody", 175), ("en-us", 20)])
async def test_bad_voice_or_rate(voice: str, rate: int, tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        await synthesize("Hello.", tmp_path / "voice.wav", voice=voice, rate_wpm=rate)
    assert not (tmp_path / "voice.wav").exists()


async def test_other_voices(tmp_path: Path) -> None:
    text = "Bonjour, ça va très bien aujourd'hui."
    speech = await synthesize(text, tmp_path / "voice.wav", voice="fr-fr+f3")
    check_words(speech, text)


@pytest.fixture
async def paused_recording(tmp_path: Path) -> tuple[str, np.ndarray, float]:
    """A narration with one second of silence inserted before the second sentence."""
    text = "The river was quiet that morning, and the boats stayed home. Then the storm arrived, loud and sudden."
    speech = await synthesize(text, tmp_path / "source.wav")
    samples, *_ = read_wav(speech.wav)
    then = next(w for w in speech.words if w.word == "Then")
    cut = int((then.start - 0.05) * 48000)
    silence_end = cut / 48000 + 1.0
    return text, np.concatenate([samples[:cut], np.zeros(48000, "<i2"), samples[cut:]]), silence_end


@pytest.mark.parametrize("ext", ["mp3", "ogg"])
async def test_recording_words_avoid_silence(
    ext: str, paused_recording: tuple[str, np.ndarray, float], tmp_path: Path
) -> None:
    text, samples, silence_end = paused_recording
    audio = tmp_path / f"take.{ext}"
    raw = ["-f", "s16le", "-ar", "48000", "-ac", "1", "-i", "pipe:0"]
    await run_ffmpeg([*raw, audio], stdin=samples.tobytes())
    speech = await from_recording(audio, text, tmp_path / "voice.wav")
    check_words(speech, text)
    assert speech.provider == "recording" and speech.estimated
    assert all(w.estimated for w in speech.words)
    _, rate, channels, width = read_wav(speech.wav)
    assert (rate, channels, width) == (48000, 1, 2)
    silence = (silence_end - 1.0 + 0.05, silence_end - 0.05)
    for w in speech.words:
        assert not silence[0] < w.start < silence[1], f"{w.word} starts inside the silence"
        assert not (w.start < silence[0] and w.end > silence[1]), f"{w.word} spans the silence"
    then = next(w for w in speech.words if w.word == "Then")
    assert then.start == pytest.approx(silence_end, abs=0.3)
    assert 100 < speech.words_per_minute < 300


def test_pauses_prefer_sentence_ends() -> None:
    """Character shares put the pause after "dddd"; a sentence end one word earlier wins."""
    text = "aaaa bbbb cccc. dddd eeee ffff gggg"
    timed = estimate_times(word_spans(text), [(0.0, 1.375), (2.0, 3.125)])
    assert [i for i, (start, _) in timed.items() if start >= 2.0] == [3, 4, 5, 6]
    assert timed[2][1] == pytest.approx(1.375) and timed[3][0] == pytest.approx(2.0)


async def test_recording_rejects_unusable_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio at all " * 200)
    silent = tmp_path / "silent.wav"
    await run_ffmpeg(["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "1", silent])
    video = tmp_path / "video.mp4"
    await run_ffmpeg(["-f", "lavfi", "-i", "color=c=red:s=64x64:d=0.2", "-c:v", "libx264", video])
    for path in (junk, silent, video, tmp_path / "missing.wav"):
        with pytest.raises(BadInput, match=path.name) as caught:
            await from_recording(path, "Hello there.", tmp_path / "voice.wav")
        assert "\n" not in str(caught.value)
    assert not (tmp_path / "voice.wav").exists()

"""ElevenLabs voice against a real local HTTP server that speaks the with-timestamps wire protocol
(tests/fake_elevenlabs.py): every word's expected time is known exactly from the fake's alignment.
"""

from __future__ import annotations

import logging
import time
import traceback
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import elevenlabs.core.http_client
import numpy as np
import pytest

from tests.fake_elevenlabs import KEY, PER_CHAR, TAIL, VOICE, FakeElevenLabs, fake_elevenlabs
from tests.local_http import Reply, gzip_bomb, peak_rss_mib
from tools.errors import BadInput, MediaError
from tools.llm.usage import metered
from tools.models import Word
from tools.text import ends_sentence, word_spans
from tools.tts import Speech, synthesize_elevenlabs
from tools.tts import elevenlabs as el

TEXTS = {
    "plain": "The old lighthouse keeper climbed the stairs every night at nine.",
    "accented": "Crème brûlée à Zürich, señor Müller? Ça va très bien, naïve café.",
    "emoji": "We won 🎉 the cup 🏆🏆 today, and it’s 100% true.",
}


@pytest.fixture
def server() -> Iterator[FakeElevenLabs]:
    with fake_elevenlabs() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's first backoff is 1 s when Retry-After is 0; the protocol is the same at 10 ms."""
    monkeypatch.setattr(elevenlabs.core.http_client, "INITIAL_RETRY_DELAY_SECONDS", 0.01)
    monkeypatch.setattr(el, "_TRANSPORT_BACKOFF", 0.01)


async def speak(fake: FakeElevenLabs, text: str, out: Path, **kwargs: Any) -> Speech:
    return await synthesize_elevenlabs(
        text, out, api_key=kwargs.pop("api_key", KEY), voice_id=VOICE, base_url=fake.base_url, **kwargs
    )


def read_wav(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return samples, wav.getframerate(), wav.getnchannels(), wav.getsampwidth()


def expected_times(text: str, per_char: float, offset: float = 0.0) -> list[float]:
    """start, end, start, end, ... of every token, from the alignment's per-character slots."""
    return [t for s in word_spans(text) for t in (offset + s.start * per_char, offset + s.end * per_char)]


def times(words: list[Word]) -> list[float]:
    return [t for w in words for t in (w.start, w.end)]


def check_words(speech: Speech, text: str) -> None:
    spans = word_spans(text)
    assert [w.word for w in speech.words] == [s.text for s in spans]
    assert [(w.char_start, w.char_end) for w in speech.words] == [(s.start, s.end) for s in spans]
    previous = 0.0
    for w in speech.words:
        assert previous <= w.start <= w.end <= speech.duration
        previous = w.end


def onset(samples: np.ndarray, after: float = 0.0) -> float:
    """When the tone starts (first sample at half its peak) at or after `after` seconds."""
    first = int(after * 48_000)
    loud = np.abs(samples[first:]) > 0.5 * np.abs(samples).max()
    return (first + int(np.flatnonzero(loud)[0])) / 48_000


@pytest.mark.parametrize(("name", "tagged"), [(name, True) for name in TEXTS] + [("plain", False)])
async def test_words_follow_the_alignment(server: FakeElevenLabs, name: str, tagged: bool, tmp_path: Path) -> None:
    server.tagged = tagged
    text = TEXTS[name]
    speech = await speak(server, text, tmp_path / "voice.wav")

    [request] = server.requests
    assert request["path"] == f"/v1/text-to-speech/{VOICE}/with-timestamps" and request["key"] == KEY
    assert request["body"]["text"] == text and request["body"]["model_id"] == "eleven_multilingual_v2"
    assert request["query"]["output_format"] == ["mp3_44100_128"]

    samples, rate, channels, width = read_wav(tmp_path / "voice.wav")
    assert (rate, channels, width) == (48_000, 1, 2)
    assert speech.duration == pytest.approx(len(samples) / 48_000)
    assert speech.duration == pytest.approx(len(text) * PER_CHAR + TAIL, abs=0.06)  # plus MP3 coding delay
    # A streamed (untagged) MP3 decodes with ~25 ms of coding delay before the sound; the words
    # follow the sound, not the start of the file.
    start = onset(samples)
    assert start == pytest.approx(0.0 if tagged else 0.025, abs=0.001)

    check_words(speech, text)
    assert times(speech.words) == pytest.approx(expected_times(text, PER_CHAR, offset=start), abs=0.001)
    assert speech.provider == "elevenlabs" and not speech.estimated and not any(w.estimated for w in speech.words)
    spoken = expected_times(text, PER_CHAR)
    assert speech.words_per_minute == pytest.approx(len(speech.words) / (spoken[-1] - spoken[0]) * 60, rel=0.01)
    assert not list(tmp_path.glob(".*")), "no temporary file is left behind"


@pytest.mark.parametrize("mode", ["utf16", "nfd"])
async def test_alignment_spelled_differently(server: FakeElevenLabs, mode: str, tmp_path: Path) -> None:
    """Emoji as UTF-16 surrogate pairs, accents decomposed: times still land on the right words."""
    server.mode = mode
    text = "Crème brûlée 🎉 à Zürich, señor 🏆🏆 Müller, it’s naïve!"
    speech = await speak(server, text, tmp_path / "voice.wav")
    check_words(speech, text)
    assert times(speech.words) == pytest.approx(expected_times(text, PER_CHAR), abs=0.001)
    assert not any(w.estimated for w in speech.words)


async def test_unaligned_tokens_are_interpolated(server: FakeElevenLabs, tmp_path: Path) -> None:
    server.mode = "drop_emoji"
    text = TEXTS["emoji"]
    speech = await speak(server, text, tmp_path / "voice.wav")
    check_words(speech, text)
    expected = expected_times(text, PER_CHAR)
    for i, word in enumerate(speech.words):
        if word.word in {"🎉", "🏆🏆"}:
            assert word.estimated
            assert word.start == pytest.approx(speech.words[i - 1].end, abs=1e-6)
            assert word.end == pytest.approx(speech.words[i + 1].start, abs=1e-6)
            assert word.end > word.start
        else:
            assert not word.estimated
            assert [word.start, word.end] == pytest.approx(expected[2 * i : 2 * i + 2], abs=0.001)


@pytest.mark.parametrize("status", [503, 429])
async def test_transient_errors_are_retried(server: FakeElevenLabs, status: int, tmp_path: Path) -> None:
    server.queued = [(status, {"detail": {"status": "busy", "message": "try again"}})]
    speech = await speak(server, TEXTS["plain"], tmp_path / "voice.wav")
    assert len(server.requests) == 2
    check_words(speech, TEXTS["plain"])


async def test_dropped_connection_is_retried(server: FakeElevenLabs, tmp_path: Path) -> None:
    server.queued = [(0, None)]
    speech = await speak(server, TEXTS["plain"], tmp_path / "voice.wav")
    assert len(server.requests) == 2 and speech.words


async def test_persistent_server_error_gives_up(server: FakeElevenLabs, tmp_path: Path) -> None:
    server.queued = [(500, {"detail": "internal error"})] * (el.MAX_RETRIES + 1)
    with pytest.raises(MediaError, match=r"HTTP 500.*internal error.*after 4 attempts"):
        await speak(server, TEXTS["plain"], tmp_path / "voice.wav")
    assert len(server.requests) == el.MAX_RETRIES + 1
    assert not (tmp_path / "voice.wav").exists()


async def test_rejected_key_is_one_clear_line_without_the_key(
    server: FakeElevenLabs, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk_wrong_fedcba9876543210fedcba9876543210"
    with pytest.raises(MediaError) as caught:
        await speak(server, TEXTS["plain"], tmp_path / "voice.wav", api_key=wrong)
    message = str(caught.value)
    assert "401" in message and "ELEVENLABS_API_KEY" in message and "\n" not in message
    assert "invalid_api_key" in message  # the server's own reason, with its echo of the key scrubbed
    shown = "".join(traceback.format_exception(caught.value))
    assert wrong not in shown and wrong not in repr(caught.value) and wrong not in caplog.text
    assert len(server.requests) == 1, "a refused key is not retried"
    assert not (tmp_path / "voice.wav").exists()


async def test_unknown_voice_is_bad_input(server: FakeElevenLabs, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no voice 'NoSuchVoice123'"):
        await synthesize_elevenlabs(
            "Hello there.", tmp_path / "voice.wav", api_key=KEY, voice_id="NoSuchVoice123", base_url=server.base_url
        )


@pytest.mark.parametrize("voice", ["../../v1/user", "abc?x=1", ""])
async def test_voice_id_cannot_change_the_url(server: FakeElevenLabs, voice: str, tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        await synthesize_elevenlabs(
            "Hello.", tmp_path / "voice.wav", api_key=KEY, voice_id=voice, base_url=server.base_url
        )
    assert not server.requests


def long_text(limit: int) -> str:
    sentences = [
        f"Sentence number {i} tells of ships, storms, and the keeper who watched them pass. " for i in range(200)
    ]
    text, i = "", 0
    while len(text) <= limit + 800:
        text += sentences[i]
        i += 1
    return text.strip()


async def test_long_text_is_chunked_and_offset(server: FakeElevenLabs, tmp_path: Path) -> None:
    server.per_char, server.tagged = 0.004, False
    text = long_text(el.MAX_REQUEST_CHARS)
    assert len(text) > el.MAX_REQUEST_CHARS
    speech = await speak(server, text, tmp_path / "voice.wav")

    bodies = [r["body"] for r in server.requests]
    assert len(bodies) >= 2
    assert all(len(b["text"]) <= el.MAX_REQUEST_CHARS and ends_sentence(b["text"]) for b in bodies)
    assert " ".join(b["text"] for b in bodies) == text
    # Neighbouring text goes along as context, so the voice flows on across requests.
    after_first = text[len(bodies[0]["text"]) :]
    assert "previous_text" not in bodies[0] and bodies[0]["next_text"] == after_first[: el._CONTEXT_CHARS].strip()
    assert bodies[0]["text"].endswith(bodies[1]["previous_text"])
    check_words(speech, text)

    # The second request's speech begins where its tone begins in voice.wav: after the first
    # request's coding delay, tone, silence and MP3 padding, and its own coding delay.
    samples, _, _, _ = read_wav(tmp_path / "voice.wav")
    first_len = len(bodies[0]["text"]) * server.per_char
    first_onset = onset(samples)
    second_onset = onset(samples, after=first_onset + first_len + 0.05)
    assert second_onset >= first_len + TAIL

    n_first = len(word_spans(bodies[0]["text"]))
    got = times(speech.words)
    assert got[: 2 * n_first] == pytest.approx(
        expected_times(bodies[0]["text"], server.per_char, first_onset), abs=0.001
    )
    second = bodies[1]["text"]
    assert got[2 * n_first : 2 * (n_first + len(word_spans(second)))] == pytest.approx(
        expected_times(second, server.per_char, offset=second_onset), abs=0.001
    )
    assert speech.duration == pytest.approx(
        sum(len(b["text"]) * server.per_char + TAIL for b in bodies), abs=0.06 * len(bodies)
    )


def test_split_chunks_prefers_sentence_ends() -> None:
    text = "One two three. Four five, six seven eight nine ten eleven twelve."
    chunks = [text[c.start : c.end] for c in el.split_chunks(text, 26)]
    assert chunks[0] == "One two three." and all(len(c) <= 26 for c in chunks)
    assert " ".join(chunks) == text
    assert [text[c.start : c.end] for c in el.split_chunks(text, 1000)] == [text]


def test_split_chunks_cuts_a_giant_token() -> None:
    text = "short " + "x" * 25 + " end."
    chunks = [text[c.start : c.end] for c in el.split_chunks(text, 10)]
    assert all(0 < len(c) <= 10 for c in chunks)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")


async def test_model_voice_settings_and_characters(server: FakeElevenLabs, tmp_path: Path) -> None:
    server.model_id = "eleven_flash_v2_5"
    text = TEXTS["plain"]
    with metered() as used:
        speech = await speak(
            server,
            text,
            tmp_path / "voice.wav",
            model_id="eleven_flash_v2_5",
            voice_settings={"stability": 0.4, "similarity_boost": 0.8, "use_speaker_boost": True},
        )
    [request] = server.requests
    assert request["body"]["model_id"] == "eleven_flash_v2_5"
    assert request["body"]["voice_settings"] == {"stability": 0.4, "similarity_boost": 0.8, "use_speaker_boost": True}
    assert dict(used) == {("elevenlabs", "characters"): len(text)}
    check_words(speech, text)


async def test_429_honours_retry_after(server: FakeElevenLabs, tmp_path: Path) -> None:
    server.retry_after = "1"
    server.queued = [(429, {"detail": {"status": "too_many_concurrent_requests", "message": "busy"}})]
    started = time.monotonic()
    await speak(server, TEXTS["plain"], tmp_path / "voice.wav")
    assert time.monotonic() - started >= 0.95 and len(server.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [
        {"audio_base64": "%%% not base64 %%%", "alignment": None},
        {"audio_base64": "SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjU4Ljc2LjEwMAAAAAAAAAAAAAAA", "alignment": None},
        {
            "audio_base64": "",
            "alignment": {
                "characters": ["a"],
                "character_start_times_seconds": [0.0],
                "character_end_times_seconds": [],
            },
        },
    ],
)
async def test_malformed_replies_are_retried(server: FakeElevenLabs, reply: dict[str, Any], tmp_path: Path) -> None:
    server.queued = [(200, reply)]
    with metered() as used:
        speech = await speak(server, TEXTS["plain"], tmp_path / "voice.wav")
    assert len(server.requests) == 2
    check_words(speech, TEXTS["plain"])
    assert used[("elevenlabs", "characters")] == len(TEXTS["plain"])  # counted once, for the reply that was used


async def test_timeouts_are_retried_then_named(
    server: FakeElevenLabs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(el, "TIMEOUT_SECONDS", 0.3)
    server.stall, server.stalled = 0.6, 1
    speech = await speak(server, TEXTS["plain"], tmp_path / "voice.wav")
    assert len(server.requests) == 2 and speech.words
    server.stalled = 3
    with pytest.raises(MediaError, match=r"^ElevenLabs did not answer within 0.3 s \(3 attempts\)$"):
        await speak(server, TEXTS["plain"], tmp_path / "voice2.wav", retries=2)


async def test_server_errors_name_the_status_never_the_key(
    server: FakeElevenLabs, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.queued = [(503, {"detail": {"status": "system_busy", "message": f"busy for {KEY}"}})] * 3
    with pytest.raises(MediaError) as caught:
        await speak(server, TEXTS["plain"], tmp_path / "voice.wav", retries=2)
    assert str(caught.value) == "ElevenLabs failed (HTTP 503: system_busy: busy for [redacted]) after 3 attempts"
    assert KEY not in "".join(traceback.format_exception(caught.value)) and KEY not in caplog.text


def test_joins_do_not_click() -> None:
    """Two chunks that meet mid-wave (full scale, then zero) would step by 30000; the fade smooths it."""
    loud = (np.full(4800, 30000, dtype="<i2")).tobytes()
    quiet = np.zeros(4800, dtype="<i2").tobytes()
    joined = np.frombuffer(el.join_pcm([loud, quiet, loud]), dtype="<i2").astype(np.int32)
    assert len(joined) == 3 * 4800
    assert np.abs(np.diff(joined)).max() < 300  # at most 1% of full scale per sample
    assert joined[2400] == 30000 and joined[-1] == 30000  # untouched away from the joins
    assert el.join_pcm([loud]) == loud


async def test_a_reply_past_the_byte_ceiling_is_one_line_not_retried(server: FakeElevenLabs, tmp_path: Path) -> None:
    """Issue 23 #4: the SDK read the whole reply; a gzip bomb is now refused at 32 MB after decompression."""
    bomb = Reply(200, gzip_bomb(256 * 2**20), {"Content-Encoding": "gzip"})
    server.queued = [(200, bomb)] * (el.MAX_RETRIES + 1)
    before = peak_rss_mib()
    with pytest.raises(MediaError) as caught:
        await speak(server, TEXTS["plain"], tmp_path / "voice.wav")
    assert str(caught.value) == "ElevenLabs sent a reply over the 32 MB limit"
    assert len(server.requests) == 1 and peak_rss_mib() - before < 160
    assert not (tmp_path / "voice.wav").exists()

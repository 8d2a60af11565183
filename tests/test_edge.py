"""Edge TTS against a local server speaking its websocket protocol: words, timings, faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fake_edge import FakeEdge
from tests.local_http import peak_rss_mib
from tools.errors import ProviderGaveUp
from tools.text import word_spans
from tools.tts.edge import EdgeVoice

pytest.importorskip("edge_tts")

TEXT = "The keeper lit the lamp at nine. Did the whale hear her song? It did, every night."
VOICE = "en-US-AvaMultilingualNeural"


async def test_words_and_timings_come_from_the_boundaries(tmp_path: Path) -> None:
    server = await FakeEdge().start()
    try:
        speech = await EdgeVoice(VOICE, url=server.url, retries=0).synthesize(TEXT, tmp_path / "voice.wav")
    finally:
        await server.close()
    (request,) = server.requests
    assert request["voice"] == "Microsoft Server Speech Text to Speech Voice (en-US, AvaMultilingualNeural)"
    assert request["text"] == TEXT
    assert request["config"]["context"]["synthesis"]["audio"]["metadataoptions"]["wordBoundaryEnabled"] == "true"
    assert "Sec-MS-GEC" in request["query"] and "ConnectionId" in request["query"]
    assert speech.provider == "edge" and not speech.estimated
    assert [(w.word, w.char_start, w.char_end) for w in speech.words] == [
        (s.text, s.start, s.end) for s in word_spans(TEXT)
    ]
    # each word within 80 ms of where the server's audio has it
    for word, (said, start, end) in zip(speech.words, server.sent_words, strict=True):
        assert word.word.strip(".,?!") == said
        assert abs(word.start - start) <= 0.08 and abs(word.end - end) <= 0.08, (word, start, end)
    assert server.sent_words[-1][2] <= speech.duration <= server.sent_words[-1][2] + 0.5


async def test_a_dropped_connection_is_retried(tmp_path: Path) -> None:
    server = await FakeEdge(drop_first=1).start()
    try:
        speech = await EdgeVoice(VOICE, url=server.url, retries=2).synthesize(TEXT, tmp_path / "voice.wav")
    finally:
        await server.close()
    assert server.connections == 2 and len(speech.words) == len(TEXT.split())


async def test_a_refusal_is_one_line_and_not_retried(tmp_path: Path) -> None:
    server = await FakeEdge(refuse=403).start()
    try:
        with pytest.raises(ProviderGaveUp) as caught:
            await EdgeVoice(VOICE, url=server.url, retries=3).synthesize(TEXT, tmp_path / "voice.wav")
    finally:
        await server.close()
    assert str(caught.value) == f"Edge TTS refused the request (HTTP 403) for edge:{VOICE}"
    # edge-tts itself asks once more after a 403, with its clock corrected from the reply's Date; we do not
    assert server.connections <= 2 and not (tmp_path / "voice.wav").exists()


async def test_a_server_that_keeps_dropping_gives_up(tmp_path: Path) -> None:
    server = await FakeEdge(drop_first=10).start()
    try:
        with pytest.raises(ProviderGaveUp, match="Edge TTS failed after 2 attempts"):
            await EdgeVoice(VOICE, url=server.url, retries=1).synthesize(TEXT, tmp_path / "voice.wav")
    finally:
        await server.close()
    assert server.connections == 2


@pytest.mark.parametrize(
    ("warp", "why"),
    [
        (lambda words: [(w, 4.0 - s, 4.0 - s + (e - s)) for w, s, e in words], "go backwards"),
        (lambda words: [*words[:-1], (words[-1][0], 36_000.0, 36_000.4)], "timed at 36000.0 s"),
    ],
    ids=["backwards", "ten-hours-in"],
)
async def test_word_times_that_cannot_be_right_fall_back_to_estimates_with_a_notice(
    tmp_path: Path, warp: object, why: str
) -> None:
    """Issue 23 #9: such times were clamped, piling the later words up at the end with no length."""
    server = await FakeEdge(warp=warp).start()  # type: ignore[arg-type]
    try:
        speech = await EdgeVoice(VOICE, url=server.url, retries=0).synthesize(TEXT, tmp_path / "voice.wav")
    finally:
        await server.close()
    assert speech.estimated and speech.notice and why in speech.notice and "estimated" in speech.notice
    assert [w.word for w in speech.words] == [s.text for s in word_spans(TEXT)]
    assert all(w.end > w.start for w in speech.words), "every word keeps a length"
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and speech.words[-1].end <= speech.duration
    # spread over the speech heard: the last word ends near the end of what the server really said
    assert abs(speech.words[-1].end - server.sent_words[-1][2]) < 1.0


@pytest.mark.parametrize(
    ("flood", "said"),
    [({"extra_audio": 64 * 2**20}, "over 8 MB of audio"), ({"extra_words": 150_000}, "too many messages")],
    ids=["64MB-of-audio", "150k-messages"],
)
async def test_a_reply_that_never_stops_is_cut_at_its_ceiling(flood: dict[str, int], said: str, tmp_path: Path) -> None:
    """Issue 23 #4: the audio and the word boundaries were gathered without end; now one line, not retried."""
    server = await FakeEdge(**flood).start()
    before = peak_rss_mib()
    try:
        with pytest.raises(ProviderGaveUp) as caught:
            await EdgeVoice(VOICE, url=server.url, retries=2).synthesize(TEXT, tmp_path / "voice.wav")
    finally:
        await server.close()
    assert str(caught.value) == f"Edge TTS sent {said} for one script (edge:{VOICE}); a narration is minutes"
    assert server.connections == 1 and not (tmp_path / "voice.wav").exists()
    assert peak_rss_mib() - before < 160

"""Online narration with Microsoft Edge's read-aloud service (no key), timed by its WordBoundary events.

Through the `edge-tts` package, which is LGPL-3.0: it lives in the optional `edge` extra, never in
the default install, and is imported only when an `edge:` voice is chosen. The service gets the
script's text, which is why no default ever picks it. One request streams MP3 frames (24 kHz,
48 kbit/s) and `audio.metadata` messages whose WordBoundary offsets are in 100 ns ticks from
the start of the audio; each boundary's text is found in the script from where the last one
was, so times land on the script's own tokens. Dropped connections and empty replies are
retried with backoff; a refusal (the handshake answered 4xx) is one line and is not retried.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field

from tools.assets import ASSETS_DIR
from tools.errors import BadInput, MediaError
from tools.net.retry import retrying
from tools.settings import Settings
from tools.text import Span, word_spans
from tools.tts.base import ESTIMATOR, Provider, VoiceInfo
from tools.tts.elevenlabs import VoiceGaveUp
from tools.tts.speech import Speech, write_wav
from tools.tts.timing import measured_speech

PROVIDER = "edge"
TICKS = 10_000_000  # per second
_DECODER_DELAY = 529 / 24_000  # an MP3 decoder's delay ahead of the sound of an untagged 24 kHz stream
_BACKOFF = 1.0
_RECEIVE_TIMEOUT = 60
# A reply's ceiling (issue 23 #4): Edge speaks 48 kbit/s MP3, so 10 min of narration (the longest a
# recording may be) is 3.6 MB; and one message per audio frame group or word, a few thousand at most.
MAX_AUDIO_BYTES = 8 * 2**20
MAX_MESSAGES = 100_000
SNAPSHOT = ASSETS_DIR / "edge_voices.json"


class EdgeVoiceInfo(BaseModel):
    """One entry of the service's voice list (as `voices/list` returns it)."""

    short_name: str = Field(alias="ShortName")
    locale: str = Field(alias="Locale")
    gender: str = Field("", alias="Gender")


@cache
def snapshot() -> tuple[EdgeVoiceInfo, ...]:
    """The voice list shipped with storybot, so names can be checked offline."""
    return tuple(EdgeVoiceInfo.model_validate(v) for v in json.loads(SNAPSHOT.read_text(encoding="utf-8")))


def boundary_times(
    spans: list[Span], text: str, boundaries: list[tuple[float, float, str]]
) -> dict[int, tuple[float, float]]:
    """Token index -> (start, end) from (offset s, duration s, text) boundaries, matched in order."""
    starts = [s.start for s in spans]
    timed: dict[int, tuple[float, float]] = {}
    cursor, token = 0, 0
    for offset, duration, said in boundaries:
        at = text.find(said, cursor) if said else -1
        if at < 0:
            continue  # the service said something the script does not show (e.g. a spelled-out symbol)
        cursor = at + len(said)
        while token + 1 < len(spans) and starts[token + 1] <= at:
            token += 1
        first, _ = timed.get(token, (offset, offset))
        timed[token] = (min(first, offset), offset + duration)
    return timed


class EdgeVoice:
    """An Edge TTS voice by its short name (`edge:en-US-AvaMultilingualNeural`)."""

    provider = PROVIDER

    def __init__(self, short_name: str, *, url: str | None = None, retries: int = 3) -> None:
        known = {v.short_name: v for v in snapshot()}
        self.short_name = short_name
        self.name = f"edge:{short_name}"
        self.language = known[short_name].locale.lower() if short_name in known else short_name[:5].lower()
        self.rate_key = self.name
        self.fingerprint: tuple[object, ...] = (self.name,)
        self.estimator = ESTIMATOR
        self._url, self._retries = url, retries

    async def _stream(self, text: str) -> tuple[bytes, list[tuple[float, float, str]]]:
        try:
            import edge_tts
            import edge_tts.communicate
        except ImportError:
            raise BadInput("Edge voices need the optional edge-tts package: pip install 'storybot[edge]'") from None
        if self._url:  # a local server speaking the same protocol (tests), or a proxy
            edge_tts.communicate.WSS_URL = self._url
        speaker = edge_tts.Communicate(
            text, self.short_name, boundary="WordBoundary", connect_timeout=10, receive_timeout=_RECEIVE_TIMEOUT
        )
        audio = bytearray()
        boundaries: list[tuple[float, float, str]] = []
        messages = 0
        async for chunk in speaker.stream():
            messages += 1
            if chunk["type"] == "audio":
                audio += chunk["data"]
            elif chunk["type"] == "WordBoundary":
                boundaries.append((chunk["offset"] / TICKS, chunk["duration"] / TICKS, chunk["text"]))
            if len(audio) > MAX_AUDIO_BYTES or messages > MAX_MESSAGES:  # not retried: it would do it again
                what = (
                    f"over {MAX_AUDIO_BYTES // 2**20} MB of audio" if messages <= MAX_MESSAGES else "too many messages"
                )
                raise VoiceGaveUp(f"Edge TTS sent {what} for one script ({self.name}); a narration is minutes")
        return bytes(audio), boundaries

    async def _attempts(self, text: str) -> tuple[bytes, list[tuple[float, float, str]]]:
        """`_stream` with `retries` more tries on dropped connections and server faults; a refusal
        (the handshake answered 4xx other than 429) is not retried."""
        import aiohttp
        import edge_tts.exceptions

        transient = (aiohttp.ClientError, TimeoutError, edge_tts.exceptions.EdgeTTSException, OSError)

        def refused(exc: Exception) -> bool:
            status = exc.status if isinstance(exc, aiohttp.WSServerHandshakeError) else None
            return bool(status and 400 <= status < 500 and status != 429)

        try:
            return await retrying(
                lambda: self._stream(text),
                retries=self._retries,
                retryable=lambda exc: isinstance(exc, transient) and not refused(exc),
                backoff=_BACKOFF,
                jitter=(0.5, 1.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if refused(exc):
                raise VoiceGaveUp(f"Edge TTS refused the request (HTTP {exc.status}) for {self.name}") from None
            failure = f"HTTP {exc.status}"
        except transient as exc:
            failure = (str(exc).splitlines() or [type(exc).__name__])[0][:200] or type(exc).__name__
        raise VoiceGaveUp(f"Edge TTS failed after {self._retries + 1} attempts for {self.name}: {failure}")

    async def synthesize(self, text: str, wav: Path) -> Speech:
        spans = word_spans(text)
        if not spans:
            raise BadInput("the script is empty: it has no words to speak")
        audio, boundaries = await self._attempts(text)
        if not audio:
            raise MediaError(f"Edge TTS sent no audio for {self.name}")
        try:
            duration = await write_wav(wav, ["-f", "mp3", "-i", "pipe:0"], stdin=audio)
        except MediaError as exc:
            raise MediaError(f"Edge TTS sent audio that FFmpeg cannot decode: {exc}") from None
        shifted = [(offset + _DECODER_DELAY, length, said) for offset, length, said in boundaries]
        return measured_speech(wav, duration, spans, boundary_times(spans, text, shifted), PROVIDER)

    async def speaking_rate(self) -> None:
        return None


# --- the registry row --------------------------------------------------------------------------------


def _listing(settings: Settings) -> list[VoiceInfo]:
    return [
        VoiceInfo(
            name=f"edge:{v.short_name}",
            provider=PROVIDER,
            language=v.locale.lower(),
            offline=False,
            needs_key=False,
            description=f"Edge TTS ({v.gender}); sends the text to Microsoft",
        )
        for v in snapshot()
    ]


def _make(settings: Settings, vid: str) -> EdgeVoice:
    return EdgeVoice(vid, url=settings.edge_wss_url, retries=settings.provider_retries)


ROW = Provider("edge", PROVIDER, _listing, _make)

"""Online narration with ElevenLabs, timed word by word from the API's character alignment.

One `POST /v1/text-to-speech/{voice_id}/with-timestamps` per chunk of at most `MAX_REQUEST_CHARS`
characters (cut at sentence ends, with `previous_text`/`next_text` for continuous prosody), through
the official SDK and its retries for 408/409/429/5xx (Retry-After honoured); dropped connections,
timeouts and malformed replies are retried here with the same backoff and jitter. Each chunk's MP3
is decoded on its own, so the next chunk's times are offset by exactly the audio that precedes it
(plus the MP3 coding delay in front of its sound); the decoded PCM is then joined, each join faded
over a few milliseconds so it cannot click, and written as one 48 kHz mono `voice.wav`. Characters
sent are counted as the job's usage.

The API key arrives as a plain string and is used only as the SDK's `xi-api-key` header: it is
never logged, and every error raised here is a one-line message with the key scrubbed out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import BadInput, MediaError, ProviderGaveUp
from tools.llm.usage import count
from tools.media.ffmpeg import run_ffmpeg
from tools.net.redact import redact
from tools.settings import Settings
from tools.text import Span, ends_clause, ends_sentence, word_spans
from tools.tts.base import ESTIMATOR, Provider, VoiceInfo
from tools.tts.speech import OUT_RATE, Speech, write_wav
from tools.tts.timing import measured_speech

if TYPE_CHECKING:
    from elevenlabs.client import AsyncElevenLabs
    from elevenlabs.core.api_error import ApiError

PROVIDER = "elevenlabs"
DEFAULT_MODEL = "eleven_multilingual_v2"
OUTPUT_FORMAT = "mp3_44100_128"
# Characters per request. The API documents 10,000 for multilingual v2 (5,000 on older plans,
# 2,500 for free users in the model list) and 40,000 for flash/turbo v2.5; eleven_v3 takes fewer.
# Smaller requests cost nothing but a little continuity, which previous_text/next_text restore.
MAX_REQUEST_CHARS = 5_000
_MODEL_LIMITS = {"eleven_v3": 3_000}
_CONTEXT_CHARS = 300  # previous_text / next_text sent with each chunk, for continuous prosody
_NO_CONTEXT_MODELS = ("eleven_v3",)  # request stitching is not offered for v3

MAX_RETRIES = 3  # default retries after the first attempt, of HTTP 408/409/429/5xx (by the SDK) and of
# dropped connections, timeouts and malformed replies (here)
TIMEOUT_SECONDS = 180  # one request; a 5,000-character narration takes well under a minute
_TRANSPORT_BACKOFF = 1.0  # seconds before retrying a dropped connection or malformed reply, doubled per attempt
_JOIN_FADE = 0.005  # seconds of fade on each side of a join between chunks
_VOICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the id goes into the URL path as is
_PCM_BYTES = 2  # s16le mono
# An MP3 without a gapless (LAME/Info) tag decodes with the encoder's delay (576 samples for LAME)
# and the decoder's (529) ahead of the sound, so its alignment is shifted by that much (~25 ms).
_UNTAGGED_DELAY = (576 + 529) / 44_100


@dataclass(frozen=True)
class _Chunk:
    start: int  # character range of the script sent in one request
    end: int


@dataclass(frozen=True)
class _Alignment:
    text: str  # the alignment's characters joined, one code point per entry of starts/ends
    starts: list[float]
    ends: list[float]


def request_limit(model_id: str) -> int:
    return _MODEL_LIMITS.get(model_id, MAX_REQUEST_CHARS)


def split_chunks(text: str, limit: int) -> list[_Chunk]:
    """Cut the text into ranges of at most `limit` characters, between tokens.

    A cut prefers the last sentence end in the second half of the window, then a clause end there,
    then any sentence or clause end, then the last token that fits; a token longer than the limit
    is cut inside.
    """
    pieces: list[Span] = []
    for span in word_spans(text):
        for first in range(span.start, span.end, limit):
            last = min(first + limit, span.end)
            pieces.append(Span(text[first:last], first, last))
    chunks: list[_Chunk] = []
    i = 0
    while i < len(pieces):
        start = pieces[i].start
        j = i
        while j + 1 < len(pieces) and pieces[j + 1].end - start <= limit:
            j += 1
        cut = j
        if j + 1 < len(pieces):
            half = start + limit // 2
            window = range(j, i - 1, -1)
            sentence = [k for k in window if ends_sentence(pieces[k].text)]
            clause = [k for k in window if ends_clause(pieces[k].text)]
            late = [k for k in (sentence + clause) if pieces[k].end >= half]
            cut = (late or sentence or clause or [j])[0]
        chunks.append(_Chunk(start, pieces[cut].end))
        i = cut + 1
    return chunks


def _scrub(message: str, secret: str, limit: int = 400) -> str:
    """One line, bounded, without the key (nor any other configured secret)."""
    line = redact(" ".join(message.split()), extra=[secret])
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _detail(body: Any) -> tuple[str, str]:
    """(status, message) out of an ElevenLabs error body: {"detail": {"status", "message"}} or a
    FastAPI validation list {"detail": [{"loc", "msg"}]}, or whatever text came back."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        status = str(detail.get("status") or detail.get("code") or "")
        return status, str(detail.get("message") or status or detail)
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "", "; ".join(parts)
    return "", str(detail or "no details")


class VoiceGaveUp(MediaError, ProviderGaveUp):
    """ElevenLabs refused, or failed through every retry."""


def _api_error(exc: ApiError, *, api_key: str, voice_id: str, part: str, attempts: int) -> Exception:
    code = exc.status_code or 0
    status, message = _detail(exc.body)
    detail = _scrub(f"{status}: {message}" if status and status not in message else message, api_key, 200)
    voice_problem = (
        status in {"voice_not_found", "invalid_voice_id"}
        or (code == 404 and "voice" in message.lower())
        or (code in {400, 422} and "voice_id" in message)
    )
    if voice_problem:
        return BadInput(
            _scrub(
                f"ElevenLabs has no voice {voice_id!r} ({detail}): set "
                "STORYBOT_ELEVENLABS_VOICE_ID to a voice id from your ElevenLabs voices",
                api_key,
            )
        )
    retried = f" after {attempts} attempts" if code in {408, 409, 429} or code >= 500 else ""
    if code == 401:
        text = f"ElevenLabs refused the API key (HTTP 401{part}: {detail}); check ELEVENLABS_API_KEY and the account"
    elif code == 403:
        text = f"ElevenLabs does not allow this request (HTTP 403{part}: {detail})"
    elif code == 404:
        text = f"ElevenLabs answered HTTP 404{part} ({detail}); check ELEVENLABS_BASE_URL (no /v1 at its end)"
    elif code == 422:
        text = f"ElevenLabs could not use the request (HTTP 422{part}: {detail})"
    elif code == 429:
        text = f"ElevenLabs is rate limiting or busy (HTTP 429{part}: {detail}){retried}; try again later"
    else:
        text = f"ElevenLabs failed (HTTP {code}{part}: {detail}){retried}"
    return VoiceGaveUp(_scrub(text, api_key))


def _code_points(alignment: Any) -> _Alignment:
    """The alignment as one entry per code point.

    Entries that are UTF-16 surrogate halves (an emoji counted as two JavaScript characters) are
    joined back into one code point; an entry of several code points gives each the entry's times.
    """
    chars = list(getattr(alignment, "characters", None) or [])
    starts = list(getattr(alignment, "character_start_times_seconds", None) or [])
    ends = list(getattr(alignment, "character_end_times_seconds", None) or [])
    if not (len(chars) == len(starts) == len(ends)) or not all(
        isinstance(t, int | float) and math.isfinite(t) for t in [*starts, *ends]
    ):
        raise MediaError("ElevenLabs returned a malformed character alignment")
    text: list[str] = []
    out_starts: list[float] = []
    out_ends: list[float] = []
    k = 0
    while k < len(chars):
        entry, start, end = str(chars[k]), float(starts[k]), float(ends[k])
        if (
            len(entry) == 1
            and "\ud800" <= entry <= "\udbff"
            and k + 1 < len(chars)
            and len(str(chars[k + 1])) == 1
            and "\udc00" <= str(chars[k + 1]) <= "\udfff"
        ):
            entry = (entry + str(chars[k + 1])).encode("utf-16", "surrogatepass").decode("utf-16")
            end = float(ends[k + 1])
            k += 1
        k += 1
        for ch in entry:
            text.append(ch)
            out_starts.append(max(start, 0.0))
            out_ends.append(max(end, start, 0.0))
    return _Alignment("".join(text), out_starts, out_ends)


def char_times(text: str, alignment: _Alignment) -> list[tuple[float, float] | None]:
    """(start, end) of every character of `text`, or None where the alignment has no counterpart.

    The alignment usually repeats the request text exactly. Where it does not (normalised accents,
    added or dropped characters), a character diff maps the two: matching characters take their
    own times, a replaced run shares the times of what replaced it, a dropped character gets none.
    """
    if alignment.text == text:
        return list(zip(alignment.starts, alignment.ends, strict=True))
    times: list[tuple[float, float] | None] = [None] * len(text)
    matcher = SequenceMatcher(None, text, alignment.text, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                times[i1 + k] = (alignment.starts[j1 + k], alignment.ends[j1 + k])
        elif tag == "replace":
            t0 = alignment.starts[j1]
            t1 = max(alignment.ends[j2 - 1], t0)
            n = i2 - i1
            for k in range(n):
                times[i1 + k] = (t0 + (t1 - t0) * k / n, t0 + (t1 - t0) * (k + 1) / n)
    return times


def token_times(
    spans: Sequence[Span], times: Sequence[tuple[float, float] | None], duration: float
) -> tuple[dict[int, tuple[float, float]], set[int]]:
    """(start, end) of every token and the indices of those that were interpolated.

    A token starts at its first aligned character's start and ends at its last one's end. Tokens
    with no aligned character share the gap between their timed neighbours by character length.
    """
    timed: dict[int, tuple[float, float]] = {}
    for index, span in enumerate(spans):
        hits = [t for t in times[span.start : span.end] if t is not None]
        if hits:
            timed[index] = (hits[0][0], max(hits[-1][1], hits[0][0]))
    missing = {i for i in range(len(spans)) if i not in timed}
    index = 0
    while index < len(spans):
        if index in timed:
            index += 1
            continue
        last = index
        while last + 1 < len(spans) and last + 1 not in timed:
            last += 1
        t0 = timed[index - 1][1] if index > 0 else 0.0
        t1 = timed[last + 1][0] if last + 1 < len(spans) else duration
        t1 = max(t1, t0)
        total = sum(len(spans[k].text) for k in range(index, last + 1))
        done = 0
        for k in range(index, last + 1):
            begin = t0 + (t1 - t0) * done / total
            done += len(spans[k].text)
            timed[k] = (begin, t0 + (t1 - t0) * done / total)
        index = last + 1
    return timed, missing


def leading_delay(mp3: bytes) -> float:
    """Seconds of encoder/decoder delay FFmpeg leaves at the start of this MP3's decoded audio.

    FFmpeg trims the delay itself when the first frame carries a Xing/Info tag with a LAME (or
    Lavc/Lavf) extension, as files written by LAME do; a streamed MP3 has no such tag.
    """
    start = 0
    if mp3[:3] == b"ID3" and len(mp3) >= 10:
        size = (mp3[6] & 0x7F) << 21 | (mp3[7] & 0x7F) << 14 | (mp3[8] & 0x7F) << 7 | (mp3[9] & 0x7F)
        start = 10 + size + (10 if mp3[5] & 0x10 else 0)
    head = mp3[start : start + 400]
    for tag in (b"Xing", b"Info"):
        at = head.find(tag, 0, 64)
        if at >= 0 and any(head.find(encoder, at, at + 200) >= 0 for encoder in (b"LAME", b"Lavc", b"Lavf")):
            return 0.0
    return _UNTAGGED_DELAY


async def _decode_mp3(audio: bytes, part: str) -> bytes:
    try:
        pcm, _ = await run_ffmpeg(
            ["-v", "error", "-f", "mp3", "-i", "pipe:0", "-vn", "-ac", "1", "-ar", str(OUT_RATE), "-f", "s16le", "-"],
            stdin=audio,
        )
    except MediaError as exc:
        raise MediaError(f"ElevenLabs returned audio{part} that FFmpeg cannot decode: {exc}") from None
    if not pcm:
        raise MediaError(f"ElevenLabs returned empty audio{part}")
    return pcm[: len(pcm) - len(pcm) % _PCM_BYTES]


class _Retryable(MediaError):
    """A fault worth another attempt: a dropped connection, a timeout, a malformed reply."""


async def _request(
    client: AsyncElevenLabs,
    *,
    text: str,
    voice_id: str,
    model_id: str,
    api_key: str,
    voice_settings: dict[str, float | bool] | None,
    previous_text: str | None,
    next_text: str | None,
    part: str,
    retries: int,
) -> Any:
    """One with-timestamps call. HTTP errors come after the SDK's own retries (408/409/429/5xx,
    Retry-After honoured, else exponential backoff with jitter) and become one clear line."""
    import httpx
    from elevenlabs.core.api_error import ApiError
    from elevenlabs.core.parse_error import ParsingError
    from elevenlabs.types import VoiceSettings

    from tools.net.bounded import TooLarge

    extra: dict[str, Any] = {}
    if not model_id.startswith(_NO_CONTEXT_MODELS):
        if previous_text:
            extra["previous_text"] = previous_text
        if next_text:
            extra["next_text"] = next_text
    if voice_settings:
        extra["voice_settings"] = VoiceSettings(**voice_settings)
    try:
        return await client.text_to_speech.convert_with_timestamps(
            voice_id,
            text=text,
            model_id=model_id,
            output_format=OUTPUT_FORMAT,
            request_options={"max_retries": retries, "timeout_in_seconds": TIMEOUT_SECONDS},
            **extra,
        )
    except ApiError as exc:
        raise _api_error(exc, api_key=api_key, voice_id=voice_id, part=part, attempts=retries + 1) from None
    except ParsingError as exc:
        raise _Retryable(f"ElevenLabs sent an unexpected response{part} (HTTP {exc.status_code})") from None
    except TooLarge as exc:  # not retried: the same text would bring the same reply
        raise VoiceGaveUp(f"ElevenLabs sent {exc}{part}") from None
    except httpx.TimeoutException:
        raise _Retryable(f"ElevenLabs did not answer{part} within {TIMEOUT_SECONDS} s") from None
    except httpx.TransportError as exc:
        reason = _scrub(str(exc) or type(exc).__name__, api_key)
        raise _Retryable(f"cannot reach ElevenLabs{part}: {reason}") from None


async def _spoken_chunk(
    client: AsyncElevenLabs, *, part: str, retries: int, api_key: str, **request: Any
) -> tuple[bytes, _Alignment, bytes]:
    """(MP3, alignment, PCM) of one chunk. Dropped connections, timeouts and malformed replies
    (bad base64, no or broken alignment, undecodable audio) are retried with exponential backoff
    and jitter, `retries` times, as the SDK retries HTTP errors."""
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_Retryable),
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential_jitter(multiplier=_TRANSPORT_BACKOFF, max=8, jitter=_TRANSPORT_BACKOFF),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                response = await _request(client, part=part, retries=retries, api_key=api_key, **request)
                try:
                    audio = base64.b64decode(getattr(response, "audio_base_64", None) or "", validate=True)
                except (binascii.Error, ValueError, TypeError):
                    raise _Retryable(f"ElevenLabs returned audio{part} that is not base64") from None
                if not audio:
                    raise _Retryable(f"ElevenLabs returned no audio{part}")
                alignment = getattr(response, "alignment", None) or getattr(response, "normalized_alignment", None)
                if alignment is None:
                    raise _Retryable(f"ElevenLabs returned no character timestamps{part}")
                try:
                    aligned = _code_points(alignment)
                    pcm = await _decode_mp3(audio, part)
                except MediaError as exc:
                    raise _Retryable(str(exc)) from None
                return audio, aligned, pcm
    except _Retryable as exc:
        raise VoiceGaveUp(f"{exc} ({retries + 1} attempts)") from None
    raise AssertionError("unreachable")


def join_pcm(parts: list[bytes], fade_seconds: float = _JOIN_FADE) -> bytes:
    """Chunks of s16le mono PCM end to end, each join faded out and in over a few milliseconds:
    two separately decoded chunks rarely meet at the same sample value, and a step is a click."""
    import numpy as np

    if len(parts) < 2:
        return b"".join(parts)
    n = int(fade_seconds * OUT_RATE)
    out = []
    for k, part in enumerate(parts):
        samples = np.frombuffer(part, dtype="<i2").astype(np.float32)
        m = min(n, len(samples) // 2)
        if m:
            ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, m, dtype=np.float32))
            if k > 0:
                samples[:m] *= ramp
            if k < len(parts) - 1:
                samples[-m:] *= ramp[::-1]
        out.append(np.round(samples).astype("<i2").tobytes())
    return b"".join(out)


async def synthesize_elevenlabs(
    text: str,
    out_wav: Path,
    *,
    api_key: str,
    voice_id: str,
    base_url: str | None = None,
    model_id: str = DEFAULT_MODEL,
    voice_settings: dict[str, float | bool] | None = None,
    retries: int = MAX_RETRIES,
    max_chars: int | None = None,
) -> Speech:
    """Speak cleaned script text with an ElevenLabs voice into `out_wav` (48 kHz mono WAV), with a
    Word per token timed from the API's character alignment. Characters sent are counted as usage."""
    import httpx  # the SDK and its httpx take ~0.6 s to import: only when this provider runs
    from elevenlabs.client import AsyncElevenLabs

    from tools.net.bounded import bounded_transport

    if not api_key.strip():
        raise BadInput("ELEVENLABS_API_KEY is empty")
    if not _VOICE_ID.fullmatch(voice_id):
        raise BadInput(f"{voice_id!r} is not an ElevenLabs voice id (letters and digits, as in the voice library)")
    spans = word_spans(text)
    if not spans:
        raise BadInput("the script is empty: it has no words to speak")
    limit = max_chars or request_limit(model_id)
    chunks = split_chunks(text, limit)

    pcm_parts: list[bytes] = []
    times: list[tuple[float, float] | None] = [None] * len(text)
    offset = 0.0
    transport = bounded_transport(httpx)  # replies (base64 audio in JSON) capped after decompression
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False, transport=transport) as http:
        # No redirects: httpx would carry the xi-api-key header to wherever they point.
        client = AsyncElevenLabs(
            api_key=api_key,
            base_url=base_url.rstrip("/") if base_url else None,
            timeout=TIMEOUT_SECONDS,
            httpx_client=http,
        )
        for number, chunk in enumerate(chunks, 1):
            part = f" (part {number} of {len(chunks)})" if len(chunks) > 1 else ""
            chunk_text = text[chunk.start : chunk.end]
            audio, aligned, pcm = await _spoken_chunk(
                client,
                text=chunk_text,
                voice_id=voice_id,
                model_id=model_id,
                api_key=api_key,
                part=part,
                voice_settings=voice_settings,
                retries=retries,
                previous_text=text[max(0, chunk.start - _CONTEXT_CHARS) : chunk.start].strip() or None,
                next_text=text[chunk.end : chunk.end + _CONTEXT_CHARS].strip() or None,
            )
            count(PROVIDER, characters=len(chunk_text))
            length = len(pcm) / _PCM_BYTES / OUT_RATE
            shift = offset + leading_delay(audio)  # alignment time 0 is where this chunk's sound starts
            end_of_chunk = offset + length
            local = await asyncio.to_thread(char_times, chunk_text, aligned)
            for k, t in enumerate(local):
                if t is not None:
                    start = min(shift + t[0], end_of_chunk)
                    times[chunk.start + k] = (start, max(min(shift + t[1], end_of_chunk), start))
            pcm_parts.append(pcm)
            offset += length

    raw = ["-f", "s16le", "-ar", str(OUT_RATE), "-ac", "1", "-i", "pipe:0"]
    duration = await write_wav(out_wav, raw, stdin=await asyncio.to_thread(join_pcm, pcm_parts))
    timed, interpolated = token_times(spans, times, duration)
    return measured_speech(out_wav, duration, spans, timed, PROVIDER, interpolated=interpolated)


def _not_an_id(vid: str) -> str:
    return f"{vid!r} is not an ElevenLabs voice id (letters and digits, as in the voice library)"


class ElevenLabsVoice:
    """An ElevenLabs voice by id; its speaking rate is learnt from its narrations."""

    provider = PROVIDER
    language = "mul"  # multilingual models speak the script's language

    def __init__(
        self,
        voice_id: str,
        *,
        api_key: str,
        base_url: str | None,
        model_id: str,
        voice_settings: dict[str, float | bool] | None,
        retries: int,
    ) -> None:
        if not _VOICE_ID.fullmatch(voice_id):
            raise BadInput(_not_an_id(voice_id))
        self.voice_id, self.model_id = voice_id, model_id
        self.name = f"elevenlabs:{voice_id}"
        self.rate_key = self.name
        self.fingerprint: tuple[object, ...] = (self.name, model_id, voice_settings or {})
        self.estimator = ESTIMATOR
        self._api_key, self._base_url, self._settings, self._retries = api_key, base_url, voice_settings, retries

    async def synthesize(self, text: str, wav: Path) -> Speech:
        return await synthesize_elevenlabs(
            text,
            wav,
            api_key=self._api_key,
            voice_id=self.voice_id,
            base_url=self._base_url,
            model_id=self.model_id,
            voice_settings=self._settings,
            retries=self._retries,
        )

    async def speaking_rate(self) -> None:
        return None


# --- the registry row --------------------------------------------------------------------------------


def _listing(settings: Settings) -> list[VoiceInfo]:
    """Only the configured voice: the library cannot be listed offline (any id is served, `_unlisted`)."""
    vid = settings.elevenlabs_voice_id
    if settings.elevenlabs_api_key is None or not vid:
        return []
    return [
        VoiceInfo(
            name=f"elevenlabs:{vid}",
            provider=PROVIDER,
            language="mul",
            offline=False,
            needs_key=True,
            description="the configured ElevenLabs voice",
        )
    ]


def _make(settings: Settings, vid: str) -> ElevenLabsVoice:
    if settings.elevenlabs_api_key is None:
        raise BadInput(f"elevenlabs:{vid} needs ELEVENLABS_API_KEY")
    return ElevenLabsVoice(
        vid,
        api_key=settings.elevenlabs_api_key.get_secret_value(),
        base_url=settings.elevenlabs_base_url,
        model_id=settings.elevenlabs_model_id,
        voice_settings=settings.elevenlabs_voice_settings or None,
        retries=settings.provider_retries,
    )


def _unlisted(vid: str) -> str | None:
    return None if _VOICE_ID.fullmatch(vid) else _not_an_id(vid)


def _configured(settings: Settings) -> str | None:
    if settings.elevenlabs_api_key is not None and settings.elevenlabs_voice_id:
        return f"elevenlabs:{settings.elevenlabs_voice_id}"
    return None


ROW = Provider(
    "elevenlabs",
    PROVIDER,
    _listing,
    _make,
    available=lambda settings: settings.elevenlabs_api_key is not None,
    unlisted=_unlisted,
    configured=_configured,
)

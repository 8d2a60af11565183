"""A small ElevenLabs text-to-speech server for tests, on 127.0.0.1.

It speaks `POST /v1/text-to-speech/{voice_id}/with-timestamps` as the official SDK calls it: the
`xi-api-key` header, `output_format` in the query, a JSON body; it answers with a real MP3 (a tone
as long as the text at `per_char` seconds a character, then `TAIL` seconds of silence) and a
synthetic alignment that gives code point i of the request text the slot [i * per_char,
(i + 1) * per_char), so every word's expected time is known exactly, whichever way the alignment
spells the characters. `queued` replies (status 0 drops the connection) and `stalled` requests
inject faults.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.local_http import Reply
from tools.media.ffmpeg import run_ffmpeg
from tools.tts.elevenlabs import MAX_REQUEST_CHARS

KEY = "sk_test_0123456789abcdef0123456789abcdef"
VOICE = "JBFqnCBsd6RMkjVDRZzb"
TAIL = 0.2  # silence after the speech in every MP3, as real narrations end
PER_CHAR = 0.06
PATH = re.compile(r"^/v1/text-to-speech/(?P<voice>[^/]+)/with-timestamps$")


@cache
def tone_mp3(seconds: float, tagged: bool) -> bytes:
    """A real MP3 from FFmpeg: a 440 Hz tone for `seconds`, then TAIL seconds of silence.

    Untagged, like a streamed MP3, it decodes with ~25 ms of coding delay before the tone; with a
    LAME/Info tag (which needs a seekable output file) FFmpeg trims that delay.
    """
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "tone.mp3"
        tone = f"sine=frequency=440:sample_rate=44100:duration={seconds:.6f}"
        args: list[str | Path] = [
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            tone,
            "-af",
            f"apad=pad_dur={TAIL}",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            "-write_xing",
            str(int(tagged)),
            out,
        ]
        asyncio.run(run_ffmpeg(args))  # runs in the server's thread, with its own event loop
        return out.read_bytes()


def alignment(text: str, per_char: float, mode: str) -> dict[str, list[Any]]:
    """Characters and times of `text`, spelled as a server might: one entry per code point, UTF-16
    surrogate halves for emoji, NFD-decomposed accents, or with emoji left out."""
    chars: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    for i, ch in enumerate(text):
        t0 = i * per_char
        if mode == "utf16" and ord(ch) > 0xFFFF:
            units = ch.encode("utf-16-le", "surrogatepass")
            parts = [units[:2].decode("utf-16-le", "surrogatepass"), units[2:].decode("utf-16-le", "surrogatepass")]
        elif mode == "nfd":
            parts = list(unicodedata.normalize("NFD", ch))
        elif mode == "drop_emoji" and ord(ch) > 0xFFFF:
            parts = []
        else:
            parts = [ch]
        for k, part in enumerate(parts):
            chars.append(part)
            starts.append(round(t0 + per_char * k / len(parts), 6))
            ends.append(round(t0 + per_char * (k + 1) / len(parts), 6))
    return {"characters": chars, "character_start_times_seconds": starts, "character_end_times_seconds": ends}


@dataclass
class FakeElevenLabs:
    base_url: str = ""
    key: str = KEY
    per_char: float = PER_CHAR
    mode: str = "codepoints"
    tagged: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    queued: list[tuple[int, Any]] = field(default_factory=list)  # answered first, in order; status 0 drops
    error: str | None = None  # a protocol check that failed inside the server
    model_id: str = "eleven_multilingual_v2"  # the model the requests must name
    retry_after: str = "0"  # sent with 429 and 503
    stall: float = 0.0  # seconds to wait before answering the next `stalled` requests
    stalled: int = 0


def make_handler(fake: FakeElevenLabs) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()  # ensure_ascii: surrogate halves go out as \\ud83c escapes
            with suppress(ConnectionError):  # the client gave up waiting (a timeout test): nobody to answer
                self._send(status, data)

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status in {429, 503}:
                self.send_header("Retry-After", fake.retry_after)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append(
                {"path": url.path, "query": parse_qs(url.query), "key": self.headers["xi-api-key"], "body": body}
            )
            if fake.stalled:
                fake.stalled -= 1
                time.sleep(fake.stall)
            if fake.queued:
                status, answer = fake.queued.pop(0)
                if status == 0:
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(answer, Reply):  # raw bytes and headers, as a hostile server sends them
                    with suppress(ConnectionError):
                        self.send_response(answer.status)
                        for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                            self.send_header(name, value)
                        assert isinstance(answer.body, bytes)
                        self.send_header("Content-Length", str(len(answer.body)))
                        self.end_headers()
                        self.wfile.write(answer.body)
                    return
                self.send(status, answer)
                return
            if self.headers["xi-api-key"] != fake.key:
                self.send(
                    401,
                    {
                        "detail": {
                            "status": "invalid_api_key",
                            "message": f"Invalid API key: {self.headers['xi-api-key']}",
                        }
                    },
                )
                return
            match = PATH.match(url.path)
            if not match or match["voice"] != VOICE:
                self.send(404, {"detail": {"status": "voice_not_found", "message": "That voice was not found."}})
                return
            problems = [
                name
                for name, ok in [
                    ("output_format", parse_qs(url.query).get("output_format") == ["mp3_44100_128"]),
                    ("model_id", body.get("model_id") == fake.model_id),
                    ("text", isinstance(body.get("text"), str) and 0 < len(body["text"]) <= MAX_REQUEST_CHARS),
                ]
                if not ok
            ]
            if problems:
                fake.error = f"bad request fields: {problems}"
                self.send(422, {"detail": [{"loc": ["body", p], "msg": "invalid"} for p in problems]})
                return
            text = body["text"]
            audio = tone_mp3(round(len(text) * fake.per_char, 6), fake.tagged)
            timing = alignment(text, fake.per_char, fake.mode)
            self.send(
                200,
                {"audio_base64": base64.b64encode(audio).decode(), "alignment": timing, "normalized_alignment": timing},
            )

    return Handler


@contextmanager
def fake_elevenlabs() -> Iterator[FakeElevenLabs]:
    """The server on 127.0.0.1 until the block ends; a protocol error seen inside fails the block."""
    fake = FakeElevenLabs()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    fake.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert fake.error is None, fake.error

"""A local server speaking Edge TTS's websocket protocol, for tests, on 127.0.0.1.

It answers what the read-aloud service answers: the client sends `speech.config` (JSON) and
`ssml` text messages; the server replies `turn.start`, then for each word an `audio.metadata`
message with a WordBoundary (Offset and Duration in 100 ns ticks from the start of the audio),
binary frames (2-byte big-endian header length, `Path:audio` headers, MP3 bytes), and `turn.end`.
The audio is real speech: the SSML's text spoken by espeak-ng, whose word times are the
boundaries sent, then encoded as a 24 kHz, 48 kbit/s mono MP3 without a gapless tag (as streamed).
`refuse` answers the handshake with an HTTP status; `drop_first` closes the first connections
after `turn.start`, as a flaky network does.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tools.media.ffmpeg import run_ffmpeg
from tools.text import word_spans
from tools.tts.espeak import _speak

TICKS = 10_000_000
_CHUNK = 4096


@dataclass
class FakeEdge:
    refuse: int | None = None
    drop_first: int = 0
    connections: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent_words: list[tuple[str, float, float]] = field(default_factory=list)  # (word, start, end) seconds
    # what a broken or hostile server does to the times it reports (the audio stays right)
    warp: Callable[[list[tuple[str, float, float]]], list[tuple[str, float, float]]] | None = None
    url: str = ""
    extra_audio: int = 0  # bytes of audio sent after the speech (a server that never stops)
    extra_words: int = 0  # word boundaries sent after the speech's own
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeEdge:
        app = web.Application()
        app.router.add_get("/edge/v1", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/edge/v1?TrustedClientToken=test"
        return self

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        if self.refuse:
            return web.Response(status=self.refuse, text="refused")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        messages: dict[str, str] = {}
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            head, _, body = message.data.partition("\r\n\r\n")
            path = re.search(r"Path:(\S+)", head)
            messages[path.group(1) if path else "?"] = body
            if "ssml" in messages:
                break
        config = json.loads(messages["speech.config"])
        ssml = messages["ssml"]
        voice = re.search(r"<voice name='([^']+)'>", ssml)
        text = html.unescape(re.sub(r"<[^>]+>", "", ssml))
        self.requests.append(
            {"query": dict(request.query), "config": config, "voice": voice and voice.group(1), "text": text}
        )
        rid = uuid.uuid4().hex
        await ws.send_str(
            f"X-RequestId:{rid}\r\nContent-Type:application/json; charset=utf-8\r\n"
            f'Path:turn.start\r\n\r\n{{"context":{{"serviceTag":"x"}}}}'
        )
        if self.connections <= self.drop_first:
            await ws.close()
            return ws
        mp3, words = await self._speech(text)
        self.sent_words = words
        for word, start, end in self.warp(words) if self.warp else words:
            meta = {
                "Metadata": [
                    {
                        "Type": "WordBoundary",
                        "Data": {
                            "Offset": round(start * TICKS),
                            "Duration": round((end - start) * TICKS),
                            "text": {"Text": html.escape(word), "Length": len(word), "BoundaryType": "WordBoundary"},
                        },
                    }
                ]
            }
            await ws.send_str(
                f"X-RequestId:{rid}\r\nContent-Type:application/json; charset=utf-8\r\n"
                f"Path:audio.metadata\r\n\r\n{json.dumps(meta)}"
            )
        flood = {"Type": "WordBoundary", "Data": {"Offset": 0, "Duration": 1, "text": {"Text": "a", "Length": 1}}}
        for _ in range(self.extra_words):
            if ws.closed:
                break
            await ws.send_str(
                f"X-RequestId:{rid}\r\nContent-Type:application/json; charset=utf-8\r\n"
                f"Path:audio.metadata\r\n\r\n{json.dumps({'Metadata': [flood]})}"
            )
        header = f"X-RequestId:{rid}\r\nContent-Type:audio/mpeg\r\nX-StreamId:{rid}\r\nPath:audio\r\n".encode()
        for at in range(0, len(mp3), _CHUNK):
            await ws.send_bytes(len(header).to_bytes(2, "big") + header + mp3[at : at + _CHUNK])
        for _ in range(0, self.extra_audio, 2**20):
            if ws.closed:
                break
            await ws.send_bytes(len(header).to_bytes(2, "big") + header + bytes(2**20))
        await ws.send_str(
            f"X-RequestId:{rid}\r\nContent-Type:application/json; charset=utf-8\r\nPath:turn.end\r\n\r\n{{}}"
        )
        await ws.close()
        return ws

    async def _speech(self, text: str) -> tuple[bytes, list[tuple[str, float, float]]]:
        rendering, timed = await asyncio.to_thread(_speak, text, "en-us", 175)
        spans = word_spans(text)
        words = []
        for index, (start, end) in sorted(timed.items()):
            bare = re.sub(r"^\W+|\W+$", "", spans[index].text)  # the service reports words without punctuation
            if bare:
                words.append((bare, start, end))
        mp3, _ = await run_ffmpeg(
            [
                "-v",
                "error",
                "-f",
                "s16le",
                "-ar",
                str(rendering.rate),
                "-ac",
                "1",
                "-i",
                "pipe:0",
                "-ar",
                "24000",
                "-c:a",
                "libmp3lame",
                "-b:a",
                "48k",
                "-write_xing",
                "0",
                "-f",
                "mp3",
                "-",
            ],
            stdin=rendering.samples.astype("<i2").tobytes(),
        )
        return mp3, words

"""Replies read with a ceiling: a provider's reply is counted in bytes after decompression, so a
1 MiB gzip bomb or a 300 MB JSON body is refused at the limit instead of being held in memory.

gzip and deflate are inflated here, at most the bytes still allowed at a time, so even one packet
that would inflate to gigabytes costs no more than the limit; other encodings take the HTTP
library's decoder. `BoundedTransport` puts the same reader under SDK clients (openai, ElevenLabs)
that read their replies themselves.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

import httpx

MAX_REPLY_BYTES = 32 * 1024 * 1024  # a search page is kilobytes; a generated picture as base64 a few MB


class TooLarge(ValueError):
    """A reply past its ceiling (the message says which, never the body)."""


class _Reply(Protocol):  # an httpx or httpx2 Response
    @property
    def headers(self) -> Any: ...

    def aiter_raw(self) -> Any: ...

    def aiter_bytes(self) -> Any: ...


async def read_bounded(response: _Reply, limit: int = MAX_REPLY_BYTES) -> bytes:
    """The whole body of a streamed reply, decompressed, or TooLarge once it passes `limit` bytes."""
    declared = response.headers.get("content-length", "")
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if declared.isdigit() and int(declared) > limit and encoding in ("", "identity"):
        raise TooLarge(f"a reply of {_size(int(declared))}, over the {_size(limit)} limit")
    body = bytearray()
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflate = _Inflater(encoding, limit)
        async for chunk in response.aiter_raw():
            body += inflate.feed(chunk, limit - len(body))
        body += inflate.feed(b"", limit - len(body), final=True)
        return bytes(body)
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"a reply over the {_size(limit)} limit")
    return bytes(body)


class _Inflater:
    """gzip (members one after another, as the RFC allows) or deflate (zlib-wrapped or raw), never
    producing more than the room left plus one byte."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.gzip = encoding != "deflate"
        self.raw_deflate = False
        self.started = False
        self.limit = limit
        self._d = self._new()

    def _new(self) -> Any:
        if self.gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self.raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int, final: bool = False) -> bytes:
        out = bytearray()
        while data:
            try:
                part = self._d.decompress(data, room - len(out) + 1)
            except zlib.error as exc:
                if not self.gzip and not self.started and not self.raw_deflate:  # deflate sent without zlib's header
                    self.raw_deflate = True
                    self._d = self._new()
                    continue
                raise httpx.DecodingError(
                    f"the reply's {'gzip' if self.gzip else 'deflate'} data is broken: {exc}"
                ) from None
            self.started = True
            out += part
            if len(out) > room:
                raise TooLarge(f"a reply over the {_size(self.limit)} limit")
            data = self._d.unused_data if self.gzip and self._d.eof else b""
            if data:
                self._d = self._new()
        if final:
            out += self._d.flush()
            if len(out) > room:
                raise TooLarge(f"a reply over the {_size(self.limit)} limit")
        return bytes(out)


class BoundedTransport:
    """Wraps an httpx or httpx2 transport so that every reply reaches the client already read with
    `read_bounded` (and decompressed): an SDK's own `response.json()` then never sees more than `limit`.
    Made with `bounded_transport`, which picks the library's base class."""

    def __init__(self, inner: Any, limit: int = MAX_REPLY_BYTES) -> None:
        self.inner, self.limit = inner, limit

    async def handle_async_request(self, request: Any) -> Any:
        reply = await self.inner.handle_async_request(request)
        kind = type(reply)
        streamed = kind(reply.status_code, headers=reply.headers, stream=reply.stream, request=request)
        try:
            body = await read_bounded(streamed, self.limit)
        finally:
            await streamed.aclose()
        kept = [
            (k, v) for k, v in reply.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")
        ]
        return kind(reply.status_code, headers=kept, content=body, request=request, extensions=reply.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


def bounded_transport(module: Any, limit: int = MAX_REPLY_BYTES, **options: Any) -> Any:
    """An `AsyncBaseTransport` of `module` (httpx or httpx2) whose replies are read with a ceiling."""
    base = type("Bounded", (BoundedTransport, module.AsyncBaseTransport), {})
    return base(module.AsyncHTTPTransport(**options), limit)


def _size(n: int) -> str:
    return f"{n // 2**20} MB" if n >= 2**20 else f"{n} bytes"

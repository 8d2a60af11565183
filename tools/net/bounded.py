"""Replies read with a ceiling: a provider's reply is counted in bytes after decompression, so a
1 MiB gzip bomb or a 300 MB JSON body is refused at the limit instead of being held in memory."""

from __future__ import annotations

import httpx

MAX_REPLY_BYTES = 32 * 1024 * 1024  # a search page is kilobytes; a generated picture as base64 a few MB


class TooLarge(ValueError):
    """A reply past its ceiling (the message says which, never the body)."""


async def read_bounded(response: httpx.Response, limit: int = MAX_REPLY_BYTES) -> bytes:
    """The whole body of a streamed reply, decompressed, or TooLarge once it passes `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and not response.headers.get("content-encoding"):
        raise TooLarge(f"a reply of {_size(int(declared))}, over the {_size(limit)} limit")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"a reply over the {_size(limit)} limit")
    return bytes(body)


def _size(n: int) -> str:
    return f"{n // 2**20} MB" if n >= 2**20 else f"{n} bytes"

"""Large files fetched the careful way: resumed, checked, never half-written.

A file streams into a hidden `.NAME.part` beside its final name; a broken transfer is retried with
`Range: bytes=N-` from where it stopped (a server that answers 200 instead of 206 starts it over), a
server that sends more than the expected size is cut off, and the finished file must have the size
and the digest its index gives (MD5 for Piper's index; SHA-256 or git's blob SHA-1 for a model hub's
listing), or it is deleted and refused. Only the configured origin is trusted as given; every
redirect is followed by hand and checked by `tools.net.guard` (public https hosts only). One deadline
covers a file with its retries. Used by Piper voice downloads and `storybot models pull writer`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel

from tools.errors import StorybotError
from tools.net.guard import Guard, RefusedURL
from tools.net.retry import retrying, transient_http

Progress = Callable[[str, int, int], None]  # (file name, bytes so far, bytes in all)
Algorithm = Literal["md5", "sha256", "git-sha1"]
TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # a stalled transfer is cut off and resumed
RETRIES = 4
CHUNK = 1 << 20
MAX_REDIRECTS = 5


class DownloadError(StorybotError):
    """A file could not be downloaded (the message names it and says why, in one line)."""


class Want(BaseModel):
    """What a finished file must be."""

    size: int
    digest: str  # lower-case hex
    algorithm: Algorithm


def digest_of(path: Path, want: Want) -> str:
    """The file's digest as `want` names it (git's blob SHA-1 hashes "blob SIZE\\0" first)."""
    hasher = hashlib.new("sha1" if want.algorithm == "git-sha1" else want.algorithm, usedforsecurity=False)
    if want.algorithm == "git-sha1":
        hasher.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            hasher.update(block)
    return hasher.hexdigest()


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)


class Fetcher:
    """Downloads from one configured origin (`base`), redirects checked, with optional progress."""

    def __init__(self, base: str, http: httpx.AsyncClient, progress: Progress | None = None) -> None:
        self.base = base.rstrip("/")
        self.guard = Guard.for_bases(self.base)
        self.http = http
        self.progress = progress

    async def file(self, path: str, want: Want, dest: Path, deadline: float, retries: int = RETRIES) -> None:
        """`base/path` into `dest`, resumed across failures, size and digest checked."""
        if dest.is_file() and dest.stat().st_size == want.size:
            return
        part = dest.with_name(f".{dest.name}.part")
        try:
            async with asyncio.timeout(deadline):
                await retrying(
                    lambda: self._transfer(f"{self.base}/{path}", part, want, dest.name),
                    retries=retries,
                    retryable=transient_http,
                    backoff=0.5,
                )
        except TimeoutError:
            raise DownloadError(f"downloading {dest.name} took over {deadline:g} s; run it again to resume") from None
        except RefusedURL as exc:
            raise DownloadError(f"downloading {dest.name}: refused {exc}") from None
        except httpx.HTTPStatusError as exc:
            raise DownloadError(
                f"downloading {dest.name}: the server answered HTTP {exc.response.status_code}"
            ) from None
        except httpx.HTTPError as exc:
            raise DownloadError(
                f"downloading {dest.name}: {type(exc).__name__} ({exc}); run it again to resume"
            ) from None
        got = part.stat().st_size
        if got != want.size or digest_of(part, want) != want.digest:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"refused {dest.name}: its checksum does not match the index ({got} bytes, expected "
                f"{want.size} with {want.algorithm.upper()} {want.digest}); nothing was kept"
            )
        os.replace(part, dest)

    async def json(self, path: str, limit: int) -> bytes:
        """A small listing from the origin (read with a ceiling), retried like the files."""
        from tools.net.bounded import read_bounded

        async def once() -> bytes:
            async with self.open(f"{self.base}/{path}", {}) as response:
                response.raise_for_status()
                return await read_bounded(response, limit)

        try:
            return await retrying(once, retries=2, retryable=transient_http, backoff=0.5)
        except httpx.HTTPStatusError as exc:
            raise DownloadError(f"listing {path}: the server answered HTTP {exc.response.status_code}") from None
        except (httpx.HTTPError, RefusedURL) as exc:
            raise DownloadError(f"listing {path}: {type(exc).__name__} ({exc})") from None

    async def _transfer(self, url: str, part: Path, want: Want, name: str) -> None:
        have = part.stat().st_size if part.is_file() else 0
        if have > want.size:
            part.unlink()
            have = 0
        if have == want.size:
            return
        headers = {"Range": f"bytes={have}-"} if have else {}
        async with self.open(url, headers) as response:
            if response.status_code == 206 and _range_start(response) == have:
                mode = "ab"
            elif response.status_code == 200:
                mode, have = "wb", 0  # no ranges here: from the start
            elif response.status_code == 206:  # not where we asked: start over on the next try
                part.unlink(missing_ok=True)
                raise httpx.RemoteProtocolError("a range reply that does not start where it was asked to")
            else:
                response.raise_for_status()
                raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
            with part.open(mode) as out:
                async for chunk in response.aiter_bytes():  # as it arrives: a cut keeps all it got
                    have += len(chunk)
                    if have > want.size:
                        raise DownloadError(f"refused {name}: the server sent more than the index's {want.size} bytes")
                    out.write(chunk)
                    if self.progress:
                        self.progress(name, have, want.size)

    @asynccontextmanager
    async def open(self, url: str, headers: dict[str, str]) -> AsyncIterator[httpx.Response]:
        """A streamed GET that follows redirects by hand, each hop checked by the guard."""
        current = httpx.URL(url)
        for hops in range(MAX_REDIRECTS + 1):
            target = await self.guard.check(current)
            request = self.http.build_request(
                "GET", target.url, headers={**headers, **target.headers}, extensions=target.extensions
            )
            response = await self.http.send(request, stream=True)
            if not response.is_redirect:
                try:
                    yield response
                finally:
                    await response.aclose()
                return
            await response.aclose()
            current = self.guard.next_hop(current, response, hops)
        raise RefusedURL("too many redirects")


def _range_start(response: httpx.Response) -> int | None:
    """The first byte a 206 reply holds (`Content-Range: bytes 100-199/200`)."""
    value = response.headers.get("content-range", "")
    unit, _, rest = value.partition(" ")
    start = rest.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None

"""HTTP for visual providers: JSON calls and media downloads, with the providers' retry policy.

Faults (429 after its Retry-After, 5xx, timeouts, dropped connections, a reply that is not JSON)
are retried with exponential backoff and jitter, `STORYBOT_PROVIDER_RETRIES` times, as the LLM
and idea sources do; then VisualError, and the shot falls back to a card.

Credentials go to the provider's API calls only. Downloads carry none, and a media URL a reply
names is fetched only when `tools.net.guard` allows it (https to a public address, checked on every
redirect; the provider's configured origin excepted): a hostile reply cannot send the key, or us,
anywhere else.

Downloads stream into a cache under the data folder keyed by provider and id, refuse more than
`MAX_BYTES`, and check the bytes themselves (an HTML error page served as a JPEG is refused): a
hidden temporary name is renamed into place only once the file is whole and readable, so a crash
mid-download leaves nothing in use, and rerunning the stage resumes from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from PIL import Image

from tools.errors import StorybotError
from tools.files import write_text_atomic
from tools.media.probe import probe, require_video_frame
from tools.net.bounded import TooLarge, read_bounded
from tools.net.guard import Guard, RefusedURL, parse
from tools.net.redact import redact
from tools.net.retry import network_failure, retrying, transient_http
from tools.storage import Storage, content_key
from tools.visuals.base import VisualError

MAX_BYTES = 200 * 1024 * 1024
TIMEOUT = httpx.Timeout(20.0, connect=5.0)  # per read/connect
DOWNLOAD_DEADLINE = 300.0  # a whole download, retries included, against servers that trickle bytes
CALL_DEADLINE = 60.0  # a whole API call, retries included
BACKOFF = 0.5  # seconds before the first retry without Retry-After, doubled each time, plus jitter
MAX_RETRY_AFTER = 30.0  # a provider that asks for a longer wait has failed this call
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
Kind = Literal["image", "video"]
T = TypeVar("T")


class Http:
    """One provider's client: its API headers (credentials), secrets to keep out of messages, the
    download rules, and retries."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        provider: str,
        retries: int,
        secrets: list[str] | None = None,
        headers: dict[str, str] | None = None,
        guard: Guard | None = None,
        shared: Storage | None = None,
    ) -> None:
        self.client, self.provider, self.retries = client, provider, retries
        self.secrets = secrets or []
        self.headers = headers or {}  # sent with `json` calls to the API, never with downloads
        self.guard = guard or Guard()
        self.shared = shared  # remote object storage: the cache every runner shares (cache/visuals/)

    def _fail(self, what: str) -> VisualError:
        return VisualError(redact(f"{self.provider}: {what}", extra=self.secrets))

    async def _with_retries(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """`attempt_once()` under the providers' retry policy; a fault left after it is a VisualError."""
        try:
            return await retrying(
                attempt_once,
                retries=self.retries,
                retryable=lambda exc: transient_http(exc) or isinstance(exc, (TimeoutError, _Malformed)),
                backoff=BACKOFF,
                max_wait=MAX_RETRY_AFTER,
            )
        except httpx.HTTPStatusError as exc:
            raise self._fail(f"HTTP {exc.response.status_code}") from None
        except (httpx.TransportError, TimeoutError) as exc:
            raise self._fail(network_failure(exc)) from None
        except _Malformed as exc:
            raise self._fail(str(exc)) from None
        except TooLarge as exc:  # not retried: the same question gets the same answer
            raise self._fail(str(exc)) from None

    async def json(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """A JSON API call; VisualError (secrets redacted) after the retries."""

        async def once() -> Any:
            request = self.client.build_request(
                method, url, params=params, json=body, headers={**self.headers, **(headers or {})}
            )
            async with asyncio.timeout(CALL_DEADLINE):
                response = await self.client.send(request, stream=True)
                try:
                    response.raise_for_status()
                    content = await read_bounded(response)
                finally:
                    await response.aclose()
            try:
                return json.loads(content)
            except ValueError:
                raise _Malformed(
                    f"the reply was not JSON ({response.headers.get('content-type', 'no type')})"
                ) from None
            except RecursionError:  # a reply nested 100,000 deep: refused, not a traceback
                raise _Malformed("the reply was JSON nested too deep to read") from None

        return await self._with_retries(once)

    async def download(self, url: str, cache: Path, media_id: str, kind: Kind) -> Path:
        """The media at `url` in the cache as `<cache>/<provider>/<id>.<ext>`, downloaded once per URL:
        a cached file is reused only when it came from this very URL (recorded under `.sources/`), so
        another server's media 7 is never mistaken for this one's."""
        folder = cache / _SAFE.sub("_", self.provider)
        stem = _SAFE.sub("_", media_id)[:100]
        source = cache / ".sources" / folder.name / stem
        origin = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
        known = source.read_text(encoding="ascii").strip() if source.is_file() else None
        for existing in folder.glob(f"{stem}.*") if folder.is_dir() and known == origin else []:
            if not existing.name.startswith("."):
                return existing
        folder.mkdir(parents=True, exist_ok=True)
        if self.shared is not None and (found := await self._from_shared(origin, folder / stem)) is not None:
            source.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(source, origin)
            return found
        tmp = folder / f".{stem}.{uuid.uuid4().hex[:8]}.part"
        try:
            async with asyncio.timeout(DOWNLOAD_DEADLINE):  # retries included: a trickle is not tried twice
                suffix = await self._with_retries(lambda: self._stream(url, tmp, kind))
            await asyncio.to_thread(check_media, tmp, kind)
            final = folder / f"{stem}{suffix}"
            for stale in folder.glob(f"{stem}.*"):  # the same id from elsewhere, in another format
                if stale != final and not stale.name.startswith("."):
                    stale.unlink(missing_ok=True)
            os.replace(tmp, final)  # a job folder's hard link to an older file keeps that file
            source.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(source, origin)
            if self.shared is not None:
                await self.shared.put_file(content_key("visuals", origin, f"/media{final.suffix}"), final)
            return final
        except RefusedURL as exc:
            raise RefusedMedia(self._fail(f"{media_id}: {exc}").args[0]) from None
        except TimeoutError:
            raise self._fail(f"{media_id}: not whole within {DOWNLOAD_DEADLINE:g} s") from None
        except (StorybotError, ValueError) as exc:
            raise self._fail(f"{media_id}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)

    async def _from_shared(self, origin: str, stem: Path) -> Path | None:
        """The media another runner downloaded from the same URL, from the shared cache (keyed by the
        URL's digest, `cache/visuals/<digest>/media.<ext>`, so no provider is asked twice for one file
        across machines)."""
        assert self.shared is not None
        for key in await self.shared.list(content_key("visuals", origin)):
            final = stem.with_name(stem.name + Path(key).suffix)
            await self.shared.get_file(key, final)
            return final
        return None

    async def _stream(self, url: str, tmp: Path, kind: Kind) -> str:
        async with asyncio.timeout(DOWNLOAD_DEADLINE):
            current = parse(url)
            for hops in itertools.count():
                target = await self.guard.check(current)
                async with self.client.stream(
                    "GET", target.url, headers=target.headers, extensions=target.extensions, follow_redirects=False
                ) as response:
                    if not response.is_redirect:
                        return await _save(response, tmp, kind)
                current = self.guard.next_hop(current, response, hops)
        raise AssertionError("unreachable")


async def _save(response: httpx.Response, tmp: Path, kind: Kind) -> str:
    """Stream a download's body to `tmp`, refusing one over MAX_BYTES or one that is not media."""
    response.raise_for_status()
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise ValueError(f"{int(declared) // 2**20} MB is over the {MAX_BYTES // 2**20} MB limit")
    size, suffix = 0, None
    with tmp.open("wb") as f:
        async for chunk in response.aiter_bytes():
            if suffix is None:
                suffix = sniff(chunk, kind)
            size += len(chunk)
            if size > MAX_BYTES:
                raise ValueError(f"more than {MAX_BYTES // 2**20} MB")
            f.write(chunk)
    if suffix is None:
        raise ValueError("an empty file")
    return suffix


class RefusedMedia(VisualError):
    """A media URL the download rules refuse: nothing was fetched, so it costs a shot none of its tries."""


class _Malformed(Exception):
    """A reply that is not what the protocol promises (retried like a fault)."""


def sniff(head: bytes, kind: Kind) -> str:
    """The file suffix the first bytes show; ValueError when they are not an image (or video) at all."""
    images = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg", b"GIF87a": ".gif", b"GIF89a": ".gif"}
    for magic, suffix in images.items():
        if head.startswith(magic):
            return suffix
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return ".avif"
        if kind == "video":
            return ".mov" if brand == b"qt  " else ".mp4"
    if kind == "video" and head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm"
    start = head.lstrip()[:15].lower()
    what = "an HTML page" if start.startswith((b"<!doctype", b"<html", b"<")) else "not a known media format"
    raise ValueError(f"{what}, not {'a video' if kind == 'video' else 'an image'}")


def check_media(path: Path, kind: Kind) -> None:
    """Refuse a file whose body does not decode: a truncated image, a video without a video stream."""
    if kind == "image" and path.suffix != ".avif":
        try:
            with Image.open(path) as img:
                img.verify()
        except Exception as exc:
            raise ValueError(f"a corrupt image ({type(exc).__name__})") from None
        return
    info = probe(path)
    if info.video is None:
        raise ValueError("no video stream in it")
    if kind == "video" and info.video.duration <= 0:
        raise ValueError("a video with no length")
    require_video_frame(path)  # a header can promise frames a cut-short file lacks

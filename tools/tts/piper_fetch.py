"""Downloading Piper voices on first use: progress, resume, checksum, and nothing half-written.

A voice is three files of the repository's layout (`de/de_DE/thorsten/medium/...`): its MODEL_CARD
(first: it names the licence), the `.onnx` model and its `.onnx.json` (last, so a voice counts as
installed only when whole). Each file streams into a hidden `.NAME.part` beside its final name; a
broken transfer is retried with `Range: bytes=N-` from where it stopped (a server that answers 200
instead of 206 starts it over), and the finished file must have the size and the MD5 the index
gives, or it is deleted and refused. Requests go only to STORYBOT_PIPER_VOICES_URL (a local mirror
or test server is trusted as configured) and, on redirects, to public https hosts (tools.net.guard);
paths come from the index, never from the user. Each file has one deadline with its retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tools.errors import BadInput, StorybotError
from tools.net.guard import Guard, RefusedURL
from tools.net.retry import retrying, transient_http
from tools.settings import Settings
from tools.tts.piper_index import FileEntry, IndexVoice, Licence, for_language, index, read_licence

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[str, int, int], None]  # (file name, bytes so far, bytes in all)

TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # a stalled transfer is cut off and resumed
FILE_DEADLINE = 1800.0  # seconds for one file with its retries (a 120 MB voice on a slow line)
CARD_DEADLINE = 20.0  # the licence check before an automatic choice: small, or not at all
# (and tried only twice: with no network the job should fall back to espeak-ng in a second, not ten)
RETRIES = 4
CHUNK = 1 << 20
OVERRIDE_INDEX = "voices.json"  # a newer index of the repository, put in the voices folder, wins


class VoiceDownloadError(StorybotError):
    """A voice could not be downloaded (the message says which file and why, in one line)."""


def voices_home(settings: Settings) -> Path:
    """Where downloaded voices go: STORYBOT_PIPER_VOICES_DIR, else a cache folder of the user's."""
    return settings.piper_voices_dir or Path.home() / ".cache" / "storybot" / "piper-voices"


def catalogue_index(settings: Settings) -> dict[str, IndexVoice]:
    """The shipped snapshot, or a newer `voices.json` of the repository in the voices folder."""
    newer = voices_home(settings) / OVERRIDE_INDEX
    return index(newer) if newer.is_file() else index()


def card_path(settings: Settings, key: str) -> Path:
    return voices_home(settings) / f"{key}.MODEL_CARD"


def known_licence(settings: Settings, key: str) -> Licence | None:
    """The licence of a voice whose card is here (downloaded before), else None."""
    card = card_path(settings, key)
    return read_licence(card.read_text(encoding="utf-8", errors="replace")) if card.is_file() else None


def _base(settings: Settings) -> str:
    base = settings.piper_voices_url.strip().rstrip("/")
    if not base:
        raise BadInput("Piper voice downloads are off (STORYBOT_PIPER_VOICES_URL is empty)")
    return base


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


class _Fetcher:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, progress: Progress | None) -> None:
        self.base = _base(settings)
        self.guard = Guard.for_bases(self.base)
        self.client = client
        self.progress = progress

    async def file(self, repo_path: str, entry: FileEntry, dest: Path, deadline: float, retries: int = RETRIES) -> None:
        """`repo_path` from the repository into `dest`, resumed across failures, size and MD5 checked."""
        if dest.is_file() and dest.stat().st_size == entry.size_bytes:
            return
        part = dest.with_name(f".{dest.name}.part")
        try:
            async with asyncio.timeout(deadline):
                await retrying(
                    lambda: self._transfer(f"{self.base}/{repo_path}", part, entry, dest.name),
                    retries=retries,
                    retryable=transient_http,
                    backoff=0.5,
                )
        except TimeoutError:
            raise VoiceDownloadError(
                f"downloading {dest.name} took over {deadline:g} s; run it again to resume"
            ) from None
        except RefusedURL as exc:
            raise VoiceDownloadError(f"downloading {dest.name}: refused {exc}") from None
        except httpx.HTTPStatusError as exc:
            raise VoiceDownloadError(
                f"downloading {dest.name}: the server answered HTTP {exc.response.status_code}"
            ) from None
        except httpx.HTTPError as exc:
            raise VoiceDownloadError(
                f"downloading {dest.name}: {type(exc).__name__} ({exc}); run it again to resume"
            ) from None
        got = part.stat().st_size
        if got != entry.size_bytes or _md5(part) != entry.md5_digest:
            part.unlink(missing_ok=True)
            raise VoiceDownloadError(
                f"refused {dest.name}: its checksum does not match the voice index "
                f"({got} bytes, expected {entry.size_bytes} with MD5 {entry.md5_digest}); nothing was kept"
            )
        os.replace(part, dest)

    async def _transfer(self, url: str, part: Path, entry: FileEntry, name: str) -> None:
        have = part.stat().st_size if part.is_file() else 0
        if have > entry.size_bytes:
            part.unlink()
            have = 0
        if have == entry.size_bytes:
            return
        headers = {"Range": f"bytes={have}-"} if have else {}
        async with self._open(url, headers) as response:
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
                    if have > entry.size_bytes:
                        raise VoiceDownloadError(
                            f"refused {name}: the server sent more than the index's {entry.size_bytes} bytes"
                        )
                    out.write(chunk)
                    if self.progress:
                        self.progress(name, have, entry.size_bytes)

    def _open(self, url: str, headers: dict[str, str]) -> _Redirecting:
        return _Redirecting(self, url, headers)


class _Redirecting:
    """A streamed GET that follows redirects by hand, each hop checked by the guard."""

    def __init__(self, fetcher: _Fetcher, url: str, headers: dict[str, str]) -> None:
        self.fetcher, self.url, self.headers = fetcher, url, headers
        self.response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        current = httpx.URL(self.url)
        for hops in range(6):
            target = await self.fetcher.guard.check(current)
            request = self.fetcher.client.build_request(
                "GET", target.url, headers={**self.headers, **target.headers}, extensions=target.extensions
            )
            response = await self.fetcher.client.send(request, stream=True)
            if response.is_redirect:
                await response.aclose()
                current = self.fetcher.guard.next_hop(current, response, hops)
                continue
            self.response = response
            return response
        raise RefusedURL("too many redirects")

    async def __aexit__(self, *exc: object) -> None:
        if self.response is not None:
            await self.response.aclose()


def _range_start(response: httpx.Response) -> int | None:
    """The first byte a 206 reply holds (`Content-Range: bytes 100-199/200`)."""
    value = response.headers.get("content-range", "")
    unit, _, rest = value.partition(" ")
    start = rest.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)


async def fetch_card(settings: Settings, key: str) -> Licence:
    """The voice's MODEL_CARD, downloaded (and kept) to read its licence."""
    voice = catalogue_index(settings)[key]
    path, entry = voice.file("MODEL_CARD")
    dest = card_path(settings, key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    async with _client() as client:
        await _Fetcher(settings, client, None).file(path, entry, dest, CARD_DEADLINE, retries=1)
    return read_licence(dest.read_text(encoding="utf-8", errors="replace"))


async def fetch_voice(settings: Settings, key: str, progress: Progress | None = None) -> tuple[Path, Path]:
    """(model, config) of an index voice, downloaded into the voices folder unless already there."""
    voices = catalogue_index(settings)
    if key not in voices:
        raise BadInput(f"unknown Piper voice {key!r} (see `storybot voices`)")
    voice = voices[key]
    folder = voices_home(settings)
    folder.mkdir(parents=True, exist_ok=True)
    model, config = folder / f"{key}.onnx", folder / f"{key}.onnx.json"
    async with _client() as client:
        fetcher = _Fetcher(settings, client, progress)
        for suffix, dest in (("MODEL_CARD", card_path(settings, key)), (".onnx", model), (".onnx.json", config)):
            path, entry = voice.file(suffix)
            await fetcher.file(path, entry, dest, FILE_DEADLINE)
    return model, config


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """A coroutine from synchronous code, also from a thread whose event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1, thread_name_prefix="piper-fetch") as pool:
        return pool.submit(asyncio.run, coro).result()


def pick_for_language(settings: Settings, language: str) -> tuple[str | None, str]:
    """(voice to download, why not) for a language with no installed Piper voice: the likeliest
    voice of the index whose card allows commercial use. Cards are small; a network failure ends
    the search (the caller narrates with espeak-ng and says why)."""
    candidates = for_language(language, catalogue_index(settings))
    if not candidates:
        return None, f"the voice index has no Piper voice for {language}"
    try:
        _base(settings)
    except BadInput as exc:
        return None, str(exc)
    skipped: list[str] = []
    for key in candidates[:6]:
        try:
            licence = known_licence(settings, key) or run_now(fetch_card(settings, key))
        except (VoiceDownloadError, BadInput) as exc:
            return None, str(exc)
        if licence.commercial:
            return key, ""
        skipped.append(f"{key}: {licence.label()}")
    return None, "no Piper voice for it allows commercial use (" + "; ".join(skipped) + "); name one to use it anyway"

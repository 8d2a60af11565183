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
import logging
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tools.errors import BadInput, StorybotError
from tools.net.download import DownloadError, Fetcher, Progress, Want, client
from tools.settings import Settings
from tools.tts.piper_index import FileEntry, IndexVoice, Licence, for_language, index, read_licence

log = logging.getLogger(__name__)
T = TypeVar("T")
FILE_DEADLINE = 1800.0  # seconds for one file with its retries (a 120 MB voice on a slow line)
CARD_DEADLINE = 20.0  # the licence check before an automatic choice: small, or not at all
# (and tried only twice: with no network the job should fall back to espeak-ng in a second, not ten)
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


def _want(entry: FileEntry) -> Want:
    return Want(size=entry.size_bytes, digest=entry.md5_digest, algorithm="md5")


async def fetch_card(settings: Settings, key: str) -> Licence:
    """The voice's MODEL_CARD, downloaded (and kept) to read its licence."""
    voice = catalogue_index(settings)[key]
    path, entry = voice.file("MODEL_CARD")
    dest = card_path(settings, key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    async with client() as http:
        await _fetch(Fetcher(_base(settings), http), path, entry, dest, CARD_DEADLINE, retries=1)
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
    async with client() as http:
        fetcher = Fetcher(_base(settings), http, progress)
        for suffix, dest in (("MODEL_CARD", card_path(settings, key)), (".onnx", model), (".onnx.json", config)):
            path, entry = voice.file(suffix)
            await _fetch(fetcher, path, entry, dest, FILE_DEADLINE)
    return model, config


async def _fetch(fetcher: Fetcher, path: str, entry: FileEntry, dest: Path, deadline: float, retries: int = 4) -> None:
    try:
        await fetcher.file(path, _want(entry), dest, deadline, retries)
    except DownloadError as exc:
        raise VoiceDownloadError(str(exc).replace("match the index", "match the voice index")) from None


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

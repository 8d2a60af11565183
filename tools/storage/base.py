"""The object-storage seam: a protocol, the key rules, and one row per backend.

Keys are `/`-separated names relative to the store's root (the data folder, or the bucket's prefix).
They are built by us (`job_key`, `content_key`) from a job id of 12 hex digits and file names the
stages chose; `check_key` refuses anything else, so no user or model text reaches a key unchecked.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tools.errors import BadInput
from tools.settings import Settings

JOB_ID = re.compile(r"[0-9a-f]{12}")  # graph.store.JOB_ID_PATTERN
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|\.[A-Za-z0-9_][A-Za-z0-9._-]{0,126}")
MAX_KEY = 512
MAX_EXPIRY = 7 * 24 * 3600  # SigV4's longest presigned URL (the default STORYBOT_LINK_TTL)


class StorageError(BadInput):
    """A storage URL or key that is not ours, or a store that refused."""


def check_key(key: str) -> str:
    """`key` when every segment is a plain file name (letters, digits, `._-`; no `..`, no empty part)."""
    parts = key.split("/")
    if not key or len(key) > MAX_KEY or not all(_SEGMENT.fullmatch(p) and ".." not in p for p in parts):
        raise StorageError(f"not a storage key of ours: {key[:80]!r}")
    return key


def job_key(job_id: str, name: str = "") -> str:
    """`jobs/<job_id>/<name>`: an artifact under its job, with the job folder's own relative name."""
    if not JOB_ID.fullmatch(job_id):
        raise StorageError(f"not a job id: {job_id[:40]!r}")
    return check_key(f"jobs/{job_id}/{name}".rstrip("/"))


def content_key(kind: str, digest: str, suffix: str = "") -> str:
    """`cache/<kind>/<digest><suffix>`: a cached item stored under what it holds (hex digest)."""
    if not re.fullmatch(r"[0-9a-f]{16,128}", digest):
        raise StorageError(f"not a content digest: {digest[:40]!r}")
    return check_key(f"cache/{kind}/{digest}{suffix}")


class Storage(Protocol):
    """Where artifacts live. `remote` is False for the data folder, whose keys are its own paths."""

    name: str
    remote: bool

    async def put_file(self, key: str, path: Path) -> None:
        """Store the file at `path` under `key` (replacing what was there)."""

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key` (a small object: a manifest)."""

    async def get_file(self, key: str, path: Path) -> None:
        """Write the object at `key` to `path`, whole or not at all; StorageNotFound when there is none."""

    def open(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes, in chunks; StorageNotFound when there is none."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def list(self, prefix: str) -> list[str]:
        """Every key under `prefix` (a folder: `jobs/<id>`), sorted."""
        ...

    def presign(self, key: str, expires_in: int) -> str | None:
        """A URL that GETs the object for `expires_in` seconds (at most 7 days), or None when the
        backend has no such thing (the data folder: links are the HMAC-signed ones of tools/links)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove one object we wrote; no error when it is gone."""


class StorageNotFound(StorageError):
    """No object under that key."""


@dataclass(frozen=True)
class StorageRow:
    """One backend: the URL schemes it serves and how to open it from the settings."""

    name: str
    schemes: tuple[str, ...]
    open: Callable[[Settings], Storage]

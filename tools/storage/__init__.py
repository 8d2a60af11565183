"""Where a job's files live: the data folder (default) or object storage (`STORYBOT_STORAGE_URL`).

`get_storage(settings)` picks the backend by the URL's scheme from `BACKENDS` (one file per backend:
`local.py`, `s3.py`), like `tools.llm.get_writer`. A backend is opened once per configuration and
process (an S3 client keeps its connection pool).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tools.settings import Settings
from tools.storage import local, s3
from tools.storage.base import (
    Storage,
    StorageError,
    StorageNotFound,
    StorageRow,
    check_key,
    content_key,
    job_key,
)

BACKENDS: dict[str, StorageRow] = {row.name: row for row in (local.ROW, s3.ROW)}
_opened: dict[tuple[object, ...], Storage] = {}


def get_storage(settings: Settings) -> Storage:
    """The backend `STORYBOT_STORAGE_URL` names (unset: the data folder)."""
    scheme = urlsplit(settings.storage_url or "").scheme
    row = next((r for r in BACKENDS.values() if scheme in r.schemes), None)
    if row is None:
        raise StorageError(f"STORYBOT_STORAGE_URL: no storage backend for {scheme}:// (known: s3://, or unset)")
    if row is local.ROW:
        return row.open(settings)
    secret = settings.aws_secret_access_key
    key = (
        settings.storage_url,
        settings.aws_endpoint_url,
        settings.aws_access_key_id and settings.aws_access_key_id.get_secret_value(),
        secret and secret.get_secret_value(),
        settings.aws_region,
    )
    if key not in _opened:
        _opened[key] = row.open(settings)
    return _opened[key]


def is_remote(settings: Settings) -> bool:
    """Whether files also live outside the data folder (no backend is opened to say so)."""
    return bool(settings.storage_url)


__all__ = [
    "BACKENDS",
    "Storage",
    "StorageError",
    "StorageNotFound",
    "StorageRow",
    "check_key",
    "content_key",
    "get_storage",
    "is_remote",
    "job_key",
]

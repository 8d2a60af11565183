"""S3 and S3-compatible stores (`s3://bucket/prefix`) through obstore (MIT: the Rust object_store
crate's async client; signing, retries and multipart uploads are its own).

Configuration is AWS's usual: `AWS_ENDPOINT_URL` (unset: AWS itself), `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION`. An `http://` endpoint (a local test server) is allowed because
the URL says so. obstore is imported here only, so the default install needs none of it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tools.files import atomic_path
from tools.settings import Settings
from tools.storage.base import MAX_EXPIRY, StorageError, StorageNotFound, StorageRow, check_key

if TYPE_CHECKING:
    from obstore.store import S3Store

MULTIPART_OVER = 16 << 20  # bytes; smaller files go up in one PUT


class S3Storage:
    name = "s3"
    remote = True

    def __init__(self, store: S3Store, url: str) -> None:
        self.store, self.url = store, url

    async def put_file(self, key: str, path: Path) -> None:
        import obstore

        size = path.stat().st_size
        await obstore.put_async(self.store, check_key(key), path, use_multipart=size > MULTIPART_OVER)

    async def put_bytes(self, key: str, data: bytes) -> None:
        import obstore

        await obstore.put_async(self.store, check_key(key), data, use_multipart=False)

    async def get_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("wb") as out:
            async for chunk in self.open(key):
                await asyncio.to_thread(out.write, chunk)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = await obstore.get_async(self.store, check_key(key))
        except (NotFoundError, FileNotFoundError):
            raise StorageNotFound(f"no {key} in {self.url}") from None
        async for chunk in result.stream(min_chunk_size=1 << 20):
            yield bytes(chunk)

    async def exists(self, key: str) -> bool:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            await obstore.head_async(self.store, check_key(key))
        except (NotFoundError, FileNotFoundError):
            return False
        return True

    async def list(self, prefix: str) -> list[str]:
        import obstore

        keys: list[str] = []
        async for batch in obstore.list(self.store, check_key(prefix).rstrip("/") + "/"):
            keys.extend(item["path"] for item in batch)
        return sorted(keys)

    def presign(self, key: str, expires_in: int) -> str | None:
        import obstore

        seconds = max(1, min(int(expires_in), MAX_EXPIRY))
        return obstore.sign(self.store, "GET", check_key(key), timedelta(seconds=seconds))

    async def delete(self, key: str) -> None:
        import obstore

        await obstore.delete_async(self.store, check_key(key))


def open_s3(settings: Settings) -> S3Storage:
    try:
        from obstore.store import S3Store
    except ImportError:
        raise StorageError(
            "STORYBOT_STORAGE_URL names S3, which needs the storage extra: pip install 'storybot[storage]'"
        ) from None
    url = settings.storage_url or ""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise StorageError(f"STORYBOT_STORAGE_URL must be s3://bucket/prefix, not {url!r}")
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
    config: dict[str, Any] = {}
    endpoint = settings.aws_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
    if endpoint:
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise StorageError(f"AWS_ENDPOINT_URL must be an http:// or https:// URL, not {endpoint!r}")
        config["endpoint"] = endpoint.rstrip("/")
    if settings.aws_access_key_id is not None:
        config["access_key_id"] = settings.aws_access_key_id.get_secret_value()
    if settings.aws_secret_access_key is not None:
        config["secret_access_key"] = settings.aws_secret_access_key.get_secret_value()
    config["region"] = settings.aws_region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = {"allow_http": True} if endpoint and endpoint.startswith("http://") else None
    store = S3Store(parts.netloc, prefix=prefix or None, config=config, client_options=client)  # type: ignore[arg-type]
    return S3Storage(store, url)


ROW = StorageRow(name="s3", schemes=("s3",), open=open_s3)

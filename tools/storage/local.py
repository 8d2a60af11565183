"""The default: keys are paths under the data folder, so `jobs/<id>/final.mp4` is the job folder's
own file and nothing is copied. No presigned URLs (links stay the HMAC-signed ones)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from tools.files import atomic_path
from tools.settings import Settings
from tools.storage.base import StorageNotFound, StorageRow, check_key

CHUNK = 1 << 20


class LocalStorage:
    name = "local"
    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        if target.exists() and target.samefile(path):
            return
        await asyncio.to_thread(_copy, path, target)

    async def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)

    async def get_file(self, key: str, path: Path) -> None:
        source = self.path(key)
        if not source.is_file():
            raise StorageNotFound(f"no {key} in {self.root}")
        if path.exists() and path.samefile(source):
            return
        await asyncio.to_thread(_copy, source, path)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        source = self.path(key)
        if not source.is_file():
            raise StorageNotFound(f"no {key} in {self.root}")
        with source.open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                yield chunk

    async def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    async def list(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())

    def presign(self, key: str, expires_in: int) -> str | None:
        return None

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def open_local(settings: Settings) -> LocalStorage:
    return LocalStorage(settings.data_dir)


ROW = StorageRow(name="local", schemes=("",), open=open_local)

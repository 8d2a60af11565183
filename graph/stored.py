"""A job's folder mirrored in object storage (`STORYBOT_STORAGE_URL`), around each stage.

With the default (the data folder) nothing here runs: `synced` just awaits the stage. With remote
storage the job folder is a scratch copy of `PREFIX/jobs/<job_id>/` (same relative names):

- before a stage, the bucket's manifest (`jobs/<id>/.stored.json`: relative name -> content digest)
  is read and every file whose local copy is missing or differs is downloaded, so a stage may run on a
  machine that ran none of the earlier ones (the stages' own reuse manifests, `.voice.json` and the
  like, travel with them, so `reusable`/`recall` see the same fingerprints there);
- after the stage succeeds, every file whose digest differs from the bucket's is uploaded, files the
  stage removed are deleted from the bucket (only keys listed in our manifest), and the manifest is
  written last. Uploads are keyed by content digest: a re-run whose stage reused its outputs (same
  fingerprint, same bytes) uploads nothing.

Local digests are cached by size and mtime in the folder's own `.stored.json`, so a file is hashed
once per change. Temporaries (`.name.PID-hex.tmp.ext`) and `.render-*` work folders stay local.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tools.files import write_json_atomic
from tools.media.outputs import Artifacts
from tools.settings import Settings
from tools.storage import Storage, StorageError, StorageNotFound, get_storage, is_remote, job_key

if TYPE_CHECKING:
    from graph.context import NodeContext
    from graph.state import JobState

T = TypeVar("T")
MANIFEST = ".stored.json"
PARALLEL = 8  # transfers at once per job
_TEMPORARY = re.compile(r"^\..+\.(?:\d+-)?[0-9a-f]{8}\.tmp(?:\.[^.]+)?$")  # tools.files.atomic_path


async def synced(fn: Callable[[JobState, NodeContext], Awaitable[T]], state: JobState, ctx: NodeContext) -> T:
    """Run one stage with its job folder mirrored: fetched before, uploaded after success."""
    if not is_remote(ctx.settings):
        return await fn(state, ctx)
    storage = get_storage(ctx.settings)
    await fetch_job(storage, ctx.job_id, ctx.job_dir)
    result = await fn(state, ctx)
    await upload_job(storage, ctx.job_id, ctx.job_dir)
    return result


# the folder and the bucket ---------------------------------------------------


def _digest(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _stored_files(folder: Path) -> list[str]:
    """The folder's files that belong in storage, as relative posix names."""
    names = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if rel.as_posix() == MANIFEST or any(p.startswith(".render-") for p in rel.parts[:-1]):
            continue
        if _TEMPORARY.match(path.name) or path.is_symlink() or not path.is_file():
            continue
        names.append(rel.as_posix())
    return sorted(names)


def _local_digests(folder: Path) -> dict[str, str]:
    """{relative name: sha256} of the folder's files, hashing only what changed since the last look."""
    cache_path = folder / MANIFEST
    try:
        cache: dict[str, Any] = json.loads(cache_path.read_text(encoding="utf-8")).get("local", {})
    except (OSError, ValueError, AttributeError):
        cache = {}
    seen: dict[str, Any] = {}
    for name in _stored_files(folder):
        info = (folder / name).stat()
        old = cache.get(name)
        if isinstance(old, dict) and old.get("size") == info.st_size and old.get("mtime_ns") == info.st_mtime_ns:
            seen[name] = old
        else:
            seen[name] = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "digest": _digest(folder / name)}
    if seen != cache:
        write_json_atomic(cache_path, {"local": seen})
    return {name: entry["digest"] for name, entry in seen.items()}


async def _remote_manifest(storage: Storage, job_id: str) -> dict[str, str]:
    chunks = []
    try:
        async for chunk in storage.open(job_key(job_id, MANIFEST)):
            chunks.append(chunk)
    except StorageNotFound:
        return {}
    try:
        files = json.loads(b"".join(chunks)).get("files", {})
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


async def _bounded(jobs: list[Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(PARALLEL)

    async def one(job: Awaitable[None]) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


async def fetch_job(storage: Storage, job_id: str, folder: Path) -> list[str]:
    """Download what the bucket holds for the job and the folder lacks (or holds otherwise). Returns
    the names fetched."""
    remote = await _remote_manifest(storage, job_id)
    if not remote:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    local = await asyncio.to_thread(_local_digests, folder) if folder.is_dir() else {}
    wanted = [name for name, digest in remote.items() if local.get(name) != digest]
    await _bounded([storage.get_file(job_key(job_id, name), folder / name) for name in wanted])
    if wanted:
        await asyncio.to_thread(_local_digests, folder)  # the fresh copies' sizes and times
    return wanted


async def upload_job(storage: Storage, job_id: str, folder: Path) -> list[str]:
    """Upload the folder's files whose digest the bucket does not have; delete from the bucket what
    the folder no longer has (keys of our manifest only); then write the manifest. Returns the names
    uploaded."""
    if not folder.is_dir():
        return []
    remote = await _remote_manifest(storage, job_id)
    local = await asyncio.to_thread(_local_digests, folder)
    changed = [name for name, digest in local.items() if remote.get(name) != digest]
    gone = [name for name in remote if name not in local]
    await _bounded([storage.put_file(job_key(job_id, name), folder / name) for name in changed])
    await _bounded([storage.delete(job_key(job_id, name)) for name in gone])
    if changed or gone or not remote:
        await storage.put_bytes(job_key(job_id, MANIFEST), json.dumps({"files": local}, sort_keys=True).encode())
    return changed


# front ends: delivery, links and --json -------------------------------------


async def local_copy(settings: Settings, job_id: str, name: str) -> Path | None:
    """A job's file in this machine's data folder, fetched from storage when it is remote and the file
    is not here (another machine ran the job); None when neither has it."""
    path = settings.data_dir / job_key(job_id, name)
    if path.is_file() or not is_remote(settings):
        return path if path.is_file() else None
    try:
        await get_storage(settings).get_file(job_key(job_id, name), path)
    except StorageNotFound:
        return None
    return path


def artifact_locations(settings: Settings, job_id: str, result: Any) -> dict[str, Any]:
    """`artifacts` for `--json`: the local paths by default; with remote storage each file's object
    URL (`s3://bucket/prefix/jobs/<id>/final.mp4`), same keys, None where the job has none."""
    artifacts = getattr(result, "artifacts", None)
    if not isinstance(artifacts, Artifacts):
        return {}
    data = artifacts.model_dump()
    if not is_remote(settings):
        return data
    base = (settings.storage_url or "").rstrip("/")
    folder = settings.data_dir / "jobs" / job_id

    def where(path: str | None) -> str | None:
        if path is None:
            return None
        name = _relative(Path(path), folder, job_id)
        return f"{base}/{job_key(job_id, name)}" if name else path

    return {k: [where(p) for p in v] if isinstance(v, list) else where(v) for k, v in data.items()}


def _relative(path: Path, folder: Path, job_id: str) -> str | None:
    """The name of `path` inside the job folder (this machine's, or any folder ending in jobs/<id>)."""
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        parts = path.parts
        for i in range(len(parts) - 1):
            if parts[i] == "jobs" and parts[i + 1] == job_id:
                return "/".join(parts[i + 2 :]) or None
        return None


__all__ = ["MANIFEST", "StorageError", "artifact_locations", "fetch_job", "local_copy", "synced", "upload_job"]

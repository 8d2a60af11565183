"""GPU messages across machines: with object storage, files travel as object keys, not paths.

A Celery GPU worker on another box cannot read the runner's job folder. When `STORYBOT_STORAGE_URL`
is remote, the client uploads each input file of a request under `gpu/<request>/in/`, names the
keys in the message instead of the paths, and names output keys under `gpu/<request>/out/`; the
worker fetches the inputs into a scratch folder of its own, runs, uploads each output, and answers
with the keys; the client fetches the outputs to the paths it asked for, then deletes the request's
objects. Without remote storage nothing changes: messages carry paths (one box, or a shared folder).
"""

from __future__ import annotations

import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from gpu_workers.protocol import Family
from tools.storage import Storage

# per family: the params fields that name input files, and those that name outputs (and the result's)
INPUTS: dict[Family, tuple[str, ...]] = {
    "sdxl": (),
    "ltx": ("image",),
    "whisper": ("audio",),
    "vision": ("images",),
}
OUTPUTS: dict[Family, tuple[str, ...]] = {"sdxl": ("outputs",), "ltx": ("output",), "whisper": (), "vision": ()}


def _each(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _keys(prefix: str, field: str, value: Any) -> Any:
    """`gpu/<request>/<in|out>/<field>-<n><suffix>` for each path of a field (a path or a list)."""
    keys = [f"{prefix}/{field}-{n}{PurePosixPath(p).suffix}" for n, p in enumerate(_each(value))]
    return keys[0] if isinstance(value, str) else keys


class Shipment:
    """One request's files in object storage, seen from the client."""

    def __init__(self, storage: Storage, family: Family, params: dict[str, Any]) -> None:
        self.storage = storage
        self.family = family
        self.params = params
        self.prefix = f"gpu/{uuid.uuid4().hex}"
        self.written: list[str] = []

    async def send(self) -> dict[str, Any]:
        """Upload the inputs; the params the worker gets (keys instead of paths)."""
        shipped = dict(self.params)
        for field in INPUTS[self.family]:
            if self.params.get(field) is None:
                continue
            shipped[field] = _keys(f"{self.prefix}/in", field, self.params[field])
            for key, path in zip(_each(shipped[field]), _each(self.params[field]), strict=True):
                await self.storage.put_file(key, Path(path))
                self.written.append(key)
        for field in OUTPUTS[self.family]:
            shipped[field] = _keys(f"{self.prefix}/out", field, self.params[field])
            self.written += _each(shipped[field])
        return shipped

    async def receive(self, result: dict[str, Any]) -> dict[str, Any]:
        """Fetch the outputs to the paths asked for; the result with those paths again."""
        local = dict(result)
        for field in OUTPUTS[self.family]:
            asked = _keys(f"{self.prefix}/out", field, self.params[field])
            paths = dict(zip(_each(asked), _each(self.params[field]), strict=True))
            for key in _each(result[field]):
                await self.storage.get_file(key, Path(paths[key]))
            local[field] = paths[result[field]] if isinstance(result[field], str) else [paths[k] for k in result[field]]
        return local

    async def clean(self) -> None:
        for key in self.written:
            await self.storage.delete(key)


async def fetch_inputs(storage: Storage, family: Family, params: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """The worker's side: inputs fetched into `scratch`, outputs pointed there; keys kept aside."""
    local = dict(params)
    for field in (*INPUTS[family], *OUTPUTS[family]):
        if params.get(field) is None:
            continue
        paths = [scratch / PurePosixPath(key).name for key in _each(params[field])]
        if field in INPUTS[family]:
            for key, path in zip(_each(params[field]), paths, strict=True):
                await storage.get_file(key, path)
        local[field] = str(paths[0]) if isinstance(params[field], str) else [str(p) for p in paths]
    return local


async def put_outputs(
    storage: Storage, family: Family, params: dict[str, Any], scratch: Path, result: dict[str, Any]
) -> dict[str, Any]:
    """The worker's side: each output uploaded under the key the client named; the result with keys."""
    shipped = dict(result)
    for field in OUTPUTS[family]:
        keys = {str(scratch / PurePosixPath(k).name): k for k in _each(params[field])}
        for path in _each(result[field]):
            await storage.put_file(keys[path], Path(path))
        value = result[field]
        shipped[field] = keys[value] if isinstance(value, str) else [keys[p] for p in value]
    return shipped

"""The embedded writer's model: where it lives and `storybot models pull writer`.

The default is Phi-3.5-mini-instruct (MIT) as Microsoft publishes it for onnxruntime-genai on CPU
(`microsoft/Phi-3.5-mini-instruct-onnx`, folder `cpu_and_mobile/cpu-int4-awq-block-128-acc-level-4`:
int4 weights, 2.8 GB, a tokenizer with its chat template). The files and their checksums are not
pinned here: the hub's own tree listing (`GET /api/models/REPO/tree/REVISION/FOLDER`) names every
file with its size and its SHA-256 (files kept in LFS) or git blob SHA-1 (small ones), and each
download is resumed and checked against it (tools.net.download). STORYBOT_HUB_URL points elsewhere
(a mirror, a test server speaking the same two routes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from tools.errors import BadInput
from tools.net.download import DownloadError, Fetcher, Progress, Want, client
from tools.settings import Settings


class HubModel(BaseModel):
    repo: str
    revision: str
    folder: str
    name: str  # the folder it gets here, and the model name the writer reports
    licence: str


DEFAULT = HubModel(
    repo="microsoft/Phi-3.5-mini-instruct-onnx",
    revision="main",
    folder="cpu_and_mobile/cpu-int4-awq-block-128-acc-level-4",
    name="phi-3.5-mini-instruct-int4",
    licence="MIT",
)
FILE_DEADLINE = 6 * 3600.0  # 2.8 GB on a slow line, resumed as often as it takes
MAX_LISTING = 1024 * 1024
_NAME = re.compile(r"[\w.-]+")


class _Lfs(BaseModel):
    oid: str  # sha256
    size: int


class _Entry(BaseModel):
    type: Literal["file", "directory"]
    path: str
    size: int = 0
    oid: str = ""  # git blob sha1
    lfs: _Lfs | None = None

    def want(self) -> Want:
        if self.lfs is not None:
            return Want(size=self.lfs.size, digest=self.lfs.oid.lower(), algorithm="sha256")
        return Want(size=self.size, digest=self.oid.lower(), algorithm="git-sha1")


_LISTING = TypeAdapter(list[_Entry])


def writer_folder(settings: Settings, model: HubModel = DEFAULT) -> Path:
    """STORYBOT_WRITER_MODEL, else the pulled default's folder in the user's cache."""
    return settings.writer_model or Path.home() / ".cache" / "storybot" / "models" / "writer" / model.name


async def pull_writer(settings: Settings, progress: Progress | None = None, model: HubModel = DEFAULT) -> Path:
    """The model's files into its folder (those already whole are kept); the folder."""
    base = settings.hub_url.strip().rstrip("/")
    if not base:
        raise BadInput("model downloads are off (STORYBOT_HUB_URL is empty)")
    folder = writer_folder(settings, model)
    folder.mkdir(parents=True, exist_ok=True)
    async with client() as http:
        fetcher = Fetcher(base, http, progress)
        listing = await fetcher.json(f"api/models/{model.repo}/tree/{model.revision}/{model.folder}", MAX_LISTING)
        try:
            entries = [e for e in _LISTING.validate_json(listing) if e.type == "file"]
        except ValidationError:
            raise DownloadError(f"the hub's listing of {model.repo} is not the tree API's JSON") from None
        prefix = f"{model.folder}/"
        files = [(e, e.path.removeprefix(prefix)) for e in entries if e.path.startswith(prefix)]
        if not any(name == "genai_config.json" for _, name in files):
            raise DownloadError(f"{model.repo}/{model.folder} has no genai_config.json: not an onnxruntime-genai model")
        for entry, name in sorted(files, key=lambda f: f[0].want().size):  # small files first
            if not _NAME.fullmatch(name) or name in (".", ".."):
                raise DownloadError(f"refused a file named {name[:60]!r} in the hub's listing")
            # genai_config.json last, so the folder counts as a model only when whole
            dest = folder / name
            if name == "genai_config.json":
                continue
            url = f"{model.repo}/resolve/{model.revision}/{entry.path}"
            await fetcher.file(url, entry.want(), dest, FILE_DEADLINE)
        config = next(e for e, name in files if name == "genai_config.json")
        await fetcher.file(
            f"{model.repo}/resolve/{model.revision}/{config.path}", config.want(), folder / "genai_config.json", 600
        )
    return folder

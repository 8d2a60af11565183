"""`storybot models pull sdxl ltx whisper vision`: the GPU families' weights before any job.

A first run that downloads inside a worker's load spends LTX 13B's ~37 GB and Qwen-7B's ~17 GB in
the 600 s load timeout. Here each family's hub repository is listed with the hub's tree API
(recursive, every file's size and SHA-256 or git SHA-1), only the files its loader reads are kept
(a diffusers pipeline's components, fp16 weights where the repo has them; no ONNX, Flax, OpenVINO or
single-file checkpoints), and each is fetched by tools.net.download (resumed, checked, never
half-written) into a folder that counts as pulled only once `PULLED` is written last. The local
backend loads a hub id from its pulled folder, and pulls a missing one before the worker starts, so
the load timeout never counts a download.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from gpu_workers.protocol import Family
from tools.errors import BadInput
from tools.net.download import DownloadError, Fetcher, Progress, client

PULLED = ".storybot-pulled.json"  # written last: the folder is whole
MAX_LISTING = 4 * 1024 * 1024
FILE_DEADLINE = 12 * 3600.0  # a 28 GB transformer on a slow line, resumed as often as it takes
REVISION = "main"
_SEGMENT = re.compile(r"[\w.-]+")
_REPO = re.compile(r"[\w.-]+/[\w.-]+")
# formats the loaders here never read (diffusers/transformers in PyTorch, ctranslate2's model.bin)
_SKIP_SUFFIXES = (".onnx", ".onnx_data", ".msgpack", ".h5", ".ckpt", ".pt", ".pth", ".xml", ".mlmodel", ".gguf")
_SKIP_DIRS = {"onnx", "openvino", "flax", "tf", "coreml", "assets", "images", "media", "docs"}
_DOCS = (".md", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp4", ".gitattributes")


def is_hub_id(model: str) -> bool:
    """`org/name` that is not a folder here."""
    return bool(_REPO.fullmatch(model)) and not Path(model).exists()


def models_root() -> Path:
    return Path.home() / ".cache" / "storybot" / "models"


def pulled_folder(family: Family, repo: str) -> Path:
    return models_root() / family / repo.replace("/", "--")


def is_pulled(family: Family, repo: str) -> bool:
    return (pulled_folder(family, repo) / PULLED).is_file()


def _weights_pick(paths: list[str]) -> set[str]:
    """Per folder: fp16 safetensors where there are any, else plain safetensors, else the .bin files
    (ctranslate2's model.bin, or an old repo's PyTorch weights)."""
    keep: set[str] = set()
    folders: dict[str, list[str]] = {}
    for path in paths:
        folders.setdefault(str(PurePosixPath(path).parent), []).append(path)
    for files in folders.values():
        tensors = [f for f in files if f.endswith(".safetensors")]
        fp16 = [f for f in tensors if ".fp16." in PurePosixPath(f).name]
        keep.update(fp16 or tensors or [f for f in files if f.endswith(".bin")])
    return keep


def select(paths: Iterable[str], model_index: dict[str, object] | None) -> list[str]:
    """The files a loader reads: a diffusers pipeline's model_index.json and its components'
    folders, or a transformers / ctranslate2 repo's files; one weights format per folder."""
    chosen = []
    for path in paths:
        parts = PurePosixPath(path).parts
        if any(p in _SKIP_DIRS or p.startswith(".") for p in parts[:-1]) or path.lower().endswith(_DOCS):
            continue
        if path.endswith(_SKIP_SUFFIXES):
            continue
        if model_index is not None:
            components = {k for k in model_index if not k.startswith("_")}
            if len(parts) == 1 and path != "model_index.json":
                continue  # single-file checkpoints beside the pipeline
            if len(parts) > 1 and parts[0] not in components:
                continue
        chosen.append(path)
    weights = [p for p in chosen if p.endswith((".safetensors", ".bin"))]
    keep = _weights_pick(weights)
    return sorted(p for p in chosen if p not in weights or p in keep)


def _check_name(path: str) -> None:
    parts = path.split("/")
    if not all(_SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts):
        raise DownloadError(f"refused a file named {path[:80]!r} in the hub's listing")


async def pull_family(base: str, family: Family, repo: str, progress: Progress | None = None) -> Path:
    """`repo`'s files for `family` into its pulled folder (files already whole are kept); the folder."""
    # the hub tree API's entries, shared with the writer's pull (imported here: a GPU worker that only
    # resolves pulled folders never loads the writer's package)
    from tools.llm.writer_model import _LISTING as LISTING
    from tools.llm.writer_model import _Entry as Entry

    base = base.strip().rstrip("/")
    if not base:
        raise BadInput("model downloads are off (STORYBOT_HUB_URL is empty)")
    if not _REPO.fullmatch(repo):
        raise BadInput(f"{family}: {repo!r} is not a hub id (org/name); a folder needs no pull")
    folder = pulled_folder(family, repo)
    folder.mkdir(parents=True, exist_ok=True)
    async with client() as http:
        fetcher = Fetcher(base, http, progress)
        listing = await fetcher.json(f"api/models/{repo}/tree/{REVISION}?recursive=true", MAX_LISTING)
        try:
            entries = {e.path: e for e in LISTING.validate_json(listing) if e.type == "file"}
        except ValidationError:
            raise DownloadError(f"the hub's listing of {repo} is not the tree API's JSON") from None
        for path in entries:
            _check_name(path)
        index: dict[str, object] | None = None
        if "model_index.json" in entries:
            await fetcher.file(
                f"{repo}/resolve/{REVISION}/model_index.json",
                entries["model_index.json"].want(),
                folder / "model_index.json",
                600,
            )
            index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        wanted = select(entries, index)
        if not any(p.endswith((".safetensors", ".bin")) for p in wanted):
            raise DownloadError(f"{repo} has no weights a {family} worker can load (safetensors or model.bin)")
        ordered: list[Entry] = sorted((entries[p] for p in wanted), key=lambda e: e.want().size)  # small first
        for entry in ordered:
            dest = folder / entry.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            await fetcher.file(f"{repo}/resolve/{REVISION}/{entry.path}", entry.want(), dest, FILE_DEADLINE)
    record = {"repo": repo, "revision": REVISION, "files": wanted}
    (folder / PULLED).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return folder


def local_model(family: Family, model: str) -> str:
    """What a worker loads: the pulled folder of a hub id when there is one, else `model` as given."""
    if is_hub_id(model) and is_pulled(family, model):
        return str(pulled_folder(family, model))
    return model


def in_hf_cache(model: str) -> bool:
    """A hub id already in the Hugging Face cache (from an earlier run): loaded from there, not pulled."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return any(isinstance(try_to_load_from_cache(model, name), str) for name in ("model_index.json", "config.json"))

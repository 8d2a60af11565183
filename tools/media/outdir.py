"""The `--out` folder's safety rules: storybot only replaces what storybot wrote.

A render replaces its artifacts in the output folder (`clips/`, `final.mp4`, ...). A folder that
holds someone's own files, or that an input lives in, could lose them, so it is refused before
any work starts, as is a folder that cannot be written (found now, not after a full render).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tools.errors import BadInput
from tools.files import sweep_stale

ARTIFACT_FILES = (
    "final.mp4",
    "final.discord.mp4",
    "voice.wav",
    "words.json",
    "subtitles.srt",
    "subtitles.vtt",
    "subtitles.ass",
    "shots.json",
    "thumbnail.png",
    "script.txt",
    "visuals.json",
    "credits.json",
    "usage.json",
)
ARTIFACT_DIRS = ("keyframes", "clips", "media")
METADATA = "metadata.json"
MARKER_KEY, MARKER = "generator", "storybot"
WORK_PREFIX = ".render-"


def require_regular_file(path: Path, what: str) -> None:
    """A user's input must be a plain file: a FIFO or device would block or never end."""
    if not path.exists():
        raise BadInput(f"{what} file not found: {path}")
    if not path.is_file():
        raise BadInput(f"{what} {path}: not a regular file")


def written_by_storybot(folder: Path) -> bool:
    """True when `folder` holds a storybot metadata.json (new marker, or the fields every render wrote)."""
    try:
        meta = json.loads((folder / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict):
        return False
    return meta.get(MARKER_KEY) == MARKER or {"video", "voice", "stage_seconds", "shots"} <= meta.keys()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out(out: Path, inputs: dict[str, Path]) -> None:
    """BadInput unless a render may write into `out` (absolute) without touching anything it did not write."""
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise BadInput(f"--out {out}: {'it is' if existing == out else f'{existing} is'} a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"--out {out}: {existing} is not writable")
    real_out = out.resolve()
    for option, path in inputs.items():
        real = path.resolve()
        if path.is_dir() and _inside(real, real_out):
            raise BadInput(f"{option} {path} is inside --out {out}: choose an output folder outside the inputs")
        rel = real.relative_to(real_out).parts if real_out in real.parents else ()
        if rel and (rel[0] in ARTIFACT_DIRS or (len(rel) == 1 and rel[0] in (*ARTIFACT_FILES, METADATA))):
            raise BadInput(f"{option} {path} would be replaced by the render: copy it out of --out {out} first")
    if existing != out:
        return
    sweep_stale(out, WORK_PREFIX)
    if any(out.iterdir()) and not written_by_storybot(out):
        raise BadInput(
            f"--out {out}: the folder holds files storybot did not write (no storybot {METADATA}); "
            "choose a new or empty folder"
        )
    for name in (*ARTIFACT_DIRS, *ARTIFACT_FILES, METADATA):
        if (out / name).is_symlink():
            raise BadInput(f"--out {out}: {name} is a link; storybot replaces only what it wrote")
    for name in ARTIFACT_DIRS:
        if (out / name).exists() and not (out / name).is_dir():
            raise BadInput(f"--out {out}: {name} is a file where storybot writes a folder")
    for name in (*ARTIFACT_FILES, METADATA):
        if (out / name).is_dir():
            raise BadInput(f"--out {out}: {name} is a folder where storybot writes a file")


def make_work_dir(out: Path) -> Path:
    """The hidden work folder inside `out`, named for this process so a later run can sweep it if we die."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=out))
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot write there ({exc.strerror})") from None

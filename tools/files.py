"""Atomic file output: readers (and a re-run after a crash) never see half a file."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a hidden sibling of `path` to write; rename it over `path` only if the block succeeds.

    The temporary name keeps the suffix, so FFmpeg and Pillow still infer the format from it, and
    carries our pid, so `sweep_stale` can tell a dead run's debris from a live run's work.
    """
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_json_atomic(path: Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


# `.name.PID-hex.tmp.ext` (atomic_path) and `.render-PID-xxxx` work folders; older names had no pid.
_TMP = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.tmp(?:\.[^.]+)?$")


def pid_alive(pid: int | None) -> bool:
    """Whether process `pid` exists (a stale temporary or a job's runner is judged by it)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_pid(text: str | None) -> bool:
    return text is None or not text.isdigit() or (int(text) != os.getpid() and not pid_alive(int(text)))


def sweep_stale(folder: Path, work_prefix: str = ".render-") -> list[Path]:
    """Remove temporaries a killed run left in `folder` (and its subfolders one level down): atomic-write
    `.tmp` files and `work_prefix` work folders whose process is gone. Returns what was removed."""
    removed: list[Path] = []
    subfolders = [
        d for d in folder.iterdir() if d.is_dir() and not d.is_symlink() and not d.name.startswith(work_prefix)
    ]
    for parent in [folder, *subfolders]:
        for entry in parent.iterdir():
            if entry.is_symlink():
                continue
            if entry.is_file() and (m := _TMP.match(entry.name)) and _stale_pid(m["pid"]):
                entry.unlink(missing_ok=True)
                removed.append(entry)
            elif parent == folder and entry.is_dir() and entry.name.startswith(work_prefix):
                pid = entry.name[len(work_prefix) :].split("-", 1)[0]
                if _stale_pid(pid if "-" in entry.name[len(work_prefix) :] else None):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
    return removed

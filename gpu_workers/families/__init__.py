"""The four model families: how each loads its model once and serves one request.

Only the worker process imports third-party ML code (torch, diffusers, transformers,
faster-whisper, PyAV), and only inside the functions that need it, so the client can import this
package for `load` and the memory helpers. Checked against diffusers 0.42, transformers 5 and
faster-whisper 1.2. `device` holds the policy every family shares; one module per family.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_workers.families.device import (
    free_memory,
    is_fatal,
    is_oom,
    peak_bytes,
    pick_framewise,
    pick_offload,
    pick_tiling,
    place,
    short_of_memory,
)
from gpu_workers.families.ltx import Ltx, segments
from gpu_workers.families.sdxl import Sdxl
from gpu_workers.families.vision import Vision
from gpu_workers.families.whisper import Whisper
from gpu_workers.protocol import Family

__all__ = [
    "RUNNERS",
    "free_memory",
    "is_fatal",
    "is_oom",
    "load",
    "peak_bytes",
    "pick_framewise",
    "pick_offload",
    "pick_tiling",
    "place",
    "segments",
    "short_of_memory",
]

# Each family's runner: built once from a model (hub id or folder), then called per request.
RUNNERS: dict[Family, Callable[[str], Any]] = {"sdxl": Sdxl, "ltx": Ltx, "whisper": Whisper, "vision": Vision}


def load(family: Family, model: str) -> Any:
    """Load a family's model once; a missing folder fails here with a clear message."""
    if not Path(model).exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
        raise FileNotFoundError(f"no such model folder: {model}")
    return RUNNERS[family](model)

"""Piper's durations as a graph output, prepared once per voice file and kept in a cache.

Marking the `Ceil` output means parsing and re-serialising the whole 60 MB protobuf, which holds the
GIL for seconds: done in a thread it stalls the event loop (measured 0.4 s at rest, over 2 s under
load). So a child process does it once per voice file, and onnxruntime then loads the cached file
by path, which releases the GIL (20 ms worst loop lag measured).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.errors import BadInput

PREPARE_TIMEOUT = 300  # seconds: a 60 MB voice takes about 2 s


def cache_dir() -> Path:
    """Where prepared voices live: the user's cache, else the temporary folder (read-only homes)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "storybot" / "piper"
    try:
        base.mkdir(parents=True, exist_ok=True)
        return base
    except OSError:
        fallback = Path(tempfile.gettempdir()) / f"storybot-piper-{os.getuid()}"
        fallback.mkdir(mode=0o700, exist_ok=True)
        return fallback


def _digest(model: Path) -> str:
    """The voice file's content hash (hashlib releases the GIL), so every install shares one copy."""
    sha = hashlib.sha256()
    with model.open("rb") as f:
        while chunk := f.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()[:16]


def timed_model(model: Path) -> tuple[Path, str]:
    """(a copy of `model` whose durations are a graph output, that output's name)."""
    prepared = cache_dir() / f"{model.stem}-{_digest(model)}.onnx"
    meta = prepared.with_suffix(".json")
    if not (prepared.is_file() and meta.is_file()):
        _prepare(model, prepared)
    return prepared, str(json.loads(meta.read_text(encoding="utf-8"))["durations"])


def _prepare(model: Path, prepared: Path) -> None:
    """Run `mark_durations` in a child at FFmpeg's niceness: it is CPU work beside live jobs."""
    from tools.media.ffmpeg import FFMPEG_NICENESS

    child = subprocess.Popen(
        [sys.executable, "-m", "tools.tts.piper_graph", str(model), str(prepared)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, child.pid, FFMPEG_NICENESS)
    try:
        _, stderr = child.communicate(timeout=PREPARE_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise BadInput(f"Piper voice {model.name}: preparing it took over {PREPARE_TIMEOUT} s") from None
    if child.returncode != 0:
        reason = (stderr.strip().splitlines() or ["it could not be read"])[-1][:200]
        raise BadInput(f"Piper voice {model.name} is not a usable ONNX model: {reason}")


def mark_durations(model: Path, out: Path) -> None:
    """Write `model` with its single `Ceil` output marked as a graph output, then its name beside it."""
    import onnx

    graph = onnx.load(str(model))
    ceils = [node for node in graph.graph.node if node.op_type == "Ceil"]
    if len(ceils) != 1:
        raise ValueError(f"expected one Ceil node (the durations), found {len(ceils)}")
    durations = ceils[0].output[0]
    graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(durations))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_bytes(graph.SerializeToString())
    tmp.replace(out)
    meta = out.with_suffix(".json")
    tmp_meta = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps({"durations": durations}), encoding="utf-8")
    tmp_meta.replace(meta)


if __name__ == "__main__":
    try:
        mark_durations(Path(sys.argv[1]), Path(sys.argv[2]))
    except Exception as exc:  # onnx raises DecodeError, ValidationError...: one line for the parent
        print((str(exc).strip().splitlines() or [type(exc).__name__])[0], file=sys.stderr)
        sys.exit(1)

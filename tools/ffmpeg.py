"""Running FFmpeg: argument lists only, asyncio subprocesses, FFmpeg's own error on failure.

The binary comes from imageio-ffmpeg (PyPI), so `pip install` alone yields a complete toolchain.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import imageio_ffmpeg

from tools.errors import MediaError

FFMPEG_NICENESS = 10


@cache
def ffmpeg_exe() -> str:
    return os.environ.get("STORYBOT_FFMPEG") or imageio_ffmpeg.get_ffmpeg_exe()


def _last_error(stderr: str) -> str:
    """FFmpeg's own explanation: the last non-empty lines of its log, joined on one line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Press [q]", "frame=", "size="))]
    return " | ".join(useful[-3:]) or "no message"


async def run_ffmpeg(args: Sequence[str | Path], *, stdin: bytes | None = None,
                     cwd: Path | None = None) -> tuple[bytes, str]:
    """Run `ffmpeg ARGS...`; return (stdout, stderr). Raise MediaError with FFmpeg's message."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *map(str, args)]
    if stdin is not None:
        cmd.remove("-nostdin")
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    with contextlib.suppress(OSError):  # media work yields the CPU to the event loop (bot heartbeats)
        os.setpriority(os.PRIO_PROCESS, proc.pid, FFMPEG_NICENESS)
    try:
        out, err = await proc.communicate(stdin)
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    log = err.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise MediaError(f"ffmpeg failed: {_last_error(log)}")
    return out, log


async def decode_audio(path: Path, sample_rate: int = 48000) -> bytes:
    """Decode any audio FFmpeg reads into mono float32 PCM at `sample_rate`."""
    out, _ = await run_ffmpeg(["-v", "error", "-i", path, "-vn", "-ac", "1", "-ar", str(sample_rate),
                               "-f", "f32le", "-"])
    return out


def escape_filter_value(value: str) -> str:
    """Escape a string for use as an option value inside a -filter_complex graph.

    Two levels, as FFmpeg's "Notes on filtergraph escaping" describe: first the filter's own
    option parser (`\\`, `'`, `:`), then the graph parser (`\\`, `'`, `[`, `]`, `,`, `;`).
    """
    level1 = value.replace("\\", "\\\\").replace("'", "\\'").replace(":", "\\:")
    out = []
    for ch in level1:
        if ch in "\\'[],;":
            out.append("\\")
        out.append(ch)
    return "".join(out)

"""Running FFmpeg: argument lists only, asyncio subprocesses, FFmpeg's own error on failure.

The binary comes from imageio-ffmpeg (PyPI), so `pip install` alone yields a complete toolchain.

Nothing waits forever: every run has a time limit scaled to the media it handles (see
`time_limit`), after which FFmpeg is killed and the run fails with one line. FFmpeg runs in its own
process group and gets SIGKILL when storybot dies (`PR_SET_PDEATHSIG`), so a killed render leaves no
orphaned encoder behind.

The event loop only ever does the spawn itself, and that spawn is a `vfork`: probing inputs and
resolving the binary run in a worker thread, and the death signal and niceness are set by a tiny
launcher that then execs FFmpeg. A `preexec_fn` would force a full `fork` of the whole process,
which stalls the loop for 50-90 ms per run once torch is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import imageio_ffmpeg

from tools.errors import MediaError

FFMPEG_NICENESS = 10
# A run may take BASE seconds plus PER_MEDIA_SECOND for each second of media it reads or writes:
# a 1080x1920 encode runs at about real time on two busy cores, so this is a wide margin that
# still ends a hung run (a pipe that never closes, an endless -stream_loop) in bounded time.
BASE_SECONDS = 60.0
PER_MEDIA_SECOND = 20.0
# Runs as `python -I -S -c _LAUNCHER PARENT_PID NICENESS FFMPEG ARGS...`: die with the parent
# (SIGKILL via PR_SET_PDEATHSIG, which survives exec), or exit at once if the parent is gone already;
# take the media niceness (never less nice than the parent already is); then become FFmpeg.
_LAUNCHER = """
import ctypes, os, sys
prctl = getattr(ctypes.CDLL(None), "prctl", None)
if prctl is not None:
    prctl(1, 9, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
if os.getpriority(os.PRIO_PROCESS, 0) < int(sys.argv[2]):
    os.setpriority(os.PRIO_PROCESS, 0, int(sys.argv[2]))
os.execv(sys.argv[3], sys.argv[3:])
"""
# Threads that only wait on FFmpeg; separate from the default executor so waits never starve probing.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ffmpeg")


@cache
def ffmpeg_exe() -> str:
    return os.environ.get("STORYBOT_FFMPEG") or imageio_ffmpeg.get_ffmpeg_exe()


def _last_error(stderr: str) -> str:
    """FFmpeg's own explanation: the last non-empty lines of its log, joined on one line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Press [q]", "frame=", "size="))]
    return " | ".join(useful[-3:]) or "no message"


def _file_seconds(path: str) -> float:
    """Duration of an input file from its header (0 when it has none, e.g. a still image)."""
    import av  # local: probing is needed only when a run has no explicit limit

    with contextlib.suppress(Exception), av.open(path) as container:
        return container.duration / av.time_base if container.duration else 0.0
    return 0.0


def media_seconds(args: Sequence[str], stdin: bytes | None = None) -> float:
    """The most media, in seconds, that an FFmpeg command line reads or writes.

    Taken from `-t` and `-frames:v` (at 30 fps) values, the durations of regular input files, and
    the size of piped input (counted at 8 kB/s, generous for any compressed or PCM voice).
    """
    seconds = len(stdin) / 8000 if stdin else 0.0
    for flag, value in itertools.pairwise(args):
        with contextlib.suppress(ValueError):
            if flag in ("-t", "-to"):
                seconds = max(seconds, float(value))
            elif flag in ("-frames:v", "-vframes"):
                seconds = max(seconds, int(value) / 30)
        if flag == "-i" and os.path.isfile(value):
            seconds = max(seconds, _file_seconds(value))
    return seconds


def time_limit(args: Sequence[str], stdin: bytes | None = None) -> float:
    return BASE_SECONDS + PER_MEDIA_SECOND * media_seconds(args, stdin)


def _command(argv: list[str], stdin: bytes | None, limit_s: float | None) -> tuple[list[str], float]:
    """Worker-thread side: the full command line and its time limit (may probe input files)."""
    limit = time_limit(argv, stdin) if limit_s is None else limit_s
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *argv]
    if stdin is not None:
        cmd.remove("-nostdin")
    if os.name == "posix" and sys.executable:
        cmd = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()), str(FFMPEG_NICENESS), *cmd]
    return cmd, limit


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill FFmpeg and anything it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _communicate(proc: subprocess.Popen[bytes], stdin: bytes | None, limit: float) -> tuple[bytes, bytes, bool]:
    """Worker-thread side: feed and drain FFmpeg; (stdout, stderr, timed out)."""
    try:
        out, err = proc.communicate(stdin, timeout=limit)
        return out, err, False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return out, err, True


async def _settle(job: asyncio.Future[tuple[bytes, bytes, bool]]) -> None:
    """Wait until the worker thread has reaped FFmpeg, even through repeated cancellation."""
    while not job.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(job)


async def run_ffmpeg(
    args: Sequence[str | Path], *, stdin: bytes | None = None, cwd: Path | None = None, limit_s: float | None = None
) -> tuple[bytes, str]:
    """Run `ffmpeg ARGS...`; return (stdout, stderr). Raise MediaError with FFmpeg's message.

    `limit_s` (seconds) defaults to `time_limit(args)`; past it FFmpeg is killed and MediaError says so.
    A plain Popen drained in a worker thread, not an asyncio subprocess: on Python 3.11 a task
    cancelled while its asyncio subprocess starts can wait forever at shutdown, and a child watcher
    that outlives `asyncio.run` prints "Loop ... that handles pid N is closed" on stderr.
    Popen runs in the event-loop thread, so PR_SET_PDEATHSIG follows that long-lived thread.
    """
    loop = asyncio.get_running_loop()
    cmd, limit = await loop.run_in_executor(None, _command, [*map(str, args)], stdin, limit_s)
    started = time.monotonic()
    # a vfork-based spawn takes about a millisecond; the wait runs in a worker thread
    proc = subprocess.Popen(  # noqa: ASYNC220
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        process_group=0,
    )
    job = loop.run_in_executor(_POOL, _communicate, proc, stdin, limit)
    try:
        out, err, timed_out = await asyncio.shield(job)
    except BaseException:  # cancelled: never leave FFmpeg running
        _kill_group(proc)
        await _settle(job)
        raise
    if timed_out:
        raise MediaError(
            f"ffmpeg took longer than its limit of {limit:.0f} s and was stopped "
            f"(after {time.monotonic() - started:.1f} s)"
        )
    log = err.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise MediaError(f"ffmpeg failed: {_last_error(log)}")
    return out, log


async def decode_audio(path: Path, sample_rate: int = 48000, mix: Sequence[str] = ()) -> bytes:
    """Decode any audio FFmpeg reads into mono float32 PCM at `sample_rate` (`mix`: output options
    that make it mono where `-ac 1` cannot, see tools/tts/recording.py)."""
    out, _ = await run_ffmpeg(
        ["-v", "error", "-i", path, "-vn", *mix, "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-"]
    )
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

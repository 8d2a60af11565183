"""Hostile runs of the processes storybot starts: an FFmpeg that never ends is killed at its limit, FFmpeg
runs in its own process group and dies with storybot on kill -9, a refusal that lands while FFmpeg starts
prints one line and ends, and a killed render or job is finished cleanly by the rerun.

The numbers in the comments are the defects of issue 14.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import cli as cli_module
from tests.cli import ok_json
from tests.hostile_helpers import (
    FAST_ENV,
    SHORT,
    clip,
    dead_pid,
    render_args,
    rendered,
    report_worst_refusal,
    script,
    storybot,
)
from tools.errors import MediaError
from tools.media.ffmpeg import run_ffmpeg, time_limit
from tools.media.probe import probe

# the fixtures from tests/hostile_helpers.py that this module uses
__all__ = ["clip", "report_worst_refusal", "script"]


# --- 2. FFmpeg runs that never end --------------------------------------------------------------


def _processes_reading(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_hung_ffmpeg_is_killed_at_its_limit_and_reported(tmp_path: Path) -> None:
    fifo = tmp_path / "never-closes.pcm"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer that never writes and never closes
    try:
        start = time.monotonic()
        with pytest.raises(MediaError) as caught:
            asyncio.run(
                run_ffmpeg(["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", fifo, "-f", "null", "-"], limit_s=2)
            )
        elapsed = time.monotonic() - start
    finally:
        os.close(writer)
    message = str(caught.value)
    assert "longer than its limit of 2 s" in message and "\n" not in message
    assert 2 <= elapsed < 6
    assert _processes_reading(fifo) == []  # killed, not orphaned


def test_every_run_gets_a_limit_scaled_to_its_media(clip: Path) -> None:
    assert time_limit(["-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"]) == 60  # unknown length: the base
    assert time_limit(["-i", str(clip), "-f", "null", "-"]) == pytest.approx(60 + 20 * 1.0, abs=1)
    assert time_limit(["-i", str(clip), "-t", "30", "-f", "null", "-"]) == pytest.approx(60 + 20 * 30)
    assert time_limit(["-i", str(clip), "-frames:v", "300", "x.mp4"]) == pytest.approx(60 + 20 * 10)


# --- 13. debris after a kill -----------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        kids += [int(k) for k in task.read_text().split()]
    return kids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_once_ffmpeg_runs(proc: subprocess.Popen[bytes], within: float) -> None:
    """SIGKILL storybot as soon as it has an FFmpeg child, then require that FFmpeg dies with it."""
    ffmpeg: list[int] = []
    deadline = time.monotonic() + within
    while not ffmpeg and time.monotonic() < deadline and proc.poll() is None:
        ffmpeg = [k for k in _children(proc.pid) if "ffmpeg" in Path(f"/proc/{k}/cmdline").read_bytes().decode()]
        time.sleep(0.01)
    assert ffmpeg, "no FFmpeg seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone = time.monotonic() + 5
    while any(_alive(p) for p in ffmpeg) and time.monotonic() < gone:
        time.sleep(0.05)
    assert not any(_alive(p) for p in ffmpeg), "FFmpeg outlived storybot"


def test_kill_9_mid_render_takes_ffmpeg_along_and_the_rerun_is_clean(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, **FAST_ENV}
    proc = subprocess.Popen(
        [sys.executable, "-m", "storybot", *render_args(script, out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _kill_once_ffmpeg_runs(proc, within=60)
    rendered(storybot(*render_args(script, out)), out)  # the debris is swept; the rerun succeeds


def test_ffmpeg_runs_in_its_own_process_group(tmp_path: Path) -> None:
    async def go() -> str:
        _, log = await run_ffmpeg(["-v", "info", "-f", "lavfi", "-i", "anullsrc=d=0.1", "-f", "null", "-"])
        return log

    asyncio.run(go())
    # the group is checked on a live run: a pipe that waits, with the process visible meanwhile
    fifo = tmp_path / "f.pcm"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)

    async def watch() -> tuple[int, int]:
        task = asyncio.create_task(run_ffmpeg(["-f", "s16le", "-i", fifo, "-f", "null", "-"], limit_s=3))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if pids := _processes_reading(fifo):
                pid = pids[0]
                group = os.getpgid(pid)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return pid, group
        raise AssertionError("FFmpeg never started")

    try:
        pid, group = asyncio.run(watch())
    finally:
        os.close(writer)
    assert group == pid != os.getpgrp()
    assert not _alive(pid)  # cancelled: killed and reaped


def test_kill_9_mid_job_then_resume_finishes_and_sweeps(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "s.txt").write_text(SHORT, encoding="utf-8")
    env = {**os.environ, **FAST_ENV, "STORYBOT_DATA_DIR": str(data)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "storybot",
            "make",
            "a lamp",
            "--script",
            str(tmp_path / "s.txt"),
            "--duration",
            "8",
            "--aspect",
            "1:1",
            "--yes",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _kill_once_ffmpeg_runs(proc, within=120)
    (job_dir,) = (data / "jobs").iterdir()
    debris = job_dir / f".voice.{dead_pid()}-0badc0de.tmp.wav"
    debris.write_bytes(b"half")
    result = storybot("resume", job_dir.name, "--yes", "--json", data=data)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "done"
    info = probe(Path(payload["artifacts"]["final_video"]))
    assert info.video and info.audio and (info.video.width, info.video.height) == (1080, 1080)
    assert not debris.exists() and not list(job_dir.rglob("*.tmp*"))


# --- 18. one stderr line, whatever is in flight when a refusal lands ----------------------------------


RACE = """
import asyncio, sys
from tools.errors import BadInput
from tools.media.ffmpeg import run_ffmpeg

async def long():
    await run_ffmpeg(["-f", "lavfi", "-i", "sine=d=20", "-f", "null", "-"])

async def refuse(delay):
    await asyncio.sleep(delay)
    raise BadInput("refused")

async def main(delay):
    await asyncio.gather(long(), long(), refuse(delay))

try:
    asyncio.run(main(float(sys.argv[1])))
except BadInput:
    print("refused", file=sys.stderr)
"""


@pytest.mark.parametrize("delay", [0, 0.001, 0.003, 0.01, 0.03, 0.1])
def test_a_refusal_while_ffmpeg_starts_or_runs_prints_one_line_and_ends(delay: float) -> None:
    # Python 3.11's asyncio subprocesses hung here at delay 0 (a task cancelled while its child
    # was starting waits forever at shutdown) or printed "Loop ... that handles pid N is closed"
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", RACE, str(delay)], capture_output=True, text=True, timeout=30)
    assert result.stderr.strip().splitlines() == ["refused"], result.stderr
    assert time.monotonic() - start < 15


def test_sigterm_during_a_stage_is_one_line_and_a_resumable_job(tmp_path: Path) -> None:
    """Issue 23 #12: SIGTERM ended `make` with exit -15 and no word, and `status` said "running" forever."""
    env = {**os.environ, "STORYBOT_DATA_DIR": str(tmp_path)}
    make = subprocess.Popen(
        [sys.executable, "-m", "storybot", "make", "A fox who learns to sail", "--yes", "--duration", "8"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert make.stderr is not None
    seen = ""
    for line in make.stderr:  # the voice stage starts right after the script is approved
        seen += line
        if "approve_script" in line:
            make.send_signal(signal.SIGTERM)
            break
    rest = make.stderr.read()  # the same buffered reader: `communicate` would skip what it holds
    make.wait(timeout=120)
    lines = (seen + rest).strip().splitlines()
    assert make.returncode == 130, seen + rest
    assert lines[-1].startswith("storybot: error: interrupted") and "Traceback" not in rest
    job = ok_json(cli(["jobs", "--json"], data=tmp_path))[0]["job_id"]
    status = ok_json(cli(["status", job, "--json"], data=tmp_path))
    assert status["status"] == "failed" and status["error"].startswith("interrupted")
    assert f"storybot resume {job}" in status["error"]
    resumed = cli(["resume", job, "--yes", "--json"], data=tmp_path)
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["status"] == "done", resumed.stderr


def test_another_process_holding_the_job_database_is_waited_for(tmp_path: Path) -> None:
    """Issue 23 #8: a write lock held over 5 s elsewhere made `make` die with "database is locked"."""
    import sqlite3
    import threading

    first = cli(["make", "A fox", "--duration", "6", "--json"], data=tmp_path)
    assert first.returncode == 0, first.stderr
    held = threading.Event()

    def hold() -> None:
        with sqlite3.connect(tmp_path / "jobs.sqlite", timeout=5) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE jobs SET updated = updated")
            held.set()
            time.sleep(8)
            db.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    job = json.loads(first.stdout)["job_id"]
    answered = cli(["answer", job, "approve", "--json"], data=tmp_path)
    holder.join()
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["status"] in ("waiting", "done")


def cli(args: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    """The plain CLI runner (this module's `storybot` adds the hostile files' fast preset and limit)."""
    return cli_module.storybot(*args, data=data, timeout=300)

"""Shared by the tests/test_hostile_*.py modules: hostile inputs, as a hostile user would try them,
must lose nothing, hang nothing, and answer in one clear line.

Every CLI case asserts the exit code, the single `storybot: error:` line on stderr, no traceback,
the files before and after, and for renders the video a user gets (probed). Renders are tiny
(a two-sentence script, 1:1, `ultrafast`) so the hostile modules stay well inside CI's budget.
A module that uses `refused` imports `report_worst_refusal`, which prints its slowest refusal.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest

from tests import cli
from tools.media.probe import probe

SHORT = "Hi there. Bye now."
FAST_ENV = {"STORYBOT_VIDEO_PRESET": "ultrafast"}
WORST: dict[str, float] = {}  # seconds to refusal per case; the slowest is printed when the module ends


@pytest.fixture(scope="module", autouse=True)
def report_worst_refusal() -> Iterator[None]:
    yield
    if WORST:
        case, seconds = max(WORST.items(), key=lambda kv: kv[1])
        print(f"\nhostile: {len(WORST)} refusal kinds timed, slowest {seconds:.2f} s ({case})", file=sys.__stderr__)
        WORST.clear()


def storybot(
    *args: str, cwd: Path | None = None, data: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`storybot ARGS` with the fastest video preset, failing the test if it runs past `timeout`."""
    return cli.storybot(*args, data=data, env=FAST_ENV, cwd=cwd, timeout=timeout)


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` with a digest of its content: equal snapshots mean nothing changed."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def refused(result: subprocess.CompletedProcess[str], fragment: str, code: int = 2, case: str = "") -> str:
    """Exit code, exactly one `storybot: error:` line holding `fragment`, no traceback, nothing on stdout."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("storybot: error:") and fragment in lines[0], lines[0]
    assert result.stdout == ""
    WORST[case or fragment] = max(WORST.get(case or fragment, 0.0), result.elapsed)  # type: ignore[attr-defined]
    return lines[0]


def rendered(result: subprocess.CompletedProcess[str], out: Path, size: tuple[int, int] = (1080, 1080)) -> None:
    """A finished render: exit 0, no traceback, and a real H.264/AAC video of the voice's length."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    info = probe(out / "final.mp4")
    assert info.video and info.audio and info.video.codec == "h264" and info.audio.codec == "aac"
    assert (info.video.width, info.video.height) == size
    voice = probe(out / "voice.wav").duration
    assert voice > 0.3 and voice <= info.duration <= voice + 1.0
    assert not [p for p in out.iterdir() if p.name.startswith(".render-") or ".tmp" in p.name]


def render_args(script: Path, out: Path | str, *extra: str) -> list[str]:
    return ["render", "--script", str(script), "--aspect", "1:1", f"--out={out}", *extra]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "story.txt"
    path.write_text(SHORT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "good.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=64x64:d=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )
    return path


def zero_sample_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"")
    return path


def dead_pid() -> int:
    """The id of a process that has exited: what a killed run leaves in its temporaries' names."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid

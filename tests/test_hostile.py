"""Hostile inputs, as a hostile user would try them: nothing lost, nothing hangs, one clear line.

Every CLI case asserts the exit code, the single `storybot: error:` line on stderr, no traceback,
the files before and after, and for renders the video a user gets (probed). Renders are tiny
(a two-sentence script, 1:1, `ultrafast`) so the whole module stays well inside CI's budget.
The numbers in the comments are the defects of issue 14.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import imageio_ffmpeg
import pytest
from PIL import Image

from bot.text import quote
from bot.views import IdeaSelect, RerollSelect
from tools.errors import BadInput, MediaError
from tools.ffmpeg import run_ffmpeg, time_limit
from tools.files import sweep_stale
from tools.probe import probe
from tools.subtitles import srt_line
from tools.text import MAX_SCRIPT_BYTES, clean_replacement, clean_script, word_spans
from tools.tts import from_recording, synthesize
from tools.tts.recording import estimate_times

SHORT = "Hi there. Bye now."
FAST_ENV = {"STORYBOT_VIDEO_PRESET": "ultrafast"}
WORST: dict[str, float] = {}  # seconds to refusal per case; the slowest is printed when the module ends


@pytest.fixture(scope="module", autouse=True)
def _report_worst_refusal() -> Any:
    yield
    if WORST:
        case, seconds = max(WORST.items(), key=lambda kv: kv[1])
        print(f"\nhostile: {len(WORST)} refusal kinds timed, slowest {seconds:.2f} s ({case})", file=sys.__stderr__)


# --- helpers --------------------------------------------------------------------------------------


def storybot(
    *args: str, cwd: Path | None = None, data: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **FAST_ENV}
    if data is not None:
        env["STORYBOT_DATA_DIR"] = str(data)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "storybot", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )
    result.elapsed = time.monotonic() - start  # type: ignore[attr-defined]
    return result


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


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One storybot output folder (with its metadata.json), shared by the cases that need one."""
    root = tmp_path_factory.mktemp("finished")
    (root / "s.txt").write_text(SHORT, encoding="utf-8")
    result = storybot(*render_args(root / "s.txt", root / "out"))
    rendered(result, root / "out")
    return root / "out"


def zero_sample_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"")
    return path


# --- 1. data loss: --out that holds someone else's files ----------------------------------------


def test_out_with_users_own_clips_and_files_is_refused_untouched(tmp_path: Path, script: Path, clip: Path) -> None:
    out = tmp_path / "mine"
    (out / "clips").mkdir(parents=True)
    (out / "keyframes").mkdir()
    (out / "clips" / "holiday.mp4").write_bytes(clip.read_bytes())
    (out / "keyframes" / "drawing.png").write_bytes(b"my drawing")
    (out / "final.discord.mp4").write_bytes(b"my own video")
    before = snapshot(out)
    refused(storybot(*render_args(script, out)), "storybot did not write", case="1 foreign --out")
    refused(
        storybot(*render_args(script, out, "--clips", str(out / "clips"))), "inside --out", case="1 input inside --out"
    )
    assert snapshot(out) == before


def test_input_folder_inside_a_storybot_out_is_refused(finished: Path, script: Path, clip: Path) -> None:
    mine = finished / "my clips"
    mine.mkdir(exist_ok=True)
    (mine / "a.mp4").write_bytes(clip.read_bytes())
    before = snapshot(finished)
    try:
        refused(storybot(*render_args(script, finished, "--clips", str(mine))), "inside --out")
        assert snapshot(finished) == before
        (finished / "clips").mkdir(exist_ok=True)  # storybot's own folder name, as an input
        before = snapshot(finished)
        refused(storybot(*render_args(script, finished, "--clips", str(finished / "clips"))), "--clips")
        refused(storybot(*render_args(finished / "script.txt", finished)), "would be replaced")
        assert snapshot(finished) == before
    finally:
        (mine / "a.mp4").unlink()
        mine.rmdir()


def test_rerender_into_own_output_keeps_the_users_extra_files(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    rendered(storybot(*render_args(script, out)), out)
    assert json.loads((out / "metadata.json").read_text())["generator"] == "storybot"
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    script.write_text("Hello again. A new take.", encoding="utf-8")
    rendered(storybot(*render_args(script, out)), out)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes"
    assert (out / "script.txt").read_text(encoding="utf-8").strip() == "Hello again. A new take."


# --- 2. hangs: media whose header lies, and FFmpeg runs that never end --------------------------


def test_clip_whose_header_promises_missing_frames_is_refused_fast(tmp_path: Path, script: Path, clip: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    data = clip.read_bytes()
    (clips / "a.mp4").write_bytes(data[: data.index(b"mdat") + 4])  # moov promises 25 frames; no data
    assert probe(clips / "a.mp4").video is not None  # the header alone looks fine
    out = tmp_path / "out"
    result = storybot(*render_args(script, out, "--clips", str(clips)), timeout=60)
    refused(result, "no video frame can be decoded", case="2 clip without frames")
    assert result.elapsed < 30 and not out.exists()  # type: ignore[attr-defined]


@pytest.mark.parametrize("option", ["--music", "--voice"])
def test_wav_with_zero_samples_is_refused_fast(tmp_path: Path, script: Path, option: str) -> None:
    wav = zero_sample_wav(tmp_path / "empty.wav")
    out = tmp_path / "out"
    result = storybot(*render_args(script, out, option, str(wav)), timeout=60)
    refused(result, "empty.wav", case=f"2 zero-sample {option}")
    assert result.elapsed < 30 and not out.exists()  # type: ignore[attr-defined]


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


# --- 3. a recorded voice with as many pauses as words, or more --------------------------------------


async def test_recordings_with_as_many_or_more_pauses_than_words(tmp_path: Path) -> None:
    # the off-by-one left no candidate cut when every segment needed exactly one token
    three = estimate_times(word_spans("Yes. No. Maybe."), [(0.0, 0.4), (1.0, 1.4), (2.0, 2.6)])
    assert [round(t[0], 1) for t in three.values()] == [0.0, 1.0, 2.0]
    few = estimate_times(word_spans("Hello there."), [(0.0, 1.0), (1.5, 2.0), (2.5, 4.0), (5.0, 5.2)])
    assert len(few) == 2 and all(a < b for a, b in few.values())
    long_wav = tmp_path / "long.wav"
    await synthesize("One sentence here. Another one follows. And a third. Then a fourth. The end.", long_wav)
    speech = await from_recording(long_wav, "Hello there.", tmp_path / "voice.wav")
    assert [w.word for w in speech.words] == ["Hello", "there."] and speech.words[1].end <= speech.duration


def test_render_with_its_own_yes_no_maybe_recording(tmp_path: Path) -> None:
    text = "Yes. No. Maybe."
    (tmp_path / "s.txt").write_text(text, encoding="utf-8")
    asyncio.run(synthesize(text, tmp_path / "me.wav"))
    out = tmp_path / "out"
    rendered(storybot(*render_args(tmp_path / "s.txt", out, "--voice", str(tmp_path / "me.wav"))), out)
    words = json.loads((out / "words.json").read_text())
    assert [w["word"] for w in words] == text.split()


# --- 5. unwritable --out, found before any work --------------------------------------------------


def test_unwritable_out_is_refused_before_work(tmp_path: Path, script: Path, finished: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("keep", encoding="utf-8")
    refused(storybot(*render_args(script, a_file)), "it is a file", case="5 --out is a file")
    refused(storybot(*render_args(script, a_file / "sub")), "is a file, not a folder")
    assert a_file.read_text(encoding="utf-8") == "keep"
    # a file where storybot writes its clips/ folder (in a storybot folder)
    (finished / "clips.bak").mkdir(exist_ok=True)
    clips = finished / "clips"
    clips.mkdir(exist_ok=True)
    clips.rename(finished / "clips.bak" / "clips")
    clips.write_text("not a folder", encoding="utf-8")
    try:
        before = snapshot(finished)
        result = storybot(*render_args(script, finished))
        refused(result, "clips is a file", case="5 clips is a file")
        assert result.elapsed < 20 and snapshot(finished) == before  # type: ignore[attr-defined]
    finally:
        clips.unlink()
        (finished / "clips.bak" / "clips").rename(clips)
        (finished / "clips.bak").rmdir()
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            refused(storybot(*render_args(script, locked / "out")), "not writable")
        finally:
            locked.chmod(0o755)
    refused(storybot(*render_args(script, "/proc/storybot-out")), "cannot write there", case="5 read-only fs")


# --- 6, 7, 11. scripts: a huge word, a huge file, invisible fillers, Zalgo --------------------------


def test_one_enormous_word_gets_a_clear_answer(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("a" * 5000, encoding="utf-8")
    out = tmp_path / "out"
    result = storybot(*render_args(tmp_path / "s.txt", out))
    if result.returncode == 0:
        rendered(result, out)
        assert len(json.loads((out / "shots.json").read_text())) == 1
    else:
        line = refused(result, "")
        assert "shots do not fit" not in line, line


def test_a_100_mb_script_is_refused_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:
        f.truncate(100 * 2**20)  # sparse: costs no disk, but reading it would cost 100 MB and more
    out = tmp_path / "out"
    result = storybot(*render_args(huge, out))
    refused(result, "too large", case="7 100 MB script")
    assert str(MAX_SCRIPT_BYTES) in result.stderr and not out.exists()


@pytest.mark.parametrize("content", ["\u3164\u3164 \u115f\u1160 \uffa0", "\u3164. \u3164!"])
def test_a_script_of_hangul_fillers_is_empty(tmp_path: Path, content: str) -> None:
    (tmp_path / "s.txt").write_text(content, encoding="utf-8")
    refused(storybot(*render_args(tmp_path / "s.txt", tmp_path / "out")), "empty")
    assert not (tmp_path / "out").exists()


def test_zalgo_keeps_two_marks_per_letter() -> None:
    zalgo = "".join(ch + "\u0336\u0301\u0317" * 60 for ch in "Hello") + " world."
    cleaned = clean_script(zalgo)
    assert cleaned.split()[1] == "world." and len(cleaned) <= len("Hello world.") + 2 * 5 + 5
    assert clean_script("नमस्ते दुनिया. ไม่ใช่") == "नमस्ते दुनिया. ไม่ใช่"  # real scripts keep their marks


# --- 9, 10. terminal escapes, job ids ----------------------------------------------------------------


def test_escape_and_bell_in_a_file_name_are_shown_not_obeyed(tmp_path: Path) -> None:
    name = tmp_path / "evil\x1b[2J\x07\u202e.txt"
    line = refused(storybot(*render_args(name, tmp_path / "out")), "not found")
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b[2J\\x07\\u202e" in line


@pytest.mark.parametrize("job_id", ["../../etc", "'; DROP TABLE jobs;--", "0123456789abcdef0", "%2e%2e"])
@pytest.mark.parametrize("command", [["status"], ["resume"], ["answer", "{}", "approve"]])
def test_bad_job_ids_create_nothing(tmp_path: Path, job_id: str, command: list[str]) -> None:
    data = tmp_path / "data"
    args = [job_id if c == "{}" else c for c in command] if "{}" in command else [*command, job_id]
    refused(storybot(*args, data=data, timeout=60), "not a job id", case="10 bad job id")
    assert not data.exists()


def test_a_well_formed_unknown_id_creates_no_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    refused(storybot("status", "0123456789ab", data=data, timeout=60), "unknown job id")
    assert not data.exists()


# --- 12, 14. --out=-dash, SRT markup -------------------------------------------------------------


def test_dash_out_and_markup_in_the_script(tmp_path: Path) -> None:
    text = r"{\an8}Top <font color=red>red</font> and <b>bold</b>. Then {\i1} plain [x](y) text."
    (tmp_path / "s.txt").write_text(text, encoding="utf-8")
    result = storybot(*render_args(Path("s.txt"), "-dash"), cwd=tmp_path)
    out = tmp_path / "-dash"
    rendered(result, out)
    srt = (out / "subtitles.srt").read_text(encoding="utf-8")
    assert "{\\an8}" not in srt and "<font" not in srt and "<b>" not in srt and "{\\i1}" not in srt
    cues = [b.split("\n", 2)[2] for b in srt.strip().split("\n\n")]
    assert " ".join(cues).replace("\u2060", "").split() == text.split()  # every word still shown, in order
    ass = (out / "subtitles.ass").read_text(encoding="utf-8")
    assert "\\{\\an8\\}" in ass or "{\u2060\\an8}" in ass or "\\{" in ass  # braces escaped, not tags


def test_srt_line_neutralises_tags_only() -> None:
    assert srt_line("a < b, 3<4, {z}") == "a < b, 3<4, {z}"
    assert srt_line("<i>x</i> {\\pos(1,1)}") == "<\u2060i>x<\u2060/i> {\u2060\\pos(1,1)}"


# --- 13. debris after a kill ----------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_runs_are_swept_live_ones_kept(finished: Path, tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = [
        finished / f".render-{dead}-abcd1234",
        finished / f".final.{dead}-0123abcd.tmp.mp4",
        finished / "clips" / f".shot_01.{dead}-89abcdef.tmp.mp4",
    ]
    (finished / "clips").mkdir(exist_ok=True)
    stale[0].mkdir()
    (stale[0] / "voice.wav").write_bytes(b"half")
    for p in stale[1:]:
        p.write_bytes(b"half")
    live = finished / f".render-{os.getpid()}-live0000"
    live.mkdir()
    try:
        (tmp_path / "s.txt").write_text(SHORT, encoding="utf-8")
        silent = zero_sample_wav(tmp_path / "silent.wav")  # refused after the --out checks, which sweep
        refused(storybot(*render_args(tmp_path / "s.txt", finished, "--music", str(silent))), "silent.wav")
        assert not any(p.exists() for p in stale)
        assert live.is_dir() and (finished / "final.mp4").is_file()
    finally:
        live.rmdir()
    assert sweep_stale(finished) == []


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


# --- 18. one stderr line, whatever is in flight when a refusal lands ----------------------------------

RACE = """
import asyncio, sys
from tools.errors import BadInput
from tools.ffmpeg import run_ffmpeg

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


def test_a_refusal_during_keyframes_while_audio_is_analysed(tmp_path: Path, script: Path) -> None:
    """17 and 18: a picture over the pixel cap is refused at the keyframes stage, while FFmpeg measures
    the audio in parallel; repeated, every run gives exactly one line and leaves nothing."""
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("L", (8000, 7000)).save(images / "huge.png", compress_level=1)  # 56 MP, just over the cap
    out = tmp_path / "out"
    for _ in range(3):
        refused(
            storybot(*render_args(script, out, "--images", str(images))), "over 50 megapixels", case="17 56 MP picture"
        )
        assert not out.exists()


# --- 4, 8, 15, 16. the bot -------------------------------------------------------------------------


def test_replacement_text_is_cleaned_and_validated() -> None:
    assert clean_replacement("  Hello\u200b  world.\x07 ") == "Hello world."
    for text in ("", "   \n\u200b\u3164", "word " * 10_000):
        with pytest.raises(BadInput, match="the replacement script"):
            clean_replacement(text)


async def test_an_empty_or_huge_replacement_is_refused_and_the_job_unchanged(tmp_path: Path) -> None:
    from graph.service import JobService, Requester
    from graph.state import Answer, JobRequest
    from tools.settings import get_settings

    alice = Requester(id="discord:1", name="alice")
    async with JobService.open(get_settings().model_copy(update={"data_dir": tmp_path})) as svc:
        job = await svc.start(
            JobRequest(prompt="keeper", script_text="The lamp went dark. It came back.", duration=8), alice
        )
        record = await svc.wait(job)
        assert record.status == "waiting" and record.interrupt_id
        for text in ("", " \u200b ", "word " * 10_000):
            with pytest.raises(BadInput, match="replacement script"):
                await svc.answer(job, alice, Answer(action="replace", text=text), record.interrupt_id)
            after = svc.get(job)
            assert (after.status, after.interrupt_id, after.approval) == (
                "waiting",
                record.interrupt_id,
                record.approval,
            )
        await svc.answer(job, alice, Answer(action="replace", text="Mine\u200b now.  Two words."), record.interrupt_id)
        record = await svc.wait(job)
        assert record.approval and record.approval.script == "Mine now. Two words."  # type: ignore[union-attr]
        await svc.cancel(job, alice)


def test_markdown_in_user_text_stays_text() -> None:
    shown = quote("[free nitro](https://evil.example)\n# HEADING\n-# small\n- item\n1. first\n**b** @everyone")
    assert "\\[free nitro\\](https://evil.example)" in shown
    lines = shown.splitlines()
    assert lines[1].startswith("\\#") and lines[2].startswith("\\-\\#") and lines[3].startswith("\\-")
    assert lines[4].startswith("1\\.") and "\\*\\*b\\*\\*" in lines[5]


def _fake_interaction(uid: int, conductor: Any, **data: Any) -> Any:
    fake = MagicMock(spec=discord.Interaction)
    fake.user = SimpleNamespace(id=uid, display_name=f"user{uid}", roles=[], bot=False)
    fake.client = SimpleNamespace(conductor=conductor)
    fake.data = data
    fake.guild_id, fake.channel_id = 5, 6
    fake.token, fake.application_id, fake.filesize_limit = "token", 7, 10 * 2**20

    async def slow_defer(**_: Any) -> None:
        await asyncio.sleep(0.05)  # Discord's round trip: other requests run meanwhile

    fake.response = SimpleNamespace(
        defer=AsyncMock(side_effect=slow_defer), send_message=AsyncMock(), send_modal=AsyncMock(), is_done=lambda: False
    )
    fake.followup = SimpleNamespace(send=AsyncMock())
    fake.edit_original_response = AsyncMock(return_value=SimpleNamespace(id=99))
    return fake


@pytest.fixture
async def conductor(tmp_path: Path) -> Any:
    from bot.conductor import Conductor
    from bot.records import Records
    from graph.api import JobService
    from tools.settings import get_settings

    settings = get_settings().model_copy(update={"data_dir": tmp_path, "max_active_jobs_per_user": 1})
    async with JobService.open(settings) as service:
        records = Records(tmp_path / "bot.sqlite")
        bot = SimpleNamespace(service=service, records=records, place_allowed=lambda g, c: True)
        c = Conductor(bot, service, records, settings)  # type: ignore[arg-type]
        bot.conductor = c  # type: ignore[attr-defined]
        yield c
        await c.close()


async def test_simultaneous_video_requests_respect_the_per_user_limit(conductor: Any) -> None:
    from bot.commands import VideoCommands

    cog = VideoCommands(conductor.bot)
    calls = [_fake_interaction(111, conductor) for _ in range(4)]
    await asyncio.gather(*(cog.video.callback(cog, call, prompt=f"a fox {n}") for n, call in enumerate(calls)))
    assert len(conductor.service.jobs()) == 1
    refusals = [c for c in calls if c.response.send_message.await_count]
    assert len(refusals) == 3
    assert all("You already have 1 videos in progress" in c.response.send_message.call_args.args[0] for c in refusals)


async def test_forged_select_values_are_refused_in_words(conductor: Any) -> None:
    from graph.api import JobRequest, Requester

    service = conductor.service
    job_id = await service.start(JobRequest(prompt="a lost whale", duration=8, ideas=True), Requester(id="discord:111"))
    record = await service.wait(job_id)
    assert record.waiting_for == "pick_idea" and record.interrupt_id
    for forged in (["abc"], ["-1"], ["99"], ["²"], ["1e3"]):
        call = _fake_interaction(111, conductor, values=forged)
        await IdeaSelect(job_id, record.interrupt_id).callback(call)
        sent = call.response.send_message.call_args or call.followup.send.call_args
        assert sent is not None and "pick a number from 1 to" in str(sent), (forged, sent)
        assert service.get(job_id).interrupt_id == record.interrupt_id and service.get(job_id).status == "waiting"
    call = _fake_interaction(111, conductor, values=["²", "7"])
    await RerollSelect(job_id, record.interrupt_id, 3).callback(call)  # wrong approval and forged: refused
    assert service.get(job_id).interrupt_id == record.interrupt_id
    await service.cancel(job_id, Requester(id="discord:111"))


# --- cases that already passed, kept so they stay passing ------------------------------------------


@pytest.mark.parametrize("path_trick", ["/dev/zero", "/", "/etc/shadow-nope", "fifo"])
def test_path_tricks_for_the_script(tmp_path: Path, path_trick: str) -> None:
    if path_trick == "fifo":
        os.mkfifo(tmp_path / "fifo")
        path_trick = str(tmp_path / "fifo")
    result = storybot(*render_args(Path(path_trick), tmp_path / "out"), timeout=30)
    refused(result, "", case="path trick")
    assert result.elapsed < 20 and not (tmp_path / "out").exists()  # type: ignore[attr-defined]


def test_fifo_as_voice_or_clip_never_blocks(tmp_path: Path, script: Path) -> None:
    os.mkfifo(tmp_path / "voice.wav")
    refused(
        storybot(*render_args(script, tmp_path / "out", "--voice", str(tmp_path / "voice.wav")), timeout=30),
        "not a regular file",
    )
    clips = tmp_path / "clips"
    clips.mkdir()
    os.mkfifo(clips / "a.mp4")
    refused(storybot(*render_args(script, tmp_path / "out", "--clips", str(clips)), timeout=30), "no video clips")


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--aspect", "4:3", "aspect"),
        ("--aspect", "9:16;rm", "aspect"),
        ("--upload-limit", "-1", "upload-limit"),
        ("--upload-limit", "nan", "upload-limit"),
    ],
)
def test_bad_render_values(tmp_path: Path, script: Path, flag: str, value: str, fragment: str) -> None:
    refused(storybot(*render_args(script, tmp_path / "out", flag, value), timeout=60), fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("duration", ["-5", "0", "nan", "inf", "1e9", "abc"])
def test_bad_make_durations(tmp_path: Path, duration: str) -> None:
    data = tmp_path / "data"
    result = storybot("make", "a fox", "--duration", duration, "--data", str(data), timeout=60)
    refused(result, "", case="make duration")
    assert not (data / "jobs").exists() or not any((data / "jobs").iterdir())


def test_odd_clips_audio_only_and_a_gif(tmp_path: Path, script: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(clips / "a.mp4")],
        check=True,
    )
    refused(storybot(*render_args(script, tmp_path / "out", "--clips", str(clips))), "has no video stream")
    (clips / "a.mp4").unlink()
    frames = [Image.new("RGB", (40, 40), (n * 40, 0, 0)) for n in range(5)]
    frames[0].save(clips / "b.gif", save_all=True, append_images=frames[1:], duration=100)
    out = tmp_path / "out"
    rendered(storybot(*render_args(script, out, "--clips", str(clips))), out)


def test_truncated_and_oversized_images(tmp_path: Path, script: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (64, 64), "red").save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (images / "b.png").write_bytes(data[: len(data) // 2])
    refused(storybot(*render_args(script, tmp_path / "out", "--images", str(images))), "b.png")
    (images / "b.png").unlink()
    header = bytearray(data)  # a PNG whose header claims 100000 x 100000 pixels
    header[16:24] = (100_000).to_bytes(4, "big") * 2
    (images / "c.png").write_bytes(bytes(header))
    refused(storybot(*render_args(script, tmp_path / "out", "--images", str(images))), "c.png")
    assert not (tmp_path / "out").exists()


def test_filter_metacharacters_in_every_path(tmp_path: Path) -> None:
    root = tmp_path / "it's [a], b; c: d=e\\f"
    root.mkdir()
    (root / "s, 1.txt").write_text(SHORT, encoding="utf-8")
    out = root / "out'[0:v]"
    rendered(storybot(*render_args(root / "s, 1.txt", out)), out)


def test_double_answer_is_refused_once_approved(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "s.txt").write_text("The lamp went dark. It came back on.", encoding="utf-8")
    made = storybot("make", "a lamp", "--script", str(tmp_path / "s.txt"), "--duration", "8", "--json", data=data)
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    assert job["status"] == "waiting"
    before = snapshot(data / "jobs" / job["job_id"])
    refused(storybot("answer", job["job_id"], "replace", str(tmp_path / "missing.txt"), data=data), "not found")
    refused(storybot("answer", job["job_id"], "pick", "1", data=data), "answer")
    assert snapshot(data / "jobs" / job["job_id"]) == before
    status = json.loads(storybot("status", job["job_id"], "--json", data=data).stdout)
    assert status["status"] == "waiting" and status["waiting_for"] == "approve_script"


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
    debris = job_dir / f".voice.{_dead_pid()}-0badc0de.tmp.wav"
    debris.write_bytes(b"half")
    result = storybot("resume", job_dir.name, "--yes", "--json", data=data)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "done"
    info = probe(Path(payload["artifacts"]["final_video"]))
    assert info.video and info.audio and (info.video.width, info.video.height) == (1080, 1080)
    assert not debris.exists() and not list(job_dir.rglob("*.tmp*"))

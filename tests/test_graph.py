"""The production graph end to end through `storybot`: approvals, revisions, re-rolls, crashes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli import ok_json, storybot
from tests.test_render import check_video
from tools.models import Aspect

pytestmark = pytest.mark.slow
PROMPT = "A lighthouse keeper who befriends a lost whale"


def stages(data: Path, job_id: str) -> dict[str, dict[str, Any]]:
    status = ok_json(storybot("status", job_id, "--json", data=data))
    return {s["name"]: s for s in status["stages"]}


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_make_yes_produces_a_finished_video(tmp_path: Path) -> None:
    made = storybot("make", PROMPT, "--yes", "--duration", "12", "--json", data=tmp_path)
    result = ok_json(made)
    assert result["status"] == "done" and result["waiting_for"] is None
    assert "deserialization" not in made.stderr, "every model in the job state is revived from checkpoints"
    art = result["artifacts"]
    meta = json.loads(Path(art["metadata"]).read_text())
    check_video(Path(art["final_video"]), Aspect.portrait, meta["voice"]["duration"])
    assert meta["loudness"]["integrated_lufs"] == pytest.approx(-14, abs=1) and meta["loudness"]["true_peak_dbtp"] <= -1
    assert Path(art["final_video"]).is_relative_to(tmp_path / "jobs" / result["job_id"])
    assert len(art["keyframes"]) == meta["shots"] and all(Path(k).is_file() for k in art["keyframes"])
    for key in ("subtitles_srt", "subtitles_vtt", "subtitles_ass", "thumbnail", "shots", "script", "voice"):
        assert Path(art[key]).is_file(), key
    # the script length follows --duration and the voice's measured rate
    assert meta["voice"]["duration"] == pytest.approx(12, rel=0.15)
    platforms = meta["platforms"]
    assert 0 < len(platforms["title"]) <= 100 and platforms["description"]
    assert set(platforms["hashtags"]) == {"youtube_shorts", "tiktok", "instagram_reels"}
    status = ok_json(storybot("status", result["job_id"], "--json", data=tmp_path))
    names = [s["name"] for s in status["stages"]]
    assert names[0] == "collect_ideas" and names[-1] == "deliver" and len(names) == 15
    by_name = {s["name"]: s for s in status["stages"]}
    # a prompt is the idea: no idea stages, straight to the script
    assert [by_name[n]["status"] for n in ("collect_ideas", "story_ideas", "pick_idea")] == ["skipped"] * 3
    assert by_name["story_ideas"]["provider"] == "the prompt is the idea"
    assert by_name["write_script"]["provider"] == "offline"
    assert by_name["vision_guidance"]["status"] == "skipped" and by_name["revise_script"]["status"] == "skipped"
    for name in ("voice", "subtitles", "plan_scenes", "keyframes", "animate", "post_produce", "deliver"):
        assert by_name[name]["status"] == "done" and by_name[name]["runs"] == 1, by_name[name]
    jobs = ok_json(storybot("jobs", "--json", data=tmp_path))
    assert jobs[0]["job_id"] == result["job_id"] and jobs[0]["status"] == "done"


def test_approvals_revisions_and_reroll(tmp_path: Path) -> None:
    first = ok_json(storybot("make", PROMPT, "--duration", "10", "--ideas", "--json", data=tmp_path))
    job = first["job_id"]
    assert first["status"] == "waiting" and first["waiting_for"] == "pick_idea"
    assert len(first["approval"]["ideas"]) >= 2
    text = storybot("status", job, data=tmp_path)
    assert "waiting" in text.stdout

    picked = ok_json(storybot("answer", job, "pick", "2", "--json", data=tmp_path))
    assert picked["waiting_for"] == "approve_script" and picked["approval"]["version"] == 1
    revised = ok_json(storybot("answer", job, "revise", "make it about courage", "--json", data=tmp_path))
    assert revised["waiting_for"] == "approve_script" and revised["approval"]["version"] == 2
    folder = tmp_path / "jobs" / job
    v1, v2 = (folder / "script.v1.txt").read_text(), (folder / "script.v2.txt").read_text()
    assert v1 != v2 and revised["approval"]["script"].strip() == v2.strip()

    replacement = tmp_path / "mine.txt"
    replacement.write_text(
        "The keeper lit the great lamp every night for a year. Far out at sea, the lost whale "
        "answered with a long and lonely song. One winter morning the whale swam home at last, "
        "and the keeper finally slept until noon.",
        encoding="utf-8",
    )
    replaced = ok_json(storybot("answer", job, "replace", str(replacement), "--json", data=tmp_path))
    assert replaced["approval"]["version"] == 3
    assert (folder / "script.v3.txt").read_text().strip() == replacement.read_text().strip()

    shown = ok_json(storybot("answer", job, "approve", "--json", data=tmp_path))
    assert shown["waiting_for"] == "approve_keyframes"
    assert (folder / "script.txt").read_text().strip() == replacement.read_text().strip()
    before = {Path(k).name: digest(k) for k in shown["approval"]["keyframes"]}
    assert len(before) >= 2

    rerolled = ok_json(storybot("answer", job, "reroll", "2", "--json", data=tmp_path))
    assert rerolled["waiting_for"] == "approve_keyframes"
    after = {Path(k).name: digest(k) for k in rerolled["approval"]["keyframes"]}
    changed = [name for name in before if before[name] != after[name]]
    assert changed == ["shot_02.png"]
    assert stages(tmp_path, job)["keyframes"]["runs"] == 2

    done = ok_json(storybot("answer", job, "approve", "--json", data=tmp_path))
    assert done["status"] == "done"
    runs = stages(tmp_path, job)
    assert runs["write_script"]["runs"] == 1 and runs["revise_script"]["runs"] == 2
    assert runs["voice"]["runs"] == 1 and runs["animate"]["runs"] == 1

    # a stale answer (the job is done) is refused and changes nothing
    stale = storybot("answer", job, "approve", data=tmp_path)
    assert stale.returncode == 2 and "not waiting" in stale.stderr and len(stale.stderr.strip().splitlines()) == 1
    assert stages(tmp_path, job) == runs


def test_user_script_skips_ideas_and_cancel(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("A short story of mine. It has two sentences.", encoding="utf-8")
    waiting = ok_json(storybot("make", "my story", "--script", str(script), "--json", data=tmp_path))
    assert waiting["waiting_for"] == "approve_script"
    job = waiting["job_id"]
    st = stages(tmp_path, job)
    assert [st[n]["status"] for n in ("collect_ideas", "story_ideas", "pick_idea")] == ["skipped"] * 3
    assert st["write_script"]["provider"] == "user"
    bad = storybot("answer", job, "regenerate", data=tmp_path)
    assert bad.returncode == 2 and "replace" in bad.stderr
    wrong = storybot("answer", job, "reroll", "1", data=tmp_path)
    assert wrong.returncode == 2
    cancelled = ok_json(storybot("answer", job, "cancel", "--json", data=tmp_path))
    assert cancelled["status"] == "cancelled"
    assert stages(tmp_path, job)["voice"]["runs"] == 0


CRASHES = ["story_ideas:end", "voice:end", "plan_scenes:start", "keyframes:end", "animate:end", "post_produce:start"]


@pytest.mark.parametrize("crash", CRASHES)
def test_kill_9_then_resume_finishes_without_repeating_finished_stages(tmp_path: Path, crash: str) -> None:
    ideas = ["--ideas"] if crash.startswith("story_ideas") else []  # a prompt alone skips the idea stages
    killed = storybot(
        "make", PROMPT, *ideas, "--yes", "--duration", "8", "--json", data=tmp_path, env={"STORYBOT_CRASH_AT": crash}
    )
    assert killed.returncode == -9, killed.stderr
    job = ok_json(storybot("jobs", "--json", data=tmp_path))[0]["job_id"]
    crashed_stage = crash.split(":")[0]
    before = stages(tmp_path, job)
    assert before[crashed_stage]["runs"] == 1
    resumed = ok_json(storybot("resume", job, "--yes", "--json", data=tmp_path))
    assert resumed["status"] == "done", resumed
    after = stages(tmp_path, job)
    order = list(after)
    for name in order[: order.index(crashed_stage)]:
        assert after[name]["runs"] == before[name]["runs"], (name, before[name], after[name])
    assert after[crashed_stage]["runs"] == 2
    art = resumed["artifacts"]
    meta = json.loads(Path(art["metadata"]).read_text())
    check_video(Path(art["final_video"]), Aspect.portrait, meta["voice"]["duration"])


def test_failed_stage_is_retried_then_marked_failed_and_resumable(tmp_path: Path) -> None:
    broken = {"STORYBOT_FFMPEG": str(tmp_path / "no-ffmpeg-here")}
    failed = storybot("make", PROMPT, "--yes", "--duration", "8", "--json", data=tmp_path, env=broken)
    assert failed.returncode == 1
    result = json.loads(failed.stdout)
    assert result["status"] == "failed" and result["error"]
    job = result["job_id"]
    st = stages(tmp_path, job)
    assert st["voice"]["status"] == "failed" and st["voice"]["runs"] == 3  # retried with backoff
    assert st["write_script"]["runs"] == 1
    resumed = ok_json(storybot("resume", job, "--yes", "--json", data=tmp_path))
    assert resumed["status"] == "done"
    assert stages(tmp_path, job)["write_script"]["runs"] == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["make", ""], "empty"),
        (["make", "x" * 1001], "too long"),
        (["make", "\u200b\u200b  "], "empty"),
        (["make", "ok", "--aspect", "4:3"], "aspect"),
        (["make", "ok", "--duration", "3"], "duration"),
        (["make", "ok", "--duration", "200"], "duration"),
        (["make", "ok", "--script", "/nonexistent/script.txt"], "not found"),
        (["make", "ok", "--voice", "klingon"], "voice"),
        (["status", "0123456789ab", "--json"], "unknown job"),
        (["resume", "../../etc"], "unknown job"),
        (["answer", "nope", "approve"], "unknown job"),
        (["answer", "0123456789ab", "frobnicate"], "unknown job"),
    ],
)
def test_bad_input_exits_2_and_creates_no_job(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = storybot(*args, data=tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())


def test_real_kill_9_from_outside_during_the_final_cut(tmp_path: Path) -> None:
    """A SIGKILL sent by another process while the video is being cut, then resume: the stages before
    it (animate's cut sheet included) are not run again."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "storybot", "make", PROMPT, "--yes", "--duration", "20", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "STORYBOT_DATA_DIR": str(tmp_path)},
    )
    db = tmp_path / "jobs.sqlite"
    deadline = time.monotonic() + 300
    row = None
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    row = conn.execute(
                        "SELECT job_id FROM stages WHERE name = 'post_produce' AND status = 'running'"
                    ).fetchone()
            except sqlite3.OperationalError:  # the process is still creating its tables
                row = None
            if row:
                break
        time.sleep(0.05)
    assert row, "never saw the post_produce stage running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    job = row[0]
    before = stages(tmp_path, job)
    assert before["post_produce"]["status"] == "running" and before["animate"]["runs"] == 1
    resumed = ok_json(storybot("resume", job, "--yes", "--json", data=tmp_path))
    assert resumed["status"] == "done"
    after = stages(tmp_path, job)
    for name in ("voice", "subtitles", "plan_scenes", "keyframes", "animate"):
        assert after[name]["runs"] == 1
    assert after["post_produce"]["runs"] == 2


def test_hostile_prompt_still_makes_a_clean_video(tmp_path: Path) -> None:
    prompt = "@everyone <@123456> a cat\u200b\u202e who [hacks]:the;filter,graph 'quote' \\n\\N {\\b1} \x07 ../../etc"
    data = tmp_path / "elsewhere"
    result = ok_json(storybot("make", prompt, "--yes", "--duration", "6", "--json", "--data", str(data), data=tmp_path))
    assert result["status"] == "done"
    assert Path(result["artifacts"]["final_video"]).is_relative_to(data / "jobs" / result["job_id"])
    script = Path(result["artifacts"]["script"]).read_text(encoding="utf-8")
    for bad in ("@everyone", "<@", "\u200b", "\u202e", "\x07"):
        assert bad not in script
    job_files = {p.name for p in (data / "jobs" / result["job_id"]).iterdir()}
    assert "etc" not in job_files and not (tmp_path / "etc").exists()
    assert ok_json(storybot("jobs", "--json", data=data))[0]["job_id"] == result["job_id"]

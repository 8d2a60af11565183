"""Hostile command lines: job ids that are paths or SQL, script paths that are devices, folders or FIFOs,
out-of-range flag values, and answers to a job that is not asking. Each is refused with one clear line and
creates or changes nothing.

The numbers in the comments are the defects of issue 14.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.hostile_helpers import (
    refused,
    render_args,
    report_worst_refusal,
    script,
    snapshot,
    storybot,
)

# the fixtures from tests/hostile_helpers.py that this module uses
__all__ = ["report_worst_refusal", "script"]


# --- 10. job ids ---------------------------------------------------------------------------------


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


# --- cases that already passed, kept so they stay passing ------------------------------------------


@pytest.mark.parametrize("path_trick", ["/dev/zero", "/", "/etc/shadow-nope", "fifo"])
def test_path_tricks_for_the_script(tmp_path: Path, path_trick: str) -> None:
    if path_trick == "fifo":
        os.mkfifo(tmp_path / "fifo")
        path_trick = str(tmp_path / "fifo")
    result = storybot(*render_args(Path(path_trick), tmp_path / "out"), timeout=30)
    refused(result, "", case="path trick")
    assert result.elapsed < 20 and not (tmp_path / "out").exists()  # type: ignore[attr-defined]


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

"""Every stage has one deadline for all its retries and providers (STORYBOT_STAGE_TIMEOUT): a writer
that answers a byte at a time, or never, fails its stage in one line, and the job can be resumed."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.cli import storybot
from tests.fake_openai import fake_openai
from tests.local_http import Reply
from tests.test_llm import canned

KEY = "sk-deadline-test-0000"


def stalls() -> Reply:
    time.sleep(9)  # inside the writer's own 60 s timeout, past the stage's 4 s
    return Reply.json({"error": {"message": "late"}}, 500)


def test_a_stage_past_its_deadline_fails_in_one_line_not_retried(tmp_path: Path) -> None:
    with fake_openai(canned([20]), faults=[stalls] * 3) as llm:
        env = {
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": llm.url,
            "STORYBOT_LLM_MODEL": "m",
            "STORYBOT_STAGE_TIMEOUT": "4",
        }
        started = time.monotonic()
        failed = storybot("make", "a lighthouse keeper", "--yes", "--duration", "8", "--json", data=tmp_path, env=env)
        took = time.monotonic() - started
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
        job_id = json.loads(failed.stdout)["job_id"]
        status = json.loads(storybot("status", job_id, "--json", data=tmp_path, env=env).stdout)
        assert status["status"] == "failed"
        assert status["error"] == (
            "write_script ran past its 4 s limit (STORYBOT_STAGE_TIMEOUT); finished work is kept and the job can "
            "be resumed"
        )
        assert len(llm.requests) <= 1 and took < 30, (len(llm.requests), took)  # not retried by the graph
        assert KEY not in failed.stdout + failed.stderr

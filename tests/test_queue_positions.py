"""A job's place in the shared queue of job steps, on real PostgreSQL with no runner running (so every
step waits, as behind busy runners): what `storybot status`, the HTTP API and the bot's status message
say, and how the places move when a runner takes a step or a dead runner's step is queued again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import bot.status
from bot.records import Records
from bot.status import StatusBoards
from graph.api import JobService
from graph.steps import QUEUE
from service.app import serving
from service.tokens import TokenStore
from tests.cli import ok_json, storybot
from tools.settings import Settings


def _embed_text(boards: StatusBoards, job_id: str) -> str:
    return str(boards.embed(job_id).to_dict())


async def _until_shown(boards: StatusBoards, job_id: str, text: str, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while text not in _embed_text(boards, job_id):
        assert time.monotonic() < deadline, _embed_text(boards, job_id)
        await asyncio.sleep(0.05)


async def test_jobs_waiting_for_a_runner_hear_their_place_and_move_up(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"STORYBOT_DATABASE_URL": pg_url}
    assert storybot("db", "upgrade", data=tmp_path / "admin", env=env).returncode == 0
    settings = Settings(
        STORYBOT_DATA_DIR=tmp_path / "api",
        STORYBOT_DATABASE_URL=pg_url,
        STORYBOT_HTTP_PORT=0,
        STORYBOT_LINK_SECRET="s" * 32,
    )
    tokens = TokenStore.of(settings)
    people = [tokens.create(name).token for name in ("alice", "bob", "carol")]
    admin = tokens.create("root", admin=True).token
    monkeypatch.setattr(bot.status, "PLACE_POLL_S", 0.1)  # the bot reads places every 5 s

    def cli_status(job_id: str) -> dict[str, Any]:
        return dict(ok_json(storybot("status", job_id, "--json", data=tmp_path / "client", env=env)))

    async with (
        JobService.open(settings) as svc,
        serving(svc, settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {admin}"}) as api,
    ):

        async def places(jobs: list[str]) -> list[int | None]:
            return [(await api.get(f"/v1/jobs/{job_id}")).json()["queue_position"] for job_id in jobs]

        jobs = []
        for token in people:  # one job each, one after the other
            made = await api.post(
                "/v1/jobs",
                json={"prompt": "A lighthouse keeper", "duration": 8},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert made.status_code == 201, made.text
            jobs.append(made.json()["job_id"])
        shown = [cli_status(job_id) for job_id in jobs]
        assert [(s["status"], s["queue_position"]) for s in shown] == [("queued", 1), ("queued", 2), ("queued", 3)]
        assert await places(jobs) == [1, 2, 3]
        human = storybot("status", jobs[2], data=tmp_path / "client", env=env)
        assert f"{jobs[2]}  queued (position 3 in the queue)" in human.stdout, human.stderr

        boards = StatusBoards(SimpleNamespace(), svc, Records(tmp_path / "bot.sqlite"))  # type: ignore[arg-type]
        keeping = asyncio.create_task(boards.keep_place(jobs[2]))  # what the bot runs while it follows a job
        try:
            await _until_shown(boards, jobs[2], "queue position 3")
            assert "Queued" in _embed_text(boards, jobs[2])

            # a runner takes the first step, as `storybot runner`'s worker does: the others move up
            assert svc.steps is not None
            manager = svc.steps.app.job_manager
            taken = await manager.fetch_job(queues=[QUEUE], worker_id=await manager.register_worker())
            assert taken is not None and taken.lock == jobs[0]
            assert await places(jobs) == [None, 1, 2]
            assert cli_status(jobs[1])["queue_position"] == 1
            await _until_shown(boards, jobs[2], "queue position 2")

            # its runner dies: the step is queued again with its own id, so it is first again
            await manager.retry_job(taken)
            assert await places(jobs) == [1, 2, 3]
            await _until_shown(boards, jobs[2], "queue position 3")
        finally:
            keeping.cancel()

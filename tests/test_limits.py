"""The per-user limits: the count and the job's insert are one transaction, so two front ends (two bot
replicas, the API and the bot) asking at once for someone with one slot left create exactly one job,
on SQLite (BEGIN IMMEDIATE) and on a real PostgreSQL (an advisory lock on the requester)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import update

from graph import tables as t
from graph.state import STAGES, JobRequest
from graph.store import JobStore, LimitReached, OverLimit, new_job_id
from tests.cli import storybot
from tools.settings import Settings

AT_ONCE = 8


def _settings(tmp_path: Path, pg_url: str | None) -> Settings:
    if pg_url is None:
        return Settings(STORYBOT_DATA_DIR=tmp_path)
    assert storybot("db", "upgrade", data=tmp_path, env={"STORYBOT_DATABASE_URL": pg_url}).returncode == 0
    return Settings(STORYBOT_DATA_DIR=tmp_path, STORYBOT_DATABASE_URL=pg_url)


def _all_at_once(store: JobStore, requester: str, max_active: int, max_per_hour: int) -> list[OverLimit | None]:
    """AT_ONCE threads, each on its own connection, released together, each trying to create a job."""
    gate = threading.Barrier(AT_ONCE)

    def one(_: int) -> OverLimit | None:
        gate.wait()
        request = JobRequest(prompt="a lighthouse keeper")
        return store.create_within_limits(new_job_id(), requester, None, request, STAGES, max_active, max_per_hour)

    with ThreadPoolExecutor(AT_ONCE) as pool:
        return list(pool.map(one, range(AT_ONCE)))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    pg_url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return JobStore.of(_settings(tmp_path, pg_url))


def test_of_simultaneous_requests_with_one_active_slot_exactly_one_job_is_created(store: JobStore) -> None:
    outcomes = _all_at_once(store, "discord:111", max_active=1, max_per_hour=100)
    assert outcomes.count(None) == 1
    refusals = [o for o in outcomes if o is not None]
    assert all(o.limit == "active" and o.allowed == 1 and len(o.active) == 1 for o in refusals)
    mine = store.of_requester("discord:111")
    assert len(mine) == 1 and mine[0].status == "queued"
    assert [s.name for s in store.stage_list(mine[0].job_id)] == STAGES  # the job's stages came with it
    assert refusals[0].active == [mine[0].job_id]
    # someone else is not held back by that person's limit
    assert _all_at_once(store, "discord:222", max_active=1, max_per_hour=100).count(None) == 1


def test_the_hourly_limit_is_atomic_too_and_says_when_one_more_fits(store: JobStore) -> None:
    outcomes = _all_at_once(store, "cli:alice", max_active=100, max_per_hour=3)
    assert outcomes.count(None) == 3
    refusal = next(o for o in outcomes if o is not None)
    assert refusal.limit == "hourly" and refusal.recent == 3
    assert 3590 < refusal.retry_after <= 3600
    assert len(store.of_requester("cli:alice")) == 3
    now = store.over_limits("cli:alice", 100, 3)
    assert now is not None and (now.limit, now.recent) == ("hourly", 3)
    assert now.retry_after == pytest.approx(refusal.retry_after, abs=5)
    # jobs older than an hour no longer count
    for job in store.of_requester("cli:alice"):
        store.update(job.job_id, status="done")
    with store.engine.begin() as db:
        db.execute(update(t.jobs).values(created=time.time() - 3601))
    assert store.over_limits("cli:alice", 100, 3) is None


async def test_job_service_start_within_limits_refuses_with_the_reason(tmp_path: Path) -> None:
    from graph.service import JobService, Requester

    settings = Settings(STORYBOT_DATA_DIR=tmp_path, STORYBOT_MAX_ACTIVE_JOBS_PER_USER=1)
    alice = Requester(id="cli:alice")
    async with JobService.open(settings) as service:
        store = service.store
        store.create(new_job_id(), alice.id, None, JobRequest(prompt="first"), STAGES)  # one in progress
        before = set(p.name for p in (tmp_path / "jobs").iterdir()) if (tmp_path / "jobs").exists() else set()
        with pytest.raises(LimitReached) as refused:
            await service.start(JobRequest(prompt="second"), alice, within_limits=True)
        assert refused.value.over.limit == "active" and "limit is 1" in str(refused.value)
        assert len(store.of_requester(alice.id)) == 1
        after = set(p.name for p in (tmp_path / "jobs").iterdir()) if (tmp_path / "jobs").exists() else set()
        assert after == before  # no folder made for a job that was refused
        assert service.over_limit(alice) == refused.value.over

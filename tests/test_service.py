"""JobService directly: who may answer, stale and double answers, many jobs in one process."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from graph.events import Event
from graph.service import JobService, NotAllowed, Requester, StaleAnswer
from graph.state import Answer, JobRequest
from tools.settings import get_settings

pytestmark = pytest.mark.slow
ALICE = Requester(id="discord:1", name="alice")
MALLORY = Requester(id="discord:2", name="mallory")
MOD = Requester(id="discord:3", name="mod", approver=True)
SCRIPT = "The lamp went dark. The keeper climbed the stairs. The whale sang, and the light came back."


def service(tmp_path: Path) -> AbstractAsyncContextManager[JobService]:
    return JobService.open(get_settings().model_copy(update={"data_dir": tmp_path}))


async def until_waiting(svc: JobService, job_id: str) -> str:
    record = await svc.wait(job_id)
    assert record.status == "waiting", record
    assert record.interrupt_id
    return record.interrupt_id


async def test_only_requester_or_approver_may_answer_and_stale_ids_are_refused(tmp_path: Path) -> None:
    async with service(tmp_path) as svc:
        job = await svc.start(JobRequest(prompt="keeper", script_text=SCRIPT, duration=8), ALICE)
        first = await until_waiting(svc, job)
        assert svc.get(job).waiting_for == "approve_script"
        with pytest.raises(NotAllowed):
            await svc.answer(job, MALLORY, Answer(action="approve"), first)
        with pytest.raises(NotAllowed):
            await svc.cancel(job, MALLORY)
        assert svc.get(job).status == "waiting" and svc.get(job).interrupt_id == first
        with pytest.raises(StaleAnswer):
            await svc.answer(job, ALICE, Answer(action="approve"), "not-the-pending-interrupt")
        # a moderator may steer: replace the script, which asks again with a new interrupt id
        await svc.answer(job, MOD, Answer(action="replace", text=SCRIPT + " The end."), first)
        second = await until_waiting(svc, job)
        assert second != first and svc.get(job).approval.version == 2  # type: ignore[union-attr]
        # the old button (first interrupt id) is stale now: refused, nothing changes
        with pytest.raises(StaleAnswer):
            await svc.answer(job, ALICE, Answer(action="approve"), first)
        assert svc.get(job).interrupt_id == second
        await svc.cancel(job, ALICE)
        assert (await svc.wait(job)).status == "cancelled"


async def test_double_click_approves_once(tmp_path: Path) -> None:
    async with service(tmp_path) as svc:
        job = await svc.start(JobRequest(prompt="keeper", script_text=SCRIPT, duration=8), ALICE)
        pending = await until_waiting(svc, job)
        results = await asyncio.gather(
            svc.answer(job, ALICE, Answer(action="approve"), pending),
            svc.answer(job, ALICE, Answer(action="approve"), pending),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 1
        assert sum(isinstance(r, StaleAnswer) for r in results) == 1
        await until_waiting(svc, job)
        assert svc.get(job).waiting_for == "approve_keyframes"
        stages = {s.name: s for s in svc.status(job).stages}
        assert stages["approve_script"].runs == 2 and stages["voice"].runs == 1


async def test_many_jobs_at_once_with_progress_events_and_low_loop_lag(tmp_path: Path) -> None:
    async with service(tmp_path) as svc:
        ids = [
            await svc.start(JobRequest(prompt=f"story {n}", script_text=SCRIPT, duration=8), ALICE, auto_approve=True)
            for n in range(3)
        ]
        streams = [svc.events(job) for job in ids]

        async def collect(stream: object) -> list[Event]:
            return [e async for e in stream]  # type: ignore[attr-defined]

        seen = await asyncio.gather(*(collect(s) for s in streams))
        for job, events in zip(ids, seen, strict=True):
            kinds = [e.kind for e in events]
            assert kinds[-1] == "done", kinds
            assert {"stage_started", "stage_finished", "progress"} <= set(kinds)
            assert events[-1].result and Path(events[-1].result.artifacts.final_video).is_file()
            assert svc.get(job).status == "done"
        # CPU-heavy work runs in subprocesses and bounded threads at niceness 10, FFmpeg is spawned
        # with vfork and its inputs probed off the loop: three neural narrations at once on 2 cores
        # measured 25-46 ms (a preexec_fn fork made it 200-410 ms). Discord allows 3 s.
        print(f"largest event-loop lag with 3 jobs: {svc.lag.max_ms:.1f} ms")
        assert svc.lag.max_ms < 250, svc.lag.max_ms

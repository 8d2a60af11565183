"""`storybot runner`: takes job steps from the shared queue (PostgreSQL) and runs them, on any machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from storybot.app import app, err, run_async, settings_for
from tools.errors import BadInput, StorybotError
from tools.net.redact import redact_logs

if TYPE_CHECKING:
    import procrastinate

DataOpt = Annotated[Path | None, typer.Option("--data", help="Folder for job folders (this machine's scratch).")]
log = logging.getLogger("storybot.runner")


@app.command()
def runner(
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Job steps run at once (default: STORYBOT_RENDER_SLOTS).")
    ] = None,
    data: DataOpt = None,
) -> None:
    """Run job steps from the shared queue (STORYBOT_DATABASE_URL), N at a time, until stopped."""
    from graph.database import is_postgres
    from graph.service import RUNNER, JobService
    from graph.steps import HEARTBEAT_S, QUEUE, STALLED_AFTER_S, TASK, JobStep, queue_app

    settings = settings_for(data)
    # the queue is what bounds the jobs a runner runs: as many render slots as steps it takes, so no
    # step it took waits here for a slot while another runner is idle
    concurrency = concurrency or settings.render_slots
    settings = settings.model_copy(update={"render_slots": concurrency})
    if not is_postgres(settings):
        raise BadInput(
            "storybot runner needs STORYBOT_DATABASE_URL=postgresql://...: on one box `storybot make` runs jobs itself"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    redact_logs(settings)

    async def go() -> int:
        async with JobService.open(settings, runner=True) as svc:
            queue = queue_app(settings)

            @queue.task(name=TASK, queue=QUEUE)
            async def job_step(step: dict[str, Any]) -> None:
                await svc.run_step(JobStep.model_validate(step))

            async with queue.open_async():
                watchdog = asyncio.create_task(_retry_stalled(queue, TASK, STALLED_AFTER_S, HEARTBEAT_S))
                worker = asyncio.create_task(
                    queue.run_worker_async(
                        queues=[QUEUE],
                        concurrency=concurrency,
                        name=f"{RUNNER[0]}:{RUNNER[1]}",
                        install_signal_handlers=False,  # SIGTERM is run_async's: see below
                        update_heartbeat_interval=HEARTBEAT_S,
                        stalled_worker_timeout=STALLED_AFTER_S,
                        delete_jobs="successful",
                    )
                )
                host, pid = RUNNER
                err.print(f"storybot runner {host} pid {pid}: {concurrency} job steps at a time", markup=False)
                try:
                    await asyncio.wait({worker})
                finally:
                    # stopping (SIGTERM, Ctrl-C): first our watchdog (it would take our own steps for a
                    # dead runner's), then hand the jobs back (their steps end), then the worker
                    watchdog.cancel()
                    await svc.close()
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                if (stopped := worker.exception()) is not None:  # its database connections gave up
                    raise StorybotError(f"the job queue stopped taking steps ({stopped}); restart the runner")
        return 0

    run_async(go())


async def _retry_stalled(queue: procrastinate.App, task: str, after: float, every: float) -> None:
    """Steps of a runner that stopped sending heartbeats (killed, its machine gone) go back in the
    queue; their job's lock is already free, so the next runner resumes it from its last stage."""
    while True:
        try:
            for job in await queue.job_manager.get_stalled_jobs(task_name=task, seconds_since_heartbeat=after):
                log.warning("job step %s of a silent runner: queued again", job.id)
                await queue.job_manager.retry_job(job)
        except Exception as exc:  # the database restarting: try again next round
            log.warning("could not look for stalled job steps: %s", exc)
        await asyncio.sleep(every)

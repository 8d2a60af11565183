"""The `celery` backend's worker side: one task, routed to one queue per model family.

Run it with `storybot worker --queue sdxl` on each GPU machine; the worker process keeps the
requested model loaded between tasks. `acks_late` with `task_reject_on_worker_lost` puts a task
whose worker process died back on its queue, and the broker's visibility timeout redelivers a task
whose whole machine vanished. Model errors come back as a result (`error`, `error_kind`), not a
raised exception, so the client reports them (OOM included) with the stage and shot.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from celery import Celery, Task

from gpu_workers.protocol import Family

TASK_NAME = "storybot.gpu.run"


def make_app(redis_url: str, visibility_timeout: float = 3600) -> Celery:
    app = Celery("storybot", broker=redis_url, backend=redis_url)
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=True, task_serializer="json", result_serializer="json", accept_content=["json"],
        broker_transport_options={"visibility_timeout": visibility_timeout},
        result_backend_transport_options={"visibility_timeout": visibility_timeout},
        result_expires=24 * 3600, broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
    app.task(bind=True, name=TASK_NAME)(run_task)
    return app


@cache
def _runner(family: Family, model: str) -> Any:
    from gpu_workers.families import load

    return load(family, model)


def run_task(self: Task, family: Family, model: str, params: dict[str, Any]) -> dict[str, Any]:
    from gpu_workers.serve import error_kind, one_line

    def progress(step: int, total: int) -> None:
        self.update_state(state="PROGRESS", meta={"step": step, "total": total, "pid": os.getpid()})

    try:
        runner = _runner(family, model)
    except Exception as exc:
        return {"error": f"{family} model {model} failed to load: {one_line(exc)}", "error_kind": "load"}
    progress(0, 1)
    try:
        return {"result": runner(params, progress)}
    except Exception as exc:
        return {"error": one_line(exc), "error_kind": error_kind(exc)}


app = make_app(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))

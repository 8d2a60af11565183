"""The `celery` backend's worker side: one task, routed to one queue per model family.

Run one worker process per GPU and family: `CUDA_VISIBLE_DEVICES=0 storybot worker --queue sdxl`.
A worker process keeps one model loaded (a cache of one: a task for another model unloads it
first). `acks_late` with `task_reject_on_worker_lost` puts a task whose worker process died back on
its queue, and the broker's visibility timeout redelivers a task whose whole machine vanished.
Every task carries `expires` and a time limit (set by the client). Model errors come back as a
result (`error`, `error_kind`), not a raised exception, so the client reports them (OOM included)
with the stage and shot. A cancel is a Redis flag the task's progress callback checks each step
(`revoke` alone cannot stop a task already running in a prefork child).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger

from gpu_workers.protocol import Family

TASK_NAME = "storybot.gpu.run"
CANCEL_PREFIX = "storybot:gpu:cancel:"
CANCEL_TTL = 3600


def make_app(redis_url: str, visibility_timeout: float = 3600) -> Celery:
    app = Celery("storybot", broker=redis_url, backend=redis_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": visibility_timeout},
        result_backend_transport_options={"visibility_timeout": visibility_timeout},
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(bind=True, name=TASK_NAME)(run_task)
    return app


class _Loaded:
    """The one model this worker process holds."""

    key: tuple[str, str] | None = None
    runner: Any = None
    poisoned = False  # a CUDA error (not OOM) was reported: this process exits before its next task


def _runner(family: Family, model: str) -> Any:
    if _Loaded.poisoned:
        os._exit(70)  # the task is redelivered (acks_late) to the fresh process the pool starts
    if _Loaded.key != (family, model):
        from gpu_workers.families import free_memory, load

        _Loaded.key, _Loaded.runner = None, None
        free_memory()  # the previous model's memory goes back before the next loads
        from tools.gpu.pull import local_model

        # a hub id pulled on this machine (`storybot models pull`) loads from its folder
        _Loaded.runner, _Loaded.key = load(family, local_model(family, model)), (family, model)
    return _Loaded.runner


def cancel_requested(redis_url: str, task_id: str) -> bool:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        return bool(client.exists(CANCEL_PREFIX + task_id))


def request_cancel(redis_url: str, task_id: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.set(CANCEL_PREFIX + task_id, 1, ex=CANCEL_TTL)


log = get_task_logger("storybot.gpu")


def run_task(self: Task, family: Family, model: str, params: dict[str, Any], shipped: bool = False) -> dict[str, Any]:
    """One request. `shipped`: its files are object keys (tools/gpu/shipping.py): fetched into a
    scratch folder of this worker's, outputs uploaded under the keys the client named."""
    if not shipped:
        return _run(self, family, model, params)
    from tools.gpu.shipping import fetch_inputs, put_outputs
    from tools.settings import get_settings
    from tools.storage import get_storage

    storage = get_storage(get_settings())
    scratch = Path(tempfile.mkdtemp(prefix="storybot-gpu-"))
    try:
        local = asyncio.run(fetch_inputs(storage, family, params, scratch))
        log.info("%s request %s: its files fetched from object storage into %s", family, self.request.id, scratch)
        outcome = _run(self, family, model, local)
        if "result" in outcome:
            outcome["result"] = asyncio.run(put_outputs(storage, family, params, scratch, outcome["result"]))
        return outcome
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(self: Task, family: Family, model: str, params: dict[str, Any]) -> dict[str, Any]:
    from gpu_workers.families import free_memory
    from gpu_workers.serve import Cancelled, error_kind, one_line

    task_id = str(self.request.id)
    broker = str(self.app.conf.broker_url)

    def progress(step: int, total: int) -> None:
        if cancel_requested(broker, task_id):
            raise Cancelled("cancelled by the client")
        self.update_state(state="PROGRESS", meta={"step": step, "total": total, "pid": os.getpid()})

    try:
        runner = _runner(family, model)
    except Exception as exc:
        return {"error": f"{family} model {model} failed to load: {one_line(exc)}", "error_kind": "load"}
    try:
        progress(0, 1)
        return {"result": runner(params, progress).model_dump()}
    except SoftTimeLimitExceeded:
        return {"error": "the task ran past its time limit", "error_kind": "error"}
    except Exception as exc:
        kind = error_kind(exc)
        _Loaded.poisoned = kind == "fatal"
        return {"error": one_line(exc), "error_kind": kind}
    finally:
        free_memory()


app = make_app(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))

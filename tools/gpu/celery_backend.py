"""The `celery` backend's client side: the same `run` API as the local backend.

Every task is sent with `expires` (a task nobody picked up in time is dropped, not run for a
client that gave up) and hard and soft time limits. Cancelling the awaiting coroutine sets a Redis
flag the running task checks at its next step, then revokes (for a task still queued)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gpu_workers.protocol import Family
from tools.gpu.client import GpuClient, ProgressFn
from tools.gpu.errors import GpuError
from tools.gpu.shipping import Shipment
from tools.storage import Storage

POLL_SECONDS = 0.1


class CeleryBackend(GpuClient):
    def __init__(
        self,
        models: dict[Family, str],
        redis_url: str,
        *,
        request_timeout: float = 1800,
        storage: Storage | None = None,
    ) -> None:
        from tools.gpu.celery_app import make_app

        self.models = models
        self.storage = storage  # remote object storage: files travel as keys (tools/gpu/shipping.py)
        self.redis_url = redis_url
        self.app = make_app(redis_url)
        self.request_timeout = request_timeout
        self.last_task_id: str | None = None

    async def request(self, family: Family, params: dict[str, Any], progress: ProgressFn | None) -> dict[str, Any]:

        if not self.configured(family):
            raise GpuError(f"no {family} model configured", "load")
        if self.storage is None:
            return await self._request(family, params, progress, shipped=False)
        shipment = Shipment(self.storage, family, params)
        try:
            return await shipment.receive(await self._request(family, await shipment.send(), progress, shipped=True))
        finally:
            await shipment.clean()

    async def _request(
        self, family: Family, params: dict[str, Any], progress: ProgressFn | None, shipped: bool
    ) -> dict[str, Any]:
        from tools.gpu.celery_app import TASK_NAME, request_cancel

        limit = self.request_timeout
        result = await asyncio.to_thread(
            self.app.send_task,
            TASK_NAME,
            args=[family, self.models[family], params, shipped],
            queue=family,
            expires=limit,
            time_limit=limit + 60,
            soft_time_limit=limit,
        )
        self.last_task_id = result.id
        deadline = time.monotonic() + limit
        try:
            while True:
                state, info = await asyncio.to_thread(lambda: (result.state, result.info))
                if state == "SUCCESS":
                    break
                if state == "FAILURE":
                    raise GpuError(f"{family}: {info!r}", "error")
                if state == "REVOKED":
                    raise GpuError(f"{family}: the task expired before a worker took it", "timeout")
                if state == "PROGRESS" and progress and isinstance(info, dict) and info.get("total"):
                    progress(int(info["step"]), int(info["total"]))
                if time.monotonic() > deadline:
                    raise GpuError(
                        f"{family} worker ({self.models[family]}): no answer within "
                        f"{limit:.0f} s (is a worker consuming queue {family!r}?)",
                        "timeout",
                    )
                await asyncio.sleep(POLL_SECONDS)
        except BaseException:
            if not result.ready():
                await asyncio.to_thread(request_cancel, self.redis_url, result.id)
                result.revoke()
            raise
        finally:
            # unsubscribe now, while the broker is surely up, not whenever the result is collected
            if (remove := getattr(result.backend, "remove_pending_result", None)) is not None:
                await asyncio.to_thread(remove, result)
        outcome: dict[str, Any] = info
        if "error" in outcome:
            raise GpuError(f"{family}: {outcome['error']}", outcome.get("error_kind", "error"))
        return dict(outcome["result"])

    async def close(self) -> None:
        await asyncio.to_thread(self.app.close)

"""The `celery` backend's client side: the same `run` API as the local backend."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gpu_workers.protocol import Family
from tools.gpu.client import ProgressFn
from tools.gpu.errors import GpuError

POLL_SECONDS = 0.1


class CeleryBackend:
    def __init__(self, models: dict[Family, str], redis_url: str, *, request_timeout: float = 1800) -> None:
        from tools.gpu.celery_app import make_app

        self.models = models
        self.app = make_app(redis_url)
        self.request_timeout = request_timeout

    def configured(self, family: Family) -> bool:
        return bool(self.models.get(family))

    def model(self, family: Family) -> str:
        return self.models[family]

    async def run(self, family: Family, params: dict[str, Any], progress: ProgressFn | None = None) -> dict[str, Any]:
        from tools.gpu.celery_app import TASK_NAME

        if not self.configured(family):
            raise GpuError(f"no {family} model configured", "load")
        result = await asyncio.to_thread(self.app.send_task, TASK_NAME, args=[family, self.models[family], params],
                                         queue=family)
        deadline = time.monotonic() + self.request_timeout
        try:
            while True:
                state, info = await asyncio.to_thread(lambda: (result.state, result.info))
                if state == "SUCCESS":
                    break
                if state == "FAILURE":
                    raise GpuError(f"{family}: {info!r}", "error")
                if state == "PROGRESS" and progress and isinstance(info, dict) and info.get("total"):
                    progress(int(info["step"]), int(info["total"]))
                if time.monotonic() > deadline:
                    raise GpuError(f"{family} worker ({self.models[family]}): no answer within "
                                   f"{self.request_timeout:.0f} s (is a worker consuming queue {family!r}?)",
                                   "timeout")
                await asyncio.sleep(POLL_SECONDS)
        except BaseException:
            if not result.ready():
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

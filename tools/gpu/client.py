"""The one client API the graph uses for GPU work, whichever backend runs it.

`run(family, params, progress)` sends one request (the family's params schema from
gpu_workers.protocol, as a dict) and returns its JSON result. Nodes never know whether a local
subprocess or a Celery worker on another machine served it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gpu_workers.protocol import Family

ProgressFn = Callable[[int, int], None]


class GpuClient(Protocol):
    def configured(self, family: Family) -> bool:
        """A model is set for this family (otherwise the stage runs its offline default)."""
        ...

    def model(self, family: Family) -> str: ...

    async def run(self, family: Family, params: dict[str, Any], progress: ProgressFn | None = None) -> dict[str, Any]:
        ...

    async def close(self) -> None: ...

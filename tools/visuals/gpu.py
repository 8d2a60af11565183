"""SDXL on a GPU worker as a visual source. The drawing itself (batches, progress, the worker
client) stays with the graph, which hands a `draw` function in; this wraps it in the seam."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from tools.visuals.base import Job, Miss, ShotBrief, Visual


class GpuSource:
    name: Literal["gpu"] = "gpu"

    def __init__(self, draw: Callable[[list[tuple[ShotBrief, Path]]], Awaitable[None]], label: str) -> None:
        self.draw, self.label = draw, label

    async def make(self, briefs: list[ShotBrief], job: Job) -> list[Visual | Miss]:
        jobs = [(b, job.keyframe(b)) for b in briefs]
        for _, png in jobs:
            png.parent.mkdir(parents=True, exist_ok=True)
        await self.draw(jobs)  # a GPU failure fails the stage: it is retried or resumed, not hidden
        return [Visual(shot=b.index, source=self.label, keyframe=png) for b, png in jobs]

"""SDXL on a GPU worker as a visual source. The drawing itself (batches, progress, the worker
client) stays with the graph, which hands a `draw` function in; this wraps it in the seam."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from tools.errors import BadInput
from tools.settings import Settings
from tools.visuals.base import Draw, Job, Miss, Opening, ShotBrief, SourceRow, Visual


class GpuSource:
    name: Literal["gpu"] = "gpu"

    def __init__(self, draw: Draw, label: str) -> None:
        self.draw, self.label = draw, label

    async def make(self, briefs: list[ShotBrief], job: Job) -> list[Visual | Miss]:
        jobs = [(b, job.keyframe(b)) for b in briefs]
        for _, png in jobs:
            png.parent.mkdir(parents=True, exist_ok=True)
        await self.draw(jobs)  # a GPU failure fails the stage: it is retried or resumed, not hidden
        return [Visual(shot=b.index, source=self.label, keyframe=png) for b, png in jobs]


@asynccontextmanager
async def _open(settings: Settings, opening: Opening) -> AsyncIterator[GpuSource]:
    if opening.draw is None:
        raise BadInput("--visuals gpu needs a GPU worker (STORYBOT_SDXL_MODEL)")
    yield GpuSource(opening.draw, opening.gpu_label)


ROW = SourceRow(
    "gpu",
    "STORYBOT_SDXL_MODEL",
    lambda settings: bool(settings.sdxl_model),
    _open,
    lambda settings, used: f"sdxl ({settings.sdxl_model})" if settings.sdxl_model else "sdxl",
)

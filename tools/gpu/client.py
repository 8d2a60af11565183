"""The one client API the graph uses for GPU work, whichever backend runs it.

`run(family, params, progress)` sends one request (the family's params model from
gpu_workers.protocol) and returns the family's result model (`ImageResult`, `ClipResult`,
`Transcript`, `Verdicts`). Nodes never know whether a local subprocess or a Celery worker on another
machine served it, and never read an untyped dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, overload

from pydantic import BaseModel, ValidationError

from gpu_workers.protocol import (
    RESULTS,
    ClipResult,
    Family,
    ImageResult,
    LtxParams,
    SdxlParams,
    Transcript,
    Verdicts,
    VisionParams,
    WhisperParams,
)
from tools.gpu.errors import GpuError

ProgressFn = Callable[[int, int], None]
PARAMS: dict[Family, type[BaseModel]] = {
    "sdxl": SdxlParams,
    "ltx": LtxParams,
    "whisper": WhisperParams,
    "vision": VisionParams,
}


class GpuClient:
    """A backend implements `request` (a JSON dict in, a JSON dict out); `run` types both ends."""

    models: dict[Family, str]

    def configured(self, family: Family) -> bool:
        """A model is set for this family (otherwise the stage runs its offline default)."""
        return bool(self.models.get(family))

    def model(self, family: Family) -> str:
        return self.models[family]

    async def request(self, family: Family, params: dict[str, Any], progress: ProgressFn | None) -> dict[str, Any]:
        raise NotImplementedError

    @overload
    async def run(
        self, family: Literal["sdxl"], params: SdxlParams, progress: ProgressFn | None = None
    ) -> ImageResult: ...
    @overload
    async def run(
        self, family: Literal["ltx"], params: LtxParams, progress: ProgressFn | None = None
    ) -> ClipResult: ...
    @overload
    async def run(
        self, family: Literal["whisper"], params: WhisperParams, progress: ProgressFn | None = None
    ) -> Transcript: ...
    @overload
    async def run(
        self, family: Literal["vision"], params: VisionParams, progress: ProgressFn | None = None
    ) -> Verdicts: ...

    async def run(self, family: Family, params: BaseModel, progress: ProgressFn | None = None) -> BaseModel:
        if not isinstance(params, PARAMS[family]):
            raise TypeError(f"{family} takes {PARAMS[family].__name__}, not {type(params).__name__}")
        raw = await self.request(family, params.model_dump(), progress)
        try:
            return RESULTS[family].model_validate(raw)
        except ValidationError as exc:
            raise GpuError(
                f"{family} worker ({self.model(family)}) answered an unexpected result: {exc.errors()[0]['msg']}",
                "error",
            ) from None

    async def close(self) -> None: ...

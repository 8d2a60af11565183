"""The judge on a GPU worker (Qwen2.5-VL or another transformers VLM; gpu_workers/families/vision.py)."""

from __future__ import annotations

from pathlib import Path

from gpu_workers.protocol import Verdict, VisionParams
from tools.gpu.client import GpuClient, ProgressFn


class GpuJudge:
    provider = "vlm"

    def __init__(self, gpu: GpuClient, max_new_tokens: int) -> None:
        self.gpu, self.max_new_tokens = gpu, max_new_tokens
        self.model = gpu.model("vision")

    async def judge(
        self, image: Path, prompt: str, previous: Path | None, progress: ProgressFn | None = None
    ) -> Verdict:
        params = VisionParams(
            image=str(image),
            prompt=prompt,
            previous=str(previous) if previous else None,
            max_new_tokens=self.max_new_tokens,
        )
        return await self.gpu.run("vision", params, progress)

    async def close(self) -> None:
        """The GPU client belongs to the service, which closes it."""

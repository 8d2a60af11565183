"""The judge on a GPU worker (Qwen2.5-VL or another transformers VLM; gpu_workers/families/vision.py)."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_workers.protocol import Look, Verdict, VisionParams
from tools.gpu.client import GpuClient, ProgressFn
from tools.vision.base import Question


class GpuJudge:
    provider = "vlm"

    def __init__(self, gpu: GpuClient, max_new_tokens: int, batch: int) -> None:
        self.gpu, self.max_new_tokens, self.batch = gpu, max_new_tokens, batch
        self.model = gpu.model("vision")

    async def judge(self, questions: Sequence[Question], progress: ProgressFn | None = None) -> list[Verdict]:
        """Every question in one request: each picture sent once (a shot's keyframe is also the next
        shot's `previous`), judged `batch` at a time on the worker."""
        images: dict[str, int] = {}
        looks = []
        for q in questions:
            image = images.setdefault(str(q.image), len(images))
            previous = images.setdefault(str(q.previous), len(images)) if q.previous else None
            looks.append(Look(image=image, prompt=q.prompt, previous=previous))
        params = VisionParams(images=list(images), looks=looks, max_new_tokens=self.max_new_tokens, batch=self.batch)
        answer = await self.gpu.run("vision", params, progress)
        return answer.verdicts

    async def close(self) -> None:
        """The GPU client belongs to the service, which closes it."""

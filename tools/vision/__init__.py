"""Vision judges for keyframes: a VLM on a GPU worker, or an OpenAI-compatible vision API.

`get_judge` returns the configured one (see `tools.gpu.vision_on_api`), or None when neither is
set and vision guidance is skipped. Both answer the same `Verdict` (score, missing, unwanted).
"""

from __future__ import annotations

from tools.gpu import GpuClient, vision_on_api
from tools.settings import Settings
from tools.vision.base import Judge, Question


def get_judge(settings: Settings, gpu: GpuClient | None) -> Judge | None:
    if vision_on_api(settings):
        from tools.vision.openai_judge import OpenAIJudge

        return OpenAIJudge(settings)
    if gpu is not None and gpu.configured("vision"):
        from tools.vision.gpu_judge import GpuJudge

        return GpuJudge(gpu, settings.vision_max_new_tokens, settings.vision_batch)
    return None


__all__ = ["Judge", "Question", "get_judge"]

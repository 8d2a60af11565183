"""What a vision judge is: one picture (and the previous shot's) in, one `Verdict` out."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from gpu_workers.protocol import Verdict
from tools.gpu.client import ProgressFn


class Judge(Protocol):
    provider: str  # "vlm" (a GPU worker) or "openai" (an OpenAI-compatible API)
    model: str

    async def judge(
        self, image: Path, prompt: str, previous: Path | None, progress: ProgressFn | None = None
    ) -> Verdict:
        """Score `image` against the shot's `prompt`; an unusable answer is `Verdict(parsed=False)`."""
        ...

    async def close(self) -> None: ...

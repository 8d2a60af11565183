"""What a vision judge is: keyframes (each with the previous shot's) in, one `Verdict` each out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gpu_workers.protocol import Verdict
from tools.gpu.client import ProgressFn


@dataclass(frozen=True)
class Question:
    """Does `image` show the shot's `prompt`? `previous`: the shot before, to judge consistency."""

    image: Path
    prompt: str
    previous: Path | None = None


class Judge(Protocol):
    provider: str  # "vlm" (a GPU worker) or "openai" (an OpenAI-compatible API)
    model: str

    async def judge(self, questions: Sequence[Question], progress: ProgressFn | None = None) -> list[Verdict]:
        """One verdict per question, in order, asked together (one GPU request in batches, or
        concurrent API calls); an unusable answer is `Verdict(parsed=False)`."""
        ...

    async def close(self) -> None: ...

"""Pure decisions for the GPU stages: native sizes, frame counts, prompts and vision verdicts."""

from __future__ import annotations

import math
from typing import Any

from tools.models import Aspect

# SDXL's trained buckets (about one megapixel); the keyframe is then scaled to the output size.
SDXL_SIZES = {Aspect.portrait: (768, 1344), Aspect.landscape: (1344, 768), Aspect.square: (1024, 1024)}
# LTX-Video works best near 0.4 megapixels with both sides multiples of 32.
LTX_SIZES = {Aspect.portrait: (512, 896), Aspect.landscape: (896, 512), Aspect.square: (640, 640)}
LTX_FPS = 24


def _shrink(size: tuple[int, int], divisor: int, multiple: int) -> tuple[int, int]:
    """`size / divisor`, rounded down to `multiple` (tests use a divisor to run tiny models fast)."""
    return tuple(max(multiple, (side // divisor) // multiple * multiple) for side in size)  # type: ignore[return-value]


def sdxl_size(aspect: Aspect, divisor: int = 1) -> tuple[int, int]:
    return _shrink(SDXL_SIZES[aspect], divisor, 32)


def ltx_size(aspect: Aspect, divisor: int = 1) -> tuple[int, int]:
    return _shrink(LTX_SIZES[aspect], divisor, 32)


def ltx_frames(seconds: float, cap: int, fps: int = LTX_FPS) -> int:
    """8k+1 frames covering `seconds` at `fps`, at most `cap` (longer shots are fitted in post)."""
    limit = max(9, (cap - 1) // 8 * 8 + 1)
    return min(8 * max(1, math.ceil(seconds * fps / 8)) + 1, limit)


def shot_prompt(text: str, critique: str | None = None) -> str:
    """The picture prompt, with the vision model's critique folded in on a regeneration."""
    return f"{text}. Fix: {critique}" if critique else text


def score(verdict: dict[str, Any]) -> float | None:
    """The weaker of adherence and quality; None for an unparsed verdict."""
    if not verdict.get("parsed"):
        return None
    return min(float(verdict["adherence"] if verdict.get("adherence") is not None else 10),
               float(verdict["quality"] if verdict.get("quality") is not None else 10))


def needs_retry(verdict: dict[str, Any], threshold: float) -> bool:
    """Regenerate only on a parsed verdict below the threshold: an unparsed one is not evidence."""
    value = score(verdict)
    return value is not None and value < threshold

"""Pure decisions for the GPU stages: native sizes, frame counts, prompts and vision verdicts."""

from __future__ import annotations

import math
import re

from gpu_workers.protocol import Verdict
from tools.models import Aspect, Motion

# SDXL's trained buckets (about one megapixel); the keyframe is then scaled to the output size.
SDXL_SIZES = {Aspect.portrait: (768, 1344), Aspect.landscape: (1344, 768), Aspect.square: (1024, 1024)}
# LTX-Video works best near 0.4 megapixels with both sides multiples of 32.
LTX_SIZES = {Aspect.portrait: (512, 896), Aspect.landscape: (896, 512), Aspect.square: (640, 640)}
LTX_FPS = 24
CLIP_TOKENS = 75  # CLIP's 77 minus its start and end tokens: SDXL ignores anything past them
CAMERA = {
    Motion.zoom_in: "the camera slowly pushes in",
    Motion.zoom_out: "the camera slowly pulls back",
    Motion.pan_left: "the camera pans slowly to the left",
    Motion.pan_right: "the camera pans slowly to the right",
    Motion.pan_up: "the camera tilts slowly up",
    Motion.pan_down: "the camera tilts slowly down",
}
_PIECE = re.compile(r"\w+|[^\w\s]")


def _shrink(size: tuple[int, int], divisor: int, multiple: int) -> tuple[int, int]:
    """`size / divisor`, rounded down to `multiple` (tests use a divisor to run tiny models fast)."""
    return tuple(max(multiple, (side // divisor) // multiple * multiple) for side in size)  # type: ignore[return-value]


def sdxl_size(aspect: Aspect, divisor: int = 1) -> tuple[int, int]:
    return _shrink(SDXL_SIZES[aspect], divisor, 32)


def ltx_size(aspect: Aspect, divisor: int = 1) -> tuple[int, int]:
    return _shrink(LTX_SIZES[aspect], divisor, 32)


def ltx_frames(seconds: float, fps: int = LTX_FPS) -> int:
    """8k+1 frames covering `seconds` at `fps`: the worker makes them in generations of at most
    `STORYBOT_LTX_MAX_FRAMES`, each continuing from the last frame, so no shot is looped."""
    return 8 * max(1, math.ceil(seconds * fps / 8)) + 1


def frame_cap(cap: int) -> int:
    """The largest 8k+1 frame count not over `cap`."""
    return max(9, (cap - 1) // 8 * 8 + 1)


def ltx_prompt(picture: str, motion: Motion, beat: str | None = None) -> str:
    """What moves, not only what is seen: the still's prompt plus the planner's camera move."""
    pace = {"hook": "quick, striking motion", "climax": "dramatic motion", "resolution": "calm, gentle motion"}
    parts = [picture, CAMERA[motion], pace.get(beat or "", "")]
    return ", ".join(p for p in parts if p)


def clip_tokens(text: str) -> int:
    """CLIP BPE tokens, estimated from above: a word piece per 5 letters, one per punctuation mark
    (the main process loads no tokenizer)."""
    return sum(max(1, math.ceil(len(p) / 5)) if p[0].isalnum() else 1 for p in _PIECE.findall(text))


def fit_clip(parts: list[str], budget: int = CLIP_TOKENS) -> str:
    """Comma-joined `parts` in order, each kept whole or cut at a word, within `budget` CLIP tokens:
    what comes first is what SDXL will see."""
    out: list[str] = []
    for part in filter(None, (" ".join(p.split()) for p in parts)):
        words, kept = part.split(" "), list[str]()
        for word in words:
            if clip_tokens(", ".join([*out, " ".join([*kept, word])])) > budget:
                break
            kept.append(word)
        if kept:
            out.append(" ".join(kept))
        if len(kept) < len(words):
            break
    return ", ".join(out)


def redraw_prompts(prompt: str, negative: str, verdict: Verdict) -> tuple[str, str]:
    """A redraw names what was missing first (where CLIP surely sees it) and forbids what was unwanted."""
    return fit_clip([*verdict.missing, prompt]), fit_clip([*verdict.unwanted, negative])


def needs_retry(verdict: Verdict, threshold: float) -> bool:
    """Regenerate only on a parsed verdict below the threshold: an unparsed one is not evidence."""
    value = verdict.value
    return value is not None and value < threshold

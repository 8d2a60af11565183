"""The question every vision judge is asked about a keyframe, and how its answer becomes a `Verdict`.

Shared by the GPU worker's VLM (gpu_workers.families.vision) and the OpenAI-compatible judge, so
both ask the same thing and parse it the same way. Stdlib and pydantic only: the worker and the
main process both import it.
"""

from __future__ import annotations

import json
import math
import re

from pydantic import ValidationError

from gpu_workers.protocol import Verdict

VISION_MAX_PIXELS = 1024 * 1024  # the judge sees the whole frame, aspect kept, about 1 MP at most
VERDICT_PROMPT = (
    "You check a keyframe for a short video against its shot description.\n"
    "Shot description: {prompt}\n{previous}"
    "Score 0-10 how well the picture shows the description (10: everything named is there and it looks good). "
    "List under missing the things the description names that the picture does not show, and under unwanted "
    "what the picture shows that it should not (text, watermarks, extra limbs, wrong objects).\n"
    "Answer with one JSON object only, no prose, like this example:\n"
    '{{"score": 4, "missing": ["lighthouse", "whale"], "unwanted": ["text"], "consistent": true}}'
)
PREVIOUS_NOTE = (
    "The second image is the previous shot: set consistent to whether this one matches its characters and style.\n"
)
_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def verdict_prompt(prompt: str, previous: bool) -> str:
    """The question for one keyframe; `previous`: the previous shot is sent as a second image."""
    return VERDICT_PROMPT.format(prompt=prompt, previous=PREVIOUS_NOTE if previous else "")


def parse_verdict(text: str) -> Verdict:
    """The first JSON object in the judge's output that is a valid verdict; otherwise unparsed,
    with no invented scores (the caller then keeps the shot rather than regenerate on noise)."""
    for match in _JSON_OBJECT.finditer(text):
        try:
            data = json.loads(match.group(0))
            if not isinstance(data, dict) or not {"score", "adherence", "quality"} & data.keys():
                continue
            verdict = Verdict.model_validate(
                {**data, "parsed": True, "raw": text[:500], "critique": str(data.get("critique", ""))[:200]}
            )
            if verdict.value is not None:
                return verdict
        except (json.JSONDecodeError, ValidationError, TypeError, AttributeError):
            continue
    return Verdict(parsed=False, raw=text[:500])


def fit_pixels(size: tuple[int, int], cap: int = VISION_MAX_PIXELS) -> tuple[int, int]:
    """The size scaled down (never up), aspect kept, to at most `cap` pixels."""
    width, height = size
    scale = min(1.0, math.sqrt(cap / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))

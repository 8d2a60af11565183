"""What each shot asks of its picture: the seed (bumped by a re-roll), the prompt with the scene
plan's mood, and the negative prompt. Keyframes, vision redraws and LTX clips all ask the same."""

from __future__ import annotations

from graph.context import NodeContext
from tools.media.shots import Scene
from tools.models import Shot


def shot_seed(seeds: dict[str, int], job_seed: int, index: int) -> int:
    """The picture seed of a shot: the job's seed until a re-roll gives the shot its own."""
    return seeds.get(str(index), job_seed)


def picture_prompt(shot: Shot, scenes: dict[int, Scene]) -> str:
    prompt = shot.prompt or shot.key_phrase or shot.text
    mood = scene.mood if (scene := scenes.get(shot.index)) else ""
    return f"{prompt}, {mood} mood" if mood else prompt


def negative_prompt(ctx: NodeContext, shot: Shot, scenes: dict[int, Scene]) -> str:
    """The planner's negative prompt for this shot, then the configured one for every shot."""
    own = scene.negative_prompt if (scene := scenes.get(shot.index)) else ""
    return ", ".join(p for p in (own, ctx.settings.sdxl_negative_prompt) if p)

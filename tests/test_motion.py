"""Ken Burns motion: right size and length, and smooth (no stalls, no backward steps, no jitter)."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tools.models import Aspect, Motion
from tools.motion import ken_burns
from tools.probe import probe


def textured(path: Path, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    noise = rng.random((size[1] // 8, size[0] // 8, 3))
    Image.fromarray((noise * 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC).save(path)


def bar_positions(clip: Path) -> np.ndarray:
    """Sub-pixel x position of a bright vertical bar in every frame (intensity centroid)."""
    out = []
    with av.open(str(clip)) as container:
        for frame in container.decode(container.streams.video[0]):
            row = frame.to_ndarray(format="gray")[:, :].astype(np.float64).mean(axis=0)
            weight = np.clip(row - 80, 0, None)
            out.append((weight * np.arange(len(row))).sum() / weight.sum())
    return np.array(out)


def test_pan_moves_steadily_without_stalls_or_backward_steps(tmp_path: Path) -> None:
    image, clip = tmp_path / "bar.png", tmp_path / "pan.mp4"
    pixels = np.full((1080, 1080, 3), 40, np.uint8)
    pixels[:, 530:550] = 255
    Image.fromarray(pixels).save(image)
    asyncio.run(ken_burns(image, Motion.pan_right, 60, Aspect.square, clip))
    info = probe(clip)
    assert info.video and (info.video.width, info.video.height) == Aspect.square.size
    assert info.video.fps == pytest.approx(30) and info.duration == pytest.approx(2.0, abs=0.04)
    steps = np.diff(bar_positions(clip))
    steps *= np.sign(steps.sum())  # direction does not matter
    assert len(steps) == 59 and steps.sum() > 90, "the pan barely moved"
    assert steps.min() > -0.05, "the picture stepped backwards"
    middle = steps[10:-10]
    assert middle.min() > 1.0, f"stall in the middle of the move: {np.round(steps, 2)}"
    # zoompan places its window on whole pixels of the 2x working image: steps may differ by about
    # one output pixel from frame to frame, never more (a 1x zoompan jumps by two)
    assert np.abs(np.diff(middle)).max() < 1.3, f"jitter: {np.round(steps, 2)}"


@pytest.mark.parametrize("motion", [Motion.zoom_in, Motion.zoom_out, Motion.pan_up])
def test_every_frame_moves(tmp_path: Path, motion: Motion) -> None:
    image, clip = tmp_path / "k.png", tmp_path / "m.mp4"
    textured(image, Aspect.portrait.size)
    asyncio.run(ken_burns(image, motion, 45, Aspect.portrait, clip))
    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="gray").astype(np.int16) for f in container.decode(container.streams.video[0])]
    assert len(frames) == 45
    # ease-in/out starts and ends slowly, but the middle of the move never stalls
    middle = [np.abs(a - b).mean() for a, b in pairwise(frames[10:36])]
    assert min(middle) > 0.5, middle

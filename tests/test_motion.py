"""Ken Burns motion: right size and length, and smooth (no stalls, no backward steps, no jitter);
fitting clips: trimmed, chained, slowed and held, never looped."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tools.media.ffmpeg import run_ffmpeg
from tools.media.motion import ClipShot, clip_source, ken_burns, render_shot
from tools.media.probe import probe
from tools.models import Aspect, Motion


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


# fitting clips: the chain the final cut runs, rendered on its own ---------------------------------


async def moving_bar(path: Path, seconds: float, rate: int, size: str = "320x240") -> None:
    """A white bar crossing a dark clip left to right: its position tells which source frame is shown."""
    await run_ffmpeg(
        [
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"color=c=0x202020:s={size}:r={rate}:d={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"color=c=white:s=8x{size.split('x')[1]}:r={rate}:d={seconds}",
            "-filter_complex",
            f"[0][1]overlay=x='t/{seconds}*(W-w)':y=0",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            path,
        ]
    )


def frames_of(clip: Path) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def centroid(frame: np.ndarray) -> float:
    row = frame.mean(axis=(0, 2))
    weight = np.clip(row - 120, 0, None)
    return float((weight * np.arange(len(row))).sum() / max(weight.sum(), 1e-9))


def fitted(tmp_path: Path, sources: list[Path], frames: int) -> list[np.ndarray]:
    out = tmp_path / "fitted.mp4"
    shot = ClipShot(sources=[clip_source(p) for p in sources])
    asyncio.run(render_shot(shot, frames, Aspect.square, out))
    info = probe(out)
    assert info.video and (info.video.width, info.video.height) == Aspect.square.size
    assert info.video.fps == pytest.approx(30)
    return frames_of(out)


def test_short_clip_is_slowed_then_held_never_looped(tmp_path: Path) -> None:
    src = tmp_path / "short.mp4"
    asyncio.run(moving_bar(src, 1.0, 24, "240x240"))
    frames = fitted(tmp_path, [src], 90)  # 3 s from a 1 s clip: half speed for 2 s, then the last frame
    assert len(frames) == 90
    xs = np.array([centroid(f) for f in frames])
    assert np.diff(xs).min() > -6, f"the bar jumped back (a loop): {np.round(xs)}"
    assert xs[0] < 150 and xs[59] > 900, "the whole clip should play, at half speed"
    assert np.abs(np.diff(xs[62:])).max() < 6, "after the clip ends its last frame holds"


def test_long_clip_is_trimmed_and_only_the_start_is_read(tmp_path: Path) -> None:
    src = tmp_path / "long.mkv"
    asyncio.run(moving_bar(src, 6.0, 60, "360x360"))
    frames = fitted(tmp_path, [src], 30)  # 1 s of a 6 s, 60 fps clip
    assert len(frames) == 30
    xs = np.array([centroid(f) for f in frames])
    # 1 s of 6 s: the bar moves a sixth of the way, steadily, at normal speed (no slow motion)
    assert 120 < xs[-1] - xs[0] < 240, np.round(xs)
    assert np.diff(xs).min() > -6


def test_clips_for_one_shot_are_chained_in_order(tmp_path: Path) -> None:
    red, blue = tmp_path / "red.mp4", tmp_path / "blue.mp4"
    for path, colour in ((red, "red"), (blue, "blue")):
        asyncio.run(
            run_ffmpeg(
                [
                    "-v",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    f"color=c={colour}:s=300x500:r=25:d=1",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    path,
                ]
            )
        )
    frames = fitted(tmp_path, [red, blue], 60)
    means = [f.reshape(-1, 3).mean(axis=0) for f in frames]
    assert len(frames) == 60
    assert all(m[0] > 150 and m[2] < 80 for m in means[:29]), "the first clip plays first"
    assert all(m[2] > 150 and m[0] < 80 for m in means[31:]), "then the second, never the first again"


def test_a_next_clip_is_not_flashed_for_a_few_frames(tmp_path: Path) -> None:
    """A shot 0.3 s longer than its first clip slows that clip a little rather than cutting to a
    second clip for nine frames."""
    red, blue = tmp_path / "red.mp4", tmp_path / "blue.mp4"
    for path, colour in ((red, "red"), (blue, "blue")):
        asyncio.run(
            run_ffmpeg(
                ["-v", "error", "-f", "lavfi", "-i", f"color=c={colour}:s=300x500:r=25:d=2", "-c:v", "libx264", path]
            )
        )
    frames = fitted(tmp_path, [red, blue], 69)  # 2.3 s from a 2 s clip and another 2 s clip
    means = [f.reshape(-1, 3).mean(axis=0) for f in frames]
    assert len(frames) == 69
    assert all(m[0] > 150 and m[2] < 80 for m in means), "only the first clip, slowed by 15%"

"""Turning fetched media into what the animate stage takes: a keyframe PNG at the output size, and
for footage one clip at least as long as the shot.

A clip shorter than its shot is chained with further clips (never looped: a loop of a short clip
shows); only when the search has no more footage is the last frame held for the remainder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tools import keyframes
from tools.ffmpeg import run_ffmpeg
from tools.files import atomic_path
from tools.models import Aspect
from tools.motion import FPS, ClipEncoding
from tools.probe import probe

FFMPEG_DEADLINE = 300.0


def _cover(size: tuple[int, int]) -> str:
    w, h = size
    return f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,crop={w}:{h},setsar=1,format=yuv420p"


def still_keyframe(image: Path, aspect: Aspect, png: Path) -> Path:
    """A photo cover-cropped to the output size (any mode, rotation or profile Pillow reads)."""
    png.parent.mkdir(parents=True, exist_ok=True)
    return keyframes.save_png(keyframes.load_image_cover(image, aspect.size), png)


async def clip_keyframe(clip: Path, aspect: Aspect, png: Path) -> Path:
    """The frame a third of the way into `clip`, cover-cropped: what the approval shows for footage."""
    at = probe(clip).duration / 3
    png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png) as tmp:
        async with asyncio.timeout(FFMPEG_DEADLINE):
            await run_ffmpeg(
                [
                    "-v",
                    "error",
                    "-ss",
                    f"{at:.3f}",
                    "-i",
                    clip,
                    "-frames:v",
                    "1",
                    "-vf",
                    _cover(aspect.size).replace(",format=yuv420p", ""),
                    tmp,
                ]
            )
    return png


def clip_seconds(clip: Path) -> float:
    info = probe(clip)
    return info.video.duration if info.video else 0.0


async def chain(clips: list[Path], seconds: float, aspect: Aspect, out: Path) -> Path:
    """`clips` played one after another, cover-cropped to the output, cut at `seconds`; when they are
    all together shorter, the last frame is held (never a loop). One clip long enough is used as is."""
    lengths = [clip_seconds(c) for c in clips]
    if len(clips) == 1 and lengths[0] >= seconds:
        return clips[0]
    parts, labels = [], []
    for i in range(len(clips)):
        parts.append(f"[{i}:v]fps={FPS},{_cover(aspect.size)}[v{i}]")
        labels.append(f"[v{i}]")
    hold = max(0.0, seconds - sum(lengths)) + 0.1
    graph = (
        ";".join(parts)
        + f";{''.join(labels)}concat=n={len(clips)}:v=1:a=0,tpad=stop_mode=clone:stop_duration={hold:.3f}[v]"
    )
    enc = ClipEncoding()
    args: list[str | Path] = ["-v", "error"]
    for clip in clips:
        args += ["-i", clip]
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        args += [
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-t",
            f"{seconds:.3f}",
            "-c:v",
            "libx264",
            "-preset",
            enc.preset,
            "-crf",
            str(enc.crf),
            "-pix_fmt",
            "yuv420p",
            "-an",
            tmp,
        ]
        async with asyncio.timeout(FFMPEG_DEADLINE):
            await run_ffmpeg(args)
    return out

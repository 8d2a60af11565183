"""Turning fetched media into what a shot shows: a keyframe PNG at the output size, and footage kept
in the job folder. The footage itself is fitted (cover-cropped, trimmed, chained, never looped)
inside the final cut by tools.media.motion, so nothing is encoded here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from tools.errors import MediaError
from tools.files import atomic_path
from tools.media import keyframes
from tools.media.ffmpeg import run_ffmpeg
from tools.media.motion import cover_filter
from tools.media.probe import probe
from tools.models import Aspect

FFMPEG_DEADLINE = 300.0


def still_keyframe(image: Path, aspect: Aspect, png: Path) -> Path:
    """A photo cover-cropped to the output size (any mode, rotation or profile Pillow reads)."""
    png.parent.mkdir(parents=True, exist_ok=True)
    return keyframes.save_png(keyframes.load_image_cover(image, aspect.size), png)


async def clip_keyframe(clip: Path, aspect: Aspect, png: Path) -> Path:
    """The frame a third of the way into `clip`, cover-cropped: what the approval shows for footage.
    The first frame when nothing decodes there (a file whose later data is damaged)."""
    third = (await asyncio.to_thread(probe, clip)).duration / 3
    png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png) as tmp:
        for at in (third, 0.0):
            await _grab(clip, at, aspect, tmp)
            if tmp.is_file():  # FFmpeg exits 0 without writing when no frame decodes
                return png
        raise MediaError(f"{clip.name}: no frame decodes")


async def _grab(clip: Path, at: float, aspect: Aspect, out: Path) -> None:
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
                cover_filter(aspect, pix_fmt=None),
                out,
            ]
        )


def clip_seconds(clip: Path) -> float:
    info = probe(clip)
    return info.video.duration if info.video else 0.0


def keep(source: Path, dest: Path) -> Path:
    """`source` (in the shared cache) also at `dest` in the job folder: a hard link, else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    return dest

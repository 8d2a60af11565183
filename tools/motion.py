"""Offline animation: Ken Burns motion on a still, and fitting supplied clips to shots.

zoompan rounds its crop window to whole input pixels, which shows as jitter on slow moves; the
still is first scaled to twice the output size so each rounding step is half an output pixel.
The image is read once (no `-loop 1`), so the scale runs once per shot, not once per frame.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from tools.ffmpeg import run_ffmpeg
from tools.files import atomic_path
from tools.models import Aspect, Motion

FPS = 30
ZOOM = 0.12  # how far a move travels: 12% of the frame


class ClipEncoding(BaseModel):
    """Intermediate clips are decoded once by the final cut: fast to write, near-lossless."""

    preset: str = "ultrafast"
    crf: int = 18


def _motion_exprs(motion: Motion, frames: int) -> tuple[str, str, str]:
    """zoompan z, x, y expressions; `e` is a smoothstep ease of the frame number `on`."""
    p = f"(on/{max(frames - 1, 1)})"
    e = f"({p}*{p}*(3-2*{p}))"
    centre_x, centre_y = "(iw-iw/zoom)/2", "(ih-ih/zoom)/2"
    full = f"{1 + ZOOM}"
    match motion:
        case Motion.zoom_in:
            return f"1+{ZOOM}*{e}", centre_x, centre_y
        case Motion.zoom_out:
            return f"{full}-{ZOOM}*{e}", centre_x, centre_y
        case Motion.pan_left:
            return full, f"(iw-iw/zoom)*(1-{e})", centre_y
        case Motion.pan_right:
            return full, f"(iw-iw/zoom)*{e}", centre_y
        case Motion.pan_up:
            return full, centre_x, f"(ih-ih/zoom)*(1-{e})"
        case Motion.pan_down:
            return full, centre_x, f"(ih-ih/zoom)*{e}"


def _encode_args(out: Path, enc: ClipEncoding) -> list[str | Path]:
    return ["-c:v", "libx264", "-preset", enc.preset, "-crf", str(enc.crf), "-pix_fmt", "yuv420p",
            "-r", str(FPS), "-an", "-movflags", "+faststart", out]


async def ken_burns(image: Path, motion: Motion, frames: int, aspect: Aspect, out: Path,
                    enc: ClipEncoding | None = None) -> None:
    """Animate one keyframe into `out`: `frames` frames at 30 fps, output size."""
    w, h = aspect.size
    z, x, y = _motion_exprs(motion, frames)
    vf = (f"scale={2 * w}:{2 * h}:flags=bicubic,format=yuv420p,"
          f"zoompan=z='{z}':x='{x}':y='{y}':d={frames}:s={w}x{h}:fps={FPS},setsar=1")
    with atomic_path(out) as tmp:
        await run_ffmpeg(["-v", "error", "-i", image, "-vf", vf, "-frames:v", str(frames),
                          *_encode_args(tmp, enc or ClipEncoding())])


async def fit_clip(source: Path, frames: int, aspect: Aspect, out: Path,
                   enc: ClipEncoding | None = None) -> None:
    """Fit a supplied clip of any size, rate or length to a shot: cover-crop, 30 fps, loop if short."""
    w, h = aspect.size
    vf = (f"fps={FPS},scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,"
          f"crop={w}:{h},setsar=1,format=yuv420p")
    with atomic_path(out) as tmp:
        await run_ffmpeg(["-v", "error", "-stream_loop", "-1", "-i", source, "-vf", vf,
                          "-frames:v", str(frames), *_encode_args(tmp, enc or ClipEncoding())])
